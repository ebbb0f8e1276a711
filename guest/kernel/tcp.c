/*
 * TCP, receive side only (RFC 793; RFC 1122 section 4.2; RFC 5681 section 4.2 for when to ACK;
 * RFC 7323 section 2 for window scaling): one listening socket on port 5001 and at most one
 * connection on it at a time, whose bytes the application takes with the recv system call.
 *
 * Received data goes into one ring buffer, at the position its sequence number gives it, so a
 * segment that arrives ahead of a gap is kept where it belongs and only its range is remembered;
 * when the gap fills, the in-order edge (rcv_nxt) jumps over it. The window we advertise is the
 * free room behind what the application has not read yet, so it never shrinks by more than the
 * scaling granularity. We ACK every second in-order segment at once and a lone one within
 * DELACK_TICKS; anything out of order, duplicate or beyond the window is ACKed at once, so the
 * sender learns where we are.
 *
 * Everything runs with interrupts off (from the NIC's interrupt, the timer tick or a system
 * call), so there are no locks; recv sleeps on the connection and eth_input's caller wakes it.
 */
#include "defs.h"
#include "net.h"
#include "proc.h"
#include "syscall.h"

#define LISTEN_PORT 5001
#define RCVBUF (256 * 1024) /* a power of two: buffer positions are sequence numbers modulo it */
#define WSCALE 3            /* 256 KB >> 3 fits the 16-bit window field */
#define NO_SCALE_WINDOW 65535
#define NOOO 8             /* out-of-order ranges remembered; more are dropped (and re-ACKed) */
#define DELACK_TICKS 2     /* a lone segment is ACKed 1 to 2 ms later */
#define FIN_RETRY_TICKS 200
#define FIN_TRIES 5

enum tcp_state { LISTEN, SYN_RCVD, ESTABLISHED, CLOSE_WAIT, LAST_ACK };

struct range {
  u32 start, end; /* sequence numbers, end exclusive */
};

static struct {
  enum tcp_state state;
  u32 peer_ip;   /* network order */
  u16 peer_port; /* network order */
  u8 peer_mac[6];
  u32 iss;       /* our SYN's sequence number; we send no data, so our FIN sits at iss + 1 */
  u32 irs;       /* the peer's SYN's sequence number; its first data byte is irs + 1 */
  u32 rcv_nxt;   /* the next in-order sequence number we expect */
  u32 read_seq;  /* the next byte the application reads: [read_seq, rcv_nxt) is readable */
  u32 rcv_adv;   /* the right edge of the window we last advertised */
  u32 wscale;    /* our window shift: WSCALE when the peer offered scaling in its SYN, else 0 */
  u32 wnd_max;   /* the largest window we may advertise */
  u32 unacked;   /* in-order data segments since our last ACK */
  u32 ack_due;   /* with ack_pending: the tick at which the delayed ACK goes out */
  int ack_pending;
  int fin_seen;  /* the peer's FIN is known, at fin_seq (possibly still behind a gap) */
  u32 fin_seq;
  int reset;     /* the peer reset the connection; the next recv returns -ECONNRESET */
  u32 fin_tick;  /* LAST_ACK: when we last sent our FIN, and how often */
  int fin_tries;
  struct range ooo[NOOO];
  int nooo;
} tcb;

static u8 rcvbuf[RCVBUF];
static u32 connections;

static int seq_lt(u32 a, u32 b) { return (i32)(a - b) < 0; }
static int seq_le(u32 a, u32 b) { return (i32)(a - b) <= 0; }

static u16 tcp_checksum(u32 src, u32 dst, const void *seg, u32 len) {
  u32 s = inet_sum(&src, 4, 0);
  s = inet_sum(&dst, 4, s);
  s += net16(IPPROTO_TCP) + net16((u16)len);
  return inet_fold(inet_sum(seg, len, s));
}

/* Free room behind the unread data, in whole units of the window scale. */
static u32 rcv_window(void) {
  u32 room = RCVBUF - (tcb.rcv_nxt - tcb.read_seq);
  if (room > tcb.wnd_max) room = tcb.wnd_max;
  return room & ~((1u << tcb.wscale) - 1);
}

