/* The real ringgate-auth binary, started as master starts it (fd 3 =
 * SEQPACKET channel), with this test playing master and two login
 * processes. Checks the failure delay does not hold up other requests, the
 * cookie round trip, and that a misbehaving login channel is cut off alone. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "lib/ipc.h"

#include <crypt.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[64];
static pid_t auth_pid;
static int master_fd = -1;
static struct ipc_rx rx;

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void write_file(const char *name, const char *text)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* 1 with a message in rx, 0 on EOF, -1 on timeout */
static int recv_msg(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int ret = poll(&p, 1, timeout_ms);
	assert_true(ret >= 0);
	if (ret == 0)
		return -1;
	const char *error = NULL;
	ret = ipc_recv(fd, &rx, &error);
	if (ret < 0)
		fail_msg("ipc_recv: %d %s", ret, error != NULL ? error : "");
	return ret;
}

static void expect(int fd, enum ipc_type type, uint32_t id, int timeout_ms)
{
	if (recv_msg(fd, timeout_ms) != 1)
		fail_msg("no %s (id %u) within %d ms", ipc_type_name(type), id, timeout_ms);
	if (rx.hdr.type != type || rx.hdr.id != id)
		fail_msg("got %s id %u, wanted %s id %u", ipc_type_name(rx.hdr.type), rx.hdr.id,
			 ipc_type_name(type), id);
}

static int new_login(uint32_t pid)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	struct ipc_msg msg;
	ipc_msg_init(&msg, IPC_AUTH_NEW_CLIENT, pid);
	ipc_msg_add_str(&msg, IPC_F_SERVICE, "imap");
	assert_int_equal(ipc_send(master_fd, &msg, sv[1]), 0);
	close(sv[1]);
	return sv[0];
}

static void begin(int fd, uint32_t id, const char *mech, const char *rip, const void *resp,
		  size_t resp_len)
{
	struct ipc_msg msg;
	ipc_msg_init(&msg, IPC_AUTH_BEGIN, id);
	ipc_msg_add_str(&msg, IPC_F_MECH, mech);
	ipc_msg_add_str(&msg, IPC_F_SERVICE, "imap");
	ipc_msg_add_str(&msg, IPC_F_RIP, rip);
	ipc_msg_add_str(&msg, IPC_F_RPORT, "40000");
	ipc_msg_add_str(&msg, IPC_F_LIP, "127.0.0.1");
	ipc_msg_add_str(&msg, IPC_F_LPORT, "143");
	if (resp != NULL)
		ipc_msg_add(&msg, IPC_F_RESP, resp, resp_len);
	assert_int_equal(ipc_send(fd, &msg, -1), 0);
}

static void cont(int fd, uint32_t id, const char *resp)
{
	struct ipc_msg msg;
	ipc_msg_init(&msg, IPC_AUTH_CONTINUE, id);
	ipc_msg_add(&msg, IPC_F_RESP, resp, strlen(resp));
	assert_int_equal(ipc_send(fd, &msg, -1), 0);
}

#define PLAIN(s) s, sizeof(s) - 1

/* AUTH_REQUEST for cookie from login_pid; returns the reply type */
static enum ipc_type request(const char *cookie, uint32_t login_pid, uint32_t id)
{
	struct ipc_msg msg;
	ipc_msg_init(&msg, IPC_AUTH_REQUEST, id);
	ipc_msg_add_str(&msg, IPC_F_COOKIE, cookie);
	ipc_msg_add_uint(&msg, IPC_F_LOGIN_PID, login_pid);
	assert_int_equal(ipc_send(master_fd, &msg, -1), 0);
	assert_int_equal(recv_msg(master_fd, 2000), 1);
	assert_int_equal(rx.hdr.id, id);
	return (enum ipc_type)rx.hdr.type;
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/rgauth-proc-XXXXXX");
	assert_non_null(mkdtemp(dir));
	/* auth drops to default_internal_user and re-stats the file */
	chmod(dir, 0755);

