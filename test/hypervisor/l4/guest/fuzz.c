/*
 * previrt's l4 system-call fuzzer: an x86 thread (F, the VM's main thread) making seeded random
 * system calls with random arguments, message tags, MRs, typed items (map, grant, string) and
 * BRs, random INT n (system-call vectors with garbage registers, other vectors as exceptions),
 * KernelInterface by `lock; nop`, and random memory touches. Its partners: E, an x86 thread in a
 * second space F makes through the resource monitor, answering with random messages of its
 * own; and the harness's TypeScript threads T (echo), W (watchdog: aborts F's IPC when F makes no
 * progress) and C (F's exception handler, which steps over the faulting INT).
 *
 * Layout (guest-physical = virtual, the VM's 2 MB at 0): the image at 1 MB, the progress word at
 * 0x160000, E's stack below 0x170000, F's below 0x180000, and the scratch area 0x180000-0x200000,
 * the only place typed items map into (so F's code and stack stay its own, mostly).
 */
#include "l4.h"

#define PROGRESS ((volatile word *)0x160000)
#define E_STACK_TOP 0x170000u
#define SCRATCH 0x180000u
#define SCRATCH_PAGES 128u

static word state;
static word me, e_id, t_id, w_id, c_id;

static word rnd(void) {
  state ^= state << 13;
  state ^= state >> 17;
  state ^= state << 5;
  return state;
}

static word pick_tid(void) {
  switch (rnd() % 16) {
  case 0: return NILTHREAD;
  case 1: return ANYTHREAD;
  case 2: return ANYLOCALTHREAD;
  case 3: return me;
  case 4: return UTCB(U_MYLOCAL);
  case 5: case 6: return e_id;
  case 7: case 8: return t_id;
  case 9: return w_id;
  case 10: return c_id;
  case 11: return ROOT_ID;
  case 12: return SIGMA0_ID;
  case 13: return IRQ_ID(rnd() % 16);
  case 14: return UTCB_AREA + 512 * (rnd() % 8);
  default: return rnd();
  }
}

/* A flexpage: mostly of F's own memory, some of the scratch area, some of anything. */
static word pick_fpage(void) {
  word s = 12 + rnd() % 8;
  switch (rnd() % 8) {
  case 0: return 0;
  case 1: return COMPLETE | (rnd() & 7);
  case 2: return rnd();
  case 3: case 4: return FPAGE(SCRATCH + (rnd() % SCRATCH_PAGES) * 4096, 12 + rnd() % 3, rnd() & 7);
  default: return FPAGE((rnd() % 0x200000u) & ~((1u << s) - 1), s, rnd() & 7);
  }
}

/* A receive window: nil, or in the scratch area (rarely the whole space). */
static word pick_window(void) {
  switch (rnd() % 8) {
  case 0: return 0;
  case 1: return rnd() % 16 == 0 ? COMPLETE : 0;
  default: return FPAGE(SCRATCH + (rnd() % SCRATCH_PAGES) * 4096, 12 + rnd() % 3, 0);
  }
}

static word pick_timeout(void) {
  switch (rnd() % 10) {
  case 0: return NEVER;
  case 1: case 2: case 3: return period_us(1 + rnd() % 50);
  case 4: return rnd() & 0xffff;
  default: return ZERO_TIME;
  }
}

static word pick_word(void) {
  switch (rnd() % 6) {
  case 0: return rnd() % 8;
  case 1: return pick_tid();
  case 2: return pick_fpage();
  case 3: return SCRATCH + rnd() % (SCRATCH_PAGES * 4096);
  default: return rnd();
  }
}

