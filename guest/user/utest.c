/*
 * The user half of the self-test (init=selftest): system calls, scheduling, page faults and
 * isolation seen from ring 3. One line per test, then a summary; the exit status is the number
 * of failures. `utest child <role> ...` is a helper process the tests spawn.
 */
#include "user.h"

static int passed, failed;

static void check(const char *name, const char *why) {
  if (why) {
    failed++;
    printf("test: FAIL user: %s: %s\n", name, why);
  } else {
    passed++;
    printf("test: ok   user: %s\n", name);
  }
}

/* Spawn `argv` and wait for it; returns its exit status, or -1000 + error. */
static int run(char *const argv[]) {
  int pid = spawn(argv[0], argv);
  if (pid < 0) return -1000 + pid;
  int status = -1;
  if (wait(&status) != pid) return -2000;
  return status;
}

static const char *t_getpid(void) { return getpid() > 0 ? 0 : "getpid() <= 0"; }

static const char *t_write(void) {
  static const char line[] = "user: console write\n";
  if (write(1, line, sizeof line - 1) != (int)sizeof line - 1) return "short write";
  if (write(1, line, 0) != 0) return "empty write did not return 0";
  if (write(7, line, 1) != -EBADF) return "bad fd not refused";
  if (write(1, (void *)0xC0100000, 4) != -EFAULT) return "kernel pointer not refused";
  if (write(1, (void *)0x1000, 4) != -EFAULT) return "unmapped pointer not refused";
  return 0;
}

static const char *t_read(void) {
  char buf[64];
  int n = read(0, buf, sizeof buf);
  if (n != 15 || strncmp(buf, "selftest input\n", 15) != 0) return "did not read the queued line";
  if (read(3, buf, 1) != -EBADF) return "bad fd not refused";
  if (read(0, (void *)0xC0000000, 8) != -EFAULT) return "kernel pointer not refused";
  return 0;
}

static const char *t_time(void) {
  unsigned int t0 = time(), u0 = uptime();
  if (sleep(50) != 0) return "sleep failed";
  unsigned int u1 = uptime();
  if (u1 - u0 < 50) return "uptime advanced less than the 50 ms slept";
  if (time() < t0) return "time went backwards";
  return 0;
}

static const char *t_yield(void) { return yield() == 0 ? 0 : "yield() != 0"; }

static const char *t_spawn_wait(void) {
  char *hello[] = {"hello", "one", "two", 0};
  if (run(hello) != 0) return "hello did not exit 0";
  char *args[] = {"utest", "child", "args", "xyz", 0};
  if (run(args) != 43) return "arguments did not arrive (want status 43)";
  char *exit42[] = {"utest", "child", "exit42", 0};
  if (run(exit42) != 42) return "exit status 42 not reported";
  char *nothing[] = {"no-such-program", 0};
  if (spawn(nothing[0], nothing) != -ENOENT) return "unknown program not refused";
  if (wait(0) != -ECHILD) return "wait without children did not fail";
  return 0;
}

static const char *t_heap(void) {
  volatile unsigned int *heap = (volatile unsigned int *)UHEAP_BASE;
  for (int i = 0; i < 8; i++)
    if (heap[i * 1024] != 0) return "fresh heap page not zero";
  for (int i = 0; i < 8 * 1024; i++) heap[i] = i * 7;
  for (int i = 0; i < 8 * 1024; i++)
    if (heap[i] != (unsigned int)i * 7) return "heap does not keep what was written";
  return 0;
}

static int deep(int n) {
  volatile char pad[512];
  pad[0] = (char)n;
  pad[511] = 1;
  return n == 0 ? 0 : deep(n - 1) + pad[511];
}

static const char *t_stack(void) { return deep(200) == 200 ? 0 : "deep recursion went wrong"; }

static const char *t_bad(void) {
  static const struct {
    char *how;
    int status;
  } cases[] = {{"null", EXIT_FAULT(14)}, {"kernel", EXIT_FAULT(14)}, {"text", EXIT_FAULT(14)},
               {"cli", EXIT_FAULT(13)},  {"io", EXIT_FAULT(13)},     {"ud2", EXIT_FAULT(6)},
               {"divide", EXIT_FAULT(0)}};
  static char why[64];
  for (unsigned int i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *argv[] = {"bad", cases[i].how, 0};
    int st = run(argv);
    if (st != cases[i].status) {
      snprintf(why, sizeof why, "bad %s: status %d, want %d", cases[i].how, st, cases[i].status);
      return why;
    }
  }
  return 0;
}

