/* stats-request: the HTTP request of a /metrics scrape and the control
 * socket's command line, fed whole, at every split point and one byte at a
 * time; every error branch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "stats/stats-request.h"

/* feed data in pieces: first `split` bytes, then the rest one chunk or
 * (bytewise) one byte at a time; returns the final result and the total
 * consumed */
static enum parse_result http_feed_split(struct stats_http_parser *p, const char *data,
					 size_t len, size_t split, bool bytewise,
					 size_t *consumed_r, const char **error_r)
{
	size_t pos = 0, consumed;
	enum parse_result r = PARSE_MORE;
	*consumed_r = 0;
	while (pos < len) {
		size_t n = pos == 0 ? split : bytewise ? 1 : len - pos;
		if (n == 0)
			n = bytewise ? 1 : len;
		if (n > len - pos)
			n = len - pos;
		r = stats_http_feed(p, (const uint8_t *)data + pos, n, &consumed, error_r);
		*consumed_r += consumed;
		if (r != PARSE_MORE)
			return r;
		assert_int_equal(consumed, n);
		pos += n;
	}
	return r;
}

struct http_case {
	const char *req;
	enum stats_http_answer answer;
	const char *method, *path; /* NULL: bad */
	unsigned minor;
};

static const struct http_case http_cases[] = {
	{ "GET /metrics HTTP/1.0\r\n\r\n", STATS_HTTP_METRICS, "GET", "/metrics", 0 },
	{ "GET / HTTP/1.1\r\nHost: localhost:9900\r\nAccept: */*\r\n\r\n", STATS_HTTP_METRICS,
	  "GET", "/", 1 },
	{ "GET /metrics HTTP/1.1\nUser-Agent: Prometheus/2.45\n\n", STATS_HTTP_METRICS, "GET",
	  "/metrics", 1 },
	{ "GET /metrics HTTP/1.0\r\n\n", STATS_HTTP_METRICS, "GET", "/metrics", 0 },
	{ "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n", STATS_HTTP_BAD_METHOD, "POST",
	  "/metrics", 0 },
	{ "HEAD /metrics HTTP/1.1\r\n\r\n", STATS_HTTP_BAD_METHOD, "HEAD", "/metrics", 1 },
	{ "GET /nope HTTP/1.0\r\n\r\n", STATS_HTTP_NOT_FOUND, "GET", "/nope", 0 },
	{ "GET /metrics?x=1 HTTP/1.0\r\n\r\n", STATS_HTTP_NOT_FOUND, "GET", "/metrics?x=1", 0 },
	/* malformed request lines: still read to the empty line, then 400 */
	{ "\x16\x03\x01garbage\r\n\r\n", STATS_HTTP_BAD_REQUEST, NULL, NULL, 0 },
	{ "\r\n\r\n", STATS_HTTP_BAD_REQUEST, NULL, NULL, 0 },
	{ "\n\n", STATS_HTTP_BAD_REQUEST, NULL, NULL, 0 },
	{ "GET /metrics\r\n\r\n", STATS_HTTP_BAD_REQUEST, NULL, NULL, 0 },
	{ "GET /metrics HTTP/1.0 extra\r\n\r\n", STATS_HTTP_BAD_REQUEST, NULL, NULL, 0 },
	{ "get /metrics HTTP/1.0\r\n\r\n", STATS_HTTP_BAD_REQUEST, NULL, NULL, 0 },
	{ "GETTINGS /metrics HTTP/1.0\r\n\r\n", STATS_HTTP_BAD_REQUEST, NULL, NULL, 0 },
	{ " /metrics HTTP/1.0\r\n\r\n", STATS_HTTP_BAD_REQUEST, NULL, NULL, 0 },
	{ "GET metrics HTTP/1.0\r\n\r\n", STATS_HTTP_BAD_REQUEST, NULL, NULL, 0 },
	{ "GET  HTTP/1.0\r\n\r\n", STATS_HTTP_BAD_REQUEST, NULL, NULL, 0 },
	{ "GET /metrics HTTP/2.0\r\n\r\n", STATS_HTTP_BAD_REQUEST, NULL, NULL, 0 },
	{ "GET /metrics HTTP/1.2\r\n\r\n", STATS_HTTP_BAD_REQUEST, NULL, NULL, 0 },
	{ "GET /metrics HTTP/1.0\r\r\n\r\n", STATS_HTTP_BAD_REQUEST, NULL, NULL, 0 },
	{ "GET /metrics HTTP/1.\r\n\r\n", STATS_HTTP_BAD_REQUEST, NULL, NULL, 0 },
	{ "GET /0123456789012345678901234567890123456789012345678901234567890123 "
	  "HTTP/1.0\r\n\r\n", STATS_HTTP_BAD_REQUEST, NULL, NULL, 0 },
	{ "GET /metrics HTTP/1.0 ..........................................................."
	  "....................................\r\n\r\n", STATS_HTTP_BAD_REQUEST, NULL, NULL, 0 },
	{ "GET /me\0trics HTTP/1.0\r\n\r\n", STATS_HTTP_NOT_FOUND, "GET", NULL, 0 },
};

