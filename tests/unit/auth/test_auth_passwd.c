#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "auth/auth-passwd.h"
#include "lib/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int parse(const char *line, struct passwd_entry *e, const char **error)
{
	return passwd_parse_line(line, strlen(line), "CRYPT", e, error);
}

static void test_full_line(void **state)
{
	(void)state;
	struct passwd_entry e;
	const char *error = NULL;
	assert_int_equal(parse("alice:{SHA512-CRYPT}$6$abc$def:1000:1001:Alice A:/home/alice:/bin/sh:"
			       "proxy host=10.0.0.5 port=143 userdb_mail=maildir:~/Mail", &e, &error), 1);
	assert_string_equal(e.user, "alice");
	assert_string_equal(e.scheme, "SHA512-CRYPT");
	assert_string_equal(e.password, "$6$abc$def");
	assert_true(e.have_uid && e.have_gid);
	assert_int_equal(e.uid, 1000);
	assert_int_equal(e.gid, 1001);
	assert_string_equal(e.home, "/home/alice");
	assert_int_equal(e.extra_count, 4);
	assert_string_equal(passwd_entry_field(&e, "proxy"), "");
	assert_string_equal(passwd_entry_field(&e, "host"), "10.0.0.5");
	assert_string_equal(passwd_entry_field(&e, "port"), "143");
	/* the extra fields are the rest of the line, ':' included */
	assert_string_equal(passwd_entry_field(&e, "userdb_mail"), "maildir:~/Mail");
	assert_null(passwd_entry_field(&e, "hos"));
	assert_null(passwd_entry_field(&e, "nologin"));
	passwd_entry_clear(&e);
}

static void test_short_lines(void **state)
{
	(void)state;
	struct passwd_entry e;
	const char *error = NULL;

	/* no scheme: the default one; lower-case scheme names are upper-cased */
	assert_int_equal(parse("bob:xyHASH", &e, &error), 1);
	assert_string_equal(e.scheme, "CRYPT");
	assert_string_equal(e.password, "xyHASH");
	assert_false(e.have_uid);
	assert_string_equal(e.home, "");
	assert_int_equal(e.extra_count, 0);
	passwd_entry_clear(&e);

	assert_int_equal(passwd_parse_line("bob:pw", 6, "PLAIN", &e, &error), 1);
	assert_string_equal(e.scheme, "PLAIN");
	passwd_entry_clear(&e);

	assert_int_equal(parse("carol:{plain}secret:5:6\r", &e, &error), 1);
	assert_string_equal(e.scheme, "PLAIN");
	assert_string_equal(e.password, "secret");
	assert_int_equal(e.uid, 5);
	assert_int_equal(e.gid, 6);
	passwd_entry_clear(&e);

	/* empty password: no scheme, the user cannot log in */
	assert_int_equal(parse("dave::1:2::/home/d", &e, &error), 1);
	assert_null(e.scheme);
	assert_null(e.password);
	assert_string_equal(e.home, "/home/d");
	passwd_entry_clear(&e);

	assert_int_equal(parse("erin", &e, &error), 1);
	assert_null(e.scheme);
	passwd_entry_clear(&e);

	/* {PLAIN} with an empty password is a password (the empty one) */
	assert_int_equal(parse("fred:{PLAIN}", &e, &error), 1);
	assert_string_equal(e.scheme, "PLAIN");
	assert_string_equal(e.password, "");
	passwd_entry_clear(&e);

	/* empty extra field tokens are skipped; bare keys kept */
	assert_int_equal(parse("g:{PLAIN}x:1:1::/h::  nologin  reason=Moved", &e, &error), 1);
	assert_int_equal(e.extra_count, 2);
	assert_string_equal(passwd_entry_field(&e, "nologin"), "");
	assert_string_equal(passwd_entry_field(&e, "reason"), "Moved");
	passwd_entry_clear(&e);

	assert_int_equal(parse("h:{PLAIN}x:4294967294:0", &e, &error), 1);
	assert_int_equal(e.uid, 4294967294u);
	assert_int_equal(e.gid, 0);
	passwd_entry_clear(&e);
}

static void test_skipped(void **state)
{
	(void)state;
	struct passwd_entry e;
	const char *error = NULL;
	assert_int_equal(parse("", &e, &error), 0);
	assert_int_equal(parse("   ", &e, &error), 0);
	assert_int_equal(parse("\r", &e, &error), 0);
	assert_int_equal(parse("# comment:{PLAIN}x", &e, &error), 0);
	assert_int_equal(parse("  # indented comment", &e, &error), 0);
}

