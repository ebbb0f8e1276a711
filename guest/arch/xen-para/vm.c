/*
 * Page tables on the hypervisor (in place of kernel/vm.c): direct paging, as XenoLinux does it.
 * Entries hold machine frames (xen_p2m translates a pseudo-physical frame, the hypervisor's
 * read-only machine-to-phys table translates back), and the hypervisor validates every table:
 * a page table is never mapped writable, so it is filled while it is an ordinary page, then
 * made read-only in the kernel's mapping and handed over (installed in a directory, or pinned),
 * and every later change of a live table is an mmu_update. Writes are queued and sent in one
 * mmu_update where several belong together: a new table's read-only mapping with the directory
 * entry that installs it, all of the kernel's tables for its RAM at boot, a new program's pages.
 *
 * The kernel's half is the bootstrap page directory of the domain builder (start_info.pt_base),
 * extended; each process directory copies its entries and is pinned when it is made
 * (XenoLinux 2.6's pgd_ctor), unpinned when it is freed. The functions are kernel/vm.c's.
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
static u32 base; /* pseudo-physical address of the directory that is the hypervisor's base */

// ---- frames and entries -------------------------------------------------------------------

static u32 mfn(const volatile void *va) { return xen_p2m[V2P(va) >> 12]; }
/* Machine address of a kernel virtual address (an entry, for mmu_update). */
static u32 machine(const volatile void *va) { return mfn(va) << 12 | ((u32)va & 0xfff); }
/* An entry as the hardware sees it, and back; device memory (PTE_IO) is machine already. */
static u32 to_machine(u32 e) {
  return (e & PTE_P) && !(e & PTE_IO) ? xen_p2m[e >> 12] << 12 | (e & 0xfff) : e;
}
static u32 to_phys(u32 e) {
  return (e & PTE_P) && !(e & PTE_IO) ? MACH2PHYS[e >> 12] << 12 | (e & 0xfff) : e;
}

// ---- queued hypercalls -----------------------------------------------------------------------

#define QUEUE 128
static struct mmu_update queue[QUEUE];
static int queued;

static void flush(void) {
  if (queued > 0 && HYPERVISOR_mmu_update(queue, queued) < 0) panic("vm: mmu_update refused");
  queued = 0;
}

static void queue_write(const volatile void *entry, u32 machine_value) {
  if (queued == QUEUE) flush();
  queue[queued].ptr = machine(entry);
  queue[queued].val = machine_value;
  queued++;
}

/* The kernel's entry for va at KERNBASE and up (the same page table in every directory). */
static pte_t *kernel_pte(const void *va) {
  pte_t *pt = P2V(PTE_ADDR(to_phys(kpgdir[PDX(va)])));
  return &pt[PTX(va)];
}

/* A page of ours becomes a page table (read-only) or stops being one (writable again). */
static void queue_remap(const void *page, int writable) {
  queue_write(kernel_pte(page), mfn(page) << 12 | PTE_P | PTE_A | (writable ? PTE_W | PTE_D : 0));
}

/* A new page table, filled: read-only, then installed in the (live) directory entry. */
static void queue_install(pde_t *pde, pte_t *pt, u32 user) {
  queue_remap(pt, 0);
  queue_write(pde, mfn(pt) << 12 | PTE_P | PTE_W | user);
}

static void mmuext(u32 cmd, u32 arg) {
  struct mmuext_op op = {cmd, arg, 0};
  if (HYPERVISOR_mmuext_op(&op, 1) < 0) panic("vm: mmuext_op %u refused", cmd);
}

// ---- the entry accessors of afterburn.h (the self-test's and this file's) -------------------

void xen_pte_write(volatile unsigned long *p, unsigned long v) {
  queue_write(p, to_machine(v));
  flush();
}

unsigned long xen_pte_read(volatile unsigned long *p) { return to_phys(*p); }

unsigned long xen_pte_clear(volatile unsigned long *p) {
  u32 old = *p;
  if (old) xen_pte_write(p, 0);
  return to_phys(old);
}

// ---- the kernel's page tables ------------------------------------------------------------------

static void *zalloc(void) {
  void *p = kalloc();
  if (p) memset(p, 0, PAGE_SIZE);
  return p;
}

