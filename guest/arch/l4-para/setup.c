/*
 * The start of day on L4, before the shared start-up (kernel/main.c) runs, and the pieces of the
 * PC platform that become requests to the resource monitor (its protocol:
 * src/hypervisor/l4/README.md): the console, the end of a run, interrupt lines. The resource
 * monitor started this thread, the VM's main thread, at the image's entry with the boot
 * information on its stack and itself as the pager. l4_start maps all of the VM's memory at
 * KERNBASE, starts the pager thread and makes it this thread's pager (vm.c), and describes the
 * memory as a multiboot memory map, so that boot.c and the page allocator work unchanged.
 */
#include "defs.h"
#include "trap.h"
#include "l4para.h"
#include "memlayout.h"
#include "mmu.h"
#include "multiboot.h"
#include "x86.h"

struct l4_bootinfo l4_boot;
static word kernel_tid, pager_tid;
static struct multiboot_info mbi;
static struct multiboot_mmap mmap;

#define PAGER_STACK 8192
static u8 pager_stack[PAGER_STACK] __attribute__((aligned(16)));

word l4_kernel_tid(void) { return kernel_tid; }
u32 l4_ram_bytes(void) { return l4_boot.ram_bytes; }

word rm_call(word label, int n, const word *w) {
  for (int i = 0; i < n; i++) L4_MR(i + 1) = w[i];
  L4_MR(0) = L4_TAG(label, n, 0);
  l4_ipc(L4_ROOT, L4_ROOT, L4_TIMEOUTS(L4_NEVER, L4_NEVER), 0);
  return L4_MR(1);
}

/* Guest-physical [gpa, gpa + 2^log2size) at KERNBASE + gpa, into this thread's space (its
 * acceptor takes mappings anywhere: the whole address space). */
void l4_request_pages(u32 gpa, int log2size) {
  l4_utcb()[U_BR(0) / 4] = L4_FPAGE(0, 1, 0);
  word w[1] = {L4_FPAGE(gpa, log2size, L4_RWX)};
  rm_call(RM_REQUEST_PAGES, 1, w);
}

static word thread_control(word dest, word space, word scheduler, word pager, word utcb) {
  word w[5] = {dest, space, scheduler, pager, utcb};
  return rm_call(RM_THREAD_CONTROL, 5, w);
}

/* A thread in this space, started at ip on the stack sp by us (its first pager), then paged by
 * the resource monitor, as the kernel's own memory is; 0 if refused. */
int l4_thread_create(word tid, word ip, word sp, word utcb) {
  return thread_control(tid, kernel_tid, kernel_tid, kernel_tid, utcb) == 1 &&
         (L4_MR(0) = L4_TAG(0, 2, 0), L4_MR(1) = ip, L4_MR(2) = sp,
          !(l4_ipc(tid, L4_NILTHREAD, L4_TIMEOUTS(L4_NEVER, 0), 0) & L4_TAG_E)) &&
         thread_control(tid, tid, L4_NILTHREAD, L4_ROOT, 0xffffffffu) == 1;
}

/* Called by entry.S on the boot stack; returns the multiboot information for kmain. */
u32 l4_start(const struct l4_bootinfo *bi) {
  l4_boot = *bi;
  l4_boot.cmdline[sizeof l4_boot.cmdline - 1] = 0;
  kernel_tid = l4_myself();
  if (l4_boot.magic != L4_BOOTINFO_MAGIC) {
    l4_print_raw("l4-para: no boot information from the platform\n");
    shutdown(2);
  }
  /* All of the VM's memory, 64 MB per request (the resource monitor's 16 map items of 4 MB). */
  for (u32 gpa = 0; gpa < l4_boot.ram_bytes; gpa += 0x4000000) l4_request_pages(gpa, 26);

  /* The pager thread: in this space, started by us (its first pager), then paged by the
   * resource monitor; it pages this thread from now on. */
  pager_tid = L4_GLOBAL(L4_THREAD_NO(kernel_tid) + 1);
  if (!l4_thread_create(pager_tid, (word)l4_pager_main, (word)(pager_stack + PAGER_STACK),
                        L4_UTCB_AREA + L4_UTCB_SIZE) ||
      thread_control(kernel_tid, kernel_tid, L4_NILTHREAD, pager_tid, 0xffffffffu) != 1) {
    l4_print_raw("l4-para: the resource monitor refused the pager thread\n");
    shutdown(2);
  }

  mmap.size = sizeof mmap - 4;
  mmap.addr = 0x100000;
  mmap.len = l4_boot.ram_bytes - 0x100000;
  mmap.type = 1;
  mbi.flags = MB_INFO_MEMORY | MB_INFO_CMDLINE | MB_INFO_MMAP;
  mbi.mem_upper = (l4_boot.ram_bytes >> 10) - 1024;
  mbi.cmdline = V2P(l4_boot.cmdline);
  mbi.mmap_addr = V2P(&mmap);
  mbi.mmap_length = sizeof mmap;
  return V2P(&mbi);
}

