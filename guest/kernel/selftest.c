/*
 * The kernel half of the self-test (init=selftest): checks that need ring 0. The user half is
 * the program utest, which init=selftest runs next. Each test prints one line,
 * "test: ok   <name>" or "test: FAIL <name>: <why>", so runs can be compared line by line.
 */
#include "afterburn.h"
#include "defs.h"
#include "memlayout.h"
#include "mmu.h"
#include "syscall.h"
#include "x86.h"

static int passed, failed;

static void report(const char *name, const char *why) {
  if (why) {
    failed++;
    kprintf("test: FAIL %s: %s\n", name, why);
  } else {
    passed++;
    kprintf("test: ok   %s\n", name);
  }
}

static const char *test_format(void) {
  char buf[64];
  snprintf(buf, sizeof buf, "%d %u %x %s %c %05d|%3s", -42, 42u, 0xbeefu, "str", 'c', 7, "a");
  return strcmp(buf, "-42 42 beef str c 00007|  a") ? "snprintf output differs" : 0;
}

#ifdef ARCH_SELFTEST /* a port checks its own descriptor tables and PCI access (guest/arch/<port>) */
#include ARCH_SELFTEST
#else
static const char *test_descriptor_tables(void) {
  if (str() != TSS_SEL) return "str does not return the TSS selector";
  if (sgdt().limit != NSEGS * 8 - 1) return "sgdt limit differs from what lgdt loaded";
  if (sidt().limit != 256 * 8 - 1) return "sidt limit differs from what lidt loaded";
  return 0;
}
#endif

static const char *test_interrupt_flag(void) {
  const char *why = 0;
  sti();
  u32 f = irq_save();
  if (read_eflags() & EFLAGS_IF) why = "IF still set after irq_save";
  irq_restore(f);
  if (!why && !(read_eflags() & EFLAGS_IF)) why = "popf did not restore IF";
  cli();
  return why;
}

static const char *test_page_allocator(void) {
  u32 before = kalloc_free_pages();
  u8 *a = kalloc(), *b = kalloc();
  const char *why = 0;
  if (!a || !b || a == b) why = "two allocations failed or returned the same page";
  else if ((u32)a % PAGE_SIZE || (u32)b % PAGE_SIZE) why = "page not aligned";
  else if (kalloc_free_pages() != before - 2) why = "free count did not drop by 2";
  if (a) kfree(a);
  if (b) kfree(b);
  if (!why && kalloc_free_pages() != before) why = "free count not restored";
  return why;
}

/* Map the scratch page to one frame, then another; invlpg must make the change visible. */
static const char *test_page_tables(void) {
  volatile u32 *scratch = (volatile u32 *)SCRATCH_VA;
  u32 *a = kalloc(), *b = kalloc();
  const char *why = 0;
  if (!a || !b) return "out of memory";
  a[0] = 0xaaaa5555;
  b[0] = 0x5555aaaa;
  pte_t *pte = vm_walk(kvm_pgdir(), SCRATCH_VA, 0);
  if (!pte) why = "no page table for the scratch page";
  if (!why) {
    ab_pte_set(pte, V2P(a) | PTE_P | PTE_W);
    invlpg(SCRATCH_VA);
    if (*scratch != 0xaaaa5555) why = "first mapping reads the wrong frame";
  }
  if (!why) {
    ab_pte_set(pte, V2P(b) | PTE_P | PTE_W);
    invlpg(SCRATCH_VA);
    if (*scratch != 0x5555aaaa) why = "remapping not visible after invlpg";
  }
  if (!why) {
    *scratch = 0x12345678;
    if (b[0] != 0x12345678) why = "write through the mapping missed the frame";
  }
  if (pte) {
    u32 old = ab_pte_test_clear(pte);
    invlpg(SCRATCH_VA);
    if (!why && (PTE_ADDR(old) != V2P(b) || !(old & PTE_P))) why = "test-and-clear returned the wrong entry";
    if (!why && ab_pte_read(pte) != 0) why = "entry not cleared";
  }
  kfree(a);
  kfree(b);
  return why;
}

/* A user address space: a demand-zero page appears zeroed; teardown gives every page back. */
static const char *test_address_space(void) {
  u32 before = kalloc_free_pages();
  pde_t *pgdir = uvm_create();
  if (!pgdir) return "out of memory";
  const char *why = 0;
  if (uvm_demand_zero(pgdir, UHEAP_BASE + 5 * PAGE_SIZE) < 0) why = "demand-zero refused a heap page";
  pte_t *pte = vm_walk(pgdir, UHEAP_BASE + 5 * PAGE_SIZE, 0);
  u32 e = pte ? ab_pte_read(pte) : 0;
  if (!why && (e & (PTE_P | PTE_U | PTE_W)) != (PTE_P | PTE_U | PTE_W)) why = "heap page not user-writable";
  if (!why) {
    const u32 *page = P2V(PTE_ADDR(e));
    for (u32 i = 0; i < PAGE_SIZE / 4; i++)
      if (page[i]) why = "demand-zero page is not zero";
  }
  if (!why && uvm_demand_zero(pgdir, 0x1000) == 0) why = "demand-zero accepted an address outside its regions";
  if (!why && uvm_check(pgdir, KERNLINK, 4, 0) == 0) why = "user check accepted a kernel address";
  uvm_free(pgdir);
  if (!why && kalloc_free_pages() != before) why = "teardown leaked pages";
  return why;
}

static const char *test_timer(void) {
  u32 t0 = ticks_now();
  for (int i = 0; i < 1000 && ticks_now() < t0 + 3; i++) sti_hlt();
  cli();
  return ticks_now() >= t0 + 3 ? 0 : "fewer than 3 ticks in 1000 halts";
}

static const char *test_cmos(void) {
  u32 a = cmos_time(), b = cmos_time();
  if (a == 0 && b == 0) return 0; /* no RTC: time() counts from 0, still fine */
  if (b < a || b - a > 2) return "two readings disagree";
  return 0;
}

#ifndef ARCH_SELFTEST
/* Configuration mechanism #1: the address register at 0xCF8 reads back what was written. */
static const char *test_pci(void) {
  outl(0xcf8, 0x80000000u);
  u32 v = inl(0xcf8);
  return v == 0x80000000u ? 0 : "0xCF8 does not read back";
}
#endif

int kernel_selftest(void) {
  kprintf("selftest: kernel tests\n");
  report("kernel: console formatting", test_format());
  report("kernel: lgdt/lidt/ltr descriptor tables", test_descriptor_tables());
  report("kernel: cli/sti/pushf/popf interrupt flag", test_interrupt_flag());
  report("kernel: physical page allocator", test_page_allocator());
  report("kernel: page tables, invlpg, test-and-clear", test_page_tables());
  report("kernel: address space, demand-zero, teardown", test_address_space());
  report("kernel: timer ticks advance", test_timer());
  report("kernel: CMOS clock", test_cmos());
  report("kernel: PCI configuration mechanism", test_pci());
  kprintf("selftest: kernel: %d passed, %d failed\n", passed, failed);
  return failed;
}
