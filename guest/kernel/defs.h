/* Functions each kernel subsystem offers the others, grouped by file. */
#ifndef GUEST_DEFS_H
#define GUEST_DEFS_H

#include "types.h"
#include <stdarg.h>

struct trapframe;
struct proc;
struct multiboot_info;

/* boot.c */
#define MAX_MODULES 8
struct module {
  u32 start, end; /* physical */
  char name[32];
};
struct bootinfo {
  char cmdline[256];
  u32 mem_kb;              /* memory above 1 MB, from mem_upper */
  u32 nmods;
  struct module mods[MAX_MODULES];
  u32 nranges;
  struct { u32 start, end; } ranges[32]; /* usable RAM, physical, page-aligned */
};
void boot_parse(u32 magic, u32 mbi_pa, struct bootinfo *bi);
const char *cmdline_get(const char *cmdline, const char *key, char *out, int outlen);

/* string.c */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
char *strlcpy_(char *d, const char *s, size_t n);

/* printf.c (formatting itself is lib/fmt.c) */
#include "fmt.h"
void kprintf(const char *fmt, ...);
void panic(const char *fmt, ...) __attribute__((noreturn));

/* uart.c: the 16550 on COM1 */
void uart_init(void);
void uart_putc(char c);
void uart_intr(void);

/* console.c: line discipline on top of the UART */
void console_write(const char *s, int n);
void console_rx(int c);
int console_read(char *dst, int n);
void console_inject(const char *s);

/* gdt.c */
void gdt_init(void);
void tss_set_kstack(u32 esp0);

/* trap.c, vectors in trapasm.S */
void idt_init(void);
void trap(struct trapframe *tf);
int irq_register(int irq, void (*handler)(void));
void irq_replace(int irq, void (*handler)(void));
extern u32 trap_vectors[];
void trapret(void);

/* pic.c: the two 8259s */
void pic_init(void);
void pic_enable(int irq);
void pic_eoi(int irq);
int pic_spurious(int irq);

/* timer.c: 8254 channel 0 */
#define HZ 1000 /* 1 ms ticks, as Linux 2.6 on the original test machine */
void timer_init(void);
void timer_intr(void);
u32 ticks_now(void);
void clock_init(u32 epoch);
u32 clock_seconds(void);
void *ticks_chan(void);

/* cmos.c */
u32 cmos_time(void);

/* pci.c */
struct pci_dev {
  u8 bus, dev, fn;
  u16 vendor, device;
  u8 class_code, subclass, irq_line;
};
void pci_init(void);
u32 pci_read32(int bus, int dev, int fn, int off);
void pci_write32(int bus, int dev, int fn, int off, u32 v);
const struct pci_dev *pci_find(u16 vendor, u16 device);
u32 pci_bar(const struct pci_dev *d, int n, u32 *size);
void pci_enable(const struct pci_dev *d);
int pci_count(void);

/* dp83820.c: the Ethernet NIC (absent on machines without one: the functions do nothing) */
struct dp83820_stats {
  u32 rx_frames, rx_bytes, rx_errors, tx_frames, interrupts;
};
void dp83820_init(void);
void dp83820_announce(void);
int dp83820_send(const void *frame, u32 len);
void dp83820_set_receiver(void (*receive)(const u8 *frame, u32 len));
void dp83820_log_frame(const u8 *frame, u32 len);
const u8 *dp83820_mac(void);
const struct dp83820_stats *dp83820_stats(void);
void dp83820_intr(void);
/* For the driver VM's translation module (bridge.c): promiscuous, zero-copy sends, their end. */
int dp83820_irq(void);
void dp83820_bridge_mode(void);
int dp83820_send_frags(const u32 *phys, const u32 *len, int n);
int dp83820_tx_reap(void);

/* bridge.c: the driver VM's translation module (does nothing without the VMM's client link) */
void bridge_init(void);
void bridge_report(void);

/* net.c, tcp.c: the network stack on top of the NIC (net.h has its insides) */
void net_init(void);
void net_tick(u32 now);
void net_report(void);
int tcp_recv_wait(u32 n);
int net_send_raw(u8 *frame, u32 len);
void tcp_recv_copy(void *dst, u32 n);

/* kalloc.c: physical pages */
void kalloc_add(const struct bootinfo *bi, u32 lo, u32 hi);
void *kalloc(void);
void kfree(void *va);
u32 kalloc_free_pages(void);

/* vm.c */
typedef unsigned long pte_t; /* the type afterburn.h's helpers take */
typedef unsigned long pde_t;
void kvm_init(const struct bootinfo *bi);
void kvm_switch(void);
pde_t *kvm_pgdir(void);
pte_t *vm_walk(pde_t *pgdir, u32 va, int alloc);
int vm_map(pde_t *pgdir, u32 va, u32 pa, u32 perm);
void *ioremap(u32 pa, u32 len);
pde_t *uvm_create(void);
void uvm_free(pde_t *pgdir);
void uvm_switch(struct proc *p);
int uvm_copyout(pde_t *pgdir, u32 va, const void *src, u32 len, u32 perm);
int uvm_demand_zero(pde_t *pgdir, u32 va);
int uvm_check(pde_t *pgdir, u32 va, u32 len, int write);
int uvm_strcpyin(pde_t *pgdir, char *dst, u32 va, int max);

/* programs.c, elf.c */
struct program {
  const char *name;
  const u8 *image;
  u32 size;
};
void programs_init(const struct bootinfo *bi);
const struct program *program_find(const char *name);
int programs_list(char *buf, int n);
int elf_load(pde_t *pgdir, const u8 *image, u32 size, u32 *entry);

/* proc.c */
void proc_init(void);
int proc_spawn(const char *name, char *const argv[], int argc, struct proc *parent);
void scheduler(void) __attribute__((noreturn));
void yield(void);
void sleep_on(void *chan);
void wakeup(void *chan);
void proc_exit(int status) __attribute__((noreturn));
int proc_wait(int *status);
int proc_kill(int pid);
struct proc *myproc(void);
void proc_set_init_hook(void (*hook)(int status));

/* syscall.c */
void syscall(struct trapframe *tf);

/* selftest.c */
int kernel_selftest(void);

/* main.c */
void shutdown(int code) __attribute__((noreturn));

#endif
