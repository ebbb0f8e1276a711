/**
 * The para-virtual interface previrt's `xen` offers its guests: hypercall numbers, commands,
 * error codes, structure layouts and selectors. Numbers and layouts follow Xen's 32-bit public
 * headers (xen/include/public/xen.h, event_channel.h, sched.h, arch-x86/xen-x86_32.h; see
 * shared/reference/xen-pv.md) wherever previrt implements the same thing; previrt's additions
 * are marked. Binary compatibility with Xen is not a goal, faithfulness of the model is.
 */

/** Hypercall numbers (xen.h __HYPERVISOR_*). Entered with `int $0x82`, EAX = number. */
export const Hypercall = {
  set_trap_table: 0,
  mmu_update: 1,
  stack_switch: 3,
  set_callbacks: 4,
  update_va_mapping: 14,
  set_timer_op: 15,
  xen_version: 17,
  console_io: 18,
  mmuext_op: 26,
  sched_op: 29,
  grant_table_op: 20,
  event_channel_op: 32,
  physdev_op: 33,
} as const;

/** Xen's DOMID_SELF: a domain naming itself. */
export const DOMID_SELF = 0x7ff0;

/** grant_table_op commands (grant_table.h GNTTABOP_*). */
export const GnttabOp = {
  map_grant_ref: 0,
  unmap_grant_ref: 1,
  setup_table: 2,
  copy: 5,
  query_size: 6,
} as const;

/**
 * Grant table v1 (grant_table.h): entries of 8 bytes {u16 flags; u16 domid; u32 frame} in the
 * frames `setup_table` returns; `frame` is the granter's machine frame, as for a PV granter.
 */
export const GRANT_ENTRY_SIZE = 8;
export const GRANT_ENTRIES_PER_FRAME = 4096 / GRANT_ENTRY_SIZE;
/** The most grant-table frames a domain may have (previrt's limit; Xen's default is 32). */
export const GRANT_FRAMES_MAX = 4;
/** Entry flags (GTF_*): the type in bits 0–1, then readonly; reading/writing are Xen's to set. */
export const GTF = {
  permit_access: 1,
  type_mask: 3,
  readonly: 1 << 2,
  reading: 1 << 3,
  writing: 1 << 4,
} as const;
/** map_grant_ref flags (GNTMAP_*). */
export const GNTMAP = { device_map: 1 << 0, host_map: 1 << 1, readonly: 1 << 2 } as const;
/** gnttab_copy flags (GNTCOPY_*): which side names a grant reference. */
export const GNTCOPY = { source_gref: 1 << 0, dest_gref: 1 << 1 } as const;
/** Per-operation status codes (GNTST_*), in the operation's status field. */
export const GNTST = {
  okay: 0,
  general_error: -1,
  bad_domain: -2,
  bad_gntref: -3,
  bad_handle: -4,
  bad_virt_addr: -5,
  bad_dev_addr: -6,
  no_device_space: -7,
  permission_denied: -8,
  bad_page: -9,
  bad_copy_arg: -10,
} as const;
/**
 * The grant window (previrt's): a granted frame is mapped into the grantee's pseudo-physical
 * space, as Xen maps grants for auto-translated guests, at the pages just above its memory
 * (pfn `p2m.length` up, this many). Its DMA (a device the domain was granted) and its in-place
 * VMM reach the frame there.
 */
export const GRANT_WINDOW_PAGES = 256;
/** Layouts of the grant_table_op arguments (x86_32 grant_table.h), byte offsets. */
export const GnttabMap = {
  size: 32,
  host_addr: 0,
  flags: 8,
  ref: 12,
  dom: 16,
  status: 18,
  handle: 20,
  dev_bus_addr: 24,
} as const;
export const GnttabUnmap = {
  size: 24,
  host_addr: 0,
  dev_bus_addr: 8,
  handle: 16,
  status: 20,
} as const;
export const GnttabSetup = { size: 16, dom: 0, nr_frames: 4, status: 8, frame_list: 12 } as const;
export const GnttabQuery = {
  size: 12,
  nr_frames: 0,
  max_nr_frames: 4,
  dom: 8,
  status: 10,
} as const;
/** gnttab_copy: source {u32 ref or gmfn; u16 domid; u16 offset}, dest the same, len, flags, status. */
export const GnttabCopy = { size: 24, source: 0, dest: 8, len: 16, flags: 18, status: 20 } as const;

