/* ringgate-stats — serves `ringgate who|stats|reload` on the control socket
 * and OpenMetrics on service stats' `inet_listener http`, so that master,
 * which runs as root, reads nothing from the network (Dovecot's stats
 * process; OpenBSD daemons keep control sockets out of the parent).
 *
 * `ringgate-stats -c CONFIG`; fd 3 is its channel to master (IPC framing,
 * lib/ipc.h), fd 4 the listening control socket base_dir/ringgate-ctl
 * (mode 0600, master's uid: bound by master, kept across restarts of this
 * process), fds 5.. the HTTP listeners, RINGGATE_STATS_HTTP of them. Each
 * client sends one request (stats-request.h parses it); the stats process
 * asks master (CTL_REQUEST), copies the answer (CTL_REPLY...) out and
 * closes. One non-blocking epoll loop; every client has 5 s. The control
 * socket and HTTP have their own client limits (a full pool closes its
 * oldest client for a new one), so idle TCP peers never lock out
 * `ringgate who`. Runs as default_internal_user, chrooted in
 * base_dir/login, under a seccomp allow-list. */
#include "stats/stats-request.h"
#include "lib/alloc.h"
#include "lib/ctl-proto.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/privs.h"
#include "lib/sandbox.h"
#include "lib/settings.h"
#include "lib/sigfd.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define CHAN_FD 3
#define CTL_FD 4
#define HTTP_FD0 5
#define MAX_HTTP_LISTENERS 64
/* `ringgate` commands run as root, one at a time in practice */
#define CTL_CLIENT_LIMIT 16
#define CLIENT_TIMEOUT_MSECS 5000
/* an answer (`who` of every session) larger than this is cut off */
#define REPLY_MAX (64u * 1024 * 1024)

enum pool_kind { POOL_CTL, POOL_HTTP, POOL_COUNT };

/* out holds the answer being collected from master (while id != 0), then
 * what is being written: out_pos..out_len is still to send */
struct client {
	enum pool_kind kind;
	int fd;
	uint32_t id;
	int64_t deadline_ms;
	union {
		struct stats_http_parser http;
		struct stats_ctl_parser ctl;
	} p;
	char *out;
	size_t out_len, out_pos;
	bool writing;
	/* closed, freed after the epoll batch (a later event of the batch may
	 * point at it) */
	bool dead;
	struct client *prev, *next;
};

/* newest first; at limit the tail (the oldest) goes for a new client */
struct pool {
	struct client *head, *tail;
	unsigned count, limit;
};

static struct {
	int epfd, sigfd;
	int http_fds[MAX_HTTP_LISTENERS];
	unsigned http_count;
	struct pool pools[POOL_COUNT];
	struct client *dead;
	struct ipc_outq outq;
	uint32_t req_seq;
	/* SIGTERM: accept no more, answer the clients there are, exit */
	bool stopping;
	bool master_gone;
} srv;

/* epoll tags: listeners and signals by address, clients by pointer */
static int tag_chan, tag_signal, tag_ctl, tag_http;

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void usage(void)
{
	fprintf(stderr, "usage: ringgate-stats -c CONFIG   (started by ringgate)\n");
	exit(1);
}

static void client_free(struct client *c)
{
	struct pool *pl = &srv.pools[c->kind];
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		pl->head = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	else
		pl->tail = c->prev;
	pl->count--;
	close(c->fd); /* also leaves the epoll set */
	c->dead = true;
	c->next = srv.dead;
	srv.dead = c;
}

static void clients_bury(void)
{
	while (srv.dead != NULL) {
		struct client *c = srv.dead;
		srv.dead = c->next;
		free(c->out);
		rg_free(c);
	}
}

static void client_output(struct client *c)
{
	while (c->out_pos < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_pos, c->out_len - c->out_pos, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return; /* EPOLLOUT brings us back */
		if (n <= 0) {
			client_free(c);
			return;
		}
		c->out_pos += (size_t)n;
	}
	client_free(c);
}

/* send text (malloc'ed; the client owns it now), then close */
static void client_reply(struct client *c, char *text, size_t len)
{
	free(c->out);
	c->out = text;
	c->out_len = len;
	c->out_pos = 0;
	c->writing = true;
	c->id = 0;
	struct epoll_event e = { .events = EPOLLOUT, .data.ptr = c };
	if (epoll_ctl(srv.epfd, EPOLL_CTL_MOD, c->fd, &e) < 0) {
		client_free(c);
		return;
	}
	client_output(c);
}

