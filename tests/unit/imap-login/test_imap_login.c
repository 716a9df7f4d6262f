/* Unit tests for the IMAP pre-auth core, driven in memory through
 * imap_login_proto with callbacks that record what the core asked for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "login/login-proto.h"

struct buf {
	char *data;
	size_t len, cap;
};

static void buf_add(struct buf *b, const void *data, size_t len)
{
	if (b->len + len + 1 > b->cap) {
		b->cap = (b->len + len + 1) * 2;
		b->data = realloc(b->data, b->cap);
		assert_non_null(b->data);
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

static void buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void buf_printf(struct buf *b, const char *fmt, ...)
{
	char tmp[20000];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	buf_add(b, tmp, (size_t)n);
}

static void buf_escaped(struct buf *b, const void *data, size_t len)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < 0x20 || p[i] >= 0x7f || p[i] == '\\')
			buf_printf(b, "\\x%02x", p[i]);
		else
			buf_add(b, &p[i], 1);
	}
}

/* auto_reply: answer every auth request synchronously from inside the callback */
enum auto_reply { AUTO_NONE, AUTO_FAIL, AUTO_OK };

struct fake {
	struct buf out;   /* bytes sent to the client */
	struct buf calls; /* one line per non-send callback */
	struct login_session *s;
	enum auto_reply auto_reply;
	bool destroy_on_disconnect;
	bool disconnected;
};

static void *as_ctx(struct fake *f) { return f; }

static void f_send(void *ctx, const void *data, size_t len)
{
	struct fake *f = ctx;
	assert_false(f->disconnected);
	buf_add(&f->out, data, len);
}

static void f_auth_begin(void *ctx, const char *mech, const uint8_t *resp,
			 size_t resp_len, bool has_resp)
{
	struct fake *f = ctx;
	buf_printf(&f->calls, "BEGIN %s %s ", mech, has_resp ? "resp" : "noresp");
	buf_escaped(&f->calls, resp, resp_len);
	buf_add(&f->calls, "\n", 1);
	if (f->auto_reply == AUTO_FAIL)
		imap_login_proto.auth_reply(f->s, LOGIN_AUTH_FAIL, NULL, 0, NULL);
	else if (f->auto_reply == AUTO_OK)
		imap_login_proto.auth_reply(f->s, LOGIN_AUTH_OK, NULL, 0, NULL);
}

static void f_auth_continue(void *ctx, const uint8_t *resp, size_t resp_len)
{
	struct fake *f = ctx;
	buf_printf(&f->calls, "CONT ");
	buf_escaped(&f->calls, resp, resp_len);
	buf_add(&f->calls, "\n", 1);
}

static void f_auth_abort(void *ctx)
{
	struct fake *f = ctx;
	buf_printf(&f->calls, "ABORT\n");
}

static void f_handoff(void *ctx, const char *tag, const uint8_t *preread, size_t len)
{
	struct fake *f = ctx;
	buf_printf(&f->calls, "HANDOFF %s ", tag);
	buf_escaped(&f->calls, preread, len);
	buf_add(&f->calls, "\n", 1);
}

static void f_disconnect(void *ctx, const char *reason)
{
	struct fake *f = ctx;
	assert_false(f->disconnected);
	f->disconnected = true;
	buf_printf(&f->calls, "DISCONNECT %s\n", reason);
	if (f->destroy_on_disconnect) {
		imap_login_proto.destroy(f->s);
		f->s = NULL;
	}
}

static void f_starttls(void *ctx)
{
	struct fake *f = ctx;
	buf_printf(&f->calls, "STARTTLS\n");
}

static void f_forward(void *ctx, const char *key, const char *value)
{
	struct fake *f = ctx;
	buf_printf(&f->calls, "FORWARD %s=%s\n", key, value);
}

static const struct login_callbacks callbacks = {
	.send = f_send,
	.auth_begin = f_auth_begin,
	.auth_continue = f_auth_continue,
	.auth_abort = f_auth_abort,
	.handoff = f_handoff,
	.disconnect = f_disconnect,
	.starttls = f_starttls,
	.forward = f_forward,
};

static const struct login_proto_config default_config = {
	.greeting = "ringgate ready.",
	.mechanisms = "PLAIN LOGIN",
	.secured = false,
	.plaintext_auth_allowed = true,
	.starttls_available = false,
};

