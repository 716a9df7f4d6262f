/* TLS engine tests: what the ssl_* settings change (minimum protocol,
 * cipher and curve lists, server cipher order, client certificates) and
 * the context errors an administrator sees. */
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

/* a TLS 1.3 client gets a TLS 1.3 handshake on ctx */
static void check_tls13(struct tls_ctx *ctx)
{
	struct client *c = client_new(V13, NULL, NULL);
	struct tls_conn *s = handshake(ctx, c);
	assert_string_equal(tls_conn_version(s), "TLSv1.3");
	tls_conn_free(&s);
	client_free(c);
}

/* the client's first flight, refused by a new server connection on ctx */
static struct tls_conn *refused_hello(struct tls_ctx *ctx, struct client *c, const char *what)
{
	struct tls_conn *s = tls_conn_new(ctx);
	const char *error = NULL;

	client_step(c);
	feed_all(s, c);
	assert_int_equal(tls_conn_handshake(s, &error), TLS_ERROR);
	print_message("%s: %s\n", what, error);
	return s;
}

static void test_min_protocol_13_refuses_12(void **state)
{
	(void)state;
	struct tls_ctx *ctx = make_ctx_full(ec_cert, ec_key, "TLSv1.3", NULL);
	struct client *c = client_new(V12, NULL, NULL);
	struct tls_conn *s = refused_hello(ctx, c, "TLS 1.2 client vs TLSv1.3 minimum");

	server_to_client(s, c, 100000);
	assert_int_not_equal(client_try(c), 0);
	tls_conn_free(&s);
	client_free(c);

	/* a TLS 1.3 client is fine */
	check_tls13(ctx);
	tls_ctx_free(&ctx);
}

static void test_tls11_refused(void **state)
{
	(void)state;
	struct tls_ctx *ctx = make_ctx(ec_cert, ec_key);
	struct client *c = client_new(V11, NULL, NULL);
	struct tls_conn *s = refused_hello(ctx, c, "TLS 1.1 client");
	const uint8_t *out;
	size_t len;
	assert_true(tls_conn_pending_output(s, &out, &len));
	assert_int_equal(out[0], 21); /* alert */
	tls_conn_free(&s);
	client_free(c);
	tls_ctx_free(&ctx);
}

/* ssl_prefer_server_ciphers: whose order picks the TLS 1.2 suite */
static void test_prefer_server_ciphers(void **state)
{
	(void)state;
	const char *ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305";
	for (int prefer = 0; prefer <= 1; prefer++) {
		struct tls_ctx_settings set = {
			.cert_pem = ec_cert, .key_pem = ec_key, .cipher_list = ciphers,
			.prefer_server_ciphers = prefer,
		};
		struct tls_ctx *ctx;
		const char *error;
		assert_int_equal(tls_ctx_create(&set, &ctx, &error), 0);
		client_ciphers = "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256";
		struct client *c = client_new(V12, NULL, NULL);
		client_ciphers = NULL;
		struct tls_conn *s = handshake(ctx, c);
		assert_string_equal(tls_conn_cipher(s), prefer ? "ECDHE-ECDSA-AES128-GCM-SHA256"
							       : "ECDHE-ECDSA-CHACHA20-POLY1305");
		tls_conn_free(&s);
		client_free(c);
		tls_ctx_free(&ctx);
	}
}

/* ssl_curve_list: which groups the server accepts, and in TLS 1.2 whose
 * order picks; clients that support one group send its key share */
static const char *curve_try(const char *list, enum client_version v, const int *groups, int share)
{
	struct tls_ctx_settings set = { .cert_pem = ec_cert, .key_pem = ec_key, .curve_list = list };
	struct tls_ctx *ctx;
	const char *error;
	static char got[32];

	assert_int_equal(tls_ctx_create(&set, &ctx, &error), 0);
	client_groups = groups;
	client_key_share = share;
	struct client *c = client_new(v, NULL, NULL);
	client_groups = NULL;
	client_key_share = 0;
	c->may_fail = true;
	struct tls_conn *s = tls_conn_new(ctx);
	enum tls_result res = pump_handshake(s, c, 65536, &error);
	if (res == TLS_OK && c->failed == 0) {
		const char *name = wolfSSL_get_curve_name(c->ssl);
		snprintf(got, sizeof(got), "%s", name != NULL ? name : "?");
	} else {
		snprintf(got, sizeof(got), "failed");
	}
	tls_conn_free(&s);
	client_free(c);
	tls_ctx_free(&ctx);
	return got;
}