/* Sends a segment of the connection without data: an ACK, our SYN-ACK or our FIN. */
static void tcp_send(u8 flags) {
  u8 *p = net_tx_payload();
  struct tcp_hdr *t = (struct tcp_hdr *)p;
  u32 hlen = sizeof *t, wnd = rcv_window();
  flags |= TCP_ACK;
  t->sport = net16(LISTEN_PORT);
  t->dport = tcb.peer_port;
  t->seq = net32(flags & TCP_SYN ? tcb.iss : tcb.iss + 1);
  t->ack = net32(tcb.rcv_nxt);
  if (flags & TCP_SYN) {
    /* Options: MSS 1460, and window scaling only if the peer asked (RFC 7323 section 1.3). */
    u8 *o = p + hlen;
    o[0] = 2, o[1] = 4, o[2] = TCP_MSS >> 8, o[3] = TCP_MSS & 0xff;
    hlen += 4;
    if (tcb.wscale) {
      o[4] = 1, o[5] = 3, o[6] = 3, o[7] = WSCALE; /* NOP, window scale */
      hlen += 4;
    }
    if (wnd > NO_SCALE_WINDOW) wnd = NO_SCALE_WINDOW; /* a SYN's window is never scaled */
    t->win = net16((u16)wnd);
  } else {
    t->win = net16((u16)(wnd >> tcb.wscale));
  }
  t->off = (u8)(hlen / 4) << 4;
  t->flags = flags;
  t->sum = 0;
  t->urp = 0;
  t->sum = tcp_checksum(net32(NET_OUR_IP_HOST), tcb.peer_ip, p, hlen);
  tcb.rcv_adv = tcb.rcv_nxt + wnd;
  tcb.unacked = 0;
  tcb.ack_pending = 0;
  net_counters.acks++;
  ip_send(tcb.peer_mac, tcb.peer_ip, IPPROTO_TCP, hlen);
}

/* RFC 793 p. 36, "Reset Generation": the answer to a segment that belongs to no connection. */
static void tcp_reset(const struct eth_hdr *eth, const struct ip_hdr *ip, const struct tcp_hdr *th,
                      u32 seglen) {
  if (th->flags & TCP_RST) return;
  struct tcp_hdr *t = (struct tcp_hdr *)net_tx_payload();
  t->sport = th->dport;
  t->dport = th->sport;
  if (th->flags & TCP_ACK) {
    t->seq = th->ack;
    t->ack = 0;
    t->flags = TCP_RST;
  } else {
    t->seq = 0;
    t->ack = net32(net32(th->seq) + seglen);
    t->flags = TCP_RST | TCP_ACK;
  }
  t->off = (sizeof *t / 4) << 4;
  t->win = t->sum = t->urp = 0;
  t->sum = tcp_checksum(net32(NET_OUR_IP_HOST), ip->src, t, sizeof *t);
  const u8 *mac = arp_lookup(ip->src);
  net_counters.resets++;
  ip_send(mac ? mac : eth->src, ip->src, IPPROTO_TCP, sizeof *t);
}

/* Does the SYN offer window scaling? (Options: RFC 793 section 3.1, RFC 7323 section 2.2.) */
static int syn_offers_wscale(const u8 *o, u32 n) {
  for (u32 i = 0; i < n;) {
    if (o[i] == 0) break;     /* end of options */
    if (o[i] == 1) {          /* NOP */
      i++;
      continue;
    }
    if (i + 1 >= n || o[i + 1] < 2 || o[i + 1] > n - i) break;
    if (o[i] == 3 && o[i + 1] == 3) return 1;
    i += o[i + 1];
  }
  return 0;
}

/* A SYN on the listening port: a new connection, answered with our SYN-ACK. */
static void tcp_accept(const struct eth_hdr *eth, const struct ip_hdr *ip, const struct tcp_hdr *th,
                       u32 hlen) {
  const u8 *mac = arp_lookup(ip->src);
  int ws = syn_offers_wscale((const u8 *)th + sizeof *th, hlen - sizeof *th);
  memset(&tcb, 0, sizeof tcb);
  tcb.state = SYN_RCVD;
  tcb.peer_ip = ip->src;
  tcb.peer_port = th->sport;
  memcpy(tcb.peer_mac, mac ? mac : eth->src, 6);
  tcb.irs = net32(th->seq);
  tcb.rcv_nxt = tcb.read_seq = tcb.irs + 1; /* data that came with the SYN is sent again */
  tcb.wscale = ws ? WSCALE : 0;
  tcb.wnd_max = ws ? RCVBUF : NO_SCALE_WINDOW;
  /* RFC 793 asks for a clock-driven initial sequence number; ours is deterministic. */
  tcb.iss = 0x50000000u + ++connections * 0x01000000u + ticks_now() * 250u;
  tcp_send(TCP_SYN);
}

/* Copies data into the ring at the position of its sequence number. */
static void store(u32 seq, const u8 *data, u32 len) {
  u32 pos = (seq - tcb.irs - 1) & (RCVBUF - 1), first = RCVBUF - pos;
  if (first > len) first = len;
  memcpy(rcvbuf + pos, data, first);
  memcpy(rcvbuf, data + first, len - first);
}

