/*
 * The kernel's virtual address map.
 *
 *   0x00000000 - 0xBFFFFFFF  user space of the current process (programs at 0x00400000,
 *                            demand-zero heap and stack, see syscall.h)
 *   0xC0000000 - 0xEFFFFFFF  all physical memory below 768 MB, mapped one-to-one
 *                            (the kernel image is at 0xC0100000, loaded at 1 MB)
 *   0xF0000000 - 0xF03FFFFF  device MMIO mapped by ioremap (uncached)
 *   0xF0400000 - 0xF0400FFF  one scratch page the self-test remaps
 *   0xFC000000 - 0xFFFFFFFF  never touched: the in-place VMM lives there in virtualized runs
 *                            (DESIGN.md decision 6)
 */
#ifndef GUEST_MEMLAYOUT_H
#define GUEST_MEMLAYOUT_H

#define KERNBASE 0xC0000000u
#define KERNLINK 0xC0100000u   /* where the kernel is linked */
#define PHYS_MAX 0x30000000u   /* physical memory beyond this is ignored */
#define IOREMAP_BASE 0xF0000000u
#define IOREMAP_END 0xF0400000u
#define SCRATCH_VA 0xF0400000u
#define BOOT_MAPPED 0x01000000u /* what entry.S's boot page tables map */
#define VMM_RESERVED 0xFC000000u

#define V2P(a) ((u32)(a) - KERNBASE)
#define P2V(a) ((void *)((u32)(a) + KERNBASE))

#endif
