/*
 * A para-virtual guest kernel for previrt's xen: prints through console_io and the console ring,
 * installs a trap table and callbacks, maps shared info, takes a page fault (and repairs the
 * mapping from mfn_list), takes a timer upcall while blocked, enters ring 3 and comes back with
 * int $0x80, and powers off with status 7. Any surprise prints "FAIL ..." and exits with 1.
 */
#include "pv.h"

#define CHECK(msg) testl %eax, %eax; jz 1f; movl $msg, %edi; jmp fail; 1:

	.text
	.globl _start
_start:
	movl %esi, start_info
	movl $banner, %edi
	call puts

	HC(__HYPERVISOR_set_trap_table, $trap_table, $0, $0, $0)
	CHECK(m_traps)
	HC(__HYPERVISOR_set_callbacks, $FLAT_RING1_CS, $upcall, $FLAT_RING1_CS, $failsafe)
	CHECK(m_callbacks)

	/* Map shared info over our page 'shared' (update_va_mapping, INVLPG). */
	movl start_info, %eax
	movl SI_SHARED_INFO(%eax), %ecx
	orl $0x63, %ecx
	HC(__HYPERVISOR_update_va_mapping, $shared, %ecx, $0, $2)
	CHECK(m_shared)

	/* Console ring: put a line in 'out' and signal the console port. */
	movl start_info, %eax
	movl SI_CONSOLE_MFN(%eax), %ecx
	shll $12, %ecx
	orl $0x63, %ecx
	HC(__HYPERVISOR_update_va_mapping, $cons, %ecx, $0, $2)
	CHECK(m_cons)
	movl $ringmsg, %esi
	xorl %ecx, %ecx
2:	movb (%esi,%ecx), %al
	testb %al, %al
	jz 3f
	movb %al, cons+CONS_OUT(%ecx)
	incl %ecx
	jmp 2b
3:	movl %ecx, cons+CONS_OUT_PROD
	movl start_info, %eax
	movl SI_CONSOLE_EVTCHN(%eax), %eax
	movl %eax, port_arg
	HC(__HYPERVISOR_event_channel_op, $4, $port_arg, $0, $0)
	CHECK(m_send)

	/* Mapping a page table writable must fail: our L2 (pt_base) as a writable page. */
	movl start_info, %eax
	movl SI_PT_BASE(%eax), %eax
	subl $KERNEL_BASE, %eax
	shrl $12, %eax
	movl start_info, %edx
	movl SI_MFN_LIST(%edx), %edx
	movl (%edx,%eax,4), %ecx
	shll $12, %ecx
	orl $0x63, %ecx
	HC(__HYPERVISOR_update_va_mapping, $victim, %ecx, $0, $2)
	cmpl $-22, %eax
	je 4f
	movl $m_ptwrite, %edi
	jmp fail
4:	movl $ok_ptwrite, %edi
	call puts

	/* A page fault: unmap 'victim', touch it; the handler maps it back and we retry. */
	HC(__HYPERVISOR_update_va_mapping, $victim, $0, $0, $2)
	CHECK(m_unmap)
	movl $0x1234, victim
	cmpl $1, pf_count
	je 5f
	movl $m_pf, %edi
	jmp fail
5:	cmpl $0x1234, victim
	jne fail_pf
	movl $ok_pf, %edi
	call puts

	/* Timer: bind VIRQ_TIMER, arm it 1 ms ahead, block until the upcall. */
	movl $0, bind_virq
	movl $0, bind_virq+4
	HC(__HYPERVISOR_event_channel_op, $1, $bind_virq, $0, $0)
	CHECK(m_bind)
	movl shared+SH_SYSTEM_TIME, %ebx
	movl shared+SH_SYSTEM_TIME+4, %ecx
	addl $1000000, %ebx
	adcl $0, %ecx
	movl $__HYPERVISOR_set_timer_op, %eax
	HYPERCALL
	CHECK(m_timer)
	HC(__HYPERVISOR_sched_op, $1, $0, $0, $0)
	CHECK(m_block)
	cmpl $0, upcall_count
	jne 6f
	movl $m_upcall, %edi
	jmp fail
6:	movl $ok_timer, %edi
	call puts

	/* Ring 3 and back: user pages, a kernel stack for the trip, iret to ring 3; int $0x80
	   comes back here. */
	movl $user, %eax
	call frame_of
	orl $0x25, %ecx		/* P, U/S, A: user code, read-only */
	HC(__HYPERVISOR_update_va_mapping, $user, %ecx, $0, $2)
	CHECK(m_user)
	movl $ustack, %eax
	call frame_of
	orl $0x67, %ecx		/* P, RW, U/S, A, D */
	HC(__HYPERVISOR_update_va_mapping, $ustack, %ecx, $0, $2)
	CHECK(m_user)
	HC(__HYPERVISOR_stack_switch, $FLAT_RING1_DS, $kstack_top, $0, $0)
	CHECK(m_stack)
	pushl $FLAT_RING3_DS
	pushl $ustack_top
	pushfl
	pushl $FLAT_RING3_CS
	pushl $user
	iret
back_in_kernel:
	movl $ok_user, %edi
	call puts

	/* Power off with status 7. */
	movl $0, shutdown_arg
	movl $7, shutdown_arg+4
	HC(__HYPERVISOR_sched_op, $2, $shutdown_arg, $0, $0)
	movl $m_shutdown, %edi
	jmp fail

