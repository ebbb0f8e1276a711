/*
 * The custom virtual network driver on l4 (issue "reuse", the seed's "custom driver" row on its
 * own platform): the para-virtualized kernel's client of the driver VM, by IPC, as L4Ka's
 * para-virtual network client was (shared/reference/driver-reuse.md, "PV client data path").
 * It speaks the protocol the driver VM's VMM serves (src/vmm/backends/l4/netChannel.ts,
 * L4NetBack), which the in-place VMM's DP83820 model speaks too:
 *
 * - Transmit without copying on the far side: the frame is copied into a buffer of ours (as the
 *   DP83820 driver copies it into its descriptor's buffer) and queued; before the kernel thread
 *   next waits (its `iret` or idle), the queue goes in one message to the driver VM's monitor
 *   (`transmit`: per packet its slot, one part, its guest-physical address and length). The
 *   driver VM's NIC reads the buffer where it is, through the DMA window the resource monitor
 *   gave the driver VM over our memory. A message the monitor cannot take now (it is not
 *   waiting) stays queued for the next wait. The driver VM's `transmitted` messages free the
 *   slots.
 * - Receive by copy: receiver threads in our space, each waiting for the driver VM with its next
 *   free buffer as its string buffer; a frame is one IPC whose string item the microkernel
 *   copies from the driver VM's NIC buffer into ours. Several receivers take a burst that
 *   arrives while none of them can run (the driver VM copies frame after frame in one run); a
 *   frame that finds no receiver waiting is dropped by the driver VM, as a full ring drops it.
 *   Each receiver has a ring of buffers with a producer index (its own) and a consumer index
 *   (the kernel's), so neither side locks.
 * - Notifications: a receiver with a new frame notifies the kernel thread (a message, taken in
 *   its waits as the driver's interrupt line) only if no notification is pending already; the
 *   kernel clears the flag before it empties the rings. A receiver with all of its buffers in
 *   the kernel's hands waits for a wake from the kernel (or a tick, which covers a wake that
 *   came before it waited).
 *
 * The toolstack names the driver VM's monitor and helper threads and our MAC address on the
 * command line (`l4net=MONITOR,HELPER,MAC`, the thread IDs in hex, src/platforms/l4Para.ts),
 * and gives the driver VM our receiver threads' IDs: receiver k is our thread number
 * RECEIVER_BASE + k. Without `l4net=` the driver stays out of the way and the kernel drives the
 * DP83820 the resource monitor gave it (netdev.c).
 */
#include "defs.h"
#include "l4para.h"
#include "memlayout.h"
#include "mmu.h"
#include "netfront.h"
#include "syscall.h"
#include "trap.h"
#include "x86.h"

#define TX_SLOTS 64
#define RX_PER_RECEIVER 16
#define BUF_SIZE 2048 /* two buffers a page; a 1514-byte frame fits */
#define MAX_FRAME 1514
#define PACKETS_PER_MESSAGE 15 /* 1 + 4 * 15 words: the 64 message registers */
#define RECEIVER_STACK 1024
#define TICK_TIMEOUT 1000 /* 1 ms: m = 1000, e = 0 */

/* The driver VM's messages (netChannel.ts NetLabel), and ours between our own threads. */
#define LABEL_TRANSMIT 0x5311
#define LABEL_TRANSMITTED 0x5312
#define LABEL_RECEIVE 0x5313
#define LABEL_CREDIT 0x5314 /* receiver -> driver VM: MR1 its index, MR2 the buffers it holds */
#define LABEL_NOTIFY 0x5316 /* receiver -> kernel thread: frames in the rings */
#define LABEL_WAKE 0x5317   /* kernel thread -> a receiver: buffers are free again */

struct receiver {
  word tid;
  u32 index;
  volatile u32 filled;   /* frames received: the receiver's index */
  volatile u32 consumed; /* frames the kernel took: its index */
  volatile int starved;  /* every buffer is the kernel's: it waits for a wake */
  volatile u32 len[RX_PER_RECEIVER];
  volatile u32 seq[RX_PER_RECEIVER]; /* the frame's number in the driver VM's order */
  u8 *buf[RX_PER_RECEIVER];
  u8 stack[RECEIVER_STACK] __attribute__((aligned(16)));
};

int netfront_up; /* the receivers run and the driver VM is there */

/* Each in a page of its own, taken when the driver starts (nothing of it without a driver VM). */
static struct receiver *receivers[L4_NET_RECEIVERS];
_Static_assert(sizeof(struct receiver) <= PAGE_SIZE, "a receiver fits its page");

