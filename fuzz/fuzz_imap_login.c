/* fuzz_imap_login — a whole IMAP pre-auth session in memory.
 * Byte 0 picks the configuration and the chunk size the rest of the input is
 * fed in; auth requests are answered between chunks, in turn OK (then the
 * hand-off fails so the session goes on), FAIL, CHALLENGE. The callbacks
 * check the core's promises: nothing is sent after disconnect, every reply
 * is whole lines, auth calls only while a request is open. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "login/login-proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz {
	struct login_session *s;
	bool disconnected;
	bool auth_open;    /* auth_begin called, no final reply yet */
	bool auth_waiting; /* the core waits for auth (not for the client) */
	bool handed_off;
	unsigned int turn;
	char last; /* last byte sent */
};

static void check(bool cond)
{
	if (!cond)
		abort();
}

static void fz_send(void *ctx, const void *data, size_t len)
{
	struct fz *f = ctx;
	check(!f->disconnected && len > 0);
	check(memchr(data, '\0', len) == NULL);
	f->last = ((const char *)data)[len - 1];
}

static void fz_auth_begin(void *ctx, const char *mech, const uint8_t *resp,
			  size_t resp_len, bool has_resp)
{
	struct fz *f = ctx;
	check(!f->auth_open && mech != NULL && (has_resp || resp_len == 0));
	(void)resp;
	f->auth_open = f->auth_waiting = true;
}

static void fz_auth_continue(void *ctx, const uint8_t *resp, size_t resp_len)
{
	struct fz *f = ctx;
	(void)resp;
	check(f->auth_open && !f->auth_waiting && resp_len <= LOGIN_MAX_LINE);
	f->auth_waiting = true;
}

static void fz_auth_abort(void *ctx)
{
	struct fz *f = ctx;
	check(f->auth_open);
	f->auth_open = f->auth_waiting = false;
}

static void fz_handoff(void *ctx, const char *tag, const uint8_t *preread, size_t len)
{
	struct fz *f = ctx;
	check(tag != NULL && len <= LOGIN_MAX_PENDING && (len == 0 || preread != NULL));
	f->handed_off = true;
}

static void fz_disconnect(void *ctx, const char *reason)
{
	struct fz *f = ctx;
	check(!f->disconnected && reason != NULL);
	f->disconnected = true;
}

static void fz_starttls(void *ctx)
{
	(void)ctx;
}

static const struct login_callbacks fz_callbacks = {
	.send = fz_send,
	.auth_begin = fz_auth_begin,
	.auth_continue = fz_auth_continue,
	.auth_abort = fz_auth_abort,
	.handoff = fz_handoff,
	.disconnect = fz_disconnect,
	.starttls = fz_starttls,
};

static void fz_answer(struct fz *f)
{
	static const uint8_t challenge[] = "Password:";
	if (!f->auth_waiting || f->disconnected)
		return;
	switch (f->turn++ % 3) {
	case 0:
		f->auth_open = f->auth_waiting = false;
		imap_login_proto.auth_reply(f->s, LOGIN_AUTH_OK, NULL, 0, NULL);
		if (f->handed_off && !f->disconnected) {
			f->handed_off = false;
			imap_login_proto.handoff_failed(f->s, "Try again");
		}
		break;
	case 1:
		f->auth_open = f->auth_waiting = false;
		imap_login_proto.auth_reply(f->s, LOGIN_AUTH_FAIL, NULL, 0, NULL);
		break;
	default:
		f->auth_waiting = false;
		imap_login_proto.auth_reply(f->s, LOGIN_AUTH_CHALLENGE, challenge,
					    sizeof(challenge) - 1, NULL);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct fz f = { 0 };
	uint8_t mode = data[0];
	struct login_proto_config config = {
		.greeting = "fuzz ready.",
		.mechanisms = (mode & 0x80) ? "PLAIN LOGIN CRAM-MD5" : "PLAIN LOGIN",
		.plaintext_auth_allowed = (mode & 0x40) == 0,
		.starttls_available = (mode & 0x20) != 0,
	};
	size_t chunk = 1 + (mode & 0x1f) * 37u;
	data++;
	size--;

	f.s = imap_login_proto.create(&config, &fz_callbacks, &f);
	check(f.last == '\n');
	while (size > 0 && !f.disconnected) {
		size_t n = size < chunk ? size : chunk;
		/* exact-size copy: ASan catches any read past the chunk */
		uint8_t *copy = malloc(n);
		memcpy(copy, data, n);
		imap_login_proto.input(f.s, copy, n);
		free(copy);
		data += n;
		size -= n;
		check(f.last == '\n' || f.last == 0);
		fz_answer(&f);
		(void)imap_login_proto.idle(f.s);
	}
	/* drain answers for pipelined logins */
	for (int i = 0; i < 8 && !f.disconnected; i++)
		fz_answer(&f);
	if (!f.disconnected)
		imap_login_proto.bye(f.s, "Server shutting down.");
	check(f.disconnected);
	imap_login_proto.destroy(f.s);
	return 0;
}
