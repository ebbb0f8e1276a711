/* Prints a greeting and its arguments: the smallest useful program. The line goes out in one
 * write(), so an echo of typed-ahead input can come before or after it but never inside it. */
#include "user.h"

int main(int argc, char **argv) {
  char line[256];
  int n = snprintf(line, sizeof line, "hello from pid %d:", getpid());
  for (int i = 1; i < argc && n < (int)sizeof line; i++)
    n += snprintf(line + n, (int)sizeof line - n, " %s", argv[i]);
  if (n > (int)sizeof line - 2) n = (int)sizeof line - 2;
  line[n++] = '\n';
  write(1, line, n);
  return 0;
}
