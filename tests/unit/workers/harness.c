#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/alloc.h"
#include "lib/ipc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define WH_TIMEOUT_MS 5000

/* On tmpfs when the machine has one: the every-split tests rebuild a
 * Maildir and APPEND (fdatasync) hundreds of times, which on a disk under
 * load took most of a minute. */
char *wh_tmpdir(void)
{
	char shm[] = "/dev/shm/rg-worker-XXXXXX";
	if (mkdtemp(shm) != NULL)
		return rg_strdup(shm);
	char tmpl[] = "/tmp/rg-worker-XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	return rg_strdup(tmpl);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

/* no fork of rm per call: run once per split */
void wh_rm_rf(const char *path)
{
	int ret = nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	assert_true(ret == 0 || errno == ENOENT);
}

void wh_put_msg(const char *maildir, const char *sub, const char *name, const char *body,
		long mtime)
{
	static const char *const subs[] = { "", "/cur", "/new", "/tmp" };
	for (size_t i = 0; i < 4; i++) {
		char *d = rg_strdup_printf("%s%s", maildir, subs[i]);
		mkdir(d, 0700);
		rg_free(d);
	}
	char *path = rg_strdup_printf("%s/%s/%s", maildir, sub, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(body, f);
	assert_int_equal(fclose(f), 0);
	if (mtime != 0) {
		struct timeval tv[2] = { { mtime, 0 }, { mtime, 0 } };
		assert_int_equal(utimes(path, tv), 0);
	}
	rg_free(path);
}

bool wh_exists(const char *maildir, const char *sub, const char *name)
{
	char *path = rg_strdup_printf("%s/%s/%s", maildir, sub, name);
	bool ok = access(path, F_OK) == 0;
	rg_free(path);
	return ok;
}

int wh_count(const char *maildir, const char *sub)
{
	char *path = rg_strdup_printf("%s/%s", maildir, sub);
	DIR *dir = opendir(path);
	rg_free(path);
	if (dir == NULL)
		return -1;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(dir)) != NULL)
		n += de->d_name[0] != '.';
	closedir(dir);
	return n;
}

char *wh_read_file(const char *maildir, const char *name)
{
	char *path = rg_strdup_printf("%s/%s", maildir, name);
	FILE *f = fopen(path, "r");
	rg_free(path);
	assert_non_null(f);
	size_t len = 0, size = 256;
	char *buf = rg_malloc(size);
	size_t n;
	while ((n = fread(buf + len, 1, size - len - 1, f)) > 0) {
		len += n;
		if (len + 1 == size)
			buf = rg_realloc(buf, size *= 2);
	}
	fclose(f);
	buf[len] = '\0';
	return buf;
}

unsigned int wh_uidvalidity(const char *maildir)
{
	char *path = rg_strdup_printf("%s/ringgate-uidlist", maildir);
	FILE *f = fopen(path, "r");
	rg_free(path);
	assert_non_null(f);
	unsigned int v = 0, next;
	assert_int_equal(fscanf(f, "1 V%u N%u", &v, &next), 2);
	fclose(f);
	return v;
}

struct worker_proc wh_start(const char *binary, const char *home, const char *mail,
			    const char *tag, const void *preread, size_t preread_len)
{
	int client[2], chan[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, client), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, chan), 0);
	char *path = rg_strdup_printf("%s/%s", WORKER_BIN_DIR, binary);

	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* as master: fd 3 client, fd 4 channel, cwd = home */
		if (dup2(client[1], 3) < 0 || dup2(chan[1], 4) < 0 || chdir(home) < 0)
			_exit(120);
		execl(path, binary, (char *)NULL);
		_exit(121);
	}
	rg_free(path);
	close(client[1]);
	close(chan[1]);

	struct ipc_msg *msg = rg_malloc(sizeof(*msg));
	ipc_msg_init(msg, IPC_WORKER_INIT, 0);
	ipc_msg_add_str(msg, IPC_F_SERVICE, strstr(binary, "imap") != NULL ? "imap" : "pop3");
	ipc_msg_add_str(msg, IPC_F_USER, "testuser");
	ipc_msg_add_str(msg, IPC_F_HOME, home);
	if (mail != NULL)
		ipc_msg_add_str(msg, IPC_F_MAIL, mail);
	if (tag != NULL)
		ipc_msg_add_str(msg, IPC_F_TAG, tag);
	ipc_msg_add_str(msg, IPC_F_RIP, "127.0.0.1");
	ipc_msg_add_str(msg, IPC_F_SESSION, "sess1");
	if (preread != NULL)
		ipc_msg_add(msg, IPC_F_PREREAD, preread, preread_len);
	assert_int_equal(ipc_send(chan[0], msg, -1), 0);
	rg_free(msg);
	close(chan[0]);
	return (struct worker_proc){ .pid = pid, .fd = client[0] };
}

