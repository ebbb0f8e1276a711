/*
 * Driver for the National Semiconductor DP83820 gigabit Ethernet MAC (PCI 100B:0022), after
 * the Linux ns83820 driver's sequence (facts: shared/reference/dp83820.md, which cites Linux,
 * gem5, NetBSD, FreeBSD). Registers are reached through BAR1 (MMIO), and every register access
 * goes through afterburn.h's ab_mmio_* helpers, so the in-place VMM can find them.
 *
 * Descriptors use the 32-bit layout (CFG.M64ADDR clear): link, bufptr, cmdsts, extsts, spaced
 * 32 bytes apart. Both lists are closed rings. OWN = 1 means "belongs to the consumer": the
 * driver hands an empty RX buffer to the NIC with OWN = 0 and takes it back when the NIC sets
 * OWN; a TX descriptor goes to the NIC with OWN = 1 and comes back with OWN = 0.
 */
#include "afterburn.h"
#include "defs.h"
#include "memlayout.h"
#include "mmu.h"
#include "syscall.h"

#define VENDOR_NATSEMI 0x100b
#define DEVICE_DP83820 0x0022

/* Registers (reference section 2). */
#define CR 0x00
#define CFG 0x04
#define ISR 0x10
#define IHR 0x1c
#define IMR 0x14
#define IER 0x18
#define TXDP 0x20
#define TXDP_HI 0x24
#define TXCFG 0x28
#define RXDP 0x30
#define RXDP_HI 0x34
#define RXCFG 0x38
#define PQCR 0x3c
#define RFCR 0x48
#define RFDR 0x4c
#define SRR 0x58

#define CR_TXE 0x001
#define CR_RXE 0x004
#define CR_RST 0x100

#define CFG_LNKSTS 0x80000000u
#define CFG_SPDSTS1 0x40000000u /* after XOR with 0x70000000: 1000 Mb/s */
#define CFG_SPDSTS0 0x20000000u /* after XOR: 100 Mb/s */
#define CFG_DUPSTS 0x10000000u  /* after XOR: full duplex */
#define CFG_STATUS_XOR 0x70000000u

#define ISR_RXOK 0x0001
#define ISR_RXDESC 0x0002
#define ISR_RXERR 0x0004
#define ISR_RXIDLE 0x0010
#define ISR_RXORN 0x0020
#define ISR_TXOK 0x0040
#define ISR_TXIDLE 0x0200
#define ISR_RX (ISR_RXOK | ISR_RXDESC | ISR_RXERR | ISR_RXIDLE | ISR_RXORN)

#define TXCFG_LINUX 0xd0703200u /* CSI|HBI|ATP|MXDMA512, fill threshold 1600 bytes */
#define RXCFG_LINUX 0xf4700000u /* AEP|ARP|AIRL|RX_FD|STRIPCRC|MXDMA512 */

#define RFCR_RFEN 0x80000000u
#define RFCR_AAB 0x40000000u /* accept all broadcast */
#define RFCR_APM 0x08000000u /* accept perfect match (our MAC) */

#define CMDSTS_OWN 0x80000000u
#define CMDSTS_INTR 0x20000000u
#define CMDSTS_OK 0x08000000u
#define CMDSTS_SIZE 0x0000ffffu

#define NRX 64 /* as Linux: a hold-off interval's frames fit with room to spare */
#define NTX 16
#define IHR_LINUX 2 /* hold-off in 100 us units */
#define BUF_SIZE 1536 /* two buffers a page; a 1514-byte frame fits */
#define MAX_FRAME 1514

struct desc {
  u32 link, bufptr, cmdsts, extsts;
  u32 unused[4]; /* 32-byte stride, as Linux */
};

static struct {
  volatile u8 *regs;
  volatile struct desc *rx, *tx;
  u8 *rxbuf[NRX], *txbuf[NTX];
  u32 rx_next, tx_next;
  u8 mac[6];
  struct dp83820_stats stats;
  void (*receive)(const u8 *frame, u32 len);
} nic;

static u32 rd(u32 reg) { return ab_mmio_read32(nic.regs + reg); }
static void wr(u32 reg, u32 v) { ab_mmio_write32(nic.regs + reg, v); }

/* Frames nobody takes (all of them until the network stack registers itself): the first few
 * are logged. */
void dp83820_log_frame(const u8 *f, u32 len) {
  if (nic.stats.rx_frames <= 3)
    kprintf("dp83820: frame %u: %u bytes from %02x:%02x:%02x:%02x:%02x:%02x type %04x\n",
            nic.stats.rx_frames, len, f[6], f[7], f[8], f[9], f[10], f[11], f[12] << 8 | f[13]);
}

