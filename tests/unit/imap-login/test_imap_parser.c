/* Unit tests for the pre-auth IMAP command parser: every sample is fed whole,
 * at every split point and one byte at a time (each chunk in its own exact-size
 * allocation so ASan sees any read past it), and must give the same events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "login/imap-parser.h"
#include "login/login-proto.h"

struct transcript {
	char *buf;
	size_t len, cap;
};

static void tr_add(struct transcript *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void tr_add(struct transcript *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (t->len + (size_t)n + 1 > t->cap) {
		t->cap = (t->len + (size_t)n + 1) * 2;
		t->buf = realloc(t->buf, t->cap);
		assert_non_null(t->buf);
	}
	va_start(ap, fmt);
	vsnprintf(t->buf + t->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	t->len += (size_t)n;
}

static void tr_bytes(struct transcript *t, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c >= 0x7f || c == '\\')
			tr_add(t, "\\x%02x", c);
		else
			tr_add(t, "%c", c);
	}
}

static void record_command(struct imap_parser *p, struct transcript *t)
{
	unsigned int count;
	const struct imap_arg *args = imap_parser_args(p, &count);
	tr_add(t, "OK %s %s", imap_parser_tag(p), imap_parser_name(p));
	for (unsigned int i = 0; i < count; i++) {
		static const char types[] = { 'A', 'Q', 'L', 'N', '(' };
		tr_add(t, " %c", types[args[i].type]);
		if (args[i].type == IMAP_ARG_LIST) {
			tr_add(t, "%u", args[i].list_count);
			continue;
		}
		/* args are NUL-terminated */
		assert_int_equal(args[i].str[args[i].len], '\0');
		tr_add(t, "%zu:", args[i].len);
		tr_bytes(t, args[i].str, args[i].len);
	}
	tr_add(t, "\n");
}

/* feed one chunk; record every event */
static void feed(struct imap_parser *p, const uint8_t *data, size_t len, struct transcript *t)
{
	uint8_t *copy = malloc(len > 0 ? len : 1);
	memcpy(copy, data, len);
	size_t pos = 0;
	while (pos < len) {
		size_t consumed;
		enum parse_result r = imap_parser_parse(p, copy + pos, len - pos, &consumed);
		assert_true(consumed > 0 && consumed <= len - pos);
		pos += consumed;
		bool cont = imap_parser_take_continuation(p);
		if (cont)
			tr_add(t, "CONT\n");
		if (r == PARSE_OK) {
			record_command(p, t);
			imap_parser_command_done(p);
		} else if (r == PARSE_ERROR) {
			bool fatal;
			const char *error = imap_parser_error(p, &fatal);
			const char *tag = imap_parser_tag(p);
			tr_add(t, "ERR %s %s%s\n", tag != NULL ? tag : "-", error,
			       fatal ? " (fatal)" : "");
			imap_parser_command_done(p);
		} else if (!cont) {
			assert_int_equal(pos, len);
		}
	}
	free(copy);
}

/* split == 0: whole; split == SIZE_MAX: byte by byte; else two chunks */
static char *run(const char *input, size_t len, size_t split, bool *idle_r)
{
	struct imap_parser p;
	struct transcript t = { 0 };
	imap_parser_init(&p);
	tr_add(&t, "%s", "");
	if (split == SIZE_MAX) {
		for (size_t i = 0; i < len; i++)
			feed(&p, (const uint8_t *)input + i, 1, &t);
	} else if (split == 0) {
		feed(&p, (const uint8_t *)input, len, &t);
	} else {
		feed(&p, (const uint8_t *)input, split, &t);
		feed(&p, (const uint8_t *)input + split, len - split, &t);
	}
	if (idle_r != NULL)
		*idle_r = imap_parser_idle(&p);
	imap_parser_deinit(&p);
	return t.buf;
}

