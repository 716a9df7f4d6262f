/* TLS engine tests: local_name certificates built on first use — the
 * store's name -> entry lookup (exact, case, wildcards of one label, bad
 * names from the administrator and from clients), the certificate served
 * per name on first use and from the cache, the default for unknown names,
 * and the bounded cache: an evicted context stays valid for the connection
 * that is still using it. */
#include "tls-test.h"
#include "tls/tls-private.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <fcntl.h>

#include <cmocka.h>

#include "lib/alloc.h"

static struct tls_sni_store *finish(struct tls_sni_builder **b)
{
	struct tls_ctx_settings base = { 0 };
	return tls_sni_builder_finish(b, &base);
}

static void test_store_lookup(void **state)
{
	(void)state;
	struct tls_sni_builder *b = tls_sni_builder_new();
	const char *error = NULL;

	assert_int_equal(tls_sni_builder_add(b, "other.example.org", other_cert, other_key, &error), 0);
	/* the same text is one entry, whatever the name */
	assert_int_equal(tls_sni_builder_add(b, "IMAP.Other.Example.ORG", other_cert, other_key, &error), 0);
	assert_int_equal(tls_sni_builder_add(b, "*.example.net", wild_cert, wild_key, &error), 1);
	assert_int_equal(tls_sni_builder_add(b, "exact.example.net", ec_cert, ec_key, &error), 2);
	/* errors: a duplicate in any case, names that are not host names */
	assert_int_equal(tls_sni_builder_add(b, "OTHER.example.org", ec_cert, ec_key, &error), -EINVAL);
	assert_non_null(strstr(error, "given twice"));
	char toolong[300];
	memset(toolong, 'a', sizeof(toolong) - 1);
	toolong[sizeof(toolong) - 1] = '\0';
	const char *bad[] = { "",	   "*",	  "*.",		 "a.*.example.com", "foo*.example.com",
			      "a..b",	   ".a.b", "a.b.",	 "sp ace.com",	    "x/y",
			      "é.example", toolong };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		error = NULL;
		if (tls_sni_builder_add(b, bad[i], ec_cert, ec_key, &error) != -EINVAL)
			fail_msg("name '%.40s' accepted", bad[i]);
		assert_non_null(error);
	}
	struct tls_sni_store *store = finish(&b);
	assert_null(b);
	assert_non_null(store);
	assert_int_equal(tls_sni_store_entries(store), 3);

	assert_int_equal(tls_sni_store_find(store, "other.example.org"), 0);
	assert_int_equal(tls_sni_store_find(store, "OTHER.EXAMPLE.ORG"), 0);
	assert_int_equal(tls_sni_store_find(store, "imap.other.example.org"), 0);
	/* an exact name beats the wildcard */
	assert_int_equal(tls_sni_store_find(store, "exact.example.net"), 2);
	assert_int_equal(tls_sni_store_find(store, "mail.example.net"), 1);
	assert_int_equal(tls_sni_store_find(store, "M-1.Example.Net"), 1);
	/* one label only, and not the bare domain */
	assert_int_equal(tls_sni_store_find(store, "a.b.example.net"), -1);
	assert_int_equal(tls_sni_store_find(store, "example.net"), -1);
	assert_int_equal(tls_sni_store_find(store, "unknown.test"), -1);
	/* what a client may send that is no host name we serve */
	const char *client_bad[] = { "",   "*.example.net", "*", ".", "a..example.net", "mail.example.net.",
				     "mail example.net", "mail.example.net\n", toolong };
	for (size_t i = 0; i < sizeof(client_bad) / sizeof(client_bad[0]); i++) {
		if (tls_sni_store_find(store, client_bad[i]) != -1)
			fail_msg("client name '%.40s' found", client_bad[i]);
	}
	assert_int_equal(tls_sni_store_find(store, NULL), -1);
	assert_int_equal(tls_sni_store_find(NULL, "other.example.org"), -1);
	/* a name of exactly 253 characters is a host name (and unknown) */
	char longest[254];
	memset(longest, 'a', 253);
	longest[253] = '\0';
	for (int i = 63; i < 253; i += 64)
		longest[i] = '.';
	assert_int_equal(tls_sni_store_find(store, longest), -1);

	/* each entry builds; an entry that does not exist is an error */
	struct tls_ctx *sub;
	for (unsigned e = 0; e < 3; e++) {
		assert_int_equal(tls_sni_store_ctx(store, e, NULL, true, &sub, &error), 0);
		tls_ctx_free(&sub);
	}
	assert_int_equal(tls_sni_store_ctx(store, 3, NULL, true, &sub, &error), -EINVAL);
	tls_sni_store_free(&store);
	assert_null(store);

	/* no names, no store */
	b = tls_sni_builder_new();
	assert_null(finish(&b));
	tls_sni_store_free(&store);
}

