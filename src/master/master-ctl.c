/* master-ctl.c — the stats process (ringgate-stats, src/stats) and what it
 * asks for. Master binds its sockets (base_dir/ringgate-ctl and service
 * stats' inet_listener http) and keeps them across its restarts; the
 * process reads every byte from them and sends CTL_REQUEST with a command
 * (lib/ctl-proto.h). Master answers `who` at once, `stats` and `metrics`
 * when fresh counters are in (LOGIN_STATS_REQUEST to every login process
 * and auth, at most STATS_WAIT_MSECS), `reload` after the reload; the
 * texts are master-report.c's, sent as CTL_REPLY pieces. */
#include "master/master-private.h"
#include "master/master-log.h"
#include "master/master-report.h"
#include "master/master.h"
#include "lib/alloc.h"
#include "lib/ctl-proto.h"
#include "lib/log.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define STATS_WAIT_MSECS 1000
/* the stats process has a few hundred clients at most; more requests in
 * flight than this is a process gone wrong */
#define MAX_REQUESTS 65536
/* F_TEXT per CTL_REPLY: the payload with room for the field's header */
#define REPLY_PIECE (IPC_MAX_PAYLOAD - 64)
/* reloads the stats process asks for: at most one per this many ms (the
 * requests in between share the next one), so that a stats process gone
 * wrong cannot make master churn login processes */
#define RELOAD_MIN_INTERVAL_MSECS 1000

/* a CTL_REQUEST waiting for counters or for the reload */
struct ctl_request {
	uint32_t id;
	enum ctl_cmd cmd;
	struct ctl_request *next;
};

static struct {
	int ctl_fd;                      /* base_dir/ringgate-ctl */
	char *ctl_path;
	int *http_fds;                   /* service stats { inet_listener http } */
	unsigned http_count;
	struct ctl_request *waiting;     /* newest first */
	unsigned waiting_count;
	bool stats_running;
	unsigned stats_outstanding;
	int64_t stats_deadline_ms;
	bool reload_wanted;
	int64_t next_reload_ms;
} ctl;

/* the sessions (workers), oldest first; strings point into the children */
static struct report_session *snapshot_sessions(unsigned *count_r)
{
	unsigned n = 0;
	for (struct child *c = m.worker_list; c != NULL; c = c->next)
		n++;
	struct report_session *s = rg_calloc(n + 1, sizeof(*s));
	unsigned i = n;
	for (struct child *c = m.worker_list; c != NULL; c = c->next) {
		struct report_session *r = &s[--i];
		r->user = c->user != NULL ? c->user : "";
		r->protocol = c->wsvc->protocol;
		r->rip = c->rip != NULL ? c->rip : "";
		r->pid = child_pid(c);
		r->proxy_pid = c->proxy_pid;
		r->since = c->since;
		r->tls = c->tls;
	}
	*count_r = n;
	return s;
}

struct snapshot {
	struct auth_counters auth;
	struct report_service svcs[2];
	struct report_process *procs[2];
	struct report_workers workers[2];
	unsigned svc_count, worker_count;
};

static void snapshot_take(struct snapshot *sn)
{
	memset(sn, 0, sizeof(*sn));
	for (unsigned i = 0; i < AUTH_STAT_COUNT; i++)
		sn->auth.v[i] = m.auth_gone.v[i] + m.auth_stats.v[i];
	for (unsigned s = 0; s < m.service_count && sn->svc_count < 2; s++) {
		struct login_service *svc = m.services[s];
		if (svc->retired)
			continue;
		/* with the processes of retired services of the same name */
		unsigned total = 0;
		for (unsigned t = 0; t < m.service_count; t++) {
			if (strcmp(m.services[t]->set->name, svc->set->name) == 0)
				total += m.services[t]->login_count;
		}
		struct report_service *r = &sn->svcs[sn->svc_count];
		struct report_process *procs = rg_calloc(total + 1, sizeof(*procs));
		unsigned n = 0;
		for (unsigned t = 0; t < m.service_count; t++) {
			if (strcmp(m.services[t]->set->name, svc->set->name) != 0)
				continue;
			for (struct child *c = m.services[t]->logins; c != NULL && n < total;
			     c = c->next) {
				procs[n].pid = child_pid(c);
				procs[n].c = c->stats;
				n++;
			}
		}
		r->name = svc->set->name;
		r->mode = svc->set->service_count == 1 ? "security" : "performance";
		r->procs = procs;
		r->proc_count = n;
		r->gone = svc->gone;
		sn->procs[sn->svc_count++] = procs;
	}
	for (unsigned i = 0; i < 2; i++) {
		if (m.workers[i].protocol == NULL)
			continue;
		sn->workers[sn->worker_count].name = m.workers[i].protocol;
		sn->workers[sn->worker_count].sessions = m.workers[i].busy;
		sn->worker_count++;
	}
}

