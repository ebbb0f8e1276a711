/*
 * netserver: the receiving end of the netperf-style benchmark. Reads the TCP stream on port 5001
 * (the kernel listens there; recv returns its bytes) until the sender closes it. The stream is
 * N payload bytes and a 12-byte trailer: "PVCK", N as u32 little-endian, the CRC-32 (IEEE, as
 * zlib) of the payload as u32 little-endian. Prints one line and exits with 0 when the payload's
 * CRC and length match the trailer, 1 otherwise:
 *   netserver: received N bytes in T ms, crc32 XXXXXXXX ok
 *   netserver: received N bytes in T ms, crc32 XXXXXXXX MISMATCH expected YYYYYYYY
 * (with " for L bytes" when the trailer's length is not N, or "(no trailer)" instead of
 * "expected ..." when the stream does not end in one).
 */
#include "user.h"

#define CHUNK (64 * 1024)
#define TRAILER 12

static u8 buf[CHUNK];

/* CRC-32, reflected polynomial 0xEDB88320, four bytes per step ("slicing by 4"): table[k][b] is
 * the CRC of byte b followed by k zero bytes. */
static u32 table[4][256];

static void crc_init(void) {
  for (u32 n = 0; n < 256; n++) {
    u32 c = n;
    for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
    table[0][n] = c;
  }
  for (u32 n = 0; n < 256; n++)
    for (int k = 1; k < 4; k++) table[k][n] = table[0][table[k - 1][n] & 0xff] ^ (table[k - 1][n] >> 8);
}

/* crc runs inverted: start with 0xffffffff, invert at the end. */
static u32 crc_update(u32 crc, const u8 *p, u32 n) {
  for (; n && ((u32)p & 3); n--) crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
  for (; n >= 4; n -= 4, p += 4) {
    crc ^= *(const u32 *)p; /* little-endian: the first byte is the low one */
    crc = table[3][crc & 0xff] ^ table[2][(crc >> 8) & 0xff] ^ table[1][(crc >> 16) & 0xff] ^
          table[0][crc >> 24];
  }
  for (; n; n--) crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return crc;
}

/* The last TRAILER bytes seen so far are held back; everything before them is payload. */
static u8 tail[TRAILER];
static u32 tail_len, crc = 0xffffffffu;

static void take(const u8 *p, u32 n) {
  if (n >= TRAILER) {
    crc = crc_update(crc, tail, tail_len);
    crc = crc_update(crc, p, n - TRAILER);
    memcpy(tail, p + n - TRAILER, TRAILER);
    tail_len = TRAILER;
    return;
  }
  u32 over = tail_len + n > TRAILER ? tail_len + n - TRAILER : 0;
  crc = crc_update(crc, tail, over);
  for (u32 i = 0; i + over < tail_len; i++) tail[i] = tail[i + over];
  tail_len -= over;
  memcpy(tail + tail_len, p, n);
  tail_len += n;
}

static u32 le32(const u8 *p) { return p[0] | p[1] << 8 | p[2] << 16 | (u32)p[3] << 24; }

int main(void) {
  crc_init();
  u32 total = 0, start = 0;
  int r;
  while ((r = recv(buf, CHUNK)) > 0) {
    if (!total) start = uptime(); /* the clock starts with the first data */
    take(buf, (u32)r);
    total += (u32)r;
  }
  u32 ms = total ? uptime() - start : 0;
  if (r < 0) {
    printf("netserver: recv failed with error %d after %u bytes\n", -r, total);
    return 1;
  }
  if (tail_len < TRAILER || !(tail[0] == 'P' && tail[1] == 'V' && tail[2] == 'C' && tail[3] == 'K')) {
    crc = crc_update(crc, tail, tail_len); /* no trailer: all of it was payload */
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