#define CAPS "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+"
#define GREETING "* OK [CAPABILITY " CAPS " AUTH=PLAIN AUTH=LOGIN] ringgate ready.\r\n"
#define ERRMSG "Error in IMAP command received by server."

static struct fake *start(const struct login_proto_config *config)
{
	struct fake *f = calloc(1, sizeof(*f));
	buf_add(&f->out, "", 0);
	buf_add(&f->calls, "", 0);
	f->s = imap_login_proto.create(config != NULL ? config : &default_config,
				       &callbacks, as_ctx(f));
	return f;
}

static void finish(struct fake *f)
{
	if (f->s != NULL)
		imap_login_proto.destroy(f->s);
	free(f->out.data);
	free(f->calls.data);
	free(f);
}

static void in_len(struct fake *f, const char *data, size_t len)
{
	/* exact-size copy so ASan sees reads past the end */
	uint8_t *copy = malloc(len > 0 ? len : 1);
	memcpy(copy, data, len);
	imap_login_proto.input(f->s, copy, len);
	free(copy);
}

static void in(struct fake *f, const char *data)
{
	in_len(f, data, strlen(data));
}

/* assert and clear what was sent / called since the last check */
static void expect_out(struct fake *f, const char *expected)
{
	assert_string_equal(f->out.data, expected);
	f->out.len = 0;
	f->out.data[0] = '\0';
}

static void expect_calls(struct fake *f, const char *expected)
{
	assert_string_equal(f->calls.data, expected);
	f->calls.len = 0;
	f->calls.data[0] = '\0';
}

static void reply(struct fake *f, enum login_auth_result r, const char *data, const char *reason)
{
	imap_login_proto.auth_reply(f->s, r, (const uint8_t *)data,
				    data != NULL ? strlen(data) : 0, reason);
}

static void test_greeting(void **state)
{
	(void)state;
	struct fake *f = start(NULL);
	expect_out(f, GREETING);
	assert_true(imap_login_idle(f->s));
	finish(f);

	struct login_proto_config c = default_config;
	c.starttls_available = true;
	c.greeting = NULL;
	f = start(&c);
	expect_out(f, "* OK [CAPABILITY " CAPS " STARTTLS AUTH=PLAIN AUTH=LOGIN] ringgate ready.\r\n");
	finish(f);

	c.plaintext_auth_allowed = false;
	c.mechanisms = "PLAIN LOGIN CRAM-MD5";
	c.greeting = "evil\r\n* OK hi";
	f = start(&c);
	expect_out(f, "* OK [CAPABILITY " CAPS " STARTTLS LOGINDISABLED AUTH=CRAM-MD5] evil  * OK hi\r\n");
	in(f, "a CAPABILITY\r\n");
	expect_out(f, "* CAPABILITY " CAPS " STARTTLS LOGINDISABLED AUTH=CRAM-MD5\r\n"
		   "a OK Pre-login capabilities listed, post-login capabilities have more.\r\n");
	finish(f);
}

/* The texts are shared by the process's sessions (imap-login-texts.c): a
 * session keeps the greeting and capabilities of the configuration it was
 * made with while newer sessions get another one's (a reload), and each
 * outlives the others' destruction (ASan checks the memory). */
static void test_texts_across_reload(void **state)
{
	(void)state;
	struct fake *a = start(NULL);
	struct fake *a2 = start(NULL);
	expect_out(a, GREETING);
	expect_out(a2, GREETING);
	struct login_proto_config c = default_config;
	c.greeting = "after\x01reload";
	c.mechanisms = "PLAIN SCRAM-SHA-256";
	struct fake *b = start(&c);
	expect_out(b, "* OK [CAPABILITY " CAPS " AUTH=PLAIN AUTH=SCRAM-SHA-256] after reload\r\n");
	finish(a2);
	in(a, "a CAPABILITY\r\n");
	expect_out(a, "* CAPABILITY " CAPS " AUTH=PLAIN AUTH=LOGIN\r\n"
		   "a OK Pre-login capabilities listed, post-login capabilities have more.\r\n");
	in(a, "b AUTHENTICATE SCRAM-SHA-256\r\n");
	expect_out(a, "b NO [ALERT] Unsupported authentication mechanism.\r\n");
	finish(b);
	/* the first configuration again, while a session of it still lives */
	struct fake *d = start(NULL);
	expect_out(d, GREETING);
	finish(a);
	in(d, "c CAPABILITY\r\n");
	expect_out(d, "* CAPABILITY " CAPS " AUTH=PLAIN AUTH=LOGIN\r\n"
		   "c OK Pre-login capabilities listed, post-login capabilities have more.\r\n");
	finish(d);
}

