/*
 * previrt's l4 ABI for the test guests, in C (src/hypervisor/l4/abi.ts and README.md are the
 * reference). System calls go through the KIP's entries (`int $v; ret` stubs) by l4_sys.
 */
#ifndef L4_H
#define L4_H

typedef unsigned int word;

#define NILTHREAD 0u
#define ANYTHREAD 0xffffffffu
#define ANYLOCALTHREAD 0xffffffc0u
#define ROOT_ID ((34u << 14) | 1u)
#define SIGMA0_ID ((32u << 14) | 1u)
#define IRQ_ID(n) (((word)(n) << 14) | 1u)

#define KIP 0xffc04000u
#define UTCB_AREA 0xffe00000u

/* UTCB offsets */
#define U_MYLOCAL 0x00
#define U_MYGLOBAL 0x04
#define U_HANDLE 0x0c
#define U_PAGER 0x10
#define U_EXCHANDLER 0x14
#define U_ERROR 0x1c
#define U_SENDER 0x28
#define U_BR(i) (0x40 + 4 * (i))
#define U_MR(i) (0x100 + 4 * (i))

/* KIP system-call entries, in X.2's order, at KIP + 0x48 */
enum { K_SPACE_CONTROL, K_THREAD_CONTROL, K_PROCESSOR_CONTROL, K_MEMORY_CONTROL, K_IPC, K_LIPC,
       K_UNMAP, K_EXREGS, K_SYSTEM_CLOCK, K_THREAD_SWITCH, K_SCHEDULE };

#define NEVER 0u
#define ZERO_TIME 0x0400u
#define TIMEOUTS(snd, rcv) (((word)(snd) << 16) | (word)(rcv))
/* about us microseconds, us < 1024 * 2^e */
static inline word period_us(word us) {
  word e = 0;
  while (us > 0x3ff) { us = (us + 1) >> 1; e++; }
  return (e << 10) | us;
}

#define TAG(label, u, t) (((word)(label) << 16) | ((word)(t) << 6) | (word)(u))
#define TAG_LABEL(tag) ((tag) >> 16)
#define TAG_U(tag) ((tag) & 0x3f)
#define TAG_T(tag) (((tag) >> 6) & 0x3f)
#define TAG_E 0x8000u

#define FPAGE(base, s, rwx) (((word)(base) & 0xfffffc00u) | ((word)(s) << 4) | (word)(rwx))
#define COMPLETE 0x10u
#define MAP_ITEM0(sndbase) (((word)(sndbase) & 0xfffffc00u) | 0x8u)
#define GRANT_ITEM0(sndbase) (((word)(sndbase) & 0xfffffc00u) | 0xau)
#define STRING_ITEM0(len) ((word)(len) << 10)
#define ACCEPTOR(window, strings) (((word)(window) & ~0xfu) | ((strings) ? 1u : 0u))

/* resource monitor requests */
#define RM_CONSOLE 0x5201
#define RM_EXIT 0x5202
#define RM_THREAD_CONTROL 0x5203
#define RM_SPACE_CONTROL 0x5204
#define RM_ASSOCIATE_IRQ 0x5205
#define RM_REQUEST_PAGES 0x5207

#define PAGEFAULT_LABEL 0xffe
#define EXCEPTION_LABEL 0xffb0
#define INTERRUPT_LABEL 0xfff0

/* regs: EAX ECX EDX EBX (ESP) EBP ESI EDI */
enum { R_EAX, R_ECX, R_EDX, R_EBX, R_ESP, R_EBP, R_ESI, R_EDI };
void l4_sys(const void *entry, word regs[8]);
extern char int_stubs[];
void l4_kernel_interface_lock_nop(void);

static inline volatile word *utcb(void) {
  volatile word *u;
  __asm__ volatile("movl %%gs:0, %0" : "=r"(u));
  return u;
}
#define UTCB(off) (utcb()[(off) / 4])
#define MR(i) UTCB(U_MR(i))
#define BR(i) UTCB(U_BR(i))

