/*
 * What is left of the PC's trap entry (kernel/trapasm.S) on L4: no vectors (traps are messages,
 * task.c), and trapret, where swtch() starts a new process with %esp at its trap frame, leads to
 * the process's loop in task.c, which never returns. And ExchangeRegisters, whose register use
 * (EBP is an argument) C's inline assembly cannot state with a frame pointer.
 */
.text
.globl trapret
trapret:
  pushl %esp
  call l4_user_loop

/* word l4_exregs_halt(word dest, word control): halt or resume a thread, nothing else set. */
.globl l4_exregs_halt
l4_exregs_halt:
  pushl %ebp
  pushl %ebx
  pushl %esi
  pushl %edi
  movl 20(%esp), %eax             /* dest */
  movl 24(%esp), %ecx             /* control */
  xorl %edx, %edx
  xorl %esi, %esi
  xorl %edi, %edi
  xorl %ebx, %ebx
  xorl %ebp, %ebp
  int $0x33
  popl %edi
  popl %esi
  popl %ebx
  popl %ebp
  ret
.section .note.GNU-stack, "", @progbits
