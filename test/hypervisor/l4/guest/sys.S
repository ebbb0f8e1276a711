/*
 * The system-call trampoline of previrt's l4 test guests (src/hypervisor/l4/README.md has the
 * register table). l4_sys(entry, regs): loads EAX ECX EDX EBX - EBP ESI EDI from regs[0..7]
 * (regs[4], ESP, is not loaded), calls `entry` - a KIP stub `int $v; ret`, or one of int_stubs
 * - and stores the registers back. _start goes to main as if called: the harness put a return
 * address slot and main's arguments at the stack pointer (main never returns); int_stubs are
 * `int $n; ret` for every n, 4 bytes apart.
 */
	.section .text.start, "ax"
	.globl _start
_start:
	jmp main

	.text
	.globl l4_sys
l4_sys:
	pushl %ebp
	pushl %ebx
	pushl %esi
	pushl %edi
	pushl 24(%esp)		/* regs */
	pushl 24(%esp)		/* entry */
	movl 4(%esp), %eax
	movl 4(%eax), %ecx
	movl 8(%eax), %edx
	movl 12(%eax), %ebx
	movl 20(%eax), %ebp
	movl 24(%eax), %esi
	movl 28(%eax), %edi
	movl 0(%eax), %eax
	call *(%esp)
	xchgl %eax, 4(%esp)
	movl %ecx, 4(%eax)
	movl %edx, 8(%eax)
	movl %ebx, 12(%eax)
	movl %ebp, 20(%eax)
	movl %esi, 24(%eax)
	movl %edi, 28(%eax)
	movl 4(%esp), %ecx
	movl %ecx, 0(%eax)
	addl $8, %esp
	popl %edi
	popl %esi
	popl %ebx
	popl %ebp
	ret

	.globl int_stubs
	.p2align 4
int_stubs:
	.set n, 0
	.rept 256
	.byte 0xcd, n, 0xc3, 0x90
	.set n, n + 1
	.endr

	/* KernelInterface the Pistachio way: lock; nop raises #UD, which the kernel takes. */
	.globl l4_kernel_interface_lock_nop
l4_kernel_interface_lock_nop:
	lock
	nop
	ret
	.section .note.GNU-stack, "", @progbits
