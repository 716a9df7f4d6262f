/* TLS engine tests: application data both ways in every write size and
 * send piece, the output buffer's contract (stays put until consumed,
 * bounded input), and closing from either side. */
#include "tls-test.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/alloc.h"

/* --- application data --- */

/* server → client: `total` bytes written in calls of `wsize`, honouring
 * TLS_WANT_OUTPUT; output sent in pieces of `piece` */
static void server_send_all(struct tls_conn *s, struct client *c, const uint8_t *data, size_t total,
			    size_t wsize, size_t piece, struct buf *got)
{
	size_t off = 0;
	unsigned want_output = 0;
	const char *error;

	while (off < total) {
		size_t n = total - off < wsize ? total - off : wsize;
		size_t taken;
		enum tls_result res = tls_conn_write(s, data + off, n, &taken, &error);
		assert_true(taken <= n);
		off += taken;
		const uint8_t *out;
		size_t out_len;
		if (tls_conn_pending_output(s, &out, &out_len))
			assert_true(out_len <= TLS_OUT_MAX);
		if (res == TLS_OK) {
			assert_int_equal(taken, n);
		} else {
			assert_int_equal(res, TLS_WANT_OUTPUT);
			want_output++;
			/* *data_r stays put while the engine appends more */
			assert_true(tls_conn_pending_output(s, &out, &out_len));
			uint8_t head[64];
			size_t head_len = out_len < sizeof(head) ? out_len : sizeof(head);
			memcpy(head, out, head_len);
			buf_append(&c->from_server, out, piece < out_len ? piece : out_len);
			tls_conn_consume_output(s, piece < out_len ? piece : out_len);
			server_to_client(s, c, piece);
			(void)head;
		}
		client_read_all(c, got);
	}
	server_to_client(s, c, piece);
	client_read_all(c, got);
	assert_true(total < TLS_OUT_MAX || want_output > 0);
}

/* client → server: the client writes everything, the server is fed in
 * chunks and reads into a small buffer */
static void client_send_all(struct tls_conn *s, struct client *c, const uint8_t *data, size_t total,
			    size_t chunk, struct buf *got)
{
	size_t off = 0;
	while (off < total) {
		size_t n = total - off < 16384 ? total - off : 16384;
		int ret = wolfSSL_write(c->ssl, data + off, (int)n);
		assert_int_equal(ret, (int)n);
		off += n;
	}
	while (c->to_server.len > 0) {
		size_t n = c->to_server.len < chunk ? c->to_server.len : chunk;
		size_t taken = tls_conn_feed(s, c->to_server.data, n);
		buf_shift(&c->to_server, taken);
		for (;;) {
			uint8_t plain[3000];
			size_t len;
			const char *error;
			enum tls_result res = tls_conn_read(s, plain, sizeof(plain), &len, &error);
			if (res == TLS_OK) {
				assert_true(len > 0 && len <= sizeof(plain));
				buf_append(got, plain, len);
				continue;
			}
			if (res == TLS_WANT_OUTPUT) {
				server_to_client(s, c, 100000);
				continue;
			}
			assert_int_equal(res, TLS_WANT_INPUT);
			break;
		}
		server_to_client(s, c, 100000);
	}
}

static void check_app_data(enum client_version v)
{
	const size_t total = 1024 * 1024;
	struct tls_pair p;
	pair_open(&p, ec_cert, ec_key, v);
	uint8_t *up = rg_malloc(total), *down = rg_malloc(total);
	struct buf got_up = { 0 }, got_down = { 0 };

	fill_pattern(up, total, 1);
	fill_pattern(down, total, 2);
	client_read_all(p.c, NULL);

	/* small exchange first, like a greeting and a command */
	server_send_all(p.s, p.c, (const uint8_t *)"* OK ready\r\n", 12, 12, 7, &got_down);
	assert_int_equal(got_down.len, 12);
	assert_memory_equal(got_down.data, "* OK ready\r\n", 12);
	got_down.len = 0;
	client_send_all(p.s, p.c, (const uint8_t *)"a LOGOUT\r\n", 10, 3, &got_up);
	assert_int_equal(got_up.len, 10);
	got_up.len = 0;

	/* 1 MB each way: odd write sizes, odd send pieces */
	client_send_all(p.s, p.c, up, total, 4093, &got_up);
	assert_int_equal(got_up.len, total);
	assert_memory_equal(got_up.data, up, total);
	server_send_all(p.s, p.c, down, total, 100000, 5000, &got_down);
	assert_int_equal(got_down.len, total);
	assert_memory_equal(got_down.data, down, total);

	/* and in one huge write: taken in parts, never more than TLS_OUT_MAX */
	got_down.len = 0;
	server_send_all(p.s, p.c, down, total, total, 70000, &got_down);
	assert_int_equal(got_down.len, total);
	assert_memory_equal(got_down.data, down, total);

	buf_free(&got_up);
	buf_free(&got_down);
	rg_free(up);
	rg_free(down);
	pair_close(&p);
}

