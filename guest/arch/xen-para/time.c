/*
 * Time on the hypervisor, in place of the PC's 8254 (kernel/timer.c) and CMOS clock
 * (kernel/cmos.c). The tick is VIRQ_TIMER, IRQ 0 (evtchn.c), armed one period ahead with
 * set_timer_op at every tick, as XenoLinux's timer_interrupt does; a tick that comes late is
 * counted once. The wall clock is shared info's (wc_sec at system time 0) plus system time.
 */
#include "defs.h"
#include "trap.h"
#include "x86.h"

#define TICK_NS (1000000000u / HZ)

static u32 ticks;
static u32 boot_epoch;
static u64 deadline; /* system time of the next tick */

/* vcpu_time_info: a consistent copy while the hypervisor does not update it (its version). */
u64 xen_system_time(void) {
  u32 v;
  u64 t;
  do {
    v = xen_shared.time_version;
    barrier();
    t = xen_shared.system_time;
    barrier();
  } while ((v & 1) || v != xen_shared.time_version);
  return t;
}

static void tick(void) {
  u64 now = xen_system_time();
  do deadline += TICK_NS;
  while (deadline <= now);
  HYPERVISOR_set_timer_op(deadline);
  timer_intr();
}

void timer_init(void) {
  irq_register(IRQ_TIMER, tick);
  deadline = xen_system_time() + TICK_NS;
  HYPERVISOR_set_timer_op(deadline);
}

void timer_intr(void) {
  ticks++;
  wakeup(&ticks);
  net_tick(ticks); /* TCP's delayed ACK and FIN timers */
}

u32 ticks_now(void) { return ticks; }

/* sleep_on(&ticks) waits for the next tick; proc.c uses that for sleep(). */
void *ticks_chan(void) { return &ticks; }

void clock_init(u32 epoch) { boot_epoch = epoch; }

u32 clock_seconds(void) { return boot_epoch + ticks / HZ; }

/* Seconds since 1970: the wall clock at system time 0 and whole seconds since (no libgcc for
 * the 64-bit division: divl, whose quotient fits for the next 136 years of system time). */
u32 cmos_time(void) {
  u64 ns = xen_system_time();
  u32 s, r;
  __asm__("divl %4" : "=a"(s), "=d"(r) : "a"((u32)ns), "d"((u32)(ns >> 32)), "rm"(1000000000u));
  return xen_shared.wc_sec + s;
}
