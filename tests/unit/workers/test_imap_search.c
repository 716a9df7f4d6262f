/* SEARCH programs and sequence sets: every key against a set of messages
 * whose flags, sizes, dates and texts are chosen so each key selects a
 * different subset; malformed programs. The message text comes from a
 * loader, as in the worker (no mocks of our processes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "imap/imap-cmd-parser.h"
#include "imap/imap-search.h"
#include "lib/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct sample {
	uint32_t uid;
	const char *flags;
	bool recent;
	uint64_t size;
	const char *internal; /* yyyy-mm-dd, local noon */
	const char *text;
};

static const struct sample samples[] = {
	{ 10, "S", false, 100, "2026-11-20",
	  "From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: Lunch plans\r\n"
	  "Date: Fri, 20 Nov 2026 09:00:00 +0000\r\nX-Tag: one\r\n\r\nPizza at noon?\r\n" },
	{ 11, "FRb", true, 2000, "2026-11-21",
	  "From: bob@example.com\r\nTo: alice@example.com\r\nCc: carol@example.org\r\n"
	  "Subject: =?UTF-8?Q?Caf=C3=A9?= tomorrow\r\nDate: 21 Nov 2026 10:00:00 +0100\r\n\r\nBody mentions PIZZA too\r\n" },
	{ 12, "DT", true, 50, "2026-11-22",
	  "From: carol@example.org\r\nBcc: secret@example.net\r\nSubject: draft\r\n\r\nnothing\r\n" },
	{ 15, "", false, 999, "2026-11-23",
	  "From: Dave <dave (home)@ (isp) example.net>\r\nTo: team: ann@x.org, (nobody) ;\r\n"
	  "Subject: no date\r\n\r\nlunch\r\n" },
};
#define NSAMPLES (sizeof(samples) / sizeof(samples[0]))

static const char *load_text(void *ctx, size_t *len_r)
{
	const struct sample *s = ctx;
	*len_r = strlen(s->text);
	return s->text;
}

static const char *const keywords[26] = { "$Junk", "Work" };

static time_t day_time(const char *ymd)
{
	struct tm tm = { 0 };
	sscanf(ymd, "%d-%d-%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	tm.tm_hour = 12;
	tm.tm_isdst = -1;
	return mktime(&tm);
}

/* run "keys" over the samples; "1 3" style sequence numbers, or "BAD:<error>" */
static char *run(const char *keys)
{
	char *line = rg_strdup_printf("t SEARCH %s\r\n", keys);
	struct imap_cmd_parser *p = imap_cmd_parser_create();
	size_t used;
	enum parse_result r = imap_cmd_parser_feed(p, (const uint8_t *)line, strlen(line), &used);
	assert_int_equal(r, PARSE_OK);
	size_t count;
	const struct imap_cmd_arg *args = imap_cmd_parser_args(p, &count);
	const char *error = NULL;
	struct imap_search *s = imap_search_parse(args, count, NSAMPLES, 15, &error);
	char out[256] = "";
	if (s == NULL) {
		snprintf(out, sizeof(out), "BAD:%s", error);
	} else {
		for (size_t i = 0; i < NSAMPLES; i++) {
			struct imap_search_msg m = {
				.seq = (uint32_t)(i + 1), .uid = samples[i].uid, .flags = samples[i].flags,
				.recent = samples[i].recent, .size = samples[i].size,
				.internal_date = day_time(samples[i].internal),
				.keywords = keywords, .modseq = 100 + i,
				.load = load_text, .ctx = (void *)&samples[i],
			};
			if (imap_search_match(s, &m))
				snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%zu",
					 out[0] == '\0' ? "" : " ", i + 1);
		}
		imap_search_free(s);
	}
	imap_cmd_parser_destroy(p);
	rg_free(line);
	return rg_strdup(out);
}

static void expect(const char *keys, const char *want)
{
	char *got = run(keys);
	if (strcmp(got, want) != 0)
		fail_msg("SEARCH %s: got '%s', want '%s'", keys, got, want);
	rg_free(got);
}

