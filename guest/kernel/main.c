/*
 * Start-up, in order. entry.S has turned paging on with a boot page directory that maps the
 * first 16 MB and called kmain on the boot stack with interrupts off.
 */
#include "defs.h"
#include "memlayout.h"
#include "mmu.h"
#include "trap.h"
#include "x86.h"

extern char kernel_end[];

static struct bootinfo bootinfo;

#ifndef ARCH_SHUTDOWN /* a port that ends a run its own way defines it (guest/arch/<port>) */
/* isa-debug-exit (QEMU's -device isa-debug-exit, previrt's machine): writing v ends the run
 * with host exit status (v << 1) | 1. On a PC without it, we just stop. */
#define DEBUG_EXIT_PORT 0xf4

void shutdown(int code) {
  kprintf("kernel: shutdown, exit code %d\n", code);
  cli();
  outb(DEBUG_EXIT_PORT, (u8)code);
  for (;;) hlt();
}
#endif

static void run_init(void);

void kmain(u32 magic, u32 mbi_pa) {
  uart_init();                              /* COM1 first, so everything after can print */
  kprintf("previrt guest kernel\n");
  boot_parse(magic, mbi_pa, &bootinfo);     /* copy what we need out of the multiboot info */
  gdt_init();                               /* kernel and user segments, TSS */
  idt_init();                               /* exception, IRQ and syscall gates */
  pic_init();                               /* 8259s remapped to vectors 32..47, all masked */
  /* Page allocator: everything usable above the kernel image and the boot modules. */
  u32 first_free = PAGE_ROUNDUP(V2P(kernel_end));
  for (u32 i = 0; i < bootinfo.nmods; i++)
    if (bootinfo.mods[i].end > first_free) first_free = PAGE_ROUNDUP(bootinfo.mods[i].end);
  kalloc_add(&bootinfo, first_free, BOOT_MAPPED);
  kvm_init(&bootinfo);                      /* the kernel's own page directory replaces boot's */
  kalloc_add(&bootinfo, BOOT_MAPPED, PHYS_MAX); /* now all RAM is mapped */
  lcr0(rcr0() | CR0_WP | CR0_NE);           /* ring 0 respects read-only user pages */
  timer_init();                             /* 8254 channel 0 at HZ: the preemption tick */
  irq_register(IRQ_COM1, uart_intr);        /* console input interrupts */
  clock_init(cmos_time());                  /* wall clock: CMOS at boot, then the tick */
  kprintf("time: %u seconds since 1970 (CMOS)\n", clock_seconds());
  pci_init();                               /* enumerate and print PCI functions */
  dp83820_init();                           /* the NIC, if there is one */
  dp83820_announce();
  net_init();                               /* Ethernet, ARP, IPv4, ICMP, TCP on port 5001 */
  bridge_init();                            /* a driver VM's translation module, if wanted */
  programs_init(&bootinfo);                 /* built-in programs and multiboot modules */
  proc_init();
  run_init();                               /* create process 1 as the command line says */
  scheduler();                              /* never returns */
}

/* Kernel self-test failures, or -1 when this is not a self-test run. */
static int kernel_failures = -1;

/* When init exits the run is over: its exit status becomes the machine's exit code. */
static void init_exited(int status) {
  net_report();
  bridge_report();
  kprintf("kernel: init exited with status %d\n", status);
  if (kernel_failures >= 0) {
    int pass = kernel_failures == 0 && status == 0;
    kprintf("selftest: %s\n", pass ? "PASS" : "FAIL");
    shutdown(pass ? 0 : 1);
  }
  shutdown(status & 0xff);
}

#define MAX_INIT_ARGS 8

/* Words after " -- " on the command line become init's argv[1..] (as on Linux). */
static int init_args(char *argv[], int max) {
  static char words[256];
  const char *p = bootinfo.cmdline;
  int argc = 0;
  for (; *p; p++)
    if (strncmp(p, " -- ", 4) == 0 || strcmp(p, " --") == 0) break;
  if (!*p) return 0;
  strlcpy_(words, p + 3, sizeof words);
  for (char *w = words; *w && argc < max;) {
    while (*w == ' ') *w++ = 0;
    if (!*w) break;
    argv[argc++] = w;
    while (*w && *w != ' ') w++;
  }
  return argc;
}

static void run_init(void) {
  char init[32];
  if (!cmdline_get(bootinfo.cmdline, "init", init, sizeof init)) strlcpy_(init, "shell", sizeof init);
  char *argv[MAX_INIT_ARGS + 1] = {init};
  if (strcmp(init, "selftest") == 0) {
    kernel_failures = kernel_selftest();
    /* The user half of the suite reads this line from the console. */
    console_inject("selftest input\n");
    argv[0] = "utest";
  } else if (strcmp(init, "shell") == 0) {
    argv[0] = "sh";
  }
  int argc = 1 + init_args(argv + 1, MAX_INIT_ARGS - 1);
  argv[argc] = 0;
  proc_set_init_hook(init_exited);
  kprintf("kernel: starting init: %s\n", argv[0]);
  if (proc_spawn(argv[0], argv, argc, 0) < 0) {
    kprintf("kernel: no program named '%s'\n", argv[0]);
    shutdown(2);
  }
}
