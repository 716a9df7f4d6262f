/* ringgate-access — the built-in login access checker: `ringgate-access -c
 * CONFIG`, fd 3 is its listening UNIX stream socket (base_dir/login/access,
 * bound by master, connectable by default_login_user only). For each
 * connection it reads one request line (src/lib/access-proto.h), answers
 * "1\n" or "0\n" by login_access_allow / login_access_deny (access-check.h)
 * and closes, as Dovecot's tcpwrap service does with hosts.allow. One
 * non-blocking epoll loop, no connection can stall another: a request must
 * arrive within 10 secs (Dovecot's tcpwrap: the same) and be one line.
 * Runs as default_internal_user, chrooted in base_dir/login, under a
 * seccomp allow-list. */
#include "access/access-check.h"
#include "lib/access-proto.h"
#include "lib/alloc.h"
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define LISTEN_FD 3
#define INPUT_TIMEOUT_SECS 10
#define MAX_CLIENTS 4096

struct client {
	int fd;
	time_t deadline;
	struct access_request_parser req;
	struct client *prev, *next;
};

static struct {
	struct access_rules rules;
	int epfd, sigfd;
	struct client *clients;		/* newest first */
	unsigned count;
	bool stopping;
	unsigned long long allowed, denied;
} srv;

static time_t now_secs(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return ts.tv_sec;
}

static void usage(void)
{
	fprintf(stderr, "usage: ringgate-access -c CONFIG   (fd 3: listening socket)\n");
	exit(1);
}

static void client_free(struct client *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		srv.clients = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	close(c->fd); /* also leaves the epoll set */
	rg_free(c);
	srv.count--;
}

static void client_input(struct client *c)
{
	uint8_t buf[ACCESS_REQUEST_MAX];
	ssize_t n = read(c->fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		if (n < 0)
			log_debug("read: %m");
		client_free(c);
		return;
	}
	size_t consumed;
	struct access_request req;
	const char *error;
	enum parse_result r = access_request_feed(&c->req, buf, (size_t)n, &consumed, &req, &error);
	if (r == PARSE_MORE)
		return;
	if (r == PARSE_ERROR || consumed != (size_t)n) {
		log_error("invalid request: %s", r == PARSE_ERROR ? error : "bytes after the line");
		client_free(c);
		return;
	}
	bool allow = access_rules_allow(&srv.rules, req.rip);
	if (allow)
		srv.allowed++;
	else
		srv.denied++;
	log_debug("%s %s -> %s: %s", req.service, req.rip, req.lip, allow ? "allowed" : "denied");
	/* two bytes into a fresh socket's buffer: never short */
	if (write(c->fd, allow ? "1\n" : "0\n", 2) != 2)
		log_debug("write: %m");
	client_free(c);
}

static void accept_clients(void)
{
	for (;;) {
		int fd = accept4(LISTEN_FD, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_error("accept: %m");
			return;
		}
		if (srv.count >= MAX_CLIENTS) {
			/* the oldest waiting one goes: it has had its time */
			struct client *old = srv.clients;
			while (old->next != NULL)
				old = old->next;
			client_free(old);
		}
		struct client *c = rg_calloc(1, sizeof(*c));
		c->fd = fd;
		c->deadline = now_secs() + INPUT_TIMEOUT_SECS;
		access_request_init(&c->req);
		struct epoll_event e = { .events = EPOLLIN, .data.ptr = c };
		if (epoll_ctl(srv.epfd, EPOLL_CTL_ADD, fd, &e) < 0)
			log_fatal("epoll_ctl: %m");
		c->next = srv.clients;
		if (srv.clients != NULL)
			srv.clients->prev = c;
		srv.clients = c;
		srv.count++;
	}
}

static void expire_clients(void)
{
	time_t now = now_secs();
	struct client *next;
	for (struct client *c = srv.clients; c != NULL; c = next) {
		next = c->next;
		if (now >= c->deadline) {
			log_debug("request timed out");
			client_free(c);
		}
	}
}


int main(int argc, char **argv)
{
	const char *config = NULL;
	int opt;

	log_init("access");
	while ((opt = getopt(argc, argv, "c:")) != -1) {
		if (opt == 'c')
			config = optarg;
		else
			usage();
	}
	if (config == NULL || optind != argc)
		usage();
	struct stat st;
	if (fstat(LISTEN_FD, &st) < 0 || !S_ISSOCK(st.st_mode))
		log_fatal("fd %d is not the listening socket (run by ringgate)", LISTEN_FD);
	signal(SIGPIPE, SIG_IGN);

	char *error = NULL;
	struct settings *set = settings_load(config, &error);
	if (set == NULL)
		log_fatal("%s", error);
	const char *rerr;
	if (!access_rules_init(&srv.rules, set->login_access_allow, set->login_access_deny, &rerr))
		log_fatal("%s", rerr);

	srv.sigfd = sigfd_open_stop();
	srv.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (srv.epfd < 0)
		log_fatal("epoll_create1: %m");
	int fl = fcntl(LISTEN_FD, F_GETFL);
	if (fl < 0 || fcntl(LISTEN_FD, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    fcntl(LISTEN_FD, F_SETFD, FD_CLOEXEC) < 0)
		log_fatal("listening socket: %m");
	static int listen_tag, signal_tag;
	struct epoll_event e = { .events = EPOLLIN, .data.ptr = &listen_tag };
	struct epoll_event es = { .events = EPOLLIN, .data.ptr = &signal_tag };
	if (epoll_ctl(srv.epfd, EPOLL_CTL_ADD, LISTEN_FD, &e) < 0 ||
	    epoll_ctl(srv.epfd, EPOLL_CTL_ADD, srv.sigfd, &es) < 0)
		log_fatal("epoll_ctl: %m");

	privs_drop_internal(set->base_dir, set->default_internal_user);
	settings_free(set);
	rg_alloc_release();
	/* the loop, accepting, reading, writing, closing, logging: no open,
	 * no connect, no exec */
	sandbox_enter_helper(NULL, 0);

	while (!srv.stopping) {
		struct epoll_event evs[64];
		int n = epoll_wait(srv.epfd, evs, 64, srv.clients != NULL ? 1000 : -1);
		if (n < 0 && errno != EINTR)
			log_fatal("epoll_wait: %m");
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == &listen_tag) {
				accept_clients();
			} else if (evs[i].data.ptr == &signal_tag) {
				if (sigfd_drain(srv.sigfd))
					srv.stopping = true;
			} else {
				client_input(evs[i].data.ptr);
			}
		}
		if (srv.clients != NULL)
			expire_clients();
	}
	log_debug("stopping: %llu allowed, %llu denied", srv.allowed, srv.denied);
	while (srv.clients != NULL)
		client_free(srv.clients);
	access_rules_free(&srv.rules);
	return 0;
}
