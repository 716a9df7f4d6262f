/* ringgate-imap end to end (the real binary on a socketpair, as master
 * starts it), and the IMAP core fed at every byte split. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "harness.h"
#include "imap/imap-client.h"
#include "lib/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MSG1 "From: a@example.com\nSubject: one\nTo: b@example.com\n\nHello\n.dot line\nend\n"
#define MSG1_CRLF "From: a@example.com\r\nSubject: one\r\nTo: b@example.com\r\n\r\nHello\r\n.dot line\r\nend\r\n"
#define MSG2 "Subject: two\r\n\r\nCRLF body\r\nno final newline"
#define MSG3 "Subject: three\n\nl1\n"
/* the binary can compress its socket: it offers COMPRESS (the core alone does not) */
#define WORKER_CAPABILITY IMAP_CAPABILITY " COMPRESS=DEFLATE"
#define LOGIN_REPLY(tag) tag " OK [CAPABILITY " WORKER_CAPABILITY "] Logged in\r\n"

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

/* send cmd (if any), read through the line starting with tag, compare */
static void expect(struct worker_proc *w, const char *cmd, const char *tag, const char *reply)
{
	if (cmd != NULL)
		wh_send(w, cmd);
	char *got = wh_read_until_line(w, tag);
	assert_string_equal(got, reply);
	rg_free(got);
}

/* the real binary for a session master handed over with tag's LOGIN */
static struct worker_proc start_logged_in(struct wh_home *f, const char *tag)
{
	struct worker_proc w = wh_start("ringgate-imap", f->home, NULL, tag, NULL, 0);
	char *prefix = rg_strdup_printf("%s ", tag);
	char *reply = rg_strdup_printf(LOGIN_REPLY("%s"), tag);
	expect(&w, NULL, prefix, reply);
	rg_free(reply);
	rg_free(prefix);
	return w;
}

/* send cmd ("tag ...\r\n") and read past its tagged reply, unchecked: a
 * step whose own reply another test covers */
static void run(struct worker_proc *w, const char *cmd)
{
	size_t taglen = strcspn(cmd, " ");
	char *prefix = rg_strndup(cmd, taglen + 1);
	wh_send(w, cmd);
	rg_free(wh_read_until_line(w, prefix));
	rg_free(prefix);
}

/* LOGOUT: the BYE, the tagged OK, then the worker closes and exits 0 */
static void logout(struct worker_proc *w)
{
	expect(w, "z LOGOUT\r\n", "z ", "* BYE Logging out\r\nz OK Logout completed.\r\n");
	assert_true(wh_read_eof(w));
	assert_int_equal(wh_finish(w), 0);
}

