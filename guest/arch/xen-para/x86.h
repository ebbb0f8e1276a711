/*
 * The privileged operations the shared kernel sources use, para-virtualized: the kernel runs in
 * ring 1, where they would fault, so each one is what XenoLinux's asm/system.h makes of it.
 * The interrupt flag is virtual: shared info's upcall mask (xen.h); the interrupt descriptor
 * table becomes the hypervisor's trap table; CR2 is in shared info; INVLPG is a hypercall.
 * There is no port I/O here on purpose: the domain has no I/O ports, so a shared file that
 * still uses in/out (the PC's devices) does not compile into this port.
 */
#ifndef GUEST_X86_H
#define GUEST_X86_H

#include "types.h"
#include "xen.h"

#define EFLAGS_IF 0x200u

#define barrier() __asm__ __volatile__("" : : : "memory")

/* evtchn.c: have pending events upcalled now (a hypercall: the upcall comes on its way back). */
void xen_force_callback(void);
/* evtchn.c: hlt with interrupts on: SCHEDOP_block unmasks events and sleeps until one comes. */
void xen_idle(void);
/* gdt.c: an IDT of interrupt gates as the hypervisor's trap table (set_trap_table). */
void xen_load_idt(const void *idt, u16 size);

static inline void cli(void) {
  xen_shared.upcall_mask = 1;
  barrier();
}
/* Events that came while masked stay pending: let the hypervisor deliver them now, as a real
 * CPU would take a pending interrupt right after sti. */
static inline void sti(void) {
  barrier();
  xen_shared.upcall_mask = 0;
  barrier();
  if (xen_shared.upcall_pending) xen_force_callback();
}
static inline void sti_hlt(void) { xen_idle(); }

/* EFLAGS with the virtual IF in place of the real one (always set in ring 1). */
static inline u32 read_eflags(void) {
  u32 f;
  __asm__ __volatile__("pushfl; popl %0" : "=r"(f));
  return (f & ~EFLAGS_IF) | (xen_shared.upcall_mask ? 0 : EFLAGS_IF);
}
/* Only IF is saved and restored (XenoLinux's local_irq_save keeps just the mask). */
static inline u32 irq_save(void) {
  u32 f = xen_shared.upcall_mask ? 0 : EFLAGS_IF;
  cli();
  return f;
}
static inline void irq_restore(u32 f) {
  if (f & EFLAGS_IF) sti();
  else cli();
}

static inline void lidt(void *base, u16 size) { xen_load_idt(base, size); }

/* CR0 is the hypervisor's: it runs every domain with PE, ET, WP and PG (builder.ts); a PV
 * kernel may change only TS (fpu_taskswitch), which this kernel never uses. WP, which main.c
 * asks for, is on already; NE only chooses how x87 errors are reported. */
#define XEN_GUEST_CR0 0x80010011u
static inline u32 rcr0(void) { return XEN_GUEST_CR0; }
static inline void lcr0(u32 v) { (void)v; }

/* Ring 1 cannot read CR2: the hypervisor leaves the faulting address in shared info. */
static inline u32 rcr2(void) { return xen_shared.cr2; }

static inline void invlpg(u32 va) {
  struct mmuext_op op = {MMUEXT_INVLPG_LOCAL, va, 0};
  HYPERVISOR_mmuext_op(&op, 1);
}

#endif
