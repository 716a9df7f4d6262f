#include "lib/ipc.h"
#include "lib/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define FIELD_HDR 4

static const char *const type_names[IPC_TYPE_COUNT] = {
	[IPC_NONE] = "NONE",
	[IPC_AUTH_BEGIN] = "AUTH_BEGIN",
	[IPC_AUTH_CONTINUE] = "AUTH_CONTINUE",
	[IPC_AUTH_ABORT] = "AUTH_ABORT",
	[IPC_AUTH_CHALLENGE] = "AUTH_CHALLENGE",
	[IPC_AUTH_OK] = "AUTH_OK",
	[IPC_AUTH_FAIL] = "AUTH_FAIL",
	[IPC_AUTH_NEW_CLIENT] = "AUTH_NEW_CLIENT",
	[IPC_AUTH_REQUEST] = "AUTH_REQUEST",
	[IPC_AUTH_USER] = "AUTH_USER",
	[IPC_LOGIN_HANDOFF] = "LOGIN_HANDOFF",
	[IPC_LOGIN_STATUS] = "LOGIN_STATUS",
	[IPC_LOGIN_HANDOFF_REPLY] = "LOGIN_HANDOFF_REPLY",
	[IPC_WORKER_INIT] = "WORKER_INIT",
	[IPC_LOGIN_TICKET_KEYS] = "LOGIN_TICKET_KEYS",
	[IPC_LOGIN_OVERFLOW] = "LOGIN_OVERFLOW",
	[IPC_LOGIN_STATS_REQUEST] = "LOGIN_STATS_REQUEST",
	[IPC_LOGIN_STATS] = "LOGIN_STATS",
	[IPC_LOGIN_RETIRE] = "LOGIN_RETIRE",
	[IPC_DNS_LOOKUP] = "DNS_LOOKUP",
	[IPC_DNS_RESULT] = "DNS_RESULT",
	[IPC_CTL_REQUEST] = "CTL_REQUEST",
	[IPC_CTL_REPLY] = "CTL_REPLY",
	[IPC_CTL_REPLY_END] = "CTL_REPLY_END",
	[IPC_AUTH_WORKER_SPAWN] = "AUTH_WORKER_SPAWN",
	[IPC_AUTH_WORKER_KILL] = "AUTH_WORKER_KILL",
	[IPC_AUTH_WORKER_REQUEST] = "AUTH_WORKER_REQUEST",
	[IPC_AUTH_WORKER_RESULT] = "AUTH_WORKER_RESULT",
	[IPC_AUTH_CACHE_FLUSH] = "AUTH_CACHE_FLUSH",
	[IPC_WORKER_DONE] = "WORKER_DONE",
	[IPC_LOGIN_SPAWN_AUTH] = "LOGIN_SPAWN_AUTH",
	[IPC_LOGIN_SPAWN] = "LOGIN_SPAWN",
	[IPC_LOGIN_SPAWNED] = "LOGIN_SPAWNED",
	[IPC_WORKER_TEMPLATE_READY] = "WORKER_TEMPLATE_READY",
	[IPC_WORKER_SPAWN] = "WORKER_SPAWN",
	[IPC_WORKER_SPAWNED] = "WORKER_SPAWNED",
	[IPC_WORKER_SETUP] = "WORKER_SETUP",
	[IPC_LOGIN_IDLE_KILL] = "LOGIN_IDLE_KILL",
};

const char *ipc_type_name(enum ipc_type type)
{
	if ((unsigned)type >= IPC_TYPE_COUNT)
		return "UNKNOWN";
	return type_names[type];
}

void ipc_msg_init(struct ipc_msg *msg, enum ipc_type type, uint32_t id)
{
	struct ipc_hdr hdr = { .type = (uint16_t)type, .id = id };
	memcpy(msg->buf, &hdr, sizeof(hdr));
	msg->len = IPC_HDR_SIZE;
}

size_t ipc_msg_room(const struct ipc_msg *msg)
{
	size_t used = msg->len + FIELD_HDR + 1;
	return used >= IPC_MAX_MSG ? 0 : IPC_MAX_MSG - used;
}

void ipc_msg_add(struct ipc_msg *msg, enum ipc_field key, const void *data, size_t len)
{
	if (key <= IPC_F_NONE || key >= IPC_F_COUNT)
		log_fatal("ipc: bad field key %d", key);
	if (len > UINT16_MAX || len > ipc_msg_room(msg))
		log_fatal("ipc: field %d of %zu bytes does not fit", key, len);
	uint16_t k = (uint16_t)key, l = (uint16_t)len;
	memcpy(msg->buf + msg->len, &k, 2);
	memcpy(msg->buf + msg->len + 2, &l, 2);
	if (len > 0)
		memcpy(msg->buf + msg->len + FIELD_HDR, data, len);
	msg->buf[msg->len + FIELD_HDR + len] = '\0';
	msg->len += FIELD_HDR + len + 1;
}

