#include "mail/worker.h"

#include "lib/alloc.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/privs.h"
#include "mail/mailfile.h"
#include "mail/worker-template.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t worker_term;
/* SIGTERM stays blocked except inside ppoll(), so it can neither be lost
 * between the flag check and the wait nor cut a command in half */
static sigset_t worker_wait_mask;
/* -r: fd 4 stays open for the next session (worker.h) */
static bool worker_reusable;
static const char *worker_service;

/* wait for fd to be readable: 1, -ETIMEDOUT, -EINTR when SIGTERM came
 * (SIGTERM is only let in here), or another -errno */
static int worker_wait(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	for (;;) {
		if (worker_term)
			return -EINTR;
		struct timespec ts = { .tv_sec = timeout_ms / 1000,
				       .tv_nsec = (long)(timeout_ms % 1000) * 1000000L };
		int ret = ppoll(&pfd, 1, timeout_ms < 0 ? NULL : &ts, &worker_wait_mask);
		if (ret < 0 && errno == EINTR)
			continue;
		if (ret < 0)
			return -errno;
		return ret == 0 ? -ETIMEDOUT : 1;
	}
}

bool worker_parse_groups(const char *s, gid_t *out, size_t max, size_t *n_r)
{
	size_t n = 0;
	for (;;) {
		char *end;
		if (*s < '0' || *s > '9' || n == max)
			return false;
		errno = 0;
		unsigned long long v = strtoull(s, &end, 10);
		if (errno != 0 || v > (gid_t)-2)
			return false;
		out[n++] = (gid_t)v;
		if (*end == '\0')
			break;
		if (*end != ',')
			return false;
		s = end + 1;
	}
	*n_r = n;
	return true;
}

static char *field_dup(const struct ipc_fields *f, enum ipc_field key)
{
	return ipc_has(f, key) ? rg_strndup((const char *)f->val[key], f->len[key]) : NULL;
}

int worker_init_read(int fd, int timeout_ms, struct worker_init *init_r, const char **error_r)
{
	struct ipc_rx *rx = rg_malloc(sizeof(*rx));
	int ret;

	memset(init_r, 0, sizeof(*init_r));
	init_r->client_fd = -1;
	for (;;) {
		ret = worker_wait(fd, timeout_ms);
		if (ret == -ETIMEDOUT) {
			*error_r = "timed out waiting for WORKER_INIT";
			goto out;
		}
		if (ret == -EINTR) {
			*error_r = "stopped while waiting for WORKER_INIT";
			goto out;
		}
		if (ret < 0) {
			*error_r = "poll on the master channel failed";
			goto out;
		}
		ret = ipc_recv(fd, rx, error_r);
		if (ret == -EAGAIN)
			continue;
		break;
	}
	if (ret == 0) {
		ret = -ECONNRESET;
		*error_r = "master closed the channel before WORKER_INIT";
		goto out;
	}
	if (ret < 0) {
		if (ret != -EPROTO)
			*error_r = "receiving WORKER_INIT failed";
		goto out;
	}
	init_r->client_fd = rx->fd;
	rx->fd = -1;
	if (rx->hdr.type != IPC_WORKER_INIT) {
		ret = -EPROTO;
		*error_r = "unexpected message instead of WORKER_INIT";
		goto out;
	}
	const struct ipc_fields *f = &rx->fields;
	if (!ipc_has(f, IPC_F_USER) || f->len[IPC_F_USER] == 0 ||
	    memchr(f->val[IPC_F_USER], '\0', f->len[IPC_F_USER]) != NULL) {
		ret = -EPROTO;
		*error_r = "WORKER_INIT without a user";
		goto out;
	}
	unsigned long long max_line = 0;
	if (ipc_has(f, IPC_F_MAX_LINE) && (!ipc_uint(f, IPC_F_MAX_LINE, &max_line) || max_line == 0 ||
					   max_line > SIZE_MAX)) {
		ret = -EPROTO;
		*error_r = "WORKER_INIT with a bad F_MAX_LINE";
		goto out;
	}
	if (ipc_has(f, IPC_F_CHROOT) && (f->len[IPC_F_CHROOT] == 0 || f->val[IPC_F_CHROOT][0] != '/' ||
					 memchr(f->val[IPC_F_CHROOT], '\0', f->len[IPC_F_CHROOT]) != NULL)) {
		ret = -EPROTO;
		*error_r = "WORKER_INIT with a bad F_CHROOT";
		goto out;
	}
	unsigned long long uid = 0, gid = 0;
	if (ipc_has(f, IPC_F_UID) || ipc_has(f, IPC_F_GID)) {
		if (!ipc_uint(f, IPC_F_UID, &uid) || !ipc_uint(f, IPC_F_GID, &gid) ||
		    uid > (uid_t)-2 || gid > (gid_t)-2) {
			ret = -EPROTO;
			*error_r = "WORKER_INIT with a bad F_UID or F_GID";
			goto out;
		}
		init_r->has_ids = true;
		init_r->uid = (uid_t)uid;
		init_r->gid = (gid_t)gid;
	}
	if (ipc_has(f, IPC_F_GROUPS) &&
	    (!init_r->has_ids || !worker_parse_groups(ipc_str(f, IPC_F_GROUPS), init_r->groups,
					       sizeof(init_r->groups) / sizeof(init_r->groups[0]),
					       &init_r->ngroups))) {
		ret = -EPROTO;
		*error_r = "WORKER_INIT with a bad F_GROUPS";
		goto out;
	}
	init_r->service = field_dup(f, IPC_F_SERVICE);
	init_r->user = field_dup(f, IPC_F_USER);
	init_r->home = field_dup(f, IPC_F_HOME);
	init_r->mail = field_dup(f, IPC_F_MAIL);
	init_r->tag = field_dup(f, IPC_F_TAG);
	init_r->rip = field_dup(f, IPC_F_RIP);
	init_r->session = field_dup(f, IPC_F_SESSION);
	init_r->chroot = field_dup(f, IPC_F_CHROOT);
	if (ipc_has(f, IPC_F_PREREAD)) {
		init_r->preread_len = f->len[IPC_F_PREREAD];
		init_r->preread = rg_memdup(f->val[IPC_F_PREREAD], init_r->preread_len + 1);
	}
	init_r->secured = ipc_has(f, IPC_F_SECURED) && strcmp(ipc_str(f, IPC_F_SECURED), "1") == 0;
	init_r->tls = ipc_has(f, IPC_F_TLS) && strcmp(ipc_str(f, IPC_F_TLS), "1") == 0;
	init_r->max_line = max_line;
	ret = 0;
out:
	if (ret < 0 && init_r->client_fd >= 0) {
		close(init_r->client_fd);
		init_r->client_fd = -1;
	}
	rg_free(rx);
	return ret;
}

