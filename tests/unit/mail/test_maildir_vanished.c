/* QRESYNC's expunge modseqs in ringgate-modseq (RFC 7162 3.2: an expunge
 * raises the mailbox's modseq and that modseq is kept with the UIDs):
 * exact answers above the floor, the all-missing-UIDs superset below it,
 * the bound on kept records, and tables from before expunge tracking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/alloc.h"
#include "mail/maildir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *setup_box(unsigned int nmsgs)
{
	char tmpl[] = "/tmp/rg-vanished-XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	char *path = rg_strdup_printf("%s/Maildir", tmpl);
	assert_int_equal(maildir_create(path), 0);
	for (unsigned int i = 1; i <= nmsgs; i++) {
		char *file = rg_strdup_printf("%s/cur/%u.m%u.host:2,", path, 1000 + i, i);
		FILE *f = fopen(file, "w");
		assert_non_null(f);
		fprintf(f, "Subject: %u\n\nbody\n", i);
		fclose(f);
		rg_free(file);
		/* arrival order = name order: distinct mtimes */
		char *cmd = rg_strdup_printf("touch -d @%u '%s/cur/%u.m%u.host:2,'", 1000 + i, path, 1000 + i, i);
		assert_int_equal(system(cmd), 0);
		rg_free(cmd);
	}
	return path;
}

static void teardown_box(char *path)
{
	char *dir = rg_strdup(path);
	*strrchr(dir, '/') = '\0';
	char *cmd = rg_strdup_printf("rm -rf '%s'", dir);
	rg_free(dir);
	assert_int_equal(system(cmd), 0);
	rg_free(cmd);
	rg_free(path);
}

static struct maildir *open_box(const char *path)
{
	struct maildir *box;
	const char *error;
	assert_int_equal(maildir_open(path, false, &box, &error), 0);
	return box;
}

/* unlink the files of uids (0-terminated), as one EXPUNGE would */
static void expunge_uids(const char *path, const uint32_t *uids)
{
	struct maildir *box = open_box(path);
	for (; *uids != 0; uids++) {
		ssize_t idx = maildir_find_uid(box, *uids);
		assert_true(idx >= 0);
		assert_int_equal(maildir_msg_delete(box, (size_t)idx), 0);
	}
	maildir_close(box);
}

static void expunge_uid(const char *path, uint32_t uid)
{
	expunge_uids(path, (const uint32_t[]){ uid, 0 });
}

/* the answer for since over 1:hi, as "a:b,c" */
static char *vanished(const struct maildir *box, uint64_t since, uint32_t hi)
{
	struct maildir_uid_range all = { 1, hi }, *r;
	size_t n;
	maildir_vanished_since(box, since, &all, 1, &r, &n);
	char *s = rg_strdup("");
	for (size_t i = 0; i < n; i++) {
		char *t = r[i].lo == r[i].hi ? rg_strdup_printf("%s%s%u", s, i ? "," : "", r[i].lo)
					      : rg_strdup_printf("%s%s%u:%u", s, i ? "," : "", r[i].lo, r[i].hi);
		rg_free(s);
		s = t;
	}
	rg_free(r);
	return s;
}

static void assert_vanished_upto(const struct maildir *box, uint64_t since, uint32_t hi, const char *want)
{
	char *got = vanished(box, since, hi);
	assert_string_equal(got, want);
	rg_free(got);
}

static void assert_vanished(const struct maildir *box, uint64_t since, const char *want)
{
	assert_vanished_upto(box, since, UINT32_MAX, want);
}

/* the file of the message with uid */
static char *msg_file(const char *path, uint32_t uid)
{
	struct maildir *box = open_box(path);
	ssize_t idx = maildir_find_uid(box, uid);
	assert_true(idx >= 0);
	char *file = rg_strdup_printf("%s/cur/%s", path, box->msgs[idx].name);
	maildir_close(box);
	return file;
}