static inline const void *kip_entry(int k) {
  return (const void *)(KIP + *(volatile word *)(KIP + 0x48 + 4 * k));
}

static inline word myself(void) { return UTCB(U_MYGLOBAL); }

/* Ipc: returns the sender in *from (may be 0); the tag is the result */
static inline word l4_ipc(word to, word fromspec, word timeouts, word *from) {
  word r[8] = {0};
  r[R_EAX] = to;
  r[R_EDX] = fromspec;
  r[R_ECX] = timeouts;
  l4_sys(kip_entry(K_IPC), r);
  if (from) *from = r[R_EAX];
  return r[R_ESI];
}

static inline word l4_call(word to, word *from) { return l4_ipc(to, to, TIMEOUTS(NEVER, NEVER), from); }
static inline word l4_send(word to, word timeout) { return l4_ipc(to, NILTHREAD, TIMEOUTS(timeout, 0), 0); }
static inline word l4_receive(word fromspec, word timeout, word *from) {
  return l4_ipc(NILTHREAD, fromspec, TIMEOUTS(0, timeout), from);
}
static inline word l4_reply_wait(word to, word *from) {
  return l4_ipc(to, ANYTHREAD, TIMEOUTS(ZERO_TIME, NEVER), from);
}

static inline word l4_unmap(word control) {
  word r[8] = {0};
  r[R_EAX] = control;
  l4_sys(kip_entry(K_UNMAP), r);
  return r[R_EAX];
}

static inline word l4_thread_switch(word dest) {
  word r[8] = {0};
  r[R_EAX] = dest;
  l4_sys(kip_entry(K_THREAD_SWITCH), r);
  return r[R_EAX];
}

static inline word l4_schedule(word dest, word timectl, word prio) {
  word r[8] = {0};
  r[R_EAX] = dest;
  r[R_EDX] = timectl;
  r[R_ESI] = 0xffffffffu;
  r[R_ECX] = prio;
  r[R_EDI] = 0xffffffffu;
  l4_sys(kip_entry(K_SCHEDULE), r);
  return r[R_EAX];
}

static inline unsigned long long l4_system_clock(void) {
  word r[8] = {0};
  l4_sys(kip_entry(K_SYSTEM_CLOCK), r);
  return ((unsigned long long)r[R_EDX] << 32) | r[R_EAX];
}

/* One request to the resource monitor: label, n words; returns MR1 of the reply (1 = ok) */
static inline word rm_call(word label, int n, const word *w) {
  for (int i = 0; i < n; i++) MR(i + 1) = w[i];
  MR(0) = TAG(label, n, 0);
  l4_call(ROOT_ID, 0);
  return MR(1);
}

static inline void print(const char *s) {
  int n = 0;
  while (s[n]) n++;
  while (n > 0) {
    int k = n > 240 ? 240 : n;
    for (int i = 0; i < (k + 3) / 4; i++) {
      word v = 0;
      for (int b = 0; b < 4 && 4 * i + b < k; b++) v |= (word)(unsigned char)s[4 * i + b] << (8 * b);
      MR(2 + i) = v;
    }
    MR(1) = k;
    MR(0) = TAG(RM_CONSOLE, 1 + (k + 3) / 4, 0);
    l4_call(ROOT_ID, 0);
    s += k;
    n -= k;
  }
}

static inline void print_hex(word v) {
  char b[11] = "0x00000000";
  for (int i = 0; i < 8; i++) b[9 - i] = "0123456789abcdef"[(v >> (4 * i)) & 15];
  print(b);
}

static inline void rm_exit(word status) {
  MR(0) = TAG(RM_EXIT, 1, 0);
  MR(1) = status;
  l4_send(ROOT_ID, NEVER);
  for (;;) {}
}

static inline void outb(unsigned short port, unsigned char v) {
  __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

#endif
