/* A whole POP3 pre-auth session in memory, driven by the fuzz input.
 *
 * Byte 0 picks the configuration. Then a series of records: a header byte
 * (low 6 bits: chunk length, high 2 bits: an event to fire after the chunk)
 * and that many client bytes. After each chunk, an auth request in flight
 * is answered OK / FAIL / CHALLENGE / TEMPFAIL, picked by the chunk's last
 * byte plus a turn counter. The callbacks check
 * the core's promises: output is whole CRLF lines, nothing after disconnect,
 * no second auth request while one is in flight, preread bounded. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "login/login-proto.h"

struct fuzz_ctx {
	struct login_session *s;
	bool auth_pending;
	bool handed_off;
	bool disconnected;
	unsigned int replies;
};

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

static void f_send(void *ctx, const void *data, size_t len)
{
	struct fuzz_ctx *f = ctx;
	const char *p = data;
	CHECK(!f->disconnected);
	CHECK(len >= 2 && p[len - 2] == '\r' && p[len - 1] == '\n');
	CHECK(memchr(p, '\0', len) == NULL);
}

static void f_auth_begin(void *ctx, const char *mech, const uint8_t *resp, size_t resp_len,
			 bool has_resp)
{
	struct fuzz_ctx *f = ctx;
	CHECK(!f->auth_pending && !f->disconnected && !f->handed_off);
	CHECK(mech != NULL && mech[0] != '\0');
	CHECK(has_resp || resp_len == 0);
	if (resp_len > 0)
		CHECK(resp != NULL);
	f->auth_pending = true;
}

static void f_auth_continue(void *ctx, const uint8_t *resp, size_t resp_len)
{
	struct fuzz_ctx *f = ctx;
	(void)resp;
	CHECK(!f->auth_pending && !f->disconnected);
	CHECK(resp_len <= LOGIN_MAX_LINE);
	f->auth_pending = true;
}

static void f_auth_abort(void *ctx)
{
	struct fuzz_ctx *f = ctx;
	f->auth_pending = false;
}

static void f_handoff(void *ctx, const char *tag, const uint8_t *preread, size_t len)
{
	struct fuzz_ctx *f = ctx;
	CHECK(tag == NULL);
	CHECK(len <= LOGIN_MAX_PENDING);
	/* touch every byte so ASan checks the whole preread */
	volatile uint8_t sum = 0;
	for (size_t i = 0; i < len; i++)
		sum ^= preread[i];
	(void)sum;
	CHECK(!f->disconnected);
	f->handed_off = true;
}

static void f_disconnect(void *ctx, const char *reason)
{
	struct fuzz_ctx *f = ctx;
	CHECK(reason != NULL);
	CHECK(!f->disconnected);
	f->disconnected = true;
}

static void f_starttls(void *ctx)
{
	struct fuzz_ctx *f = ctx;
	CHECK(!f->disconnected);
}

static void f_forward(void *ctx, const char *key, const char *value)
{
	struct fuzz_ctx *f = ctx;
	CHECK(!f->disconnected);
	CHECK(key != NULL && value != NULL && strlen(key) <= 7);
}

static const struct login_callbacks fuzz_cb = {
	.send = f_send,
	.auth_begin = f_auth_begin,
	.auth_continue = f_auth_continue,
	.auth_abort = f_auth_abort,
	.handoff = f_handoff,
	.disconnect = f_disconnect,
	.starttls = f_starttls,
	.forward = f_forward,
};

static void fuzz_answer_auth(struct fuzz_ctx *f, const uint8_t *data, size_t len)
{
	const struct login_proto *p = &pop3_login_proto;
	if (!f->auth_pending || f->disconnected)
		return;
	f->auth_pending = false;
	/* the client bytes of this chunk pick auth's answer */
	switch ((f->replies++ + (len > 0 ? data[len - 1] : 0u)) % 4) {
	case 0:
		p->auth_reply(f->s, LOGIN_AUTH_OK, NULL, 0, NULL);
		break;
	case 1:
		p->auth_reply(f->s, LOGIN_AUTH_FAIL, NULL, 0, len > 0 ? "no\r\nway" : NULL);
		break;
	case 2:
		p->auth_reply(f->s, LOGIN_AUTH_CHALLENGE, data, len, NULL);
		break;
	default:
		p->auth_reply(f->s, LOGIN_AUTH_TEMPFAIL, NULL, 0, NULL);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct login_proto *p = &pop3_login_proto;
	if (size == 0)
		return 0;
	static const char *const mechs[] = { "PLAIN LOGIN", "PLAIN APOP", "",
					      "LOGIN CRAM-MD5 PLAIN APOP SCRAM-SHA-1-PLUS EXTERNAL" };
	struct login_proto_config cfg = {
		.greeting = "ringgate ready.",
		.mechanisms = mechs[data[0] & 3],
		.secured = (data[0] & 4) != 0,
		.plaintext_auth_allowed = (data[0] & 8) != 0,
		.starttls_available = (data[0] & 16) != 0,
		.trusted = (data[0] & 32) != 0, /* XCLIENT allowed */
		.tls = (data[0] & 64) != 0,     /* -PLUS offered */
	};
	struct fuzz_ctx f = { 0 };
	f.s = p->create(&cfg, &fuzz_cb, &f);
	CHECK(f.s != NULL);
	CHECK(pop3_login_idle(f.s));

	size_t off = 1;
	while (off < size && !f.disconnected) {
		uint8_t hdr = data[off++];
		size_t len = hdr & 63;
		if (len > size - off)
			len = size - off;
		/* an exact-size copy: ASan sees any read past the chunk */
		uint8_t *chunk = malloc(len == 0 ? 1 : len);
		memcpy(chunk, data + off, len);
		off += len;
		p->input(f.s, chunk, len);
		free(chunk);
		if (f.handed_off && !f.disconnected) {
			if ((hdr >> 6) == 1) {
				f.handed_off = false;
				p->handoff_failed(f.s, "Maximum number of connections");
			} else {
				break; /* the worker has the client now */
			}
		}
		fuzz_answer_auth(&f, data + off - len, len);
		if (f.handed_off && !f.disconnected && (hdr >> 6) == 1) {
			f.handed_off = false;
			p->handoff_failed(f.s, "Maximum number of connections");
		}
		if ((hdr >> 6) == 2 && off >= size && !f.disconnected && !f.handed_off)
			p->bye(f.s, "Disconnected for inactivity.");
	}
	p->destroy(f.s);
	return 0;
}
