/*
 * flood: a client that sends as fast as its network device takes frames — the driver reuse
 * benchmark's misbehaving client (README, "Isolation"). It builds one IPv4/UDP datagram to a
 * station on the wire, with its own source address, and hands it to the kernel with sendframe
 * (kernel/rawnet.c) again and again; when the transmit ring is full it tries again at once, so
 * the ring stays full and the program uses all the CPU its VM gets.
 *
 *   flood FROM TO MAC [BYTES [COUNT [spin]]]
 *
 * FROM and TO are dotted IPv4 addresses (its own, the receiver's), MAC the receiver's Ethernet
 * address (aa:bb:cc:dd:ee:ff; the kernel writes the source MAC), BYTES the UDP payload (18 to
 * 1472, default 1472: full-sized frames), COUNT the frames to send before it stops (default 0:
 * never); then it idles for good (a sleep, again and again), so its VM stays a client of the
 * driver VM with the interface in raw mode: `flood FROM TO MAC 18 1` is a quiet client that
 * does not answer for the guest's address. With `spin` after a COUNT it computes for good instead
 * of idling (a loop that never blocks): `flood FROM TO MAC 18 1 spin` is a client that wants all
 * the CPU its VM gets and sends nothing, the control that tells what a flood costs the others
 * through the driver VM from what any busy VM costs them through the scheduler. It prints one
 * line when the first frame has gone and, with a COUNT, one when it stops:
 *
 *   flood: sending 1514-byte frames from 10.0.2.16 to 10.0.2.2
 *   flood: sent N frames, transmit ring full M times
 *
 * Bad arguments, or a device that refuses a frame for another reason, print one line and exit
 * with 2 or 1.
 */
#include "user.h"

#define ETH_HLEN 14
#define IP_HLEN 20
#define UDP_HLEN 8
#define FLOOD_PORT 9 /* discard (RFC 863) */

static u8 frame[ETH_HLEN + 1500];

static int parse_ip(const char *s, u32 *ip) {
  u32 v = 0;
  for (int part = 0; part < 4; part++) {
    u32 n = 0;
    int digits = 0;
    for (; *s >= '0' && *s <= '9' && digits < 4; s++, digits++) n = n * 10 + (u32)(*s - '0');
    if (digits == 0 || n > 255 || *s != (part < 3 ? '.' : 0)) return -1;
    if (part < 3) s++;
    v = v << 8 | n;
  }
  *ip = v;
  return 0;
}

static int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int parse_mac(const char *s, u8 *mac) {
  for (int k = 0; k < 6; k++) {
    int hi = hex(s[0]), lo = hex(s[1]);
    if (hi < 0 || lo < 0 || s[2] != (k < 5 ? ':' : 0)) return -1;
    mac[k] = (u8)(hi << 4 | lo);
    s += 3;
  }
  return 0;
}

static void put16(u8 *p, u32 v) {
  p[0] = (u8)(v >> 8);
  p[1] = (u8)v;
}

static void put32(u8 *p, u32 v) {
  put16(p, v >> 16);
  put16(p + 2, v);
}

/* The IPv4 header checksum (RFC 791): the one's-complement sum of its 16-bit words. */
static u32 ip_checksum(const u8 *h) {
  u32 sum = 0;
  for (int k = 0; k < IP_HLEN; k += 2) sum += (u32)h[k] << 8 | h[k + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return ~sum & 0xffff;
}

static void usage(const char *why) {
  printf("flood: %s (usage: flood FROM TO MAC [BYTES [COUNT [spin]]])\n", why);
  exit(2);
}

int main(int argc, char **argv) {
  u32 from, to;
  u8 mac[6];
  if (argc < 4 || argc > 7) usage("wrong number of arguments");
  if (parse_ip(argv[1], &from) < 0 || parse_ip(argv[2], &to) < 0) usage("bad IPv4 address");
  if (parse_mac(argv[3], mac) < 0) usage("bad MAC address");
  int bytes = argc > 4 ? atoi(argv[4]) : 1472;
  if (bytes < 18 || bytes > 1472) usage("BYTES must be 18 to 1472");
  int count = argc > 5 ? atoi(argv[5]) : 0;
  if (count < 0) usage("COUNT must not be negative");
  int spin = argc > 6;
  if (spin && (strcmp(argv[6], "spin") != 0 || count == 0))
    usage("the last word must be spin, after a COUNT");

  u8 *ip = frame + ETH_HLEN, *udp = ip + IP_HLEN;
  int len = ETH_HLEN + IP_HLEN + UDP_HLEN + bytes;
  memcpy(frame, mac, 6); /* the source MAC is the kernel's to write */
  put16(frame + 12, 0x0800);
  ip[0] = 0x45;
  put16(ip + 2, (u32)(IP_HLEN + UDP_HLEN + bytes));
  put16(ip + 6, 0x4000); /* DF */
  ip[8] = 64;
  ip[9] = 17; /* UDP */
  put32(ip + 12, from);
  put32(ip + 16, to);
  put16(udp, FLOOD_PORT);
  put16(udp + 2, FLOOD_PORT);
  put16(udp + 4, (u32)(UDP_HLEN + bytes)); /* checksum 0: none (RFC 768) */
  for (int k = 0; k < bytes; k++) udp[UDP_HLEN + k] = (u8)k;

  u32 sent = 0, full = 0;
  for (u32 id = 0; count == 0 || sent < (u32)count; id++) {
    put16(ip + 4, id);
    put16(ip + 10, 0);
    put16(ip + 10, ip_checksum(ip));
    int r;
    while ((r = syscall3(SYS_sendframe, (int)frame, len, 0)) == -EAGAIN) full++;
    if (r < 0) {
      printf("flood: the device refused a frame with error %d after %u frames\n", -r, sent);
      return 1;
    }
    if (sent++ == 0)
      printf("flood: sending %d-byte frames from %s to %s\n", len, argv[1], argv[2]);
  }
  printf("flood: sent %u frames, transmit ring full %u times\n", sent, full);
  if (spin) {
    printf("flood: spinning\n");
    for (volatile u32 n = 0;; n++) {
    }
  }
  for (;;) sleep(1000);
}
