/* Fixed-width types shared by the kernel and user programs (freestanding: no libc). */
#ifndef GUEST_TYPES_H
#define GUEST_TYPES_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef signed int i32;
typedef signed long long i64;
typedef unsigned int size_t;
typedef int ssize_t;

#define NULL ((void *)0)

#endif
