/*
 * Sensitive instructions a user-space program may run on the host, each printing what it
 * observed. Built once plainly and once through the afterburner's as wrapper; both binaries must
 * print the same (the padding only adds NOPs). Privileged ones (cli, sti, hlt, in, out) and
 * int3 trap; a signal handler steps over them, so the code after each padded site runs too.
 * rdtsc is run but its value is not printed.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <ucontext.h>

static volatile int t_signals;
static volatile int t_skip;

static void t_handler(int sig, siginfo_t *info, void *ctx) {
  ucontext_t *uc = ctx;
  (void)info;
  t_signals += sig == SIGTRAP ? 100 : 1;
  uc->uc_mcontext.gregs[REG_EIP] += t_skip; /* step over the trapping instruction */
}

struct t_far {
  uint32_t off;
  uint16_t sel;
} __attribute__((packed));

/* A far-call target: returns 42 with lret. */
__asm__(".text\n.globl t_far_target\nt_far_target:\n\tmovl $42, %eax\n\tlret\n");
void t_far_target(void);

static uint32_t t_flags(void) {
  uint32_t f;
  __asm__ volatile("pushfl; popl %0" : "=r"(f));
  return f;
}

int main(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = t_handler;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGSEGV, &sa, 0);
  sigaction(SIGTRAP, &sa, 0);

  /* pushf/popf: toggle the ID flag (bit 21) and put it back. */
  uint32_t f0 = t_flags();
  uint32_t f1;
  __asm__ volatile("pushl %1; popfl; pushfl; popl %0; pushl %2; popfl"
                   : "=r"(f1)
                   : "r"(f0 ^ (1u << 21)), "r"(f0)
                   : "cc");
  printf("pushf/popf: IF=%u ID toggles=%u\n", (f0 >> 9) & 1, ((f0 ^ f1) >> 21) & 1);

  /* Segment registers: push/pop, mov to and from. */
  uint32_t cs, ds, ss, es = 0;
  __asm__ volatile("push %%cs; popl %0; push %%ds; popl %1" : "=r"(cs), "=r"(ds));
  __asm__ volatile("mov %%ss, %0; movw %%es, %w1" : "=r"(ss), "+r"(es));
  __asm__ volatile("push %%es; pop %%es; push %%fs; pop %%fs; push %%gs; pop %%gs; push %%ss; pop %%ss" ::: "memory");
  __asm__ volatile("mov %0, %%es; movw %w0, %%ds" : : "r"(ds) : "memory");
  uint16_t mem_ds = 0;
  __asm__ volatile("mov %%ds, %0" : "=m"(mem_ds));
  printf("segments: cs=%#x ds=%#x ss=%#x es=%#x mem ds=%#x\n", cs, ds, ss, es, mem_ds);

  /* lar, lsl, verr, verw on the code and data selectors; arpl. */
  uint32_t ar = 0, lim = 0;
  uint8_t zr, zw;
  __asm__ volatile("lar %1, %0" : "=r"(ar) : "r"(cs) : "cc");
  __asm__ volatile("lsl %1, %0" : "=r"(lim) : "r"(ds) : "cc");
  __asm__ volatile("verr %w1; setz %0" : "=q"(zr) : "r"(cs) : "cc");
  __asm__ volatile("verw %w1; setz %0" : "=q"(zw) : "r"(ds) : "cc");
  uint16_t dst = 0x10;
  __asm__ volatile("arpl %w1, %0" : "+r"(dst) : "r"(cs) : "cc");
  printf("lar cs=%#x lsl ds=%#x verr cs=%u verw ds=%u arpl=%#x\n", ar & 0xffff00, lim, zr, zw, dst);

  /* Far pointers: lds, les, lfs, lss (with the current values). */
  struct t_far p = {0x1234, (uint16_t)ds};
  uint32_t got;
  __asm__ volatile("push %%ds; lds %1, %0; pop %%ds" : "=r"(got) : "m"(p) : "memory");
  uint32_t got2;
  __asm__ volatile("les %1, %0" : "=r"(got2) : "m"(p) : "memory");
  uint32_t fs0;
  __asm__ volatile("mov %%fs, %0; lfs %2, %1; mov %0, %%fs" : "=&r"(fs0), "=r"(got) : "m"(p) : "memory");
  struct t_far stk;
  __asm__ volatile("movl %%esp, %0; movw %%ss, %1; lss %0, %%esp"
                   : "+m"(stk.off), "=m"(stk.sel)
                   :
                   : "memory");
  printf("lds/les/lfs/lss: %#x %#x\n", got, got2);

  /* Far control transfers within the same code segment. */
  struct t_far target = {(uint32_t)(uintptr_t)t_far_target, (uint16_t)cs};
  uint32_t r;
  __asm__ volatile("lcall *%1" : "=a"(r) : "m"(target) : "memory", "ecx", "edx");
  uint32_t j = 0;
  struct t_far jt;
  __asm__ volatile("movl $1f, %1; movw %%cs, %2; ljmp *%1; movl $7, %0; 1: movl $9, %0"
                   : "+r"(j), "=m"(jt.off), "=m"(jt.sel)
                   :
                   : "memory");
  uint32_t k = 0;
  __asm__ volatile("push %%cs; pushl $1f; lret; movl $7, %0; 1: movl $8, %0" : "+r"(k) : : "memory");
  uint32_t i = 0;
  __asm__ volatile("pushfl; push %%cs; pushl $1f; iret; movl $7, %0; 1: movl $6, %0" : "+r"(i) : : "memory", "cc");
  printf("lcall=%u ljmp=%u lret=%u iret=%u\n", r, j, k, i);

  /* int $0x80: write(1, ...) directly. */
  fflush(stdout);
  static const char msg[] = "int $0x80 write\n";
  int ret;
  __asm__ volatile("int $0x80" : "=a"(ret) : "a"(4), "b"(1), "c"(msg), "d"(sizeof msg - 1) : "memory");
  printf("int $0x80 returned %d\n", ret);

  /* cpuid leaf 0 (vendor), smsw (UMIP may emulate it: only its low bits), sgdt/sidt limits. */
  uint32_t a, b, c, d;
  __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0));
  char vendor[13];
  memcpy(vendor, &b, 4);
  memcpy(vendor + 4, &d, 4);
  memcpy(vendor + 8, &c, 4);
  vendor[12] = 0;
  uint32_t msw;
  __asm__ volatile("smsw %0" : "=r"(msw));
  struct {
    uint16_t limit;
    uint32_t base;
  } __attribute__((packed)) gdtr, idtr;
  __asm__ volatile("sgdt %0; sidt %1" : "=m"(gdtr), "=m"(idtr));
  printf("cpuid vendor=%s smsw.PE=%u gdt limit=%#x idt limit=%#x\n", vendor, msw & 1, gdtr.limit, idtr.limit);

  /* rdtsc runs; its value differs run to run, so only monotonicity is printed. */
  uint32_t lo1, hi1, lo2, hi2;
  __asm__ volatile("rdtsc" : "=a"(lo1), "=d"(hi1));
  __asm__ volatile("rdtsc" : "=a"(lo2), "=d"(hi2));
  printf("rdtsc monotonic=%d\n", ((uint64_t)hi2 << 32 | lo2) >= ((uint64_t)hi1 << 32 | lo1));

  /* Privileged in ring 3: #GP (SIGSEGV); int3: SIGTRAP. The handler steps over each. */
  t_skip = 1;
  __asm__ volatile("cli");
  __asm__ volatile("sti");
  __asm__ volatile("hlt");
  t_skip = 2;
  __asm__ volatile("inb $0x80, %%al" : : : "eax");
  __asm__ volatile("outb %%al, $0x80" : : "a"(0));
  t_skip = 0;
  __asm__ volatile("int3");
  printf("signals: %d\n", t_signals);
  return 0;
}
