/*
 * The machine tests' guest. The multiboot command line picks a probe:
 *   hello        print a line and exit through isa-debug-exit with 42
 *   timer N      program the PIT for N Hz, count IRQ 0 for 100 ms of RTC-independent time
 *                (100 ms = N/10 ticks expected), print the count, exit 0
 *   oneshot N    program PIT channel 0 for a one-shot count of N (mode 0) and spin, without
 *                HLT, until IRQ 0; print the TSC cycles it took, exit 0
 *   echo         echo serial input (interrupt driven, IRQ 4) until a '.' arrives, exit 0
 *   halt         cli; hlt (the machine reports a guest that can never wake)
 *   triple       load an empty IDT and raise #UD (triple fault)
 *   reset        pulse the reset line through the keyboard controller
 */
typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;

static inline void outb(u16 p, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(p)); }
static inline u8 inb(u16 p) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(p)); return v; }

static void putc(char c) { while (!(inb(0x3fd) & 0x20)) ; outb(0x3f8, (u8)c); }
static void puts(const char *s) { while (*s) putc(*s++); }
static void putu(u32 v) { char b[12]; int n = 0; do { b[n++] = (char)('0' + v % 10); v /= 10; } while (v); while (n) putc(b[--n]); }
static void exit_with(u8 v) { outb(0xf4, v); }

struct idt_entry { u16 lo, sel; u8 zero, type; u16 hi; } __attribute__((packed));
static struct idt_entry idt[256];
static struct { u16 limit; u32 base; } __attribute__((packed)) idtr;
extern void irq0_entry(void), irq4_entry(void);

static volatile u32 ticks, tick_lo;
static volatile int done;
void irq0(void) { u32 hi; __asm__ volatile("rdtsc" : "=a"(tick_lo), "=d"(hi)); ticks++; outb(0x20, 0x20); }
void irq4(void)
{
	while (inb(0x3fd) & 1) {
		char c = (char)inb(0x3f8);
		if (c == '.') done = 1; else putc(c);
	}
	outb(0x20, 0x20);
}

/* Multiboot leaves GDTR undefined: our own flat code (0x08) and data (0x10) segments. */
static unsigned long long gdt[3] = { 0, 0x00cf9a000000ffffULL, 0x00cf92000000ffffULL };
static struct { u16 limit; u32 base; } __attribute__((packed)) gdtr = { sizeof gdt - 1, 0 };

static void gdt_init(void)
{
	gdtr.base = (u32)gdt;
	__asm__ volatile("lgdt %0\n\tljmp $0x08, $1f\n1:\n\tmovw $0x10, %%ax\n\tmovw %%ax, %%ds\n\t"
			 "movw %%ax, %%es\n\tmovw %%ax, %%ss" : : "m"(gdtr) : "eax");
}

static void gate(int v, void (*f)(void))
{
	u32 a = (u32)f;
	idt[v] = (struct idt_entry){ (u16)a, 0x08, 0, 0x8e, (u16)(a >> 16) };
}

static void pic_init(u8 mask)
{
	outb(0x20, 0x11); outb(0x21, 0x20); outb(0x21, 4); outb(0x21, 1);
	outb(0xa0, 0x11); outb(0xa1, 0x28); outb(0xa1, 2); outb(0xa1, 1);
	outb(0x21, mask); outb(0xa1, 0xff);
}

static int starts(const char *s, const char *p) { while (*p) if (*s++ != *p++) return 0; return 1; }
static u32 number(const char *s) { u32 v = 0; while (*s >= '0' && *s <= '9') v = v * 10 + (u32)(*s++ - '0'); return v; }

void main(u32 magic, u32 *info)
{
	const char *cmd = (const char *)info[4];
	while (*cmd && *cmd != ' ') cmd++;	/* skip the kernel's own name */
	while (*cmd == ' ') cmd++;
	if (magic != 0x2badb002) { puts("bad magic\n"); exit_with(1); }
	gdt_init();
	idtr.limit = sizeof idt - 1;
	idtr.base = (u32)idt;
	gate(0x20, irq0_entry);
	gate(0x24, irq4_entry);
	__asm__ volatile("lidt %0" : : "m"(idtr));
	if (starts(cmd, "hello")) {
		puts("hello from the machine test\n");
		exit_with(42);
	} else if (starts(cmd, "timer")) {
		u32 hz = number(cmd + 6), divisor = 1193182 / hz;
		outb(0x43, 0x34); outb(0x40, (u8)divisor); outb(0x40, (u8)(divisor >> 8));
		pic_init(0xfe);
		/* Count ticks for 100 ms measured by the PIT itself through channel 2? No: the RTC
		 * would be too coarse, so wait for N/10 ticks and report how long it took in TSC. */
		u32 lo0, hi0, lo1, hi1;
		__asm__ volatile("sti");
		__asm__ volatile("rdtsc" : "=a"(lo0), "=d"(hi0));
		while (ticks < hz / 10) __asm__ volatile("hlt");
		__asm__ volatile("rdtsc" : "=a"(lo1), "=d"(hi1));
		__asm__ volatile("cli");
		puts("ticks "); putu(ticks); puts(" tsc-ms "); putu((lo1 - lo0) / 2800000); putc('\n');
		exit_with(0);
	} else if (starts(cmd, "oneshot")) {
		u32 count = number(cmd + 8), lo0, hi0;
		pic_init(0xfe);
		__asm__ volatile("sti");
		__asm__ volatile("rdtsc" : "=a"(lo0), "=d"(hi0));
		outb(0x43, 0x30); outb(0x40, (u8)count); outb(0x40, (u8)(count >> 8));
		while (!ticks) ;	/* spin: the interrupt must come on time without a HLT */
		__asm__ volatile("cli");
		puts("oneshot cycles "); putu(tick_lo - lo0); putc('\n');
		exit_with(0);
	} else if (starts(cmd, "echo")) {
		outb(0x3fb, 0x80); outb(0x3f8, 1); outb(0x3f9, 0); outb(0x3fb, 3);
		outb(0x3f9, 1);		/* IER: received data available */
		pic_init(0xef);
		__asm__ volatile("sti");
		while (!done) __asm__ volatile("hlt");
		putc('\n');
		exit_with(0);
	} else if (starts(cmd, "halt")) {
		__asm__ volatile("cli; hlt");
	} else if (starts(cmd, "triple")) {
		idtr.limit = 0;
		__asm__ volatile("lidt %0; ud2" : : "m"(idtr));
	} else if (starts(cmd, "reset")) {
		outb(0x64, 0xfe);
		for (;;) ;
	}
	puts("unknown probe\n");
	exit_with(1);
}
