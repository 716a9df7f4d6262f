/* ringgate-pop3 end to end (the real binary on a socketpair, as master
 * starts it), and the POP3 core fed at every byte split. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "harness.h"
#include "lib/alloc.h"
#include "mail/maildir.h"
#include "pop3/pop3-client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* LF message with lines that need dot-stuffing */
#define MSG1 "From: a@example.com\nSubject: one\n\nHello\n.dot line\n..two dots\nend\n"
#define MSG1_OUT "From: a@example.com\r\nSubject: one\r\n\r\nHello\r\n..dot line\r\n...two dots\r\nend\r\n.\r\n"
/* CRLF message without a final newline */
#define MSG2 "Subject: two\r\n\r\nCRLF body\r\nno final newline"
#define MSG2_OUT "Subject: two\r\n\r\nCRLF body\r\nno final newline\r\n.\r\n"
#define MSG3 "Subject: three\n\nl1\nl2\nl3\n"

static int setup(void **state)
{
	struct wh_home *f = wh_home_new();
	wh_put_three(f->md, MSG1, MSG2, MSG3);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	wh_home_free(*state);
	return 0;
}

static void expect(struct worker_proc *w, const char *cmd, const char *terminator, const char *reply)
{
	if (cmd != NULL)
		wh_send(w, cmd);
	size_t len;
	char *got = wh_read_until(w, terminator, &len);
	assert_string_equal(got, reply);
	rg_free(got);
}