static void test_curve_list(void **state)
{
	(void)state;
	static const int x25519[] = { WOLFSSL_ECC_X25519, 0 };
	static const int p256[] = { WOLFSSL_ECC_SECP256R1, 0 };
	static const int p384[] = { WOLFSSL_ECC_SECP384R1, 0 };
	static const int x25519_p384[] = { WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP384R1, 0 };

	/* the default offers both cheap groups, in both versions */
	assert_string_equal(curve_try(NULL, V13, x25519, WOLFSSL_ECC_X25519), "X25519");
	assert_string_equal(curve_try(NULL, V13, p256, WOLFSSL_ECC_SECP256R1), "SECP256R1");
	assert_string_equal(curve_try("", V12, x25519, 0), "X25519");
	assert_string_equal(curve_try("", V12, p256, 0), "SECP256R1");
	assert_string_equal(curve_try(NULL, V13, p384, WOLFSSL_ECC_SECP384R1), "SECP384R1");
	/* a list without a group refuses clients that have only it */
	assert_string_equal(curve_try("P-256", V13, x25519, WOLFSSL_ECC_X25519), "failed");
	/* (TLS 1.2: wolfSSL then signs its default P-256 share, which the
	 * client did not offer; OpenSSL clients abort, wolfSSL's goes on —
	 * either way X25519 is not used) */
	assert_string_not_equal(curve_try("P-256", V12, x25519, 0), "X25519");
	assert_string_not_equal(curve_try("P-384", V12, x25519, 0), "X25519");
	assert_string_equal(curve_try("P-256", V13, p256, WOLFSSL_ECC_SECP256R1), "SECP256R1");
	assert_string_equal(curve_try("X25519", V13, p256, WOLFSSL_ECC_SECP256R1), "failed");
	assert_string_equal(curve_try("X25519", V13, x25519, WOLFSSL_ECC_X25519), "X25519");
	/* TLS 1.2: a listed curve the client offers; among several, wolfSSL
	 * takes a 256-bit one whatever the list's order */
	assert_string_equal(curve_try("P-384", V12, x25519_p384, 0), "SECP384R1");
	assert_string_equal(curve_try("P-384:X25519", V12, x25519_p384, 0), "X25519");
	/* TLS 1.3: a key share for a listed group is taken as it is (no
	 * HelloRetryRequest round trip for a group the server ranks higher) */
	assert_string_equal(curve_try("P-384:X25519", V13, x25519_p384, WOLFSSL_ECC_X25519), "X25519");
	/* a key share for an unlisted group: the server asks for a listed one */
	assert_string_equal(curve_try("P-384", V13, x25519_p384, WOLFSSL_ECC_X25519), "SECP384R1");
}

/* --- context errors --- */

static void check_ctx_error(const char *cert, const char *key, const char *minp, const char *ciphers,
			    const char *expect)
{
	struct tls_ctx_settings set = {
		.cert_pem = cert, .key_pem = key, .min_protocol = minp, .cipher_list = ciphers
	};
	struct tls_ctx *ctx = NULL;
	const char *error = NULL;

	if (tls_ctx_create(&set, &ctx, &error) != -EINVAL)
		fail_msg("accepted, wanted '%s'", expect);
	assert_null(ctx);
	assert_non_null(error);
	if (strstr(error, expect) == NULL)
		fail_msg("error '%s' lacks '%s'", error, expect);
}

