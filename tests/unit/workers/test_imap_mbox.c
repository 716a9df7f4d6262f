/* ringgate-imap on an mbox mail_location (Debian's default
 * `mbox:~/mail:INBOX=/var/mail/%u`, here with INBOX in the temp home): the
 * real binary, a spool carrying Dovecot's metadata as Dovecot 2.3 writes
 * it, and the file checked byte for byte after the session's changes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "harness.h"
#include "imap/imap-client.h"
#include "lib/alloc.h"

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOCATION "mbox:~/mail:INBOX=~/inbox"
/* the binary also offers COMPRESS (the core alone does not) */
#define LOGIN_REPLY(tag) tag " OK [CAPABILITY " IMAP_CAPABILITY " COMPRESS=DEFLATE] Logged in\r\n"

/* the first message as Dovecot left it: UID 4, last UID 5, \Answered
 * \Flagged \Seen and keyword kw1, not \Recent */
#define SPOOL_M1 "From alice@example.com Mon Dec  7 10:00:00 2026\n" \
	"Subject: one\n" \
	"X-IMAPbase: 1796658136 0000000005 kw1\n" \
	"X-UID: 4                \n" \
	"Status: RO\n" \
	"X-Status: AF\n" \
	"X-Keywords: kw1\n" \
	"\n" \
	"body1\n" \
	">From quoted\n" \
	"\n"
#define M1_CRLF "Subject: one\r\n\r\nbody1\r\n>From quoted\r\n"
/* delivered since: no metadata */
#define SPOOL_M2 "From bob@example.com Mon Dec  7 11:00:00 2026\n" \
	"Subject: two\n" \
	"To: b@example.com\n" \
	"\n" \
	"Hello two\n" \
	"\n"
#define SPOOL_M3 "From carol@example.com Mon Dec  7 12:00:00 2026\n" \
	"From: carol@example.com\n" \
	"Subject: three\n" \
	"MIME-Version: 1.0\n" \
	"Content-Type: multipart/mixed; boundary=\"b\"\n" \
	"\n" \
	"--b\n" \
	"Content-Type: text/plain\n" \
	"\n" \
	"part one\n" \
	"--b--\n"

/* a client's message carrying headers only Dovecot may write */
#define APPEND_MSG "Subject: five\r\nStatus: RO\r\nX-UID: 99\r\n\r\nFrom me\r\nbye\r\n"

struct fixture {
	char *home;
};

static void put(const char *home, const char *name, const char *text)
{
	char *path = rg_strdup_printf("%s/%s", home, name);
	char *slash = strrchr(path, '/');
	*slash = '\0';
	char *cmd = rg_strdup_printf("mkdir -p '%s'", path);
	assert_int_equal(system(cmd), 0);
	*slash = '/';
	FILE *f = fopen(path, "a");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
	rg_free(cmd);
	rg_free(path);
}

static int setup(void **state)
{
	struct fixture *f = rg_calloc(1, sizeof(*f));
	f->home = wh_tmpdir();
	put(f->home, "inbox", SPOOL_M1 SPOOL_M2 SPOOL_M3);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	wh_rm_rf(f->home);
	rg_free(f->home);
	rg_free(f);
	return 0;
}

/* reply NULL: only that the reply's last line starts with tag */
static void expect(struct worker_proc *w, const char *cmd, const char *tag, const char *reply)
{
	if (cmd != NULL)
		wh_send(w, cmd);
	char *got = wh_read_until_line(w, tag);
	if (reply != NULL)
		assert_string_equal(got, reply);
	rg_free(got);
}

/* SELECT of an empty folder: its UIDVALIDITY */
static unsigned select_uidvalidity(struct worker_proc *w, const char *cmd, const char *tag)
{
	wh_send(w, cmd);
	char *got = wh_read_until_line(w, tag);
	assert_non_null(strstr(got, "* 0 EXISTS\r\n* 0 RECENT\r\n"));
	assert_non_null(strstr(got, "* OK [UIDNEXT 1] Predicted next UID\r\n"));
	const char *v = strstr(got, "[UIDVALIDITY ");
	assert_non_null(v);
	unsigned n = (unsigned)strtoul(v + 13, NULL, 10);
	assert_true(n > 0);
	rg_free(got);
	return n;
}