static void test_session(void **state)
{
	struct wh_home *f = *state;
	struct worker_proc w = wh_start("ringgate-imap", f->home, "maildir:~/Maildir", "a0", NULL, 0);
	expect(&w, NULL, "a0 ", LOGIN_REPLY("a0"));
	expect(&w, "c CAPABILITY\r\n", "c ",
	       "* CAPABILITY " WORKER_CAPABILITY "\r\nc OK Capability completed.\r\n");

	/* wrong state and unknown commands keep the session */
	expect(&w, "b1 FETCH 1 FLAGS\r\n", "b1 ", "b1 BAD No mailbox selected.\r\n");
	expect(&w, "b2 FOO\r\n", "b2 ", "b2 BAD Unknown command.\r\n");
	expect(&w, "b3 LOGIN u p\r\n", "b3 ", "b3 BAD Already logged in.\r\n");
	expect(&w, "b4 SELECT \"unterminated\r\n", "b4 ",
	       "b4 BAD Error in IMAP command received by server: Missing '\"'.\r\n");
	expect(&w, "b5 SELECT Other\r\n", "b5 ", "b5 NO Mailbox doesn't exist: Other\r\n");
	expect(&w, "b6 NOOP\r\n", "b6 ", "b6 OK NOOP completed.\r\n");
	expect(&w, "b7 ENABLE UTF8=ACCEPT\r\n", "b7 ", "* ENABLED\r\nb7 OK Enabled.\r\n");
	expect(&w, "b8 ID NIL\r\n", "b8 ", "* ID (\"name\" \"ringgate\")\r\nb8 OK ID completed.\r\n");
	expect(&w, "b9 LIST \"\" *\r\n", "b9 ",
	       "* LIST (\\HasNoChildren) \".\" INBOX\r\n"
	       "* LIST (\\HasNoChildren \\Drafts) \".\" Drafts\r\n"
	       "* LIST (\\HasNoChildren \\Junk) \".\" Junk\r\n"
	       "* LIST (\\HasNoChildren \\Sent) \".\" Sent\r\n"
	       "* LIST (\\HasNoChildren \\Trash) \".\" Trash\r\n"
	       "b9 OK List completed.\r\n");
	expect(&w, "b10 STATUS inbox (MESSAGES UNSEEN uidnext)\r\n", "b10 ",
	       "* STATUS INBOX (MESSAGES 3 UNSEEN 2 UIDNEXT 4)\r\nb10 OK Status completed.\r\n");

	unsigned int v = wh_uidvalidity(f->md);
	char buf[1024];
	snprintf(buf, sizeof(buf),
		 "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
		 "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted.\r\n"
		 "* 3 EXISTS\r\n* 2 RECENT\r\n* OK [UNSEEN 1] First unseen.\r\n"
		 "* OK [UIDVALIDITY %u] UIDs valid\r\n* OK [UIDNEXT 4] Predicted next UID\r\n"
		 "a1 OK [READ-WRITE] Select completed.\r\n", v);
	/* the mailbox name as a synchronising literal */
	wh_send(&w, "a1 SELECT {5}\r\n");
	rg_free(wh_read_until(&w, "+ OK\r\n", NULL));
	expect(&w, "inbox\r\n", "a1 ", buf);

	size_t s1 = strlen(MSG1_CRLF);
	snprintf(buf, sizeof(buf), "* 1 FETCH (FLAGS (\\Recent) RFC822.SIZE %zu)\r\na2 OK Fetch completed.\r\n", s1);
	expect(&w, "a2 FETCH 1 (FLAGS RFC822.SIZE)\r\n", "a2 ", buf);
	/* BODY.PEEK leaves \Seen alone */
	snprintf(buf, sizeof(buf), "* 1 FETCH (BODY[] {%zu}\r\n" MSG1_CRLF ")\r\na3 OK Fetch completed.\r\n", s1);
	expect(&w, "a3 FETCH 1 BODY.PEEK[]\r\n", "a3 ", buf);
	assert_true(wh_exists(f->md, "cur", "1000.a.host:2,"));
	/* BODY[] sets it and says so */
	snprintf(buf, sizeof(buf), "* 1 FETCH (BODY[] {%zu}\r\n" MSG1_CRLF " FLAGS (\\Seen \\Recent))\r\na4 OK Fetch completed.\r\n", s1);
	expect(&w, "a4 FETCH 1 BODY[]\r\n", "a4 ", buf);
	assert_true(wh_exists(f->md, "cur", "1000.a.host:2,S"));
	expect(&w, "a5 FETCH 1 FLAGS\r\n", "a5 ", "* 1 FETCH (FLAGS (\\Seen \\Recent))\r\na5 OK Fetch completed.\r\n");

	snprintf(buf, sizeof(buf),
		 "* 1 FETCH (UID 1 RFC822.SIZE %zu)\r\n* 2 FETCH (UID 2 RFC822.SIZE %zu)\r\n"
		 "* 3 FETCH (UID 3 RFC822.SIZE %zu)\r\na6 OK Fetch completed.\r\n",
		 s1, strlen(MSG2), strlen(MSG3) + 3);
	expect(&w, "a6 FETCH 1:* (UID RFC822.SIZE)\r\n", "a6 ", buf);
	expect(&w, "a7 UID FETCH 2,9:* FLAGS\r\n", "a7 ",
	       "* 2 FETCH (UID 2 FLAGS (\\Seen))\r\n* 3 FETCH (UID 3 FLAGS (\\Recent))\r\na7 OK Fetch completed.\r\n");
	expect(&w, "a8 FETCH 3 (BODY.PEEK[HEADER] BODY.PEEK[TEXT])\r\n", "a8 ",
	       "* 3 FETCH (BODY[HEADER] {18}\r\nSubject: three\r\n\r\n BODY[TEXT] {4}\r\nl1\r\n)\r\n"
	       "a8 OK Fetch completed.\r\n");
	expect(&w, "a9 FETCH 1 BODY.PEEK[HEADER.FIELDS (to SUBJECT)]\r\n", "a9 ",
	       "* 1 FETCH (BODY[HEADER.FIELDS (to SUBJECT)] {35}\r\nSubject: one\r\nTo: b@example.com\r\n\r\n)\r\n"
	       "a9 OK Fetch completed.\r\n");
	expect(&w, "a10 FETCH 2 BODY.PEEK[]<6.4>\r\n", "a10 ",
	       "* 2 FETCH (BODY[]<6> {4}\r\nt: t)\r\na10 OK Fetch completed.\r\n");
	expect(&w, "a11 FETCH 4 FLAGS\r\n", "a11 ",
	       "a11 BAD Error in IMAP command FETCH: Invalid messageset\r\n");
	expect(&w, "a12 FETCH 1 BINARY[HEADER]\r\n", "a12 ",
	       "a12 BAD Error in IMAP command FETCH: Unknown parameter BINARY[HEADER]\r\n");
	expect(&w, "a13 FETCH 1\r\n", "a13 ", "a13 BAD Error in IMAP command FETCH: Invalid arguments.\r\n");

	/* STORE + EXPUNGE remove the file */
	expect(&w, "s1 STORE 2 +FLAGS (\\Deleted)\r\n", "s1 ",
	       "* 2 FETCH (FLAGS (\\Deleted \\Seen))\r\ns1 OK Store completed.\r\n");
	expect(&w, "s2 UID STORE 3 FLAGS.SILENT \\Flagged\r\n", "s2 ", "s2 OK Store completed.\r\n");
	assert_true(wh_exists(f->md, "cur", "3000.c.host:2,F"));
	/* keywords go to dovecot-keywords and the letters a-z */
	/* a new keyword is announced in FLAGS/PERMANENTFLAGS before the
	 * FETCH that shows it (RFC 3501 7.2.6), once */
	expect(&w, "s3 STORE 1 +FLAGS ($Junk)\r\n", "s3 ",
	       "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Junk)\r\n"
	       "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Junk \\*)] Flags permitted.\r\n"
	       "* 1 FETCH (FLAGS (\\Seen \\Recent $Junk))\r\ns3 OK Store completed.\r\n");
	expect(&w, "k1 STORE 1 -FLAGS ($Junk)\r\n", "k1 ",
	       "* 1 FETCH (FLAGS (\\Seen \\Recent))\r\nk1 OK Store completed.\r\n");
	expect(&w, "k2 STORE 1 +FLAGS ($Junk)\r\n", "k2 ",
	       "* 1 FETCH (FLAGS (\\Seen \\Recent $Junk))\r\nk2 OK Store completed.\r\n");
	assert_true(wh_exists(f->md, "cur", "1000.a.host:2,Sa"));
	expect(&w, "s3a STORE 1 +FLAGS (NonJunk $junk)\r\n", "s3a ",
	       "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Junk NonJunk)\r\n"
	       "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Junk NonJunk \\*)] Flags permitted.\r\n"
	       "* 1 FETCH (FLAGS (\\Seen \\Recent $Junk NonJunk))\r\ns3a OK Store completed.\r\n");
	expect(&w, "s3b SEARCH KEYWORD nonjunk\r\n", "s3b ", "* SEARCH 1\r\ns3b OK Search completed.\r\n");
	expect(&w, "s3c STORE 1 -FLAGS ($Junk)\r\n", "s3c ",
	       "* 1 FETCH (FLAGS (\\Seen \\Recent NonJunk))\r\ns3c OK Store completed.\r\n");
	expect(&w, "s3d STORE 1 FLAGS (\\Seen)\r\n", "s3d ",
	       "* 1 FETCH (FLAGS (\\Seen \\Recent))\r\ns3d OK Store completed.\r\n");
	expect(&w, "s3e STORE 1 +FLAGS (\\Bogus)\r\n", "s3e ",
	       "s3e BAD Error in IMAP command STORE: Invalid system flag.\r\n");
	expect(&w, "s3f STORE 1 +FLAGS (a%b)\r\n", "s3f ",
	       "s3f BAD Error in IMAP command STORE: Invalid keyword.\r\n");
	char *kw = wh_read_file(f->md, "dovecot-keywords");
	assert_string_equal(kw, "0 $Junk\n1 NonJunk\n");
	rg_free(kw);
	expect(&w, "s4 EXPUNGE\r\n", "s4 ", "* 2 EXPUNGE\r\ns4 OK Expunge completed.\r\n");
	assert_false(wh_exists(f->md, "cur", "2000.b.host:2,ST"));
	expect(&w, "s5 FETCH 2 UID\r\n", "s5 ", "* 2 FETCH (UID 3)\r\ns5 OK Fetch completed.\r\n");

	/* IDLE */
	wh_send(&w, "i1 IDLE\r\n");
	rg_free(wh_read_until(&w, "+ idling\r\n", NULL));
	expect(&w, "DONE\r\n", "i1 ", "i1 OK Idle completed.\r\n");

	/* too large a literal is refused, the session goes on */
	expect(&w, "l1 SELECT {100000}\r\n", "l1 ",
	       "l1 BAD Error in IMAP command received by server: Literal too large.\r\n");
	expect(&w, "l2 UNSELECT\r\n", "l2 ", "l2 OK Unselect completed.\r\n");
	wh_send(&w, "l3 EXAMINE {5+}\r\nINBOX\r\n");
	char *got = wh_read_until_line(&w, "l3 ");
	assert_non_null(strstr(got, "* 2 EXISTS\r\n"));
	assert_non_null(strstr(got, "l3 OK [READ-ONLY] Examine completed.\r\n"));
	rg_free(got);
	expect(&w, "l4 CLOSE\r\n", "l4 ", "l4 OK Close completed.\r\n");
	expect(&w, "l5 LOGOUT\r\n", "l5 ", "* BYE Logging out\r\nl5 OK Logout completed.\r\n");
	assert_true(wh_read_eof(&w));
	assert_int_equal(wh_finish(&w), 0);
}

