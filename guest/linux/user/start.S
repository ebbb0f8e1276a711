/* The entry of every program: the kernel starts it with argc, argv[], NULL, envp[], NULL on the
 * stack (the System V i386 ABI's process start, as Linux's binfmt_elf builds it). */
	.text
	.globl _start
_start:
	xorl %ebp, %ebp
	movl (%esp), %eax          /* argc */
	leal 4(%esp), %ecx         /* argv */
	leal 8(%esp,%eax,4), %edx  /* envp: past argv's NULL */
	andl $-16, %esp
	subl $4, %esp
	pushl %edx
	pushl %ecx
	pushl %eax
	call main
	pushl %eax
	call exit
	hlt

/* int syscall6(int n, long a, long b, long c, long d, long e, long f): the i386 system-call
 * convention, EAX the number, EBX ECX EDX ESI EDI EBP the arguments, the result (or -errno) in
 * EAX. */
	.globl syscall6
syscall6:
	pushl %ebp
	pushl %edi
	pushl %esi
	pushl %ebx
	movl 20(%esp), %eax
	movl 24(%esp), %ebx
	movl 28(%esp), %ecx
	movl 32(%esp), %edx
	movl 36(%esp), %esi
	movl 40(%esp), %edi
	movl 44(%esp), %ebp
	int $0x80
	popl %ebx
	popl %esi
	popl %edi
	popl %ebp
	ret

	.section .note.GNU-stack,"",@progbits