static struct worker_proc start(struct fixture *f)
{
	struct worker_proc w = wh_start("ringgate-imap", f->home, LOCATION, "a0", NULL, 0);
	expect(&w, NULL, "a0 ", LOGIN_REPLY("a0"));
	return w;
}

static void logout(struct worker_proc *w)
{
	expect(w, "z LOGOUT\r\n", "z ", "* BYE Logging out\r\nz OK Logout completed.\r\n");
	assert_true(wh_read_eof(w));
	assert_int_equal(wh_finish(w), 0);
}

static void test_session(void **state)
{
	struct fixture *f = *state;
	struct worker_proc w = start(f);
	char buf[2048];

	/* Dovecot's UIDVALIDITY and UIDs; the two new messages get 6 and 7 */
	expect(&w, "a1 SELECT INBOX\r\n", "a1 ",
	       "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft kw1)\r\n"
	       "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft kw1 \\*)] Flags permitted.\r\n"
	       "* 3 EXISTS\r\n* 2 RECENT\r\n* OK [UNSEEN 2] First unseen.\r\n"
	       "* OK [UIDVALIDITY 1796658136] UIDs valid\r\n* OK [UIDNEXT 8] Predicted next UID\r\n"
	       "a1 OK [READ-WRITE] Select completed.\r\n");
	snprintf(buf, sizeof(buf),
		 "* 1 FETCH (UID 4 FLAGS (\\Answered \\Flagged \\Seen kw1) RFC822.SIZE %zu)\r\n"
		 "* 2 FETCH (UID 6 FLAGS (\\Recent) RFC822.SIZE %zu)\r\n"
		 "* 3 FETCH (UID 7 FLAGS (\\Recent) RFC822.SIZE %zu)\r\n"
		 "a2 OK Fetch completed.\r\n",
		 strlen(M1_CRLF), strlen("Subject: two\r\nTo: b@example.com\r\n\r\nHello two\r\n"),
		 strlen(SPOOL_M3) - strlen("From carol@example.com Mon Dec  7 12:00:00 2026\n") + 10);
	expect(&w, "a2 FETCH 1:* (UID FLAGS RFC822.SIZE)\r\n", "a2 ", buf);
	/* Dovecot's headers are hidden, ">From" stays as written */
	snprintf(buf, sizeof(buf), "* 1 FETCH (BODY[] {%zu}\r\n" M1_CRLF ")\r\na3 OK Fetch completed.\r\n",
		 strlen(M1_CRLF));
	expect(&w, "a3 FETCH 1 BODY.PEEK[]\r\n", "a3 ", buf);
	expect(&w, "a4 FETCH 3 (BODY.PEEK[1] BODYSTRUCTURE INTERNALDATE)\r\n", "a4 ",
	       "* 3 FETCH (BODY[1] {8}\r\npart one BODYSTRUCTURE ((\"text\" \"plain\" "
	       "(\"charset\" \"us-ascii\") NIL NIL \"7bit\" 8 0 NIL NIL NIL NIL) \"mixed\" "
	       "(\"boundary\" \"b\") NIL NIL NIL) INTERNALDATE \" 7-Dec-2026 12:00:00 +0000\")\r\n"
	       "a4 OK Fetch completed.\r\n");
	expect(&w, "a5 SEARCH UNSEEN\r\n", "a5 ", "* SEARCH 2 3\r\na5 OK Search completed.\r\n");
	expect(&w, "a6 UID SEARCH KEYWORD kw1\r\n", "a6 ", "* SEARCH 4\r\na6 OK Search completed.\r\n");
	expect(&w, "a7 SEARCH BODY \"part one\"\r\n", "a7 ", "* SEARCH 3\r\na7 OK Search completed.\r\n");

	/* STORE and EXPUNGE rewrite the file */
	expect(&w, "s1 STORE 2 +FLAGS (\\Seen kw2)\r\n", "s1 ",
	       "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft kw1 kw2)\r\n"
	       "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft kw1 kw2 \\*)] Flags permitted.\r\n"
	       "* 2 FETCH (FLAGS (\\Seen \\Recent kw2))\r\ns1 OK Store completed.\r\n");
	expect(&w, "s2 STORE 3 +FLAGS.SILENT (\\Deleted)\r\n", "s2 ", "s2 OK Store completed.\r\n");
	expect(&w, "s3 EXPUNGE\r\n", "s3 ", "* 3 EXPUNGE\r\ns3 OK Expunge completed.\r\n");
	/* BODY[] sets \Seen, written at once */
	expect(&w, "s4 STORE 1 -FLAGS (\\Seen)\r\n", "s4 ",
	       "* 1 FETCH (FLAGS (\\Answered \\Flagged kw1))\r\ns4 OK Store completed.\r\n");
	snprintf(buf, sizeof(buf),
		 "* 1 FETCH (BODY[] {%zu}\r\n" M1_CRLF " FLAGS (\\Answered \\Flagged \\Seen kw1))\r\n"
		 "s5 OK Fetch completed.\r\n", strlen(M1_CRLF));
	expect(&w, "s5 FETCH 1 BODY[]\r\n", "s5 ", buf);
	/* APPEND: Dovecot's headers in the text are dropped, "From " quoted,
	 * the next UID, and the session hears of it at once */
	snprintf(buf, sizeof(buf), "s6 APPEND INBOX (\\Seen kw1) \"07-Dec-2026 14:00:00 +0000\" {%zu}\r\n",
		 strlen(APPEND_MSG));
	wh_send(&w, buf);
	rg_free(wh_read_until(&w, "+ OK\r\n", NULL));
	expect(&w, APPEND_MSG "\r\n", "s6 ",
	       "* 3 EXISTS\r\n* 2 RECENT\r\ns6 OK [APPENDUID 1796658136 8] Append completed.\r\n");
	expect(&w, "s7 FETCH 3 (UID FLAGS BODY.PEEK[])\r\n", "s7 ",
	       "* 3 FETCH (UID 8 FLAGS (\\Seen \\Recent kw1) BODY[] {32}\r\n"
	       "Subject: five\r\n\r\n>From me\r\nbye\r\n)\r\ns7 OK Fetch completed.\r\n");
	logout(&w);

	/* the file as Dovecot would have written it */
	char *file = wh_read_file(f->home, "inbox");
	assert_string_equal(file,
			    "From alice@example.com Mon Dec  7 10:00:00 2026\n"
			    "Subject: one\n"
			    "X-IMAPbase: 1796658136 0000000008 kw1 kw2\n"
			    "X-UID: 4\n"
			    "Status: RO\n"
			    "X-Status: AF\n"
			    "X-Keywords: kw1\n"
			    "\n"
			    "body1\n"
			    ">From quoted\n"
			    "\n"
			    "From bob@example.com Mon Dec  7 11:00:00 2026\n"
			    "Subject: two\n"
			    "To: b@example.com\n"
			    "X-UID: 6\n"
			    "Status: RO\n"
			    "X-Keywords: kw2\n"
			    "\n"
			    "Hello two\n"
			    "\n"
			    "From MAILER-DAEMON Mon Dec  7 14:00:00 2026\n"
			    "Subject: five\n"
			    "X-UID: 8\n"
			    "Status: RO\n"
			    "X-Keywords: kw1\n"
			    "\n"
			    ">From me\n"
			    "bye\n"
			    "\n");
	rg_free(file);

	/* a later session: the same UIDs and flags, nothing recent; a
	 * delivery shows up with the next UID */
	w = start(f);
	expect(&w, "b1 EXAMINE INBOX\r\n", "b1 ",
	       "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft kw1 kw2)\r\n"
	       "* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n"
	       "* 3 EXISTS\r\n* 0 RECENT\r\n"
	       "* OK [UIDVALIDITY 1796658136] UIDs valid\r\n* OK [UIDNEXT 9] Predicted next UID\r\n"
	       "b1 OK [READ-ONLY] Examine completed.\r\n");
	expect(&w, "b2 FETCH 1:* (UID FLAGS)\r\n", "b2 ",
	       "* 1 FETCH (UID 4 FLAGS (\\Answered \\Flagged \\Seen kw1))\r\n"
	       "* 2 FETCH (UID 6 FLAGS (\\Seen kw2))\r\n"
	       "* 3 FETCH (UID 8 FLAGS (\\Seen kw1))\r\nb2 OK Fetch completed.\r\n");
	put(f->home, "inbox", "From dave@example.com Mon Dec  7 13:00:00 2026\nSubject: four\n\nnew\n");
	expect(&w, "b3 NOOP\r\n", "b3 ", "* 4 EXISTS\r\n* 1 RECENT\r\nb3 OK NOOP completed.\r\n");
	expect(&w, "b4 FETCH 4 (UID BODY.PEEK[HEADER])\r\n", "b4 ",
	       "* 4 FETCH (UID 9 BODY[HEADER] {17}\r\nSubject: four\r\n\r\n)\r\nb4 OK Fetch completed.\r\n");
	logout(&w);
}

