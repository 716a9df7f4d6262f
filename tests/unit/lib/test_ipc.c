/* The IPC framing: encode/decode round trips, every malformed shape the
 * decoder must refuse, and fd passing over a real SEQPACKET socketpair. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "lib/ipc.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static struct ipc_msg msg;

static void put_u16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }

static void test_round_trip(void **state)
{
	(void)state;
	struct ipc_hdr hdr;
	struct ipc_fields f;
	const char *error = NULL;
	static const uint8_t bin[] = { 0, 'u', 0, 'p', 0xff };

	ipc_msg_init(&msg, IPC_AUTH_BEGIN, 77);
	ipc_msg_add_str(&msg, IPC_F_MECH, "PLAIN");
	ipc_msg_add(&msg, IPC_F_RESP, bin, sizeof(bin));
	ipc_msg_add_uint(&msg, IPC_F_RPORT, 65535);
	ipc_msg_add(&msg, IPC_F_PREREAD, "", 0);
	/* what ipc_send does to the header */
	struct ipc_hdr h = { .type = IPC_AUTH_BEGIN, .len = (uint32_t)(msg.len - IPC_HDR_SIZE), .id = 77, .pid = 1 };
	memcpy(msg.buf, &h, sizeof(h));

	assert_true(ipc_decode(msg.buf, msg.len, &hdr, &f, &error));
	assert_int_equal(hdr.type, IPC_AUTH_BEGIN);
	assert_int_equal(hdr.id, 77);
	assert_string_equal(ipc_str(&f, IPC_F_MECH), "PLAIN");
	assert_int_equal(f.len[IPC_F_RESP], sizeof(bin));
	assert_memory_equal(f.val[IPC_F_RESP], bin, sizeof(bin));
	unsigned long long port = 0;
	assert_true(ipc_uint(&f, IPC_F_RPORT, &port));
	assert_int_equal(port, 65535);
	assert_true(ipc_has(&f, IPC_F_PREREAD));
	assert_int_equal(f.len[IPC_F_PREREAD], 0);
	assert_false(ipc_has(&f, IPC_F_USER));
	assert_null(ipc_str(&f, IPC_F_USER));
	assert_false(ipc_uint(&f, IPC_F_MECH, &port));

	/* every truncation of a valid message is refused */
	for (size_t cut = 0; cut < msg.len; cut++) {
		struct ipc_hdr h2 = h;
		if (cut >= IPC_HDR_SIZE) {
			h2.len = (uint32_t)(cut - IPC_HDR_SIZE);
			memcpy(msg.buf, &h2, sizeof(h2));
		}
		bool ok = ipc_decode(msg.buf, cut, &hdr, &f, &error);
		/* cutting exactly at a field boundary is a valid shorter message */
		if (ok)
			assert_true(cut >= IPC_HDR_SIZE);
	}
	memcpy(msg.buf, &h, sizeof(h));
	assert_true(ipc_decode(msg.buf, msg.len, &hdr, &f, &error));
}

static bool decode_raw(const uint8_t *payload, size_t plen, uint16_t type, uint16_t flags,
		       int32_t len_delta, const char **error_r)
{
	uint8_t buf[256];
	struct ipc_hdr h = { .type = type, .flags = flags,
			     .len = (uint32_t)((int32_t)plen + len_delta), .id = 1, .pid = 2 };
	struct ipc_hdr hdr;
	struct ipc_fields f;
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + IPC_HDR_SIZE, payload, plen);
	return ipc_decode(buf, IPC_HDR_SIZE + plen, &hdr, &f, error_r);
}