/* A secret in our heap; a child looks at the same address in its own address space. */
static const char *t_isolation(void) {
  volatile unsigned int *secret = (volatile unsigned int *)(UHEAP_BASE + 0x100000);
  *secret = 0x5ec2e7;
  char addr[16];
  snprintf(addr, sizeof addr, "%u", (unsigned int)secret);
  char *argv[] = {"utest", "child", "peek", addr, 0};
  int st = run(argv);
  if (st == 1) return "child read the parent's secret";
  if (st != 0) return "child failed";
  if (*secret != 0x5ec2e7) return "child's write reached the parent";
  return 0;
}

static const char *t_preempt(void) {
  char *argv[] = {"spin", 0};
  int pid = spawn("spin", argv);
  if (pid < 0) return "spawn spin failed";
  /* spin never makes a system call: we run again only if the timer preempts it. */
  if (sleep(5) != 0) return "sleep failed";
  if (kill(pid) != 0) return "kill failed";
  int st;
  if (wait(&st) != pid || st != EXIT_KILLED) return "spin did not die of kill";
  if (kill(pid) != -ESRCH) return "kill of a dead process did not fail";
  return 0;
}

static const char *t_round_robin(void) {
  char *argv[] = {"spin", 0};
  int a = spawn("spin", argv), b = spawn("spin", argv);
  if (a < 0 || b < 0) return "spawn failed";
  /* Three runnable processes; yield must come back here after both spinners had a turn. */
  for (int i = 0; i < 2; i++)
    if (yield() != 0) return "yield failed";
  kill(a);
  kill(b);
  int st1, st2;
  wait(&st1);
  wait(&st2);
  return st1 == EXIT_KILLED && st2 == EXIT_KILLED ? 0 : "spinners did not die of kill";
}

static const char *t_nosys(void) {
  if (syscall3(999, 0, 0, 0) != -ENOSYS) return "unknown system call not refused";
  return 0;
}

/* Only what recv does with or without a network: it checks its arguments before it waits. */
static const char *t_recv_args(void) {
  char buf[8];
  if (recv(buf, 0) != 0) return "recv of 0 bytes is not 0";
  if (recv(buf, -1) != -EINVAL) return "negative length not refused";
  if (recv((void *)0xC0100000, sizeof buf) != -EFAULT) return "kernel address not refused";
  return 0;
}

static const char *t_programs(void) {
  char buf[256];
  int n = programs(buf, sizeof buf - 1);
  if (n <= 0) return "no list";
  buf[n] = 0;
  const char *p = buf;
  int found = 0;
  while (*p) {
    if (strncmp(p, "hello\n", 6) == 0) found = 1;
    while (*p && *p != '\n') p++;
    if (*p) p++;
  }
  return found ? 0 : "hello not listed";
}

static int child(int argc, char **argv) {
  const char *role = argv[2];
  if (strcmp(role, "exit42") == 0) return 42;
  if (strcmp(role, "args") == 0) return argc * 10 + (int)strlen(argv[3]) * (argc == 4);
  if (strcmp(role, "peek") == 0) {
    volatile unsigned int *p = (volatile unsigned int *)(unsigned int)atoi(argv[3]);
    unsigned int seen = *p;
    *p = 0xbad;
    return seen == 0 ? 0 : seen == 0x5ec2e7 ? 1 : 2;
  }
  return 99;
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "child") == 0) return child(argc, argv);
  printf("selftest: user tests\n");
  check("getpid", t_getpid());
  check("write", t_write());
  check("read a console line", t_read());
  check("sleep, uptime, time", t_time());
  check("yield", t_yield());
  check("spawn, arguments, exit, wait", t_spawn_wait());
  check("programs list", t_programs());
  check("demand-zero heap", t_heap());
  check("demand-zero stack", t_stack());
  check("bad processes are killed, kernel goes on", t_bad());
  check("process isolation", t_isolation());
  check("preemption of a process that never yields", t_preempt());
  check("round-robin with yield", t_round_robin());
  check("unknown system calls", t_nosys());
  check("recv checks its arguments", t_recv_args());
  printf("selftest: user: %d passed, %d failed\n", passed, failed);
  return failed;
}