/* Take back every RX descriptor the NIC has filled, pass the frame on, re-post the buffer. */
static void rx_reap(void) {
  for (;;) {
    volatile struct desc *d = &nic.rx[nic.rx_next];
    u32 st = d->cmdsts;
    if (!(st & CMDSTS_OWN)) break;
    u32 len = st & CMDSTS_SIZE;
    if ((st & CMDSTS_OK) && len >= 14 && len <= BUF_SIZE) {
      nic.stats.rx_frames++;
      nic.stats.rx_bytes += len;
      nic.receive(nic.rxbuf[nic.rx_next], len);
    } else {
      nic.stats.rx_errors++;
    }
    d->extsts = 0;
    d->cmdsts = CMDSTS_INTR | BUF_SIZE; /* back to the NIC */
    nic.rx_next = (nic.rx_next + 1) % NRX;
  }
}

void dp83820_intr(void) {
  nic.stats.interrupts++;
  /* Until ISR (cleared by reading it) shows nothing new: an event that arrives while we work
   * keeps the line asserted, and on an edge-triggered PIC input that would be lost. */
  for (int round = 0; round < 16; round++) {
    u32 isr = rd(ISR);
    if (!(isr & ISR_RX)) break;
    rx_reap();
    /* The RX engine stops when it meets a descriptor we had not given back yet: restart it. */
    if (isr & (ISR_RXIDLE | ISR_RXORN)) wr(CR, CR_RXE);
  }
}

int dp83820_send(const void *frame, u32 len) {
  if (!nic.regs) return -ENOSYS;
  if (len > MAX_FRAME || len < 14) return -EINVAL;
  volatile struct desc *d = &nic.tx[nic.tx_next];
  if (d->cmdsts & CMDSTS_OWN) return -EAGAIN; /* ring full: the NIC still has this one */
  memcpy(nic.txbuf[nic.tx_next], frame, len);
  d->extsts = 0;
  d->cmdsts = CMDSTS_OWN | len; /* TXCFG.ATP pads short frames to 60 bytes */
  nic.tx_next = (nic.tx_next + 1) % NTX;
  nic.stats.tx_frames++;
  wr(CR, CR_TXE); /* wakes the engine if it went idle */
  return 0;
}

void dp83820_set_receiver(void (*receive)(const u8 *frame, u32 len)) {
  nic.receive = receive ? receive : dp83820_log_frame;
}

const u8 *dp83820_mac(void) { return nic.regs ? nic.mac : 0; }

const struct dp83820_stats *dp83820_stats(void) { return &nic.stats; }

/* Two buffers per page for n descriptors; returns 0 when out of memory. */
static int alloc_ring(volatile struct desc **ring, u8 **bufs, int n) {
  struct desc *r = kalloc();
  if (!r) return 0;
  memset(r, 0, PAGE_SIZE);
  for (int i = 0; i < n; i += 2) {
    u8 *page = kalloc();
    if (!page) return 0;
    bufs[i] = page;
    if (i + 1 < n) bufs[i + 1] = page + BUF_SIZE;
  }
  for (int i = 0; i < n; i++) {
    r[i].link = V2P(&r[(i + 1) % n]);
    r[i].bufptr = V2P(bufs[i]);
  }
  *ring = r;
  return 1;
}

void dp83820_init(void) {
  const struct pci_dev *pd = pci_find(VENDOR_NATSEMI, DEVICE_DP83820);
  if (!pd) return;
  u32 size, bar = pci_bar(pd, 1, &size);
  if (!bar || (pci_read32(pd->bus, pd->dev, pd->fn, 0x14) & 1)) {
    kprintf("dp83820: BAR1 is not a memory BAR\n");
    return;
  }
  pci_enable(pd); /* memory decoding and bus mastering */
  nic.regs = ioremap(bar, PAGE_SIZE);
  nic.receive = dp83820_log_frame;

  wr(IMR, 0);
  wr(IER, 0);
  (void)rd(IER);
  wr(CR, CR_RST);
  for (int i = 0; i < 100000 && (rd(CR) & CR_RST); i++) {
  }
  if (rd(CR) & CR_RST) {
    kprintf("dp83820: reset did not complete\n");
    nic.regs = 0;
    return;
  }

  wr(TXCFG, TXCFG_LINUX);
  /* Interrupt hold-off, as Linux's ns83820 (module parameter ihr = 2): after the driver reads
   * ISR, the NIC holds its interrupt back for 2 x 100 us, so a burst of frames costs one
   * interrupt, not one each. Flush the hold-off timer first (0, 0x100, 0), as Linux does. */
  wr(IHR, 0);
  wr(IHR, 0x100);
  wr(IHR, 0);
  wr(RXCFG, RXCFG_LINUX);
  wr(PQCR, 0);
  /* Our MAC address, from the perfect-match filter memory the EEPROM loaded (RFCR address 0, 2,
   * 4; RFDR carries two bytes, low byte first). Writing the address clears RFEN. */
  for (int i = 0; i < 3; i++) {
    wr(RFCR, 2 * i);
    u32 w = rd(RFDR);
    nic.mac[2 * i] = w & 0xff;
    nic.mac[2 * i + 1] = (w >> 8) & 0xff;
  }
  /* Accept broadcast and our own address; change the bits with RFEN clear, then enable. */
  wr(RFCR, RFCR_AAB | RFCR_APM);
  wr(RFCR, RFCR_RFEN | RFCR_AAB | RFCR_APM);

  if (!alloc_ring(&nic.rx, nic.rxbuf, NRX) || !alloc_ring(&nic.tx, nic.txbuf, NTX)) {
    kprintf("dp83820: out of memory for the rings\n");
    nic.regs = 0;
    return;
  }
  for (int i = 0; i < NRX; i++) nic.rx[i].cmdsts = CMDSTS_INTR | BUF_SIZE;
  wr(RXDP_HI, 0);
  wr(RXDP, V2P(nic.rx));
  wr(TXDP_HI, 0);
  wr(TXDP, V2P(nic.tx));

  wr(IHR, IHR_LINUX);
  irq_register(pd->irq_line, dp83820_intr);
  wr(IMR, ISR_RX);
  wr(IER, 1);
  wr(CR, CR_RXE);

  u32 cfg = rd(CFG) ^ CFG_STATUS_XOR, srr = rd(SRR);
  kprintf("dp83820: %02x:%02x.%u irq %u, rev %u.%u, MAC %02x:%02x:%02x:%02x:%02x:%02x, link %s",
          pd->bus, pd->dev, pd->fn, pd->irq_line, srr >> 8, srr & 0xff, nic.mac[0], nic.mac[1],
          nic.mac[2], nic.mac[3], nic.mac[4], nic.mac[5], (cfg & CFG_LNKSTS) ? "up" : "down");
  if (cfg & CFG_LNKSTS)
    kprintf(", %s Mb/s %s duplex", (cfg & CFG_SPDSTS1) ? "1000" : (cfg & CFG_SPDSTS0) ? "100" : "10",
            (cfg & CFG_DUPSTS) ? "full" : "half");
  kprintf("\n");
}

