/* Dovecot's mbox metadata (mail/mbox.h): parsing X-IMAPbase, X-UID,
 * Status, X-Status, X-Keywords and the From line's date; the scanner on
 * every prefix of a spool (a file cut at each byte: a delivery half
 * written, a truncated copy); bad values; mbox_rewrite() writing the
 * metadata back byte for byte as Dovecot 2.3 writes it, moving X-IMAPbase,
 * leaving a pseudo message; mbox_create(). Real temp files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/alloc.h"
#include "mail/maildir.h"
#include "mail/mbox.h"
#include "mbox-test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* pseudo-less spool as Dovecot writes it, plus a delivery, a CRLF message
 * with a folded X-Keywords and ">From" quoting */
#define S_M1 "From alice@example.com Mon Dec  7 10:00:00 2026\n" \
	"Subject: one\n" \
	"X-IMAPbase: 1796658136 0000000005 kw1 $Junk\n" \
	"X-UID: 4                \n" \
	"Status: RO\n" \
	"X-Status: AF\n" \
	"X-Keywords: kw1\n" \
	"\n" \
	"body1\n" \
	">From quoted\n" \
	"\n"
#define S_M2 "From bob@example.com Mon Dec  7 11:00:00 2026 +0100\n" \
	"Subject: two\n" \
	"\n" \
	"Hello two\n" \
	"\n"
#define S_M3 "From carol@example.com Mon Dec  7 12:00:00 2026\r\n" \
	"Subject: three\r\n" \
	"X-UID: 5\r\n" \
	"X-Keywords: $Junk\r\n" \
	"  kw1\r\n" \
	"X-Status: TD\r\n" \
	"\r\n" \
	"line\r\n" \
	"From here not a separator\r\n"
#define SPOOL S_M1 S_M2 S_M3

static void write_file(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static time_t utc(int y, int mon, int d, int h, int mi, int s)
{
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mon - 1, .tm_mday = d, .tm_hour = h,
			 .tm_min = mi, .tm_sec = s };
	return timegm(&tm);
}

static void test_metadata(void **state)
{
	struct fixture *f = *state;
	write_file(f->path, SPOOL, strlen(SPOOL));
	struct mbox *box = open_ok(f->path);
	assert_int_equal(box->count, 3);
	assert_false(box->pseudo);
	assert_int_equal(box->uidvalidity, 1796658136);
	assert_int_equal(box->last_uid, 5);
	assert_string_equal(box->base_keywords, "kw1 $Junk");
	const struct mbox_msg *m = box->msgs;
	assert_int_equal(m[0].uid, 4);
	assert_string_equal(m[0].status, "RO");
	assert_string_equal(m[0].xstatus, "AF");
	assert_string_equal(m[0].keywords, "kw1");
	assert_int_equal(m[0].date, utc(2026, 12, 7, 10, 0, 0));
	assert_int_equal(m[1].uid, 0);
	assert_string_equal(m[1].status, "");
	assert_null(m[1].keywords);
	assert_int_equal(m[1].date, utc(2026, 12, 7, 10, 0, 0)); /* 11:00 +0100 */
	assert_int_equal(m[2].uid, 5);
	assert_string_equal(m[2].xstatus, "TD");
	/* a folded X-Keywords is one list */
	assert_string_equal(m[2].keywords, "$Junk kw1");
	/* the header ends at its blank line: what a rewrite puts the metadata before */
	assert_int_equal(m[0].hdr_end, strstr(SPOOL, "\n\nbody1") + 1 - SPOOL);
	mbox_close(box);
}

/* Every prefix of the spool scans: the messages complete in it come out
 * as in the whole file, each read is as long as its size says. */