static void test_simple_commands(void **state)
{
	(void)state;
	struct fake *f = start(NULL);
	expect_out(f, GREETING);
	in(f, "a capability\r\nb NOOP\nc ID NIL\r\nd ID (\"name\" \"mutt\" \"os\" NIL)\r\n"
	      "e ENABLE CONDSTORE\r\nf STARTTLS\r\n");
	expect_out(f, "* CAPABILITY " CAPS " AUTH=PLAIN AUTH=LOGIN\r\n"
		   "a OK Pre-login capabilities listed, post-login capabilities have more.\r\n"
		   "b OK NOOP completed.\r\n"
		   "* ID (\"name\" \"ringgate\")\r\nc OK ID completed.\r\n"
		   "* ID (\"name\" \"ringgate\")\r\nd OK ID completed.\r\n"
		   "* ENABLED\r\ne OK ENABLE ignored in non-authenticated state.\r\n"
		   "f BAD TLS support isn't enabled.\r\n");
	expect_calls(f, "");
	in(f, "g LOGOUT\r\nh NOOP\r\n");
	expect_out(f, "* BYE Logging out\r\ng OK Logout completed.\r\n");
	expect_calls(f, "DISCONNECT Aborted login by logging out\n");
	finish(f);

	struct login_proto_config c = default_config;
	c.starttls_available = true;
	f = start(&c);
	expect_out(f, "* OK [CAPABILITY " CAPS " STARTTLS AUTH=PLAIN AUTH=LOGIN] ringgate ready.\r\n");
	in(f, "s starttls\r\n");
	expect_out(f, "s OK Begin TLS negotiation now.\r\n");
	expect_calls(f, "STARTTLS\n");
	finish(f);

	/* plaintext pipelined after STARTTLS is dropped (command injection);
	 * afterwards the session is secured: no STARTTLS, plaintext allowed */
	c.plaintext_auth_allowed = false;
	f = start(&c);
	expect_out(f, "* OK [CAPABILITY " CAPS " STARTTLS LOGINDISABLED] ringgate ready.\r\n");
	in(f, "s STARTTLS\r\nt LOGIN u p\r\nu NOOP\r\n");
	expect_out(f, "s OK Begin TLS negotiation now.\r\n");
	expect_calls(f, "STARTTLS\n");
	in(f, "v CAPABILITY\r\nw STARTTLS\r\nx LOGIN u p\r\n");
	expect_out(f, "* CAPABILITY " CAPS " AUTH=PLAIN AUTH=LOGIN\r\n"
		   "v OK Pre-login capabilities listed, post-login capabilities have more.\r\n"
		   "w BAD TLS support isn't enabled.\r\n");
	expect_calls(f, "BEGIN PLAIN resp \\x00u\\x00p\n");
	finish(f);
}