static void client_reply_str(struct client *c, const char *text)
{
	char *copy = strdup(text);
	if (copy == NULL) {
		client_free(c);
		return;
	}
	client_reply(c, copy, strlen(copy));
}

/* ask master; the answer comes as CTL_REPLY... with this id */
static void client_ask(struct client *c, enum ctl_cmd cmd, const char *users)
{
	if (++srv.req_seq == 0)
		srv.req_seq = 1;
	c->id = srv.req_seq;
	/* nothing more to read from it: a peer that half-closed would keep
	 * EPOLLIN ready and spin the loop until the answer (HUP and ERR still
	 * come) */
	struct epoll_event e = { .events = 0, .data.ptr = c };
	if (epoll_ctl(srv.epfd, EPOLL_CTL_MOD, c->fd, &e) < 0)
		log_fatal("epoll_ctl: %m");
	struct ipc_msg msg;
	ipc_msg_init(&msg, IPC_CTL_REQUEST, c->id);
	ipc_msg_add_str(&msg, IPC_F_CMD, ctl_cmd_name(cmd));
	if (users != NULL && users[0] != '\0')
		ipc_msg_add_str(&msg, IPC_F_USER, users);
	int ret = ipc_outq_epoll_send(&srv.outq, srv.epfd, CHAN_FD, &tag_chan, &msg, -1);
	if (ret < 0)
		log_fatal("sending to master failed: %s", strerror(-ret));
}

static const char *http_error_text(enum stats_http_answer a)
{
	switch (a) {
	case STATS_HTTP_BAD_METHOD:
		return "HTTP/1.0 405 Method Not Allowed\r\nAllow: GET\r\n"
		       "Content-Length: 0\r\nConnection: close\r\n\r\n";
	case STATS_HTTP_NOT_FOUND:
		return "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
	case STATS_HTTP_BAD_REQUEST:
	case STATS_HTTP_METRICS:
		break;
	}
	return "HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
}

static void client_input(struct client *c)
{
	uint8_t buf[1024];
	ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		client_free(c);
		return;
	}
	size_t consumed;
	const char *error;
	if (c->kind == POOL_CTL) {
		enum ctl_cmd cmd;
		enum parse_result r = stats_ctl_feed(&c->p.ctl, buf, (size_t)n, &consumed, &cmd,
						     &error);
		if (r == PARSE_ERROR) {
			log_debug("control client: %s", error);
			client_free(c);
		} else if (r == PARSE_OK && cmd == CTL_CMD_NONE) {
			client_reply_str(c, "error: unknown command\n");
		} else if (r == PARSE_OK) {
			client_ask(c, cmd, cmd == CTL_CMD_AUTH_FLUSH ? stats_ctl_args(&c->p.ctl) :
				   NULL);
		}
		return;
	}
	enum parse_result r = stats_http_feed(&c->p.http, buf, (size_t)n, &consumed, &error);
	if (r == PARSE_ERROR) {
		/* no request fits: not one of ours */
		log_debug("http client: %s", error);
		client_free(c);
	} else if (r == PARSE_OK) {
		enum stats_http_answer a = stats_http_answer(&c->p.http);
		if (a == STATS_HTTP_METRICS)
			client_ask(c, CTL_CMD_METRICS, NULL);
		else
			client_reply_str(c, http_error_text(a));
	}
}

static void client_event(struct client *c, uint32_t events)
{
	if (c->dead)
		return;
	if (c->writing) {
		if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) != 0)
			client_output(c);
	} else if (c->id != 0) {
		/* waiting for master: a peer that hung up is dropped now */
		if ((events & (EPOLLERR | EPOLLHUP)) != 0)
			client_free(c);
	} else if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0) {
		client_input(c);
	}
}

static void accept_clients(int lfd, enum pool_kind kind)
{
	struct pool *pl = &srv.pools[kind];
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_error("accept: %m");
			return;
		}
		if (pl->count >= pl->limit) {
			/* the oldest goes: a pool full of silent peers makes room */
			log_debug("%s: client_limit (%u) reached: closing the oldest client",
				  kind == POOL_CTL ? "control socket" : "http", pl->limit);
			client_free(pl->tail);
		}
		struct client *c = rg_calloc(1, sizeof(*c));
		c->kind = kind;
		c->fd = fd;
		c->deadline_ms = now_ms() + CLIENT_TIMEOUT_MSECS;
		if (kind == POOL_CTL)
			stats_ctl_init(&c->p.ctl);
		else
			stats_http_init(&c->p.http);
		struct epoll_event e = { .events = EPOLLIN, .data.ptr = c };
		if (epoll_ctl(srv.epfd, EPOLL_CTL_ADD, fd, &e) < 0)
			log_fatal("epoll_ctl: %m");
		c->next = pl->head;
		if (pl->head != NULL)
			pl->head->prev = c;
		else
			pl->tail = c;
		pl->head = c;
		pl->count++;
	}
}

