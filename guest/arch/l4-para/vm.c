/*
 * Page tables on L4, as L4Ka::Linux keeps them: the kernel's own data, in the PC's format,
 * written and walked as on the PC (kernel/vm.c is the model, function for function), but never
 * loaded into an MMU. What the hardware sees are L4 address spaces, and the kernel mirrors its
 * tables into them lazily: a process's page fault comes to the kernel as a message (task.c) and
 * is answered with a map item of the frame from the kernel's own one-to-one map (P2V); a write
 * that changes or removes a present entry unmaps the old frame from every space it was mapped
 * into (l4_pte_write). The kernel's space gets the guest-physical memory one-to-one at KERNBASE
 * from the resource monitor at start (setup.c); the pager thread (l4_pager_main) gives the kernel
 * thread what else its page tables say: the MMIO window and the scratch page from the kernel's
 * directory, and user addresses, which the shared system calls read and write directly once
 * uvm_check has passed them, from the current process's directory. Those user mappings in the
 * kernel's space are flushed when another process's directory becomes current.
 */
#include "afterburn.h"
#include "defs.h"
#include "l4.h"
#include "l4para.h"
#include "memlayout.h"
#include "mmu.h"
#include "proc.h"
#include "syscall.h"
#include "x86.h"

static pde_t *kpgdir;
static u32 ioremap_next = IOREMAP_BASE;
/* The process whose user pages the kernel's space may hold (the pager thread's source), and
 * whether it holds any. */
static pde_t *volatile alias_pgdir;
static volatile int alias_mapped;

static void *zalloc(void) {
  void *p = kalloc();
  if (p) memset(p, 0, PAGE_SIZE);
  return p;
}

/* Takes a frame away from every space it was mapped into from the kernel's one-to-one map (the
 * kernel keeps its own mapping): Unmap of its fpage, not flushed. */
static void unmap_frame(u32 pa) {
  L4_MR(0) = L4_FPAGE((u32)P2V(pa), 12, L4_RWX);
  l4_unmap(0);
}

void l4_pte_write(volatile unsigned long *p, unsigned long v) {
  unsigned long old = *p;
  *p = v;
  if ((old & PTE_P) && old != v) unmap_frame(PTE_ADDR(old));
}

/* The entry for va, creating its page table if alloc is set. */
pte_t *vm_walk(pde_t *pgdir, u32 va, int alloc) {
  pde_t *pde = &pgdir[PDX(va)];
  u32 e = *pde;
  pte_t *pt;
  if (e & PTE_P) {
    pt = P2V(PTE_ADDR(e));
  } else {
    if (!alloc || !(pt = zalloc())) return 0;
    *pde = V2P(pt) | PTE_P | PTE_W | (va < KERNBASE ? PTE_U : 0);
  }
  return &pt[PTX(va)];
}

int vm_map(pde_t *pgdir, u32 va, u32 pa, u32 perm) {
  pte_t *pte = vm_walk(pgdir, va, 1);
  if (!pte) return -ENOMEM;
  l4_pte_write(pte, pa | perm | PTE_P);
  return 0;
}

void kvm_init(const struct bootinfo *bi) {
  kpgdir = zalloc();
  if (!kpgdir) panic("no memory for the kernel page directory");
  /* The same map as the PC's, so that walks and the self-test see the same tables; the
   * one-to-one part is what the resource monitor mapped at start. */
  u32 top = 0x01000000;
  for (u32 i = 0; i < bi->nranges; i++)
    if (bi->ranges[i].end > top) top = bi->ranges[i].end;
  for (u32 pa = 0; pa < top; pa += PAGE_SIZE)
    if (vm_map(kpgdir, KERNBASE + pa, pa, PTE_W) < 0) panic("out of memory mapping RAM");
  for (u32 va = IOREMAP_BASE; va <= SCRATCH_VA; va += 0x400000)
    if (!vm_walk(kpgdir, va, 1)) panic("out of memory for kernel page tables");
  kprintf("vm: kernel page directory at %x maps %u MB of RAM at %x\n", V2P(kpgdir), top >> 20,
          KERNBASE);
}

