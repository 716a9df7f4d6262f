/* TLS engine tests: SNI (exact and wildcard names, case, bad names,
 * a thousand names' cost, tickets across a switch to an SNI context). */
#include "tls-test.h"

#include <errno.h>
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/alloc.h"

static void test_sni(void **state)
{
	(void)state;
	struct tls_ctx *ctx = make_ctx(ec_cert, ec_key);
	struct tls_ctx *other = make_ctx(other_cert, other_key);
	struct tls_ctx *wild = make_ctx(rsa_cert, rsa_key);
	struct tls_ctx *wild2 = make_ctx(wild_cert, wild_key);
	const char *error = NULL;

	tls_ctx_free(&wild);
	assert_int_equal(tls_ctx_add_sni(ctx, "other.example.org", other, &error), 0);
	assert_int_equal(tls_ctx_add_sni(ctx, "IMAP.Other.Example.ORG", other, &error), 0);
	assert_int_equal(tls_ctx_add_sni(ctx, "*.example.net", wild2, &error), 0);
	/* errors: duplicate (any case), bad names */
	assert_int_equal(tls_ctx_add_sni(ctx, "OTHER.example.org", wild2, &error), -EINVAL);
	assert_non_null(strstr(error, "given twice"));
	const char *bad[] = { "", "*", "*.", "a.*.example.com", "foo*.example.com", "a..b", ".a.b", "a.b.",
			      "sp ace.com", "x/y" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		error = NULL;
		if (tls_ctx_add_sni(ctx, bad[i], other, &error) != -EINVAL)
			fail_msg("name '%s' accepted", bad[i]);
		assert_non_null(error);
	}
	/* the context cannot be its own SNI certificate, a context with
	 * names cannot be a sub, and a sub belongs to one parent */
	assert_int_equal(tls_ctx_add_sni(ctx, "self.example.com", ctx, &error), -EINVAL);
	struct tls_ctx *second = make_ctx(ec_cert, ec_key);
	assert_int_equal(tls_ctx_add_sni(second, "x.example.com", ctx, &error), -EINVAL);
	assert_int_equal(tls_ctx_add_sni(second, "x.example.com", other, &error), -EINVAL);
	assert_non_null(strstr(error, "x.example.com"));
	tls_ctx_free(&second);
	/* a thousand names cost one entry each, all on one sub */
	char name[64];
	struct mallinfo2 before = mallinfo2();
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "host%d.example.org", i);
		assert_int_equal(tls_ctx_add_sni(ctx, name, other, &error), 0);
	}
	size_t grown = mallinfo2().uordblks - before.uordblks;
	print_message("1,000 SNI names: %zu B of heap\n", grown);
	/* (0 under ASan, whose allocator mallinfo does not see) */
	assert_true(grown < 128 * 1024);

	for (int v = V12; v <= V13; v++) {
		check_sni(ctx, v, "other.example.org", "other.example.org");
		check_sni(ctx, v, "OTHER.Example.Org", "other.example.org");
		check_sni(ctx, v, "imap.other.example.org", "other.example.org");
		check_sni(ctx, v, "host999.example.org", "other.example.org");
		check_sni(ctx, v, "mail.example.net", "*.example.net");
		check_sni(ctx, v, "A.EXAMPLE.NET", "*.example.net");
		/* a wildcard covers exactly one label */
		check_sni(ctx, v, "a.b.example.net", "mail.example.com");
		check_sni(ctx, v, "example.net", "mail.example.com");
		check_sni(ctx, v, "unknown.test", "mail.example.com");
		check_sni(ctx, v, "mail.example.com", "mail.example.com");
		check_sni(ctx, v, NULL, "mail.example.com");
	}

	/* tickets made after a switch to a sub resume on the parent's keys */
	check_resume_elsewhere(ctx, "other.example.org", 9);

	/* the caller's references go first; the parent still holds the subs */
	tls_ctx_free(&other);
	tls_ctx_free(&wild2);
	check_sni(ctx, V13, "other.example.org", "other.example.org");
	tls_ctx_free(&ctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sni),
	};
	return cmocka_run_group_tests(tests, tls_test_setup, tls_test_teardown);
}
