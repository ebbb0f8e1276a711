/*
 * netserver for the Linux guest: the receiving end of the netperf-style benchmark, with the same
 * protocol and result line as the project's own kernel's (guest/user/netserver.c), over Linux's
 * own sockets and TCP. Listens on TCP port 5001 with a 256 KB receive buffer (the seed's netperf
 * setting: SO_RCVBUFFORCE, so net.core.rmem_max does not cap it; Linux doubles it for its
 * bookkeeping, as for netperf -S 256K), accepts one connection and reads until the sender closes
 * it. The stream is N payload bytes and a 12-byte trailer: "PVCK", N as u32 little-endian, the
 * CRC-32 of the payload as u32 little-endian. Prints one line and exits with 0 when the
 * payload's CRC and length match the trailer, 1 otherwise:
 *   netserver: received N bytes in T ms, crc32 XXXXXXXX ok
 *   netserver: received N bytes in T ms, crc32 XXXXXXXX MISMATCH expected YYYYYYYY
 */
#include "lib.h"

#define PORT 5001
#define CHUNK (64 * 1024)
#define TRAILER 12
#define SOCKET_BUFFER (256 * 1024)

static u8 buf[CHUNK];

/* The last TRAILER bytes seen so far are held back; everything before them is payload. */
static u8 tail[TRAILER];
static u32 tail_len, crc = 0xffffffffu;

static void take(const u8 *p, u32 n) {
  if (n >= TRAILER) {
    crc = crc32_update(crc, tail, tail_len);
    crc = crc32_update(crc, p, n - TRAILER);
    memcpy(tail, p + n - TRAILER, TRAILER);
    tail_len = TRAILER;
    return;
  }
  u32 over = tail_len + n > TRAILER ? tail_len + n - TRAILER : 0;
  crc = crc32_update(crc, tail, over);
  for (u32 i = 0; i + over < tail_len; i++) tail[i] = tail[i + over];
  tail_len -= over;
  memcpy(tail + tail_len, p, n);
  tail_len += n;
}

static u32 le32(const u8 *p) { return p[0] | p[1] << 8 | p[2] << 16 | (u32)p[3] << 24; }

static int fail(const char *what, int err) {
  printf("netserver: %s failed with error %d\n", what, -err);
  return 1;
}

int main(void) {
  crc32_init();
  int s = syscall3(SYS_socket, AF_INET, SOCK_STREAM, 0);
  if (s < 0) return fail("socket", s);
  int one = 1, size = SOCKET_BUFFER;
  syscall5(SYS_setsockopt, s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int r = syscall5(SYS_setsockopt, s, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
  if (r < 0) return fail("setsockopt SO_RCVBUFFORCE", r);
  struct sockaddr_in addr = {AF_INET, htons(PORT), 0, {0}};
  if ((r = syscall3(SYS_bind, s, &addr, sizeof addr)) < 0) return fail("bind", r);
  if ((r = syscall2(SYS_listen, s, 1)) < 0) return fail("listen", r);
  int c = syscall4(SYS_accept4, s, 0, 0, 0);
  if (c < 0) return fail("accept", c);

  u32 total = 0, start = 0;
  while ((r = read(c, buf, CHUNK)) > 0) {
    if (!total) start = uptime_ms(); /* the clock starts with the first data */
    take(buf, (u32)r);
    total += (u32)r;
  }
  u32 ms = total ? uptime_ms() - start : 0;
  syscall1(SYS_close, c);
  syscall1(SYS_close, s);
  if (r < 0) {
    printf("netserver: recv failed with error %d after %u bytes\n", -r, total);
    return 1;
  }
  if (tail_len < TRAILER || !(tail[0] == 'P' && tail[1] == 'V' && tail[2] == 'C' && tail[3] == 'K')) {
    crc = crc32_update(crc, tail, tail_len); /* no trailer: all of it was payload */
    printf("netserver: received %u bytes in %u ms, crc32 %08x MISMATCH (no trailer)\n", total, ms,
           ~crc);
    return 1;
  }
  u32 n = total - TRAILER, got = ~crc, len = le32(tail + 4), want = le32(tail + 8);
  if (got == want && len == n) {
    printf("netserver: received %u bytes in %u ms, crc32 %08x ok\n", n, ms, got);
    return 0;
  }
  if (len != n)
    printf("netserver: received %u bytes in %u ms, crc32 %08x MISMATCH expected %08x for %u bytes\n",
           n, ms, got, want, len);
  else
    printf("netserver: received %u bytes in %u ms, crc32 %08x MISMATCH expected %08x\n", n, ms, got,
           want);
  return 1;
}
