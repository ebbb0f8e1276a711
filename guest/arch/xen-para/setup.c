/*
 * The start of day on the hypervisor, before the shared start-up (kernel/main.c) runs, and the
 * end of a run. The domain builder left start_info, the pseudo-physical to machine list and
 * the bootstrap page tables behind the kernel image (src/hypervisor/xen/builder.ts); xen_start
 * maps shared info, maps the first 16 MB as the PC's boot page tables do (vm.c), and describes
 * the domain's memory as a multiboot memory map, so that boot.c and the page allocator work
 * unchanged — as XenoLinux builds an e820 map from start_info's page count.
 */
#include "defs.h"
#include "memlayout.h"
#include "mmu.h"
#include "multiboot.h"
#include "x86.h"

/* A page of .bss whose mapping xen_start replaces with the shared info frame. */
volatile struct shared_info xen_shared __attribute__((aligned(PAGE_SIZE)));
const struct start_info *xen_start_info;
const u32 *xen_p2m;

/* vm.c: maps [what the builder mapped, BOOT_MAPPED), page tables from `next`; the next free. */
u32 xen_boot_map(u32 next);

static struct multiboot_info mbi;
static struct multiboot_mmap mmap;
static char cmdline[sizeof xen_start_info->cmd_line];

/* Called by entry.S on the boot stack; returns the multiboot information for kmain. */
u32 xen_start(const struct start_info *si) {
  xen_start_info = si;
  xen_p2m = (const u32 *)si->mfn_list;
  u32 pte = si->shared_info | PTE_P | PTE_W | PTE_A | PTE_D;
  if (HYPERVISOR_update_va_mapping((u32)&xen_shared, pte, UVMF_INVLPG) < 0)
    panic("cannot map shared info");
  /* The builder's last page is its bootstrap stack; the padding after it is ours. */
  u32 next = xen_boot_map(V2P(si->pt_base) + (si->nr_pt_frames + 1) * PAGE_SIZE);

  for (u32 i = 0; i < sizeof cmdline - 1 && si->cmd_line[i]; i++) cmdline[i] = si->cmd_line[i];
  mmap.size = sizeof mmap - 4;
  mmap.addr = next;
  mmap.len = si->nr_pages * PAGE_SIZE - next;
  mmap.type = 1;
  mbi.flags = MB_INFO_MEMORY | MB_INFO_CMDLINE | MB_INFO_MMAP;
  mbi.mem_upper = si->nr_pages * (PAGE_SIZE / 1024) - 1024;
  mbi.cmdline = V2P(cmdline);
  mbi.mmap_addr = V2P(&mmap);
  mbi.mmap_length = sizeof mmap;
  return V2P(&mbi);
}

/* The end of a run: SCHEDOP_shutdown, whose status becomes the run's exit status as
 * isa-debug-exit's does on the PC (src/hypervisor/xen/README.md). */
void shutdown(int code) {
  kprintf("kernel: shutdown, exit code %d\n", code);
  cli();
  xencons_flush();
  struct sched_shutdown s = {SHUTDOWN_poweroff, (u32)code & 0xff};
  HYPERVISOR_sched_op(SCHEDOP_shutdown, &s);
  for (;;) HYPERVISOR_sched_op(SCHEDOP_block, 0);
}
