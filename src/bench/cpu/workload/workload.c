/*
 * The CPU benchmark workload (issue 2, `npm run bench:cpu`): compiled C with paging on, doing
 * what kernels and servers spend their time on — checksums, copies, sorting, function calls.
 * The same multiboot ELF runs on previrt and on v86, so the instruction stream between the two
 * serial markers is identical on both; previrt counts its instructions exactly.
 *
 * Output on COM1: "BEGIN\n" when the measured part starts, "END <checksum>\n" when it ends.
 * Then it halts with interrupts off; the runners stop at the END marker.
 */
typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;

#ifndef ROUNDS
#define ROUNDS 4
#endif

#define COM1 0x3F8
#define BUF_BYTES (1u << 20)
#define SORT_N 32768u
#define IDENTITY_MB 32u

static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port)
{
	u8 v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static void putc(char c)
{
	while ((inb(COM1 + 5) & 0x20) == 0) /* LSR.THRE: transmitter ready */
		;
	outb(COM1, (u8)c);
}

static void puts(const char *s)
{
	while (*s)
		putc(*s++);
}

static void puthex(u32 v)
{
	for (int i = 28; i >= 0; i -= 4)
		putc("0123456789abcdef"[(v >> i) & 15]);
}

/* Identity-mapped 4 KB pages for the first IDENTITY_MB megabytes (paging on, as in a kernel). */
static u32 page_directory[1024] __attribute__((aligned(4096)));
static u32 page_tables[IDENTITY_MB / 4][1024] __attribute__((aligned(4096)));

static void enable_paging(void)
{
	for (u32 t = 0; t < IDENTITY_MB / 4; t++) {
		for (u32 i = 0; i < 1024; i++)
			page_tables[t][i] = ((t * 1024 + i) << 12) | 3; /* present, writable */
		page_directory[t] = (u32)page_tables[t] | 3;
	}
	__asm__ volatile("movl %0, %%cr3" : : "r"(page_directory));
	u32 cr0;
	__asm__ volatile("movl %%cr0, %0" : "=r"(cr0));
	__asm__ volatile("movl %0, %%cr0" : : "r"(cr0 | 0x80000000u));
}

static u8 src[BUF_BYTES], dst[BUF_BYTES];
static u32 keys[SORT_N];

static u32 lcg_state = 12345;
static u32 lcg(void)
{
	lcg_state = lcg_state * 1103515245u + 12345u;
	return lcg_state;
}

/* FNV-1a over a buffer, byte at a time (branchy, load-heavy). */
static u32 fnv1a(const u8 *p, u32 n)
{
	u32 h = 2166136261u;
	for (u32 i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

/* Internet checksum over 16-bit words, as a network stack computes it. */
static u32 inet_sum(const u8 *p, u32 n)
{
	u32 sum = 0;
	const u16 *w = (const u16 *)p;
	for (u32 i = 0; i < n / 2; i++)
		sum += w[i];
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return sum;
}

static void copy_loop(u8 *d, const u8 *s, u32 n)
{
	u32 *dw = (u32 *)d;
	const u32 *sw = (const u32 *)s;
	for (u32 i = 0; i < n / 4; i++)
		dw[i] = sw[i];
}

static void copy_rep(u8 *d, const u8 *s, u32 n)
{
	u32 words = n / 4;
	__asm__ volatile("rep movsl" : "+D"(d), "+S"(s), "+c"(words) : : "memory");
}

static void quicksort(u32 *a, int lo, int hi)
{
	while (lo < hi) {
		u32 pivot = a[(lo + hi) / 2];
		int i = lo, j = hi;
		while (i <= j) {
			while (a[i] < pivot)
				i++;
			while (a[j] > pivot)
				j--;
			if (i <= j) {
				u32 t = a[i];
				a[i] = a[j];
				a[j] = t;
				i++;
				j--;
			}
		}
		/* Recurse into the smaller half, loop on the larger: bounded stack depth. */
		if (j - lo < hi - i) {
			quicksort(a, lo, j);
			lo = i;
		} else {
			quicksort(a, i, hi);
			hi = j;
		}
	}
}

static u32 __attribute__((noinline)) fib(u32 n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

void workload_main(void)
{
	enable_paging();
	for (u32 i = 0; i < BUF_BYTES; i++)
		src[i] = (u8)lcg();
	puts("BEGIN\n");
	u32 check = 0;
	for (u32 round = 0; round < ROUNDS; round++) {
		src[round] ^= (u8)round;
		check ^= fnv1a(src, BUF_BYTES);
		check += inet_sum(src, BUF_BYTES);
		copy_loop(dst, src, BUF_BYTES);
		check ^= fnv1a(dst, 4096);
		copy_rep(src, dst, BUF_BYTES);
		for (u32 i = 0; i < SORT_N; i++)
			keys[i] = lcg();
		quicksort(keys, 0, SORT_N - 1);
		for (u32 i = 1; i < SORT_N; i++)
			if (keys[i - 1] > keys[i])
				check = 0xdeadbeef; /* the sort is wrong: the checksum will say so */
		check += keys[SORT_N / 2];
		check += fib(22);
	}
	puts("END ");
	puthex(check);
	putc('\n');
	/* Then boot.S halts with interrupts off. No isa-debug-exit write by default: v86 treats
	 * port 0xF4 as its own test-exit port and throws. Tests build with -DEXIT_PORT for QEMU. */
#ifdef EXIT_PORT
	outb(EXIT_PORT, 0);
#endif
}
