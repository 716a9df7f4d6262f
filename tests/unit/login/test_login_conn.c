/* test_login_conn.c — the login connection layer in this process, on its
 * real ring, with no other process: login_conn_run() runs in a thread and
 * the test plays the client (TCP on 127.0.0.1), auth and master (SEQPACKET
 * pairs, docs/ipc.md). Asserts the exact bytes each side gets (the client's
 * expected bytes come from the same IMAP core run in memory), the state
 * transitions the layer logs (conn_set_state's debug lines), the hand-off
 * of the client's own socket with the pipelined bytes, an implicit-TLS
 * client handed to the pump after its login, and the exit when master goes
 * away. */
#include "login/login-conn.h"
#include "login/login-proto.h"
#include "lib/access-proto.h"
#include "lib/alloc.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/net.h"
#include "tls/tls.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define GREETING "Test server ready."
#define COOKIE "0123456789abcdef0123456789abcdef"

struct world {
	int master[2], auth[2]; /* [0]: the layer's, [1]: the test's */
	int listen_fd, log_pipe[2];
	uint16_t port;
	struct net_list none;
	struct login_conn_config cfg;
	pthread_t thread;
	int exit_status;
	char log[65536];
	size_t log_len;
	struct ipc_rx rx;
};

static void *run_layer(void *arg)
{
	struct world *w = arg;
	w->exit_status = login_conn_run(&w->cfg);
	return NULL;
}

static void start_with(struct world *w, struct tls_ctx *(*tls_build)(void), const bool *ssl,
		       const char *access_path)
{
	memset(w, 0, sizeof(*w));
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, w->master), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, w->auth), 0);
	assert_int_equal(fcntl(w->master[0], F_SETFL, O_NONBLOCK), 0);
	w->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(w->listen_fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(w->listen_fd, 16), 0);
	socklen_t sl = sizeof(sin);
	assert_int_equal(getsockname(w->listen_fd, (struct sockaddr *)&sin, &sl), 0);
	w->port = ntohs(sin.sin_port);
	const char *error;
	assert_true(net_list_parse("", &w->none, &error));

	/* info and debug lines into a pipe the test reads */
	assert_int_equal(pipe2(w->log_pipe, O_CLOEXEC), 0);
	(void)fcntl(w->log_pipe[0], F_SETPIPE_SZ, 1 << 20);
	assert_int_equal(fcntl(w->log_pipe[0], F_SETFL, O_NONBLOCK), 0);
	struct log_sink sinks[LOG_SINK_COUNT] = {
		[LOG_SINK_ERROR] = { 2, LOG_SINK_STDERR },
		[LOG_SINK_INFO] = { w->log_pipe[1], LOG_SINK_STDERR },
		[LOG_SINK_DEBUG] = { w->log_pipe[1], LOG_SINK_STDERR },
	};
	log_set_sinks(sinks, 0);
	log_set_debug(true);

	static int lfds[1];
	lfds[0] = w->listen_fd;
	w->cfg = (struct login_conn_config){
		.proto = &imap_login_proto,
		.service = "imap",
		.greeting = GREETING,
		.mechanisms = "PLAIN LOGIN",
		.trusted = &w->none,
		.haproxy_trusted = &w->none,
		.login_timeout = 60,
		.client_limit = 10,
		.master_fd = w->master[0],
		.auth_fd = w->auth[0],
		.listen_fds = lfds,
		.listen_ssl = ssl,
		.listen_count = 1,
		.tls_build = tls_build,
	};
	if (access_path != NULL) {
		static const char *names[1], *paths[1];
		names[0] = "test";
		paths[0] = access_path;
		w->cfg.access_names = names;
		w->cfg.access_paths = paths;
		w->cfg.access_count = 1;
		w->cfg.access_timeout = 30;
	}
	assert_int_equal(pthread_create(&w->thread, NULL, run_layer, w), 0);
}

static void start(struct world *w)
{
	start_with(w, NULL, NULL, NULL);
}

