/* dovecot-sql.conf.ext / dovecot-ldap.conf.ext parsers and LDAP escaping. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include "auth/auth-dbconf.h"
#include "auth/db-store.h"
#include "lib/alloc.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int sql_parse(const char *text, struct sql_conf *c, char **error)
{
	*error = NULL;
	return sql_conf_parse("sql.conf", text, strlen(text), c, error);
}

static int ldap_parse(const char *text, struct ldap_conf *c, char **error)
{
	*error = NULL;
	return ldap_conf_parse("ldap.conf", text, strlen(text), c, error);
}

/* Debian's stock example, uncommented the way sites do it */
static const char sql_sample[] =
	"# comment\n"
	"driver = pgsql\n"
	"connect = host=db1 host=db2 dbname=mails user=admin password='a b' maxconns=3\n"
	"default_pass_scheme = sha512-crypt\n"
	"\n"
	"password_query = \\\n"
	"  SELECT username AS user, password, 'Y' AS proxy \\\n"
	"  # a comment line inside the continuation\n"
	"  FROM users WHERE username = '%n' AND domain = '%d'  # trailing\n"
	"user_query = \"SELECT home, uid, gid FROM users WHERE userid = '%u'\"\n"
	"iterate_query = SELECT username AS user FROM users\n"
	"request_timeout = 2 secs\n";

static void test_sql_sample(void **state)
{
	(void)state;
	struct sql_conf c;
	char *error;

	assert_int_equal(sql_parse(sql_sample, &c, &error), 0);
	assert_int_equal(c.driver, SQL_DRIVER_PGSQL);
	assert_int_equal(c.host_count, 2);
	assert_string_equal(c.hosts[0], "db1");
	assert_string_equal(c.hosts[1], "db2");
	assert_int_equal(c.maxconns, 3);
	assert_string_equal(c.connect_rest, "dbname=mails user=admin password='a b'");
	assert_string_equal(c.default_pass_scheme, "SHA512-CRYPT");
	assert_string_equal(c.password_query,
			    "SELECT username AS user, password, 'Y' AS proxy "
			    "FROM users WHERE username = '%n' AND domain = '%d'");
	assert_string_equal(c.user_query, "SELECT home, uid, gid FROM users WHERE userid = '%u'");
	assert_string_equal(c.iterate_query, "SELECT username AS user FROM users");
	assert_int_equal(c.request_timeout_ms, 2000);
	sql_conf_free(&c);
}

static void test_sql_defaults(void **state)
{
	(void)state;
	struct sql_conf c;
	char *error;

	assert_int_equal(sql_parse("driver = mysql\nconnect = host=/run/m.sock dbname=d user=u "
				   "password=p port=3307 ssl_ca=/x\n", &c, &error), 0);
	assert_int_equal(c.driver, SQL_DRIVER_MYSQL);
	assert_int_equal(c.maxconns, SQL_DEFAULT_MAXCONNS);
	assert_int_equal(c.request_timeout_ms, DBCONF_DEFAULT_REQUEST_TIMEOUT_MS);
	assert_string_equal(c.default_pass_scheme, "MD5");
	assert_string_equal(c.my_user, "u");
	assert_string_equal(c.my_password, "p");
	assert_string_equal(c.my_dbname, "d");
	assert_int_equal(c.my_port, 3307);
	assert_non_null(strstr(c.password_query, "'%n'"));
	assert_non_null(strstr(c.user_query, "home, uid, gid"));
	sql_conf_free(&c);

	assert_int_equal(sql_parse("driver = sqlite\nconnect = /var/lib/users.db\n", &c, &error), 0);
	assert_int_equal(c.driver, SQL_DRIVER_SQLITE);
	assert_string_equal(c.connect_rest, "/var/lib/users.db");
	assert_int_equal(c.host_count, 0);
	sql_conf_free(&c);

	/* no host=: one default host, the string as it is */
	assert_int_equal(sql_parse("driver=pgsql\nconnect=dbname=x\n", &c, &error), 0);
	assert_int_equal(c.host_count, 0);
	assert_string_equal(c.connect_rest, "dbname=x");
	sql_conf_free(&c);
}