static void test_every_prefix(void **state)
{
	struct fixture *f = *state;
	const char *text = SPOOL;
	size_t len = strlen(text);
	write_file(f->path, text, len);
	struct mbox *full = open_ok(f->path);
	for (size_t cut = 0; cut <= len; cut++) {
		write_file(f->path, text, cut);
		struct mbox *box = NULL;
		const char *error;
		int ret = mbox_open(f->path, 1000, &box, &error);
		if (cut > 0 && cut < 5) {
			/* not even a From line yet */
			assert_int_equal(ret, -EINVAL);
			continue;
		}
		assert_int_equal(ret, 0);
		assert_true(box->count <= full->count);
		for (size_t i = 0; i < box->count; i++) {
			const struct mbox_msg *a = &box->msgs[i], *b = &full->msgs[i];
			assert_int_equal(a->from_offset, b->from_offset);
			char *data;
			size_t dlen;
			assert_int_equal(mbox_msg_read(box, i, &data, &dlen), 0);
			assert_int_equal(a->vsize, maildir_crlf_size(data, dlen));
			rg_free(data);
			/* a message whose header is whole has all its metadata */
			if (cut > b->hdr_end) {
				assert_int_equal(a->uid, b->uid);
				assert_string_equal(a->status, b->status);
				assert_string_equal(a->xstatus, b->xstatus);
				assert_true((a->keywords == NULL) == (b->keywords == NULL));
			}
			/* and its end once the blank line is whole ("\r" alone is none) */
			if (cut >= b->hdr_end + 2)
				assert_int_equal(a->hdr_end, b->hdr_end);
			if (i + 1 < box->count || cut == len)
				assert_int_equal(a->end_offset, b->end_offset);
		}
		if (cut == len)
			assert_int_equal(box->count, full->count);
		mbox_close(box);
	}
	mbox_close(full);
}

static void test_bad_values(void **state)
{
	struct fixture *f = *state;
	/* numbers out of range, garbage, controls: no value, not a crash */
	const char *text =
		"From a@b not a date at all\n"
		"X-IMAPbase: x y\n"
		"X-UID: 99999999999\n"
		"Status: R\001o O R\n"
		"X-Keywords: a\001b \t c\n"
		"\n"
		"x\n"
		"\n"
		"From c@d Mon Dec  7 10:00:00 2026 -0130\n"
		"X-UID: -3\n"
		"\n";
	write_file(f->path, text, strlen(text));
	struct mbox *box = open_ok(f->path);
	assert_int_equal(box->count, 2);
	assert_int_equal(box->uidvalidity, 0);
	assert_null(box->base_keywords);
	assert_int_equal(box->msgs[0].date, 0);
	assert_int_equal(box->msgs[0].uid, 0);
	assert_string_equal(box->msgs[0].status, "RO");
	assert_string_equal(box->msgs[0].keywords, "a b c");
	assert_int_equal(box->msgs[1].date, utc(2026, 12, 7, 11, 30, 0));
	mbox_close(box);

	/* a huge header line */
	size_t big = 300000;
	char *huge = rg_malloc(big + 128);
	int n = sprintf(huge, "From a Mon Dec  7 10:00:00 2026\nX-Keywords: ");
	memset(huge + n, 'k', big);
	strcpy(huge + n + big, "\nX-UID: 3\n\nbody\n");
	write_file(f->path, huge, strlen(huge));
	box = open_ok(f->path);
	assert_int_equal(box->count, 1);
	assert_int_equal(strlen(box->msgs[0].keywords), big);
	assert_int_equal(box->msgs[0].uid, 3);
	mbox_close(box);
	rg_free(huge);
}

static void rewrite_ok(struct mbox *box, bool base_dirty)
{
	const char *error = NULL;
	int ret = mbox_rewrite(box, base_dirty, 1000, &error);
	if (ret < 0)
		fail_msg("mbox_rewrite: %s: %s", error, strerror(-ret));
}

