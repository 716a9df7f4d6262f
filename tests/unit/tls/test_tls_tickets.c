/* TLS engine tests: session tickets (shared keys, rotation, TLS 1.2 and
 * 1.3, a context reseeded after fork), channel binding for SCRAM-*-PLUS in full and resumed handshakes,
 * and the fuzz seeds (ClientHellos, with and without tickets). */
#include "tls-test.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/alloc.h"

/* --- session tickets --- */

static void check_tickets(enum client_version v)
{
	uint8_t k1[TLS_TICKET_KEY_SIZE], k2[TLS_TICKET_KEY_SIZE], k3[TLS_TICKET_KEY_SIZE];
	key_material(k1, 1);
	key_material(k2, 2);
	key_material(k3, 3);

	struct tls_ctx *a = make_ctx(ec_cert, ec_key);
	struct tls_ctx *b = make_ctx(ec_cert, ec_key);

	/* random keys at create: a resumes its own tickets only */
	WOLFSSL_SESSION *sess = get_session(a, v);
	assert_true(try_resume(a, v, sess, NULL));
	assert_false(try_resume(b, v, sess, NULL));
	wolfSSL_SESSION_free(sess);

	/* same keys: another process (context) resumes */
	tls_ctx_set_ticket_keys(a, k1, NULL);
	tls_ctx_set_ticket_keys(b, k1, NULL);
	sess = get_session(a, v);
	assert_true(try_resume(b, v, sess, NULL));

	/* b rotates: k2 current, k1 previous; the old ticket still resumes
	 * and the client gets a fresh one under k2 */
	tls_ctx_set_ticket_keys(b, k2, k1);
	WOLFSSL_SESSION *fresh = NULL;
	assert_true(try_resume(b, v, sess, &fresh));
	assert_non_null(fresh);

	if (v == V13) {
		/* a knows only k1 (not rotated): the fresh ticket is not its */
		assert_false(try_resume(a, v, fresh, NULL));
		/* and after the next rotation k1 is gone, k2 still opens */
		tls_ctx_set_ticket_keys(b, k3, k2);
		assert_false(try_resume(b, v, sess, NULL));
		assert_true(try_resume(b, v, fresh, NULL));
	} else {
		/* wolfSSL 5.5.4 drops WOLFSSL_TICKET_RET_CREATE in TLS 1.2
		 * (fixed in a later release): the client keeps its k1 ticket
		 * until k1 retires, then makes one full handshake */
		assert_true(try_resume(a, v, fresh, NULL));
		tls_ctx_set_ticket_keys(b, k3, k2);
		assert_false(try_resume(b, v, sess, NULL));
		assert_false(try_resume(b, v, fresh, NULL));
	}
	wolfSSL_SESSION_free(fresh);

	/* different keys: a full handshake, not an error */
	tls_ctx_set_ticket_keys(a, k3, NULL);
	tls_ctx_set_ticket_keys(b, k2, NULL);
	WOLFSSL_SESSION *sess_a = get_session(a, v);
	assert_false(try_resume(b, v, sess_a, NULL));
	wolfSSL_SESSION_free(sess_a);
	wolfSSL_SESSION_free(sess);

	tls_ctx_free(&a);
	tls_ctx_free(&b);
}

TLS_TEST_VERSIONS(test_tickets, check_tickets)

/* --- a context built before fork() (the high-security login template) --- */

/* the GCM nonce of the ticket a child forked now seals with ctx (after a
 * tls_ctx_reseed or not), read back through a pipe */
