/* The POP3 line splitter: every sample at every split point and one byte at
 * a time must give the same lines and errors; each error branch; bounded
 * memory for an endless line; no buffer held between lines. Chunks are
 * copied into exact-size allocations so ASan catches any read past them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "login/pop3-parser.h"
#include "login/login-proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One event as a printable string: "L<line>|<cmd_len>|<args or ->" or "E<n>" */
#define MAX_EVENTS 16

struct events {
	char *ev[MAX_EVENTS];
	int n;
};

static void events_free(struct events *e)
{
	for (int i = 0; i < e->n; i++)
		free(e->ev[i]);
	e->n = 0;
}

static void record_line(struct events *e, const struct pop3_line *line)
{
	assert_true(e->n < MAX_EVENTS);
	assert_int_equal(strlen(line->line), line->len);
	if (line->args != NULL) {
		assert_ptr_equal(line->args, line->line + line->cmd_len + 1);
		assert_int_equal(line->line[line->cmd_len], ' ');
	} else {
		assert_int_equal(line->cmd_len, line->len);
	}
	size_t sz = line->len + 64;
	char *s = malloc(sz);
	snprintf(s, sz, "L%s|%zu|%s", line->line, line->cmd_len,
		 line->args == NULL ? "-" : line->args);
	e->ev[e->n++] = s;
}

static void record_error(struct events *e, enum pop3_parse_error err)
{
	assert_true(e->n < MAX_EVENTS);
	char *s = malloc(8);
	snprintf(s, 8, "E%d", (int)err);
	e->ev[e->n++] = s;
}

static void feed_chunk(struct pop3_parser *p, const uint8_t *src, size_t len, size_t max,
		       struct events *e)
{
	uint8_t *chunk = malloc(len == 0 ? 1 : len);
	memcpy(chunk, src, len);
	size_t off = 0;
	while (off < len) {
		size_t consumed = 0;
		struct pop3_line line;
		enum pop3_parse_error err = POP3_PARSE_ERROR_NONE;
		enum parse_result r = pop3_parser_feed(p, chunk + off, len - off, max,
						       &consumed, &line, &err);
		assert_true(consumed > 0);
		assert_true(consumed <= len - off);
		off += consumed;
		if (r == PARSE_MORE) {
			assert_int_equal(off, len);
			assert_int_equal(err, POP3_PARSE_ERROR_NONE);
		} else if (r == PARSE_OK) {
			/* a line ends exactly at its LF */
			assert_int_equal(chunk[off - 1], '\n');
			record_line(e, &line);
			pop3_parser_line_done(p);
			assert_true(pop3_parser_idle(p));
			assert_null(p->buf);
		} else {
			assert_int_equal(chunk[off - 1], '\n');
			assert_int_not_equal(err, POP3_PARSE_ERROR_NONE);
			record_error(e, err);
			assert_true(pop3_parser_idle(p));
			assert_null(p->buf);
		}
	}
	free(chunk);
}

/* expected: events in order, NULL-terminated */
static void check_sample_max(const char *data, size_t len, size_t max, const char *const *expected)
{
	int nexp = 0;
	while (expected[nexp] != NULL)
		nexp++;

	/* every split into two pieces (including empty first/last) */
	for (size_t split = 0; split <= len; split++) {
		struct pop3_parser p;
		struct events e = { .n = 0 };
		pop3_parser_init(&p);
		feed_chunk(&p, (const uint8_t *)data, split, max, &e);
		feed_chunk(&p, (const uint8_t *)data + split, len - split, max, &e);
		assert_int_equal(e.n, nexp);
		for (int i = 0; i < nexp; i++)
			assert_string_equal(e.ev[i], expected[i]);
		events_free(&e);
		pop3_parser_deinit(&p);
	}
	/* one byte at a time */
	struct pop3_parser p;
	struct events e = { .n = 0 };
	pop3_parser_init(&p);
	for (size_t i = 0; i < len; i++)
		feed_chunk(&p, (const uint8_t *)data + i, 1, max, &e);
	assert_int_equal(e.n, nexp);
	for (int i = 0; i < nexp; i++)
		assert_string_equal(e.ev[i], expected[i]);
	events_free(&e);
	pop3_parser_deinit(&p);
}

static void check_sample(const char *data, size_t len, const char *const *expected)
{
	check_sample_max(data, len, POP3_MAX_CMD_LINE, expected);
}

#define CHECK(str_, ...) do { \
	static const char *const exp_[] = { __VA_ARGS__, NULL }; \
	check_sample(str_, sizeof(str_) - 1, exp_); \
} while (0)

