/* The POP3 pre-auth core driven in memory: callbacks record what it sends and
 * asks for. Replies are compared byte for byte with what Dovecot 2.3's
 * pop3-login sends (checked against a running dovecot-pop3d). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "login/login-proto.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#define P (&pop3_login_proto)

struct fake {
	struct login_session *s;
	char *out;
	size_t out_len;

	int begins;
	char mech[64];
	uint8_t resp[16384];
	size_t resp_len;
	bool has_resp;

	int continues;
	uint8_t cont[16384];
	size_t cont_len;

	int aborts;
	int handoffs;
	bool tag_was_null;
	uint8_t preread[8192];
	size_t preread_len;
	size_t out_len_at_handoff;

	int disconnects;
	char forwarded[256];
	int starttls;

	/* behaviours */
	bool destroy_on_disconnect;
	bool reply_sync;               /* answer auth_begin at once with... */
	enum login_auth_result sync_result;
	bool fail_handoff_sync;
};

static void fake_send(void *ctx, const void *data, size_t len)
{
	struct fake *f = ctx;
	assert_int_equal(f->disconnects, 0);
	f->out = realloc(f->out, f->out_len + len + 1);
	memcpy(f->out + f->out_len, data, len);
	f->out_len += len;
	f->out[f->out_len] = '\0';
}

static void fake_auth_begin(void *ctx, const char *mech, const uint8_t *resp, size_t resp_len,
			    bool has_resp)
{
	struct fake *f = ctx;
	f->begins++;
	snprintf(f->mech, sizeof(f->mech), "%s", mech);
	assert_true(resp_len <= sizeof(f->resp));
	if (resp_len > 0)
		memcpy(f->resp, resp, resp_len);
	f->resp_len = resp_len;
	f->has_resp = has_resp;
	if (!has_resp)
		assert_int_equal(resp_len, 0);
	if (f->reply_sync)
		P->auth_reply(f->s, f->sync_result, NULL, 0, NULL);
}

static void fake_auth_continue(void *ctx, const uint8_t *resp, size_t resp_len)
{
	struct fake *f = ctx;
	f->continues++;
	assert_true(resp_len <= sizeof(f->cont));
	if (resp_len > 0)
		memcpy(f->cont, resp, resp_len);
	f->cont_len = resp_len;
}

static void fake_auth_abort(void *ctx)
{
	struct fake *f = ctx;
	f->aborts++;
}

static void fake_handoff(void *ctx, const char *tag, const uint8_t *preread, size_t len)
{
	struct fake *f = ctx;
	f->handoffs++;
	f->tag_was_null = tag == NULL;
	assert_true(len <= sizeof(f->preread));
	if (len > 0)
		memcpy(f->preread, preread, len);
	f->preread_len = len;
	f->out_len_at_handoff = f->out_len;
	if (f->fail_handoff_sync)
		P->handoff_failed(f->s, "Maximum number of connections");
}

static void fake_disconnect(void *ctx, const char *reason)
{
	struct fake *f = ctx;
	assert_non_null(reason);
	f->disconnects++;
	if (f->destroy_on_disconnect) {
		P->destroy(f->s);
		f->s = NULL;
	}
}

static void fake_starttls(void *ctx)
{
	struct fake *f = ctx;
	f->starttls++;
}

static void fake_forward(void *ctx, const char *key, const char *value)
{
	struct fake *f = ctx;
	size_t n = strlen(f->forwarded);
	snprintf(f->forwarded + n, sizeof(f->forwarded) - n, "%s=%s;", key, value);
}

static const struct login_callbacks fake_cb = {
	.send = fake_send,
	.auth_begin = fake_auth_begin,
	.auth_continue = fake_auth_continue,
	.auth_abort = fake_auth_abort,
	.handoff = fake_handoff,
	.disconnect = fake_disconnect,
	.starttls = fake_starttls,
	.forward = fake_forward,
};

static const struct login_proto_config cfg_default = {
	.greeting = "Dovecot ready.",
	.mechanisms = "PLAIN LOGIN",
	.secured = false,
	.plaintext_auth_allowed = true,
	.starttls_available = false,
};

static struct fake *fake_new(const struct login_proto_config *cfg)
{
	struct fake *f = calloc(1, sizeof(*f));
	f->s = P->create(cfg, &fake_cb, f);
	assert_non_null(f->s);
	return f;
}

static void fake_free(struct fake *f)
{
	if (f->s != NULL)
		P->destroy(f->s);
	free(f->out);
	free(f);
}

static void fake_clear_out(struct fake *f)
{
	f->out_len = 0;
	if (f->out != NULL)
		f->out[0] = '\0';
}

static void input(struct fake *f, const char *str)
{
	P->input(f->s, (const uint8_t *)str, strlen(str));
}

static void input_n(struct fake *f, const void *data, size_t len)
{
	uint8_t *copy = malloc(len == 0 ? 1 : len);
	memcpy(copy, data, len);
	P->input(f->s, copy, len);
	free(copy);
}

static void assert_out(struct fake *f, const char *expected)
{
	assert_non_null(f->out);
	assert_string_equal(f->out, expected);
	fake_clear_out(f);
}

