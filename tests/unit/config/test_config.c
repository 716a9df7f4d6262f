/* Tests for the config syntax parser (lib/config.h): tree shape, line numbers
 * across includes, every error branch with its exact "file:line: reason",
 * and the unit helpers. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/alloc.h"
#include "lib/config.h"

static char tmpdir[64];

static int setup(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/rg-config-XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
	char cmd[128];
	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* tmpdir/name with the content; returns the path (static buffer rotation) */
static const char *write_file(const char *name, const char *content)
{
	static char paths[4][512];
	static int next;
	char *path = paths[next++ % 4];
	FILE *f;

	snprintf(path, 512, "%s/%s", tmpdir, name);
	char *slash = strrchr(path, '/');
	*slash = '\0';
	mkdir(path, 0700);
	*slash = '/';
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(content, f);
	fclose(f);
	return path;
}

static void dump_node(const struct config_node *n, FILE *out)
{
	for (; n != NULL; n = n->next) {
		const char *base = strrchr(n->file, '/');
		base = base != NULL ? base + 1 : n->file;
		if (n->type == CONFIG_NODE_SETTING) {
			fprintf(out, "%s:%u:%s=[%s]", base, n->line, n->key, n->value);
			if (n->value_file != NULL)
				fprintf(out, "<%s", strrchr(n->value_file, '/') + 1);
			fputc('\n', out);
		} else {
			fprintf(out, "%s:%u:%s [%s] {\n", base, n->line, n->key, n->value);
			dump_node(n->children, out);
			fprintf(out, "}\n");
		}
	}
}

/* the tree as text, one node a line: "file:line:key=[value]" */
static char *dump(const struct config_node *root)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	dump_node(root->children, out);
	fclose(out);
	return text;
}

static const char *var_default(const char *name, void *context)
{
	(void)context;
	return strcmp(name, "default_client_limit") == 0 ? "1000" : NULL;
}

static const struct config_params params = { .default_value = var_default };

static void assert_string_parses(const char *text, const char *expected)
{
	struct config_node *root;
	char *error;

	if (config_parse_string("t.conf", text, strlen(text), &params, &root, &error) < 0)
		fail_msg("unexpected error: %s", error);
	assert_null(error);
	char *got = dump(root);
	assert_string_equal(got, expected);
	free(got);
	config_free(root);
}

static void assert_string_fails(const char *text, const char *expected)
{
	struct config_node *root = (void *)1;
	char *error = NULL;

	assert_int_equal(config_parse_string("t.conf", text, strlen(text), &params, &root, &error), -1);
	assert_null(root);
	assert_non_null(error);
	assert_string_equal(error, expected);
	rg_free(error);
}

static void assert_file_fails(const char *path, const char *expected)
{
	struct config_node *root;
	char *error = NULL;

	assert_int_equal(config_parse_file(path, &params, &root, &error), -1);
	assert_non_null(error);
	assert_string_equal(error, expected);
	rg_free(error);
}

static void test_syntax(void **state)
{
	(void)state;
	assert_string_parses(
		"# comment\n"
		"  \t# indented comment\n"
		"\n"
		"a = 1\n"
		"b=2\n"
		"empty =\n"
		"spaces =   x  y   \t\r\n"
		"c = value # comment\n"
		"d = value#not-comment\n"
		"e = \"quoted # not comment \\\" \\\\ end\" # comment\n"
		"f = \"  padded  \"\n"
		"g = it's # comment\n"
		"h = long \\\n"
		"    continued \\\n"
		"\n"
		"    # comment inside\n"
		"    line\n"
		"i = $a and $b, $5 $ $$a\n"
		"j = \"$a\"\n"
		"k = $default_client_limit\n"
		"a = 3\n"
		"l = $a\n",
		"t.conf:4:a=[1]\n"
		"t.conf:5:b=[2]\n"
		"t.conf:6:empty=[]\n"
		"t.conf:7:spaces=[x  y]\n"
		"t.conf:8:c=[value]\n"
		"t.conf:9:d=[value#not-comment]\n"
		"t.conf:10:e=[quoted # not comment \" \\ end]\n"
		"t.conf:11:f=[  padded  ]\n"
		"t.conf:12:g=[it's]\n"
		"t.conf:13:h=[long continued line]\n"
		"t.conf:18:i=[1 and 2, $5 $ $1]\n"
		"t.conf:19:j=[$a]\n"
		"t.conf:20:k=[1000]\n"
		"t.conf:21:a=[3]\n"
		"t.conf:22:l=[3]\n");
}

