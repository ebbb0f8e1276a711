/*
 * The 16550 UART on COM1 (I/O 0x3F8, IRQ 4): the console. Output polls the transmitter;
 * input is interrupt-driven (National Semiconductor PC16550D datasheet, register map).
 */
#include "defs.h"
#include "trap.h"
#include "x86.h"

#define COM1 0x3f8
#define RBR 0 /* receive buffer (read) */
#define THR 0 /* transmit holding (write) */
#define IER 1 /* interrupt enable */
#define DLL 0 /* divisor latch, when LCR.DLAB = 1 */
#define DLM 1
#define FCR 2 /* FIFO control */
#define LCR 3 /* line control */
#define MCR 4 /* modem control */
#define LSR 5 /* line status */

#define IER_RDA 0x01 /* interrupt when received data is available */
#define LCR_8N1 0x03
#define LCR_DLAB 0x80
#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT2 0x08 /* on a PC, OUT2 gates the UART's interrupt line to the PIC */
#define LSR_DR 0x01   /* data ready */
#define LSR_THRE 0x20 /* transmit holding register empty */

void uart_init(void) {
  outb(COM1 + IER, 0);
  outb(COM1 + LCR, LCR_DLAB);
  outb(COM1 + DLL, 1); /* 115200 baud */
  outb(COM1 + DLM, 0);
  outb(COM1 + LCR, LCR_8N1);
  /* FIFOs off (16450 mode): turning them on flushes them, which would lose whatever was
   * typed (or piped) before boot; console input is slow enough for a 1-byte buffer. */
  outb(COM1 + FCR, 0);
  outb(COM1 + MCR, MCR_DTR | MCR_RTS | MCR_OUT2);
  outb(COM1 + IER, IER_RDA);
}

void uart_putc(char c) {
  /* Bounded wait: a missing UART (all ones on the bus) must not hang the kernel. */
  for (int i = 0; i < 100000 && !(inb(COM1 + LSR) & LSR_THRE); i++) {
  }
  outb(COM1 + THR, (u8)c);
}

void uart_intr(void) {
  while (inb(COM1 + LSR) & LSR_DR) console_rx(inb(COM1 + RBR));
}
