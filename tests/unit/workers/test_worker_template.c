/* A worker template (mail/worker-template.h): WORKER_SETUP's decoder with
 * every field and every malformed shape, and the real `ringgate-pop3 -T`
 * driven as master drives it: READY, a child per WORKER_SPAWN (made with
 * CLONE_PARENT: ours, since the template is our child) that reads its
 * WORKER_SETUP and WORKER_INIT (the client attached) and serves a POP3
 * session under its own pid; the template's exit when the channel closes,
 * its fatal end on a malformed request, a child's on a malformed setup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "harness.h"
#include "lib/alloc.h"
#include "lib/ipc.h"
#include "mail/worker-template.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define TIMEOUT_MS 5000
#define FATAL_STATUS 89

/* ---- the decoder ------------------------------------------------------ */

static struct ipc_msg msg;
static struct ipc_hdr hdr;
static struct ipc_fields fields;

/* a WORKER_SETUP of key/value pairs (NULL-terminated), decoded */
static const struct ipc_fields *setup_msg(const char *const *kv)
{
	ipc_msg_init(&msg, IPC_WORKER_SETUP, 0);
	for (unsigned i = 0; kv[i] != NULL; i += 2)
		ipc_msg_add(&msg, (enum ipc_field)(uintptr_t)kv[i], kv[i + 1], strlen(kv[i + 1]));
	struct ipc_hdr h = { .type = IPC_WORKER_SETUP, .len = (uint32_t)(msg.len - IPC_HDR_SIZE) };
	memcpy(msg.buf, &h, sizeof(h));
	const char *error = NULL;
	assert_true(ipc_decode(msg.buf, msg.len, &hdr, &fields, &error));
	return &fields;
}

#define F(k) ((const char *)(uintptr_t)(k))

static void test_parse_full(void **state)
{
	(void)state;
	const char *const kv[] = {
		F(IPC_F_UID), "1001", F(IPC_F_GID), "1002", F(IPC_F_GROUPS), "8,12",
		F(IPC_F_CHROOT), "/srv/jail", F(IPC_F_HOME), "/srv/jail/u",
		F(IPC_F_VSZ), "268435456", F(IPC_F_REUSE), "1", NULL,
	};
	struct worker_setup s;
	const char *error = NULL;
	assert_true(worker_setup_parse(setup_msg(kv), &s, &error));
	assert_true(s.drop);
	assert_int_equal(s.uid, 1001);
	assert_int_equal(s.gid, 1002);
	assert_int_equal(s.ngroups, 2);
	assert_int_equal(s.groups[0], 8);
	assert_int_equal(s.groups[1], 12);
	assert_true(s.keep_chroot);
	assert_string_equal(s.home, "/srv/jail/u");
	assert_int_equal(s.vsz, 268435456);
	assert_true(s.reuse);

	/* every truncation of it is refused by the framing, before the
	 * decoder sees a field */
	for (size_t cut = 0; cut < msg.len; cut++) {
		struct ipc_hdr h = { .type = IPC_WORKER_SETUP };
		if (cut >= IPC_HDR_SIZE)
			h.len = (uint32_t)(cut - IPC_HDR_SIZE);
		uint8_t *copy = rg_malloc(cut + 1);
		memcpy(copy, msg.buf, cut);
		if (cut >= IPC_HDR_SIZE)
			memcpy(copy, &h, sizeof(h));
		struct ipc_fields f;
		bool ok = ipc_decode(copy, cut, &hdr, &f, &error);
		/* a cut between two fields is a shorter message, which the
		 * decoder takes (uid and gid both there or neither) or refuses
		 * with a reason */
		if (ok) {
			error = NULL;
			bool ids = ipc_has(&f, IPC_F_UID) == ipc_has(&f, IPC_F_GID);
			assert_int_equal(worker_setup_parse(&f, &s, &error), ids);
			assert_true(ids || error != NULL);
		}
		rg_free(copy);
	}
}

