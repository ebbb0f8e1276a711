/*
 * The programs the kernel can run: the user ELFs linked into the image (build/programs.S
 * lists them between `programs_table` and `programs_table_end`) and any multiboot modules,
 * named as boot.c derived from their module string (first word, no directory, no ".elf").
 */
#include "defs.h"
#include "memlayout.h"

struct builtin {
  const char *name;
  const u8 *start, *end;
};
extern const struct builtin programs_table[], programs_table_end[];

#define MAX_PROGRAMS 32
static struct program progs[MAX_PROGRAMS];
static int nprogs;

static void add(const char *name, const u8 *image, u32 size) {
  if (nprogs == MAX_PROGRAMS) return;
  progs[nprogs].name = name;
  progs[nprogs].image = image;
  progs[nprogs].size = size;
  nprogs++;
}

void programs_init(const struct bootinfo *bi) {
  for (const struct builtin *b = programs_table; b < programs_table_end; b++)
    add(b->name, b->start, (u32)(b->end - b->start));
  for (u32 i = 0; i < bi->nmods; i++) {
    const struct module *m = &bi->mods[i];
    if (!m->name[0]) continue;
    add(m->name, P2V(m->start), m->end - m->start);
    kprintf("programs: module '%s' (%u bytes)\n", m->name, m->end - m->start);
  }
}

const struct program *program_find(const char *name) {
  /* Modules come last and win, so a module can replace a built-in program. */
  for (int i = nprogs - 1; i >= 0; i--)
    if (strcmp(progs[i].name, name) == 0) return &progs[i];
  return 0;
}

/* The names, one a line, into buf; returns the length (truncated to n). */
int programs_list(char *buf, int n) {
  int len = 0;
  for (int i = 0; i < nprogs; i++)
    len += snprintf(buf + len, n - len > 0 ? n - len : 0, "%s\n", progs[i].name);
  return len < n ? len : n;
}
