/* A reusable worker (`-r`, mail/worker.h) driven as master drives it: the
 * first WORKER_INIT with the client on fd 3, WORKER_DONE after the
 * session, the next WORKER_INIT with its client socket attached, exit when
 * the channel closes; and the WORKER_INITs it must refuse (a malformed
 * F_GROUPS, groups without ids, another uid or chroot than its first
 * session's). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "harness.h"
#include "lib/alloc.h"
#include "lib/ipc.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TIMEOUT_MS 5000

struct reuse {
	struct wh_home *h;
	pid_t pid;
	int chan;              /* master's end */
	struct worker_proc client;
};

static int setup(void **state)
{
	struct reuse *r = rg_calloc(1, sizeof(*r));
	r->h = wh_home_new();
	wh_put_msg(r->h->md, "cur", "1000.a.host:2,", "Subject: one\n\nbody\n", 0);
	*state = r;
	return 0;
}

static int teardown(void **state)
{
	struct reuse *r = *state;
	if (r->chan >= 0)
		close(r->chan);
	wh_home_free(r->h);
	rg_free(r);
	return 0;
}

/* WORKER_INIT for ringgate-pop3; extra fields as key/value pairs */
static void send_init(struct reuse *r, int client_fd, const char *const *extra)
{
	struct ipc_msg *msg = rg_malloc(sizeof(*msg));
	ipc_msg_init(msg, IPC_WORKER_INIT, 0);
	ipc_msg_add_str(msg, IPC_F_SERVICE, "pop3");
	ipc_msg_add_str(msg, IPC_F_USER, "testuser");
	ipc_msg_add_str(msg, IPC_F_HOME, r->h->home);
	ipc_msg_add_str(msg, IPC_F_MAIL, "maildir:~/Maildir");
	for (unsigned i = 0; extra != NULL && extra[i] != NULL; i += 2)
		ipc_msg_add_str(msg, (enum ipc_field)(uintptr_t)extra[i], extra[i + 1]);
	assert_int_equal(ipc_send(r->chan, msg, client_fd), 0);
	rg_free(msg);
}

/* fork+exec ringgate-pop3 -r as master does: fd 3 the first client,
 * fd 4 the channel; the first WORKER_INIT carries extra */
static void start(struct reuse *r, const char *const *extra)
{
	int client[2], chan[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, client), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, chan), 0);
	char *path = rg_strdup_printf("%s/ringgate-pop3", WORKER_BIN_DIR);
	r->pid = fork();
	assert_true(r->pid >= 0);
	if (r->pid == 0) {
		if (dup2(client[1], 3) < 0 || dup2(chan[1], 4) < 0 || chdir(r->h->home) < 0)
			_exit(120);
		execl(path, "ringgate-pop3", "-r", (char *)NULL);
		_exit(121);
	}
	rg_free(path);
	close(client[1]);
	close(chan[1]);
	r->chan = chan[0];
	r->client = (struct worker_proc){ .pid = r->pid, .fd = client[0] };
	send_init(r, -1, extra);
}

/* a new client socket, its worker end sent with the next WORKER_INIT */
static void next_session(struct reuse *r, const char *const *extra)
{
	int client[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, client), 0);
	send_init(r, client[1], extra);
	close(client[1]);
	r->client.fd = client[0];
}

static void expect(struct worker_proc *w, const char *cmd, const char *reply)
{
	if (cmd != NULL)
		wh_send(w, cmd);
	char *got = wh_read_until(w, "\r\n", NULL);
	assert_string_equal(got, reply);
	rg_free(got);
}

/* one POP3 session on the current client, which the worker then closes */
static void pop3_session(struct reuse *r)
{
	expect(&r->client, NULL, "+OK Logged in.\r\n");
	wh_send(&r->client, "STAT\r\n");
	char *stat = wh_read_until(&r->client, "\r\n", NULL);
	assert_true(strncmp(stat, "+OK 1 ", 6) == 0);
	rg_free(stat);
	expect(&r->client, "QUIT\r\n", "+OK Logging out.\r\n");
	assert_true(wh_read_eof(&r->client));
	close(r->client.fd);
	r->client.fd = -1;
}

