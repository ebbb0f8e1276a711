/*
 * swtch(struct context **old, struct context *new): save the callee-saved registers on the
 * current kernel stack, store that stack pointer in *old, then load new's stack and registers.
 * The caller-saved registers were already saved by the C calling convention.
 */
.text
.globl swtch
swtch:
  movl 4(%esp), %eax
  movl 8(%esp), %edx
  pushl %ebp
  pushl %ebx
  pushl %esi
  pushl %edi
  movl %esp, (%eax)
  movl %edx, %esp
  popl %edi
  popl %esi
  popl %ebx
  popl %ebp
  ret