/**
 * physdev_op commands. Xen's (physdev.h) manage physical IRQs; previrt adds configuration-space
 * access to the PCI function a domain was granted (Xen leaves that to dom0's pciback): the
 * argument is {u32 offset; u32 size (1, 2, 4); u32 value (in for a write, out for a read)}.
 */
export const PhysdevOp = { pci_config_read: 0x100, pci_config_write: 0x101 } as const;

export const HYPERCALL_VECTOR = 0x82;

/** Error codes, returned negated in EAX (Xen's errno values, public/errno.h). */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EAGAIN: 11,
  ENOMEM: 12,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  EINVAL: 22,
  ENOSPC: 28,
  ENOSYS: 38,
} as const;

/** mmu_update request kinds: the low two bits of `ptr` (xen.h MMU_*). */
export const MMU_NORMAL_PT_UPDATE = 0;
export const MMU_MACHPHYS_UPDATE = 1;
/** One mmu_update request: {u64 ptr; u64 val} (xen.h mmu_update_t). */
export const MMU_UPDATE_SIZE = 16;

/** mmuext_op commands (xen.h MMUEXT_*). */
export const MmuExt = {
  PIN_L1_TABLE: 0,
  PIN_L2_TABLE: 1,
  PIN_L3_TABLE: 2,
  PIN_L4_TABLE: 3,
  UNPIN_TABLE: 4,
  NEW_BASEPTR: 5,
  TLB_FLUSH_LOCAL: 6,
  INVLPG_LOCAL: 7,
  TLB_FLUSH_MULTI: 8,
  INVLPG_MULTI: 9,
  TLB_FLUSH_ALL: 10,
  INVLPG_ALL: 11,
  FLUSH_CACHE: 12,
} as const;
/** One mmuext_op: {u32 cmd; u32 arg1 (mfn or linear address); u32 arg2} on x86_32. */
export const MMUEXT_OP_SIZE = 12;

/** update_va_mapping flags (xen.h UVMF_*). */
export const UVMF_NONE = 0;
export const UVMF_TLB_FLUSH = 1;
export const UVMF_INVLPG = 2;
export const UVMF_FLUSHTYPE_MASK = 3;
export const UVMF_ALL = 4;

/** sched_op commands (sched.h SCHEDOP_*). */
export const SchedOp = { yield: 0, block: 1, shutdown: 2 } as const;
/** Shutdown reasons (sched.h SHUTDOWN_*). */
export const Shutdown = { poweroff: 0, reboot: 1, suspend: 2, crash: 3 } as const;
/**
 * The argument of SCHEDOP_shutdown. Xen's is {u32 reason}; previrt adds a second word, the exit
 * status a poweroff reports (previrt extension: the machine ends with it, as isa-debug-exit).
 */
export const SCHED_SHUTDOWN_SIZE = 8;

/** event_channel_op commands (event_channel.h EVTCHNOP_*). */
export const EvtchnOp = {
  /** {u16 remote_dom; u32 remote_port (at 4); u32 local_port (out, at 8)} */
  bind_interdomain: 0,
  bind_virq: 1,
  bind_pirq: 2,
  close: 3,
  send: 4,
  status: 5,
  /** {u16 dom (DOMID_SELF); u16 remote_dom; u32 port (out, at 4)} */
  alloc_unbound: 6,
  unmask: 9,
} as const;
/** Virtual interrupts (xen.h VIRQ_*). */
export const Virq = { TIMER: 0, DEBUG: 1, CONSOLE: 2 } as const;
export const NR_VIRQS = 24;
/** Event-channel ports a domain may have (previrt's limit; port 0 is never valid, as in Xen). */
export const NR_EVENT_CHANNELS = 64;

/** console_io commands (xen.h CONSOLEIO_*). */
export const ConsoleIo = { write: 0, read: 1 } as const;
/** Longest console_io write accepted in one call (previrt's limit). */
export const CONSOLEIO_MAX = 4096;

/** trap_info {u8 vector; u8 flags; u16 cs; u32 address} (arch-x86/xen.h). flags: DPL, bit 2 IF. */
export const TRAP_INFO_SIZE = 8;
/** Trap-table flag: mask events on entry, as an interrupt gate clears IF (Xen's TI_SET_IF). */
export const TI_MASK_EVENTS = 4;

