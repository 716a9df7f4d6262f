#include "login/login-sandbox.h"
#include "lib/sandbox.h"

#include <sys/syscall.h>

static const int login_syscalls[] = {
	/* the ring (register only fails: the ring is restricted) */
	SYS_io_uring_enter, SYS_io_uring_register,
	/* channels to master and auth, TLS hand-off socketpairs */
	SYS_sendmsg, SYS_recvmsg, SYS_socketpair, SYS_shutdown, SYS_close, SYS_fcntl,
	SYS_getsockname,
	/* the socket to a proxied user's backend (passdb proxy); the connect
	 * itself goes through the ring (IORING_OP_CONNECT), connect(2) stays
	 * forbidden. Arguments are not filtered: any family and type. */
	SYS_socket,
	/* signalfd, logging */
	SYS_read, SYS_write, SYS_writev, SYS_getpid, SYS_gettid,
	SYS_rt_sigprocmask, SYS_rt_sigreturn, SYS_signalfd4, SYS_restart_syscall,
	/* memory (jemalloc, wolfSSL) */
	SYS_mmap, SYS_munmap, SYS_mremap, SYS_madvise, SYS_brk, SYS_mprotect,
	SYS_futex, SYS_sched_yield, SYS_getcpu,
	/* time and randomness (session ids, TLS) */
	SYS_clock_gettime, SYS_gettimeofday, SYS_getrandom,
#ifdef SYS_time
	SYS_time,
#endif
	SYS_exit, SYS_exit_group,
};

const int *login_sandbox_syscalls(size_t *count_r)
{
	*count_r = sizeof(login_syscalls) / sizeof(login_syscalls[0]);
	return login_syscalls;
}

int login_sandbox_enter(const char **error_r)
{
	size_t count;
	const int *list = login_sandbox_syscalls(&count);
	return sandbox_seccomp(list, count, error_r);
}
