/* mailfile: the flock'd lock file and tmp + rename replacement every
 * Maildir index and the subscriptions file are written through. Real
 * temp dirs; the lock is checked from a second process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/alloc.h"
#include "mail/mailfile.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

static char *make_dir(void)
{
	char tmpl[] = "/tmp/rg-mailfile-XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	return rg_strdup(tmpl);
}

static void rm_dir(char *dir)
{
	char *cmd = rg_strdup_printf("rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	rg_free(cmd);
	rg_free(dir);
}

static char *slurp(const char *dir, const char *name, size_t *len_r)
{
	char *file = rg_strdup_printf("%s/%s", dir, name);
	FILE *f = fopen(file, "re");
	rg_free(file);
	if (f == NULL)
		return NULL;
	char *buf = rg_malloc(4096);
	*len_r = fread(buf, 1, 4096, f);
	fclose(f);
	return buf;
}

static bool exists(const char *dir, const char *name)
{
	char *file = rg_strdup_printf("%s/%s", dir, name);
	struct stat st;
	bool ok = stat(file, &st) == 0;
	rg_free(file);
	return ok;
}

static void test_replace_creates_and_overwrites(void **state)
{
	(void)state;
	char *dir = make_dir();
	size_t len;
	assert_int_equal(mailfile_replace(dir, "idx", "first\n", 6), 0);
	char *got = slurp(dir, "idx", &len);
	assert_int_equal(len, 6);
	assert_memory_equal(got, "first\n", 6);
	rg_free(got);
	/* a shorter replacement leaves nothing of the old file */
	assert_int_equal(mailfile_replace(dir, "idx", "2\n", 2), 0);
	got = slurp(dir, "idx", &len);
	assert_int_equal(len, 2);
	assert_memory_equal(got, "2\n", 2);
	rg_free(got);
	assert_int_equal(mailfile_replace(dir, "idx", "", 0), 0);
	got = slurp(dir, "idx", &len);
	assert_int_equal(len, 0);
	rg_free(got);
	assert_false(exists(dir, "idx.tmp"));
	/* private: only the user reads mail indexes */
	char *file = rg_strdup_printf("%s/idx", dir);
	struct stat st;
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	rg_free(file);
	rm_dir(dir);
}

static void test_replace_failure_keeps_old(void **state)
{
	(void)state;
	char *dir = make_dir();
	size_t len;
	assert_int_equal(mailfile_replace(dir, "idx", "old", 3), 0);
	/* rename over a directory fails: the old file and no tmp remain */
	char *sub = rg_strdup_printf("%s/sub", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	char *inner = rg_strdup_printf("%s/sub/x", dir);
	assert_int_equal(mkdir(inner, 0700), 0);
	assert_true(mailfile_replace(dir, "sub", "new", 3) < 0);
	assert_false(exists(dir, "sub.tmp"));
	char *got = slurp(dir, "idx", &len);
	assert_int_equal(len, 3);
	assert_memory_equal(got, "old", 3);
	rg_free(got);
	rg_free(inner);
	rg_free(sub);
	/* a missing directory: -ENOENT */
	assert_int_equal(mailfile_replace("/nonexistent-rg-dir", "idx", "x", 1), -ENOENT);
	rm_dir(dir);
}

static void test_lock_excludes_other_process(void **state)
{
	(void)state;
	char *dir = make_dir();
	int fd = -1;
	assert_int_equal(mailfile_lock(dir, "x.lock", &fd), 0);
	assert_true(fd >= 0);
	assert_true(exists(dir, "x.lock"));
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char *file = rg_strdup_printf("%s/x.lock", dir);
		int cfd = open(file, O_RDWR | O_CLOEXEC);
		/* held by the parent: a non-blocking try must fail */
		int busy = flock(cfd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
		_exit(busy ? 0 : 1);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(fd);
	/* released by close: taking it again works at once */
	assert_int_equal(mailfile_lock(dir, "x.lock", &fd), 0);
	close(fd);
	assert_int_equal(mailfile_lock("/nonexistent-rg-dir", "x.lock", &fd), -ENOENT);
	rm_dir(dir);
}

static void test_write_all(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe(p), 0);
	static const char msg[] = "hello, pipe";
	assert_int_equal(mailfile_write_all(p[1], msg, sizeof(msg) - 1), 0);
	char buf[64];
	assert_int_equal(read(p[0], buf, sizeof(buf)), (ssize_t)(sizeof(msg) - 1));
	assert_memory_equal(buf, msg, sizeof(msg) - 1);
	close(p[0]);
	/* no reader: EPIPE comes back as -EPIPE (SIGPIPE ignored here) */
	signal(SIGPIPE, SIG_IGN);
	assert_int_equal(mailfile_write_all(p[1], msg, 1), -EPIPE);
	close(p[1]);
	assert_int_equal(mailfile_write_all(-1, msg, 1), -EBADF);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replace_creates_and_overwrites),
		cmocka_unit_test(test_replace_failure_keeps_old),
		cmocka_unit_test(test_lock_excludes_other_process),
		cmocka_unit_test(test_write_all),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