void worker_init_free(struct worker_init *init)
{
	rg_free(init->service);
	rg_free(init->user);
	rg_free(init->home);
	rg_free(init->mail);
	rg_free(init->tag);
	rg_free(init->rip);
	rg_free(init->session);
	rg_free(init->chroot);
	rg_free(init->preread);
	if (init->client_fd >= 0)
		close(init->client_fd);
	memset(init, 0, sizeof(*init));
	init->client_fd = -1;
}

void worker_out_init(struct worker_out *out, int fd)
{
	out->fd = fd;
	out->failed = false;
	out->len = 0;
	out->total = 0;
}

int worker_out_flush(struct worker_out *out)
{
	if (out->failed)
		return -EPIPE;
	int ret = mailfile_write_all(out->fd, out->buf, out->len);
	out->len = 0;
	if (ret < 0)
		out->failed = true;
	return ret;
}

void worker_out_write(struct worker_out *out, const void *data, size_t len)
{
	out->total += len;
	if (out->failed)
		return;
	if (out->len + len <= sizeof(out->buf)) {
		memcpy(out->buf + out->len, data, len);
		out->len += len;
		return;
	}
	if (worker_out_flush(out) < 0)
		return;
	if (len >= sizeof(out->buf)) {
		/* large literal or message: skip the copy */
		if (mailfile_write_all(out->fd, data, len) < 0)
			out->failed = true;
		return;
	}
	memcpy(out->buf, data, len);
	out->len = len;
}

void worker_out_send_cb(void *ctx, const void *data, size_t len)
{
	worker_out_write(ctx, data, len);
}

void worker_exit(int status)
{
	log_flush();
#if defined(__SANITIZE_ADDRESS__)
	exit(status);
#else
	_exit(status);
#endif
}

static void worker_sigterm(int signo)
{
	(void)signo;
	worker_term = 1;
}

void worker_signals_init(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	/* no SA_RESTART: a blocking poll/read returns EINTR so we can stop */
	sa.sa_handler = worker_sigterm;
	sigaction(SIGTERM, &sa, NULL);

	sigset_t term;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, &worker_wait_mask);
	sigdelset(&worker_wait_mask, SIGTERM);
}

bool worker_terminating(void)
{
	return worker_term != 0;
}

ssize_t worker_read(int fd, void *buf, size_t size, int timeout_ms)
{
	for (;;) {
		int ret = worker_wait(fd, timeout_ms);
		if (ret < 0)
			return ret;
		ssize_t n = read(fd, buf, size);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		return n < 0 ? -errno : n;
	}
}

/* the chroot this process is in since its first session ("": none) */
static char *worker_jail;

/* A session's set-up: the client onto fd 3; on the process's first
 * session its user (a spare, still root: chroot, drop; one master
 * started as the user: the chroot its one capability allows, then no
 * capability at all), on later ones the check that master sent the same
 * uid, gid and chroot; the home, HOME and USER. Fatal when master asks for
 * something else. */