static void test_sections(void **state)
{
	(void)state;
	assert_string_parses(
		"x = 1\n"
		"service imap-login {\n"
		"  inet_listener imap {\n"
		"    port = 143\n"
		"  }\n"
		"  client_limit = $x\n"
		"}\n"
		"passdb{\n"
		"}\n"
		"named \"a b\" {  # comment\n"
		"  nested{\n"
		"  }\n"
		"}\n"
		"last = y",
		"t.conf:1:x=[1]\n"
		"t.conf:2:service [imap-login] {\n"
		"t.conf:3:inet_listener [imap] {\n"
		"t.conf:4:port=[143]\n"
		"}\n"
		"t.conf:6:client_limit=[1]\n"
		"}\n"
		"t.conf:8:passdb [] {\n"
		"}\n"
		"t.conf:10:named [a b] {\n"
		"t.conf:11:nested [] {\n"
		"}\n"
		"}\n"
		"t.conf:14:last=[y]\n");
}

/* a variable set inside a section is not global */
static void test_section_vars_not_global(void **state)
{
	(void)state;
	assert_string_fails("s {\n  v = 1\n}\nw = $v\n", "t.conf:4: unknown variable '$v'");
}

static void test_syntax_errors(void **state)
{
	(void)state;
	assert_string_fails("a = 1\n}\n", "t.conf:2: unexpected '}'");
	assert_string_fails("a = 1\ns {\n  t x {\n  }\n", "t.conf:2: missing '}'");
	assert_string_fails("s {\n} x\n", "t.conf:2: unexpected text after '}'");
	assert_string_fails("\nfoo\n", "t.conf:2: expected '=' or '{' after 'foo'");
	assert_string_fails("service imap\n", "t.conf:1: expected '=' or '{' after 'service'");
	assert_string_fails("= x\n", "t.conf:1: expected 'key = value' or 'section {'");
	assert_string_fails("\"a\" = x\n", "t.conf:1: expected 'key = value' or 'section {'");
	assert_string_fails("se%vice = 1\n", "t.conf:1: invalid character in name 'se%'");
	assert_string_fails("a = \"abc\n", "t.conf:1: missing closing '\"'");
	assert_string_fails("a = \"abc\\\"\n", "t.conf:1: missing closing '\"'");
	assert_string_fails("s \"abc {\n}\n", "t.conf:1: missing closing '\"'");
	assert_string_fails("!include \"abc\n", "t.conf:1: missing closing '\"'");
	assert_string_fails("a = \"abc\" def\n", "t.conf:1: unexpected text after '\"...\"'");
	assert_string_fails("!include \"x\" y\n", "t.conf:1: unexpected text after '\"...\"'");
	assert_string_fails("s {x\n}\n", "t.conf:1: unexpected text after '{'");
	assert_string_fails("s name x {\n}\n", "t.conf:1: expected '=' or '{' after 's'");
	assert_string_fails("!foo bar\n", "t.conf:1: unknown directive '!foo'");
	assert_string_fails("!include\n", "t.conf:1: !include: missing file name");
	assert_string_fails("!include_try \"\"\n", "t.conf:1: !include: missing file name");
	assert_string_fails("a = 1\nb = $nope\n", "t.conf:2: unknown variable '$nope'");
	assert_string_fails("a = <\n", "t.conf:1: missing file name after '<'");
	/* a NUL byte: fed with the length, as strlen() would stop there */
	struct config_node *root;
	char *error;
	assert_int_equal(config_parse_string("t.conf", "a = 1\nb = x\0y\n", 13, NULL, &root, &error), -1);
	assert_string_equal(error, "t.conf:2: invalid NUL byte");
	rg_free(error);
}