static void test_parse_minimal(void **state)
{
	(void)state;
	const char *const none[] = { NULL };
	struct worker_setup s;
	const char *error = NULL;
	assert_true(worker_setup_parse(setup_msg(none), &s, &error));
	assert_false(s.drop);
	assert_false(s.keep_chroot);
	assert_null(s.home);
	assert_int_equal(s.vsz, 0);
	assert_false(s.reuse);
	assert_int_equal(s.ngroups, 0);
	/* root's ids are ids like any other; an empty home means "/" */
	const char *const root[] = { F(IPC_F_UID), "0", F(IPC_F_GID), "0", F(IPC_F_HOME), "", NULL };
	assert_true(worker_setup_parse(setup_msg(root), &s, &error));
	assert_true(s.drop);
	assert_string_equal(s.home, "");
}

static void expect_bad(const char *const *kv, const char *why)
{
	struct worker_setup s;
	const char *error = NULL;
	assert_false(worker_setup_parse(setup_msg(kv), &s, &error));
	assert_non_null(error);
	assert_non_null(strstr(error, why));
}

static void test_parse_bad(void **state)
{
	(void)state;
	/* ids: both or neither, decimal, below -1 */
	expect_bad((const char *const[]){ F(IPC_F_UID), "1", NULL }, "F_UID");
	expect_bad((const char *const[]){ F(IPC_F_GID), "1", NULL }, "F_UID");
	expect_bad((const char *const[]){ F(IPC_F_UID), "x", F(IPC_F_GID), "1", NULL }, "F_UID");
	expect_bad((const char *const[]){ F(IPC_F_UID), "1", F(IPC_F_GID), "-1", NULL }, "F_UID");
	expect_bad((const char *const[]){ F(IPC_F_UID), "4294967295", F(IPC_F_GID), "1", NULL }, "F_UID");
	expect_bad((const char *const[]){ F(IPC_F_UID), "1", F(IPC_F_GID), "4294967296", NULL }, "F_UID");
	expect_bad((const char *const[]){ F(IPC_F_UID), "", F(IPC_F_GID), "1", NULL }, "F_UID");
	/* groups: only with ids, well-formed, at most 64 */
	expect_bad((const char *const[]){ F(IPC_F_GROUPS), "5", NULL }, "F_GROUPS");
	static const char *const bad_groups[] = { "", ",", "5,", ",5", "5,,6", "+5", "-5", "5 6",
						  "5a", "4294967295" };
	for (unsigned i = 0; i < sizeof(bad_groups) / sizeof(bad_groups[0]); i++)
		expect_bad((const char *const[]){ F(IPC_F_UID), "1", F(IPC_F_GID), "1",
						  F(IPC_F_GROUPS), bad_groups[i], NULL }, "F_GROUPS");
	char many[65 * 3 + 1] = "";
	for (unsigned i = 0; i < 65; i++)
		strcat(many, i == 0 ? "1" : ",1");
	expect_bad((const char *const[]){ F(IPC_F_UID), "1", F(IPC_F_GID), "1",
					  F(IPC_F_GROUPS), many, NULL }, "F_GROUPS");
	/* chroot: only with ids, absolute, no NUL */
	expect_bad((const char *const[]){ F(IPC_F_CHROOT), "/j", NULL }, "F_CHROOT");
	expect_bad((const char *const[]){ F(IPC_F_UID), "1", F(IPC_F_GID), "1",
					  F(IPC_F_CHROOT), "", NULL }, "F_CHROOT");
	expect_bad((const char *const[]){ F(IPC_F_UID), "1", F(IPC_F_GID), "1",
					  F(IPC_F_CHROOT), "j", NULL }, "F_CHROOT");
	/* numbers and flags */
	expect_bad((const char *const[]){ F(IPC_F_VSZ), "", NULL }, "F_VSZ");
	expect_bad((const char *const[]){ F(IPC_F_VSZ), "1M", NULL }, "F_VSZ");
	expect_bad((const char *const[]){ F(IPC_F_VSZ), "-1", NULL }, "F_VSZ");
	expect_bad((const char *const[]){ F(IPC_F_VSZ), "99999999999999999999", NULL }, "F_VSZ");
	expect_bad((const char *const[]){ F(IPC_F_REUSE), "0", NULL }, "F_REUSE");
	expect_bad((const char *const[]){ F(IPC_F_REUSE), "yes", NULL }, "F_REUSE");
	expect_bad((const char *const[]){ F(IPC_F_REUSE), "", NULL }, "F_REUSE");
}

