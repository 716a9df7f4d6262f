/* master-ctl.c — `ringgate who|stats|reload` on base_dir/ringgate-ctl and
 * OpenMetrics on service stats' inet_listener: read one request, maybe
 * wait for fresh counters (LOGIN_STATS_REQUEST to every login process and
 * auth) or for the reload, write the answer, close. Never blocks master;
 * the texts are master-report.c's. */
#include "master/master-private.h"
#include "master/master-report.h"
#include "master/master.h"
#include "lib/alloc.h"
#include "lib/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* A client of the control socket (`ringgate who|stats`) or of the metrics
 * listener: read one request, maybe wait for fresh counters, write the
 * answer, close. Never blocks master. */
enum client_cmd { CMD_NONE, CMD_WHO, CMD_WHO_COUNT, CMD_STATS, CMD_METRICS, CMD_RELOAD };
struct client {
	int fd;
	bool http;
	enum client_cmd cmd;
	bool waiting;                    /* for LOGIN_STATS replies */
	bool waiting_reload;             /* for the reload after this epoll batch */
	char in[1024];
	size_t in_len;
	char *out;
	size_t out_len, out_pos;
	int64_t deadline_ms;
	struct ev_source ev;
	struct client *next;
};
#define MAX_CLIENTS 32
#define CLIENT_TIMEOUT_MSECS 5000
#define STATS_WAIT_MSECS 1000

static struct {
	int ctl_fd;                      /* base_dir/ringgate-ctl */
	char *ctl_path;
	struct ev_source ctl_ev;
	int *http_fds;                   /* service stats { inet_listener http } */
	unsigned http_count;
	struct ev_source http_ev;
	struct client *clients;
	unsigned client_count;
	bool stats_running;
	unsigned stats_outstanding;
	int64_t stats_deadline_ms;
} ctl;

static void client_close(struct client *cl)
{
	for (struct client **pp = &ctl.clients; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == cl) {
			*pp = cl->next;
			break;
		}
	}
	ctl.client_count--;
	ep_del(cl->fd);
	close(cl->fd);
	free(cl->out);
	rg_free(cl);
}

static void client_output(struct client *cl)
{
	while (cl->out_pos < cl->out_len) {
		ssize_t n = send(cl->fd, cl->out + cl->out_pos, cl->out_len - cl->out_pos,
				 MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return; /* EPOLLOUT brings us back */
		if (n <= 0) {
			client_close(cl);
			return;
		}
		cl->out_pos += (size_t)n;
	}
	client_close(cl);
}

/* hand text (malloc'ed, as open_memstream makes it) to the client */
static void client_reply(struct client *cl, char *text, size_t len)
{
	cl->out = text;
	cl->out_len = len;
	cl->out_pos = 0;
	struct epoll_event e = { .events = EPOLLOUT, .data.ptr = &cl->ev };
	if (epoll_ctl(m.epfd, EPOLL_CTL_MOD, cl->fd, &e) < 0) {
		client_close(cl);
		return;
	}
	client_output(cl);
}

static void client_reply_str(struct client *cl, const char *text)
{
	char *copy = strdup(text);
	if (copy == NULL) {
		client_close(cl);
		return;
	}
	client_reply(cl, copy, strlen(copy));
}

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
		sn->workers[sn->worker_count].sessions = m.workers[i].count;
		sn->worker_count++;
	}
}

static void snapshot_free(struct snapshot *sn)
{
	for (unsigned i = 0; i < sn->svc_count; i++)
		rg_free(sn->procs[i]);
}

