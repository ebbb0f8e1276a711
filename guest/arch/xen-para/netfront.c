/*
 * The custom virtual network driver (issue "reuse", the seed's "custom driver" row): the front
 * end of Xen's split network driver (shared/reference/driver-reuse.md "Xen split drivers"),
 * which reaches the network through a driver VM instead of a NIC. It speaks the one ring page
 * the driver VM's back end serves (src/vmm/backends/xen/netChannel.ts, NetBack): two rings of
 * 64 slots with free-running producer and consumer indices and event thresholds (io/ring.h),
 * one interdomain event channel, grants for everything the back end touches.
 *
 * - Transmit: the frame is copied into a buffer of ours (as the DP83820 driver copies it into
 *   its descriptor's buffer), granted read-only and posted; the back end maps the grant and the
 *   driver VM's NIC sends from our page. Its response ends the grant and frees the slot.
 * - Receive: every free buffer is granted writable and posted; the back end copies a frame
 *   from the wire into the next one (grant copy) and responds; the frame goes up the stack,
 *   the grant ends and the buffer is granted and posted again.
 * - Notifications: a side notifies only when the other side's event index was passed, so a
 *   side still at work is not notified. Posting receive buffers never notifies (netif.h).
 *
 * previrt has no xenstore: the toolstack names the back end's domain and our MAC address on
 * the command line (`netfront=DOMID,MAC`), and finds our two keys itself: the ring is grant
 * reference 1 (RING_REF) and the event channel is our one unbound port for the back end's
 * domain (src/platforms/xenPara.ts). Without `netfront=` the driver stays out of the way and
 * the kernel drives a DP83820 it was granted (netdev.c).
 */
#include "defs.h"
#include "memlayout.h"
#include "mmu.h"
#include "netfront.h"
#include "syscall.h"
#include "trap.h"
#include "x86.h"

#define NETFRONT_IRQ 10 /* the PC IRQ number the event channel takes (evtchn.c) */
#define SLOTS 64
#define RING_REF 1
#define TX_REF 8 /* + slot */
#define RX_REF (TX_REF + SLOTS)
#define BUF_SIZE 2048 /* two buffers a page; a 1514-byte frame fits */
#define MAX_FRAME 1514
#define BACKEND_CONNECTED 1
#define BACKEND_CLOSED 2 /* the toolstack's: the back end is gone, backend_domain is the next */

/* The shared page, as netChannel.ts lays it out. */
struct ring_indices {
  u32 req_prod, req_event, rsp_prod, rsp_event;
};
struct slot {
  u32 w0, w1, w2, w3;
};
struct netif_page {
  struct ring_indices tx, rx;
  u32 backend_state;
  u32 backend_domain; /* written by the toolstack when it restarted the back end */
  u8 pad[0x100 - 0x28];
  /* TX request {ref; offset | flags << 16; id | size << 16}, response {id | status << 16}. */
  struct slot txs[SLOTS];
  /* RX request {id | offset << 16; ref; size}, response {id; status: length, or negative}. */
  struct slot rxs[SLOTS];
};
_Static_assert(__builtin_offsetof(struct netif_page, txs) == 0x100, "netif page layout");
_Static_assert(__builtin_offsetof(struct netif_page, rxs) == 0x500, "netif page layout");

/* Our grant table's first frame, mapped over this page of .bss (as shared info is). */
static volatile struct grant_entry grants[PAGE_SIZE / sizeof(struct grant_entry)]
    __attribute__((aligned(PAGE_SIZE)));

static struct {
  volatile struct netif_page *ring;
  u16 backend;
  u32 port;
  u8 mac[6];
  u8 *txbuf[SLOTS], *rxbuf[SLOTS];
  u32 tx_prod, tx_cons, rx_prod, rx_cons;
  int up; /* the back end said it is connected */
  u32 tx_errors;
  struct dp83820_stats stats;
  void (*receive)(const u8 *frame, u32 len);
} nf;


static u32 mfn_of(const void *va) { return xen_p2m[V2P(va) >> 12]; }

/* An entry of our table for the back end: the frame first, the flags last. */
static void grant(u32 ref, const void *va, int readonly) {
  grants[ref].domid = nf.backend;
  grants[ref].frame = mfn_of(va);
  barrier();
  grants[ref].flags = GTF_permit_access | (readonly ? GTF_readonly : 0);
}

/* Ends access, unless the back end still has it mapped (gnttab_end_foreign_access_ref). */
static int end_grant(u32 ref) {
  u16 flags = grants[ref].flags;
  if (flags & (GTF_reading | GTF_writing)) return 0;
  return __sync_bool_compare_and_swap(&grants[ref].flags, flags, 0);
}

static void notify(void) {
  struct evtchn_port p = {nf.port};
  HYPERVISOR_event_channel_op(EVTCHNOP_send, &p);
}

