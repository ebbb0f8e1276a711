/*
 * Event channels in place of the PC's two 8259s (kernel/pic.c), as XenoLinux's evtchn.c maps
 * them onto Linux's IRQ numbers: each source the kernel registers (irq_register, trap.c) is
 * bound to an event channel and keeps its PC IRQ number, so trap.c dispatches events as it
 * dispatches interrupts. IRQ 0, the timer, is VIRQ_TIMER; IRQ 4, the console, is the console
 * ring's channel (start_info); any other line is a physical IRQ of a device the domain was
 * granted (bind_pirq), unless the kernel made the line's channel itself (evtchn_irq_port: the
 * custom network driver's, netfront.c). Like the PIC, which presents one vector at a time, an upcall takes one
 * event into trap(); the others stay pending, and trapret (trapasm.S) takes them in turn before
 * events are turned on again.
 */
#include "defs.h"
#include "mmu.h"
#include "trap.h"
#include "x86.h"

void xen_upcall(void);   /* trapasm.S */
void xen_failsafe(void); /* trapasm.S */

static u8 irq_of_port[NR_EVENT_CHANNELS]; /* IRQ + 1, 0 for a port nobody bound */
static u32 port_of_irq[16];
static u16 pirq_lines; /* IRQs that are physical lines: their channel's unmask is their EOI */
static u32 own_port[16]; /* IRQs whose channel the kernel made itself (evtchn_irq_port) */

void evtchn_irq_port(int irq, u32 port) {
  if (irq >= 0 && irq < 16) own_port[irq] = port;
}

void pic_init(void) {
  /* Every channel masked until its IRQ is registered, as the PIC's mask register starts. */
  for (int w = 0; w < NR_EVENT_CHANNELS / 32; w++) xen_shared.evtchn_mask[w] = ~0u;
  if (HYPERVISOR_set_callbacks(KCODE_SEL, (u32)xen_upcall, (u32)xen_failsafe) < 0)
    panic("set_callbacks refused");
}

/* Clears the mask and re-raises the event if it came while masked; for a physical IRQ, the
 * hypervisor unmasks the line, which it masked when the device interrupted. */
static void unmask(u32 port) {
  struct evtchn_port p = {port};
  HYPERVISOR_event_channel_op(EVTCHNOP_unmask, &p);
}

void pic_enable(int irq) {
  int port = 0;
  if (irq == IRQ_TIMER) {
    struct evtchn_bind_virq b = {VIRQ_TIMER, 0, 0};
    if (HYPERVISOR_event_channel_op(EVTCHNOP_bind_virq, &b) == 0) port = b.port;
  } else if (irq == IRQ_COM1) {
    port = xen_start_info->console_evtchn;
  } else if (own_port[irq]) {
    port = own_port[irq]; /* a virtual device's channel (netfront.c) */
  } else {
    struct evtchn_bind_pirq b = {(u32)irq, 0, 0};
    if (HYPERVISOR_event_channel_op(EVTCHNOP_bind_pirq, &b) == 0) port = b.port;
    pirq_lines |= 1 << irq;
  }
  if (port <= 0 || port >= NR_EVENT_CHANNELS) {
    kprintf("evtchn: no event channel for IRQ %d\n", irq);
    return;
  }
  irq_of_port[port] = (u8)(irq + 1);
  port_of_irq[irq] = port;
  unmask(port);
}

/* The end of an interrupt: only a physical line needs the hypervisor (XenoLinux's end_pirq);
 * a virtual event's pending bit was cleared when it was taken. */
void pic_eoi(int irq) {
  if (pirq_lines & (1 << irq)) unmask(port_of_irq[irq]);
}

int pic_spurious(int irq) {
  (void)irq;
  return 0; /* an event channel has no spurious interrupts */
}

static u32 ready(u32 w) { return xen_shared.evtchn_pending[w] & ~xen_shared.evtchn_mask[w]; }

/* xen_upcall and trapret: the lowest pending, unmasked event, as an interrupt of `tf`. */
void evtchn_upcall(struct trapframe *tf) {
  xen_shared.upcall_pending = 0;
  for (u32 w = 0; w < NR_EVENT_CHANNELS / 32; w++) {
    u32 bits = ready(w);
    if (!bits) continue;
    u32 bit = __builtin_ctz(bits), port = w * 32 + bit;
    /* Atomic: the hypervisor sets pending bits between any two of our instructions. */
    __asm__ __volatile__("lock btrl %1, %0" : "+m"(xen_shared.evtchn_pending[w]) : "r"(bit));
    for (u32 v = 0; v < NR_EVENT_CHANNELS / 32; v++)
      if (ready(v)) xen_shared.upcall_pending = 1; /* more: look again before events go on */
    int irq = irq_of_port[port] - 1;
    if (irq < 0) return; /* an event nobody asked for */
    tf->trapno = T_IRQ0 + irq;
    trap(tf);
    return;
  }
}

/* A hypercall on whose way back the hypervisor upcalls the events that are pending. */
void xen_force_callback(void) { HYPERVISOR_xen_version(0); }

/* hlt with interrupts on: SCHEDOP_block unmasks events and sleeps until one is pending (at
 * once if one is); its upcall comes on the way back. What the console holds goes out first. */
void xen_idle(void) {
  xencons_flush();
  HYPERVISOR_sched_op(SCHEDOP_block, 0);
}