static void test_keys(void **state)
{
	(void)state;
	expect("ALL", "1 2 3 4");
	expect("SEEN", "1");
	expect("UNSEEN", "2 3 4");
	expect("FLAGGED", "2");
	expect("UNFLAGGED", "1 3 4");
	expect("ANSWERED", "2");
	expect("UNANSWERED", "1 3 4");
	expect("DELETED", "3");
	expect("UNDELETED", "1 2 4");
	expect("DRAFT", "3");
	expect("UNDRAFT", "1 2 4");
	expect("RECENT", "2 3");
	expect("OLD", "1 4");
	expect("NEW", "2 3");
	expect("KEYWORD $Junk", "");
	expect("UNKEYWORD $Junk", "1 2 3 4");
	expect("KEYWORD work", "2");
	expect("UNKEYWORD Work", "1 3 4");
	expect("KEYWORD Other", "");
	expect("LARGER 100", "2 4");
	expect("SMALLER 100", "3");
	expect("BEFORE 21-Nov-2026", "1");
	expect("ON 22-nov-2026", "3");
	expect("SINCE 22-Nov-2026", "3 4");
	expect("SENTBEFORE 21-Nov-2026", "1");
	expect("SENTON 21-Nov-2026", "2");
	expect("SENTSINCE 21-Nov-2026", "2 3 4"); /* no Date: the internal date counts */
	expect("FROM ALICE", "1");
	expect("FROM example", "1 2 3 4");
	/* RFC 3501 6.4.4: FROM/TO/CC/BCC look in the envelope's address
	 * structure: comments and white space inside an address are not
	 * part of it (RFC 5322 3.4.1), a group's name is */
	expect("FROM dave@example.net", "4");
	expect("FROM \"Dave <dave@\"", "4");
	expect("FROM home", "");
	expect("TO ann@x.org", "4");
	expect("TO team", "4");
	expect("TO nobody", "");
	expect("TO alice", "2");
	expect("CC carol", "2");
	expect("BCC secret", "3");
	expect("SUBJECT lunch", "1");
	expect("SUBJECT \"caf\xc3\xa9 tom\"", "2"); /* after RFC 2047 decoding */
	expect("SUBJECT \"\"", "1 2 3 4");
	expect("HEADER X-Tag one", "1");
	expect("HEADER X-Tag \"\"", "1");
	expect("BODY pizza", "1 2");
	expect("BODY bob", "");
	expect("TEXT bob", "1 2");
	expect("TEXT lunch", "1 4");
	expect("TEXT caf\xc3\xa9", "2");
	expect("2:3", "2 3");
	expect("*", "4");
	expect("1,4", "1 4");
	expect("UID 11:12", "2 3");
	expect("UID 13:*", "4");
	expect("NOT SEEN", "2 3 4");
	expect("OR SEEN DRAFT", "1 3");
	expect("OR (SEEN) (OR DRAFT FLAGGED)", "1 2 3");
	expect("SEEN FROM alice", "1");
	expect("(UNSEEN LARGER 60) NOT FLAGGED", "4");
	expect("NOT NOT NOT ALL", "");
	expect("MODSEQ 102", "3 4");
	expect("MODSEQ \"/flags/\\\\seen\" priv 101", "2 3 4");
}

static void test_needs(void **state)
{
	(void)state;
	static const struct {
		const char *keys;
		bool text, size;
	} cases[] = {
		{ "ALL SEEN 1:3 UID 4", false, false },
		{ "OR LARGER 5 SEEN", false, true },
		{ "NOT (SMALLER 5)", false, true },
		{ "FROM x", true, false },
		{ "SENTON 1-Jan-2020", true, false },
		{ "SINCE 1-Jan-2020", false, false },
		{ "OR BODY x LARGER 1", true, true },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *line = rg_strdup_printf("t SEARCH %s\r\n", cases[i].keys);
		struct imap_cmd_parser *p = imap_cmd_parser_create();
		size_t used, count;
		assert_int_equal(imap_cmd_parser_feed(p, (const uint8_t *)line, strlen(line), &used), PARSE_OK);
		const struct imap_cmd_arg *args = imap_cmd_parser_args(p, &count);
		const char *error;
		struct imap_search *s = imap_search_parse(args, count, 4, 15, &error);
		assert_non_null(s);
		assert_int_equal(imap_search_needs_text(s), cases[i].text);
		assert_int_equal(imap_search_needs_size(s), cases[i].size);
		assert_int_equal(imap_search_needs_date(s), strstr(cases[i].keys, "-Jan-") != NULL);
		imap_search_free(s);
		imap_cmd_parser_destroy(p);
		rg_free(line);
	}
}

