/* master-wtemplate.c — worker templates (PROC_WTEMPLATE, the zygote
 * pattern, src/mail/worker-template.h): one pre-started `ringgate-imap -T`
 * / `ringgate-pop3 -T` per worker service while worker_template_forks > 0,
 * kept alive (restarted with back-off when it dies), from which each new
 * worker is forked instead of exec'd: on this kind of machine an exec
 * costs several times a fork of a small process (docs/architecture.md,
 * Starting workers).
 *
 * Asking is synchronous: master sends WORKER_SPAWN (the child's channel
 * attached) and waits for WORKER_SPAWNED (its pid) on the template's
 * channel, at most WTEMPLATE_REPLY_MS, as it waits for an exec'd worker's
 * execve (master-spawn.c). So the child is in the pid hash before master
 * reaps anything again. The channel is in epoll only for the template's
 * WORKER_TEMPLATE_READY, before which master execs workers itself.
 *
 * A template's layout is known to every child it forks: it is replaced by
 * a fresh exec after worker_template_forks children, at once when one of
 * them dies of a signal that master did not send, and at every reload. */
#include "master/master-private.h"
#include "master/master-log.h"
#include "master/master-spawn.h"
#include "lib/alloc.h"
#include "lib/log.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* a fork takes a millisecond or two; this is for a template that hangs
 * (generous: a loaded machine must not fail logins for it) */
#define WTEMPLATE_REPLY_MS 5000

bool wtemplate_wanted(const struct worker_service *ws)
{
	return m.set->worker_template_forks > 0 && !m.stopping && ws->protocol != NULL &&
	       ws->set != NULL && settings_protocol_enabled(m.set, ws->protocol);
}

static void wtemplate_start(struct worker_service *ws)
{
	int chan[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, chan) < 0) {
		log_error("service(%s): socketpair() failed: %m", ws->protocol);
		return;
	}
	/* the template's own syslog socket; each child gets another */
	int syslog_fd = master_log_syslog_fd(MASTER_LOG_WORKER);
	struct spawn_req *r = rg_calloc(1, sizeof(*r));
	r->path = ws->binary_path;
	r->devnull = m.devnull;
	/* fd 3 (a child's client socket, dup'd there at its WORKER_INIT) */
	r->fds[0] = m.devnull;
	r->fds[1] = chan[1];
	r->nfds = 2;
	struct worker_env env;
	worker_env_fill(&env, r, syslog_fd, NULL, NULL, true);
	const char *name = strrchr(ws->binary_path, '/');
	char *argv[] = { (char *)(name != NULL ? name + 1 : ws->binary_path), (char *)"-T", NULL };
	r->argv = argv;
	r->envp = env.envp;
	pid_t pid = spawn_start(r);
	close(chan[1]);
	if (syslog_fd >= 0)
		close(syslog_fd);
	if (pid < 0) {
		log_error("service(%s): starting the worker template failed: %s: %s", ws->protocol,
			  r->failed_step, strerror((int)-pid));
		rg_free(r);
		close(chan[0]);
		return;
	}
	rg_free(r);
	set_nonblock(chan[0]);
	struct child *c = child_new(pid, &ws->tpl_grp, chan[0]);
	c->wsvc = ws;
	ep_add(chan[0], &c->ev);
	ws->tpl = c;
	ws->tpl_ready = false;
	ws->tpl_forks = 0;
	log_debug("service(%s): started worker template %ld", ws->protocol, (long)pid);
}

void wtemplate_tick(struct worker_service *ws)
{
	if (ws->tpl == NULL && wtemplate_wanted(ws) && now_ms() >= ws->tpl_grp.backoff.until_ms)
		wtemplate_start(ws);
}

void wtemplate_retire(struct worker_service *ws)
{
	struct child *c = ws->tpl;
	if (c == NULL)
		return;
	ws->tpl = NULL;
	ws->tpl_ready = false;
	/* it exits at EOF; nothing is owed (asking is synchronous) */
	c->st.terminating = true;
	chan_close(c);
}

void wtemplate_kill(struct child *c, const char *why)
{
	struct worker_service *ws = c->wsvc;
	log_error("service(%s): worker template: %s: killing process %ld", ws->protocol, why,
		  (long)child_pid(c));
	if (ws->tpl == c)
		wtemplate_retire(ws);
	chan_close(c);
	c->st.terminating = true;
	kill(child_pid(c), SIGKILL);
}

