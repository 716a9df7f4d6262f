/* Tests for the mbox spool (mail/mbox.h) on real temp files: message
 * boundaries, Dovecot's hidden headers and pseudo message, sizes that match
 * what is read, UIDLs (Dovecot's from X-UID, else stable hashes), expunge
 * in place keeping new deliveries, and every lock and staleness branch,
 * with lock holders in other processes (fcntl locks are per process). */
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
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

#define M1 "From alice@example.com Mon Dec  7 10:00:00 2026\n" \
	   "From: alice@example.com\nStatus: RO\nSubject: one\n\nHello\n>From the body\n"
#define M1_SEEN "From: alice@example.com\nSubject: one\n\nHello\n>From the body\n"
/* a "From " line not after a blank line is body text */
#define M2 "From bob@example.com Mon Dec  7 11:00:00 2026\n" \
	   "From: bob@example.com\r\nX-Keywords: $Junk\r\n  folded\r\nSubject: two\r\n\r\n" \
	   "line\r\nFrom not a separator\r\n"
#define M2_SEEN "From: bob@example.com\r\nSubject: two\r\n\r\nline\r\nFrom not a separator\r\n"
#define M3 "From carol@example.com Mon Dec  7 12:00:00 2026\n" \
	   "Subject: three\nContent-Length: 3\n\nabc\n"
#define M3_SEEN "Subject: three\n\nabc\n"

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
}

static void append_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "a");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
}

static void assert_msg(struct mbox *box, size_t idx, const char *expected)
{
	char *data;
	size_t len;
	assert_int_equal(mbox_msg_read(box, idx, &data, &len), 0);
	assert_int_equal(len, strlen(expected));
	assert_memory_equal(data, expected, len);
	/* the size POP3 announces is what it sends */
	assert_int_equal(box->msgs[idx].vsize, maildir_crlf_size(data, len));
	rg_free(data);
}

static void test_scan_and_read(void **state)
{
	struct fixture *f = *state;
	write_file(f->path, M1 "\n" M2 "\r\n" M3 "\n");
	struct mbox *box = open_ok(f->path);
	assert_int_equal(box->count, 3);
	assert_msg(box, 0, M1_SEEN);
	assert_msg(box, 1, M2_SEEN);
	assert_msg(box, 2, M3_SEEN);
	/* hash UIDLs: distinct, 16 hex digits */
	assert_int_equal(strlen(box->msgs[0].uidl), 16);
	assert_string_not_equal(box->msgs[0].uidl, box->msgs[1].uidl);
	assert_string_not_equal(box->msgs[1].uidl, box->msgs[2].uidl);
	mbox_close(box);

	/* no final separator, a message of headers only */
	write_file(f->path, M1 "\nFrom x Mon Dec  7 13:00:00 2026\nSubject: h\n");
	box = open_ok(f->path);
	assert_int_equal(box->count, 2);
	assert_msg(box, 0, M1_SEEN);
	assert_msg(box, 1, "Subject: h\n");
	mbox_close(box);

	/* the header's own blank line at the end of the file stays */
	write_file(f->path, "From x Mon Dec  7 13:00:00 2026\nSubject: h\n\n");
	box = open_ok(f->path);
	assert_int_equal(box->count, 1);
	assert_msg(box, 0, "Subject: h\n\n");
	mbox_close(box);
}

/* lines longer than the reader's block, across block boundaries */
static void test_long_lines(void **state)
{
	struct fixture *f = *state;
	size_t big = 200000;
	char *body = rg_malloc(big * 2 + 64);
	size_t n = 0;
	for (size_t i = 0; i < big; i++)
		body[n++] = (char)('a' + i % 26);
	body[n++] = '\n';
	for (size_t i = 0; n < big * 2; i++)
		n += (size_t)sprintf(body + n, "%zu\n", i);
	body[n] = '\0';
	char *text = rg_strdup_printf("From a Mon Dec  7 10:00:00 2026\nSubject: big\n\n%s\n"
				      "From b Mon Dec  7 11:00:00 2026\nSubject: b\n\nx\n", body);
	write_file(f->path, text);
	struct mbox *box = open_ok(f->path);
	assert_int_equal(box->count, 2);
	char *want = rg_strdup_printf("Subject: big\n\n%s", body);
	assert_msg(box, 0, want);
	assert_msg(box, 1, "Subject: b\n\nx\n");
	mbox_close(box);
	rg_free(want);
	rg_free(text);
	rg_free(body);
}