/* Announce ourselves with one broadcast frame (ethertype 0x88B5, IEEE "local experimental"),
 * so the far end of the link learns our address. */
void dp83820_announce(void) {
  if (!nic.regs) return;
  u8 f[60];
  memset(f, 0, sizeof f);
  memset(f, 0xff, 6);
  memcpy(f + 6, nic.mac, 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  memcpy(f + 14, "previrt guest up", 16);
  dp83820_send(f, sizeof f);
}

/* ---- for the driver VM's translation module (bridge.c) ---- */

#define RFCR_AAU 0x10000000u /* accept all unicast */
#define CMDSTS_MORE 0x40000000u
#define ISR_TXDESC 0x0080

static u32 tx_dirty; /* the oldest descriptor a zero-copy send may still have with the NIC */
static u8 irq_line;

int dp83820_irq(void) { return nic.regs ? irq_line : -1; }

/* Every unicast frame too, not only ours (a bridge forwards frames for other addresses); and an
 * interrupt for each packet sent with CMDSTS_INTR, so the buffers go back to their owner soon. */
void dp83820_bridge_mode(void) {
  const struct pci_dev *pd = pci_find(VENDOR_NATSEMI, DEVICE_DP83820);
  irq_line = pd ? pd->irq_line : 0;
  wr(RFCR, RFCR_AAB | RFCR_APM | RFCR_AAU);
  wr(RFCR, RFCR_RFEN | RFCR_AAB | RFCR_APM | RFCR_AAU);
  wr(IMR, ISR_RX | ISR_TXDESC);
  tx_dirty = nic.tx_next;
}

/* One packet from buffers where they are (physical addresses), without copying: n descriptors
 * chained with MORE, the last with INTR. 0, or -EAGAIN when the ring has no room for it. */
int dp83820_send_frags(const u32 *phys, const u32 *len, int n) {
  if (!nic.regs || n < 1 || n > NTX - 1) return -EINVAL;
  u32 used = (nic.tx_next + NTX - tx_dirty) % NTX;
  if (used + n > NTX - 1) return -EAGAIN;
  /* Ownership of the first descriptor goes last, so the NIC never sees half a packet. */
  u32 first = nic.tx_next;
  for (int k = n - 1; k >= 0; k--) {
    volatile struct desc *d = &nic.tx[(first + k) % NTX];
    d->bufptr = phys[k];
    d->extsts = 0;
    d->cmdsts = CMDSTS_OWN | (k == n - 1 ? CMDSTS_INTR : CMDSTS_MORE) | len[k];
  }
  nic.tx_next = (first + n) % NTX;
  nic.stats.tx_frames++;
  wr(CR, CR_TXE);
  return 0;
}

/* Takes back what the NIC has sent since the last call: the number of whole packets, in the
 * order they were given (each descriptor gets its own buffer back). */
int dp83820_tx_reap(void) {
  int packets = 0;
  while (tx_dirty != nic.tx_next) {
    volatile struct desc *d = &nic.tx[tx_dirty];
    u32 st = d->cmdsts;
    if (st & CMDSTS_OWN) break;
    d->bufptr = V2P(nic.txbuf[tx_dirty]);
    if (!(st & CMDSTS_MORE)) packets++;
    tx_dirty = (tx_dirty + 1) % NTX;
  }
  return packets;
}
