/* lib/stats: the LOGIN_STATS text both ways, and every malformed report
 * refused (master kills a login process that sends one). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "lib/stats.h"

static void fill(struct login_counters *c)
{
	for (unsigned i = 0; i < STAT_COUNT; i++)
		c->v[i] = (uint64_t)i * 1000003u + 7;
	c->v[STAT_PROXY_OUT] = UINT64_MAX;
	c->v[STAT_EVICTIONS] = 0;
}

static void test_round_trip(void **state)
{
	(void)state;
	struct login_counters a, b;
	char text[STATS_TEXT_MAX];
	const char *error = NULL;
	fill(&a);
	size_t len = stats_format(&a, text, sizeof(text));
	assert_int_equal(len, strlen(text));
	assert_true(strncmp(text, "conns=7 prelogin=1000010 accepted=", 34) == 0);
	assert_non_null(strstr(text, " proxy_out=18446744073709551615 evictions=0"));
	assert_int_equal(stats_parse(text, len, &b, &error), 0);
	assert_memory_equal(&a, &b, sizeof(a));

	/* any order */
	const char *shuffled = "evictions=1 proxy_out=2 proxy_in=3 handoffs=4 login_failed=5 "
		"login_ok=6 hs_failed=7 hs_resumed=8 hs_full=9 accepted=10 prelogin=11 conns=12";
	assert_int_equal(stats_parse(shuffled, strlen(shuffled), &b, &error), 0);
	assert_int_equal(b.v[STAT_EVICTIONS], 1);
	assert_int_equal(b.v[STAT_CONNS], 12);
	assert_int_equal(b.v[STAT_HS_FULL], 9);
}

static void test_every_prefix_refused(void **state)
{
	(void)state;
	struct login_counters a, b;
	char text[STATS_TEXT_MAX];
	const char *error;
	fill(&a);
	size_t len = stats_format(&a, text, sizeof(text));
	/* a cut report misses a counter, or ends in a name, '=' or a space;
	 * only cuts inside the last value's digits still parse (to a smaller
	 * number), which master cannot tell apart: the length is the
	 * message's, not the text's */
	const char *last_eq = strrchr(text, '=');
	size_t last_value = (size_t)(last_eq - text) + 1;
	for (size_t cut = 0; cut < len; cut++) {
		int ret = stats_parse(text, cut, &b, &error);
		if (cut <= last_value)
			assert_int_equal(ret, -1);
	}
}

static void test_malformed(void **state)
{
	(void)state;
	static const char *const base =
		"conns=1 prelogin=1 accepted=1 hs_full=1 hs_resumed=1 hs_failed=1 "
		"login_ok=1 login_failed=1 handoffs=1 proxy_in=1 proxy_out=1";
	static const struct { const char *tail, *error; } cases[] = {
		{ "", "a counter is missing" },
		{ " evictions=1 evictions=1", "counter given twice" },
		{ " evictions=1 bogus=1", "unknown counter" },
		{ " evictions=", "counter without a decimal value" },
		{ " evictions=-1", "counter without a decimal value" },
		{ " evictions=1x", "expected a space between counters" },
		{ " evictions=18446744073709551616", "counter value too large" },
		{ " evictions", "counter without '='" },
		{ "  evictions=1", "counter without '='" },
		{ " evictions=1 ", "counter without '='" },
		{ " Evictions=1", "unknown counter" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[512];
		struct login_counters c;
		const char *error = NULL;
		snprintf(text, sizeof(text), "%s%s", base, cases[i].tail);
		assert_int_equal(stats_parse(text, strlen(text), &c, &error), -1);
		assert_string_equal(error, cases[i].error);
	}
	/* a NUL inside is not a separator */
	char nul[] = "conns=1\0prelogin=1";
	struct login_counters c;
	const char *error;
	assert_int_equal(stats_parse(nul, sizeof(nul) - 1, &c, &error), -1);
}

static void test_auth_counters(void **state)
{
	(void)state;
	struct auth_counters a = { { 12, 3, 50, 7 } }, b;
	char text[160];
	const char *error = NULL;
	size_t len = auth_stats_format(&a, text, sizeof(text));
	assert_string_equal(text, "failed=12 penalties=3 cache_hits=50 cache_misses=7");
	assert_int_equal(auth_stats_parse(text, len, &b, &error), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	static const char *const bad[] = {
		"failed=1", "failed=1 penalties=2", "failed=1 penalties=2 failed=3",
		"failed=1 penalties=x cache_hits=1 cache_misses=1",
		"failed=1 penalties=2 conns=1", "conns=1 prelogin=1", "",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(auth_stats_parse(bad[i], strlen(bad[i]), &b, &error), -1);
	/* and login counters are no auth report */
	struct login_counters l = { { 0 } };
	char ltext[STATS_TEXT_MAX];
	len = stats_format(&l, ltext, sizeof(ltext));
	assert_int_equal(auth_stats_parse(ltext, len, &b, &error), -1);
}

static void test_add_counts(void **state)
{
	(void)state;
	struct login_counters a = { { 0 } }, b;
	fill(&b);
	b.v[STAT_PROXY_OUT] = 5;
	stats_add_counts(&a, &b);
	stats_add_counts(&a, &b);
	assert_int_equal(a.v[STAT_CONNS], 0);     /* gauges are not summed */
	assert_int_equal(a.v[STAT_PRELOGIN], 0);
	assert_int_equal(a.v[STAT_HANDOFFS], 2 * b.v[STAT_HANDOFFS]);
	assert_int_equal(a.v[STAT_PROXY_OUT], 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_every_prefix_refused),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_add_counts),
		cmocka_unit_test(test_auth_counters),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