#define GREETING "+OK Dovecot ready.\r\n"
#define CAPA_BASE "+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\n"
#define PLAINTEXT_DISALLOWED \
	"-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.\r\n"

/* Feeds script at every split and one byte at a time into fresh sessions;
 * the output must be the same each time. */
static void check_script_n(const struct login_proto_config *cfg, const char *script,
			   size_t len, const char *expected, int expect_disconnects)
{
	for (size_t split = 0; split <= len + 1; split++) {
		struct fake *f = fake_new(cfg);
		fake_clear_out(f);
		if (split <= len) {
			input_n(f, script, split);
			if (f->s != NULL)
				input_n(f, script + split, len - split);
		} else {
			for (size_t i = 0; i < len && f->s != NULL; i++)
				input_n(f, script + i, 1);
		}
		assert_string_equal(f->out == NULL ? "" : f->out, expected);
		assert_int_equal(f->disconnects, expect_disconnects);
		fake_free(f);
	}
}

static void check_script(const struct login_proto_config *cfg, const char *script,
			 const char *expected, int expect_disconnects)
{
	check_script_n(cfg, script, strlen(script), expected, expect_disconnects);
}

static void test_greeting(void **state)
{
	(void)state;
	struct fake *f = fake_new(&cfg_default);
	assert_out(f, GREETING);
	assert_true(pop3_login_idle(f->s));
	assert_string_equal(P->name, "pop3");
	fake_free(f);

	/* the greeting cannot smuggle a second line */
	struct login_proto_config cfg = cfg_default;
	cfg.greeting = "evil\r\n+OK fake";
	f = fake_new(&cfg);
	assert_out(f, "+OK evil  +OK fake\r\n");
	fake_free(f);
}

static void test_capa(void **state)
{
	(void)state;
	check_script(&cfg_default, "CAPA\r\n",
		     CAPA_BASE "USER\r\nSASL PLAIN LOGIN\r\n.\r\n", 0);
	check_script(&cfg_default, "capa\n",
		     CAPA_BASE "USER\r\nSASL PLAIN LOGIN\r\n.\r\n", 0);

	struct login_proto_config cfg = cfg_default;
	cfg.starttls_available = true;
	check_script(&cfg, "CAPA\r\n",
		     CAPA_BASE "STLS\r\nUSER\r\nSASL PLAIN LOGIN\r\n.\r\n", 0);

	/* plaintext disallowed: no USER, no plaintext mechanism advertised */
	cfg.plaintext_auth_allowed = false;
	check_script(&cfg, "CAPA\r\n", CAPA_BASE "STLS\r\n.\r\n", 0);
	cfg.mechanisms = "PLAIN LOGIN CRAM-MD5";
	check_script(&cfg, "CAPA\r\n", CAPA_BASE "STLS\r\nSASL CRAM-MD5\r\n.\r\n", 0);

	cfg = cfg_default;
	cfg.mechanisms = "PLAIN";
	check_script(&cfg, "CAPA\r\nAUTH\r\n",
		     CAPA_BASE "USER\r\nSASL PLAIN\r\n.\r\n+OK\r\nPLAIN\r\n.\r\n", 0);
}

/* SCRAM-*-PLUS binds to the TLS channel: offered and accepted only on TLS
 * (config.tls, or after STLS) */
static void test_plus_needs_tls(void **state)
{
	(void)state;
	struct login_proto_config cfg = cfg_default;
	cfg.mechanisms = "SCRAM-SHA-256 SCRAM-SHA-256-PLUS EXTERNAL";
	cfg.starttls_available = true;
	check_script(&cfg, "CAPA\r\nAUTH\r\nAUTH SCRAM-SHA-256-PLUS =\r\n",
		     CAPA_BASE "STLS\r\nUSER\r\nSASL SCRAM-SHA-256 EXTERNAL\r\n.\r\n"
		     "+OK\r\nSCRAM-SHA-256\r\nEXTERNAL\r\n.\r\n"
		     "-ERR [AUTH] Unsupported authentication mechanism.\r\n", 0);
	struct fake *f = fake_new(&cfg);
	fake_clear_out(f);
	input(f, "STLS\r\n");
	assert_int_equal(f->starttls, 1);
	fake_clear_out(f);
	input(f, "CAPA\r\nauth scram-sha-256-plus =\r\n");
	assert_out(f, CAPA_BASE "USER\r\nSASL SCRAM-SHA-256 SCRAM-SHA-256-PLUS EXTERNAL\r\n.\r\n");
	assert_int_equal(f->begins, 1);
	assert_string_equal(f->mech, "SCRAM-SHA-256-PLUS");
	fake_free(f);

	cfg.starttls_available = false;
	cfg.tls = true;
	check_script(&cfg, "AUTH\r\n",
		     "+OK\r\nSCRAM-SHA-256\r\nSCRAM-SHA-256-PLUS\r\nEXTERNAL\r\n.\r\n", 0);
}