static void test_folders(void **state)
{
	struct fixture *f = *state;
	put(f->home, "mail/Archive", "From x@example.com Mon Dec  7 09:00:00 2026\n"
	    "X-IMAPbase: 555 0000000001\nX-UID: 1\n\nold\n");
	put(f->home, "mail/lists/dev", "");
	/* a dot is an ordinary character in an mbox name (Dovecot's "/"
	   separator), the file is one folder */
	put(f->home, "mail/v1.2", "");
	/* Dovecot's own files under the root are no folders */
	put(f->home, "mail/.imap/INBOX/dovecot.index.log", "x");
	put(f->home, "mail/.subscriptions", "Archive\n");
	struct worker_proc w = start(f);
	expect(&w, "l1 LIST \"\" *\r\n", "l1 ",
	       "* LIST (\\HasNoChildren) \"/\" INBOX\r\n"
	       "* LIST (\\HasNoChildren) \"/\" Archive\r\n"
	       "* LIST (\\HasNoChildren \\Drafts) \"/\" Drafts\r\n"
	       "* LIST (\\HasNoChildren \\Junk) \"/\" Junk\r\n"
	       "* LIST (\\HasNoChildren \\Sent) \"/\" Sent\r\n"
	       "* LIST (\\HasNoChildren \\Trash) \"/\" Trash\r\n"
	       "* LIST (\\HasNoChildren) \"/\" lists/dev\r\n"
	       "* LIST (\\HasNoChildren) \"/\" v1.2\r\n"
	       "* LIST (\\Noselect \\HasChildren) \"/\" lists\r\n"
	       "l1 OK List completed.\r\n");
	expect(&w, "l1a LIST \"\" %\r\n", "l1a ",
	       "* LIST (\\HasNoChildren) \"/\" INBOX\r\n"
	       "* LIST (\\HasNoChildren) \"/\" Archive\r\n"
	       "* LIST (\\HasNoChildren \\Drafts) \"/\" Drafts\r\n"
	       "* LIST (\\HasNoChildren \\Junk) \"/\" Junk\r\n"
	       "* LIST (\\HasNoChildren \\Sent) \"/\" Sent\r\n"
	       "* LIST (\\HasNoChildren \\Trash) \"/\" Trash\r\n"
	       "* LIST (\\HasNoChildren) \"/\" v1.2\r\n"
	       "* LIST (\\Noselect \\HasChildren) \"/\" lists\r\n"
	       "l1a OK List completed.\r\n");
	expect(&w, "l1b NAMESPACE\r\n", "l1b ",
	       "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\nl1b OK Namespace completed.\r\n");
	/* no level may leave the root or name Dovecot's hidden files */
	expect(&w, "l1c CREATE ../escape\r\n", "l1c ", "l1c NO Invalid mailbox name\r\n");
	expect(&w, "l1d CREATE a/../../escape\r\n", "l1d ", "l1d NO Invalid mailbox name\r\n");
	expect(&w, "l1e SELECT .imap/INBOX/dovecot.index.log\r\n", "l1e ",
	       "l1e NO Mailbox doesn't exist: .imap/INBOX/dovecot.index.log\r\n");
	expect(&w, "l1f CREATE a//b\r\n", "l1f ", "l1f NO Invalid mailbox name\r\n");
	expect(&w, "l2 LSUB \"\" *\r\n", "l2 ",
	       "* LSUB () \"/\" Archive\r\n* LSUB () \"/\" Drafts\r\n* LSUB () \"/\" Sent\r\n"
	       "* LSUB () \"/\" Trash\r\n* LSUB () \"/\" Junk\r\nl2 OK Lsub completed.\r\n");
	expect(&w, "l3 STATUS Archive (MESSAGES UIDNEXT UNSEEN)\r\n", "l3 ",
	       "* STATUS Archive (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\nl3 OK Status completed.\r\n");
	expect(&w, "l4 CREATE Work/2026\r\n", "l4 ", "l4 OK Create completed.\r\n");
	/* a new folder has its own UIDVALIDITY, a new one when made again */
	unsigned v1 = select_uidvalidity(&w, "l5 SELECT Work/2026\r\n", "l5 ");
	expect(&w, "l5a DELETE Work/2026\r\n", "l5a ", "l5a OK Delete completed.\r\n");
	expect(&w, "l5b CREATE Work/2026\r\n", "l5b ", "l5b OK Create completed.\r\n");
	unsigned v2 = select_uidvalidity(&w, "l5c SELECT Work/2026\r\n", "l5c ");
	assert_true(v2 > v1);
	/* COPY and MOVE between mbox folders keep flags and dates; the copies
	 * are \Recent for the next session that sees them */
	expect(&w, "c1 SELECT INBOX\r\n", "c1 OK", NULL);
	expect(&w, "c2 COPY 1 Archive\r\n", "c2 ", "c2 OK [COPYUID 555 4 2] Copy completed.\r\n");
	expect(&w, "c3 MOVE 2:3 Archive\r\n", "c3 ",
	       "* OK [COPYUID 555 6:7 3:4] Moved UIDs.\r\n* 2 EXPUNGE\r\n* 2 EXPUNGE\r\n"
	       "c3 OK Move completed.\r\n");
	expect(&w, "c4 EXAMINE Archive\r\n", "c4 OK", NULL);
	expect(&w, "c5 FETCH 2:* (UID FLAGS INTERNALDATE BODY.PEEK[HEADER.FIELDS (Subject)])\r\n", "c5 ",
	       "* 2 FETCH (UID 2 FLAGS (\\Answered \\Flagged \\Seen \\Recent kw1) INTERNALDATE \" 7-Dec-2026 10:00:00 +0000\" "
	       "BODY[HEADER.FIELDS (Subject)] {16}\r\nSubject: one\r\n\r\n)\r\n"
	       "* 3 FETCH (UID 3 FLAGS (\\Recent) INTERNALDATE \" 7-Dec-2026 11:00:00 +0000\" "
	       "BODY[HEADER.FIELDS (Subject)] {16}\r\nSubject: two\r\n\r\n)\r\n"
	       "* 4 FETCH (UID 4 FLAGS (\\Recent) INTERNALDATE \" 7-Dec-2026 12:00:00 +0000\" "
	       "BODY[HEADER.FIELDS (Subject)] {18}\r\nSubject: three\r\n\r\n)\r\n"
	       "c5 OK Fetch completed.\r\n");
	expect(&w, "c6 UNSELECT\r\n", "c6 ", "c6 OK Unselect completed.\r\n");
	expect(&w, "l6 RENAME Archive Old\r\n", "l6 ", "l6 OK Rename completed.\r\n");
	expect(&w, "l7 DELETE lists/dev\r\n", "l7 ", "l7 OK Delete completed.\r\n");
	/* "name." makes a level (a directory), which DELETE removes once empty */
	expect(&w, "l7a CREATE Proj/\r\n", "l7a ", "l7a OK Create completed.\r\n");
	expect(&w, "l7b CREATE Proj/x\r\n", "l7b ", "l7b OK Create completed.\r\n");
	expect(&w, "l7c CREATE Old/x\r\n", "l7c ", "l7c NO Invalid mailbox name\r\n");
	expect(&w, "l7d DELETE Proj/x\r\n", "l7d ", "l7d OK Delete completed.\r\n");
	expect(&w, "l7e DELETE Proj\r\n", "l7e ", "l7e OK Delete completed.\r\n");
	expect(&w, "l7f DELETE Proj\r\n", "l7f ", "l7f NO Mailbox doesn't exist: Proj\r\n");
	expect(&w, "l8 SELECT Archive\r\n", "l8 ", "l8 NO Mailbox doesn't exist: Archive\r\n");
	logout(&w);
	/* an mbox with Dovecot's pseudo message, which is no message */
	char *file = wh_read_file(f->home, "mail/Work/2026");
	assert_non_null(strstr(file, "\nX-IMAP: "));
	assert_int_equal(strncmp(file, "From MAILER_DAEMON ", 19), 0);
	rg_free(file);
	struct stat st;
	char *p = rg_strdup_printf("%s/mail/Old", f->home);
	assert_int_equal(stat(p, &st), 0);
	rg_free(p);
	p = rg_strdup_printf("%s/mail/lists/dev", f->home);
	assert_int_not_equal(stat(p, &st), 0);
	rg_free(p);
}

