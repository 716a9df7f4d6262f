/* master-addr: listener address lists and binding errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include "lib/alloc.h"
#include "master/master-addr.h"

static unsigned parse_ok(const char *list, unsigned port, struct master_addr **a_r)
{
	char *error = NULL;
	unsigned n = 0;
	int ret = master_addr_parse(list, port, a_r, &n, &error);
	if (ret != 0)
		fail_msg("'%s': %s", list, error);
	assert_null(error);
	return n;
}

static void parse_fail(const char *list, unsigned port, const char *want)
{
	struct master_addr *a = NULL;
	unsigned n = 0;
	char *error = NULL;
	assert_int_equal(master_addr_parse(list, port, &a, &n, &error), -EINVAL);
	assert_non_null(error);
	if (strstr(error, want) == NULL)
		fail_msg("'%s': error '%s' lacks '%s'", list, error, want);
	rg_free(error);
}

static void test_wildcards(void **state)
{
	(void)state;
	struct master_addr *a;
	/* Dovecot's default listen value */
	unsigned n = parse_ok("*, ::", 143, &a);
	assert_int_equal(n, 2);
	assert_int_equal(a[0].ss.ss_family, AF_INET);
	assert_string_equal(a[0].text, "0.0.0.0");
	assert_false(a[0].v6only);
	assert_int_equal(ntohs(((struct sockaddr_in *)&a[0].ss)->sin_port), 143);
	assert_int_equal(a[0].len, sizeof(struct sockaddr_in));
	assert_int_equal(a[1].ss.ss_family, AF_INET6);
	assert_string_equal(a[1].text, "::");
	assert_true(a[1].v6only);
	assert_int_equal(ntohs(((struct sockaddr_in6 *)&a[1].ss)->sin6_port), 143);
	assert_int_equal(a[1].port, 143);
	rg_free(a);
}

static void test_literals_and_separators(void **state)
{
	(void)state;
	struct master_addr *a;
	unsigned n = parse_ok("  127.0.0.1,::1 [fe80::1]\t10.1.2.3,,", 10143, &a);
	assert_int_equal(n, 4);
	assert_string_equal(a[0].text, "127.0.0.1");
	assert_string_equal(a[1].text, "::1");
	assert_false(a[1].v6only);
	assert_string_equal(a[2].text, "fe80::1");
	assert_string_equal(a[3].text, "10.1.2.3");
	rg_free(a);
	/* duplicates collapse: two binds of one address would fail */
	n = parse_ok("127.0.0.1 127.0.0.1", 1, &a);
	assert_int_equal(n, 1);
	rg_free(a);
}

static void test_names(void **state)
{
	(void)state;
	struct master_addr *a;
	unsigned n = parse_ok("localhost", 110, &a);
	assert_true(n >= 1);
	bool loopback = false;
	for (unsigned i = 0; i < n; i++)
		loopback = loopback || strcmp(a[i].text, "127.0.0.1") == 0 ||
			   strcmp(a[i].text, "::1") == 0;
	assert_true(loopback);
	rg_free(a);
}

static void test_errors(void **state)
{
	(void)state;
	parse_fail("", 143, "empty");
	parse_fail(" , ", 143, "empty");
	parse_fail(NULL, 143, "empty");
	parse_fail("127.0.0.1", 0, "invalid port");
	parse_fail("127.0.0.1", 70000, "invalid port");
	parse_fail("[127.0.0.1]", 143, "invalid IPv6");
	parse_fail("no-such-host.invalid", 143, "cannot resolve");
	parse_fail("*, no-such-host.invalid", 143, "no-such-host.invalid");
}

static void test_listen_and_bind_error(void **state)
{
	(void)state;
	struct master_addr *a;
	/* find a free port */
	int probe = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(probe, (struct sockaddr *)&sin, sizeof(sin)), 0);
	socklen_t sl = sizeof(sin);
	getsockname(probe, (struct sockaddr *)&sin, &sl);
	unsigned port = ntohs(sin.sin_port);
	close(probe);

	assert_int_equal(parse_ok("127.0.0.1", port, &a), 1);
	char *error = NULL;
	int fd = master_addr_listen(&a[0], false, 16, &error);
	assert_true(fd >= 0);
	/* a second bind of the same address fails with the address in the message */
	int fd2 = master_addr_listen(&a[0], false, 16, &error);
	assert_int_equal(fd2, -EADDRINUSE);
	char want[64];
	snprintf(want, sizeof(want), "listen(127.0.0.1, %u) failed: Address already in use", port);
	assert_string_equal(error, want);
	rg_free(error);
	close(fd);

	/* reuse_port: several sockets on one address */
	error = NULL;
	int r1 = master_addr_listen(&a[0], true, 16, &error);
	int r2 = master_addr_listen(&a[0], true, 16, &error);
	assert_true(r1 >= 0);
	assert_true(r2 >= 0);
	assert_null(error);
	close(r1);
	close(r2);
	rg_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wildcards),
		cmocka_unit_test(test_literals_and_separators),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_listen_and_bind_error),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
