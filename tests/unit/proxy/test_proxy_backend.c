/* The backend login dialogue: scripted backend conversations fed at every
 * split point (and one byte at a time) must send the same commands and end
 * the same way, consuming nothing past the final answer; error branches:
 * bad greeting, unexpected replies, over-long line, NUL. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "proxy/proxy-backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sink {
	char out[4096];
	size_t len;
};

static void sink_send(void *ctx, const void *data, size_t len)
{
	struct sink *s = ctx;
	assert_true(s->len + len < sizeof(s->out));
	memcpy(s->out + s->len, data, len);
	s->len += len;
	s->out[s->len] = '\0';
}

static const struct backend_login_config imap_cfg = {
	.user = "bob", .pass = (const uint8_t *)"secret", .pass_len = 6,
	.rip = "192.0.2.1", .rport = 4000, .lip = "198.51.100.1", .lport = 143,
	.session = "S3ss10n",
};

struct result {
	enum backend_result r;
	size_t consumed;
	char reply[256];
	struct sink sink;
};

/* feed in[0..n) cut at the given points; stop at the first non-MORE */
static void run(const struct backend_login_config *cfg, const char *in, const size_t *cuts,
		size_t ncuts, struct result *res)
{
	size_t n = strlen(in);
	memset(res, 0, sizeof(*res));
	struct backend_login *b = backend_login_new(cfg, sink_send, &res->sink);
	size_t off = 0;
	res->r = BACKEND_MORE;
	for (size_t c = 0; c <= ncuts && res->r == BACKEND_MORE; c++) {
		size_t end = c < ncuts ? cuts[c] : n;
		size_t len = end - off;
		uint8_t *chunk = malloc(len == 0 ? 1 : len);
		memcpy(chunk, in + off, len);
		size_t consumed = 0;
		const char *reply = NULL;
		res->r = backend_login_input(b, chunk, len, &consumed, &reply);
		assert_true(consumed <= len);
		if (res->r == BACKEND_MORE)
			assert_int_equal(consumed, len);
		else
			snprintf(res->reply, sizeof(res->reply), "%s", reply);
		res->consumed = off + consumed;
		free(chunk);
		off = end;
	}
	backend_login_free(&b);
	assert_null(b);
}

static void expect(const struct backend_login_config *cfg, const char *in, enum backend_result r,
		   const char *sent, const char *reply, size_t consumed)
{
	struct result whole, o;
	run(cfg, in, NULL, 0, &whole);
	assert_int_equal(whole.r, r);
	assert_string_equal(whole.sink.out, sent);
	assert_string_equal(whole.reply, reply);
	assert_int_equal(whole.consumed, consumed);
	size_t n = strlen(in);
	for (size_t s = 0; s <= n; s++) {
		size_t cut[1] = { s };
		run(cfg, in, cut, 1, &o);
		assert_int_equal(o.r, r);
		assert_string_equal(o.sink.out, sent);
		assert_string_equal(o.reply, reply);
		assert_int_equal(o.consumed, consumed);
	}
	size_t *cuts = malloc(sizeof(size_t) * (n + 1));
	for (size_t i = 0; i < n; i++)
		cuts[i] = i + 1;
	run(cfg, in, cuts, n > 0 ? n - 1 : 0, &o);
	free(cuts);
	assert_int_equal(o.r, r);
	assert_string_equal(o.sink.out, sent);
}

#define ID_LINE "I ID (\"x-originating-ip\" \"192.0.2.1\" \"x-originating-port\" \"4000\" " \
		"\"x-connected-ip\" \"198.51.100.1\" \"x-connected-port\" \"143\" " \
		"\"x-session-id\" \"S3ss10n\")\r\n"
/* base64("\0bob\0secret") */
#define PLAIN_BOB "AGJvYgBzZWNyZXQ="

static void test_imap_id_sasl_ir(void **state)
{
	(void)state;
	const char *in = "* OK [CAPABILITY IMAP4rev1 SASL-IR ID] ready\r\n"
			 "* ID (\"name\" \"x\")\r\nI OK done\r\n"
			 "* CAPABILITY IMAP4rev1\r\nL OK [CAPABILITY IMAP4rev1] Logged in\r\n"
			 "* 3 EXISTS\r\n";
	expect(&imap_cfg, in, BACKEND_OK, ID_LINE "L AUTHENTICATE PLAIN " PLAIN_BOB "\r\n",
	       "OK [CAPABILITY IMAP4rev1] Logged in", strlen(in) - strlen("* 3 EXISTS\r\n"));
}

