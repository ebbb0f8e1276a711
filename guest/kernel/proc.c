/*
 * Processes and the scheduler. One CPU, and the kernel runs with interrupts off (every IDT
 * gate is an interrupt gate), so kernel code is never preempted and needs no locks: a process
 * gives up the CPU only by returning to ring 3 (where the timer tick can preempt it) or by
 * calling sched() through yield, sleep_on or exit.
 *
 * The scheduler runs on the boot stack. It picks the next RUNNABLE process round-robin and
 * swtch()es to it; the process swtch()es back when it stops running. With nothing to run it
 * halts with interrupts on until the next interrupt.
 */
#include "defs.h"
#include "memlayout.h"
#include "mmu.h"
#include "proc.h"
#include "syscall.h"
#include "trap.h"
#include "x86.h"

static struct proc procs[NPROC];
static struct proc *current;          /* the RUNNING process, or 0 in the scheduler */
static struct context *sched_context; /* where sched() returns to */
static struct proc *initproc;
static void (*init_hook)(int status);
static int nextpid = 1;

struct proc *myproc(void) { return current; }

void proc_init(void) { memset(procs, 0, sizeof procs); }

void proc_set_init_hook(void (*hook)(int status)) { init_hook = hook; }

/* Lay out the argument strings, the argv array, then argv and argc at the top of the new
 * process's stack, so that crt0's `call main` passes them as main's arguments. Returns the
 * initial %esp. */
static int setup_stack(pde_t *pgdir, char *const argv[], int argc, u32 *esp) {
  u32 sp = USTACK_TOP, uargv[17];
  if (argc > 16) return -EINVAL;
  for (int i = argc - 1; i >= 0; i--) {
    u32 len = strlen(argv[i]) + 1;
    sp -= len;
    if (uvm_copyout(pgdir, sp, argv[i], len, PTE_W) < 0) return -ENOMEM;
    uargv[i] = sp;
  }
  uargv[argc] = 0;
  sp &= ~3u;
  sp -= (argc + 1) * 4;
  u32 argv_va = sp;
  u32 frame[2] = {(u32)argc, argv_va};
  if (uvm_copyout(pgdir, argv_va, uargv, (argc + 1) * 4, PTE_W) < 0) return -ENOMEM;
  sp -= sizeof frame;
  if (uvm_copyout(pgdir, sp, frame, sizeof frame, PTE_W) < 0) return -ENOMEM;
  *esp = sp;
  return 0;
}

static void free_proc(struct proc *p) {
  if (p->pgdir) uvm_free(p->pgdir);
  if (p->kstack) kfree(p->kstack);
  memset(p, 0, sizeof *p); /* state UNUSED */
}

/* Create a process running program `name`; returns its pid or -error. */
int proc_spawn(const char *name, char *const argv[], int argc, struct proc *parent) {
  const struct program *prog = program_find(name);
  if (!prog) return -ENOENT;
  struct proc *p = 0;
  for (int i = 0; i < NPROC && !p; i++)
    if (procs[i].state == UNUSED) p = &procs[i];
  if (!p) return -EAGAIN;
  p->state = EMBRYO;
  int r = -ENOMEM;
  u32 entry, esp;
  if (!(p->kstack = kalloc()) || !(p->pgdir = uvm_create())) goto fail;
  if ((r = elf_load(p->pgdir, prog->image, prog->size, &entry)) < 0) goto fail;
  if ((r = setup_stack(p->pgdir, argv, argc, &esp)) < 0) goto fail;

  /* The kernel stack of a new process: its user registers, and below them a context that
   * makes swtch() "return" to trapret, which irets into ring 3 at the entry point. */
  char *sp = p->kstack + KSTACK_SIZE - sizeof(struct trapframe);
  p->tf = (struct trapframe *)sp;
  memset(p->tf, 0, sizeof *p->tf);
  p->tf->cs = UCODE_SEL;
  p->tf->ds = p->tf->es = p->tf->fs = p->tf->gs = p->tf->ss = UDATA_SEL;
  p->tf->eflags = EFLAGS_IF | 0x2; /* bit 1 is always set */
  p->tf->esp = esp;
  p->tf->eip = entry;
  sp -= sizeof(struct context);
  p->context = (struct context *)sp;
  memset(p->context, 0, sizeof *p->context);
  p->context->eip = (u32)trapret;

  p->pid = nextpid++;
  strlcpy_(p->name, name, sizeof p->name);
  p->parent = parent;
  if (!initproc) initproc = p;
  p->state = RUNNABLE;
  return p->pid;
fail:
  free_proc(p);
  return r;
}

void scheduler(void) {
  int last = NPROC - 1;
  for (;;) {
    struct proc *p = 0;
    for (int i = 1; i <= NPROC && !p; i++) {
      struct proc *q = &procs[(last + i) % NPROC];
      if (q->state == RUNNABLE) p = q, last = (last + i) % NPROC;
    }
    if (!p) {
      sti_hlt(); /* nothing to run: wait for an interrupt to make something runnable */
      cli();
      continue;
    }
    current = p;
    p->state = RUNNING;
    uvm_switch(p);
    swtch(&sched_context, p->context);
    current = 0;
  }
}

/* Back to the scheduler; returns when this process is picked again. */
static void sched(void) { swtch(&current->context, sched_context); }

void yield(void) {
  current->state = RUNNABLE;
  sched();
}

void sleep_on(void *chan) {
  current->chan = chan;
  current->state = SLEEPING;
  sched();
  current->chan = 0;
}

void wakeup(void *chan) {
  for (int i = 0; i < NPROC; i++)
    if (procs[i].state == SLEEPING && procs[i].chan == chan) procs[i].state = RUNNABLE;
}

void proc_exit(int status) {
  struct proc *p = current;
  if (p == initproc && init_hook) init_hook(status); /* the run is over */
  /* Orphans go to init, which reaps them when it waits. */
  for (int i = 0; i < NPROC; i++) {
    if (procs[i].parent != p) continue;
    procs[i].parent = initproc;
    if (procs[i].state == ZOMBIE) wakeup(initproc);
  }
  p->exit_status = status;
  p->state = ZOMBIE;
  if (p->parent) wakeup(p->parent);
  sched();
  panic("zombie %d ran", p->pid);
}

/* Wait for a child to exit; frees it and returns its pid, or -ECHILD if there is none. */
int proc_wait(int *status) {
  for (;;) {
    int kids = 0;
    for (int i = 0; i < NPROC; i++) {
      struct proc *q = &procs[i];
      if (q->parent != current || q->state == UNUSED) continue;
      kids++;
      if (q->state == ZOMBIE) {
        int pid = q->pid;
        *status = q->exit_status;
        free_proc(q);
        return pid;
      }
    }
    if (!kids) return -ECHILD;
    if (current->killed) return -EINVAL;
    sleep_on(current);
  }
}

int proc_kill(int pid) {
  for (int i = 0; i < NPROC; i++) {
    struct proc *q = &procs[i];
    if (q->pid != pid || q->state == UNUSED || q->state == ZOMBIE || q->state == EMBRYO) continue;
    q->killed = EXIT_KILLED;
    if (q->state == SLEEPING) q->state = RUNNABLE; /* it notices on its way out of the kernel */
    return 0;
  }
  return -ESRCH;
}
