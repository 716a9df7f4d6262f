/* MIME view: ENVELOPE and BODYSTRUCTURE of built samples (multipart/mixed,
 * alternative, nested message/rfc822, encoded headers, groups), section
 * lookup, header access, RFC 2047 decoding and hostile structures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/alloc.h"
#include "mail/mime.h"

#include <stdio.h>
#include <string.h>

static char *envelope(const char *msg)
{
	struct mime_buf b = { 0 };
	mime_envelope(msg, mime_header_size(msg, strlen(msg)), &b);
	return b.data;
}

static char *bodystructure(const char *msg, bool extended)
{
	struct mime_part *root = mime_parse(msg, strlen(msg));
	struct mime_buf b = { 0 };
	mime_bodystructure(root, msg, extended, &b);
	mime_free(root);
	return b.data;
}

static void check_env(const char *msg, const char *want)
{
	char *got = envelope(msg);
	assert_string_equal(got, want);
	rg_free(got);
}

static void check_bs(const char *msg, bool extended, const char *want)
{
	char *got = bodystructure(msg, extended);
	assert_string_equal(got, want);
	rg_free(got);
}

static void test_envelope(void **state)
{
	(void)state;
	check_env("From: \"Doe, John\" <john@example.com>\r\nTo: a@b.c (Comment Name), <d@e.f>\r\n"
		  "Subject: hi \"there\"\r\nDate: Tue, 1 Jan 2030 00:00:00 +0000\r\n"
		  "Message-ID: <x@y>\r\nIn-Reply-To: <w@y>\r\n\r\nbody\r\n",
		  "(\"Tue, 1 Jan 2030 00:00:00 +0000\" \"hi \\\"there\\\"\" "
		  "((\"Doe, John\" NIL \"john\" \"example.com\")) ((\"Doe, John\" NIL \"john\" \"example.com\")) "
		  "((\"Doe, John\" NIL \"john\" \"example.com\")) "
		  "((\"Comment Name\" NIL \"a\" \"b.c\")(NIL NIL \"d\" \"e.f\")) NIL NIL \"<w@y>\" \"<x@y>\")");
	/* nothing at all */
	check_env("\r\nbody", "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
	/* folded subject, separate Sender and Reply-To, a group, 8-bit as literal */
	check_env("Subject: one\r\n two\r\nFrom: a@x\r\nSender: s@x\r\nReply-To: r@x\r\n"
		  "Cc: team: p@x, q@x;, solo@x\r\nBcc: \xc3\xa9t\xc3\xa9 <e@x>\r\n\r\n",
		  "(NIL \"one two\" ((NIL NIL \"a\" \"x\")) ((NIL NIL \"s\" \"x\")) ((NIL NIL \"r\" \"x\")) NIL "
		  "((NIL NIL \"team\" NIL)(NIL NIL \"p\" \"x\")(NIL NIL \"q\" \"x\")(NIL NIL NIL NIL)"
		  "(NIL NIL \"solo\" \"x\")) "
		  "(({5}\r\n\xc3\xa9t\xc3\xa9 NIL \"e\" \"x\")) NIL NIL)");
	/* RFC 5322 3.4: a group may be empty or hold only a comment; an
	 * obsolete source route is the ENVELOPE's adl (RFC 3501 7.4.2);
	 * comments inside an addr-spec are not part of it */
	check_env("To: g: a@b;, h: (just a comment) ;\r\nCc: h:;\r\n"
		  "From: <@r1,@r2:u@d>\r\nBcc: <u (c)@ (c) d.org>\r\n\r\n",
		  "(NIL NIL ((NIL \"@r1,@r2\" \"u\" \"d\")) ((NIL \"@r1,@r2\" \"u\" \"d\")) "
		  "((NIL \"@r1,@r2\" \"u\" \"d\")) "
		  "((NIL NIL \"g\" NIL)(NIL NIL \"a\" \"b\")(NIL NIL NIL NIL)(NIL NIL \"h\" NIL)(NIL NIL NIL NIL)) "
		  "((NIL NIL \"h\" NIL)(NIL NIL NIL NIL)) ((NIL NIL \"u\" \"d.org\")) NIL NIL)");
	char *t = mime_addresses_text("Real <u (c)@ (c) d.org>, g: x@y, z@w;, =?utf-8?q?a?= <q@r>");
	assert_string_equal(t, "Real <u@d.org>, g: <x@y>, <z@w>;, =?utf-8?q?a?= <q@r>");
	rg_free(t);
	/* an address without a domain */
	check_env("To: undisclosed\r\n\r\n",
		  "(NIL NIL NIL NIL NIL ((NIL NIL \"undisclosed\" \"MISSING_DOMAIN\")) NIL NIL NIL NIL)");
}

