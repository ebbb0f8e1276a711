/*
 * Processes as L4 threads, and every way into the kernel, as L4Ka::Linux has them: each process
 * directory (vm.c) gets an L4 space with one thread, whose pager and exception handler is the
 * kernel thread. The PC's trap entry and `iret` (kernel/trapasm.S) become one loop per process
 * (l4_user_loop, where trapret leads): reply to the process's thread so that it runs on from its
 * trap frame, wait for the next message, make a trap frame of it and call the shared trap(),
 * which handles it exactly as on the PC:
 *
 *   the process's `int $0x80`    an exception message, #GP with error 0x80 * 8 + 2 -> T_SYSCALL
 *   any other exception          an exception message: its vector and error code
 *   a page fault                 a page-fault message: mapped from the kernel's tables at once if
 *                                they allow the access, else T_PGFLT for trap.c (demand zero)
 *   a device interrupt           a message from its interrupt thread -> T_IRQ0 + line
 *   the tick                     the wait's timeout (time.c) -> T_IRQ0
 *   console input                a message from the resource monitor's input thread -> IRQ 4
 *
 * The reply that resumes a process is the answer to what it is waiting for: its start message
 * (IP, SP), an exception reply (its twelve registers), a page fault's map item; a thread that
 * was running when an interrupt came is still ready in L4 and needs none, unless the kernel ran
 * another process meanwhile, which halts it (ExchangeRegisters) and resumes it later. The kernel
 * thread's priority is above its processes', so a process runs only while the kernel waits.
 */
#include "defs.h"
#include "l4para.h"
#include "memlayout.h"
#include "mmu.h"
#include "proc.h"
#include "syscall.h"
#include "trap.h"
#include "x86.h"

int l4_virtual_if;
u32 l4_fault_address;

/* trap.c builds an IDT from these and "loads" it (x86.h: lidt does nothing): exceptions are
 * messages here, there are no gates. */
u32 trap_vectors[256];

#define USER_PRIORITY 50 /* below the kernel thread's (the VM's, 100) */
#define INT80_ERROR (0x80 * 8 + 2)

enum mode { M_FREE, M_START, M_EXCEPTION, M_PAGEFAULT, M_RUNNING, M_HALTED };

struct space {
  unsigned long *pgdir;
  word tid;
  enum mode mode;
  u32 fault_va;
  int fault_write;
};

static struct space spaces[NPROC + 1];
static struct space *current; /* the directory uvm_switch made current */
static struct space *running; /* the thread L4 may run now: ready, not waiting for the kernel */

static word thread_control(word dest, word space, word scheduler, word pager, word utcb) {
  word w[5] = {dest, space, scheduler, pager, utcb};
  return rm_call(RM_THREAD_CONTROL, 5, w);
}

static struct space *space_of(unsigned long *pgdir) {
  for (int i = 0; i < NPROC + 1; i++)
    if (spaces[i].mode != M_FREE && spaces[i].pgdir == pgdir) return &spaces[i];
  return 0;
}

static void halt(struct space *s) {
  l4_exregs_halt(s->tid, L4_EX_HALT_VALID | L4_EX_HALT);
  s->mode = M_HALTED;
  if (running == s) running = 0;
}

/* A new space and its thread, waiting for its start message (X.2 ThreadControl, SpaceControl
 * through the resource monitor: the same calls L4Ka::Linux makes for a new mm). */
static struct space *space_create(unsigned long *pgdir) {
  int i = 0;
  while (i < NPROC + 1 && spaces[i].mode != M_FREE) i++;
  if (i == NPROC + 1) panic("l4-para: no free space slot");
  word me = l4_kernel_tid(), tid = L4_GLOBAL(L4_THREAD_NO(me) + 2 + i);
  word sc[5] = {tid, 0, L4_FPAGE(L4_KIP, 12, 0), L4_FPAGE(L4_UTCB_AREA, 12, 0), 0};
  if (thread_control(tid, tid, me, L4_NILTHREAD, 0xffffffffu) != 1 ||
      rm_call(RM_SPACE_CONTROL, 5, sc) != 1 ||
      thread_control(tid, tid, me, me, L4_UTCB_AREA) != 1)
    panic("l4-para: the resource monitor refused a process's space (error %u)", L4_MR(2));
  l4_set_priority(tid, USER_PRIORITY);
  spaces[i] = (struct space){pgdir, tid, M_START, 0, 0};
  return &spaces[i];
}

