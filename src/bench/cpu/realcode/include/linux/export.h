/* Stand-in for <linux/export.h>: the module and export macros expand to nothing. */
#ifndef REALCODE_EXPORT_H
#define REALCODE_EXPORT_H
#include <linux/types.h>
#define EXPORT_SYMBOL(sym)
#define EXPORT_SYMBOL_GPL(sym)
#define MODULE_LICENSE(s)
#define MODULE_DESCRIPTION(s)
#define MODULE_AUTHOR(s)
#define module_init(f)
#define module_exit(f)
#endif