fail_pf:
	movl $m_pfval, %edi
fail:
	call puts
	movl $0, shutdown_arg
	movl $1, shutdown_arg+4
	HC(__HYPERVISOR_sched_op, $2, $shutdown_arg, $0, $0)
9:	jmp 9b

/* puts(%edi = NUL-terminated string) through console_io. Keeps every register but eax. */
puts:
	pushl %ebx
	pushl %ecx
	pushl %edx
	pushl %esi
	xorl %ecx, %ecx
1:	cmpb $0, (%edi,%ecx)
	je 2f
	incl %ecx
	jmp 1b
2:	movl $__HYPERVISOR_console_io, %eax
	xorl %ebx, %ebx
	movl %edi, %edx
	HYPERCALL
	popl %esi
	popl %edx
	popl %ecx
	popl %ebx
	ret

/* frame_of(%eax = kernel virtual address) -> %ecx = its machine frame << 12 (mfn_list). */
frame_of:
	pushl %edx
	subl $KERNEL_BASE, %eax
	shrl $12, %eax
	movl start_info, %edx
	movl SI_MFN_LIST(%edx), %edx
	movl (%edx,%eax,4), %ecx
	shll $12, %ecx
	popl %edx
	ret

/* #PF: record, map the page back from mfn_list, retry the instruction. */
page_fault:
	pushal
	incl pf_count
	movl shared+SH_CR2, %ebx
	andl $0xfffff000, %ebx
	movl %ebx, %eax
	call frame_of
	orl $0x63, %ecx
	xorl %edx, %edx
	movl $2, %esi
	movl $__HYPERVISOR_update_va_mapping, %eax
	HYPERCALL
	popal
	addl $4, %esp		/* the error code */
	iret

/* int $0x80 from ring 3 (DPL 3 entry): check eax, go on in the kernel (drop the frame). The
   return to ring 3 nulled DS and ES (their DPL 1 < CPL 3): reload them, as any kernel entry. */
syscall:
	movl $FLAT_RING1_DS, %ecx
	movl %ecx, %ds
	movl %ecx, %es
	cmpl $0x55, %eax
	jne 1f
	cmpl $FLAT_RING3_CS, 4(%esp)
	jne 1f
	addl $20, %esp
	jmp back_in_kernel
1:	movl $m_syscall, %edi
	jmp fail

/* Event upcall: acknowledge everything, count, unmask, return. */
upcall:
	pushl %eax
	movb $0, shared+SH_UPCALL_PENDING
	xorl %eax, %eax
	xchgl %eax, shared+SH_PENDING_SEL
	movl $0, shared+SH_EVTCHN_PENDING
	incl upcall_count
	movb $0, shared+SH_UPCALL_MASK
	popl %eax
	iret

failsafe:
	movl $m_failsafe, %edi
	jmp fail

	.section .rodata
banner:	.asciz "pv hello: booted in ring 1\n"
ringmsg: .asciz "pv hello: console ring works\n"
ok_ptwrite: .asciz "pv hello: writable page-table mapping refused\n"
ok_pf:	.asciz "pv hello: page fault handled\n"
ok_timer: .asciz "pv hello: timer upcall\n"
ok_user: .asciz "pv hello: ring 3 and back\n"
m_traps: .asciz "FAIL set_trap_table\n"
m_callbacks: .asciz "FAIL set_callbacks\n"
m_shared: .asciz "FAIL map shared info\n"
m_cons:	.asciz "FAIL map console ring\n"
m_send:	.asciz "FAIL evtchn send\n"
m_ptwrite: .asciz "FAIL page table mapped writable\n"
m_unmap: .asciz "FAIL unmap\n"
m_pf:	.asciz "FAIL page fault count\n"
m_pfval: .asciz "FAIL page fault value\n"
m_bind:	.asciz "FAIL bind_virq\n"
m_timer: .asciz "FAIL set_timer_op\n"
m_block: .asciz "FAIL block\n"
m_upcall: .asciz "FAIL no upcall\n"
m_stack: .asciz "FAIL stack_switch\n"
m_user:	.asciz "FAIL user mappings\n"
m_syscall: .asciz "FAIL syscall\n"
m_shutdown: .asciz "FAIL shutdown returned\n"
m_failsafe: .asciz "FAIL failsafe callback\n"

	.data
	.align 4
trap_table:
	.byte 14, 0
	.word FLAT_RING1_CS
	.long page_fault
	.byte 0x80, 3
	.word FLAT_RING1_CS
	.long syscall
	.long 0, 0

/* Ring-3 code, in a page of its own: asks for the kernel with int $0x80. */
	.section .user, "ax"
	.align 4096
user:
	movl $0x55, %eax
	int $0x80
	jmp user
	.align 4096

	.bss
	.align 4096
shared:	.skip 4096
cons:	.skip 4096
victim:	.skip 4096
kstack:	.skip 4096
kstack_top:
ustack:	.skip 4096
ustack_top:
start_info: .skip 4
pf_count: .skip 4
upcall_count: .skip 4
port_arg: .skip 4
bind_virq: .skip 12
shutdown_arg: .skip 8
