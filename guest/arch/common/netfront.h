/* A port's netfront.c: its custom virtual network driver, under the DP83820 driver's interface
 * (defs.h), which netdev.c switches between. */
#ifndef PARA_NETFRONT_H
#define PARA_NETFRONT_H

#include "defs.h"

int netfront_init(void); /* 1 if the command line asks for it (netfront=), else 0 */
void netfront_announce(void);
int netfront_send(const void *frame, u32 len);
void netfront_set_receiver(void (*receive)(const u8 *frame, u32 len));
void netfront_log_frame(const u8 *frame, u32 len);
const u8 *netfront_mac(void);
const struct dp83820_stats *netfront_stats(void);

#endif