void l4_space_switch(unsigned long *pgdir) {
  if (running && running->pgdir != pgdir) halt(running);
  current = space_of(pgdir);
  if (!current) current = space_create(pgdir);
}

/* The thread and its space go, with every mapping in the space. */
void l4_space_free(unsigned long *pgdir) {
  struct space *s = space_of(pgdir);
  if (!s) return;
  if (thread_control(s->tid, L4_NILTHREAD, L4_NILTHREAD, L4_NILTHREAD, 0xffffffffu) != 1)
    panic("l4-para: cannot delete thread %x", s->tid);
  if (running == s) running = 0;
  if (current == s) current = 0;
  s->mode = M_FREE;
}

/* Puts in the message registers what s's thread waits for, so that it runs on from tf; returns
 * the thread to send it to, or nil when nothing is to be sent. */
static word resume(struct space *s, const struct trapframe *tf) {
  word to = s->tid;
  switch (s->mode) {
    case M_START:
      L4_MR(0) = L4_TAG(0, 2, 0);
      L4_MR(1) = tf->eip;
      L4_MR(2) = tf->esp;
      break;
    case M_EXCEPTION: {
      const u32 w[12] = {tf->eip, tf->eflags, tf->trapno, tf->err, tf->edi, tf->esi,
                         tf->ebp, tf->esp,    tf->ebx,    tf->edx, tf->ecx, tf->eax};
      for (int i = 0; i < 12; i++) L4_MR(1 + i) = w[i];
      L4_MR(0) = L4_TAG(0, 12, 0);
      break;
    }
    case M_PAGEFAULT: {
      word item[2];
      if (l4_user_map(s->pgdir, s->fault_va, s->fault_write, item)) {
        L4_MR(0) = L4_TAG(0, 0, 2);
        L4_MR(1) = item[0];
        L4_MR(2) = item[1];
      } else {
        L4_MR(0) = L4_TAG(0, 0, 0); /* it faults again */
      }
      break;
    }
    case M_HALTED:
      l4_exregs_halt(s->tid, L4_EX_HALT_VALID);
      to = L4_NILTHREAD;
      break;
    default:
      to = L4_NILTHREAD;
  }
  s->mode = M_RUNNING;
  running = s;
  return to;
}

/* The interrupt or tick a wait ended with, as trap() takes it; user says whether the process
 * was running (a trap from ring 3) or the kernel was idle. */
static void interrupt(struct trapframe *tf, int irq, int user) {
  tf->trapno = T_IRQ0 + irq;
  tf->err = 0;
  tf->cs = user ? UCODE_SEL : KCODE_SEL;
  trap(tf);
}

/* What a wait received (tag from `from`), made into a trap; s is the running process's space,
 * 0 when the kernel waited idle. */
