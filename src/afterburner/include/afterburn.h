/*
 * afterburn.h — previrt's annotation header for what no tool can find by looking at one
 * instruction: page-table entry accesses and device MMIO (DESIGN.md decision 8).
 *
 * Each helper emits the real instruction (so the binary runs unchanged on raw hardware), NOP
 * padding after it (room for the in-place VMM to write a call), and a {start, end} record in a
 * section per kind. Registers are fixed so the VMM knows where the operands are:
 *   pointer / MMIO address in %edx, value in %eax.
 * Sites:  .afterburn.pte_set   movl %eax,(%edx)        (page-table entry, level 1)
 *         .afterburn.pgd_set   movl %eax,(%edx)        (page-directory entry, level 2)
 *         .afterburn.pte_read  movl (%edx),%eax
 *         .afterburn.pgd_read  movl (%edx),%eax
 *         .afterburn.pte_test_clear  xchgl %eax,(%edx) (with %eax = 0: read and clear)
 *         .afterburn.mmio_read  movzbl/movzwl/movl (%edx),%eax
 *         .afterburn.mmio_write movb %al/movw %ax/movl %eax,(%edx)
 * Its line count is a figure previrt reports.
 */
#ifndef PREVIRT_AFTERBURN_H
#define PREVIRT_AFTERBURN_H

/* 12 bytes of padding as two 6-byte NOPs (SDM Vol. 2B, NOP): explicit, because gas's .nops
 * picks lea-based fillers for -march=i686 and raw hardware would run three instructions. */
#define AB_PAD ".byte 0x66,0x0f,0x1f,0x44,0x00,0x00,0x66,0x0f,0x1f,0x44,0x00,0x00"

/* One annotated site: instruction, padding, record. Numeric labels keep expansions apart. */
#define AB_SITE(kind, insn)                                                   \
  "771:\n\t" insn "\n\t" AB_PAD "\n772:\n\t"                                \
  ".pushsection .afterburn." kind ",\"a\"\n\t.balign 4\n\t"                   \
  ".long 771b\n\t.long 772b\n\t.popsection\n\t"

static inline void ab_pte_set(volatile unsigned long *ptep, unsigned long val) {
  __asm__ __volatile__(AB_SITE("pte_set", "movl %%eax,(%%edx)")
                       : : "a"(val), "d"(ptep) : "memory");
}
static inline void ab_pgd_set(volatile unsigned long *pgdp, unsigned long val) {
  __asm__ __volatile__(AB_SITE("pgd_set", "movl %%eax,(%%edx)")
                       : : "a"(val), "d"(pgdp) : "memory");
}
static inline unsigned long ab_pte_read(volatile unsigned long *ptep) {
  unsigned long v;
  __asm__ __volatile__(AB_SITE("pte_read", "movl (%%edx),%%eax")
                       : "=a"(v) : "d"(ptep) : "memory");
  return v;
}
static inline unsigned long ab_pgd_read(volatile unsigned long *pgdp) {
  unsigned long v;
  __asm__ __volatile__(AB_SITE("pgd_read", "movl (%%edx),%%eax")
                       : "=a"(v) : "d"(pgdp) : "memory");
  return v;
}
/* Atomically read a page-table entry and clear it (returns the old entry). */
static inline unsigned long ab_pte_test_clear(volatile unsigned long *ptep) {
  unsigned long v = 0;
  __asm__ __volatile__(AB_SITE("pte_test_clear", "xchgl %%eax,(%%edx)")
                       : "+a"(v) : "d"(ptep) : "memory");
  return v;
}

static inline unsigned char ab_mmio_read8(volatile void *addr) {
  unsigned long v;
  __asm__ __volatile__(AB_SITE("mmio_read", "movzbl (%%edx),%%eax")
                       : "=a"(v) : "d"(addr) : "memory");
  return (unsigned char)v;
}
static inline unsigned short ab_mmio_read16(volatile void *addr) {
  unsigned long v;
  __asm__ __volatile__(AB_SITE("mmio_read", "movzwl (%%edx),%%eax")
                       : "=a"(v) : "d"(addr) : "memory");
  return (unsigned short)v;
}
static inline unsigned long ab_mmio_read32(volatile void *addr) {
  unsigned long v;
  __asm__ __volatile__(AB_SITE("mmio_read", "movl (%%edx),%%eax")
                       : "=a"(v) : "d"(addr) : "memory");
  return v;
}
static inline void ab_mmio_write8(volatile void *addr, unsigned char v) {
  __asm__ __volatile__(AB_SITE("mmio_write", "movb %%al,(%%edx)")
                       : : "a"(v), "d"(addr) : "memory");
}
static inline void ab_mmio_write16(volatile void *addr, unsigned short v) {
  __asm__ __volatile__(AB_SITE("mmio_write", "movw %%ax,(%%edx)")
                       : : "a"(v), "d"(addr) : "memory");
}
static inline void ab_mmio_write32(volatile void *addr, unsigned long v) {
  __asm__ __volatile__(AB_SITE("mmio_write", "movl %%eax,(%%edx)")
                       : : "a"(v), "d"(addr) : "memory");
}

#endif