TLS_TEST_VERSIONS(test_app_data, check_app_data)

/* output stays where it is until consumed, even while more is appended */
static void test_output_stable(void **state)
{
	(void)state;
	struct tls_pair p;
	pair_open(&p, ec_cert, ec_key, V13);
	const uint8_t *p1, *p2;
	size_t l1, l2, taken;
	const char *error;
	uint8_t copy[256];

	assert_false(tls_conn_pending_output(p.s, &p1, &l1));
	assert_int_equal(tls_conn_write(p.s, "hello", 5, &taken, &error), TLS_OK);
	assert_int_equal(taken, 5);
	assert_true(tls_conn_pending_output(p.s, &p1, &l1));
	assert_true(l1 < sizeof(copy));
	memcpy(copy, p1, l1);
	assert_int_equal(tls_conn_write(p.s, "world", 5, &taken, &error), TLS_OK);
	assert_true(tls_conn_pending_output(p.s, &p2, &l2));
	assert_ptr_equal(p1, p2);
	assert_true(l2 > l1);
	assert_memory_equal(p2, copy, l1);
	server_to_client(p.s, p.c, 3);
	struct buf got = { 0 };
	client_read_all(p.c, &got);
	assert_int_equal(got.len, 10);
	assert_memory_equal(got.data, "helloworld", 10);
	buf_free(&got);
	pair_close(&p);
}

/* can_take says whether a write is taken whole: while it says yes, 64 KiB
 * writes are TLS_OK; once no, the output must be sent first; several
 * records wait in one piece of output (one send for all of them) */
static void check_can_take(enum client_version v)
{
	struct tls_pair p;
	pair_open(&p, ec_cert, ec_key, v);
	static uint8_t data[65536];
	const char *error;
	size_t taken, writes = 0;
	const uint8_t *out;
	size_t len;

	fill_pattern(data, sizeof(data), 3);
	while (tls_conn_can_take(p.s, sizeof(data))) {
		assert_int_equal(tls_conn_write(p.s, data, sizeof(data), &taken, &error), TLS_OK);
		assert_int_equal(taken, sizeof(data));
		writes++;
	}
	assert_true(writes >= 1);
	assert_true(tls_conn_pending_output(p.s, &out, &len));
	assert_true(len > 2 * 16384);
	/* full: a write now is taken in part at most */
	assert_int_not_equal(tls_conn_write(p.s, data, sizeof(data), &taken, &error), TLS_ERROR);
	assert_true(taken < sizeof(data));
	struct buf got = { 0 };
	server_to_client(p.s, p.c, 100000);
	client_read_all(p.c, &got);
	assert_int_equal(got.len, writes * sizeof(data) + taken);
	for (size_t i = 0; i < writes; i++)
		assert_memory_equal(got.data + i * sizeof(data), data, sizeof(data));
	assert_true(tls_conn_can_take(p.s, sizeof(data)));
	buf_free(&got);
	pair_close(&p);
}

TLS_TEST_VERSIONS(test_can_take, check_can_take)

static void test_write_before_handshake(void **state)
{
	(void)state;
	struct tls_ctx *ctx = make_ctx(ec_cert, ec_key);
	struct tls_conn *s = tls_conn_new(ctx);
	size_t taken = 99;
	const char *error = NULL;
	assert_int_equal(tls_conn_write(s, "x", 1, &taken, &error), TLS_ERROR);
	assert_int_equal(taken, 0);
	assert_non_null(error);
	tls_conn_free(&s);
	tls_ctx_free(&ctx);
}

/* feed takes at most TLS_IN_MAX; the rest after a read */
static void test_feed_bounded(void **state)
{
	(void)state;
	struct tls_ctx *ctx = make_ctx(ec_cert, ec_key);
	struct tls_conn *s = tls_conn_new(ctx);
	uint8_t *junk = rg_calloc(1, TLS_IN_MAX + 100);
	assert_int_equal(tls_conn_feed(s, junk, TLS_IN_MAX + 100), TLS_IN_MAX);
	assert_int_equal(tls_conn_feed(s, junk, 10), 0);
	assert_int_equal(tls_conn_feed(s, junk, 0), 0);
	rg_free(junk);
	tls_conn_free(&s);
	tls_ctx_free(&ctx);
}

