/*
 * What the pieces of the network stack (net.c: Ethernet, ARP, IPv4, ICMP; tcp.c: TCP receive)
 * share: wire formats, byte order, the Internet checksum, the counters. Addresses are kept in
 * network byte order wherever they sit in a packet; host-order constants say so in their name.
 */
#ifndef GUEST_NET_H
#define GUEST_NET_H

#include "types.h"

/* This machine and its network (the contract in the project's notes). */
#define NET_OUR_IP_HOST 0x0a00020fu /* 10.0.2.15 */
#define NET_MTU 1500
#define ETH_HLEN 14
#define IP_HLEN 20 /* we send no IP options */
#define TCP_MSS (NET_MTU - IP_HLEN - 20)

#define ETHERTYPE_IP 0x0800
#define ETHERTYPE_ARP 0x0806
#define IPPROTO_ICMP 1
#define IPPROTO_TCP 6

static inline u16 net16(u16 v) { return (u16)(v << 8 | v >> 8); }
static inline u32 net32(u32 v) {
  return v << 24 | (v & 0xff00) << 8 | (v >> 8 & 0xff00) | v >> 24;
}

struct eth_hdr {
  u8 dst[6], src[6];
  u16 type;
} __attribute__((packed));

/* RFC 791 section 3.1 */
struct ip_hdr {
  u8 vhl, tos;
  u16 len, id, frag; /* frag: flags (DF 0x4000, MF 0x2000) and offset in 8-byte units */
  u8 ttl, proto;
  u16 sum;
  u32 src, dst;
} __attribute__((packed));

/* RFC 793 section 3.1 */
struct tcp_hdr {
  u16 sport, dport;
  u32 seq, ack;
  u8 off; /* data offset in 32-bit words, high nibble */
  u8 flags;
  u16 win, sum, urp;
} __attribute__((packed));

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10

/* Everything the stack counts; `net:` prints the first five the way the benchmark reads them. */
struct net_counters {
  u32 rx_frames;    /* frames the driver handed to the stack */
  u32 bad_checksum; /* IPv4 header, ICMP or TCP checksum wrong: dropped */
  u32 dropped;      /* frames and segments thrown away for any other reason */
  u32 out_of_order; /* TCP segments that arrived ahead of a gap (kept) */
  u32 acks;         /* TCP segments we sent carrying ACK */
  u32 fragments;    /* IPv4 fragments (also counted in dropped: we do not reassemble) */
  u32 duplicates;   /* TCP segments whose data we had already (re-ACKed) */
  u32 resets;       /* RSTs we sent */
  u32 tx_full;      /* frames not sent because the transmit ring was full */
};
extern struct net_counters net_counters;

/* The one's-complement sum of RFC 1071 over memory in network order: add partial sums with
 * inet_sum(p, len, sum), finish with inet_fold. A packet whose checksum field is included
 * checks out when inet_fold(...) == 0. */
u32 inet_sum(const void *p, u32 len, u32 sum);
static inline u16 inet_fold(u32 sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return (u16)~sum;
}

/* net.c: room for an IP payload of up to NET_MTU - IP_HLEN bytes in the one transmit frame,
 * then ip_send to wrap it in IPv4 and Ethernet headers and hand it to the NIC. */
u8 *net_tx_payload(void);
int ip_send(const u8 *dst_mac, u32 dst_ip, u8 proto, u32 len);
const u8 *arp_lookup(u32 ip);

/* tcp.c */
void tcp_input(const struct eth_hdr *eth, const struct ip_hdr *ip, const u8 *seg, u32 len);
void tcp_tick(u32 now);

#endif