void ipc_msg_add_str(struct ipc_msg *msg, enum ipc_field key, const char *str)
{
	ipc_msg_add(msg, key, str, strlen(str));
}

void ipc_msg_add_uint(struct ipc_msg *msg, enum ipc_field key, unsigned long long value)
{
	char num[24];
	int n = snprintf(num, sizeof(num), "%llu", value);
	ipc_msg_add(msg, key, num, (size_t)n);
}

/* The header's sender pid, asked once per process: getpid() is a real
 * syscall, and every proxied login sends two messages. A fork()ed child
 * forgets the parent's (glibc runs the atfork handler in the child). */
static pid_t ipc_pid;

void ipc_pid_reset(void)
{
	ipc_pid = 0;
}

static uint32_t ipc_own_pid(void)
{
	static bool registered;
	if (!registered) {
		registered = pthread_atfork(NULL, NULL, ipc_pid_reset) == 0;
		if (!registered)
			return (uint32_t)getpid();
	}
	if (ipc_pid == 0)
		ipc_pid = getpid();
	return (uint32_t)ipc_pid;
}

static void msg_finish(struct ipc_msg *msg)
{
	struct ipc_hdr hdr;
	memcpy(&hdr, msg->buf, sizeof(hdr));
	hdr.len = (uint32_t)(msg->len - IPC_HDR_SIZE);
	hdr.pid = ipc_own_pid();
	memcpy(msg->buf, &hdr, sizeof(hdr));
}

/* one sendmsg of a finished message: 0 or -errno */
static int send_raw(int sock, const void *buf, size_t len, int pass_fd)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (pass_fd >= 0) {
		memset(&control, 0, sizeof(control));
		mh.msg_control = control.buf;
		mh.msg_controllen = sizeof(control.buf);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &pass_fd, sizeof(int));
	}
	ssize_t ret;
	do {
		ret = sendmsg(sock, &mh, MSG_NOSIGNAL);
	} while (ret < 0 && errno == EINTR);
	if (ret < 0)
		return -errno;
	if ((size_t)ret != len)
		return -EMSGSIZE;
	return 0;
}

int ipc_send(int sock, struct ipc_msg *msg, int pass_fd)
{
	msg_finish(msg);
	return send_raw(sock, msg->buf, msg->len, pass_fd);
}

struct ipc_outq_msg {
	struct ipc_outq_msg *next;
	int fd;
	size_t len;
	uint8_t buf[];
};

static void outq_msg_free(struct ipc_outq_msg *m)
{
	explicit_bzero(m->buf, m->len);
	if (m->fd >= 0)
		close(m->fd);
	free(m);
}

int ipc_outq_send(struct ipc_outq *q, int sock, struct ipc_msg *msg, int pass_fd)
{
	msg_finish(msg);
	if (q->head == NULL) {
		int ret = send_raw(sock, msg->buf, msg->len, pass_fd);
		if (ret != -EAGAIN && ret != -ENOBUFS)
			return ret;
	}
	if (q->bytes + msg->len > IPC_OUTQ_MAX_BYTES)
		return -ENOBUFS;
	struct ipc_outq_msg *m = malloc(sizeof(*m) + msg->len);
	if (m == NULL)
		return -ENOMEM;
	m->fd = -1;
	if (pass_fd >= 0) {
		m->fd = fcntl(pass_fd, F_DUPFD_CLOEXEC, 0);
		if (m->fd < 0) {
			int err = errno;
			free(m);
			return -err;
		}
	}
	m->next = NULL;
	m->len = msg->len;
	memcpy(m->buf, msg->buf, msg->len);
	if (q->tail != NULL)
		q->tail->next = m;
	else
		q->head = m;
	q->tail = m;
	q->bytes += m->len;
	q->count++;
	return 0;
}

int ipc_outq_flush(struct ipc_outq *q, int sock)
{
	while (q->head != NULL) {
		struct ipc_outq_msg *m = q->head;
		int ret = send_raw(sock, m->buf, m->len, m->fd);
		if (ret == -EAGAIN || ret == -ENOBUFS)
			return 1;
		if (ret < 0)
			return ret;
		q->head = m->next;
		if (q->head == NULL)
			q->tail = NULL;
		q->bytes -= m->len;
		q->count--;
		outq_msg_free(m);
	}
	return 0;
}

void ipc_outq_clear(struct ipc_outq *q)
{
	while (q->head != NULL) {
		struct ipc_outq_msg *m = q->head;
		q->head = m->next;
		outq_msg_free(m);
	}
	q->tail = NULL;
	q->bytes = 0;
	q->count = 0;
	q->armed = false;
}