static void check_len(const char *input, size_t len, const char *expected)
{
	bool idle;
	char *whole = run(input, len, 0, &idle);
	if (strcmp(whole, expected) != 0) {
		print_error("input: %.*s\nexpected:\n%s\ngot:\n%s\n", (int)len, input,
			    expected, whole);
		fail();
	}
	char *bytes = run(input, len, SIZE_MAX, NULL);
	assert_string_equal(bytes, expected);
	free(bytes);
	/* every split point, quadratic but cheap for these sizes */
	if (len < 2000) {
		for (size_t split = 1; split < len; split++) {
			char *got = run(input, len, split, NULL);
			if (strcmp(got, expected) != 0) {
				print_error("split at %zu of %.*s\nexpected:\n%s\ngot:\n%s\n",
					    split, (int)len, input, expected, got);
				fail();
			}
			free(got);
		}
	}
	free(whole);
}

#define check(input, expected) check_len(input, sizeof(input) - 1, expected)

static void test_valid(void **state)
{
	(void)state;
	check("a1 NOOP\r\n", "OK a1 NOOP\n");
	check("A capability\n", "OK A capability\n");
	check("a]1 NOOP\r\n", "OK a]1 NOOP\n");
	check("t LOGIN user pass\r\n", "OK t LOGIN A4:user A4:pass\n");
	check("t LOGIN  user   pass \r\n", "OK t LOGIN A4:user A4:pass\n");
	check("x LOGIN \"us\\\"er\" \"p\\\\ss\"\r\n",
	      "OK x LOGIN Q5:us\"er Q4:p\\x5css\n");
	check("x LOGIN \"\" \"j\xc3\xb6rg\"\r\n", "OK x LOGIN Q0: Q5:j\\xc3\\xb6rg\n");
	check("x LOGIN {4}\r\nuser {4}\r\npa\r\n\r\n",
	      "CONT\nCONT\nOK x LOGIN L4:user L4:pa\\x0d\\x0a\n");
	check("x LOGIN {4+}\r\nuser {0+}\r\n\r\n", "OK x LOGIN L4:user L0:\n");
	check("x LOGIN {0}\n abc\n", "CONT\nOK x LOGIN L0: A3:abc\n");
	check("a ID (\"name\" \"mutt\" \"version\" NIL)\r\n",
	      "OK a ID (4 Q4:name Q4:mutt Q7:version N3:NIL\n");
	check("a ID nil\r\n", "OK a ID N3:nil\n");
	check("a ID ()\r\n", "OK a ID (0\n");
	check("a ID (x y) z\r\n", "OK a ID (2 A1:x A1:y A1:z\n");
	check("a ID ({4+}\r\nname \"x\")\r\n", "OK a ID (2 L4:name Q1:x\n");
	check("a ID ( \"k\"  {1}\r\nv )\r\n", "CONT\nOK a ID (2 Q1:k L1:v\n");
	check("a AUTHENTICATE PLAIN AHVzZXIAcGFzcw==\r\n",
	      "OK a AUTHENTICATE A5:PLAIN A16:AHVzZXIAcGFzcw==\n");
	check("a LOGIN u\xff p%*[]\r\n", "OK a LOGIN A2:u\\xff A5:p%*[]\n");
	/* several commands in one stream */
	check("1 NOOP\r\n2 LOGIN {1}\r\nu p\r\n3 LOGOUT\n",
	      "OK 1 NOOP\nCONT\nOK 2 LOGIN L1:u A1:p\nOK 3 LOGOUT\n");
}