/* Remembers [start, end) as received ahead of rcv_nxt, merged with the ranges it touches. */
static void ooo_add(u32 start, u32 end) {
  for (int i = 0; i < tcb.nooo;) {
    struct range *r = &tcb.ooo[i];
    if (seq_le(start, r->end) && seq_le(r->start, end)) {
      if (seq_lt(r->start, start)) start = r->start;
      if (seq_lt(end, r->end)) end = r->end;
      *r = tcb.ooo[--tcb.nooo];
    } else {
      i++;
    }
  }
  if (tcb.nooo < NOOO) tcb.ooo[tcb.nooo++] = (struct range){start, end};
}

/* After rcv_nxt moved: take in every remembered range it has reached. */
static void ooo_take(void) {
  for (int i = 0; i < tcb.nooo;) {
    struct range *r = &tcb.ooo[i];
    if (seq_le(r->start, tcb.rcv_nxt)) {
      if (seq_lt(tcb.rcv_nxt, r->end)) tcb.rcv_nxt = r->end;
      *r = tcb.ooo[--tcb.nooo];
      i = 0; /* rcv_nxt moved: an earlier range may now be reached */
    } else {
      i++;
    }
  }
}

/* The data and FIN of an acceptable segment in ESTABLISHED (RFC 793 p. 69 ff., steps 1, 7, 8). */
static void tcp_data(u32 seq, const u8 *data, u32 len, int fin) {
  u32 end = seq + len;
  if (seq_lt(end, tcb.rcv_nxt) || (end == tcb.rcv_nxt && !fin)) {
    /* All of it we have already: our ACK was lost or the network duplicated the segment. */
    net_counters.duplicates++;
    tcp_send(0);
    return;
  }
  if (seq_lt(seq, tcb.rcv_nxt)) { /* the front is old: keep the new part */
    data += tcb.rcv_nxt - seq;
    len -= tcb.rcv_nxt - seq;
    seq = tcb.rcv_nxt;
  }
  u32 limit = tcb.read_seq + RCVBUF; /* the buffer's end: nothing beyond it fits */
  if (seq_lt(limit, seq + len)) {
    net_counters.dropped++;
    if (!seq_lt(seq, limit)) {
      tcp_send(0);
      return;
    }
    len = limit - seq; /* keep what fits; the FIN comes again with the rest */
    fin = 0;
  }
  store(seq, data, len);
  if (fin) {
    tcb.fin_seen = 1;
    tcb.fin_seq = seq + len;
  }
  if (seq != tcb.rcv_nxt) {
    /* Ahead of a gap: keep it, and ACK at once (a duplicate ACK) so the sender retransmits. */
    net_counters.out_of_order++;
    if (len) ooo_add(seq, seq + len);
    tcp_send(0);
    return;
  }
  int filled_gap = tcb.nooo > 0;
  tcb.rcv_nxt = seq + len;
  ooo_take();
  wakeup(&tcb);
  if (tcb.fin_seen && tcb.rcv_nxt == tcb.fin_seq) { /* the FIN, in order: the stream ends */
    tcb.rcv_nxt++;
    tcb.state = CLOSE_WAIT;
    tcp_send(0);
  } else if (filled_gap || ++tcb.unacked >= 2) {
    tcp_send(0); /* every second segment, and at once when a gap closes (RFC 5681 4.2) */
  } else if (!tcb.ack_pending) {
    tcb.ack_pending = 1;
    tcb.ack_due = ticks_now() + DELACK_TICKS;
  }
}

/* A segment of our connection (RFC 793 p. 69 ff., "SEGMENT ARRIVES", otherwise). */
static void tcp_conn_input(const struct eth_hdr *eth, const struct ip_hdr *ip,
                           const struct tcp_hdr *th, const u8 *data, u32 len) {
  u32 seq = net32(th->seq), ack = net32(th->ack);
  u8 flags = th->flags;
  if (flags & TCP_RST) {
    /* Only a reset inside the window counts (RFC 5961 section 3 would want it exact). */
    if (seq_le(tcb.rcv_nxt, seq) && seq_lt(seq, tcb.rcv_nxt + rcv_window() + 1)) {
      tcb.state = LISTEN;
      tcb.ack_pending = 0;
      tcb.reset = 1;
      wakeup(&tcb);
    } else {
      net_counters.dropped++;
    }
    return;
  }
  if (flags & TCP_SYN) {
    if (tcb.state == SYN_RCVD && seq == tcb.irs) {
      tcp_send(TCP_SYN); /* our SYN-ACK was lost: the peer sent its SYN again */
    } else {
      net_counters.dropped++;
      tcp_send(0); /* RFC 5961 section 4: a challenge ACK */
    }
    return;
  }
  if (!(flags & TCP_ACK)) {
    net_counters.dropped++;
    return;
  }
  if (tcb.state == SYN_RCVD) {
    if (ack != tcb.iss + 1) {
      net_counters.dropped++;
      tcp_reset(eth, ip, th, len + !!(flags & TCP_FIN));
      return;
    }
    tcb.state = ESTABLISHED;
  }
  if (tcb.state == LAST_ACK && ack == tcb.iss + 2) {
    tcb.state = LISTEN; /* our FIN is acknowledged: the connection is gone */
    return;
  }
  if (!len && !(flags & TCP_FIN)) return; /* a bare ACK: we send no data, nothing to do */
  if (tcb.state == ESTABLISHED) {
    tcp_data(seq, data, len, flags & TCP_FIN);
  } else {
    /* The peer's FIN is in: whatever still comes is a retransmission. Tell it again. */
    net_counters.duplicates++;
    tcp_send(tcb.state == LAST_ACK ? TCP_FIN : 0);
  }
}