static void test_sql_errors(void **state)
{
	(void)state;
	static const struct {
		const char *text, *error;
	} cases[] = {
		{ "driver = pgsql\nconnect = x\nbogus = 1\n", "sql.conf:3: Unknown setting: bogus" },
		{ "driver = oracle\nconnect = x\n", "sql.conf:1: driver: unknown SQL driver 'oracle'" },
		{ "connect = x\n", "sql.conf: sql: driver not set" },
		{ "driver = pgsql\n", "sql.conf: sql: connect not set" },
		{ "driver = pgsql\n\nconnect = host=a maxconns=0\n", "sql.conf:3: connect: maxconns: Invalid" },
		{ "driver = pgsql\nconnect = maxconns=x\n", "sql.conf:2: connect: maxconns: Invalid" },
		{ "driver = pgsql\nconnect = host= dbname=x\n", "sql.conf:2: connect: host: host= is empty" },
		{ "driver = mysql\nconnect = host=a sslmode=x\n", "sql.conf:2: connect: sslmode: unknown" },
		{ "driver = mysql\nconnect = host=a port=70000\n", "sql.conf:2: connect: port: invalid port" },
		{ "driver = pgsql\nconnect = x\njust words\n", "sql.conf:3: expecting 'key = value'" },
		{ "driver = pgsql\nconnect = x\n= value\n", "sql.conf:3: expecting 'key = value'" },
		{ "!include other.conf\n", "sql.conf:1: !include is not supported" },
		{ "driver = pgsql\nconnect = x\nrequest_timeout = soon\n", "sql.conf:3: request_timeout:" },
		{ "driver = pgsql\nconnect = x\nrequest_timeout = 0\n", "sql.conf:3: request_timeout: must be" },
		{ "driver = pgsql\nconnect = x\nuserdb_warning_disable = maybe\n",
		  "sql.conf:3: userdb_warning_disable: expecting yes or no" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sql_conf c;
		char *error;
		assert_int_equal(sql_parse(cases[i].text, &c, &error), -1);
		assert_non_null(error);
		if (strncmp(error, cases[i].error, strlen(cases[i].error)) != 0)
			fail_msg("case %zu: got '%s', want '%s…'", i, error, cases[i].error);
		rg_free(error);
	}
	/* a NUL byte in the text */
	struct sql_conf c;
	char *error = NULL;
	static const char nul[] = "driver = pgsql\nconnect = a\0b\n";
	assert_int_equal(sql_conf_parse("sql.conf", nul, sizeof(nul) - 1, &c, &error), -1);
	assert_string_equal(error, "sql.conf:2: line contains a NUL byte");
	rg_free(error);
	/* a continued line over the bound */
	size_t n = 80 * 1024 / 7;
	char *big = rg_malloc(n * 9 + 64), *o = big;
	o += sprintf(o, "password_query = ");
	for (size_t i = 0; i < n; i++)
		o += sprintf(o, "abcdef \\\n");
	sprintf(o, "x\n");
	assert_int_equal(sql_conf_parse("sql.conf", big, strlen(big), &c, &error), -1);
	assert_string_equal(error, "sql.conf:1: line too long");
	rg_free(error);
	rg_free(big);
}

static void test_sql_load(void **state)
{
	(void)state;
	char path[] = "/tmp/rg-dbconf-XXXXXX";
	int fd = mkstemp(path);
	struct sql_conf c;
	char *error = NULL;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, sql_sample, sizeof(sql_sample) - 1), (ssize_t)sizeof(sql_sample) - 1);
	close(fd);
	assert_int_equal(sql_conf_load(path, &c, &error), 0);
	assert_int_equal(c.host_count, 2);
	sql_conf_free(&c);
	unlink(path);
	assert_int_equal(sql_conf_load(path, &c, &error), -1);
	assert_non_null(strstr(error, "No such file"));
	rg_free(error);
}

static const char ldap_sample[] =
	"hosts = ldap1:389 ldap2\n"
	"dn = cn=admin,dc=example,dc=com\n"
	"dnpass = 'sec#ret'\n"
	"tls = yes\n"
	"tls_require_cert = demand\n"
	"auth_bind = yes\n"
	"auth_bind_userdn = uid=%u,ou=people,dc=example,dc=com\n"
	"base = ou=people,dc=example,dc=com\n"
	"scope = onelevel\n"
	"deref = always\n"
	"user_attrs = homeDirectory=home, uidNumber=uid, gidNumber=gid, \\\n"
	"  =mail=maildir:%{ldap:homeDirectory}/Maildir, mailQuota=quota_rule=*:storage=%$\n"
	"user_filter = (&(objectClass=posixAccount)(uid=%u))\n"
	"pass_attrs = uid=user, userPassword=password, mailHost=host, =proxy=y\n"
	"pass_filter = (&(objectClass=posixAccount)(uid=%u))\n"
	"iterate_filter = (objectClass=inetOrgPerson)\n"
	"default_pass_scheme = ssha\n";