static void test_login(void **state)
{
	(void)state;
	struct fake *f = start(NULL);
	expect_out(f, GREETING);
	in(f, "a LOGIN user \"p a\\\"ss\"\r\n");
	expect_out(f, "");
	expect_calls(f, "BEGIN PLAIN resp \\x00user\\x00p a\"ss\n");
	assert_false(imap_login_idle(f->s));
	/* auth gives a reason only for passdb nologin + reason: shown as
	 * Dovecot does, an ALERT */
	reply(f, LOGIN_AUTH_FAIL, NULL, "moved\r\nelsewhere");
	expect_out(f, "a NO [ALERT] moved  elsewhere\r\n");
	assert_true(imap_login_idle(f->s));

	/* synchronizing literals get a continuation each */
	in(f, "b LOGIN {4}\r\n");
	expect_out(f, "+ OK\r\n");
	/* NUL in literal data: the rest of the literal and line are skipped */
	in_len(f, "us\0r {4}\r\n", 10);
	expect_out(f, "b BAD NUL characters not allowed\r\n");
	expect_calls(f, "");
	in(f, "b LOGIN {4}\r\n");
	expect_out(f, "+ OK\r\n");
	in(f, "user {4}\r\npa\r\n\r\n");
	expect_out(f, "+ OK\r\n");
	expect_calls(f, "BEGIN PLAIN resp \\x00user\\x00pa\\x0d\\x0a\n");
	reply(f, LOGIN_AUTH_TEMPFAIL, NULL, NULL);
	expect_out(f, "b NO [UNAVAILABLE] Temporary authentication failure.\r\n");

	/* LITERAL+: no continuation */
	in(f, "c LOGIN {4+}\r\nuser {0+}\r\n\r\n");
	expect_out(f, "");
	expect_calls(f, "BEGIN PLAIN resp \\x00user\\x00\n");
	reply(f, LOGIN_AUTH_TEMPFAIL, NULL, "Auth\r\nserver down");
	expect_out(f, "c NO [UNAVAILABLE] Auth  server down\r\n");

	/* wrong argument counts are bad commands */
	in(f, "d LOGIN user\r\n");
	expect_out(f, "d BAD " ERRMSG "\r\n");
	expect_calls(f, "");
	finish(f);
}

static void test_privacy_required(void **state)
{
	(void)state;
	struct login_proto_config c = default_config;
	c.plaintext_auth_allowed = false;
	c.mechanisms = "PLAIN LOGIN CRAM-MD5";
	struct fake *f = start(&c);
	expect_out(f, "* OK [CAPABILITY " CAPS " LOGINDISABLED AUTH=CRAM-MD5] ringgate ready.\r\n");
	in(f, "a LOGIN u p\r\nb AUTHENTICATE PLAIN\r\nc authenticate cram-md5\r\n");
	expect_out(f, "a NO [PRIVACYREQUIRED] Plaintext authentication disallowed on "
		   "non-secure (SSL/TLS) connections.\r\n"
		   "b NO [PRIVACYREQUIRED] Plaintext authentication disallowed on "
		   "non-secure (SSL/TLS) connections.\r\n");
	expect_calls(f, "BEGIN CRAM-MD5 noresp \n");
	finish(f);
}

/* SCRAM-*-PLUS binds to the TLS channel: offered and accepted only on TLS
 * (config.tls, or after STARTTLS) */
static void test_plus_needs_tls(void **state)
{
	(void)state;
	struct login_proto_config c = default_config;
	c.mechanisms = "SCRAM-SHA-1 SCRAM-SHA-1-PLUS EXTERNAL";
	c.starttls_available = true;
	struct fake *f = start(&c);
	expect_out(f, "* OK [CAPABILITY " CAPS " STARTTLS AUTH=SCRAM-SHA-1 AUTH=EXTERNAL] "
		      "ringgate ready.\r\n");
	in(f, "a AUTHENTICATE SCRAM-SHA-1-PLUS =\r\n");
	expect_out(f, "a NO [ALERT] Unsupported authentication mechanism.\r\n");
	expect_calls(f, "");
	in(f, "b STARTTLS\r\n");
	expect_out(f, "b OK Begin TLS negotiation now.\r\n");
	expect_calls(f, "STARTTLS\n");
	in(f, "c CAPABILITY\r\nd AUTHENTICATE scram-sha-1-plus =\r\n");
	expect_out(f, "* CAPABILITY " CAPS " AUTH=SCRAM-SHA-1 AUTH=SCRAM-SHA-1-PLUS AUTH=EXTERNAL\r\n"
		      "c OK Pre-login capabilities listed, post-login capabilities have more.\r\n");
	expect_calls(f, "BEGIN SCRAM-SHA-1-PLUS resp \n");
	finish(f);

	c.starttls_available = false;
	c.tls = true;
	f = start(&c);
	expect_out(f, "* OK [CAPABILITY " CAPS " AUTH=SCRAM-SHA-1 AUTH=SCRAM-SHA-1-PLUS "
		      "AUTH=EXTERNAL] ringgate ready.\r\n");
	finish(f);
}