/* ---- the console: the resource monitor's console service and its console input ---- */

static char out[240]; /* the most one request carries: 60 words */
static u32 nout;

static void console_request(const char *s, u32 n) {
  for (u32 i = 0; i < (n + 3) / 4; i++) {
    word v = 0;
    for (u32 b = 0; b < 4 && 4 * i + b < n; b++) v |= (word)(u8)s[4 * i + b] << (8 * b);
    L4_MR(2 + i) = v;
  }
  L4_MR(1) = n;
  L4_MR(0) = L4_TAG(RM_CONSOLE, 1 + (n + 3) / 4, 0);
  l4_ipc(L4_ROOT, L4_ROOT, L4_TIMEOUTS(L4_NEVER, L4_NEVER), 0);
}

void l4_console_flush(void) {
  if (nout) console_request(out, nout);
  nout = 0;
}

void uart_init(void) {}

/* Collected to the end of a line, as xencons and L4Ka::Linux's console do. */
void uart_putc(char c) {
  out[nout++] = c;
  if (c == '\n' || nout == sizeof out) l4_console_flush();
}

/* Input: the console input thread's last message (task.c takes it as IRQ 4), for the line
 * discipline, as the PC's uart_intr reads the 16550's receive buffer. */
static u8 in[240];
static u32 nin;

void l4_console_received(void) {
  nin = L4_MR(1) <= sizeof in ? L4_MR(1) : sizeof in;
  for (u32 i = 0; i < nin; i++) in[i] = (u8)(L4_MR(2 + i / 4) >> (8 * (i % 4)));
}

void uart_intr(void) {
  for (u32 i = 0; i < nin; i++) console_rx(in[i]);
  nin = 0;
}

/* For the pager thread, which must not touch the kernel thread's buffer. */
void l4_print_raw(const char *s) {
  u32 n = strlen(s);
  while (n) {
    u32 k = n > sizeof out ? sizeof out : n;
    console_request(s, k);
    s += k, n -= k;
  }
}

void l4_pager_panic(u32 va, u32 eip, int write) {
  char line[128];
  snprintf(line, sizeof line, "panic: page fault in the kernel at eip %x, address %x (%s)\n", eip,
           va, write ? "write" : "read");
  l4_print_raw(line);
  for (;;) {
    L4_MR(0) = L4_TAG(RM_EXIT, 1, 0);
    L4_MR(1) = 1;
    l4_ipc(L4_ROOT, L4_NILTHREAD, L4_TIMEOUTS(L4_NEVER, 0), 0);
  }
}

/* The end of a run: the resource monitor's exit, whose status becomes the run's exit status as
 * isa-debug-exit's does on the PC. */
void shutdown(int code) {
  kprintf("kernel: shutdown, exit code %d\n", code);
  cli();
  l4_console_flush();
  for (;;) {
    L4_MR(0) = L4_TAG(RM_EXIT, 1, 0);
    L4_MR(1) = (word)code & 0xff;
    l4_ipc(L4_ROOT, L4_NILTHREAD, L4_TIMEOUTS(L4_NEVER, 0), 0);
  }
}

/* ---- what the PC's gdt.c, pic.c and cmos.c did ---- */

/* The microkernel's GDT, no TSS: a process's traps come as messages, not onto a stack. */
void gdt_init(void) {}
void tss_set_kstack(u32 esp0) { (void)esp0; }

/* Interrupt lines: the tick is the kernel's receive timeout (time.c); the console's line asks the
 * resource monitor for the console's input; any other line is a device's, whose interrupt
 * thread the resource monitor associates with the kernel thread. Their messages arrive in
 * task.c's waits. */
void pic_init(void) {}

void pic_enable(int irq) {
  if (irq == IRQ_TIMER || netfront_irq(irq)) return;
  if (irq == IRQ_COM1) {
    word w[1] = {kernel_tid};
    if (rm_call(RM_CONSOLE_INPUT, 1, w) != 1) kprintf("l4-para: no console input (error %u)\n", L4_MR(2));
    return;
  }
  word w[2] = {(word)irq, kernel_tid};
  if (rm_call(RM_ASSOCIATE_IRQ, 2, w) != 1) kprintf("l4-para: interrupt line %d refused\n", irq);
}

/* The end of an interrupt: a message to its interrupt thread unmasks the line. */
void pic_eoi(int irq) {
  if (irq == IRQ_TIMER || irq == IRQ_COM1 || netfront_irq(irq)) return;
  L4_MR(0) = L4_TAG(0, 0, 0);
  l4_ipc(L4_IRQ(irq), L4_NILTHREAD, L4_TIMEOUTS(L4_ZERO, 0), 0);
}

int pic_spurious(int irq) {
  (void)irq;
  return 0;
}

u32 cmos_time(void) { return l4_boot.rtc_seconds; }
