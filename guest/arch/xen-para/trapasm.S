/*
 * Trap and event entry. The hypervisor bounces every exception and INT n to the entry the trap
 * table names (gdt.c made it from the kernel's IDT: these stubs, as on the PC) with the frame a
 * CPU would push, whose EFLAGS.IF is the virtual IF of the interrupted code; every entry masks
 * events, as an interrupt gate clears IF. Events arrive at xen_upcall, with events masked by
 * the hypervisor. Both save a struct trapframe (trap.h) as kernel/trapasm.S does; the way out,
 * trapret, gives the interrupted code its virtual IF back and takes any event that came
 * meanwhile before it returns (XenoLinux's restore_all).
 */
#include "mmu.h"

/* Vectors for which the CPU pushes an error code (SDM vol. 3A, table 6-1). */
#define HAS_ERR(n) ((n) == 8 || ((n) >= 10 && (n) <= 14) || (n) == 17)

/* struct shared_info (xen.h) and struct trapframe (trap.h) offsets. */
#define UPCALL_PENDING 0
#define UPCALL_MASK 1
#define TF_EFLAGS 64
#define EFLAGS_IF 0x200

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

.macro save_frame
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
.endm

.text
.globl alltraps
alltraps:
  save_frame
  pushl %esp
  call trap
  addl $4, %esp
  jmp trapret

/* The event callback (set_callbacks): the first pending event as an interrupt (evtchn.c). */
.globl xen_upcall
xen_upcall:
  pushl $0                        /* error code */
  pushl $0                        /* vector: evtchn_upcall sets it to the event's IRQ */
  save_frame
  pushl %esp
  call evtchn_upcall
  addl $4, %esp
  jmp trapret

/* The failsafe callback: the hypervisor could not load our segments for a return. */
.globl xen_failsafe
xen_failsafe:
  pushl $failsafe_msg
  call panic

/*
 * Also where a new process starts: swtch() returns here with %esp at its trapframe. If the
 * interrupted code ran with events on, turn them on and look for an event that came while they
 * were masked; take it as an interrupt of the same code before returning. An event arriving
 * after the look is upcalled on top of this frame and handled the same way.
 */
.globl trapret
trapret:
  testl $EFLAGS_IF, TF_EFLAGS(%esp)
  jz 2f
1:
  movb $0, xen_shared + UPCALL_MASK
  cmpb $0, xen_shared + UPCALL_PENDING
  je 2f
  movb $1, xen_shared + UPCALL_MASK
  pushl %esp
  call evtchn_upcall
  addl $4, %esp
  jmp 1b
2:
  popal
  popl %gs
  popl %fs
  popl %es
  popl %ds
  addl $8, %esp                   /* vector number and error code */
  iret

.section .rodata
failsafe_msg:
  .asciz "xen: failsafe callback"
