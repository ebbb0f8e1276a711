/* The 8254 programmable interval timer, channel 0 on IRQ 0: the scheduler's tick (Intel 8254
 * datasheet; input clock 1.193182 MHz). */
#include "defs.h"
#include "trap.h"
#include "x86.h"

#define PIT_CH0 0x40
#define PIT_MODE 0x43
#define PIT_HZ 1193182
#define MODE_CH0_LOHI_RATEGEN 0x34 /* channel 0, low then high byte, mode 2 */

static u32 ticks;
static u32 boot_epoch; /* CMOS time when the tick started */

void timer_init(void) {
  u32 divisor = PIT_HZ / HZ;
  outb(PIT_MODE, MODE_CH0_LOHI_RATEGEN);
  outb(PIT_CH0, divisor & 0xff);
  outb(PIT_CH0, divisor >> 8);
  irq_register(IRQ_TIMER, timer_intr);
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

/* Wall-clock seconds: the CMOS time read at boot plus the ticks since. */
u32 clock_seconds(void) { return boot_epoch + ticks / HZ; }