static void test_nesting_limit(void **state)
{
	char text[1024] = "", expect[1024] = "";
	(void)state;

	/* exactly the maximum depth is fine */
	for (int i = 0; i < CONFIG_MAX_SECTION_DEPTH; i++) {
		strcat(text, "s {\n");
		sprintf(expect + strlen(expect), "t.conf:%d:s [] {\n", i + 1);
	}
	for (int i = 0; i < CONFIG_MAX_SECTION_DEPTH; i++) {
		strcat(text, "}\n");
		strcat(expect, "}\n");
	}
	assert_string_parses(text, expect);
}

static void test_limits(void **state)
{
	char *text;
	size_t n = CONFIG_MAX_LINE + 10;
	(void)state;

	/* nesting one deeper than allowed */
	char deep[1024] = "";
	for (int i = 0; i <= CONFIG_MAX_SECTION_DEPTH; i++)
		strcat(deep, "s {\n");
	char expect[128];
	snprintf(expect, sizeof(expect), "t.conf:%d: sections nested too deeply (max %d)",
		 CONFIG_MAX_SECTION_DEPTH + 1, CONFIG_MAX_SECTION_DEPTH);
	assert_string_fails(deep, expect);

	/* a physical line over the limit */
	text = rg_malloc(n + 4096);
	strcpy(text, "a = 1\nb = ");
	memset(text + 10, 'x', n);
	text[10 + n] = '\0';
	assert_string_fails(text, "t.conf:2: line too long (max 65536 bytes)");

	/* continued lines, each short, together over the limit */
	size_t pos = 0;
	pos += (size_t)sprintf(text + pos, "a = 1\nb = ");
	while (pos < n) {
		memset(text + pos, 'y', 1000);
		pos += 1000;
		pos += (size_t)sprintf(text + pos, " \\\n");
	}
	strcpy(text + pos, "end\n");
	assert_string_fails(text, "t.conf:2: line too long (max 65536 bytes)");
	rg_free(text);

	/* expansion that doubles until it is too long */
	char exp[4096];
	pos = (size_t)sprintf(exp, "v0 = %0100d\n", 0);
	for (int i = 1; i < 20; i++)
		pos += (size_t)sprintf(exp + pos, "v%d = $v%d$v%d\n", i, i - 1, i - 1);
	assert_string_fails(exp, "t.conf:11: value too long after expanding variables");

	/* text over the file limit */
	struct config_node *root;
	char *error;
	assert_int_equal(config_parse_string("t.conf", "", (size_t)CONFIG_MAX_FILE + 1, NULL,
					     &root, &error), -1);
	assert_string_equal(error, "t.conf: File too large");
	rg_free(error);
}

static void test_no_files_flag(void **state)
{
	static const struct config_params no_files = { .flags = CONFIG_FLAG_NO_FILES };
	struct config_node *root;
	char *error;
	(void)state;

	assert_int_equal(config_parse_string("t.conf", "!include x.conf\n", 16, &no_files,
					     &root, &error), -1);
	assert_string_equal(error, "t.conf:1: !include: reading files is disabled here");
	rg_free(error);
	assert_int_equal(config_parse_string("t.conf", "a = 1\nb = </etc/passwd\n", 22, &no_files,
					     &root, &error), -1);
	assert_string_equal(error, "t.conf:2: </etc/passwd: reading files is disabled here");
	rg_free(error);
	/* without a default_value function, $name of an unset setting fails */
	assert_int_equal(config_parse_string("t.conf", "a = $b\n", 7, &no_files, &root, &error), -1);
	assert_string_equal(error, "t.conf:1: unknown variable '$b'");
	rg_free(error);
}

