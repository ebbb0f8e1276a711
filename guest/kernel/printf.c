/* Kernel console output and panic. */
#include "defs.h"
#include "x86.h"

void kprintf(const char *fmt, ...) {
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n > (int)sizeof buf - 1) n = sizeof buf - 1;
  console_write(buf, n);
}

void panic(const char *fmt, ...) {
  char buf[256];
  cli();
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  kprintf("kernel panic: %s\n", buf);
  shutdown(0x7f);
}