static void test_imap_capability_command_no_ir(void **state)
{
	(void)state;
	/* no capabilities in the greeting, no ID, no SASL-IR: CAPABILITY,
	 * then AUTHENTICATE with a continuation; bare LF accepted */
	const char *in = "* OK ready\n* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\nC OK done\r\n"
			 "+ \r\nL NO [AUTHENTICATIONFAILED] nope\r\n";
	expect(&imap_cfg, in, BACKEND_FAIL,
	       "C CAPABILITY\r\nL AUTHENTICATE PLAIN\r\n" PLAIN_BOB "\r\n",
	       "NO [AUTHENTICATIONFAILED] nope", strlen(in));
}

static void test_imap_master_user(void **state)
{
	(void)state;
	struct backend_login_config cfg = imap_cfg;
	cfg.user = "carol";
	cfg.master = "admin";
	/* base64("carol\0admin\0secret") */
	expect(&cfg, "* OK [CAPABILITY IMAP4rev1 SASL-IR] hi\r\nL OK yes\r\n", BACKEND_OK,
	       "L AUTHENTICATE PLAIN Y2Fyb2wAYWRtaW4Ac2VjcmV0\r\n", "OK yes",
	       strlen("* OK [CAPABILITY IMAP4rev1 SASL-IR] hi\r\nL OK yes\r\n"));
}

static void test_imap_errors(void **state)
{
	(void)state;
	expect(&imap_cfg, "* BYE go away\r\n", BACKEND_ERROR, "", "unexpected greeting", 15);
	expect(&imap_cfg, "* PREAUTH hi\r\n", BACKEND_ERROR, "", "unexpected greeting", 14);
	expect(&imap_cfg, "* OK hi\r\nX what\r\n", BACKEND_ERROR, "C CAPABILITY\r\n",
	       "unexpected reply to CAPABILITY", 17);
	expect(&imap_cfg, "* OK [CAPABILITY SASL-IR] hi\r\n+ more\r\n", BACKEND_ERROR,
	       "L AUTHENTICATE PLAIN " PLAIN_BOB "\r\n", "unexpected continuation", 38);
	expect(&imap_cfg, "* OK [CAPABILITY SASL-IR] hi\r\nX OK\r\n", BACKEND_ERROR,
	       "L AUTHENTICATE PLAIN " PLAIN_BOB "\r\n", "unexpected reply to AUTHENTICATE", 36);
	/* NUL and an endless line */
	struct result o;
	run(&imap_cfg, "* OK", NULL, 0, &o);
	assert_int_equal(o.r, BACKEND_MORE);
	char *big = malloc(BACKEND_MAX_LINE + 10);
	memset(big, 'x', BACKEND_MAX_LINE + 9);
	big[BACKEND_MAX_LINE + 9] = '\0';
	run(&imap_cfg, big, NULL, 0, &o);
	assert_int_equal(o.r, BACKEND_ERROR);
	assert_string_equal(o.reply, "line too long");
	assert_int_equal(o.consumed, BACKEND_MAX_LINE + 1);
	free(big);
	struct sink sink = { .len = 0 };
	struct backend_login *b = backend_login_new(&imap_cfg, sink_send, &sink);
	size_t consumed;
	const char *reply;
	assert_int_equal(backend_login_input(b, (const uint8_t *)"* O\0K\r\n", 7, &consumed, &reply),
			 BACKEND_ERROR);
	assert_string_equal(reply, "NUL in a line");
	assert_int_equal(consumed, 4);
	/* nothing more after the end */
	assert_int_equal(backend_login_input(b, (const uint8_t *)"x", 1, &consumed, &reply),
			 BACKEND_ERROR);
	assert_int_equal(consumed, 0);
	backend_login_free(&b);
}