static void test_expunge_modseqs(void **state)
{
	(void)state;
	char *path = setup_box(6);
	struct maildir *box = open_box(path);
	uint64_t h0 = box->highest_modseq;
	assert_int_equal(box->count, 6);
	/* a fresh table knows nothing from before it: its start */
	assert_true(box->vanished_floor == h0 - 6);
	maildir_close(box);

	expunge_uid(path, 2);
	box = open_box(path);
	uint64_t h1 = box->highest_modseq;
	assert_true(h1 == h0 + 1); /* the expunge raised it */
	assert_vanished(box, h0, "2");
	assert_vanished(box, h1, "");
	maildir_close(box);

	expunge_uids(path, (const uint32_t[]){ 4, 5, 0 });
	box = open_box(path);
	uint64_t h2 = box->highest_modseq;
	assert_true(h2 == h1 + 1); /* one sync, one modseq */
	assert_vanished(box, h0, "2,4:5");
	assert_vanished(box, h1, "4:5");
	assert_vanished(box, h2, "");
	/* below the floor: every UID that is not there */
	assert_vanished(box, h0 - 1, "2,4:5");
	/* limited to the set asked for */
	struct maildir_uid_range set[2] = { { 1, 2 }, { 5, 9 } }, *r;
	size_t n;
	maildir_vanished_since(box, h0, set, 2, &r, &n);
	assert_int_equal(n, 2);
	assert_int_equal(r[0].lo, 2);
	assert_int_equal(r[0].hi, 2);
	assert_int_equal(r[1].lo, 5);
	assert_int_equal(r[1].hi, 5);
	rg_free(r);
	maildir_close(box);

	/* a UID handed out and gone before any open saw its file counts
	 * too: APPEND registers it, another program removes it */
	uint32_t uid = 0, uidv = 0;
	const char *error;
	assert_int_equal(maildir_save(path, "Subject: saved\n\nx\n", 18, "", 0, &uid, &uidv, &error), 0);
	assert_int_equal(uid, 7);
	uint32_t uid2 = 0;
	assert_int_equal(maildir_save(path, "Subject: saved\n\ny\n", 18, "", 0, &uid2, &uidv, &error), 0);
	char *file = msg_file(path, 8); /* this open records 7 and 8 */
	assert_int_equal(unlink(file), 0);
	rg_free(file);
	/* 8 was seen by an open: an expunge; 9 never was: gone since U */
	uint32_t uid3 = 0;
	assert_int_equal(maildir_save(path, "Subject: saved\n\nz\n", 18, "", 0, &uid3, &uidv, &error), 0);
	assert_int_equal(uid3, 9);
	box = open_box(path);
	file = rg_strdup_printf("%s/cur/%s", path, box->msgs[box->count - 1].name);
	maildir_close(box);
	assert_int_equal(unlink(file), 0);
	rg_free(file);
	box = open_box(path);
	uint64_t h3 = box->highest_modseq;
	maildir_close(box);
	/* the open that listed 9 gave it a modseq: it was in the table */
	uint32_t uid4 = 0;
	assert_int_equal(maildir_save(path, "Subject: saved\n\nw\n", 18, "", 0, &uid4, &uidv, &error), 0);
	assert_int_equal(uid4, 10);
	/* remove 10 by its name without opening: find it in cur/ by content */
	char *cmd = rg_strdup_printf("grep -l '^w$' '%s'/cur/* | xargs rm", path);
	assert_int_equal(system(cmd), 0);
	rg_free(cmd);
	box = open_box(path);
	assert_true(box->highest_modseq == h3 + 1);
	assert_vanished(box, h3, "10");
	assert_vanished(box, h2, "8:10");
	maildir_close(box);
	teardown_box(path);
}