/* master's store as a sealed memfd: what a login process maps */
static void test_store_fd(void **state)
{
	(void)state;
	struct tls_sni_builder *b = tls_sni_builder_new();
	const char *error = NULL;
	assert_int_equal(tls_sni_builder_add(b, "other.example.org", other_cert, other_key, &error), 0);
	assert_int_equal(tls_sni_builder_add(b, "*.example.net", wild_cert, wild_key, &error), 1);
	struct tls_sni_store *store = finish(&b);
	int fd = tls_sni_store_fd(store);
	assert_true(fd >= 0);
	tls_sni_store_free(&store);
	/* nobody writes to it any more */
	assert_true(write(fd, "x", 1) < 0);
	assert_true(ftruncate(fd, 0) < 0);
	struct tls_sni_store *mapped = NULL;
	assert_int_equal(tls_sni_store_map(fd, &mapped, &error), 0);
	close(fd);
	assert_int_equal(tls_sni_store_entries(mapped), 2);
	assert_int_equal(tls_sni_store_find(mapped, "Other.Example.Org"), 0);
	assert_int_equal(tls_sni_store_find(mapped, "imap.example.net"), 1);
	assert_int_equal(tls_sni_store_find(mapped, "example.net"), -1);
	struct tls_ctx *ctx = make_ctx(ec_cert, ec_key);
	tls_ctx_set_sni_store(ctx, mapped);
	check_sni(ctx, V13, "imap.example.net", "*.example.net");
	check_sni(ctx, V13, "other.example.org", "other.example.org");
	tls_ctx_free(&ctx);

	/* an unsealed memfd, a sealed one that holds no store */
	int raw = memfd_create("test", MFD_ALLOW_SEALING);
	assert_true(raw >= 0);
	uint8_t zeros[256] = { 0 };
	assert_int_equal(write(raw, zeros, sizeof(zeros)), (ssize_t)sizeof(zeros));
	assert_int_equal(tls_sni_store_map(raw, &mapped, &error), -EINVAL);
	assert_non_null(strstr(error, "sealed"));
	assert_int_equal(fcntl(raw, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE), 0);
	assert_int_equal(tls_sni_store_map(raw, &mapped, &error), -EINVAL);
	assert_non_null(strstr(error, "version"));
	close(raw);
	int empty = memfd_create("test", MFD_ALLOW_SEALING);
	assert_int_equal(fcntl(empty, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE), 0);
	assert_int_equal(tls_sni_store_map(empty, &mapped, &error), -EINVAL);
	close(empty);
}

static void test_store_checks_pairs(void **state)
{
	(void)state;
	struct tls_sni_builder *b = tls_sni_builder_new();
	const char *error = NULL;
	assert_int_equal(tls_sni_builder_add(b, "bad.example.org", other_cert, mismatch_key, &error), 0);
	assert_int_equal(tls_sni_builder_add(b, "junk.example.org", "not a certificate", other_key, &error),
			 1);
	struct tls_sni_store *store = finish(&b);
	struct tls_ctx *sub = NULL;
	/* the start-up check proves the pair */
	assert_int_equal(tls_sni_store_ctx(store, 0, NULL, true, &sub, &error), -EINVAL);
	assert_non_null(strstr(error, "does not match"));
	assert_int_equal(tls_sni_store_ctx(store, 1, NULL, false, &sub, &error), -EINVAL);
	assert_non_null(strstr(error, "ssl_cert"));
	assert_null(sub);

	/* a client naming the broken one gets the default certificate */
	struct tls_ctx *ctx = make_ctx(ec_cert, ec_key);
	tls_ctx_set_sni_store(ctx, store);
	struct client *c = client_new(V13, "junk.example.org", NULL);
	struct tls_conn *s = handshake(ctx, c);
	char cn[128];
	peer_cn(c, cn, sizeof(cn));
	assert_string_equal(cn, "mail.example.com");
	tls_conn_free(&s);
	client_free(c);
	assert_int_equal(ctx->cache_count, 0);
	tls_ctx_free(&ctx);
}