/* a spool Dovecot has written: its pseudo message is not mail, its UIDs
 * give Dovecot's UIDLs, so a client sees no change of server */
static void test_dovecot_written(void **state)
{
	struct fixture *f = *state;
	write_file(f->path,
		   "From MAILER_DAEMON Mon Dec  7 09:00:00 2026\n"
		   "Date: Mon, 07 Dec 2026 09:00:00 +0000\n"
		   "Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\n"
		   "X-IMAP: 1765094400 0000000007\nStatus: RO\n\ninternal\n\n"
		   "From a Mon Dec  7 10:00:00 2026\nSubject: a\nX-UID: 5\nStatus: RO\n\nbody a\n\n"
		   "From b Mon Dec  7 11:00:00 2026\nSubject: b\nX-UID: 6\n\nbody b\n\n");
	struct mbox *box = open_ok(f->path);
	assert_int_equal(box->count, 2);
	assert_string_equal(box->msgs[0].uidl, "0000000569353400");
	assert_string_equal(box->msgs[1].uidl, "0000000669353400");
	assert_msg(box, 0, "Subject: a\n\nbody a\n");
	mbox_close(box);

	/* X-IMAPbase on the first real message (no pseudo message) */
	write_file(f->path, "From a Mon Dec  7 10:00:00 2026\nX-IMAPbase: 10 3\nX-UID: 2\n"
		   "Subject: a\n\nbody\n\n");
	box = open_ok(f->path);
	assert_int_equal(box->count, 1);
	assert_string_equal(box->msgs[0].uidl, "000000020000000A");
	assert_msg(box, 0, "Subject: a\n\nbody\n");
	mbox_close(box);
}

static void test_uidl_stable(void **state)
{
	struct fixture *f = *state;
	write_file(f->path, M1 "\n" M2 "\r\n");
	struct mbox *box = open_ok(f->path);
	char u0[MBOX_UIDL_MAX], u1[MBOX_UIDL_MAX];
	strcpy(u0, box->msgs[0].uidl);
	strcpy(u1, box->msgs[1].uidl);
	mbox_close(box);
	/* a delivery and another MUA marking it read change no UIDL */
	write_file(f->path, M1 "\n" M2 "\r\n" M3 "\n");
	box = open_ok(f->path);
	assert_int_equal(box->count, 3);
	assert_string_equal(box->msgs[0].uidl, u0);
	assert_string_equal(box->msgs[1].uidl, u1);
	mbox_close(box);
}

static void test_bad_and_empty(void **state)
{
	struct fixture *f = *state;
	struct mbox *box = NULL;
	const char *error = NULL;

	/* no spool yet: an empty INBOX */
	box = open_ok(f->path);
	assert_int_equal(box->count, 0);
	bool none[1] = { false };
	assert_int_equal(mbox_expunge(box, none, 100, &error), 0);
	mbox_close(box);

	write_file(f->path, "");
	box = open_ok(f->path);
	assert_int_equal(box->count, 0);
	mbox_close(box);

	write_file(f->path, "Subject: not an mbox\n\nFrom x\n");
	assert_int_equal(mbox_open(f->path, 100, &box, &error), -EINVAL);
	assert_string_equal(error, "not an mbox file (does not begin with a From line)");

	assert_int_equal(mbox_open(f->dir, 100, &box, &error), -EISDIR);
}