void tcp_input(const struct eth_hdr *eth, const struct ip_hdr *ip, const u8 *seg, u32 len) {
  const struct tcp_hdr *th = (const struct tcp_hdr *)seg;
  u32 hlen = len >= sizeof *th ? (u32)(th->off >> 4) * 4 : 0;
  if (hlen < sizeof *th || hlen > len) {
    net_counters.dropped++;
    return;
  }
  if (tcp_checksum(ip->src, ip->dst, seg, len) != 0) {
    net_counters.bad_checksum++;
    return;
  }
  u8 flags = th->flags;
  u32 dlen = len - hlen;
  int to_port = th->dport == net16(LISTEN_PORT);
  if (to_port && tcb.state != LISTEN && ip->src == tcb.peer_ip && th->sport == tcb.peer_port) {
    tcp_conn_input(eth, ip, th, seg + hlen, dlen);
    return;
  }
  if (to_port && tcb.state == LISTEN && (flags & (TCP_SYN | TCP_ACK | TCP_RST)) == TCP_SYN) {
    tcp_accept(eth, ip, th, hlen);
    return;
  }
  /* A closed port, or a second connection while we serve one. */
  net_counters.dropped++;
  tcp_reset(eth, ip, th, dlen + !!(flags & TCP_SYN) + !!(flags & TCP_FIN));
}

void tcp_tick(u32 now) {
  if (tcb.ack_pending && (i32)(now - tcb.ack_due) >= 0) tcp_send(0);
  if (tcb.state == LAST_ACK && now - tcb.fin_tick >= FIN_RETRY_TICKS) {
    if (tcb.fin_tries++ >= FIN_TRIES) {
      tcb.state = LISTEN; /* the peer is gone; give up on its ACK */
    } else {
      tcb.fin_tick = now;
      tcp_send(TCP_FIN);
    }
  }
}

/* The first half of recv: waits until the connection on port 5001 has data and returns how
 * many bytes (at most n) tcp_recv_copy may take; 0 once the peer has closed and everything is
 * read (our own FIN goes out then); -errno on a reset, a kill, or without a network. */
int tcp_recv_wait(u32 n) {
  if (!dp83820_mac()) return -ENETDOWN;
  for (;;) {
    if (tcb.reset) {
      tcb.reset = 0;
      return -ECONNRESET;
    }
    if (tcb.state >= ESTABLISHED) {
      u32 data_end = tcb.state == ESTABLISHED ? tcb.rcv_nxt : tcb.fin_seq;
      u32 avail = data_end - tcb.read_seq;
      if (avail) return (int)(n < avail ? n : avail);
      if (tcb.state == CLOSE_WAIT) { /* all read: close our side too */
        tcb.state = LAST_ACK;
        tcb.fin_tick = ticks_now();
        tcb.fin_tries = 1;
        tcp_send(TCP_FIN);
      }
      if (tcb.state == LAST_ACK) return 0;
    }
    if (myproc()->killed) return -EINTR;
    sleep_on(&tcb);
  }
}

/* The second half: copies n bytes (no more than tcp_recv_wait allowed) to dst, a checked user
 * address, and tells the sender about the room that made. Nothing can run in between: the
 * kernel keeps interrupts off. */
void tcp_recv_copy(void *dst, u32 n) {
  u32 pos = (tcb.read_seq - tcb.irs - 1) & (RCVBUF - 1), first = RCVBUF - pos;
  if (first > n) first = n;
  memcpy(dst, rcvbuf + pos, first);
  memcpy((u8 *)dst + first, rcvbuf, n - first);
  tcb.read_seq += n;
  /* A window update only when the sender's view of our window has got small and the room we
   * made is worth it (RFC 1122 4.2.3.3: not for every few bytes). */
  u32 left = tcb.rcv_adv - tcb.rcv_nxt;
  if (tcb.state == ESTABLISHED && left < tcb.wnd_max / 2 && rcv_window() >= left + 2 * TCP_MSS)
    tcp_send(0);
}