static void snapshot_free(struct snapshot *sn)
{
	for (unsigned i = 0; i < sn->svc_count; i++)
		rg_free(sn->procs[i]);
}

/* the answer to one request, in pieces that fit a message */
static void ctl_reply(uint32_t id, const char *text, size_t len)
{
	struct child *c = m.stats.child;
	if (c == NULL || c->chan < 0)
		return; /* its client went with it */
	struct ipc_msg *msg = rg_malloc(sizeof(*msg));
	size_t pos = 0;
	do {
		size_t n = len - pos < REPLY_PIECE ? len - pos : REPLY_PIECE;
		bool last = pos + n == len;
		ipc_msg_init(msg, last ? IPC_CTL_REPLY_END : IPC_CTL_REPLY, id);
		ipc_msg_add(msg, IPC_F_TEXT, text + pos, n);
		int ret = chan_send(c, msg, -1);
		if (ret < 0) {
			/* gone, or not reading what it asked for (the queue is
			 * bounded): a broken peer */
			char why[96];
			snprintf(why, sizeof(why), "sending an answer failed: %s", strerror(-ret));
			stats_kill(c, why);
			break;
		}
		pos += n;
	} while (pos < len);
	rg_free(msg);
}

static void ctl_answer(uint32_t id, enum ctl_cmd cmd)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	if (out == NULL)
		log_fatal("open_memstream() failed: %m");
	if (cmd == CTL_CMD_WHO || cmd == CTL_CMD_WHO_COUNT) {
		unsigned n;
		struct report_session *s = snapshot_sessions(&n);
		if (cmd == CTL_CMD_WHO)
			report_who(out, s, n);
		else
			report_who_count(out, s, n);
		rg_free(s);
	} else {
		struct snapshot sn;
		snapshot_take(&sn);
		if (cmd == CTL_CMD_STATS)
			report_stats(out, sn.svcs, sn.svc_count, sn.workers, sn.worker_count, &sn.auth);
		else
			report_openmetrics(out, sn.svcs, sn.svc_count, sn.workers, sn.worker_count,
					   &sn.auth);
		snapshot_free(&sn);
	}
	if (fclose(out) != 0)
		log_fatal("formatting an answer failed: %m");
	ctl_reply(id, text, len);
	free(text);
}

/* Ask every login process for its counters; clients waiting for them are
 * answered when all replied or after STATS_WAIT_MSECS (stats_check()). */
static void stats_refresh(void)
{
	if (ctl.stats_running)
		return;
	ctl.stats_running = true;
	ctl.stats_outstanding = 0;
	ctl.stats_deadline_ms = now_ms() + STATS_WAIT_MSECS;
	struct child *auth = m.auth.child;
	if (auth != NULL && auth->chan >= 0 && !auth->st.terminating) {
		struct ipc_msg msg;
		ipc_msg_init(&msg, IPC_LOGIN_STATS_REQUEST, 0);
		if (chan_send(auth, &msg, -1) == 0) {
			auth->stats_wait = true;
			ctl.stats_outstanding++;
		}
	}
	for (unsigned s = 0; s < m.service_count; s++) {
		for (struct child *c = m.services[s]->logins; c != NULL; c = c->next) {
			if (c->chan < 0 || c->st.terminating)
				continue;
			struct ipc_msg msg;
			ipc_msg_init(&msg, IPC_LOGIN_STATS_REQUEST, 0);
			if (chan_send(c, &msg, -1) == 0) {
				c->stats_wait = true;
				ctl.stats_outstanding++;
			}
		}
	}
}