static struct {
  int on;           /* the command line asked for us */
  word monitor;     /* the driver VM's monitor (takes our transmit messages) */
  word helper;      /* the driver VM's helper (sends us frames and completions) */
  u8 mac[6];
  u8 *txbuf[TX_SLOTS];
  u32 txlen[TX_SLOTS];
  u8 busy[TX_SLOTS]; /* 1 queued or with the driver VM */
  u32 queue[TX_SLOTS], q_head, q_tail; /* slots to send at the next wait */
  u32 next_slot;
  volatile int notify_pending;
  volatile int driver_gone; /* a receiver found no driver VM thread */
  u32 rx_seq, rx_next; /* the next frame's number, and the receiver likely to hold it */
  u32 tx_errors, deferred;
  struct dp83820_stats stats;
  void (*receive)(const u8 *frame, u32 len);
} nf;

/* ---- the receivers (their own threads, in the kernel's space) ---- */

static void receiver_main(struct receiver *r) __attribute__((noreturn, used));
static void receiver_main(struct receiver *r) {
  word kernel = l4_kernel_tid();
  for (;;) {
    u32 free = RX_PER_RECEIVER - (r->filled - r->consumed);
    if (free == 0) {
      r->starved = 1;
      barrier();
      if (r->filled - r->consumed == RX_PER_RECEIVER)
        l4_ipc(L4_NILTHREAD, kernel, L4_TIMEOUTS(0, TICK_TIMEOUT), 0);
      r->starved = 0;
      continue;
    }
    /* Every free buffer, in ring order, as a string buffer (its C bit: another follows); the
     * driver VM told how many, and the wait for its frames, in one call. */
    volatile word *u = l4_utcb();
    u[U_BR(0) / 4] = 1; /* strings, no mappings */
    for (u32 k = 0; k < free; k++) {
      u[U_BR(1 + 2 * k) / 4] = (word)BUF_SIZE << 10 | (k + 1 < free ? 1u : 0u);
      u[U_BR(2 + 2 * k) / 4] = (word)r->buf[(r->filled + k) % RX_PER_RECEIVER];
    }
    L4_MR(0) = L4_TAG(LABEL_CREDIT, 2, 0);
    L4_MR(1) = r->index;
    L4_MR(2) = free;
    word from;
    word tag = l4_ipc(nf.monitor, nf.helper, L4_TIMEOUTS(L4_NEVER, L4_NEVER), &from);
    if ((tag & L4_TAG_E) && L4_ERROR_CODE(l4_error()) == L4_ERR_NO_PARTNER) {
      nf.driver_gone = 1; /* the kernel thread says so at its next wait */
      for (;;) l4_ipc(L4_NILTHREAD, l4_myself(), L4_TIMEOUTS(0, L4_NEVER), 0); /* for good */
    }
    if ((tag & L4_TAG_E) || L4_LABEL(tag) != LABEL_RECEIVE) continue;
    /* MR1 the first frame's number in the driver VM's order, then one string item a frame,
     * its length as the copy left it. */
    u32 n = ((tag >> 6) & 0x3f) / 2, first = L4_MR(1);
    for (u32 k = 0; k < n && k < free; k++) {
      u32 i = (r->filled + k) % RX_PER_RECEIVER;
      r->seq[i] = first + k;
      r->len[i] = L4_MR(2 + 2 * k) >> 10;
    }
    barrier();
    r->filled += n < free ? n : free;
    if (!__sync_lock_test_and_set(&nf.notify_pending, 1)) {
      L4_MR(0) = L4_TAG(LABEL_NOTIFY, 0, 0);
      l4_ipc(kernel, L4_NILTHREAD, L4_TIMEOUTS(L4_NEVER, 0), 0);
    }
  }
}

/* Receiver k: our thread RECEIVER_BASE + k, started at receiver_main(r) on its own stack. */
static int receiver_start(int k) {
  struct receiver *r = kalloc();
  if (!r) return 0;
  memset(r, 0, sizeof *r);
  receivers[k] = r;
  r->index = (u32)k;
  word me = l4_kernel_tid();
  r->tid = L4_GLOBAL(L4_THREAD_NO(me) + L4_NET_RECEIVER_BASE + k);
  for (int i = 0; i < RX_PER_RECEIVER; i += 2) {
    u8 *page = kalloc();
    if (!page) return 0;
    r->buf[i] = page;
    r->buf[i + 1] = page + BUF_SIZE;
  }
  word *sp = (word *)(r->stack + RECEIVER_STACK) - 2;
  sp[0] = 0; /* the return address it never uses */
  sp[1] = (word)r;
  word utcb = L4_UTCB_AREA + (L4_NET_RECEIVER_BASE + k) * L4_UTCB_SIZE;
  if (!l4_thread_create(r->tid, (word)receiver_main, (word)sp, utcb)) return 0;
  l4_set_priority(r->tid, L4_KERNEL_PRIORITY);
  return 1;
}

