/* tls-test.c — the TLS unit tests' shared fixtures and client (tls-test.h) */
#include "tls-test.h"
#include <wolfssl/error-ssl.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/alloc.h"

/* --- fixtures --- */

static char *read_file(const char *name)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", CERTS_DIR, name);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		fail_msg("cannot open %s", path);
	char *buf = rg_malloc(16384);
	size_t n = fread(buf, 1, 16383, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

char *rsa_cert, *rsa_key, *ec_cert, *ec_key, *other_cert, *other_key, *wild_cert, *wild_key,
	*mismatch_key, *dh_params;

int tls_test_setup(void **state)
{
	(void)state;
	rsa_cert = read_file("rsa-cert.pem");
	rsa_key = read_file("rsa-key.pem");
	ec_cert = read_file("ecdsa-cert.pem");
	ec_key = read_file("ecdsa-key.pem");
	other_cert = read_file("other-cert.pem");
	other_key = read_file("other-key.pem");
	wild_cert = read_file("wild-cert.pem");
	wild_key = read_file("wild-key.pem");
	mismatch_key = read_file("mismatch-key.pem");
	dh_params = read_file("dh.pem");
	return 0;
}

int tls_test_teardown(void **state)
{
	(void)state;
	rg_free(rsa_cert);
	rg_free(rsa_key);
	rg_free(dh_params);
	rg_free(ec_cert);
	rg_free(ec_key);
	rg_free(other_cert);
	rg_free(other_key);
	rg_free(wild_cert);
	rg_free(wild_key);
	rg_free(mismatch_key);
	return 0;
}

struct tls_ctx *make_ctx_full(const char *cert, const char *key, const char *min_protocol,
				     const char *ciphers)
{
	struct tls_ctx_settings set = {
		.cert_pem = cert,
		.key_pem = key,
		.min_protocol = min_protocol,
		.cipher_list = ciphers,
		.prefer_server_ciphers = true,
	};
	struct tls_ctx *ctx = NULL;
	const char *error = NULL;
	int ret = tls_ctx_create(&set, &ctx, &error);
	if (ret != 0)
		fail_msg("tls_ctx_create: %s", error);
	return ctx;
}

struct tls_ctx *make_ctx(const char *cert, const char *key)
{
	return make_ctx_full(cert, key, NULL, NULL);
}

/* --- the test client --- */

void buf_append(struct buf *b, const void *data, size_t len)
{
	if (b->len + len > b->cap) {
		b->cap = (b->len + len) * 2;
		b->data = rg_realloc(b->data, b->cap);
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
}

void buf_shift(struct buf *b, size_t n)
{
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

void buf_free(struct buf *b)
{
	rg_free(b->data);
	memset(b, 0, sizeof(*b));
}

static int client_recv(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
	struct client *c = arg;
	(void)ssl;
	if (c->from_server.len == 0)
		return WOLFSSL_CBIO_ERR_WANT_READ;
	size_t n = c->from_server.len < (size_t)sz ? c->from_server.len : (size_t)sz;
	memcpy(buf, c->from_server.data, n);
	buf_shift(&c->from_server, n);
	return (int)n;
}

static int client_send(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
	struct client *c = arg;
	(void)ssl;
	buf_append(&c->to_server, buf, (size_t)sz);
	return sz;
}

/* the server's certificate (depth 0) names itself: keep its CN; the
 * clients verify nothing (WOLFSSL_VERIFY_NONE), so every chain passes */
static int client_verify(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
	(void)preverify;
	WOLFSSL *ssl = wolfSSL_X509_STORE_CTX_get_ex_data(store, wolfSSL_get_ex_data_X509_STORE_CTX_idx());
	struct client *c = ssl != NULL ? wolfSSL_GetIOReadCtx(ssl) : NULL;
	WOLFSSL_X509 *x = wolfSSL_X509_STORE_CTX_get_current_cert(store);
	if (c != NULL && x != NULL && wolfSSL_X509_STORE_CTX_get_error_depth(store) == 0 &&
	    wolfSSL_X509_NAME_get_text_by_NID(wolfSSL_X509_get_subject_name(x), NID_commonName, c->peer_cn,
					      (int)sizeof(c->peer_cn)) <= 0)
		c->peer_cn[0] = '\0';
	return 1;
}

const char *client_ciphers;
int client_key_share;
const int *client_groups;

struct client *client_new(enum client_version v, const char *sni, WOLFSSL_SESSION *session)
{
	struct client *c = rg_calloc(1, sizeof(*c));
	c->ctx = wolfSSL_CTX_new(v == V13   ? wolfTLSv1_3_client_method()
				 : v == V12 ? wolfTLSv1_2_client_method()
					    : wolfTLSv1_1_client_method());
	assert_non_null(c->ctx);
	if (client_ciphers != NULL)
		assert_int_equal(wolfSSL_CTX_set_cipher_list(c->ctx, client_ciphers), WOLFSSL_SUCCESS);
	wolfSSL_CTX_set_verify(c->ctx, WOLFSSL_VERIFY_NONE, client_verify);
	wolfSSL_SetIORecv(c->ctx, client_recv);
	wolfSSL_SetIOSend(c->ctx, client_send);
	c->ssl = wolfSSL_new(c->ctx);
	assert_non_null(c->ssl);
	wolfSSL_SetIOReadCtx(c->ssl, c);
	wolfSSL_SetIOWriteCtx(c->ssl, c);
	/* the client's exporter after the handshake (channel binding checks):
	 * a wolfSSL without post-handshake auth frees these secrets then */
	wolfSSL_KeepArrays(c->ssl);
	assert_int_equal(wolfSSL_UseSessionTicket(c->ssl), WOLFSSL_SUCCESS);
	if (sni != NULL)
		assert_int_equal(wolfSSL_UseSNI(c->ssl, WOLFSSL_SNI_HOST_NAME, sni, (unsigned short)strlen(sni)),
				 WOLFSSL_SUCCESS);
	if (session != NULL)
		assert_int_equal(wolfSSL_set_session(c->ssl, session), WOLFSSL_SUCCESS);
	for (const int *g = client_groups; g != NULL && *g != 0; g++)
		assert_int_equal(wolfSSL_UseSupportedCurve(c->ssl, (word16)*g), WOLFSSL_SUCCESS);
	if (client_key_share != 0 && v == V13)
		assert_int_equal(wolfSSL_UseKeyShare(c->ssl, (word16)client_key_share), WOLFSSL_SUCCESS);
	return c;
}

void client_free(struct client *c)
{
	wolfSSL_free(c->ssl);
	wolfSSL_CTX_free(c->ctx);
	buf_free(&c->from_server);
	buf_free(&c->to_server);
	buf_free(&c->transcript);
	rg_free(c);
}

/* one step of the client handshake; fails the test on a client error */
void client_step(struct client *c)
{
	if (c->done)
		return;
	int ret = wolfSSL_connect(c->ssl);
	if (ret == WOLFSSL_SUCCESS) {
		c->done = true;
		return;
	}
	int err = wolfSSL_get_error(c->ssl, ret);
	if (err != WOLFSSL_ERROR_WANT_READ && c->may_fail) {
		c->failed = err;
		return;
	}
	if (err != WOLFSSL_ERROR_WANT_READ)
		fail_msg("client handshake error %d", err);
}

/* client handshake step that may fail; returns the wolfSSL error or 0 */
int client_try(struct client *c)
{
	int ret = wolfSSL_connect(c->ssl);
	if (ret == WOLFSSL_SUCCESS) {
		c->done = true;
		return 0;
	}
	return wolfSSL_get_error(c->ssl, ret);
}

/* server output → client, consuming it in pieces of `piece` bytes so the
 * engine sees partial sends */
void server_to_client(struct tls_conn *s, struct client *c, size_t piece)
{
	const uint8_t *data;
	size_t len;
	while (tls_conn_pending_output(s, &data, &len)) {
		assert_true(len <= TLS_OUT_MAX);
		size_t n = len < piece ? len : piece;
		buf_append(&c->from_server, data, n);
		buf_append(&c->transcript, data, n);
		tls_conn_consume_output(s, n);
	}
}

/* Run both handshakes to completion, feeding the server `chunk` bytes at a
 * time. Returns the server's last result (TLS_OK or TLS_ERROR). */
enum tls_result pump_handshake(struct tls_conn *s, struct client *c, size_t chunk, const char **error_r)
{
	enum tls_result res = TLS_WANT_INPUT;

	for (int round = 0; round < 100000; round++) {
		client_step(c);
		if (c->failed != 0)
			return res;
		bool fed = false;
		while (c->to_server.len > 0) {
			size_t n = c->to_server.len < chunk ? c->to_server.len : chunk;
			size_t taken = tls_conn_feed(s, c->to_server.data, n);
			assert_true(taken > 0);
			buf_shift(&c->to_server, taken);
			do {
				res = tls_conn_handshake(s, error_r);
				server_to_client(s, c, 100000);
			} while (res == TLS_WANT_OUTPUT);
			fed = true;
			if (res == TLS_ERROR)
				return res;
		}
		if (!fed && round == 0) {
			res = tls_conn_handshake(s, error_r);
			server_to_client(s, c, 100000);
		}
		if (c->done && res == TLS_OK && c->to_server.len == 0) {
			assert_true(tls_conn_handshake_done(s));
			return TLS_OK;
		}
		if (!fed && c->from_server.len == 0 && round > 0)
			fail_msg("handshake stalled");
	}
	fail_msg("handshake did not finish");
	return TLS_ERROR;
}

struct tls_conn *handshake(struct tls_ctx *ctx, struct client *c)
{
	const char *error = NULL;
	struct tls_conn *s = tls_conn_new(ctx);
	if (pump_handshake(s, c, 65536, &error) != TLS_OK)
		fail_msg("handshake failed: %s", error);
	return s;
}

void pair_open(struct tls_pair *p, const char *cert, const char *key, enum client_version v)
{
	p->ctx = make_ctx(cert, key);
	p->c = client_new(v, NULL, NULL);
	p->s = handshake(p->ctx, p->c);
}

void pair_close(struct tls_pair *p)
{
	tls_conn_free(&p->s);
	assert_null(p->s);
	client_free(p->c);
	p->c = NULL;
	tls_ctx_free(&p->ctx);
}

void feed_all(struct tls_conn *s, struct client *c)
{
	assert_int_equal(tls_conn_feed(s, c->to_server.data, c->to_server.len), c->to_server.len);
	buf_shift(&c->to_server, c->to_server.len);
}

/* let the client process what the server sent after the handshake (TLS 1.3
 * tickets) and return plaintext it read, if any */
size_t client_read_all(struct client *c, struct buf *plain)
{
	char tmp[16384];
	size_t total = 0;
	for (;;) {
		int n = wolfSSL_read(c->ssl, tmp, sizeof(tmp));
		if (n <= 0) {
			int err = wolfSSL_get_error(c->ssl, n);
			if (err == WOLFSSL_ERROR_WANT_READ)
				return total;
			fail_msg("client read error %d", err);
		}
		if (plain != NULL)
			buf_append(plain, tmp, (size_t)n);
		total += (size_t)n;
	}
}

void peer_cn(struct client *c, char *out, size_t size)
{
	size_t len = strlen(c->peer_cn);
	assert_true(len > 0 && len < size);
	memcpy(out, c->peer_cn, len + 1);
}

void fill_pattern(uint8_t *p, size_t len, uint32_t seed)
{
	for (size_t i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

void key_material(uint8_t key[TLS_TICKET_KEY_SIZE], uint8_t seed)
{
	for (size_t i = 0; i < TLS_TICKET_KEY_SIZE; i++)
		key[i] = (uint8_t)(seed * 31 + i);
}

/* full handshake on ctx, returning the client's session (with ticket) */
WOLFSSL_SESSION *get_session(struct tls_ctx *ctx, enum client_version v)
{
	struct client *c = client_new(v, NULL, NULL);
	struct tls_conn *s = handshake(ctx, c);
	assert_false(tls_conn_resumed(s));
	server_to_client(s, c, 100000);
	client_read_all(c, NULL); /* TLS 1.3 tickets come after the handshake */
	WOLFSSL_SESSION *sess = wolfSSL_get1_session(c->ssl);
	assert_non_null(sess);
	tls_conn_free(&s);
	client_free(c);
	return sess;
}

/* did the server send a Certificate before its first ChangeCipherSpec (TLS
 * 1.2 plaintext handshake)? */
bool transcript_has(const struct buf *t, uint8_t type)
{
	struct buf hs = { 0 };
	bool found = false;
	for (size_t off = 0; off + 5 <= t->len;) {
		size_t len = (size_t)t->data[off + 3] << 8 | t->data[off + 4];
		if (t->data[off] != 22 || off + 5 + len > t->len)
			break;
		buf_append(&hs, t->data + off + 5, len);
		off += 5 + len;
	}
	for (size_t off = 0; off + 4 <= hs.len;) {
		if (hs.data[off] == type)
			found = true;
		off += 4 + ((size_t)hs.data[off + 1] << 16 | (size_t)hs.data[off + 2] << 8 | hs.data[off + 3]);
	}
	buf_free(&hs);
	return found;
}

bool try_resume(struct tls_ctx *ctx, enum client_version v, WOLFSSL_SESSION *sess,
		       WOLFSSL_SESSION **new_sess_r)
{
	struct client *c = client_new(v, NULL, sess);
	struct tls_conn *s = tls_conn_new(ctx);
	const char *error = NULL;

	/* wolfSSL's TLS 1.2 client takes any ServerHello as a resumption
	 * when it offered a ticket (it sends no session ID to be echoed), so
	 * it chokes on our correct full handshake: check the server's side */
	c->may_fail = v == V12;
	enum tls_result res = pump_handshake(s, c, 65536, &error);
	if (c->failed != 0) {
		assert_int_equal(c->failed, OUT_OF_ORDER_E);
		assert_false(tls_conn_handshake_done(s));
		assert_true(transcript_has(&c->transcript, 11));
		if (new_sess_r != NULL)
			*new_sess_r = NULL;
		tls_conn_free(&s);
		client_free(c);
		return false;
	}
	if (res != TLS_OK)
		fail_msg("handshake failed: %s", error);
	bool resumed = tls_conn_resumed(s);
	if (v == V12) {
		assert_int_equal(transcript_has(&c->transcript, 11), !resumed);
	}
	assert_int_equal(resumed, wolfSSL_session_reused(c->ssl) != 0);
	server_to_client(s, c, 100000);
	client_read_all(c, NULL);
	if (new_sess_r != NULL)
		*new_sess_r = wolfSSL_get1_session(c->ssl);
	tls_conn_free(&s);
	client_free(c);
	return resumed;
}

void check_sni(struct tls_ctx *ctx, enum client_version v, const char *name, const char *expect_cn)
{
	struct client *c = client_new(v, name, NULL);
	struct tls_conn *s = handshake(ctx, c);
	char cn[128];
	peer_cn(c, cn, sizeof(cn));
	if (strcmp(cn, expect_cn) != 0)
		fail_msg("SNI %s: got certificate %s, wanted %s", name != NULL ? name : "(none)", cn,
			 expect_cn);
	if (name != NULL)
		assert_string_equal(tls_conn_sni(s), name);
	else
		assert_null(tls_conn_sni(s));
	tls_conn_free(&s);
	client_free(c);
}

void check_resume_elsewhere(struct tls_ctx *ctx, const char *sni, uint8_t seed)
{
	uint8_t k[TLS_TICKET_KEY_SIZE];
	key_material(k, seed);
	tls_ctx_set_ticket_keys(ctx, k, NULL);
	struct client *c = client_new(V13, sni, NULL);
	struct tls_conn *s = handshake(ctx, c);
	server_to_client(s, c, 100000);
	client_read_all(c, NULL);
	WOLFSSL_SESSION *sess = wolfSSL_get1_session(c->ssl);
	tls_conn_free(&s);
	client_free(c);
	struct tls_ctx *peer = make_ctx(ec_cert, ec_key);
	tls_ctx_set_ticket_keys(peer, k, NULL);
	assert_true(try_resume(peer, V13, sess, NULL));
	wolfSSL_SESSION_free(sess);
	tls_ctx_free(&peer);
}
