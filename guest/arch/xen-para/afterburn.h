/*
 * The accessors the shared sources call by the annotation header's names (the DP83820 driver's
 * MMIO, the self-test's page-table entries), written by hand for Xen, as XenoLinux's asm/io.h
 * and asm/pgtable.h are: MMIO is a plain access (ioremap maps the registers as granted device
 * memory); a page-table entry holds a machine address, so a write translates the frame and goes
 * through mmu_update, a read translates it back (vm.c). Nothing is annotated: no tool rewrites
 * this kernel.
 */
#ifndef PREVIRT_AFTERBURN_H
#define PREVIRT_AFTERBURN_H

/* vm.c: entries of live page tables (every table this port writes through here is live). */
void xen_pte_write(volatile unsigned long *p, unsigned long v);
unsigned long xen_pte_read(volatile unsigned long *p);
unsigned long xen_pte_clear(volatile unsigned long *p);

static inline void ab_pte_set(volatile unsigned long *p, unsigned long v) { xen_pte_write(p, v); }
static inline unsigned long ab_pte_read(volatile unsigned long *p) { return xen_pte_read(p); }
static inline unsigned long ab_pte_test_clear(volatile unsigned long *p) { return xen_pte_clear(p); }
static inline unsigned long ab_pgd_read(volatile unsigned long *p) { return xen_pte_read(p); }

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
