/* worker-template.c — a worker template's loop and its child's first
 * steps (see worker-template.h). */
#include "mail/worker-template.h"
#include "mail/worker.h"
#include "lib/alloc.h"
#include "lib/log.h"
#include "lib/privs.h"
#include "lib/zygote.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

static void spawned_reply(uint32_t id, pid_t pid)
{
	struct ipc_msg msg;
	ipc_msg_init(&msg, IPC_WORKER_SPAWNED, id);
	if (pid > 0)
		ipc_msg_add_uint(&msg, IPC_F_LOGIN_PID, (unsigned long long)pid);
	else
		ipc_msg_add_str(&msg, IPC_F_REASON, strerror(-pid));
	int ret = ipc_send(WORKER_MASTER_FD, &msg, -1);
	if (ret < 0)
		log_fatal("template: answering master: %s", strerror(-ret));
}

/* one message from the channel (blocking, timeout_ms < 0: forever);
 * exits quietly when master closed it */
static void channel_recv(struct ipc_rx *rx, int timeout_ms, const char *what)
{
	for (;;) {
		struct pollfd p = { .fd = WORKER_MASTER_FD, .events = POLLIN };
		int n = poll(&p, 1, timeout_ms);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			log_fatal("%s: poll: %m", what);
		if (n == 0)
			log_fatal("%s: timed out waiting for master", what);
		const char *error = NULL;
		int ret = ipc_recv(WORKER_MASTER_FD, rx, &error);
		if (ret == -EAGAIN)
			continue;
		if (ret == -EPROTO)
			log_fatal("%s: malformed message from master: %s", what, error);
		if (ret < 0)
			log_fatal("%s: reading the master channel: %s", what, strerror(-ret));
		if (ret == 0) {
			/* master replaced the template, or let the child go */
			exit(0);
		}
		return;
	}
}

void worker_template_serve(const char *service)
{
	char comm[16];
	snprintf(comm, sizeof(comm), "ringgate-%ctmpl", service[0]);
	(void)prctl(PR_SET_NAME, comm, 0, 0, 0);
	zygote_prepare();
	struct ipc_rx *rx = rg_malloc(sizeof(*rx));
	struct ipc_msg ready;
	ipc_msg_init(&ready, IPC_WORKER_TEMPLATE_READY, 0);
	int ret = ipc_send(WORKER_MASTER_FD, &ready, -1);
	if (ret < 0)
		log_fatal("template: telling master: %s", strerror(-ret));
	unsigned forks = 0;
	for (;;) {
		channel_recv(rx, -1, "template");
		if (rx->hdr.type != IPC_WORKER_SPAWN || rx->fd < 0) {
			if (rx->fd >= 0)
				close(rx->fd);
			log_fatal("template: master sent unexpected %s", ipc_type_name(rx->hdr.type));
		}
		pid_t pid = zygote_fork();
		if (pid == 0) {
			/* the child's channel in place of the template's */
			if (dup2(rx->fd, WORKER_MASTER_FD) < 0)
				log_fatal("template child: dup2: %m");
			close(rx->fd);
			snprintf(comm, sizeof(comm), "ringgate-%s", service);
			(void)prctl(PR_SET_NAME, comm, 0, 0, 0);
			rg_free(rx);
			return;
		}
		close(rx->fd);
		if (pid < 0)
			log_error("template: clone: %s", strerror(-pid));
		else
			forks++;
		spawned_reply(rx->hdr.id, pid);
		log_debug("template: forked %ld (%u so far)", (long)pid, forks);
	}
}