static void test_pop3(void **state)
{
	(void)state;
	struct backend_login_config cfg = imap_cfg;
	cfg.pop3 = true;
	expect(&cfg, "+OK ready\r\n+OK Logged in.\r\n", BACKEND_OK,
	       "AUTH PLAIN " PLAIN_BOB "\r\n", "+OK Logged in.", 27);
	expect(&cfg, "+OK [XCLIENT] ready\r\n+OK\r\n-ERR [AUTH] no\r\n", BACKEND_FAIL,
	       "XCLIENT ADDR=192.0.2.1 PORT=4000 SESSION=S3ss10n\r\nAUTH PLAIN " PLAIN_BOB "\r\n",
	       "-ERR [AUTH] no", 42);
	expect(&cfg, "-ERR busy\r\n", BACKEND_ERROR, "", "unexpected greeting", 11);
	expect(&cfg, "+OK [XCLIENT] ready\r\n-ERR no\r\n", BACKEND_ERROR,
	       "XCLIENT ADDR=192.0.2.1 PORT=4000 SESSION=S3ss10n\r\n", "XCLIENT refused", 30);
	expect(&cfg, "+OK ready\r\n+ \r\n", BACKEND_ERROR, "AUTH PLAIN " PLAIN_BOB "\r\n",
	       "unexpected reply to AUTH", 15);
}

/* STARTTLS / STLS: the dialogue stops at the OK (nothing after it is
 * consumed: the handshake follows), then goes on after the handshake */
static void test_starttls(void **state)
{
	(void)state;
	struct backend_login_config cfg = imap_cfg;
	cfg.starttls = true;
	const char *in = "* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n* x\r\nS OK go\r\n\x16\x03";
	expect(&cfg, in, BACKEND_STARTTLS, "S STARTTLS\r\n", "S OK go", strlen(in) - 2);
	expect(&cfg, "* OK hi\r\nS NO never\r\n", BACKEND_ERROR, "S STARTTLS\r\n",
	       "STARTTLS refused", 21);

	struct sink sink = { .len = 0 };
	struct backend_login *b = backend_login_new(&cfg, sink_send, &sink);
	size_t consumed;
	const char *reply;
	const char *g = "* OK [CAPABILITY IMAP4rev1 SASL-IR] hi\r\nS OK go\r\n";
	assert_int_equal(backend_login_input(b, (const uint8_t *)g, strlen(g), &consumed, &reply),
			 BACKEND_STARTTLS);
	/* plaintext while the handshake is under way is refused */
	assert_int_equal(backend_login_input(b, (const uint8_t *)"x", 1, &consumed, &reply),
			 BACKEND_ERROR);
	backend_login_free(&b);

	sink.len = 0;
	b = backend_login_new(&cfg, sink_send, &sink);
	assert_int_equal(backend_login_input(b, (const uint8_t *)g, strlen(g), &consumed, &reply),
			 BACKEND_STARTTLS);
	backend_login_tls_started(b);
	/* capabilities asked again: those before TLS are forgotten */
	const char *after = "* CAPABILITY IMAP4rev1 ID\r\nC OK\r\n+ \r\nL OK in\r\n";
	assert_int_equal(backend_login_input(b, (const uint8_t *)after, strlen(after), &consumed,
					     &reply), BACKEND_OK);
	assert_string_equal(sink.out, "S STARTTLS\r\nC CAPABILITY\r\n" ID_LINE
			    "L AUTHENTICATE PLAIN\r\n" PLAIN_BOB "\r\n");
	backend_login_free(&b);

	/* POP3: STLS, then XCLIENT as the greeting offered, then AUTH */
	cfg.pop3 = true;
	sink.len = 0;
	sink.out[0] = '\0';
	b = backend_login_new(&cfg, sink_send, &sink);
	const char *p = "+OK [XCLIENT] hi\r\n+OK Begin TLS\r\n";
	assert_int_equal(backend_login_input(b, (const uint8_t *)p, strlen(p), &consumed, &reply),
			 BACKEND_STARTTLS);
	backend_login_tls_started(b);
	p = "+OK\r\n+OK Logged in.\r\n";
	assert_int_equal(backend_login_input(b, (const uint8_t *)p, strlen(p), &consumed, &reply),
			 BACKEND_OK);
	assert_string_equal(sink.out, "STLS\r\nXCLIENT ADDR=192.0.2.1 PORT=4000 SESSION=S3ss10n\r\n"
			    "AUTH PLAIN " PLAIN_BOB "\r\n");
	backend_login_free(&b);
	expect(&cfg, "+OK hi\r\n-ERR no\r\n", BACKEND_ERROR, "STLS\r\n", "STLS refused", 17);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_imap_id_sasl_ir),
		cmocka_unit_test(test_imap_capability_command_no_ir),
		cmocka_unit_test(test_imap_master_user),
		cmocka_unit_test(test_imap_errors),
		cmocka_unit_test(test_pop3),
		cmocka_unit_test(test_starttls),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
