/* Multiboot v1 information structure (Multiboot Specification 0.6.96, section 3.3). */
#ifndef GUEST_MULTIBOOT_H
#define GUEST_MULTIBOOT_H

#include "types.h"

#define MULTIBOOT_BOOTLOADER_MAGIC 0x2BADB002u

#define MB_INFO_MEMORY 0x001
#define MB_INFO_CMDLINE 0x004
#define MB_INFO_MODS 0x008
#define MB_INFO_MMAP 0x040

struct multiboot_info {
  u32 flags;
  u32 mem_lower, mem_upper; /* KB below 1 MB and above 1 MB */
  u32 boot_device;
  u32 cmdline;
  u32 mods_count, mods_addr;
  u32 syms[4];
  u32 mmap_length, mmap_addr;
};

struct multiboot_mod {
  u32 mod_start, mod_end;
  u32 string;
  u32 reserved;
};

/* `size` does not count itself: the next entry is at (u8 *)e + e->size + 4. */
struct multiboot_mmap {
  u32 size;
  u64 addr;
  u64 len;
  u32 type; /* 1 = usable RAM */
} __attribute__((packed));

#endif