static void test_errors(void **state)
{
	(void)state;
	check("\r\nb NOOP\r\n", "ERR - Missing tag\nOK b NOOP\n");
	check("\nb NOOP\r\n", "ERR - Missing tag\nOK b NOOP\n");
	check(" NOOP\r\nb NOOP\r\n", "ERR - Missing tag\nOK b NOOP\n");
	check("a+ NOOP\r\nb NOOP\r\n", "ERR - Invalid characters in tag\nOK b NOOP\n");
	check("*a NOOP\r\nb NOOP\r\n", "ERR - Invalid characters in tag\nOK b NOOP\n");
	check("\xc3 NOOP\r\nb NOOP\r\n", "ERR - Invalid characters in tag\nOK b NOOP\n");
	check("a\r\nb NOOP\r\n", "ERR a Missing command\nOK b NOOP\n");
	check("a \r\nb NOOP\r\n", "ERR a Missing command\nOK b NOOP\n");
	check("a  NOOP\r\nb NOOP\r\n", "ERR a Missing command\nOK b NOOP\n");
	check("a (NOOP\r\nb NOOP\r\n", "ERR a Invalid characters in command name\nOK b NOOP\n");
	check("a NO\x01OP\r\nb NOOP\r\n", "ERR a Invalid characters in command name\nOK b NOOP\n");
	check("a NOOP\x00\r\nb NOOP\r\n", "ERR a NUL characters not allowed\nOK b NOOP\n");
	check("a\x00 NOOP\r\nb NOOP\r\n", "ERR - NUL characters not allowed\nOK b NOOP\n");
	check("a LOGIN u\x01 p\r\nb NOOP\r\n", "ERR a Invalid characters in atom\nOK b NOOP\n");
	check("a LOGIN \\u p\r\nb NOOP\r\n", "ERR a Invalid characters in atom\nOK b NOOP\n");
	check("a LOGIN u{ p\r\nb NOOP\r\n", "ERR a Invalid characters in atom\nOK b NOOP\n");
	check("a LOGIN \"u\r\nb NOOP\r\n", "ERR a Missing '\"'\nOK b NOOP\n");
	check("a LOGIN \"u\nb NOOP\r\n", "ERR a Missing '\"'\nOK b NOOP\n");
	check("a LOGIN \"u\x00\" p\r\nb NOOP\r\n", "ERR a NUL characters not allowed\nOK b NOOP\n");
	check("a LOGIN \"u\\x\" p\r\nb NOOP\r\n", "ERR a Invalid escape in quoted string\nOK b NOOP\n");
	check("a LOGIN {x}\r\nb NOOP\r\n", "ERR a Invalid literal size\nOK b NOOP\n");
	check("a LOGIN {}\r\nb NOOP\r\n", "ERR a Invalid literal size\nOK b NOOP\n");
	check("a LOGIN {+}\r\nb NOOP\r\n", "ERR a Invalid literal size\nOK b NOOP\n");
	check("a LOGIN {1+x\r\nb NOOP\r\n", "ERR a Invalid literal size\nOK b NOOP\n");
	check("a LOGIN {1}x\r\nb NOOP\r\n", "ERR a Missing CRLF after literal size\nOK b NOOP\n");
	check("a LOGIN {1}\rx\nb NOOP\r\n", "ERR a Missing CRLF after literal size\nOK b NOOP\n");
	/* synchronizing: no continuation, the client sends nothing more */
	check("a LOGIN {99999}\r\nb NOOP\r\n", "ERR a Literal size too large\nOK b NOOP\n");
	check("a LOGIN {99999999999999999999999}\r\nb NOOP\r\n",
	      "ERR a Literal size too large\nOK b NOOP\n");
	check("a LOGIN {8190}\r\nb NOOP\r\n", "ERR a Literal size too large\nOK b NOOP\n");
	/* non-synchronizing: its bytes follow at once and can't be resynced */
	check("a LOGIN {99999+}\r\nxx\r\nb NOOP\r\n", "ERR a Literal size too large (fatal)\n");
	/* NUL inside a literal: the rest of the literal (even an LF) is skipped */
	check("a LOGIN {4}\r\na\x00\nb\r\nb NOOP\r\n",
	      "CONT\nERR a NUL characters not allowed\nOK b NOOP\n");
	check("a LOGIN {2+}\r\na\x00 x\r\nb NOOP\r\n",
	      "ERR a NUL characters not allowed\nOK b NOOP\n");
	check("a LOGIN {1+}\r\n\x00\nb NOOP\r\n",
	      "ERR a NUL characters not allowed\nOK b NOOP\n");
	check("a LOGIN u) p\r\nb NOOP\r\n", "ERR a Unexpected ')'\nOK b NOOP\n");
	check("a LOGIN ) p\r\nb NOOP\r\n", "ERR a Unexpected ')'\nOK b NOOP\n");
	check("a LOGIN \"u\")\r\nb NOOP\r\n", "ERR a Unexpected ')'\nOK b NOOP\n");
	check("a ID ((x))\r\nb NOOP\r\n", "ERR a Nested lists not supported\nOK b NOOP\n");
	check("a ID (x\r\nb NOOP\r\n", "ERR a Missing ')'\nOK b NOOP\n");
	check("a ID (\"x\"\nb NOOP\r\n", "ERR a Missing ')'\nOK b NOOP\n");
	check("a LOGIN \"u\"p\r\nb NOOP\r\n", "ERR a Missing space after argument\nOK b NOOP\n");
	check("a NOOP\rx\nb NOOP\r\n", "ERR a Missing LF after CR\nOK b NOOP\n");
	check("a NOOP \r\rb NOOP\r\n", "ERR a Missing LF after CR\n");
}

