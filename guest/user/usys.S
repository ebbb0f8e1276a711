/* System call stubs: number in %eax, arguments in %ebx, %ecx, %edx, `int $0x80`. */
#include "syscall.h"

.macro syscall name, num
  .globl \name
\name:
  pushl %ebx
  movl 8(%esp), %ebx
  movl 12(%esp), %ecx
  movl 16(%esp), %edx
  movl $\num, %eax
  int $0x80
  popl %ebx
  ret
.endm

.text
syscall write, SYS_write
syscall read, SYS_read
syscall exit, SYS_exit
syscall spawn, SYS_spawn
syscall wait, SYS_wait
syscall getpid, SYS_getpid
syscall yield, SYS_yield
syscall sleep, SYS_sleep
syscall time, SYS_time
syscall uptime, SYS_uptime
syscall kill, SYS_kill
syscall programs, SYS_programs
syscall recv, SYS_recv

/* syscall3(num, a, b, c) */
.globl syscall3
syscall3:
  pushl %ebx
  movl 8(%esp), %eax
  movl 12(%esp), %ebx
  movl 16(%esp), %ecx
  movl 20(%esp), %edx
  int $0x80
  popl %ebx
  ret