/* Publishes a producer index; notifies if the other side's event index lies in (old, new]. */
static void push(volatile u32 *prod, volatile u32 *event, u32 value) {
  u32 old = *prod;
  barrier();
  *prod = value;
  barrier();
  if ((u32)(value - *event) < (u32)(value - old)) notify();
}

/* RX buffer `id` granted writable and posted in the next request slot. */
static void post_rx(u32 id) {
  volatile struct slot *s = &nf.ring->rxs[nf.rx_prod % SLOTS];
  grant(RX_REF + id, nf.rxbuf[id], 0);
  s->w0 = id | (V2P(nf.rxbuf[id]) & (PAGE_SIZE - 1)) << 16;
  s->w1 = RX_REF + id;
  s->w2 = BUF_SIZE;
  nf.rx_prod++;
}

/* The back end's TX responses: each ends its grant and frees its slot. */
static void tx_gc(void) {
  for (;;) {
    u32 prod = nf.ring->tx.rsp_prod;
    barrier();
    for (; nf.tx_cons != prod; nf.tx_cons++) {
      u32 slot = nf.tx_cons % SLOTS;
      if ((i32)nf.ring->txs[slot].w0 < 0) nf.tx_errors++; /* status < 0: not sent */
      end_grant(TX_REF + slot);
    }
    nf.ring->tx.rsp_event = nf.tx_cons + 1;
    barrier();
    if (nf.ring->tx.rsp_prod == prod) return; /* RING_FINAL_CHECK_FOR_RESPONSES */
  }
}

/* The back end's RX responses: frames up the stack, their buffers posted again. */
static void rx_reap(void) {
  for (;;) {
    u32 prod = nf.ring->rx.rsp_prod;
    barrier();
    u32 posted = nf.rx_prod;
    for (; nf.rx_cons != prod; nf.rx_cons++) {
      volatile struct slot *s = &nf.ring->rxs[nf.rx_cons % SLOTS];
      u32 id = s->w0 & 0xffff;
      i32 len = (i32)s->w1;
      if (id >= SLOTS) continue; /* the back end's error: not a buffer of ours */
      end_grant(RX_REF + id);
      if (len >= 14 && len <= MAX_FRAME) {
        nf.stats.rx_frames++;
        nf.stats.rx_bytes += len;
        nf.receive(nf.rxbuf[id], len);
      } else {
        nf.stats.rx_errors++;
      }
      post_rx(id);
    }
    if (nf.rx_prod != posted) {
      barrier();
      nf.ring->rx.req_prod = nf.rx_prod;
    }
    nf.ring->rx.rsp_event = nf.rx_cons + 1;
    barrier();
    if (nf.ring->rx.rsp_prod == prod) return;
  }
}

static int connect(void);

/* The toolstack restarted the driver VM (xenstore's watch, in Xen): what the old back end had
 * ends (transmits fail, receive buffers come back), the link is down, and the ring and a new
 * port are published for the new back end, which connects as the first did. */
static void reconnect(void) {
  u16 next = (u16)nf.ring->backend_domain;
  kprintf("netfront: back end in domain %u gone, waiting for domain %u\n", nf.backend, next);
  nf.up = 0;
  for (; nf.tx_cons != nf.tx_prod; nf.tx_cons++) {
    nf.tx_errors++;
    end_grant(TX_REF + nf.tx_cons % SLOTS);
  }
  for (u32 id = 0; id < SLOTS; id++) end_grant(RX_REF + id);
  end_grant(RING_REF);
  struct evtchn_port c = {nf.port};
  HYPERVISOR_event_channel_op(EVTCHNOP_close, &c);
  nf.backend = next;
  nf.rx_prod = nf.rx_cons = 0;
  nf.tx_prod = nf.tx_cons = 0;
  if (!connect()) nf.ring = 0;
  else pic_enable(NETFRONT_IRQ); /* the new port is the line's now */
}

static void netfront_intr(void) {
  nf.stats.interrupts++;
  if (nf.ring->backend_state == BACKEND_CLOSED) {
    reconnect();
    return;
  }
  if (!nf.up && nf.ring->backend_state == BACKEND_CONNECTED) {
    nf.up = 1;
    kprintf("netfront: back end in domain %u connected\n", nf.backend);
    netfront_announce();
  }
  tx_gc();
  rx_reap();
}