static void test_user_pass(void **state)
{
	(void)state;
	struct fake *f = fake_new(&cfg_default);
	fake_clear_out(f);
	input(f, "USER alice\r\n");
	assert_out(f, "+OK\r\n");
	input(f, "PASS my secret  pw \r\n");
	assert_int_equal(f->begins, 1);
	assert_string_equal(f->mech, "PLAIN");
	assert_true(f->has_resp);
	static const char plain[] = "\0alice\0my secret  pw ";
	assert_int_equal(f->resp_len, sizeof(plain) - 1);
	assert_memory_equal(f->resp, plain, sizeof(plain) - 1);
	assert_false(pop3_login_idle(f->s));
	assert_int_equal(f->out_len, 0);

	P->auth_reply(f->s, LOGIN_AUTH_OK, NULL, 0, NULL);
	assert_int_equal(f->handoffs, 1);
	assert_true(f->tag_was_null);
	assert_int_equal(f->preread_len, 0);
	/* the worker says "+OK Logged in.", not the core */
	assert_int_equal(f->out_len, 0);
	assert_int_equal(f->disconnects, 0);
	fake_free(f);

	/* the same at every split: no output but +OK until auth answers */
	check_script(&cfg_default, "user bob\r\npass x\r\n", "+OK\r\n", 0);
}

/* APOP (RFC 1939): only when configured, the greeting's timestamp, and the
 * command to auth as Dovecot's APOP message: challenge NUL name NUL digest */
static void test_apop(void **state)
{
	(void)state;
	struct login_proto_config cfg = cfg_default;
	cfg.mechanisms = "PLAIN APOP";
	cfg.hostname = "mx1.example.org";
	struct fake *f = fake_new(&cfg);
	const char *g = f->out;
	assert_int_equal(strncmp(g, "+OK Dovecot ready. <", 20), 0);
	const char *lt = strchr(g, '<'), *gt = strchr(g, '>');
	assert_non_null(gt);
	assert_string_equal(gt, ">\r\n");
	char chal[128];
	size_t clen = (size_t)(gt - lt + 1);
	assert_true(clen < sizeof(chal));
	memcpy(chal, lt, clen);
	chal[clen] = '\0';
	/* the host part is the configured host name */
	assert_non_null(strstr(chal, "@mx1.example.org>"));
	fake_clear_out(f);
	input(f, "APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n");
	assert_int_equal(f->begins, 1);
	assert_string_equal(f->mech, "APOP");
	assert_true(f->has_resp);
	static const uint8_t digest[16] = { 0xc4, 0xc9, 0x33, 0x4b, 0xac, 0x56, 0x0e, 0xcc,
					    0x97, 0x9e, 0x58, 0x00, 0x1b, 0x3e, 0x22, 0xfb };
	assert_int_equal(f->resp_len, clen + 1 + 5 + 1 + 16);
	assert_memory_equal(f->resp, chal, clen);
	assert_memory_equal(f->resp + clen, "\0mrose\0", 7);
	assert_memory_equal(f->resp + clen + 7, digest, 16);
	assert_int_equal(f->out_len, 0);
	fake_free(f);

	/* each session its own timestamp */
	struct fake *a = fake_new(&cfg), *b = fake_new(&cfg);
	assert_string_not_equal(a->out, b->out);
	fake_free(a);
	fake_free(b);
	/* no host name given: "localhost", still a timestamp auth accepts */
	cfg.hostname = NULL;
	a = fake_new(&cfg);
	assert_non_null(strstr(a->out, "@localhost>\r\n"));
	fake_free(a);
	cfg.hostname = "mx1.example.org";

	/* at every split: malformed arguments, APOP kept out of SASL */
	check_script(&cfg, "APOP mrose c4c9\r\n",
		     "-ERR APOP needs a name and a 32-digit hex digest.\r\n", 0);
	check_script(&cfg, "APOP c4c9334bac560ecc979e58001b3e22fb\r\n",
		     "-ERR APOP needs a name and a 32-digit hex digest.\r\n", 0);
	check_script(&cfg, "APOP mrose c4c9334bac560ecc979e58001b3e22fg\r\n",
		     "-ERR APOP needs a name and a 32-digit hex digest.\r\n", 0);
	check_script(&cfg, "CAPA\r\nAUTH APOP\r\n",
		     CAPA_BASE "USER\r\nSASL PLAIN\r\n.\r\n"
		     "-ERR [AUTH] Unsupported authentication mechanism.\r\n", 0);
	/* not configured: no timestamp, an unknown command */
	f = fake_new(&cfg_default);
	assert_null(strchr(f->out, '<'));
	fake_free(f);
	check_script(&cfg_default, "APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n",
		     "-ERR Unknown command.\r\n", 0);
}