static void test_examine_and_logout(void **state)
{
	struct wh_home *f = *state;
	static const char pre[] = "p1 NOOP\r\np2 EXAMINE {5+}\r\nINBOX\r\np3 FETCH 1 BODY[]\r\n";
	struct worker_proc w = wh_start("ringgate-imap", f->home, NULL, "t.0", pre, sizeof(pre) - 1);
	/* preread runs right after the login reply */
	char *got = wh_read_until_line(&w, "p3 ");
	char *head = rg_strdup_printf(LOGIN_REPLY("t.0") "p1 OK NOOP completed.\r\n");
	assert_memory_equal(got, head, strlen(head));
	assert_non_null(strstr(got, "* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n"));
	assert_non_null(strstr(got, "p2 OK [READ-ONLY] Examine completed.\r\n"));
	/* EXAMINE: BODY[] does not set \Seen */
	char body[256];
	snprintf(body, sizeof(body), "* 1 FETCH (BODY[] {%zu}\r\n" MSG1_CRLF ")\r\np3 OK Fetch completed.\r\n",
		 strlen(MSG1_CRLF));
	assert_non_null(strstr(got, body));
	rg_free(got);
	rg_free(head);
	assert_true(wh_exists(f->md, "new", "1000.a.host"));
	expect(&w, "p4 STORE 1 +FLAGS \\Seen\r\n", "p4 ", "p4 NO Mailbox is read-only.\r\n");
	logout(&w);
}

static void test_too_many_bad(void **state)
{
	struct wh_home *f = *state;
	struct worker_proc w = wh_start("ringgate-imap", f->home, NULL, NULL, NULL, 0);
	expect(&w, NULL, "* ", LOGIN_REPLY("*"));
	for (int i = 0; i < IMAP_MAX_BAD_COMMANDS - 1; i++)
		expect(&w, "x BAD-CMD\r\n", "x ", "x BAD Unknown command.\r\n");
	expect(&w, "x BAD-CMD\r\n", "* BYE", "x BAD Unknown command.\r\n* BYE Too many invalid IMAP commands.\r\n");
	assert_true(wh_read_eof(&w));
	assert_int_equal(wh_finish(&w), 0);

	/* {n+} too large: reply, then disconnect (its data would be commands) */
	w = start_logged_in(f, "a");
	expect(&w, "b APPEND INBOX {99999999+}\r\n", "* BYE",
	       "b BAD Error in IMAP command received by server: Literal too large.\r\n* BYE Too long literal.\r\n");
	assert_true(wh_read_eof(&w));
	assert_int_equal(wh_finish(&w), 0);
}

/* folders, APPEND/COPY/MOVE with UIDPLUS, SEARCH, and a second session
 * seeing the first one's changes, on the real binary */
