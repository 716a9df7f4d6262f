/* test_access_check.c — the built-in checker's decision: tcpwrap's order
 * (allow list, then deny list, then allow) over IPv4, IPv6 and IPv4-mapped
 * addresses, and bad lists. */
#include "access/access-check.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

static bool decide(const char *allow, const char *deny, const char *rip)
{
	struct access_rules r;
	const char *error = NULL;
	assert_true(access_rules_init(&r, allow, deny, &error));
	bool ok = access_rules_allow(&r, rip);
	access_rules_free(&r);
	return ok;
}

static void test_order(void **state)
{
	(void)state;
	/* nothing configured: everyone */
	assert_true(decide("", "", "192.0.2.1"));
	/* deny only */
	assert_false(decide("", "192.0.2.0/24", "192.0.2.1"));
	assert_true(decide("", "192.0.2.0/24", "192.0.3.1"));
	/* allow wins over deny: a whitelist */
	assert_true(decide("10.0.0.0/8", "0.0.0.0/0 ::/0", "10.1.2.3"));
	assert_false(decide("10.0.0.0/8", "0.0.0.0/0 ::/0", "11.1.2.3"));
	assert_false(decide("10.0.0.0/8", "0.0.0.0/0 ::/0", "2001:db8::1"));
	/* allow alone denies nobody */
	assert_true(decide("10.0.0.0/8", "", "11.1.2.3"));
	/* a hole in a denied range */
	assert_true(decide("192.0.2.128/25", "192.0.2.0/24", "192.0.2.200"));
	assert_false(decide("192.0.2.128/25", "192.0.2.0/24", "192.0.2.100"));
}

static void test_v6_and_mapped(void **state)
{
	(void)state;
	assert_false(decide("", "2001:db8::/32", "2001:db8:1::5"));
	assert_true(decide("", "2001:db8::/32", "2001:db9::5"));
	assert_true(decide("2001:db8:1::/48", "2001:db8::/32", "2001:db8:1::5"));
	/* an IPv4-mapped client is its IPv4 address, both ways */
	assert_false(decide("", "10.0.0.0/8", "::ffff:10.9.8.7"));
	assert_true(decide("", "10.0.0.0/8", "::ffff:11.9.8.7"));
	assert_false(decide("", "::ffff:10.0.0.0/104", "10.9.8.7"));
	assert_true(decide("::ffff:10.0.0.1", "0.0.0.0/0", "10.0.0.1"));
	/* an IPv4 range never matches a real IPv6 address */
	assert_true(decide("", "0.0.0.0/0", "2001:db8::1"));
}

static void test_no_address(void **state)
{
	(void)state;
	assert_true(decide("", "", "-"));
	assert_false(decide("", "192.0.2.0/24", "-"));
	assert_false(decide("0.0.0.0/0", "192.0.2.0/24", "not-an-ip"));
}

static void test_bad_lists(void **state)
{
	(void)state;
	struct access_rules r;
	const char *error = NULL;
	assert_false(access_rules_init(&r, "10.0.0.0/33", "", &error));
	assert_non_null(error);
	assert_false(access_rules_init(&r, "", "host.example.com", &error));
	assert_non_null(error);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_v6_and_mapped),
		cmocka_unit_test(test_no_address),
		cmocka_unit_test(test_bad_lists),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