/* answer the requests that waited for counters, once all are in or the
 * wait is over */
static void stats_check(void)
{
	if (!ctl.stats_running || (ctl.stats_outstanding > 0 && now_ms() < ctl.stats_deadline_ms))
		return;
	ctl.stats_running = false;
	ctl.stats_outstanding = 0;
	if (m.auth.child != NULL)
		m.auth.child->stats_wait = false;
	for (unsigned s = 0; s < m.service_count; s++) {
		for (struct child *c = m.services[s]->logins; c != NULL; c = c->next)
			c->stats_wait = false;
	}
	struct ctl_request **pp = &ctl.waiting;
	while (*pp != NULL) {
		struct ctl_request *r = *pp;
		if (r->cmd != CTL_CMD_STATS && r->cmd != CTL_CMD_METRICS) {
			pp = &r->next;
			continue;
		}
		*pp = r->next;
		ctl.waiting_count--;
		ctl_answer(r->id, r->cmd);
		rg_free(r);
	}
}

static void requests_free(void)
{
	while (ctl.waiting != NULL) {
		struct ctl_request *r = ctl.waiting;
		ctl.waiting = r->next;
		rg_free(r);
	}
	ctl.waiting_count = 0;
}

void stats_reply_noted(struct child *c)
{
	if (!c->stats_wait)
		return;
	c->stats_wait = false;
	if (ctl.stats_outstanding > 0)
		ctl.stats_outstanding--;
}

void ctl_reload_done(int ret, const char *error)
{
	/* this reload read the file after every waiting request came */
	ctl.reload_wanted = false;
	struct ctl_request **pp = &ctl.waiting;
	while (*pp != NULL) {
		struct ctl_request *r = *pp;
		if (r->cmd != CTL_CMD_RELOAD) {
			pp = &r->next;
			continue;
		}
		*pp = r->next;
		ctl.waiting_count--;
		char *text = ret == 0 ? rg_strdup("OK\n") : rg_strdup_printf("error: %s\n", error);
		ctl_reply(r->id, text, strlen(text));
		rg_free(text);
		rg_free(r);
	}
}

/* ---- the stats process ------------------------------------------------ */

void stats_kill(struct child *c, const char *why)
{
	log_error("service(stats): %s: killing process %ld", why, (long)child_pid(c));
	chan_close(c);
	c->st.terminating = true;
	kill(child_pid(c), SIGKILL);
	/* its requests go when it is reaped: this may run inside a walk over
	 * them (an answer that could not be sent) */
}

void stats_message(struct child *c, struct ipc_rx *rx)
{
	if (rx->fd >= 0) {
		close(rx->fd);
		stats_kill(c, "message with an unexpected fd");
		return;
	}
	const char *name = ipc_str(&rx->fields, IPC_F_CMD);
	enum ctl_cmd cmd = name == NULL ? CTL_CMD_NONE :
		ctl_cmd_lookup(name, rx->fields.len[IPC_F_CMD]);
	if (rx->hdr.type != IPC_CTL_REQUEST || cmd == CTL_CMD_NONE) {
		char why[80];
		snprintf(why, sizeof(why), "unexpected message %s", ipc_type_name(rx->hdr.type));
		stats_kill(c, why);
		return;
	}
	if (cmd == CTL_CMD_WHO || cmd == CTL_CMD_WHO_COUNT) {
		ctl_answer(rx->hdr.id, cmd);
		return;
	}
	if (cmd == CTL_CMD_AUTH_FLUSH) {
		const char *users = ipc_str(&rx->fields, IPC_F_USER);
		static const char ok[] = "OK\n", no_auth[] = "error: auth is not running\n";
		if (auth_cache_flush_request(users != NULL ? users : "") < 0)
			ctl_reply(rx->hdr.id, no_auth, sizeof(no_auth) - 1);
		else
			ctl_reply(rx->hdr.id, ok, sizeof(ok) - 1);
		return;
	}
	if (ctl.waiting_count >= MAX_REQUESTS) {
		stats_kill(c, "too many requests in flight");
		return;
	}
	struct ctl_request *r = rg_calloc(1, sizeof(*r));
	r->id = rx->hdr.id;
	r->cmd = cmd;
	r->next = ctl.waiting;
	ctl.waiting = r;
	ctl.waiting_count++;
	if (cmd == CTL_CMD_RELOAD)
		ctl.reload_wanted = true; /* ctl_tick() starts it */
	else
		stats_refresh(); /* answered by stats_check() after this epoll batch */
}

