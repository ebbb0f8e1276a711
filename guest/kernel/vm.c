/*
 * Page tables. Every read and write of a page-directory or page-table entry goes through the
 * annotation header afterburn.h (DESIGN.md decision 8): on raw hardware the helpers are plain
 * loads and stores; in a virtualized run the in-place VMM rewrites them into calls that keep
 * the hypervisor's view of the page tables right.
 *
 * Each process has its own page directory. The kernel half (KERNBASE and up) points at the
 * same page tables in every directory, so kernel mappings made at boot are seen everywhere.
 */
#include "afterburn.h"
#include "defs.h"
#include "memlayout.h"
#include "mmu.h"
#include "proc.h"
#include "syscall.h"
#include "x86.h"

static pde_t *kpgdir;
static u32 ioremap_next = IOREMAP_BASE;

static void *zalloc(void) {
  void *p = kalloc();
  if (p) memset(p, 0, PAGE_SIZE);
  return p;
}

/* The page-table entry for va, creating its page table if alloc is set. */
pte_t *vm_walk(pde_t *pgdir, u32 va, int alloc) {
  pde_t *pde = &pgdir[PDX(va)];
  u32 e = ab_pgd_read(pde);
  pte_t *pt;
  if (e & PTE_P) {
    pt = P2V(PTE_ADDR(e));
  } else {
    if (!alloc || !(pt = zalloc())) return 0;
    /* User bit and write bit on the directory entry; the page-table entries decide. */
    ab_pgd_set(pde, V2P(pt) | PTE_P | PTE_W | (va < KERNBASE ? PTE_U : 0));
  }
  return &pt[PTX(va)];
}

int vm_map(pde_t *pgdir, u32 va, u32 pa, u32 perm) {
  pte_t *pte = vm_walk(pgdir, va, 1);
  if (!pte) return -ENOMEM;
  ab_pte_set(pte, pa | perm | PTE_P);
  return 0;
}

void kvm_init(const struct bootinfo *bi) {
  kpgdir = zalloc();
  if (!kpgdir) panic("no memory for the kernel page directory");
  /* Map [0, top of usable RAM) at KERNBASE: low memory, the kernel image, every free page. */
  u32 top = 0x01000000; /* at least what the boot tables mapped */
  for (u32 i = 0; i < bi->nranges; i++)
    if (bi->ranges[i].end > top) top = bi->ranges[i].end;
  for (u32 pa = 0; pa < top; pa += PAGE_SIZE)
    if (vm_map(kpgdir, KERNBASE + pa, pa, PTE_W) < 0) panic("out of memory mapping RAM");
  /* Create the page tables of the MMIO window and the scratch page now, so that every
   * process directory (which copies the kernel's directory entries) shares them. */
  for (u32 va = IOREMAP_BASE; va <= SCRATCH_VA; va += 0x400000)
    if (!vm_walk(kpgdir, va, 1)) panic("out of memory for kernel page tables");
  kvm_switch();
  kprintf("vm: kernel page directory at %x maps %u MB of RAM at %x\n", V2P(kpgdir), top >> 20,
          KERNBASE);
}

void kvm_switch(void) { lcr3(V2P(kpgdir)); }

pde_t *kvm_pgdir(void) { return kpgdir; }

/* Map device registers (uncached) and return their kernel virtual address. */
void *ioremap(u32 pa, u32 len) {
  u32 off = pa & (PAGE_SIZE - 1);
  u32 n = PAGE_ROUNDUP(len + off);
  if (ioremap_next + n > IOREMAP_END) return 0;
  u32 va = ioremap_next;
  for (u32 i = 0; i < n; i += PAGE_SIZE) {
    vm_map(kpgdir, va + i, PAGE_ROUNDDOWN(pa) + i, PTE_W | PTE_PCD | PTE_PWT);
    invlpg(va + i);
  }
  ioremap_next += n;
  return (void *)(va + off);
}

/* A new process directory: empty user half, the kernel's entries for the kernel half. */
pde_t *uvm_create(void) {
  pde_t *pgdir = zalloc();
  if (!pgdir) return 0;
  for (u32 i = PDX(KERNBASE); i < 1024; i++) {
    u32 e = ab_pgd_read(&kpgdir[i]);
    if (e) ab_pgd_set(&pgdir[i], e);
  }
  return pgdir;
}

