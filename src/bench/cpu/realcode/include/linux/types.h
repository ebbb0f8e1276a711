/* The benchmark's stand-in for the kernel's <linux/types.h>: what lib/lz4, lib/sort.c and
 * lib/crypto/sha256.c use, for freestanding i686 code (ILP32). */
#ifndef REALCODE_TYPES_H
#define REALCODE_TYPES_H
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef signed char s8;
typedef short s16;
typedef int s32;
typedef long long s64;
typedef u8 __u8;
typedef u16 __u16;
typedef u32 __u32;
typedef u64 __u64;
typedef u32 __be32;
typedef u64 __be64;
typedef unsigned int size_t;
typedef int ssize_t;
typedef unsigned long uintptr_t;
typedef u8 uint8_t;
typedef u16 uint16_t;
typedef u32 uint32_t;
typedef u64 uint64_t;
typedef s32 int32_t;
typedef _Bool bool;
#define __LITTLE_ENDIAN 1234
#define true 1
#define false 0
#define NULL ((void *)0)
#define BITS_PER_LONG 32
#define __always_inline inline __attribute__((__always_inline__))
#define noinline __attribute__((__noinline__))
#define __attribute_const__ __attribute__((__const__))
#define __pure __attribute__((__pure__))
#define fallthrough __attribute__((__fallthrough__))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define __init
#define __exit
#define __initdata
#define IS_ENABLED(option) 0
/* lib/sort.c's callback types (<linux/types.h> has them in the kernel). */
typedef int (*cmp_r_func_t)(const void *a, const void *b, const void *priv);
typedef void (*swap_r_func_t)(void *a, void *b, int size, const void *priv);
typedef int (*cmp_func_t)(const void *a, const void *b);
typedef void (*swap_func_t)(void *a, void *b, int size);
#endif
