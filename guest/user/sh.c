/*
 * A small shell on the serial console: `name args...` runs a program and waits for it,
 * `programs` lists what can run, `exit [status]` ends the shell (and, as init, the run).
 */
#include "user.h"

#define MAX_ARGS 15

static int split(char *line, char **argv) {
  int argc = 0;
  char *p = line;
  while (*p && argc < MAX_ARGS) {
    while (*p == ' ' || *p == '\t' || *p == '\n') *p++ = 0;
    if (!*p) break;
    argv[argc++] = p;
    while (*p && *p != ' ' && *p != '\t' && *p != '\n') p++;
  }
  argv[argc] = 0;
  return argc;
}

int main(void) {
  char line[128], *argv[MAX_ARGS + 1];
  printf("shell: type 'help' for commands\n");
  for (;;) {
    printf("$ ");
    int n = read(0, line, sizeof line - 1);
    if (n <= 0) continue;
    line[n] = 0;
    int argc = split(line, argv);
    if (argc == 0) continue;
    if (strcmp(argv[0], "exit") == 0) return argc > 1 ? atoi(argv[1]) : 0;
    if (strcmp(argv[0], "help") == 0) {
      printf("programs          list the programs\n"
             "<program> [args]  run a program and wait for it\n"
             "exit [status]     leave the shell\n");
      continue;
    }
    if (strcmp(argv[0], "programs") == 0 || strcmp(argv[0], "ls") == 0) {
      char buf[512];
      int len = programs(buf, sizeof buf);
      if (len > 0) write(1, buf, len);
      continue;
    }
    int pid = spawn(argv[0], argv);
    if (pid < 0) {
      printf("%s: %s\n", argv[0], pid == -ENOENT ? "no such program" : "cannot run");
      continue;
    }
    /* wait() returns any child: orphans handed to us (we may be init) are reaped on the way. */
    int status, w;
    while ((w = wait(&status)) > 0 && w != pid) {
    }
    if (w == pid && status != 0) printf("[%s exited with status %d]\n", argv[0], status);
  }
}
