/*
 * Segmentation: flat 4 GB code and data segments for ring 0 and ring 3, and one TSS whose only
 * job is to tell the CPU which stack to use when an interrupt arrives in ring 3
 * (SDM vol. 3A, 3.4.5 "Segment descriptors" and 7.2 "Task management data structures").
 */
#include "defs.h"
#include "mmu.h"
#include "x86.h"

struct segdesc {
  u16 limit_lo, base_lo;
  u8 base_mid, access, limit_hi_flags, base_hi;
} __attribute__((packed));

/* The 32-bit TSS; only ss0/esp0 and the I/O map base matter here. */
struct tss {
  u32 link, esp0, ss0, esp1, ss1, esp2, ss2, cr3, eip, eflags;
  u32 eax, ecx, edx, ebx, esp, ebp, esi, edi, es, cs, ss, ds, fs, gs, ldt;
  u16 trap, iomap_base;
} __attribute__((packed));

static struct segdesc gdt[NSEGS];
static struct tss tss;

#define ACC_PRESENT 0x80
#define ACC_DPL(d) ((d) << 5)
#define ACC_CODEDATA 0x10
#define ACC_CODE_RX 0x0a
#define ACC_DATA_RW 0x02
#define ACC_TSS32 0x09
#define FLAGS_4K_32 0xc0 /* granularity 4 KB, 32-bit */

static void set_seg(int i, u32 base, u32 limit, u8 access, u8 flags) {
  gdt[i].limit_lo = limit & 0xffff;
  gdt[i].base_lo = base & 0xffff;
  gdt[i].base_mid = (base >> 16) & 0xff;
  gdt[i].access = access;
  gdt[i].limit_hi_flags = (u8)(((limit >> 16) & 0x0f) | flags);
  gdt[i].base_hi = (base >> 24) & 0xff;
}

void gdt_init(void) {
  set_seg(SEG_KCODE, 0, 0xfffff, ACC_PRESENT | ACC_DPL(0) | ACC_CODEDATA | ACC_CODE_RX, FLAGS_4K_32);
  set_seg(SEG_KDATA, 0, 0xfffff, ACC_PRESENT | ACC_DPL(0) | ACC_CODEDATA | ACC_DATA_RW, FLAGS_4K_32);
  set_seg(SEG_UCODE, 0, 0xfffff, ACC_PRESENT | ACC_DPL(3) | ACC_CODEDATA | ACC_CODE_RX, FLAGS_4K_32);
  set_seg(SEG_UDATA, 0, 0xfffff, ACC_PRESENT | ACC_DPL(3) | ACC_CODEDATA | ACC_DATA_RW, FLAGS_4K_32);
  tss.ss0 = KDATA_SEL;
  tss.iomap_base = sizeof tss; /* no I/O bitmap: ring 3 may not use in/out */
  set_seg(SEG_TSS, (u32)&tss, sizeof tss - 1, ACC_PRESENT | ACC_DPL(0) | ACC_TSS32, 0);

  lgdt(gdt, sizeof gdt);
  /* Reload every segment register so none keeps a descriptor cached from the boot loader's GDT. */
  __asm__ __volatile__(
      "movw %w0, %%ds\n\tmovw %w0, %%es\n\tmovw %w0, %%fs\n\tmovw %w0, %%gs\n\tmovw %w0, %%ss\n\t"
      "ljmp %1, $1f\n1:"
      :
      : "r"(KDATA_SEL), "i"(KCODE_SEL)
      : "memory");
  ltr(TSS_SEL);
}

/* The stack the CPU switches to on an interrupt from ring 3: the current process's. */
void tss_set_kstack(u32 esp0) { tss.esp0 = esp0; }