/* ---- the kernel thread's side ---- */

int netfront_irq(int irq) { return nf.on && irq == L4_NET_IRQ; }

static void netfront_lost(const char *fmt, word monitor, word helper);

/* No driver VM behind the threads the command line named: said once, and no network (or, if
 * the driver VM was restarted, the network comes back: netfront_lost). */
static void driver_gone(void) {
  netfront_lost("netfront: no driver VM thread %x/%x: no network\n", nf.monitor, nf.helper);
  netfront_up = 0;
  nf.driver_gone = 0;
  nf.q_head = nf.q_tail;
}

/* Before every wait of the kernel thread: the queued frames to the driver VM, 15 a message. */
void netfront_flush(void) {
  if (nf.driver_gone && netfront_up) driver_gone();
  while (netfront_up && nf.q_head != nf.q_tail) {
    u32 n = 0;
    for (u32 q = nf.q_head; q != nf.q_tail && n < PACKETS_PER_MESSAGE; q++, n++) {
      u32 slot = nf.queue[q % TX_SLOTS];
      L4_MR(2 + 4 * n) = slot;
      L4_MR(3 + 4 * n) = 1;
      L4_MR(4 + 4 * n) = V2P(nf.txbuf[slot]);
      L4_MR(5 + 4 * n) = nf.txlen[slot];
    }
    L4_MR(1) = n;
    L4_MR(0) = L4_TAG(LABEL_TRANSMIT, 1 + 4 * n, 0);
    if (l4_ipc(nf.monitor, L4_NILTHREAD, L4_TIMEOUTS(L4_ZERO, 0), 0) & L4_TAG_E) {
      if (L4_ERROR_CODE(l4_error()) == L4_ERR_NO_PARTNER) driver_gone();
      else nf.deferred++; /* the monitor is busy: at the next wait */
      return;
    }
    nf.q_head += n;
  }
}

/* A message for the kernel thread from the driver VM's helper or from a receiver: 1 if it was
 * the driver's interrupt (trap() is to run its handler), 0 if it was taken here, -1 if it is not
 * the driver's at all. */
int netfront_message(word tag, word from) {
  if (!netfront_up) return -1;
  word label = L4_LABEL(tag);
  if (from == nf.helper && label == LABEL_TRANSMITTED) {
    u32 n = L4_MR(1);
    for (u32 k = 0; k < n && 3 + 2 * k <= (tag & 0x3f); k++) {
      u32 slot = L4_MR(2 + 2 * k);
      if (slot >= TX_SLOTS || !nf.busy[slot]) continue; /* not a frame of ours */
      if (L4_MR(3 + 2 * k) != 0) nf.tx_errors++;
      nf.busy[slot] = 0;
    }
    return 0;
  }
  if (label == LABEL_NOTIFY)
    for (int k = 0; k < L4_NET_RECEIVERS; k++)
      if (from == receivers[k]->tid) return 1;
  return -1;
}

/* The receiver whose next frame comes first in the driver VM's order (the one after the last
 * taken, as the driver VM tries them in turn), or 0 if none has a frame. */
static struct receiver *next_frame(void) {
  struct receiver *best = 0;
  for (int k = 0; k < L4_NET_RECEIVERS; k++) {
    struct receiver *r = receivers[(nf.rx_next + k) % L4_NET_RECEIVERS];
    if (r->consumed == r->filled) continue;
    u32 seq = r->seq[r->consumed % RX_PER_RECEIVER];
    if (seq == nf.rx_seq) return r;
    if (!best || (i32)(seq - best->seq[best->consumed % RX_PER_RECEIVER]) < 0) best = r;
  }
  return best;
}

