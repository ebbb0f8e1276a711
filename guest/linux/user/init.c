/*
 * /init of the previrt Linux guest: process 1, started by Linux from the initramfs. It prints
 * what it checks, in lines that are the same on previrt and on QEMU (no times, no memory sizes,
 * no process numbers but its own), configures the network if there is an eth0, and then either
 * runs the command the kernel command line passes it and powers off with its status, or gives a
 * prompt on the console.
 *
 *   console=ttyS0 [-- ]COMMAND [ARGS]     run COMMAND, then power off with its status
 *   console=ttyS0                         a prompt (type `help`)
 *
 * Commands: check (the self-checks, which every boot runs first), netserver, ping [ADDR [N]],
 * uname, help, exit [N]. Powering off writes the status to isa-debug-exit (port 0xf4; previrt
 * and `qemu-system-i386 -device isa-debug-exit` exit with (N << 1) | 1) and, where there is no
 * such device, halts the machine.
 *
 * The network: eth0 gets 10.0.2.15/24 (the address the benchmark's client and previrt's
 * responder at 10.0.2.2 expect); lo gets 127.0.0.1 for the loopback check.
 */
#include "lib.h"

#define GUEST_IP "10.0.2.15"
#define PEER_IP "10.0.2.2"

static char *const *environ_;

static int uname_line(void) {
  struct utsname u;
  if (syscall1(SYS_uname, &u) < 0) return 1;
  printf("init: %s %s %s %s\n", u.sysname, u.release, u.version, u.machine);
  return 0;
}

/* ---- self-checks: the same output wherever the guest runs ---- */

/* x87 arithmetic: on previrt (no FPU) every instruction traps (#NM, CR0.EM) into Linux's maths
 * emulator; on QEMU it runs on the emulated FPU. Both round the same way. */
static int check_fpu(void) {
  volatile double two = 2.0, three = 3.0;
  double r = __builtin_sqrt(two), q = two / three;
  int a = (int)(r * 1e9), b = (int)(q * 1e9);
  int ok = a == 1414213562 && b == 666666666;
  printf("init: x87: sqrt(2) = 1.%09d, 2/3 = 0.%09d %s\n", a - 1000000000, b, ok ? "ok" : "WRONG");
  return !ok;
}

/* fork, a pipe, wait4: the child writes 100 KB of a pattern, the parent checks it. */
static int check_processes(void) {
  int fds[2];
  if (syscall1(SYS_pipe, fds) < 0) return printf("init: pipe failed\n"), 1;
  int pid = syscall0(SYS_fork);
  if (pid < 0) return printf("init: fork failed with error %d\n", -pid), 1;
  static u8 buf[4096];
  if (pid == 0) {
    syscall1(SYS_close, fds[0]);
    for (u32 k = 0; k < 25; k++) {
      for (u32 i = 0; i < sizeof buf; i++) buf[i] = (u8)(k * 7 + i * 13);
      write(fds[1], buf, sizeof buf);
    }
    exit(7);
  }
  syscall1(SYS_close, fds[1]);
  u32 crc = 0xffffffffu, total = 0;
  int r;
  while ((r = read(fds[0], buf, sizeof buf)) > 0) crc = crc32_update(crc, buf, r), total += r;
  syscall1(SYS_close, fds[0]);
  int status = 0;
  syscall4(SYS_wait4, pid, &status, 0, 0);
  int code = (status >> 8) & 0xff;
  int ok = total == 102400 && ~crc == 0x7d76f0eeu && code == 7;
  printf("init: fork and pipe: %u bytes, crc32 %08x, child exit %d %s\n", total, ~crc, code,
         ok ? "ok" : "WRONG");
  return !ok;
}

static int ifreq_ioctl(int s, unsigned int req, const char *name, struct ifreq *ifr) {
  memset(ifr->ifr_name, 0, sizeof ifr->ifr_name);
  memcpy(ifr->ifr_name, name, strlen(name));
  return syscall3(SYS_ioctl, s, req, ifr);
}

/* Gives an interface its address and netmask and brings it up; 1 if it does not exist. */
static int configure(const char *name, const char *ip, const char *mask) {
  int s = syscall3(SYS_socket, AF_INET, SOCK_DGRAM, 0);
  if (s < 0) return -1;
  struct ifreq ifr;
  int r = ifreq_ioctl(s, SIOCGIFFLAGS, name, &ifr);
  if (r < 0) {
    syscall1(SYS_close, s);
    return 1;
  }
  struct sockaddr_in a = {AF_INET, 0, parse_ipv4(ip), {0}};
  ifr.u.addr = a;
  r = ifreq_ioctl(s, SIOCSIFADDR, name, &ifr);
  a.sin_addr = parse_ipv4(mask);
  ifr.u.addr = a;
  if (r >= 0) r = ifreq_ioctl(s, SIOCSIFNETMASK, name, &ifr);
  if (r >= 0) r = ifreq_ioctl(s, SIOCGIFFLAGS, name, &ifr);
  ifr.u.flags |= IFF_UP | IFF_RUNNING;
  if (r >= 0) r = ifreq_ioctl(s, SIOCSIFFLAGS, name, &ifr);
  syscall1(SYS_close, s);
  return r < 0 ? -1 : 0;
}

