/*
 * Multiboot entry. The boot loader jumps here in 32-bit protected mode with paging off,
 * %eax = 0x2BADB002 and %ebx = physical address of the multiboot information (Multiboot
 * Specification 0.6.96, section 3.2). The kernel is linked at 0xC0100000 but loaded at 1 MB,
 * so until paging is on, every address this code uses is the link address minus KERNBASE.
 */
#include "memlayout.h"

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003 /* bit 0: page-align modules; bit 1: give us the memory map */
#define BOOT_TABLES 4       /* early page tables: the first 16 MB of physical memory */
#define PHYS(sym) ((sym) - KERNBASE)

.section .multiboot, "a"
.balign 4
  .long MB_MAGIC
  .long MB_FLAGS
  .long -(MB_MAGIC + MB_FLAGS)

.text
/* The ELF entry point is the physical address of `entry` (paging is still off). */
.globl _start
_start = PHYS(entry)

.globl entry
entry:
  cli
  movl %eax, %esi                 /* keep the multiboot magic and info pointer */
  movl %ebx, %edi

  /* Paging with the boot page directory: the first 16 MB both at 0 (so this code keeps
   * running once paging is on) and at KERNBASE (where the kernel is linked). */
  movl $PHYS(boot_pgdir), %eax
  movl %eax, %cr3
  movl %cr0, %eax
  orl $0x80010001, %eax           /* PG | WP | PE */
  movl %eax, %cr0

  /* Jump to the high half and switch to the boot stack there. */
  movl $high, %eax
  jmp *%eax
high:
  movl $boot_stack_top, %esp
  xorl %ebp, %ebp
  pushl %edi                      /* kmain(magic, mbi_pa) */
  pushl %esi
  call kmain
1:
  hlt
  jmp 1b

/*
 * The boot page directory and tables are initialised data, not code: no page-table entry is
 * written by an instruction before the kernel's own page directory (vm.c) takes over.
 */
.section .data
.balign 4096
boot_pt:
  .set pa, 0
  .rept 1024 * BOOT_TABLES
    .long pa | 0x003              /* present | writable */
    .set pa, pa + 4096
  .endr
.globl boot_pgdir
boot_pgdir:
  .set i, 0
  .rept 1024
    .if i < BOOT_TABLES
      .long PHYS(boot_pt) + i * 4096 + 0x003
    .elseif i >= (KERNBASE >> 22) && i < (KERNBASE >> 22) + BOOT_TABLES
      .long PHYS(boot_pt) + (i - (KERNBASE >> 22)) * 4096 + 0x003
    .else
      .long 0
    .endif
    .set i, i + 1
  .endr

.section .bss
.balign 4096
.globl boot_stack
boot_stack:
  .space 16384
.globl boot_stack_top
boot_stack_top:
