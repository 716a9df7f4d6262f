/* The login access check's two parsers (src/lib/access-proto.h): the
 * login's reader of the checker's answer and the checker's reader of the
 * request, each fed the input in one piece and in chunks whose size byte 0
 * picks. Both runs must end the same way after the same bytes; an accepted
 * request has three non-empty fields without spaces or control characters,
 * within the line limit; an accepted answer is exactly "1\n" or "0\n". */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/access-proto.h"

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

static enum parse_result reply_run(const uint8_t *data, size_t size, size_t chunk, bool *allow_r)
{
	struct access_reply_parser p;
	access_reply_init(&p);
	enum parse_result r = PARSE_MORE;
	/* on past a complete answer too: a byte after it is an error */
	for (size_t off = 0; off < size && r != PARSE_ERROR; off += chunk) {
		size_t len = size - off < chunk ? size - off : chunk;
		r = access_reply_feed(&p, data + off, len, allow_r);
	}
	return r;
}

static void check_field(const char *f)
{
	size_t n = strlen(f);
	CHECK(n > 0 && n < ACCESS_REQUEST_MAX);
	for (size_t i = 0; i < n; i++)
		CHECK((unsigned char)f[i] > ' ' && (unsigned char)f[i] < 0x7f);
}

static enum parse_result request_run(const uint8_t *data, size_t size, size_t chunk,
				     size_t *total_r, char out[3][ACCESS_REQUEST_MAX])
{
	struct access_request_parser *p = malloc(sizeof(*p));
	access_request_init(p);
	enum parse_result r = PARSE_MORE;
	size_t total = 0;
	for (size_t off = 0; off < size && r == PARSE_MORE; off += chunk) {
		size_t len = size - off < chunk ? size - off : chunk;
		size_t consumed = 0;
		struct access_request req;
		const char *error = NULL;
		r = access_request_feed(p, data + off, len, &consumed, &req, &error);
		CHECK(consumed <= len);
		if (r == PARSE_MORE)
			CHECK(consumed == len);
		if (r == PARSE_ERROR)
			CHECK(error != NULL);
		total += consumed;
		if (r == PARSE_OK) {
			CHECK(total <= ACCESS_REQUEST_MAX && data[total - 1] == '\n');
			check_field(req.service);
			check_field(req.rip);
			check_field(req.lip);
			CHECK(strlen(req.service) <= ACCESS_SERVICE_MAX);
			CHECK(strlen(req.service) + strlen(req.rip) + strlen(req.lip) + 3 == total);
			strcpy(out[0], req.service);
			strcpy(out[1], req.rip);
			strcpy(out[2], req.lip);
		}
	}
	*total_r = total;
	free(p);
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	size_t chunk = (size_t)data[0] % 16 + 1;
	data++;
	size--;

	bool a1 = false, a2 = false;
	enum parse_result r1 = reply_run(data, size, size > 0 ? size : 1, &a1);
	enum parse_result r2 = reply_run(data, size, chunk, &a2);
	CHECK(r1 == r2);
	if (r1 == PARSE_OK) {
		CHECK(a1 == a2 && size == 2 && data[1] == '\n' && data[0] == (a1 ? '1' : '0'));
	}

	static char f1[3][ACCESS_REQUEST_MAX], f2[3][ACCESS_REQUEST_MAX];
	size_t t1, t2;
	r1 = request_run(data, size, size > 0 ? size : 1, &t1, f1);
	r2 = request_run(data, size, chunk, &t2, f2);
	CHECK(r1 == r2);
	if (r1 == PARSE_OK) {
		CHECK(t1 == t2);
		for (int i = 0; i < 3; i++)
			CHECK(strcmp(f1[i], f2[i]) == 0);
		/* what the login side formats, the checker reads back */
		char line[ACCESS_REQUEST_MAX + 1];
		size_t n = access_request_format(line, sizeof(line), f1[0], f1[1], f1[2]);
		CHECK(n == t1 && memcmp(line, data, n) == 0);
	}
	return 0;
}
