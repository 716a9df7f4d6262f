/* Content-Transfer-Encoding decoders (RFC 2045 6.7 quoted-printable, 6.8
 * base64) as IMAP BINARY uses them: every sample fed at every split and a
 * byte at a time, every error branch, and mime_part_decode on parsed
 * messages (unknown encodings, composite parts). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/alloc.h"
#include "mail/mime-decode.h"

#include <errno.h>
#include <string.h>

struct sample {
	const char *in;
	size_t in_len; /* 0: strlen */
	const char *out;
	size_t out_len; /* 0: strlen */
};

/* decode in with a split at `split` (and, with bytewise, a byte at a time):
 * PARSE_OK and the output, or PARSE_ERROR */
static enum parse_result decode(enum mime_cte cte, const char *in, size_t len, size_t split,
				bool bytewise, struct mime_buf *out)
{
	struct mime_decoder dec;
	mime_decoder_init(&dec, cte);
	out->len = 0;
	if (bytewise) {
		for (size_t i = 0; i < len; i++) {
			if (mime_decoder_feed(&dec, in + i, 1, out) == PARSE_ERROR)
				return PARSE_ERROR;
		}
	} else if (mime_decoder_feed(&dec, in, split, out) == PARSE_ERROR ||
		   mime_decoder_feed(&dec, in + split, len - split, out) == PARSE_ERROR) {
		return PARSE_ERROR;
	}
	return mime_decoder_finish(&dec, out);
}

static void check_valid(enum mime_cte cte, const struct sample *s, size_t n)
{
	struct mime_buf out = { 0 };
	for (size_t k = 0; k < n; k++) {
		size_t len = s[k].in_len != 0 ? s[k].in_len : strlen(s[k].in);
		size_t want_len = s[k].out_len != 0 ? s[k].out_len : strlen(s[k].out);
		for (size_t split = 0; split <= len + 1; split++) {
			bool bytewise = split == len + 1;
			enum parse_result r = decode(cte, s[k].in, len, bytewise ? 0 : split, bytewise, &out);
			if (r != PARSE_OK || out.len != want_len || memcmp(out.data, s[k].out, want_len) != 0)
				fail_msg("sample %zu split %zu: result %d, got %zu bytes \"%.*s\"", k, split, r,
					 out.len, (int)out.len, out.data != NULL ? out.data : "");
			/* the output stays within the promised bound */
			assert_true(out.len <= len + 3);
		}
	}
	mime_buf_free(&out);
}

static void check_invalid(enum mime_cte cte, const char *const *in, size_t n)
{
	struct mime_buf out = { 0 };
	for (size_t k = 0; k < n; k++) {
		size_t len = strlen(in[k]);
		for (size_t split = 0; split <= len + 1; split++) {
			bool bytewise = split == len + 1;
			if (decode(cte, in[k], len, bytewise ? 0 : split, bytewise, &out) != PARSE_ERROR)
				fail_msg("invalid sample %zu (\"%s\") accepted at split %zu", k, in[k], split);
		}
	}
	mime_buf_free(&out);
}

static void test_base64(void **state)
{
	(void)state;
	static const struct sample valid[] = {
		{ "aGVsbG8gd29ybGQ=", 0, "hello world", 0 },
		/* line breaks and blank lines around the data */
		{ "\r\naGVs\r\nbG8gd29y\r\nbGQ=\r\n\r\n", 0, "hello world", 0 },
		/* spaces and tabs anywhere between characters */
		{ "  aGVs    \r\n bG8g  \r\n   d29y  \t \r\n    bGQ= \r\n\r\n", 0, "hello world", 0 },
		{ "aGVsbG8gdG8geW91IHRv\r\nbw==", 0, "hello to you too", 0 },
		/* bare CR, CRLF and bare LF in the decoded data */
		{ "YWJjZGVmZw1oaWprbA0KbW5vCnBxcnN0dXZxeHl6", 0, "abcdefg\rhijkl\r\nmno\npqrstuvqxyz", 0 },
		{ "AA==", 0, "\0", 1 },
		{ "AP8A", 0, "\0\xff\0", 3 },
		/* padding split by whitespace; padding missing at the end */
		{ "aA= =", 0, "h", 0 },
		{ "aGk", 0, "hi", 0 },
		{ "aA", 0, "h", 0 },
		{ "aA=", 0, "h", 0 },
		{ "  \r\n", 0, "", 0 },
	};
	check_valid(MIME_CTE_BASE64, valid, sizeof(valid) / sizeof(valid[0]));
	static const char *const invalid[] = {
		"aGk*",        /* outside the alphabet */
		"aGk=aGk=",    /* data after the padding */
		"aA==\r\nAA", /* ... also on a later line */
		"a===",        /* padding after one character */
		"=",           /* padding first */
		"aA===",       /* a third '=' */
		"aGVsb",       /* one character of a quantum at the end */
		"aGVs-_",      /* base64url is another alphabet */
	};
	check_invalid(MIME_CTE_BASE64, invalid, sizeof(invalid) / sizeof(invalid[0]));
}

