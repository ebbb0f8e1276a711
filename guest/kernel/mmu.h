/*
 * IA-32 paging and segmentation constants (Intel SDM vol. 3A, ch. 3 "Protected-mode memory
 * management" and ch. 4 "Paging", 32-bit paging without PSE: two levels of 4 KB tables).
 */
#ifndef GUEST_MMU_H
#define GUEST_MMU_H

#define PAGE_SIZE 4096u
#define PAGE_ROUNDUP(a) (((a) + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1))
#define PAGE_ROUNDDOWN(a) ((a) & ~(PAGE_SIZE - 1))

#define PDX(va) (((u32)(va) >> 22) & 0x3ff) /* page-directory index */
#define PTX(va) (((u32)(va) >> 12) & 0x3ff) /* page-table index */
#define PTE_ADDR(e) ((u32)(e) & ~0xfffu)

/* Page-table entry bits (SDM vol. 3A, table 4-6). */
#define PTE_P 0x001   /* present */
#define PTE_W 0x002   /* writable */
#define PTE_U 0x004   /* user */
#define PTE_PWT 0x008 /* write-through */
#define PTE_PCD 0x010 /* cache disabled: device memory */
#define PTE_A 0x020   /* accessed */
#define PTE_D 0x040   /* dirty */

#define CR0_PE 0x00000001u
#define CR0_MP 0x00000002u
#define CR0_EM 0x00000004u
#define CR0_NE 0x00000020u
#define CR0_WP 0x00010000u /* ring 0 honours read-only pages too */
#define CR0_PG 0x80000000u

/* Page-fault error code bits (SDM vol. 3A, 4.7). */
#define PF_P 0x1 /* 0: page not present, 1: protection violation */
#define PF_W 0x2 /* the access was a write */
#define PF_U 0x4 /* the access came from ring 3 */

/* GDT slots and selectors. */
#define SEG_KCODE 1
#define SEG_KDATA 2
#define SEG_UCODE 3
#define SEG_UDATA 4
#define SEG_TSS 5
#define NSEGS 6
#define KCODE_SEL (SEG_KCODE << 3)
#define KDATA_SEL (SEG_KDATA << 3)
#define UCODE_SEL ((SEG_UCODE << 3) | 3)
#define UDATA_SEL ((SEG_UDATA << 3) | 3)
#define TSS_SEL (SEG_TSS << 3)

#endif