static void test_authenticate_plain(void **state)
{
	(void)state;
	struct fake *f = start(NULL);
	expect_out(f, GREETING);
	/* SASL-IR */
	in(f, "a AUTHENTICATE PLAIN AHVzZXIAcGFzcw==\r\n");
	expect_calls(f, "BEGIN PLAIN resp \\x00user\\x00pass\n");
	reply(f, LOGIN_AUTH_FAIL, NULL, NULL);
	expect_out(f, "a NO [AUTHENTICATIONFAILED] Authentication failed.\r\n");
	/* "=" is an empty initial response */
	in(f, "b AUTHENTICATE plain =\r\n");
	expect_calls(f, "BEGIN PLAIN resp \n");
	reply(f, LOGIN_AUTH_FAIL, NULL, NULL);
	expect_out(f, "b NO [AUTHENTICATIONFAILED] Authentication failed.\r\n");
	/* no initial response: empty challenge, response line */
	in(f, "c AUTHENTICATE PLAIN\r\n");
	expect_calls(f, "BEGIN PLAIN noresp \n");
	reply(f, LOGIN_AUTH_CHALLENGE, "", NULL);
	expect_out(f, "+ \r\n");
	in(f, "AHVzZXIAcGFzcw");
	expect_calls(f, "");
	assert_false(imap_login_idle(f->s));
	in(f, "==\r\n");
	expect_calls(f, "CONT \\x00user\\x00pass\n");
	reply(f, LOGIN_AUTH_OK, NULL, NULL);
	expect_out(f, "");
	expect_calls(f, "HANDOFF c \n");
	finish(f);
}

static void test_authenticate_login(void **state)
{
	(void)state;
	struct fake *f = start(NULL);
	expect_out(f, GREETING);
	in(f, "x1 AUTHENTICATE LOGIN\r\n");
	expect_calls(f, "BEGIN LOGIN noresp \n");
	reply(f, LOGIN_AUTH_CHALLENGE, "Username:", NULL);
	expect_out(f, "+ VXNlcm5hbWU6\r\n");
	in(f, "dQ==\n");
	expect_calls(f, "CONT u\n");
	reply(f, LOGIN_AUTH_CHALLENGE, "Password:", NULL);
	expect_out(f, "+ UGFzc3dvcmQ6\r\n");
	in(f, "\r\n"); /* empty response */
	expect_calls(f, "CONT \n");
	reply(f, LOGIN_AUTH_CHALLENGE, "Password:", NULL);
	expect_out(f, "+ UGFzc3dvcmQ6\r\n");
	in(f, "cA==\r\n");
	expect_calls(f, "CONT p\n");
	/* a reply in the wrong state is ignored */
	reply(f, LOGIN_AUTH_CHALLENGE, "x", NULL);
	reply(f, LOGIN_AUTH_OK, NULL, NULL);
	reply(f, LOGIN_AUTH_OK, NULL, NULL);
	expect_out(f, "+ eA==\r\n");
	finish(f);
}

static void test_authenticate_errors(void **state)
{
	(void)state;
	struct fake *f = start(NULL);
	expect_out(f, GREETING);
	in(f, "a AUTHENTICATE FOO\r\n");
	expect_out(f, "a NO [ALERT] Unsupported authentication mechanism.\r\n");
	in(f, "b AUTHENTICATE PLAIN !!!!\r\n");
	expect_out(f, "b BAD Invalid base64 data in initial response\r\n");
	expect_calls(f, "");
	/* cancel */
	in(f, "c AUTHENTICATE PLAIN\r\n");
	reply(f, LOGIN_AUTH_CHALLENGE, "", NULL);
	expect_out(f, "+ \r\n");
	in(f, "*\r\nd NOOP\r\n");
	expect_out(f, "c BAD Authentication aborted by client.\r\nd OK NOOP completed.\r\n");
	expect_calls(f, "BEGIN PLAIN noresp \nABORT\n");
	/* bad base64 in a response */
	in(f, "e AUTHENTICATE PLAIN\r\n");
	reply(f, LOGIN_AUTH_CHALLENGE, "", NULL);
	in(f, "!!\r\nf NOOP\r\n");
	expect_out(f, "+ \r\ne NO [ALERT] Invalid base64 in response\r\nf OK NOOP completed.\r\n");
	expect_calls(f, "BEGIN PLAIN noresp \nABORT\n");
	in(f, "g AUTHENTICATE\r\n");
	expect_out(f, "g BAD " ERRMSG "\r\n");
	finish(f);

	/* an endless response line is cut off */
	f = start(NULL);
	in(f, "a AUTHENTICATE PLAIN\r\n");
	reply(f, LOGIN_AUTH_CHALLENGE, "", NULL);
	char big[LOGIN_MAX_LINE + 2];
	memset(big, 'A', sizeof(big));
	in_len(f, big, sizeof(big));
	expect_calls(f, "BEGIN PLAIN noresp \nABORT\nDISCONNECT SASL response too long\n");
	expect_out(f, GREETING "+ \r\n* BYE Authentication response too long\r\n");
	finish(f);
}

