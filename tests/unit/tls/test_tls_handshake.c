/* TLS engine tests: handshakes (RSA/ECDSA, TLS 1.2/1.3, one byte at a time,
 * the ClientHello split at every byte, a server flight larger than the
 * output buffer) and input that is not TLS. */
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

/* --- handshakes --- */

static void check_handshake(const char *cert, const char *key, enum client_version v, const char *version)
{
	struct tls_pair p;
	pair_open(&p, cert, key, v);

	assert_string_equal(tls_conn_version(p.s), version);
	assert_non_null(tls_conn_cipher(p.s));
	assert_false(tls_conn_resumed(p.s));
	assert_null(tls_conn_sni(p.s));
	char cn[128];
	peer_cn(p.c, cn, sizeof(cn));
	assert_string_equal(cn, "mail.example.com");
	/* a second call is still OK */
	const char *error;
	assert_int_equal(tls_conn_handshake(p.s, &error), TLS_OK);

	pair_close(&p);
}

static void test_handshake_rsa_13(void **state)
{
	(void)state;
	check_handshake(rsa_cert, rsa_key, V13, "TLSv1.3");
}

static void test_handshake_rsa_12(void **state)
{
	(void)state;
	check_handshake(rsa_cert, rsa_key, V12, "TLSv1.2");
}

static void test_handshake_ecdsa_13(void **state)
{
	(void)state;
	check_handshake(ec_cert, ec_key, V13, "TLSv1.3");
}

static void test_handshake_ecdsa_12(void **state)
{
	(void)state;
	check_handshake(ec_cert, ec_key, V12, "TLSv1.2");
}

static void test_cipher_names(void **state)
{
	(void)state;
	struct tls_ctx *ctx = make_ctx(ec_cert, ec_key);
	struct client *c = client_new(V13, NULL, NULL);
	struct tls_conn *s = handshake(ctx, c);
	/* what the log shows; wolfSSL's own names are fine as long as they
	 * name the suite */
	/* OpenSSL's names, as Dovecot logs them */
	assert_string_equal(tls_conn_cipher(s), "TLS_AES_128_GCM_SHA256");
	/* the client's P-256 key share is taken: no HelloRetryRequest for
	 * the server's X25519 preference */
	assert_string_equal(wolfSSL_get_curve_name(c->ssl), "SECP256R1");
	assert_false(transcript_has(&c->transcript, 2) && c->transcript.len > 0 &&
		     memmem(c->transcript.data, c->transcript.len,
			    "\xcf\x21\xad\x74\xe5\x9a\x61\x11\xbe\x1d\x8c\x02\x1e\x65\xb8\x91", 16) != NULL);
	tls_conn_free(&s);
	client_free(c);
	c = client_new(V12, NULL, NULL);
	s = handshake(ctx, c);
	assert_int_equal(strncmp(tls_conn_cipher(s), "ECDHE-ECDSA-AES", 15), 0);
	/* the wolfSSL client lists P-256 first; clients that list X25519
	 * first (OpenSSL, browsers) get it */
	assert_string_equal(wolfSSL_get_curve_name(c->ssl), "SECP256R1");
	tls_conn_free(&s);
	client_free(c);
	c = client_new(V12, NULL, NULL);
	assert_int_equal(wolfSSL_UseSupportedCurve(c->ssl, WOLFSSL_ECC_X25519), WOLFSSL_SUCCESS);
	assert_int_equal(wolfSSL_UseSupportedCurve(c->ssl, WOLFSSL_ECC_SECP256R1), WOLFSSL_SUCCESS);
	s = handshake(ctx, c);
	assert_string_equal(wolfSSL_get_curve_name(c->ssl), "X25519");
	tls_conn_free(&s);
	client_free(c);
	tls_ctx_free(&ctx);
}

/* the client's every flight fed one byte at a time */
static void check_one_byte(enum client_version v)
{
	struct tls_ctx *ctx = make_ctx(ec_cert, ec_key);
	struct client *c = client_new(v, NULL, NULL);
	struct tls_conn *s = tls_conn_new(ctx);
	const char *error = NULL;
	if (pump_handshake(s, c, 1, &error) != TLS_OK)
		fail_msg("handshake failed: %s", error);
	tls_conn_free(&s);
	client_free(c);
	tls_ctx_free(&ctx);
}

TLS_TEST_VERSIONS(test_one_byte, check_one_byte)

/* the ClientHello split at every byte: the server says nothing and wants
 * input until the last byte arrives, then the handshake completes */
static void check_every_split(enum client_version v)
{
	struct tls_ctx *ctx = make_ctx(ec_cert, ec_key);
	size_t hello_len = 0;

	for (size_t split = 1;; split++) {
		struct client *c = client_new(v, "mail.example.com", NULL);
		client_step(c);
		if (hello_len == 0)
			hello_len = c->to_server.len;
		/* same options, same ClientHello length */
		assert_int_equal(c->to_server.len, hello_len);
		if (split >= hello_len) {
			client_free(c);
			break;
		}
		struct tls_conn *s = tls_conn_new(ctx);
		const char *error = NULL;
		const uint8_t *data;
		size_t len;

		assert_int_equal(tls_conn_feed(s, c->to_server.data, split), split);
		assert_int_equal(tls_conn_handshake(s, &error), TLS_WANT_INPUT);
		assert_false(tls_conn_pending_output(s, &data, &len));
		buf_shift(&c->to_server, split);
		if (pump_handshake(s, c, 65536, &error) != TLS_OK)
			fail_msg("split %zu: %s", split, error);
		assert_string_equal(tls_conn_sni(s), "mail.example.com");
		tls_conn_free(&s);
		client_free(c);
	}
	assert_true(hello_len > 100);
	tls_ctx_free(&ctx);
}

