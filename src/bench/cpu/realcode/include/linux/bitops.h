/* Stand-in for <linux/bitops.h>: the rotates sha256.c uses. */
#ifndef REALCODE_BITOPS_H
#define REALCODE_BITOPS_H
#include <linux/types.h>
static inline u32 rol32(u32 w, unsigned int s) { return (w << (s & 31)) | (w >> ((-s) & 31)); }
static inline u32 ror32(u32 w, unsigned int s) { return (w >> (s & 31)) | (w << ((-s) & 31)); }
/* The index of the lowest set bit (undefined for 0, as the kernel's). */
static inline unsigned long __ffs(unsigned long w) { return (unsigned long)__builtin_ctzl(w); }
#endif
