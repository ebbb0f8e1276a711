/* previrt xen: the para-virtual interface for assembly guests (src/hypervisor/xen/abi.ts). */
#define HYPERCALL int $0x82

#define __HYPERVISOR_set_trap_table 0
#define __HYPERVISOR_mmu_update 1
#define __HYPERVISOR_stack_switch 3
#define __HYPERVISOR_set_callbacks 4
#define __HYPERVISOR_update_va_mapping 14
#define __HYPERVISOR_set_timer_op 15
#define __HYPERVISOR_console_io 18
#define __HYPERVISOR_mmuext_op 26
#define __HYPERVISOR_sched_op 29
#define __HYPERVISOR_event_channel_op 32

#define FLAT_RING1_CS 0x19
#define FLAT_RING1_DS 0x21
#define FLAT_RING3_CS 0x2b
#define FLAT_RING3_DS 0x33

/* start_info */
#define SI_NR_PAGES 32
#define SI_SHARED_INFO 36
#define SI_CONSOLE_MFN 52
#define SI_CONSOLE_EVTCHN 56
#define SI_PT_BASE 60
#define SI_MFN_LIST 68

/* shared_info */
#define SH_UPCALL_PENDING 0
#define SH_UPCALL_MASK 1
#define SH_PENDING_SEL 4
#define SH_CR2 8
#define SH_SYSTEM_TIME 48
#define SH_EVTCHN_PENDING 2048

/* console ring */
#define CONS_OUT 1024
#define CONS_OUT_PROD 3084

#define KERNEL_BASE 0xc0000000

/* Hypercall with up to four arguments; result in %eax. Clobbers ebx, ecx, edx, esi. */
#define HC(nr, a, b, c, d) \
  movl $nr, %eax; movl a, %ebx; movl b, %ecx; movl c, %edx; movl d, %esi; HYPERCALL
