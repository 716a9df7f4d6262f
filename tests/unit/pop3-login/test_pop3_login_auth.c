/* The POP3 pre-auth core's authentication, driven in memory: CAPA and the
 * mechanisms offered, USER/PASS, AUTH (initial response, challenges,
 * cancel), APOP, plaintext rules. Replies are compared byte for byte with
 * what Dovecot 2.3's pop3-login sends (checked against a running
 * dovecot-pop3d). */
#include "pop3-login-test.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

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

int main(void)
{
	const struct CMUnitTest tests[] = {
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
		cmocka_unit_test(test_plaintext_disallowed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