static void test_ctx_errors(void **state)
{
	(void)state;
	check_ctx_error(ec_cert, mismatch_key, NULL, NULL, "ssl_key: does not match ssl_cert");
	check_ctx_error(rsa_cert, ec_key, NULL, NULL, "ssl_key: does not match ssl_cert");
	check_ctx_error(ec_cert, rsa_key, NULL, NULL, "ssl_key: does not match ssl_cert");
	check_ctx_error("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n", ec_key, NULL, NULL,
			"ssl_cert: not a valid PEM");
	check_ctx_error("hello", ec_key, NULL, NULL, "ssl_cert: not a valid PEM");
	check_ctx_error(ec_cert, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", NULL, NULL,
			"ssl_key: not a valid PEM");
	check_ctx_error(ec_cert, "", NULL, NULL, "ssl_key: missing");
	check_ctx_error(NULL, ec_key, NULL, NULL, "ssl_cert: missing");
	check_ctx_error(ec_cert, ec_key, "TLSv1.1", NULL, "ringgate supports TLSv1.2 and TLSv1.3");
	check_ctx_error(ec_cert, ec_key, "TLSv1", NULL, "ringgate supports TLSv1.2 and TLSv1.3");
	check_ctx_error(ec_cert, ec_key, "ANY", NULL, "ringgate supports TLSv1.2 and TLSv1.3");
	check_ctx_error(ec_cert, ec_key, "TLSv9", NULL, "ssl_min_protocol: unknown value 'TLSv9'");
	check_ctx_error(ec_cert, ec_key, NULL, "NOT-A-CIPHER", "ssl_cipher_list");

	struct tls_ctx_settings set = { .cert_pem = ec_cert, .key_pem = ec_key, .ca_pem = "junk" };
	struct tls_ctx *ctx = NULL;
	const char *error = NULL;
	assert_int_equal(tls_ctx_create(&set, &ctx, &error), -EINVAL);
	assert_non_null(strstr(error, "ssl_ca"));
	/* a real CA file is fine, as are the accepted spellings */
	set.ca_pem = rsa_cert;
	set.min_protocol = "tlsv1.2";
	assert_int_equal(tls_ctx_create(&set, &ctx, &error), 0);
	tls_ctx_free(&ctx);
	assert_null(ctx);

	/* ssl_dh: RFC 7919 ffdhe2048 loads, anything else is named */
	set.dh_pem = dh_params;
	assert_int_equal(tls_ctx_create(&set, &ctx, &error), 0);
	tls_ctx_free(&ctx);
	set.dh_pem = "-----BEGIN DH PARAMETERS-----\nAAAA\n-----END DH PARAMETERS-----\n";
	assert_int_equal(tls_ctx_create(&set, &ctx, &error), -EINVAL);
	assert_non_null(strstr(error, "ssl_dh"));
}

/* ssl_cipher_list narrows TLS 1.2; TLS 1.3 keeps its suites */
static void test_cipher_list(void **state)
{
	(void)state;
	struct tls_ctx *ctx = make_ctx_full(ec_cert, ec_key, NULL, "ECDHE-ECDSA-CHACHA20-POLY1305");
	struct client *c = client_new(V12, NULL, NULL);
	struct tls_conn *s = handshake(ctx, c);
	print_message("TLS 1.2 with a narrowed list: %s\n", tls_conn_cipher(s));
	assert_non_null(strstr(tls_conn_cipher(s), "CHACHA20"));
	tls_conn_free(&s);
	client_free(c);
	check_tls13(ctx);
	tls_ctx_free(&ctx);

	/* Dovecot's default list is accepted and still negotiates */
	ctx = make_ctx_full(rsa_cert, rsa_key, NULL,
			    "ALL:!kRSA:!SRP:!kDHd:!DSS:!aNULL:!eNULL:!EXPORT:!DES:!3DES:!MD5:!PSK:!RC4:!ADH:!LOW@STRENGTH");
	c = client_new(V12, NULL, NULL);
	s = handshake(ctx, c);
	print_message("TLS 1.2 with Dovecot's default list: %s\n", tls_conn_cipher(s));
	tls_conn_free(&s);
	client_free(c);
	tls_ctx_free(&ctx);
}

/* --- client certificates (ssl_verify_client_cert) --- */

static struct tls_ctx *make_verify_ctx(const char *ca, bool require_crl, const char *field)
{
	struct tls_ctx_settings set = {
		.cert_pem = ec_cert,
		.key_pem = ec_key,
		.ca_pem = ca,
		.verify_client = true,
		.require_crl = require_crl,
		.cert_username_field = field,
	};
	struct tls_ctx *ctx = NULL;
	const char *error = NULL;
	if (tls_ctx_create(&set, &ctx, &error) != 0)
		fail_msg("tls_ctx_create: %s", error);
	return ctx;
}