static void test_malformed(void **state)
{
	(void)state;
	const char *error = NULL;
	uint8_t p[64] = { 0 };
	struct ipc_hdr hdr;
	struct ipc_fields f;

	assert_false(ipc_decode(p, 3, &hdr, &f, &error));
	assert_string_equal(error, "message shorter than its header");
	assert_false(decode_raw(p, 0, IPC_NONE, 0, 0, &error));
	assert_string_equal(error, "unknown message type");
	assert_false(decode_raw(p, 0, IPC_TYPE_COUNT, 0, 0, &error));
	assert_string_equal(error, "unknown message type");
	assert_false(decode_raw(p, 0, IPC_AUTH_OK, 1, 0, &error));
	assert_string_equal(error, "unknown header flags");
	assert_false(decode_raw(p, 0, IPC_AUTH_OK, 0, 1, &error));
	assert_string_equal(error, "payload length does not match the message");
	assert_true(decode_raw(p, 0, IPC_AUTH_OK, 0, 0, &error));

	/* field header cut short */
	put_u16(p, IPC_F_USER);
	assert_false(decode_raw(p, 3, IPC_AUTH_OK, 0, 0, &error));
	assert_string_equal(error, "truncated field header");
	/* unknown keys */
	put_u16(p, 0); put_u16(p + 2, 0); p[4] = 0;
	assert_false(decode_raw(p, 5, IPC_AUTH_OK, 0, 0, &error));
	assert_string_equal(error, "unknown field key");
	put_u16(p, IPC_F_COUNT);
	assert_false(decode_raw(p, 5, IPC_AUTH_OK, 0, 0, &error));
	assert_string_equal(error, "unknown field key");
	/* length past the end */
	put_u16(p, IPC_F_USER); put_u16(p + 2, 10); memcpy(p + 4, "abc", 4);
	assert_false(decode_raw(p, 8, IPC_AUTH_OK, 0, 0, &error));
	assert_string_equal(error, "field runs past the message");
	/* missing NUL */
	put_u16(p + 2, 3); p[7] = 'x';
	assert_false(decode_raw(p, 8, IPC_AUTH_OK, 0, 0, &error));
	assert_string_equal(error, "field not NUL-terminated");
	p[7] = 0;
	assert_true(decode_raw(p, 8, IPC_AUTH_OK, 0, 0, &error));
	/* duplicate key */
	memcpy(p + 8, p, 8);
	assert_false(decode_raw(p, 16, IPC_AUTH_OK, 0, 0, &error));
	assert_string_equal(error, "duplicate field");
	/* numbers */
	ipc_msg_init(&msg, IPC_AUTH_USER, 0);
	ipc_msg_add_str(&msg, IPC_F_UID, "18446744073709551616");
	ipc_msg_add_str(&msg, IPC_F_GID, "12a");
	ipc_msg_add_str(&msg, IPC_F_RPORT, "18446744073709551615");
	struct ipc_hdr h = { .type = IPC_AUTH_USER, .len = (uint32_t)(msg.len - IPC_HDR_SIZE) };
	memcpy(msg.buf, &h, sizeof(h));
	assert_true(ipc_decode(msg.buf, msg.len, &hdr, &f, &error));
	unsigned long long v;
	assert_false(ipc_uint(&f, IPC_F_UID, &v));
	assert_false(ipc_uint(&f, IPC_F_GID, &v));
	assert_true(ipc_uint(&f, IPC_F_RPORT, &v));
	assert_true(v == 18446744073709551615ULL);
}

static void test_room(void **state)
{
	(void)state;
	static uint8_t big[IPC_MAX_PAYLOAD];
	ipc_msg_init(&msg, IPC_WORKER_INIT, 0);
	size_t room = ipc_msg_room(&msg);
	assert_true(room > 0 && room < IPC_MAX_PAYLOAD);
	ipc_msg_add(&msg, IPC_F_PREREAD, big, room);
	assert_int_equal(msg.len, IPC_MAX_MSG);
	assert_int_equal(ipc_msg_room(&msg), 0);
}

static void test_send_recv_fd(void **state)
{
	(void)state;
	int sv[2];
	static struct ipc_rx rx;
	const char *error = NULL;
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);

	int pipefd[2];
	assert_int_equal(pipe(pipefd), 0);
	ipc_msg_init(&msg, IPC_LOGIN_HANDOFF, 9);
	ipc_msg_add_str(&msg, IPC_F_USER, "demo");
	assert_int_equal(ipc_send(sv[0], &msg, pipefd[1]), 0);
	assert_int_equal(ipc_recv(sv[1], &rx, &error), 1);
	assert_int_equal(rx.hdr.type, IPC_LOGIN_HANDOFF);
	assert_int_equal(rx.hdr.pid, (uint32_t)getpid());
	assert_string_equal(ipc_str(&rx.fields, IPC_F_USER), "demo");
	assert_true(rx.fd >= 0);
	/* the received fd is the pipe's write end */
	assert_int_equal(write(rx.fd, "z", 1), 1);
	char c;
	assert_int_equal(read(pipefd[0], &c, 1), 1);
	assert_int_equal(c, 'z');
	close(rx.fd);

	/* no message: -EAGAIN; garbage: -EPROTO with the fd closed */
	assert_int_equal(ipc_recv(sv[1], &rx, &error), -EAGAIN);
	assert_int_equal(send(sv[0], "garbage", 7, 0), 7);
	assert_int_equal(ipc_recv(sv[1], &rx, &error), -EPROTO);
	assert_string_equal(error, "message shorter than its header");
	assert_int_equal(rx.fd, -1);

	close(sv[0]);
	assert_int_equal(ipc_recv(sv[1], &rx, &error), 0);
	close(sv[1]);
	close(pipefd[0]);
	close(pipefd[1]);
}

/* a full non-blocking channel: messages wait in order, with their fds,
 * until the reader makes room; nothing is lost or reordered */