static void test_built_on_first_use(void **state)
{
	(void)state;
	struct tls_sni_builder *b = tls_sni_builder_new();
	const char *error = NULL;
	assert_int_equal(tls_sni_builder_add(b, "other.example.org", other_cert, other_key, &error), 0);
	assert_int_equal(tls_sni_builder_add(b, "*.example.net", wild_cert, wild_key, &error), 1);
	/* (an RSA certificate behind an ECDSA default would find no TLS 1.2
	 * suite: wolfSSL picks the suites by the default's key) */
	assert_int_equal(tls_sni_builder_add(b, "mail.example.org", ec_cert, ec_key, &error), 2);
	struct tls_ctx *ctx = make_ctx(ec_cert, ec_key);
	tls_ctx_set_sni_store(ctx, finish(&b));
	assert_int_equal(ctx->cache_count, 0);

	for (int v = V12; v <= V13; v++) {
		/* first use builds, the next finds it built */
		check_sni(ctx, v, "other.example.org", "other.example.org");
		struct tls_ctx *built = ctx->cache[0].sub;
		check_sni(ctx, v, "Other.Example.Org", "other.example.org");
		assert_ptr_equal(ctx->cache[0].sub, built);
		check_sni(ctx, v, "imap.example.net", "*.example.net");
		check_sni(ctx, v, "pop.example.net", "*.example.net");
		check_sni(ctx, v, "mail.example.org", "mail.example.com");
		assert_int_equal(ctx->cache_count, 3);
		/* names not configured: the default certificate, nothing built */
		check_sni(ctx, v, "a.b.example.net", "mail.example.com");
		check_sni(ctx, v, "unknown.test", "mail.example.com");
		check_sni(ctx, v, NULL, "mail.example.com");
		assert_int_equal(ctx->cache_count, 3);
	}

	/* tickets issued after a switch to a built context resume on the
	 * parent's keys, in another process's context */
	check_resume_elsewhere(ctx, "other.example.org", 7);
	tls_ctx_free(&ctx);
}

/* more certificates than the cache holds: the least recently used goes,
 * and a connection in the middle of its handshake on it finishes */
static void test_cache_bound(void **state)
{
	(void)state;
	enum { ENTRIES = TLS_SNI_CACHE_MAX + 20 };
	struct tls_sni_builder *b = tls_sni_builder_new();
	const char *error = NULL;
	char name[64];
	/* the same certificate, different text: one entry each */
	size_t len = strlen(other_key);
	char *key = rg_malloc(len + ENTRIES + 1);
	memcpy(key, other_key, len + 1);
	for (int i = 0; i < ENTRIES; i++) {
		snprintf(name, sizeof(name), "h%d.example.org", i);
		key[len + (size_t)i] = '\n';
		key[len + (size_t)i + 1] = '\0';
		assert_int_equal(tls_sni_builder_add(b, name, other_cert, key, &error), i);
	}
	rg_free(key);
	struct tls_ctx *ctx = make_ctx(ec_cert, ec_key);
	tls_ctx_set_sni_store(ctx, finish(&b));

	/* h0's handshake stops after the server's first flight */
	struct client *first = client_new(V13, "h0.example.org", NULL);
	struct tls_conn *s = tls_conn_new(ctx);
	client_step(first);
	feed_all(s, first);
	assert_int_equal(tls_conn_handshake(s, &error), TLS_WANT_INPUT);
	server_to_client(s, first, 100000);
	assert_int_equal(ctx->cache_count, 1);
	assert_int_equal(ctx->cache[0].entry, 0);

	for (int i = 1; i < ENTRIES; i++) {
		snprintf(name, sizeof(name), "h%d.example.org", i);
		check_sni(ctx, V13, name, "other.example.org");
		assert_true(ctx->cache_count <= TLS_SNI_CACHE_MAX);
	}
	assert_int_equal(ctx->cache_count, TLS_SNI_CACHE_MAX);
	for (unsigned i = 0; i < ctx->cache_count; i++)
		assert_int_not_equal(ctx->cache[i].entry, 0);

	/* h0's context was evicted: its connection still finishes, reads,
	 * writes and gets its tickets (sealed with the parent's keys) */
	assert_int_equal(pump_handshake(s, first, 65536, &error), TLS_OK);
	char cn[128];
	peer_cn(first, cn, sizeof(cn));
	assert_string_equal(cn, "other.example.org");
	size_t taken;
	assert_int_equal(tls_conn_write(s, "hello", 5, &taken, &error), TLS_OK);
	server_to_client(s, first, 100000);
	struct buf plain = { 0 };
	client_read_all(first, &plain);
	assert_int_equal(plain.len, 5);
	assert_memory_equal(plain.data, "hello", 5);
	buf_free(&plain);
	tls_conn_free(&s);
	client_free(first);

	/* and h0 is built again when asked for */
	check_sni(ctx, V12, "h0.example.org", "other.example.org");
	tls_ctx_free(&ctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_store_lookup),
		cmocka_unit_test(test_store_fd),
		cmocka_unit_test(test_store_checks_pairs),
		cmocka_unit_test(test_built_on_first_use),
		cmocka_unit_test(test_cache_bound),
	};
	return cmocka_run_group_tests(tests, tls_test_setup, tls_test_teardown);
}
