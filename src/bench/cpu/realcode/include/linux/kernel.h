/* Stand-in for <linux/kernel.h>: the module and export macros expand to nothing. */
#ifndef REALCODE_KERNEL_H
#define REALCODE_KERNEL_H
#include <linux/types.h>
#define EXPORT_SYMBOL(sym)
#define EXPORT_SYMBOL_GPL(sym)
#define MODULE_LICENSE(s)
#define MODULE_DESCRIPTION(s)
#define MODULE_AUTHOR(s)
#define module_init(f)
#define module_exit(f)
#define BUILD_BUG_ON(c) _Static_assert(!(c), #c)
#define min(a, b) ((a) < (b) ? (a) : (b))
#define max(a, b) ((a) > (b) ? (a) : (b))
#endif