bool stats_wanted(void)
{
	return true;
}

int stats_spawn(struct proc_group *g)
{
	/* fd 3 the channel, 4 the control socket, then the HTTP listeners */
	unsigned nfds = 1 + ctl.http_count;
	int *fds = rg_calloc(nfds, sizeof(int));
	fds[0] = ctl.ctl_fd;
	for (unsigned i = 0; i < ctl.http_count; i++)
		fds[1 + i] = ctl.http_fds[i];
	char env[48];
	snprintf(env, sizeof(env), "RINGGATE_STATS_HTTP=%u", ctl.http_count);
	int ret = proc_single_start(g, true, fds, nfds, env);
	rg_free(fds);
	return ret;
}

void stats_exited(struct child *c)
{
	(void)c;
	/* its clients went with it */
	requests_free();
}

/* ---- the sockets ------------------------------------------------------ */

char *master_ctl_path(const struct settings *set)
{
	return rg_strdup_printf("%s/ringgate-ctl", set->base_dir);
}

/* the control socket: only master's uid may connect (mode 0600) */
static void setup_ctl_socket(void)
{
	ctl.ctl_path = master_ctl_path(m.set);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(ctl.ctl_path) >= sizeof(sa.sun_path))
		startup_fatal("%s: path too long for a UNIX socket", ctl.ctl_path);
	strcpy(sa.sun_path, ctl.ctl_path);
	(void)unlink(ctl.ctl_path); /* no live master owns it: we checked the pid file */
	ctl.ctl_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ctl.ctl_fd < 0)
		startup_fatal("socket(AF_UNIX) failed: %m");
	mode_t old = umask(0077);
	int ret = bind(ctl.ctl_fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (ret < 0)
		startup_fatal("bind(%s) failed: %m", ctl.ctl_path);
	if (chmod(ctl.ctl_path, 0600) < 0)
		startup_fatal("chmod(%s) failed: %m", ctl.ctl_path);
	if (listen(ctl.ctl_fd, 16) < 0)
		startup_fatal("listen(%s) failed: %m", ctl.ctl_path);
}

static void setup_metrics(void)
{
	const struct service_settings *ss = settings_service(m.set, "stats");
	for (unsigned i = 0; ss != NULL && i < ss->listener_count; i++) {
		const struct listener_settings *ls = &ss->listeners[i];
		if (ls->port == 0)
			continue;
		struct master_addr *addrs;
		unsigned count;
		char *error;
		if (master_addr_parse(ls->address, ls->port, &addrs, &count, &error) < 0)
			startup_fatal("service(stats): inet_listener %s: %s", ls->name, error);
		for (unsigned j = 0; j < count; j++) {
			int fd = master_addr_listen(&addrs[j], false, 16, &error);
			if (fd < 0)
				startup_fatal("service(stats): %s", error);
			ctl.http_fds = rg_realloc(ctl.http_fds, (ctl.http_count + 1) * sizeof(*ctl.http_fds));
			ctl.http_fds[ctl.http_count++] = fd;
		}
		rg_free(addrs);
	}
}

void ctl_setup(void)
{
	setup_ctl_socket();
	setup_metrics();
}

bool ctl_busy(void)
{
	return ctl.waiting != NULL;
}

void ctl_tick(void)
{
	stats_check();
	int64_t now = now_ms();
	if (ctl.reload_wanted && now >= ctl.next_reload_ms) {
		ctl.reload_wanted = false;
		ctl.next_reload_ms = now + RELOAD_MIN_INTERVAL_MSECS;
		m.reload_pending = true; /* at the end of the next epoll batch, as SIGHUP */
	}
}

void ctl_close(void)
{
	requests_free();
	close(ctl.ctl_fd);
	unlink(ctl.ctl_path);
	rg_free(ctl.ctl_path);
	for (unsigned i = 0; i < ctl.http_count; i++)
		close(ctl.http_fds[i]);
	rg_free(ctl.http_fds);
}
