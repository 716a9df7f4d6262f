#include "mail/worker.h"

#include "lib/alloc.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/privs.h"
#include "mail/mailfile.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t worker_term;
/* SIGTERM stays blocked except inside ppoll(), so it can neither be lost
 * between the flag check and the wait nor cut a command in half */
static sigset_t worker_wait_mask;

static char *field_dup(const struct ipc_fields *f, enum ipc_field key)
{
	return ipc_has(f, key) ? rg_strndup((const char *)f->val[key], f->len[key]) : NULL;
}

int worker_init_read(int fd, int timeout_ms, struct worker_init *init_r, const char **error_r)
{
	struct ipc_rx *rx = rg_malloc(sizeof(*rx));
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int ret;

	memset(init_r, 0, sizeof(*init_r));
	for (;;) {
		ret = poll(&pfd, 1, timeout_ms);
		if (ret < 0 && errno == EINTR)
			continue;
		if (ret < 0) {
			ret = -errno;
			*error_r = "poll on the master channel failed";
			goto out;
		}
		if (ret == 0) {
			ret = -ETIMEDOUT;
			*error_r = "timed out waiting for WORKER_INIT";
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
	if (rx->fd >= 0)
		close(rx->fd);
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
	memset(init, 0, sizeof(*init));
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
		if (ret == 0)
			return -ETIMEDOUT;
		ssize_t n = read(fd, buf, size);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		return n < 0 ? -errno : n;
	}
}

void worker_start(const char *service, struct worker_init *init_r)
{
	const char *error;
	char name[128];
	int ret;

	log_init(service);
	worker_signals_init();
	if ((ret = worker_init_read(WORKER_MASTER_FD, WORKER_INIT_TIMEOUT_MS, init_r, &error)) < 0)
		log_fatal("%s: %s", error, strerror(-ret));
	close(WORKER_MASTER_FD);
	if ((ret = privs_worker_jail(init_r->chroot, init_r->home, &error)) < 0)
		log_fatal("%s(%s) failed: %s", error, init_r->chroot != NULL ? init_r->chroot : "",
			  strerror(-ret));
	if (init_r->session != NULL && init_r->session[0] != '\0')
		snprintf(name, sizeof(name), "%s(%s)<%s>", service, init_r->user, init_r->session);
	else
		snprintf(name, sizeof(name), "%s(%s)", service, init_r->user);
	log_init(name);
}
