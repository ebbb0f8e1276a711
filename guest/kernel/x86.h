/*
 * The privileged and I/O instructions the kernel uses, one inline function each. These are the
 * sensitive instructions the afterburner finds and pads (reference/afterburner.md); keeping them
 * in ordinary inline functions means they appear in ordinary code paths all over the kernel.
 */
#ifndef GUEST_X86_H
#define GUEST_X86_H

#include "types.h"

static inline u8 inb(u16 port) {
  u8 v;
  __asm__ __volatile__("inb %1,%0" : "=a"(v) : "d"(port));
  return v;
}
static inline u16 inw(u16 port) {
  u16 v;
  __asm__ __volatile__("inw %1,%0" : "=a"(v) : "d"(port));
  return v;
}
static inline u32 inl(u16 port) {
  u32 v;
  __asm__ __volatile__("inl %1,%0" : "=a"(v) : "d"(port));
  return v;
}
static inline void outb(u16 port, u8 v) { __asm__ __volatile__("outb %0,%1" : : "a"(v), "d"(port)); }
static inline void outw(u16 port, u16 v) { __asm__ __volatile__("outw %0,%1" : : "a"(v), "d"(port)); }
static inline void outl(u16 port, u32 v) { __asm__ __volatile__("outl %0,%1" : : "a"(v), "d"(port)); }

static inline void cli(void) { __asm__ __volatile__("cli" : : : "memory"); }
static inline void sti(void) { __asm__ __volatile__("sti" : : : "memory"); }
static inline void hlt(void) { __asm__ __volatile__("hlt" : : : "memory"); }
/* sti takes effect after the next instruction, so no interrupt can slip in between. */
static inline void sti_hlt(void) { __asm__ __volatile__("sti; hlt" : : : "memory"); }

#define EFLAGS_IF 0x200u

static inline u32 read_eflags(void) {
  u32 f;
  __asm__ __volatile__("pushfl; popl %0" : "=r"(f));
  return f;
}
/* Disable interrupts and return the previous EFLAGS, for code callable with IF on or off. */
static inline u32 irq_save(void) {
  u32 f;
  __asm__ __volatile__("pushfl; popl %0; cli" : "=r"(f) : : "memory");
  return f;
}
static inline void irq_restore(u32 f) {
  __asm__ __volatile__("pushl %0; popfl" : : "r"(f) : "memory", "cc");
}

struct dtr {
  u16 limit;
  u32 base;
} __attribute__((packed));

static inline void lgdt(void *base, u16 size) {
  struct dtr d = {(u16)(size - 1), (u32)base};
  __asm__ __volatile__("lgdt %0" : : "m"(d));
}
static inline void lidt(void *base, u16 size) {
  struct dtr d = {(u16)(size - 1), (u32)base};
  __asm__ __volatile__("lidt %0" : : "m"(d));
}
static inline struct dtr sgdt(void) {
  struct dtr d;
  __asm__ __volatile__("sgdt %0" : "=m"(d));
  return d;
}
static inline struct dtr sidt(void) {
  struct dtr d;
  __asm__ __volatile__("sidt %0" : "=m"(d));
  return d;
}
static inline void ltr(u16 sel) { __asm__ __volatile__("ltr %0" : : "r"(sel)); }
static inline u16 str(void) {
  u16 sel;
  __asm__ __volatile__("str %0" : "=r"(sel));
  return sel;
}

static inline u32 rcr0(void) {
  u32 v;
  __asm__ __volatile__("movl %%cr0,%0" : "=r"(v));
  return v;
}
static inline void lcr0(u32 v) { __asm__ __volatile__("movl %0,%%cr0" : : "r"(v) : "memory"); }
static inline u32 rcr2(void) {
  u32 v;
  __asm__ __volatile__("movl %%cr2,%0" : "=r"(v));
  return v;
}
static inline u32 rcr3(void) {
  u32 v;
  __asm__ __volatile__("movl %%cr3,%0" : "=r"(v));
  return v;
}
static inline void lcr3(u32 pa) { __asm__ __volatile__("movl %0,%%cr3" : : "r"(pa) : "memory"); }
static inline void invlpg(u32 va) { __asm__ __volatile__("invlpg (%0)" : : "r"(va) : "memory"); }

#endif
