/* master-pidfile: live, stale, garbage and missing pid files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "master/master-pidfile.h"

static char dir[64];
static char path[128];
static char comm[32];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/rg-pidfile-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/master.pid", dir);
	FILE *f = fopen("/proc/self/comm", "r");
	if (f == NULL || fgets(comm, sizeof(comm), f) == NULL)
		return -1;
	fclose(f);
	comm[strcspn(comm, "\n")] = '\0';
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	rmdir(dir);
	return 0;
}

static void write_raw(const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_missing_and_garbage(void **state)
{
	(void)state;
	pid_t pid = 0;
	unlink(path);
	assert_int_equal(master_pidfile_read(path, &pid), -ENOENT);
	assert_int_equal(master_pidfile_check(path, comm, &pid), 0);
	const char *bad[] = { "", "abc\n", "-5\n", "0\n", "12x\n", "99999999999999\n" };
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_raw(bad[i]);
		assert_int_equal(master_pidfile_read(path, &pid), -EINVAL);
		assert_int_equal(master_pidfile_check(path, comm, &pid), 0);
	}
	write_raw("1234");
	assert_int_equal(master_pidfile_read(path, &pid), 0);
	assert_int_equal(pid, 1234);
}

static void test_write_read(void **state)
{
	(void)state;
	pid_t pid = 0;
	assert_int_equal(master_pidfile_write(path, 4321), 0);
	assert_int_equal(master_pidfile_read(path, &pid), 0);
	assert_int_equal(pid, 4321);
	/* overwrite replaces, no temp file left behind */
	assert_int_equal(master_pidfile_write(path, 77), 0);
	assert_int_equal(master_pidfile_read(path, &pid), 0);
	assert_int_equal(pid, 77);
	char tmp[160];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	assert_int_equal(access(tmp, F_OK), -1);
	assert_true(master_pidfile_write("/nonexistent-dir/x.pid", 1) < 0);
}

static void test_live_and_stale(void **state)
{
	(void)state;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		pause();
		_exit(0);
	}
	/* a forked child keeps our command name */
	assert_int_equal(master_pidfile_write(path, pid), 0);
	pid_t found = 0;
	assert_int_equal(master_pidfile_check(path, comm, &found), 1);
	assert_int_equal(found, pid);
	assert_true(master_pid_is(pid, comm));
	/* a live pid of some other program is stale for us */
	assert_int_equal(master_pidfile_check(path, "ringgate-nope", &found), 0);
	/* our own pid never blocks us (a restart after exec keeps the pid) */
	assert_int_equal(master_pidfile_write(path, getpid()), 0);
	assert_int_equal(master_pidfile_check(path, comm, &found), 0);

	assert_int_equal(master_pidfile_write(path, pid), 0);
	kill(pid, SIGKILL);
	/* a zombie counts as gone: a `stop` must not wait for the parent to reap */
	for (int i = 0; i < 200 && master_pid_is(pid, comm); i++)
		usleep(10000);
	assert_false(master_pid_is(pid, comm));
	assert_int_equal(master_pidfile_check(path, comm, &found), 0);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	/* reaped: still stale */
	assert_int_equal(master_pidfile_check(path, comm, &found), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_missing_and_garbage),
		cmocka_unit_test(test_write_read),
		cmocka_unit_test(test_live_and_stale),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
