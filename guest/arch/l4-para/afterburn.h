/*
 * The accessors the shared sources call by the annotation header's names (the DP83820 driver's
 * MMIO, the self-test's page-table entries), written by hand for L4: MMIO is a plain access to
 * the register page the resource monitor maps; the kernel's page tables are its own data, and
 * a write that changes or removes a present entry takes the old frame's mappings away from
 * every L4 space it was mirrored into (vm.c, Unmap), as L4Ka::Linux's set_pte does. Nothing is
 * annotated: no tool rewrites this kernel.
 */
#ifndef PREVIRT_AFTERBURN_H
#define PREVIRT_AFTERBURN_H

void l4_pte_write(volatile unsigned long *p, unsigned long v); /* vm.c */

static inline void ab_pte_set(volatile unsigned long *p, unsigned long v) { l4_pte_write(p, v); }
static inline unsigned long ab_pte_read(volatile unsigned long *p) { return *p; }
static inline unsigned long ab_pte_test_clear(volatile unsigned long *p) {
  unsigned long old = *p;
  l4_pte_write(p, 0);
  return old;
}
static inline unsigned long ab_pgd_read(volatile unsigned long *p) { return *p; }

static inline unsigned char ab_mmio_read8(volatile void *a) { return *(volatile unsigned char *)a; }
static inline unsigned short ab_mmio_read16(volatile void *a) { return *(volatile unsigned short *)a; }
static inline unsigned long ab_mmio_read32(volatile void *a) { return *(volatile unsigned long *)a; }
static inline void ab_mmio_write8(volatile void *a, unsigned char v) { *(volatile unsigned char *)a = v; }
static inline void ab_mmio_write16(volatile void *a, unsigned short v) {
  *(volatile unsigned short *)a = v;
}
static inline void ab_mmio_write32(volatile void *a, unsigned long v) {
  *(volatile unsigned long *)a = v;
}

#endif