/* --- closing --- */

static void check_client_close(enum client_version v)
{
	struct tls_pair p;
	pair_open(&p, ec_cert, ec_key, v);
	const char *error;
	uint8_t plain[100];
	size_t len;

	client_read_all(p.c, NULL);
	assert_int_equal(wolfSSL_write(p.c->ssl, "bye", 3), 3);
	wolfSSL_shutdown(p.c->ssl);
	feed_all(p.s, p.c);
	assert_int_equal(tls_conn_read(p.s, plain, sizeof(plain), &len, &error), TLS_OK);
	assert_int_equal(len, 3);
	assert_memory_equal(plain, "bye", 3);
	assert_int_equal(tls_conn_read(p.s, plain, sizeof(plain), &len, &error), TLS_CLOSED);
	assert_int_equal(len, 0);
	/* and it stays closed */
	assert_int_equal(tls_conn_read(p.s, plain, sizeof(plain), &len, &error), TLS_CLOSED);
	pair_close(&p);
}

TLS_TEST_VERSIONS(test_client_close, check_client_close)

static void test_server_shutdown(void **state)
{
	(void)state;
	struct tls_pair p;
	pair_open(&p, ec_cert, ec_key, V13);
	const char *error;
	char tmp[100];

	client_read_all(p.c, NULL);
	assert_int_equal(tls_conn_shutdown(p.s, &error), TLS_OK);
	server_to_client(p.s, p.c, 100000);
	int ret = wolfSSL_read(p.c->ssl, tmp, sizeof(tmp));
	assert_true(ret <= 0);
	assert_int_equal(wolfSSL_get_error(p.c->ssl, ret), WOLFSSL_ERROR_ZERO_RETURN);
	pair_close(&p);
}

/* shutdown behind a full output buffer: close_notify comes after the data */
static void test_shutdown_want_output(void **state)
{
	(void)state;
	struct tls_pair p;
	pair_open(&p, ec_cert, ec_key, V13);
	const char *error;
	size_t taken, total = 0;
	uint8_t block[8192];

	server_to_client(p.s, p.c, 100000);
	client_read_all(p.c, NULL);
	fill_pattern(block, sizeof(block), 7);
	while (tls_conn_write(p.s, block, sizeof(block), &taken, &error) == TLS_OK)
		total += taken;
	total += taken;
	/* writes leave room for a record's overhead, so close_notify fits
	 * at once here; were the buffer full it would ask to send first */
	enum tls_result res = tls_conn_shutdown(p.s, &error);
	unsigned rounds = 0;
	while (res == TLS_WANT_OUTPUT) {
		const uint8_t *out;
		size_t len;
		assert_true(tls_conn_pending_output(p.s, &out, &len));
		buf_append(&p.c->from_server, out, len);
		tls_conn_consume_output(p.s, len);
		res = tls_conn_shutdown(p.s, &error);
		rounds++;
	}
	assert_int_equal(res, TLS_OK);
	/* again: nothing more, no wait for the client's close_notify */
	assert_int_equal(tls_conn_shutdown(p.s, &error), TLS_OK);
	server_to_client(p.s, p.c, 100000);
	struct buf got = { 0 };
	char tmp[16384];
	for (;;) {
		int n = wolfSSL_read(p.c->ssl, tmp, sizeof(tmp));
		if (n <= 0) {
			assert_int_equal(wolfSSL_get_error(p.c->ssl, n), WOLFSSL_ERROR_ZERO_RETURN);
			break;
		}
		buf_append(&got, tmp, (size_t)n);
	}
	assert_int_equal(got.len, total);
	print_message("shutdown after %zu B of data: %u WANT_OUTPUT rounds\n", total, rounds);
	buf_free(&got);
	pair_close(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_app_data_13),
		cmocka_unit_test(test_app_data_12),
		cmocka_unit_test(test_output_stable),
		cmocka_unit_test(test_can_take_13),
		cmocka_unit_test(test_can_take_12),
		cmocka_unit_test(test_write_before_handshake),
		cmocka_unit_test(test_feed_bounded),
		cmocka_unit_test(test_client_close_13),
		cmocka_unit_test(test_client_close_12),
		cmocka_unit_test(test_server_shutdown),
		cmocka_unit_test(test_shutdown_want_output),
	};
	return cmocka_run_group_tests(tests, tls_test_setup, tls_test_teardown);
}
