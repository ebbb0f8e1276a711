/*
 * System call numbers and error codes: the contract between the kernel and ring-3 programs.
 * A program puts the number in %eax and up to three arguments in %ebx, %ecx, %edx, then runs
 * `int $0x80`; the result comes back in %eax (negative = -error).
 */
#ifndef GUEST_SYSCALL_H
#define GUEST_SYSCALL_H

#define SYS_write 1    /* write(fd, buf, n) -> bytes written; fd 1 and 2 are the console */
#define SYS_read 2     /* read(fd, buf, n) -> bytes read; fd 0 is the console, one line at most */
#define SYS_exit 3     /* exit(status): never returns */
#define SYS_spawn 4    /* spawn(name, argv) -> pid of a new process running program `name` */
#define SYS_wait 5     /* wait(&status) -> pid of an exited child */
#define SYS_getpid 6   /* getpid() -> pid */
#define SYS_yield 7    /* yield() -> 0: give the CPU to the next runnable process */
#define SYS_sleep 8    /* sleep(ms) -> 0 */
#define SYS_time 9     /* time() -> seconds since 1970 (CMOS clock at boot + ticks) */
#define SYS_uptime 10  /* uptime() -> milliseconds since boot (timer ticks * 10) */
#define SYS_kill 11    /* kill(pid) -> 0: the process dies with status EXIT_KILLED */
#define SYS_programs 12 /* programs(buf, n) -> bytes: names of the runnable programs, one a line */
#define SYS_recv 13    /* recv(buf, n) -> bytes from the TCP connection on port 5001; 0 at its end */
#define SYS_sendframe 14 /* sendframe(buf, n) -> 0: one Ethernet frame to the NIC; -EAGAIN: ring full */
#define NSYSCALLS 15

#define EPERM 1
#define ENOENT 2
#define ESRCH 3
#define EBADF 9
#define ECHILD 10
#define ENOMEM 12
#define EFAULT 14
#define EINVAL 22
#define ENOEXEC 8
#define EAGAIN 11
#define ENOSYS 38
#define EINTR 4
#define ENETDOWN 100
#define ECONNRESET 104

/* Exit status of a process the kernel killed: 128 + the exception vector (14 = page fault). */
#define EXIT_FAULT(vector) (128 + (vector))
/* Exit status of a process ended by kill(). */
#define EXIT_KILLED 137

/* Memory a program may use without asking: pages appear, zero-filled, on first touch. */
#define UHEAP_BASE 0x10000000u
#define UHEAP_END 0x20000000u
#define USTACK_TOP 0xC0000000u
#define USTACK_SIZE (1024u * 1024u)

#endif
