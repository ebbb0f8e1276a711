/*
 * Loads a static 32-bit x86 ELF executable into an address space (System V ABI, "Object
 * files"). The image comes from the kernel or a boot module, so it is checked rather than
 * trusted: every segment must fit in the file and land in user space below the heap.
 */
#include "defs.h"
#include "mmu.h"
#include "syscall.h"

#define ELF_MAGIC 0x464c457fu /* "\x7fELF" */
#define ET_EXEC 2
#define EM_386 3
#define PT_LOAD 1
#define ELF_PF_W 2 /* segment flag: writable */
#define USER_LOW 0x00400000u

struct elfhdr {
  u32 magic;
  u8 ident[12];
  u16 type, machine;
  u32 version, entry, phoff, shoff, flags;
  u16 ehsize, phentsize, phnum, shentsize, shnum, shstrndx;
};

struct proghdr {
  u32 type, off, vaddr, paddr, filesz, memsz, flags, align;
};

int elf_load(pde_t *pgdir, const u8 *image, u32 size, u32 *entry) {
  const struct elfhdr *eh = (const struct elfhdr *)image;
  if (size < sizeof *eh || eh->magic != ELF_MAGIC || eh->ident[0] != 1 /* 32-bit */ ||
      eh->type != ET_EXEC || eh->machine != EM_386 || eh->phentsize != sizeof(struct proghdr) ||
      eh->phoff > size || (u32)eh->phnum * sizeof(struct proghdr) > size - eh->phoff)
    return -ENOEXEC;
  const struct proghdr *ph = (const struct proghdr *)(image + eh->phoff);
  for (int i = 0; i < eh->phnum; i++, ph++) {
    if (ph->type != PT_LOAD) continue;
    if (ph->filesz > ph->memsz || ph->off > size || ph->filesz > size - ph->off ||
        ph->vaddr < USER_LOW || ph->vaddr >= UHEAP_BASE || ph->memsz > UHEAP_BASE - ph->vaddr)
      return -ENOEXEC;
    u32 perm = (ph->flags & ELF_PF_W) ? PTE_W : 0;
    int r = uvm_copyout(pgdir, ph->vaddr, image + ph->off, ph->filesz, perm);
    /* The rest of memsz (.bss): zero pages, already zero where the file part ended. */
    if (r == 0 && ph->memsz > ph->filesz)
      r = uvm_copyout(pgdir, ph->vaddr + ph->filesz, 0, ph->memsz - ph->filesz, perm);
    if (r < 0) return r;
  }
  if (eh->entry < USER_LOW || eh->entry >= UHEAP_BASE) return -ENOEXEC;
  *entry = eh->entry;
  return 0;
}
