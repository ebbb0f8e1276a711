/*
 * The driver VM's translation module (issue "reuse"; shared/reference/driver-reuse.md): with
 * the real DP83820 passed through and the in-place VMM's client link on the virtual PCI bus,
 * this kernel becomes the network driver of other VMs. It bridges frames between its DP83820
 * driver and its clients by destination MAC address (broadcast and multicast to every client);
 * its own network stack no longer sees any frame.
 *
 * The client link is a virtual device the VMM provides (src/vmm/devices/clientLink.ts says how
 * it works on each hypervisor), so that this module, like the rest of the kernel, is one binary
 * for every hypervisor; on a machine without it (the raw PC, a VM that is not a driver VM) the
 * module does nothing. The device, PCI 7072:0001, one 4 KB memory BAR of registers:
 *
 *   0x00 VERSION (1)   0x04 CLIENTS (how many, at most 8)   0x08 ISR (read clears; bit 0: the
 *   send ring has new frames)   0x0c IMR   0x10 SEND_RING, 0x14 DELIVER_RING (physical addresses
 *   of a page each)   0x18 KICK (bit 0: the deliver ring has new frames, bit 1: frames of the
 *   send ring are done)   0x1c CONTROL (1: up)   0x40 + 8 i: client i's MAC (low 4, high 2 bytes)
 *
 * The send ring carries the clients' frames to transmit: the VMM produces entries (prod), the
 * module takes them (cons) and hands their buffers to the NIC where they are — pages of the
 * client the VMM made reachable for it (a grant mapping on xen, a mapping by IPC on l4) — and
 * says which are done (done) when the NIC has sent them: transmit without copying. The deliver
 * ring carries received frames to the clients: the module produces entries, each naming the
 * buffer the NIC received into and the client; the VMM copies it to the client when kicked.
 */
#include "afterburn.h"
#include "defs.h"
#include "memlayout.h"
#include "mmu.h"

#define VENDOR_PREVIRT 0x7072
#define DEVICE_CLIENT_LINK 0x0001

#define LINK_VERSION 0x00
#define LINK_CLIENTS 0x04
#define LINK_ISR 0x08
#define LINK_IMR 0x0c
#define LINK_SEND_RING 0x10
#define LINK_DELIVER_RING 0x14
#define LINK_KICK 0x18
#define LINK_CONTROL 0x1c
#define LINK_MAC 0x40

#define ISR_OFFERED 0x1
#define KICK_DELIVER 0x1
#define KICK_SENT 0x2
#define MAX_CLIENTS 8
#define EVERY_CLIENT 0xff

#define RING_SLOTS 64
#define DELIVERED 1

struct send_entry {
  u32 id;
  u8 client, nfrag;
  u16 pad;
  u32 phys[2], len[2];
  u32 pad2[2];
};

struct send_ring {
  u32 prod, cons, done;
  u32 pad[13];
  struct send_entry e[RING_SLOTS];
};

struct deliver_entry {
  u32 phys;
  u16 len;
  u8 client, status;
  u32 pad[2];
};

struct deliver_ring {
  u32 prod, cons;
  u32 pad[14];
  struct deliver_entry e[RING_SLOTS];
};

static struct {
  volatile u8 *regs;
  volatile struct send_ring *send;
  volatile struct deliver_ring *deliver;
  int clients;
  u8 mac[MAX_CLIENTS][6];
  /* frames forwarded to clients, broadcast to all, for no client, not taken by the VMM; frames
   * of clients sent, and the times the NIC's ring was full for one */
  u32 forwarded, broadcast, unknown, undelivered, sent, tx_full;
} br;

static u32 rd(u32 reg) { return ab_mmio_read32(br.regs + reg); }
static void wr(u32 reg, u32 v) { ab_mmio_write32(br.regs + reg, v); }

/* The NIC gave back what it sent: those send-ring entries are done. */
static void reap(void) {
  int n = dp83820_tx_reap();
  if (n == 0) return;
  br.send->done += n;
  br.sent += n;
  wr(LINK_KICK, KICK_SENT);
}

/* The clients' frames to the NIC, in order, as long as its ring has room. */
static void pump(void) {
  while (br.send->cons != br.send->prod) {
    volatile struct send_entry *e = &br.send->e[br.send->cons % RING_SLOTS];
    u32 phys[2] = {e->phys[0], e->phys[1]}, len[2] = {e->len[0], e->len[1]};
    int n = e->nfrag == 2 ? 2 : 1;
    if (dp83820_send_frags(phys, len, n) < 0) {
      br.tx_full++;
      return; /* the next reap makes room */
    }
    br.send->cons++;
  }
}