bool worker_setup_parse(const struct ipc_fields *f, struct worker_setup *setup_r,
			const char **error_r)
{
	memset(setup_r, 0, sizeof(*setup_r));
	bool ids = ipc_has(f, IPC_F_UID) || ipc_has(f, IPC_F_GID);
	unsigned long long uid = 0, gid = 0, vsz = 0;
	if (ids && (!ipc_uint(f, IPC_F_UID, &uid) || !ipc_uint(f, IPC_F_GID, &gid) ||
		    uid > (uid_t)-2 || gid > (gid_t)-2)) {
		*error_r = "WORKER_SETUP with a bad F_UID or F_GID";
		return false;
	}
	if (ipc_has(f, IPC_F_GROUPS) &&
	    (!ids || !worker_parse_groups(ipc_str(f, IPC_F_GROUPS), setup_r->groups,
					  sizeof(setup_r->groups) / sizeof(setup_r->groups[0]),
					  &setup_r->ngroups))) {
		*error_r = "WORKER_SETUP with a bad F_GROUPS";
		return false;
	}
	if (ipc_has(f, IPC_F_CHROOT) &&
	    (!ids || f->len[IPC_F_CHROOT] == 0 || f->val[IPC_F_CHROOT][0] != '/' ||
	     memchr(f->val[IPC_F_CHROOT], '\0', f->len[IPC_F_CHROOT]) != NULL)) {
		*error_r = "WORKER_SETUP with a bad F_CHROOT";
		return false;
	}
	if (ipc_has(f, IPC_F_HOME) &&
	    memchr(f->val[IPC_F_HOME], '\0', f->len[IPC_F_HOME]) != NULL) {
		*error_r = "WORKER_SETUP with a bad F_HOME";
		return false;
	}
	if (ipc_has(f, IPC_F_VSZ) && !ipc_uint(f, IPC_F_VSZ, &vsz)) {
		*error_r = "WORKER_SETUP with a bad F_VSZ";
		return false;
	}
	if (ipc_has(f, IPC_F_REUSE) && strcmp(ipc_str(f, IPC_F_REUSE), "1") != 0) {
		*error_r = "WORKER_SETUP with a bad F_REUSE";
		return false;
	}
	setup_r->drop = ids;
	setup_r->uid = (uid_t)uid;
	setup_r->gid = (gid_t)gid;
	setup_r->keep_chroot = ipc_has(f, IPC_F_CHROOT);
	setup_r->home = ipc_str(f, IPC_F_HOME);
	setup_r->vsz = vsz;
	setup_r->reuse = ipc_has(f, IPC_F_REUSE);
	return true;
}

bool worker_setup_run(void)
{
	struct ipc_rx *rx = rg_malloc(sizeof(*rx));
	struct worker_setup s;
	const char *error, *step;
	int ret;

	channel_recv(rx, WORKER_INIT_TIMEOUT_MS, "worker");
	if (rx->hdr.type != IPC_WORKER_SETUP)
		log_fatal("master sent %s instead of WORKER_SETUP", ipc_type_name(rx->hdr.type));
	if (!worker_setup_parse(&rx->fields, &s, &error))
		log_fatal("%s", error);
	/* our own syslog socket: connecting it elsewhere moves only our lines */
	if (rx->fd >= 0 && (ret = log_syslog_replace(rx->fd)) < 0)
		log_fatal("replacing the syslog socket: %s", strerror(-ret));
#if !defined(__SANITIZE_ADDRESS__)
	/* ASan reserves terabytes of address space: any RLIMIT_AS kills it */
	if (s.vsz != 0) {
		struct rlimit rl = { .rlim_cur = s.vsz, .rlim_max = s.vsz };
		if (setrlimit(RLIMIT_AS, &rl) < 0)
			log_fatal("setrlimit(RLIMIT_AS): %m");
	}
#endif
	if (s.drop) {
		/* what master's exec path does (master-spawn.c), with the
		 * library's checks: every id took, root cannot be regained */
		if (s.keep_chroot && (ret = privs_chroot_keep(&step)) < 0)
			log_fatal("%s: %s", step, strerror(-ret));
		if ((ret = privs_drop_groups(s.uid, s.gid, s.groups, s.ngroups, &step)) < 0)
			log_fatal("dropping privileges to %lu/%lu failed: %s: %s",
				  (unsigned long)s.uid, (unsigned long)s.gid, step, strerror(-ret));
		/* CAP_SYS_CHROOT alone, which the worker drops after its chroot */
		if (s.keep_chroot && (ret = privs_chroot_pass(&step)) < 0)
			log_fatal("%s: %s", step, strerror(-ret));
	}
	if (s.home != NULL && (s.home[0] == '\0' || chdir(s.home) < 0)) {
		log_error("chdir(%s) failed: %s", s.home, s.home[0] == '\0' ? strerror(ENOENT) :
			  strerror(errno));
		if (chdir("/") < 0)
			log_fatal("chdir(/) failed: %m");
	}
	bool reuse = s.reuse;
	rg_free(rx);
	return reuse;
}