static void check_http_case(const struct http_case *c, const char *req, size_t len)
{
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		for (size_t split = 0; split <= len; split++) {
			struct stats_http_parser p;
			stats_http_init(&p);
			size_t consumed;
			const char *error = NULL;
			enum parse_result r = http_feed_split(&p, req, len, split, bytewise,
							      &consumed, &error);
			assert_int_equal(r, PARSE_OK);
			assert_int_equal(consumed, len);
			assert_int_equal(stats_http_answer(&p), c->answer);
			if (c->method != NULL) {
				assert_false(p.bad);
				assert_string_equal(p.method, c->method);
				if (c->path != NULL)
					assert_string_equal(p.path, c->path);
				assert_int_equal(p.minor, c->minor);
			} else {
				assert_true(p.bad);
				assert_non_null(p.error);
			}
		}
	}
}

static void test_http_cases_every_split(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(http_cases) / sizeof(http_cases[0]); i++) {
		const struct http_case *c = &http_cases[i];
		size_t len = strlen(c->req);
		if (c->path == NULL && c->method != NULL) {
			/* "GET /me\0trics HTTP/1.0\r\n\r\n": a NUL in the path */
			static const char nul[] = "GET /me\0trics HTTP/1.0\r\n\r\n";
			len = sizeof(nul) - 1;
			check_http_case(c, nul, len);
			continue;
		}
		check_http_case(c, c->req, len);
	}
}

/* bytes after the empty line are not the request's */
static void test_http_stops_at_end(void **state)
{
	(void)state;
	const char *req = "GET /metrics HTTP/1.0\r\n\r\nGET /other HTTP/1.0\r\n\r\n";
	struct stats_http_parser p;
	stats_http_init(&p);
	size_t consumed;
	const char *error;
	assert_int_equal(stats_http_feed(&p, (const uint8_t *)req, strlen(req), &consumed, &error),
			 PARSE_OK);
	assert_int_equal(consumed, strlen("GET /metrics HTTP/1.0\r\n\r\n"));
	assert_string_equal(p.path, "/metrics");
	/* once done, more input changes nothing */
	assert_int_equal(stats_http_feed(&p, (const uint8_t *)"x", 1, &consumed, &error), PARSE_OK);
	assert_int_equal(consumed, 0);
	assert_string_equal(p.path, "/metrics");
}

