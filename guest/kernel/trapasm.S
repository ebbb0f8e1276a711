/*
 * Interrupt and exception entry. Each vector has a stub that makes the stack look the same
 * (an error code, real or a dummy 0, then the vector number) and jumps to alltraps, which
 * saves the rest of the user registers as a struct trapframe (trap.h) and calls trap().
 */
#include "mmu.h"

/* Vectors for which the CPU pushes an error code (SDM vol. 3A, table 6-1). */
#define HAS_ERR(n) ((n) == 8 || ((n) >= 10 && (n) <= 14) || (n) == 17)

.macro vector n
  .text
  .globl vector\n
vector\n:
  .if !HAS_ERR(\n)
    pushl $0
  .endif
  pushl $\n
  jmp alltraps
  .section .rodata
  .long vector\n
.endm

.section .rodata
.balign 4
.globl trap_vectors
trap_vectors:
  .altmacro
  .set n, 0
  .rept 256
    vector %n
    .set n, n + 1
  .endr
  .noaltmacro

.text
.globl alltraps
alltraps:
  pushl %ds
  pushl %es
  pushl %fs
  pushl %gs
  pushal
  /* Ring 3 may have left anything in the data segment registers: load the kernel's. */
  movw $KDATA_SEL, %ax
  movw %ax, %ds
  movw %ax, %es
  movw %ax, %fs
  movw %ax, %gs
  pushl %esp
  call trap
  addl $4, %esp

/* Also where a new process starts: swtch() returns here with %esp at its trapframe. */
.globl trapret
trapret:
  popal
  popl %gs
  popl %fs
  popl %es
  popl %ds
  addl $8, %esp                   /* vector number and error code */
  iret