static void test_valid_lines(void **state)
{
	(void)state;
	CHECK("CAPA\r\n", "LCAPA|4|-");
	CHECK("capa\n", "Lcapa|4|-");
	CHECK("USER alice\r\n", "LUSER alice|4|alice");
	CHECK("PASS my secret pw\r\n", "LPASS my secret pw|4|my secret pw");
	CHECK("PASS  lead\r\n", "LPASS  lead|4| lead");
	CHECK("QUIT \r\n", "LQUIT |4|");
	CHECK("AUTH PLAIN AGFsaWNlAHB3\r\n", "LAUTH PLAIN AGFsaWNlAHB3|4|PLAIN AGFsaWNlAHB3");
	CHECK("\r\n", "L|0|-");
	CHECK("\n", "L|0|-");
	/* a CR not followed by LF is data */
	CHECK("PASS a\rb\r\n", "LPASS a\rb|4|a\rb");
	CHECK("A\r\r\n", "LA\r|2|-");
	CHECK("\xff\xfe x\r\n", "L\xff\xfe x|2|x");
	CHECK("CAPA\r\nUSER x\nPASS y z\r\n\r\n",
	      "LCAPA|4|-", "LUSER x|4|x", "LPASS y z|4|y z", "L|0|-");
}

static void test_length_limit(void **state)
{
	(void)state;
	size_t max = POP3_MAX_CMD_LINE;
	char *buf = malloc(max + 64);
	char *expect = malloc(max + 64);

	/* exactly max bytes of content: fine with CRLF and with LF */
	memset(buf, 'a', max);
	memcpy(buf + max, "\r\n", 2);
	snprintf(expect, max + 64, "L%.*s|%zu|-", (int)max, buf, max);
	{
		const char *exp[] = { expect, NULL };
		check_sample(buf, max + 2, exp);
		buf[max] = '\n';
		check_sample(buf, max + 1, exp);
	}
	/* max + 1 bytes: too long, with either terminator, then the next line */
	memset(buf, 'a', max + 1);
	memcpy(buf + max + 1, "\r\nCAPA\r\n", 8);
	{
		const char *exp[] = { "E1", "LCAPA|4|-", NULL };
		check_sample(buf, max + 9, exp);
		memcpy(buf + max + 1, "\nCAPA\r\n", 7);
		check_sample(buf, max + 8, exp);
	}
	/* a CR at the limit followed by data is not a terminator */
	memset(buf, 'a', max);
	memcpy(buf + max, "\rX\r\n", 4);
	{
		const char *exp[] = { "E1", NULL };
		check_sample(buf, max + 4, exp);
	}
	/* CR CR at the limit: the line has max + 1 bytes */
	memcpy(buf + max, "\r\r\n", 3);
	{
		const char *exp[] = { "E1", NULL };
		check_sample(buf, max + 3, exp);
	}
	free(buf);
	free(expect);

	/* the caller's limit is the one applied: an AUTH response line */
	size_t big = LOGIN_MAX_LINE;
	buf = malloc(big + 8);
	expect = malloc(big + 64);
	memset(buf, 'Q', big);
	memcpy(buf + big, "\r\n", 2);
	snprintf(expect, big + 64, "L%.*s|%zu|-", (int)big, buf, big);
	{
		const char *exp[] = { expect, NULL };
		const char *exp_err[] = { "E1", NULL };
		struct pop3_parser p;
		struct events e = { .n = 0 };
		pop3_parser_init(&p);
		feed_chunk(&p, (const uint8_t *)buf, big + 2, big, &e);
		assert_int_equal(e.n, 1);
		assert_string_equal(e.ev[0], exp[0]);
		events_free(&e);
		/* the same line with the command limit */
		feed_chunk(&p, (const uint8_t *)buf, big + 2, POP3_MAX_CMD_LINE, &e);
		assert_int_equal(e.n, 1);
		assert_string_equal(e.ev[0], exp_err[0]);
		events_free(&e);
		pop3_parser_deinit(&p);
	}
	free(buf);
	free(expect);
}

static void test_nul(void **state)
{
	(void)state;
	CHECK("US\0ER a\r\nCAPA\r\n", "E2", "LCAPA|4|-");
	CHECK("\0\n", "E2");
	CHECK("CAPA\0 more", NULL); /* reported only when the line ends */
	CHECK("CAPA\0\0\0\r\n\n", "E2", "L|0|-");
}

static void test_first_error_wins(void **state)
{
	(void)state;
	/* NUL then too long: NUL; too long then NUL: too long — at every split */
	size_t max = POP3_MAX_CMD_LINE;
	char *buf = malloc(max + 16);
	memset(buf, 'a', max + 10);
	buf[3] = '\0';
	memcpy(buf + max + 10, "\r\n", 2);
	{
		const char *exp[] = { "E2", NULL };
		check_sample(buf, max + 12, exp);
	}
	buf[3] = 'a';
	buf[max + 5] = '\0';
	{
		const char *exp[] = { "E1", NULL };
		check_sample(buf, max + 12, exp);
	}
	/* NUL exactly at the limit: the NUL is refused first */
	buf[max + 5] = 'a';
	buf[max] = '\0';
	{
		const char *exp[] = { "E2", NULL };
		check_sample(buf, max + 12, exp);
	}
	free(buf);
}