static void test_ldap_sample(void **state)
{
	(void)state;
	struct ldap_conf c;
	char *error;

	assert_int_equal(ldap_parse(ldap_sample, &c, &error), 0);
	assert_string_equal(c.uris, "ldap://ldap1:389 ldap://ldap2");
	assert_string_equal(c.dn, "cn=admin,dc=example,dc=com");
	assert_string_equal(c.dnpass, "sec#ret");
	assert_true(c.tls);
	assert_int_equal(c.tls_require_cert, 2);
	assert_true(c.auth_bind);
	assert_string_equal(c.auth_bind_userdn, "uid=%u,ou=people,dc=example,dc=com");
	assert_int_equal(c.scope, LDAP_CONF_SCOPE_ONELEVEL);
	assert_int_equal(c.deref, LDAP_CONF_DEREF_ALWAYS);
	assert_string_equal(c.default_pass_scheme, "SSHA");
	assert_string_equal(c.iterate_filter, "(objectClass=inetOrgPerson)");

	assert_int_equal(c.user_attrs.count, 5);
	assert_string_equal(c.user_attrs.entries[0].attr, "homeDirectory");
	assert_string_equal(c.user_attrs.entries[0].field, "home");
	assert_null(c.user_attrs.entries[0].tmpl);
	assert_string_equal(c.user_attrs.entries[3].attr, "");
	assert_string_equal(c.user_attrs.entries[3].field, "mail");
	assert_string_equal(c.user_attrs.entries[3].tmpl, "maildir:%{ldap:homeDirectory}/Maildir");
	assert_string_equal(c.user_attrs.entries[4].field, "quota_rule");
	assert_string_equal(c.user_attrs.entries[4].tmpl, "*:storage=%$");
	/* requested: each attribute once, the template's included */
	assert_int_equal(c.user_attrs.attr_count, 4);
	assert_string_equal(c.user_attrs.attrs[3], "mailQuota");
	assert_null(c.user_attrs.attrs[4]);

	assert_int_equal(c.pass_attrs.count, 4);
	assert_string_equal(c.pass_attrs.entries[2].field, "host");
	assert_string_equal(c.pass_attrs.entries[3].tmpl, "y");
	assert_int_equal(c.pass_attrs.attr_count, 3);
	/* Dovecot's default iterate_attrs */
	assert_int_equal(c.iterate_attrs.count, 1);
	assert_string_equal(c.iterate_attrs.entries[0].field, "user");
	ldap_conf_free(&c);
}

static void test_ldap_defaults(void **state)
{
	(void)state;
	struct ldap_conf c;
	char *error;

	assert_int_equal(ldap_parse("uris = ldaps://a ldap://b:10389/\nbase = dc=x\n", &c, &error), 0);
	assert_string_equal(c.uris, "ldaps://a ldap://b:10389/");
	assert_null(c.dn);
	assert_false(c.auth_bind);
	assert_false(c.tls);
	assert_int_equal(c.tls_require_cert, -1);
	assert_int_equal(c.scope, LDAP_CONF_SCOPE_SUBTREE);
	assert_int_equal(c.deref, LDAP_CONF_DEREF_NEVER);
	assert_string_equal(c.pass_filter, "(&(objectClass=posixAccount)(uid=%u))");
	assert_string_equal(c.default_pass_scheme, "CRYPT");
	assert_int_equal(c.pass_attrs.count, 2);
	assert_string_equal(c.pass_attrs.entries[1].attr, "userPassword");
	assert_string_equal(c.pass_attrs.entries[1].field, "password");
	assert_int_equal(c.user_attrs.count, 3);
	assert_int_equal(c.request_timeout_ms, DBCONF_DEFAULT_REQUEST_TIMEOUT_MS);
	ldap_conf_free(&c);
}