static void test_pass_without_user(void **state)
{
	(void)state;
	/* not a bad command in Dovecot: four of them do not disconnect */
	check_script(&cfg_default, "PASS x\r\nPASS x\r\nPASS x\r\nPASS x\r\n",
		     "-ERR No username given.\r\n-ERR No username given.\r\n"
		     "-ERR No username given.\r\n-ERR No username given.\r\n", 0);

	/* one PASS per USER: after a failure the name is gone */
	struct fake *f = fake_new(&cfg_default);
	fake_clear_out(f);
	input(f, "USER a\r\nPASS bad\r\n");
	P->auth_reply(f->s, LOGIN_AUTH_FAIL, NULL, 0, NULL);
	assert_out(f, "+OK\r\n-ERR [AUTH] Authentication failed.\r\n");
	assert_true(pop3_login_idle(f->s));
	input(f, "PASS bad\r\n");
	assert_out(f, "-ERR No username given.\r\n");
	assert_int_equal(f->begins, 1);
	fake_free(f);
}

static void test_auth_list_and_errors(void **state)
{
	(void)state;
	check_script(&cfg_default, "AUTH\r\n", "+OK\r\nPLAIN\r\nLOGIN\r\n.\r\n", 0);
	check_script(&cfg_default, "auth  \r\n", "+OK\r\nPLAIN\r\nLOGIN\r\n.\r\n", 0);
	/* not counted as bad commands, as Dovecot */
	check_script(&cfg_default, "AUTH FOO\r\nAUTH CRAM-MD5\r\nAUTH PLAINX\r\nAUTH PLAIN !!!\r\n"
		     "AUTH PLAIN AGEAYg== extra\r\nAUTH PLAIN AGEAYg\r\n",
		     "-ERR [AUTH] Unsupported authentication mechanism.\r\n"
		     "-ERR [AUTH] Unsupported authentication mechanism.\r\n"
		     "-ERR [AUTH] Unsupported authentication mechanism.\r\n"
		     "-ERR [AUTH] Invalid base64 data in initial response\r\n"
		     "-ERR [AUTH] Invalid base64 data in initial response\r\n"
		     "-ERR [AUTH] Invalid base64 data in initial response\r\n", 0);
}

static void test_auth_plain_ir(void **state)
{
	(void)state;
	struct fake *f = fake_new(&cfg_default);
	fake_clear_out(f);
	input(f, "auth plain AGFsaWNlAHB3  \r\n");
	assert_int_equal(f->begins, 1);
	assert_string_equal(f->mech, "PLAIN");
	assert_true(f->has_resp);
	assert_int_equal(f->resp_len, 9);
	assert_memory_equal(f->resp, "\0alice\0pw", 9);
	P->auth_reply(f->s, LOGIN_AUTH_OK, NULL, 0, NULL);
	assert_int_equal(f->handoffs, 1);
	assert_int_equal(f->out_len, 0);
	fake_free(f);

	/* "=" is an empty initial response, not none */
	f = fake_new(&cfg_default);
	input(f, "AUTH PLAIN =\r\n");
	assert_int_equal(f->begins, 1);
	assert_true(f->has_resp);
	assert_int_equal(f->resp_len, 0);
	fake_free(f);
}

static void test_auth_plain_challenge(void **state)
{
	(void)state;
	struct fake *f = fake_new(&cfg_default);
	fake_clear_out(f);
	input(f, "AUTH PLAIN\r\n");
	assert_int_equal(f->begins, 1);
	assert_false(f->has_resp);
	P->auth_reply(f->s, LOGIN_AUTH_CHALLENGE, (const uint8_t *)"", 0, NULL);
	assert_out(f, "+ \r\n");
	assert_false(pop3_login_idle(f->s));
	/* the response line may be longer than a command line */
	input(f, "AGFsaWNlAHB3\r\n");
	assert_int_equal(f->continues, 1);
	assert_int_equal(f->cont_len, 9);
	assert_memory_equal(f->cont, "\0alice\0pw", 9);
	P->auth_reply(f->s, LOGIN_AUTH_OK, NULL, 0, NULL);
	assert_int_equal(f->handoffs, 1);
	assert_int_equal(f->out_len, 0);
	fake_free(f);
}

static void test_auth_login(void **state)
{
	(void)state;
	struct fake *f = fake_new(&cfg_default);
	fake_clear_out(f);
	input(f, "AUTH LOGIN\r\n");
	assert_string_equal(f->mech, "LOGIN");
	assert_false(f->has_resp);
	P->auth_reply(f->s, LOGIN_AUTH_CHALLENGE, (const uint8_t *)"Username:", 9, NULL);
	assert_out(f, "+ VXNlcm5hbWU6\r\n");
	input(f, "YWxpY2U=\r\n");
	assert_int_equal(f->continues, 1);
	assert_int_equal(f->cont_len, 5);
	assert_memory_equal(f->cont, "alice", 5);
	/* a reply can arrive while no challenge is answered yet: still waiting */
	P->auth_reply(f->s, LOGIN_AUTH_CHALLENGE, (const uint8_t *)"Password:", 9, NULL);
	assert_out(f, "+ UGFzc3dvcmQ6\r\n");
	input(f, "cHc=\n");
	assert_int_equal(f->continues, 2);
	assert_int_equal(f->cont_len, 2);
	assert_memory_equal(f->cont, "pw", 2);
	P->auth_reply(f->s, LOGIN_AUTH_FAIL, NULL, 0, NULL);
	assert_out(f, "-ERR [AUTH] Authentication failed.\r\n");
	assert_true(pop3_login_idle(f->s));
	/* empty response line = empty response */
	input(f, "AUTH LOGIN\r\n");
	P->auth_reply(f->s, LOGIN_AUTH_CHALLENGE, (const uint8_t *)"Username:", 9, NULL);
	fake_clear_out(f);
	input(f, "\r\n");
	assert_int_equal(f->continues, 3);
	assert_int_equal(f->cont_len, 0);
	fake_free(f);
}

