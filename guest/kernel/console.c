/*
 * The console line discipline: received characters are echoed and collected into a line;
 * read() returns once a whole line (ending in '\n') is there. Backspace edits the line.
 */
#include "defs.h"
#include "proc.h"
#include "x86.h"

#define INPUT_SIZE 256

static struct {
  char buf[INPUT_SIZE];
  u32 r;  /* next byte read() returns */
  u32 w;  /* end of the committed lines */
  u32 e;  /* end of the line being edited */
} input;

void console_write(const char *s, int n) {
  /* Callers run with interrupts on or off; keep each write in one piece. */
  u32 f = irq_save();
  for (int i = 0; i < n; i++) {
    if (s[i] == '\n') uart_putc('\r');
    uart_putc(s[i]);
  }
  irq_restore(f);
}

static void echo(char c) { console_write(&c, 1); }

static void rx(int c, int show) {
  if (c == '\r') c = '\n';
  if (c == 0x7f || c == '\b') {
    if (input.e != input.w) {
      input.e--;
      if (show) console_write("\b \b", 3);
    }
    return;
  }
  if (input.e - input.r >= INPUT_SIZE) return; /* full: drop */
  input.buf[input.e++ % INPUT_SIZE] = (char)c;
  if (show) echo((char)c);
  if (c == '\n' || input.e - input.r == INPUT_SIZE) {
    input.w = input.e;
    wakeup(&input);
  }
}

void console_rx(int c) { rx(c, 1); }

/* Queue input as if typed, without echo (the self-test's read test uses it). */
void console_inject(const char *s) {
  while (*s) rx(*s++, 0);
}

/* Blocks until a line is available; returns at most one line. */
int console_read(char *dst, int n) {
  while (input.r == input.w) {
    if (myproc()->killed) return -1;
    sleep_on(&input);
  }
  int got = 0;
  while (got < n && input.r != input.w) {
    char c = input.buf[input.r++ % INPUT_SIZE];
    dst[got++] = c;
    if (c == '\n') break;
  }
  return got;
}