void wtemplate_message(struct child *c, struct ipc_rx *rx)
{
	struct worker_service *ws = c->wsvc;
	if (rx->fd >= 0) {
		close(rx->fd);
		rx->fd = -1;
		wtemplate_kill(c, "it sent an fd");
		return;
	}
	if (rx->hdr.type != IPC_WORKER_TEMPLATE_READY || ws->tpl != c || ws->tpl_ready) {
		wtemplate_kill(c, "unexpected message");
		return;
	}
	ws->tpl_ready = true;
}

void wtemplate_exited(struct child *c)
{
	struct worker_service *ws = c->wsvc;
	if (ws->tpl == c) {
		ws->tpl = NULL;
		ws->tpl_ready = false;
	}
}

void wtemplate_child_crashed(struct worker_service *ws, pid_t tpl_pid)
{
	if (ws->tpl == NULL || child_pid(ws->tpl) != tpl_pid)
		return;
	log_warning("service(%s): a child of worker template %ld died of a signal: replacing the "
		    "template", ws->protocol, (long)tpl_pid);
	wtemplate_retire(ws);
}

/* What the asked template may have queued for a child that may exist:
 * read it all from the child's end, so that a late child finds only EOF
 * (its client socket closed here) */
static void drain_channel(int child_end)
{
	struct ipc_rx *rx = rg_malloc(sizeof(*rx));
	for (unsigned i = 0; i < 16; i++) {
		const char *error;
		int ret = ipc_recv(child_end, rx, &error);
		if (ret <= 0 && ret != -EPROTO)
			break;
		if (rx->fd >= 0)
			close(rx->fd);
		rx->fd = -1;
	}
	explicit_bzero(rx, sizeof(*rx));
	rg_free(rx);
}

/* the answer to request id: the pid, -EAGAIN when there was no child,
 * -EIO when the template broke (killed) */
static pid_t wtemplate_answer(struct child *t, uint32_t id)
{
	struct worker_service *ws = t->wsvc;
	struct ipc_rx *rx = rg_malloc(sizeof(*rx));
	int64_t deadline = now_ms() + WTEMPLATE_REPLY_MS;
	const char *why = NULL;
	pid_t pid = -EIO;
	for (;;) {
		const char *error = NULL;
		int ret = ipc_recv(t->chan, rx, &error);
		if (ret == -EAGAIN) {
			int64_t left = deadline - now_ms();
			struct pollfd p = { .fd = t->chan, .events = POLLIN };
			if (left <= 0 || (poll(&p, 1, (int)left) < 0 && errno != EINTR)) {
				why = "no answer to WORKER_SPAWN";
				break;
			}
			continue;
		}
		if (ret <= 0) {
			why = ret == 0 ? "channel closed" : error != NULL ? error : strerror(-ret);
			break;
		}
		unsigned long long v;
		const char *reason = ipc_str(&rx->fields, IPC_F_REASON);
		if (rx->fd >= 0 || rx->hdr.type != IPC_WORKER_SPAWNED || rx->hdr.id != id) {
			if (rx->fd >= 0)
				close(rx->fd);
			why = "unexpected message";
		} else if (reason != NULL) {
			log_error("service(%s): worker template %ld could not fork: %s", ws->protocol,
				  (long)child_pid(t), reason);
			pid = -EAGAIN;
		} else if (!ipc_uint(&rx->fields, IPC_F_LOGIN_PID, &v) || v < 2 || v > INT32_MAX) {
			why = "bad WORKER_SPAWNED";
		} else {
			pid = (pid_t)v;
		}
		break;
	}
	rg_free(rx);
	if (why != NULL)
		wtemplate_kill(t, why);
	return pid;
}

pid_t wtemplate_fork(struct worker_service *ws, int child_end, pid_t *tpl_pid_r)
{
	static uint32_t seq;
	struct child *t = ws->tpl;
	if (t == NULL || !ws->tpl_ready || t->chan < 0)
		return -EAGAIN;
	struct ipc_msg msg;
	if (++seq == 0)
		seq = 1;
	ipc_msg_init(&msg, IPC_WORKER_SPAWN, seq);
	int ret = ipc_send(t->chan, &msg, child_end);
	if (ret < 0) {
		/* not delivered: no child */
		wtemplate_kill(t, strerror(-ret));
		return -EAGAIN;
	}
	pid_t pid = wtemplate_answer(t, seq);
	if (pid == -EIO)
		drain_channel(child_end);
	if (pid < 0)
		return pid;
	*tpl_pid_r = child_pid(t);
	if (++ws->tpl_forks >= m.set->worker_template_forks) {
		log_debug("service(%s): worker template %ld made %u processes: replacing it",
			  ws->protocol, (long)child_pid(t), ws->tpl_forks);
		wtemplate_retire(ws);
		wtemplate_tick(ws);
	}
	return pid;
}
