/* Program entry: the kernel starts a program with argc and argv on the stack as for a call. */
.text
.globl _start
_start:
  call main
  pushl %eax
  call exit
