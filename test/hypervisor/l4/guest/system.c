/*
 * The whole-system test of previrt's l4: two x86 threads in two address spaces of one VM.
 *
 * A, the main thread (started by the resource monitor, which is its pager), makes space 2 and
 * thread B there through the resource monitor, becomes B's pager and exception handler, and
 * starts it. B's first instruction faults: A maps it its code (A's pager, the resource monitor,
 * maps A's own pages as A touches them). Then: IPC ping-pong between the spaces; B's `int $0x80`
 * and an `out` to a port its space was not given come to A as exception IPCs; A maps B a page,
 * reads what B wrote there, unmaps it (the status bits say B wrote it) and B's next access faults
 * to A, which maps B a fresh page instead; A spins until B sets a flag in a page A mapped it,
 * which B can only do when A's time slice runs out; A programs the PIT (the VM was given its
 * ports and IRQ 0) and takes the interrupt as IPC from interrupt thread 0; A flushes the flag page
 * (its own mapping and B's); A deletes B (and its
 * space) and exits through the resource monitor. Any surprise prints "FAIL ..." and exits 1.
 */
#include "l4.h"

#define SHARED 0x00200000u  /* A's page shared with B at 0x380000, then unmapped */
#define FRESH 0x00201000u   /* what B gets at 0x380000 after the unmap */
#define FLAG 0x00202000u    /* the preemption flag, B's 0x390000 */
#define B_STACK_TOP 0x003fd000u
#define B_SHARED 0x00380000u
#define B_FLAG 0x00390000u

static word b_id;

static void fail(const char *why, word v) {
  print("FAIL ");
  print(why);
  print(" ");
  print_hex(v);
  print("\n");
  rm_exit(1);
}

static word rm_thread_control(word dest, word space, word sched, word pager, word utcb) {
  word w[5] = {dest, space, sched, pager, utcb};
  return rm_call(RM_THREAD_CONTROL, 5, w);
}

/* B runs this: it never returns. Failures are reported to A with label 0xbad. */
static void b_fail(word code) {
  MR(0) = TAG(0xbad, 1, 0);
  MR(1) = code;
  l4_call(UTCB(U_PAGER), 0);
  for (;;) {}
}

static word b_call(word label, word v) {
  MR(0) = TAG(label, 1, 0);
  MR(1) = v;
  word tag = l4_call(UTCB(U_PAGER), 0);
  if (tag & TAG_E) b_fail(0xe000 | label);
  return MR(1);
}

void b_main(void) {
  /* ping-pong */
  for (word i = 0; i < 100; i++)
    if (b_call(1, i) != i + 1) b_fail(1);
  /* int $0x80 with EAX = 0x1234: A answers the exception with EAX = 0x80 + EAX */
  word eax = 0x1234;
  __asm__ volatile("int $0x80" : "+a"(eax) : : "memory");
  if (eax != 0x1234 + 0x80) b_fail(2);
  /* an out to a port this space was not given: #GP, A skips it */
  outb(0x80, 0x55);
  /* a page from A, into a one-page window */
  BR(0) = ACCEPTOR(FPAGE(B_SHARED, 12, 0), 0);
  b_call(2, 0);
  if (*(volatile word *)B_SHARED != 0x5eed) b_fail(3);
  *(volatile word *)B_SHARED = 0xb0b;
  b_call(3, 0);
  /* A unmapped it: this faults to A, which maps its FRESH page here instead */
  word after = *(volatile word *)B_SHARED;
  BR(0) = ACCEPTOR(FPAGE(B_FLAG, 12, 0), 0);
  b_call(4, after);
  /* A is spinning on the flag: this runs when A's time slice is over */
  *(volatile word *)B_FLAG = 1;
  b_call(5, 0);
  for (;;) {}
}

/* A: B's pager and exception handler, until B reports a step. */
static word serve_b(void) {
  for (;;) {
    word from;
    word tag = l4_receive(b_id, NEVER, &from);
    if (tag & TAG_E) fail("receive from B", UTCB(U_ERROR));
    word label = TAG_LABEL(tag);
    if ((label >> 4) == PAGEFAULT_LABEL) {
      word page = MR(1) & ~0xfffu;
      if (page == B_SHARED) page = FRESH;
      /* Touch the page for writing, so that A's pager (the resource monitor) maps it to A. */
      *(volatile word *)page = *(volatile word *)page;
      MR(0) = TAG(0, 0, 2);
      MR(1) = MAP_ITEM0(MR(1));
      MR(2) = FPAGE(page, 12, 7);
      l4_send(b_id, ZERO_TIME);
    } else if (label == EXCEPTION_LABEL) {
      word vector = MR(3), code = MR(4);
      if (vector == 13 && code == 0x80 * 8 + 2) {
        MR(1) += 2;          /* EIP: past the int $0x80 */
        MR(12) += 0x80;      /* EAX */
      } else if (vector == 13 && code == 0) {
        MR(1) += 1;          /* past the one-byte out %al, (%dx)... or the two-byte out $imm */
        if (*(volatile unsigned char *)(MR(1) - 1) == 0xe6) MR(1) += 1;
      } else {
        fail("unexpected exception", vector);
      }
      MR(0) = TAG(0, 12, 0);
      l4_send(b_id, ZERO_TIME);
    } else if (label == 1) {
      MR(0) = TAG(1, 1, 0);
      MR(1) += 1;
      l4_send(b_id, ZERO_TIME);
    } else if (label == 0xbad) {
      fail("thread B", MR(1));
    } else {
      return label;
    }
  }
}