/* no end within STATS_HTTP_MAX bytes: an error, at exactly that byte */
static void test_http_too_large(void **state)
{
	(void)state;
	static char big[STATS_HTTP_MAX + 100];
	memset(big, 'A', sizeof(big));
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		struct stats_http_parser p;
		stats_http_init(&p);
		size_t consumed;
		const char *error = NULL;
		enum parse_result r = http_feed_split(&p, big, sizeof(big), 100, bytewise,
						      &consumed, &error);
		assert_int_equal(r, PARSE_ERROR);
		assert_int_equal(consumed, STATS_HTTP_MAX);
		assert_string_equal(error, "request too large");
	}
	/* headers count too: a long header block without its end */
	struct stats_http_parser p;
	stats_http_init(&p);
	size_t consumed, total = 0;
	const char *error;
	const char *line = "GET / HTTP/1.0\r\n";
	assert_int_equal(stats_http_feed(&p, (const uint8_t *)line, strlen(line), &consumed, &error),
			 PARSE_MORE);
	total += consumed;
	enum parse_result r = PARSE_MORE;
	for (int i = 0; i < 200 && r == PARSE_MORE; i++) {
		const char *h = "X-Header: value\r\n";
		r = stats_http_feed(&p, (const uint8_t *)h, strlen(h), &consumed, &error);
		total += consumed;
	}
	assert_int_equal(r, PARSE_ERROR);
	assert_int_equal(total, STATS_HTTP_MAX);
	/* a request of exactly STATS_HTTP_MAX bytes fits */
	char exact[STATS_HTTP_MAX + 1];
	int n = snprintf(exact, sizeof(exact), "GET / HTTP/1.0\r\nX: ");
	memset(exact + n, 'y', STATS_HTTP_MAX - (size_t)n - 4);
	memcpy(exact + STATS_HTTP_MAX - 4, "\r\n\r\n", 4);
	stats_http_init(&p);
	assert_int_equal(stats_http_feed(&p, (const uint8_t *)exact, STATS_HTTP_MAX, &consumed,
					 &error), PARSE_OK);
	assert_int_equal(consumed, STATS_HTTP_MAX);
	assert_int_equal(stats_http_answer(&p), STATS_HTTP_METRICS);
}

struct ctl_case {
	const char *line;
	enum ctl_cmd cmd;
};

static const struct ctl_case ctl_cases[] = {
	{ "who\n", CTL_CMD_WHO },
	{ "who -1\n", CTL_CMD_WHO_COUNT },
	{ "stats\r\n", CTL_CMD_STATS },
	{ "reload  \r\n", CTL_CMD_RELOAD },
	{ "metrics\n", CTL_CMD_NONE },     /* HTTP's, not the control socket's */
	{ "who -2\n", CTL_CMD_NONE },
	{ "WHO\n", CTL_CMD_NONE },
	{ " who\n", CTL_CMD_NONE },
	{ "\n", CTL_CMD_NONE },
	{ "stop\n", CTL_CMD_NONE },
	{ "whoooooooooooooooooooooooooooooooooooooooooooo\n", CTL_CMD_NONE },
};

static void test_ctl_every_split(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(ctl_cases) / sizeof(ctl_cases[0]); i++) {
		const char *line = ctl_cases[i].line;
		size_t len = strlen(line);
		for (size_t split = 0; split <= len; split++) {
			struct stats_ctl_parser p;
			stats_ctl_init(&p);
			size_t consumed;
			enum ctl_cmd cmd = CTL_CMD_COUNT;
			const char *error;
			enum parse_result r = PARSE_MORE;
			if (split > 0) {
				r = stats_ctl_feed(&p, (const uint8_t *)line, split, &consumed, &cmd,
						   &error);
				if (split < len) {
					assert_int_equal(r, PARSE_MORE);
					assert_int_equal(consumed, split);
				}
			}
			if (split < len)
				r = stats_ctl_feed(&p, (const uint8_t *)line + split, len - split,
						   &consumed, &cmd, &error);
			assert_int_equal(r, PARSE_OK);
			assert_int_equal(cmd, ctl_cases[i].cmd);
		}
	}
	/* bytes after the LF are not the line's */
	struct stats_ctl_parser p;
	stats_ctl_init(&p);
	size_t consumed;
	enum ctl_cmd cmd;
	const char *error;
	assert_int_equal(stats_ctl_feed(&p, (const uint8_t *)"who\nstats\n", 10, &consumed, &cmd,
					&error), PARSE_OK);
	assert_int_equal(consumed, 4);
	assert_int_equal(cmd, CTL_CMD_WHO);
}