static void test_expunge(void **state)
{
	struct fixture *f = *state;
	write_file(f->path, M1 "\n" M2 "\r\n" M3 "\n" M1 "\n");
	assert_int_equal(chmod(f->path, 0620), 0);
	struct stat before;
	assert_int_equal(stat(f->path, &before), 0);
	struct mbox *box = open_ok(f->path);
	assert_int_equal(box->count, 4);
	/* delivered after the snapshot: kept */
	append_file(f->path, M3 "\n");

	bool expunge[4] = { true, false, true, false };
	const char *error = NULL;
	assert_int_equal(mbox_expunge(box, expunge, 1000, &error), 0);
	mbox_close(box);

	char *text = read_all(f->path);
	assert_string_equal(text, M2 "\r\n" M1 "\n" M3 "\n");
	rg_free(text);
	struct stat after;
	assert_int_equal(stat(f->path, &after), 0);
	assert_int_equal(after.st_ino, before.st_ino);
	assert_int_equal(after.st_mode, before.st_mode);
	/* the dotlock is gone */
	char *lock = rg_strdup_printf("%s.lock", f->path);
	assert_int_equal(access(lock, F_OK), -1);
	rg_free(lock);

	box = open_ok(f->path);
	assert_int_equal(box->count, 3);
	assert_msg(box, 0, M2_SEEN);
	assert_msg(box, 2, M3_SEEN);
	/* removing the last message leaves the file without it */
	bool last[3] = { false, false, true };
	assert_int_equal(mbox_expunge(box, last, 1000, &error), 0);
	mbox_close(box);
	text = read_all(f->path);
	assert_string_equal(text, M2 "\r\n" M1 "\n");
	rg_free(text);
}

/* another program rewrote the spool after the snapshot: nothing is removed */
static void test_expunge_stale(void **state)
{
	struct fixture *f = *state;
	const char *error = NULL;
	write_file(f->path, M1 "\n" M2 "\r\n");
	struct mbox *box = open_ok(f->path);
	/* rewritten in place, shorter (another MUA expunged the first) */
	int fd = open(f->path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, M2 "\r\n", strlen(M2 "\r\n")), (ssize_t)strlen(M2 "\r\n"));
	close(fd);
	bool expunge[2] = { false, true };
	assert_int_equal(mbox_expunge(box, expunge, 1000, &error), -ESTALE);
	assert_string_equal(error, "the mbox changed since it was read");
	char *data;
	size_t len;
	assert_int_equal(mbox_msg_read(box, 1, &data, &len), -ESTALE);
	mbox_close(box);
	char *text = read_all(f->path);
	assert_string_equal(text, M2 "\r\n");
	rg_free(text);

	/* same size, a different message where one began */
	write_file(f->path, M1 "\n" M2 "\r\n");
	box = open_ok(f->path);
	char *other = rg_strdup(M1 "\n" M2 "\r\n");
	other[box->msgs[1].from_offset] = 'X';
	write_file(f->path, other);
	assert_int_equal(mbox_expunge(box, expunge, 1000, &error), -ESTALE);
	mbox_close(box);
	rg_free(other);
}

