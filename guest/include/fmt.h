/* printf-style formatting shared by the kernel and user programs. */
#ifndef GUEST_FMT_H
#define GUEST_FMT_H

#include <stdarg.h>

/* Supports %d %u %x %p %s %c %%, a `0` flag and a field width (e.g. %08x). Always terminates
 * buf; returns the length the full output would have had. */
int vsnprintf(char *buf, int size, const char *fmt, va_list ap);
int snprintf(char *buf, int size, const char *fmt, ...);

#endif