/* Random MRs: a tag with u untyped and t typed words, the typed words map, grant and string items. */
static void fill_message(void) {
  static const word labels[] = {0, 1, 0xffe0, 0xffe6, 0xffb0, 0xfff0, 0xffa0, RM_CONSOLE, RM_THREAD_CONTROL,
                                RM_SPACE_CONTROL, RM_ASSOCIATE_IRQ, RM_REQUEST_PAGES, 0x5206, 7};
  word label = rnd() % 4 == 0 ? rnd() & 0xffff : labels[rnd() % (sizeof labels / sizeof labels[0])];
  word u = rnd() % 4 == 0 ? rnd() % 64 : rnd() % 6;
  word t = rnd() % 2 == 0 ? 0 : 2 * (rnd() % 4) + (rnd() % 16 == 0);
  if (u + t > 63 && rnd() % 4 != 0) t = 0;
  for (word i = 1; i <= u && i < 64; i++) MR(i) = pick_word();
  for (word i = 0; i + 1 < t && u + 1 + i + 1 < 64; i += 2) {
    word k = rnd() % 6;
    word *mr0 = (word *)&MR(u + 1 + i);
    if (k < 3) {
      mr0[0] = MAP_ITEM0(SCRATCH + (rnd() % SCRATCH_PAGES) * 4096);
      mr0[1] = pick_fpage();
    } else if (k == 3) {
      mr0[0] = GRANT_ITEM0(SCRATCH + (rnd() % SCRATCH_PAGES) * 4096);
      mr0[1] = pick_fpage();
    } else if (k == 4) {
      mr0[0] = STRING_ITEM0(rnd() % 9000);
      mr0[1] = rnd() % 2 ? SCRATCH + rnd() % 0x80000 : pick_word();
    } else {
      mr0[0] = rnd();
      mr0[1] = rnd();
    }
  }
  MR(0) = TAG(label, u, t) | (rnd() % 32 == 0 ? rnd() & 0xf000 : 0);
}

static void fill_buffers(void) {
  BR(0) = ACCEPTOR(pick_window(), rnd() % 2);
  BR(1) = STRING_ITEM0(rnd() % 9000) | (rnd() % 3 == 0);
  BR(2) = rnd() % 4 == 0 ? rnd() : SCRATCH + rnd() % 0x80000;
  BR(3) = STRING_ITEM0(rnd() % 9000);
  BR(4) = SCRATCH + rnd() % 0x80000;
}

static void regs(word r[8]) {
  for (int i = 0; i < 8; i++) r[i] = pick_word();
}

static void one_call(void) {
  word r[8];
  word op = rnd() % 100;
  if (op < 45) {
    fill_message();
    fill_buffers();
    r[R_EAX] = pick_tid();
    r[R_EDX] = rnd() % 4 == 0 ? NILTHREAD : pick_tid();
    r[R_ECX] = TIMEOUTS(pick_timeout(), pick_timeout());
    l4_sys(kip_entry(rnd() % 8 == 0 ? K_LIPC : K_IPC), r);
  } else if (op < 55) {
    word k = rnd() % 4;
    for (word i = 0; i <= k; i++) MR(i) = pick_fpage();
    r[R_EAX] = k | (rnd() % 2 ? 0x40 : 0) | (rnd() % 32 == 0 ? rnd() : 0);
    l4_sys(kip_entry(K_UNMAP), r);
  } else if (op < 63) {
    regs(r);
    word dest = pick_tid();
    r[R_EAX] = dest;
    r[R_ECX] = rnd() & 0x1ff;
    /* Not itself or the watchdog halted, and not its own IP or SP moved. */
    if (dest == me || dest == UTCB(U_MYLOCAL) || dest == w_id) r[R_ECX] &= ~(0x100u | 0x38u | 0x80u);
    l4_sys(kip_entry(K_EXREGS), r);
  } else if (op < 67) {
    regs(r);
    r[R_EAX] = pick_tid();
    r[R_ESI] = pick_tid();
    l4_sys(kip_entry(K_THREAD_CONTROL), r);
  } else if (op < 70) {
    regs(r);
    r[R_EAX] = pick_tid();
    r[R_EDX] = rnd() % 2 ? FPAGE(KIP, 12, 0) : pick_fpage();
    r[R_ESI] = rnd() % 2 ? FPAGE(UTCB_AREA, 12 + rnd() % 10, 0) : pick_fpage();
    l4_sys(kip_entry(K_SPACE_CONTROL), r);
  } else if (op < 75) {
    regs(r);
    r[R_EAX] = pick_tid();
    r[R_ECX] = rnd() % 3 == 0 ? 0xffffffffu : rnd() % 300;
    r[R_EDX] = rnd() % 2 ? 0xffffffffu : (period_us(100 + rnd() % 20000) << 16);
    l4_sys(kip_entry(K_SCHEDULE), r);
  } else if (op < 79) {
    regs(r);
    r[R_EAX] = pick_tid();
    l4_sys(kip_entry(K_THREAD_SWITCH), r);
  } else if (op < 83) {
    regs(r);
    l4_sys(kip_entry(rnd() % 2 ? K_SYSTEM_CLOCK : (rnd() % 2 ? K_PROCESSOR_CONTROL : K_MEMORY_CONTROL)), r);
  } else if (op < 85) {
    l4_kernel_interface_lock_nop();
  } else if (op < 93) {
    /* INT n: the system-call vectors with random registers, the others as exceptions. */
    regs(r);
    fill_message();
    word n = rnd() % 4 ? 0x30 + rnd() % 12 : rnd() % 256;
    if (n == 0x30 || n == 0x31) r[R_ECX] = TIMEOUTS(pick_timeout(), ZERO_TIME);
    l4_sys(int_stubs + 4 * n, r);
  } else {
    /* Touch memory: read anywhere in the VM, write only the scratch area. */
    volatile word *p = (volatile word *)((rnd() % 0x200000u) & ~3u);
    word v = *p;
    volatile word *q = (volatile word *)(SCRATCH + (rnd() % 0x80000u & ~3u));
    *q = v ^ rnd();
  }
}

