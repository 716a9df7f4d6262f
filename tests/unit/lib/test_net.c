/* test_net.c — login_trusted_networks parsing and matching, addresses. */
#include "lib/net.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static struct net_addr v4(const char *ip)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(143) };
	assert_int_equal(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
	struct net_addr a;
	net_addr_from_sockaddr((struct sockaddr *)&sin, sizeof(sin), &a);
	return a;
}

static struct net_addr v6(const char *ip)
{
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons(993) };
	assert_int_equal(inet_pton(AF_INET6, ip, &sin6.sin6_addr), 1);
	struct net_addr a;
	net_addr_from_sockaddr((struct sockaddr *)&sin6, sizeof(sin6), &a);
	return a;
}

static bool match(const char *list, struct net_addr a)
{
	struct net_list nl;
	const char *error = NULL;
	assert_true(net_list_parse(list, &nl, &error));
	bool m = net_list_match(&nl, &a);
	net_list_free(&nl);
	return m;
}

static void test_v4(void **state)
{
	(void)state;
	assert_true(match("10.0.0.0/8", v4("10.200.1.2")));
	assert_false(match("10.0.0.0/8", v4("11.0.0.1")));
	assert_true(match("192.168.1.0/24", v4("192.168.1.255")));
	assert_false(match("192.168.1.0/24", v4("192.168.2.0")));
	assert_true(match("192.168.1.128/25", v4("192.168.1.200")));
	assert_false(match("192.168.1.128/25", v4("192.168.1.127")));
	assert_true(match("172.16.0.0/12", v4("172.31.255.255")));
	assert_false(match("172.16.0.0/12", v4("172.32.0.0")));
	assert_true(match("1.2.3.4", v4("1.2.3.4")));
	assert_false(match("1.2.3.4", v4("1.2.3.5")));
	assert_true(match("0.0.0.0/0", v4("8.8.8.8")));
	assert_true(match("1.2.3.4/32", v4("1.2.3.4")));
	/* host bits in the range are ignored beyond the mask */
	assert_true(match("10.1.2.3/8", v4("10.9.9.9")));
	/* lists: spaces, commas, tabs */
	assert_true(match("  1.1.1.1, 10.0.0.0/8\t2.2.2.2 ", v4("2.2.2.2")));
	assert_true(match("1.1.1.1 10.0.0.0/8", v4("10.0.0.1")));
	assert_false(match("", v4("10.0.0.1")));
	/* an IPv4 range never matches IPv6 */
	assert_false(match("0.0.0.0/0", v6("2001:db8::1")));
}

static void test_v6(void **state)
{
	(void)state;
	assert_true(match("2001:db8::/32", v6("2001:db8:ffff::1")));
	assert_false(match("2001:db8::/32", v6("2001:db9::1")));
	assert_true(match("2001:db8::/33", v6("2001:db8:7fff::1")));
	assert_false(match("2001:db8::/33", v6("2001:db8:8000::1")));
	assert_true(match("::1", v6("::1")));
	assert_true(match("::/0", v6("fe80::1")));
	assert_false(match("::/0", v4("1.2.3.4")));
	assert_true(match("fe80::/10", v6("febf::1")));
	assert_false(match("fe80::/10", v6("fec0::1")));
	/* IPv4-mapped clients match IPv4 ranges, and mapped ranges match v4 */
	assert_true(match("10.0.0.0/8", v6("::ffff:10.1.2.3")));
	assert_true(match("::ffff:10.0.0.0/104", v4("10.1.2.3")));
	assert_false(match("::ffff:10.0.0.0/104", v4("11.1.2.3")));
}

static void test_bad(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"10.0.0.0/33", "10.0.0.0/", "10.0.0.0/a", "10.0.0.0/1a", "10.0.0.0/0008",
		"10.0.0", "10.0.0.256", "/8", "host.example.com", "2001:db8::/129",
		"2001:db8:::1", "1.2.3.4 bogus", "::ffff:1.2.3.4/95", "1.2.3.4/-1",
		"1.2.3.4//8",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct net_list nl = { .ranges = (void *)1, .count = 9 };
		const char *error = NULL;
		assert_false(net_list_parse(bad[i], &nl, &error));
		assert_non_null(error);
		assert_null(nl.ranges);
		assert_int_equal(nl.count, 0);
	}
}