static void worker_session_enter(struct worker_init *init, bool first)
{
	/* only a spare's first WORKER_INIT and later ones carry the client */
	bool spare = first && init->client_fd >= 0;
	const char *jail = init->chroot != NULL ? init->chroot : "";
	const char *error;
	int ret;

	if (init->client_fd >= 0) {
		if (init->client_fd != WORKER_CLIENT_FD) {
			if (dup2(init->client_fd, WORKER_CLIENT_FD) < 0)
				log_fatal("dup2() of the client socket failed: %m");
			close(init->client_fd);
		}
		init->client_fd = -1;
	}
	if (spare && geteuid() == 0 && init->has_ids && init->uid != 0) {
		if (*jail != '\0') {
			tzset(); /* /etc/localtime is outside */
			if (chroot(jail) < 0)
				log_fatal("chroot(%s) failed: %m", jail);
		}
		ret = privs_drop_groups(init->uid, init->gid, init->groups, init->ngroups, &error);
		if (ret < 0)
			log_fatal("user %s: dropping privileges to %lu/%lu failed: %s: %s", init->user,
				  (unsigned long)init->uid, (unsigned long)init->gid, error,
				  strerror(-ret));
	} else if (first) {
		if ((ret = privs_worker_jail(init->chroot, init->home, &error)) < 0)
			log_fatal("%s(%s) failed: %s", error, jail, strerror(-ret));
	} else if ((init->has_ids && (getuid() != init->uid || getgid() != init->gid)) ||
		   strcmp(jail, worker_jail) != 0) {
		/* master routes a session only to a worker of its uid, gid, chroot */
		log_fatal("WORKER_INIT for uid %lu gid %lu chroot '%s' in a worker of uid %lu "
			  "gid %lu chroot '%s'", (unsigned long)init->uid, (unsigned long)init->gid,
			  jail, (unsigned long)getuid(), (unsigned long)getgid(), worker_jail);
	}
	if (first)
		worker_jail = rg_strdup(jail);
	const char *home = init->home != NULL ? init->home : "";
	/* master (or privs_worker_jail) already chdir'd a worker it started */
	if (!first || spare) {
		if (*home == '\0' || chdir(home) < 0) {
			log_error("chdir(%s) failed: %m", home);
			if (chdir("/") < 0)
				log_fatal("chdir(/) failed: %m");
		}
		(void)setenv("HOME", home, 1);
		(void)setenv("USER", init->user, 1);
	}
}

static void worker_log_session(const struct worker_init *init)
{
	char name[128];
	if (init->session != NULL && init->session[0] != '\0')
		snprintf(name, sizeof(name), "%s(%s)<%s>", worker_service, init->user, init->session);
	else
		snprintf(name, sizeof(name), "%s(%s)", worker_service, init->user);
	log_init(name);
}

void worker_start(const char *service, int argc, char **argv, struct worker_init *init_r)
{
	const char *error;
	int ret;

	worker_service = service;
	/* -T: a template (worker-template.h); only its children come back,
	 * set up as the user, the client on their first WORKER_INIT */
	bool forked = argc > 1 && strcmp(argv[1], "-T") == 0;
	if (forked) {
		char name[32];
		snprintf(name, sizeof(name), "%s-template", service);
		log_init(name);
		worker_template_serve(service);
		log_init(service);
		worker_reusable = worker_setup_run();
	} else {
		worker_reusable = argc > 1 && strcmp(argv[1], "-r") == 0;
		log_init(service);
	}
	worker_signals_init();
	/* a spare waits for its first user as long as master wants it to */
	if ((ret = worker_init_read(WORKER_MASTER_FD,
				    worker_reusable ? -1 : WORKER_INIT_TIMEOUT_MS, init_r,
				    &error)) < 0) {
		if (ret == -EINTR || ret == -ECONNRESET)
			exit(0);
		log_fatal("%s: %s", error, strerror(-ret));
	}
	if (!worker_reusable) {
		close(WORKER_MASTER_FD);
		/* an exec'd one has its client on fd 3 already */
		if (!forked && init_r->client_fd >= 0) {
			close(init_r->client_fd);
			init_r->client_fd = -1;
		}
	}
	worker_session_enter(init_r, true);
	worker_log_session(init_r);
}

bool worker_next(struct worker_init *init_r)
{
	const char *error;
	if (!worker_reusable || worker_term)
		return false;
	/* the client sees its connection end now, not at the next session */
	close(WORKER_CLIENT_FD);
	log_init(worker_service);
	struct ipc_msg *msg = rg_malloc(sizeof(*msg));
	ipc_msg_init(msg, IPC_WORKER_DONE, 0);
	int ret = ipc_send(WORKER_MASTER_FD, msg, -1);
	rg_free(msg);
	if (ret < 0)
		return false;
	ret = worker_init_read(WORKER_MASTER_FD, -1, init_r, &error);
	if (ret == -EINTR || ret == -ECONNRESET)
		return false; /* stopped, or master let this process go */
	if (ret < 0)
		log_fatal("%s: %s", error, strerror(-ret));
	worker_session_enter(init_r, false);
	worker_log_session(init_r);
	return true;
}