static void test_arg_limit(void **state)
{
	(void)state;
	char in[400], exp[800];
	size_t n = (size_t)snprintf(in, sizeof(in), "a X");
	size_t e = (size_t)snprintf(exp, sizeof(exp), "OK a X");
	for (int i = 0; i < IMAP_PARSER_MAX_ARGS; i++) {
		n += (size_t)snprintf(in + n, sizeof(in) - n, " %c", 'a' + i % 26);
		e += (size_t)snprintf(exp + e, sizeof(exp) - e, " A1:%c", 'a' + i % 26);
	}
	char in2[420];
	snprintf(in2, sizeof(in2), "%s x\r\nb NOOP\r\n", in);
	snprintf(in + n, sizeof(in) - n, "\r\n");
	snprintf(exp + e, sizeof(exp) - e, "\n");
	check_len(in, strlen(in), exp);
	check_len(in2, strlen(in2), "ERR a Too many arguments\nOK b NOOP\n");
	/* a list counts with its items */
	char in3[400];
	n = (size_t)snprintf(in3, sizeof(in3), "a ID (");
	for (int i = 0; i < IMAP_PARSER_MAX_ARGS; i++)
		n += (size_t)snprintf(in3 + n, sizeof(in3) - n, "x ");
	snprintf(in3 + n, sizeof(in3) - n, ")\r\nb NOOP\r\n");
	check_len(in3, strlen(in3), "ERR a Too many arguments\nOK b NOOP\n");
}

static char *make_line(size_t total, const char *suffix)
{
	/* "a X " + atom padding + "\r\n" = total bytes */
	size_t slen = strlen(suffix);
	char *s = malloc(total + slen + 1);
	memcpy(s, "a X ", 4);
	memset(s + 4, 'y', total - 6);
	memcpy(s + total - 2, "\r\n", 2);
	memcpy(s + total, suffix, slen + 1);
	return s;
}

static void test_line_limit(void **state)
{
	(void)state;
	char *ok = make_line(LOGIN_MAX_LINE, "b NOOP\r\n");
	char *got = run(ok, strlen(ok), 0, NULL);
	assert_memory_equal(got, "OK a X A8186:yyy", 16);
	assert_non_null(strstr(got, "\nOK b NOOP\n"));
	free(got);
	free(ok);

	char *bad = make_line(LOGIN_MAX_LINE + 1, "b NOOP\r\n");
	check_len(bad, strlen(bad), "ERR a Command line too long\nOK b NOOP\n");
	free(bad);

	/* the biggest literal that fits, and one byte more */
	char lit[LOGIN_MAX_LINE + 64];
	size_t room = LOGIN_MAX_LINE - strlen("a X {NNNN}\r\n") - 2;
	int n = snprintf(lit, sizeof(lit), "a X {%zu}\r\n", room);
	memset(lit + n, 'z', room);
	memcpy(lit + (size_t)n + room, "\r\n", 3);
	got = run(lit, strlen(lit), 0, NULL);
	assert_memory_equal(got, "CONT\nOK a X L8178:zzz", 21);
	free(got);
	snprintf(lit, sizeof(lit), "a X {%zu}\r\nb NOOP\r\n", room + 1);
	check_len(lit, strlen(lit), "ERR a Literal size too large\nOK b NOOP\n");
}

