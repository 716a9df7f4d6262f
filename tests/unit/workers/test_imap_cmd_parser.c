/* The IMAP worker's command parser: every valid sample at every byte split
 * and one byte at a time, a negative test per error branch, recovery. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "imap/imap-cmd-parser.h"
#include "lib/alloc.h"

#include <stdio.h>
#include <string.h>

/* "tag|NAME|args" with args as A:atom S:quoted L:literal (...) */
static void dump_args(const struct imap_cmd_arg *args, size_t count, char *out, size_t size, size_t *o)
{
	for (size_t i = 0; i < count; i++) {
		if (i > 0)
			*o += (size_t)snprintf(out + *o, size - *o, " ");
		switch (args[i].type) {
		case IMAP_CMD_ARG_LIST:
			*o += (size_t)snprintf(out + *o, size - *o, "(");
			dump_args(args[i].list, args[i].count, out, size, o);
			*o += (size_t)snprintf(out + *o, size - *o, ")");
			break;
		case IMAP_CMD_ARG_ATOM:
		case IMAP_CMD_ARG_STRING:
		case IMAP_CMD_ARG_LITERAL: {
			char k = args[i].type == IMAP_CMD_ARG_ATOM ? 'A' : args[i].type == IMAP_CMD_ARG_STRING ? 'S' :
				 args[i].literal8 ? '8' : 'L';
			*o += (size_t)snprintf(out + *o, size - *o, "%c:", k);
			for (size_t j = 0; j < args[i].len && *o + 5 < size; j++) {
				unsigned char c = (unsigned char)args[i].str[j];
				*o += (size_t)snprintf(out + *o, size - *o, c >= 0x20 && c < 0x7f ? "%c" : "\\x%02x", c);
			}
			assert_int_equal(args[i].str[args[i].len], '\0');
			break;
		}
		}
	}
}

struct run {
	enum parse_result result;
	size_t consumed;
	unsigned int conts;
	char dump[1024];
};

/* Feed input in two pieces split at split (or bytewise) until the first
 * command ends. Continuation requests are counted. */
static void run_parser(struct imap_cmd_parser *p, const char *input, size_t len, size_t split,
		       bool bytewise, struct run *r)
{
	size_t pos = 0;
	r->conts = 0;
	r->result = PARSE_MORE;
	while (pos < len) {
		size_t end = bytewise ? pos + 1 : pos < split ? split : len;
		size_t used;
		r->result = imap_cmd_parser_feed(p, (const uint8_t *)input + pos, end - pos, &used);
		assert_true(used <= end - pos);
		pos += used;
		if (r->result != PARSE_MORE)
			break;
		if (imap_cmd_parser_take_continuation(p))
			r->conts++;
		assert_false(imap_cmd_parser_take_continuation(p));
		if (used == 0)
			assert_true(false); /* MORE must consume something */
	}
	r->consumed = pos;
	size_t o = 0;
	r->dump[0] = '\0';
	if (r->result == PARSE_OK) {
		size_t count;
		const struct imap_cmd_arg *args = imap_cmd_parser_args(p, &count);
		o += (size_t)snprintf(r->dump, sizeof(r->dump), "%s|%s|", imap_cmd_parser_tag(p),
				      imap_cmd_parser_name(p));
		dump_args(args, count, r->dump, sizeof(r->dump), &o);
	} else if (r->result == PARSE_ERROR) {
		const char *tag = imap_cmd_parser_tag(p);
		snprintf(r->dump, sizeof(r->dump), "%s|ERR:%s%s", tag != NULL ? tag : "(null)",
			 imap_cmd_parser_error(p), imap_cmd_parser_fatal(p) ? "|FATAL" : "");
	}
}

/* check input at every split and bytewise; input holds one command */
static void check_all_splits(const char *input, size_t len, const char *expect,
			     unsigned int conts, enum parse_result result)
{
	struct imap_cmd_parser *p = imap_cmd_parser_create();
	for (size_t split = 0; split <= len + 1; split++) {
		struct run r;
		bool bytewise = split == len + 1;
		run_parser(p, input, len, split, bytewise, &r);
		if (r.result != result || strcmp(r.dump, expect) != 0)
			fail_msg("split %zu: got %d '%s', want '%s'", split, r.result, r.dump, expect);
		/* a fatal error may stop before the line end */
		if (strstr(expect, "|FATAL") == NULL)
			assert_int_equal(r.consumed, len);
		if (r.conts != conts)
			fail_msg("split %zu of %s: %u continuations, want %u", split, expect, r.conts, conts);
	}
	imap_cmd_parser_destroy(p);
}