/* The kernel's space is always the kernel's: nothing to load. */
void kvm_switch(void) {}

pde_t *kvm_pgdir(void) { return kpgdir; }

/* Device registers: entries in the MMIO window, mapped to the kernel thread when it touches
 * them (the pager thread asks the resource monitor for the device's page first). */
void *ioremap(u32 pa, u32 len) {
  u32 off = pa & (PAGE_SIZE - 1);
  u32 n = PAGE_ROUNDUP(len + off);
  if (ioremap_next + n > IOREMAP_END) return 0;
  u32 va = ioremap_next;
  for (u32 i = 0; i < n; i += PAGE_SIZE)
    vm_map(kpgdir, va + i, PAGE_ROUNDDOWN(pa) + i, PTE_W | PTE_PCD | PTE_PWT);
  ioremap_next += n;
  return (void *)(va + off);
}

pde_t *uvm_create(void) {
  pde_t *pgdir = zalloc();
  if (!pgdir) return 0;
  for (u32 i = PDX(KERNBASE); i < 1024; i++)
    if (kpgdir[i]) pgdir[i] = kpgdir[i];
  return pgdir;
}

/* Drops the kernel's own mappings of user pages (the alias of the current process). */
static void flush_alias(void) {
  if (!alias_mapped) return;
  L4_MR(0) = L4_FPAGE(0, 31, L4_RWX);
  L4_MR(1) = L4_FPAGE(0x80000000u, 30, L4_RWX);
  l4_unmap(1 | L4_UNMAP_FLUSH);
  alias_mapped = 0;
}

/* A process's pages, tables and directory. Its L4 space goes first, with every mapping in it,
 * so the entries need no Unmap each. */
void uvm_free(pde_t *pgdir) {
  l4_space_free(pgdir);
  if (alias_pgdir == pgdir) {
    flush_alias();
    alias_pgdir = 0;
  }
  for (u32 i = 0; i < PDX(KERNBASE); i++) {
    u32 e = pgdir[i];
    if (!(e & PTE_P)) continue;
    pte_t *pt = P2V(PTE_ADDR(e));
    for (int j = 0; j < 1024; j++)
      if (pt[j] & PTE_P) kfree(P2V(PTE_ADDR(pt[j])));
    kfree(pt);
  }
  kfree(pgdir);
}

void uvm_switch(struct proc *p) {
  if (p->pgdir != alias_pgdir) {
    flush_alias();
    alias_pgdir = p->pgdir;
  }
  l4_space_switch(p->pgdir);
}

static int in_demand_zero(u32 va) {
  return (va >= UHEAP_BASE && va < UHEAP_END) || (va >= USTACK_TOP - USTACK_SIZE && va < USTACK_TOP);
}

int uvm_demand_zero(pde_t *pgdir, u32 va) {
  if (!in_demand_zero(va)) return -EFAULT;
  pte_t *pte = vm_walk(pgdir, va, 1);
  if (!pte) return -ENOMEM;
  if (*pte & PTE_P) return 0;
  void *page = zalloc();
  if (!page) return -ENOMEM;
  l4_pte_write(pte, V2P(page) | PTE_P | PTE_W | PTE_U);
  return 0;
}

int uvm_check(pde_t *pgdir, u32 va, u32 len, int write) {
  if (va >= KERNBASE || len > KERNBASE - va) return -EFAULT;
  for (u32 p = PAGE_ROUNDDOWN(va); p < va + len; p += PAGE_SIZE) {
    pte_t *pte = vm_walk(pgdir, p, 0);
    u32 e = pte ? *pte : 0;
    if (!(e & PTE_P)) {
      int r = uvm_demand_zero(pgdir, p);
      if (r < 0) return r;
      continue;
    }
    if (!(e & PTE_U) || (write && !(e & PTE_W))) return -EFAULT;
  }
  return 0;
}

