/*
 * The network stack below TCP: Ethernet II framing, ARP (RFC 826) for our one address, IPv4
 * (RFC 791: header checksum verified, no options sent, fragments dropped and counted) and ICMP
 * echo (RFC 792). The DP83820 driver calls eth_input from its interrupt handler for every frame
 * it receives (the NIC has already stripped the FCS); everything here runs with interrupts off,
 * so it needs no locks. tcp.c does the rest.
 */
#include "defs.h"
#include "net.h"
#include "syscall.h"

struct net_counters net_counters;

static const u8 *our_mac;
static u16 ip_id;

/* The one frame we build at a time (IRQs are off in the kernel, so nothing can interleave). */
static u8 txframe[ETH_HLEN + NET_MTU];

/* Unaligned 16- and 32-bit loads: x86 allows them, and the checksum walks packet data at any
 * offset. */
typedef u16 u16_unaligned __attribute__((aligned(1), may_alias));
typedef u32 u32_unaligned __attribute__((aligned(1), may_alias));

u32 inet_sum(const void *p, u32 len, u32 sum) {
  const u8 *b = p;
  u64 acc = sum;
  /* 32-bit words add up to the same folded sum as 16-bit ones (2^16 = 1 mod 0xffff). */
  for (; len >= 16; b += 16, len -= 16)
    acc += (u64) * (const u32_unaligned *)b + *(const u32_unaligned *)(b + 4) +
           *(const u32_unaligned *)(b + 8) + *(const u32_unaligned *)(b + 12);
  for (; len >= 4; b += 4, len -= 4) acc += *(const u32_unaligned *)b;
  if (len >= 2) acc += *(const u16_unaligned *)b, b += 2, len -= 2;
  if (len) acc += *b; /* the odd last byte is the high half of a zero-padded word */
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return (u32)acc;
}

/* ---- ARP: a few learned neighbours (there is one peer on this link) ---- */

#define ARP_ENTRIES 4

struct arp_pkt {
  u16 htype, ptype;
  u8 hlen, plen;
  u16 op;
  u8 sha[6];
  u32 spa;
  u8 tha[6];
  u32 tpa;
} __attribute__((packed));

static struct {
  u32 ip; /* network order; 0 = unused */
  u8 mac[6];
} arp_cache[ARP_ENTRIES];
static u32 arp_victim;

const u8 *arp_lookup(u32 ip) {
  for (int i = 0; i < ARP_ENTRIES; i++)
    if (arp_cache[i].ip == ip) return arp_cache[i].mac;
  return 0;
}

/* RFC 826 "merge": refresh a known sender; learn a new one only when it talked to us. */
static void arp_learn(u32 ip, const u8 *mac, int to_us) {
  int slot = -1;
  for (int i = 0; i < ARP_ENTRIES && slot < 0; i++)
    if (arp_cache[i].ip == ip) slot = i;
  if (slot < 0) {
    if (!to_us) return;
    slot = arp_victim++ % ARP_ENTRIES;
  }
  arp_cache[slot].ip = ip;
  memcpy(arp_cache[slot].mac, mac, 6);
}

static void arp_input(const u8 *f, u32 len) {
  const struct arp_pkt *a = (const struct arp_pkt *)(f + ETH_HLEN);
  if (len < ETH_HLEN + sizeof *a || a->htype != net16(1) || a->ptype != net16(ETHERTYPE_IP) ||
      a->hlen != 6 || a->plen != 4) {
    net_counters.dropped++;
    return;
  }
  int to_us = a->tpa == net32(NET_OUR_IP_HOST);
  if (a->spa) arp_learn(a->spa, a->sha, to_us);
  if (!to_us || a->op != net16(1)) {
    if (!to_us) net_counters.dropped++;
    return;
  }
  /* A request for our address: answer the asker directly. */
  struct eth_hdr *e = (struct eth_hdr *)txframe;
  struct arp_pkt *r = (struct arp_pkt *)(txframe + ETH_HLEN);
  memcpy(e->dst, a->sha, 6);
  memcpy(e->src, our_mac, 6);
  e->type = net16(ETHERTYPE_ARP);
  r->htype = net16(1);
  r->ptype = net16(ETHERTYPE_IP);
  r->hlen = 6;
  r->plen = 4;
  r->op = net16(2);
  memcpy(r->sha, our_mac, 6);
  r->spa = net32(NET_OUR_IP_HOST);
  memcpy(r->tha, a->sha, 6);
  r->tpa = a->spa;
  if (dp83820_send(txframe, ETH_HLEN + sizeof *r) < 0) net_counters.tx_full++;
}

/* ---- IPv4 ---- */

u8 *net_tx_payload(void) { return txframe + ETH_HLEN + IP_HLEN; }