#define VALID(in, expect, conts) check_all_splits(in, sizeof(in) - 1, expect, conts, PARSE_OK)
#define INVALID(in, expect) check_all_splits(in, sizeof(in) - 1, expect, 0, PARSE_ERROR)

static void test_valid(void **state)
{
	(void)state;
	VALID("a1 NOOP\r\n", "a1|NOOP|", 0);
	VALID("a1 noop\n", "a1|noop|", 0);
	VALID("\r\n\r\na1 NOOP\r\n", "a1|NOOP|", 0); /* empty lines are skipped */
	VALID("a.1] CAPABILITY\r\n", "a.1]|CAPABILITY|", 0);
	VALID("x SELECT INBOX\r\n", "x|SELECT|A:INBOX", 0);
	VALID("x SELECT \"In \\\"box\\\\\"\r\n", "x|SELECT|S:In \"box\\", 0);
	VALID("x SELECT \"\"\r\n", "x|SELECT|S:", 0);
	VALID("x SELECT {5}\r\nINBOX\r\n", "x|SELECT|L:INBOX", 1);
	VALID("x SELECT {5+}\r\nINBOX\r\n", "x|SELECT|L:INBOX", 0);
	VALID("x LOGIN {1}\r\n\x00 {0}\r\n\r\n", "x|LOGIN|L:\\x00 L:", 2);
	VALID("x ID (\"name\" \"mutt\" \"v\" NIL)\r\n", "x|ID|(S:name S:mutt S:v A:NIL)", 0);
	VALID("x FETCH 1:*,3 (FLAGS BODY.PEEK[HEADER.FIELDS (From To)]<0.100> UID)\r\n",
	      "x|FETCH|A:1:*,3 (A:FLAGS A:BODY.PEEK[HEADER.FIELDS (From To)]<0.100> A:UID)", 0);
	VALID("x FETCH 1 BODY[]\r\n", "x|FETCH|A:1 A:BODY[]", 0);
	VALID("x STORE 1 +FLAGS (\\Seen \\Deleted)\r\n", "x|STORE|A:1 A:+FLAGS (A:\\Seen A:\\Deleted)", 0);
	VALID("x A (()) ((a) b)\r\n", "x|A|(()) ((A:a) A:b)", 0);
	VALID("x A ()\r\n", "x|A|()", 0);
	VALID("x A  b\r\n", "x|A|A:b", 0);
	VALID("x A b \r\n", "x|A|A:b", 0);
	VALID("x A {3}\r\na\"b (c {2+}\r\n\r\n)\r\n", "x|A|L:a\"b (A:c L:\\x0d\\x0a)", 1);
	VALID("x A \"\xc3\xa4\"\r\n", "x|A|S:\\xc3\\xa4", 0);
	VALID("x APPEND Sent (\\Seen) \" 1-Feb-2021 10:20:30 +0100\" {5}\r\nhello\r\n",
	      "x|APPEND|A:Sent (A:\\Seen) S: 1-Feb-2021 10:20:30 +0100 L:hello", 1);
	VALID("x append INBOX {3+}\r\na\r\n\r\n", "x|append|A:INBOX L:a\\x0d\\x0a", 0);
	/* RFC 3516 literal8 in APPEND; "~" otherwise starts an atom */
	VALID("x APPEND INBOX ~{3}\r\na\x00" "b\r\n", "x|APPEND|A:INBOX 8:a\\x00b", 1);
	VALID("x APPEND INBOX (\\Seen) ~{2+}\r\n\x00\x01\r\n", "x|APPEND|A:INBOX (A:\\Seen) 8:\\x00\\x01", 0);
	VALID("x APPEND ~ ~{0}\r\n\r\n", "x|APPEND|A:~ 8:", 1);
	VALID("x SELECT ~abc\r\n", "x|SELECT|A:~abc", 0);
	VALID("x SELECT ~\r\n", "x|SELECT|A:~", 0);
	/* RFC 3501 9: "[" is an ATOM-CHAR and "]" (resp-specials) an
	 * ASTRING-CHAR; only a FETCH attribute's "[" opens a section */
	VALID("x SELECT !#$&'+,-.0123456789:;<=>?@^_`|[}\r\n",
	      "x|SELECT|A:!#$&'+,-.0123456789:;<=>?@^_`|[}", 0);
	VALID("x LIST \"\" a[b%*\r\n", "x|LIST|S: A:a[b%*", 0);
	VALID("x CREATE a]b[c\r\n", "x|CREATE|A:a]b[c", 0);
	VALID("x FETCH 1 (binary.peek[1] BINARY.SIZE[2] body[1.MIME])\r\n",
	      "x|FETCH|A:1 (A:binary.peek[1] A:BINARY.SIZE[2] A:body[1.MIME])", 0);
	VALID("x UID SEARCH CHARSET UTF-8 OR (FROM \"a b\") NOT 1:*\r\n",
	      "x|UID|A:SEARCH A:CHARSET A:UTF-8 A:OR (A:FROM S:a b) A:NOT A:1:*", 0);
}

