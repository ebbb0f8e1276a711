/*
 * PCI on the hypervisor, in place of configuration mechanism #1 (kernel/pci.c), under the
 * same functions: the domain sees one function, the device it was granted, whose
 * configuration space physdev_op reads and writes (Xen 2's PHYSDEVOP_PCI_CFGREG_*; previrt's
 * takes no bus number, so the function is shown as 00:00.0). The toolstack placed its BARs;
 * the hypervisor refuses writes to them, so they are read, not sized or assigned.
 */
#include "defs.h"
#include "x86.h"

static struct pci_dev dev;
static int ndevs;

static int config(int cmd, int off, u32 *v) {
  struct physdev_pci a = {(u32)off, 4, *v};
  int r = HYPERVISOR_physdev_op(cmd, &a);
  *v = a.value;
  return r;
}

u32 pci_read32(int bus, int d, int fn, int off) {
  u32 v = 0;
  (void)bus, (void)d, (void)fn;
  return config(PHYSDEVOP_pci_config_read, off & 0xfc, &v) < 0 ? 0xffffffffu : v;
}

void pci_write32(int bus, int d, int fn, int off, u32 v) {
  (void)bus, (void)d, (void)fn;
  config(PHYSDEVOP_pci_config_write, off & 0xfc, &v);
}

void pci_init(void) {
  u32 id = pci_read32(0, 0, 0, 0x00);
  if ((id & 0xffff) != 0xffff) {
    u32 cls = pci_read32(0, 0, 0, 0x08), irq = pci_read32(0, 0, 0, 0x3c);
    dev = (struct pci_dev){0, 0, 0, id & 0xffff, id >> 16, cls >> 24, (cls >> 16) & 0xff, irq & 0xff};
    ndevs = 1;
    kprintf("pci: 00:00.0 %04x:%04x class %02x/%02x irq %u (granted)\n", dev.vendor, dev.device,
            dev.class_code, dev.subclass, dev.irq_line);
  }
  kprintf("pci: %d function(s)\n", ndevs);
}

const struct pci_dev *pci_find(u16 vendor, u16 device) {
  return ndevs && dev.vendor == vendor && dev.device == device ? &dev : 0;
}

int pci_count(void) { return ndevs; }

/* Base address register n as the toolstack placed it; *size is 0: sizing writes to a BAR are
 * the hypervisor's to refuse, and the driver maps only the register page it needs. */
u32 pci_bar(const struct pci_dev *d, int n, u32 *size) {
  u32 v = pci_read32(d->bus, d->dev, d->fn, 0x10 + 4 * n);
  if (size) *size = 0;
  return v & ((v & 1) ? ~0x3u : ~0xfu);
}

/* Memory decoding and bus mastering (the command register is the domain's to write). */
void pci_enable(const struct pci_dev *d) {
  u32 cmd = pci_read32(d->bus, d->dev, d->fn, 0x04);
  pci_write32(d->bus, d->dev, d->fn, 0x04, (cmd & 0xffff) | 0x7);
}
