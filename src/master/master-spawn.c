/* master-spawn.c — clone(CLONE_VM | CLONE_VFORK) + execve for master's
 * children (see master-spawn.h). fork() made every worker start pay for
 * master's page tables twice (copied at the fork, torn down at the exec)
 * plus a copy-on-write fault for each page the child touched before its
 * exec, and jemalloc's fork handlers: on a paravirtualised machine that
 * was 40% of a LOGIN session's server CPU.
 *
 * The child runs on its own small stack in master's address space while
 * master waits (CLONE_VFORK), so it must not change anything master sees:
 * no allocation, no stdio, no environment changes, no logging. errno is
 * master's (the child shares its thread area); master does not look at it
 * across the spawn. Signals are blocked in master around the clone, so no
 * handler of master's can run on the child's stack; without CLONE_SIGHAND
 * the child's dispositions are its own to reset. The credential calls are
 * raw system calls: glibc's wrappers would try to broadcast them to
 * master's threads (it has none, but the child must not depend on that). */
#include "master/master-spawn.h"
#include "master/master-log.h"
#include "lib/privs.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define SPAWN_STACK_SIZE (256 * 1024)

/* the child's code runs on a foreign stack: keep ASan's stack checks out */
#if defined(__clang__) || defined(__GNUC__)
#define SPAWN_CHILD __attribute__((no_sanitize_address, noinline))
#else
#define SPAWN_CHILD
#endif

SPAWN_CHILD static int child_fail(struct spawn_req *r, const char *step)
{
	r->failed_step = step;
	r->failed_errno = errno != 0 ? errno : EPERM;
	_exit(127);
}

SPAWN_CHILD static int child_drop(struct spawn_req *r)
{
	const char *step;
	if (r->keep_chroot && privs_chroot_keep(&step) < 0)
		return child_fail(r, step);
	if (syscall(SYS_setgroups, r->ngroups, r->groups) < 0)
		return child_fail(r, "setgroups");
	if (syscall(SYS_setresgid, r->gid, r->gid, r->gid) < 0)
		return child_fail(r, "setresgid");
	if (syscall(SYS_setresuid, r->uid, r->uid, r->uid) < 0)
		return child_fail(r, "setresuid");
	/* never trust that it took */
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	if (syscall(SYS_getresuid, &ru, &eu, &su) < 0 || ru != r->uid || eu != r->uid ||
	    su != r->uid || syscall(SYS_getresgid, &rg, &eg, &sg) < 0 || rg != r->gid ||
	    eg != r->gid || sg != r->gid) {
		errno = EPERM;
		return child_fail(r, "privileges were not dropped");
	}
	if (r->uid != 0 && syscall(SYS_setresuid, 0, 0, 0) == 0) {
		errno = EPERM;
		return child_fail(r, "root could be regained after dropping privileges");
	}
	if (r->keep_chroot && privs_chroot_pass(&step) < 0)
		return child_fail(r, step);
	return 0;
}

SPAWN_CHILD static int child_main(void *arg)
{
	struct spawn_req *r = arg;
	struct sigaction sa;

	/* an ignored disposition survives exec; master has no handlers, but
	 * a library's would be master's code on this stack */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++) {
		if (sig != SIGKILL && sig != SIGSTOP)
			(void)sigaction(sig, &sa, NULL);
	}
	/* Ctrl-C on a foreground master reaches its whole process group: only
	 * master acts on it (stopping everyone in order), as in Dovecot */
	sa.sa_handler = SIG_IGN;
	(void)sigaction(SIGINT, &sa, NULL);
	if (r->devnull >= 0) {
		(void)dup2(r->devnull, STDIN_FILENO);
		(void)dup2(r->devnull, STDOUT_FILENO);
	}
#if !defined(__SANITIZE_ADDRESS__)
	/* ASan reserves terabytes of address space: any RLIMIT_AS kills it */
	if (r->vsz != 0) {
		struct rlimit rl = { .rlim_cur = r->vsz, .rlim_max = r->vsz };
		if (setrlimit(RLIMIT_AS, &rl) < 0)
			return child_fail(r, "setrlimit(RLIMIT_AS)");
	}
#endif
	if (r->drop)
		(void)child_drop(r);
	if (r->dir != NULL && (r->dir[0] == '\0' || chdir(r->dir) < 0)) {
		r->chdir_errno = r->dir[0] == '\0' ? ENOENT : errno;
		if (chdir("/") < 0)
			return child_fail(r, "chdir(/)");
	}
	/* own fds to 3…: first everything above the target range, then down */
	int tmp[SPAWN_MAX_FDS];
	int top = 3 + (int)r->nfds;
	for (unsigned i = 0; i < r->nfds; i++) {
		tmp[i] = fcntl(r->fds[i], F_DUPFD_CLOEXEC, top);
		if (tmp[i] < 0)
			return child_fail(r, "fcntl(F_DUPFD)");
	}
	for (unsigned i = 0; i < r->nfds; i++) {
		if (dup2(tmp[i], 3 + (int)i) < 0)
			return child_fail(r, "dup2");
	}
	/* nothing else crosses exec, not even fds master inherited without
	 * close-on-exec from whoever started it */
	(void)close_range((unsigned)top, ~0u, 0);
	sigset_t none;
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	execve(r->path, r->argv, r->envp);
	return child_fail(r, "execve");
}

pid_t spawn_start(struct spawn_req *r)
{
	static void *stack;
	if (stack == NULL) {
		stack = mmap(NULL, SPAWN_STACK_SIZE, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
		if (stack == MAP_FAILED) {
			stack = NULL;
			r->failed_step = "mmap";
			return -ENOMEM;
		}
	}
	if (r->nfds > SPAWN_MAX_FDS || r->ngroups > SPAWN_MAX_GROUPS) {
		r->failed_step = "too many fds or groups";
		return -EINVAL;
	}
	r->failed_step = NULL;
	r->failed_errno = 0;
	r->chdir_errno = 0;

	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int saved_errno = errno;
	pid_t pid = clone(child_main, (char *)stack + SPAWN_STACK_SIZE,
			  CLONE_VM | CLONE_VFORK | SIGCHLD, r);
	int clone_errno = errno;
	errno = saved_errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (pid < 0) {
		r->failed_step = "clone";
		return -clone_errno;
	}
	if (r->failed_step != NULL) {
		/* it exited without exec: reap it here, SIGCHLD finds nothing */
		(void)waitpid(pid, NULL, 0);
		return -r->failed_errno;
	}
	return pid;
}

bool spawn_add_log_fds(struct spawn_req *r, int syslog_fd, char *env, size_t envsize)
{
	static const char prefix[] = "RINGGATE_LOG=";
	int logfds[LOG_SINK_COUNT];
	if (envsize <= sizeof(prefix) || r->nfds > SPAWN_MAX_FDS - LOG_SINK_COUNT)
		return false;
	unsigned n = master_log_child_fds(syslog_fd, logfds);
	if (!master_log_child_env(syslog_fd, 3 + (int)r->nfds, env + sizeof(prefix) - 1,
				  envsize - (sizeof(prefix) - 1)))
		return false;
	memcpy(env, prefix, sizeof(prefix) - 1);
	for (unsigned i = 0; i < n; i++)
		r->fds[r->nfds++] = logfds[i];
	return true;
}
