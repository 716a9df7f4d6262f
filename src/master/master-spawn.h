/* master-spawn.h — start a child without copying master: clone(CLONE_VM |
 * CLONE_VFORK) into a tiny child that shares master's memory until it
 * execs (as posix_spawn does), so no page table is copied, no page is
 * copied on write and nothing is torn down at the exec. The child only
 * makes system calls on what the parent prepared: signals reset, stdin and
 * stdout on /dev/null, RLIMIT_AS, the drop to a user (groups, gid, uid,
 * verified), chdir, its fds at 3…, execve with the parent's envp. It never
 * allocates, logs or touches master's state; a failed step is reported
 * back in the request and the child is reaped here. */
#ifndef RG_MASTER_SPAWN_H
#define RG_MASTER_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SPAWN_MAX_FDS 64
#define SPAWN_MAX_GROUPS 65

struct spawn_req {
	const char *path;
	char *const *argv;
	char *const *envp;
	/* placed at 3, 4, … in this order (close-on-exec cleared); every
	   other fd above 2 is closed */
	int fds[SPAWN_MAX_FDS];
	unsigned nfds;
	uint64_t vsz;            /* RLIMIT_AS; 0: none */
	int devnull;             /* stdin and stdout; -1: left as they are */
	/* drop: setgroups(groups), setresgid(gid), setresuid(uid), then the
	   check that root cannot be regained */
	bool drop;
	/* with drop: CAP_SYS_CHROOT alone passes the drop and the exec
	   (lib/privs.h: privs_chroot_keep, privs_chroot_pass) */
	bool keep_chroot;
	uid_t uid;
	gid_t gid;
	gid_t groups[SPAWN_MAX_GROUPS];
	size_t ngroups;
	/* chdir there (NULL: stay); when it fails the child goes to "/" and
	   the spawn still succeeds with chdir_errno set */
	const char *dir;

	/* results, written by the child before it execs or exits */
	const char *failed_step;  /* NULL: exec'd */
	int failed_errno;
	int chdir_errno;
};

/* Start r->path. Returns the pid (the child has exec'd), or -errno with
 * r->failed_step naming what failed (the child is already reaped). */
pid_t spawn_start(struct spawn_req *r);

/* The log fds and RINGGATE_LOG of a child whose own fds are r->fds[0..own):
 * appends the log fds to r->fds and writes "RINGGATE_LOG=…" to env. false
 * when they do not fit. */
bool spawn_add_log_fds(struct spawn_req *r, int syslog_fd, char *env, size_t envsize);

#endif