static void test_idle_and_incomplete(void **state)
{
	(void)state;
	struct pop3_parser p;
	struct events e = { .n = 0 };
	pop3_parser_init(&p);
	assert_true(pop3_parser_idle(&p));
	feed_chunk(&p, (const uint8_t *)"CA", 2, POP3_MAX_CMD_LINE, &e);
	assert_int_equal(e.n, 0);
	assert_false(pop3_parser_idle(&p));
	assert_non_null(p.buf);
	feed_chunk(&p, (const uint8_t *)"PA\r", 3, POP3_MAX_CMD_LINE, &e);
	assert_false(pop3_parser_idle(&p));
	feed_chunk(&p, (const uint8_t *)"\n", 1, POP3_MAX_CMD_LINE, &e);
	assert_int_equal(e.n, 1);
	assert_string_equal(e.ev[0], "LCAPA|4|-");
	assert_true(pop3_parser_idle(&p));
	events_free(&e);

	/* a line that is skipped is not idle either */
	feed_chunk(&p, (const uint8_t *)"\0", 1, POP3_MAX_CMD_LINE, &e);
	assert_false(pop3_parser_idle(&p));
	assert_null(p.buf);
	/* deinit mid-line frees everything */
	pop3_parser_deinit(&p);
	feed_chunk(&p, (const uint8_t *)"PASS secret", 11, POP3_MAX_CMD_LINE, &e);
	pop3_parser_deinit(&p);
	assert_null(p.buf);
	events_free(&e);

	/* the held line is released by the next feed too */
	pop3_parser_init(&p);
	size_t consumed;
	struct pop3_line line;
	enum pop3_parse_error err;
	assert_int_equal(pop3_parser_feed(&p, (const uint8_t *)"USER x\r\nCA", 10,
					  POP3_MAX_CMD_LINE, &consumed, &line, &err), PARSE_OK);
	assert_int_equal(consumed, 8);
	assert_false(pop3_parser_idle(&p));
	assert_int_equal(pop3_parser_feed(&p, (const uint8_t *)"CA", 2,
					  POP3_MAX_CMD_LINE, &consumed, &line, &err), PARSE_MORE);
	assert_int_equal(consumed, 2);
	assert_true(p.size <= 64);
	pop3_parser_deinit(&p);
	assert_string_equal(pop3_parse_error_str(POP3_PARSE_ERROR_TOO_LONG), "line too long");
}

static void test_endless_line_bounded(void **state)
{
	(void)state;
	enum { CHUNK = 65536, TOTAL = 10 * 1024 * 1024 };
	uint8_t *chunk = malloc(CHUNK);
	memset(chunk, 'x', CHUNK);
	struct pop3_parser p;
	pop3_parser_init(&p);
	size_t max_size = 0;
	for (size_t done = 0; done < TOTAL; done += CHUNK) {
		size_t consumed;
		struct pop3_line line;
		enum pop3_parse_error err;
		assert_int_equal(pop3_parser_feed(&p, chunk, CHUNK, POP3_MAX_CMD_LINE,
						  &consumed, &line, &err), PARSE_MORE);
		assert_int_equal(consumed, CHUNK);
		if (p.size > max_size)
			max_size = p.size;
	}
	/* skipping holds no buffer at all; it never held more than the limit */
	assert_null(p.buf);
	assert_true(max_size <= POP3_MAX_CMD_LINE + 2);
	size_t consumed;
	struct pop3_line line;
	enum pop3_parse_error err;
	assert_int_equal(pop3_parser_feed(&p, (const uint8_t *)"\nCAPA\n", 6, POP3_MAX_CMD_LINE,
					  &consumed, &line, &err), PARSE_ERROR);
	assert_int_equal(err, POP3_PARSE_ERROR_TOO_LONG);
	assert_int_equal(consumed, 1);
	assert_int_equal(pop3_parser_feed(&p, (const uint8_t *)"CAPA\n", 5, POP3_MAX_CMD_LINE,
					  &consumed, &line, &err), PARSE_OK);
	assert_string_equal(line.line, "CAPA");
	pop3_parser_deinit(&p);
	free(chunk);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_lines),
		cmocka_unit_test(test_length_limit),
		cmocka_unit_test(test_nul),
		cmocka_unit_test(test_first_error_wins),
		cmocka_unit_test(test_idle_and_incomplete),
		cmocka_unit_test(test_endless_line_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