/* master goes away: the layer shuts down and returns */
static void stop(struct world *w)
{
	close(w->master[1]);
	assert_int_equal(pthread_join(w->thread, NULL), 0);
	assert_int_equal(w->exit_status, 0);
	close(w->master[0]);
	close(w->auth[1]);
	close(w->listen_fd);
	close(w->log_pipe[0]);
	close(w->log_pipe[1]);
	net_list_free(&w->none);
}

static void read_log(struct world *w)
{
	ssize_t n;
	while (w->log_len < sizeof(w->log) - 1 &&
	       (n = read(w->log_pipe[0], w->log + w->log_len, sizeof(w->log) - 1 - w->log_len)) > 0)
		w->log_len += (size_t)n;
	w->log[w->log_len] = '\0';
}

/* the layer logged text (within 5 s) */
static void expect_log(struct world *w, const char *text)
{
	for (int i = 0; i < 500; i++) {
		read_log(w);
		if (strstr(w->log, text) != NULL)
			return;
		usleep(10000);
	}
	fail_msg("not logged: %s\n--- log:\n%s", text, w->log);
}

/* a and b are logged, a before b (a phase object ends at its transition) */
static void expect_log_order(struct world *w, const char *a, const char *b)
{
	expect_log(w, a);
	expect_log(w, b);
	const char *pa = strstr(w->log, a), *pb = strstr(w->log, b);
	if (pa > pb)
		fail_msg("logged in the wrong order: '%s' after '%s'\n--- log:\n%s", a, b, w->log);
}

/* the next message of a type on a channel (master's LOGIN_STATUS lines in
 * between are skipped) */
static void expect_msg(struct world *w, int fd, enum ipc_type type)
{
	const char *error;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		assert_int_equal(poll(&p, 1, 5000), 1);
		assert_int_equal(ipc_recv(fd, &w->rx, &error), 1);
		if (w->rx.hdr.type == type)
			return;
		if (w->rx.hdr.type != IPC_LOGIN_STATUS)
			fail_msg("expected %s, got %s", ipc_type_name(type),
				 ipc_type_name(w->rx.hdr.type));
	}
}

static void expect_field(const struct ipc_rx *rx, enum ipc_field key, const void *val, size_t len)
{
	assert_true(ipc_has(&rx->fields, key));
	assert_int_equal(rx->fields.len[key], len);
	assert_memory_equal(rx->fields.val[key], val, len);
}

static int client_connect(struct world *w)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(w->port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

/* exactly want bytes (5 s), then nothing more for a moment */
static void client_expect(int fd, const char *want, size_t len)
{
	char buf[4096];
	size_t got = 0;
	assert_true(len < sizeof(buf));
	while (got < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 5000) != 1)
			fail_msg("client got %zu of %zu bytes: %.*s", got, len, (int)got, buf);
		ssize_t n = recv(fd, buf + got, len - got, 0);
		assert_true(n > 0);
		got += (size_t)n;
	}
	if (memcmp(buf, want, len) != 0)
		fail_msg("client got:\n%.*s\nwanted:\n%.*s", (int)len, buf, (int)len, want);
	/* and nothing more (an EOF may follow: the caller looks) */
	ssize_t more = recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
	if (more > 0)
		fail_msg("client got more: %.*s", (int)more, buf);
}

static void client_expect_eof(int fd)
{
	char c;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	assert_int_equal(poll(&p, 1, 5000), 1);
	assert_int_equal(recv(fd, &c, 1, 0), 0);
}

/* ---- the same IMAP core in memory: what the client must get ---- */

struct core_out {
	char buf[4096];
	size_t len;
};

static void core_send(void *ctx, const void *data, size_t len)
{
	struct core_out *o = ctx;
	assert_true(o->len + len < sizeof(o->buf));
	memcpy(o->buf + o->len, data, len);
	o->len += len;
}

static void core_auth_begin(void *ctx, const char *mech, const uint8_t *resp, size_t resp_len,
			    bool has_resp)
{
	(void)ctx, (void)mech, (void)resp, (void)resp_len, (void)has_resp;
}

static void core_handoff(void *ctx, const char *tag, const uint8_t *p, size_t len)
{
	(void)ctx, (void)tag, (void)p, (void)len;
}

static void core_disconnect(void *ctx, const char *reason)
{
	(void)ctx, (void)reason;
}

