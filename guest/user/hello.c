/* Prints a greeting and its arguments: the smallest useful program. */
#include "user.h"

int main(int argc, char **argv) {
  printf("hello from pid %d:", getpid());
  for (int i = 1; i < argc; i++) printf(" %s", argv[i]);
  printf("\n");
  return 0;
}
