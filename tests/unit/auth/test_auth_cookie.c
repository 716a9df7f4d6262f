/* cookies (second login phase) and per-IP penalties */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "auth/auth-cookie.h"
#include "auth/auth-penalty.h"
#include "lib/alloc.h"

#include <stdio.h>
#include <string.h>

static struct auth_user *mkuser(const char *name)
{
	struct auth_user *u = rg_calloc(1, sizeof(*u));
	u->user = rg_strdup(name);
	u->uid = 1000;
	u->gid = 1001;
	u->home = rg_strdup("/home/x");
	u->mail = rg_strdup("maildir:~/Maildir");
	u->extra = rg_strdup("");
	return u;
}

static void test_cookie_single_use(void **state)
{
	(void)state;
	struct cookie_table *t = cookie_table_new(100);
	char c1[COOKIE_HEX_LEN + 1], c2[COOKIE_HEX_LEN + 1];
	assert_int_equal(cookie_add(t, 42, mkuser("alice"), 1000, c1), 0);
	assert_int_equal(cookie_add(t, 42, mkuser("bob"), 1000, c2), 0);
	assert_int_equal(strlen(c1), COOKIE_HEX_LEN);
	assert_int_equal(strspn(c1, "0123456789abcdef"), COOKIE_HEX_LEN);
	assert_string_not_equal(c1, c2);
	assert_int_equal(cookie_table_count(t), 2);

	struct auth_user *u = NULL;
	assert_int_equal(cookie_take(t, c2, 42, 2000, &u), COOKIE_OK);
	assert_string_equal(u->user, "bob");
	assert_int_equal(u->uid, 1000);
	auth_user_free(u);
	/* used: gone */
	assert_int_equal(cookie_take(t, c2, 42, 2000, &u), COOKIE_UNKNOWN);
	assert_null(u);
	assert_int_equal(cookie_take(t, c1, 42, 2000, &u), COOKIE_OK);
	auth_user_free(u);
	assert_int_equal(cookie_table_count(t), 0);

	/* malformed and unknown cookies */
	assert_int_equal(cookie_take(t, "", 42, 2000, &u), COOKIE_UNKNOWN);
	assert_int_equal(cookie_take(t, "0123", 42, 2000, &u), COOKIE_UNKNOWN);
	assert_int_equal(cookie_take(t, "0123456789abcdef0123456789abcdef", 42, 2000, &u),
			 COOKIE_UNKNOWN);
	cookie_table_free(t);
}

static void test_cookie_pid_and_expiry(void **state)
{
	(void)state;
	struct cookie_table *t = cookie_table_new(100);
	char c[COOKIE_HEX_LEN + 1];
	struct auth_user *u = NULL;

	/* another login process presenting it: refused, and the cookie is burnt */
	assert_int_equal(cookie_add(t, 42, mkuser("alice"), 0, c), 0);
	assert_int_equal(cookie_take(t, c, 43, 10, &u), COOKIE_PID_MISMATCH);
	assert_null(u);
	assert_int_equal(cookie_take(t, c, 42, 10, &u), COOKIE_UNKNOWN);

	/* valid until just before 60 s */
	assert_int_equal(cookie_add(t, 42, mkuser("alice"), 1000, c), 0);
	assert_int_equal(cookie_take(t, c, 42, 1000 + COOKIE_TTL_MS - 1, &u), COOKIE_OK);
	auth_user_free(u);
	assert_int_equal(cookie_add(t, 42, mkuser("alice"), 1000, c), 0);
	assert_int_equal(cookie_take(t, c, 42, 1000 + COOKIE_TTL_MS, &u), COOKIE_EXPIRED);
	assert_null(u);
	assert_int_equal(cookie_take(t, c, 42, 1000 + COOKIE_TTL_MS, &u), COOKIE_UNKNOWN);

	/* expired cookies are freed without being asked for */
	char old[COOKIE_HEX_LEN + 1];
	assert_int_equal(cookie_add(t, 1, mkuser("a"), 0, old), 0);
	assert_int_equal(cookie_add(t, 1, mkuser("b"), 30000, c), 0);
	cookie_expire(t, COOKIE_TTL_MS);
	assert_int_equal(cookie_table_count(t), 1);
	assert_int_equal(cookie_take(t, c, 1, COOKIE_TTL_MS, &u), COOKIE_OK);
	auth_user_free(u);
	cookie_table_free(t);
}