/* IPv4 is formatted by hand (no sprintf per log line): the same text as
 * inet_ntop for every octet value in every position */
static void test_addr_ipv4_text(void **state)
{
	(void)state;
	char buf[64], want[INET_ADDRSTRLEN];
	for (int pos = 0; pos < 4; pos++) {
		for (unsigned v = 0; v < 256; v++) {
			struct net_addr a = { .family = AF_INET };
			static const uint8_t base[4] = { 10, 200, 3, 99 };
			memcpy(a.ip, base, 4);
			a.ip[pos] = (uint8_t)v;
			assert_non_null(inet_ntop(AF_INET, a.ip, want, sizeof(want)));
			assert_string_equal(net_addr_ip(&a, buf, sizeof(buf)), want);
		}
	}
	struct net_addr a = { .family = AF_INET, .ip = { 255, 255, 255, 255 } };
	assert_string_equal(net_addr_ip(&a, buf, INET_ADDRSTRLEN), "255.255.255.255");
	/* too small a buffer: inet_ntop's answer (none) */
	assert_string_equal(net_addr_ip(&a, buf, 8), "");
}

static void test_addr(void **state)
{
	(void)state;
	char buf[64];
	struct net_addr a = v4("127.0.0.5");
	assert_true(net_addr_is_loopback(&a));
	assert_int_equal(a.port, 143);
	assert_string_equal(net_addr_ip(&a, buf, sizeof(buf)), "127.0.0.5");
	a = v6("::1");
	assert_true(net_addr_is_loopback(&a));
	assert_string_equal(net_addr_ip(&a, buf, sizeof(buf)), "::1");
	a = v6("::ffff:127.0.0.1");
	assert_int_equal(a.family, AF_INET);
	assert_true(net_addr_is_loopback(&a));
	assert_string_equal(net_addr_ip(&a, buf, sizeof(buf)), "127.0.0.1");
	a = v4("192.0.2.1");
	assert_false(net_addr_is_loopback(&a));
	a = v6("2001:db8::1");
	assert_false(net_addr_is_loopback(&a));
	assert_string_equal(net_addr_ip(&a, buf, sizeof(buf)), "2001:db8::1");
	struct sockaddr sa = { .sa_family = AF_UNIX };
	net_addr_from_sockaddr(&sa, sizeof(sa), &a);
	assert_int_equal(a.family, 0);

	/* same host = same IP whatever the ports; mapped v4 equals v4 */
	struct net_addr x = v4("127.0.0.1"), y = v6("::ffff:127.0.0.1");
	y.port = 40000;
	assert_true(net_addr_same_ip(&x, &y));
	y = v4("127.0.0.2");
	assert_false(net_addr_same_ip(&x, &y));
	x = v6("2001:db8::1");
	y = v6("2001:db8::1");
	assert_true(net_addr_same_ip(&x, &y));
	y = v6("2001:db8::2");
	assert_false(net_addr_same_ip(&x, &y));
	assert_false(net_addr_same_ip(&a, &a)); /* unknown family: never */
	assert_string_equal(net_addr_ip(&a, buf, sizeof(buf)), "");

	/* wildcards: a listener bound to one of these asks each connection
	 * its local address; an unknown family is no wildcard */
	assert_false(net_addr_is_any(&a));
	x = v4("0.0.0.0");
	assert_true(net_addr_is_any(&x));
	x = v6("::");
	assert_true(net_addr_is_any(&x));
	x = v6("::ffff:0.0.0.0");
	assert_int_equal(x.family, AF_INET);
	assert_true(net_addr_is_any(&x));
	x = v4("127.0.0.1");
	assert_false(net_addr_is_any(&x));
	x = v4("0.0.0.1");
	assert_false(net_addr_is_any(&x));
	x = v6("::1");
	assert_false(net_addr_is_any(&x));
	x = v6("2001:db8::");
	assert_false(net_addr_is_any(&x));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v4),
		cmocka_unit_test(test_v6),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_addr),
		cmocka_unit_test(test_addr_ipv4_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
