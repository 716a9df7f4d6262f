/* test_access_proto.c — the login access check's wire protocol: the
 * answer parser (login side) and the request parser (checker side) at every
 * split of every sample, and every error branch. */
#include "lib/access-proto.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

static enum parse_result reply_split(const char *s, size_t split, bool *allow)
{
	struct access_reply_parser p;
	access_reply_init(&p);
	size_t len = strlen(s);
	enum parse_result r = access_reply_feed(&p, (const uint8_t *)s, split, allow);
	if (r == PARSE_ERROR)
		return r;
	if (split == len)
		return r;
	return access_reply_feed(&p, (const uint8_t *)s + split, len - split, allow);
}

static void test_reply_ok(void **state)
{
	(void)state;
	for (size_t split = 0; split <= 2; split++) {
		bool allow = false;
		assert_int_equal(reply_split("1\n", split, &allow), PARSE_OK);
		assert_true(allow);
		allow = true;
		assert_int_equal(reply_split("0\n", split, &allow), PARSE_OK);
		assert_false(allow);
	}
	/* byte by byte */
	struct access_reply_parser p;
	bool allow = false;
	access_reply_init(&p);
	assert_int_equal(access_reply_feed(&p, (const uint8_t *)"", 0, &allow), PARSE_MORE);
	assert_int_equal(access_reply_feed(&p, (const uint8_t *)"1", 1, &allow), PARSE_MORE);
	assert_int_equal(access_reply_feed(&p, (const uint8_t *)"\n", 1, &allow), PARSE_OK);
	assert_true(allow);
}

static void test_reply_bad(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"2\n", "x", "\n", "1\r\n", "11\n", "1 \n", "1\n\n", "0\n0\n", "yes\n", "-1\n", "01\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		for (size_t split = 0; split <= strlen(bad[i]); split++) {
			bool allow = false;
			enum parse_result r = reply_split(bad[i], split, &allow);
			assert_int_equal(r, PARSE_ERROR);
		}
	}
	/* incomplete is MORE, not an answer */
	bool allow = false;
	assert_int_equal(reply_split("1", 1, &allow), PARSE_MORE);
	/* a byte after the answer, in a later read */
	struct access_reply_parser p;
	access_reply_init(&p);
	assert_int_equal(access_reply_feed(&p, (const uint8_t *)"1\n", 2, &allow), PARSE_OK);
	assert_int_equal(access_reply_feed(&p, (const uint8_t *)"x", 1, &allow), PARSE_ERROR);
	/* a NUL byte */
	access_reply_init(&p);
	assert_int_equal(access_reply_feed(&p, (const uint8_t *)"\0\n", 2, &allow), PARSE_ERROR);
}

static enum parse_result request_split(const char *s, size_t len, size_t split, size_t *used,
				       struct access_request *req, const char **error,
				       struct access_request_parser *p)
{
	access_request_init(p);
	size_t c1 = 0, c2 = 0;
	enum parse_result r = access_request_feed(p, (const uint8_t *)s, split, &c1, req, error);
	*used = c1;
	if (r != PARSE_MORE || split == len)
		return r;
	assert_int_equal(c1, split);
	r = access_request_feed(p, (const uint8_t *)s + split, len - split, &c2, req, error);
	*used = c1 + c2;
	return r;
}

static void test_request_ok(void **state)
{
	(void)state;
	static const struct {
		const char *line, *service, *rip, *lip;
	} good[] = {
		{ "imap 192.0.2.7 198.51.100.1\n", "imap", "192.0.2.7", "198.51.100.1" },
		{ "pop3 2001:db8::7 ::1\n", "pop3", "2001:db8::7", "::1" },
		{ "imap - -\n", "imap", "-", "-" },
		{ "imap ::ffff:10.0.0.1 10.0.0.2\n", "imap", "::ffff:10.0.0.1", "10.0.0.2" },
	};
	struct access_request_parser p;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		size_t len = strlen(good[i].line);
		for (size_t split = 0; split <= len; split++) {
			struct access_request req;
			const char *error = NULL;
			size_t used;
			assert_int_equal(request_split(good[i].line, len, split, &used, &req, &error, &p),
					 PARSE_OK);
			assert_int_equal(used, len);
			assert_string_equal(req.service, good[i].service);
			assert_string_equal(req.rip, good[i].rip);
			assert_string_equal(req.lip, good[i].lip);
		}
		/* one byte at a time */
		access_request_init(&p);
		enum parse_result r = PARSE_MORE;
		struct access_request req;
		const char *error;
		for (size_t k = 0; k < len; k++) {
			size_t c;
			r = access_request_feed(&p, (const uint8_t *)good[i].line + k, 1, &c, &req, &error);
			assert_int_equal(c, 1);
			assert_int_equal(r, k + 1 == len ? PARSE_OK : PARSE_MORE);
		}
		assert_string_equal(req.rip, good[i].rip);
	}
	/* bytes after the line are not the request's */
	const char *two = "imap 1.2.3.4 5.6.7.8\nextra";
	struct access_request req;
	const char *error;
	size_t used;
	assert_int_equal(request_split(two, strlen(two), strlen(two), &used, &req, &error, &p),
			 PARSE_OK);
	assert_int_equal(used, strlen("imap 1.2.3.4 5.6.7.8\n"));
}

