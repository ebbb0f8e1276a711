/*
 * System calls: `int $0x80` with the number in %eax and arguments in %ebx, %ecx, %edx
 * (syscall.h). User pointers are checked with uvm_check before the kernel touches them.
 */
#include "defs.h"
#include "proc.h"
#include "syscall.h"
#include "trap.h"

#define MAX_ARGS 16
#define MAX_ARG_LEN 128

static int check(u32 va, u32 len, int write) { return uvm_check(myproc()->pgdir, va, len, write); }

static int sys_write(struct trapframe *tf) {
  u32 fd = tf->ebx, buf = tf->ecx;
  int n = (int)tf->edx, r;
  if (fd != 1 && fd != 2) return -EBADF;
  if (n < 0) return -EINVAL;
  if ((r = check(buf, n, 0)) < 0) return r;
  console_write((const char *)buf, n);
  return n;
}

static int sys_read(struct trapframe *tf) {
  u32 fd = tf->ebx, buf = tf->ecx;
  int n = (int)tf->edx, r;
  if (fd != 0) return -EBADF;
  if (n < 0) return -EINVAL;
  if (n == 0) return 0;
  if ((r = check(buf, n, 1)) < 0) return r;
  return console_read((char *)buf, n);
}

/* spawn(name, argv): argv is a user array of string pointers ending in 0, or 0 for {name}. */
static int sys_spawn(struct trapframe *tf) {
  /* Static, not on the one-page kernel stack; safe because the kernel is not preemptible. */
  static char strings[MAX_ARGS][MAX_ARG_LEN];
  static char name[32];
  char *argv[MAX_ARGS];
  pde_t *pgdir = myproc()->pgdir;
  int argc = 0, r;
  if ((r = uvm_strcpyin(pgdir, name, tf->ebx, sizeof name)) < 0) return r;
  u32 uargv = tf->ecx;
  if (!uargv) {
    strlcpy_(strings[0], name, MAX_ARG_LEN);
    argv[argc++] = strings[0];
  } else {
    for (;; argc++) {
      if ((r = check(uargv + argc * 4, 4, 0)) < 0) return r;
      u32 s = *(const u32 *)(uargv + argc * 4);
      if (!s) break;
      if (argc == MAX_ARGS) return -EINVAL;
      if ((r = uvm_strcpyin(pgdir, strings[argc], s, MAX_ARG_LEN)) < 0) return r;
      argv[argc] = strings[argc];
    }
  }
  return proc_spawn(name, argv, argc, myproc());
}

static int sys_wait(struct trapframe *tf) {
  u32 ustatus = tf->ebx;
  int status, r;
  if (ustatus && (r = check(ustatus, 4, 1)) < 0) return r;
  int pid = proc_wait(&status);
  if (pid > 0 && ustatus) *(int *)ustatus = status;
  return pid;
}

static int sys_sleep(struct trapframe *tf) {
  u32 ms = tf->ebx;
  u32 until = ticks_now() + (ms + 1000 / HZ - 1) / (1000 / HZ);
  while ((int)(until - ticks_now()) > 0) {
    if (myproc()->killed) return -EINVAL;
    sleep_on(ticks_chan());
  }
  return 0;
}

/* recv(buf, n): at most n bytes of the TCP stream on port 5001; blocks until there are some.
 * The whole buffer is checked only for the bytes that will be copied (a 64 KB buffer that gets
 * one segment should not cost sixteen page walks); its first byte is checked before waiting, so
 * a bad pointer fails at once. */
static int sys_recv(struct trapframe *tf) {
  u32 buf = tf->ebx;
  int n = (int)tf->ecx, r, ready;
  if (n < 0) return -EINVAL;
  if (n == 0) return 0;
  if ((r = check(buf, 1, 1)) < 0) return r;
  if ((ready = tcp_recv_wait((u32)n)) <= 0) return ready;
  if ((r = check(buf, (u32)ready, 1)) < 0) return r;
  tcp_recv_copy((void *)buf, (u32)ready);
  return ready;
}

static int sys_programs(struct trapframe *tf) {
  u32 buf = tf->ebx;
  int n = (int)tf->ecx, r;
  if (n < 0) return -EINVAL;
  if ((r = check(buf, n, 1)) < 0) return r;
  return programs_list((char *)buf, n);
}

/* sendframe(buf, len): one whole Ethernet frame to the NIC (rawnet.c), its source MAC written
 * into the buffer; 0, or -EAGAIN while the transmit ring is full. */
static int sys_sendframe(struct trapframe *tf) {
  u32 buf = tf->ebx;
  int n = (int)tf->ecx, r;
  if (n < 0) return -EINVAL;
  if ((r = check(buf, n, 1)) < 0) return r;
  return net_send_raw((u8 *)buf, (u32)n);
}

void syscall(struct trapframe *tf) {
  int r;
  switch (tf->eax) {
    case SYS_write: r = sys_write(tf); break;
    case SYS_read: r = sys_read(tf); break;
    case SYS_exit: proc_exit((int)tf->ebx);
    case SYS_spawn: r = sys_spawn(tf); break;
    case SYS_wait: r = sys_wait(tf); break;
    case SYS_getpid: r = myproc()->pid; break;
    case SYS_yield: yield(); r = 0; break;
    case SYS_sleep: r = sys_sleep(tf); break;
    case SYS_time: r = (int)clock_seconds(); break;
    case SYS_uptime: r = (int)(ticks_now() * (1000 / HZ)); break;
    case SYS_kill: r = proc_kill((int)tf->ebx); break;
    case SYS_programs: r = sys_programs(tf); break;
    case SYS_recv: r = sys_recv(tf); break;
    case SYS_sendframe: r = sys_sendframe(tf); break;
    default: r = -ENOSYS;
  }
  tf->eax = (u32)r;
}