static void reply(word v) {
  MR(0) = TAG(0, 1, 0);
  MR(1) = v;
  if (l4_send(b_id, ZERO_TIME) & TAG_E) fail("reply to B", UTCB(U_ERROR));
}

void main(void) {
  print("system: main thread ");
  print_hex(myself());
  print("\n");
  word me = myself();
  b_id = (((me >> 14) + 1) << 14) | 1;

  /* Space 2 and thread B through the resource monitor; A is B's scheduler and pager. */
  if (rm_thread_control(b_id, b_id, me, NILTHREAD, 0xffffffffu) != 1) fail("new space", MR(2));
  word sc[5] = {b_id, 0, FPAGE(KIP, 12, 0), FPAGE(UTCB_AREA, 12, 0), 0};
  if (rm_call(RM_SPACE_CONTROL, 5, sc) != 1) fail("space control", MR(2));
  if (rm_thread_control(b_id, b_id, me, me, UTCB_AREA) != 1) fail("thread B", MR(2));
  /* The start message: IP and SP. */
  MR(0) = TAG(0, 2, 0);
  MR(1) = (word)b_main;
  MR(2) = B_STACK_TOP;
  if (l4_send(b_id, NEVER) & TAG_E) fail("start B", UTCB(U_ERROR));

  /* Page faults, exceptions and 100 pings, until B asks for a page. */
  if (serve_b() != 2) fail("step 2", 0);
  print("system: ping-pong, page faults and exceptions served\n");
  *(volatile word *)SHARED = 0x5eed;
  MR(0) = TAG(0, 0, 2);
  MR(1) = MAP_ITEM0(0);
  MR(2) = FPAGE(SHARED, 12, 7);
  if (l4_send(b_id, ZERO_TIME) & TAG_E) fail("map to B", UTCB(U_ERROR));
  if (serve_b() != 3) fail("step 3", 0);
  if (*(volatile word *)SHARED != 0xb0b) fail("B's write", *(volatile word *)SHARED);
  /* Unmap what A mapped B (A keeps its own): B wrote it, so the status says written. */
  MR(0) = FPAGE(SHARED, 12, 7);
  l4_unmap(0);
  if ((MR(0) & 2) == 0) fail("status bits", MR(0));
  reply(0);
  if (serve_b() != 4) fail("step 4", 0);
  if (MR(1) != 0) fail("B still sees the unmapped page", MR(1));
  print("system: mapped, written, unmapped (status written), faulted again\n");

  /* Preemption: B sets the flag when A's time slice is over. */
  *(volatile word *)FLAG = 0;
  MR(0) = TAG(0, 0, 2);
  MR(1) = MAP_ITEM0(0);
  MR(2) = FPAGE(FLAG, 12, 7);
  if (l4_send(b_id, ZERO_TIME) & TAG_E) fail("map the flag", UTCB(U_ERROR));
  while (*(volatile word *)FLAG == 0) {
  }
  if (serve_b() != 5) fail("step 5", 0);
  print("system: preempted at the end of a time slice\n");

  /* The PIT's interrupt as IPC: associate IRQ 0, a one-shot of about 1 ms, wait, acknowledge. */
  word irq[2] = {0, me};
  if (rm_call(RM_ASSOCIATE_IRQ, 2, irq) != 1) fail("associate irq 0", MR(2));
  outb(0x43, 0x30);
  outb(0x40, 1193 & 0xff);
  outb(0x40, 1193 >> 8);
  word from;
  word tag = l4_receive(IRQ_ID(0), period_us(100000), &from);
  if ((tag & TAG_E) || TAG_LABEL(tag) != INTERRUPT_LABEL || from != IRQ_ID(0))
    fail("interrupt", tag);
  MR(0) = TAG(0, 0, 0);
  if (l4_send(IRQ_ID(0), ZERO_TIME) & TAG_E) fail("acknowledge", UTCB(U_ERROR));
  print("system: interrupt 0 received as IPC and acknowledged\n");

  /* Flush the flag page: B's mapping goes, and A's own. */
  MR(0) = FPAGE(FLAG, 12, 7);
  l4_unmap(0x40);
  if ((MR(0) & 2) == 0) fail("flag status bits", MR(0));

  /* B and its space go; then the end. */
  if (rm_thread_control(b_id, NILTHREAD, NILTHREAD, NILTHREAD, 0xffffffffu) != 1)
    fail("delete B", MR(2));
  print("system: done\n");
  rm_exit(0);
}