static void test_quoted_printable(void **state)
{
	(void)state;
	static const struct sample valid[] = {
		/* imaptest's sample shape: trailing whitespace, soft breaks with
		 * and without whitespace after "=", an encoded "b" */
		{ "hello  \r\nbar=\r\n\r\nfoo\t=\r\nbar\r\nfoo\t \t= \r\n=62\r\nfoo = \t\r\nbar\r\n"
		  "foo =\r\n=62\r\nfoo  \r\nbar=\r\n\r\nfoo_bar\r\n", 0,
		  "hello\r\nbar\r\nfoo\tbar\r\nfoo\t \tb\r\nfoo bar\r\nfoo b\r\nfoo\r\nbar\r\nfoo_bar\r\n", 0 },
		{ "caf=C3=A9 cr=E8me", 0, "caf\xc3\xa9 cr\xe8me", 0 },
		{ "caf=c3=a9", 0, "caf\xc3\xa9", 0 },
		{ "=00=FF", 0, "\0\xff", 2 },
		{ "a=\nb", 0, "ab", 0 },
		{ "a= \t\r\nb", 0, "ab", 0 },
		/* an encoded space is data, not trailing whitespace */
		{ "a=20\r\n", 0, "a \r\n", 0 },
		{ "a =20 \r\n", 0, "a  \r\n", 0 },
		/* trailing whitespace at the end of the data, bare LF and CR */
		{ "a \t", 0, "a", 0 },
		{ "a  \nb", 0, "a\nb", 0 },
		{ "a\rb", 0, "a\rb", 0 },
		{ "a\r\r\nb", 0, "a\r\r\nb", 0 },
		{ "a\r", 0, "a\r", 0 },
		/* a soft line break ending the data */
		{ "x=", 0, "x", 0 },
		{ "x= ", 0, "x", 0 },
		{ "x=\r", 0, "x", 0 },
		{ "8bit \xe9t\xe9", 0, "8bit \xe9t\xe9", 0 },
	};
	check_valid(MIME_CTE_QP, valid, sizeof(valid) / sizeof(valid[0]));
	static const char *const invalid[] = {
		"=4",       /* "=" and one hex digit at the end */
		"=4G",      /* second digit not hex */
		"=G4",      /* "=" followed by neither hex nor a line end */
		"a= x\r\n", /* whitespace after "=" but no line end */
		"a=\rx",    /* CR after "=" without LF */
		"a= \rb",
	};
	check_invalid(MIME_CTE_QP, invalid, sizeof(invalid) / sizeof(invalid[0]));
}

static void test_identity_and_unknown(void **state)
{
	(void)state;
	assert_int_equal(mime_cte_parse(NULL), MIME_CTE_IDENTITY);
	assert_int_equal(mime_cte_parse("7BIT"), MIME_CTE_IDENTITY);
	assert_int_equal(mime_cte_parse("8bit"), MIME_CTE_IDENTITY);
	assert_int_equal(mime_cte_parse("Binary"), MIME_CTE_IDENTITY);
	assert_int_equal(mime_cte_parse("BASE64"), MIME_CTE_BASE64);
	assert_int_equal(mime_cte_parse("Quoted-Printable"), MIME_CTE_QP);
	assert_int_equal(mime_cte_parse("x-uuencode"), MIME_CTE_UNKNOWN);
	static const struct sample same[] = {
		{ "=ZZ \r\n\0x", 8, "=ZZ \r\n\0x", 8 },
	};
	check_valid(MIME_CTE_IDENTITY, same, 1);
	static const char *const any[] = { "abc", "" };
	check_invalid(MIME_CTE_UNKNOWN, any, 2);
	/* an error sticks */
	struct mime_decoder dec;
	struct mime_buf out = { 0 };
	mime_decoder_init(&dec, MIME_CTE_BASE64);
	assert_int_equal(mime_decoder_feed(&dec, "*", 1, &out), PARSE_ERROR);
	assert_int_equal(mime_decoder_feed(&dec, "AAAA", 4, &out), PARSE_ERROR);
	assert_int_equal(mime_decoder_finish(&dec, &out), PARSE_ERROR);
	mime_buf_free(&out);
}

#define MULTI(cte, body)                                                                     \
	"From: a@b\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n"       \
	"Content-Type: text/plain\r\nContent-Transfer-Encoding: " cte "\r\n\r\n" body "\r\n" \
	"--b\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n" \
	"Subject: inner\r\n\r\nnot base64!\r\n--b--\r\n"

static int part_decode(const char *msg, const char *numbers, struct mime_buf *out)
{
	struct mime_part *root = mime_parse(msg, strlen(msg));
	const struct mime_part *part = mime_find_part(root, numbers, strlen(numbers));
	assert_non_null(part);
	int ret = mime_part_decode(part, msg, false, out);
	mime_free(root);
	return ret;
}