static void test_full_session(void **state)
{
	struct wh_home *f = *state;
	struct worker_proc w = wh_start("ringgate-pop3", f->home, "maildir:~/Maildir", NULL, NULL, 0);
	expect(&w, NULL, "\r\n", "+OK Logged in.\r\n");
	/* the session moved new/ to cur/ at start */
	assert_int_equal(wh_count(f->md, "new"), 0);
	assert_int_equal(wh_count(f->md, "cur"), 3);
	unsigned int v = wh_uidvalidity(f->md);

	size_t s1 = strlen(MSG1) + 7, s2 = strlen(MSG2), s3 = strlen(MSG3) + 5;
	char buf[512];
	expect(&w, "CAPA\r\n", ".\r\n",
	       "+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\n.\r\n");
	snprintf(buf, sizeof(buf), "+OK 3 %zu\r\n", s1 + s2 + s3);
	expect(&w, "STAT\r\n", "\r\n", buf);
	snprintf(buf, sizeof(buf), "+OK 3 messages:\r\n1 %zu\r\n2 %zu\r\n3 %zu\r\n.\r\n", s1, s2, s3);
	expect(&w, "LIST\r\n", ".\r\n", buf);
	snprintf(buf, sizeof(buf), "+OK 2 %zu\r\n", s2);
	expect(&w, "list 2\r\n", "\r\n", buf);
	snprintf(buf, sizeof(buf), "+OK\r\n1 %08X%08X\r\n2 %08X%08X\r\n3 %08X%08X\r\n.\r\n", 1, v, 2, v, 3, v);
	expect(&w, "UIDL\r\n", ".\r\n", buf);
	snprintf(buf, sizeof(buf), "+OK 3 %08X%08X\r\n", 3, v);
	expect(&w, "UIDL 3\r\n", "\r\n", buf);

	snprintf(buf, sizeof(buf), "+OK %zu octets\r\n" MSG1_OUT, s1);
	expect(&w, "RETR 1\r\n", "\r\n.\r\n", buf);
	snprintf(buf, sizeof(buf), "+OK %zu octets\r\n" MSG2_OUT, s2);
	expect(&w, "RETR 2\r\n", "\r\n.\r\n", buf);
	expect(&w, "TOP 3 1\r\n", "\r\n.\r\n", "+OK\r\nSubject: three\r\n\r\nl1\r\n.\r\n");
	expect(&w, "TOP 3 0\r\n", "\r\n.\r\n", "+OK\r\nSubject: three\r\n\r\n.\r\n");

	expect(&w, "DELE 2\r\n", "\r\n", "+OK Marked to be deleted.\r\n");
	expect(&w, "DELE 2\r\n", "\r\n", "-ERR Message is deleted.\r\n");
	expect(&w, "RETR 2\r\n", "\r\n", "-ERR Message is deleted.\r\n");
	snprintf(buf, sizeof(buf), "+OK 2 %zu\r\n", s1 + s3);
	expect(&w, "STAT\r\n", "\r\n", buf);
	snprintf(buf, sizeof(buf), "+OK 2 messages:\r\n1 %zu\r\n3 %zu\r\n.\r\n", s1, s3);
	expect(&w, "LIST\r\n", ".\r\n", buf);

	/* errors keep the session */
	expect(&w, "RETR 9\r\n", "\r\n", "-ERR There's no message 9.\r\n");
	expect(&w, "RETR 0\r\n", "\r\n", "-ERR There's no message 0.\r\n");
	expect(&w, "RETR x\r\n", "\r\n", "-ERR Invalid message number: x\r\n");
	expect(&w, "RETR\r\n", "\r\n", "-ERR Invalid message number: \r\n");
	expect(&w, "RETR 1x\r\n", "\r\n", "-ERR Invalid message number: 1x\r\n");
	expect(&w, "RETR 99999999999\r\n", "\r\n", "-ERR Invalid message number: 99999999999\r\n");
	expect(&w, "LIST 1 2\r\n", "\r\n", "-ERR Noise after message number: 2\r\n");
	expect(&w, "TOP 1\r\n", "\r\n", "-ERR Invalid number of lines: \r\n");
	expect(&w, "TOP 1 -1\r\n", "\r\n", "-ERR Invalid number of lines: -1\r\n");
	expect(&w, "FOO bar\r\n", "\r\n", "-ERR Unknown command: FOO\r\n");
	expect(&w, "\x01\x02 x\r\n", "\r\n", "-ERR Unknown command: ??\r\n");
	expect(&w, "NOOP\r\n", "\r\n", "+OK\r\n");

	/* pipelined, as PIPELINING promises */
	snprintf(buf, sizeof(buf), "+OK\r\n+OK 2 %zu\r\n", s1 + s3);
	expect(&w, "NOOP\r\nSTAT\r\n", "\r\n+OK 2", "+OK\r\n+OK 2");
	rg_free(wh_read_until(&w, "\r\n", NULL));

	expect(&w, "QUIT\r\n", "\r\n", "+OK Logging out, messages deleted.\r\n");
	assert_true(wh_read_eof(&w));
	assert_int_equal(wh_finish(&w), 0);

	assert_int_equal(wh_count(f->md, "cur"), 2);
	assert_false(wh_exists(f->md, "cur", "2000.b.host:2,S"));
	/* RETR'd gets \Seen at QUIT; only TOP'd does not */
	assert_true(wh_exists(f->md, "cur", "1000.a.host:2,S"));
	assert_true(wh_exists(f->md, "cur", "3000.c.host:2,"));
}

static void test_dele_without_quit(void **state)
{
	struct wh_home *f = *state;
	struct worker_proc w = wh_start("ringgate-pop3", f->home, NULL, NULL, NULL, 0);
	expect(&w, NULL, "\r\n", "+OK Logged in.\r\n");
	expect(&w, "DELE 1\r\n", "\r\n", "+OK Marked to be deleted.\r\n");
	expect(&w, "DELE 2\r\n", "\r\n", "+OK Marked to be deleted.\r\n");
	assert_int_equal(wh_finish(&w), 0); /* disconnect */
	assert_int_equal(wh_count(f->md, "cur"), 3);

	/* RSET undoes DELE */
	w = wh_start("ringgate-pop3", f->home, NULL, NULL, NULL, 0);
	expect(&w, NULL, "\r\n", "+OK Logged in.\r\n");
	expect(&w, "DELE 1\r\n", "\r\n", "+OK Marked to be deleted.\r\n");
	expect(&w, "RSET\r\n", "\r\n", "+OK\r\n");
	expect(&w, "QUIT\r\n", "\r\n", "+OK Logging out.\r\n");
	assert_int_equal(wh_finish(&w), 0);
	assert_int_equal(wh_count(f->md, "cur"), 3);
}