static void outq_epoll_arm(struct ipc_outq *q, int epfd, int sock, void *ptr, bool want)
{
	if (q->armed == want)
		return;
	struct epoll_event ev = { .events = EPOLLIN | (want ? EPOLLOUT : 0u), .data.ptr = ptr };
	if (epoll_ctl(epfd, EPOLL_CTL_MOD, sock, &ev) < 0)
		log_fatal("epoll_ctl(MOD) of a channel: %m");
	q->armed = want;
}

int ipc_outq_epoll_send(struct ipc_outq *q, int epfd, int sock, void *ptr,
			struct ipc_msg *msg, int pass_fd)
{
	int ret = ipc_outq_send(q, sock, msg, pass_fd);
	if (ret == 0 && ipc_outq_pending(q))
		outq_epoll_arm(q, epfd, sock, ptr, true);
	return ret;
}

int ipc_outq_epoll_flush(struct ipc_outq *q, int epfd, int sock, void *ptr)
{
	int ret = ipc_outq_flush(q, sock);
	outq_epoll_arm(q, epfd, sock, ptr, ret == 1);
	return ret;
}

bool ipc_decode(const uint8_t *data, size_t len, struct ipc_hdr *hdr_r,
		struct ipc_fields *fields_r, const char **error_r)
{
	memset(fields_r, 0, sizeof(*fields_r));
	if (len < IPC_HDR_SIZE) {
		*error_r = "message shorter than its header";
		return false;
	}
	if (len > IPC_MAX_MSG) {
		*error_r = "message too long";
		return false;
	}
	memcpy(hdr_r, data, sizeof(*hdr_r));
	if (hdr_r->type == IPC_NONE || hdr_r->type >= IPC_TYPE_COUNT) {
		*error_r = "unknown message type";
		return false;
	}
	if (hdr_r->flags != 0) {
		*error_r = "unknown header flags";
		return false;
	}
	if (hdr_r->len != len - IPC_HDR_SIZE) {
		*error_r = "payload length does not match the message";
		return false;
	}
	size_t pos = IPC_HDR_SIZE;
	while (pos < len) {
		uint16_t key, flen;
		if (len - pos < FIELD_HDR + 1) {
			*error_r = "truncated field header";
			return false;
		}
		memcpy(&key, data + pos, 2);
		memcpy(&flen, data + pos + 2, 2);
		if (key == IPC_F_NONE || key >= IPC_F_COUNT) {
			*error_r = "unknown field key";
			return false;
		}
		if ((fields_r->present & (1ull << key)) != 0) {
			*error_r = "duplicate field";
			return false;
		}
		if (len - pos - FIELD_HDR < (size_t)flen + 1) {
			*error_r = "field runs past the message";
			return false;
		}
		if (data[pos + FIELD_HDR + flen] != '\0') {
			*error_r = "field not NUL-terminated";
			return false;
		}
		fields_r->present |= 1ull << key;
		fields_r->len[key] = flen;
		fields_r->val[key] = data + pos + FIELD_HDR;
		pos += FIELD_HDR + (size_t)flen + 1;
	}
	return true;
}

bool ipc_has(const struct ipc_fields *f, enum ipc_field key)
{
	return key > IPC_F_NONE && key < IPC_F_COUNT && (f->present & (1ull << key)) != 0;
}

const char *ipc_str(const struct ipc_fields *f, enum ipc_field key)
{
	return ipc_has(f, key) ? (const char *)f->val[key] : NULL;
}

bool ipc_uint(const struct ipc_fields *f, enum ipc_field key, unsigned long long *value_r)
{
	const char *s = ipc_str(f, key);
	if (s == NULL || *s < '0' || *s > '9' || f->len[key] > 20)
		return false;
	unsigned long long v = 0;
	for (const char *p = s; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return false;
		unsigned d = (unsigned)(*p - '0');
		if (v > (ULLONG_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*value_r = v;
	return true;
}

int ipc_recv(int sock, struct ipc_rx *rx, const char **error_r)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} control;
	struct iovec iov = { .iov_base = rx->buf, .iov_len = sizeof(rx->buf) };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = control.buf, .msg_controllen = sizeof(control.buf),
	};
	ssize_t ret;

	rx->fd = -1;
	do {
		ret = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	} while (ret < 0 && errno == EINTR);
	if (ret < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	if (ret == 0)
		return 0;

	int nfds = 0;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (nfds++ == 0)
				rx->fd = fd;
			else
				close(fd);
		}
	}
	const char *error = NULL;
	if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0)
		error = "message truncated";
	else if (nfds > 1)
		error = "more than one fd in a message";
	else
		(void)ipc_decode(rx->buf, (size_t)ret, &rx->hdr, &rx->fields, &error);
	if (error != NULL) {
		if (rx->fd >= 0)
			close(rx->fd);
		rx->fd = -1;
		*error_r = error;
		return -EPROTO;
	}
	return 1;
}