void wh_send_len(struct worker_proc *w, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n = write(w->fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		assert_true(n > 0);
		p += n;
		len -= (size_t)n;
	}
}

void wh_send(struct worker_proc *w, const char *data)
{
	wh_send_len(w, data, strlen(data));
}

/* one byte, or -1 at EOF; a timeout fails the test */
static int read_byte(struct worker_proc *w)
{
	struct pollfd pfd = { .fd = w->fd, .events = POLLIN };
	int ret = poll(&pfd, 1, WH_TIMEOUT_MS);
	if (ret == 0)
		fail_msg("timed out waiting for the worker");
	unsigned char c;
	ssize_t n = read(w->fd, &c, 1);
	return n == 1 ? c : -1;
}

char *wh_read_until(struct worker_proc *w, const char *terminator, size_t *len_r)
{
	size_t tlen = strlen(terminator), len = 0, size = 256;
	char *buf = rg_malloc(size);
	for (;;) {
		if (len >= tlen && memcmp(buf + len - tlen, terminator, tlen) == 0)
			break;
		int c = read_byte(w);
		if (c < 0) {
			buf[len] = '\0';
			fail_msg("EOF before '%s'; got: %s", terminator, buf);
		}
		if (len + 2 > size)
			buf = rg_realloc(buf, size *= 2);
		buf[len++] = (char)c;
	}
	buf[len] = '\0';
	if (len_r != NULL)
		*len_r = len;
	return buf;
}

char *wh_read_until_line(struct worker_proc *w, const char *prefix)
{
	size_t plen = strlen(prefix), len = 0, size = 256, line_start = 0;
	char *buf = rg_malloc(size);
	for (;;) {
		int c = read_byte(w);
		if (c < 0) {
			buf[len] = '\0';
			fail_msg("EOF before a line '%s'; got: %s", prefix, buf);
		}
		if (len + 2 > size)
			buf = rg_realloc(buf, size *= 2);
		buf[len++] = (char)c;
		if (c == '\n') {
			if (len - line_start >= plen && memcmp(buf + line_start, prefix, plen) == 0)
				break;
			line_start = len;
		}
	}
	buf[len] = '\0';
	return buf;
}

bool wh_read_eof(struct worker_proc *w)
{
	return read_byte(w) < 0;
}

int wh_finish(struct worker_proc *w)
{
	close(w->fd);
	int status;
	for (int i = 0; i < 500; i++) {
		pid_t ret = waitpid(w->pid, &status, WNOHANG);
		if (ret == w->pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
		usleep(10000);
	}
	kill(w->pid, SIGKILL);
	waitpid(w->pid, &status, 0);
	fail_msg("worker did not exit");
	return -1;
}

struct wh_home *wh_home_new(void)
{
	struct wh_home *h = rg_calloc(1, sizeof(*h));
	h->home = wh_tmpdir();
	h->md = rg_strdup_printf("%s/Maildir", h->home);
	return h;
}

void wh_home_free(struct wh_home *h)
{
	wh_rm_rf(h->home);
	rg_free(h->home);
	rg_free(h->md);
	rg_free(h);
}

void wh_put_three(const char *maildir, const char *msg1, const char *msg2, const char *msg3)
{
	wh_put_msg(maildir, "new", "1000.a.host", msg1, 1000);
	wh_put_msg(maildir, "cur", "2000.b.host:2,S", msg2, 2000);
	wh_put_msg(maildir, "new", "3000.c.host", msg3, 3000);
}

void wh_put_uidlist(const char *maildir, const char *header)
{
	char *list = rg_strdup_printf("%s/ringgate-uidlist", maildir);
	FILE *fl = fopen(list, "w");
	assert_non_null(fl);
	fputs(header, fl);
	fclose(fl);
	rg_free(list);
}

void wh_capture_send(void *ctx, const void *data, size_t len)
{
	struct wh_capture *c = ctx;
	if (c->len + len + 1 > c->size) {
		c->size = (c->len + len + 1) * 2;
		c->data = rg_realloc(c->data, c->size);
	}
	memcpy(c->data + c->len, data, len);
	c->len += len;
	c->data[c->len] = '\0';
}

bool wh_feed_script(bool (*input)(void *client, const uint8_t *data, size_t len), void *client,
		    const char *script, size_t len, size_t split, bool bytewise)
{
	const uint8_t *s = (const uint8_t *)script;
	bool running = true;
	if (bytewise) {
		for (size_t i = 0; i < len && running; i++)
			running = input(client, s + i, 1);
	} else {
		running = input(client, s, split);
		if (running)
			running = input(client, s + split, len - split);
	}
	return running;
}