static void test_bad_lines(void **state)
{
	(void)state;
	static const struct {
		const char *line;
		const char *error;
	} bad[] = {
		{ ":{PLAIN}x", "empty user name" },
		{ "a b:{PLAIN}x", "space in the user name" },
		{ "a:{PLAINx", "'{' without '}' in the password field" },
		{ "a:{}x", "invalid password scheme name" },
		{ "a:{SHA 512}x", "invalid password scheme name" },
		{ "a:{AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA}x", "invalid password scheme name" },
		{ "a:{PLAIN}x:10x:1", "invalid uid (must be a number)" },
		{ "a:{PLAIN}x:-1:1", "invalid uid (must be a number)" },
		{ "a:{PLAIN}x:4294967295:1", "invalid uid (must be a number)" },
		{ "a:{PLAIN}x:12345678901:1", "invalid uid (must be a number)" },
		{ "a:{PLAIN}x:1:g", "invalid gid (must be a number)" },
		{ "a:{PLAIN}x:1:1::/h::=v", "extra field without a name" },
		{ "a:{PLAIN}x:1:1::/h::k!=v", "invalid character in an extra field name" },
		{ "a:{PLAIN}x\t:1:1", "control character in the line" },
		{ "a:{PLAIN}x:1:1\x7f", "control character in the line" },
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct passwd_entry e;
		const char *error = NULL;
		if (parse(bad[i].line, &e, &error) != -1)
			fail_msg("accepted: %s", bad[i].line);
		assert_string_equal(error, bad[i].error);
	}
	/* NUL inside the line */
	struct passwd_entry e;
	const char *error = NULL;
	assert_int_equal(passwd_parse_line("a:{PLAIN}x\0y", 12, "CRYPT", &e, &error), -1);
	assert_string_equal(error, "control character in the line");
	/* too long a user name */
	char line[400];
	memset(line, 'u', 256);
	strcpy(line + 256, ":{PLAIN}x");
	assert_int_equal(parse(line, &e, &error), -1);
	assert_string_equal(error, "user name too long");
	/* too many extra fields */
	char big[4096] = "a:{PLAIN}x:1:1::/h::";
	for (int i = 0; i < 257; i++)
		strcat(big, "k ");
	assert_int_equal(parse(big, &e, &error), -1);
	assert_string_equal(error, "too many extra fields");
	/* an extra field name is bounded like the user name (fuzz_auth_passwd
	   found names of any length accepted): PASSWD_MAX_KEY bytes pass, one
	   more does not, with or without a value */
	char kline[512] = "a:{PLAIN}x:1:1::/h::";
	size_t at = strlen(kline);
	memset(kline + at, 'k', PASSWD_MAX_KEY);
	strcpy(kline + at + PASSWD_MAX_KEY, "=v");
	assert_int_equal(parse(kline, &e, &error), 1);
	assert_int_equal(e.extra_count, 1);
	char key[PASSWD_MAX_KEY + 1];
	memcpy(key, kline + at, PASSWD_MAX_KEY);
	key[PASSWD_MAX_KEY] = '\0';
	assert_string_equal(passwd_entry_field(&e, key), "v");
	passwd_entry_clear(&e);
	memset(kline + at, 'k', PASSWD_MAX_KEY + 1);
	strcpy(kline + at + PASSWD_MAX_KEY + 1, "=v");
	assert_int_equal(parse(kline, &e, &error), -1);
	assert_string_equal(error, "extra field name too long");
	kline[at + PASSWD_MAX_KEY + 1] = '\0';
	assert_int_equal(parse(kline, &e, &error), -1);
	assert_string_equal(error, "extra field name too long");
}

static void test_args(void **state)
{
	(void)state;
	struct passwd_args a;
	char *error = NULL;
	assert_int_equal(passwd_args_parse("/etc/users", &a, &error), 0);
	assert_string_equal(a.path, "/etc/users");
	assert_string_equal(a.default_scheme, "CRYPT");
	assert_false(a.lowercase);
	passwd_args_clear(&a);

	assert_int_equal(passwd_args_parse(" scheme=sha512-crypt  username_format=%Lu /x/y ", &a, &error), 0);
	assert_string_equal(a.path, "/x/y");
	assert_string_equal(a.default_scheme, "SHA512-CRYPT");
	assert_true(a.lowercase);
	passwd_args_clear(&a);

	assert_int_equal(passwd_args_parse("username_format=%u users", &a, &error), 0);
	assert_string_equal(a.path, "users");
	assert_null(a.username_format);
	passwd_args_clear(&a);

	/* Dovecot's one-file-per-domain form: the key is a template */
	assert_int_equal(passwd_args_parse("username_format=%n /etc/users.%d", &a, &error), 0);
	assert_string_equal(a.path, "/etc/users.%d");
	assert_string_equal(a.username_format, "%n");
	passwd_args_clear(&a);

	static const char *const bad[] = {
		"", "scheme=PLAIN", "scheme=NOPE /x", "username_format=%n", "foo=bar /x", "/x /y",
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		error = NULL;
		if (passwd_args_parse(bad[i], &a, &error) != -1)
			fail_msg("accepted args: %s", bad[i]);
		assert_non_null(error);
		rg_free(error);
	}
}

