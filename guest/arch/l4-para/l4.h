/*
 * previrt's L4 X.2 interface as this port calls it (src/hypervisor/l4/README.md is the
 * reference: system calls by `int $0x30..0x3B`, the UTCB at %gs:0 with the message registers at
 * +0x100, faults, exceptions and interrupts as IPC, the resource monitor's protocol), in the
 * form L4Ka::Linux's l4 headers give it: thread IDs, message tags, fpages and map items as words.
 */
#ifndef L4_PARA_L4_H
#define L4_PARA_L4_H

#include "types.h"

typedef u32 word;

#define L4_NILTHREAD 0u
#define L4_ANYTHREAD 0xffffffffu
#define L4_ROOT ((34u << 14) | 1u)          /* the resource monitor */
#define L4_IRQ(n) (((word)(n) << 14) | 1u) /* interrupt thread n */
#define L4_THREAD_NO(tid) ((tid) >> 14)
#define L4_GLOBAL(no) (((word)(no) << 14) | 1u)

#define L4_KIP 0xffc04000u
#define L4_UTCB_AREA 0xffe00000u
#define L4_UTCB_SIZE 512u
#define L4_KIP_CLOCK_HZ 0x3c

/* UTCB fields */
#define U_MYGLOBAL 0x04
#define U_ERROR 0x1c
#define U_BR(i) (0x40 + 4 * (i))
#define U_MR(i) (0x100 + 4 * (i))

/* Timeouts: 0 never; m (10 bits) * 2^e (5 bits) microseconds, m = 0 zero time. */
#define L4_NEVER 0u
#define L4_ZERO 0x0400u
#define L4_TIMEOUTS(snd, rcv) (((word)(snd) << 16) | (word)(rcv))

/* Message tags: label << 16 | flags << 12 | t << 6 | u; the error flag is bit 15. */
#define L4_TAG(label, u, t) (((word)(label) << 16) | ((word)(t) << 6) | (word)(u))
#define L4_LABEL(tag) ((tag) >> 16)
#define L4_TAG_E 0x8000u
#define L4_PAGEFAULT 0xffe0u  /* | rwx */
#define L4_EXCEPTION 0xffb0u  /* 12 words */
#define L4_INTERRUPT 0xfff0u

/* ErrorCode: (code << 1) | phase, phase 1 = receive */
#define L4_ERR_TIMEOUT_RECEIVE ((1u << 1) | 1u)
#define L4_ERROR_CODE(e) (((e) >> 1) & 7u)
#define L4_ERR_NO_PARTNER 2u /* non-existing partner */

/* Fpages and map items */
#define L4_FPAGE(base, s, rwx) (((word)(base) & 0xfffffc00u) | ((word)(s) << 4) | (word)(rwx))
#define L4_MAP_ITEM(sndbase) (((word)(sndbase) & 0xfffffc00u) | 0x8u)
#define L4_RWX 7u
#define L4_RX 5u
#define L4_UNMAP_FLUSH 0x40u

/* ExchangeRegisters control bits */
#define L4_EX_HALT 0x1u
#define L4_EX_HALT_VALID 0x100u
#define L4_EX_ABORT_RECEIVE 0x2u
#define L4_EX_ABORT_SEND 0x4u
#define L4_EX_SP 0x8u
#define L4_EX_IP 0x10u

/* The resource monitor's requests (src/hypervisor/l4/abi.ts RmOp); reply MR1 1 ok, MR2 error */
#define RM_CONSOLE 0x5201
#define RM_EXIT 0x5202
#define RM_THREAD_CONTROL 0x5203
#define RM_SPACE_CONTROL 0x5204
#define RM_ASSOCIATE_IRQ 0x5205
#define RM_REQUEST_PAGES 0x5207
#define RM_CONSOLE_INPUT 0x5208                 /* also the label of its input messages */
#define RM_NET_BACKEND 0x520a /* MR2 monitor, MR3 helper of the network back end (0: booting) */
#define L4_CONSOLE_INPUT ((36u << 14) | 1u) /* the resource monitor's console input thread */

static inline volatile word *l4_utcb(void) {
  volatile word *u;
  __asm__ __volatile__("movl %%gs:0, %0" : "=r"(u));
  return u;
}
#define L4_MR(i) (l4_utcb()[U_MR(i) / 4])

static inline word l4_myself(void) { return l4_utcb()[U_MYGLOBAL / 4]; }
static inline word l4_error(void) { return l4_utcb()[U_ERROR / 4]; }

/* Ipc: MR0 (the tag) and the words are in the UTCB; returns the received tag, *from the sender. */
static inline word l4_ipc(word to, word from_spec, word timeouts, word *from) {
  word f, tag;
  __asm__ __volatile__("int $0x30"
                       : "=a"(f), "=S"(tag)
                       : "a"(to), "d"(from_spec), "c"(timeouts)
                       : "memory");
  if (from) *from = f;
  return tag;
}

/* Unmap: fpages in MR0..MRk; control = k | flush. */
static inline void l4_unmap(word control) {
  __asm__ __volatile__("int $0x32" : "+a"(control) : : "memory");
}

/* Schedule: the priority of a thread this one schedules (other fields unchanged). */
static inline word l4_set_priority(word dest, word prio) {
  word r, tc = 0xffffffffu;
  __asm__ __volatile__("int $0x36"
                       : "=a"(r), "+d"(tc)
                       : "a"(dest), "S"(0xffffffffu), "c"(prio), "D"(0xffffffffu)
                       : "memory");
  return r;
}

/* trapasm.S: ExchangeRegisters with only dest and control (halt or resume); returns EAX. */
word l4_exregs_halt(word dest, word control);

/* The clock: RDTSC counts the simulated clock's cycles, at the KIP's rate. */
static inline u64 l4_cycles(void) {
  u32 lo, hi;
  __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
  return ((u64)hi << 32) | lo;
}

/* setup.c: one request to the resource monitor, n words; returns MR1 of the reply (1 = ok). */
word rm_call(word label, int n, const word *w);

#endif