static void test_preread_and_limits(void **state)
{
	struct wh_home *f = *state;
	static const char pre[] = "NOOP\r\nDELE 3\r\nST";
	struct worker_proc w = wh_start("ringgate-pop3", f->home, "maildir:~/Maildir", NULL,
					pre, sizeof(pre) - 1);
	/* preread is processed right after the login reply, before any read */
	expect(&w, NULL, "deleted.\r\n", "+OK Logged in.\r\n+OK\r\n+OK Marked to be deleted.\r\n");
	char buf[64];
	snprintf(buf, sizeof(buf), "+OK 2 %zu\r\n", strlen(MSG1) + 7 + strlen(MSG2));
	expect(&w, "AT\r\n", "\r\n", buf);

	/* an over-long line is refused without ending the session */
	char *lng = rg_malloc(POP3_MAX_LINE * 3);
	memset(lng, 'A', POP3_MAX_LINE * 3 - 3);
	memcpy(lng + POP3_MAX_LINE * 3 - 3, "\r\n", 3);
	expect(&w, lng, "\r\n", "-ERR Input line too long.\r\n");
	rg_free(lng);
	expect(&w, "NOOP\r\n", "\r\n", "+OK\r\n");
	/* one byte at a time */
	wh_send(&w, "N");
	wh_send(&w, "O");
	wh_send(&w, "OP");
	expect(&w, "\r\n", "\r\n", "+OK\r\n");
	expect(&w, "quit\n", "\r\n", "+OK Logging out, messages deleted.\r\n");
	assert_int_equal(wh_finish(&w), 0);
	assert_int_equal(wh_count(f->md, "cur"), 2);
}

static void test_too_many_bad(void **state)
{
	struct wh_home *f = *state;
	struct worker_proc w = wh_start("ringgate-pop3", f->home, NULL, NULL, NULL, 0);
	expect(&w, NULL, "\r\n", "+OK Logged in.\r\n");
	for (int i = 0; i < POP3_MAX_BAD_COMMANDS - 1; i++)
		expect(&w, "XX\r\n", "\r\n", "-ERR Unknown command: XX\r\n");
	expect(&w, "XX\r\n", "bad commands.\r\n",
	       "-ERR Unknown command: XX\r\n-ERR Too many bad commands.\r\n");
	assert_true(wh_read_eof(&w));
	assert_int_equal(wh_finish(&w), 0);
}