/* Free a process's pages, page tables and directory. Never the one the CPU is using. */
void uvm_free(pde_t *pgdir) {
  for (u32 i = 0; i < PDX(KERNBASE); i++) {
    u32 e = ab_pgd_read(&pgdir[i]);
    if (!(e & PTE_P)) continue;
    pte_t *pt = P2V(PTE_ADDR(e));
    for (int j = 0; j < 1024; j++) {
      /* Read first, as Linux's zap_pte_range does: under a hypervisor the atomic
       * test-and-clear is the expensive one, and most entries are empty. */
      if (!ab_pte_read(&pt[j])) continue;
      u32 old = ab_pte_test_clear(&pt[j]);
      if (old & PTE_P) kfree(P2V(PTE_ADDR(old)));
    }
    ab_pgd_set(&pgdir[i], 0);
    kfree(pt);
  }
  kfree(pgdir);
}

void uvm_switch(struct proc *p) {
  tss_set_kstack((u32)p->kstack + KSTACK_SIZE);
  lcr3(V2P(p->pgdir));
}

static int in_demand_zero(u32 va) {
  return (va >= UHEAP_BASE && va < UHEAP_END) || (va >= USTACK_TOP - USTACK_SIZE && va < USTACK_TOP);
}

/* Give va's page a fresh zero-filled frame if va is in a demand-zero region and unmapped. */
int uvm_demand_zero(pde_t *pgdir, u32 va) {
  if (!in_demand_zero(va)) return -EFAULT;
  pte_t *pte = vm_walk(pgdir, va, 1);
  if (!pte) return -ENOMEM;
  if (ab_pte_read(pte) & PTE_P) return 0;
  void *page = zalloc();
  if (!page) return -ENOMEM;
  ab_pte_set(pte, V2P(page) | PTE_P | PTE_W | PTE_U);
  return 0;
}

/* Can the current process's kernel code touch [va, va+len) for it? Faults in demand-zero
 * pages now, so the kernel never takes a page fault on a user pointer. */
int uvm_check(pde_t *pgdir, u32 va, u32 len, int write) {
  if (va >= KERNBASE || len > KERNBASE - va) return -EFAULT;
  for (u32 p = PAGE_ROUNDDOWN(va); p < va + len; p += PAGE_SIZE) {
    pte_t *pte = vm_walk(pgdir, p, 0);
    u32 e = pte ? ab_pte_read(pte) : 0;
    if (!(e & PTE_P)) {
      int r = uvm_demand_zero(pgdir, p);
      if (r < 0) return r;
      continue;
    }
    if (!(e & PTE_U) || (write && !(e & PTE_W))) return -EFAULT;
  }
  return 0;
}

/* Copy a NUL-terminated user string into dst (at most max bytes with the NUL). */
int uvm_strcpyin(pde_t *pgdir, char *dst, u32 va, int max) {
  for (int i = 0; i < max; i++) {
    if (uvm_check(pgdir, va + i, 1, 0) < 0) return -EFAULT;
    dst[i] = *(const char *)(va + i);
    if (!dst[i]) return i;
  }
  return -EINVAL;
}

/* Copy into another address space (not necessarily the current one) through the kernel's
 * mapping of physical memory, mapping pages with perm as needed. */
int uvm_copyout(pde_t *pgdir, u32 va, const void *src, u32 len, u32 perm) {
  const u8 *s = src;
  while (len > 0) {
    u32 page = PAGE_ROUNDDOWN(va), off = va - page;
    u32 n = PAGE_SIZE - off < len ? PAGE_SIZE - off : len;
    pte_t *pte = vm_walk(pgdir, page, 1);
    if (!pte) return -ENOMEM;
    u32 e = ab_pte_read(pte);
    if (!(e & PTE_P)) {
      void *frame = zalloc();
      if (!frame) return -ENOMEM;
      e = V2P(frame) | PTE_P | PTE_U | perm;
      ab_pte_set(pte, e);
    }
    if (s) memcpy((u8 *)P2V(PTE_ADDR(e)) + off, s, n), s += n;
    va += n;
    len -= n;
  }
  return 0;
}
