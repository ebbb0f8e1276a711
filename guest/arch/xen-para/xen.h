/*
 * The hypervisor's interface as this port sees it: hypercall numbers, the structures they take,
 * start_info and shared_info, and one inline wrapper per hypercall (XenoLinux's hypervisor.h and
 * hypercall.h). Numbers and layouts are previrt's `xen` (src/hypervisor/xen/abi.ts), which
 * follows Xen's 32-bit public headers (xen.h, event_channel.h, sched.h, physdev.h).
 */
#ifndef XEN_PARA_XEN_H
#define XEN_PARA_XEN_H

#include "types.h"

/* Hypercall numbers (xen.h __HYPERVISOR_*). */
#define __HYPERVISOR_set_trap_table 0
#define __HYPERVISOR_mmu_update 1
#define __HYPERVISOR_stack_switch 3
#define __HYPERVISOR_set_callbacks 4
#define __HYPERVISOR_update_va_mapping 14
#define __HYPERVISOR_set_timer_op 15
#define __HYPERVISOR_xen_version 17
#define __HYPERVISOR_console_io 18
#define __HYPERVISOR_grant_table_op 20
#define __HYPERVISOR_mmuext_op 26
#define __HYPERVISOR_sched_op 29
#define __HYPERVISOR_event_channel_op 32
#define __HYPERVISOR_physdev_op 33

#define XEN_EPERM 1
#define DOMID_SELF 0x7ff0

/* trap_info (arch-x86/xen.h): flags bits 0-1 are the DPL for INT n, bit 2 masks events on
 * entry, as an interrupt gate clears IF. */
struct trap_info {
  u8 vector, flags;
  u16 cs;
  u32 address;
};
#define TI_MASK_EVENTS 4

/* mmu_update: a checked write of the page-table entry at machine address ptr (low bits 0). */
struct mmu_update {
  u64 ptr, val;
};

/* mmuext_op commands (xen.h MMUEXT_*). */
struct mmuext_op {
  u32 cmd, arg1, arg2;
};
#define MMUEXT_PIN_L1_TABLE 0
#define MMUEXT_PIN_L2_TABLE 1
#define MMUEXT_UNPIN_TABLE 4
#define MMUEXT_NEW_BASEPTR 5
#define MMUEXT_TLB_FLUSH_LOCAL 6
#define MMUEXT_INVLPG_LOCAL 7

/* update_va_mapping flags. */
#define UVMF_INVLPG 2

#define SCHEDOP_block 1
#define SCHEDOP_shutdown 2
#define SHUTDOWN_poweroff 0
struct sched_shutdown {
  u32 reason, status; /* status: previrt's addition, the run's exit status */
};

#define CONSOLEIO_write 0

/* event_channel_op commands and arguments. */
#define EVTCHNOP_bind_virq 1
#define EVTCHNOP_bind_pirq 2
#define EVTCHNOP_close 3
#define EVTCHNOP_send 4
#define EVTCHNOP_alloc_unbound 6
#define EVTCHNOP_unmask 9
#define VIRQ_TIMER 0
struct evtchn_bind_virq {
  u32 virq, vcpu, port; /* port: out */
};
struct evtchn_bind_pirq {
  u32 pirq, flags, port; /* port: out */
};
struct evtchn_port {
  u32 port; /* send, unmask */
};
struct evtchn_alloc_unbound {
  u16 dom, remote_dom;
  u32 port; /* out */
};
#define NR_EVENT_CHANNELS 64

/* grant_table_op (grant_table.h, v1): a domain's table of grants, entries {flags, domid,
 * frame} of 8 bytes, in frames that setup_table gives it. */
#define GNTTABOP_setup_table 2
struct gnttab_setup_table {
  u16 dom, pad0;
  u32 nr_frames;
  u16 status; /* a negative GNTST_* in 16 bits */
  u16 pad1;
  u32 frame_list; /* virtual address of nr_frames u32s: the frames (out) */
};
struct grant_entry {
  u16 flags, domid;
  u32 frame; /* machine frame */
};
#define GTF_permit_access 1
#define GTF_readonly 4
#define GTF_reading 8
#define GTF_writing 16

/* physdev_op: configuration space of the PCI function granted to the domain (previrt's). */
#define PHYSDEVOP_pci_config_read 0x100
#define PHYSDEVOP_pci_config_write 0x101
struct physdev_pci {
  u32 offset, size, value;
};

/* start_info (xen.h, x86_32): the domain builder's page, its virtual address in %esi at entry. */
struct start_info {
  char magic[32];
  u32 nr_pages;
  u32 shared_info; /* machine address */
  u32 flags, store_mfn, store_evtchn;
  u32 console_mfn, console_evtchn;
  u32 pt_base; /* virtual address of the bootstrap page directory */
  u32 nr_pt_frames;
  u32 mfn_list; /* virtual address of the pseudo-physical to machine table */
  u32 mod_start, mod_len;
  char cmd_line[1024];
};