static void test_bad(void **state)
{
	(void)state;
	expect("", "BAD:Missing search keys");
	expect("BOGUS", "BAD:Unknown argument");
	expect("FROM", "BAD:Missing argument");
	expect("LARGER x", "BAD:Invalid number");
	expect("LARGER 5x", "BAD:Invalid number");
	expect("SINCE 32-Nov-2026", "BAD:Invalid date");
	expect("SINCE 1-Foo-2026", "BAD:Invalid date");
	expect("SINCE 1-Nov-26", "BAD:Invalid date");
	expect("OR SEEN", "BAD:Missing argument");
	expect("NOT", "BAD:Missing argument");
	expect("()", "BAD:Empty search list");
	expect("UID x", "BAD:Invalid UID messageset");
	expect("1:", "BAD:Unknown argument");
	expect("0", "BAD:Unknown argument");
	expect("KEYWORD (x)", "BAD:Invalid keyword");
	expect("FROM (a)", "BAD:Invalid string argument");
	expect("MODSEQ x", "BAD:Invalid number");
	expect("MODSEQ \"/flags/x\" bogus 5", "BAD:Invalid MODSEQ entry type");
	expect("(((((((((((((((ALL)))))))))))))))", "1 2 3 4");
	/* a program nested past the bound is refused, not recursed into */
	char deep[200] = "";
	for (int i = 0; i < 40; i++)
		strcat(deep, "NOT ");
	strcat(deep, "ALL");
	expect(deep, "BAD:Search program too complex");
}

static void test_seqset(void **state)
{
	(void)state;
	struct imap_seq_range *r;
	size_t n;
	assert_true(imap_seqset_parse("5:3,1,2,9:*,7", 12, &r, &n));
	assert_int_equal(n, 3);
	assert_int_equal(r[0].lo, 1);
	assert_int_equal(r[0].hi, 5);
	assert_int_equal(r[1].lo, 7);
	assert_int_equal(r[1].hi, 7);
	assert_int_equal(r[2].lo, 9);
	assert_int_equal(r[2].hi, 12);
	assert_true(imap_seqset_contains(r, n, 4));
	assert_false(imap_seqset_contains(r, n, 6));
	assert_true(imap_seqset_contains(r, n, 12));
	assert_false(imap_seqset_contains(r, n, 13));
	rg_free(r);
	assert_true(imap_seqset_parse("*:4", 2, &r, &n));
	assert_int_equal(r[0].lo, 2);
	assert_int_equal(r[0].hi, 4);
	rg_free(r);
	assert_true(imap_seqset_parse("4294967295", 1, &r, &n));
	rg_free(r);
	static const char *const bad[] = { "", "0", "1,", ",1", "1::2", "a", "4294967296", "1:2:3", "01" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(imap_seqset_parse(bad[i], 5, &r, &n));
	int ymd;
	assert_true(imap_search_parse_date("1-Jan-2000", &ymd));
	assert_int_equal(ymd, 20000101);
	assert_true(imap_search_parse_date("31-dec-1999", &ymd));
	assert_int_equal(ymd, 19991231);
	assert_false(imap_search_parse_date("1-Jan-2000x", &ymd));
	assert_false(imap_search_parse_date("-Jan-2000", &ymd));
	assert_false(imap_search_parse_date("100-Jan-2000", &ymd));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_needs),
		cmocka_unit_test(test_seqset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