static void test_invalid(void **state)
{
	(void)state;
	INVALID("a\r\n", "a|ERR:Missing command.");
	INVALID("(x NOOP\r\n", "(null)|ERR:Invalid tag.");
	INVALID("a+ NOOP\r\n", "(null)|ERR:Invalid tag.");
	INVALID(" a NOOP\r\n", "(null)|ERR:Invalid tag.");
	INVALID("a  NOOP\r\n", "a|ERR:Invalid command name.");
	INVALID("a NO(OP\r\n", "a|ERR:Invalid command name.");
	INVALID("a NO[OP\r\n", "a|ERR:Invalid command name.");
	INVALID("a X )\r\n", "a|ERR:Unexpected ')'.");
	INVALID("a X ())\r\n", "a|ERR:Unexpected ')'.");
	INVALID("a X (\r\n", "a|ERR:Missing ')'.");
	INVALID("a X ((((((((((((((((((x))))))))))))))))))\r\n", "a|ERR:Too deep parenthesis nesting.");
	INVALID("a X \"abc\r\n", "a|ERR:Missing '\"'.");
	INVALID("a X \"a\\b\"\r\n", "a|ERR:Invalid escape in quoted string.");
	INVALID("a X {5x}\r\n", "a|ERR:Invalid literal size.");
	INVALID("a X {}\r\n", "a|ERR:Invalid literal size.");
	INVALID("a X {+}\r\n", "a|ERR:Invalid literal size.");
	INVALID("a X {5+x\r\n", "a|ERR:Invalid literal size.");
	INVALID("a X {12345678901}\r\n", "a|ERR:Invalid literal size.");
	INVALID("a X {5}x\r\n", "a|ERR:Missing CRLF after literal size.");
	INVALID("a X {5}\rx\r\n", "a|ERR:Missing CRLF after literal size.");
	INVALID("a X {65537}\r\n", "a|ERR:Literal too large.");
	INVALID("a STATUS ~{5}\r\n", "a|ERR:Binary literal only allowed in APPEND.");
	INVALID("a APPEND x ~{5x}\r\n", "a|ERR:Invalid literal size.");
	INVALID("a X \"x\"y\r\n", "a|ERR:Missing space after argument.");
	INVALID("a X (x)y\r\n", "a|ERR:Missing space after argument.");
	INVALID("a X BODY[x\r\n", "a|ERR:Missing ']'.");
	INVALID("a X BODY.PEEK[HEADER.FIELDS (a)\r\n", "a|ERR:Missing ']'.");
	INVALID("a X a\x01z\r\n", "a|ERR:Invalid characters in atom.");
	INVALID("a X \x01\r\n", "a|ERR:Invalid characters in atom.");
	INVALID("a NOOP\rx\r\n", "a|ERR:CR without LF.");
}