static void test_auth_cancel_and_bad_response(void **state)
{
	(void)state;
	struct fake *f = fake_new(&cfg_default);
	fake_clear_out(f);
	input(f, "AUTH PLAIN\r\n");
	P->auth_reply(f->s, LOGIN_AUTH_CHALLENGE, NULL, 0, NULL);
	input(f, "*\r\nCAPA\r\n");
	assert_int_equal(f->aborts, 1);
	assert_int_equal(f->continues, 0);
	assert_out(f, "+ \r\n-ERR Authentication aborted by client.\r\n"
		      CAPA_BASE "USER\r\nSASL PLAIN LOGIN\r\n.\r\n");
	/* a late reply to the aborted request is ignored */
	P->auth_reply(f->s, LOGIN_AUTH_OK, NULL, 0, NULL);
	assert_int_equal(f->handoffs, 0);
	assert_int_equal(f->out_len, 0);

	input(f, "AUTH LOGIN\r\n");
	P->auth_reply(f->s, LOGIN_AUTH_CHALLENGE, (const uint8_t *)"Username:", 9, NULL);
	input(f, "not base64!\r\n");
	assert_int_equal(f->aborts, 2);
	assert_out(f, "+ VXNlcm5hbWU6\r\n-ERR [AUTH] Invalid base64 in response\r\n");
	assert_true(pop3_login_idle(f->s));

	/* a NUL or over-long response line also ends the exchange */
	input(f, "AUTH LOGIN\r\n");
	P->auth_reply(f->s, LOGIN_AUTH_CHALLENGE, NULL, 0, NULL);
	input_n(f, "YW\0x\r\n", 6);
	assert_int_equal(f->aborts, 3);
	assert_out(f, "+ \r\n-ERR Invalid NUL byte in input.\r\n");
	fake_free(f);
}

static void test_auth_long_response(void **state)
{
	(void)state;
	/* LOGIN_MAX_LINE bytes of base64 pass; one more is too long */
	size_t n = LOGIN_MAX_LINE;
	char *line = malloc(n + 8);
	memset(line, 'A', n);
	memcpy(line + n, "\r\n", 3);
	struct fake *f = fake_new(&cfg_default);
	input(f, "AUTH PLAIN\r\n");
	P->auth_reply(f->s, LOGIN_AUTH_CHALLENGE, NULL, 0, NULL);
	input(f, line);
	assert_int_equal(f->continues, 1);
	assert_int_equal(f->cont_len, n / 4 * 3);
	P->auth_reply(f->s, LOGIN_AUTH_CHALLENGE, NULL, 0, NULL);
	fake_clear_out(f);
	memset(line, 'A', n + 4);
	memcpy(line + n + 4, "\r\n", 3);
	input(f, line);
	assert_int_equal(f->continues, 1);
	assert_int_equal(f->aborts, 1);
	assert_out(f, "-ERR Input line too long.\r\n");
	/* as a command, 600 bytes are too long */
	line[600] = '\0';
	memcpy(line + 598, "\r\n", 2);
	input(f, line);
	assert_out(f, "-ERR Input line too long.\r\n");
	free(line);
	fake_free(f);
}

static void test_pipelined_handoff(void **state)
{
	(void)state;
	static const char script[] = "USER a\r\nPASS b c\r\nLIST\r\nRETR 1";
	size_t len = sizeof(script) - 1;
	for (size_t split = 0; split <= len; split++) {
		struct fake *f = fake_new(&cfg_default);
		fake_clear_out(f);
		input_n(f, script, split);
		input_n(f, script + split, len - split);
		/* more while auth works */
		input(f, "\r\nSTAT\r\n");
		assert_int_equal(f->begins, 1);
		assert_memory_equal(f->resp, "\0a\0b c", 6);
		assert_out(f, "+OK\r\n");
		P->auth_reply(f->s, LOGIN_AUTH_OK, NULL, 0, NULL);
		assert_int_equal(f->handoffs, 1);
		static const char pre[] = "LIST\r\nRETR 1\r\nSTAT\r\n";
		assert_int_equal(f->preread_len, sizeof(pre) - 1);
		assert_memory_equal(f->preread, pre, sizeof(pre) - 1);
		assert_int_equal(f->out_len, 0);
		fake_free(f);
	}
}