static void test_rewrite(void **state)
{
	struct fixture *f = *state;
	write_file(f->path, SPOOL, strlen(SPOOL));
	struct mbox *box = open_ok(f->path);
	/* a UID and Status: O for the delivery, a flag change on the third */
	struct mbox_msg *m = &box->msgs[1];
	m->uid = 6;
	strcpy(m->status, "O");
	m->dirty = true;
	m = &box->msgs[2];
	strcpy(m->xstatus, "F");
	m->dirty = true;
	box->last_uid = 6;
	rewrite_ok(box, true);
	mbox_close(box);
	char *text = read_all(f->path);
	assert_string_equal(text,
			    "From alice@example.com Mon Dec  7 10:00:00 2026\n"
			    "Subject: one\n"
			    "X-IMAPbase: 1796658136 0000000006 kw1 $Junk\n"
			    "X-UID: 4\n"
			    "Status: RO\n"
			    "X-Status: AF\n"
			    "X-Keywords: kw1\n"
			    "\n"
			    "body1\n"
			    ">From quoted\n"
			    "\n"
			    "From bob@example.com Mon Dec  7 11:00:00 2026 +0100\n"
			    "Subject: two\n"
			    "X-UID: 6\n"
			    "Status: O\n"
			    "\n"
			    "Hello two\n"
			    "\n"
			    "From carol@example.com Mon Dec  7 12:00:00 2026\r\n"
			    "Subject: three\r\n"
			    "X-UID: 5\n"
			    "X-Status: F\n"
			    "X-Keywords: $Junk kw1\n"
			    "\r\n"
			    "line\r\n"
			    "From here not a separator\r\n");
	rg_free(text);

	/* the first message goes: X-IMAPbase moves to the next one */
	box = open_ok(f->path);
	box->msgs[0].expunge = true;
	rewrite_ok(box, false);
	mbox_close(box);
	box = open_ok(f->path);
	assert_int_equal(box->count, 2);
	assert_int_equal(box->uidvalidity, 1796658136);
	assert_int_equal(box->last_uid, 6);
	assert_string_equal(box->base_keywords, "kw1 $Junk");
	assert_int_equal(box->msgs[0].uid, 6);

	/* all go, while a delivery arrives: the pseudo message keeps the base */
	box->msgs[0].expunge = box->msgs[1].expunge = true;
	FILE *fp = fopen(f->path, "a");
	fputs("From new@example.com Mon Dec  7 13:00:00 2026\nSubject: new\n\nnew\n", fp);
	fclose(fp);
	rewrite_ok(box, false);
	mbox_close(box);
	box = open_ok(f->path);
	assert_true(box->pseudo);
	assert_int_equal(box->uidvalidity, 1796658136);
	assert_int_equal(box->last_uid, 6);
	assert_int_equal(box->count, 1);
	assert_int_equal(box->msgs[0].uid, 0);
	char *data;
	size_t len;
	assert_int_equal(mbox_msg_read(box, 0, &data, &len), 0);
	assert_string_equal(data, "Subject: new\n\nnew\n");
	rg_free(data);
	/* the pseudo message takes a new base; the message after it is untouched */
	box->last_uid = 7;
	rewrite_ok(box, true);
	mbox_close(box);
	box = open_ok(f->path);
	assert_int_equal(box->last_uid, 7);
	assert_int_equal(box->count, 1);
	mbox_close(box);
	text = read_all(f->path);
	assert_non_null(strstr(text, "\nX-IMAP: 1796658136 0000000007 kw1 $Junk\nStatus: RO\n\n"));
	assert_non_null(strstr(text, "\n\nFrom new@example.com Mon Dec  7 13:00:00 2026\nSubject: new\n\nnew\n"));
	rg_free(text);
}

/* a header cut off at the end of the file by a lone CR: the metadata goes
   before it, since the CR with its line end is the header's blank line */
static void test_rewrite_cut_cr(void **state)
{
	struct fixture *f = *state;
	static const char cut[] = "From b Mon Dec  7 11:00:00 2026\r\nSubject: b\r\n\r";
	write_file(f->path, cut, strlen(cut));
	struct mbox *box = open_ok(f->path);
	assert_int_equal(box->count, 1);
	box->uidvalidity = 77;
	box->msgs[0].uid = 1;
	box->msgs[0].dirty = true;
	box->last_uid = 1;
	rewrite_ok(box, true);
	mbox_close(box);
	char *text = read_all(f->path);
	assert_string_equal(text, "From b Mon Dec  7 11:00:00 2026\r\n"
				  "Subject: b\r\n"
				  "X-IMAPbase: 77 0000000001\n"
				  "X-UID: 1\n"
				  "\r\n");
	rg_free(text);
	box = open_ok(f->path);
	assert_int_equal(box->uidvalidity, 77);
	assert_int_equal(box->last_uid, 1);
	assert_int_equal(box->msgs[0].uid, 1);
	mbox_close(box);
}

static void test_create(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(mbox_create(f->path, 1234), 0);
	assert_int_equal(mbox_create(f->path, 1234), -EEXIST);
	struct mbox *box = open_ok(f->path);
	assert_int_equal(box->count, 0);
	assert_true(box->pseudo);
	assert_int_equal(box->uidvalidity, 1234);
	assert_int_equal(box->last_uid, 0);
	mbox_close(box);
	struct stat st;
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	unlink(f->path);
	assert_int_equal(mbox_create(f->path, 0), 0);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_size, 0);
}

/* APPEND through maildir.h on an "mbox:" path: the file is made on the
 * first save, the first message carries X-IMAPbase, later saves raise its
 * last UID in place (the padded digits) and append only */