/* shared_info (xen.h), vCPU 0 only. The virtual IF is !upcall_mask. */
struct shared_info {
  u8 upcall_pending; /* 0 */
  u8 upcall_mask;    /* 1 */
  u16 pad0;
  u32 pending_sel; /* 4 */
  u32 cr2;         /* 8: the faulting address of the last page fault bounced to us */
  u32 pad1[5];
  u32 time_version; /* 32: vcpu_time_info */
  u32 pad2;
  u64 tsc_timestamp;    /* 40 */
  u64 system_time;      /* 48: ns since the domain was built */
  u32 tsc_to_system_mul; /* 56 */
  u8 tsc_shift, pad3[3]; /* 60 */
  u8 pad4[2048 - 64];
  u32 evtchn_pending[32]; /* 2048 */
  u32 evtchn_mask[32];    /* 2176 */
  u32 wc_version;         /* 2304: the wall clock at system time 0 */
  u32 wc_sec, wc_nsec;
  u8 pad5[4096 - 2316];
};
_Static_assert(__builtin_offsetof(struct shared_info, system_time) == 48, "shared_info layout");
_Static_assert(__builtin_offsetof(struct shared_info, evtchn_pending) == 2048, "shared_info");
_Static_assert(__builtin_offsetof(struct shared_info, wc_sec) == 2308, "shared_info layout");
_Static_assert(sizeof(struct shared_info) == 4096, "shared_info is one page");

/* The console ring page (io/console.h xencons_interface). */
struct xencons_interface {
  char in[1024];
  char out[2048];
  u32 in_cons, in_prod, out_cons, out_prod;
};

/* Where the hypervisor maps the machine-to-phys table (read-only) in every address space. */
#define MACH2PHYS ((const u32 *)0xFFC01000u)

/* setup.c: the pages the domain builder and the hypervisor share with us. */
extern volatile struct shared_info xen_shared; /* a page of our .bss, remapped at boot */
extern const struct start_info *xen_start_info;
extern const u32 *xen_p2m; /* start_info.mfn_list: pseudo-physical frame -> machine frame */

/*
 * Hypercalls: `int $0x82`, number in %eax, arguments in %ebx, %ecx, %edx, %esi, %edi, result
 * in %eax (0, a value, or a negated errno). The argument registers are outputs too, so the
 * compiler assumes nothing about them afterwards (as XenoLinux's wrappers do).
 */
static inline int xen_hypercall(u32 nr, u32 a1, u32 a2, u32 a3, u32 a4, u32 a5) {
  int r;
  __asm__ __volatile__("int $0x82"
                       : "=a"(r), "+b"(a1), "+c"(a2), "+d"(a3), "+S"(a4), "+D"(a5)
                       : "a"(nr)
                       : "memory");
  return r;
}
#define HYPERCALL(name, a1, a2, a3, a4, a5) \
  xen_hypercall(__HYPERVISOR_##name, (u32)(a1), (u32)(a2), (u32)(a3), (u32)(a4), (u32)(a5))

static inline int HYPERVISOR_set_trap_table(const struct trap_info *t) {
  return HYPERCALL(set_trap_table, t, 0, 0, 0, 0);
}
static inline int HYPERVISOR_mmu_update(const struct mmu_update *req, int n) {
  return HYPERCALL(mmu_update, req, n, 0, DOMID_SELF, 0);
}
static inline int HYPERVISOR_mmuext_op(const struct mmuext_op *op, int n) {
  return HYPERCALL(mmuext_op, op, n, 0, DOMID_SELF, 0);
}
static inline int HYPERVISOR_update_va_mapping(u32 va, u32 pte, u32 flags) {
  return HYPERCALL(update_va_mapping, va, pte, 0, flags, 0);
}
static inline int HYPERVISOR_stack_switch(u32 ss, u32 esp) {
  return HYPERCALL(stack_switch, ss, esp, 0, 0, 0);
}
static inline int HYPERVISOR_set_callbacks(u32 cs, u32 event, u32 failsafe) {
  return HYPERCALL(set_callbacks, cs, event, cs, failsafe, 0);
}
static inline int HYPERVISOR_set_timer_op(u64 deadline_ns) {
  return HYPERCALL(set_timer_op, (u32)deadline_ns, (u32)(deadline_ns >> 32), 0, 0, 0);
}
static inline int HYPERVISOR_xen_version(int cmd) { return HYPERCALL(xen_version, cmd, 0, 0, 0, 0); }
static inline int HYPERVISOR_console_io(int cmd, int n, const char *buf) {
  return HYPERCALL(console_io, cmd, n, buf, 0, 0);
}
static inline int HYPERVISOR_sched_op(int cmd, void *arg) { return HYPERCALL(sched_op, cmd, arg, 0, 0, 0); }
static inline int HYPERVISOR_event_channel_op(int cmd, void *arg) {
  return HYPERCALL(event_channel_op, cmd, arg, 0, 0, 0);
}
static inline int HYPERVISOR_grant_table_op(int cmd, void *uop, int count) {
  return HYPERCALL(grant_table_op, cmd, uop, count, 0, 0);
}
static inline int HYPERVISOR_physdev_op(int cmd, void *arg) {
  return HYPERCALL(physdev_op, cmd, arg, 0, 0, 0);
}

/* The hypervisor's system time in ns (vcpu_time_info; refreshed on every entry to it). */
u64 xen_system_time(void);
/* evtchn.c: the event channel `port` (one the kernel made itself) is IRQ `irq` from now on;
 * irq_register(irq, ...) then takes its events. */
void evtchn_irq_port(int irq, u32 port);
/* console.c: write out what the console buffers (before the domain blocks or shuts down). */
void xencons_flush(void);

#endif
