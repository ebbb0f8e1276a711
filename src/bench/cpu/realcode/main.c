/*
 * The "real code" CPU benchmark: library code of Debian's linux-source-6.1, compiled unchanged
 * for a freestanding multiboot kernel (src/bench/cpu/build.ts extracts it from the tarball):
 * LZ4 compression and decompression (lib/lz4), heapsort through function pointers (lib/sort.c)
 * and SHA-256 (lib/crypto/sha256.c). Nobody tuned that code for an emulator; what they run is
 * what compilers make of real C: byte and 16-bit loads, unaligned accesses, hashing, calls
 * through pointers, 64-bit counters on a 32-bit CPU. This file is only the glue: the C library
 * calls the kernel code needs, the input data, the rounds, and the markers.
 *
 * Output on COM1 as the other workload's: "BEGIN\n", then "END <checksum>\n" (the checksum
 * covers every result, and a mismatch of the LZ4 round trip prints "END lz4-mismatch").
 */
#include <linux/types.h>
#include <linux/string.h>
#include <linux/lz4.h>
#include <linux/sort.h>
#include <crypto/sha2.h>

#define COM1 0x3f8

#ifndef ROUNDS
#define ROUNDS 4
#endif

static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }

/* --- the C library calls of the kernel code (gcc may emit memcpy and memset too) --- */

void *memcpy(void *d, const void *s, size_t n)
{
	u8 *dp = d;
	const u8 *sp = s;
	while (n--)
		*dp++ = *sp++;
	return d;
}

void *memmove(void *d, const void *s, size_t n)
{
	u8 *dp = d;
	const u8 *sp = s;
	if (dp < sp) {
		while (n--)
			*dp++ = *sp++;
	} else {
		while (n--)
			dp[n] = sp[n];
	}
	return d;
}

void *memset(void *d, int c, size_t n)
{
	u8 *dp = d;
	while (n--)
		*dp++ = (u8)c;
	return d;
}

static void putc(char c)
{
	outb(COM1, (u8)c);
}

static void puts(const char *s)
{
	while (*s)
		putc(*s++);
}

static void puthex(u32 v)
{
	for (int k = 28; k >= 0; k -= 4)
		putc("0123456789abcdef"[(v >> k) & 15]);
}

/* --- the input: text-like data (words from a small vocabulary), so LZ4 finds matches --- */

#define DATA_SIZE (64 * 1024)
#define SORT_COUNT 8192

static u32 seed = 12345;
static u32 lcg(void)
{
	seed = seed * 1103515245 + 12345;
	return seed >> 8;
}

static const char *const words[] = {
	"the ", "kernel ", "maps ", "a ", "page ", "of ", "memory ", "and ", "returns ", "to ",
	"user ", "space ", "with ", "interrupts ", "enabled ", "while ", "the ", "device ",
	"raises ", "its ", "line\n", "packet ", "buffer ", "queue ",
};

static u8 data[DATA_SIZE];
static char packed[LZ4_COMPRESSBOUND(DATA_SIZE)];
static u8 unpacked[DATA_SIZE];
static u8 wrkmem[LZ4_MEM_COMPRESS] __attribute__((aligned(8)));

struct record {
	u32 key;
	u16 tag;
	u8 flags[6];
};
static struct record records[SORT_COUNT];
static u32 keys[SORT_COUNT];

static void make_data(void)
{
	u32 at = 0;
	while (at < DATA_SIZE) {
		const char *w = words[lcg() % (sizeof(words) / sizeof(words[0]))];
		while (*w && at < DATA_SIZE)
			data[at++] = (u8)*w++;
		if (lcg() % 7 == 0 && at < DATA_SIZE)
			data[at++] = (u8)('0' + lcg() % 10);
	}
}

static int cmp_u32(const void *a, const void *b)
{
	u32 x = *(const u32 *)a, y = *(const u32 *)b;
	return x < y ? -1 : x > y;
}

static int cmp_record(const void *a, const void *b)
{
	const struct record *x = a, *y = b;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return (int)x->tag - (int)y->tag;
}

static int memcmp_bytes(const u8 *a, const u8 *b, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (a[k] != b[k])
			return a[k] < b[k] ? -1 : 1;
	return 0;
}

static u32 get_le32(const u8 *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (u32)p[3] << 24;
}

static u32 mix(u32 h, u32 v)
{
	return (h ^ v) * 16777619u;
}

/* Called by ../workload/boot.S (the same multiboot entry as the other workload). */
void workload_main(void)
{
	u32 check = 2166136261u;
	u8 digest[SHA256_DIGEST_SIZE];

	make_data();
	puts("BEGIN\n");
	for (int round = 0; round < ROUNDS; round++) {
		/* LZ4: compress, decompress, compare. */
		int n = LZ4_compress_default((const char *)data, packed, DATA_SIZE, sizeof(packed), wrkmem);
		int m = LZ4_decompress_safe(packed, (char *)unpacked, n, DATA_SIZE);
		if (m != DATA_SIZE || memcmp_bytes(unpacked, data, DATA_SIZE) != 0) {
			puts("END lz4-mismatch\n");
			return;
		}
		check = mix(check, (u32)n);

		/* SHA-256 of the data. */
		sha256(data, DATA_SIZE, digest);
		for (int k = 0; k < SHA256_DIGEST_SIZE; k += 4)
			check = mix(check, get_le32(digest + k));

		/* Heapsort: 32-bit keys (the library's word swap) and 12-byte records. */
		for (int k = 0; k < SORT_COUNT; k++) {
			keys[k] = lcg();
			records[k].key = lcg() & 0xfff;
			records[k].tag = (u16)k;
		}
		sort(keys, SORT_COUNT, sizeof(keys[0]), cmp_u32, NULL);
		sort(records, SORT_COUNT, sizeof(records[0]), cmp_record, NULL);
		for (int k = 0; k < SORT_COUNT; k += 97)
			check = mix(mix(check, keys[k]), records[k].key << 16 | records[k].tag);

		/* The next round works on changed data. */
		data[lcg() % DATA_SIZE] ^= (u8)lcg();
	}
	puts("END ");
	puthex(check);
	putc('\n');
#ifdef EXIT_PORT
	outb(EXIT_PORT, 0);
#endif
}
