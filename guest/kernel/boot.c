/*
 * The multiboot information lives in memory the page allocator is about to hand out, so we
 * copy what we need (command line, modules, usable RAM) into struct bootinfo first.
 */
#include "defs.h"
#include "memlayout.h"
#include "mmu.h"
#include "multiboot.h"

static void *boot_ptr(u32 pa, u32 len) {
  if (pa >= BOOT_MAPPED || len > BOOT_MAPPED - pa)
    panic("multiboot data at %x is above the 16 MB the boot page tables map", pa);
  return P2V(pa);
}

static void copy_string(char *dst, int n, u32 pa) {
  const char *s = boot_ptr(pa, 1);
  int i = 0;
  for (; i < n - 1 && s[i]; i++) dst[i] = s[i];
  dst[i] = 0;
}

/* A module's program name: the first word of its string, without a directory or ".elf"
 * (QEMU: -initrd "build/user/spin.elf" runs as "spin"). Whole paths do not fit in the name. */
static void module_name(char *dst, int n, u32 pa) {
  char s[256];
  copy_string(s, sizeof s, pa);
  int end = 0, start = 0;
  while (s[end] && s[end] != ' ') {
    if (s[end] == '/') start = end + 1;
    end++;
  }
  if (end - start > 4 && strncmp(&s[end - 4], ".elf", 4) == 0) end -= 4;
  s[end] = 0;
  strlcpy_(dst, &s[start], n);
}

static void add_range(struct bootinfo *bi, u64 start, u64 end) {
  if (start >= PHYS_MAX) return;
  if (end > PHYS_MAX) end = PHYS_MAX;
  u32 s = PAGE_ROUNDUP((u32)start), e = PAGE_ROUNDDOWN((u32)end);
  if (s >= e || bi->nranges >= sizeof bi->ranges / sizeof bi->ranges[0]) return;
  bi->ranges[bi->nranges].start = s;
  bi->ranges[bi->nranges].end = e;
  bi->nranges++;
}

void boot_parse(u32 magic, u32 mbi_pa, struct bootinfo *bi) {
  if (magic != MULTIBOOT_BOOTLOADER_MAGIC) panic("not started by a multiboot loader (eax=%x)", magic);
  const struct multiboot_info *mbi = boot_ptr(mbi_pa, sizeof *mbi);
  if (mbi->flags & MB_INFO_CMDLINE) copy_string(bi->cmdline, sizeof bi->cmdline, mbi->cmdline);
  if (mbi->flags & MB_INFO_MEMORY) bi->mem_kb = mbi->mem_upper;
  if (mbi->flags & MB_INFO_MODS) {
    const struct multiboot_mod *m = boot_ptr(mbi->mods_addr, mbi->mods_count * sizeof *m);
    for (u32 i = 0; i < mbi->mods_count && bi->nmods < MAX_MODULES; i++) {
      struct module *mod = &bi->mods[bi->nmods++];
      mod->start = m[i].mod_start;
      mod->end = m[i].mod_end;
      mod->name[0] = 0;
      if (m[i].string) module_name(mod->name, sizeof mod->name, m[i].string);
    }
  }
  if (mbi->flags & MB_INFO_MMAP) {
    u32 p = mbi->mmap_addr, end = mbi->mmap_addr + mbi->mmap_length;
    while (p + sizeof(struct multiboot_mmap) <= end) {
      const struct multiboot_mmap *e = boot_ptr(p, sizeof *e);
      if (e->type == 1) add_range(bi, e->addr < 0x100000 ? 0x100000 : e->addr, e->addr + e->len);
      p += e->size + 4;
    }
  } else if (mbi->flags & MB_INFO_MEMORY) {
    /* No map: trust mem_upper, the contiguous memory above 1 MB. */
    add_range(bi, 0x100000, 0x100000 + (u64)mbi->mem_upper * 1024);
  }
  kprintf("boot: command line '%s', %u KB above 1 MB, %u module(s)\n", bi->cmdline, bi->mem_kb,
          bi->nmods);
}

/* Find `key=value` in a space-separated command line; copies value into out. */
const char *cmdline_get(const char *cmdline, const char *key, char *out, int outlen) {
  int klen = strlen(key);
  const char *p = cmdline;
  while (*p) {
    while (*p == ' ') p++;
    if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
      p += klen + 1;
      int i = 0;
      while (*p && *p != ' ' && i < outlen - 1) out[i++] = *p++;
      out[i] = 0;
      return out;
    }
    while (*p && *p != ' ') p++;
  }
  return 0;
}