static void test_new_maildir_and_bad_init(void **state)
{
	(void)state;
	char *home = wh_tmpdir();
	struct worker_proc w = wh_start("ringgate-pop3", home, "maildir:~/Mail/box", NULL, NULL, 0);
	expect(&w, NULL, "\r\n", "+OK Logged in.\r\n");
	expect(&w, "STAT\r\n", "\r\n", "+OK 0 0\r\n");
	expect(&w, "LIST\r\n", ".\r\n", "+OK 0 messages:\r\n.\r\n");
	expect(&w, "QUIT\r\n", "\r\n", "+OK Logging out.\r\n");
	assert_int_equal(wh_finish(&w), 0);
	char *md = rg_strdup_printf("%s/Mail/box/cur", home);
	struct stat st;
	assert_int_equal(stat(md, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	rg_free(md);

	/* an unusable mail location: -ERR, no +OK */
	w = wh_start("ringgate-pop3", home, "sdbox:~/mail", NULL, NULL, 0);
	expect(&w, NULL, "\r\n", "-ERR [SYS/TEMP] Couldn't open INBOX.\r\n");
	assert_int_equal(wh_finish(&w), 1);
	wh_rm_rf(home);
	rg_free(home);
}

/* an mbox spool (Debian's mbox:~/mail:INBOX=/var/mail/%u): read, DELE at
 * QUIT rewrites the spool, a disconnect removes nothing */
#define MBOX_M1 "From a@example.com Mon Dec  7 10:00:00 2026\nSubject: one\nStatus: RO\n\n" \
	"Hello\n.dot line\n"
#define MBOX_M2 "From b@example.com Mon Dec  7 11:00:00 2026\nSubject: two\n\nbody two\n"
#define MBOX_M3 "From c@example.com Mon Dec  7 12:00:00 2026\nSubject: three\n\nl1\nl2\n"

static void test_mbox_session(void **state)
{
	(void)state;
	char *home = wh_tmpdir();
	char *spool = rg_strdup_printf("%s/spool", home);
	FILE *fp = fopen(spool, "w");
	assert_non_null(fp);
	fputs(MBOX_M1 "\n" MBOX_M2 "\n" MBOX_M3 "\n", fp);
	fclose(fp);

	/* a disconnect after DELE removes nothing */
	struct worker_proc w = wh_start("ringgate-pop3", home, "mbox:~/mail:INBOX=%h/spool", NULL,
					NULL, 0);
	expect(&w, NULL, "\r\n", "+OK Logged in.\r\n");
	/* Status: is Dovecot's, hidden; sizes are the CRLF sizes sent */
	size_t s1 = strlen("Subject: one\r\n\r\nHello\r\n.dot line\r\n");
	size_t s2 = strlen("Subject: two\r\n\r\nbody two\r\n");
	size_t s3 = strlen("Subject: three\r\n\r\nl1\r\nl2\r\n");
	char buf[512];
	snprintf(buf, sizeof(buf), "+OK 3 %zu\r\n", s1 + s2 + s3);
	expect(&w, "STAT\r\n", "\r\n", buf);
	expect(&w, "DELE 1\r\n", "\r\n", "+OK Marked to be deleted.\r\n");
	assert_int_equal(wh_finish(&w), 0);
	char *text = wh_read_file(home, "spool");
	assert_string_equal(text, MBOX_M1 "\n" MBOX_M2 "\n" MBOX_M3 "\n");
	rg_free(text);

	w = wh_start("ringgate-pop3", home, "mbox:~/mail:INBOX=%h/spool", NULL, NULL, 0);
	expect(&w, NULL, "\r\n", "+OK Logged in.\r\n");
	snprintf(buf, sizeof(buf), "+OK 3 messages:\r\n1 %zu\r\n2 %zu\r\n3 %zu\r\n.\r\n",
		 s1, s2, s3);
	expect(&w, "LIST\r\n", ".\r\n", buf);
	snprintf(buf, sizeof(buf), "+OK %zu octets\r\nSubject: one\r\n\r\nHello\r\n"
		 "..dot line\r\n.\r\n", s1);
	expect(&w, "RETR 1\r\n", "\r\n.\r\n", buf);
	expect(&w, "TOP 3 1\r\n", "\r\n.\r\n", "+OK\r\nSubject: three\r\n\r\nl1\r\n.\r\n");
	wh_send(&w, "UIDL\r\n");
	char *uidl = wh_read_until(&w, ".\r\n", NULL);
	char u[3][32];
	assert_int_equal(sscanf(uidl, "+OK\r\n1 %31s\r\n2 %31s\r\n3 %31s\r\n", u[0], u[1], u[2]), 3);
	assert_int_equal(strlen(u[0]), 16);
	assert_string_not_equal(u[0], u[1]);
	rg_free(uidl);
	expect(&w, "DELE 2\r\n", "\r\n", "+OK Marked to be deleted.\r\n");
	expect(&w, "QUIT\r\n", "\r\n", "+OK Logging out, messages deleted.\r\n");
	assert_int_equal(wh_finish(&w), 0);
	text = wh_read_file(home, "spool");
	assert_string_equal(text, MBOX_M1 "\n" MBOX_M3 "\n");
	rg_free(text);

	/* the survivors keep their UIDLs */
	w = wh_start("ringgate-pop3", home, "mbox:~/mail:INBOX=%h/spool", NULL, NULL, 0);
	expect(&w, NULL, "\r\n", "+OK Logged in.\r\n");
	snprintf(buf, sizeof(buf), "+OK\r\n1 %s\r\n2 %s\r\n.\r\n", u[0], u[2]);
	expect(&w, "UIDL\r\n", ".\r\n", buf);
	expect(&w, "QUIT\r\n", "\r\n", "+OK Logging out.\r\n");
	assert_int_equal(wh_finish(&w), 0);

	/* not an mbox: -ERR, no +OK */
	fp = fopen(spool, "w");
	fputs("garbage\n", fp);
	fclose(fp);
	w = wh_start("ringgate-pop3", home, "mbox:~/mail:INBOX=%h/spool", NULL, NULL, 0);
	expect(&w, NULL, "\r\n", "-ERR [SYS/TEMP] Couldn't open INBOX.\r\n");
	assert_int_equal(wh_finish(&w), 1);
	wh_rm_rf(home);
	rg_free(spool);
	rg_free(home);
}

/* ---- the core in memory, at every byte split ---- */

static bool core_input(void *client, const uint8_t *data, size_t len)
{
	return pop3_client_input(client, data, len);
}

static const char core_script[] =
	"CAPA\r\nSTAT\r\nLIST\r\nUIDL 2\r\nRETR 1\r\nTOP 3 2\nDELE 1\r\nLIST 1\r\n"
	"BOGUS\r\n\r\nRSET\r\nDELE 2\r\nQUIT\r\nNOOP\r\n";

/* run the script on a fresh copy of the fixture, fed in pieces of split
 * bytes then the rest (split 0 = all at once) */
static char *run_core(struct wh_home *f, size_t split, bool bytewise)
{
	wh_rm_rf(f->md);
	wh_put_three(f->md, MSG1, MSG2, MSG3);
	/* fixed UIDVALIDITY so every run's UIDL is the same */
	wh_put_uidlist(f->md, "1 V1234 N1\n");

	struct maildir *box;
	const char *error;
	assert_int_equal(maildir_open(f->md, true, &box, &error), 0);
	struct wh_capture cap = { 0 };
	struct pop3_client *client;
	assert_int_equal(pop3_client_create(box, wh_capture_send, &cap, &client, &error), 0);
	pop3_client_send_greeting(client);
	assert_false(wh_feed_script(core_input, client, core_script, sizeof(core_script) - 1, split,
				    bytewise));
	assert_true(pop3_client_quit_seen(client));
	pop3_client_destroy(client);
	return cap.data;
}

static void test_core_every_split(void **state)
{
	struct wh_home *f = *state;
	char *whole = run_core(f, 0, false);
	char expect_retr[256];
	snprintf(expect_retr, sizeof(expect_retr), "+OK %zu octets\r\n" MSG1_OUT, strlen(MSG1) + 7);
	assert_non_null(strstr(whole, expect_retr));
	assert_non_null(strstr(whole, "+OK 2 00000002000004D2\r\n"));
	assert_non_null(strstr(whole, "+OK\r\nSubject: three\r\n\r\nl1\r\nl2\r\n.\r\n"));
	assert_non_null(strstr(whole, "-ERR Message is deleted.\r\n-ERR Unknown command: BOGUS\r\n+OK\r\n"));
	/* QUIT ends the session: NOOP after it is not answered */
	size_t wl = strlen(whole);
	assert_true(wl > 40);
	assert_string_equal(whole + wl - strlen("+OK Logging out, messages deleted.\r\n"),
			    "+OK Logging out, messages deleted.\r\n");
	assert_false(wh_exists(f->md, "cur", "2000.b.host:2,S"));
	for (size_t split = 1; split < sizeof(core_script) - 1; split++) {
		char *out = run_core(f, split, false);
		assert_string_equal(out, whole);
		rg_free(out);
	}
	char *out = run_core(f, 0, true);
	assert_string_equal(out, whole);
	rg_free(out);
	rg_free(whole);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_full_session, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dele_without_quit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_preread_and_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_many_bad, setup, teardown),
		cmocka_unit_test(test_new_maildir_and_bad_init),
		cmocka_unit_test(test_mbox_session),
		cmocka_unit_test_setup_teardown(test_core_every_split, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
