/*
 * The self-test's checks of the platform's descriptor tables and PCI access, for this port
 * (kernel/selftest.c includes this file in place of the PC's; the test names stay the same so
 * that runs compare line by line). SGDT, SIDT and STR are not privileged: ring 3 sees the
 * microkernel's tables, as a real L4 task does.
 */
#include "l4para.h"

/* The kernel runs on the microkernel's descriptor tables (src/hypervisor/l4/README.md: its GDT
 * in the kernel area at 0xFFC00000, the TSS at selector 0x30), on its flat ring-3 segments. */
static const char *test_descriptor_tables(void) {
  struct {
    u16 limit;
    u32 base;
  } __attribute__((packed)) gdt;
  u16 tr, cs, ss;
  __asm__ __volatile__("sgdt %0; str %1" : "=m"(gdt), "=r"(tr));
  __asm__ __volatile__("movw %%cs, %0; movw %%ss, %1" : "=r"(cs), "=r"(ss));
  if (gdt.base != 0xFFC00000u) return "sgdt does not show the microkernel's GDT";
  if (tr != 0x30) return "str does not show the microkernel's TSS";
  if (cs != UCODE_SEL || ss != UDATA_SEL) return "not on the microkernel's ring-3 segments";
  return 0;
}

/* The function the resource monitor gave: its register page answers at the address BAR 1
 * names (the DP83820's silicon revision register, SRR at 0x58, reads its revision); without a
 * device, none is shown. */
static const char *test_pci(void) {
  if (!l4_boot.nic) return pci_count() == 0 ? 0 : "a function is shown without a device";
  if (pci_count() != 1) return "the given device is not shown";
  const struct pci_dev *d = pci_find(l4_boot.nic_id & 0xffff, l4_boot.nic_id >> 16);
  if (!d) return "the given device is not found by its identity";
  volatile u32 *regs = ioremap(pci_bar(d, 1, 0), PAGE_SIZE);
  if (!regs) return "no room to map its registers";
  u32 srr = regs[0x58 / 4];
  return srr != 0 && srr != 0xffffffffu ? 0 : "its register page does not answer";
}
