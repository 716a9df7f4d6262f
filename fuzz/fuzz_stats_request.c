/* The stats process's two request parsers (src/stats/stats-request.h): a
 * /metrics HTTP request and a control-socket command line, each fed the
 * input in one piece and in chunks whose size byte 0 picks. Both runs must
 * end the same way after the same bytes, with the same request; a finished
 * HTTP request ends in its empty line within STATS_HTTP_MAX bytes, and an
 * accepted request line has an upper-case method, a path starting with '/'
 * and HTTP/1.0 or 1.1. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stats/stats-request.h"

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

static enum parse_result http_run(const uint8_t *data, size_t size, size_t chunk,
				  size_t *total_r, struct stats_http_parser *p)
{
	stats_http_init(p);
	enum parse_result r = PARSE_MORE;
	size_t total = 0;
	for (size_t off = 0; off < size && r == PARSE_MORE; off += chunk) {
		size_t len = size - off < chunk ? size - off : chunk;
		size_t consumed = 0;
		const char *error = NULL;
		r = stats_http_feed(p, data + off, len, &consumed, &error);
		CHECK(consumed <= len);
		if (r == PARSE_MORE)
			CHECK(consumed == len);
		if (r == PARSE_ERROR)
			CHECK(error != NULL && total + consumed == STATS_HTTP_MAX);
		total += consumed;
	}
	*total_r = total;
	return r;
}

static void http_check(const uint8_t *data, size_t size, size_t chunk)
{
	static struct stats_http_parser a, b;
	size_t ta, tb;
	enum parse_result ra = http_run(data, size, size > 0 ? size : 1, &ta, &a);
	enum parse_result rb = http_run(data, size, chunk, &tb, &b);
	CHECK(ra == rb && ta == tb);
	if (ra != PARSE_OK)
		return;
	CHECK(ta >= 2 && ta <= STATS_HTTP_MAX && data[ta - 1] == '\n');
	CHECK(a.bad == b.bad && stats_http_answer(&a) == stats_http_answer(&b));
	if (a.bad) {
		CHECK(a.error != NULL);
		return;
	}
	CHECK(strcmp(a.method, b.method) == 0 && strcmp(a.path, b.path) == 0 &&
	      a.minor == b.minor && a.minor <= 1);
	size_t mlen = strlen(a.method);
	CHECK(mlen >= 1 && mlen <= STATS_HTTP_METHOD_MAX);
	for (size_t i = 0; i < mlen; i++)
		CHECK(a.method[i] >= 'A' && a.method[i] <= 'Z');
	CHECK(a.path[0] == '/' && strlen(a.path) <= STATS_HTTP_PATH_MAX);
	if (stats_http_answer(&a) == STATS_HTTP_METRICS)
		CHECK(strcmp(a.method, "GET") == 0 &&
		      (strcmp(a.path, "/") == 0 || strcmp(a.path, "/metrics") == 0));
}

static enum parse_result ctl_run(const uint8_t *data, size_t size, size_t chunk,
				 size_t *total_r, enum ctl_cmd *cmd_r)
{
	struct stats_ctl_parser p;
	stats_ctl_init(&p);
	enum parse_result r = PARSE_MORE;
	size_t total = 0;
	*cmd_r = CTL_CMD_COUNT;
	for (size_t off = 0; off < size && r == PARSE_MORE; off += chunk) {
		size_t len = size - off < chunk ? size - off : chunk;
		size_t consumed = 0;
		const char *error = NULL;
		r = stats_ctl_feed(&p, data + off, len, &consumed, cmd_r, &error);
		CHECK(consumed <= len);
		if (r == PARSE_MORE)
			CHECK(consumed == len);
		if (r == PARSE_ERROR)
			CHECK(error != NULL);
		total += consumed;
	}
	*total_r = total;
	return r;
}

static void ctl_check(const uint8_t *data, size_t size, size_t chunk)
{
	size_t ta, tb;
	enum ctl_cmd ca, cb;
	enum parse_result ra = ctl_run(data, size, size > 0 ? size : 1, &ta, &ca);
	enum parse_result rb = ctl_run(data, size, chunk, &tb, &cb);
	CHECK(ra == rb && ta == tb);
	if (ra != PARSE_OK)
		return;
	CHECK(ca == cb && ca < CTL_CMD_COUNT && ca != CTL_CMD_METRICS);
	CHECK(ta <= STATS_CTL_MAX && data[ta - 1] == '\n');
	if (ca != CTL_CMD_NONE) {
		const char *name = ctl_cmd_name(ca);
		CHECK(ta - 1 >= strlen(name) && memcmp(data, name, strlen(name)) == 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t chunk = (size_t)(data[0] % 16) + 1;
	data++;
	size--;
	http_check(data, size, chunk);
	ctl_check(data, size, chunk);
	return 0;
}