static enum tls_peer_cert client_cert_run(struct tls_ctx *ctx, enum client_version v,
					  const char *cert, const char *key, char *name)
{
	struct client *c = client_new(v, NULL, NULL);
	if (cert != NULL) {
		assert_int_equal(wolfSSL_use_certificate_buffer(c->ssl, (const unsigned char *)cert,
								(long)strlen(cert), WOLFSSL_FILETYPE_PEM),
				 WOLFSSL_SUCCESS);
		assert_int_equal(wolfSSL_use_PrivateKey_buffer(c->ssl, (const unsigned char *)key,
							       (long)strlen(key), WOLFSSL_FILETYPE_PEM),
				 WOLFSSL_SUCCESS);
	}
	/* a bad certificate does not fail the handshake (Dovecot's login) */
	struct tls_conn *s = handshake(ctx, c);
	const char *error = NULL;
	enum tls_peer_cert r = tls_conn_peer_cert(s, name, &error);
	if (r == TLS_PEER_CERT_INVALID)
		assert_non_null(error);
	tls_conn_free(&s);
	client_free(c);
	return r;
}

static void test_client_cert(void **state)
{
	(void)state;
	char name[TLS_CERT_NAME_MAX];
	/* other-cert.pem is its own CA (self-signed) */
	struct tls_ctx *ctx = make_verify_ctx(other_cert, false, NULL);
	struct tls_ctx *cn = make_verify_ctx(other_cert, false, "CN");
	struct tls_ctx *mail = make_verify_ctx(other_cert, false, "emailAddress");
	/* require_crl without a CRL: no certificate can be valid */
	struct tls_ctx *crl = make_verify_ctx(other_cert, true, NULL);
	struct tls_ctx *plain = make_ctx(ec_cert, ec_key);
	for (enum client_version v = V12; v <= V13; v++) {
		assert_int_equal(client_cert_run(ctx, v, other_cert, other_key, name), TLS_PEER_CERT_VALID);
		assert_string_equal(name, "other.example.org");
		assert_int_equal(client_cert_run(cn, v, other_cert, other_key, name), TLS_PEER_CERT_VALID);
		assert_string_equal(name, "other.example.org");
		/* valid, but no such entry: no name */
		assert_int_equal(client_cert_run(mail, v, other_cert, other_key, name), TLS_PEER_CERT_VALID);
		assert_string_equal(name, "");
		/* issued by a CA not in ssl_ca */
		assert_int_equal(client_cert_run(ctx, v, wild_cert, wild_key, name), TLS_PEER_CERT_INVALID);
		assert_string_equal(name, "");
		assert_int_equal(client_cert_run(ctx, v, NULL, NULL, name), TLS_PEER_CERT_NONE);
		assert_int_equal(client_cert_run(crl, v, other_cert, other_key, name), TLS_PEER_CERT_INVALID);
		/* a context that does not ask gets none */
		assert_int_equal(client_cert_run(plain, v, other_cert, other_key, name), TLS_PEER_CERT_NONE);
	}
	tls_ctx_free(&ctx);
	tls_ctx_free(&cn);
	tls_ctx_free(&mail);
	tls_ctx_free(&crl);
	tls_ctx_free(&plain);

	/* configuration errors */
	const struct {
		const char *ca, *field, *error;
		bool verify;
	} bad[] = {
		{ "", NULL, "ssl_verify_client_cert = yes needs ssl_ca", true },
		{ "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n", NULL,
		  "ssl_verify_client_cert = yes needs ssl_ca", true },
		{ "not pem", NULL, "ssl_ca: not valid PEM certificates", false },
		{ "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", NULL,
		  "ssl_ca: certificate 1 is not valid", false },
		{ NULL, "noSuchField", "ssl_cert_username_field: unknown field 'noSuchField'", false },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct tls_ctx_settings set = {
			.cert_pem = ec_cert,
			.key_pem = ec_key,
			.ca_pem = bad[i].ca != NULL ? bad[i].ca : other_cert,
			.verify_client = bad[i].verify,
			.cert_username_field = bad[i].field,
		};
		struct tls_ctx *x = NULL;
		const char *error = NULL;
		assert_int_equal(tls_ctx_create(&set, &x, &error), -EINVAL);
		assert_null(x);
		if (strstr(error, bad[i].error) == NULL)
			fail_msg("case %zu: '%s' lacks '%s'", i, error, bad[i].error);
	}
}

