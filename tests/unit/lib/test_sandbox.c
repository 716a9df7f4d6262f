/* Tests for the login process's seccomp filter (lib/sandbox.h with the
 * allow-list of login/login-sandbox.c): in a forked child, the calls a login
 * process makes still work (a TCP socket for a backend included), and opening
 * a file, exec, connect(2) (backends are reached through the ring), bind,
 * kill and ptrace kill the child with SIGSYS. Skipped in sanitizer builds, where the
 * filter is not installed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/sandbox.h"
#include "login/login-sandbox.h"

/* status of a child that enters the sandbox and runs fn */
static int run_sandboxed(void (*fn)(void))
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		const char *error;
		if (login_sandbox_enter(&error) < 0)
			_exit(90);
		fn();
		_exit(0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void allowed_calls(void)
{
	char buf[64];
	int sv[2];
	struct timespec ts;
	if (write(STDERR_FILENO, "", 0) < 0 || getpid() <= 0 ||
	    getrandom(buf, sizeof(buf), 0) != (ssize_t)sizeof(buf) ||
	    clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
		_exit(1);
	void *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		_exit(2);
	memset(p, 1, 1 << 20);
	if (madvise(p, 1 << 20, MADV_DONTNEED) < 0 || munmap(p, 1 << 20) < 0)
		_exit(3);
	/* the TLS hand-off makes a socketpair and shuts one side */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
	    shutdown(sv[0], SHUT_WR) < 0 || close(sv[0]) < 0 || close(sv[1]) < 0)
		_exit(4);
	/* a proxied user's backend socket (connected through the ring) */
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || close(fd) < 0)
		_exit(5);
	void *m = malloc(100000);
	free(m);
}

static void open_file(void)
{
	(void)open("/etc/passwd", O_RDONLY);
}

static void exec_shell(void)
{
	char *argv[] = { (char *)"sh", (char *)"-c", (char *)"true", NULL };
	(void)execv("/bin/sh", argv);
}

static void connect_direct(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(1) };
	sin.sin_addr.s_addr = htonl(0x7f000001);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	(void)connect(fd, (struct sockaddr *)&sin, sizeof(sin));
}

static void bind_socket(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	(void)bind(fd, (struct sockaddr *)&sin, sizeof(sin));
}

static void kill_parent(void)
{
	(void)kill(getppid(), 0);
}

static void ptrace_me(void)
{
	(void)ptrace(PTRACE_TRACEME, 0, NULL, NULL);
}

static void test_sandbox(void **state)
{
	(void)state;
	if (!sandbox_seccomp_supported())
		skip();
	int status = run_sandboxed(allowed_calls);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	void (*forbidden[])(void) = { open_file, exec_shell, connect_direct, bind_socket,
				       kill_parent, ptrace_me };
	for (size_t i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]); i++) {
		status = run_sandboxed(forbidden[i]);
		assert_true(WIFSIGNALED(status));
		assert_int_equal(WTERMSIG(status), SIGSYS);
	}
}

/* an allow-list too long for one filter is refused, not truncated */
static void test_too_many(void **state)
{
	(void)state;
	if (!sandbox_seccomp_supported())
		skip();
	int many[300] = { 0 };
	const char *error = NULL;
	assert_int_equal(sandbox_seccomp(many, 300, &error), -22);
	assert_non_null(error);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sandbox),
		cmocka_unit_test(test_too_many),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
