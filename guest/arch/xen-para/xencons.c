/*
 * The console on the hypervisor, in place of the PC's 16550 (kernel/uart.c), under the names
 * the line discipline (kernel/console.c) calls. Output is collected to the end of a line (or
 * 256 bytes, or until the domain blocks) and written with console_io; input comes through the
 * console ring of start_info and its event channel, IRQ 4 (evtchn.c), as xencons reads it.
 */
#include "defs.h"
#include "memlayout.h"
#include "x86.h"

static char out[256];
static u32 nout;
static volatile struct xencons_interface *ring;

void uart_init(void) {
  /* The builder mapped the ring's page with the rest of its pages: find it by its frame. */
  u32 pfn = MACH2PHYS[xen_start_info->console_mfn];
  ring = P2V(pfn << 12);
}

void xencons_flush(void) {
  if (nout == 0) return;
  HYPERVISOR_console_io(CONSOLEIO_write, nout, out);
  nout = 0;
}

void uart_putc(char c) {
  out[nout++] = c;
  if (c == '\n' || nout == sizeof out) xencons_flush();
}

void uart_intr(void) {
  if (!ring) return;
  u32 cons = ring->in_cons, prod = ring->in_prod;
  int full = prod - cons >= sizeof ring->in;
  while (cons != prod) console_rx(ring->in[cons++ % sizeof ring->in]);
  ring->in_cons = cons;
  /* A full ring may have more behind it: a send on its channel makes the hypervisor refill. */
  if (full) {
    struct evtchn_port p = {xen_start_info->console_evtchn};
    HYPERVISOR_event_channel_op(EVTCHNOP_send, &p);
  }
}