static void test_folders_two_sessions(void **state)
{
	struct wh_home *f = *state;
	struct worker_proc a = start_logged_in(f, "a");
	struct worker_proc b = start_logged_in(f, "b");

	expect(&a, "c1 CREATE Work.\r\n", "c1 ", "c1 OK Create completed.\r\n");
	expect(&a, "c2 CREATE Work\r\n", "c2 ", "c2 NO [ALREADYEXISTS] Mailbox already exists\r\n");
	expect(&a, "c3 CREATE \"a/b\"\r\n", "c3 ", "c3 NO Invalid mailbox name\r\n");
	expect(&a, "c4 CREATE Work.Sub\r\n", "c4 ", "c4 OK Create completed.\r\n");
	expect(&a, "c5 LIST \"\" Work*\r\n", "c5 ",
	       "* LIST (\\HasChildren) \".\" Work\r\n* LIST (\\HasNoChildren) \".\" Work.Sub\r\n"
	       "c5 OK List completed.\r\n");
	expect(&a, "c6 LIST Work. %\r\n", "c6 ",
	       "* LIST (\\HasNoChildren) \".\" Work.Sub\r\nc6 OK List completed.\r\n");
	expect(&a, "c7 SUBSCRIBE Work.Sub\r\n", "c7 ", "c7 OK Subscribe completed.\r\n");
	expect(&a, "c8 LSUB \"\" W*\r\n", "c8 ", "* LSUB () \".\" Work.Sub\r\nc8 OK Lsub completed.\r\n");
	expect(&a, "c9 RENAME Work.Sub \"My Box\"\r\n", "c9 ", "c9 OK Rename completed.\r\n");
	expect(&a, "c10 LIST \"\" My*\r\n", "c10 ",
	       "* LIST (\\HasNoChildren) \".\" \"My Box\"\r\nc10 OK List completed.\r\n");
	expect(&a, "c11 DELETE Nope\r\n", "c11 ", "c11 NO Mailbox doesn't exist: Nope\r\n");
	expect(&a, "c12 STATUS \"My Box\" (MESSAGES UIDNEXT)\r\n", "c12 ",
	       "* STATUS \"My Box\" (MESSAGES 0 UIDNEXT 1)\r\nc12 OK Status completed.\r\n");
	/* LIST-EXTENDED: selection and return options, LIST-STATUS */
	expect(&a, "x1 LIST (SPECIAL-USE) \"\" *\r\n", "x1 ",
	       "* LIST (\\HasNoChildren \\Drafts) \".\" Drafts\r\n* LIST (\\HasNoChildren \\Junk) \".\" Junk\r\n"
	       "* LIST (\\HasNoChildren \\Sent) \".\" Sent\r\n* LIST (\\HasNoChildren \\Trash) \".\" Trash\r\n"
	       "x1 OK List completed.\r\n");
	expect(&a, "x2 LIST \"\" (INBOX Drafts) RETURN (SUBSCRIBED STATUS (MESSAGES))\r\n", "x2 ",
	       "* LIST (\\HasNoChildren) \".\" INBOX\r\n* STATUS INBOX (MESSAGES 3)\r\n"
	       "* LIST (\\HasNoChildren \\Subscribed \\Drafts) \".\" Drafts\r\n* STATUS Drafts (MESSAGES 0)\r\n"
	       "x2 OK List completed.\r\n");
	expect(&a, "x3 LIST (SUBSCRIBED) \"\" W*\r\n", "x3 ",
	       "* LIST (\\NonExistent \\HasNoChildren \\Subscribed) \".\" Work.Sub\r\nx3 OK List completed.\r\n");
	expect(&a, "x4 LIST (BOGUS) \"\" *\r\n", "x4 ", "x4 BAD Error in IMAP command LIST: Invalid arguments.\r\n");
	expect(&a, "x5 LIST \"\" * RETURN (STATUS (BOGUS))\r\n", "x5 ",
	       "x5 BAD Error in IMAP command LIST: Invalid arguments.\r\n");
	/* RFC 5258 3.1, 3.5: RECURSIVEMATCH needs another selection option;
	 * it lists a parent for a subscribed child the pattern leaves out */
	expect(&a, "x6 LIST (RECURSIVEMATCH) \"\" *\r\n", "x6 ",
	       "x6 BAD Error in IMAP command LIST: Invalid arguments.\r\n");
	expect(&a, "x7 LIST (RECURSIVEMATCH REMOTE) \"\" *\r\n", "x7 ",
	       "x7 BAD Error in IMAP command LIST: Invalid arguments.\r\n");
	expect(&a, "x8 CREATE Par.Kid\r\n", "x8 ", "x8 OK Create completed.\r\n");
	expect(&a, "x9 SUBSCRIBE Par.Kid\r\n", "x9 ", "x9 OK Subscribe completed.\r\n");
	expect(&a, "x10 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" Par\r\n", "x10 ",
	       "* LIST (\\Noselect \\HasChildren) \".\" Par (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n"
	       "x10 OK List completed.\r\n");
	expect(&a, "x11 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" Par*\r\n", "x11 ",
	       "* LIST (\\HasNoChildren \\Subscribed) \".\" Par.Kid\r\nx11 OK List completed.\r\n");
	expect(&a, "x12 LIST (SUBSCRIBED) \"\" Par\r\n", "x12 ", "x12 OK List completed.\r\n");
	/* QUOTA (RFC 2087): one root "" without limits; it cannot be set */
	expect(&a, "q1 GETQUOTAROOT inbox\r\n", "q1 ",
	       "* QUOTAROOT INBOX \"\"\r\n* QUOTA \"\" ()\r\nq1 OK Getquotaroot completed.\r\n");
	expect(&a, "q2 GETQUOTAROOT Nope\r\n", "q2 ", "q2 NO Mailbox doesn't exist: Nope\r\n");
	expect(&a, "q3 GETQUOTA \"\"\r\n", "q3 ", "* QUOTA \"\" ()\r\nq3 OK Getquota completed.\r\n");
	expect(&a, "q4 GETQUOTA User\r\n", "q4 ", "q4 NO Quota root doesn't exist.\r\n");
	expect(&a, "q5 SETQUOTA \"\" (STORAGE 10)\r\n", "q5 ", "q5 NO [NOPERM] Quota can't be changed.\r\n");
	expect(&a, "q6 GETQUOTAROOT\r\n", "q6 ", "q6 BAD Error in IMAP command GETQUOTAROOT: Invalid arguments.\r\n");
	expect(&a, "c13 NAMESPACE\r\n", "c13 ", "* NAMESPACE ((\"\" \".\")) NIL NIL\r\nc13 OK Namespace completed.\r\n");

	/* APPEND with flags, a date and a literal; refused into a missing folder */
	wh_send(&a, "p1 APPEND Work (\\Flagged) \"05-Mar-2020 01:02:03 +0000\" {14}\r\n");
	rg_free(wh_read_until(&a, "+ OK\r\n", NULL));
	wh_send(&a, "Subject: x\r\n\r\n\r\n");
	char *got = wh_read_until_line(&a, "p1 ");
	assert_non_null(strstr(got, "p1 OK [APPENDUID "));
	assert_non_null(strstr(got, " 1] Append completed.\r\n"));
	rg_free(got);
	expect(&a, "p2 APPEND Nope {1+}\r\nx\r\n", "p2 ", "p2 NO [TRYCREATE] Mailbox doesn't exist: Nope\r\n");
	expect(&a, "p3 APPEND Work {0+}\r\n\r\n", "p3 ", "p3 NO Can't save a zero byte message.\r\n");
	expect(&a, "p4 APPEND Work \"bad date\" {1+}\r\nx\r\n", "p4 ",
	       "p4 BAD Error in IMAP command APPEND: Invalid internal date.\r\n");

	/* both select INBOX; a copies, moves and expunges; b hears about it */
	wh_send(&a, "s1 SELECT INBOX\r\n");
	got = wh_read_until_line(&a, "s1 ");
	assert_non_null(strstr(got, "* 3 EXISTS\r\n"));
	rg_free(got);
	wh_send(&b, "s2 EXAMINE INBOX\r\n");
	got = wh_read_until_line(&b, "s2 ");
	assert_non_null(strstr(got, "* 3 EXISTS\r\n"));
	rg_free(got);
	wh_send(&a, "m1 COPY 1:2 Work\r\n");
	got = wh_read_until_line(&a, "m1 ");
	assert_non_null(strstr(got, " 1:2 2:3] Copy completed.\r\n"));
	rg_free(got);
	wh_send(&a, "m2 UID MOVE 3 Work\r\n");
	got = wh_read_until_line(&a, "m2 ");
	assert_non_null(strstr(got, " 3 4] Moved UIDs.\r\n* 3 EXPUNGE\r\nm2 OK Move completed.\r\n"));
	rg_free(got);
	expect(&a, "m3 COPY 1 Nope\r\n", "m3 ", "m3 NO [TRYCREATE] Mailbox doesn't exist: Nope\r\n");
	expect(&a, "m4 STORE 1 +FLAGS.SILENT (\\Deleted)\r\n", "m4 ", "m4 OK Store completed.\r\n");
	expect(&a, "m5 SEARCH DELETED\r\n", "m5 ", "* SEARCH 1\r\nm5 OK Search completed.\r\n");
	expect(&a, "m6 UID SEARCH NOT DELETED\r\n", "m6 ", "* SEARCH 2\r\nm6 OK Search completed.\r\n");
	expect(&a, "m7 UID EXPUNGE 2\r\n", "m7 ", "m7 OK Expunge completed.\r\n");
	expect(&a, "m8 EXPUNGE\r\n", "m8 ", "* 1 EXPUNGE\r\nm8 OK Expunge completed.\r\n");
	/* b: FETCH does not report expunges, NOOP does, in order */
	/* RFC 5530 EXPUNGEISSUED: FETCH of a message expunged meanwhile is NO,
	 * and the session goes on */
	expect(&b, "n1 FETCH 3 BODY.PEEK[HEADER]\r\n", "n1 ",
	       "n1 NO [EXPUNGEISSUED] Some of the requested messages no longer exist.\r\n");

	expect(&b, "n2 NOOP\r\n", "n2 ", "* 1 EXPUNGE\r\n* 2 EXPUNGE\r\nn2 OK NOOP completed.\r\n");
	expect(&b, "n3 FETCH 1 UID\r\n", "n3 ", "* 1 FETCH (UID 2)\r\nn3 OK Fetch completed.\r\n");
	/* a delivery into new/ and a flag change by a reach b as EXISTS/FETCH */
	wh_put_msg(f->md, "new", "4000.d.host", MSG3, 4000);
	expect(&a, "f1 STORE 1 +FLAGS.SILENT (\\Answered)\r\n", "f1 ", "f1 OK Store completed.\r\n");
	expect(&a, "f2 NOOP\r\n", "f2 ", "* 2 EXISTS\r\n* 1 RECENT\r\nf2 OK NOOP completed.\r\n");
	expect(&b, "n4 NOOP\r\n", "n4 ",
	       "* 1 FETCH (UID 2 FLAGS (\\Answered \\Seen))\r\n* 2 EXISTS\r\n* 0 RECENT\r\nn4 OK NOOP completed.\r\n");
	/* DELETE of the folder b has selected: b is told and leaves */
	run(&b, "n5 SELECT Work\r\n");
	expect(&a, "d1 DELETE Work\r\n", "d1 ", "d1 OK Delete completed.\r\n");
	expect(&b, "n6 NOOP\r\n", "* BYE", "* BYE Selected mailbox was deleted, have to disconnect.\r\n");
	assert_true(wh_read_eof(&b));
	assert_int_equal(wh_finish(&b), 0);
	logout(&a);
}