static void write_table(const char *path, const char *text)
{
	char *file = rg_strdup_printf("%s/%s", path, MAILDIR_MODSEQ_NAME);
	FILE *f = fopen(file, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	rg_free(file);
}

static char *read_table(const char *path)
{
	char *file = rg_strdup_printf("%s/%s", path, MAILDIR_MODSEQ_NAME);
	FILE *f = fopen(file, "r");
	assert_non_null(f);
	char *buf = rg_malloc(1 << 20);
	size_t n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	rg_free(file);
	return buf;
}

/* at most MAILDIR_VANISHED_MAX records: the oldest go, the floor rises
 * to their modseq and questions below it get the superset */
static void test_bounded(void **state)
{
	(void)state;
	/* MAX records of single UIDs: written directly (as MAX syncs that
	 * each expunged one would leave it), the UIDs between never used */
	char *path = setup_box(3);
	struct maildir *box = open_box(path);
	maildir_close(box);
	/* uids 1..3 exist; pretend uids 4.. were given out and expunged
	 * one by one: raise N in the uid list and write the records */
	char *list = rg_strdup_printf("%s/%s", path, MAILDIR_UIDLIST_NAME);
	FILE *f = fopen(list, "r");
	assert_non_null(f);
	char header[128];
	assert_non_null(fgets(header, sizeof(header), f));
	char rest[4096];
	size_t rn = fread(rest, 1, sizeof(rest) - 1, f);
	rest[rn] = '\0';
	fclose(f);
	unsigned int v;
	assert_int_equal(sscanf(header, "1 V%u", &v), 1);
	uint32_t next = 4 + 2 * MAILDIR_VANISHED_MAX;
	f = fopen(list, "w");
	fprintf(f, "1 V%u N%u R%u\n%s", v, next, next, rest);
	fclose(f);
	rg_free(list);
	/* records X(4+2k) at modseq 10+k, the uids between never existed */
	size_t cap = 64 * MAILDIR_VANISHED_MAX + 4096;
	char *t = rg_malloc(cap);
	uint64_t top = 10 + MAILDIR_VANISHED_MAX;
	int len = snprintf(t, cap, "1 H%llu E5 U%u\n1 1 \n2 2 \n3 3 \n", (unsigned long long)top, next);
	for (unsigned int k = 0; k < MAILDIR_VANISHED_MAX; k++)
		len += snprintf(t + len, cap - (size_t)len, "X%u %u %u\n", 4 + 2 * k, 4 + 2 * k, 10 + k);
	write_table(path, t);
	rg_free(t);
	/* messages in the table keep modseqs <= 3, below every record */
	box = open_box(path);
	assert_int_equal(box->vanished_count, MAILDIR_VANISHED_MAX);
	assert_true(box->vanished_floor == 5);
	assert_vanished(box, top - 2, "2050");
	assert_vanished_upto(box, 5, 9, "4,6,8");
	maildir_close(box);

	/* one more expunge (uid 2): the oldest record (uid 4, modseq 10) goes */
	expunge_uid(path, 2);
	box = open_box(path);
	assert_int_equal(box->vanished_count, MAILDIR_VANISHED_MAX);
	assert_true(box->vanished_floor == 10);
	assert_true(box->highest_modseq == top + 1);
	assert_vanished(box, top, "2");
	assert_vanished_upto(box, 10, 9, "2,6,8");
	struct maildir_uid_range set = { 1, 8 }, *r;
	size_t n;
	/* below the floor: all missing UIDs (here 2 and 4:8 ... of the set) */
	maildir_vanished_since(box, 9, &set, 1, &r, &n);
	assert_int_equal(n, 2);
	assert_int_equal(r[0].lo, 2);
	assert_int_equal(r[0].hi, 2);
	assert_int_equal(r[1].lo, 4);
	assert_int_equal(r[1].hi, 8);
	rg_free(r);
	maildir_close(box);
	char *now = read_table(path);
	assert_non_null(strstr(now, " E10 "));
	assert_null(strstr(now, "\nX4 4 10\n"));
	assert_non_null(strstr(now, "\nX6 6 11\n"));
	rg_free(now);
	teardown_box(path);
}

/* a table from before expunge tracking ("1 H<n>" only) and one with a
 * broken record */
static void test_old_and_corrupt(void **state)
{
	(void)state;
	char *path = setup_box(3);
	struct maildir *box = open_box(path);
	maildir_close(box);
	write_table(path, "1 H40\n1 1 \n2 2 \n3 3 \n");
	expunge_uid(path, 3);
	box = open_box(path);
	/* nothing before 40 is known; the expunge is 41 */
	assert_true(box->vanished_floor == 40);
	assert_true(box->highest_modseq == 41);
	assert_vanished(box, 40, "3");
	assert_vanished(box, 39, "3");
	maildir_close(box);
	char *t = read_table(path);
	assert_string_equal(t, "1 H41 E40 U4\n1 1 \n2 2 \nX3 3 41\n");
	rg_free(t);

	/* records out of modseq order, above the highest, or reversed: the
	 * table is rebuilt from the clock, everything before it forgotten */
	static const char *const bad[] = {
		"1 H50 E40 U4\n1 1 \n2 2 \nX3 3 45\nX4 4 44\n",
		"1 H50 E40 U4\n1 1 \n2 2 \nX3 3 51\n",
		"1 H50 E40 U4\n1 1 \n2 2 \nX5 3 45\n",
		"1 H50 E40 U4\n1 1 \n2 2 \nX3 3 39\n",
		"1 H50 E60 U4\n1 1 \n2 2 \n",
		"1 H50 E40 Q4\n1 1 \n2 2 \n",
		"1 H50 E40 U4\n1 1 \n2 2 \nX3 3\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_table(path, bad[i]);
		box = open_box(path);
		assert_true(box->highest_modseq > 1000000);
		assert_true(box->vanished_floor >= box->highest_modseq - 2);
		assert_int_equal(box->vanished_count, 0);
		maildir_close(box);
	}
	teardown_box(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_expunge_modseqs),
		cmocka_unit_test(test_bounded),
		cmocka_unit_test(test_old_and_corrupt),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
