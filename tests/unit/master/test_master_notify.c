/* master-notify: sd_notify's datagram to a path and to an abstract socket,
 * the variable removed from the environment, bad values ignored. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "master/master-notify.h"

static int bind_dgram(const char *name, bool abstract)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	size_t len = strlen(name);

	assert_true(fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path + (abstract ? 1 : 0), name, len);
	socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, salen), 0);
	return fd;
}

static void expect_datagram(int fd, const char *want)
{
	char buf[256];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, want);
}

static void test_path(void **state)
{
	(void)state;
	char dir[] = "/tmp/rg-notify-XXXXXX", path[64];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/notify", dir);
	int fd = bind_dgram(path, false);

	setenv("NOTIFY_SOCKET", path, 1);
	assert_int_equal(master_notify_init(), 1);
	assert_null(getenv("NOTIFY_SOCKET")); /* children do not inherit it */
	assert_int_equal(master_notify("READY=1\nMAINPID=42"), 0);
	expect_datagram(fd, "READY=1\nMAINPID=42");
	assert_int_equal(master_notify("STOPPING=1"), 0);
	expect_datagram(fd, "STOPPING=1");
	close(fd);
	unlink(path);
	/* the listener is gone: an error, never a crash or a block */
	assert_true(master_notify("STOPPING=1") < 0);
	rmdir(dir);
}

static void test_abstract(void **state)
{
	(void)state;
	char name[64], var[66];
	snprintf(name, sizeof(name), "rg-notify-test-%ld", (long)getpid());
	int fd = bind_dgram(name, true);

	snprintf(var, sizeof(var), "@%s", name);
	setenv("NOTIFY_SOCKET", var, 1);
	assert_int_equal(master_notify_init(), 1);
	assert_int_equal(master_notify("READY=1"), 0);
	expect_datagram(fd, "READY=1");
	close(fd);
}

static void test_unset_and_bad(void **state)
{
	(void)state;
	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(master_notify_init(), 0);
	assert_int_equal(master_notify("READY=1"), 0); /* nothing to do */

	setenv("NOTIFY_SOCKET", "relative/path", 1);
	assert_int_equal(master_notify_init(), -1);
	assert_null(getenv("NOTIFY_SOCKET"));
	assert_int_equal(master_notify("READY=1"), 0);

	char long_path[200];
	memset(long_path, 'a', sizeof(long_path) - 1);
	long_path[0] = '/';
	long_path[sizeof(long_path) - 1] = '\0';
	setenv("NOTIFY_SOCKET", long_path, 1);
	assert_int_equal(master_notify_init(), -1);
	setenv("NOTIFY_SOCKET", "", 1);
	assert_int_equal(master_notify_init(), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path),
		cmocka_unit_test(test_abstract),
		cmocka_unit_test(test_unset_and_bad),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