static void test_request_bad(void **state)
{
	(void)state;
	char longline[200];
	memset(longline, 'a', sizeof(longline));
	memcpy(longline, "imap 1.2.3.4 ", 13);
	longline[sizeof(longline) - 2] = '\n';
	longline[sizeof(longline) - 1] = '\0';
	static const char *const bad[] = {
		"imap 1.2.3.4\n", "imap\n", "\n", "imap 1.2.3.4 5.6.7.8 x\n", "imap  1.2.3.4 5.6.7.8\n",
		" imap 1.2.3.4 5.6.7.8\n", "imap 1.2.3.4 5.6.7.8 \n", "imap 1.2.3.4 5.6.7.8\r\n",
		"imap\t1.2.3.4 5.6.7.8\n", "imapimapimapimapimap 1.2.3.4 5.6.7.8\n",
		"imap 1.2.3.4 5.6.7.\x80\n", "imap 1.2.3.4 5.6\x7f.7.8\n", NULL,
	};
	struct access_request_parser p;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *s = bad[i] != NULL ? bad[i] : longline;
		size_t len = strlen(s);
		for (size_t split = 0; split <= len; split++) {
			struct access_request req;
			const char *error = NULL;
			size_t used;
			assert_int_equal(request_split(s, len, split, &used, &req, &error, &p),
					 PARSE_ERROR);
			assert_non_null(error);
		}
	}
	/* a NUL is a control character */
	struct access_request req;
	const char *error = NULL;
	size_t used;
	assert_int_equal(request_split("imap 1.2\0.3.4 x\n", 16, 16, &used, &req, &error, &p),
			 PARSE_ERROR);
}

static void test_format(void **state)
{
	(void)state;
	char buf[ACCESS_REQUEST_MAX + 1];
	assert_int_equal(access_request_format(buf, sizeof(buf), "imap", "192.0.2.7", "10.0.0.1"),
			 strlen("imap 192.0.2.7 10.0.0.1\n"));
	assert_string_equal(buf, "imap 192.0.2.7 10.0.0.1\n");
	assert_int_equal(access_request_format(buf, sizeof(buf), "pop3", "", NULL), 9);
	assert_string_equal(buf, "pop3 - -\n");
	/* what is formatted parses back */
	struct access_request_parser p;
	struct access_request req;
	const char *error;
	size_t used;
	access_request_init(&p);
	assert_int_equal(access_request_feed(&p, (const uint8_t *)buf, strlen(buf), &used, &req,
					     &error), PARSE_OK);
	assert_string_equal(req.service, "pop3");
	/* refused: empty or spaced fields, a long service, too small a buffer */
	assert_int_equal(access_request_format(buf, sizeof(buf), "", "1.2.3.4", "1.2.3.4"), 0);
	assert_int_equal(access_request_format(buf, sizeof(buf), "im ap", "1.2.3.4", "1.2.3.4"), 0);
	assert_int_equal(access_request_format(buf, sizeof(buf), "imap", "1.2.3.4\n", "x"), 0);
	assert_int_equal(access_request_format(buf, sizeof(buf), "imapimapimapimap", "1", "2"), 0);
	assert_int_equal(access_request_format(buf, 10, "imap", "1.2.3.4", "5.6.7.8"), 0);
	char big[130];
	memset(big, '1', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(access_request_format(buf, sizeof(buf), "imap", big, "x"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reply_ok),	cmocka_unit_test(test_reply_bad),
		cmocka_unit_test(test_request_ok),	cmocka_unit_test(test_request_bad),
		cmocka_unit_test(test_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
