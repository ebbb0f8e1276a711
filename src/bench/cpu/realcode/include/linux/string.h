/* Stand-in for <linux/string.h>: the C library calls, defined in main.c. */
#ifndef REALCODE_STRING_H
#define REALCODE_STRING_H
#include <linux/types.h>
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
void *memset(void *d, int c, size_t n);
static inline void memzero_explicit(void *s, size_t n)
{
	memset(s, 0, n);
	__asm__ volatile("" : : "r"(s) : "memory");
}
#endif