/* RFC 2971 3.3: up to 30 field-value pairs, fields of 30 octets, values
 * of 1024; such an ID is longer than LOGIN_MAX_LINE and must be accepted */
static char *make_id(size_t value_len, const char *suffix)
{
	size_t cap = 30 * (value_len + 48) + 64 + strlen(suffix);
	char *s = malloc(cap);
	size_t n = (size_t)snprintf(s, cap, "a ID (");
	for (int i = 0; i < 30; i++) {
		n += (size_t)snprintf(s + n, cap - n, "%s\"f%029d\" \"", i > 0 ? " " : "", i);
		memset(s + n, 'v', value_len);
		n += value_len;
		s[n++] = '"';
	}
	snprintf(s + n, cap - n, ")\r\n%s", suffix);
	return s;
}

static void test_id_line_limit(void **state)
{
	(void)state;
	char *id = make_id(1024, "b NOOP\r\n");
	assert_true(strlen(id) > LOGIN_MAX_LINE);
	char *got = run(id, strlen(id), 0, NULL);
	assert_memory_equal(got, "OK a ID (", 9);
	assert_non_null(strstr(got, "\nOK b NOOP\n"));
	free(got);
	got = run(id, strlen(id), SIZE_MAX, NULL);
	assert_memory_equal(got, "OK a ID (", 9);
	free(got);
	free(id);
	/* past IMAP_PARSER_MAX_ID_LINE even ID is refused, and the session goes on */
	id = make_id(IMAP_PARSER_MAX_ID_LINE / 30, "b NOOP\r\n");
	check_len(id, strlen(id), "ERR a Command line too long\nOK b NOOP\n");
	free(id);
	/* any other command keeps LOGIN_MAX_LINE */
	char *other = make_line(LOGIN_MAX_LINE * 2, "b NOOP\r\n");
	check_len(other, strlen(other), "ERR a Command line too long\nOK b NOOP\n");
	free(other);
}

/* 10 MB without a newline: one error, nothing more, memory bounded by the
 * parser's store (checked with ASan/the allocator, not here) */
static void test_endless_line(void **state)
{
	(void)state;
	struct imap_parser p;
	struct transcript t = { 0 };
	imap_parser_init(&p);
	tr_add(&t, "%s", "");
	uint8_t chunk[65536];
	memset(chunk, 'x', sizeof(chunk));
	memcpy(chunk, "a NOOP ", 7);
	feed(&p, chunk, sizeof(chunk), &t);
	memset(chunk, 'x', 7);
	for (int i = 0; i < 160; i++)
		feed(&p, chunk, sizeof(chunk), &t);
	assert_string_equal(t.buf, "ERR a Command line too long\n");
	assert_false(imap_parser_idle(&p));
	feed(&p, (const uint8_t *)"\nb NOOP\r\n", 9, &t);
	assert_string_equal(t.buf, "ERR a Command line too long\nOK b NOOP\n");
	assert_true(imap_parser_idle(&p));
	imap_parser_deinit(&p);
	free(t.buf);
}

static void test_idle(void **state)
{
	(void)state;
	struct imap_parser p;
	struct transcript t = { 0 };
	imap_parser_init(&p);
	tr_add(&t, "%s", "");
	assert_true(imap_parser_idle(&p));
	feed(&p, (const uint8_t *)"a NO", 4, &t);
	assert_false(imap_parser_idle(&p));
	feed(&p, (const uint8_t *)"OP\r", 3, &t);
	assert_false(imap_parser_idle(&p));
	feed(&p, (const uint8_t *)"\n", 1, &t);
	assert_true(imap_parser_idle(&p));
	/* deinit in the middle of a literal frees everything (ASan checks) */
	feed(&p, (const uint8_t *)"a LOGIN {5+}\r\nab", 16, &t);
	assert_false(imap_parser_idle(&p));
	imap_parser_deinit(&p);
	free(t.buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_arg_limit),
		cmocka_unit_test(test_line_limit),
		cmocka_unit_test(test_id_line_limit),
		cmocka_unit_test(test_endless_line),
		cmocka_unit_test(test_idle),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