static void test_pipelined_after_fail(void **state)
{
	(void)state;
	struct fake *f = fake_new(&cfg_default);
	fake_clear_out(f);
	input(f, "USER a\r\nPASS b\r\nCAPA\r\nUSER a\r\nPASS c\r\nCA");
	assert_out(f, "+OK\r\n");
	P->auth_reply(f->s, LOGIN_AUTH_TEMPFAIL, NULL, 0, NULL);
	/* the pipelined commands run after the answer, up to the next PASS */
	assert_out(f, "-ERR [SYS/TEMP] Temporary authentication failure.\r\n"
		      CAPA_BASE "USER\r\nSASL PLAIN LOGIN\r\n.\r\n+OK\r\n");
	assert_int_equal(f->begins, 2);
	assert_memory_equal(f->resp, "\0a\0c", 4);
	P->auth_reply(f->s, LOGIN_AUTH_FAIL, NULL, 0, "Account\r\ndisabled");
	assert_out(f, "-ERR [AUTH] Account  disabled\r\n");
	/* the partial "CA" waits for its end */
	assert_false(pop3_login_idle(f->s));
	input(f, "PA\r\n");
	assert_out(f, CAPA_BASE "USER\r\nSASL PLAIN LOGIN\r\n.\r\n");
	assert_true(pop3_login_idle(f->s));
	fake_free(f);
}

static void test_sync_auth_reply(void **state)
{
	(void)state;
	/* auth answers from inside auth_begin: order is still kept */
	struct fake *f = fake_new(&cfg_default);
	fake_clear_out(f);
	f->reply_sync = true;
	f->sync_result = LOGIN_AUTH_FAIL;
	input(f, "USER a\r\nPASS b\r\nCAPA\r\n");
	assert_out(f, "+OK\r\n-ERR [AUTH] Authentication failed.\r\n"
		      CAPA_BASE "USER\r\nSASL PLAIN LOGIN\r\n.\r\n");
	f->sync_result = LOGIN_AUTH_OK;
	input(f, "AUTH PLAIN =\r\nNOOP\r\n");
	assert_int_equal(f->handoffs, 1);
	/* handed off from inside auth_begin: the rest still travels with it */
	assert_int_equal(f->preread_len, 6);
	assert_memory_equal(f->preread, "NOOP\r\n", 6);
	assert_int_equal(f->out_len, 0);
	fake_free(f);
}

static void test_too_much_pipelined(void **state)
{
	(void)state;
	struct fake *f = fake_new(&cfg_default);
	fake_clear_out(f);
	input(f, "USER a\r\nPASS b\r\n");
	char *junk = malloc(LOGIN_MAX_PENDING + 1);
	memset(junk, 'x', LOGIN_MAX_PENDING);
	input_n(f, junk, LOGIN_MAX_PENDING);
	assert_int_equal(f->disconnects, 0);
	input(f, "y");
	assert_int_equal(f->disconnects, 1);
	assert_int_equal(f->aborts, 1);
	assert_out(f, "+OK\r\n-ERR Too much pipelined input\r\n");
	/* a late reply and more input are ignored */
	P->auth_reply(f->s, LOGIN_AUTH_OK, NULL, 0, NULL);
	input(f, "CAPA\r\n");
	assert_int_equal(f->handoffs, 0);
	free(junk);
	fake_free(f);
}

static void test_bad_commands(void **state)
{
	(void)state;
	check_script(&cfg_default, "foo\r\nNOOP\r\n\r\nCAPA\r\n",
		     "-ERR Unknown command.\r\n-ERR Unknown command.\r\n-ERR Unknown command.\r\n"
		     "-ERR Too many invalid bad commands.\r\n", 1);
	/* a good command forgives, as Dovecot */
	check_script(&cfg_default, "foo\r\nbar\r\nUSER x\r\nbaz\r\nqux\r\n",
		     "-ERR Unknown command.\r\n-ERR Unknown command.\r\n+OK\r\n"
		     "-ERR Unknown command.\r\n-ERR Unknown command.\r\n", 0);
	/* parse errors count too */
	check_script_n(&cfg_default, "a\0b\r\nfoo\r\nLIST\r\n", 16,
		     "-ERR Invalid NUL byte in input.\r\n-ERR Unknown command.\r\n"
		     "-ERR Unknown command.\r\n-ERR Too many invalid bad commands.\r\n", 1);
}

static void test_plaintext_disallowed(void **state)
{
	(void)state;
	struct login_proto_config cfg = cfg_default;
	cfg.plaintext_auth_allowed = false;
	cfg.mechanisms = "PLAIN LOGIN CRAM-MD5";
	check_script(&cfg, "AUTH\r\nAUTH PLAIN AGEAYg==\r\nAUTH login\r\nPASS x\r\n",
		     "+OK\r\nCRAM-MD5\r\n.\r\n"
		     "-ERR [AUTH] Plaintext authentication disabled.\r\n"
		     "-ERR [AUTH] Plaintext authentication disabled.\r\n"
		     PLAINTEXT_DISALLOWED, 0);
	check_script(&cfg, "USER a\r\nUSER a\r\nPASS b\r\n",
		     PLAINTEXT_DISALLOWED PLAINTEXT_DISALLOWED PLAINTEXT_DISALLOWED
		     "-ERR Too many invalid bad commands.\r\n", 1);
	struct fake *f = fake_new(&cfg);
	input(f, "AUTH CRAM-MD5\r\n");
	assert_int_equal(f->begins, 1);
	assert_string_equal(f->mech, "CRAM-MD5");
	fake_free(f);
}

