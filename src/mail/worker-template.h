/* worker-template.h — a worker template (the zygote pattern):
 * `ringgate-imap -T` / `ringgate-pop3 -T`, shown as ringgate-itmpl /
 * ringgate-ptmpl. master execs it once as root; it has done what every
 * worker does before it knows its user (the binary loaded and relocated
 * with LD_BIND_NOW, the allocator and logging started) and then only
 * forks: one child per WORKER_SPAWN (fd: the child's master channel),
 * made with CLONE_PARENT so that the child is master's own, answered with
 * WORKER_SPAWNED and the child's pid.
 *
 * The template never sees a user or a client: the spawn request is a bare
 * channel. The child itself reads WORKER_SETUP first on that channel (its
 * own syslog socket, RLIMIT_AS, the user's groups, gid and uid, the chroot
 * capability, the directory to start in), does as root exactly what
 * master's exec path does before execve (lib/privs.h: groups, gid, uid,
 * the checks that they took and that root cannot be regained,
 * CAP_SYS_CHROOT alone kept for a chrooted user), and then goes on as an
 * exec'd worker: WORKER_INIT (the client socket attached) on the same
 * channel, as the user. No random state is made before the fork (workers
 * draw none). master replaces the template by a fresh exec every
 * worker_template_forks children and at once after one dies of a signal
 * (docs/architecture.md, Starting workers). */
#ifndef RG_WORKER_TEMPLATE_H
#define RG_WORKER_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/ipc.h"

/* The template's loop on its master channel (WORKER_MASTER_FD). Returns
 * only in a new child, whose channel is then WORKER_MASTER_FD (the client
 * comes with its first WORKER_INIT); the template exits when master closes
 * the channel. */
void worker_template_serve(const char *service);

/* WORKER_SETUP, decoded. Ids present: drop to them (with the extra groups),
 * and chroot: keep CAP_SYS_CHROOT through the drop (the worker chroots at
 * its WORKER_INIT); home NULL: stay in "/". Pointers into the message. */
struct worker_setup {
	bool drop;
	uid_t uid;
	gid_t gid;
	gid_t groups[64]; /* supplementary, besides gid */
	size_t ngroups;
	bool keep_chroot;
	const char *home; /* where to start: the home as seen outside a chroot */
	uint64_t vsz;     /* RLIMIT_AS; 0: none */
	bool reuse;       /* as `-r`: keep the channel for later sessions */
};

/* false with *error_r when a field is malformed: F_UID and F_GID both or
 * neither (decimal, below (uid_t)-1); F_GROUPS (decimal gids, comma-
 * separated) and F_CHROOT (an absolute path) only with them; F_HOME text
 * without NUL; F_VSZ decimal; F_REUSE "1". */
bool worker_setup_parse(const struct ipc_fields *f, struct worker_setup *setup_r,
			const char **error_r);

/* In a template's child: read WORKER_SETUP from WORKER_MASTER_FD and apply
 * it (fatal when it does not come, is malformed or a step fails). Returns
 * whether the worker is reusable. */
bool worker_setup_run(void);

#endif