/* The driver's interrupt: the frames in the receivers' rings up the stack, in order. */
static void netfront_intr(void) {
  nf.stats.interrupts++;
  nf.notify_pending = 0;
  barrier();
  for (struct receiver *r; (r = next_frame()) != 0;) {
    u32 i = r->consumed % RX_PER_RECEIVER, len = r->len[i];
    nf.rx_seq = r->seq[i] + 1;
    nf.rx_next = (r->index + 1) % L4_NET_RECEIVERS;
    if (len >= 14 && len <= MAX_FRAME) {
      nf.stats.rx_frames++;
      nf.stats.rx_bytes += len;
      nf.receive(r->buf[i], len);
    } else {
      nf.stats.rx_errors++;
    }
    barrier();
    r->consumed++;
  }
  for (int k = 0; k < L4_NET_RECEIVERS; k++)
    if (receivers[k]->starved) {
      L4_MR(0) = L4_TAG(LABEL_WAKE, 0, 0);
      l4_ipc(receivers[k]->tid, L4_NILTHREAD, L4_TIMEOUTS(L4_ZERO, 0), 0);
    }
}

int netfront_send(const void *frame, u32 len) {
  if (!netfront_up) return nf.on ? -ENETDOWN : -ENOSYS;
  if (len > MAX_FRAME || len < 14) return -EINVAL;
  u32 slot = nf.next_slot;
  for (u32 tries = 0; nf.busy[slot]; slot = (slot + 1) % TX_SLOTS)
    if (++tries > TX_SLOTS) return -EAGAIN; /* every buffer is with the driver VM */
  nf.next_slot = (slot + 1) % TX_SLOTS;
  memcpy(nf.txbuf[slot], frame, len);
  nf.txlen[slot] = len;
  nf.busy[slot] = 1;
  nf.queue[nf.q_tail++ % TX_SLOTS] = slot;
  nf.stats.tx_frames++;
  return 0;
}

/* A hexadecimal number up to `end` (a character that must follow it); 0 if malformed. */
static int hex_field(const char **p, char end, u32 max, u32 *out) {
  u32 v = 0;
  const char *s = *p;
  for (; *s && *s != end; s++) {
    char c = *s;
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
          : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0 || v > (max >> 4)) return 0;
    v = v * 16 + (u32)d;
  }
  if (s == *p || *s != end) return 0;
  *p = end ? s + 1 : s;
  *out = v;
  return 1;
}

/* `MONITOR,HELPER,aa:bb:cc:dd:ee:ff`; 0 if malformed. */
static int parse_option(const char *p) {
  u32 v;
  if (!hex_field(&p, ',', 0xffffffffu, &v)) return 0;
  nf.monitor = v;
  if (!hex_field(&p, ',', 0xffffffffu, &v)) return 0;
  nf.helper = v;
  for (int k = 0; k < 6; k++) {
    if (!hex_field(&p, k < 5 ? ':' : 0, 0xff, &v)) return 0;
    nf.mac[k] = (u8)v;
  }
  return nf.monitor != 0 && nf.helper != 0;
}

/* 1 if the command line asks for the driver (whether or not it came up), else 0. */
int netfront_init(void) {
  char opt[64];
  if (!cmdline_get(l4_boot.cmdline, "l4net", opt, sizeof opt)) return 0;
  nf.on = 1;
  if (!parse_option(opt)) {
    kprintf("netfront: bad option 'l4net=%s' (want MONITOR,HELPER,aa:bb:cc:dd:ee:ff)\n", opt);
    return 1;
  }
  for (int i = 0; i < TX_SLOTS; i += 2) {
    u8 *page = kalloc();
    if (!page) {
      kprintf("netfront: out of memory for the buffers\n");
      return 1;
    }
    nf.txbuf[i] = page;
    nf.txbuf[i + 1] = page + BUF_SIZE;
  }
  nf.receive = netfront_log_frame;
  irq_register(L4_NET_IRQ, netfront_intr);
  for (int k = 0; k < L4_NET_RECEIVERS; k++)
    if (!receiver_start(k)) {
      kprintf("netfront: receiver thread %d refused (error %u)\n", k, L4_MR(2));
      return 1;
    }
  netfront_up = 1;
  kprintf("netfront: driver VM monitor %x, helper %x, %d receivers, MAC "
          "%02x:%02x:%02x:%02x:%02x:%02x\n",
          nf.monitor, nf.helper, L4_NET_RECEIVERS, nf.mac[0], nf.mac[1], nf.mac[2], nf.mac[3],
          nf.mac[4], nf.mac[5]);
  return 1;
}

void netfront_set_receiver(void (*receive)(const u8 *frame, u32 len)) {
  nf.receive = receive ? receive : netfront_log_frame;
}