#define ALT_MSG \
	"Content-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n" \
	"preamble\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nline1\r\nline2\r\n" \
	"--b1\r\nContent-Type: text/html\r\nContent-ID: <id1>\r\n\r\n<b>x</b>\r\n--b1--\r\nepilogue\r\n"

#define NESTED_MSG \
	"From: outer@x\r\nContent-Type: multipart/mixed; boundary=OUT\r\n\r\n" \
	"--OUT\r\nContent-Type: text/plain\r\n\r\nfirst\r\n" \
	"--OUT\r\nContent-Type: message/rfc822\r\nContent-Description: fwd\r\n\r\n" \
	"From: inner@y\r\nSubject: inner\r\nContent-Type: multipart/mixed; boundary=IN\r\n\r\n" \
	"--IN\r\n\r\ninner one\r\n--IN\r\nContent-Type: image/png; name=p.png\r\n" \
	"Content-Transfer-Encoding: base64\r\nContent-Disposition: inline; filename=p.png\r\n" \
	"Content-Language: en\r\n\r\nAAAA\r\n--IN--\r\n" \
	"--OUT--\r\n"

static void test_bodystructure(void **state)
{
	(void)state;
	check_bs("Subject: x\r\n\r\nhello\r\nworld\r\n", true,
		 "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 14 2 NIL NIL NIL NIL)");
	check_bs("Subject: x\r\n\r\nhello\r\nworld\r\n", false,
		 "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 14 2)");
	check_bs(ALT_MSG, true,
		 "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 12 1 NIL NIL NIL NIL)"
		 "(\"text\" \"html\" (\"charset\" \"us-ascii\") \"<id1>\" NIL \"7bit\" 8 0 NIL NIL NIL NIL)"
		 " \"alternative\" (\"boundary\" \"b1\") NIL NIL NIL)");
	check_bs(ALT_MSG, false,
		 "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 12 1)"
		 "(\"text\" \"html\" (\"charset\" \"us-ascii\") \"<id1>\" NIL \"7bit\" 8 0) \"alternative\")");
	char *bs = bodystructure(NESTED_MSG, true);
	assert_non_null(strstr(bs, "(\"message\" \"rfc822\" NIL NIL \"fwd\" \"7bit\" "));
	assert_non_null(strstr(bs, "(NIL \"inner\" ((NIL NIL \"inner\" \"y\"))"));
	assert_non_null(strstr(bs, "(\"image\" \"png\" (\"name\" \"p.png\") NIL NIL \"base64\" 4 NIL "
				   "(\"inline\" (\"filename\" \"p.png\")) \"en\" NIL)"));
	assert_non_null(strstr(bs, " \"mixed\" (\"boundary\" \"IN\") NIL NIL NIL) 14 NIL NIL NIL NIL)"));
	static const char tail[] = ") \"mixed\" (\"boundary\" \"OUT\") NIL NIL NIL)";
	assert_true(strlen(bs) > sizeof(tail));
	assert_string_equal(bs + strlen(bs) - (sizeof(tail) - 1), tail);
	rg_free(bs);
	/* multipart/digest parts default to message/rfc822 */
	bs = bodystructure("Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: s\r\n\r\nb\r\n--d--\r\n", false);
	assert_non_null(strstr(bs, "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 15 (NIL \"s\""));
	rg_free(bs);
	/* a multipart whose boundary never comes reads as text */
	check_bs("Content-Type: multipart/mixed; boundary=zz\r\n\r\nno parts\r\n", false,
		 "(\"text\" \"plain\" (\"charset\" \"us-ascii\" \"boundary\" \"zz\") NIL NIL \"7bit\" 10 1)");
}

#define RFC822_INNER "From: in@y\r\nSubject: in\r\n\r\ninner body\r\n"
#define RFC822_TOP "From: out@x\r\nContent-Type: message/rfc822\r\n\r\n" RFC822_INNER
#define RFC822_TWICE "From: out@x\r\nContent-Type: message/rfc822\r\n\r\n" RFC822_TOP
#define RFC822_DIGEST "From: out@x\r\nContent-Type: message/rfc822\r\n\r\n" \
	"From: mid@x\r\nContent-Type: multipart/digest; boundary=\"d\"\r\n\r\n" \
	"--d\r\n\r\nFrom: m1@x\r\n\r\nm1\r\n\r\n--d\r\nX-Mime: m2\r\n\r\nFrom: m2@x\r\n\r\nm2\r\n\r\n--d--\r\n"

