/*
 * PCI enumeration through configuration mechanism #1: write the address of a configuration
 * dword to port 0xCF8, read or write the dword at 0xCFC (PCI Local Bus Specification 3.0,
 * 3.2.2.3.2). Every function found is printed and kept for drivers to look up.
 */
#include "defs.h"
#include "x86.h"

#define PCI_ADDR 0xcf8
#define PCI_DATA 0xcfc
#define MAX_PCI 32
#define CLASS_BRIDGE 0x06
#define SUBCLASS_PCI_BRIDGE 0x04

static struct pci_dev devs[MAX_PCI];
static int ndevs;

static u32 addr(int bus, int dev, int fn, int off) {
  return 0x80000000u | (u32)bus << 16 | (u32)dev << 11 | (u32)fn << 8 | (off & 0xfc);
}

u32 pci_read32(int bus, int dev, int fn, int off) {
  outl(PCI_ADDR, addr(bus, dev, fn, off));
  return inl(PCI_DATA);
}

void pci_write32(int bus, int dev, int fn, int off, u32 v) {
  outl(PCI_ADDR, addr(bus, dev, fn, off));
  outl(PCI_DATA, v);
}

static void scan_bus(int bus, int depth);

static void scan_fn(int bus, int dev, int fn, int depth) {
  u32 id = pci_read32(bus, dev, fn, 0x00);
  u32 cls = pci_read32(bus, dev, fn, 0x08);
  u32 irq = pci_read32(bus, dev, fn, 0x3c);
  struct pci_dev d = {(u8)bus, (u8)dev, (u8)fn, id & 0xffff, id >> 16, cls >> 24,
                      (cls >> 16) & 0xff, irq & 0xff};
  kprintf("pci: %02x:%02x.%u %04x:%04x class %02x/%02x irq %u\n", bus, dev, fn, d.vendor,
          d.device, d.class_code, d.subclass, d.irq_line);
  if (ndevs < MAX_PCI) devs[ndevs++] = d;
  if (d.class_code == CLASS_BRIDGE && d.subclass == SUBCLASS_PCI_BRIDGE && depth < 4) {
    int secondary = (pci_read32(bus, dev, fn, 0x18) >> 8) & 0xff;
    if (secondary > bus) scan_bus(secondary, depth + 1);
  }
}

static void scan_bus(int bus, int depth) {
  for (int dev = 0; dev < 32; dev++) {
    if ((pci_read32(bus, dev, 0, 0x00) & 0xffff) == 0xffff) continue; /* nothing there */
    int multi = (pci_read32(bus, dev, 0, 0x0c) >> 16) & 0x80;
    for (int fn = 0; fn < (multi ? 8 : 1); fn++)
      if ((pci_read32(bus, dev, fn, 0x00) & 0xffff) != 0xffff) scan_fn(bus, dev, fn, depth);
  }
}

static void assign_bars(const struct pci_dev *d);

void pci_init(void) {
  scan_bus(0, 0);
  for (int i = 0; i < ndevs; i++) assign_bars(&devs[i]);
  kprintf("pci: %d function(s)\n", ndevs);
}

const struct pci_dev *pci_find(u16 vendor, u16 device) {
  for (int i = 0; i < ndevs; i++)
    if (devs[i].vendor == vendor && devs[i].device == device) return &devs[i];
  return 0;
}

int pci_count(void) { return ndevs; }

/* Base address register n: its address (I/O port or physical memory) and, in *size, how many
 * bytes it decodes, found by writing all ones and reading back the mask (PCI 3.0, 6.2.5.1).
 * Decoding is off meanwhile, so the device never answers at the all-ones address. */
u32 pci_bar(const struct pci_dev *d, int n, u32 *size) {
  int off = 0x10 + 4 * n;
  u32 cmd = pci_read32(d->bus, d->dev, d->fn, 0x04);
  pci_write32(d->bus, d->dev, d->fn, 0x04, cmd & 0xfffc);
  u32 orig = pci_read32(d->bus, d->dev, d->fn, off);
  pci_write32(d->bus, d->dev, d->fn, off, 0xffffffffu);
  u32 mask = pci_read32(d->bus, d->dev, d->fn, off);
  pci_write32(d->bus, d->dev, d->fn, off, orig);
  pci_write32(d->bus, d->dev, d->fn, 0x04, cmd & 0xffff);
  u32 bits = (orig & 1) ? 0x3u : 0xfu; /* I/O BARs keep 2 flag bits, memory BARs 4 */
  u32 m = mask & ~bits;
  if (orig & 1) m |= 0xffff0000u; /* I/O BARs may implement only the low 16 bits */
  if (size) *size = m ? (~m) + 1 : 0;
  return orig & ~bits;
}

/*
 * Without firmware (previrt boots the kernel directly, as QEMU -kernel would without SeaBIOS)
 * nobody has given the BARs addresses: hand out memory above every RAM size the machine
 * supports and I/O ports above the legacy range, each aligned to its size.
 */
#define ASSIGN_MEM_BASE 0xe0000000u
#define ASSIGN_IO_BASE 0xc000u
static u32 next_mem = ASSIGN_MEM_BASE, next_io = ASSIGN_IO_BASE;

static void assign_bars(const struct pci_dev *d) {
  int header = (pci_read32(d->bus, d->dev, d->fn, 0x0c) >> 16) & 0x7f;
  if (header != 0) return; /* bridges: their windows are not set up here */
  for (int n = 0; n < 6; n++) {
    u32 size, base = pci_bar(d, n, &size);
    u32 raw = pci_read32(d->bus, d->dev, d->fn, 0x10 + 4 * n);
    if (size == 0 || base != 0) continue;
    u32 *next = (raw & 1) ? &next_io : &next_mem;
    u32 addr = (*next + size - 1) & ~(size - 1);
    *next = addr + size;
    pci_write32(d->bus, d->dev, d->fn, 0x10 + 4 * n, addr | (raw & ((raw & 1) ? 0x3 : 0xf)));
    kprintf("pci: %02x:%02x.%u BAR%d assigned %s %x (%u bytes)\n", d->bus, d->dev, d->fn, n,
            (raw & 1) ? "I/O" : "memory", addr, size);
    if ((raw & 0x7) == 0x4) n++; /* a 64-bit BAR uses the next slot for its high half */
  }
}

/* Turn on I/O and memory decoding and bus mastering (DMA) in the command register. */
void pci_enable(const struct pci_dev *d) {
  u32 cmd = pci_read32(d->bus, d->dev, d->fn, 0x04);
  pci_write32(d->bus, d->dev, d->fn, 0x04, (cmd & 0xffff) | 0x7);
}
