/*
 * The tick on L4, in place of the 8254 (kernel/timer.c): no device, the kernel's receive
 * timeout. Every wait of the kernel thread (task.c) times out at the next tick, one period
 * (1 ms) after the last, which task.c then delivers as IRQ 0 would come on the PC; a tick that
 * is already due when the kernel is about to wait is delivered without waiting, so a stream of
 * device interrupts cannot hold the tick back. Time is the TSC, which counts the simulated
 * clock's cycles at the rate the kernel interface page gives (RDTSC is not privileged on the
 * microkernel, CR4.TSD clear). Missed ticks are not made up, as a PIT's are not.
 */
#include "defs.h"
#include "l4para.h"
#include "trap.h"
#include "x86.h"

static u32 ticks;
static u32 boot_epoch;
static u32 cycles_per_us, cycles_per_tick;
static u64 next_tick;

void timer_init(void) {
  u32 hz = *(volatile u32 *)(L4_KIP + L4_KIP_CLOCK_HZ);
  cycles_per_us = hz / 1000000;
  cycles_per_tick = hz / HZ;
  next_tick = l4_cycles() + cycles_per_tick;
  irq_register(IRQ_TIMER, timer_intr);
}

/* A tick is due: the next one is set, skipping any that passed unseen. */
int l4_tick_due(void) {
  if (!cycles_per_tick) return 0;
  u64 now = l4_cycles();
  if (now < next_tick) return 0;
  while (next_tick <= now) next_tick += cycles_per_tick;
  return 1;
}

/* The receive timeout that ends at the next tick (rounded up to a microsecond), or never
 * before timer_init. */
word l4_tick_timeout(void) {
  if (!cycles_per_tick) return L4_NEVER;
  u64 now = l4_cycles();
  u32 left = now < next_tick ? (u32)(next_tick - now) : 0;
  u32 us = (left + cycles_per_us - 1) / cycles_per_us, e = 0;
  if (us == 0) return L4_ZERO;
  while (us > 0x3ff) us = (us + 1) >> 1, e++;
  return (e << 10) | us;
}

void timer_intr(void) {
  ticks++;
  wakeup(&ticks);
  net_tick(ticks);
}

u32 ticks_now(void) { return ticks; }

void *ticks_chan(void) { return &ticks; }

void clock_init(u32 epoch) { boot_epoch = epoch; }

u32 clock_seconds(void) { return boot_epoch + ticks / HZ; }
