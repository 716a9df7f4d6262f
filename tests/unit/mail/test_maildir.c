/* Maildir storage: scan, UID list stability, new/ -> cur/, flags, CRLF
 * sizes, concurrent sessions, mail_location. Works on real temp dirs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/alloc.h"
#include "mail/maildir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static char *make_tmpdir(void)
{
	char tmpl[] = "/tmp/rg-maildir-XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	return rg_strdup(tmpl);
}

static void rm_rf(const char *path)
{
	char *cmd = rg_strdup_printf("rm -rf '%s'", path);
	assert_int_equal(system(cmd), 0);
	rg_free(cmd);
}

/* write a message file at box/sub/name with the given mtime */
static void put_file(const char *box, const char *sub, const char *name, const char *body,
		     time_t mtime)
{
	char *path = rg_strdup_printf("%s/%s/%s", box, sub, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(body, f);
	assert_int_equal(fclose(f), 0);
	if (mtime != 0) {
		struct timeval tv[2] = { { mtime, 0 }, { mtime, 0 } };
		assert_int_equal(utimes(path, tv), 0);
	}
	rg_free(path);
}

static bool file_exists(const char *box, const char *sub, const char *name)
{
	char *path = rg_strdup_printf("%s/%s/%s", box, sub, name);
	bool ok = access(path, F_OK) == 0;
	rg_free(path);
	return ok;
}

static struct maildir *open_ok(const char *path, bool move_new)
{
	struct maildir *box;
	const char *error = NULL;
	int ret = maildir_open(path, move_new, &box, &error);
	if (ret != 0)
		fail_msg("maildir_open: %s: %s", error, strerror(-ret));
	return box;
}

/* a fresh Maildir in its own temp dir; drop_maildir() removes both */
static char *new_maildir(void)
{
	char *md = make_tmpdir();
	assert_int_equal(maildir_create(md), 0);
	return md;
}

static void drop_maildir(char *md)
{
	rm_rf(md);
	rg_free(md);
}

/* processes racing on one Maildir in the concurrency tests */
#define CHILDREN 4

/* run child(md, c) for c = 0..CHILDREN-1 in as many processes at once;
 * each must return 0 (else its value names the check that failed) */
static void run_children(int (*child)(const char *md, int c), const char *md)
{
	pid_t pids[CHILDREN];
	for (int c = 0; c < CHILDREN; c++) {
		pids[c] = fork();
		assert_true(pids[c] >= 0);
		if (pids[c] == 0)
			_exit(child(md, c));
	}
	for (int c = 0; c < CHILDREN; c++) {
		int status;
		assert_int_equal(waitpid(pids[c], &status, 0), pids[c]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
}

/* md holds count messages with UIDs 1..count: none handed out twice or
 * wasted */
static void assert_uids_dense(const char *md, size_t count)
{
	struct maildir *box = open_ok(md, false);
	assert_int_equal(box->count, count);
	assert_int_equal(box->uidnext, count + 1);
	for (size_t i = 0; i < box->count; i++)
		assert_int_equal(box->msgs[i].uid, i + 1);
	maildir_close(box);
}

static ssize_t find_base(const struct maildir *box, const char *base)
{
	for (size_t i = 0; i < box->count; i++) {
		if (strcmp(box->msgs[i].base, base) == 0)
			return (ssize_t)i;
	}
	return -1;
}

static void test_create_mode(void **state)
{
	(void)state;
	char *home = make_tmpdir();
	char *md = rg_strdup_printf("%s/a/b/Maildir", home);
	assert_int_equal(maildir_create(md), 0);
	assert_int_equal(maildir_create(md), 0); /* existing is fine */
	static const char *const subs[] = { "", "/cur", "/new", "/tmp" };
	for (size_t i = 0; i < 4; i++) {
		char *p = rg_strdup_printf("%s%s", md, subs[i]);
		struct stat st;
		assert_int_equal(stat(p, &st), 0);
		assert_true(S_ISDIR(st.st_mode));
		assert_int_equal(st.st_mode & 0777, 0700);
		rg_free(p);
	}
	/* a file in the way is an error, not a crash */
	char *file = rg_strdup_printf("%s/file", home);
	put_file(home, ".", "file", "x", 0);
	assert_int_equal(maildir_create(file), -ENOTDIR);
	rg_free(file);
	rg_free(md);
	rm_rf(home);
	rg_free(home);
}

static void test_scan_order_and_flags(void **state)
{
	(void)state;
	char *md = new_maildir();
	put_file(md, "new", "300.b.host", "third\n", 3000);
	put_file(md, "new", "100.a.host", "first\n", 1000);
	put_file(md, "cur", "200.c.host,S=7:2,SR", "second\n", 2000);
	put_file(md, "new", "300.a.host", "also third, name sorts first\n", 3000);
	put_file(md, "new", ".hidden", "ignored\n", 0);

	struct maildir *box = open_ok(md, false);
	assert_int_equal(box->count, 4);
	assert_true(box->uidvalidity != 0);
	assert_int_equal(box->uidnext, 5);
	/* UIDs follow (mtime, name) */
	assert_string_equal(box->msgs[0].base, "100.a.host");
	assert_string_equal(box->msgs[1].base, "200.c.host,S=7");
	assert_string_equal(box->msgs[2].base, "300.a.host");
	assert_string_equal(box->msgs[3].base, "300.b.host");
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(box->msgs[i].uid, i + 1);
	assert_true(box->msgs[0].in_new);
	assert_false(box->msgs[1].in_new);
	assert_string_equal(box->msgs[1].flags, "RS");
	assert_true(maildir_msg_has_flag(&box->msgs[1], MAILDIR_FLAG_SEEN));
	assert_false(maildir_msg_has_flag(&box->msgs[0], MAILDIR_FLAG_SEEN));
	assert_int_equal(box->msgs[0].size, 6);
	assert_int_equal(maildir_msg_mtime(box, 0), 1000);
	assert_int_equal(maildir_find_uid(box, 3), 2);
	assert_int_equal(maildir_find_uid(box, 9), -1);

	char *data;
	size_t len;
	assert_int_equal(maildir_msg_read(box, 1, &data, &len), 0);
	assert_int_equal(len, 7);
	assert_memory_equal(data, "second\n", 7);
	rg_free(data);
	/* no move without move_new */
	assert_true(file_exists(md, "new", "100.a.host"));
	maildir_close(box);
	drop_maildir(md);
}

static void test_uidlist_stable(void **state)
{
	(void)state;
	char *md = new_maildir();
	put_file(md, "new", "1.a", "a\n", 1000);
	put_file(md, "new", "2.b", "b\n", 2000);
	struct maildir *box = open_ok(md, false);
	uint32_t validity = box->uidvalidity;
	maildir_close(box);

	/* the list file has the documented format */
	char *list = rg_strdup_printf("%s/%s", md, MAILDIR_UIDLIST_NAME);
	FILE *f = fopen(list, "r");
	assert_non_null(f);
	char text[256] = "";
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	char expect[256];
	snprintf(expect, sizeof(expect), "1 V%u N3 R3\n1 1.a\n2 2.b\n", validity);
	assert_string_equal(text, expect);

	/* a new message, older mtime than the others: still the next UID */
	put_file(md, "new", "0.c", "c\n", 500);
	box = open_ok(md, false);
	assert_int_equal(box->uidvalidity, validity);
	assert_int_equal(box->count, 3);
	assert_int_equal(box->msgs[find_base(box, "1.a")].uid, 1);
	assert_int_equal(box->msgs[find_base(box, "2.b")].uid, 2);
	assert_int_equal(box->msgs[find_base(box, "0.c")].uid, 3);
	/* delete uid 2 and reopen: UID 2 is never reused */
	assert_int_equal(maildir_msg_delete(box, 1), 0);
	assert_true(box->msgs[1].expunged);
	assert_int_equal(maildir_msg_delete(box, 1), 0);
	maildir_close(box);
	put_file(md, "new", "3.d", "d\n", 3000);
	box = open_ok(md, false);
	assert_int_equal(box->count, 3);
	assert_int_equal(box->msgs[0].uid, 1);
	assert_int_equal(box->msgs[1].uid, 3);
	assert_int_equal(box->msgs[2].uid, 4);
	assert_int_equal(box->uidnext, 5);
	maildir_close(box);

	/* a corrupt list: rebuilt with a new, different UIDVALIDITY */
	f = fopen(list, "w");
	fputs("garbage\n", f);
	fclose(f);
	box = open_ok(md, false);
	assert_true(box->uidvalidity != validity);
	assert_int_equal(box->count, 3);
	assert_int_equal(box->uidnext, 4);
	maildir_close(box);
	rg_free(list);
	drop_maildir(md);
}

static void test_move_new_and_flags(void **state)
{
	(void)state;
	char *md = new_maildir();
	put_file(md, "new", "1.a", "a\n", 1000);
	put_file(md, "new", "2.b:2,F", "b\n", 2000);
	struct maildir *box = open_ok(md, false);
	maildir_close(box);

	box = open_ok(md, true);
	assert_int_equal(box->count, 2);
	assert_int_equal(box->msgs[0].uid, 1);
	assert_int_equal(box->msgs[1].uid, 2);
	assert_false(box->msgs[0].in_new);
	assert_string_equal(box->msgs[0].name, "1.a:2,");
	assert_string_equal(box->msgs[1].name, "2.b:2,F");
	assert_true(file_exists(md, "cur", "1.a:2,"));
	assert_false(file_exists(md, "new", "1.a"));

	/* flags: sorted, deduplicated, by rename */
	assert_int_equal(maildir_msg_set_flags(box, 0, "TSFS"), 0);
	assert_string_equal(box->msgs[0].flags, "FST");
	assert_true(file_exists(md, "cur", "1.a:2,FST"));
	assert_false(file_exists(md, "cur", "1.a:2,"));
	assert_int_equal(maildir_msg_set_flags(box, 0, "FST"), 0); /* no-op */
	assert_int_equal(maildir_msg_set_flags(box, 0, ""), 0);
	assert_true(file_exists(md, "cur", "1.a:2,"));

	/* another session renamed the file behind our back: found again */
	char *from = rg_strdup_printf("%s/cur/2.b:2,F", md);
	char *to = rg_strdup_printf("%s/cur/2.b:2,FS", md);
	assert_int_equal(rename(from, to), 0);
	char *data;
	size_t len;
	assert_int_equal(maildir_msg_read(box, 1, &data, &len), 0);
	assert_memory_equal(data, "b\n", 2);
	rg_free(data);
	assert_string_equal(box->msgs[1].flags, "FS");
	assert_int_equal(maildir_msg_set_flags(box, 1, "D"), 0);
	assert_true(file_exists(md, "cur", "2.b:2,D"));
	/* ... and expunged behind our back: ENOENT */
	char *gone = rg_strdup_printf("%s/cur/2.b:2,D", md);
	assert_int_equal(unlink(gone), 0);
	assert_int_equal(maildir_msg_read(box, 1, &data, &len), -ENOENT);
	assert_int_equal(maildir_msg_set_flags(box, 1, "S"), -ENOENT);
	assert_int_equal(maildir_msg_delete(box, 1), 0);
	maildir_close(box);

	box = open_ok(md, false);
	assert_int_equal(box->count, 1);
	assert_int_equal(box->msgs[0].uid, 1);
	maildir_close(box);
	rg_free(gone);
	rg_free(from);
	rg_free(to);
	drop_maildir(md);
}

static void test_crlf(void **state)
{
	(void)state;
	assert_int_equal(maildir_crlf_size("", 0), 0);
	assert_int_equal(maildir_crlf_size("a\nb\r\nc", 6), 7);
	assert_int_equal(maildir_crlf_size("\n\n", 2), 4);
	assert_int_equal(maildir_crlf_size("\r\n", 2), 2);
	size_t len;
	char *out = maildir_to_crlf("\na\nb\r\n\rc\n", 9, &len);
	assert_int_equal(len, 12);
	assert_memory_equal(out, "\r\na\r\nb\r\n\rc\r\n", 12);
	rg_free(out);

	char *md = new_maildir();
	put_file(md, "cur", "1.a:2,S", "x\ny\n", 1000);
	put_file(md, "cur", "2.b,S=4,W=99:2,", "x\ny\n", 2000);
	struct maildir *box = open_ok(md, false);
	uint64_t vsize;
	assert_int_equal(maildir_msg_vsize(box, 0, &vsize), 0);
	assert_int_equal(vsize, 6);
	/* ",W=" in the name is trusted, as Dovecot does */
	assert_int_equal(maildir_msg_vsize(box, 1, &vsize), 0);
	assert_int_equal(vsize, 99);
	maildir_close(box);
	drop_maildir(md);
}

#define OPEN_ROUNDS 25

/* one session of test_concurrent_open: deliver, open, UIDs never change */
static int open_child(const char *md, int c)
{
	uint32_t seen[CHILDREN * OPEN_ROUNDS + 1] = { 0 };
	char names[CHILDREN * OPEN_ROUNDS + 1][32];
	size_t nseen = 0;
	for (int r = 0; r < OPEN_ROUNDS; r++) {
		char name[32];
		snprintf(name, sizeof(name), "%d.c%d.host", r, c);
		put_file(md, "new", name, "body\n", 0);
		struct maildir *box;
		const char *error;
		if (maildir_open(md, (r % 3) == 0, &box, &error) < 0)
			return 2;
		for (size_t i = 0; i < box->count; i++) {
			if (i > 0 && box->msgs[i].uid <= box->msgs[i - 1].uid)
				return 3;
			for (size_t k = 0; k < nseen; k++) {
				if (strcmp(names[k], box->msgs[i].base) == 0 &&
				    seen[k] != box->msgs[i].uid)
					return 4;
			}
		}
		/* remember this round's UIDs */
		for (size_t i = 0; i < box->count && nseen < CHILDREN * OPEN_ROUNDS; i++) {
			bool known = false;
			for (size_t k = 0; k < nseen && !known; k++)
				known = strcmp(names[k], box->msgs[i].base) == 0;
			if (!known) {
				snprintf(names[nseen], sizeof(names[nseen]), "%s", box->msgs[i].base);
				seen[nseen++] = box->msgs[i].uid;
			}
		}
		maildir_close(box);
	}
	return 0;
}

/* Several processes deliver and open at once: every message gets exactly
 * one UID, and a UID once seen never changes. */
static void test_concurrent_open(void **state)
{
	(void)state;
	char *md = new_maildir();
	run_children(open_child, md);
	assert_uids_dense(md, CHILDREN * OPEN_ROUNDS);
	drop_maildir(md);
}

static void set_dir_time(const char *md, const char *sub, time_t t)
{
	char *path = rg_strdup_printf("%s/%s", md, sub);
	struct timeval tv[2] = { { t, 0 }, { t, 0 } };
	assert_int_equal(utimes(path, tv), 0);
	rg_free(path);
}

static void test_save_copy(void **state)
{
	(void)state;
	char *md = make_tmpdir();
	char *other = rg_strdup_printf("%s/.Other", md);
	uint32_t uid = 0, validity = 0;
	const char *error = NULL;
	static const char msg[] = "Subject: s\r\n\r\nbody\n";
	assert_int_equal(maildir_save(md, msg, sizeof(msg) - 1, "SF", 1234567, &uid, &validity, &error), 0);
	assert_int_equal(uid, 1);
	/* a list that existed gets the next UID without a rescan */
	assert_int_equal(maildir_save(md, msg, sizeof(msg) - 1, "", 0, &uid, &validity, &error), 0);
	assert_int_equal(uid, 2);
	put_file(md, "new", "dropped.host", "x\n", 0);
	struct maildir *box = open_ok(md, true);
	assert_int_equal(box->count, 3);
	assert_int_equal(box->uidvalidity, validity);
	assert_string_equal(box->msgs[0].flags, "FS");
	assert_int_equal(maildir_msg_mtime(box, 0), 1234567);
	assert_non_null(strstr(box->msgs[0].base, ",S=19,W=20"));
	assert_int_equal(box->msgs[0].vsize, 20);
	assert_false(box->msgs[0].recent);
	assert_int_equal(box->msgs[2].uid, 3);
	assert_true(box->msgs[2].recent);
	char *data;
	size_t len;
	assert_int_equal(maildir_msg_read(box, 0, &data, &len), 0);
	assert_int_equal(len, sizeof(msg) - 1);
	assert_memory_equal(data, msg, len);
	rg_free(data);

	/* copy: flags and dates kept, UIDs in order, a vanished source skipped */
	size_t idxs[3] = { 2, 0, 1 };
	uint32_t uids[3];
	char *gone = rg_strdup_printf("%s/cur/%s", md, box->msgs[1].name);
	assert_int_equal(unlink(gone), 0);
	rg_free(gone);
	assert_int_equal(maildir_copy(box, idxs, 3, other, uids, &validity, &error), 0);
	/* the new folder numbers the copies 1, 2 in the order given (idxs 2
	 * then 0); the vanished source gets 0 and uses up no UID */
	assert_int_equal(uids[0], 1);
	assert_int_equal(uids[1], 2);
	assert_int_equal(uids[2], 0);
	struct maildir *ob = open_ok(other, false);
	assert_int_equal(ob->count, 2);
	assert_int_equal(ob->uidvalidity, validity);
	assert_int_equal(ob->uidnext, 3);
	assert_int_equal(ob->msgs[0].uid, 1);
	assert_int_equal(ob->msgs[1].uid, 2);
	/* uid 1 is the copy of box's message 3 ("x\n", no flags), uid 2 that
	 * of message 1 (flags and date kept) */
	assert_int_equal(maildir_msg_read(ob, 0, &data, &len), 0);
	assert_int_equal(len, 2);
	assert_memory_equal(data, "x\n", 2);
	rg_free(data);
	assert_string_equal(ob->msgs[0].flags, "");
	assert_string_equal(ob->msgs[1].flags, "FS");
	assert_int_equal(maildir_msg_mtime(ob, 1), 1234567);
	assert_int_equal(maildir_msg_read(ob, 1, &data, &len), 0);
	assert_int_equal(len, sizeof(msg) - 1);
	assert_memory_equal(data, msg, len);
	rg_free(data);
	/* the next copy into a folder with a list numbers in order */
	size_t one = 0;
	assert_int_equal(maildir_copy(box, &one, 1, other, uids, &validity, &error), 0);
	assert_int_equal(uids[0], 3);
	maildir_close(ob);
	maildir_close(box);
	drop_maildir(md);
	rg_free(other);
}

/* RFC 3501 2.3.2: \Recent belongs to the first session that sees a
 * message; a read-only open (EXAMINE, STATUS) does not take it */
static size_t count_recent(const struct maildir *box)
{
	size_t n = 0;
	for (size_t i = 0; i < box->count; i++)
		n += box->msgs[i].recent;
	return n;
}

static void test_recent(void **state)
{
	(void)state;
	char *md = new_maildir();
	maildir_close(open_ok(md, false)); /* an empty list: R1 */
	uint32_t uid, validity;
	const char *error;
	static const char msg[] = "Subject: s\r\n\r\nb\r\n";
	assert_int_equal(maildir_save(md, msg, sizeof(msg) - 1, "", 0, &uid, &validity, &error), 0);
	assert_int_equal(maildir_save(md, msg, sizeof(msg) - 1, "S", 0, &uid, &validity, &error), 0);
	struct maildir *box = open_ok(md, false);
	assert_int_equal(count_recent(box), 2);
	maildir_close(box);
	box = open_ok(md, false);
	assert_int_equal(count_recent(box), 2); /* still: nobody took them */
	maildir_close(box);
	box = open_ok(md, true);
	assert_int_equal(count_recent(box), 2); /* this snapshot takes them */
	maildir_close(box);
	box = open_ok(md, false);
	assert_int_equal(count_recent(box), 0);
	maildir_close(box);
	box = open_ok(md, true);
	assert_int_equal(count_recent(box), 0);
	maildir_close(box);
	/* a later APPEND and a delivery into new/ are recent again */
	assert_int_equal(maildir_save(md, msg, sizeof(msg) - 1, "", 0, &uid, &validity, &error), 0);
	assert_int_equal(uid, 3);
	put_file(md, "new", "9.x", "x\n", 0);
	box = open_ok(md, false);
	assert_int_equal(count_recent(box), 2);
	assert_false(box->msgs[0].recent);
	assert_true(box->msgs[2].recent);
	assert_true(box->msgs[3].recent);
	maildir_close(box);
	box = open_ok(md, true);
	assert_int_equal(count_recent(box), 2);
	maildir_close(box);
	box = open_ok(md, false);
	assert_int_equal(count_recent(box), 0);
	maildir_close(box);
	rm_rf(md);
	rg_free(md);
}

static void test_changed(void **state)
{
	(void)state;
	char *md = new_maildir();
	put_file(md, "new", "a.host", "x\n", 0);
	set_dir_time(md, "new", 1000);
	set_dir_time(md, "cur", 1000);
	struct maildir *box = open_ok(md, false);
	/* old directory times: nothing changed */
	assert_false(maildir_changed(box));
	put_file(md, "new", "b.host", "y\n", 0);
	assert_true(maildir_changed(box));
	maildir_close(box);
	/* times within the clock's tick are always re-checked */
	box = open_ok(md, false);
	assert_true(box->recheck);
	assert_true(maildir_changed(box));
	maildir_close(box);
	drop_maildir(md);
}

#define SAVE_ROUNDS 20

/* one session of test_concurrent_save: save, deliver, open */
static int save_child(const char *md, int c)
{
	uint32_t last = 0;
	for (int r = 0; r < SAVE_ROUNDS; r++) {
		uint32_t uid, validity;
		const char *error;
		char body[64];
		snprintf(body, sizeof(body), "Subject: %d/%d\r\n\r\n", c, r);
		if (maildir_save(md, body, strlen(body), "", 0, &uid, &validity, &error) < 0)
			return 2;
		if (uid <= last)
			return 3;
		last = uid;
		char name[32];
		snprintf(name, sizeof(name), "%d.d%d.host", r, c);
		put_file(md, "new", name, "body\n", 0);
		struct maildir *box;
		if (maildir_open(md, (r % 2) == 0, &box, &error) < 0)
			return 4;
		if (maildir_find_uid(box, uid) < 0)
			return 5;
		maildir_close(box);
	}
	return 0;
}

/* several processes delivering (save) and opening at once: every message
 * gets exactly one UID, none is lost or handed out twice */
static void test_concurrent_save(void **state)
{
	(void)state;
	char *md = new_maildir();
	run_children(save_child, md);
	assert_uids_dense(md, 2 * CHILDREN * SAVE_ROUNDS);
	drop_maildir(md);
}

static void test_keywords(void **state)
{
	(void)state;
	char *md = make_tmpdir();
	char *other = rg_strdup_printf("%s/.Other", md);
	assert_int_equal(maildir_create(md), 0);
	assert_int_equal(maildir_create(other), 0);
	char letters[32];
	const char *names[] = { "$Junk", "Work", "work", "bad name" };
	assert_int_equal(maildir_keywords_lookup(md, names, 2, false, letters), 0);
	assert_string_equal(letters, "");
	assert_int_equal(maildir_keywords_lookup(md, names, 4, true, letters), 0);
	assert_string_equal(letters, "ab");
	/* the other folder numbers its own: Work first there */
	assert_int_equal(maildir_keywords_lookup(other, names + 1, 1, true, letters), 0);
	assert_string_equal(letters, "a");
	put_file(md, "cur", "k.host:2,Sab", "x\n", 0);
	struct maildir *box = open_ok(md, false);
	assert_string_equal(box->keywords[0], "$Junk");
	assert_string_equal(box->keywords[1], "Work");
	assert_null(box->keywords[2]);
	size_t idx = 0;
	uint32_t uid, validity;
	const char *error;
	assert_int_equal(maildir_copy(box, &idx, 1, other, &uid, &validity, &error), 0);
	maildir_close(box);
	box = open_ok(other, false);
	assert_int_equal(box->count, 1);
	/* Work stays a, $Junk becomes b there */
	assert_string_equal(box->msgs[0].flags, "Sab");
	assert_string_equal(box->keywords[0], "Work");
	assert_string_equal(box->keywords[1], "$Junk");
	maildir_close(box);
	/* all 26 letters taken: more are left out */
	char name[16];
	for (int i = 0; i < 30; i++) {
		snprintf(name, sizeof(name), "k%d", i);
		const char *one = name;
		assert_int_equal(maildir_keywords_lookup(md, &one, 1, true, letters), 0);
		assert_int_equal(strlen(letters), i < 24 ? 1 : 0);
	}
	drop_maildir(md);
	rg_free(other);
}

static void test_modseq(void **state)
{
	(void)state;
	char *md = new_maildir();
	put_file(md, "cur", "1.a.host:2,", "a\n", 100);
	put_file(md, "cur", "2.b.host:2,S", "b\n", 200);
	struct maildir *box = open_ok(md, false);
	uint64_t h = box->highest_modseq;
	assert_int_equal(box->msgs[0].modseq, h - 1);
	assert_int_equal(box->msgs[1].modseq, h);
	maildir_close(box);
	/* nothing changed: nothing moves */
	box = open_ok(md, false);
	assert_int_equal(box->highest_modseq, h);
	assert_int_equal(box->msgs[1].modseq, h);
	/* our change, committed */
	assert_int_equal(maildir_msg_set_flags(box, 0, "F"), 0);
	size_t idx = 0;
	assert_int_equal(maildir_modseq_commit(box, &idx, 1), 0);
	assert_int_equal(box->msgs[0].modseq, h + 1);
	assert_int_equal(box->highest_modseq, h + 1);
	maildir_close(box);
	/* a program renames a file: the next scan counts it */
	char *from = rg_strdup_printf("%s/cur/2.b.host:2,S", md);
	char *to = rg_strdup_printf("%s/cur/2.b.host:2,RS", md);
	assert_int_equal(rename(from, to), 0);
	box = open_ok(md, false);
	assert_int_equal(box->msgs[0].modseq, h + 1);
	assert_int_equal(box->msgs[1].modseq, h + 2);
	/* a new message gets the next one */
	put_file(md, "new", "3.c.host", "c\n", 300);
	maildir_close(box);
	box = open_ok(md, false);
	assert_int_equal(box->count, 3);
	assert_int_equal(box->msgs[2].modseq, h + 3);
	maildir_close(box);
	/* a corrupt table restarts above everything handed out */
	char *table = rg_strdup_printf("%s/ringgate-modseq", md);
	FILE *t = fopen(table, "w");
	assert_non_null(t);
	fputs("garbage\n", t);
	fclose(t);
	box = open_ok(md, false);
	assert_true(box->msgs[0].modseq > h + 3);
	assert_true(box->highest_modseq >= box->msgs[2].modseq);
	maildir_close(box);
	rg_free(table);
	rg_free(from);
	rg_free(to);
	drop_maildir(md);
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char *path = rg_strdup_printf("%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	rg_free(path);
}

/* a fresh Maildir (*md_r) holding one message, 1.x.host, and Dovecot's
 * uid list text, opened */
static struct maildir *one_msg_dovecot_list(char **md_r, const char *uidlist)
{
	*md_r = new_maildir();
	put_file(*md_r, "cur", "1.x.host:2,", "x\n", 100);
	write_file(*md_r, "dovecot-uidlist", uidlist);
	return open_ok(*md_r, false);
}

/* a folder Dovecot served keeps its UIDs and UIDVALIDITY */
static void test_dovecot_uidlist(void **state)
{
	(void)state;
	char *md = new_maildir();
	put_file(md, "cur", "100.a.host,S=2:2,S", "a\n", 100);
	put_file(md, "cur", "200.b.host:2,", "b\n", 200);
	put_file(md, "new", "300.c.host", "c\n", 300);
	write_file(md, "dovecot-uidlist",
		   "3 V1234 N20 G3085f01b7f11094c501100008c4a11c1\n"
		   "7 :100.a.host,S=2\n12 W3 S2 :200.b.host\n19 :gone.host\n");
	struct maildir *box = open_ok(md, false);
	assert_int_equal(box->uidvalidity, 1234);
	assert_int_equal(box->count, 3);
	assert_int_equal(box->msgs[0].uid, 7);
	assert_int_equal(box->msgs[1].uid, 12);
	assert_int_equal(box->msgs[2].uid, 20);
	assert_int_equal(box->uidnext, 21);
	maildir_close(box);
	/* ours is written now: Dovecot's is no longer read */
	write_file(md, "dovecot-uidlist", "3 V999 N5\n1 :100.a.host,S=2\n");
	box = open_ok(md, false);
	assert_int_equal(box->uidvalidity, 1234);
	assert_int_equal(box->msgs[0].uid, 7);
	maildir_close(box);
	drop_maildir(md);

	/* Dovecot appends lines past the N of its header */
	box = one_msg_dovecot_list(&md, "3 V77 N1 Gabc\n1 :1.x.host\n");
	assert_int_equal(box->uidvalidity, 77);
	assert_int_equal(box->msgs[0].uid, 1);
	assert_int_equal(box->uidnext, 2);
	maildir_close(box);
	drop_maildir(md);

	/* version 1, and a list that cannot be trusted (UIDs out of order) */
	box = one_msg_dovecot_list(&md, "1 4321 9\n5 1.x.host\n");
	assert_int_equal(box->uidvalidity, 4321);
	assert_int_equal(box->msgs[0].uid, 5);
	maildir_close(box);
	drop_maildir(md);
	box = one_msg_dovecot_list(&md, "3 V55 N3\n5 :1.x.host\n4 :2.x.host\n");
	assert_int_not_equal(box->uidvalidity, 55);
	assert_int_equal(box->msgs[0].uid, 1);
	maildir_close(box);
	drop_maildir(md);
}

static void check_location(const char *loc, const char *home, const char *user, const char *expect)
{
	char *path = NULL;
	const char *error = NULL;
	int ret = maildir_location_path(loc, home, user, &path, &error);
	if (expect == NULL) {
		assert_int_equal(ret, -EINVAL);
		assert_non_null(error);
		return;
	}
	if (ret != 0)
		fail_msg("%s: %s", loc, error);
	assert_string_equal(path, expect);
	rg_free(path);
}

static void test_location(void **state)
{
	(void)state;
	check_location("maildir:~/Maildir", "/home/u", "u", "/home/u/Maildir");
	check_location("", "/home/u", "u", "/home/u/Maildir");
	check_location(NULL, "/home/u", "u", "/home/u/Maildir");
	check_location("maildir:/var/mail/x", "/home/u", "u", "/var/mail/x");
	check_location("MAILDIR:/var/mail/x/", "", "u", "/var/mail/x");
	check_location("maildir:~/Maildir:LAYOUT=fs:INDEX=/x", "/h", "u", "/h/Maildir");
	check_location("~/Mail", "/h", "u", "/h/Mail");
	check_location("maildir:~", "/h", "u", "/h");
	check_location("maildir:/v/%d/%n/Maildir", "/h", "joe@example.com", "/v/example.com/joe/Maildir");
	check_location("maildir:/v/%u/%%", "/h", "joe", "/v/joe/%");
	check_location("maildir:%h/M", "/h", "joe", "/h/M");
	check_location("maildir:Maildir", "/h", "joe", "/h/Maildir");
	/* errors */
	check_location("mbox:~/mail", "/h", "u", NULL);
	check_location("maildir:~/Maildir", "", "u", NULL);
	check_location("maildir:~/Maildir", NULL, "u", NULL);
	check_location("maildir:", "/h", "u", NULL);
	check_location("maildir:/v/%x", "/h", "u", NULL);
	check_location("maildir:/v/%u", "/h", NULL, NULL);
	check_location("maildir:Maildir", "", "u", NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_mode),
		cmocka_unit_test(test_scan_order_and_flags),
		cmocka_unit_test(test_uidlist_stable),
		cmocka_unit_test(test_move_new_and_flags),
		cmocka_unit_test(test_crlf),
		cmocka_unit_test(test_concurrent_open),
		cmocka_unit_test(test_location),
		cmocka_unit_test(test_save_copy),
		cmocka_unit_test(test_changed),
		cmocka_unit_test(test_recent),
		cmocka_unit_test(test_concurrent_save),
		cmocka_unit_test(test_keywords),
		cmocka_unit_test(test_modseq),
		cmocka_unit_test(test_dovecot_uidlist),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
