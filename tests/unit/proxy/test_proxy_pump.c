/* test_proxy_pump.c — the relay on a real ring between socketpairs, the test
 * playing client and worker/backend: exact bytes both ways (with the bytes
 * given at the start first), back-pressure (the client is not read while the
 * worker does not read, and every byte arrives once it does), half-close
 * both ways, the flush deadline, abort without callbacks, and a TLS client
 * end whose records the test decrypts with its own engine. */
#include "proxy/proxy-pump.h"
#include "proxy/proxy-outq.h"
#include "lib/alloc.h"
#include "ring/ring.h"
#include "tls/tls.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct fix {
	struct ring *ring;
	uint32_t now;
	struct proxy_pump *p;
	struct ring_owner dummy; /* the client's slot before the hand-over */
	int cl[2], wk[2];	 /* [0]: the pump's end, [1]: the test's */
	unsigned done, closing;
	uint64_t in, out;
	char error[160];
};

static void cb_closing(void *ctx)
{
	struct fix *f = ctx;
	f->closing++;
}

static void cb_done(void *ctx, uint64_t in, uint64_t out, const char *error)
{
	struct fix *f = ctx;
	f->done++;
	f->in = in;
	f->out = out;
	snprintf(f->error, sizeof(f->error), "%s", error != NULL ? error : "");
}

static const struct proxy_pump_callbacks callbacks = {
	.closing = cb_closing,
	.done = cb_done,
};

static void nonblock(int fd)
{
	assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
}

static void turn(struct fix *f)
{
	assert_true(ring_run(f->ring, 0) >= 0);
	usleep(200);
}

/* read from the test's end of a pair until want bytes or EOF */
static size_t read_some(struct fix *f, int fd, uint8_t *buf, size_t want, bool *eof_r)
{
	size_t got = 0;
	*eof_r = false;
	for (int i = 0; i < 5000 && got < want && !*eof_r; i++) {
		ssize_t n = recv(fd, buf + got, want - got, MSG_DONTWAIT);
		if (n > 0)
			got += (size_t)n;
		else if (n == 0)
			*eof_r = true;
		else
			turn(f);
	}
	return got;
}

static void expect_bytes(struct fix *f, int fd, const char *text)
{
	uint8_t buf[256];
	bool eof;
	size_t n = read_some(f, fd, buf, strlen(text), &eof);
	assert_int_equal(n, strlen(text));
	assert_memory_equal(buf, text, n);
}

static void expect_eof(struct fix *f, int fd)
{
	uint8_t c;
	bool eof;
	assert_int_equal(read_some(f, fd, &c, 1, &eof), 0);
	assert_true(eof);
}

static void until_done(struct fix *f)
{
	for (int i = 0; i < 5000 && f->done == 0; i++)
		turn(f);
	assert_int_equal(f->done, 1);
}

/* Send the pattern (byte i of the stream is i % 251) on fd from byte *sent
 * up to total, without blocking; returns whether any was taken. */
static bool send_pattern(int fd, size_t *sent, size_t total)
{
	static uint8_t chunk[1 << 16];
	size_t n = total - *sent < sizeof(chunk) ? total - *sent : sizeof(chunk);
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		chunk[i] = (uint8_t)((*sent + i) % 251);
	ssize_t k = send(fd, chunk, n, MSG_DONTWAIT);
	if (k <= 0)
		return false;
	*sent += (size_t)k;
	return true;
}

/* the peer sends the pattern until total or until nothing is taken for
 * 200 turns: the pump stopped reading */
static size_t send_until_stuck(struct fix *f, int fd, size_t total)
{
	size_t sent = 0;
	for (int idle = 0; sent < total && idle < 200; turn(f))
		idle = send_pattern(fd, &sent, total) ? 0 : idle + 1;
	return sent;
}

/* abort the relay: the ring retires its ends, no callback comes */
static void abort_quietly(struct fix *f)
{
	proxy_pump_abort(f->p);
	for (int i = 0; i < 20; i++)
		turn(f);
	assert_int_equal(f->done, 0);
}