static struct client *client_by_id(uint32_t id)
{
	for (unsigned k = 0; k < POOL_COUNT; k++) {
		for (struct client *c = srv.pools[k].head; c != NULL; c = c->next) {
			if (c->id == id && !c->writing)
				return c;
		}
	}
	return NULL;
}

/* a piece of master's answer; the last one sends it */
static void master_reply(const struct ipc_rx *rx)
{
	struct client *c = client_by_id(rx->hdr.id);
	if (c == NULL)
		return; /* gone (timed out, hung up, pushed out) meanwhile */
	const char *text = ipc_str(&rx->fields, IPC_F_TEXT);
	size_t len = text != NULL ? rx->fields.len[IPC_F_TEXT] : 0;
	if (c->out_len + len > REPLY_MAX) {
		log_error("answer larger than %u bytes: dropped", REPLY_MAX);
		client_free(c);
		return;
	}
	if (len > 0) {
		char *grown = realloc(c->out, c->out_len + len);
		if (grown == NULL)
			log_fatal("out of memory");
		memcpy(grown + c->out_len, text, len);
		c->out = grown;
		c->out_len += len;
	}
	if (rx->hdr.type != IPC_CTL_REPLY_END)
		return;
	char *body = c->out;
	size_t body_len = c->out_len;
	c->out = NULL;
	c->out_len = 0;
	if (c->kind == POOL_CTL) {
		if (body == NULL && (body = strdup("")) == NULL)
			log_fatal("out of memory");
		client_reply(c, body, body_len);
		return;
	}
	char *resp = NULL;
	int n = asprintf(&resp, "HTTP/1.0 200 OK\r\nContent-Type: application/openmetrics-text; "
			 "version=1.0.0; charset=utf-8\r\nContent-Length: %zu\r\n"
			 "Connection: close\r\n\r\n%.*s", body_len, (int)body_len,
			 body != NULL ? body : "");
	free(body);
	if (n < 0) {
		client_free(c);
		return;
	}
	client_reply(c, resp, (size_t)n);
}

static void chan_input(struct ipc_rx *rx)
{
	for (unsigned i = 0; i < 64; i++) {
		const char *error = NULL;
		int ret = ipc_recv(CHAN_FD, rx, &error);
		if (ret == -EAGAIN)
			return;
		if (ret == 0 || (ret < 0 && ret != -EPROTO)) {
			log_debug("master closed the channel: stopping");
			srv.master_gone = true;
			return;
		}
		if (ret == -EPROTO)
			log_fatal("malformed message from master: %s", error);
		if (rx->fd >= 0)
			log_fatal("message from master with an unexpected fd");
		if (rx->hdr.type != IPC_CTL_REPLY && rx->hdr.type != IPC_CTL_REPLY_END)
			log_fatal("unexpected message %s from master", ipc_type_name(rx->hdr.type));
		master_reply(rx);
	}
}

static void expire_clients(void)
{
	int64_t now = now_ms();
	for (unsigned k = 0; k < POOL_COUNT; k++) {
		struct client *next;
		for (struct client *c = srv.pools[k].head; c != NULL; c = next) {
			next = c->next;
			if (now >= c->deadline_ms)
				client_free(c);
		}
	}
}

/* the loop, accepting, reading, writing, the channel, logging: no open, no
 * connect, no exec */
static void enter_sandbox(void)
{
	static const int calls[] = {
		/* clients and the channel to master */
		SYS_recvfrom, SYS_sendto, SYS_recvmsg, SYS_sendmsg,
	};
	sandbox_enter_helper(calls, sizeof(calls) / sizeof(calls[0]));
}

static void check_fd(int fd, const char *what)
{
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
		log_fatal("fd %d is not %s (run by ringgate)", fd, what);
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		log_fatal("fd %d: %m", fd);
}

/* SIGTERM (a stop, or a reload that changed client_limit): new clients
 * wait in the backlog for the next process, these get their answers */
static void stop_accepting(void)
{
	if (srv.stopping)
		return;
	srv.stopping = true;
	(void)epoll_ctl(srv.epfd, EPOLL_CTL_DEL, CTL_FD, NULL);
	for (unsigned i = 0; i < srv.http_count; i++)
		(void)epoll_ctl(srv.epfd, EPOLL_CTL_DEL, srv.http_fds[i], NULL);
}

