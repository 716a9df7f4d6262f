/* sandbox.h — a seccomp filter from an allow-list of system calls.
 *
 * Everything not on the list kills the whole process (SECCOMP_RET_KILL_PROCESS,
 * the kernel reports SIGSYS), so a bug or an exploit in code that meets
 * unauthenticated clients cannot open files, exec, connect or ptrace. The
 * filter also refuses a foreign architecture (x32 / i386 numbering). Needs
 * PR_SET_NO_NEW_PRIVS (set here). Sanitizer builds skip the filter: their
 * runtimes make system calls of their own. */
#ifndef RG_SANDBOX_H
#define RG_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>

/* The allow-list of an internal helper's epoll loop (the access checker,
 * the stats process): epoll, accept4, read/write, close, fcntl, memory,
 * time, getrandom, signal mask and return, exit. No open, socket, connect
 * or exec. Needs <sys/syscall.h>. */
#define SANDBOX_HELPER_CALLS \
	SYS_epoll_wait, SYS_epoll_pwait, SYS_epoll_ctl, SYS_accept4, SYS_read, SYS_write, \
	SYS_writev, SYS_close, SYS_fcntl, SYS_getpid, SYS_gettid, \
	SYS_mmap, SYS_munmap, SYS_mremap, SYS_madvise, SYS_brk, SYS_mprotect, \
	SYS_futex, SYS_sched_yield, SYS_getcpu, SYS_clock_gettime, SYS_gettimeofday, \
	SYS_getrandom, SYS_rt_sigprocmask, SYS_rt_sigreturn, SYS_restart_syscall, SYS_exit, \
	SYS_exit_group

/* An internal helper's confinement: PR_SET_NO_NEW_PRIVS, then the filter of
 * SANDBOX_HELPER_CALLS plus extra[0..extra_count); fatal on failure. */
void sandbox_enter_helper(const int *extra, size_t extra_count);

/* 0, or -errno with *error_r (static text). */
int sandbox_seccomp(const int *syscalls, size_t count, const char **error_r);
/* false in sanitizer builds, where sandbox_seccomp() does nothing */
bool sandbox_seccomp_supported(void);

#endif