/**
 * Selectors of the hypervisor's GDT, as Xen's FLAT_RING1_CS etc. modulo Xen's GDT placement
 * (xen-x86_32.h: 0xe019, 0xe021, 0xe02b, 0xe033): ring-1 and ring-3 flat segments.
 */
export const Selector = {
  HYPERVISOR_CS: 0x08,
  HYPERVISOR_DS: 0x10,
  RING1_CS: 0x19,
  RING1_DS: 0x21,
  RING3_CS: 0x2b,
  RING3_DS: 0x33,
} as const;

/**
 * The hypervisor's window in every address space: the last 4 MB (page-directory slot 1023). Its
 * page table maps the GDT and the machine-to-phys table read-only (CR0.WP is set, so ring 1
 * cannot write them either). The guest may not change this slot. The in-place VMM's window
 * (DESIGN.md decision 6) is the 60 MB below it.
 */
export const HYPERVISOR_VIRT_START = 0xffc00000;
export const HYPERVISOR_SLOT = HYPERVISOR_VIRT_START >>> 22;
/** Where the GDT is mapped (first page of the window). */
export const GDT_VIRT = HYPERVISOR_VIRT_START;
/** Where the machine-to-phys table is mapped (u32 per machine frame), read-only. */
export const MACH2PHYS_VIRT = HYPERVISOR_VIRT_START + 0x1000;
/** M2P value of a frame that belongs to no domain's pseudo-physical map. */
export const INVALID_P2M_ENTRY = 0xffffffff;

/**
 * start_info page layout (xen.h start_info_t, x86_32): the domain builder fills it in and passes
 * its virtual address in ESI.
 */
export const StartInfo = {
  magic: 0, // char[32]
  nr_pages: 32,
  shared_info: 36, // machine address
  flags: 40,
  store_mfn: 44,
  store_evtchn: 48,
  console_mfn: 52,
  console_evtchn: 56,
  pt_base: 60, // virtual address of the initial L2
  nr_pt_frames: 64,
  mfn_list: 68, // virtual address of the pseudo-physical to machine table
  mod_start: 72,
  mod_len: 76,
  cmd_line: 80, // char[1024]
} as const;
export const START_INFO_MAGIC = 'previrt-xen-1.0-x86_32';
export const MAX_GUEST_CMDLINE = 1024;

/**
 * shared_info page layout (xen.h shared_info, x86_32), vCPU 0 only: vcpu_info at 0 (64 bytes),
 * the pending and mask bitmaps at 2048 and 2176.
 */
export const SharedInfo = {
  upcall_pending: 0, // u8
  upcall_mask: 1, // u8
  pending_sel: 4, // u32: which words of evtchn_pending have bits
  cr2: 8, // arch_vcpu_info.cr2: the faulting address of the last #PF bounced
  time_version: 32, // vcpu_time_info
  tsc_timestamp: 40, // u64
  system_time: 48, // u64, ns since the domain was built
  tsc_to_system_mul: 56, // u32
  tsc_shift: 60, // i8
  evtchn_pending: 2048, // u32[32]
  evtchn_mask: 2176, // u32[32]
  wc_version: 2304,
  wc_sec: 2308,
  wc_nsec: 2312,
} as const;

/** The domU console ring page (io/console.h xencons_interface). */
export const ConsoleRing = {
  in: 0,
  inSize: 1024,
  out: 1024,
  outSize: 2048,
  in_cons: 3072,
  in_prod: 3076,
  out_cons: 3080,
  out_prod: 3084,
} as const;

/** Page-table entry bits (SDM Vol. 3A 4.3, Table 4-5 and 4-6). */
export const PTE_P = 0x1;
export const PTE_RW = 0x2;
export const PTE_US = 0x4;
export const PTE_A = 0x20;
export const PTE_D = 0x40;
export const PTE_PSE = 0x80;
export const PTE_PAT = 0x80;
/** Bits whose change forces full revalidation of an entry (reference: frame, P, RW, PSE). */
export const PTE_REVALIDATE = 0xfffff000 | PTE_P | PTE_RW | PTE_PSE;
