/* Misbehaves on purpose, as its argument says; the kernel must kill it and carry on. */
#include "user.h"

int main(int argc, char **argv) {
  const char *how = argc > 1 ? argv[1] : "null";
  if (strcmp(how, "null") == 0) return *(volatile int *)0;               /* unmapped page */
  if (strcmp(how, "kernel") == 0) return *(volatile int *)0xC0100000;    /* kernel memory */
  if (strcmp(how, "text") == 0) *(volatile int *)(void *)main = 0;        /* read-only page */
  if (strcmp(how, "cli") == 0) __asm__ __volatile__("cli");               /* privileged */
  if (strcmp(how, "io") == 0) __asm__ __volatile__("outb %al, $0xf4");    /* no I/O rights */
  if (strcmp(how, "ud2") == 0) __asm__ __volatile__("ud2");               /* invalid opcode */
  if (strcmp(how, "divide") == 0) {
    volatile int zero = 0, hundred = 100; /* volatile: gcc must emit the idiv */
    return hundred / zero;
  }
  printf("bad: survived '%s'\n", how);
  return 0;
}