int ip_send(const u8 *dst_mac, u32 dst_ip, u8 proto, u32 len) {
  struct eth_hdr *e = (struct eth_hdr *)txframe;
  struct ip_hdr *ip = (struct ip_hdr *)(txframe + ETH_HLEN);
  if (len > NET_MTU - IP_HLEN) return -EINVAL;
  memcpy(e->dst, dst_mac, 6);
  memcpy(e->src, our_mac, 6);
  e->type = net16(ETHERTYPE_IP);
  ip->vhl = 0x45;
  ip->tos = 0;
  ip->len = net16((u16)(IP_HLEN + len));
  ip->id = net16(ip_id++);
  ip->frag = net16(0x4000); /* DF: we never fragment */
  ip->ttl = 64;
  ip->proto = proto;
  ip->sum = 0;
  ip->src = net32(NET_OUR_IP_HOST);
  ip->dst = dst_ip;
  ip->sum = inet_fold(inet_sum(ip, IP_HLEN, 0));
  int r = dp83820_send(txframe, ETH_HLEN + IP_HLEN + len);
  if (r < 0) net_counters.tx_full++;
  return r;
}

/* ICMP echo request -> echo reply with the same identifier, sequence and data. */
static void icmp_input(const struct eth_hdr *eth, const struct ip_hdr *ip, const u8 *msg, u32 len) {
  if (len < 8 || inet_fold(inet_sum(msg, len, 0)) != 0) {
    if (len < 8) net_counters.dropped++;
    else net_counters.bad_checksum++;
    return;
  }
  if (msg[0] != 8 || msg[1] != 0) { /* not an echo request: nothing else is for us */
    net_counters.dropped++;
    return;
  }
  u8 *r = net_tx_payload();
  memcpy(r, msg, len);
  r[0] = 0; /* echo reply */
  r[2] = r[3] = 0;
  *(u16 *)(r + 2) = inet_fold(inet_sum(r, len, 0));
  const u8 *mac = arp_lookup(ip->src);
  ip_send(mac ? mac : eth->src, ip->src, IPPROTO_ICMP, len);
}

static void ip_input(const struct eth_hdr *eth, const u8 *pkt, u32 len) {
  const struct ip_hdr *ip = (const struct ip_hdr *)pkt;
  u32 hlen = (ip->vhl & 0xf) * 4, total = len >= IP_HLEN ? net16(ip->len) : 0;
  /* Everything here came off the wire: no length is trusted until checked against the frame. */
  if (len < IP_HLEN || ip->vhl >> 4 != 4 || hlen < IP_HLEN || total < hlen || total > len) {
    net_counters.dropped++;
    return;
  }
  if (inet_fold(inet_sum(ip, hlen, 0)) != 0) {
    net_counters.bad_checksum++;
    return;
  }
  if (ip->dst != net32(NET_OUR_IP_HOST)) {
    net_counters.dropped++;
    return;
  }
  if (net16(ip->frag) & 0x3fff) { /* MF set or a non-zero offset: a fragment */
    net_counters.fragments++;
    net_counters.dropped++;
    return;
  }
  /* Ethernet pads short frames to 60 bytes: the IP length says where the packet ends. */
  const u8 *payload = pkt + hlen;
  u32 plen = total - hlen;
  if (ip->proto == IPPROTO_TCP) tcp_input(eth, ip, payload, plen);
  else if (ip->proto == IPPROTO_ICMP) icmp_input(eth, ip, payload, plen);
  else net_counters.dropped++;
}

/* ---- Ethernet ---- */

static void eth_input(const u8 *f, u32 len) {
  const struct eth_hdr *e = (const struct eth_hdr *)f;
  net_counters.rx_frames++;
  if (e->type == net16(ETHERTYPE_IP)) {
    ip_input(e, f + ETH_HLEN, len - ETH_HLEN);
  } else if (e->type == net16(ETHERTYPE_ARP)) {
    arp_input(f, len);
  } else {
    dp83820_log_frame(f, len); /* the driver shows the first few frames nobody takes */
    net_counters.dropped++;
  }
}

void net_init(void) {
  our_mac = dp83820_mac();
  if (!our_mac) return;
  dp83820_set_receiver(eth_input);
}

void net_tick(u32 now) {
  if (our_mac) tcp_tick(now);
}

/* One line with the counters the benchmark reads (printed when init exits). Frames the driver
 * threw away (bad FCS, too long) count as received and dropped. */
void net_report(void) {
  if (!our_mac) return;
  const struct net_counters *c = &net_counters;
  u32 errors = dp83820_stats()->rx_errors;
  kprintf("net: rx frames %u, bad checksum %u, dropped %u, out-of-order %u, acks %u\n",
          c->rx_frames + errors, c->bad_checksum, c->dropped + errors, c->out_of_order, c->acks);
}