	struct crypt_data *cd = calloc(1, sizeof(*cd));
	const char *hash = crypt_rn("bobpass", "$6$fixedsaltfixed$", cd, (int)sizeof(*cd));
	assert_non_null(hash);
	char users[1024];
	snprintf(users, sizeof(users),
		 "# test users\n"
		 "alice:secret:1000:1000::/home/alice::userdb_mail=maildir:~/Mail userdb_quota=1G\n"
		 "bob:{SHA512-CRYPT}%s:1001:1001::/home/bob\n"
		 "carol:{PLAIN}pw:1002:1002::/home/carol::proxy host=10.0.0.5 port=143\n"
		 "dave:{PLAIN}pw:1003:1003::/home/dave::nologin reason=Moved\n"
		 "frank:{PLAIN}pw::::::proxy host=localhost port=993 ssl=yes\n"
		 "gina:{PLAIN}pw::::::proxy host=imap.example hostip=192.0.2.9\n"
		 "erin:{PLAIN}pw\n",
		 hash);
	free(cd);
	write_file("users", users);
	char conf[1024];
	snprintf(conf, sizeof(conf),
		 "ssl = no\n"
		 "disable_plaintext_auth = no\n"
		 "auth_mechanisms = plain login\n"
		 "auth_failure_delay = 1 secs\n"
		 "mail_location = maildir:~/Maildir\n"
		 "passdb {\n  driver = passwd-file\n  args = scheme=PLAIN %s/users\n}\n"
		 "userdb {\n  driver = passwd-file\n  args = %s/users\n}\n",
		 dir, dir);
	write_file("ringgate.conf", conf);

	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	auth_pid = fork();
	assert_true(auth_pid >= 0);
	if (auth_pid == 0) {
		if (dup2(sv[1], 3) < 0)
			_exit(100);
		char cpath[128];
		snprintf(cpath, sizeof(cpath), "%s/ringgate.conf", dir);
		execl(RINGGATE_AUTH_BIN, "ringgate-auth", "-c", cpath, (char *)NULL);
		_exit(101);
	}
	close(sv[1]);
	master_fd = sv[0];
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (auth_pid > 0) {
		kill(auth_pid, SIGKILL);
		waitpid(auth_pid, NULL, 0);
	}
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		return -1;
	return 0;
}