static void check_section(const char *msg, const char *nums, const char *want_body)
{
	struct mime_part *root = mime_parse(msg, strlen(msg));
	const struct mime_part *p = mime_find_part(root, nums, strlen(nums));
	if (want_body == NULL) {
		assert_null(p);
	} else {
		assert_non_null(p);
		assert_int_equal(p->body_len, strlen(want_body));
		assert_memory_equal(msg + p->body_off, want_body, p->body_len);
	}
	mime_free(root);
}

static void test_sections(void **state)
{
	(void)state;
	check_section(ALT_MSG, "1", "line1\r\nline2");
	check_section(ALT_MSG, "2", "<b>x</b>");
	check_section(ALT_MSG, "3", NULL);
	check_section(ALT_MSG, "0", NULL);
	check_section(ALT_MSG, "1.", NULL);
	check_section(ALT_MSG, "1.1", "line1\r\nline2");
	check_section(ALT_MSG, "1.2", NULL);
	check_section(NESTED_MSG, "1", "first");
	check_section(NESTED_MSG, "2.1", "inner one");
	check_section(NESTED_MSG, "2.2", "AAAA");
	check_section(NESTED_MSG, "2.3", NULL);
	check_section("Subject: s\r\n\r\nonly", "1", "only");
	check_section("Subject: s\r\n\r\nonly", "2", NULL);
	check_section(NESTED_MSG, "99999999999", NULL);
	/* RFC 3501 6.4.5: after a message/rfc822 part the numbers go on in
	 * the message it encloses, also when it is the top-level type */
	check_section(RFC822_TOP, "1", RFC822_INNER);
	check_section(RFC822_TOP, "1.1", "inner body\r\n");
	check_section(RFC822_TOP, "1.2", NULL);
	check_section(RFC822_TOP, "1.1.1", NULL);
	check_section(RFC822_DIGEST, "1.1", "From: m1@x\r\n\r\nm1\r\n");
	check_section(RFC822_DIGEST, "1.2", "From: m2@x\r\n\r\nm2\r\n");
	check_section(RFC822_DIGEST, "1.2.1", "m2\r\n");
	check_section(RFC822_DIGEST, "1.3", NULL);
	check_section(NESTED_MSG, "1.1.1", NULL);
	/* the header of 1.2 (a digest part) and of the message inside it */
	static const char digest[] = RFC822_DIGEST, twice[] = RFC822_TWICE;
	struct mime_part *root = mime_parse(digest, strlen(digest));
	const struct mime_part *p = mime_find_part(root, "1.2", 3);
	assert_non_null(p);
	assert_non_null(p->message);
	assert_memory_equal(&digest[p->hdr_off], "X-Mime: m2\r\n\r\n", p->hdr_len);
	assert_int_equal(p->hdr_len, strlen("X-Mime: m2\r\n\r\n"));
	assert_int_equal(p->message->hdr_len, strlen("From: m2@x\r\n\r\n"));
	assert_memory_equal(&digest[p->message->hdr_off], "From: m2@x\r\n\r\n", p->message->hdr_len);
	mime_free(root);
	/* a message inside a message inside a message */
	root = mime_parse(twice, strlen(twice));
	p = mime_find_part(root, "1.1", 3);
	assert_non_null(p);
	assert_memory_equal(&twice[p->body_off], RFC822_INNER, p->body_len);
	check_section(RFC822_TWICE, "1.1.1", "inner body\r\n");
	mime_free(root);
}