static void test_stls(void **state)
{
	(void)state;
	check_script(&cfg_default, "STLS\r\n", "-ERR TLS support isn't enabled.\r\n", 0);

	struct login_proto_config cfg = cfg_default;
	cfg.starttls_available = true;
	cfg.plaintext_auth_allowed = false;
	struct fake *f = fake_new(&cfg);
	fake_clear_out(f);
	/* what follows STLS in the same packet is injected plaintext: dropped */
	input(f, "stls\r\nUSER evil\r\n");
	assert_out(f, "+OK Begin TLS negotiation now.\r\n");
	assert_int_equal(f->starttls, 1);
	assert_true(pop3_login_idle(f->s));
	/* now over TLS: plaintext auth allowed, no second STLS */
	input(f, "CAPA\r\nPASS x\r\nSTLS\r\n");
	assert_out(f, CAPA_BASE "USER\r\nSASL PLAIN LOGIN\r\n.\r\n-ERR No username given.\r\n"
		      "-ERR TLS support isn't enabled.\r\n");
	assert_int_equal(f->starttls, 1);
	fake_free(f);

	/* USER given before STLS does not survive it */
	cfg.plaintext_auth_allowed = true;
	f = fake_new(&cfg);
	input(f, "USER a\r\n");
	input(f, "STLS\r\n");
	fake_clear_out(f);
	input(f, "PASS x\r\n");
	assert_out(f, "-ERR No username given.\r\n");
	fake_free(f);

	/* no starttls callback yet: not offered, not accepted */
	struct login_callbacks cb = fake_cb;
	cb.starttls = NULL;
	struct fake *g = calloc(1, sizeof(*g));
	g->s = P->create(&cfg, &cb, g);
	fake_clear_out(g);
	input(g, "STLS\r\n");
	assert_out(g, "-ERR TLS support isn't enabled.\r\n");
	fake_free(g);
}

static void test_quit_and_bye(void **state)
{
	(void)state;
	check_script(&cfg_default, "QUIT\r\nCAPA\r\n", "+OK Logging out\r\n", 1);
	check_script(&cfg_default, "quit \r\n", "+OK Logging out\r\n", 1);

	struct fake *f = fake_new(&cfg_default);
	fake_clear_out(f);
	P->bye(f->s, "Disconnected for inactivity.");
	assert_out(f, "-ERR Disconnected for inactivity.\r\n");
	assert_int_equal(f->disconnects, 1);
	P->bye(f->s, "again");
	input(f, "CAPA\r\n");
	assert_int_equal(f->out_len, 0);
	fake_free(f);

	/* bye while auth works: auth is told to forget */
	f = fake_new(&cfg_default);
	input(f, "AUTH PLAIN =\r\n");
	fake_clear_out(f);
	P->bye(f->s, "Server shutting down.");
	assert_int_equal(f->aborts, 1);
	assert_out(f, "-ERR Server shutting down.\r\n");
	P->auth_reply(f->s, LOGIN_AUTH_OK, NULL, 0, NULL);
	assert_int_equal(f->handoffs, 0);
	fake_free(f);

	/* also while a challenge waits for the client */
	f = fake_new(&cfg_default);
	input(f, "AUTH LOGIN\r\n");
	P->auth_reply(f->s, LOGIN_AUTH_CHALLENGE, (const uint8_t *)"Username:", 9, NULL);
	fake_clear_out(f);
	P->bye(f->s, "Disconnected for inactivity.");
	assert_int_equal(f->aborts, 1);
	assert_out(f, "-ERR Disconnected for inactivity.\r\n");
	fake_free(f);
}

static void test_handoff_failed(void **state)
{
	(void)state;
	struct fake *f = fake_new(&cfg_default);
	fake_clear_out(f);
	input(f, "USER a\r\nPASS b\r\nCAPA\r\n");
	P->auth_reply(f->s, LOGIN_AUTH_OK, NULL, 0, NULL);
	assert_int_equal(f->handoffs, 1);
	assert_int_equal(f->preread_len, 6);
	/* more input while master works is kept, not parsed */
	input(f, "QUIT\r\n");
	assert_out(f, "+OK\r\n");
	assert_false(pop3_login_idle(f->s));
	P->handoff_failed(f->s, "Maximum number of connections");
	assert_out(f, "-ERR [SYS/TEMP] Maximum number of connections\r\n"
		      CAPA_BASE "USER\r\nSASL PLAIN LOGIN\r\n.\r\n+OK Logging out\r\n");
	assert_int_equal(f->disconnects, 1);
	fake_free(f);

	/* a second failure answer is ignored; session goes on */
	f = fake_new(&cfg_default);
	f->fail_handoff_sync = true;
	input(f, "AUTH PLAIN =\r\n");
	fake_clear_out(f);
	P->auth_reply(f->s, LOGIN_AUTH_OK, NULL, 0, NULL);
	assert_out(f, "-ERR [SYS/TEMP] Maximum number of connections\r\n");
	P->handoff_failed(f->s, "again");
	assert_int_equal(f->out_len, 0);
	assert_true(pop3_login_idle(f->s));
	fake_free(f);
}

