/* The few string functions the kernel needs; gcc may also call memset/memcpy on its own. */
#include "defs.h"

void *memset(void *d, int c, size_t n) {
  u8 *p = d;
  while (n--) *p++ = (u8)c;
  return d;
}

/* Four bytes a step once the destination is aligned (x86 reads unaligned words; the source
 * rarely shares the alignment): the network stack copies every byte it receives through here
 * twice, into the socket buffer and out to the reader. */
typedef u32 u32_unaligned __attribute__((aligned(1), may_alias));

void *memcpy(void *d, const void *s, size_t n) {
  u8 *dp = d;
  const u8 *sp = s;
  for (; n && ((u32)dp & 3); n--) *dp++ = *sp++;
  for (; n >= 16; n -= 16, dp += 16, sp += 16) {
    u32 a = *(const u32_unaligned *)sp, b = *(const u32_unaligned *)(sp + 4);
    u32 c = *(const u32_unaligned *)(sp + 8), e = *(const u32_unaligned *)(sp + 12);
    ((u32 *)dp)[0] = a;
    ((u32 *)dp)[1] = b;
    ((u32 *)dp)[2] = c;
    ((u32 *)dp)[3] = e;
  }
  for (; n >= 4; n -= 4, dp += 4, sp += 4) *(u32 *)dp = *(const u32_unaligned *)sp;
  while (n--) *dp++ = *sp++;
  return d;
}

void *memmove(void *d, const void *s, size_t n) {
  u8 *dp = d;
  const u8 *sp = s;
  if (dp < sp) {
    while (n--) *dp++ = *sp++;
  } else {
    dp += n;
    sp += n;
    while (n--) *--dp = *--sp;
  }
  return d;
}

int memcmp(const void *a, const void *b, size_t n) {
  const u8 *x = a, *y = b;
  for (; n; n--, x++, y++)
    if (*x != *y) return *x - *y;
  return 0;
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
  for (; n; n--, a++, b++) {
    if (*a != *b) return (u8)*a - (u8)*b;
    if (!*a) return 0;
  }
  return 0;
}

/* Copy at most n-1 bytes and always terminate. */
char *strlcpy_(char *d, const char *s, size_t n) {
  size_t i = 0;
  if (n == 0) return d;
  for (; i < n - 1 && s[i]; i++) d[i] = s[i];
  d[i] = 0;
  return d;
}