/* Through the one-to-one map, as uvm_copyout writes: no alias mapping for a string. */
int uvm_strcpyin(pde_t *pgdir, char *dst, u32 va, int max) {
  for (int i = 0; i < max; i++) {
    if (uvm_check(pgdir, va + i, 1, 0) < 0) return -EFAULT;
    pte_t *pte = vm_walk(pgdir, va + i, 0);
    if (!pte) return -EFAULT;
    dst[i] = *((const char *)P2V(PTE_ADDR(*pte)) + ((va + i) & (PAGE_SIZE - 1)));
    if (!dst[i]) return i;
  }
  return -EINVAL;
}

int uvm_copyout(pde_t *pgdir, u32 va, const void *src, u32 len, u32 perm) {
  const u8 *s = src;
  while (len > 0) {
    u32 page = PAGE_ROUNDDOWN(va), off = va - page;
    u32 n = PAGE_SIZE - off < len ? PAGE_SIZE - off : len;
    pte_t *pte = vm_walk(pgdir, page, 1);
    if (!pte) return -ENOMEM;
    u32 e = *pte;
    if (!(e & PTE_P)) {
      void *frame = zalloc();
      if (!frame) return -ENOMEM;
      e = V2P(frame) | PTE_P | PTE_U | perm;
      l4_pte_write(pte, e);
    }
    if (s) memcpy((u8 *)P2V(PTE_ADDR(e)) + off, s, n), s += n;
    va += n;
    len -= n;
  }
  return 0;
}

/* The mapping a process's fault at va (write: a write access) gets: a map item of the frame
 * from the kernel's one-to-one map, or 0 when its page tables do not allow the access. */
int l4_user_map(pde_t *pgdir, u32 va, int write, word *item) {
  pte_t *pte = va < KERNBASE ? vm_walk(pgdir, va, 0) : 0;
  u32 e = pte ? *pte : 0;
  if ((e & (PTE_P | PTE_U)) != (PTE_P | PTE_U) || (write && !(e & PTE_W))) return 0;
  item[0] = L4_MAP_ITEM(va);
  item[1] = L4_FPAGE((u32)P2V(PTE_ADDR(e)), 12, (e & PTE_W) ? L4_RWX : L4_RX);
  return 1;
}

/*
 * The kernel thread's pager, a second thread in the kernel's space (setup.c starts it; its own
 * pager is the resource monitor). The kernel thread faults only where its page tables map
 * something the resource monitor did not: the MMIO window, the scratch page, and the current
 * process's user pages. Anything else is a kernel bug, as a kernel-mode page fault is on the PC.
 */
void l4_pager_main(void) {
  word kernel = l4_kernel_tid(), from, tag;
  tag = l4_ipc(L4_NILTHREAD, kernel, L4_TIMEOUTS(0, L4_NEVER), &from);
  for (;;) {
    u32 va = L4_MR(1), eip = L4_MR(2);
    int write = (L4_LABEL(tag) & 2) != 0;
    word item[2];
    int ok = 0;
    if ((L4_LABEL(tag) & 0xfff0) != L4_PAGEFAULT) {
      l4_print_raw("l4-para: the pager got something other than a page fault\n");
    } else if (va < KERNBASE) {
      ok = alias_pgdir && l4_user_map(alias_pgdir, va, write, item);
      if (ok) alias_mapped = 1;
    } else {
      pte_t *pte = vm_walk(kpgdir, va, 0);
      u32 e = pte ? *pte : 0;
      if ((e & PTE_P) && (!write || (e & PTE_W))) {
        u32 pa = PTE_ADDR(e);
        /* Device memory is beyond RAM: ask the resource monitor for its page at P2V first. */
        if (pa >= l4_ram_bytes()) l4_request_pages(pa, 12);
        item[0] = L4_MAP_ITEM(va);
        item[1] = L4_FPAGE((u32)P2V(pa), 12, (e & PTE_W) ? L4_RWX : L4_RX);
        ok = 1;
      }
    }
    if (!ok) l4_pager_panic(va, eip, write);
    L4_MR(0) = L4_TAG(0, 0, 2);
    L4_MR(1) = item[0];
    L4_MR(2) = item[1];
    tag = l4_ipc(kernel, kernel, L4_TIMEOUTS(L4_ZERO, L4_NEVER), &from);
  }
}