static void setup_fix(struct fix *f)
{
	memset(f, 0, sizeof(*f));
	/* the relays' large buffers as a login process has them */
	struct ring_config rc = { .entries = 64, .buf_count = 64, .buf_size = 2048,
				  .large_buf_count = 4, .large_buf_size = 65536 };
	assert_int_equal(ring_create(&rc, &f->ring), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, f->cl), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, f->wk), 0);
	nonblock(f->cl[1]);
	nonblock(f->wk[1]);
	f->now = 1000;
	f->p = proxy_pump_new(f->ring, &f->now, &callbacks, f);
}

/* the client's end as the login connection hands it over: its slot, with
 * nothing in flight, and output it had queued */
static void attach_plain(struct fix *f, const char *queued)
{
	struct outq *out = NULL;
	if (queued != NULL)
		outq_append(&out, queued, strlen(queued), false);
	struct proxy_pump_handover h = {
		.fd = f->cl[0],
		.slot = ring_slot_alloc(f->ring, &f->dummy),
		.out = out,
	};
	proxy_pump_attach_server(f->p, f->wk[0], true);
	proxy_pump_attach_client(f->p, &h);
}

static void teardown_fix(struct fix *f)
{
	close(f->cl[1]);
	close(f->wk[1]);
	/* the pump's ends were closed by the ring */
	for (int i = 0; i < 20; i++)
		turn(f);
	ring_destroy(f->ring);
}

static void test_relay_both_ways(void **state)
{
	(void)state;
	struct fix f;
	setup_fix(&f);
	attach_plain(&f, "a OK [CAPABILITY IMAP4rev1] Logged in\r\n");
	static const char pre[] = "b NOOP\r\n";
	static const char rest[] = "* 1 EXISTS\r\n";
	proxy_pump_start(f.p, (const uint8_t *)pre, strlen(pre), (const uint8_t *)rest,
			 strlen(rest));
	/* what was queued goes first, then the bytes given at the start */
	expect_bytes(&f, f.cl[1], "a OK [CAPABILITY IMAP4rev1] Logged in\r\n* 1 EXISTS\r\n");
	expect_bytes(&f, f.wk[1], "b NOOP\r\n");
	assert_int_equal(send(f.cl[1], "c LIST \"\" *\r\n", 13, 0), 13);
	expect_bytes(&f, f.wk[1], "c LIST \"\" *\r\n");
	assert_int_equal(send(f.wk[1], "* LIST () \"/\" INBOX\r\nc OK\r\n", 27, 0), 27);
	expect_bytes(&f, f.cl[1], "* LIST () \"/\" INBOX\r\nc OK\r\n");

	/* the client's EOF reaches the worker as EOF, and the worker's
	 * last words and EOF reach the client: a clean end */
	assert_int_equal(shutdown(f.cl[1], SHUT_WR), 0);
	expect_eof(&f, f.wk[1]);
	assert_int_equal(f.done, 0);
	assert_int_equal(send(f.wk[1], "* BYE\r\n", 7, 0), 7);
	assert_int_equal(shutdown(f.wk[1], SHUT_WR), 0);
	expect_bytes(&f, f.cl[1], "* BYE\r\n");
	expect_eof(&f, f.cl[1]);
	until_done(&f);
	assert_string_equal(f.error, "");
	/* plaintext relayed (the handed-over queue is not counted) */
	assert_int_equal(f.in, strlen(pre) + 13);
	assert_int_equal(f.out, strlen(rest) + 27 + 7);
	assert_int_equal(f.closing, 1);
	teardown_fix(&f);
}

static void test_back_pressure(void **state)
{
	(void)state;
	struct fix f;
	setup_fix(&f);
	attach_plain(&f, NULL);
	proxy_pump_start(f.p, NULL, 0, NULL, 0);
	/* the worker reads nothing: the client can only fill the socket
	 * buffers and the pump's PUMP_HIGH, then the pump stops reading */
	size_t sent = send_until_stuck(&f, f.cl[1], 8u << 20);
	assert_true(sent < (8u << 20));
	uint64_t in, out;
	proxy_pump_counts(f.p, &in, &out);
	/* taken from the client: what the worker's socket holds plus what
	 * waits for it, bounded */
	int wk_buf = 0;
	socklen_t sl = sizeof(wk_buf);
	assert_int_equal(getsockopt(f.wk[0], SOL_SOCKET, SO_SNDBUF, &wk_buf, &sl), 0);
	assert_true(in <= (uint64_t)wk_buf * 2 + PUMP_HIGH + 2 * 65536);
	/* the worker reads: everything arrives, in order */
	static uint8_t got[1 << 16];
	size_t total = 0;
	for (int i = 0; i < 20000 && total < sent; i++) {
		ssize_t n = recv(f.wk[1], got, sizeof(got), MSG_DONTWAIT);
		if (n > 0) {
			for (ssize_t k = 0; k < n; k++)
				assert_int_equal(got[k], (uint8_t)((total + (size_t)k) % 251));
			total += (size_t)n;
		} else {
			turn(&f);
		}
	}
	assert_int_equal(total, sent);
	proxy_pump_counts(f.p, &in, &out);
	assert_int_equal(in, sent);
	abort_quietly(&f);
	teardown_fix(&f);
}