static const struct login_callbacks core_cb = {
	.send = core_send,
	.auth_begin = core_auth_begin,
	.handoff = core_handoff,
	.disconnect = core_disconnect,
};

/* a client on 127.0.0.1 -> 127.0.0.1 is secured, as Dovecot has it */
static struct login_session *core_start(struct core_out *o)
{
	struct login_proto_config pc = {
		.greeting = GREETING,
		.mechanisms = "PLAIN LOGIN",
		.secured = true,
		.plaintext_auth_allowed = true,
	};
	memset(o, 0, sizeof(*o));
	return imap_login_proto.create(&pc, &core_cb, o);
}

static void core_input(struct login_session *s, const char *text)
{
	imap_login_proto.input(s, (const uint8_t *)text, strlen(text));
}

/* ---- the tests ---- */

static void test_login_and_handoff(void **state)
{
	(void)state;
	static struct world w;
	start(&w);
	struct core_out o;
	struct login_session *core = core_start(&o);

	int cl = client_connect(&w);
	client_expect(cl, o.buf, o.len); /* the greeting, byte for byte */
	expect_log(&w, "accepted, session=<");

	/* LOGIN with a command pipelined behind it */
	static const char cmds[] = "a LOGIN user secret\r\nb NOOP\r\n";
	assert_int_equal(send(cl, cmds, strlen(cmds), 0), (ssize_t)strlen(cmds));
	expect_msg(&w, w.auth[1], IPC_AUTH_BEGIN);
	uint32_t req = w.rx.hdr.id;
	expect_field(&w.rx, IPC_F_MECH, "PLAIN", 5);
	expect_field(&w.rx, IPC_F_SERVICE, "imap", 4);
	expect_field(&w.rx, IPC_F_RIP, "127.0.0.1", 9);
	expect_field(&w.rx, IPC_F_LIP, "127.0.0.1", 9);
	expect_field(&w.rx, IPC_F_SECURED, "1", 1);
	expect_field(&w.rx, IPC_F_RESP, "\0user\0secret", 12);
	expect_log(&w, ": prelogin -> authenticating");

	struct ipc_msg m;
	ipc_msg_init(&m, IPC_AUTH_OK, req);
	ipc_msg_add_str(&m, IPC_F_USER, "user");
	ipc_msg_add_str(&m, IPC_F_COOKIE, COOKIE);
	assert_int_equal(ipc_send(w.auth[1], &m, -1), 0);

	/* master gets the client's own socket, the cookie, the tag and the
	 * bytes the client sent after its login */
	expect_msg(&w, w.master[1], IPC_LOGIN_HANDOFF);
	uint32_t hid = w.rx.hdr.id;
	expect_field(&w.rx, IPC_F_SERVICE, "imap", 4);
	expect_field(&w.rx, IPC_F_USER, "user", 4);
	expect_field(&w.rx, IPC_F_COOKIE, COOKIE, 32);
	expect_field(&w.rx, IPC_F_TAG, "a", 1);
	expect_field(&w.rx, IPC_F_PREREAD, "b NOOP\r\n", 8);
	expect_field(&w.rx, IPC_F_SECURED, "1", 1);
	assert_false(ipc_has(&w.rx.fields, IPC_F_TLS));
	int passed = w.rx.fd;
	assert_true(passed >= 0);
	expect_log(&w, ": authenticating -> handoff");

	ipc_msg_init(&m, IPC_LOGIN_HANDOFF_REPLY, hid);
	ipc_msg_add_uint(&m, IPC_F_MPID, 4242);
	assert_int_equal(ipc_send(w.master[1], &m, -1), 0);
	expect_log(&w, "Login: user=<user>, method=PLAIN, rip=127.0.0.1, lip=127.0.0.1, "
		       "mpid=4242, secured, session=<");
	expect_log(&w, ": handoff -> closing");
	expect_log(&w, ": freed");
	/* the auth phase ends with the login, not with the connection */
	expect_log_order(&w, ": prelogin -> authenticating", "Login: user=<user>");
	expect_log_order(&w, "Login: user=<user>", ": auth phase over");
	expect_log_order(&w, ": auth phase over", ": handoff -> closing");
	/* so does the hand-off's (cookie, preread): at master's answer */
	expect_log_order(&w, "Login: user=<user>", ": hand-off over");
	expect_log_order(&w, ": hand-off over", ": handoff -> closing");
	assert_null(strstr(w.log, "access phase"));

	/* what the worker writes on the passed socket is what the client
	 * reads: it is the client's connection */
	assert_int_equal(write(passed, "a OK Logged in\r\n", 16), 16);
	client_expect(cl, "a OK Logged in\r\n", 16);
	close(passed);
	client_expect_eof(cl);
	close(cl);
	imap_login_proto.destroy(core);
	stop(&w);
}