static void test_process(void **state)
{
	(void)state;
	int l1 = new_login(1111);
	int l2 = new_login(2222);

	/* a wrong password on l1 is answered only after the delay ... */
	int64_t t0 = now_ms();
	begin(l1, 1, "PLAIN", "192.0.2.7", PLAIN("\0alice\0wrong"));
	/* ... while a right one on l2 is answered at once (default scheme PLAIN) */
	begin(l2, 5, "PLAIN", "192.0.2.8", PLAIN("\0alice\0secret"));
	/* answered before the failure delay ran out: l1 is still waiting
	 * below (an order, not a wall-clock bound: ASan on a loaded machine
	 * missed 700 ms) */
	expect(l2, IPC_AUTH_OK, 5, 950);
	assert_string_equal(ipc_str(&rx.fields, IPC_F_USER), "alice");
	const char *ck = ipc_str(&rx.fields, IPC_F_COOKIE);
	assert_non_null(ck);
	assert_int_equal(strlen(ck), 32);
	assert_int_equal(strspn(ck, "0123456789abcdef"), 32);
	assert_false(ipc_has(&rx.fields, IPC_F_EXTRA));
	char cookie[33];
	memcpy(cookie, ck, 33);
	assert_int_equal(recv_msg(l1, 0), -1); /* still waiting */
	if (geteuid() == 0) {
		/* started as root, it serves as default_internal_user */
		char spath[64], line[256];
		snprintf(spath, sizeof(spath), "/proc/%ld/status", (long)auth_pid);
		FILE *f = fopen(spath, "r");
		assert_non_null(f);
		long ruid = -1, euid = -1, suid = -1;
		while (fgets(line, sizeof(line), f) != NULL)
			(void)sscanf(line, "Uid: %ld %ld %ld", &ruid, &euid, &suid);
		fclose(f);
		assert_true(ruid > 0 && euid > 0 && suid > 0);
	}

	expect(l1, IPC_AUTH_FAIL, 1, 3000);
	int64_t waited = now_ms() - t0;
	assert_true(waited >= 950);
	assert_true(waited < 3000);
	assert_string_equal(ipc_str(&rx.fields, IPC_F_USER), "alice");
	assert_false(ipc_has(&rx.fields, IPC_F_TEMP));

	/* second phase: the cookie gives the userdb fields once */
	assert_int_equal(request(cookie, 2222, 77), IPC_AUTH_USER);
	assert_string_equal(ipc_str(&rx.fields, IPC_F_USER), "alice");
	assert_string_equal(ipc_str(&rx.fields, IPC_F_UID), "1000");
	assert_string_equal(ipc_str(&rx.fields, IPC_F_GID), "1000");
	assert_string_equal(ipc_str(&rx.fields, IPC_F_HOME), "/home/alice");
	assert_string_equal(ipc_str(&rx.fields, IPC_F_MAIL), "maildir:~/Mail");
	assert_string_equal(ipc_str(&rx.fields, IPC_F_EXTRA), "quota=1G");
	assert_int_equal(request(cookie, 2222, 78), IPC_AUTH_FAIL);
	assert_non_null(ipc_str(&rx.fields, IPC_F_REASON));

	/* a cookie is bound to the login process it was given to */
	begin(l2, 6, "PLAIN", "192.0.2.8", PLAIN("alice\0alice\0secret"));
	expect(l2, IPC_AUTH_OK, 6, 3000);
	memcpy(cookie, ipc_str(&rx.fields, IPC_F_COOKIE), 33);
	assert_int_equal(request(cookie, 1111, 79), IPC_AUTH_FAIL);
	assert_int_equal(request(cookie, 2222, 80), IPC_AUTH_FAIL); /* burnt */
	assert_int_equal(request("nonsense", 2222, 81), IPC_AUTH_FAIL);

	/* LOGIN with a SHA512-CRYPT user; mail falls back to mail_location */
	begin(l2, 7, "LOGIN", "192.0.2.8", NULL, 0);
	expect(l2, IPC_AUTH_CHALLENGE, 7, 3000);
	assert_int_equal(rx.fields.len[IPC_F_CHALLENGE], 9);
	assert_memory_equal(rx.fields.val[IPC_F_CHALLENGE], "Username:", 9);
	cont(l2, 7, "bob");
	expect(l2, IPC_AUTH_CHALLENGE, 7, 3000);
	assert_memory_equal(rx.fields.val[IPC_F_CHALLENGE], "Password:", 9);
	cont(l2, 7, "bobpass");
	expect(l2, IPC_AUTH_OK, 7, 3000);
	memcpy(cookie, ipc_str(&rx.fields, IPC_F_COOKIE), 33);
	assert_int_equal(request(cookie, 2222, 82), IPC_AUTH_USER);
	assert_string_equal(ipc_str(&rx.fields, IPC_F_UID), "1001");
	assert_string_equal(ipc_str(&rx.fields, IPC_F_HOME), "/home/bob");
	assert_string_equal(ipc_str(&rx.fields, IPC_F_MAIL), "maildir:~/Maildir");
	assert_false(ipc_has(&rx.fields, IPC_F_EXTRA));

	/* PLAIN without an initial response: an empty challenge first */
	begin(l2, 8, "PLAIN", "192.0.2.8", NULL, 0);
	expect(l2, IPC_AUTH_CHALLENGE, 8, 3000);
	assert_int_equal(rx.fields.len[IPC_F_CHALLENGE], 0);
	struct ipc_msg msg;
	ipc_msg_init(&msg, IPC_AUTH_CONTINUE, 8);
	ipc_msg_add(&msg, IPC_F_RESP, "\0carol\0pw", 9);
	assert_int_equal(ipc_send(l2, &msg, -1), 0);
	expect(l2, IPC_AUTH_OK, 8, 3000);
	/* passdb extra fields travel with AUTH_OK */
	assert_string_equal(ipc_str(&rx.fields, IPC_F_EXTRA), "proxy\thost=10.0.0.5\tport=143");
	/* a host name: resolved by auth's resolver child, added as hostip */
	begin(l2, 12, "PLAIN", "192.0.2.8", PLAIN("\0frank\0pw"));
	expect(l2, IPC_AUTH_OK, 12, 5000);
	assert_string_equal(ipc_str(&rx.fields, IPC_F_EXTRA),
			    "proxy\thost=localhost\tport=993\tssl=yes\thostip=127.0.0.1");
	assert_memory_equal(rx.fields.val[IPC_F_PASS], "pw", 2);
	/* hostip given by the passdb: no lookup */
	begin(l2, 13, "PLAIN", "192.0.2.8", PLAIN("\0gina\0pw"));
	expect(l2, IPC_AUTH_OK, 13, 3000);
	assert_string_equal(ipc_str(&rx.fields, IPC_F_EXTRA),
			    "proxy\thost=imap.example\thostip=192.0.2.9");
	/* a burst of 400 lookups: answered in order, all of them (the
	 * resolver keeps up here; when it does not, auth queues lookups in
	 * an ipc_outq as it does replies) */
	int lb = new_login(3333);
	for (uint32_t id = 1000; id < 1400; id++)
		begin(lb, id, "PLAIN", "192.0.2.8", PLAIN("\0frank\0pw"));
	for (uint32_t id = 1000; id < 1400; id++) {
		expect(lb, IPC_AUTH_OK, id, 10000);
		assert_non_null(strstr(ipc_str(&rx.fields, IPC_F_EXTRA), "\thostip=127.0.0.1"));
	}
	close(lb);

	/* nologin: refused with its reason, without delay */
	t0 = now_ms();
	begin(l2, 9, "PLAIN", "192.0.2.8", PLAIN("\0dave\0pw"));
	expect(l2, IPC_AUTH_FAIL, 9, 3000);
	assert_string_equal(ipc_str(&rx.fields, IPC_F_REASON), "Moved");
	/* no uid/gid: the userdb cannot serve the user, a temporary failure */
	begin(l2, 10, "PLAIN", "192.0.2.8", PLAIN("\0erin\0pw"));
	expect(l2, IPC_AUTH_FAIL, 10, 3000);
	assert_true(ipc_has(&rx.fields, IPC_F_TEMP));
	/* a mechanism we do not offer */
	begin(l2, 11, "CRAM-MD5", "192.0.2.8", NULL, 0);
	expect(l2, IPC_AUTH_FAIL, 11, 3000);
	assert_non_null(ipc_str(&rx.fields, IPC_F_REASON));
	assert_true(now_ms() - t0 < 950); /* under the 1 s failure delay */

	/* the second consecutive failure from 192.0.2.7 waits longer (penalty) */
	t0 = now_ms();
	begin(l1, 2, "PLAIN", "192.0.2.7", PLAIN("\0nosuchuser\0x"));
	expect(l1, IPC_AUTH_FAIL, 2, 4000);
	waited = now_ms() - t0;
	assert_true(waited >= 1950);

	/* an aborted request is never answered; a closed channel with a
	   delayed failure pending is harmless */
	begin(l1, 3, "PLAIN", "192.0.2.9", PLAIN("\0alice\0bad"));
	struct ipc_msg ab;
	ipc_msg_init(&ab, IPC_AUTH_ABORT, 3);
	assert_int_equal(ipc_send(l1, &ab, -1), 0);
	int l3 = new_login(3333);
	begin(l3, 1, "PLAIN", "192.0.2.10", PLAIN("\0alice\0bad"));
	close(l3);
	assert_int_equal(recv_msg(l1, 1300), -1);

	/* passwd-file gone (checked at most once a second, and a second has
	   passed): a temporary failure at once, and back to normal after */
	char path[128], moved[128];
	snprintf(path, sizeof(path), "%s/users", dir);
	snprintf(moved, sizeof(moved), "%s/users.moved", dir);
	assert_int_equal(rename(path, moved), 0);
	t0 = now_ms();
	begin(l1, 20, "PLAIN", "192.0.2.12", PLAIN("\0alice\0secret"));
	expect(l1, IPC_AUTH_FAIL, 20, 3000);
	assert_true(ipc_has(&rx.fields, IPC_F_TEMP));
	assert_true(now_ms() - t0 < 950); /* under the 1 s failure delay */
	assert_int_equal(rename(moved, path), 0);
	usleep(1100 * 1000);
	begin(l1, 21, "PLAIN", "192.0.2.12", PLAIN("\0alice\0secret"));
	expect(l1, IPC_AUTH_OK, 21, 3000);

	/* a login process sending garbage loses its channel, nobody else does */
	assert_int_equal(send(l2, "garbage", 7, 0), 7);
	assert_int_equal(recv_msg(l2, 2000), 0);
	begin(l1, 4, "PLAIN", "192.0.2.11", PLAIN("\0alice\0secret"));
	expect(l1, IPC_AUTH_OK, 4, 3000);

	/* master going away ends auth cleanly */
	close(master_fd);
	master_fd = -1;
	int status;
	assert_int_equal(waitpid(auth_pid, &status, 0), auth_pid);
	auth_pid = 0;
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	close(l1);
	close(l2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_process, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