const u8 *netfront_mac(void) { return netfront_up ? nf.mac : 0; }

const struct dp83820_stats *netfront_stats(void) { return &nf.stats; }

/* ---- the driver VM restarted (src/platforms/driverVm.ts) ----
 *
 * When the driver VM crashes, the toolstack destroys it and builds another in its place: our
 * IPCs to its threads fail ("no partner"), and the resource monitor names the new back end's
 * monitor and helper threads once its link is up (RM_NET_BACKEND). The network is down
 * meanwhile (netfront_up 0: sends fail, TCP sends again later); receiver 0 asks the resource
 * monitor at each tick, and when the new back end is there, the frames the old one had fail,
 * the receivers start again holding out their buffers to the new one, and the network is up.
 *
 * This code runs only after such a loss: it lives in sections of its own at the end of the
 * kernel's text (kernel.ld), so that the driver's other code and everything linked after it
 * keep their addresses, and a run without a crash its figures. */
#define COLD __attribute__((noinline, noipa, section(".coldtext")))
#define COLD_STRING(name, text) \
  static const char name[] __attribute__((section(".coldrodata"), aligned(4))) = text

COLD_STRING(lost_msg, "netfront: back end %x/%x gone, waiting for the new one\n");
COLD_STRING(back_msg, "netfront: back end %x/%x connected\n");

/* ExchangeRegisters: the thread (of our space) starts again at ip on the stack sp, whatever it
 * was waiting for. */
COLD static void restart_thread(word tid, word ip, word sp) {
  word eax = tid, ecx = L4_EX_ABORT_RECEIVE | L4_EX_ABORT_SEND | L4_EX_SP | L4_EX_IP, edx = sp,
       esi = ip, edi = 0, ebx = 0;
  __asm__ __volatile__("pushl %%ebp\n\txorl %%ebp, %%ebp\n\tint $0x33\n\tpopl %%ebp"
                       : "+a"(eax), "+c"(ecx), "+d"(edx), "+S"(esi), "+D"(edi), "+b"(ebx)
                       :
                       : "memory");
}

/* Receiver r starts again at fn(r), on its own stack. */
COLD static void restart_receiver(struct receiver *r, void (*fn)(struct receiver *)) {
  word *sp = (word *)(r->stack + RECEIVER_STACK) - 2;
  sp[0] = 0;
  sp[1] = (word)r;
  r->starved = 0;
  restart_thread(r->tid, (word)fn, (word)sp);
}

/* Receiver 0, while the network is down: the new back end, asked for at each tick. */
COLD static void __attribute__((noreturn, used)) netfront_reconnect(struct receiver *r0) {
  word monitor, helper;
  for (;;) {
    if (rm_call(RM_NET_BACKEND, 0, 0) != 1) /* none any more: for good */
      for (;;) l4_ipc(L4_NILTHREAD, l4_myself(), L4_TIMEOUTS(0, L4_NEVER), 0);
    monitor = L4_MR(2);
    helper = L4_MR(3);
    if (monitor != 0 && helper != 0) break;
    l4_ipc(L4_NILTHREAD, l4_myself(), L4_TIMEOUTS(0, TICK_TIMEOUT), 0); /* it boots still */
  }
  nf.monitor = monitor;
  nf.helper = helper;
  /* What the old back end had fails (TCP sends it again). */
  for (int slot = 0; slot < TX_SLOTS; slot++)
    if (nf.busy[slot]) {
      nf.busy[slot] = 0;
      nf.tx_errors++;
    }
  nf.q_head = nf.q_tail;
  nf.notify_pending = 0;
  nf.driver_gone = 0;
  for (int k = 1; k < L4_NET_RECEIVERS; k++) restart_receiver(receivers[k], receiver_main);
  barrier();
  netfront_up = 1;
  kprintf(back_msg, monitor, helper);
  receiver_main(r0);
}

/* The kernel thread found the driver VM's threads gone (before it turns the network off). With
 * a back end to come (the toolstack builds a new driver VM), receiver 0 waits for it; with none,
 * the message `fmt` says there is no network. */
COLD static void netfront_lost(const char *fmt, word monitor, word helper) {
  if (rm_call(RM_NET_BACKEND, 0, 0) != 1) {
    kprintf(fmt, monitor, helper);
    return;
  }
  kprintf(lost_msg, monitor, helper);
  restart_receiver(receivers[0], netfront_reconnect);
}