static void client_answer(struct client *cl)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	if (out == NULL) {
		client_close(cl);
		return;
	}
	if (cl->cmd == CMD_WHO || cl->cmd == CMD_WHO_COUNT) {
		unsigned n;
		struct report_session *s = snapshot_sessions(&n);
		if (cl->cmd == CMD_WHO)
			report_who(out, s, n);
		else
			report_who_count(out, s, n);
		rg_free(s);
	} else {
		struct snapshot sn;
		snapshot_take(&sn);
		if (cl->cmd == CMD_STATS) {
			report_stats(out, sn.svcs, sn.svc_count, sn.workers, sn.worker_count, &sn.auth);
		} else {
			char *body = NULL;
			size_t body_len = 0;
			FILE *b = open_memstream(&body, &body_len);
			if (b != NULL) {
				report_openmetrics(b, sn.svcs, sn.svc_count, sn.workers,
						   sn.worker_count, &sn.auth);
				fclose(b);
				fprintf(out, "HTTP/1.0 200 OK\r\nContent-Type: application/openmetrics-text; "
					"version=1.0.0; charset=utf-8\r\nContent-Length: %zu\r\n"
					"Connection: close\r\n\r\n", body_len);
				fwrite(body, 1, body_len, out);
				free(body);
			}
		}
		snapshot_free(&sn);
	}
	if (fclose(out) != 0) {
		free(text);
		client_close(cl);
		return;
	}
	client_reply(cl, text, len);
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
	struct client *next;
	for (struct client *cl = ctl.clients; cl != NULL; cl = next) {
		next = cl->next;
		if (cl->waiting) {
			cl->waiting = false;
			client_answer(cl);
		}
	}
}

static void client_command(struct client *cl, enum client_cmd cmd)
{
	cl->cmd = cmd;
	if (cmd == CMD_RELOAD) {
		cl->waiting_reload = true;
		m.reload_pending = true;
	} else if (cmd == CMD_STATS || cmd == CMD_METRICS) {
		cl->waiting = true;
		stats_refresh(); /* answered by stats_check() after this epoll batch */
	} else {
		client_answer(cl);
	}
}

/* "who", "who -1", "stats": one line */
static void ctl_request(struct client *cl, char *line)
{
	size_t len = strlen(line);
	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' '))
		line[--len] = '\0';
	if (strcmp(line, "who") == 0)
		client_command(cl, CMD_WHO);
	else if (strcmp(line, "who -1") == 0)
		client_command(cl, CMD_WHO_COUNT);
	else if (strcmp(line, "stats") == 0)
		client_command(cl, CMD_STATS);
	else if (strcmp(line, "reload") == 0)
		client_command(cl, CMD_RELOAD);
	else
		client_reply_str(cl, "error: unknown command\n");
}

/* HTTP/1.0 (or 1.1, answered as 1.0): GET /metrics */
static void http_request(struct client *cl)
{
	char *eol = memchr(cl->in, '\n', cl->in_len);
	*eol = '\0';
	if (eol > cl->in && eol[-1] == '\r')
		eol[-1] = '\0';
	/* METHOD SP /PATH SP HTTP/1.x, nothing else */
	char method[8], path[64];
	const char *sp1 = strchr(cl->in, ' ');
	const char *sp2 = sp1 != NULL ? strchr(sp1 + 1, ' ') : NULL;
	size_t mlen = sp1 != NULL ? (size_t)(sp1 - cl->in) : 0;
	size_t plen = sp2 != NULL ? (size_t)(sp2 - sp1 - 1) : 0;
	bool ok = sp2 != NULL && mlen > 0 && mlen < sizeof(method) && plen > 0 &&
		plen < sizeof(path) && sp1[1] == '/' &&
		(strcmp(sp2 + 1, "HTTP/1.0") == 0 || strcmp(sp2 + 1, "HTTP/1.1") == 0);
	for (size_t i = 0; ok && i < mlen; i++)
		ok = cl->in[i] >= 'A' && cl->in[i] <= 'Z';
	if (ok) {
		memcpy(method, cl->in, mlen);
		method[mlen] = '\0';
		memcpy(path, sp1 + 1, plen);
		path[plen] = '\0';
	}
	if (!ok) {
		client_reply_str(cl, "HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n"
				 "Connection: close\r\n\r\n");
	} else if (strcmp(method, "GET") != 0) {
		client_reply_str(cl, "HTTP/1.0 405 Method Not Allowed\r\nAllow: GET\r\n"
				 "Content-Length: 0\r\nConnection: close\r\n\r\n");
	} else if (strcmp(path, "/metrics") != 0 && strcmp(path, "/") != 0) {
		client_reply_str(cl, "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n"
				 "Connection: close\r\n\r\n");
	} else {
		client_command(cl, CMD_METRICS);
	}
}

