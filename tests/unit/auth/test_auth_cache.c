/* auth-cache.h: hits only for the password that succeeded, negative
 * entries and their own TTL, expiry, LRU bound, flush by user and all. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "auth/auth-cache.h"

#include <stdio.h>
#include <string.h>

#define PW(s) (const uint8_t *)(s), strlen(s)

static void test_hits_and_misses(void **state)
{
	(void)state;
	struct auth_cache *c = auth_cache_new(1 << 20, 60, 10);
	assert_non_null(c);
	struct auth_cache_entry_view v;
	assert_false(auth_cache_lookup(c, "P0\talice", PW("pw"), 0, &v));
	auth_cache_put(c, "P0\talice", "alice", AUTH_CACHE_OK, PW("pw"), "proxy\thost=h",
		       "uid=5", "alice", 0);
	assert_true(auth_cache_lookup(c, "P0\talice", PW("pw"), 1000, &v));
	assert_int_equal(v.kind, AUTH_CACHE_OK);
	assert_string_equal(v.passdb_fields, "proxy\thost=h");
	assert_string_equal(v.userdb_fields, "uid=5");
	assert_string_equal(v.user, "alice");
	/* another password is a miss (it may have been changed) */
	assert_false(auth_cache_lookup(c, "P0\talice", PW("pw2"), 1000, &v));
	assert_false(auth_cache_lookup(c, "P0\talice", PW("p"), 1000, &v));
	/* a lookup without password (after continue) is a hit */
	assert_true(auth_cache_lookup(c, "P0\talice", NULL, 0, 1000, &v));
	/* expiry: ttl 60 s */
	assert_true(auth_cache_lookup(c, "P0\talice", PW("pw"), 59999, &v));
	assert_false(auth_cache_lookup(c, "P0\talice", PW("pw"), 60000, &v));
	assert_int_equal(auth_cache_count(c), 0);

	/* negative entries: any password, their own ttl */
	auth_cache_put(c, "P0\tnobody", "nobody", AUTH_CACHE_UNKNOWN, NULL, 0, "", "", "nobody",
		       0);
	assert_true(auth_cache_lookup(c, "P0\tnobody", PW("whatever"), 9999, &v));
	assert_int_equal(v.kind, AUTH_CACHE_UNKNOWN);
	assert_false(auth_cache_lookup(c, "P0\tnobody", PW("whatever"), 10000, &v));

	/* an entry stored without a password never answers a verify */
	auth_cache_put(c, "P1\tbob", "bob", AUTH_CACHE_OK, NULL, 0, "", "", "bob", 0);
	assert_false(auth_cache_lookup(c, "P1\tbob", PW("x"), 1, &v));
	assert_true(auth_cache_lookup(c, "P1\tbob", NULL, 0, 1, &v));
	/* replacing keeps one entry */
	auth_cache_put(c, "P1\tbob", "bob", AUTH_CACHE_OK, PW("x"), "", "", "bob", 2);
	assert_int_equal(auth_cache_count(c), 1);
	assert_true(auth_cache_lookup(c, "P1\tbob", PW("x"), 3, &v));
	auth_cache_free(c);
	assert_null(auth_cache_new(0, 60, 60));
}

static void test_flush_and_bound(void **state)
{
	(void)state;
	struct auth_cache *c = auth_cache_new(1 << 20, 3600, 3600);
	struct auth_cache_entry_view v;
	auth_cache_put(c, "P0\ta", "A", AUTH_CACHE_OK, PW("1"), "", "", "a", 0);
	auth_cache_put(c, "U0\ta", "A", AUTH_CACHE_OK, NULL, 0, "", "uid=1", "a", 0);
	auth_cache_put(c, "P0\tb", "b", AUTH_CACHE_OK, PW("2"), "", "", "b", 0);
	auth_cache_put(c, "P0\tc", "c", AUTH_CACHE_UNKNOWN, NULL, 0, "", "", "c", 0);
	assert_int_equal(auth_cache_count(c), 4);
	/* by the name the client gave or the one the lookup ended with */
	const char *users[] = { "a" };
	assert_int_equal(auth_cache_flush(c, users, 1), 2);
	assert_false(auth_cache_lookup(c, "U0\ta", NULL, 0, 1, &v));
	assert_true(auth_cache_lookup(c, "P0\tb", PW("2"), 1, &v));
	assert_int_equal(auth_cache_flush(c, NULL, 0), 2);
	assert_int_equal(auth_cache_count(c), 0);
	assert_int_equal(auth_cache_bytes(c), 0);
	auth_cache_free(c);

	/* the bound: the least recently used go */
	c = auth_cache_new(2000, 3600, 3600);
	char key[32];
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "P0\tu%d", i);
		auth_cache_put(c, key, key + 3, AUTH_CACHE_OK, PW("x"), "", "", key + 3, i);
		/* u0 is used all the time: it stays */
		assert_true(auth_cache_lookup(c, "P0\tu0", PW("x"), i, &v));
		assert_true(auth_cache_bytes(c) <= 2000);
	}
	assert_true(auth_cache_count(c) < 100);
	assert_true(auth_cache_lookup(c, "P0\tu99", PW("x"), 100, &v));
	assert_false(auth_cache_lookup(c, "P0\tu1", PW("x"), 100, &v));
	auth_cache_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hits_and_misses),
		cmocka_unit_test(test_flush_and_bound),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