/* IDLE on the real binary: a delivery into new/ and another session's
 * flag change arrive without the client asking */
/* read through tag's line; it must hold each of wants (NULL-ended) */
static void expect_has(struct worker_proc *w, const char *cmd, const char *tag, ...)
{
	if (cmd != NULL)
		wh_send(w, cmd);
	char *got = wh_read_until_line(w, tag);
	va_list ap;
	va_start(ap, tag);
	for (const char *want; (want = va_arg(ap, const char *)) != NULL;) {
		if (strstr(got, want) == NULL)
			fail_msg("%s: no '%s' in:\n%s", cmd, want, got);
	}
	va_end(ap);
	rg_free(got);
}

static unsigned int status_uidvalidity(struct worker_proc *w, const char *tag)
{
	char *cmd = rg_strdup_printf("%s STATUS Box (UIDVALIDITY)\r\n", tag);
	wh_send(w, cmd);
	rg_free(cmd);
	char *got = wh_read_until_line(w, tag);
	unsigned int v = 0;
	assert_int_equal(sscanf(got, "* STATUS Box (UIDVALIDITY %u)", &v), 1);
	rg_free(got);
	return v;
}

/* RFC 3501 across two sessions: \Recent goes to the first read-write
 * session only (2.3.2), keywords are announced before use (7.2.6), flag
 * changes of one session survive another's (6.4.6), a folder created
 * again gets a new UIDVALIDITY (2.3.1.1) */
