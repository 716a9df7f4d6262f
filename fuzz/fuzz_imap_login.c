/* fuzz_imap_login — a whole IMAP pre-auth session in memory (bytes in,
 * responses out, no sockets): the login state machine as login-conn.c
 * drives it, auth and master answers included.
 * Byte 0 picks the configuration and the chunk size the rest of the input is
 * fed in. Auth and master are played from the input: each answer takes a
 * selector (the last byte of the current chunk plus a turn counter) that
 * picks OK / FAIL / FAIL with reason / CHALLENGE / TEMPFAIL, whether it comes
 * synchronously from inside auth_begin/auth_continue (the re-entrant path)
 * or after input() returns, and whether master then takes the client or the
 * hand-off fails (synchronously or later) so the session goes on. The
 * callbacks check the core's promises: nothing is sent after disconnect,
 * every reply is whole lines without NUL, auth calls only while a request is
 * open, the preread is bounded. */
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
	bool handed_off;   /* handoff called, master has not answered */
	bool gone;         /* master took the client: the session is over */
	unsigned int turn;
	uint8_t selbyte; /* last byte of the chunk being fed */
	char last;       /* last byte sent */
};

static void check(bool cond)
{
	if (!cond)
		abort();
}

static unsigned int fz_sel(struct fz *f)
{
	return (unsigned int)f->selbyte + f->turn;
}

static void fz_answer(struct fz *f);

static void fz_send(void *ctx, const void *data, size_t len)
{
	struct fz *f = ctx;
	check(!f->disconnected && !f->gone && len > 0);
	check(memchr(data, '\0', len) == NULL);
	f->last = ((const char *)data)[len - 1];
}

static void fz_auth_begin(void *ctx, const char *mech, const uint8_t *resp,
			  size_t resp_len, bool has_resp)
{
	struct fz *f = ctx;
	check(!f->auth_open && !f->handed_off && mech != NULL && mech[0] != '\0');
	check(has_resp || resp_len == 0);
	check(resp_len <= LOGIN_MAX_LINE && (resp_len == 0 || resp != NULL));
	f->auth_open = f->auth_waiting = true;
	if (fz_sel(f) & 8)
		fz_answer(f);
}

static void fz_auth_continue(void *ctx, const uint8_t *resp, size_t resp_len)
{
	struct fz *f = ctx;
	check(f->auth_open && !f->auth_waiting && resp_len <= LOGIN_MAX_LINE);
	check(resp_len == 0 || resp != NULL);
	f->auth_waiting = true;
	if (fz_sel(f) & 8)
		fz_answer(f);
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
	check(tag != NULL && tag[0] != '\0' && !f->handed_off && !f->disconnected);
	check(len <= LOGIN_MAX_PENDING && (len == 0 || preread != NULL));
	/* touch every byte so ASan checks the whole preread */
	volatile uint8_t sum = 0;
	for (size_t i = 0; i < len; i++)
		sum ^= preread[i];
	(void)sum;
	f->handed_off = true;
	if ((fz_sel(f) & 48) == 48) {
		/* master's reply came at once (ipc_send failed, say) */
		f->handed_off = false;
		imap_login_proto.handoff_failed(f->s, "Try again");
	}
}

static void fz_disconnect(void *ctx, const char *reason)
{
	struct fz *f = ctx;
	check(!f->disconnected && !f->gone && reason != NULL);
	f->disconnected = true;
}

static void fz_starttls(void *ctx)
{
	struct fz *f = ctx;
	check(!f->disconnected && !f->auth_open);
}

static void fz_forward(void *ctx, const char *key, const char *value)
{
	(void)ctx;
	/* only the five keys, values whole C strings */
	if (key == NULL || value == NULL || strlen(key) > 7 || strlen(value) > 8192)
		abort();
}

