/* What the port's files offer each other (the shared kernel sees only defs.h's names). */
#ifndef L4_PARA_H
#define L4_PARA_H

#include "l4.h"
#include "types.h"

/* What the platform (src/platforms/l4Para.ts) leaves at guest-physical 0x1000 and passes on the
 * initial stack: the VM's memory, the wall clock, the device the resource monitor gives it and
 * the command line. */
#define L4_BOOTINFO_MAGIC 0x56503434u /* "44PV" */
struct l4_bootinfo {
  u32 magic;
  u32 ram_bytes;   /* guest-physical memory [0, ram_bytes), mapped one-to-one at KERNBASE */
  u32 rtc_seconds; /* the wall clock at the VM's start */
  u32 nic;         /* 1: the DP83820 below is the VM's */
  u32 nic_id;      /* its PCI vendor and device (configuration word 0x00) */
  u32 nic_class;   /* configuration word 0x08 */
  u32 nic_irq;     /* its interrupt line, given to the VM */
  u32 nic_mmio;    /* its register page, guest-physical (beyond RAM) */
  char cmdline[256];
};
extern struct l4_bootinfo l4_boot;

/* setup.c */
#define L4_KERNEL_PRIORITY 100 /* the VM's: the kernel, pager and receiver threads */
word l4_kernel_tid(void);
int l4_thread_create(word tid, word ip, word sp, word utcb);
u32 l4_ram_bytes(void);
void l4_request_pages(u32 gpa, int log2size);
void l4_print_raw(const char *s);
void l4_console_flush(void);
void l4_console_received(void);
void l4_pager_panic(u32 va, u32 eip, int write) __attribute__((noreturn));

/* time.c: the tick is the kernel's receive timeout */
int l4_tick_due(void);
word l4_tick_timeout(void);

/* task.c: a directory's L4 space and thread */
void l4_space_switch(unsigned long *pgdir);
void l4_space_free(unsigned long *pgdir);

/* netfront.c: the custom network driver (its IRQ line is a virtual one, not the resource
 * monitor's); receiver k is the kernel's thread number L4_NET_RECEIVER_BASE + k */
#define L4_NET_IRQ 10
#define L4_NET_RECEIVERS 4
#define L4_NET_RECEIVER_BASE 40
extern int netfront_up; /* the driver runs (a driver VM serves this VM) */
int netfront_irq(int irq);
void netfront_flush(void);
int netfront_message(word tag, word from);
/* Before each wait of the kernel thread: the driver's queued frames go. */
static inline void netfront_before_wait(void) {
  if (netfront_up) netfront_flush();
}

/* vm.c */
void l4_pager_main(void);
int l4_user_map(unsigned long *pgdir, u32 va, int write, word *item);

#endif