static void test_ctl_too_long(void **state)
{
	(void)state;
	static uint8_t big[STATS_CTL_MAX + 10];
	memset(big, 'w', sizeof(big));
	struct stats_ctl_parser p;
	stats_ctl_init(&p);
	size_t consumed;
	enum ctl_cmd cmd;
	const char *error = NULL;
	assert_int_equal(stats_ctl_feed(&p, big, sizeof(big), &consumed, &cmd, &error), PARSE_ERROR);
	assert_int_equal(consumed, STATS_CTL_MAX - 1);
	assert_string_equal(error, "command line too long");
	/* the longest line that fits (with its LF) is no command */
	big[STATS_CTL_MAX - 1] = '\n';
	stats_ctl_init(&p);
	assert_int_equal(stats_ctl_feed(&p, big, STATS_CTL_MAX, &consumed, &cmd, &error), PARSE_OK);
	assert_int_equal(consumed, STATS_CTL_MAX);
	assert_int_equal(cmd, CTL_CMD_NONE);
}

static void test_cmd_names(void **state)
{
	(void)state;
	for (unsigned c = CTL_CMD_NONE + 1; c < CTL_CMD_COUNT; c++) {
		const char *n = ctl_cmd_name((enum ctl_cmd)c);
		assert_int_equal(ctl_cmd_lookup(n, strlen(n)), c);
	}
	assert_int_equal(ctl_cmd_lookup("who", 2), CTL_CMD_NONE);
	assert_int_equal(ctl_cmd_lookup("", 0), CTL_CMD_NONE);
	assert_string_equal(ctl_cmd_name(CTL_CMD_COUNT), "");
}

/* `auth flush USER...`: the one command with arguments */
static void test_ctl_auth_flush(void **state)
{
	(void)state;
	struct stats_ctl_parser p;
	size_t consumed;
	enum ctl_cmd cmd;
	const char *error = NULL;
	static const char line[] = "auth flush alice bob@example.com \r\n";
	stats_ctl_init(&p);
	assert_int_equal(stats_ctl_feed(&p, (const uint8_t *)line, sizeof(line) - 1, &consumed,
					&cmd, &error), PARSE_OK);
	assert_int_equal(cmd, CTL_CMD_AUTH_FLUSH);
	assert_string_equal(stats_ctl_args(&p), "alice bob@example.com");
	stats_ctl_init(&p);
	assert_int_equal(stats_ctl_feed(&p, (const uint8_t *)"auth flush\n", 11, &consumed, &cmd,
					&error), PARSE_OK);
	assert_int_equal(cmd, CTL_CMD_AUTH_FLUSH);
	assert_string_equal(stats_ctl_args(&p), "");
	/* a control character in a name: no command */
	stats_ctl_init(&p);
	assert_int_equal(stats_ctl_feed(&p, (const uint8_t *)"auth flush a\tb\n", 15, &consumed,
					&cmd, &error), PARSE_OK);
	assert_int_equal(cmd, CTL_CMD_NONE);
	stats_ctl_init(&p);
	assert_int_equal(stats_ctl_feed(&p, (const uint8_t *)"auth flushx\n", 12, &consumed, &cmd,
					&error), PARSE_OK);
	assert_int_equal(cmd, CTL_CMD_NONE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ctl_auth_flush),
		cmocka_unit_test(test_http_cases_every_split),
		cmocka_unit_test(test_http_stops_at_end),
		cmocka_unit_test(test_http_too_large),
		cmocka_unit_test(test_ctl_every_split),
		cmocka_unit_test(test_ctl_too_long),
		cmocka_unit_test(test_cmd_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
