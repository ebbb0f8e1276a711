/* Multiboot entry of the machine-test guest: a stack, then main(magic, info). */
	.section .multiboot, "a"
	.align 4
	.long 0x1BADB002, 0x3, -(0x1BADB002 + 0x3)
	.text
	.globl _start
_start:
	movl $stack_top, %esp
	pushl %ebx
	pushl %eax
	call main
1:	cli
	hlt
	jmp 1b
	.globl irq0_entry
irq0_entry:
	pushal
	call irq0
	popal
	iret
	.globl irq4_entry
irq4_entry:
	pushal
	call irq4
	popal
	iret
	.bss
	.space 16384
stack_top:
	.section .note.GNU-stack, "", @progbits