/* E: answers whatever comes with random messages of its own, waiting with random timeouts. */
void e_main(void) {
  state = UTCB(U_MYGLOBAL) * 2654435761u;
  word from = NILTHREAD;
  for (;;) {
    fill_message();
    BR(0) = ACCEPTOR(pick_window(), rnd() % 2);
    BR(1) = STRING_ITEM0(rnd() % 9000);
    BR(2) = SCRATCH + rnd() % 0x80000;
    word rcv = rnd() % 4 == 0 ? NEVER : period_us(100 + rnd() % 2000);
    l4_ipc(rnd() % 8 == 0 ? pick_tid() : from, ANYTHREAD, TIMEOUTS(ZERO_TIME, rcv), &from);
    if (rnd() % 8 == 0) *(volatile word *)(SCRATCH + (rnd() % 0x80000u & ~3u)) = rnd();
  }
}

static word rm_thread_control(word dest, word space, word sched, word pager, word utcb) {
  word w[5] = {dest, space, sched, pager, utcb};
  return rm_call(RM_THREAD_CONTROL, 5, w);
}

void main(word seed, word calls, word t, word w, word c) {
  state = seed | 1;
  me = myself();
  t_id = t;
  w_id = w;
  c_id = c;
  e_id = (((me >> 14) + 100) << 14) | 1;
  /* E in a space of its own, started by F, then paged by the resource monitor. */
  rm_thread_control(e_id, e_id, me, NILTHREAD, 0xffffffffu);
  word sc[5] = {e_id, 0, FPAGE(KIP, 12, 0), FPAGE(UTCB_AREA, 12, 0), 0};
  rm_call(RM_SPACE_CONTROL, 5, sc);
  rm_thread_control(e_id, e_id, me, me, UTCB_AREA);
  MR(0) = TAG(0, 2, 0);
  MR(1) = (word)e_main;
  MR(2) = E_STACK_TOP;
  l4_send(e_id, ZERO_TIME);
  rm_thread_control(e_id, e_id, NILTHREAD, ROOT_ID, 0xffffffffu);
  for (word i = 0; i < calls; i++) {
    one_call();
    *PROGRESS = i + 1;
  }
  print("fuzz: done\n");
  rm_exit(0);
}
