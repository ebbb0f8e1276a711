/*
 * The two cascaded 8259A interrupt controllers (Intel 8259A datasheet). They are remapped to
 * vectors 32..47 because the BIOS default (8..15) collides with CPU exceptions.
 */
#include "defs.h"
#include "trap.h"
#include "x86.h"

#define PIC1_CMD 0x20
#define PIC1_DATA 0x21
#define PIC2_CMD 0xa0
#define PIC2_DATA 0xa1
#define PIC_EOI 0x20
#define OCW3_READ_ISR 0x0b

static u16 mask = 0xffff & ~(1 << 2); /* all masked except the cascade line (IRQ 2) */

static void set_mask(void) {
  outb(PIC1_DATA, mask & 0xff);
  outb(PIC2_DATA, mask >> 8);
}

void pic_init(void) {
  outb(PIC1_DATA, 0xff);
  outb(PIC2_DATA, 0xff);
  /* ICW1: edge triggered, cascade, ICW4 follows. */
  outb(PIC1_CMD, 0x11);
  outb(PIC1_DATA, T_IRQ0);     /* ICW2: vector base */
  outb(PIC1_DATA, 1 << 2);     /* ICW3: slave on IRQ 2 */
  outb(PIC1_DATA, 0x01);       /* ICW4: 8086 mode, normal EOI */
  outb(PIC2_CMD, 0x11);
  outb(PIC2_DATA, T_IRQ0 + 8);
  outb(PIC2_DATA, 2);          /* ICW3: slave identity */
  outb(PIC2_DATA, 0x01);
  set_mask();
}

void pic_enable(int irq) {
  mask &= ~(1 << irq);
  set_mask();
}

void pic_eoi(int irq) {
  if (irq >= 8) outb(PIC2_CMD, PIC_EOI);
  outb(PIC1_CMD, PIC_EOI);
}

/* IRQ 7 and 15 also arrive when a request vanished before the CPU acknowledged it; the
 * in-service register tells the two apart. A spurious IRQ gets no EOI (except the cascade
 * EOI on the master for a spurious IRQ 15). */
int pic_spurious(int irq) {
  if (irq == IRQ_SPURIOUS_MASTER) {
    outb(PIC1_CMD, OCW3_READ_ISR);
    return !(inb(PIC1_CMD) & 0x80);
  }
  if (irq == IRQ_SPURIOUS_SLAVE) {
    outb(PIC2_CMD, OCW3_READ_ISR);
    if (!(inb(PIC2_CMD) & 0x80)) {
      outb(PIC1_CMD, PIC_EOI);
      return 1;
    }
  }
  return 0;
}