/* --- the backend's certificate (passdb proxy ssl=yes) --- */

/* move what one engine has to send into the other */
static void shuttle(struct tls_conn *from, struct tls_conn *to)
{
	const uint8_t *data;
	size_t len;
	while (tls_conn_pending_output(from, &data, &len)) {
		size_t n = tls_conn_feed(to, data, len);
		tls_conn_consume_output(from, n);
		if (n < len)
			break;
	}
}

/* our client engine (ca: what it trusts, host: the passdb's host) against
 * our server with cert: the client's handshake result, its reason in
 * error_r. The name check is wolfSSL's on the certificate it decodes in
 * the handshake: it needs no peer certificate kept (the asm build keeps
 * none). */
static enum tls_result backend_run(const char *ca, const char *host, const char *cert, const char *key,
				   const char **error_r)
{
	struct tls_ctx *sctx = make_ctx(cert, key), *cctx = NULL;
	assert_int_equal(tls_ctx_create_client(ca, true, &cctx, error_r), 0);
	struct tls_conn *s = tls_conn_new(sctx), *c = tls_conn_new(cctx);
	tls_conn_set_peer_name(c, host, true);
	enum tls_result cr = TLS_WANT_INPUT;
	const char *serror = NULL;
	*error_r = NULL;
	for (int i = 0; i < 20 && cr != TLS_ERROR && !(tls_conn_handshake_done(c) && tls_conn_handshake_done(s));
	     i++) {
		cr = tls_conn_handshake(c, error_r);
		shuttle(c, s);
		(void)tls_conn_handshake(s, &serror);
		shuttle(s, c);
	}
	if (cr != TLS_ERROR)
		cr = tls_conn_handshake_done(c) ? TLS_OK : TLS_ERROR;
	tls_conn_free(&c);
	tls_conn_free(&s);
	tls_ctx_free(&cctx);
	tls_ctx_free(&sctx);
	return cr;
}

static void test_backend_name(void **state)
{
	(void)state;
	const char *error = NULL;
	/* ecdsa-cert.pem names mail.example.com, wild-cert.pem *.example.net;
	 * each is its own CA */
	assert_int_equal(backend_run(ec_cert, "mail.example.com", ec_cert, ec_key, &error), TLS_OK);
	assert_int_equal(backend_run(ec_cert, "MAIL.example.com", ec_cert, ec_key, &error), TLS_OK);
	assert_int_equal(backend_run(ec_cert, "imap.example.com", ec_cert, ec_key, &error), TLS_ERROR);
	assert_non_null(error);
	assert_int_equal(backend_run(ec_cert, "127.0.0.1", ec_cert, ec_key, &error), TLS_ERROR);
	assert_int_equal(backend_run(wild_cert, "a.example.net", wild_cert, wild_key, &error), TLS_OK);
	assert_int_equal(backend_run(wild_cert, "a.b.example.net", wild_cert, wild_key, &error), TLS_ERROR);
	/* the right name from a CA the client does not trust */
	assert_int_equal(backend_run(other_cert, "mail.example.com", ec_cert, ec_key, &error), TLS_ERROR);
	assert_non_null(error);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_min_protocol_13_refuses_12),
		cmocka_unit_test(test_tls11_refused),
		cmocka_unit_test(test_prefer_server_ciphers),
		cmocka_unit_test(test_curve_list),
		cmocka_unit_test(test_ctx_errors),
		cmocka_unit_test(test_cipher_list),
		cmocka_unit_test(test_client_cert),
		cmocka_unit_test(test_backend_name),
	};
	return cmocka_run_group_tests(tests, tls_test_setup, tls_test_teardown);
}