static void test_headers_and_words(void **state)
{
	(void)state;
	const char *h = "Subject: a\r\n\tb\r\nX-A: 1\r\nx-a :2\r\n\r\n";
	char *v = mime_header_get(h, strlen(h), "subject");
	assert_string_equal(v, "a b");
	rg_free(v);
	v = mime_header_get_all(h, strlen(h), "X-A");
	assert_string_equal(v, "1\n2");
	rg_free(v);
	assert_null(mime_header_get(h, strlen(h), "To"));
	static const char *const cases[][2] = {
		{ "=?UTF-8?B?SMOpbGxv?= world", "H\xc3\xa9llo world" },
		{ "=?iso-8859-1?q?caf=E9_bar?=", "caf\xc3\xa9 bar" },
		{ "=?utf-8?q?a?= =?utf-8?q?b?=", "ab" },
		{ "=?utf-8?q?a?= x =?utf-8?q?b?=", "a x b" },
		{ "=?bogus", "=?bogus" },
		{ "=?utf-8?x?abc?=", "=?utf-8?x?abc?=" },
		{ "plain", "plain" },
		{ "=?utf-8?q?trunc=A?=", "trunc=A" },
		/* B is lenient, as mail needs: no padding, junk skipped */
		{ "=?utf-8?b?Zm9vYg?=", "foob" },
		{ "=?UTF-8?B?Zm9v!Ym=Fy?=", "foobar" },
		{ "=?iso-8859-1?B?Y2Fm6Q==?=", "caf\xc3\xa9" },
		{ "=?utf-8?B?" "?=", "" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *d = mime_decode_words(cases[i][0]);
		assert_string_equal(d, cases[i][1]);
		rg_free(d);
	}
	/* the longest B word the scan window takes: 1000 chars, 750 bytes */
	char *w = rg_malloc(1100);
	memcpy(w, "=?utf-8?B?", 10);
	memset(w + 10, '/', 1000);
	memcpy(w + 1010, "?=", 3);
	char *d = mime_decode_words(w);
	assert_int_equal(strlen(d), 750);
	for (size_t k = 0; k < 750; k++)
		assert_int_equal((unsigned char)d[k], 0xff);
	rg_free(d);
	rg_free(w);
}

static void test_hostile(void **state)
{
	(void)state;
	/* deep nesting stops at MIME_MAX_DEPTH instead of the stack */
	char *msg = rg_malloc(200000);
	size_t o = 0;
	for (int i = 0; i < 500; i++)
		o += (size_t)sprintf(msg + o, "Content-Type: message/rfc822\r\n\r\n");
	msg[o] = '\0';
	char *bs = bodystructure(msg, true);
	assert_non_null(bs);
	rg_free(bs);
	/* many parts stop at MIME_MAX_PARTS */
	o = (size_t)sprintf(msg, "Content-Type: multipart/mixed; boundary=b\r\n\r\n");
	for (int i = 0; i < 5000; i++)
		o += (size_t)sprintf(msg + o, "--b\r\n\r\nx\r\n");
	struct mime_part *root = mime_parse(msg, o);
	assert_true(root->nchildren <= MIME_MAX_PARTS);
	assert_true(root->nchildren > 100);
	mime_free(root);
	/* a header full of unfinished encoded words stays linear */
	o = 0;
	for (int i = 0; i < 24000; i++)
		o += (size_t)sprintf(msg + o, "=?a?q?x ");
	char *dec = mime_decode_words(msg);
	assert_int_equal(strlen(dec), o);
	rg_free(dec);
	/* no header end, unterminated quotes and comments */
	const char *bad = "Content-Type: text/\"plain; (unclosed\r\nTo: \"open <a@b";
	bs = bodystructure(bad, true);
	assert_non_null(bs);
	rg_free(bs);
	char *env = envelope(bad);
	assert_non_null(env);
	rg_free(env);
	rg_free(msg);
}

static void test_nstring(void **state)
{
	(void)state;
	struct mime_buf b = { 0 };
	mime_buf_nstring(&b, NULL, 0);
	mime_buf_str(&b, " ");
	mime_buf_nstring(&b, "a\"b\\c", 5);
	mime_buf_str(&b, " ");
	mime_buf_nstring(&b, "x\r\ny", 4);
	assert_string_equal(b.data, "NIL \"a\\\"b\\\\c\" {4}\r\nx\r\ny");
	mime_buf_free(&b);
}

/* printf appends in place: the free space first, a longer result after
 * growing; the data stays NUL-terminated */
static void test_buf_printf(void **state)
{
	(void)state;
	struct mime_buf b = { 0 };
	mime_buf_printf(&b, "%s", "");
	assert_non_null(b.data);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	mime_buf_printf(&b, "%d-%s", 42, "x");
	mime_buf_add(&b, "|", 1);
	assert_string_equal(b.data, "42-x|");
	/* past the free space, repeatedly: each append lands whole */
	char big[1000];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (int i = 0; i < 5; i++) {
		size_t before = b.len;
		mime_buf_printf(&b, "[%s]%d", big, i);
		assert_int_equal(b.len, before + 2 + sizeof(big) - 1 + 1);
		assert_int_equal(b.data[before], '[');
		assert_int_equal(b.data[b.len - 1], '0' + i);
		assert_int_equal(b.data[b.len], '\0');
		assert_true(b.len < b.size);
	}
	assert_int_equal(strlen(b.data), b.len);
	mime_buf_free(&b);
	assert_null(b.data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_printf),
		cmocka_unit_test(test_envelope),
		cmocka_unit_test(test_bodystructure),
		cmocka_unit_test(test_sections),
		cmocka_unit_test(test_headers_and_words),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_nstring),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