static void test_outq(void **state)
{
	(void)state;
	int sv[2];
	static struct ipc_rx rx;
	const char *error = NULL;
	struct ipc_outq q = { 0 };
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv), 0);
	int pipefd[2];
	assert_int_equal(pipe(pipefd), 0);

	/* fill the socket until messages start to wait */
	unsigned sent = 0;
	while (!ipc_outq_pending(&q)) {
		ipc_msg_init(&msg, IPC_AUTH_BEGIN, sent);
		ipc_msg_add_str(&msg, IPC_F_USER, "someone");
		assert_int_equal(ipc_outq_send(&q, sv[0], &msg, -1), 0);
		sent++;
		assert_true(sent < 100000);
	}
	assert_true(sent > 1);
	/* more after the first queued one never skip the queue: one with an
	 * fd whose caller closes its copy at once, then plain ones */
	ipc_msg_init(&msg, IPC_LOGIN_HANDOFF, sent++);
	assert_int_equal(ipc_outq_send(&q, sv[0], &msg, pipefd[1]), 0);
	close(pipefd[1]);
	for (unsigned i = 0; i < 50; i++) {
		ipc_msg_init(&msg, IPC_AUTH_BEGIN, sent++);
		assert_int_equal(ipc_outq_send(&q, sv[0], &msg, -1), 0);
	}
	assert_int_equal(q.count, 52);
	assert_int_equal(ipc_outq_flush(&q, sv[0]), 1);

	/* read everything, flushing as room appears: ids arrive in order */
	unsigned got = 0;
	int passed = -1;
	while (got < sent) {
		int ret = ipc_recv(sv[1], &rx, &error);
		if (ret == -EAGAIN) {
			assert_true(ipc_outq_flush(&q, sv[0]) >= 0);
			continue;
		}
		assert_int_equal(ret, 1);
		assert_int_equal(rx.hdr.id, got);
		if (rx.hdr.type == IPC_LOGIN_HANDOFF) {
			assert_true(rx.fd >= 0);
			passed = rx.fd;
		} else {
			assert_int_equal(rx.fd, -1);
		}
		got++;
		if (ipc_outq_pending(&q))
			assert_true(ipc_outq_flush(&q, sv[0]) >= 0);
	}
	assert_false(ipc_outq_pending(&q));
	assert_int_equal(q.bytes, 0);
	assert_int_equal(ipc_outq_flush(&q, sv[0]), 0);
	/* the queue's duplicate kept the pipe open until it was passed */
	assert_true(passed >= 0);
	assert_int_equal(write(passed, "q", 1), 1);
	char c;
	assert_int_equal(read(pipefd[0], &c, 1), 1);
	assert_int_equal(c, 'q');
	close(passed);

	/* the bound: a peer that never reads gets -ENOBUFS, not all memory */
	int ret = 0;
	for (unsigned i = 0; i < 10000 && ret == 0; i++) {
		ipc_msg_init(&msg, IPC_AUTH_BEGIN, i);
		static const uint8_t big[8000];
		ipc_msg_add(&msg, IPC_F_RESP, big, sizeof(big));
		ret = ipc_outq_send(&q, sv[0], &msg, -1);
	}
	assert_int_equal(ret, -ENOBUFS);
	assert_true(q.bytes <= IPC_OUTQ_MAX_BYTES);
	assert_true(q.bytes > IPC_OUTQ_MAX_BYTES - 9000);
	ipc_outq_clear(&q);
	assert_false(ipc_outq_pending(&q));
	assert_int_equal(q.count, 0);

	/* a closed peer is an error, queued or not */
	close(sv[1]);
	ipc_msg_init(&msg, IPC_AUTH_BEGIN, 1);
	ret = ipc_outq_send(&q, sv[0], &msg, -1);
	assert_true(ret == -EPIPE || ret == -ECONNRESET);
	assert_false(ipc_outq_pending(&q));
	close(sv[0]);
	close(pipefd[0]);
}

/* the sender pid is asked once per process: a fork()ed child sends its own,
 * not its parent's, and the parent keeps its own */
static void test_sender_pid_after_fork(void **state)
{
	(void)state;
	int sv[2];
	static struct ipc_rx rx;
	const char *error = NULL;
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	ipc_msg_init(&msg, IPC_AUTH_BEGIN, 1);
	assert_int_equal(ipc_send(sv[0], &msg, -1), 0);
	assert_int_equal(ipc_recv(sv[1], &rx, &error), 1);
	assert_int_equal(rx.hdr.pid, (uint32_t)getpid());

	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		ipc_msg_init(&msg, IPC_AUTH_BEGIN, 2);
		_exit(ipc_send(sv[0], &msg, -1) == 0 ? 0 : 1);
	}
	int status;
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(ipc_recv(sv[1], &rx, &error), 1);
	assert_int_equal(rx.hdr.id, 2);
	assert_int_equal(rx.hdr.pid, (uint32_t)child);

	ipc_msg_init(&msg, IPC_AUTH_BEGIN, 3);
	assert_int_equal(ipc_send(sv[0], &msg, -1), 0);
	assert_int_equal(ipc_recv(sv[1], &rx, &error), 1);
	assert_int_equal(rx.hdr.pid, (uint32_t)getpid());
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_room),
		cmocka_unit_test(test_send_recv_fd),
		cmocka_unit_test(test_outq),
		cmocka_unit_test(test_sender_pid_after_fork),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
