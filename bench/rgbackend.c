/* rgbackend — the bench's stand-in for "thousands of IMAP backends
 * elsewhere": a tiny IMAP server on 127.0.0.1 that answers a proxy's login
 * dialogue and LOGOUT, and nothing else of IMAP. The stores section
 * (bench/storebench.py) proxies every login of both frontends to it, so
 * what is measured is the frontend and its user store, not a real backend's
 * mail session (which would cost more per login than either frontend and
 * hold both to its rate). It is load-generator-side code: it is never a
 * part of ringgate and stands in for no process of ours.
 *
 * What it speaks: a greeting with [CAPABILITY IMAP4rev1 SASL-IR ID
 * AUTH=PLAIN]; per tagged command CAPABILITY (the list + OK), ID (* ID NIL +
 * OK), LOGIN and AUTHENTICATE PLAIN (with or without an initial response:
 * "+ " then the response line) answered OK whatever the credentials (the
 * frontends checked them against the store), LOGOUT (* BYE + OK, then the
 * connection is closed), anything else OK. Literals are not accepted (the
 * proxies send none for the bench's plain ASCII user and password): a
 * line over the buffer closes the connection.
 *
 * One process, one epoll loop, level-triggered, non-blocking sockets; the
 * answers are small, so a send that does not take everything closes the
 * connection (never seen on loopback; counted and printed at exit).
 *
 * Usage: rgbackend PORT (prints "ready" on stdout once listening; SIGTERM
 * or SIGINT stops it and prints the counters). */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF 2048
#define MAX_FDS 65536

struct bconn {
	size_t len;		/* bytes of an unfinished line in buf */
	bool sasl_wait;		/* "+ " sent: the next line is the response */
	char tag[64];		/* the AUTHENTICATE's tag while sasl_wait */
	char buf[BUF];
};

static struct bconn *conns[MAX_FDS];
static volatile sig_atomic_t stop;
static unsigned long n_sessions, n_logins, n_short_sends, n_overlong;

static const char GREETING[] =
	"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE AUTH=PLAIN] rgbackend ready.\r\n";
static const char CAPS[] = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE AUTH=PLAIN";
static const char LOGGED_IN_CAPS[] = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE";

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void close_conn(int ep, int fd)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
	close(fd);
	free(conns[fd]);
	conns[fd] = NULL;
}

/* false: the connection is to be closed */
static bool put(int fd, const char *s, size_t len)
{
	ssize_t n = send(fd, s, len, MSG_NOSIGNAL);
	if (n == (ssize_t)len)
		return true;
	n_short_sends++;
	return false;
}

/* One command line (without CRLF). false: close (after LOGOUT, or on error). */
static bool command(int fd, struct bconn *c, char *line)
{
	char out[512];
	int n;

	if (c->sasl_wait) {
		c->sasl_wait = false;
		n_logins++;
		n = snprintf(out, sizeof(out), "%s OK [CAPABILITY %s] Logged in\r\n", c->tag,
			     LOGGED_IN_CAPS);
		return put(fd, out, (size_t)n);
	}
	char *sp = strchr(line, ' ');
	if (sp == NULL || sp == line || (size_t)(sp - line) >= sizeof(c->tag))
		return put(fd, "* BAD Error in IMAP command\r\n", 29);
	*sp = '\0';
	const char *tag = line, *cmd = sp + 1;
	size_t cmdlen = strcspn(cmd, " ");

#define IS(word) (cmdlen == sizeof(word) - 1 && strncasecmp(cmd, word, cmdlen) == 0)
	if (IS("LOGOUT")) {
		n = snprintf(out, sizeof(out), "* BYE Logging out\r\n%s OK Logout completed.\r\n", tag);
		put(fd, out, (size_t)n);
		return false;
	}
	if (IS("CAPABILITY"))
		n = snprintf(out, sizeof(out), "* CAPABILITY %s\r\n%s OK Capability completed.\r\n",
			     CAPS, tag);
	else if (IS("ID"))
		n = snprintf(out, sizeof(out), "* ID NIL\r\n%s OK ID completed.\r\n", tag);
	else if (IS("LOGIN")) {
		n_logins++;
		n = snprintf(out, sizeof(out), "%s OK [CAPABILITY %s] Logged in\r\n", tag,
			     LOGGED_IN_CAPS);
	} else if (IS("AUTHENTICATE")) {
		/* "AUTHENTICATE PLAIN" waits for the response; with an initial
		   response the login is done */
		const char *arg = cmd + cmdlen;
		arg += strspn(arg, " ");
		if (strchr(arg, ' ') == NULL) {
			memcpy(c->tag, tag, (size_t)(sp - line) + 1); /* < sizeof(c->tag) */
			c->sasl_wait = true;
			return put(fd, "+ \r\n", 4);
		}
		n_logins++;
		n = snprintf(out, sizeof(out), "%s OK [CAPABILITY %s] Logged in\r\n", tag,
			     LOGGED_IN_CAPS);
	} else
		n = snprintf(out, sizeof(out), "%s OK Done.\r\n", tag);
#undef IS
	return put(fd, out, (size_t)n);
}

/* false: close */
static bool readable(int fd, struct bconn *c)
{
	for (;;) {
		ssize_t n = recv(fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, 0);
		if (n == 0)
			return false;
		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
		c->len += (size_t)n;
		char *start = c->buf, *end = c->buf + c->len, *nl;
		while ((nl = memchr(start, '\n', (size_t)(end - start))) != NULL) {
			*nl = '\0';
			if (nl > start && nl[-1] == '\r')
				nl[-1] = '\0';
			if (!command(fd, c, start))
				return false;
			start = nl + 1;
		}
		c->len = (size_t)(end - start);
		memmove(c->buf, start, c->len);
		if (c->len == sizeof(c->buf) - 1) {
			n_overlong++;
			return false;
		}
		if ((size_t)n < sizeof(c->buf) - 1 - c->len)
			return true;	/* took all there was */
	}
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: rgbackend PORT\n");
		return 2;
	}
	int port = atoi(argv[1]);
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 4096) < 0) {
		perror("rgbackend: listen");
		return 1;
	}
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = ls };
	epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
	struct sigaction act = { .sa_handler = on_signal };
	sigaction(SIGTERM, &act, NULL);
	sigaction(SIGINT, &act, NULL);
	printf("ready\n");
	fflush(stdout);

	struct epoll_event evs[128];
	while (!stop) {
		int n = epoll_wait(ep, evs, 128, -1);
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd == ls) {
				int cfd;
				while ((cfd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					if (cfd >= MAX_FDS) {
						close(cfd);
						continue;
					}
					setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					n_sessions++;
					if (!put(cfd, GREETING, sizeof(GREETING) - 1)) {
						close(cfd);
						continue;
					}
					conns[cfd] = calloc(1, sizeof(struct bconn));
					if (conns[cfd] == NULL) {
						close(cfd);
						continue;
					}
					struct epoll_event cev = { .events = EPOLLIN | EPOLLRDHUP,
								   .data.fd = cfd };
					epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &cev);
				}
				continue;
			}
			if (conns[fd] != NULL && !readable(fd, conns[fd]))
				close_conn(ep, fd);
		}
	}
	printf("sessions %lu logins %lu short_sends %lu overlong %lu\n", n_sessions, n_logins,
	       n_short_sends, n_overlong);
	return 0;
}