static void test_bounds(void **state)
{
	(void)state;
	/* tag and name limits */
	char buf[IMAP_MAX_LINE + 64];
	memset(buf, 't', IMAP_MAX_TAG + 1);
	strcpy(buf + IMAP_MAX_TAG + 1, " NOOP\r\n");
	check_all_splits(buf, strlen(buf), "(null)|ERR:Tag too long.", 0, PARSE_ERROR);
	memset(buf, 't', IMAP_MAX_TAG);
	strcpy(buf + IMAP_MAX_TAG, " NOOP\r\n");
	struct imap_cmd_parser *p = imap_cmd_parser_create();
	struct run r;
	run_parser(p, buf, strlen(buf), 0, false, &r);
	assert_int_equal(r.result, PARSE_OK);
	assert_int_equal(strlen(imap_cmd_parser_tag(p)), IMAP_MAX_TAG);

	snprintf(buf, sizeof(buf), "a %0*d\r\n", IMAP_MAX_NAME + 1, 0);
	check_all_splits(buf, strlen(buf), "a|ERR:Unknown command.", 0, PARSE_ERROR);

	/* a line over IMAP_MAX_LINE: refused, then the next command works */
	size_t n = (size_t)snprintf(buf, sizeof(buf), "a X ");
	memset(buf + n, 'b', IMAP_MAX_LINE);
	n += IMAP_MAX_LINE;
	memcpy(buf + n, "\r\nb NOOP\r\n", 10);
	n += 10;
	run_parser(p, buf, n, 0, false, &r);
	assert_int_equal(r.result, PARSE_ERROR);
	assert_string_equal(imap_cmd_parser_error(p), "Too long argument.");
	assert_int_equal(r.consumed, n - 8);
	run_parser(p, buf + r.consumed, 8, 0, false, &r);
	assert_int_equal(r.result, PARSE_OK);
	assert_string_equal(r.dump, "b|NOOP|");

	/* exactly at the limit is fine */
	n = (size_t)snprintf(buf, sizeof(buf), "a X ");
	memset(buf + n, 'b', IMAP_MAX_LINE - n - 2);
	memcpy(buf + IMAP_MAX_LINE - 2, "\r\n", 2);
	run_parser(p, buf, IMAP_MAX_LINE, 0, false, &r);
	assert_int_equal(r.result, PARSE_OK);

	/* literal exactly at the limit, then the sum over all literals */
	static char lit[IMAP_MAX_LITERAL + 64];
	n = (size_t)snprintf(lit, sizeof(lit), "a X {%d}\r\n", IMAP_MAX_LITERAL);
	memset(lit + n, 'z', IMAP_MAX_LITERAL);
	memcpy(lit + n + IMAP_MAX_LITERAL, "\r\n", 2);
	run_parser(p, lit, n + IMAP_MAX_LITERAL + 2, 0, false, &r);
	assert_int_equal(r.result, PARSE_OK);
	size_t count;
	assert_int_equal(imap_cmd_parser_args(p, &count)[0].len, IMAP_MAX_LITERAL);

	/* {n+} too large: the data would follow unasked, so it is fatal */
	static const char plus[] = "a X {999999+}\r\nzzzz";
	run_parser(p, plus, sizeof(plus) - 1, 0, false, &r);
	assert_int_equal(r.result, PARSE_ERROR);
	assert_true(imap_cmd_parser_fatal(p));
	assert_int_equal(r.consumed, sizeof(plus) - 1 - 4);

	/* APPEND may carry a message above IMAP_MAX_LITERAL, up to IMAP_MAX_APPEND */
	static char app[IMAP_MAX_LITERAL * 2 + 64];
	n = (size_t)snprintf(app, sizeof(app), "a APPEND INBOX {%d}\r\n", IMAP_MAX_LITERAL * 2);
	memset(app + n, 'm', IMAP_MAX_LITERAL * 2);
	memcpy(app + n + IMAP_MAX_LITERAL * 2, "\r\n", 2);
	run_parser(p, app, n + IMAP_MAX_LITERAL * 2 + 2, 0, false, &r);
	assert_int_equal(r.result, PARSE_OK);
	assert_int_equal(r.conts, 1);
	assert_int_equal(imap_cmd_parser_args(p, &count)[1].len, IMAP_MAX_LITERAL * 2);
	/* but not for other commands, and not above the APPEND limit */
	n = (size_t)snprintf(app, sizeof(app), "a SELECT {%d}\r\n", IMAP_MAX_LITERAL * 2);
	run_parser(p, app, n, 0, false, &r);
	assert_int_equal(r.result, PARSE_ERROR);
	assert_string_equal(imap_cmd_parser_error(p), "Literal too large.");
	n = (size_t)snprintf(app, sizeof(app), "a APPEND INBOX {%d}\r\n", IMAP_MAX_APPEND + 1);
	run_parser(p, app, n, 0, false, &r);
	assert_int_equal(r.result, PARSE_ERROR);
	assert_string_equal(imap_cmd_parser_error(p), "Literal too large.");
	assert_false(imap_cmd_parser_fatal(p));

	/* a synchronising one is refused before the client sends it */
	static const char sync[] = "a X {999999}\r\nb NOOP\r\n";
	run_parser(p, sync, sizeof(sync) - 1, 0, false, &r);
	assert_int_equal(r.result, PARSE_ERROR);
	assert_false(imap_cmd_parser_fatal(p));
	assert_int_equal(r.conts, 0);
	run_parser(p, sync + r.consumed, sizeof(sync) - 1 - r.consumed, 0, false, &r);
	assert_string_equal(r.dump, "b|NOOP|");
	imap_cmd_parser_destroy(p);
}