static void test_pipelined_preread(void **state)
{
	(void)state;
	struct fake *f = start(NULL);
	expect_out(f, GREETING);
	in(f, "a LOGIN u p\r\nb SELECT INBOX\r\nc FE");
	expect_calls(f, "BEGIN PLAIN resp \\x00u\\x00p\n");
	in(f, "TCH 1 (BODY[])\r\n");
	expect_out(f, "");
	reply(f, LOGIN_AUTH_OK, NULL, NULL);
	expect_out(f, "");
	expect_calls(f, "HANDOFF a b SELECT INBOX\\x0d\\x0ac FETCH 1 (BODY[])\\x0d\\x0a\n");
	/* master refuses: the session goes on with the kept commands */
	in(f, "d NOOP\r\n");
	imap_login_proto.handoff_failed(f->s, "Maximum number of connections");
	expect_out(f, "a NO [UNAVAILABLE] Maximum number of connections\r\n"
		   "b BAD " ERRMSG "\r\nc BAD " ERRMSG "\r\nd OK NOOP completed.\r\n");
	expect_calls(f, "");
	assert_true(imap_login_idle(f->s));
	finish(f);

	/* after a failure, kept commands run in order */
	f = start(NULL);
	in(f, "a LOGIN u p\r\nb NOOP\r\nc LOGIN x y\r\nd NOOP\r\n");
	reply(f, LOGIN_AUTH_FAIL, NULL, NULL);
	expect_out(f, GREETING "a NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
		   "b OK NOOP completed.\r\n");
	reply(f, LOGIN_AUTH_FAIL, NULL, NULL);
	expect_out(f, "c NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
		   "d OK NOOP completed.\r\n");
	expect_calls(f, "BEGIN PLAIN resp \\x00u\\x00p\nBEGIN PLAIN resp \\x00x\\x00y\n");
	assert_true(imap_login_idle(f->s));
	finish(f);

	/* too much */
	f = start(NULL);
	in(f, "a LOGIN u p\r\n");
	char big[LOGIN_MAX_PENDING];
	memset(big, 'x', sizeof(big));
	in_len(f, big, sizeof(big));
	expect_calls(f, "BEGIN PLAIN resp \\x00u\\x00p\n");
	in(f, "y");
	expect_out(f, GREETING "* BYE Too much pipelined input\r\n");
	expect_calls(f, "DISCONNECT Too much pipelined input\n");
	finish(f);
}

/* auth answering from inside auth_begin, destroy from inside disconnect */
static void test_reentrancy(void **state)
{
	(void)state;
	struct fake *f = start(NULL);
	f->auto_reply = AUTO_FAIL;
	in(f, "a LOGIN u p\r\nb NOOP\r\nc AUTHENTICATE PLAIN =\r\nd NOOP\r\n");
	expect_out(f, GREETING "a NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
		   "b OK NOOP completed.\r\n"
		   "c NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
		   "d OK NOOP completed.\r\n");
	f->auto_reply = AUTO_OK;
	in(f, "e LOGIN u p\r\nf NOOP\r\n");
	expect_calls(f, "BEGIN PLAIN resp \\x00u\\x00p\nBEGIN PLAIN resp \n"
		     "BEGIN PLAIN resp \\x00u\\x00p\nHANDOFF e f NOOP\\x0d\\x0a\n");
	/* the hand-off waited for the rest of the input: it is the preread */
	imap_login_proto.handoff_failed(f->s, "nope");
	expect_out(f, "e NO [UNAVAILABLE] nope\r\nf OK NOOP completed.\r\n");
	finish(f);

	f = start(NULL);
	f->destroy_on_disconnect = true;
	in(f, "a LOGOUT\r\nb NOOP\r\n");
	assert_null(f->s);
	expect_out(f, GREETING "* BYE Logging out\r\na OK Logout completed.\r\n");
	finish(f);

	f = start(NULL);
	f->destroy_on_disconnect = true;
	imap_login_proto.bye(f->s, "Disconnected for inactivity.");
	assert_null(f->s);
	expect_out(f, GREETING "* BYE Disconnected for inactivity.\r\n");
	expect_calls(f, "DISCONNECT Disconnected for inactivity.\n");
	finish(f);
}

