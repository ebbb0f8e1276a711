/* The frame trapasm.S builds on the kernel stack for every interrupt, exception and syscall. */
#ifndef GUEST_TRAP_H
#define GUEST_TRAP_H

#include "types.h"

struct trapframe {
  /* pushal */
  u32 edi, esi, ebp, oesp, ebx, edx, ecx, eax;
  /* segment registers, pushed by alltraps */
  u32 gs, fs, es, ds;
  u32 trapno;
  /* pushed by the CPU (err by the stub when the CPU does not push one) */
  u32 err;
  u32 eip, cs, eflags;
  /* pushed by the CPU only when the trap came from ring 3 */
  u32 esp, ss;
};

/* Exception vectors (SDM vol. 3A, table 6-1). */
#define T_DIVIDE 0
#define T_DEBUG 1
#define T_NMI 2
#define T_BRKPT 3
#define T_OFLOW 4
#define T_BOUND 5
#define T_ILLOP 6
#define T_DEVICE 7
#define T_DBLFLT 8
#define T_TSS 10
#define T_SEGNP 11
#define T_STACK 12
#define T_GPFLT 13
#define T_PGFLT 14
#define T_FPERR 16
#define T_ALIGN 17
#define T_MCHK 18
#define T_SIMDERR 19

#define T_IRQ0 32 /* the PIC delivers IRQ n at vector 32 + n */
#define T_SYSCALL 0x80

#define IRQ_TIMER 0
#define IRQ_COM1 4
#define IRQ_SPURIOUS_MASTER 7
#define IRQ_SPURIOUS_SLAVE 15

#endif