/* Maps the RAM in [from, to) at KERNBASE where the directory has no table yet (4 MB each, new
 * tables from alloc), in one mmu_update. No frame in the range is a page table. */
static void map_ram(u32 from, u32 to, void *(*alloc)(void)) {
  for (u32 pa = PAGE_ROUNDDOWN(from) & ~0x3fffffu; pa < to; pa += 0x400000) {
    pde_t *pde = &kpgdir[PDX(KERNBASE + pa)];
    if (*pde & PTE_P) continue;
    pte_t *pt = alloc();
    if (!pt) panic("out of memory mapping RAM");
    for (u32 i = 0; i < 1024 && pa + i * PAGE_SIZE < to; i++)
      pt[i] = xen_p2m[(pa >> 12) + i] << 12 | PTE_P | PTE_W | PTE_A | PTE_D;
    queue_install(pde, pt, 0);
  }
  flush();
}

static u32 boot_next; /* the builder's padding, for the boot mapping's page tables */

static void *boot_alloc(void) {
  void *p = P2V(boot_next);
  boot_next += PAGE_SIZE;
  memset(p, 0, PAGE_SIZE);
  return p;
}

/* setup.c, before anything else: what the PC's boot page tables map (BOOT_MAPPED), with page
 * tables from the padding at `next`, which the builder mapped. Returns the next free page. */
u32 xen_boot_map(u32 next) {
  kpgdir = (pde_t *)xen_start_info->pt_base;
  base = V2P(kpgdir);
  boot_next = next;
  u32 top = xen_start_info->nr_pages * PAGE_SIZE;
  map_ram(0, top < BOOT_MAPPED ? top : BOOT_MAPPED, boot_alloc);
  return boot_next;
}

void kvm_init(const struct bootinfo *bi) {
  u32 top = BOOT_MAPPED;
  for (u32 i = 0; i < bi->nranges; i++)
    if (bi->ranges[i].end > top) top = bi->ranges[i].end;
  map_ram(BOOT_MAPPED, top, zalloc);
  /* The page tables of the MMIO window and the scratch page now, so that every process
   * directory (which copies the kernel's directory entries) shares them. */
  for (u32 va = IOREMAP_BASE; va <= SCRATCH_VA; va += 0x400000)
    if (!vm_walk(kpgdir, va, 1)) panic("out of memory for kernel page tables");
  kvm_switch();
  kprintf("vm: kernel page directory at %x maps %u MB of RAM at %x\n", V2P(kpgdir), top >> 20,
          KERNBASE);
}

/* The PC's lcr3, wherever kernel/vm.c loads CR3: a new base pointer (which flushes the TLB as
 * the CR3 load does), also for the directory in use, which the scheduler picks again after
 * every idle wait. Skipping that one (as Linux's switch_mm does) would be a change to the
 * kernel, not to its platform layer, and would make this row cheaper than the raw PC's for a
 * reason that has nothing to do with the hypervisor. */
static void new_base(u32 pa) {
  mmuext(MMUEXT_NEW_BASEPTR, xen_p2m[pa >> 12]);
  base = pa;
}

void kvm_switch(void) { new_base(V2P(kpgdir)); }

pde_t *kvm_pgdir(void) { return kpgdir; }

/* Device registers, uncached: machine frames of granted device memory (the BAR's address is
 * a machine address). They were not mapped before, so no INVLPG. */
void *ioremap(u32 pa, u32 len) {
  u32 off = pa & (PAGE_SIZE - 1);
  u32 n = PAGE_ROUNDUP(len + off);
  if (ioremap_next + n > IOREMAP_END) return 0;
  u32 va = ioremap_next;
  for (u32 i = 0; i < n; i += PAGE_SIZE) {
    pte_t *pte = vm_walk(kpgdir, va + i, 1);
    if (!pte) return 0;
    queue_write(pte, (PAGE_ROUNDDOWN(pa) + i) | PTE_P | PTE_W | PTE_PCD | PTE_PWT | PTE_IO);
  }
  flush();
  ioremap_next += n;
  return (void *)(va + off);
}

// ---- process address spaces --------------------------------------------------------------------

/* The entry for va, creating its page table if alloc is set (installed at once: the caller may
 * walk the same table again). */