int netfront_send(const void *frame, u32 len) {
  if (!nf.ring) return -ENOSYS;
  if (len > MAX_FRAME || len < 14) return -EINVAL;
  if (!nf.up) return -ENETDOWN;
  if (nf.tx_prod - nf.tx_cons == SLOTS) tx_gc();
  if (nf.tx_prod - nf.tx_cons == SLOTS) return -EAGAIN; /* ring full: the back end has them */
  u32 slot = nf.tx_prod % SLOTS;
  memcpy(nf.txbuf[slot], frame, len);
  grant(TX_REF + slot, nf.txbuf[slot], 1);
  volatile struct slot *s = &nf.ring->txs[slot];
  s->w0 = TX_REF + slot;
  s->w1 = V2P(nf.txbuf[slot]) & (PAGE_SIZE - 1); /* no flags: one request a frame */
  s->w2 = slot | len << 16;
  nf.stats.tx_frames++;
  push(&nf.ring->tx.req_prod, &nf.ring->tx.req_event, ++nf.tx_prod);
  return 0;
}

/* Two hex digits, or -1. */
static int hex2(const char *p) {
  int v = 0;
  for (int k = 0; k < 2; k++) {
    char c = p[k];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
          : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

/* `DOMID,aa:bb:cc:dd:ee:ff`: the back end's domain and our MAC; 0 if malformed. */
static int parse_option(const char *v) {
  u32 dom = 0;
  const char *p = v;
  for (; *p >= '0' && *p <= '9'; p++) dom = dom * 10 + (*p - '0');
  if (p == v || *p++ != ',' || dom >= DOMID_SELF) return 0;
  for (int k = 0; k < 6; k++, p += 3) {
    int b = hex2(p);
    if (b < 0 || p[2] != (k < 5 ? ':' : 0)) return 0;
    nf.mac[k] = (u8)b;
  }
  nf.backend = (u16)dom;
  return 1;
}

/* The ring (empty, every receive buffer posted) and an unbound port, for the back end's domain;
 * 0 if it has no port for us. */
static int connect(void) {
  volatile struct netif_page *ring = nf.ring;
  memset((void *)ring, 0, PAGE_SIZE);
  ring->tx.rsp_event = 1; /* an event for the first responses */
  ring->rx.rsp_event = 1;
  for (u32 id = 0; id < SLOTS; id++) post_rx(id);
  ring->rx.req_prod = nf.rx_prod;
  grant(RING_REF, (const void *)ring, 0);
  struct evtchn_alloc_unbound a = {DOMID_SELF, nf.backend, 0};
  if (HYPERVISOR_event_channel_op(EVTCHNOP_alloc_unbound, &a) < 0) {
    kprintf("netfront: no event channel for domain %u\n", nf.backend);
    return 0;
  }
  nf.port = a.port;
  evtchn_irq_port(NETFRONT_IRQ, nf.port);
  return 1;
}

/* 1 if the command line asks for the driver (whether or not it came up), else 0. */
int netfront_init(void) {
  char opt[40];
  if (!cmdline_get(xen_start_info->cmd_line, "netfront", opt, sizeof opt)) return 0;
  if (!parse_option(opt)) {
    kprintf("netfront: bad option 'netfront=%s' (want DOMID,aa:bb:cc:dd:ee:ff)\n", opt);
    return 1;
  }
  u32 frame;
  struct gnttab_setup_table setup = {DOMID_SELF, 0, 1, 0, 0, (u32)&frame};
  if (HYPERVISOR_grant_table_op(GNTTABOP_setup_table, &setup, 1) < 0 || setup.status) {
    kprintf("netfront: no grant table\n");
    return 1;
  }
  u32 pte = frame << 12 | PTE_P | PTE_W | PTE_A | PTE_D;
  if (HYPERVISOR_update_va_mapping((u32)grants, pte, UVMF_INVLPG) < 0) {
    kprintf("netfront: cannot map the grant table\n");
    return 1;
  }
  volatile struct netif_page *ring = kalloc();
  for (int i = 0; ring && i < SLOTS; i += 2) {
    u8 *tx = kalloc(), *rx = kalloc();
    if (!tx || !rx) ring = 0;
    nf.txbuf[i] = tx, nf.txbuf[i + 1] = tx + BUF_SIZE;
    nf.rxbuf[i] = rx, nf.rxbuf[i + 1] = rx + BUF_SIZE;
  }
  if (!ring) {
    kprintf("netfront: out of memory for the rings\n");
    return 1;
  }
  nf.ring = ring;
  nf.receive = netfront_log_frame;
  if (!connect()) {
    nf.ring = 0;
    return 1;
  }
  irq_register(NETFRONT_IRQ, netfront_intr);
  kprintf("netfront: back end domain %u, ring ref %u, port %u, MAC %02x:%02x:%02x:%02x:%02x:%02x\n",
          nf.backend, RING_REF, nf.port, nf.mac[0], nf.mac[1], nf.mac[2], nf.mac[3], nf.mac[4],
          nf.mac[5]);
  return 1;
}

void netfront_set_receiver(void (*receive)(const u8 *frame, u32 len)) {
  nf.receive = receive ? receive : netfront_log_frame;
}

const u8 *netfront_mac(void) { return nf.ring ? nf.mac : 0; }

const struct dp83820_stats *netfront_stats(void) { return &nf.stats; }