static void test_ldap_errors(void **state)
{
	(void)state;
	static const struct {
		const char *text, *error;
	} cases[] = {
		{ "base = x\n", "ldap.conf: ldap: No uris or hosts set" },
		{ "uris = ldap://a\n", "ldap.conf: ldap: No base given" },
		{ "uris = http://a\nbase = x\n", "ldap.conf:1: uris: expecting" },
		{ "uris = ldap://a\nbase = x\nscope = tree\n", "ldap.conf:3: scope: Invalid scope option 'tree'" },
		{ "uris = ldap://a\nbase = x\nderef = sometimes\n", "ldap.conf:3: deref: Invalid deref" },
		{ "uris = ldap://a\nbase = x\ntls_require_cert = maybe\n", "ldap.conf:3: tls_require_cert:" },
		{ "uris = ldap://a\nbase = x\nldap_version = 2\n", "ldap.conf:3: ldap_version: only 3" },
		{ "uris = ldap://a\nbase = x\nsasl_bind = yes\n", "ldap.conf:3: sasl_bind: not supported" },
		{ "uris = ldap://a\nbase = x\ntls = perhaps\n", "ldap.conf:3: tls: expecting yes or no" },
		{ "uris = ldap://a\nbase = x\npass_attrs = uid=\n", "ldap.conf:3: pass_attrs: missing field" },
		{ "uris = ldap://a\nbase = x\nuser_attrs = =home\n", "ldap.conf:3: user_attrs: a field without" },
		{ "uris = ldap://a\nbase = x\nuser_attrs = bad(attr=home\n", "ldap.conf:3: user_attrs: invalid attr" },
		{ "uris = ldap://a\nbase = x\nuser_attrs = bad attr\n", "ldap.conf:3: user_attrs: invalid attr" },
		{ "uris = ldap://a\nbase = x\nuser_attrs = =home=%{ldap:uid\n",
		  "ldap.conf:3: user_attrs: %{ldap: without" },
		{ "uris = ldap://a\nbase = x\nuser_attrs = =home=%{ldap:u(d}\n",
		  "ldap.conf:3: user_attrs: invalid attribute name in" },
		{ "uris = ldap://a\nbase = x\niterate_attrs = x=\n", "ldap.conf:3: iterate_attrs: missing" },
		{ "uris = ldap://a\nbase = x\nhost = a\n", "ldap.conf:3: Unknown setting: host" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ldap_conf c;
		char *error;
		assert_int_equal(ldap_parse(cases[i].text, &c, &error), -1);
		assert_non_null(error);
		if (strncmp(error, cases[i].error, strlen(cases[i].error)) != 0)
			fail_msg("case %zu: got '%s', want '%s…'", i, error, cases[i].error);
		rg_free(error);
	}
}

static void test_ldap_escape(void **state)
{
	(void)state;
	char *e = ldap_filter_escape("*)(uid=*", 8);
	assert_string_equal(e, "\\2a\\29\\28uid=\\2a");
	rg_free(e);
	e = ldap_filter_escape("a\\b\0c", 5);
	assert_string_equal(e, "a\\5cb\\00c");
	rg_free(e);
	e = ldap_filter_escape("' OR 1=1 --", 11);
	assert_string_equal(e, "' OR 1=1 --");
	rg_free(e);
	e = ldap_dn_escape(" a,b+c=d ", 9);
	assert_string_equal(e, "\\ a\\,b\\+c\\=d\\ ");
	rg_free(e);
	e = ldap_dn_escape("#x\0", 3);
	assert_string_equal(e, "\\#x\\00");
	rg_free(e);
}

/* the auth cache key of a store module: the request's variables, once */
static void test_cache_key(void **state)
{
	(void)state;
	const char *sql[] = { "SELECT password FROM users WHERE username = '%n' AND "
			      "domain = '%d' AND '%n' <> '' AND pct = '100%%'" };
	char *key = db_store_cache_key(sql, 1);
	assert_string_equal(key, "%n\t%d");
	rg_free(key);
	/* modifiers, widths and long names kept as written; the entry's own
	   values (%$, %{ldap:…}) and NULL templates are not the request's */
	const char *ldap[] = { "ou=%Ld,dc=example", "(&(uid=%1.3u)(host=%{rip}))", NULL,
			       "%{ldap:homeDirectory}/%$", "/var/mail/%Ld/%u" };
	key = db_store_cache_key(ldap, 5);
	assert_string_equal(key, "%Ld\t%1.3u\t%{rip}\t%u");
	rg_free(key);
	/* no variable: nothing tells users apart, so no caching */
	const char *none[] = { "SELECT 1", "100%% %" };
	assert_null(db_store_cache_key(none, 2));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sql_sample),
		cmocka_unit_test(test_sql_defaults),
		cmocka_unit_test(test_sql_errors),
		cmocka_unit_test(test_sql_load),
		cmocka_unit_test(test_ldap_sample),
		cmocka_unit_test(test_ldap_defaults),
		cmocka_unit_test(test_ldap_errors),
		cmocka_unit_test(test_ldap_escape),
		cmocka_unit_test(test_cache_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
