/* zygote.c — see zygote.h */
#include "lib/zygote.h"
#include "lib/ipc.h"
#include "lib/log.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

pid_t zygote_fork(void)
{
	/* glibc's fork() cannot pass flags; the child runs on a copy of this
	 * stack, as after fork() */
	long pid = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, NULL, NULL, NULL, 0UL);
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		/* our own atfork handlers: every pthread_atfork() in src
		 * (grep) must be called here too */
		ipc_pid_reset();
		log_forked();
	}
	return (pid_t)pid;
}
