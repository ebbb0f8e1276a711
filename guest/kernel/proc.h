/* A process: its address space, kernel stack, saved registers and place in the scheduler. */
#ifndef GUEST_PROC_H
#define GUEST_PROC_H

#include "types.h"

/* Callee-saved registers swtch() keeps on the kernel stack of the process it leaves. */
struct context {
  u32 edi, esi, ebx, ebp, eip;
};

enum procstate { UNUSED, EMBRYO, SLEEPING, RUNNABLE, RUNNING, ZOMBIE };

#define NPROC 32
#define KSTACK_SIZE 4096 /* one page: kernel paths are shallow */

struct proc {
  enum procstate state;
  int pid;
  char name[16];
  unsigned long *pgdir;      /* page directory (kernel virtual address; pde_t *) */
  char *kstack;              /* bottom of the kernel stack (KSTACK_SIZE bytes) */
  struct trapframe *tf;      /* user registers, at the top of kstack */
  struct context *context;   /* where swtch() resumes this process */
  struct proc *parent;
  void *chan;                /* what a SLEEPING process waits for */
  u32 wake_tick;             /* for sleep(): the tick to wake up at */
  int killed;                /* nonzero: die with this status on the way back to ring 3 */
  int exit_status;
};

void swtch(struct context **old, struct context *new);

#endif