static void test_flush_deadline(void **state)
{
	(void)state;
	struct fix f;
	setup_fix(&f);
	attach_plain(&f, NULL);
	proxy_pump_start(f.p, NULL, 0, NULL, 0);
	/* the worker says more than the client's socket takes (but not so
	 * much that the pump stops reading it) and goes; the client reads
	 * nothing */
	int small = 4096;
	assert_int_equal(setsockopt(f.cl[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	static uint8_t big[40000];
	memset(big, 'x', sizeof(big));
	assert_int_equal(send(f.wk[1], big, sizeof(big), 0), (ssize_t)sizeof(big));
	close(f.wk[1]);
	f.wk[1] = -1;
	for (int i = 0; i < 200 && f.closing == 0; i++)
		turn(&f);
	assert_int_equal(f.closing, 1);
	proxy_pump_tick(f.p);
	turn(&f);
	assert_int_equal(f.done, 0); /* still within PUMP_FLUSH_SECS */
	f.now += PUMP_FLUSH_SECS;
	proxy_pump_tick(f.p);
	until_done(&f);
	assert_string_equal(f.error, "flush timed out");
	f.wk[1] = open("/dev/null", O_RDONLY);
	teardown_fix(&f);
}

/* ---- a TLS client end ---- */

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

/* everything one engine has to say, into the other */
static void shuttle(struct tls_conn *from, struct tls_conn *to)
{
	const uint8_t *data;
	size_t len;
	while (tls_conn_pending_output(from, &data, &len)) {
		assert_int_equal(tls_conn_feed(to, data, len), len);
		tls_conn_consume_output(from, len);
	}
}

/* the test's engine over the socket: send what it has, feed what came */
static void peer_flush(struct fix *f, struct tls_conn *t)
{
	const uint8_t *data;
	size_t len;
	while (tls_conn_pending_output(t, &data, &len)) {
		ssize_t n = send(f->cl[1], data, len, MSG_DONTWAIT);
		if (n <= 0) {
			turn(f);
			continue;
		}
		tls_conn_consume_output(t, (size_t)n);
	}
}

/* plaintext from the pump's TLS end until want bytes or close_notify */
static size_t peer_read(struct fix *f, struct tls_conn *t, char *buf, size_t want, bool *closed_r)
{
	size_t got = 0;
	const char *error;
	*closed_r = false;
	for (int i = 0; i < 5000 && got < want && !*closed_r; i++) {
		size_t n = 0;
		enum tls_result r = tls_conn_read(t, buf + got, want - got, &n, &error);
		if (r == TLS_OK) {
			got += n;
			continue;
		}
		if (r == TLS_CLOSED) {
			*closed_r = true;
			break;
		}
		assert_int_equal(r, TLS_WANT_INPUT);
		uint8_t in[4096];
		ssize_t k = recv(f->cl[1], in, sizeof(in), MSG_DONTWAIT);
		if (k > 0)
			assert_int_equal(tls_conn_feed(t, in, (size_t)k), (size_t)k);
		else
			turn(f);
	}
	return got;
}

/* a server and a client engine after their handshake, done in memory as
 * the login connection had it done */
struct tls_pair {
	char *cert, *key;
	struct tls_ctx *sctx, *cctx;
	struct tls_conn *s, *c;
};

static void tls_pair_make(struct tls_pair *t)
{
	const char *error = NULL;
	t->cert = read_cert("rsa-cert.pem");
	t->key = read_cert("rsa-key.pem");
	struct tls_ctx_settings set = { .cert_pem = t->cert, .key_pem = t->key };
	t->sctx = t->cctx = NULL;
	assert_int_equal(tls_ctx_create(&set, &t->sctx, &error), 0);
	assert_int_equal(tls_ctx_create_client(NULL, false, &t->cctx, &error), 0);
	t->s = tls_conn_new(t->sctx);
	t->c = tls_conn_new(t->cctx);
	for (int i = 0; i < 20 && !(tls_conn_handshake_done(t->s) && tls_conn_handshake_done(t->c));
	     i++) {
		(void)tls_conn_handshake(t->c, &error);
		shuttle(t->c, t->s);
		(void)tls_conn_handshake(t->s, &error);
		shuttle(t->s, t->c);
	}
	assert_true(tls_conn_handshake_done(t->s));
	assert_true(tls_conn_handshake_done(t->c));
}

/* the pump's own engine (t->s) was freed with the pump */
static void tls_pair_free(struct tls_pair *t)
{
	tls_conn_free(&t->c);
	tls_ctx_free(&t->cctx);
	tls_ctx_free(&t->sctx);
	rg_free(t->cert);
	rg_free(t->key);
}

static void attach_tls(struct fix *f, struct tls_conn *s)
{
	struct proxy_pump_handover h = {
		.fd = f->cl[0],
		.slot = ring_slot_alloc(f->ring, &f->dummy),
		.tls = s,
	};
	proxy_pump_attach_server(f->p, f->wk[0], true);
	proxy_pump_attach_client(f->p, &h);
}

static void test_tls_client_end(void **state)
{
	(void)state;
	struct fix f;
	setup_fix(&f);
	struct tls_pair tp;
	tls_pair_make(&tp);
	struct tls_conn *c = tp.c;
	const char *error = NULL;
	attach_tls(&f, tp.s);
	static const char pre[] = "x SELECT INBOX\r\n";
	proxy_pump_start(f.p, (const uint8_t *)pre, strlen(pre), NULL, 0);
	expect_bytes(&f, f.wk[1], pre);

	/* the client's records are decrypted for the worker */
	size_t taken;
	assert_int_equal(tls_conn_write(c, "y NOOP\r\n", 8, &taken, &error), TLS_OK);
	peer_flush(&f, c);
	expect_bytes(&f, f.wk[1], "y NOOP\r\n");
	/* the worker's bytes are encrypted for the client, then its EOF
	 * becomes close_notify and the end */
	assert_int_equal(send(f.wk[1], "* BYE\r\ny OK\r\n", 13, 0), 13);
	char buf[64];
	bool closed;
	assert_int_equal(peer_read(&f, c, buf, 13, &closed), 13);
	assert_memory_equal(buf, "* BYE\r\ny OK\r\n", 13);
	assert_int_equal(shutdown(f.wk[1], SHUT_WR), 0);
	assert_int_equal(peer_read(&f, c, buf, sizeof(buf), &closed), 0);
	assert_true(closed);
	until_done(&f);
	assert_string_equal(f.error, "");
	assert_int_equal(f.in, strlen(pre) + 8);
	assert_int_equal(f.out, 13);

	tls_pair_free(&tp);
	teardown_fix(&f);
}

/* Bulk toward a TLS end whose client does not read: the pump takes from
 * the worker only what the engine has room for (it reads a buffer at a
 * time toward TLS), the rest waits in the worker's socket; once the
 * client reads, every byte arrives in order. */
static void test_tls_bulk_back_pressure(void **state)
{
	(void)state;
	struct fix f;
	setup_fix(&f);
	struct tls_pair tp;
	tls_pair_make(&tp);
	/* the client's socket takes little, so what the pump holds shows */
	int small = 4096;
	assert_int_equal(setsockopt(f.cl[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	attach_tls(&f, tp.s);
	proxy_pump_start(f.p, NULL, 0, NULL, 0);

	enum { TOTAL = 4 << 20 };
	size_t sent = send_until_stuck(&f, f.wk[1], TOTAL);
	assert_true(sent < TOTAL);
	uint64_t in, out;
	proxy_pump_counts(f.p, &in, &out);
	/* taken from the worker: what the client's socket holds (in records)
	 * plus the engine's output, bounded */
	int cl_buf = 0;
	socklen_t sl = sizeof(cl_buf);
	assert_int_equal(getsockopt(f.cl[0], SOL_SOCKET, SO_SNDBUF, &cl_buf, &sl), 0);
	if (out > (uint64_t)cl_buf * 2 + TLS_OUT_MAX + (1 << 16))
		fail_msg("the pump took %llu bytes for a client that reads nothing",
			 (unsigned long long)out);

	/* the client reads: everything in order, the worker sends the rest */
	static char got[1 << 16];
	size_t total = 0;
	for (int i = 0; i < 20000 && total < TOTAL; i++) {
		(void)send_pattern(f.wk[1], &sent, TOTAL);
		bool closed;
		size_t n = peer_read(&f, tp.c, got, sizeof(got), &closed);
		assert_false(closed);
		for (size_t k = 0; k < n; k++)
			assert_int_equal((uint8_t)got[k], (uint8_t)((total + k) % 251));
		total += n;
	}
	assert_int_equal(total, TOTAL);
	proxy_pump_counts(f.p, &in, &out);
	assert_int_equal(out, TOTAL);
	abort_quietly(&f);
	tls_pair_free(&tp);
	teardown_fix(&f);
}

/* the queue's in-place writes: a reservation that gets nothing frees an
 * empty queue; one that gets bytes appends them; without a send in flight
 * what waits moves to the front instead of a new queue, with one it stays
 * where the send points (the old copy kept until consumed) */
static void test_outq_reserve(void **state)
{
	(void)state;
	struct outq *q = NULL;
	uint8_t *p = outq_reserve(&q, 100, false);
	assert_non_null(q);
	outq_commit(&q, 0);
	assert_null(q);

	p = outq_reserve(&q, 5, false);
	memcpy(p, "hello", 5);
	outq_commit(&q, 5);
	outq_append(&q, " world", 6, false);
	assert_int_equal(outq_pending(q), 11);
	assert_memory_equal(q->data + q->head, "hello world", 11);

	/* the front is free, nothing in flight: moved, same queue */
	outq_consume(&q, 6);
	size_t size = q->size;
	struct outq *before = q;
	p = outq_reserve(&q, size - 5, false);
	assert_ptr_equal(q, before);
	assert_int_equal(q->head, 0);
	assert_memory_equal(q->data, "world", 5);
	memset(p, 'x', size - 5);
	outq_commit(&q, size - 5);
	assert_int_equal(outq_pending(q), size);

	/* a send in flight covers the first 5: a bigger queue, and the
	 * bytes the send points at stay put until it completes */
	q->sending = 5;
	const uint8_t *sending = q->data + q->head;
	p = outq_reserve(&q, 10, true);
	assert_ptr_not_equal(q, before);
	assert_ptr_equal(q->retired, (uint8_t *)before);
	assert_memory_equal(sending, "world", 5);
	memcpy(p, "0123456789", 10);
	outq_commit(&q, 10);
	outq_consume(&q, 5);
	assert_null(q->retired);
	assert_int_equal(outq_pending(q), size - 5 + 10);
	assert_memory_equal(q->data + q->tail - 10, "0123456789", 10);
	outq_free(&q);
	assert_null(q);
}

/* a drained relay-sized queue is kept for the next one, also across a
 * release call that follows its use; two calls with no use free it */
static void test_outq_spares(void **state)
{
	(void)state;
	struct outq *q = NULL;
	(void)outq_reserve(&q, OUTQ_RELAY / 2, false);
	assert_int_equal(q->size, OUTQ_RELAY);
	struct outq *first = q;
	outq_commit(&q, 0);
	assert_null(q);
	outq_release_spares(); /* used since the last call: kept */
	(void)outq_reserve(&q, 8192, false);
	assert_ptr_equal(q, first);
	outq_commit(&q, 0);
	outq_release_spares();
	outq_release_spares(); /* unused for a call: freed (ASan: no leak) */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_relay_both_ways),
		cmocka_unit_test(test_back_pressure),
		cmocka_unit_test(test_flush_deadline),
		cmocka_unit_test(test_tls_client_end),
		cmocka_unit_test(test_tls_bulk_back_pressure),
		cmocka_unit_test(test_outq_reserve),
		cmocka_unit_test(test_outq_spares),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
