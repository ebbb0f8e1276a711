/*
 * Kernel-style C for the round trip through gcc -S: inline sensitive instructions the way
 * kernels write them, and the annotation header's page-table and MMIO helpers. Compiled
 * freestanding, linked alone (never run on the host).
 */
#include "afterburn.h"

static inline unsigned long read_cr0(void) {
  unsigned long v;
  __asm__ volatile("movl %%cr0, %0" : "=r"(v));
  return v;
}
static inline void write_cr3(unsigned long v) { __asm__ volatile("mov %0, %%cr3" : : "r"(v) : "memory"); }
static inline unsigned char inb(unsigned short port) {
  unsigned char v;
  __asm__ volatile("inb %w1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
static inline void outb(unsigned short port, unsigned char v) { __asm__ volatile("outb %0, %w1" : : "a"(v), "Nd"(port)); }
static inline void insl(unsigned short port, void *buf, unsigned long n) {
  __asm__ volatile("cld; rep insl" : "+D"(buf), "+c"(n) : "d"(port) : "memory");
}
static inline unsigned long irq_save(void) {
  unsigned long f;
  __asm__ volatile("pushfl; popl %0; cli" : "=r"(f) : : "memory");
  return f;
}
static inline void irq_restore(unsigned long f) { __asm__ volatile("pushl %0; popfl" : : "r"(f) : "memory", "cc"); }

struct desc {
  unsigned short limit;
  unsigned long base;
} __attribute__((packed));

unsigned long pagedir[1024] __attribute__((aligned(4096)));
volatile unsigned char mmio[4096];
unsigned char buffer[512];

void load_tables(struct desc *gdt, struct desc *idt, unsigned short tss) {
  __asm__ volatile("lgdt %0; lidt %1; ltr %2" : : "m"(*gdt), "m"(*idt), "r"(tss));
  __asm__ volatile("ljmp $0x08, $1f; 1: movw %w0, %%ds; movw %w0, %%es; movw %w0, %%ss" : : "r"(0x10));
}

unsigned long kernel_main(unsigned long x) {
  unsigned long f = irq_save();
  write_cr3((unsigned long)pagedir);
  ab_pte_set(&pagedir[1], x | 3);
  ab_pgd_set(&pagedir[2], x | 7);
  unsigned long e = ab_pte_read(&pagedir[1]) + ab_pgd_read(&pagedir[2]) + ab_pte_test_clear(&pagedir[1]);
  ab_mmio_write32(mmio, e);
  ab_mmio_write16(mmio + 4, 1);
  ab_mmio_write8(mmio + 6, 2);
  e += ab_mmio_read32(mmio) + ab_mmio_read16(mmio + 4) + ab_mmio_read8(mmio + 6);
  for (int i = 0; i < 4; i++) outb(0x3f8, (unsigned char)('a' + i));
  e += inb(0x60);
  insl(0x1f0, buffer, sizeof buffer / 4);
  if (read_cr0() & 1) __asm__ volatile("invlpg (%0)" : : "r"(x) : "memory");
  irq_restore(f);
  for (;;) __asm__ volatile("sti; hlt");
  return e;
}

void _start(void) { kernel_main(0x1000); }
