/* Multiboot v1 entry of the CPU benchmark workload. The loader (QEMU -kernel, v86, previrt)
 * enters in 32-bit flat protected mode with paging off; we set a stack and call C. */
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003 /* page-align modules, memory info */
	.section .multiboot, "a"
	.align 4
	.long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)

	.text
	.globl _start
_start:
	cli
	movl $stack_top, %esp
	call workload_main
1:	cli
	hlt
	jmp 1b

	.bss
	.align 16
	.space 65536
stack_top:

	.section .note.GNU-stack, "", @progbits