static const char sample[] =
	"# users\n"
	"\n"
	"alice:{PLAIN}pw1:1000:1000::/home/alice\n"
	"Bob:{PLAIN}pw2:1001:1001::/home/bob\r\n"
	"alice:{PLAIN}second:1:1\n"
	"carol:{NOSUCH}x:1:1\n"
	"dave:{PLAIN}pw4"; /* no final newline */

static void test_file_parse(void **state)
{
	(void)state;
	struct passwd_args a = { .path = NULL, .default_scheme = (char *)"CRYPT" };
	char *error = NULL;
	struct passwd_file *pf = passwd_file_parse("users", sample, strlen(sample), &a, &error);
	assert_non_null(pf);
	assert_int_equal(passwd_file_count(pf), 5);
	const struct passwd_entry *e = passwd_file_lookup(pf, "alice");
	assert_non_null(e);
	assert_string_equal(e->password, "pw1"); /* the first line wins */
	assert_non_null(passwd_file_lookup(pf, "Bob"));
	assert_null(passwd_file_lookup(pf, "bob")); /* %u: exact */
	assert_non_null(passwd_file_lookup(pf, "carol"));
	assert_non_null(passwd_file_lookup(pf, "dave"));
	assert_null(passwd_file_lookup(pf, "eve"));
	assert_null(passwd_file_lookup(pf, ""));
	passwd_file_free(pf);

	/* %Lu lower-cases the name the client gave */
	a.lowercase = true;
	pf = passwd_file_parse("users", sample, strlen(sample), &a, &error);
	assert_non_null(passwd_file_lookup(pf, "ALICE"));
	passwd_file_free(pf);

	/* errors name the file and line */
	static const char badtext[] = "a:{PLAIN}x\n# c\nb:{PLAIN}y:oops\n";
	a.lowercase = false;
	pf = passwd_file_parse("users", badtext, strlen(badtext), &a, &error);
	assert_null(pf);
	assert_string_equal(error, "users:3: invalid uid (must be a number)");
	rg_free(error);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_file_reload(void **state)
{
	(void)state;
	char dir[] = "/tmp/rgauth-passwd-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[128];
	snprintf(path, sizeof(path), "%s/users", dir);
	write_file(path, "a:{PLAIN}one:1:1\n");

	struct passwd_args a;
	char *error = NULL;
	char args[160];
	snprintf(args, sizeof(args), "scheme=PLAIN %s", path);
	assert_int_equal(passwd_args_parse(args, &a, &error), 0);
	struct passwd_file *pf = passwd_file_load(&a, &error);
	assert_non_null(pf);
	assert_string_equal(passwd_file_lookup(pf, "a")->password, "one");

	/* a new file (new inode, size) is noticed, but only once a second */
	write_file(path, "a:{PLAIN}two:1:1\nb:three\n");
	assert_int_equal(passwd_file_refresh(pf, 1000), 0);
	assert_string_equal(passwd_file_lookup(pf, "a")->password, "two");
	assert_string_equal(passwd_file_lookup(pf, "b")->scheme, "PLAIN");
	write_file(path, "a:{PLAIN}four:1:1\n");
	assert_int_equal(passwd_file_refresh(pf, 1500), 0);
	assert_string_equal(passwd_file_lookup(pf, "a")->password, "two");
	assert_int_equal(passwd_file_refresh(pf, 2000), 0);
	assert_string_equal(passwd_file_lookup(pf, "a")->password, "four");

	/* a broken edit keeps the old contents */
	write_file(path, "a:{PLAIN}five:x:1\n");
	assert_int_equal(passwd_file_refresh(pf, 3000), 0);
	assert_string_equal(passwd_file_lookup(pf, "a")->password, "four");

	/* a vanished file is a temporary failure until it is back */
	unlink(path);
	assert_int_equal(passwd_file_refresh(pf, 4000), -1);
	assert_int_equal(passwd_file_refresh(pf, 4100), -1);
	write_file(path, "a:{PLAIN}six:1:1\n");
	assert_int_equal(passwd_file_refresh(pf, 5000), 0);
	assert_string_equal(passwd_file_lookup(pf, "a")->password, "six");

	passwd_file_free(pf);
	passwd_args_clear(&a);

	/* load errors */
	assert_int_equal(passwd_args_parse("/nonexistent/users", &a, &error), 0);
	assert_null(passwd_file_load(&a, &error));
	assert_string_equal(error, "passwd-file /nonexistent/users: No such file or directory");
	rg_free(error);
	passwd_args_clear(&a);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_line),
		cmocka_unit_test(test_short_lines),
		cmocka_unit_test(test_skipped),
		cmocka_unit_test(test_bad_lines),
		cmocka_unit_test(test_args),
		cmocka_unit_test(test_file_parse),
		cmocka_unit_test(test_file_reload),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