/* imap_max_line_length: the line bound moves, literals stay outside it,
 * and a bound above the default also widens the whole-command bound */
static void test_max_line_setting(void **state)
{
	(void)state;
	static char buf[200 * 1024];
	struct imap_cmd_parser *p = imap_cmd_parser_create();
	struct run r;
	imap_cmd_parser_set_max_line(p, 2048);
	size_t n = (size_t)snprintf(buf, sizeof(buf), "a X ");
	memset(buf + n, 'b', 2048 - n - 2);
	memcpy(buf + 2046, "\r\n", 2);
	run_parser(p, buf, 2048, 0, false, &r);
	assert_int_equal(r.result, PARSE_OK);
	n = (size_t)snprintf(buf, sizeof(buf), "a X ");
	memset(buf + n, 'b', 2050 - n - 2);
	memcpy(buf + 2048, "\r\n", 2);
	run_parser(p, buf, 2050, 0, false, &r);
	assert_int_equal(r.result, PARSE_ERROR);
	assert_string_equal(imap_cmd_parser_error(p), "Too long argument.");
	/* a literal's bytes are not line bytes */
	n = (size_t)snprintf(buf, sizeof(buf), "a X {4000+}\r\n");
	memset(buf + n, 'c', 4000);
	memcpy(buf + n + 4000, "\r\n", 2);
	run_parser(p, buf, n + 4002, 0, false, &r);
	assert_int_equal(r.result, PARSE_OK);
	/* 150 KiB of line: over the default line and command bounds */
	imap_cmd_parser_set_max_line(p, 160 * 1024);
	n = (size_t)snprintf(buf, sizeof(buf), "a X ");
	memset(buf + n, 'd', 150 * 1024);
	memcpy(buf + n + 150 * 1024, "\r\n", 2);
	run_parser(p, buf, n + 150 * 1024 + 2, 0, false, &r);
	assert_int_equal(r.result, PARSE_OK);
	imap_cmd_parser_destroy(p);
}

static void test_pipelined_and_recovery(void **state)
{
	(void)state;
	static const char in[] = "a NOOP\r\nb X \"x\r\nc SELECT {5}\r\nINBOX\r\nd LOGOUT\r\n";
	static const char *const want[] = { "a|NOOP|", "b|ERR:Missing '\"'.", "c|SELECT|L:INBOX",
					     "d|LOGOUT|" };
	struct imap_cmd_parser *p = imap_cmd_parser_create();
	for (size_t split = 0; split < sizeof(in); split++) {
		size_t pos = 0;
		for (size_t k = 0; k < 4; k++) {
			struct run r;
			/* the split is relative to the whole input */
			size_t rel = split > pos ? split - pos : 0;
			run_parser(p, in + pos, sizeof(in) - 1 - pos, rel, false, &r);
			assert_string_equal(r.dump, want[k]);
			pos += r.consumed;
		}
		assert_int_equal(pos, sizeof(in) - 1);
	}
	imap_cmd_parser_destroy(p);

	assert_null(imap_cmd_arg_astring(&(struct imap_cmd_arg){ .type = IMAP_CMD_ARG_LIST }));
	assert_null(imap_cmd_arg_astring(&(struct imap_cmd_arg){ .type = IMAP_CMD_ARG_LITERAL, .str = "a\0b", .len = 3 }));
	assert_string_equal(imap_cmd_arg_astring(&(struct imap_cmd_arg){ .type = IMAP_CMD_ARG_STRING, .str = "ab", .len = 2 }), "ab");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_pipelined_and_recovery),
		cmocka_unit_test(test_max_line_setting),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
