/*
 * The interrupt descriptor table and the one C function every interrupt, exception and
 * system call arrives at (SDM vol. 3A, ch. 6 "Interrupt and exception handling").
 */
#include "defs.h"
#include "mmu.h"
#include "proc.h"
#include "syscall.h"
#include "trap.h"
#include "x86.h"

struct gatedesc {
  u16 off_lo, sel;
  u8 zero, type_attr;
  u16 off_hi;
} __attribute__((packed));

static struct gatedesc idt[256];
static void (*irq_handlers[16])(void); /* drivers' handlers, by IRQ line */

#define GATE_INTR32 0x0e /* interrupt gate: the CPU clears IF, so the kernel runs with IRQs off */
#define GATE_PRESENT 0x80

static void set_gate(int n, u32 handler, int dpl) {
  idt[n].off_lo = handler & 0xffff;
  idt[n].sel = KCODE_SEL;
  idt[n].zero = 0;
  idt[n].type_attr = (u8)(GATE_PRESENT | (dpl << 5) | GATE_INTR32);
  idt[n].off_hi = handler >> 16;
}

void idt_init(void) {
  for (int i = 0; i < 256; i++) set_gate(i, trap_vectors[i], 0);
  set_gate(T_SYSCALL, trap_vectors[T_SYSCALL], 3); /* the only gate ring 3 may use */
  lidt(idt, sizeof idt);
}

/* A driver's interrupt handler; the line is unmasked at the PIC. One handler per line. */
int irq_register(int irq, void (*handler)(void)) {
  if (irq < 0 || irq >= 16 || irq_handlers[irq]) return -1;
  irq_handlers[irq] = handler;
  pic_enable(irq);
  return 0;
}

static const char *trap_name(u32 n) {
  static const char *names[] = {"divide error", "debug", "NMI", "breakpoint", "overflow",
                                "bound", "invalid opcode", "device not available",
                                "double fault", "coprocessor overrun", "invalid TSS",
                                "segment not present", "stack fault", "general protection",
                                "page fault", "reserved", "x87 error", "alignment check",
                                "machine check", "SIMD error"};
  return n < sizeof names / sizeof names[0] ? names[n] : "unknown trap";
}

/* A fault in ring 3 that the kernel cannot fix ends that process; the kernel goes on. */
static void kill_faulting(struct trapframe *tf) {
  struct proc *p = myproc();
  kprintf("kernel: pid %d (%s): %s at eip %x", p->pid, p->name, trap_name(tf->trapno), tf->eip);
  if (tf->trapno == T_PGFLT) kprintf(", address %x, error %x", rcr2(), tf->err);
  kprintf(": killed\n");
  proc_exit(EXIT_FAULT(tf->trapno));
}

static void page_fault(struct trapframe *tf) {
  u32 va = rcr2();
  if (!(tf->cs & 3)) {
    panic("page fault in the kernel at eip %x, address %x, error %x", tf->eip, va, tf->err);
  }
  /* A not-present fault in a demand-zero region gets a fresh zero page; nothing else is
   * fixable. */
  if (!(tf->err & PF_P) && uvm_demand_zero(myproc()->pgdir, va) == 0) return;
  kill_faulting(tf);
}

void trap(struct trapframe *tf) {
  struct proc *p = myproc();
  if (tf->trapno == T_SYSCALL) {
    syscall(tf);
  } else if (tf->trapno == T_PGFLT) {
    page_fault(tf);
  } else if (tf->trapno >= T_IRQ0 && tf->trapno < T_IRQ0 + 16) {
    int irq = tf->trapno - T_IRQ0;
    if (pic_spurious(irq)) return;
    if (irq_handlers[irq]) irq_handlers[irq]();
    pic_eoi(irq);
    /* Preemption: a tick that interrupts ring 3 ends that process's time slice. */
    if (irq == IRQ_TIMER && p && p->state == RUNNING && (tf->cs & 3)) yield();
  } else if (tf->cs & 3) {
    kill_faulting(tf);
  } else {
    panic("%s (vector %u, error %x) in the kernel at eip %x", trap_name(tf->trapno), tf->trapno,
          tf->err, tf->eip);
  }
  /* Back to ring 3 only if the process has not been killed meanwhile. */
  if (p && p->killed && (tf->cs & 3)) proc_exit(p->killed);
}

/* Another handler for a line already registered (a module that wraps a driver's handler). */
void irq_replace(int irq, void (*handler)(void)) {
  if (irq >= 0 && irq < 16) irq_handlers[irq] = handler;
}
