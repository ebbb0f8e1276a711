/*
 * The guest's programs' C library: Linux i386 system calls (int $0x80, numbers from the kernel's
 * arch/x86/entry/syscalls/syscall_32.tbl) and the little else init and netserver use. Built
 * freestanding and static, without glibc (whose static libc.a from Debian is built with CET
 * and starts with endbr32, which is fine on previrt now but brings 700 KB per program).
 */
#ifndef LINUX_GUEST_LIB_H
#define LINUX_GUEST_LIB_H

#include <stdarg.h>
#include "fmt.h"

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef unsigned int size_t;

#define SYS_exit 1
#define SYS_fork 2
#define SYS_read 3
#define SYS_write 4
#define SYS_open 5
#define SYS_close 6
#define SYS_execve 11
#define SYS_getpid 20
#define SYS_pause 29
#define SYS_pipe 42
#define SYS_ioctl 54
#define SYS_reboot 88
#define SYS_ioperm 101
#define SYS_wait4 114
#define SYS_uname 122
#define SYS_poll 168
#define SYS_exit_group 252
#define SYS_socket 359
#define SYS_bind 361
#define SYS_connect 362
#define SYS_listen 363
#define SYS_accept4 364
#define SYS_setsockopt 366
#define SYS_sendto 369
#define SYS_recvfrom 371
#define SYS_shutdown 373
/* The 64-bit-time clock_gettime: tinyconfig has no COMPAT_32BIT_TIME (no syscall 265). */
#define SYS_clock_gettime64 403

int syscall6(int n, long a, long b, long c, long d, long e, long f);
#define syscall0(n) syscall6(n, 0, 0, 0, 0, 0, 0)
#define syscall1(n, a) syscall6(n, (long)(a), 0, 0, 0, 0, 0)
#define syscall2(n, a, b) syscall6(n, (long)(a), (long)(b), 0, 0, 0, 0)
#define syscall3(n, a, b, c) syscall6(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define syscall4(n, a, b, c, d) syscall6(n, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define syscall5(n, a, b, c, d, e) \
  syscall6(n, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)

/* Linux ABI structures and constants (include/uapi). */
/* struct __kernel_timespec: 64-bit seconds and nanoseconds, little-endian halves. */
struct timespec64 {
  u32 sec_lo, sec_hi, nsec_lo, nsec_hi;
};
struct utsname {
  char sysname[65], nodename[65], release[65], version[65], machine[65], domainname[65];
};
struct sockaddr_in {
  u16 sin_family, sin_port;
  u32 sin_addr;
  u8 sin_zero[8];
};
struct ifreq {
  char ifr_name[16];
  union {
    struct sockaddr_in addr;
    short flags;
    u8 hwaddr[16]; /* struct sockaddr: family, then the MAC */
  } u;
};
struct pollfd {
  int fd;
  short events, revents;
};

#define O_RDONLY 0
#define O_RDWR 2
#define AF_INET 2
#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define SOCK_RAW 3
#define IPPROTO_ICMP 1
#define SOL_SOCKET 1
#define SO_REUSEADDR 2
#define SO_RCVBUFFORCE 33
#define SIOCGIFFLAGS 0x8913
#define SIOCSIFFLAGS 0x8914
#define SIOCSIFADDR 0x8916
#define SIOCSIFNETMASK 0x891c
#define SIOCGIFHWADDR 0x8927
#define IFF_UP 0x1
#define IFF_RUNNING 0x40
#define POLLIN 1
#define CLOCK_MONOTONIC 1
#define LINUX_REBOOT_MAGIC1 0xfee1dead
#define LINUX_REBOOT_MAGIC2 672274793
#define LINUX_REBOOT_CMD_POWER_OFF 0x4321fedc

int write(int fd, const void *buf, size_t n);
int read(int fd, void *buf, size_t n);
void exit(int status) __attribute__((noreturn));
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
unsigned int atou(const char *s);

/* Milliseconds and microseconds of CLOCK_MONOTONIC (since boot; the latter wraps). */
unsigned int uptime_ms(void);
unsigned int uptime_us(void);
u16 htons(u16 v);
u32 htonl(u32 v);
/* "10.0.2.2" -> the address in network byte order; 0 if it is not one. */
u32 parse_ipv4(const char *s);

/* CRC-32 (IEEE, as zlib): crc32_update(0xffffffff, ...) ... then invert. */
void crc32_init(void);
u32 crc32_update(u32 crc, const u8 *p, u32 n);

#endif