/* A delivery agent holds the spool's dotlock: STORE waits out the bound
 * (MBOX_LOCK_TIMEOUT_MS, 10 s), answers NO [INUSE] and shows the flags the
 * file still has; once the lock is gone it works. */
static void test_inuse(void **state)
{
	struct fixture *f = *state;
	struct worker_proc w = start(f);
	expect(&w, "i0 SELECT INBOX\r\n", "i0 OK", NULL);
	char *lock = rg_strdup_printf("%s/inbox.lock", f->home);
	put(f->home, "inbox.lock", "4242\n");
	wh_send(&w, "i1 STORE 2 +FLAGS (\\Flagged)\r\n");
	struct pollfd pfd = { .fd = w.fd, .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, 20000), 1);
	expect(&w, NULL, "i1 ",
	       "* 2 FETCH (FLAGS (\\Recent))\r\n"
	       "i1 NO [INUSE] Mailbox is locked by another process, try again later.\r\n");
	char *file = wh_read_file(f->home, "inbox");
	assert_null(strstr(file, "X-Status: F"));
	rg_free(file);
	assert_int_equal(unlink(lock), 0);
	expect(&w, "i2 STORE 2 +FLAGS (\\Flagged)\r\n", "i2 ",
	       "* 2 FETCH (FLAGS (\\Flagged \\Recent))\r\ni2 OK Store completed.\r\n");
	file = wh_read_file(f->home, "inbox");
	assert_non_null(strstr(file, "Subject: two\nTo: b@example.com\nX-UID: 6\nStatus: O\nX-Status: F\n"));
	rg_free(file);
	logout(&w);
	rg_free(lock);
}

int main(void)
{
	/* From lines carry local time: the INTERNALDATEs compared are UTC */
	setenv("TZ", "UTC", 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_session, setup, teardown),
		cmocka_unit_test_setup_teardown(test_folders, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inuse, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
