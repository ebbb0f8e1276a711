/*
 * Entry from the domain builder (src/hypervisor/xen/builder.ts, Xen's start of day): ring 1,
 * paging on with the bootstrap page tables, which map the kernel, start_info and the builder's
 * other pages and at least 512 KB more at KERNBASE + pseudo-physical; %esi = start_info,
 * events masked. xen_start (setup.c) maps what the PC's boot page tables map and returns a
 * multiboot information structure for the shared start-up (kernel/main.c, kernel/boot.c).
 */
#include "memlayout.h"

#define MULTIBOOT_BOOTLOADER_MAGIC 0x2BADB002

/* What this kernel is, for whoever loads it: XenoLinux kernels carried such a string in a
 * section of this name for Xen's domain builder. previrt's platforms read it to run the
 * kernel on xen-para and to refuse it elsewhere (src/platforms/xenPara.ts). Not loaded. */
.section __xen_guest
  .ascii "GUEST_OS=previrt,XEN_VER=previrt-xen-1.0,VIRT_BASE=0xC0000000"
  .byte 0

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