static void test_save(void **state)
{
	struct fixture *f = *state;
	char *path = rg_strdup_printf("mbox:%s", f->path);
	uint32_t uid = 0, v1 = 0, v2 = 0;
	const char *error = NULL;
	assert_int_equal(maildir_save(path, "Subject: a\r\n\r\nx\r\n", 17, "S", 0, &uid, &v1, &error), 0);
	assert_int_equal(uid, 1);
	assert_true(v1 != 0);
	char *text = read_all(f->path);
	assert_int_equal(strncmp(text, "From MAILER-DAEMON ", 19), 0);
	char *want = rg_strdup_printf("\nSubject: a\nX-IMAPbase: %u 0000000001\nX-UID: 1\nStatus: R\n\nx\n\n", v1);
	assert_non_null(strstr(text, want));
	size_t first_len = strlen(text);
	rg_free(want);
	rg_free(text);
	assert_int_equal(maildir_save(path, "Subject: b\n\ny\n", 14, "", 0, &uid, &v2, &error), 0);
	assert_int_equal(uid, 2);
	assert_int_equal(v2, v1);
	text = read_all(f->path);
	assert_non_null(strstr(text, " 0000000002\nX-UID: 1\n"));
	assert_non_null(strstr(text + first_len, "\nSubject: b\nX-UID: 2\n\ny\n\n"));
	rg_free(text);
	struct maildir *box = NULL;
	assert_int_equal(maildir_open(path, false, &box, &error), 0);
	assert_int_equal(box->count, 2);
	assert_int_equal(box->msgs[0].uid, 1);
	assert_int_equal(box->msgs[1].uid, 2);
	assert_int_equal(box->uidnext, 3);
	assert_string_equal(box->msgs[0].flags, "S");
	maildir_close(box);
	rg_free(path);
}

/* Two sessions on one mbox: the second one's snapshot is stale after the
 * first one's rewrite (even a one-message file whose From line did not
 * move): its flush reads the file again and adds its change to the first
 * one's instead of writing over it. */
static void test_two_sessions(void **state)
{
	struct fixture *f = *state;
	const char *one = "From a Mon Dec  7 10:00:00 2026\nSubject: a\n\nx\n";
	for (int msgs = 1; msgs <= 2; msgs++) {
		char *text = rg_strdup_printf("%s%s", one, msgs == 2 ? "\nFrom b Mon Dec  7 11:00:00 2026\n\ny\n" : "");
		write_file(f->path, text, strlen(text));
		rg_free(text);
		char *path = rg_strdup_printf("mbox:%s", f->path);
		struct maildir *a, *b, *c;
		const char *error;
		assert_int_equal(maildir_open(path, true, &a, &error), 0);
		assert_int_equal(maildir_open(path, true, &b, &error), 0);
		assert_int_equal(maildir_msg_change_flags(a, 0, '+', "F"), 0);
		assert_int_equal(maildir_flush(a), 0);
		assert_int_equal(maildir_msg_change_flags(b, 0, '+', "S"), 0);
		assert_int_equal(maildir_flush(b), 0);
		assert_string_equal(b->msgs[0].flags, "FS");
		assert_int_equal(maildir_open(path, false, &c, &error), 0);
		assert_int_equal(c->count, (size_t)msgs);
		assert_string_equal(c->msgs[0].flags, "FS");
		maildir_close(c);
		if (msgs == 2) {
			/* a expunges the first; b, whose snapshot still has it, changes
			 * the second (written) and is told the first is gone; both
			 * expunging the same message is no error */
			assert_int_equal(maildir_msg_delete(a, 0), 0);
			assert_int_equal(maildir_flush(a), 0);
			assert_false(maildir_changed(a));
			assert_int_equal(maildir_msg_change_flags(b, 1, '+', "D"), 0);
			assert_int_equal(maildir_flush(b), 0);
			assert_true(maildir_changed(b));
			assert_int_equal(maildir_msg_delete(b, 0), 0);
			assert_int_equal(maildir_flush(b), 0);
			assert_int_equal(maildir_open(path, false, &c, &error), 0);
			assert_int_equal(c->count, 1);
			assert_string_equal(c->msgs[0].flags, "D");
			/* QRESYNC: UID 1 vanished since any older modseq, none since now */
			struct maildir_uid_range all = { 1, 10 }, *out;
			size_t nout;
			maildir_vanished_since(c, c->highest_modseq - 1, &all, 1, &out, &nout);
			assert_int_equal(nout, 1);
			assert_int_equal(out[0].lo, 1);
			assert_int_equal(out[0].hi, 1);
			rg_free(out);
			maildir_vanished_since(c, c->highest_modseq, &all, 1, &out, &nout);
			assert_int_equal(nout, 0);
			rg_free(out);
			maildir_close(c);
		}
		maildir_close(a);
		maildir_close(b);
		rg_free(path);
	}
}

int main(void)
{
	setenv("TZ", "UTC", 1);
	tzset();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_metadata, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_prefix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rewrite, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rewrite_cut_cr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_sessions, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
