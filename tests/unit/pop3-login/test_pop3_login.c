/* The POP3 pre-auth core driven in memory: the greeting, the command loop
 * (bad commands, long lines, STLS, XCLIENT, QUIT), pipelining around a
 * login, hand-off and its failure, re-entry from callbacks. Replies are
 * compared byte for byte with what Dovecot 2.3's pop3-login sends (checked
 * against a running dovecot-pop3d). */
#include "pop3-login-test.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greeting),
		cmocka_unit_test(test_xclient),
		cmocka_unit_test(test_pipelined_handoff),
		cmocka_unit_test(test_pipelined_after_fail),
		cmocka_unit_test(test_sync_auth_reply),
		cmocka_unit_test(test_too_much_pipelined),
		cmocka_unit_test(test_bad_commands),
		cmocka_unit_test(test_stls),
		cmocka_unit_test(test_quit_and_bye),
		cmocka_unit_test(test_handoff_failed),
		cmocka_unit_test(test_destroy_in_disconnect),
		cmocka_unit_test(test_endless_line_bounded),
		cmocka_unit_test(test_idle),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
