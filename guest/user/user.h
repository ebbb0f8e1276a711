/* What a ring-3 program can call: the system calls (usys.S) and a tiny C library (ulib.c). */
#ifndef GUEST_USER_H
#define GUEST_USER_H

#include "fmt.h"
#include "syscall.h"
#include "types.h"

int write(int fd, const void *buf, int n);
int read(int fd, void *buf, int n);
void exit(int status) __attribute__((noreturn));
int spawn(const char *name, char *const argv[]);
int wait(int *status);
int getpid(void);
int yield(void);
int sleep(unsigned int ms);
unsigned int time(void);
unsigned int uptime(void);
int kill(int pid);
int programs(char *buf, int n);
int recv(void *buf, int n);
/* Any system call by number (tests use it for bad numbers and bad arguments). */
int syscall3(int num, int a, int b, int c);

int printf(const char *fmt, ...);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int atoi(const char *s);

#endif