static void test_bad_commands(void **state)
{
	(void)state;
	struct fake *f = start(NULL);
	expect_out(f, GREETING);
	in(f, "a SELECT INBOX\r\n\r\n");
	expect_out(f, "a BAD " ERRMSG "\r\n* BAD Missing tag\r\n");
	in(f, "c NOOP\r\n");
	expect_out(f, "c OK NOOP completed.\r\n");
	in(f, "d FOO\r\ne NOOP\r\n");
	expect_out(f, "* BYE Too many invalid IMAP commands.\r\n");
	expect_calls(f, "DISCONNECT Too many invalid commands\n");
	in(f, "f NOOP\r\n");
	expect_out(f, "");
	finish(f);

	f = start(NULL);
	in_len(f, "a NOOP\0\r\n", 9);
	expect_out(f, GREETING "a BAD NUL characters not allowed\r\n");
	in(f, "b LOGIN {99999+}\r\nxxxx");
	expect_out(f, "* BYE Literal size too large\r\n");
	expect_calls(f, "DISCONNECT Literal size too large\n");
	finish(f);

	f = start(NULL);
	in(f, "b LOGIN {99999}\r\n");
	expect_out(f, GREETING "b BAD Literal size too large\r\n");
	expect_calls(f, "");
	finish(f);
}

static void test_id_bounds(void **state)
{
	(void)state;
	static char line[70000];
	struct fake *f = start(NULL);
	expect_out(f, GREETING);
	/* 30 pairs with the longest keys (30 long values would pass the line limit) */
	size_t n = (size_t)snprintf(line, sizeof(line), "a ID (");
	for (int i = 0; i < 30; i++)
		n += (size_t)snprintf(line + n, sizeof(line) - n, "\"%064d\" \"v\" ", i);
	snprintf(line + n, sizeof(line) - n, ")\r\n");
	in(f, line);
	expect_out(f, "* ID (\"name\" \"ringgate\")\r\na OK ID completed.\r\n");
	/* 31 pairs */
	n = (size_t)snprintf(line, sizeof(line), "b ID (");
	for (int i = 0; i < 31; i++)
		n += (size_t)snprintf(line + n, sizeof(line) - n, "\"k%d\" \"v\" ", i);
	snprintf(line + n, sizeof(line) - n, ")\r\n");
	in(f, line);
	expect_out(f, "b BAD Invalid ID parameters\r\n");
	finish(f);

	f = start(NULL);
	n = (size_t)snprintf(line, sizeof(line), "c ID (\"k\" {1024+}\r\n");
	memset(line + n, 'v', 1024);
	snprintf(line + n + 1024, sizeof(line) - n - 1024, ")\r\n");
	in(f, line);
	expect_out(f, GREETING "* ID (\"name\" \"ringgate\")\r\nc OK ID completed.\r\n");
	n = (size_t)snprintf(line, sizeof(line), "d ID (\"k\" {1025+}\r\n");
	memset(line + n, 'v', 1025);
	snprintf(line + n + 1025, sizeof(line) - n - 1025, ")\r\n");
	in(f, line);
	snprintf(line, sizeof(line), "e ID (\"%065d\" \"v\")\r\nf ID (k v)\r\ng ID x\r\n", 0);
	in(f, line);
	expect_out(f, "d BAD Invalid ID parameters\r\ne BAD Invalid ID parameters\r\n"
		   "* BYE Too many invalid IMAP commands.\r\n");
	finish(f);
}

