/* The backend login dialogue (src/proxy/proxy-backend.c) fed a backend's
 * bytes. Byte 0: bit 0 POP3, bit 1 a master user, bits 2-6 chunk size. The
 * same input whole and in chunks must end the same way at the same byte and
 * send the same commands; every command sent is whole CRLF lines. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy-backend.h"

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

struct out {
	uint8_t buf[8192];
	size_t len;
};

static void f_send(void *ctx, const void *data, size_t len)
{
	struct out *o = ctx;
	const uint8_t *p = data;
	CHECK(len >= 2 && p[len - 2] == '\r' && p[len - 1] == '\n');
	CHECK(o->len + len <= sizeof(o->buf));
	memcpy(o->buf + o->len, data, len);
	o->len += len;
}

static enum backend_result run(const struct backend_login_config *cfg, const uint8_t *data,
			       size_t size, size_t chunk, struct out *o, size_t *consumed_r)
{
	memset(o, 0, sizeof(*o));
	struct backend_login *b = backend_login_new(cfg, f_send, o);
	enum backend_result r = BACKEND_MORE;
	size_t off = 0;
	while (off < size && r == BACKEND_MORE) {
		size_t len = size - off < chunk ? size - off : chunk;
		uint8_t *c = malloc(len);
		memcpy(c, data + off, len);
		size_t consumed = 0;
		const char *reply = NULL;
		r = backend_login_input(b, c, len, &consumed, &reply);
		free(c);
		CHECK(consumed <= len);
		if (r == BACKEND_MORE)
			CHECK(consumed == len);
		else
			CHECK(reply != NULL && strlen(reply) <= BACKEND_MAX_LINE);
		off += consumed;
		if (r == BACKEND_STARTTLS) {
			/* as if the handshake were done: the dialogue goes on */
			backend_login_tls_started(b);
			r = BACKEND_MORE;
		}
	}
	backend_login_free(&b);
	*consumed_r = off;
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	struct backend_login_config cfg = {
		.pop3 = (data[0] & 1) != 0,
		.starttls = (data[0] & 0x80) != 0,
		.user = "user@example.com",
		.master = (data[0] & 2) != 0 ? "admin" : NULL,
		.pass = (const uint8_t *)"p\0ss", .pass_len = 4,
		.rip = "2001:db8::1", .rport = 65535, .lip = "192.0.2.1", .lport = 143,
		.session = "abcdefABCDEF",
	};
	size_t chunk = (size_t)((data[0] >> 2) & 31) + 1;
	static struct out a, b;
	size_t ca, cb;
	enum backend_result ra = run(&cfg, data + 1, size - 1, size, &a, &ca);
	enum backend_result rb = run(&cfg, data + 1, size - 1, chunk, &b, &cb);
	CHECK(ra == rb);
	CHECK(ca == cb);
	CHECK(a.len == b.len && memcmp(a.buf, b.buf, a.len) == 0);
	return 0;
}