/* A frame from the wire: to the client it is addressed to, or to every client. */
static void bridge_rx(const u8 *frame, u32 len) {
  int client = -1;
  if (frame[0] & 1) {
    client = EVERY_CLIENT;
    br.broadcast++;
  } else {
    for (int i = 0; i < br.clients && client < 0; i++)
      if (memcmp(frame, br.mac[i], 6) == 0) client = i;
  }
  if (client < 0) {
    br.unknown++;
    return;
  }
  volatile struct deliver_entry *e = &br.deliver->e[br.deliver->prod % RING_SLOTS];
  e->phys = V2P(frame);
  e->len = (u16)len;
  e->client = (u8)client;
  e->status = 0;
  br.deliver->prod++;
  /* The VMM copies it now: the driver re-posts the buffer as soon as we return. */
  wr(LINK_KICK, KICK_DELIVER);
  if (e->status == DELIVERED) br.forwarded++;
  else br.undelivered++;
}

static void nic_intr(void) {
  dp83820_intr();
  reap();
  pump();
}

static void link_intr(void) {
  if (rd(LINK_ISR) & ISR_OFFERED) pump();
  reap();
  pump();
}

void bridge_init(void) {
  const struct pci_dev *pd = pci_find(VENDOR_PREVIRT, DEVICE_CLIENT_LINK);
  if (!pd || dp83820_irq() < 0) {
    if (pd) kprintf("bridge: a client link but no DP83820: not bridging\n");
    return;
  }
  u32 size, bar = pci_bar(pd, 0, &size);
  if (!bar || (pci_read32(pd->bus, pd->dev, pd->fn, 0x10) & 1)) {
    kprintf("bridge: the client link's BAR0 is not a memory BAR\n");
    return;
  }
  pci_enable(pd);
  br.regs = ioremap(bar, PAGE_SIZE);
  br.send = kalloc();
  br.deliver = kalloc();
  if (!br.send || !br.deliver) {
    kprintf("bridge: out of memory for the rings\n");
    br.regs = 0;
    return;
  }
  memset((void *)br.send, 0, PAGE_SIZE);
  memset((void *)br.deliver, 0, PAGE_SIZE);
  br.clients = (int)rd(LINK_CLIENTS);
  if (br.clients > MAX_CLIENTS) br.clients = MAX_CLIENTS;
  for (int i = 0; i < br.clients; i++) {
    u32 lo = rd(LINK_MAC + 8 * i), hi = rd(LINK_MAC + 8 * i + 4);
    for (int k = 0; k < 4; k++) br.mac[i][k] = (u8)(lo >> (8 * k));
    br.mac[i][4] = (u8)hi;
    br.mac[i][5] = (u8)(hi >> 8);
  }
  wr(LINK_SEND_RING, V2P(br.send));
  wr(LINK_DELIVER_RING, V2P(br.deliver));
  dp83820_set_receiver(bridge_rx);
  dp83820_bridge_mode();
  irq_replace(dp83820_irq(), nic_intr);
  irq_register(pd->irq_line, link_intr);
  wr(LINK_IMR, ISR_OFFERED);
  wr(LINK_CONTROL, 1);
  kprintf("bridge: %02x:%02x.%u irq %u, version %u, %d client%s", pd->bus, pd->dev, pd->fn,
          pd->irq_line, rd(LINK_VERSION), br.clients, br.clients == 1 ? "" : "s");
  for (int i = 0; i < br.clients; i++)
    kprintf(" %02x:%02x:%02x:%02x:%02x:%02x", br.mac[i][0], br.mac[i][1], br.mac[i][2],
            br.mac[i][3], br.mac[i][4], br.mac[i][5]);
  kprintf("\n");
}

/* One line with the module's counters (when init exits), like the stack's `net:` line. */
void bridge_report(void) {
  if (!br.regs) return;
  kprintf("bridge: forwarded %u, broadcast %u, no client %u, not delivered %u, sent %u, "
          "tx ring full %u\n",
          br.forwarded, br.broadcast, br.unknown, br.undelivered, br.sent, br.tx_full);
}