static void test_cookie_bounded(void **state)
{
	(void)state;
	struct cookie_table *t = cookie_table_new(3);
	char c[5][COOKIE_HEX_LEN + 1];
	for (int i = 0; i < 5; i++) {
		char name[8];
		snprintf(name, sizeof(name), "u%d", i);
		assert_int_equal(cookie_add(t, 7, mkuser(name), i, c[i]), 0);
	}
	assert_int_equal(cookie_table_count(t), 3);
	struct auth_user *u;
	assert_int_equal(cookie_take(t, c[0], 7, 10, &u), COOKIE_UNKNOWN);
	assert_int_equal(cookie_take(t, c[1], 7, 10, &u), COOKIE_UNKNOWN);
	assert_int_equal(cookie_take(t, c[4], 7, 10, &u), COOKIE_OK);
	assert_string_equal(u->user, "u4");
	auth_user_free(u);
	/* the table still works after removals from the middle */
	assert_int_equal(cookie_take(t, c[2], 7, 10, &u), COOKIE_OK);
	auth_user_free(u);
	cookie_table_free(t); /* frees c[3] */
}

static void test_penalty_growth(void **state)
{
	(void)state;
	assert_int_equal(penalty_delay_ms(2000, 0), 2000);
	assert_int_equal(penalty_delay_ms(2000, 1), 2000);
	assert_int_equal(penalty_delay_ms(2000, 2), 3000);
	assert_int_equal(penalty_delay_ms(2000, 3), 4000);
	assert_int_equal(penalty_delay_ms(2000, 4), 6000);
	assert_int_equal(penalty_delay_ms(2000, 5), 10000);
	assert_int_equal(penalty_delay_ms(2000, 6), 15000);
	assert_int_equal(penalty_delay_ms(2000, 1000), 15000);
	assert_int_equal(penalty_delay_ms(0, 1), 0);
	assert_int_equal(penalty_delay_ms(0, 3), 2000);
	/* a base above the cap is honoured */
	assert_int_equal(penalty_delay_ms(20000, 9), 20000);

	struct penalty_table *t = penalty_table_new(100);
	assert_int_equal(penalty_get(t, "192.0.2.1", 0), 0);
	assert_int_equal(penalty_fail(t, "192.0.2.1", 0), 1);
	assert_int_equal(penalty_fail(t, "192.0.2.1", 10), 2);
	assert_int_equal(penalty_fail(t, "192.0.2.1", 20), 3);
	assert_int_equal(penalty_fail(t, "192.0.2.2", 20), 1);
	assert_int_equal(penalty_get(t, "192.0.2.1", 30), 3);

	/* success resets */
	penalty_reset(t, "192.0.2.1");
	assert_int_equal(penalty_get(t, "192.0.2.1", 40), 0);
	assert_int_equal(penalty_get(t, "192.0.2.2", 40), 1);
	penalty_reset(t, "198.51.100.9"); /* unknown: no-op */

	/* an hour of quiet forgets */
	assert_int_equal(penalty_fail(t, "2001:db8::1", 1000), 1);
	assert_int_equal(penalty_fail(t, "2001:db8::1", 2000), 2);
	assert_int_equal(penalty_get(t, "2001:db8::1", 2000 + PENALTY_EXPIRE_MS - 1), 2);
	assert_int_equal(penalty_get(t, "2001:db8::1", 2000 + PENALTY_EXPIRE_MS), 0);
	assert_int_equal(penalty_fail(t, "2001:db8::1", 2000 + PENALTY_EXPIRE_MS), 1);
	penalty_table_free(t);
}

static void test_penalty_lru(void **state)
{
	(void)state;
	struct penalty_table *t = penalty_table_new(3);
	penalty_fail(t, "a", 0);
	penalty_fail(t, "b", 1);
	penalty_fail(t, "c", 2);
	penalty_fail(t, "a", 3); /* a is now the most recent */
	penalty_fail(t, "d", 4); /* evicts b */
	assert_int_equal(penalty_table_count(t), 3);
	assert_int_equal(penalty_get(t, "a", 5), 2);
	assert_int_equal(penalty_get(t, "b", 5), 0);
	assert_int_equal(penalty_get(t, "c", 5), 1);
	assert_int_equal(penalty_get(t, "d", 5), 1);
	/* over-long keys are cut consistently */
	char longip[200];
	memset(longip, '1', sizeof(longip) - 1);
	longip[sizeof(longip) - 1] = '\0';
	assert_int_equal(penalty_fail(t, longip, 6), 1);
	assert_int_equal(penalty_fail(t, longip, 7), 2);
	assert_int_equal(penalty_get(t, longip, 8), 2);
	penalty_table_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cookie_single_use),
		cmocka_unit_test(test_cookie_pid_and_expiry),
		cmocka_unit_test(test_cookie_bounded),
		cmocka_unit_test(test_penalty_growth),
		cmocka_unit_test(test_penalty_lru),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