static void test_includes(void **state)
{
	struct config_node *root;
	char *error;
	(void)state;

	write_file("conf.d/20-b.conf", "b = 2\nin_b = $a\n");
	write_file("conf.d/10-a.conf", "a = 1\n\ns {\n  !include ../inner.inc\n}\n");
	write_file("conf.d/ignored.txt", "nope = 1\n");
	write_file("inner.inc", "inner = yes\n");
	write_file("cert.pem", "line1\nline2\n");
	const char *main_path = write_file("main.conf",
		"first = 0\n"
		"!include conf.d/*.conf\n"
		"!include_try missing.conf\n"
		"!include_try nothing/*.conf\n"
		"cert = <cert.pem\n"
		"cert2 = < cert.pem\n"
		"last = $b\n");

	assert_int_equal(config_parse_file(main_path, &params, &root, &error), 0);
	char *got = dump(root);
	assert_string_equal(got,
		"main.conf:1:first=[0]\n"
		"10-a.conf:1:a=[1]\n"
		"10-a.conf:3:s [] {\n"
		"inner.inc:1:inner=[yes]\n"
		"}\n"
		"20-b.conf:1:b=[2]\n"
		"20-b.conf:2:in_b=[1]\n"
		"main.conf:5:cert=[line1\nline2\n]<cert.pem\n"
		"main.conf:6:cert2=[line1\nline2\n]<cert.pem\n"
		"main.conf:7:last=[2]\n");
	free(got);
	assert_string_equal(config_find(root, "a")->file + strlen(tmpdir), "/conf.d/10-a.conf");
	assert_null(config_find(root, "inner"));
	config_free(root);
}

