/*
 * PCI on L4, in place of configuration mechanism #1 (kernel/pci.c), under the same functions:
 * the VM has no configuration space to reach (the resource monitor gives devices, not buses),
 * so it sees the one function the platform gave it as the boot information describes it (shown
 * as 00:00.0, as the xen port shows its granted one): identity, class, interrupt line, and its
 * register page as BAR 1 at the guest-physical address the resource monitor maps it at. The
 * platform set its command register (memory decoding, bus mastering) when it gave the device.
 */
#include "defs.h"
#include "l4para.h"
#include "x86.h"

static struct pci_dev dev;
static int ndevs;

/* The function's configuration words as the boot information has them; others read as 0. */
u32 pci_read32(int bus, int d, int fn, int off) {
  (void)bus, (void)d, (void)fn;
  if (!ndevs) return 0xffffffffu;
  switch (off & 0xfc) {
    case 0x00: return l4_boot.nic_id;
    case 0x04: return 0x7; /* I/O, memory, bus master: set by the platform */
    case 0x08: return l4_boot.nic_class;
    case 0x14: return l4_boot.nic_mmio;
    case 0x3c: return l4_boot.nic_irq;
    default: return 0;
  }
}

/* Nothing to write: the platform configured the function. */
void pci_write32(int bus, int d, int fn, int off, u32 v) { (void)bus, (void)d, (void)fn, (void)off, (void)v; }

void pci_init(void) {
  if (l4_boot.nic) {
    ndevs = 1;
    u32 id = pci_read32(0, 0, 0, 0x00), cls = pci_read32(0, 0, 0, 0x08);
    dev = (struct pci_dev){0, 0, 0, id & 0xffff, id >> 16, cls >> 24, (cls >> 16) & 0xff,
                           l4_boot.nic_irq & 0xff};
    kprintf("pci: 00:00.0 %04x:%04x class %02x/%02x irq %u (given by the resource monitor)\n",
            dev.vendor, dev.device, dev.class_code, dev.subclass, dev.irq_line);
  }
  kprintf("pci: %d function(s)\n", ndevs);
}

const struct pci_dev *pci_find(u16 vendor, u16 device) {
  return ndevs && dev.vendor == vendor && dev.device == device ? &dev : 0;
}

int pci_count(void) { return ndevs; }

u32 pci_bar(const struct pci_dev *d, int n, u32 *size) {
  u32 v = pci_read32(d->bus, d->dev, d->fn, 0x10 + 4 * n);
  if (size) *size = 0;
  return v & ((v & 1) ? ~0x3u : ~0xfu);
}

void pci_enable(const struct pci_dev *d) { (void)d; }