static void test_failed_login_then_logout(void **state)
{
	(void)state;
	static struct world w;
	start(&w);
	struct core_out o;
	struct login_session *core = core_start(&o);
	core_input(core, "a LOGIN user wrong\r\n");
	imap_login_proto.auth_reply(core, LOGIN_AUTH_FAIL, NULL, 0, NULL);
	size_t after_fail = o.len;
	core_input(core, "b LOGOUT\r\n");

	int cl = client_connect(&w);
	static const char login[] = "a LOGIN user wrong\r\n";
	assert_int_equal(send(cl, login, strlen(login), 0), (ssize_t)strlen(login));
	expect_msg(&w, w.auth[1], IPC_AUTH_BEGIN);
	expect_log(&w, ": prelogin -> authenticating");
	struct ipc_msg m;
	ipc_msg_init(&m, IPC_AUTH_FAIL, w.rx.hdr.id);
	ipc_msg_add_str(&m, IPC_F_USER, "user");
	assert_int_equal(ipc_send(w.auth[1], &m, -1), 0);
	/* the greeting and the core's NO, exactly */
	client_expect(cl, o.buf, after_fail);
	expect_log(&w, ": authenticating -> prelogin");

	assert_int_equal(send(cl, "b LOGOUT\r\n", 10, 0), 10);
	client_expect(cl, o.buf + after_fail, o.len - after_fail);
	client_expect_eof(cl);
	expect_log(&w, ": prelogin -> closing");
	expect_log(&w, "Aborted login (auth failed, 1 attempts in ");
	expect_log(&w, "user=<user>, method=PLAIN, rip=127.0.0.1, lip=127.0.0.1, secured");
	expect_log(&w, ": freed");
	/* a failed attempt keeps the auth phase (its count and user name the
	 * client in the last line); it ends with the connection */
	expect_log_order(&w, "Aborted login", ": auth phase over");
	expect_log_order(&w, ": freed", ": auth phase over");
	close(cl);
	imap_login_proto.destroy(core);
	stop(&w);
}

/* auth goes away with a request in flight: the client is answered as the
 * core answers a temporary failure, and the connection goes on */
static void test_auth_lost(void **state)
{
	(void)state;
	static struct world w;
	start(&w);
	struct core_out o;
	struct login_session *core = core_start(&o);
	core_input(core, "a LOGIN user pw\r\n");
	imap_login_proto.auth_reply(core, LOGIN_AUTH_TEMPFAIL, NULL, 0, NULL);

	int cl = client_connect(&w);
	assert_int_equal(send(cl, "a LOGIN user pw\r\n", 17, 0), 17);
	expect_msg(&w, w.auth[1], IPC_AUTH_BEGIN);
	close(w.auth[1]);
	client_expect(cl, o.buf, o.len);
	expect_log(&w, ": authenticating -> prelogin");
	close(cl);
	expect_log(&w, ": prelogin -> closing");
	w.auth[1] = open("/dev/null", O_RDONLY); /* for stop() */
	imap_login_proto.destroy(core);
	stop(&w);
}


/* ---- an implicit-TLS client: handshake, login, then the relay ---- */

static char *read_cert(const char *name)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", CERTS_DIR, name);
	FILE *fp = fopen(path, "r");
	if (fp == NULL)
		fail_msg("cannot open %s", path);
	char *buf = rg_malloc(16384);
	size_t n = fread(buf, 1, 16383, fp);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

static char *cert_pem, *key_pem;

