/*
 * Paging and segmentation constants: the PC's (kernel/mmu.h), with the hypervisor's selectors.
 * Xen's GDT is the only one (previrt's xen: ring-1 code 0x19, data 0x21, ring-3 code 0x2b,
 * data 0x33, flat 4 GB; src/hypervisor/xen/abi.ts), as XenoLinux's asm/segment.h sets
 * __KERNEL_CS to FLAT_RING1_CS. There is no TSS: stack_switch tells the hypervisor the stack.
 */
#ifndef XEN_PARA_MMU_H
#define XEN_PARA_MMU_H

#include "../../kernel/mmu.h"

#undef KCODE_SEL
#undef KDATA_SEL
#undef UCODE_SEL
#undef UDATA_SEL
#undef TSS_SEL
#define KCODE_SEL 0x19
#define KDATA_SEL 0x21
#define UCODE_SEL 0x2b
#define UDATA_SEL 0x33

/* A page-table entry bit for software (bit 9, SDM 3A Table 4-6): the entry maps device
 * memory, a machine frame with no pseudo-physical one (XenoLinux's _PAGE_IO). */
#define PTE_IO 0x200

#endif
