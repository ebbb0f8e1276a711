/*
 * The privileged operations the shared kernel sources use, para-virtualized for L4: the kernel
 * is an ordinary ring-3 L4 thread, as L4Ka::Linux's is. Nothing interrupts it: interrupts and
 * its processes' traps are messages it takes when it waits (task.c), so the interrupt flag is
 * a flag that only says whether the kernel would take them (as L4Ka::Linux's virtual IF), and
 * `sti; hlt` is that wait. There is no IDT (exceptions come as IPC), no CR0 of its own, and
 * CR2 is the address of the page-fault message being handled. There is no port I/O here on
 * purpose: a shared file that still uses in/out (the PC's devices) does not compile.
 */
#ifndef GUEST_X86_H
#define GUEST_X86_H

#include "types.h"

#define EFLAGS_IF 0x200u

#define barrier() __asm__ __volatile__("" : : : "memory")

extern int l4_virtual_if; /* task.c */
extern u32 l4_fault_address;

/* task.c: wait for the next interrupt (a message, or the tick's timeout) and handle it. */
void l4_idle(void);

static inline void cli(void) {
  l4_virtual_if = 0;
  barrier();
}
static inline void sti(void) {
  barrier();
  l4_virtual_if = 1;
}
static inline void sti_hlt(void) {
  sti();
  l4_idle();
}

static inline u32 read_eflags(void) {
  u32 f;
  __asm__ __volatile__("pushfl; popl %0" : "=r"(f));
  return (f & ~EFLAGS_IF) | (l4_virtual_if ? EFLAGS_IF : 0);
}
static inline u32 irq_save(void) {
  u32 f = l4_virtual_if ? EFLAGS_IF : 0;
  cli();
  return f;
}
static inline void irq_restore(u32 f) {
  if (f & EFLAGS_IF) sti();
  else cli();
}

/* Exceptions are messages to the pager (task.c), not gates: nothing to load. */
static inline void lidt(void *base, u16 size) { (void)base, (void)size; }

/* The microkernel's CR0 (PE, ET, WP, PG): read-only pages bind the kernel too (CR0.WP). */
#define L4_GUEST_CR0 0x80010011u
static inline u32 rcr0(void) { return L4_GUEST_CR0; }
static inline void lcr0(u32 v) { (void)v; }

static inline u32 rcr2(void) { return l4_fault_address; }

/* vm.c mirrors every entry change with Unmap, which invalidates the TLB entries it removes. */
static inline void invlpg(u32 va) { (void)va; }

#endif
