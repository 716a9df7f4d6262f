/* QRESYNC (RFC 7162 3.2) in ringgate-imap: ENABLE, SELECT/EXAMINE's
 * QRESYNC parameter with VANISHED (EARLIER) and FETCH of what changed,
 * known UIDs and sequence match data, UID FETCH (CHANGEDSINCE VANISHED),
 * VANISHED instead of EXPUNGE, [CLOSED], the lower HIGHESTMODSEQ after
 * MODSEQs above unreported changes, and BAD (session goes on) for every
 * malformed parameter. The real binary over the harness, and the core at
 * every byte split. */
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

struct fixture {
	char *home;
	char *md;
};

static int setup(void **state)
{
	struct fixture *f = rg_calloc(1, sizeof(*f));
	f->home = wh_tmpdir();
	f->md = rg_strdup_printf("%s/Maildir", f->home);
	/* five old messages (in cur/ before any list: not \Recent) */
	for (int i = 1; i <= 5; i++) {
		char name[32], body[64];
		snprintf(name, sizeof(name), "%d000.m%d.host:2,", i, i);
		snprintf(body, sizeof(body), "Subject: %d\n\nbody %d\n", i, i);
		wh_put_msg(f->md, "cur", name, body, 1000L * i);
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	wh_rm_rf(f->home);
	rg_free(f->home);
	rg_free(f->md);
	rg_free(f);
	return 0;
}

/* send cmd (if any), read through the line starting with tag, compare */
static void expect(struct worker_proc *w, const char *cmd, const char *tag, const char *reply)
{
	if (cmd != NULL)
		wh_send(w, cmd);
	char *got = wh_read_until_line(w, tag);
	if (strcmp(got, reply) != 0)
		fail_msg("%s: want\n%s\ngot\n%s", cmd != NULL ? cmd : "(none)", reply, got);
	rg_free(got);
}

static void expectf(struct worker_proc *w, const char *cmd, const char *tag, const char *reply_fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void expectf(struct worker_proc *w, const char *cmd, const char *tag, const char *reply_fmt, ...)
{
	char reply[2048];
	va_list ap;
	va_start(ap, reply_fmt);
	vsnprintf(reply, sizeof(reply), reply_fmt, ap);
	va_end(ap);
	expect(w, cmd, tag, reply);
}

static struct worker_proc start(struct fixture *f, const char *tag)
{
	struct worker_proc w = wh_start("ringgate-imap", f->home, NULL, tag, NULL, 0);
	char *line = rg_strdup_printf("%s ", tag);
	rg_free(wh_read_until_line(&w, line));
	rg_free(line);
	return w;
}

static void finish(struct worker_proc *w)
{
	expect(w, "z LOGOUT\r\n", "z ", "* BYE Logging out\r\nz OK Logout completed.\r\n");
	assert_true(wh_read_eof(w));
	assert_int_equal(wh_finish(w), 0);
}

/* SELECT/EXAMINE cmd: everything after its HIGHESTMODSEQ line, with the
 * UIDVALIDITY and HIGHESTMODSEQ it said */
static char *select_tail(struct worker_proc *w, const char *cmd, const char *tag, unsigned int *uidv_r,
			 unsigned long long *hms_r)
{
	wh_send(w, cmd);
	char *got = wh_read_until_line(w, tag);
	const char *v = strstr(got, "* OK [UIDVALIDITY ");
	const char *h = strstr(got, "* OK [HIGHESTMODSEQ ");
	if (v == NULL || h == NULL)
		fail_msg("%s: %s", cmd, got);
	if (uidv_r != NULL)
		*uidv_r = (unsigned int)strtoul(v + 18, NULL, 10);
	if (hms_r != NULL)
		*hms_r = strtoull(h + 20, NULL, 10);
	char *tail = rg_strdup(strstr(h, "\r\n") + 2);
	rg_free(got);
	return tail;
}

static void test_qresync(void **state)
{
	struct fixture *f = *state;
	struct worker_proc a = start(f, "a");
	wh_send(&a, "c CAPABILITY\r\n");
	char *got = wh_read_until_line(&a, "c ");
	assert_non_null(strstr(got, " CONDSTORE "));
	assert_non_null(strstr(got, " QRESYNC"));
	rg_free(got);
	/* the parameter before ENABLE QRESYNC is BAD (RFC 7162 3.2.5) */
	expect(&a, "q0 SELECT INBOX (QRESYNC (1 1))\r\n", "q0 ",
	       "q0 BAD Error in IMAP command SELECT: QRESYNC isn't enabled.\r\n");
	expect(&a, "e ENABLE QRESYNC\r\n", "e ", "* ENABLED QRESYNC\r\ne OK Enabled.\r\n");
	/* both are on now (QRESYNC implies CONDSTORE): nothing new */
	expect(&a, "e2 ENABLE CONDSTORE QRESYNC\r\n", "e2 ", "* ENABLED\r\ne2 OK Enabled.\r\n");
	unsigned int v;
	unsigned long long h;
	got = select_tail(&a, "s SELECT INBOX\r\n", "s ", &v, &h);
	assert_string_equal(got, "s OK [READ-WRITE] Select completed.\r\n");
	rg_free(got);
	/* .SILENT still reports MODSEQ, and every FETCH names its UID */
	expectf(&a, "d STORE 2,4 +FLAGS.SILENT (\\Deleted)\r\n", "d ", "* 2 FETCH (UID 2 MODSEQ (%llu))\r\n* 4 FETCH (UID 4 MODSEQ (%llu))\r\nd OK Store completed.\r\n", h + 1, h + 2);
	/* EXPUNGE answers with VANISHED (RFC 7162 3.2.10) */
	expect(&a, "x EXPUNGE\r\n", "x ", "* VANISHED 2,4\r\nx OK Expunge completed.\r\n");
	/* the expunge got modseq h + 3 */
	expectf(&a, "st STATUS INBOX (HIGHESTMODSEQ)\r\n", "st ", "* STATUS INBOX (HIGHESTMODSEQ %llu)\r\nst OK Status completed.\r\n", h + 3);
	expectf(&a, "f STORE 1 +FLAGS (\\Flagged)\r\n", "f ", "* 1 FETCH (UID 1 FLAGS (\\Flagged) MODSEQ (%llu))\r\nf OK Store completed.\r\n", h + 4);
	expectf(&a, "g FETCH 2 (FLAGS)\r\n", "g ", "* 2 FETCH (UID 3 FLAGS () MODSEQ (%llu))\r\ng OK Fetch completed.\r\n",
		h - 2);
	finish(&a);

	/* a new session resynchronises from (v, h) */
	struct worker_proc b = start(f, "b");
	expect(&b, "e ENABLE CONDSTORE QRESYNC\r\n", "e ", "* ENABLED CONDSTORE QRESYNC\r\ne OK Enabled.\r\n");
	char cmd[256], want[512];
	unsigned long long h2;
	snprintf(cmd, sizeof(cmd), "q1 SELECT INBOX (QRESYNC (%u %llu))\r\n", v, h);
	got = select_tail(&b, cmd, "q1 ", NULL, &h2);
	assert_true(h2 == h + 4);
	snprintf(want, sizeof(want),
		 "* VANISHED (EARLIER) 2,4\r\n* 1 FETCH (UID 1 FLAGS (\\Flagged) MODSEQ (%llu))\r\n"
		 "q1 OK [READ-WRITE] Select completed.\r\n", h + 4);
	assert_string_equal(got, want);
	rg_free(got);
	/* known UIDs limit both; a new SELECT first closes with [CLOSED] */
	snprintf(cmd, sizeof(cmd), "q2 SELECT INBOX (QRESYNC (%u %llu 1:3))\r\n", v, h);
	wh_send(&b, cmd);
	got = wh_read_until_line(&b, "q2 ");
	assert_memory_equal(got, "* OK [CLOSED] Previous mailbox closed.\r\n* FLAGS", 47);
	snprintf(want, sizeof(want), "] Highest\r\n* VANISHED (EARLIER) 2\r\n* 1 FETCH (UID 1 FLAGS (\\Flagged) MODSEQ (%llu))\r\nq2 OK",
		 h + 4);
	assert_non_null(strstr(got, want));
	rg_free(got);
	snprintf(cmd, sizeof(cmd), "q3 EXAMINE INBOX (CONDSTORE QRESYNC (%u %llu 3:5))\r\n", v, h);
	got = select_tail(&b, cmd, "q3 ", NULL, NULL);
	assert_string_equal(got, "* VANISHED (EARLIER) 4\r\nq3 OK [READ-ONLY] Examine completed.\r\n");
	rg_free(got);
	/* another UIDVALIDITY: nothing to resync; nothing newer: nothing */
	snprintf(cmd, sizeof(cmd), "q4 SELECT INBOX (QRESYNC (%u %llu))\r\n", v + 1, h);
	got = select_tail(&b, cmd, "q4 ", NULL, NULL);
	assert_string_equal(got, "q4 OK [READ-WRITE] Select completed.\r\n");
	rg_free(got);
	snprintf(cmd, sizeof(cmd), "q5 SELECT INBOX (QRESYNC (%u %llu))\r\n", v, h + 4);
	got = select_tail(&b, cmd, "q5 ", NULL, NULL);
	assert_string_equal(got, "q5 OK [READ-WRITE] Select completed.\r\n");
	rg_free(got);
	/* a modseq from before the table (older than what it remembers):
	 * every missing UID, narrowed by the sequence match data (RFC 7162
	 * 3.2.5.2): here the client's 1:3 are still 1,3,5, so nothing */
	snprintf(cmd, sizeof(cmd), "q6 SELECT INBOX (QRESYNC (%u 1 1:5))\r\n", v);
	got = select_tail(&b, cmd, "q6 ", NULL, NULL);
	assert_memory_equal(got, "* VANISHED (EARLIER) 2,4\r\n", 26);
	rg_free(got);
	snprintf(cmd, sizeof(cmd), "q7 SELECT INBOX (QRESYNC (%u 1 1:5 (1:3 1,3,5)))\r\n", v);
	got = select_tail(&b, cmd, "q7 ", NULL, NULL);
	assert_null(strstr(got, "VANISHED"));
	rg_free(got);
	snprintf(cmd, sizeof(cmd), "q8 SELECT INBOX (QRESYNC (%u 1 1:5 (1:2 1,3)))\r\n", v);
	got = select_tail(&b, cmd, "q8 ", NULL, NULL);
	assert_memory_equal(got, "* VANISHED (EARLIER) 4\r\n", 24);
	rg_free(got);
	/* UID FETCH ... (CHANGEDSINCE m VANISHED) (RFC 7162 3.2.6) */
	snprintf(cmd, sizeof(cmd), "u1 UID FETCH 1:* (FLAGS) (CHANGEDSINCE %llu VANISHED)\r\n", h);
	snprintf(want, sizeof(want), "* VANISHED (EARLIER) 2,4\r\n* 1 FETCH (UID 1 MODSEQ (%llu) FLAGS (\\Flagged))\r\n"
		 "u1 OK Fetch completed.\r\n", h + 4);
	expect(&b, cmd, "u1 ", want);
	snprintf(cmd, sizeof(cmd), "u2 UID FETCH 3:4 (FLAGS) (VANISHED CHANGEDSINCE %llu)\r\n", h);
	expect(&b, cmd, "u2 ", "* VANISHED (EARLIER) 4\r\nu2 OK Fetch completed.\r\n");
	snprintf(cmd, sizeof(cmd), "u3 UID FETCH 1:* (FLAGS) (CHANGEDSINCE %llu VANISHED)\r\n", h + 4);
	expect(&b, cmd, "u3 ", "u3 OK Fetch completed.\r\n");
	finish(&b);
}

/* VANISHED for another session's expunge, and the lower HIGHESTMODSEQ
 * after a STORE whose MODSEQ is above it (RFC 7162 3.2) */
static void test_two_sessions(void **state)
{
	struct fixture *f = *state;
	struct worker_proc a = start(f, "a");
	struct worker_proc d = start(f, "d");
	expect(&a, "e ENABLE QRESYNC\r\n", "e ", "* ENABLED QRESYNC\r\ne OK Enabled.\r\n");
	unsigned long long h;
	char *got = select_tail(&a, "s SELECT INBOX\r\n", "s ", NULL, &h);
	rg_free(got);
	rg_free((wh_send(&d, "s SELECT INBOX\r\n"), wh_read_until_line(&d, "s ")));
	rg_free((wh_send(&d, "t STORE 3 +FLAGS.SILENT (\\Deleted)\r\n"), wh_read_until_line(&d, "t ")));
	expect(&d, "x EXPUNGE\r\n", "x ", "* 3 EXPUNGE\r\nx OK Expunge completed.\r\n");
	/* (d has no CONDSTORE: its \\Deleted got no modseq, its expunge h + 1)
	 * a stores before hearing of it: its new MODSEQ is above the
	 * expunge's, so it is told a HIGHESTMODSEQ below both */
	expectf(&a, "f STORE 1 +FLAGS (\\Seen)\r\n", "f ", "* 1 FETCH (UID 1 FLAGS (\\Seen) MODSEQ (%llu))\r\n* OK [HIGHESTMODSEQ %llu] Highest\r\nf OK Store completed.\r\n", h + 2, h);
	expect(&a, "n NOOP\r\n", "n ", "* VANISHED 3\r\nn OK NOOP completed.\r\n");
	/* nothing pending any more: no HIGHESTMODSEQ after this one */
	expectf(&a, "f2 STORE 1 -FLAGS (\\Seen)\r\n", "f2 ", "* 1 FETCH (UID 1 FLAGS () MODSEQ (%llu))\r\nf2 OK Store completed.\r\n", h + 3);
	/* a program removes a file: VANISHED at the next sync */
	char *cmd = rg_strdup_printf("rm '%s'/cur/5000.m5.host*", f->md);
	assert_int_equal(system(cmd), 0);
	rg_free(cmd);
	expect(&a, "n2 NOOP\r\n", "n2 ", "* VANISHED 5\r\nn2 OK NOOP completed.\r\n");
	expect(&d, "n NOOP\r\n", "n ", "* 4 EXPUNGE\r\nn OK NOOP completed.\r\n");
	/* without QRESYNC the VANISHED modifier is BAD */
	expect(&d, "u UID FETCH 1 (FLAGS) (CHANGEDSINCE 1 VANISHED)\r\n", "u ",
	       "u BAD Error in IMAP command UID FETCH: QRESYNC not enabled.\r\n");
	finish(&a);
	finish(&d);
}

/* a STORE on a message another session changed meanwhile: the flags it
 * did not set are shown even with .SILENT (the client has not seen them),
 * and a modseq that moved under equal flags reaches the client at the next
 * sync, so both sessions agree on every message's MODSEQ */
static void test_concurrent_flags(void **state)
{
	struct fixture *f = *state;
	struct worker_proc a = start(f, "a");
	struct worker_proc b = start(f, "b");
	rg_free((wh_send(&a, "s SELECT INBOX\r\n"), wh_read_until_line(&a, "s ")));
	expect(&b, "e ENABLE CONDSTORE\r\n", "e ", "* ENABLED CONDSTORE\r\ne OK Enabled.\r\n");
	unsigned long long h;
	char *got = select_tail(&b, "s SELECT INBOX\r\n", "s ", NULL, &h);
	rg_free(got);
	expectf(&b, "t STORE 1 +FLAGS.SILENT (\\Answered)\r\n", "t ",
		"* 1 FETCH (MODSEQ (%llu))\r\nt OK Store completed.\r\n", h + 1);
	/* a has not synced: its .SILENT store still shows b's \Answered */
	expect(&a, "t STORE 1 +FLAGS.SILENT (\\Flagged)\r\n", "t ",
	       "* 1 FETCH (FLAGS (\\Answered \\Flagged))\r\nt OK Store completed.\r\n");
	/* b sets \Seen (a new modseq); a, not synced, asks for the same:
	 * nothing renamed, so a gives it no modseq of its own */
	expect(&a, "e ENABLE CONDSTORE\r\n", "e ", "* ENABLED CONDSTORE\r\ne OK Enabled.\r\n");
	rg_free((wh_send(&b, "u STORE 2 +FLAGS (\\Seen)\r\n"), wh_read_until_line(&b, "u ")));
	rg_free((wh_send(&a, "u STORE 2 +FLAGS (\\Seen)\r\n"), wh_read_until_line(&a, "u ")));
	rg_free((wh_send(&a, "n NOOP\r\n"), wh_read_until_line(&a, "n ")));
	rg_free((wh_send(&b, "n NOOP\r\n"), wh_read_until_line(&b, "n ")));
	wh_send(&a, "w FETCH 1:5 (MODSEQ)\r\n");
	char *ga = wh_read_until_line(&a, "w ");
	wh_send(&b, "w FETCH 1:5 (MODSEQ)\r\n");
	char *gb = wh_read_until_line(&b, "w ");
	assert_string_equal(ga, gb);
	rg_free(ga);
	rg_free(gb);
	finish(&a);
	finish(&b);
}

/* every malformed parameter is BAD and the session goes on */
static void test_bad(void **state)
{
	struct fixture *f = *state;
	struct worker_proc a = start(f, "a");
	expect(&a, "e ENABLE QRESYNC\r\n", "e ", "* ENABLED QRESYNC\r\ne OK Enabled.\r\n");
	static const struct {
		const char *params, *error;
	} sel[] = {
		{ "(QRESYNC)", "Unknown select parameter" },
		{ "(QRESYNC 1)", "Invalid QRESYNC parameters" },
		{ "(QRESYNC ())", "Invalid QRESYNC parameters" },
		{ "(QRESYNC (1))", "Invalid QRESYNC parameters" },
		{ "(QRESYNC (x 1))", "Invalid QRESYNC parameters" },
		{ "(QRESYNC (0 1))", "Invalid QRESYNC parameters" },
		{ "(QRESYNC (1 -1))", "Invalid QRESYNC parameters" },
		{ "(QRESYNC (1 99999999999999999999))", "Invalid QRESYNC parameters" },
		{ "(QRESYNC (1 9223372036854775808))", "Invalid QRESYNC parameters" },
		{ "(QRESYNC (1 1 1:x))", "Invalid QRESYNC parameters" },
		{ "(QRESYNC (1 1 1:3 1:3))", "Invalid QRESYNC parameters" },
		{ "(QRESYNC (1 1 1:3 (1:3)))", "Invalid QRESYNC parameters" },
		{ "(QRESYNC (1 1 1:3 (1:2 1)))", "QRESYNC sequence match data sets differ in size" },
		{ "(QRESYNC (1 1 1:3 (1 1) x))", "Invalid QRESYNC parameters" },
		{ "(QRESYNC (1 1) QRESYNC (1 1))", "Unknown select parameter" },
		{ "(CONDSTORE CONDSTORE)", "Unknown select parameter" },
		{ "(FOO)", "Unknown select parameter" },
		{ "()", "Invalid arguments" },
		{ "QRESYNC", "Invalid arguments" },
	};
	for (size_t i = 0; i < sizeof(sel) / sizeof(sel[0]); i++) {
		char cmd[128], want[256];
		snprintf(cmd, sizeof(cmd), "b%zu SELECT INBOX %s\r\n", i, sel[i].params);
		snprintf(want, sizeof(want), "b%zu BAD Error in IMAP command SELECT: %s.\r\n", i, sel[i].error);
		char tag[16];
		snprintf(tag, sizeof(tag), "b%zu ", i);
		expect(&a, cmd, tag, want);
		if (i % 8 == 7) /* a good command resets the bad-command count */
			expect(&a, "n NOOP\r\n", "n ", "n OK NOOP completed.\r\n");
	}
	rg_free((wh_send(&a, "s SELECT INBOX\r\n"), wh_read_until_line(&a, "s ")));
	static const struct {
		const char *cmd, *error;
	} fetch[] = {
		{ "FETCH 1 (FLAGS) (CHANGEDSINCE 1 VANISHED)", "FETCH: VANISHED only with UID FETCH." },
		{ "UID FETCH 1 (FLAGS) (VANISHED)", "UID FETCH: VANISHED used without CHANGEDSINCE." },
		{ "UID FETCH 1 (FLAGS) (CHANGEDSINCE 1 VANISHED VANISHED)", "UID FETCH: Invalid modifier." },
		{ "UID FETCH 1 (FLAGS) (CHANGEDSINCE 1 CHANGEDSINCE 2)", "UID FETCH: Invalid modifier." },
		{ "UID FETCH 1 (FLAGS) (CHANGEDSINCE)", "UID FETCH: Invalid modifier." },
		{ "UID FETCH 1 (FLAGS) (CHANGEDSINCE 1x)", "UID FETCH: Invalid modifier." },
		{ "UID FETCH 1 (FLAGS) ()", "UID FETCH: Invalid modifier." },
		{ "UID FETCH 1 (FLAGS) (EARLIER)", "UID FETCH: Invalid modifier." },
	};
	for (size_t i = 0; i < sizeof(fetch) / sizeof(fetch[0]); i++) {
		char cmd[128], want[256], tag[16];
		snprintf(cmd, sizeof(cmd), "f%zu %s\r\n", i, fetch[i].cmd);
		snprintf(want, sizeof(want), "f%zu BAD Error in IMAP command %s\r\n", i, fetch[i].error);
		snprintf(tag, sizeof(tag), "f%zu ", i);
		expect(&a, cmd, tag, want);
	}
	/* still selected, still working */
	expect(&a, "g FETCH 1 (UID)\r\n", "g ", "* 1 FETCH (UID 1)\r\ng OK Fetch completed.\r\n");
	finish(&a);
}

/* ---- the core in memory, at every byte split ---- */

struct capture {
	char *data;
	size_t len, size;
};

static void capture_send(void *ctx, const void *data, size_t len)
{
	struct capture *c = ctx;
	if (c->len + len + 1 > c->size) {
		c->size = (c->len + len + 1) * 2;
		c->data = rg_realloc(c->data, c->size);
	}
	memcpy(c->data + c->len, data, len);
	c->len += len;
	c->data[c->len] = '\0';
}

static const char core_script[] =
	"a ENABLE QRESYNC\r\n"
	"b SELECT {5}\r\nINBOX (QRESYNC (77 10 1:4))\r\n"
	"c UID FETCH 1:* (FLAGS) (CHANGEDSINCE 11 VANISHED)\r\n"
	"d UID FETCH 1:* (FLAGS) (VANISHED)\r\n"
	"e EXAMINE INBOX (QRESYNC (77 1 1:4 (1:2 1,3)))\r\n"
	"f SELECT INBOX (QRESYNC (77 1 1:4 (1:2 1)))\r\n"
	"g SELECT INBOX (QRESYNC (77 1 1:4 ({3}\r\n1:2 1,3)))\r\n"
	"h LOGOUT\r\n";

/* uids 1 and 3 exist; the table remembers 2 gone at 10 and 4 at 12 */
static void fill_core(struct fixture *f)
{
	wh_rm_rf(f->md);
	wh_put_msg(f->md, "cur", "1000.a.host:2,", "Subject: a\n\nx\n", 1000);
	wh_put_msg(f->md, "cur", "3000.c.host:2,S", "Subject: c\n\ny\n", 3000);
	static const char *const files[][2] = {
		{ "ringgate-uidlist", "1 V77 N5 R5\n1 1000.a.host\n3 3000.c.host\n" },
		{ "ringgate-modseq", "1 H20 E5 U5\n1 6 \n3 7 S\nX2 2 10\nX4 4 12\n" },
	};
	for (size_t i = 0; i < 2; i++) {
		char *path = rg_strdup_printf("%s/%s", f->md, files[i][0]);
		FILE *fl = fopen(path, "w");
		assert_non_null(fl);
		fputs(files[i][1], fl);
		fclose(fl);
		rg_free(path);
	}
}

static char *run_core(struct fixture *f, size_t split, bool bytewise)
{
	fill_core(f);
	struct capture cap = { 0 };
	struct imap_client *client = imap_client_create(f->md, capture_send, &cap);
	const uint8_t *s = (const uint8_t *)core_script;
	size_t len = sizeof(core_script) - 1;
	bool running = true;
	if (bytewise) {
		for (size_t i = 0; i < len && running; i++)
			running = imap_client_input(client, s + i, 1);
	} else {
		running = imap_client_input(client, s, split);
		if (running)
			running = imap_client_input(client, s + split, len - split);
	}
	assert_false(running);
	imap_client_destroy(client);
	return cap.data;
}

static void test_core_every_split(void **state)
{
	struct fixture *f = *state;
	char *whole = run_core(f, 0, false);
	if (getenv("SHOW") != NULL)
		fputs(whole, stderr);
	assert_non_null(strstr(whole, "* ENABLED QRESYNC\r\na OK Enabled.\r\n"));
	/* changes since 10 among 1:4: uid 4 gone at 12; nothing changed;
	 * "*" in UID FETCH's VANISHED set reaches past the last message */
	assert_non_null(strstr(whole, "* OK [HIGHESTMODSEQ 20] Highest\r\n* VANISHED (EARLIER) 4\r\n"
				      "b OK [READ-WRITE] Select completed.\r\n"));
	assert_non_null(strstr(whole, "\r\n* VANISHED (EARLIER) 4\r\nc OK Fetch completed.\r\n"));
	assert_non_null(strstr(whole, "d BAD Error in IMAP command UID FETCH: VANISHED used without CHANGEDSINCE.\r\n"));
	/* below the floor (5): every missing UID, but the client's seqs 1:2
	 * are still uids 1,3: nothing at or below 3 went */
	assert_non_null(strstr(whole, "* OK [CLOSED] Previous mailbox closed.\r\n* FLAGS"));
	assert_non_null(strstr(whole, "* 1 FETCH (UID 1 FLAGS () MODSEQ (6))\r\n* 2 FETCH (UID 3 FLAGS (\\Seen) MODSEQ (7))\r\n"
				      "e OK [READ-ONLY]"));
	assert_non_null(strstr(whole, "] Highest\r\n* VANISHED (EARLIER) 4\r\n* 1 FETCH"));
	assert_non_null(strstr(whole, "f BAD Error in IMAP command SELECT: QRESYNC sequence match data sets differ in size.\r\n"));
	/* a sequence set is an atom, never a literal */
	assert_non_null(strstr(whole, "+ OK\r\ng BAD Error in IMAP command SELECT: Invalid QRESYNC parameters.\r\n"));
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
		cmocka_unit_test_setup_teardown(test_qresync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_flags, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad, setup, teardown),
		cmocka_unit_test_setup_teardown(test_core_every_split, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
