/*
 * Paging constants: the PC's (kernel/mmu.h). The selectors are the microkernel's flat ring-3
 * segments (src/hypervisor/l4/README.md "Memory"), which the kernel and its processes both run
 * on. The kernel's trap frames still tell kernel from user by the selector's privilege level
 * (trap.c), so task.c puts KCODE_SEL, ring 0's code selector, in the frames of interrupts the
 * kernel itself waited for: no code ever runs on it.
 */
#ifndef L4_PARA_MMU_H
#define L4_PARA_MMU_H

#include "../../kernel/mmu.h"

#undef KCODE_SEL
#undef KDATA_SEL
#undef UCODE_SEL
#undef UDATA_SEL
#undef TSS_SEL
#define KCODE_SEL 0x08
#define KDATA_SEL 0x10
#define UCODE_SEL 0x1b
#define UDATA_SEL 0x23

#endif