static struct tls_ctx *test_tls_build(void)
{
	struct tls_ctx_settings set = { .cert_pem = cert_pem, .key_pem = key_pem };
	struct tls_ctx *ctx = NULL;
	const char *error;
	if (tls_ctx_create(&set, &ctx, &error) != 0)
		fail_msg("tls_ctx_create: %s", error);
	return ctx;
}

/* the client's engine over its socket */
static void tls_flush(int fd, struct tls_conn *t)
{
	const uint8_t *data;
	size_t len;
	while (tls_conn_pending_output(t, &data, &len)) {
		ssize_t n = send(fd, data, len, 0);
		assert_true(n > 0);
		tls_conn_consume_output(t, (size_t)n);
	}
}

static bool tls_feed_more(int fd, struct tls_conn *t)
{
	uint8_t in[4096];
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, 5000) != 1)
		return false;
	ssize_t n = recv(fd, in, sizeof(in), 0);
	if (n <= 0)
		return false;
	assert_int_equal(tls_conn_feed(t, in, (size_t)n), (size_t)n);
	return true;
}

/* exactly len bytes of plaintext, or (want == NULL) close_notify */
static void tls_expect(int fd, struct tls_conn *t, const char *want, size_t len)
{
	char buf[4096];
	size_t got = 0;
	const char *error;
	for (;;) {
		size_t n = 0;
		enum tls_result r = tls_conn_read(t, buf + got, sizeof(buf) - got, &n, &error);
		if (r == TLS_OK) {
			got += n;
			if (want != NULL && got >= len)
				break;
			continue;
		}
		if (r == TLS_CLOSED && want == NULL)
			return;
		assert_int_equal(r, TLS_WANT_INPUT);
		tls_flush(fd, t);
		if (!tls_feed_more(fd, t))
			fail_msg("TLS client got %zu bytes: %.*s", got, (int)got, buf);
	}
	assert_int_equal(got, len);
	assert_memory_equal(buf, want, len);
}

static void tls_write(int fd, struct tls_conn *t, const char *text)
{
	size_t taken;
	const char *error;
	assert_int_equal(tls_conn_write(t, text, strlen(text), &taken, &error), TLS_OK);
	tls_flush(fd, t);
}