static void ep_add(int fd, void *ptr)
{
	struct epoll_event e = { .events = EPOLLIN, .data.ptr = ptr };
	if (epoll_ctl(srv.epfd, EPOLL_CTL_ADD, fd, &e) < 0)
		log_fatal("epoll_ctl: %m");
}

int main(int argc, char **argv)
{
	const char *config = NULL;
	int opt;

	log_init("stats");
	while ((opt = getopt(argc, argv, "c:")) != -1) {
		if (opt == 'c')
			config = optarg;
		else
			usage();
	}
	if (config == NULL || optind != argc)
		usage();
	const char *env = getenv("RINGGATE_STATS_HTTP");
	char *end = NULL;
	unsigned long http = env != NULL ? strtoul(env, &end, 10) : 0;
	if (env != NULL && (*env == '\0' || *end != '\0' || http > MAX_HTTP_LISTENERS))
		log_fatal("RINGGATE_STATS_HTTP=%s: not a listener count", env);
	srv.http_count = (unsigned)http;
	check_fd(CHAN_FD, "the channel to master");
	check_fd(CTL_FD, "the control socket");
	for (unsigned i = 0; i < srv.http_count; i++)
		check_fd(HTTP_FD0 + (int)i, "an HTTP listener");
	signal(SIGPIPE, SIG_IGN);

	char *error = NULL;
	struct settings *set = settings_load(config, &error);
	if (set == NULL)
		log_fatal("%s", error);
	const struct service_settings *ss = settings_service(set, "stats");
	srv.pools[POOL_CTL].limit = CTL_CLIENT_LIMIT;
	srv.pools[POOL_HTTP].limit = ss != NULL && ss->client_limit > 0 ? ss->client_limit : 1;
	/* every client an fd, and some for the rest */
	rlim_t nofile = CTL_CLIENT_LIMIT + srv.pools[POOL_HTTP].limit + srv.http_count + 64;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < nofile) {
		rl.rlim_cur = nofile;
		if (rl.rlim_max < nofile)
			rl.rlim_max = nofile;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warning("setrlimit(RLIMIT_NOFILE, %llu): %m", (unsigned long long)nofile);
	}

	srv.sigfd = sigfd_open_stop();
	srv.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (srv.epfd < 0)
		log_fatal("epoll_create1: %m");
	ep_add(srv.sigfd, &tag_signal);
	ep_add(CHAN_FD, &tag_chan);
	ep_add(CTL_FD, &tag_ctl);
	for (unsigned i = 0; i < srv.http_count; i++) {
		srv.http_fds[i] = HTTP_FD0 + (int)i;
		ep_add(srv.http_fds[i], &tag_http);
	}

	privs_drop_internal(set->base_dir, set->default_internal_user);
	settings_free(set);
	rg_alloc_release();
	enter_sandbox();

	struct ipc_rx *rx = rg_malloc(sizeof(*rx));
	for (;;) {
		bool busy = srv.pools[POOL_CTL].head != NULL || srv.pools[POOL_HTTP].head != NULL;
		if (srv.master_gone || (srv.stopping && !busy))
			break;
		struct epoll_event evs[64];
		int n = epoll_wait(srv.epfd, evs, 64, busy ? 500 : -1);
		if (n < 0 && errno != EINTR)
			log_fatal("epoll_wait: %m");
		for (int i = 0; i < n; i++) {
			void *ptr = evs[i].data.ptr;
			if (ptr == &tag_chan) {
				if ((evs[i].events & EPOLLOUT) != 0 &&
				    ipc_outq_epoll_flush(&srv.outq, srv.epfd, CHAN_FD, &tag_chan) < 0)
					log_fatal("sending to master failed");
				if ((evs[i].events & ~(uint32_t)EPOLLOUT) != 0)
					chan_input(rx);
			} else if (ptr == &tag_signal) {
				if (sigfd_drain(srv.sigfd))
					stop_accepting();
			} else if (ptr == &tag_ctl) {
				accept_clients(CTL_FD, POOL_CTL);
			} else if (ptr == &tag_http) {
				for (unsigned h = 0; h < srv.http_count; h++)
					accept_clients(srv.http_fds[h], POOL_HTTP);
			} else {
				client_event(ptr, evs[i].events);
			}
		}
		expire_clients();
		clients_bury();
	}
	rg_free(rx);
	for (unsigned k = 0; k < POOL_COUNT; k++) {
		while (srv.pools[k].head != NULL)
			client_free(srv.pools[k].head);
	}
	clients_bury();
	ipc_outq_clear(&srv.outq);
	return 0;
}
