/*
 * A port's network device (both ports compile this file, guest/Makefile's arch/common): the
 * port's custom virtual driver (its netfront.c) when the toolstack connected the VM to a driver
 * VM (on the command line: `netfront=` on xen, `l4net=` on l4), else the shared DP83820 driver
 * for a NIC the VM was given, as XenoLinux and L4Ka::Linux have both compiled in and probe. The
 * shared driver is compiled here unchanged under other names, and the DP83820 driver's interface
 * (defs.h), which the network stack and the translation module call, switches between the two.
 */
#define dp83820_init pt_init
#define dp83820_announce pt_announce
#define dp83820_send pt_send
#define dp83820_set_receiver pt_set_receiver
#define dp83820_log_frame pt_log_frame
#define dp83820_mac pt_mac
#define dp83820_stats(...) pt_stats(__VA_ARGS__) /* function-like: not the struct's tag */
#define dp83820_intr pt_intr
#define dp83820_irq pt_irq
#define dp83820_bridge_mode pt_bridge_mode
#define dp83820_send_frags pt_send_frags
#define dp83820_tx_reap pt_tx_reap
#include "dp83820.c" /* the shared driver (the build's link to kernel/dp83820.c) */
#undef dp83820_init
#undef dp83820_announce
#undef dp83820_send
#undef dp83820_set_receiver
#undef dp83820_log_frame
#undef dp83820_mac
#undef dp83820_stats
#undef dp83820_intr
#undef dp83820_irq
#undef dp83820_bridge_mode
#undef dp83820_send_frags
#undef dp83820_tx_reap

#include "netfront.h"

static int front; /* the custom driver is the device */

void dp83820_init(void) {
  if (netfront_init()) front = 1;
  else pt_init();
}

void dp83820_announce(void) {
  if (front) netfront_announce();
  else pt_announce();
}

int dp83820_send(const void *frame, u32 len) {
  return front ? netfront_send(frame, len) : pt_send(frame, len);
}

void dp83820_set_receiver(void (*receive)(const u8 *frame, u32 len)) {
  if (front) netfront_set_receiver(receive);
  else pt_set_receiver(receive);
}

void dp83820_log_frame(const u8 *frame, u32 len) {
  if (front) netfront_log_frame(frame, len);
  else pt_log_frame(frame, len);
}

const u8 *dp83820_mac(void) { return front ? netfront_mac() : pt_mac(); }

const struct dp83820_stats *dp83820_stats(void) { return front ? netfront_stats() : pt_stats(); }

/* The translation module's calls: a DP83820's only (with the custom driver, there is none). */
void dp83820_intr(void) { pt_intr(); }
int dp83820_irq(void) { return front ? -1 : pt_irq(); }
void dp83820_bridge_mode(void) { pt_bridge_mode(); }
int dp83820_send_frags(const u32 *phys, const u32 *len, int n) { return pt_send_frags(phys, len, n); }
int dp83820_tx_reap(void) { return pt_tx_reap(); }

/* What both ports' custom drivers share: the DP83820 driver's announcement, once the driver is
 * up, and the log of the first frames when the stack takes none. */
void netfront_announce(void) {
  const u8 *mac = netfront_mac();
  if (!mac) return;
  u8 f[60];
  memset(f, 0, sizeof f);
  memset(f, 0xff, 6);
  memcpy(f + 6, mac, 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  memcpy(f + 14, "previrt guest up", 16);
  netfront_send(f, sizeof f);
}

void netfront_log_frame(const u8 *f, u32 len) {
  if (netfront_stats()->rx_frames <= 3)
    kprintf("netfront: frame %u: %u bytes from %02x:%02x:%02x:%02x:%02x:%02x type %04x\n",
            netfront_stats()->rx_frames, len, f[6], f[7], f[8], f[9], f[10], f[11],
            f[12] << 8 | f[13]);
}