static void test_parse_embedded_nul(void **state)
{
	(void)state;
	struct worker_setup s;
	const char *error = NULL;
	static const char home[] = "/h\0/x";
	static const char jail[] = "/j\0x";
	ipc_msg_init(&msg, IPC_WORKER_SETUP, 0);
	ipc_msg_add(&msg, IPC_F_HOME, home, sizeof(home) - 1);
	struct ipc_hdr h = { .type = IPC_WORKER_SETUP, .len = (uint32_t)(msg.len - IPC_HDR_SIZE) };
	memcpy(msg.buf, &h, sizeof(h));
	assert_true(ipc_decode(msg.buf, msg.len, &hdr, &fields, &error));
	assert_false(worker_setup_parse(&fields, &s, &error));
	assert_non_null(strstr(error, "F_HOME"));

	ipc_msg_init(&msg, IPC_WORKER_SETUP, 0);
	ipc_msg_add_str(&msg, IPC_F_UID, "1");
	ipc_msg_add_str(&msg, IPC_F_GID, "1");
	ipc_msg_add(&msg, IPC_F_CHROOT, jail, sizeof(jail) - 1);
	h.len = (uint32_t)(msg.len - IPC_HDR_SIZE);
	memcpy(msg.buf, &h, sizeof(h));
	assert_true(ipc_decode(msg.buf, msg.len, &hdr, &fields, &error));
	assert_false(worker_setup_parse(&fields, &s, &error));
	assert_non_null(strstr(error, "F_CHROOT"));
}

/* ---- the real template ------------------------------------------------ */

struct tpl {
	struct wh_home *h;
	pid_t pid;
	int chan; /* master's end */
};

static struct ipc_rx *recv_msg(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, TIMEOUT_MS), 1);
	struct ipc_rx *rx = rg_malloc(sizeof(*rx));
	const char *error = NULL;
	assert_true(ipc_recv(fd, rx, &error) > 0);
	return rx;
}

static void tpl_start(struct tpl *t)
{
	int chan[2];
	t->h = wh_home_new();
	wh_put_msg(t->h->md, "cur", "1000.a.host:2,", "Subject: one\n\nbody\n", 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, chan), 0);
	char *path = rg_strdup_printf("%s/ringgate-pop3", WORKER_BIN_DIR);
	t->pid = fork();
	assert_true(t->pid >= 0);
	if (t->pid == 0) {
		/* above the targets first: dup2() onto itself would keep
		 * close-on-exec */
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		int null_hi = fcntl(null, F_DUPFD_CLOEXEC, 10);
		int chan_hi = fcntl(chan[1], F_DUPFD_CLOEXEC, 10);
		if (null_hi < 0 || chan_hi < 0 || dup2(null_hi, 3) < 0 || dup2(chan_hi, 4) < 0)
			_exit(120);
		execl(path, "ringgate-pop3", "-T", (char *)NULL);
		_exit(121);
	}
	rg_free(path);
	close(chan[1]);
	t->chan = chan[0];
	struct ipc_rx *rx = recv_msg(t->chan);
	assert_int_equal(rx->hdr.type, IPC_WORKER_TEMPLATE_READY);
	assert_int_equal(rx->fd, -1);
	rg_free(rx);
}

