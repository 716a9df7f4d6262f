/* privs_drop in a forked child: every id changes and root stays gone. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "lib/privs.h"

#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

static int child_status(bool with_group)
{
	pid_t pid = fork();
	if (pid == 0) {
		const char *error;
		if (privs_drop(65534, 65534, with_group, &error) < 0)
			_exit(10);
		uid_t r, e, s;
		gid_t rg, eg, sg, groups[4];
		if (getresuid(&r, &e, &s) < 0 || r != 65534 || e != 65534 || s != 65534)
			_exit(11);
		if (getresgid(&rg, &eg, &sg) < 0 || rg != 65534 || eg != 65534 || sg != 65534)
			_exit(12);
		int n = getgroups(4, groups);
		if (n != (with_group ? 1 : 0) || (n == 1 && groups[0] != 65534))
			_exit(13);
		if (setuid(0) == 0 || seteuid(0) == 0)
			_exit(14);
		_exit(0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void test_drop(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	assert_int_equal(child_status(false), 0);
	assert_int_equal(child_status(true), 0);
}

static void test_not_root_fails(void **state)
{
	(void)state;
	if (geteuid() == 0)
		skip();
	const char *error = NULL;
	assert_true(privs_drop(65534, 65534, false, &error) < 0);
	assert_non_null(error);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_drop),
		cmocka_unit_test(test_not_root_fails),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