/* TCP over the loopback interface: Linux's TCP both ways, 256 KB through one connection. */
static int check_loopback(void) {
  int l = syscall3(SYS_socket, AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {AF_INET, htons(7), parse_ipv4("127.0.0.1"), {0}};
  int one = 1;
  syscall5(SYS_setsockopt, l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (l < 0 || syscall3(SYS_bind, l, &addr, sizeof addr) < 0 || syscall2(SYS_listen, l, 1) < 0)
    return printf("init: loopback: cannot listen\n"), 1;
  static u8 buf[8192];
  int pid = syscall0(SYS_fork);
  if (pid == 0) {
    int c = syscall3(SYS_socket, AF_INET, SOCK_STREAM, 0);
    if (syscall3(SYS_connect, c, &addr, sizeof addr) < 0) exit(1);
    for (u32 k = 0; k < 32; k++) {
      for (u32 i = 0; i < sizeof buf; i++) buf[i] = (u8)(k * 3 + (i >> 3) + i * 5);
      if (write(c, buf, sizeof buf) != sizeof buf) exit(2);
    }
    exit(0);
  }
  int c = syscall4(SYS_accept4, l, 0, 0, 0);
  u32 crc = 0xffffffffu, total = 0;
  int r;
  while (c >= 0 && (r = read(c, buf, sizeof buf)) > 0) crc = crc32_update(crc, buf, r), total += r;
  syscall1(SYS_close, c);
  syscall1(SYS_close, l);
  int status = 0;
  syscall4(SYS_wait4, pid, &status, 0, 0);
  int ok = total == 262144 && ~crc == 0xc2f0637eu && status == 0;
  printf("init: loopback TCP: %u bytes, crc32 %08x %s\n", total, ~crc, ok ? "ok" : "WRONG");
  return !ok;
}

static int check(void) {
  int bad = check_fpu();
  bad |= check_processes();
  bad |= check_loopback();
  printf("init: checks %s\n", bad ? "FAILED" : "passed");
  return bad;
}

/* ---- commands ---- */

static u16 checksum(const u8 *p, int n) {
  u32 sum = 0;
  for (int k = 0; k + 1 < n; k += 2) sum += p[k] << 8 | p[k + 1];
  if (n & 1) sum += p[n - 1] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (u16)~sum;
}

/* ICMP echo through a raw socket, as ping does: N requests of 56 data bytes, a second each to
 * answer. */
static int ping(const char *host, int count) {
  u32 dst = parse_ipv4(host);
  if (!dst) return printf("ping: '%s' is not an IPv4 address\n", host), 2;
  int s = syscall3(SYS_socket, AF_INET, SOCK_RAW, IPPROTO_ICMP);
  if (s < 0) return printf("ping: socket failed with error %d\n", -s), 2;
  struct sockaddr_in to = {AF_INET, 0, dst, {0}};
  int received = 0;
  for (int seq = 1; seq <= count; seq++) {
    u8 pkt[64], in[128];
    memset(pkt, 0, sizeof pkt);
    pkt[0] = 8; /* echo request */
    pkt[4] = 0x50, pkt[5] = 0x56;  /* identifier "PV" */
    pkt[6] = (u8)(seq >> 8), pkt[7] = (u8)seq;
    for (int k = 8; k < 64; k++) pkt[k] = (u8)k;
    u16 sum = checksum(pkt, sizeof pkt);
    pkt[2] = (u8)(sum >> 8), pkt[3] = (u8)sum;
    unsigned int t0 = uptime_ms(), us0 = uptime_us();
    int r = syscall6(SYS_sendto, s, (long)pkt, sizeof pkt, 0, (long)&to, sizeof to);
    if (r < 0) {
      printf("ping: sendto failed with error %d\n", -r);
      continue;
    }
    for (;;) {
      struct pollfd p = {s, POLLIN, 0};
      unsigned int waited = uptime_ms() - t0;
      if (waited >= 1000 || syscall3(SYS_poll, &p, 1, 1000 - waited) <= 0) {
        printf("ping: no reply to icmp_seq=%d\n", seq);
        break;
      }
      r = syscall6(SYS_recvfrom, s, (long)in, sizeof in, 0, 0, 0);
      int ihl = (in[0] & 15) * 4;
      if (r < ihl + 8) continue;
      const u8 *icmp = in + ihl;
      if (icmp[0] != 0 || icmp[4] != 0x50 || icmp[5] != 0x56 || (icmp[6] << 8 | icmp[7]) != seq)
        continue; /* not our reply */
      unsigned int us = uptime_us() - us0;
      printf("%d bytes from %s: icmp_seq=%d ttl=%d time=%u.%03u ms\n", r - ihl, host, seq, in[8],
             us / 1000, us % 1000);
      received++;
      break;
    }
  }
  syscall1(SYS_close, s);
  printf("ping: %d packets transmitted, %d received\n", count, received);
  return received == count ? 0 : 1;
}

/* Runs a program from the initramfs and waits for it; its exit status, or 127. */
static int run(const char *path, char *const argv[]) {
  int pid = syscall0(SYS_fork);
  if (pid == 0) {
    int r = syscall3(SYS_execve, path, argv, environ_);
    printf("init: cannot run %s (error %d)\n", path, -r);
    exit(127);
  }
  int status = 0;
  if (pid < 0 || syscall4(SYS_wait4, pid, &status, 0, 0) < 0) return 127;
  return (status & 0x7f) ? 128 + (status & 0x7f) : (status >> 8) & 0xff;
}

static void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }

__attribute__((noreturn)) static void power_off(int status) {
  printf("init: power off, status %d\n", status);
  if (syscall3(SYS_ioperm, 0xf4, 1, 1) == 0) outb(0xf4, (u8)status);
  /* Still here: no isa-debug-exit device. Halting is the end (power off would return). */
  printf("init: no isa-debug-exit at port 0xf4; halting\n");
  syscall4(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, 0xcdef0123 /* HALT */, 0);
  for (;;) syscall0(SYS_pause);
}

static int command(int argc, char **argv) {
  if (argc == 0) return 0;
  const char *c = argv[0];
  if (!strcmp(c, "check")) return check();
  if (!strcmp(c, "uname")) return uname_line();
  if (!strcmp(c, "netserver")) return run("/bin/netserver", argv);
  if (!strcmp(c, "ping"))
    return ping(argc > 1 ? argv[1] : PEER_IP, argc > 2 ? (int)atou(argv[2]) : 3);
  if (!strcmp(c, "exit") || !strcmp(c, "poweroff")) power_off(argc > 1 ? (int)atou(argv[1]) : 0);
  if (!strcmp(c, "help")) {
    printf("commands: check, netserver, ping [ADDR [COUNT]], uname, exit [STATUS], help\n");
    return 0;
  }
  printf("init: unknown command '%s' (help)\n", c);
  return 127;
}

/* The prompt: a line at a time from the console (the tty echoes and edits). */
__attribute__((noreturn)) static void shell(void) {
  static char line[256];
  for (;;) {
    printf("previrt-linux# ");
    int n = 0, r;
    char ch;
    while ((r = read(0, &ch, 1)) == 1 && ch != '\n')
      if (n < (int)sizeof line - 1) line[n++] = ch;
    if (r <= 0) {
      printf("\n");
      power_off(0); /* end of input */
    }
    line[n] = 0;
    char *argv[16];
    int argc = 0;
    for (char *p = line; *p && argc < 15;) {
      while (*p == ' ' || *p == '\t' || *p == '\r') *p++ = 0;
      if (!*p) break;
      argv[argc++] = p;
      while (*p && *p != ' ' && *p != '\t' && *p != '\r') p++;
    }
    argv[argc] = 0;
    int status = command(argc, argv);
    if (status) printf("(status %d)\n", status);
  }
}

int main(int argc, char **argv, char **envp) {
  environ_ = envp;
  crc32_init();
  /* Linux opened /dev/console as fds 0, 1, 2 if the initramfs has it. */
  printf("init: previrt Linux guest, process %d\n", syscall0(SYS_getpid));
  uname_line();
  if (configure("lo", "127.0.0.1", "255.0.0.0") != 0) printf("init: no loopback interface\n");
  int bad = check();
  int eth = configure("eth0", GUEST_IP, "255.255.255.0");
  if (eth == 0) printf("init: eth0 up, %s/24\n", GUEST_IP);
  else printf("init: %s\n", eth > 0 ? "no eth0" : "eth0 cannot be configured");

  int k = 1;
  if (k < argc && !strcmp(argv[k], "--")) k++;
  if (k < argc) {
    int status = command(argc - k, argv + k);
    power_off(bad ? 2 : status);
  }
  if (bad) printf("init: the checks failed; the prompt is yours anyway\n");
  shell();
}
