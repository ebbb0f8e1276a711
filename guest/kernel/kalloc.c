/*
 * Physical page allocator: a free list threaded through the free pages themselves, filled
 * from the usable RAM ranges of the multiboot memory map. Pages are handed out by their
 * kernel virtual address (all usable RAM is mapped at KERNBASE + physical).
 */
#include "defs.h"
#include "memlayout.h"
#include "mmu.h"

struct run {
  struct run *next;
};

static struct run *freelist;
static u32 nfree;

/* Free the usable pages in [lo, hi). Called twice at boot: first for the low 16 MB the boot
 * page tables map (enough to build the kernel's page tables), then for the rest. */
void kalloc_add(const struct bootinfo *bi, u32 lo, u32 hi) {
  u32 total = 0;
  for (u32 i = 0; i < bi->nranges; i++) {
    u32 s = bi->ranges[i].start, e = bi->ranges[i].end;
    if (s < lo) s = lo;
    if (e > hi) e = hi;
    /* Free from the top down so that low addresses come out first. */
    for (u32 pa = e; pa > s; pa -= PAGE_SIZE) {
      kfree(P2V(pa - PAGE_SIZE));
      total++;
    }
  }
  kprintf("memory: %u KB of pages between %x and %x\n", total * 4, lo, hi);
}

void *kalloc(void) {
  struct run *r = freelist;
  if (!r) return 0;
  freelist = r->next;
  nfree--;
  return r;
}

void kfree(void *va) {
  if ((u32)va % PAGE_SIZE || (u32)va < KERNBASE || V2P(va) >= PHYS_MAX) panic("kfree %p", va);
  struct run *r = va;
  r->next = freelist;
  freelist = r;
  nfree++;
}

u32 kalloc_free_pages(void) { return nfree; }