static void test_part_decode(void **state)
{
	(void)state;
	struct mime_buf out = { 0 };
	assert_int_equal(part_decode(MULTI("base64", "aGVsbG8="), "1", &out), 0);
	assert_string_equal(out.data, "hello");
	assert_int_equal(part_decode(MULTI("quoted-printable", "h=C3=A9 "), "1", &out), 0);
	assert_string_equal(out.data, "h\xc3\xa9");
	/* a message/rfc822 part is never encoded: its label is ignored */
	assert_int_equal(part_decode(MULTI("7bit", "x"), "2", &out), 0);
	assert_string_equal(out.data, "Subject: inner\r\n\r\nnot base64!");
	/* a composite part: its encoded leaves decoded, their headers say
	 * "binary" (as Dovecot); BINARY[] keeps the message's header */
	const char *top = MULTI("base64", "aGVsbG8=");
	struct mime_part *root = mime_parse(top, strlen(top));
	static const char want_body[] =
		"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: binary\r\n\r\nhello\r\n"
		"--b\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
		"Subject: inner\r\n\r\nnot base64!\r\n--b--\r\n";
	assert_int_equal(mime_part_decode(root, top, false, &out), 0);
	assert_string_equal(out.data, want_body);
	assert_int_equal(mime_part_decode(root, top, true, &out), 0);
	assert_int_equal(out.len, root->body_off + strlen(want_body));
	assert_memory_equal(out.data, top, root->body_off);
	mime_free(root);
	/* a single-part message as a whole: header rewritten, body decoded */
	const char *one = "Subject: s\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\na=3Db\r\n";
	root = mime_parse(one, strlen(one));
	assert_int_equal(mime_part_decode(root, one, true, &out), 0);
	assert_string_equal(out.data, "Subject: s\r\nContent-Transfer-Encoding: binary\r\n\r\na=b\r\n");
	mime_free(root);
	/* an unknown encoding inside a multipart fails the whole */
	const char *unk = MULTI("x-uuencode", "begin");
	root = mime_parse(unk, strlen(unk));
	assert_int_equal(mime_part_decode(root, unk, true, &out), -ENOTSUP);
	assert_int_equal(out.len, 0);
	mime_free(root);
	assert_int_equal(part_decode(MULTI("x-uuencode", "begin 644 x"), "1", &out), -ENOTSUP);
	assert_int_equal(out.len, 0);
	assert_int_equal(part_decode(MULTI("base64", "aGVs*G8="), "1", &out), -EILSEQ);
	assert_int_equal(out.len, 0); /* nothing half-decoded is left */
	assert_int_equal(part_decode(MULTI("quoted-printable", "bad =XY"), "1", &out), -EILSEQ);
	/* a single-part message: part 1 is its body */
	const char *single = "Content-Transfer-Encoding: base64\r\n\r\nAP8=\r\n";
	assert_int_equal(part_decode(single, "1", &out), 0);
	assert_int_equal(out.len, 2);
	assert_memory_equal(out.data, "\0\xff", 2);
	mime_buf_free(&out);
}

static void test_binary_to_base64(void **state)
{
	(void)state;
	size_t len;
	/* nothing a Maildir cannot keep: no conversion */
	const char *clean = "Subject: a\r\n\r\nline\r\n";
	assert_null(mime_binary_to_base64(clean, strlen(clean), &len));
	/* a NUL, bare LFs: the part becomes base64, its old CTE field goes */
	static const char msg[] = "Subject: a\r\nContent-Transfer-Encoding: binary\r\n"
				  "X-After: 1\r\n\r\n\0-\xe4\n\r\n\n";
	char *got = mime_binary_to_base64(msg, sizeof(msg) - 1, &len);
	assert_non_null(got);
	static const char want[] = "Subject: a\r\nX-After: 1\r\nContent-Transfer-Encoding: base64\r\n\r\n"
				   "AC3kCg0KCg==";
	assert_int_equal(len, sizeof(want) - 1);
	assert_memory_equal(got, want, len);
	/* and it decodes back to the bytes sent */
	struct mime_part *root = mime_parse(got, len);
	struct mime_buf out = { 0 };
	assert_int_equal(mime_part_decode(root, got, false, &out), 0);
	assert_int_equal(out.len, 7);
	assert_memory_equal(out.data, "\0-\xe4\n\r\n\n", 7);
	mime_buf_free(&out);
	mime_free(root);
	rg_free(got);
	/* in a multipart only the binary leaf changes; a long body wraps at 76 */
	struct mime_buf m = { 0 };
	mime_buf_str(&m, "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\ntext\r\n--b\r\n"
			 "Content-Type: application/octet-stream\r\n\r\n");
	for (int i = 0; i < 100; i++)
		mime_buf_add(&m, "\0", 1);
	mime_buf_str(&m, "\r\n--b--\r\n");
	got = mime_binary_to_base64(m.data, m.len, &len);
	assert_non_null(got);
	assert_non_null(strstr(got, "--b\r\n\r\ntext\r\n--b\r\nContent-Type: application/octet-stream\r\n"
				    "Content-Transfer-Encoding: base64\r\n\r\n"
				    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n"
				    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\r\n--b--\r\n"));
	rg_free(got);
	mime_buf_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_quoted_printable),
		cmocka_unit_test(test_identity_and_unknown),
		cmocka_unit_test(test_part_decode),
		cmocka_unit_test(test_binary_to_base64),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