static int tpl_finish(struct tpl *t)
{
	if (t->chan >= 0)
		close(t->chan);
	int status;
	assert_int_equal(waitpid(t->pid, &status, 0), t->pid);
	wh_home_free(t->h);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ask for a child whose channel holds setup (key/values) and, when
 * client_fd >= 0, a WORKER_INIT with it attached; its pid */
static pid_t tpl_spawn(struct tpl *t, const char *const *setup, int client_fd)
{
	int chan[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, chan), 0);
	struct ipc_msg *m = rg_malloc(sizeof(*m));
	ipc_msg_init(m, IPC_WORKER_SETUP, 0);
	for (unsigned i = 0; setup[i] != NULL; i += 2)
		ipc_msg_add_str(m, (enum ipc_field)(uintptr_t)setup[i], setup[i + 1]);
	assert_int_equal(ipc_send(chan[0], m, -1), 0);
	if (client_fd >= 0) {
		ipc_msg_init(m, IPC_WORKER_INIT, 0);
		ipc_msg_add_str(m, IPC_F_SERVICE, "pop3");
		ipc_msg_add_str(m, IPC_F_USER, "testuser");
		ipc_msg_add_str(m, IPC_F_HOME, t->h->home);
		ipc_msg_add_str(m, IPC_F_MAIL, "maildir:~/Maildir");
		assert_int_equal(ipc_send(chan[0], m, client_fd), 0);
	}
	static uint32_t id;
	ipc_msg_init(m, IPC_WORKER_SPAWN, ++id);
	assert_int_equal(ipc_send(t->chan, m, chan[1]), 0);
	rg_free(m);
	close(chan[0]); /* a single-session worker's: queued messages stay */
	close(chan[1]);
	struct ipc_rx *rx = recv_msg(t->chan);
	assert_int_equal(rx->hdr.type, IPC_WORKER_SPAWNED);
	assert_int_equal(rx->hdr.id, id);
	unsigned long long pid = 0;
	assert_true(ipc_uint(&rx->fields, IPC_F_LOGIN_PID, &pid));
	rg_free(rx);
	assert_true(pid > 1 && (pid_t)pid != t->pid);
	return (pid_t)pid;
}

static int child_status(pid_t pid)
{
	int status;
	/* CLONE_PARENT: the template's children are ours */
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_template_forks_sessions(void **state)
{
	(void)state;
	struct tpl t;
	tpl_start(&t);
	pid_t pids[2];
	for (unsigned i = 0; i < 2; i++) {
		int client[2];
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, client), 0);
		const char *const setup[] = { F(IPC_F_HOME), t.h->home, F(IPC_F_VSZ), "1073741824",
					      NULL };
		pids[i] = tpl_spawn(&t, setup, client[1]);
		close(client[1]);
		struct worker_proc w = { .pid = pids[i], .fd = client[0] };
		char *got = wh_read_until(&w, "\r\n", NULL);
		assert_string_equal(got, "+OK Logged in.\r\n");
		rg_free(got);
		wh_send(&w, "STAT\r\nQUIT\r\n");
		got = wh_read_until_line(&w, "+OK Logging out.");
		rg_free(got);
		assert_true(wh_read_eof(&w));
		close(client[0]);
		assert_int_equal(child_status(pids[i]), 0);
	}
	assert_int_not_equal(pids[0], pids[1]);
	/* master closes the channel: the template goes, cleanly */
	assert_int_equal(tpl_finish(&t), 0);
}

static void test_child_refuses_bad_setup(void **state)
{
	(void)state;
	struct tpl t;
	tpl_start(&t);
	int client[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, client), 0);
	const char *const setup[] = { F(IPC_F_REUSE), "yes", NULL };
	pid_t pid = tpl_spawn(&t, setup, client[1]);
	close(client[1]);
	struct worker_proc w = { .pid = pid, .fd = client[0] };
	/* it never serves the client */
	assert_true(wh_read_eof(&w));
	close(client[0]);
	assert_int_equal(child_status(pid), FATAL_STATUS);
	/* the template goes on: the next child is fine */
	pid = tpl_spawn(&t, (const char *const[]){ NULL }, -1);
	/* no WORKER_INIT, channel closed: it leaves quietly */
	assert_int_equal(child_status(pid), 0);
	assert_int_equal(tpl_finish(&t), 0);
}

static void test_template_refuses_bad_request(void **state)
{
	(void)state;
	struct tpl t;
	tpl_start(&t);
	struct ipc_msg m;
	ipc_msg_init(&m, IPC_WORKER_SPAWN, 1); /* no channel attached */
	assert_int_equal(ipc_send(t.chan, &m, -1), 0);
	assert_int_equal(tpl_finish(&t), FATAL_STATUS);

	tpl_start(&t);
	ipc_msg_init(&m, IPC_WORKER_INIT, 1); /* not for a template */
	assert_int_equal(ipc_send(t.chan, &m, -1), 0);
	assert_int_equal(tpl_finish(&t), FATAL_STATUS);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_full),
		cmocka_unit_test(test_parse_minimal),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_parse_embedded_nul),
		cmocka_unit_test(test_template_forks_sessions),
		cmocka_unit_test(test_child_refuses_bad_setup),
		cmocka_unit_test(test_template_refuses_bad_request),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