static void test_include_errors(void **state)
{
	char expect[1024], path[600];
	(void)state;

	const char *p = write_file("e1.conf", "a = 1\n!include none.conf\n");
	snprintf(expect, sizeof(expect), "%s:2: !include: %s/none.conf: No such file or directory", p, tmpdir);
	assert_file_fails(p, expect);

	p = write_file("e2.conf", "!include nodir/*.conf\n");
	snprintf(expect, sizeof(expect), "%s:1: !include: %s/nodir/*.conf: No matches", p, tmpdir);
	assert_file_fails(p, expect);

	/* a loop through two files */
	write_file("loop-b.conf", "b = 1\n!include loop-a.conf\n");
	p = write_file("loop-a.conf", "a = 1\n!include loop-b.conf\n");
	snprintf(path, sizeof(path), "%s/loop-b.conf", tmpdir);
	snprintf(expect, sizeof(expect), "%s:2: !include: %s/loop-a.conf: include loop", path, tmpdir);
	assert_file_fails(p, expect);

	/* an error deep in an included file names that file and line */
	write_file("sub/bad.conf", "ok = 1\n\n\nbad line\n");
	p = write_file("e3.conf", "x = 1\n!include sub/bad.conf\n");
	snprintf(expect, sizeof(expect), "%s/sub/bad.conf:4: expected '=' or '{' after 'bad'", tmpdir);
	assert_file_fails(p, expect);

	/* sections must close in the file that opened them */
	write_file("open.inc", "a = 1\ns {\n");
	p = write_file("e4.conf", "!include open.inc\n}\n");
	snprintf(expect, sizeof(expect), "%s/open.inc:2: missing '}'", tmpdir);
	assert_file_fails(p, expect);
	write_file("close.inc", "a = 1\n}\n");
	p = write_file("e5.conf", "s {\n!include close.inc\n}\n");
	snprintf(expect, sizeof(expect), "%s/close.inc:2: unexpected '}'", tmpdir);
	assert_file_fails(p, expect);

	/* a directory */
	snprintf(path, sizeof(path), "%s/dir.d", tmpdir);
	mkdir(path, 0700);
	p = write_file("e6.conf", "!include dir.d\n");
	snprintf(expect, sizeof(expect), "%s:1: !include: %s/dir.d: Is a directory", p, tmpdir);
	assert_file_fails(p, expect);
	/* include_try ignores only a missing file */
	p = write_file("e6b.conf", "!include_try dir.d\n");
	snprintf(expect, sizeof(expect), "%s:1: !include: %s/dir.d: Is a directory", p, tmpdir);
	assert_file_fails(p, expect);

	/* a <file that is missing */
	p = write_file("e7.conf", "a = 1\nb = <nope.pem\n");
	snprintf(expect, sizeof(expect), "%s:2: <%s/nope.pem: No such file or directory", p, tmpdir);
	assert_file_fails(p, expect);

	/* the main file missing */
	snprintf(path, sizeof(path), "%s/absent.conf", tmpdir);
	snprintf(expect, sizeof(expect), "%s: No such file or directory", path);
	assert_file_fails(path, expect);

	/* a file over the size limit (sparse) */
	snprintf(path, sizeof(path), "%s/big.conf", tmpdir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(ftruncate(fileno(f), (off_t)CONFIG_MAX_FILE + 1), 0);
	fclose(f);
	p = write_file("e8.conf", "\n!include big.conf\n");
	snprintf(expect, sizeof(expect), "%s:2: !include: %s/big.conf: File too large", p, tmpdir);
	assert_file_fails(p, expect);
	p = write_file("e9.conf", "k = <big.conf\n");
	snprintf(expect, sizeof(expect), "%s:1: <%s/big.conf: File too large", p, tmpdir);
	assert_file_fails(p, expect);
}

static void test_include_depth(void **state)
{
	char name[32], content[64], expect[1024];
	(void)state;

	/* inc0 includes inc1 ... each one deeper; 20 levels below the main
	   file are allowed, the 21st is not */
	for (int i = 0; i <= CONFIG_MAX_INCLUDE_DEPTH + 1; i++) {
		snprintf(name, sizeof(name), "inc%d.conf", i);
		snprintf(content, sizeof(content), "v%d = 1\n!include_try inc%d.conf\n", i, i + 1);
		write_file(name, content);
	}
	snprintf(name, sizeof(name), "inc%d.conf", CONFIG_MAX_INCLUDE_DEPTH + 1);
	write_file(name, "last = 1\n");
	char path[600];
	snprintf(path, sizeof(path), "%s/inc0.conf", tmpdir);
	snprintf(expect, sizeof(expect),
		 "%s/inc%d.conf:2: !include: %s/inc%d.conf: includes nested too deeply (max %d)",
		 tmpdir, CONFIG_MAX_INCLUDE_DEPTH, tmpdir, CONFIG_MAX_INCLUDE_DEPTH + 1,
		 CONFIG_MAX_INCLUDE_DEPTH);
	assert_file_fails(path, expect);

	/* one level less is fine */
	snprintf(name, sizeof(name), "inc%d.conf", CONFIG_MAX_INCLUDE_DEPTH);
	write_file(name, "last = 1\n");
	struct config_node *root;
	char *error;
	assert_int_equal(config_parse_file(path, NULL, &root, &error), 0);
	assert_string_equal(config_find(root, "last")->value, "1");
	config_free(root);
}

static void test_sample_file(void **state)
{
	struct config_node *root;
	char *error;
	(void)state;

	assert_int_equal(config_parse_file(SAMPLES_DIR "/ringgate.conf", &params, &root, &error), 0);
	const struct config_node *n = config_find(root, "login_greeting");
	assert_string_equal(n->value, "Mail # server \"ready\"");
	assert_int_equal(n->line, 14);
	assert_string_equal(config_find(root, "ssl_cert")->value,
			    "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n");
	config_free(root);
}

static void test_uint(void **state)
{
	unsigned v;
	const char *err;
	(void)state;

	assert_int_equal(config_parse_uint("0", &v, &err), 0);
	assert_int_equal(v, 0);
	assert_int_equal(config_parse_uint("4294967295", &v, &err), 0);
	assert_int_equal(v, 4294967295u);
	assert_int_equal(config_parse_uint("4294967296", &v, &err), -1);
	assert_string_equal(err, "number too large");
	assert_int_equal(config_parse_uint("99999999999999999999999", &v, &err), -1);
	assert_string_equal(err, "number too large");
	assert_int_equal(config_parse_uint("", &v, &err), -1);
	assert_string_equal(err, "not a number");
	assert_int_equal(config_parse_uint("-1", &v, &err), -1);
	assert_int_equal(config_parse_uint("12x", &v, &err), -1);
	assert_string_equal(err, "not a number");
	assert_int_equal(config_parse_uint(" 1", &v, &err), -1);
}

static void test_size(void **state)
{
	static const struct { const char *s; uint64_t v; } ok[] = {
		{ "0", 0 }, { "123", 123 }, { "100 B", 100 }, { "100b", 100 },
		{ "512k", 512 * 1024 }, { "512K", 512 * 1024 }, { "10 kB", 10 * 1024 },
		{ "64M", 64ULL << 20 }, { "64mb", 64ULL << 20 }, { "1G", 1ULL << 30 },
		{ "2 T", 2ULL << 40 }, { "18446744073709551615", UINT64_MAX },
		{ "16777215T", 16777215ULL << 40 },
	};
	static const struct { const char *s; const char *err; } bad[] = {
		{ "", "not a number" }, { "M", "not a number" }, { "-1", "not a number" },
		{ "1X", "invalid size unit (use B, k, M, G or T)" },
		{ "1 MBB", "invalid size unit (use B, k, M, G or T)" },
		{ "1BB", "invalid size unit (use B, k, M, G or T)" },
		{ "1 M x", "invalid size unit (use B, k, M, G or T)" },
		{ "16777216T", "size too large" },
		{ "18446744073709551616", "number too large" },
	};
	uint64_t v;
	const char *err;
	(void)state;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (config_parse_size(ok[i].s, &v, &err) < 0)
			fail_msg("'%s': %s", ok[i].s, err);
		assert_int_equal(v, ok[i].v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (config_parse_size(bad[i].s, &v, &err) == 0)
			fail_msg("'%s' accepted", bad[i].s);
		assert_string_equal(err, bad[i].err);
	}
}

static void test_time(void **state)
{
	static const struct { const char *s; uint64_t ms; } ok[] = {
		{ "0", 0 }, { "30", 30000 }, { "1s", 1000 }, { "30 secs", 30000 },
		{ "1 second", 1000 }, { "2 mins", 120000 }, { "1m", 60000 }, { "5 MINUTES", 300000 },
		{ "500 msecs", 500 }, { "7ms", 7 }, { "1 millisecond", 1 },
		{ "1 hour", 3600000 }, { "2h", 7200000 }, { "3 days", 259200000 },
		{ "1d", 86400000 }, { "1 week", 604800000 }, { "2 weeks", 1209600000 },
	};
	static const struct { const char *s; const char *err; } bad[] = {
		{ "", "not a number" }, { "days", "not a number" }, { "1.5s", "invalid time unit (use msecs, secs, mins, hours, days or weeks)" },
		{ "1 fortnight", "invalid time unit (use msecs, secs, mins, hours, days or weeks)" },
		{ "1 secs x", "invalid time unit (use msecs, secs, mins, hours, days or weeks)" },
		{ "30500000000000000 weeks", "time too large" },
	};
	uint64_t ms;
	unsigned secs;
	const char *err;
	(void)state;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (config_parse_time_msecs(ok[i].s, &ms, &err) < 0)
			fail_msg("'%s': %s", ok[i].s, err);
		assert_int_equal(ms, ok[i].ms);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (config_parse_time_msecs(bad[i].s, &ms, &err) == 0)
			fail_msg("'%s' accepted", bad[i].s);
		assert_string_equal(err, bad[i].err);
	}
	assert_int_equal(config_parse_time("2 mins", &secs, &err), 0);
	assert_int_equal(secs, 120);
	assert_int_equal(config_parse_time("2000 msecs", &secs, &err), 0);
	assert_int_equal(secs, 2);
	assert_int_equal(config_parse_time("500 msecs", &secs, &err), -1);
	assert_string_equal(err, "milliseconds not supported for this setting");
	assert_int_equal(config_parse_time("100000 weeks", &secs, &err), -1);
	assert_string_equal(err, "time too large");
	assert_int_equal(config_parse_time("x", &secs, &err), -1);
	assert_string_equal(err, "not a number");
}

static void test_bool(void **state)
{
	bool b = false;
	const char *err;
	(void)state;

	assert_int_equal(config_parse_bool("yes", &b, &err), 0);
	assert_true(b);
	assert_int_equal(config_parse_bool("no", &b, &err), 0);
	assert_false(b);
	assert_int_equal(config_parse_bool("YES", &b, &err), 0);
	assert_true(b);
	assert_int_equal(config_parse_bool("true", &b, &err), -1);
	assert_string_equal(err, "must be 'yes' or 'no'");
	assert_int_equal(config_parse_bool("", &b, &err), -1);
	assert_int_equal(config_parse_bool("1", &b, &err), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_syntax),
		cmocka_unit_test(test_sections),
		cmocka_unit_test(test_section_vars_not_global),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_nesting_limit),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_no_files_flag),
		cmocka_unit_test(test_includes),
		cmocka_unit_test(test_include_errors),
		cmocka_unit_test(test_include_depth),
		cmocka_unit_test(test_sample_file),
		cmocka_unit_test(test_uint),
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_bool),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