static void expect_done(struct reuse *r)
{
	struct pollfd pfd = { .fd = r->chan, .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, TIMEOUT_MS), 1);
	struct ipc_rx *rx = rg_malloc(sizeof(*rx));
	const char *error = NULL;
	assert_true(ipc_recv(r->chan, rx, &error) > 0);
	assert_int_equal(rx->hdr.type, IPC_WORKER_DONE);
	assert_int_equal(rx->fd, -1);
	rg_free(rx);
}

/* exit status once master's end is closed (or the worker gave up) */
static int finish(struct reuse *r)
{
	close(r->chan);
	r->chan = -1;
	return wh_finish(&r->client);
}

static void test_three_sessions_then_let_go(void **state)
{
	struct reuse *r = *state;
	start(r, NULL);
	pop3_session(r);
	for (int i = 0; i < 2; i++) {
		expect_done(r);
		next_session(r, NULL);
		pop3_session(r);
	}
	expect_done(r);
	/* master closes the channel: the worker exits cleanly */
	assert_int_equal(finish(r), 0);
}

static void test_same_ids_accepted(void **state)
{
	struct reuse *r = *state;
	char uid[16], gid[16];
	snprintf(uid, sizeof(uid), "%lu", (unsigned long)getuid());
	snprintf(gid, sizeof(gid), "%lu", (unsigned long)getgid());
	const char *const ids[] = { (const char *)(uintptr_t)IPC_F_UID, uid,
				    (const char *)(uintptr_t)IPC_F_GID, gid, NULL };
	start(r, getuid() == 0 ? NULL : ids);
	pop3_session(r);
	expect_done(r);
	next_session(r, ids);
	pop3_session(r);
	expect_done(r);
	assert_int_equal(finish(r), 0);
}

/* a later WORKER_INIT the worker must refuse: it exits with an error
 * before it greets the client */
static void refused_later(struct reuse *r, const char *const *extra)
{
	start(r, NULL);
	pop3_session(r);
	expect_done(r);
	next_session(r, extra);
	assert_true(wh_read_eof(&r->client));
	assert_int_not_equal(finish(r), 0);
}

static void test_other_uid_refused(void **state)
{
	char uid[16], gid[16];
	snprintf(uid, sizeof(uid), "%lu", (unsigned long)getuid() + 1);
	snprintf(gid, sizeof(gid), "%lu", (unsigned long)getgid());
	const char *const ids[] = { (const char *)(uintptr_t)IPC_F_UID, uid,
				    (const char *)(uintptr_t)IPC_F_GID, gid, NULL };
	refused_later(*state, ids);
}

static void test_other_chroot_refused(void **state)
{
	const char *const jail[] = { (const char *)(uintptr_t)IPC_F_CHROOT, "/nonexistent", NULL };
	refused_later(*state, jail);
}

static void test_bad_groups_refused(void **state)
{
	char uid[16], gid[16];
	snprintf(uid, sizeof(uid), "%lu", (unsigned long)getuid());
	snprintf(gid, sizeof(gid), "%lu", (unsigned long)getgid());
	/* 65 groups: one more than a worker takes */
	char many[65 * 2];
	for (int i = 0; i < 65; i++)
		memcpy(many + 2 * i, i < 64 ? "1," : "1", 2);
	const char *const bad[] = { "", "1,", ",1", "1,,2", "x", "1 2", "-1", "+1", "1x",
				    "99999999999999999999", "4294967295", many };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *const f[] = { (const char *)(uintptr_t)IPC_F_UID, uid,
					  (const char *)(uintptr_t)IPC_F_GID, gid,
					  (const char *)(uintptr_t)IPC_F_GROUPS, bad[i], NULL };
		struct reuse *r = *state;
		start(r, f);
		/* fatal before the greeting */
		assert_true(wh_read_eof(&r->client));
		assert_int_not_equal(finish(r), 0);
	}
	/* groups without ids */
	const char *const f[] = { (const char *)(uintptr_t)IPC_F_GROUPS, "5", NULL };
	struct reuse *r = *state;
	start(r, f);
	assert_true(wh_read_eof(&r->client));
	assert_int_not_equal(finish(r), 0);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_three_sessions_then_let_go, setup, teardown),
		cmocka_unit_test_setup_teardown(test_same_ids_accepted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_uid_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_chroot_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_groups_refused, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
