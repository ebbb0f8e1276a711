/*
 * Entry from the domain builder (src/hypervisor/xen/builder.ts, Xen's start of day): ring 1,
 * paging on with the bootstrap page tables, which map the kernel, start_info and the builder's
 * other pages and at least 512 KB more at KERNBASE + pseudo-physical; %esi = start_info,
 * events masked. xen_start (setup.c) maps what the PC's boot page tables map and returns a
 * multiboot information structure for the shared start-up (kernel/main.c, kernel/boot.c).
 */
#include "memlayout.h"

#define MULTIBOOT_BOOTLOADER_MAGIC 0x2BADB002

/* What this kernel is, for whoever loads it (src/loader/notes.ts): an ELF note, owner
 * "previrt", type 1 (para-virtualized), naming the interface it was ported to, as Xen's PV
 * kernels tell its domain builder theirs in XEN_ELFNOTE_* notes. previrt's platforms run it on
 * the Xen-style hypervisor's domain builder and refuse it everywhere else. */
.section .note.previrt, "a", @note
  .balign 4
  .long 2f - 1f                   /* namesz */
  .long 4f - 3f                   /* descsz */
  .long 1                         /* type: PREVIRT_NOTE_PARAVIRT */
1: .asciz "previrt"
2: .balign 4
3: .asciz "xen"
4: .balign 4

.text
.globl _start
_start:
  cld
  movl $boot_stack_top, %esp
  xorl %ebp, %ebp
  pushl %esi                      /* xen_start(start_info) */
  call xen_start
  addl $4, %esp
  pushl %eax                      /* kmain(magic, multiboot info) */
  pushl $MULTIBOOT_BOOTLOADER_MAGIC
  call kmain
1:
  jmp 1b

.section .bss
.balign 4096
.globl boot_stack
boot_stack:
  .space 16384
.globl boot_stack_top
boot_stack_top:
