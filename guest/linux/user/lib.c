/* The guest programs' C library (lib.h). */
#include "lib.h"

int write(int fd, const void *buf, size_t n) { return syscall3(SYS_write, fd, buf, n); }
int read(int fd, void *buf, size_t n) { return syscall3(SYS_read, fd, buf, n); }
void exit(int status) {
  for (;;) syscall1(SYS_exit_group, status);
}

int printf(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n > (int)sizeof buf - 1) n = sizeof buf - 1;
  return write(1, buf, n);
}

size_t strlen(const char *s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}
int strcmp(const char *a, const char *b) {
  while (*a && *a == *b) a++, b++;
  return (u8)*a - (u8)*b;
}
int strncmp(const char *a, const char *b, size_t n) {
  for (; n && *a && *a == *b; n--) a++, b++;
  return n ? (u8)*a - (u8)*b : 0;
}
void *memset(void *d, int c, size_t n) {
  u8 *p = d;
  while (n--) *p++ = (u8)c;
  return d;
}
void *memcpy(void *d, const void *s, size_t n) {
  u8 *p = d;
  const u8 *q = s;
  while (n--) *p++ = *q++;
  return d;
}
int memcmp(const void *a, const void *b, size_t n) {
  const u8 *p = a, *q = b;
  for (; n; n--, p++, q++)
    if (*p != *q) return *p - *q;
  return 0;
}
unsigned int atou(const char *s) {
  unsigned int v = 0;
  while (*s >= '0' && *s <= '9') v = v * 10 + (*s++ - '0');
  return v;
}

unsigned int uptime_ms(void) {
  struct timespec64 t;
  if (syscall2(SYS_clock_gettime64, CLOCK_MONOTONIC, &t) < 0) return 0;
  return t.sec_lo * 1000u + t.nsec_lo / 1000000u;
}

unsigned int uptime_us(void) {
  struct timespec64 t;
  if (syscall2(SYS_clock_gettime64, CLOCK_MONOTONIC, &t) < 0) return 0;
  return t.sec_lo * 1000000u + t.nsec_lo / 1000u;
}

u16 htons(u16 v) { return (u16)(v << 8 | v >> 8); }
u32 htonl(u32 v) { return v << 24 | (v & 0xff00) << 8 | (v >> 8 & 0xff00) | v >> 24; }

u32 parse_ipv4(const char *s) {
  u32 a = 0;
  for (int k = 0; k < 4; k++) {
    if (*s < '0' || *s > '9') return 0;
    u32 part = 0;
    while (*s >= '0' && *s <= '9') part = part * 10 + (u32)(*s++ - '0');
    if (part > 255 || (k < 3 && *s++ != '.')) return 0;
    a = a << 8 | part;
  }
  return *s ? 0 : htonl(a);
}

/* CRC-32, reflected polynomial 0xEDB88320, four bytes per step ("slicing by 4"), as
 * guest/user/netserver.c: table[k][b] is the CRC of byte b followed by k zero bytes. */
static u32 table[4][256];

void crc32_init(void) {
  for (u32 n = 0; n < 256; n++) {
    u32 c = n;
    for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
    table[0][n] = c;
  }
  for (u32 n = 0; n < 256; n++)
    for (int k = 1; k < 4; k++) table[k][n] = table[0][table[k - 1][n] & 0xff] ^ (table[k - 1][n] >> 8);
}

u32 crc32_update(u32 crc, const u8 *p, u32 n) {
  for (; n && ((u32)p & 3); n--) crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
  for (; n >= 4; n -= 4, p += 4) {
    crc ^= *(const u32 *)p;
    crc = table[3][crc & 0xff] ^ table[2][(crc >> 8) & 0xff] ^ table[1][(crc >> 16) & 0xff] ^
          table[0][crc >> 24];
  }
  for (; n; n--) crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return crc;
}
