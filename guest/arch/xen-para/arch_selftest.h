/*
 * The self-test's checks of the platform's descriptor tables and PCI access, for this port
 * (kernel/selftest.c includes this file in place of the PC's; the test names stay the same so
 * that runs compare line by line). SGDT, SIDT and STR are not privileged: ring 1 sees the
 * hypervisor's tables, as a real Xen guest does.
 */

/* The kernel runs on the hypervisor's descriptor tables: its GDT in the hypervisor's window
 * (ring-0, ring-1 and ring-3 flat segments, abi.ts), no IDT (every event exits to the
 * hypervisor, which bounces it through our trap table), no TSS (stack_switch instead). */
static const char *test_descriptor_tables(void) {
  struct {
    u16 limit;
    u32 base;
  } __attribute__((packed)) gdt, idt;
  u16 tr, cs, ss;
  __asm__ __volatile__("sgdt %0; sidt %1; str %2" : "=m"(gdt), "=m"(idt), "=r"(tr));
  __asm__ __volatile__("movw %%cs, %0; movw %%ss, %1" : "=r"(cs), "=r"(ss));
  if (gdt.base != 0xFFC00000u || gdt.limit != 7 * 8 - 1) return "sgdt does not show the hypervisor's GDT";
  if (idt.limit != 0 || tr != 0) return "an IDT or a TSS is loaded";
  if (cs != KCODE_SEL || ss != KDATA_SEL) return "not on the hypervisor's ring-1 segments";
  return 0;
}

/* physdev_op reaches the granted function (a writable register reads back what was written),
 * and nothing else: without a grant the hypervisor refuses. */
static const char *test_pci(void) {
  struct physdev_pci a = {0x00, 4, 0};
  int r = HYPERVISOR_physdev_op(PHYSDEVOP_pci_config_read, &a);
  if (pci_count() == 0) return r == -XEN_EPERM ? 0 : "physdev_op answers without a granted device";
  if (r < 0) return "physdev_op cannot read the granted function";
  u32 v = pci_read32(0, 0, 0, 0x0c);
  pci_write32(0, 0, 0, 0x0c, v ^ 0x10); /* the cache line size */
  u32 w = pci_read32(0, 0, 0, 0x0c);
  pci_write32(0, 0, 0, 0x0c, v);
  return w == (v ^ 0x10) ? 0 : "the cache line size register does not read back";
}