static void test_tls_login_and_relay(void **state)
{
	(void)state;
	static struct world w;
	cert_pem = read_cert("rsa-cert.pem");
	key_pem = read_cert("rsa-key.pem");
	static const bool ssl[1] = { true };
	start_with(&w, test_tls_build, ssl, NULL);
	struct core_out o;
	struct login_session *core = core_start(&o);

	int cl = client_connect(&w);
	struct tls_ctx *cctx = NULL;
	const char *error;
	assert_int_equal(tls_ctx_create_client(NULL, false, &cctx, &error), 0);
	struct tls_conn *t = tls_conn_new(cctx);
	while (!tls_conn_handshake_done(t)) {
		enum tls_result r = tls_conn_handshake(t, &error);
		assert_int_not_equal(r, TLS_ERROR);
		tls_flush(cl, t);
		if (r != TLS_OK && !tls_feed_more(cl, t))
			fail_msg("handshake stalled");
	}
	/* the greeting is the first thing encrypted */
	tls_expect(cl, t, o.buf, o.len);
	expect_log(&w, "TLSv1.");

	tls_write(cl, t, "a LOGIN user secret\r\n");
	expect_msg(&w, w.auth[1], IPC_AUTH_BEGIN);
	expect_field(&w.rx, IPC_F_RESP, "\0user\0secret", 12);
	struct ipc_msg m;
	ipc_msg_init(&m, IPC_AUTH_OK, w.rx.hdr.id);
	ipc_msg_add_str(&m, IPC_F_USER, "user");
	ipc_msg_add_str(&m, IPC_F_COOKIE, COOKIE);
	assert_int_equal(ipc_send(w.auth[1], &m, -1), 0);

	/* master gets a socketpair end (the TLS session stays here) */
	expect_msg(&w, w.master[1], IPC_LOGIN_HANDOFF);
	expect_field(&w.rx, IPC_F_TLS, "1", 1);
	expect_field(&w.rx, IPC_F_TAG, "a", 1);
	int worker = w.rx.fd;
	assert_true(worker >= 0);
	ipc_msg_init(&m, IPC_LOGIN_HANDOFF_REPLY, w.rx.hdr.id);
	assert_int_equal(ipc_send(w.master[1], &m, -1), 0);
	expect_log(&w, ": handoff -> proxy");

	/* the worker's plaintext reaches the client encrypted, and the
	 * client's records reach the worker as plaintext */
	assert_int_equal(write(worker, "a OK Logged in\r\n", 16), 16);
	tls_expect(cl, t, "a OK Logged in\r\n", 16);
	tls_write(cl, t, "b NOOP\r\n");
	char buf[64];
	struct pollfd p = { .fd = worker, .events = POLLIN };
	assert_int_equal(poll(&p, 1, 5000), 1);
	assert_int_equal(read(worker, buf, sizeof(buf)), 8);
	assert_memory_equal(buf, "b NOOP\r\n", 8);

	/* the worker ends: its last words, then close_notify, then EOF */
	assert_int_equal(write(worker, "* BYE\r\n", 7), 7);
	close(worker);
	tls_expect(cl, t, "* BYE\r\n", 7);
	tls_expect(cl, t, NULL, 0);
	client_expect_eof(cl);
	expect_log(&w, ": proxy -> closing");
	expect_log(&w, "proxy done: in=8 out=23");
	expect_log(&w, ": freed");
	/* the relay keeps nothing of the login */
	expect_log_order(&w, ": handoff -> proxy", ": hand-off over");
	expect_log_order(&w, ": hand-off over", ": proxy -> closing");
	expect_log_order(&w, ": handoff -> proxy", ": auth phase over");
	expect_log_order(&w, ": auth phase over", ": proxy -> closing");

	close(cl);
	tls_conn_free(&t);
	tls_ctx_free(&cctx);
	imap_login_proto.destroy(core);
	stop(&w);
	rg_free(cert_pem);
	rg_free(key_pem);
}

/* ---- login_access_sockets: the check's phase ends with the greeting ---- */

static void test_access_allowed(void **state)
{
	(void)state;
	static struct world w;
	char path[108];
	snprintf(path, sizeof(path), "/tmp/rg-test-access-%d.sock", (int)getpid());
	unlink(path);
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	memcpy(sun.sun_path, path, strlen(path) + 1);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	start_with(&w, NULL, NULL, path);
	struct core_out o;
	struct login_session *core = core_start(&o);
	core_input(core, "a NOOP\r\n");

	/* the client speaks before its greeting: its bytes wait for the check */
	int cl = client_connect(&w);
	assert_int_equal(send(cl, "a NOOP\r\n", 8, 0), 8);
	int chk = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(chk >= 0);
	static const char req[] = "imap 127.0.0.1 127.0.0.1\n"; /* src/lib/access-proto.h */
	size_t want = strlen(req);
	char got[ACCESS_REQUEST_MAX + 1];
	size_t n = 0;
	while (n < want) {
		ssize_t r = read(chk, got + n, sizeof(got) - n);
		assert_true(r > 0);
		n += (size_t)r;
	}
	assert_int_equal(n, want);
	assert_memory_equal(got, req, want);
	struct pollfd p = { .fd = cl, .events = POLLIN };
	assert_int_equal(poll(&p, 1, 100), 0); /* no greeting before the answer */
	assert_int_equal(write(chk, "1\n", 2), 2);

	/* the greeting, then the answer to what waited */
	client_expect(cl, o.buf, o.len);
	expect_log_order(&w, "access allowed", ": access phase over");
	close(cl);
	expect_log(&w, ": freed");
	expect_log_order(&w, ": access phase over", ": prelogin -> closing");
	close(chk);
	close(lfd);
	unlink(path);
	imap_login_proto.destroy(core);
	stop(&w);
}

int main(void)
{
	log_init("imap-login");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_login_and_handoff),
		cmocka_unit_test(test_failed_login_then_logout),
		cmocka_unit_test(test_auth_lost),
		cmocka_unit_test(test_tls_login_and_relay),
		cmocka_unit_test(test_access_allowed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