static void client_input(struct client *cl)
{
	if (cl->out != NULL || cl->waiting || cl->waiting_reload)
		return;
	ssize_t n = recv(cl->fd, cl->in + cl->in_len, sizeof(cl->in) - 1 - cl->in_len, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		client_close(cl);
		return;
	}
	cl->in_len += (size_t)n;
	cl->in[cl->in_len] = '\0';
	if (!cl->http) {
		char *nl = memchr(cl->in, '\n', cl->in_len);
		if (nl != NULL) {
			*nl = '\0';
			ctl_request(cl, cl->in);
			return;
		}
	} else if (strstr(cl->in, "\r\n\r\n") != NULL || strstr(cl->in, "\n\n") != NULL) {
		http_request(cl);
		return;
	}
	if (cl->in_len >= sizeof(cl->in) - 1)
		client_close(cl); /* no request fits: not one of ours */
}

static void client_event(struct client *cl, uint32_t events)
{
	if (cl->out != NULL && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) != 0)
		client_output(cl);
	else if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0)
		client_input(cl);
}

static void client_accept(int lfd, bool http)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		if (ctl.client_count >= MAX_CLIENTS) {
			close(fd);
			continue;
		}
		struct client *cl = rg_calloc(1, sizeof(*cl));
		cl->fd = fd;
		cl->http = http;
		cl->deadline_ms = now_ms() + CLIENT_TIMEOUT_MSECS;
		cl->ev = (struct ev_source){ EV_CLIENT, cl };
		cl->next = ctl.clients;
		ctl.clients = cl;
		ctl.client_count++;
		ep_add(fd, &cl->ev);
	}
}

static void clients_expire(void)
{
	int64_t now = now_ms();
	struct client *next;
	for (struct client *cl = ctl.clients; cl != NULL; cl = next) {
		next = cl->next;
		if (now >= cl->deadline_ms)
			client_close(cl);
	}
}

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
	struct client *next;
	for (struct client *cl = ctl.clients; cl != NULL; cl = next) {
		next = cl->next;
		if (!cl->waiting_reload)
			continue;
		cl->waiting_reload = false;
		char *text = ret == 0 ? strdup("OK\n") : NULL;
		if (ret != 0 && asprintf(&text, "error: %s\n", error) < 0)
			text = NULL;
		if (text == NULL)
			client_close(cl);
		else
			client_reply(cl, text, strlen(text));
	}
}

void ctl_setup(void)
{
	setup_ctl_socket();
	setup_metrics();
}

/* after the epoll set exists */
void ctl_start(void)
{
	ctl.ctl_ev = (struct ev_source){ EV_CTL_LISTEN, NULL };
	ep_add(ctl.ctl_fd, &ctl.ctl_ev);
	ctl.http_ev = (struct ev_source){ EV_HTTP_LISTEN, NULL };
	for (unsigned i = 0; i < ctl.http_count; i++) {
		struct epoll_event e = { .events = EPOLLIN, .data.ptr = &ctl.http_ev };
		if (epoll_ctl(m.epfd, EPOLL_CTL_ADD, ctl.http_fds[i], &e) < 0)
			log_fatal("epoll_ctl(add) failed: %m");
	}
}

void ctl_event(struct ev_source *ev, uint32_t events)
{
	switch (ev->kind) {
	case EV_CTL_LISTEN:
		client_accept(ctl.ctl_fd, false);
		break;
	case EV_HTTP_LISTEN:
		for (unsigned h = 0; h < ctl.http_count; h++)
			client_accept(ctl.http_fds[h], true);
		break;
	case EV_CLIENT:
		/* may free the client: later events of this batch
		 * for the same client cannot exist (one fd, one event) */
		client_event(ev->ptr, events);
		break;
	default:
		break;
	}
}

bool ctl_busy(void)
{
	return ctl.clients != NULL;
}

void ctl_tick(void)
{
	stats_check();
	clients_expire();
}

void ctl_close(void)
{
	while (ctl.clients != NULL)
		client_close(ctl.clients);
	close(ctl.ctl_fd);
	unlink(ctl.ctl_path);
	rg_free(ctl.ctl_path);
	for (unsigned i = 0; i < ctl.http_count; i++)
		close(ctl.http_fds[i]);
	rg_free(ctl.http_fds);
}