static void test_rfc_two_sessions(void **state)
{
	struct wh_home *f = *state;
	struct worker_proc a = start_logged_in(f, "a");
	struct worker_proc b = start_logged_in(f, "b");
	expect(&a, "c1 CREATE Box\r\n", "c1 ", "c1 OK Create completed.\r\n");
	expect_has(&a, "p1 APPEND Box {9+}\r\nS: x\r\n\r\nb\r\n", "p1 ", "p1 OK [APPENDUID ", NULL);
	expect_has(&a, "p2 APPEND Box (\\Seen) {9+}\r\nS: y\r\n\r\nb\r\n", "p2 ", "p2 OK [APPENDUID ", NULL);
	expect(&b, "r1 STATUS Box (MESSAGES RECENT)\r\n", "r1 ",
	       "* STATUS Box (MESSAGES 2 RECENT 2)\r\nr1 OK Status completed.\r\n");
	expect_has(&b, "r2 EXAMINE Box\r\n", "r2 ", "* 2 EXISTS\r\n* 2 RECENT\r\n", NULL);
	expect(&b, "r3 CLOSE\r\n", "r3 ", "r3 OK Close completed.\r\n");
	expect(&b, "r4 STATUS Box (RECENT)\r\n", "r4 ", "* STATUS Box (RECENT 2)\r\nr4 OK Status completed.\r\n");
	expect_has(&a, "r5 SELECT Box\r\n", "r5 ", "* 2 EXISTS\r\n* 2 RECENT\r\n", NULL);
	expect_has(&b, "r6 SELECT Box\r\n", "r6 ", "* 2 EXISTS\r\n* 0 RECENT\r\n", NULL);
	expect(&b, "r7 STATUS Box (RECENT)\r\n", "r7 ", "* STATUS Box (RECENT 0)\r\nr7 OK Status completed.\r\n");

	/* b makes a keyword; a is told of it before the FETCH that uses it */
	expect_has(&b, "k1 STORE 1 +FLAGS (Work)\r\n", "k1 ",
		   "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft Work)\r\n", NULL);
	expect(&a, "k2 NOOP\r\n", "k2 ",
	       "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft Work)\r\n"
	       "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft Work \\*)] Flags permitted.\r\n"
	       "* 1 FETCH (UID 1 FLAGS (\\Recent Work))\r\nk2 OK NOOP completed.\r\n");

	/* a adds \Answered; b, not synced yet, removes \Seen: both stay done */
	expect_has(&a, "f1 STORE 2 +FLAGS (\\Answered)\r\n", "f1 ", "FLAGS (\\Answered \\Seen \\Recent)", NULL);
	expect_has(&b, "f2 STORE 2 -FLAGS (\\Seen)\r\n", "f2 ", "* 2 FETCH (FLAGS (\\Answered))\r\n", NULL);
	expect_has(&a, "f3 NOOP\r\n", "f3 ", "* 2 FETCH (UID 2 FLAGS (\\Answered \\Recent))\r\n", NULL);
	expect_has(&a, "f4 FETCH 2 FLAGS\r\n", "f4 ", "* 2 FETCH (FLAGS (\\Answered \\Recent))\r\n", NULL);

	/* a expunges 1; b, not synced, FETCHes it (RFC 5530 EXPUNGEISSUED)
	 * and STOREs to it and to 2: 2 changes; the EXPUNGE comes at NOOP
	 * (RFC 3501 7.4.1: not during FETCH, STORE or SEARCH) */
	expect_has(&a, "e1 STORE 1 +FLAGS.SILENT (\\Deleted)\r\n", "e1 ", "e1 OK", NULL);
	expect_has(&a, "e2 EXPUNGE\r\n", "e2 ", "* 1 EXPUNGE\r\ne2 OK", NULL);
	expect_has(&b, "e3 FETCH 1 BODY.PEEK[]\r\n", "e3 ",
		   "e3 NO [EXPUNGEISSUED] Some of the requested messages no longer exist.\r\n", NULL);
	expect_has(&b, "e4 STORE 1:2 +FLAGS (\\Flagged)\r\n", "e4 ", "* 2 FETCH (FLAGS (\\Answered \\Flagged))\r\n",
		   "e4 OK [EXPUNGEISSUED] Some of the messages no longer exist.\r\n", NULL);
	expect_has(&b, "e5 NOOP\r\n", "e5 ", "* 1 EXPUNGE\r\ne5 OK", NULL);

	/* DELETE and CREATE again within the second: a new UIDVALIDITY */
	expect(&b, "u0 UNSELECT\r\n", "u0 ", "u0 OK Unselect completed.\r\n");
	expect(&a, "u1 UNSELECT\r\n", "u1 ", "u1 OK Unselect completed.\r\n");
	unsigned int v1 = status_uidvalidity(&b, "u2");
	expect(&a, "u3 DELETE Box\r\n", "u3 ", "u3 OK Delete completed.\r\n");
	expect(&a, "u4 CREATE Box\r\n", "u4 ", "u4 OK Create completed.\r\n");
	unsigned int v2 = status_uidvalidity(&b, "u5");
	assert_true(v2 > v1);
	expect(&a, "u6 DELETE Box\r\n", "u6 ", "u6 OK Delete completed.\r\n");
	expect(&a, "u7 CREATE Box\r\n", "u7 ", "u7 OK Create completed.\r\n");
	assert_true(status_uidvalidity(&b, "u8") > v2);
	logout(&a);
	logout(&b);
}

static void test_idle_push(void **state)
{
	struct wh_home *f = *state;
	struct worker_proc a = start_logged_in(f, "a");
	struct worker_proc b = start_logged_in(f, "b");
	run(&a, "s SELECT INBOX\r\n");
	run(&b, "s SELECT INBOX\r\n");
	wh_send(&a, "i IDLE\r\n");
	rg_free(wh_read_until(&a, "+ idling\r\n", NULL));
	wh_put_msg(f->md, "new", "5000.e.host", MSG3, 5000);
	/* RECENT counts all this session's recent messages: 2 at SELECT + 1 */
	char *got = wh_read_until(&a, "* 4 EXISTS\r\n* 3 RECENT\r\n", NULL);
	assert_string_equal(got, "* 4 EXISTS\r\n* 3 RECENT\r\n");
	rg_free(got);
	expect(&b, "f STORE 2 +FLAGS.SILENT (\\Flagged)\r\n", "f ", "f OK Store completed.\r\n");
	got = wh_read_until(&a, "))\r\n", NULL);
	assert_string_equal(got, "* 2 FETCH (UID 2 FLAGS (\\Flagged \\Seen))\r\n");
	rg_free(got);
	expect(&a, "DONE\r\n", "i ", "i OK Idle completed.\r\n");
	logout(&a);
	logout(&b);
}