static void forked_ticket_iv(struct tls_ctx *ctx, bool reseed, uint8_t iv[12])
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		if (reseed)
			tls_ctx_reseed(ctx);
		struct client *c = client_new(V13, NULL, NULL);
		struct tls_conn *s = handshake(ctx, c);
		server_to_client(s, c, 100000);
		client_read_all(c, NULL);
		/* wolfSSL's ticket: key name (16), nonce (16), ... */
		uint8_t t[4096];
		word32 len = sizeof(t);
		bool ok = wolfSSL_get_SessionTicket(c->ssl, t, &len) == WOLFSSL_SUCCESS && len >= 28;
		_exit(ok && write(p[1], t + 16, 12) == 12 ? 0 : 1);
	}
	close(p[1]);
	assert_int_equal(read(p[0], iv, 12), 12);
	close(p[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_reseed_after_fork(void **state)
{
	(void)state;
	uint8_t key[TLS_TICKET_KEY_SIZE], a[12], b[12];
	key_material(key, 1);
	struct tls_ctx *ctx = make_ctx(ec_cert, ec_key);
	tls_ctx_set_ticket_keys(ctx, key, NULL);
	/* two children of one context draw the same nonces (under one key):
	 * what tls_ctx_reseed is for */
	forked_ticket_iv(ctx, false, a);
	forked_ticket_iv(ctx, false, b);
	assert_memory_equal(a, b, sizeof(a));
	forked_ticket_iv(ctx, true, a);
	forked_ticket_iv(ctx, true, b);
	assert_memory_not_equal(a, b, sizeof(a));
	tls_ctx_free(&ctx);
}

/* --- channel binding (SCRAM-*-PLUS) --- */

/* the server's tls-unique / tls-exporter against what the wolfSSL client
 * computes on its side: the first Finished (the client's own in a full
 * handshake, the server's in a resumed one) and the RFC 9266 exporter */
static void check_binding(struct tls_ctx *ctx, enum client_version v, WOLFSSL_SESSION *sess)
{
	static const char label[] = "EXPORTER-Channel-Binding";
	struct client *c = client_new(v, NULL, sess);
	struct tls_conn *s = tls_conn_new(ctx);
	uint8_t cb[TLS_CB_MAX], want[TLS_CB_MAX];
	const char *type = NULL, *error = NULL;
	assert_int_equal(tls_conn_channel_binding(s, &type, cb), 0); /* no handshake yet */
	if (pump_handshake(s, c, 65536, &error) != TLS_OK)
		fail_msg("handshake failed: %s", error);
	assert_int_equal(tls_conn_resumed(s), sess != NULL);
	size_t n = tls_conn_channel_binding(s, &type, cb);
	if (v == V13) {
		assert_string_equal(type, "tls-exporter");
		assert_int_equal(n, 32);
		assert_int_equal(wolfSSL_export_keying_material(c->ssl, want, 32, label, sizeof(label) - 1,
								NULL, 0, 0),
				 WOLFSSL_SUCCESS);
	} else {
		assert_string_equal(type, "tls-unique");
		size_t wn = sess == NULL ? wolfSSL_get_finished(c->ssl, want, sizeof(want))
					 : wolfSSL_get_peer_finished(c->ssl, want, sizeof(want));
		assert_int_equal(n, wn);
		assert_int_equal(n, 12);
	}
	assert_memory_equal(cb, want, n);
	/* another connection has another binding */
	struct client *c2 = client_new(v, NULL, NULL);
	struct tls_conn *s2 = handshake(ctx, c2);
	uint8_t cb2[TLS_CB_MAX];
	assert_int_equal(tls_conn_channel_binding(s2, &type, cb2), n);
	assert_memory_not_equal(cb, cb2, n);
	tls_conn_free(&s2);
	client_free(c2);
	tls_conn_free(&s);
	client_free(c);
}

static void test_channel_binding(void **state)
{
	(void)state;
	struct tls_ctx *ctx = make_ctx(ec_cert, ec_key);
	check_binding(ctx, V13, NULL);
	check_binding(ctx, V12, NULL);
	/* a resumed TLS 1.2 session: the server's Finished comes first */
	WOLFSSL_SESSION *sess = get_session(ctx, V12);
	check_binding(ctx, V12, sess);
	wolfSSL_SESSION_free(sess);
	tls_ctx_free(&ctx);
}

/* --- fuzz seeds --- */

/* TLS_RECORD_SEEDS=dir: write ClientHellos for fuzz/corpus/tls_server,
 * each behind the chunk-size byte fuzz_tls_server reads first; the ticket
 * seeds use the fuzz target's fixed keys (bytes 0..47) */
static void write_seed(const char *dir, const char *name, uint8_t chunk, struct client *c)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputc(chunk, f);
	fwrite(c->to_server.data, 1, c->to_server.len, f);
	fclose(f);
}

static void record_hello(const char *dir, const char *name, uint8_t chunk, enum client_version v,
			 const char *sni, WOLFSSL_SESSION *sess)
{
	struct client *c = client_new(v, sni, sess);
	client_step(c);
	write_seed(dir, name, chunk, c);
	client_free(c);
}

static void test_record_seeds(void **state)
{
	(void)state;
	const char *dir = getenv("TLS_RECORD_SEEDS");
	if (dir == NULL)
		skip();
	uint8_t keys[TLS_TICKET_KEY_SIZE];
	for (size_t i = 0; i < sizeof(keys); i++)
		keys[i] = (uint8_t)i;
	struct tls_ctx *ctx = make_ctx(ec_cert, ec_key);
	tls_ctx_set_ticket_keys(ctx, keys, NULL);

	record_hello(dir, "tls13", 0, V13, NULL, NULL);
	record_hello(dir, "tls12", 0, V12, NULL, NULL);
	record_hello(dir, "tls13-sni", 0, V13, "mail.example.com", NULL);
	record_hello(dir, "tls12-sni-chunk7", 7, V12, "Other.Example.org", NULL);
	for (int v = V12; v <= V13; v++) {
		WOLFSSL_SESSION *sess = get_session(ctx, v);
		record_hello(dir, v == V13 ? "tls13-ticket" : "tls12-ticket", 0, v, NULL, sess);
		wolfSSL_SESSION_free(sess);
	}
	tls_ctx_free(&ctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tickets_13),
		cmocka_unit_test(test_tickets_12),
		cmocka_unit_test(test_channel_binding),
		cmocka_unit_test(test_reseed_after_fork),
		cmocka_unit_test(test_record_seeds),
	};
	return cmocka_run_group_tests(tests, tls_test_setup, tls_test_teardown);
}
