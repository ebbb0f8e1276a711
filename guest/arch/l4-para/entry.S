/*
 * Entry from the resource monitor (src/platforms/l4Para.ts starts the VM's main thread here):
 * ring 3, an L4 thread whose pager is the resource monitor, at the image's entry, with the stack
 * pointer at a return-address slot and the boot information's address above it. l4_start
 * (setup.c) maps the VM's memory, starts the pager thread and returns a multiboot information
 * structure for the shared start-up (kernel/main.c, kernel/boot.c).
 */
#include "memlayout.h"

#define MULTIBOOT_BOOTLOADER_MAGIC 0x2BADB002

/* What this kernel is, for whoever loads it (src/loader/notes.ts): an ELF note, owner
 * "previrt", type 1 (para-virtualized), naming the interface it was ported to. previrt's
 * platforms run it on the L4-style microkernel's resource monitor and refuse it elsewhere. */
.section .note.previrt, "a", @note
  .balign 4
  .long 2f - 1f                   /* namesz */
  .long 4f - 3f                   /* descsz */
  .long 1                         /* type: PREVIRT_NOTE_PARAVIRT */
1: .asciz "previrt"
2: .balign 4
3: .asciz "l4"
4: .balign 4

.text
.globl _start
_start:
  cld
  movl 4(%esp), %esi              /* the boot information */
  movl $boot_stack_top, %esp
  xorl %ebp, %ebp
  pushl %esi                      /* l4_start(boot information) */
  call l4_start
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