/* CONDSTORE: HIGHESTMODSEQ, MODSEQ, CHANGEDSINCE, UNCHANGEDSINCE, SEARCH
 * MODSEQ, STATUS, another session's change counted, kept across sessions */
static void test_condstore(void **state)
{
	struct wh_home *f = *state;
	struct worker_proc a = start_logged_in(f, "a");
	struct worker_proc b = start_logged_in(f, "b");
	wh_send(&a, "c1 SELECT INBOX (CONDSTORE)\r\n");
	char *got = wh_read_until_line(&a, "c1 ");
	const char *hm = strstr(got, "* OK [HIGHESTMODSEQ ");
	assert_non_null(hm);
	unsigned long long h = strtoull(hm + 20, NULL, 10);
	assert_true(h > 3);
	rg_free(got);
	char want[512];
	snprintf(want, sizeof(want),
		 "* 1 FETCH (MODSEQ (%llu))\r\n* 2 FETCH (MODSEQ (%llu))\r\n* 3 FETCH (MODSEQ (%llu))\r\n"
		 "c2 OK Fetch completed.\r\n", h - 2, h - 1, h);
	expect(&a, "c2 FETCH 1:* MODSEQ\r\n", "c2 ", want);
	snprintf(want, sizeof(want), "* 1 FETCH (FLAGS (\\Flagged \\Recent) MODSEQ (%llu))\r\nc3 OK Store completed.\r\n", h + 1);
	expect(&a, "c3 STORE 1 +FLAGS (\\Flagged)\r\n", "c3 ", want);
	snprintf(want, sizeof(want), "c4 FETCH 1:* (FLAGS) (CHANGEDSINCE %llu)\r\n", h);
	wh_send(&a, want);
	snprintf(want, sizeof(want), "* 1 FETCH (MODSEQ (%llu) FLAGS (\\Flagged \\Recent))\r\nc4 OK Fetch completed.\r\n", h + 1);
	expect(&a, NULL, "c4 ", want);
	expect(&a, "c5 STORE 1:2 (UNCHANGEDSINCE 5) +FLAGS.SILENT (\\Deleted)\r\n", "c5 ",
	       "c5 OK [MODIFIED 1:2] Conditional store failed.\r\n");
	snprintf(want, sizeof(want), "c6 SEARCH MODSEQ %llu\r\n", h + 1);
	wh_send(&a, want);
	snprintf(want, sizeof(want), "* SEARCH 1 (MODSEQ %llu)\r\nc6 OK Search completed.\r\n", h + 1);
	expect(&a, NULL, "c6 ", want);
	snprintf(want, sizeof(want), "* SEARCH 1 2 3 (MODSEQ %llu)\r\nc7 OK Search completed.\r\n", h + 1);
	expect(&a, "c7 SEARCH MODSEQ \"/flags/\\\\draft\" all 1\r\n", "c7 ", want);
	/* b changes a flag without CONDSTORE; a's sync counts it */
	run(&b, "s SELECT INBOX\r\n");
	expect(&b, "f STORE 3 +FLAGS.SILENT (\\Answered)\r\n", "f ", "f OK Store completed.\r\n");
	snprintf(want, sizeof(want), "* 3 FETCH (UID 3 FLAGS (\\Answered \\Recent) MODSEQ (%llu))\r\nc8 OK NOOP completed.\r\n", h + 2);
	expect(&a, "c8 NOOP\r\n", "c8 ", want);
	snprintf(want, sizeof(want), "* STATUS INBOX (HIGHESTMODSEQ %llu)\r\nc9 OK Status completed.\r\n", h + 2);
	expect(&a, "c9 STATUS INBOX (HIGHESTMODSEQ)\r\n", "c9 ", want);
	expect(&a, "c10 FETCH 1 (FLAGS) (CHANGEDSINCE x)\r\n", "c10 ",
	       "c10 BAD Error in IMAP command FETCH: Invalid modifier.\r\n");
	expect(&a, "c11 STORE 1 (UNCHANGED 1) +FLAGS (\\Seen)\r\n", "c11 ",
	       "c11 BAD Error in IMAP command STORE: Invalid modifier.\r\n");
	/* ESEARCH (RFC 4731): MIN/MAX/ALL/COUNT, "()" is ALL, nothing found
	 * leaves out all but COUNT; with MODSEQ (RFC 7162 3.1.5) the highest
	 * modseq of what is returned */
	expect(&a, "e1 SEARCH RETURN (MIN MAX COUNT) ALL\r\n", "e1 ",
	       "* ESEARCH (TAG \"e1\") MIN 1 MAX 3 COUNT 3\r\ne1 OK Search completed.\r\n");
	expect(&a, "e2 UID SEARCH RETURN () FLAGGED\r\n", "e2 ",
	       "* ESEARCH (TAG \"e2\") UID ALL 1\r\ne2 OK Search completed.\r\n");
	expect(&a, "e3 SEARCH RETURN (ALL) NOT 2\r\n", "e3 ",
	       "* ESEARCH (TAG \"e3\") ALL 1,3\r\ne3 OK Search completed.\r\n");
	expect(&a, "e4 SEARCH RETURN (MIN MAX ALL COUNT) DELETED\r\n", "e4 ",
	       "* ESEARCH (TAG \"e4\") COUNT 0\r\ne4 OK Search completed.\r\n");
	snprintf(want, sizeof(want), "* ESEARCH (TAG \"e5\") MIN 1 MODSEQ %llu\r\ne5 OK Search completed.\r\n", h + 1);
	expect(&a, "e5 SEARCH RETURN (MIN) MODSEQ 1\r\n", "e5 ", want);
	snprintf(want, sizeof(want), "* ESEARCH (TAG \"e6\") MIN 1 MAX 2 MODSEQ %llu\r\ne6 OK Search completed.\r\n", h + 1);
	expect(&a, "e6 SEARCH RETURN (MIN MAX) 1:2 MODSEQ 1\r\n", "e6 ", want);
	snprintf(want, sizeof(want), "* ESEARCH (TAG \"e7\") COUNT 3 MODSEQ %llu\r\ne7 OK Search completed.\r\n", h + 2);
	expect(&a, "e7 SEARCH RETURN (COUNT) MODSEQ 1\r\n", "e7 ", want);
	expect(&a, "e8 SEARCH RETURN (SAVE) ALL\r\n", "e8 ",
	       "e8 BAD Error in IMAP command SEARCH: Invalid search return option\r\n");
	/* b turns CONDSTORE on with a MODSEQ fetch: told the HIGHESTMODSEQ once */
	wh_send(&b, "h1 FETCH 1 MODSEQ\r\n");
	got = wh_read_until_line(&b, "h1 ");
	unsigned long long bh = 0;
	assert_int_equal(sscanf(got, "* OK [HIGHESTMODSEQ %llu] Highest\r\n", &bh), 1);
	assert_true(bh >= h + 1); /* at least what b is told next */
	snprintf(want, sizeof(want), "] Highest\r\n* 1 FETCH (MODSEQ (%llu))\r\nh1 OK Fetch completed.\r\n", h + 1);
	assert_non_null(strstr(got, want));
	rg_free(got);
	snprintf(want, sizeof(want), "* 1 FETCH (MODSEQ (%llu))\r\nh2 OK Fetch completed.\r\n", h + 1);
	expect(&b, "h2 FETCH 1 MODSEQ\r\n", "h2 ", want);
	logout(&a);
	logout(&b);

	/* the modseqs outlive the sessions */
	a = start_logged_in(f, "a");
	expect(&a, "e ENABLE CONDSTORE\r\n", "e ", "* ENABLED CONDSTORE\r\ne OK Enabled.\r\n");
	wh_send(&a, "c1 EXAMINE INBOX\r\n");
	got = wh_read_until_line(&a, "c1 ");
	snprintf(want, sizeof(want), "* OK [HIGHESTMODSEQ %llu] Highest\r\n", h + 2);
	assert_non_null(strstr(got, want));
	rg_free(got);
	snprintf(want, sizeof(want), "* 1 FETCH (UID 1 MODSEQ (%llu))\r\nc2 OK Fetch completed.\r\n", h + 1);
	expect(&a, "c2 UID FETCH 1 MODSEQ\r\n", "c2 ", want);
	logout(&a);
}

