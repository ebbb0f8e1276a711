/*
 * Entry code in the style of Linux 2.6's arch/i386/kernel/entry.S (written for this test):
 * cpp macros that expand to several statements on one line, numeric labels shared with
 * exception tables, fixup sections, gas macros, and sensitive instructions everywhere.
 */
#define __KERNEL_DS 0x7b
#define SAVE_ALL \
	cld; pushl %es; pushl %ds; pushl %eax; pushl %ebp; pushl %edi; pushl %esi; \
	pushl %edx; pushl %ecx; pushl %ebx; movl $(__KERNEL_DS), %edx; movl %edx, %ds; movl %edx, %es;
#define RESTORE_REGS \
	popl %ebx; popl %ecx; popl %edx; popl %esi; popl %edi; popl %ebp; popl %eax; \
1:	popl %ds; \
2:	popl %es; \
.section .fixup,"ax"; \
3:	movl $0,(%esp); jmp 1b; \
4:	movl $0,(%esp); jmp 2b; \
.previous; \
.section __ex_table,"a"; .align 4; .long 1b,3b; .long 2b,4b; .previous
#define ENTRY(name) .globl name; .align 4; name:

	.text
ENTRY(_start)
ENTRY(system_call)
	pushl %eax
	SAVE_ALL
	call *sys_call_table(,%eax,4)
	movl %eax, 24(%esp)
restore_all:
	RESTORE_REGS
	addl $4, %esp
1:	iret
.section .fixup,"ax"
iret_exc:
	sti
	pushl $0
	jmp error_code
.previous
.section __ex_table,"a"
	.align 4
	.long 1b,iret_exc
.previous

	.macro DISABLE_INTERRUPTS
	cli
	.endm
	.macro ENABLE_INTERRUPTS_SYSEXIT
	sti; sysexit
	.endm

ENTRY(sysenter_entry)
	movl 4(%esp), %esp
	DISABLE_INTERRUPTS
	pushl $(__KERNEL_DS)
	pushfl
	pushl $0x73
	SAVE_ALL
	ENABLE_INTERRUPTS_SYSEXIT

ENTRY(error_code)
	pushl %ds
	pushl %es
	movl %es, %ecx
	movl $(__KERNEL_DS), %ecx
	movl %ecx, %ds
	movl %ecx, %es
	movl %cr2, %eax
	popl %es
	popl %ds
	hlt

ENTRY(load_gs_index)
	pushfl
	cli
	movl 8(%esp), %eax
1:	movl %eax, %gs
	popfl
	ret
.section __ex_table,"a"
	.long 1b, error_code
.previous

	.data
sys_call_table:
	.long restore_all, system_call
