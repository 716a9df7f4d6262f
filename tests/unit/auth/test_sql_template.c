/* sql-template.c: a query template as a statement with parameters, and
 * every case where the query must stay text. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include "auth/sql-template.h"
#include <stdio.h>
#include <string.h>

static void converts(const char *tmpl, const char *sql, unsigned n, const char *const *params)
{
	struct sql_template t;
	if (!sql_template_parse(tmpl, &t))
		fail_msg("not converted: %s", tmpl);
	assert_string_equal(t.sql, sql);
	assert_int_equal(t.nparams, n);
	for (unsigned i = 0; i < n; i++)
		assert_string_equal(t.params[i], params[i]);
	sql_template_free(&t);
	assert_null(t.sql);
}

static void refused(const char *tmpl)
{
	struct sql_template t;
	if (sql_template_parse(tmpl, &t))
		fail_msg("converted: %s -> %s", tmpl, t.sql);
	assert_null(t.sql);
	assert_null(t.params);
	assert_int_equal(t.nparams, 0);
}

static void test_converts(void **state)
{
	(void)state;
	converts("SELECT username AS user, password FROM users WHERE username = '%u'",
		 "SELECT username AS user, password FROM users WHERE username = $1", 1,
		 (const char *[]){ "%u" });
	/* several literals, a literal with text around its variables, a
	   literal with none (kept), Dovecot's %{long} names and modifiers */
	converts("SELECT 'Y' AS proxy, home FROM u WHERE name = '%n' AND domain = '%Ld' "
		 "AND x = 'pre-%{user}@%d'",
		 "SELECT 'Y' AS proxy, home FROM u WHERE name = $1 AND domain = $2 AND x = $3", 3,
		 (const char *[]){ "%n", "%Ld", "pre-%{user}@%d" });
	/* '' inside a literal is one quote of the value; %% a percent sign */
	converts("SELECT 1 FROM u WHERE a = 'it''s %u' AND b LIKE '%u%%'",
		 "SELECT 1 FROM u WHERE a = $1 AND b LIKE $2", 2,
		 (const char *[]){ "it's %u", "%u%%" });
	/* quoted names and comments without a variable are copied */
	converts("SELECT \"Home\" AS home -- the home\nFROM /* users */ u WHERE n=('%u')",
		 "SELECT \"Home\" AS home -- the home\nFROM /* users */ u WHERE n=($1)", 1,
		 (const char *[]){ "%u" });
}

static void test_refused(void **state)
{
	(void)state;
	refused("SELECT home FROM users");                      /* nothing to gain */
	refused("SELECT home FROM users WHERE uid = %n");       /* outside a literal */
	refused("SELECT home FROM \"%d\".users WHERE u = '%n'"); /* in a quoted name */
	refused("SELECT home FROM users WHERE u = '%u' -- %d"); /* in a comment */
	refused("SELECT home FROM users /* %d */ WHERE u = '%u'");
	refused("SELECT home FROM users WHERE u = E'%u'");      /* prefixed literal */
	refused("SELECT home FROM users WHERE u = U&'%u'");
	refused("SELECT home FROM users WHERE u = '\\%u'");     /* backslash */
	refused("SELECT home FROM users WHERE u = $$%u$$");     /* dollar quoting */
	refused("SELECT home FROM users WHERE u = $1 AND v = '%u'"); /* its own parameter */
	refused("SELECT home FROM users WHERE u = '%u");         /* unterminated */
	refused("SELECT \"home FROM users WHERE u = '%u'");
	refused("SELECT home /* FROM users WHERE u = '%u'");
	refused("SELECT 100%% FROM users WHERE u = '%u'");      /* a % outside */
	char many[2048] = "SELECT 1 FROM u WHERE true";
	for (unsigned i = 0; i <= SQL_TEMPLATE_MAX_PARAMS; i++)
		strcat(many, " AND a = '%u'");
	refused(many);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_converts),
		cmocka_unit_test(test_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
