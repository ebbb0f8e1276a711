/* vsnprintf for the kernel and for user programs: no floating point, no allocation. */
#include "fmt.h"

struct out {
  char *buf;
  int size, len;
};

static void put(struct out *o, char c) {
  if (o->len < o->size - 1) o->buf[o->len] = c;
  o->len++;
}

static void put_num(struct out *o, unsigned int v, int base, int neg, int width, char pad) {
  char tmp[12];
  int n = 0;
  do {
    tmp[n++] = "0123456789abcdef"[v % base];
    v /= base;
  } while (v);
  if (neg) width--;
  if (neg && pad == '0') put(o, '-');
  for (int i = n; i < width; i++) put(o, pad);
  if (neg && pad != '0') put(o, '-');
  while (n) put(o, tmp[--n]);
}

int vsnprintf(char *buf, int size, const char *fmt, va_list ap) {
  struct out o = {buf, size, 0};
  for (; *fmt; fmt++) {
    if (*fmt != '%') {
      put(&o, *fmt);
      continue;
    }
    fmt++;
    char pad = ' ';
    int width = 0;
    if (*fmt == '0') pad = '0', fmt++;
    while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
    switch (*fmt) {
      case 'd': {
        int v = va_arg(ap, int);
        put_num(&o, v < 0 ? -(unsigned int)v : (unsigned int)v, 10, v < 0, width, pad);
        break;
      }
      case 'u': put_num(&o, va_arg(ap, unsigned int), 10, 0, width, pad); break;
      case 'x': put_num(&o, va_arg(ap, unsigned int), 16, 0, width, pad); break;
      case 'p':
        put(&o, '0');
        put(&o, 'x');
        put_num(&o, va_arg(ap, unsigned int), 16, 0, 8, '0');
        break;
      case 'c': put(&o, (char)va_arg(ap, int)); break;
      case 's': {
        const char *s = va_arg(ap, const char *);
        if (!s) s = "(null)";
        int n = 0;
        while (s[n]) n++;
        for (int i = n; i < width; i++) put(&o, ' ');
        while (*s) put(&o, *s++);
        break;
      }
      case '%': put(&o, '%'); break;
      case 0: fmt--; break;
      default:
        put(&o, '%');
        put(&o, *fmt);
    }
  }
  if (size > 0) buf[o.len < size ? o.len : size - 1] = 0;
  return o.len;
}

int snprintf(char *buf, int size, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, size, fmt, ap);
  va_end(ap);
  return n;
}