static void test_destroy_in_disconnect(void **state)
{
	(void)state;
	/* the connection layer may destroy the session from disconnect() */
	struct fake *f = fake_new(&cfg_default);
	f->destroy_on_disconnect = true;
	input(f, "a\r\nb\r\nc\r\nd\r\ne\r\n");
	assert_null(f->s);
	assert_int_equal(f->disconnects, 1);
	fake_free(f);

	f = fake_new(&cfg_default);
	f->destroy_on_disconnect = true;
	input(f, "QUIT\r\nQUIT\r\n");
	assert_null(f->s);
	fake_free(f);

	f = fake_new(&cfg_default);
	f->destroy_on_disconnect = true;
	input(f, "USER a\r\nPASS b\r\n");
	P->bye(f->s, "bye");
	assert_null(f->s);
	fake_free(f);
}

static void test_endless_line_bounded(void **state)
{
	(void)state;
	enum { CHUNK = 65536, TOTAL = 10 * 1024 * 1024 };
	uint8_t *chunk = malloc(CHUNK);
	memset(chunk, 'x', CHUNK);
	struct fake *f = fake_new(&cfg_default);
	fake_clear_out(f);
	struct mallinfo2 before = mallinfo2();
	size_t peak = 0;
	for (size_t done = 0; done < TOTAL; done += CHUNK) {
		P->input(f->s, chunk, CHUNK);
		struct mallinfo2 now = mallinfo2();
		if (now.uordblks > before.uordblks && now.uordblks - before.uordblks > peak)
			peak = now.uordblks - before.uordblks;
	}
	assert_true(peak < 4096);
	assert_false(pop3_login_idle(f->s));
	assert_int_equal(f->out_len, 0);
	input(f, "\r\nCAPA\r\n");
	assert_out(f, "-ERR Input line too long.\r\n" CAPA_BASE "USER\r\nSASL PLAIN LOGIN\r\n.\r\n");
	assert_true(pop3_login_idle(f->s));
	fake_free(f);
	free(chunk);
}

static void test_idle(void **state)
{
	(void)state;
	struct fake *f = fake_new(&cfg_default);
	assert_true(pop3_login_idle(f->s));
	input(f, "CAP");
	assert_false(pop3_login_idle(f->s));
	input(f, "A\r\n");
	assert_true(pop3_login_idle(f->s));
	input(f, "AUTH LOGIN\r\n");
	assert_false(pop3_login_idle(f->s));
	P->auth_reply(f->s, LOGIN_AUTH_CHALLENGE, NULL, 0, NULL);
	assert_false(pop3_login_idle(f->s));
	input(f, "*\r\n");
	assert_true(pop3_login_idle(f->s));
	fake_free(f);
}

/* XCLIENT: only a trusted client (a proxy) is told about it in the greeting
 * and may use it; its fields go to the connection layer */
static void test_xclient(void **state)
{
	(void)state;
	check_script(&cfg_default, "XCLIENT ADDR=192.0.2.9 PORT=4242\r\n",
		     "-ERR You aren't allowed to use XCLIENT command.\r\n", 0);
	struct login_proto_config cfg = cfg_default;
	cfg.trusted = true;
	struct fake *f = fake_new(&cfg);
	assert_out(f, "+OK [XCLIENT] Dovecot ready.\r\n");
	input(f, "XCLIENT ADDR=192.0.2.9  PORT=4242 SESSION=abc TTL=4 FOO\r\n");
	assert_out(f, "+OK\r\n");
	assert_string_equal(f->forwarded, "rip=192.0.2.9;rport=4242;session=abc;");
	fake_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greeting),
		cmocka_unit_test(test_xclient),
		cmocka_unit_test(test_capa),
		cmocka_unit_test(test_plus_needs_tls),
		cmocka_unit_test(test_user_pass),
		cmocka_unit_test(test_apop),
		cmocka_unit_test(test_pass_without_user),
		cmocka_unit_test(test_auth_list_and_errors),
		cmocka_unit_test(test_auth_plain_ir),
		cmocka_unit_test(test_auth_plain_challenge),
		cmocka_unit_test(test_auth_login),
		cmocka_unit_test(test_auth_cancel_and_bad_response),
		cmocka_unit_test(test_auth_long_response),
		cmocka_unit_test(test_pipelined_handoff),
		cmocka_unit_test(test_pipelined_after_fail),
		cmocka_unit_test(test_sync_auth_reply),
		cmocka_unit_test(test_too_much_pipelined),
		cmocka_unit_test(test_bad_commands),
		cmocka_unit_test(test_plaintext_disallowed),
		cmocka_unit_test(test_stls),
		cmocka_unit_test(test_quit_and_bye),
		cmocka_unit_test(test_handoff_failed),
		cmocka_unit_test(test_destroy_in_disconnect),
		cmocka_unit_test(test_endless_line_bounded),
		cmocka_unit_test(test_idle),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