TLS_TEST_VERSIONS(test_every_split, check_every_split)

/* a server flight larger than TLS_OUT_MAX (a long certificate chain): the
 * handshake asks for the output to be sent and goes on after */
static void test_handshake_want_output(void **state)
{
	(void)state;
	size_t one = strlen(rsa_cert);
	/* PEM is 4/3 of the DER that goes out: twice TLS_OUT_MAX in PEM */
	size_t copies = 2 * TLS_OUT_MAX / one + 1;
	char *chain = rg_malloc(one * copies + 1);
	for (size_t i = 0; i < copies; i++)
		memcpy(chain + one * i, rsa_cert, one);
	chain[one * copies] = '\0';
	struct tls_ctx *ctx = make_ctx(chain, rsa_key);
	struct client *c = client_new(V12, NULL, NULL);
	struct tls_conn *s = tls_conn_new(ctx);
	const char *error = NULL;
	const uint8_t *out;
	size_t len, total = 0;

	client_step(c);
	feed_all(s, c);
	enum tls_result res = tls_conn_handshake(s, &error);
	assert_int_equal(res, TLS_WANT_OUTPUT);
	unsigned rounds = 0;
	while (res == TLS_WANT_OUTPUT) {
		assert_true(tls_conn_pending_output(s, &out, &len));
		assert_true(len <= TLS_OUT_MAX);
		total += len;
		tls_conn_consume_output(s, len);
		res = tls_conn_handshake(s, &error);
		rounds++;
	}
	assert_int_equal(res, TLS_WANT_INPUT);
	if (tls_conn_pending_output(s, &out, &len))
		total += len;
	assert_true(total > TLS_OUT_MAX);
	print_message("server flight of %zu B in %u+1 parts\n", total, rounds);
	tls_conn_free(&s);
	client_free(c);
	tls_ctx_free(&ctx);
	rg_free(chain);
}

/* --- bad input --- */

static void check_garbage(const char *garbage, size_t len)
{
	struct tls_ctx *ctx = make_ctx(ec_cert, ec_key);
	struct tls_conn *s = tls_conn_new(ctx);
	const char *error = NULL;
	const uint8_t *out;
	size_t out_len;

	assert_int_equal(tls_conn_feed(s, garbage, len), len);
	assert_int_equal(tls_conn_handshake(s, &error), TLS_ERROR);
	assert_non_null(error);
	print_message("garbage: %s\n", error);
	/* an alert record goes out before the close */
	assert_true(tls_conn_pending_output(s, &out, &out_len));
	assert_true(out_len >= 7);
	assert_int_equal(out[0], 21);
	tls_conn_free(&s);
	tls_ctx_free(&ctx);
}

static void test_garbage_http(void **state)
{
	(void)state;
	static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	check_garbage(req, sizeof(req) - 1);
}

static void test_garbage_record(void **state)
{
	(void)state;
	/* a handshake record holding no ClientHello */
	static const char rec[] = "\x16\x03\x01\x00\x05\x99\x00\x00\x01\x00";
	check_garbage(rec, sizeof(rec) - 1);
}

static void test_garbage_after_handshake(void **state)
{
	(void)state;
	struct tls_pair p;
	pair_open(&p, ec_cert, ec_key, V13);
	const char *error = NULL;
	uint8_t plain[100];
	size_t len;
	/* an application data record that does not decrypt */
	static const uint8_t rec[] = { 23, 3, 3, 0, 20, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
				       11, 12, 13, 14, 15, 16, 17, 18, 19, 20 };
	assert_int_equal(tls_conn_feed(p.s, rec, sizeof(rec)), sizeof(rec));
	assert_int_equal(tls_conn_read(p.s, plain, sizeof(plain), &len, &error), TLS_ERROR);
	assert_non_null(error);
	pair_close(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handshake_rsa_13),
		cmocka_unit_test(test_handshake_rsa_12),
		cmocka_unit_test(test_handshake_ecdsa_13),
		cmocka_unit_test(test_handshake_ecdsa_12),
		cmocka_unit_test(test_cipher_names),
		cmocka_unit_test(test_one_byte_13),
		cmocka_unit_test(test_one_byte_12),
		cmocka_unit_test(test_every_split_13),
		cmocka_unit_test(test_every_split_12),
		cmocka_unit_test(test_handshake_want_output),
		cmocka_unit_test(test_garbage_http),
		cmocka_unit_test(test_garbage_record),
		cmocka_unit_test(test_garbage_after_handshake),
	};
	return cmocka_run_group_tests(tests, tls_test_setup, tls_test_teardown);
}