static const struct login_callbacks fz_callbacks = {
	.send = fz_send,
	.auth_begin = fz_auth_begin,
	.auth_continue = fz_auth_continue,
	.auth_abort = fz_auth_abort,
	.handoff = fz_handoff,
	.disconnect = fz_disconnect,
	.starttls = fz_starttls,
	.forward = fz_forward,
};

/* master's answer to a hand-off: take the client, or fail and go on; unless
 * forced it may also come later, after more client input */
static void fz_master(struct fz *f, bool force)
{
	if (!f->handed_off || f->disconnected || f->gone)
		return;
	unsigned int sel = fz_sel(f);
	if (!force && (sel & 64) != 0)
		return;
	f->turn++;
	f->handed_off = false;
	if ((sel & 16) != 0)
		f->gone = true;
	else
		imap_login_proto.handoff_failed(f->s, (sel & 32) ? "Try\r\nagain" : NULL);
}

static void fz_answer(struct fz *f)
{
	static const uint8_t challenges[][10] = { "Password:", "", "\x00\xff\r\n*=+/" };
	if (!f->auth_waiting || f->disconnected || f->gone)
		return;
	unsigned int sel = fz_sel(f);
	f->turn++;
	switch (sel % 6) {
	case 0:
	case 1:
		f->auth_open = f->auth_waiting = false;
		imap_login_proto.auth_reply(f->s, LOGIN_AUTH_OK, NULL, 0, NULL);
		break;
	case 2:
		f->auth_open = f->auth_waiting = false;
		imap_login_proto.auth_reply(f->s, LOGIN_AUTH_FAIL, NULL, 0, NULL);
		break;
	case 3:
		f->auth_open = f->auth_waiting = false;
		imap_login_proto.auth_reply(f->s, LOGIN_AUTH_FAIL, NULL, 0, "no\r\nway");
		break;
	case 4: {
		size_t k = (sel >> 4) % 3;
		size_t len = k == 0 ? 9 : k == 1 ? 0 : 10;
		f->auth_waiting = false;
		imap_login_proto.auth_reply(f->s, LOGIN_AUTH_CHALLENGE, challenges[k], len, NULL);
		break;
	}
	default:
		f->auth_open = f->auth_waiting = false;
		imap_login_proto.auth_reply(f->s, LOGIN_AUTH_TEMPFAIL, NULL, 0,
					    (sel & 16) ? "Auth\tserver down\r\n" : NULL);
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
		.mechanisms = (mode & 0x80) ? "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256-PLUS EXTERNAL"
					    : "PLAIN LOGIN",
		.plaintext_auth_allowed = (mode & 0x40) == 0,
		.starttls_available = (mode & 0x20) != 0,
		.trusted = (mode & 0x01) != 0, /* ID x-originating-* forwarded */
		.tls = (mode & 0x02) != 0,     /* -PLUS offered (shares a chunk bit) */
	};
	size_t chunk = 1 + (mode & 0x1f) * 37u;
	data++;
	size--;

	f.s = imap_login_proto.create(&config, &fz_callbacks, &f);
	check(f.last == '\n');
	while (size > 0 && !f.disconnected && !f.gone) {
		size_t n = size < chunk ? size : chunk;
		/* exact-size copy: ASan catches any read past the chunk */
		uint8_t *copy = malloc(n);
		memcpy(copy, data, n);
		f.selbyte = copy[n - 1];
		imap_login_proto.input(f.s, copy, n);
		free(copy);
		data += n;
		size -= n;
		check(f.last == '\n' || f.last == 0);
		fz_master(&f, false);
		fz_answer(&f);
		fz_master(&f, false);
		(void)imap_login_idle(f.s);
	}
	/* drain answers for pipelined logins */
	for (int i = 0; i < 8 && !f.disconnected && !f.gone; i++) {
		fz_master(&f, true);
		fz_answer(&f);
		fz_master(&f, true);
	}
	if (!f.disconnected && !f.gone) {
		imap_login_proto.bye(f.s, "Server shutting down.");
		check(f.disconnected);
	}
	imap_login_proto.destroy(f.s);
	return 0;
}