/* 10 MB without a newline: one BAD, memory stays bounded */
static void test_endless_line(void **state)
{
	(void)state;
	struct fake *f = start(NULL);
	expect_out(f, GREETING);
	static char chunk[65536];
	memset(chunk, 'x', sizeof(chunk));
	memcpy(chunk, "a NOOP ", 7);
	size_t before = mallinfo2().uordblks;
	size_t peak = before;
	for (int i = 0; i < 160; i++) {
		in_len(f, chunk, sizeof(chunk));
		memset(chunk, 'x', 7);
		size_t now = mallinfo2().uordblks;
		if (now > peak)
			peak = now;
	}
	/* the parser store (8 KiB + args) and nothing growing with the input */
	assert_true(peak - before < 4 * LOGIN_MAX_LINE);
	expect_out(f, "a BAD Command line too long\r\n");
	assert_false(imap_login_idle(f->s));
	in(f, "\nb NOOP\r\n");
	expect_out(f, "b OK NOOP completed.\r\n");
	assert_true(imap_login_idle(f->s));
	finish(f);
}

/* The whole dialogue must not depend on how the input is split. */
static char *session_output(const char *input, size_t len, size_t split)
{
	struct fake *f = start(NULL);
	f->auto_reply = AUTO_FAIL;
	if (split == SIZE_MAX) {
		for (size_t i = 0; i < len && !f->disconnected; i++)
			in_len(f, input + i, 1);
	} else {
		in_len(f, input, split);
		if (!f->disconnected)
			in_len(f, input + split, len - split);
	}
	struct buf all = { 0 };
	buf_add(&all, f->out.data, f->out.len);
	buf_add(&all, "--\n", 3);
	buf_add(&all, f->calls.data, f->calls.len);
	finish(f);
	return all.data;
}

static void test_splits(void **state)
{
	(void)state;
	static const char input[] =
		"a CAPABILITY\r\nb LOGIN {4}\r\nuser {4+}\r\npass\r\n"
		"c ID (\"name\" {3}\r\nfoo)\r\nd AUTHENTICATE PLAIN AHUAcA==\r\n"
		"e NOOP \"x\\\\\" ( y )\r\nf LOGOUT\r\n";
	size_t len = sizeof(input) - 1;
	char *expected = session_output(input, len, len);
	assert_non_null(strstr(expected, "f OK Logout completed."));
	char *bytes = session_output(input, len, SIZE_MAX);
	assert_string_equal(bytes, expected);
	free(bytes);
	for (size_t split = 0; split <= len; split++) {
		char *got = session_output(input, len, split);
		assert_string_equal(got, expected);
		free(got);
	}
	free(expected);
}

/* ID x-originating-* from a trusted client (a proxy) is forwarded to the
 * connection layer; from anyone else it is only an ID */
static void test_id_forwarding(void **state)
{
	(void)state;
	const char *id = "i ID (\"x-originating-ip\" \"192.0.2.9\" \"x-originating-port\" \"4242\" "
			 "\"X-Connected-IP\" \"198.51.100.1\" \"x-connected-port\" \"143\" "
			 "\"x-session-id\" \"abcDEF123456\" \"name\" \"proxy\" \"x-other\" NIL)\r\n";
	struct fake *f = start(NULL);
	expect_out(f, GREETING);
	in(f, id);
	expect_out(f, "* ID (\"name\" \"ringgate\")\r\ni OK ID completed.\r\n");
	expect_calls(f, "");
	finish(f);

	struct login_proto_config c = default_config;
	c.trusted = true;
	f = start(&c);
	expect_out(f, GREETING);
	in(f, id);
	expect_out(f, "* ID (\"name\" \"ringgate\")\r\ni OK ID completed.\r\n");
	expect_calls(f, "FORWARD rip=192.0.2.9\nFORWARD rport=4242\nFORWARD lip=198.51.100.1\n"
			"FORWARD lport=143\nFORWARD session=abcDEF123456\n");
	finish(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greeting),
		cmocka_unit_test(test_texts_across_reload),
		cmocka_unit_test(test_id_forwarding),
		cmocka_unit_test(test_simple_commands),
		cmocka_unit_test(test_login),
		cmocka_unit_test(test_privacy_required),
		cmocka_unit_test(test_plus_needs_tls),
		cmocka_unit_test(test_authenticate_plain),
		cmocka_unit_test(test_authenticate_login),
		cmocka_unit_test(test_authenticate_errors),
		cmocka_unit_test(test_pipelined_preread),
		cmocka_unit_test(test_reentrancy),
		cmocka_unit_test(test_bad_commands),
		cmocka_unit_test(test_id_bounds),
		cmocka_unit_test(test_endless_line),
		cmocka_unit_test(test_splits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