/* a child holding an fcntl lock of type type until killed */
static pid_t hold_fcntl(const char *path, short type)
{
	int pipefd[2];
	assert_int_equal(pipe(pipefd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(path, O_RDWR);
		struct flock fl = { .l_type = type, .l_whence = SEEK_SET };
		if (fd < 0 || fcntl(fd, F_SETLK, &fl) < 0)
			_exit(1);
		if (write(pipefd[1], "x", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	char c;
	close(pipefd[1]);
	assert_int_equal(read(pipefd[0], &c, 1), 1);
	close(pipefd[0]);
	return pid;
}

static void release(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static void test_locks(void **state)
{
	struct fixture *f = *state;
	struct mbox *box = NULL;
	const char *error = NULL;
	write_file(f->path, M1 "\n" M2 "\r\n");

	/* a writer (a delivery agent) holds it: open waits its bound, then IN-USE */
	pid_t pid = hold_fcntl(f->path, F_WRLCK);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(mbox_open(f->path, 300, &box, &error), -EAGAIN);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_string_equal(error, "mailbox is locked by another process");
	double waited = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_true(waited >= 0.29 && waited < 2.0);
	release(pid);

	/* a reader does not keep another reader out, but keeps the expunge out */
	pid = hold_fcntl(f->path, F_RDLCK);
	box = open_ok(f->path);
	bool expunge[2] = { true, false };
	assert_int_equal(mbox_expunge(box, expunge, 200, &error), -EAGAIN);
	assert_string_equal(error, "mailbox is locked by another process");
	release(pid);

	/* a fresh dotlock keeps the expunge out; the file is untouched */
	char *lock = rg_strdup_printf("%s.lock", f->path);
	write_file(lock, "12345\n");
	assert_int_equal(mbox_expunge(box, expunge, 200, &error), -EAGAIN);
	assert_string_equal(error, "dotlock held by another process");
	assert_int_equal(access(lock, F_OK), 0); /* not ours to remove */
	/* a stale one (older than mbox_dotlock_change_timeout) is taken over */
	struct utimbuf old = { .actime = time(NULL) - 600, .modtime = time(NULL) - 600 };
	assert_int_equal(utime(lock, &old), 0);
	assert_int_equal(mbox_expunge(box, expunge, 200, &error), 0);
	assert_int_equal(access(lock, F_OK), -1);
	mbox_close(box);
	char *text = read_all(f->path);
	assert_string_equal(text, M2 "\r\n");
	rg_free(text);

	/* a directory the user cannot write: no dotlock, nothing removed */
	if (geteuid() != 0) {
		box = open_ok(f->path);
		assert_int_equal(chmod(f->dir, 0500), 0);
		bool one[1] = { true };
		assert_int_equal(mbox_expunge(box, one, 200, &error), -EACCES);
		assert_int_equal(chmod(f->dir, 0700), 0);
		mbox_close(box);
	}
	rg_free(lock);
}

static void test_location(void **state)
{
	char *path = NULL;
	const char *error = NULL;
	(void)state;

	assert_true(mbox_location_is_mbox("mbox:~/mail:INBOX=/var/mail/%u"));
	assert_true(mbox_location_is_mbox("MBOX:~/mail"));
	assert_false(mbox_location_is_mbox("maildir:~/Maildir"));
	assert_false(mbox_location_is_mbox(""));
	assert_false(mbox_location_is_mbox(NULL));

	assert_int_equal(mbox_location_inbox("mbox:~/mail:INBOX=/var/mail/%u", "/home/u",
					     "u@example.com", &path, &error), 0);
	assert_string_equal(path, "/var/mail/u@example.com");
	rg_free(path);
	assert_int_equal(mbox_location_inbox("mbox:~/mail:INBOX=/var/mail/%n:LAYOUT=fs",
					     "/home/u", "u@example.com", &path, &error), 0);
	assert_string_equal(path, "/var/mail/u");
	rg_free(path);
	assert_int_equal(mbox_location_inbox("mbox:~/mail", "/home/u", "u", &path, &error), 0);
	assert_string_equal(path, "/home/u/mail/inbox");
	rg_free(path);
	assert_int_equal(mbox_location_inbox("mbox::INBOX=%h/spool", "/home/u", "u", &path,
					     &error), 0);
	assert_string_equal(path, "/home/u/spool");
	rg_free(path);
	assert_int_equal(mbox_location_inbox("mbox:", "/home/u", "u", &path, &error), -EINVAL);
	assert_string_equal(error, "mbox location has neither a root nor INBOX=");
	assert_int_equal(mbox_location_inbox("mbox:~/mail", NULL, "u", &path, &error), -EINVAL);
	assert_int_equal(mbox_location_inbox("mbox:/m:INBOX=/var/mail/%q", "/h", "u", &path,
					     &error), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_scan_and_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dovecot_written, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uidl_stable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_and_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expunge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expunge_stale, setup, teardown),
		cmocka_unit_test_setup_teardown(test_locks, setup, teardown),
		cmocka_unit_test(test_location),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