pte_t *vm_walk(pde_t *pgdir, u32 va, int alloc) {
  pde_t *pde = &pgdir[PDX(va)];
  u32 e = ab_pgd_read(pde);
  pte_t *pt;
  if (e & PTE_P) {
    pt = P2V(PTE_ADDR(e));
  } else {
    if (!alloc || !(pt = zalloc())) return 0;
    queue_install(pde, pt, va < KERNBASE ? PTE_U : 0);
    flush();
  }
  return &pt[PTX(va)];
}

int vm_map(pde_t *pgdir, u32 va, u32 pa, u32 perm) {
  pte_t *pte = vm_walk(pgdir, va, 1);
  if (!pte) return -ENOMEM;
  ab_pte_set(pte, pa | perm | PTE_P);
  return 0;
}

/* A new process directory: empty user half, the kernel's entries (machine frames already)
 * copied while it is an ordinary page; then read-only and pinned. */
pde_t *uvm_create(void) {
  pde_t *pgdir = zalloc();
  if (!pgdir) return 0;
  for (u32 i = PDX(KERNBASE); i < 1024; i++) pgdir[i] = kpgdir[i];
  queue_remap(pgdir, 0);
  flush();
  mmuext(MMUEXT_PIN_L2_TABLE, mfn(pgdir));
  return pgdir;
}

/* Free a process's pages, page tables and directory. Never the one in use. Unpinned first,
 * its tables are ordinary pages again (the hypervisor dropped what their entries held): plain
 * reads, then all of them writable in one mmu_update, their stale read-only translations
 * dropped in one mmuext_op. */
void uvm_free(pde_t *pgdir) {
  static struct mmuext_op invlpg[PDX(KERNBASE) + 1];
  int n = 0;
  if (V2P(pgdir) == base) panic("vm: freeing the directory in use");
  mmuext(MMUEXT_UNPIN_TABLE, mfn(pgdir));
  for (u32 i = 0; i < PDX(KERNBASE); i++) {
    u32 e = to_phys(pgdir[i]);
    if (!(e & PTE_P)) continue;
    pte_t *pt = P2V(PTE_ADDR(e));
    for (int j = 0; j < 1024; j++) {
      u32 old = to_phys(pt[j]);
      if (old & PTE_P) kfree(P2V(PTE_ADDR(old)));
    }
    queue_remap(pt, 1);
    invlpg[n++] = (struct mmuext_op){MMUEXT_INVLPG_LOCAL, (u32)pt, 0};
  }
  queue_remap(pgdir, 1);
  invlpg[n++] = (struct mmuext_op){MMUEXT_INVLPG_LOCAL, (u32)pgdir, 0};
  flush();
  if (HYPERVISOR_mmuext_op(invlpg, n) < 0) panic("vm: invlpg refused");
  for (u32 i = 0; i < PDX(KERNBASE); i++)
    if (pgdir[i] & PTE_P) kfree(P2V(PTE_ADDR(to_phys(pgdir[i]))));
  kfree(pgdir);
}

void uvm_switch(struct proc *p) {
  tss_set_kstack((u32)p->kstack + KSTACK_SIZE);
  new_base(V2P(p->pgdir));
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
 * mapping of physical memory, mapping pages with perm as needed: their entries in one
 * mmu_update at the end (the copy does not go through them). */
int uvm_copyout(pde_t *pgdir, u32 va, const void *src, u32 len, u32 perm) {
  const u8 *s = src;
  int r = 0;
  while (len > 0) {
    u32 page = PAGE_ROUNDDOWN(va), off = va - page;
    u32 n = PAGE_SIZE - off < len ? PAGE_SIZE - off : len;
    pte_t *pte = vm_walk(pgdir, page, 1);
    if (!pte) {
      r = -ENOMEM;
      break;
    }
    u32 e = ab_pte_read(pte);
    if (!(e & PTE_P)) {
      void *frame = zalloc();
      if (!frame) {
        r = -ENOMEM;
        break;
      }
      e = V2P(frame) | PTE_P | PTE_U | perm;
      queue_write(pte, to_machine(e));
    }
    if (s) memcpy((u8 *)P2V(PTE_ADDR(e)) + off, s, n), s += n;
    va += n;
    len -= n;
  }
  flush();
  return r;
}