/* ---- the core in memory, at every byte split ---- */

static bool core_input(void *client, const uint8_t *data, size_t len)
{
	return imap_client_input(client, data, len);
}

static const char core_script[] =
	"a SELECT {5}\r\nINBOX\r\nb FETCH 1:2 (UID FLAGS BODY[])\r\nc BOGUS\r\nd IDLE\r\nDONE\r\n"
	"e UID FETCH 1:* (FLAGS)\r\nf STORE 1 -FLAGS.SILENT (\\Seen)\r\ng FETCH 1 FLAGS\r\n"
	"j APPEND INBOX (\\Seen) {14}\r\nSubject: z\r\n\r\n\r\nk SEARCH SUBJECT z\r\n"
	"l LIST \"\" %\r\nm FETCH 4 (ENVELOPE BODYSTRUCTURE)\r\n"
	"h LOGOUT\r\ni NOOP\r\n";

static char *run_core(struct wh_home *f, size_t split, bool bytewise)
{
	wh_rm_rf(f->md);
	wh_put_three(f->md, MSG1, MSG2, MSG3);
	wh_put_uidlist(f->md, "1 V77 N1\n");

	struct wh_capture cap = { 0 };
	struct imap_client *client = imap_client_create(f->md, wh_capture_send, &cap);
	imap_client_send_login_reply(client, "x");
	assert_false(wh_feed_script(core_input, client, core_script, sizeof(core_script) - 1, split,
				    bytewise));
	assert_true(imap_client_logged_out(client));
	imap_client_destroy(client);
	return cap.data;
}

static void test_core_every_split(void **state)
{
	struct wh_home *f = *state;
	char *whole = run_core(f, 0, false);
	char want[512];
	snprintf(want, sizeof(want),
		 "* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent) BODY[] {%zu}\r\n" MSG1_CRLF ")\r\n"
		 "* 2 FETCH (UID 2 FLAGS (\\Seen) BODY[] {%zu}\r\n" MSG2 ")\r\nb OK Fetch completed.\r\n",
		 strlen(MSG1_CRLF), strlen(MSG2));
	assert_non_null(strstr(whole, "x OK [CAPABILITY"));
	assert_non_null(strstr(whole, "\r\n+ OK\r\n* FLAGS"));
	assert_non_null(strstr(whole, "* OK [UIDVALIDITY 77] UIDs valid\r\n"));
	assert_non_null(strstr(whole, want));
	assert_non_null(strstr(whole, "c BAD Unknown command.\r\n+ idling\r\nd OK Idle completed.\r\n"));
	assert_non_null(strstr(whole, "* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent))\r\n"));
	assert_non_null(strstr(whole, "f OK Store completed.\r\n* 1 FETCH (FLAGS (\\Recent))\r\ng OK"));
	/* the appended message is \Recent here: this session sees it first
	 * (RFC 3501 2.3.2) */
	assert_non_null(strstr(whole, "* 4 EXISTS\r\n* 3 RECENT\r\nj OK [APPENDUID 77 4] Append completed.\r\n"
				      "* SEARCH 4\r\nk OK Search completed.\r\n"));
	assert_non_null(strstr(whole, "* LIST (\\HasNoChildren \\Trash) \".\" Trash\r\nl OK List completed.\r\n"));
	assert_non_null(strstr(whole, "* 4 FETCH (ENVELOPE (NIL \"z\" NIL NIL NIL NIL NIL NIL NIL NIL) "
				      "BODYSTRUCTURE (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL))\r\n"));
	size_t wl = strlen(whole);
	static const char tail[] = "* BYE Logging out\r\nh OK Logout completed.\r\n";
	assert_true(wl > sizeof(tail));
	assert_string_equal(whole + wl - (sizeof(tail) - 1), tail);
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
		cmocka_unit_test_setup_teardown(test_session, setup, teardown),
		cmocka_unit_test_setup_teardown(test_examine_and_logout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_many_bad, setup, teardown),
		cmocka_unit_test_setup_teardown(test_core_every_split, setup, teardown),
		cmocka_unit_test_setup_teardown(test_folders_two_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_push, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rfc_two_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_condstore, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