static void dispatch(struct trapframe *tf, word tag, word from, struct space *s) {
  word label = L4_LABEL(tag);
  if (tag & L4_TAG_E) {
    word e = l4_error();
    if (e == L4_ERR_TIMEOUT_RECEIVE) {
      if (l4_tick_due()) interrupt(tf, IRQ_TIMER, s != 0);
      return;
    }
    panic("l4-para: IPC error %x (from %x)", e, from);
  }
  if (label == L4_INTERRUPT && (from & 0x3fff) == 1 && L4_THREAD_NO(from) < 16) {
    interrupt(tf, L4_THREAD_NO(from), s != 0);
    return;
  }
  if (from == L4_CONSOLE_INPUT && label == RM_CONSOLE_INPUT) {
    l4_console_received();
    interrupt(tf, IRQ_COM1, s != 0);
    return;
  }
  int net = netfront_up ? netfront_message(tag, from) : -1;
  if (net > 0) interrupt(tf, L4_NET_IRQ, s != 0);
  if (net >= 0) return;
  if (!s || from != s->tid) {
    kprintf("l4-para: message %x from thread %x ignored\n", tag, from);
    return;
  }
  running = 0; /* it waits for the kernel's reply */
  tf->cs = UCODE_SEL;
  if ((label & 0xfff0) == L4_PAGEFAULT) {
    s->mode = M_PAGEFAULT;
    s->fault_va = L4_MR(1);
    s->fault_write = (label & 2) != 0;
    word item[2];
    if (l4_user_map(s->pgdir, s->fault_va, s->fault_write, item)) return; /* resume maps it */
    pte_t *pte = vm_walk(s->pgdir, s->fault_va, 0);
    tf->trapno = T_PGFLT;
    tf->err = PF_U | (s->fault_write ? PF_W : 0) | (pte && (*pte & PTE_P) ? PF_P : 0);
    tf->eip = L4_MR(2);
    l4_fault_address = s->fault_va;
    trap(tf);
  } else if (label == L4_EXCEPTION && (tag & 0x3f) == 12) {
    s->mode = M_EXCEPTION;
    u32 w[12];
    for (int i = 0; i < 12; i++) w[i] = L4_MR(1 + i);
    tf->eip = w[0], tf->eflags = w[1], tf->trapno = w[2], tf->err = w[3];
    tf->edi = w[4], tf->esi = w[5], tf->ebp = w[6], tf->esp = w[7];
    tf->ebx = w[8], tf->edx = w[9], tf->ecx = w[10], tf->eax = w[11];
    if (tf->trapno == T_GPFLT && tf->err == INT80_ERROR) {
      tf->trapno = T_SYSCALL;
      tf->err = 0;
      tf->eip += 2; /* the CPU's trap through the gate returns after the instruction */
    }
    trap(tf);
  } else {
    /* The process made an IPC of its own to the kernel: a fault it cannot recover from. */
    s->mode = M_EXCEPTION;
    struct proc *p = myproc();
    kprintf("kernel: pid %d (%s): IPC to the kernel (label %x): killed\n", p->pid, p->name, label);
    proc_exit(EXIT_FAULT(T_GPFLT));
  }
}

/* Where trapret leads: the current process's loop, on its kernel stack, at its trap frame. */
void l4_user_loop(struct trapframe *tf) __attribute__((noreturn));
void l4_user_loop(struct trapframe *tf) {
  for (;;) {
    struct space *s = current;
    netfront_before_wait(); /* before resume fills the message registers */
    word to = resume(s, tf), from = L4_NILTHREAD, tag;
    if (l4_tick_due()) {
      if (to != L4_NILTHREAD && (l4_ipc(to, L4_NILTHREAD, L4_TIMEOUTS(L4_ZERO, 0), 0) & L4_TAG_E))
        panic("l4-para: reply to %x failed: error %x", to, l4_error());
      interrupt(tf, IRQ_TIMER, 1);
      continue;
    }
    tag = l4_ipc(to, L4_ANYTHREAD, L4_TIMEOUTS(L4_ZERO, l4_tick_timeout()), &from);
    dispatch(tf, tag, from, s);
  }
}

/* sti; hlt: no process runs (one that was is halted), the kernel waits for an interrupt. */
void l4_idle(void) {
  struct trapframe tf;
  memset(&tf, 0, sizeof tf);
  if (running) halt(running);
  l4_console_flush();
  netfront_before_wait();
  if (l4_tick_due()) {
    interrupt(&tf, IRQ_TIMER, 0);
    return;
  }
  word from = L4_NILTHREAD;
  word tag = l4_ipc(L4_NILTHREAD, L4_ANYTHREAD, L4_TIMEOUTS(0, l4_tick_timeout()), &from);
  dispatch(&tf, tag, from, 0);
}
