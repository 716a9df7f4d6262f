/* var-expand.h: Dovecot 2.3's %-variables, modifiers, substrings and the
 * errors a typo must give. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "lib/alloc.h"
#include "lib/var-expand.h"

#include <stdlib.h>
#include <string.h>

static const struct var_expand_entry table[] = {
	{ 'u', "user", "Alice.Smith@Mail.Example.com" },
	{ 'n', "username", "Alice.Smith" },
	{ 'd', "domain", "Mail.Example.com" },
	{ 'i', "uid", "1234" },
	{ 's', "service", "imap" },
	{ 'h', "home", NULL },          /* known, no value here */
	{ 't', "text", "a\"b'c\\d  " },
	{ 0, "session", "S1" },
	{ 0, NULL, NULL },
};

static char *expand_ok(const char *str)
{
	char *out = NULL, *error = NULL;
	if (var_expand(str, table, NULL, NULL, &out, &error) < 0)
		fail_msg("%s: %s", str, error);
	assert_null(error);
	return out;
}

static void check(const char *str, const char *want)
{
	char *out = expand_ok(str);
	if (strcmp(out, want) != 0)
		fail_msg("%s: got '%s', want '%s'", str, out, want);
	rg_free(out);
}

static void check_error(const char *str, const char *want)
{
	char *out = NULL, *error = NULL;
	assert_int_equal(var_expand(str, table, NULL, NULL, &out, &error), -1);
	assert_null(out);
	if (strcmp(error, want) != 0)
		fail_msg("%s: got error '%s', want '%s'", str, error, want);
	rg_free(error);
}

static void test_plain(void **state)
{
	(void)state;
	check("", "");
	check("no variables", "no variables");
	check("%u", "Alice.Smith@Mail.Example.com");
	check("/var/vmail/%d/%n", "/var/vmail/Mail.Example.com/Alice.Smith");
	check("%{user}", "Alice.Smith@Mail.Example.com");
	check("x%{session}y", "xS1y");
	check("100%%", "100%");
	check("%%u", "%u");
	check("[%h]", "[]");
	check("%s-%s", "imap-imap");
}

static void test_modifiers(void **state)
{
	(void)state;
	check("%Lu", "alice.smith@mail.example.com");
	check("%Ud", "MAIL.EXAMPLE.COM");
	check("%L{domain}", "mail.example.com");
	check("%Xi", "4d2");
	check("%Rs", "pami");
	check("%Dd", "dc=Mail,dc=Example,dc=com");
	check("%LDd", "dc=mail,dc=example,dc=com");
	check("%Et", "a\\\"b\\'c\\\\d  ");
	check("%Tt|", "a\"b'c\\d|");
	/* applied in order */
	check("%LUn", "ALICE.SMITH");
}

static void test_substrings(void **state)
{
	(void)state;
	check("%1u", "A");
	check("%1Lu", "a");
	check("%L1u", "a");
	check("%2.1n", "i");
	check("%-2.2i", "34");
	check("%-2i", "34");
	check("%0.3s", "ima");
	check("%10s", "imap");
	check("%4.2s", "");       /* offset past the end */
	check("%-9.2s", "im");    /* before the start: from the start */
	check("%1.0s", "");
	check("%2{user}", "Al");
	check("%1L{domain}/%L{username}", "m/alice.smith");
}

static void test_errors(void **state)
{
	(void)state;
	check_error("%q", "unknown variable '%q'");
	check_error("/x/%{nosuch}/y", "unknown variable '%{nosuch}'");
	check_error("%{user", "missing '}' in '%{user'");
	check_error("abc%", "incomplete %-variable at the end: '%'");
	check_error("%L", "incomplete %-variable at the end: '%L'");
	check_error("%Hu", "unsupported modifier (hashes) in '%H'");
	check_error("%2.u", "bad substring in '%2.u'");
	check_error("%LLLLLLLLLu", "too many modifiers in '%LLLLLLLLL'");
	check_error("%{}", "unknown variable '%{}'");
	/* the error shows unprintable bytes as '?' */
	check_error("%\x01", "unknown variable '%?'");
}

static char *quote(const char *value, void *context)
{
	(*(int *)context)++;
	return rg_strdup_printf("'%s'", value);
}

static void test_escape(void **state)
{
	(void)state;
	int calls = 0;
	char *out = NULL, *error = NULL;
	assert_int_equal(var_expand("SELECT %Ln FROM t WHERE d=%d AND x='%%'", table, quote,
				    &calls, &out, &error), 0);
	assert_string_equal(out, "SELECT 'alice.smith' FROM t WHERE d='Mail.Example.com' AND x='%'");
	assert_int_equal(calls, 2);
	rg_free(out);

	assert_false(var_has_variables("plain 100%% text"));
	assert_true(var_has_variables("/etc/%d/passwd"));
	assert_true(var_has_variables("%"));
	assert_false(var_has_variables(""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_modifiers),
		cmocka_unit_test(test_substrings),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_escape),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
