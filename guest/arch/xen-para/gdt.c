/*
 * Descriptor tables on the hypervisor (in place of kernel/gdt.c). The GDT is the hypervisor's,
 * with flat ring-1 and ring-3 segments (mmu.h); previrt's xen has no set_gdt, and entry.S
 * already runs on its selectors. There is no TSS: stack_switch names the ring-1 stack for
 * events from ring 3. The kernel's IDT (trap.c) becomes the hypervisor's trap table.
 */
#include "defs.h"
#include "mmu.h"
#include "x86.h"

void gdt_init(void) {}

/* The stack for events from ring 3: the current process's. The scheduler picks the same
 * process again after every idle wait, so only a change costs a hypercall. */
void tss_set_kstack(u32 esp0) {
  static u32 current;
  if (esp0 == current) return;
  current = esp0;
  if (HYPERVISOR_stack_switch(KDATA_SEL, esp0) < 0) panic("stack_switch refused");
}

struct gatedesc {
  u16 off_lo, sel;
  u8 zero, type_attr;
  u16 off_hi;
} __attribute__((packed));

#define GATE_PRESENT 0x80
#define GATE_INTR32 0x0e

/* lidt: every present gate of the table (SDM 3A 6.11) as a trap-table entry with the same
 * vector, selector, handler and DPL; an interrupt gate masks events on entry, as it clears IF. */
void xen_load_idt(const void *idt, u16 size) {
  static struct trap_info table[256 + 1];
  const struct gatedesc *g = idt;
  int n = 0;
  for (int v = 0; v < 256 && (v + 1) * 8 <= size; v++) {
    if (!(g[v].type_attr & GATE_PRESENT)) continue;
    table[n].vector = (u8)v;
    table[n].flags = (u8)(((g[v].type_attr >> 5) & 3) |
                          ((g[v].type_attr & 0x0f) == GATE_INTR32 ? TI_MASK_EVENTS : 0));
    table[n].cs = g[v].sel;
    table[n].address = g[v].off_lo | (u32)g[v].off_hi << 16;
    n++;
  }
  table[n].address = 0;
  if (HYPERVISOR_set_trap_table(table) < 0) panic("set_trap_table refused");
}
