/* mbox.c — an mbox spool for the POP3 worker, see mbox.h. */
#include "mail/mbox.h"

#include "lib/alloc.h"
#include "lib/siphash.h"
#include "mail/maildir.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- locks ---- */

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

/* fcntl lock of the whole file (F_RDLCK, F_WRLCK, F_UNLCK), waited for at
   most timeout_ms: 0, -EAGAIN when still held by another, or -errno */
static int fcntl_lock(int fd, short type, unsigned timeout_ms)
{
	uint64_t deadline = now_ms() + timeout_ms;
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };

	for (;;) {
		if (fcntl(fd, F_SETLK, &fl) == 0)
			return 0;
		if (errno != EAGAIN && errno != EACCES && errno != EINTR)
			return -errno;
		if (now_ms() >= deadline)
			return -EAGAIN;
		sleep_ms(20);
	}
}

/* PATH.lock, created exclusively; one older than MBOX_DOTLOCK_STALE_SECS
   was left by a dead process and is replaced */
static int dotlock_take(const char *path, unsigned timeout_ms, char **lock_r)
{
	char *lock = rg_strdup_printf("%s.lock", path);
	uint64_t deadline = now_ms() + timeout_ms;

	for (;;) {
		int fd = open(lock, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd >= 0) {
			char pid[32];
			int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
			if (write(fd, pid, (size_t)n) < 0) {
				/* the lock is the file; its content is a courtesy */
			}
			close(fd);
			*lock_r = lock;
			return 0;
		}
		if (errno != EEXIST) {
			int err = -errno;
			rg_free(lock);
			return err;
		}
		struct stat st;
		if (lstat(lock, &st) == 0 && time(NULL) - st.st_mtime > MBOX_DOTLOCK_STALE_SECS) {
			unlink(lock);
			continue;
		}
		if (now_ms() >= deadline) {
			rg_free(lock);
			return -EAGAIN;
		}
		sleep_ms(50);
	}
}

static void dotlock_release(char *lock)
{
	if (lock != NULL)
		unlink(lock);
	rg_free(lock);
}

/* ---- headers ---- */

/* Dovecot's own headers in an mbox, which it never shows a client */
static bool header_hidden(const char *line, size_t len)
{
	static const char *const hidden[] = { "X-IMAP", "X-IMAPbase", "X-UID", "X-Keywords",
					      "Status", "X-Status", "Content-Length" };
	for (size_t i = 0; i < sizeof(hidden) / sizeof(hidden[0]); i++) {
		size_t n = strlen(hidden[i]);
		if (len > n && strncasecmp(line, hidden[i], n) == 0 && line[n] == ':')
			return true;
	}
	return false;
}

static bool is_blank(const char *line, size_t len)
{
	return (len == 1 && line[0] == '\n') || (len == 2 && line[0] == '\r' && line[1] == '\n');
}

/* bytes the line takes with a CRLF line end (maildir_crlf_size's rule) */
static uint64_t crlf_len(const char *line, size_t len)
{
	if (len > 0 && line[len - 1] == '\n' && !(len >= 2 && line[len - 2] == '\r'))
		return len + 1;
	return len;
}

/* ---- scanning ---- */

/* lines of a file, read in blocks; buf[pos..len) is unread, off is the
   file offset of buf[0] */
struct line_reader {
	int fd;
	uint64_t off;
	char *buf;
	size_t pos, len, cap;
	bool eof;
};

/* next line (with its '\n' when it has one) at *offset_r; 0 at EOF, 1, or -errno */
static int next_line(struct line_reader *r, const char **line_r, size_t *len_r, uint64_t *offset_r)
{
	for (;;) {
		const char *nl = r->pos < r->len ? memchr(r->buf + r->pos, '\n', r->len - r->pos) : NULL;
		if (nl != NULL || (r->eof && r->pos < r->len)) {
			size_t end = nl != NULL ? (size_t)(nl - r->buf) + 1 : r->len;
			*line_r = r->buf + r->pos;
			*len_r = end - r->pos;
			*offset_r = r->off + r->pos;
			r->pos = end;
			return 1;
		}
		if (r->eof)
			return 0;
		if (r->pos > 0) {
			memmove(r->buf, r->buf + r->pos, r->len - r->pos);
			r->len -= r->pos;
			r->off += r->pos;
			r->pos = 0;
		}
		if (r->len == r->cap) {
			r->cap = r->cap == 0 ? 65536 : r->cap * 2;
			r->buf = rg_realloc(r->buf, r->cap);
		}
		ssize_t n = pread(r->fd, r->buf + r->len, r->cap - r->len, (off_t)(r->off + r->len));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			r->eof = true;
		r->len += (size_t)n;
	}
}

struct scan_msg {
	struct mbox_msg m;
	bool internal;        /* Dovecot's folder-data pseudo message */
	uint32_t uid;         /* X-UID, 0 = none */
	uint64_t blank_offset; /* last blank line and its CRLF size */
	uint64_t blank_vsize;
	bool blank_ends_header;
	bool blank_last;      /* the last line seen was that blank line */
	char *hdr;            /* From line and visible header text: the UIDL's hash */
	size_t hdr_len;
};

static void scan_close(struct scan_msg *s, uint64_t end, bool at_from)
{
	if (s->blank_last && (at_from || !s->blank_ends_header)) {
		/* the blank line before the next "From " separates messages */
		s->m.end_offset = s->blank_offset;
		s->m.vsize -= s->blank_vsize;
	} else {
		s->m.end_offset = end;
	}
}

static const uint8_t uidl_key[16] = "ringgate mbox ui";

int mbox_open(const char *path, unsigned timeout_ms, struct mbox **box_r, const char **error_r)
{
	struct mbox *box = rg_calloc(1, sizeof(*box));
	struct stat st;
	int ret;

	box->path = rg_strdup(path);
	box->fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
	if (box->fd < 0 && errno == EACCES)
		box->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
	if (box->fd < 0) {
		ret = -errno;
		if (ret == -ENOENT) {
			/* no mail delivered yet: an empty INBOX, as Dovecot */
			*box_r = box;
			return 0;
		}
		*error_r = "open() failed";
		mbox_close(box);
		return ret;
	}
	if (fstat(box->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		ret = S_ISREG(st.st_mode) ? -errno : -EINVAL;
		*error_r = "not a regular file";
		mbox_close(box);
		return ret;
	}
	box->dev = st.st_dev;
	box->ino = st.st_ino;
	if ((ret = fcntl_lock(box->fd, F_RDLCK, timeout_ms)) < 0) {
		*error_r = ret == -EAGAIN ? "mailbox is locked by another process" : "fcntl() failed";
		mbox_close(box);
		return ret;
	}

	struct line_reader r = { .fd = box->fd };
	struct scan_msg *msgs = NULL, *cur = NULL;
	size_t count = 0, cap = 0;
	bool prev_blank = true, in_header = false, hiding = false;
	uint32_t uidvalidity = 0;
	const char *line = NULL;
	size_t len = 0;
	uint64_t off = 0;

	*error_r = NULL;
	while ((ret = next_line(&r, &line, &len, &off)) > 0) {
		bool blank = is_blank(line, len);
		if (prev_blank && len >= 5 && memcmp(line, "From ", 5) == 0) {
			if (cur != NULL)
				scan_close(cur, off, true);
			if (count == cap) {
				cap = cap == 0 ? 64 : cap * 2;
				msgs = rg_realloc(msgs, cap * sizeof(*msgs));
			}
			cur = &msgs[count++];
			memset(cur, 0, sizeof(*cur));
			cur->m.from_offset = off;
			cur->m.hdr_offset = off + len;
			/* the From line's envelope tells identical headers apart */
			cur->hdr = rg_malloc(len + 1); /* the line may hold NULs */
			memcpy(cur->hdr, line, len);
			cur->hdr_len = len;
			in_header = true;
			hiding = false;
			prev_blank = false;
			continue;
		}
		if (cur == NULL) {
			ret = -EINVAL;
			*error_r = "not an mbox file (does not begin with a From line)";
			break;
		}
		bool header_end = false;
		if (in_header) {
			if (blank) {
				in_header = false;
				header_end = true;
			} else if (line[0] != ' ' && line[0] != '\t') {
				hiding = header_hidden(line, len);
				/* the pseudo message's X-IMAP and a first message's
				   X-IMAPbase hold "<uidvalidity> <uidnext>" */
				if (count == 1 && len > 7 && strncasecmp(line, "X-IMAP:", 7) == 0) {
					cur->internal = true;
					uidvalidity = (uint32_t)strtoul(line + 7, NULL, 10);
				}
				if (count == 1 && len > 11 &&
				    strncasecmp(line, "X-IMAPbase:", 11) == 0)
					uidvalidity = (uint32_t)strtoul(line + 11, NULL, 10);
				if (len > 6 && strncasecmp(line, "X-UID:", 6) == 0)
					cur->uid = (uint32_t)strtoul(line + 6, NULL, 10);
			}
			if (!blank && !hiding) {
				cur->hdr = rg_realloc(cur->hdr, cur->hdr_len + len + 1);
				memcpy(cur->hdr + cur->hdr_len, line, len);
				cur->hdr_len += len;
			}
		}
		if (!(in_header && hiding))
			cur->m.vsize += crlf_len(line, len);
		cur->blank_last = blank;
		if (blank) {
			cur->blank_offset = off;
			cur->blank_vsize = crlf_len(line, len);
			cur->blank_ends_header = header_end;
		}
		prev_blank = blank;
	}
	if (ret == 0 && cur != NULL)
		scan_close(cur, r.off + r.len, false);
	box->size = r.off + r.len;
	rg_free(r.buf);
	(void)fcntl_lock(box->fd, F_UNLCK, 0);
	if (ret < 0) {
		if (*error_r == NULL)
			*error_r = "read() failed";
		for (size_t i = 0; i < count; i++)
			rg_free(msgs[i].hdr);
		rg_free(msgs);
		mbox_close(box);
		return ret;
	}

	box->msgs = rg_calloc(count + 1, sizeof(*box->msgs));
	for (size_t i = 0; i < count; i++) {
		struct scan_msg *s = &msgs[i];
		if (!s->internal) {
			struct mbox_msg *m = &box->msgs[box->count++];
			*m = s->m;
			if (uidvalidity != 0 && s->uid != 0)
				/* the UIDs Dovecot wrote: its pop3_uidl_format %08Xu%08Xv */
				snprintf(m->uidl, sizeof(m->uidl), "%08X%08X", s->uid, uidvalidity);
			else
				snprintf(m->uidl, sizeof(m->uidl), "%016" PRIx64,
					 siphash24(uidl_key, s->hdr, s->hdr_len));
		}
		rg_free(s->hdr);
	}
	rg_free(msgs);
	*box_r = box;
	return 0;
}

void mbox_close(struct mbox *box)
{
	if (box == NULL)
		return;
	if (box->fd >= 0)
		close(box->fd);
	rg_free(box->msgs);
	rg_free(box->path);
	rg_free(box);
}

/* the file is still the one scanned, with "From " where each message starts */
static int check_snapshot(struct mbox *box)
{
	struct stat st;

	if (fstat(box->fd, &st) < 0)
		return -errno;
	if (st.st_dev != box->dev || st.st_ino != box->ino || (uint64_t)st.st_size < box->size)
		return -ESTALE;
	for (size_t i = 0; i < box->count; i++) {
		char from[5];
		if (pread(box->fd, from, 5, (off_t)box->msgs[i].from_offset) != 5 ||
		    memcmp(from, "From ", 5) != 0)
			return -ESTALE;
	}
	return 0;
}

/* data[0..len) without Dovecot's headers (and their continuation lines) */
static size_t strip_hidden(char *data, size_t len)
{
	size_t in = 0, out = 0;
	bool hiding = false;

	while (in < len) {
		const char *nl = memchr(data + in, '\n', len - in);
		size_t llen = (nl != NULL ? (size_t)(nl - data) + 1 : len) - in;
		if (is_blank(data + in, llen)) {
			memmove(data + out, data + in, len - in);
			return out + (len - in);
		}
		if (data[in] != ' ' && data[in] != '\t')
			hiding = header_hidden(data + in, llen);
		if (!hiding) {
			memmove(data + out, data + in, llen);
			out += llen;
		}
		in += llen;
	}
	return out;
}

int mbox_msg_read(struct mbox *box, size_t idx, char **data_r, size_t *len_r)
{
	const struct mbox_msg *m = &box->msgs[idx];
	size_t len = (size_t)(m->end_offset - m->hdr_offset);
	char *data = rg_malloc(len + 1);
	int ret;

	if ((ret = fcntl_lock(box->fd, F_RDLCK, MBOX_LOCK_TIMEOUT_MS)) < 0) {
		rg_free(data);
		return ret;
	}
	char from[5];
	ret = 0;
	if (pread(box->fd, from, 5, (off_t)m->from_offset) != 5 || memcmp(from, "From ", 5) != 0)
		ret = -ESTALE;
	for (size_t done = 0; ret == 0 && done < len;) {
		ssize_t n = pread(box->fd, data + done, len - done, (off_t)(m->hdr_offset + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			ret = n < 0 ? -errno : -ESTALE;
		else
			done += (size_t)n;
	}
	(void)fcntl_lock(box->fd, F_UNLCK, 0);
	if (ret < 0) {
		rg_free(data);
		return ret;
	}
	*len_r = strip_hidden(data, len);
	data[*len_r] = '\0';
	*data_r = data;
	return 0;
}

/* copy [from, from + len) to to (to <= from), in blocks */
static int move_range(int fd, uint64_t from, uint64_t to, uint64_t len, char *buf, size_t size)
{
	while (len > 0) {
		size_t chunk = len < size ? (size_t)len : size;
		ssize_t n = pread(fd, buf, chunk, (off_t)from);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		for (ssize_t done = 0; done < n;) {
			ssize_t w = pwrite(fd, buf + done, (size_t)(n - done), (off_t)(to + (uint64_t)done));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				return w < 0 ? -errno : -EIO;
			done += w;
		}
		from += (uint64_t)n;
		to += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

int mbox_expunge(struct mbox *box, const bool *expunge, unsigned timeout_ms,
		 const char **error_r)
{
	size_t first = box->count;
	for (size_t i = 0; i < box->count && first == box->count; i++) {
		if (expunge[i])
			first = i;
	}
	if (first == box->count)
		return 0;

	char *lock = NULL;
	int ret = dotlock_take(box->path, timeout_ms, &lock);
	if (ret < 0) {
		*error_r = ret == -EAGAIN ? "dotlock held by another process" :
			"creating the dotlock failed (the directory must be writable by the "
			"user: for /var/mail set mail_privileged_group = mail)";
		return ret;
	}
	if ((ret = fcntl_lock(box->fd, F_WRLCK, timeout_ms)) < 0) {
		*error_r = ret == -EAGAIN ? "mailbox is locked by another process" : "fcntl() failed";
		dotlock_release(lock);
		return ret;
	}
	if ((ret = check_snapshot(box)) < 0) {
		*error_r = "the mbox changed since it was read";
		goto out;
	}
	struct stat st;
	if (fstat(box->fd, &st) < 0) {
		ret = -errno;
		*error_r = "fstat() failed";
		goto out;
	}
	/* each message owns [from_offset, next from_offset): its separator too */
	size_t bufsize = 65536;
	char *buf = rg_malloc(bufsize);
	uint64_t w = box->msgs[first].from_offset;
	for (size_t i = first; i < box->count && ret == 0; i++) {
		uint64_t start = box->msgs[i].from_offset;
		uint64_t end = i + 1 < box->count ? box->msgs[i + 1].from_offset : box->size;
		if (expunge[i])
			continue;
		ret = move_range(box->fd, start, w, end - start, buf, bufsize);
		w += end - start;
	}
	/* mail delivered after the snapshot */
	if (ret == 0 && (uint64_t)st.st_size > box->size) {
		ret = move_range(box->fd, box->size, w, (uint64_t)st.st_size - box->size, buf, bufsize);
		w += (uint64_t)st.st_size - box->size;
	}
	rg_free(buf);
	if (ret == 0 && ftruncate(box->fd, (off_t)w) < 0)
		ret = -errno;
	if (ret == 0 && fsync(box->fd) < 0)
		ret = -errno;
	if (ret < 0)
		*error_r = "rewriting the mbox failed";
out:
	(void)fcntl_lock(box->fd, F_UNLCK, 0);
	dotlock_release(lock);
	return ret;
}

/* ---- mail_location ---- */

bool mbox_location_is_mbox(const char *location)
{
	return location != NULL && strncasecmp(location, "mbox:", 5) == 0;
}

int mbox_location_inbox(const char *location, const char *home, const char *user,
			char **path_r, const char **error_r)
{
	const char *rest = location + 5;
	size_t root_len = strcspn(rest, ":");
	char *inbox = NULL;

	for (const char *opt = rest + root_len; *opt == ':';) {
		opt++;
		size_t n = strcspn(opt, ":");
		if (n > 6 && strncasecmp(opt, "INBOX=", 6) == 0) {
			rg_free(inbox);
			inbox = rg_strndup(opt + 6, n - 6);
		}
		opt += n;
	}
	if (inbox == NULL) {
		if (root_len == 0) {
			*error_r = "mbox location has neither a root nor INBOX=";
			return -EINVAL;
		}
		inbox = rg_strdup_printf("%.*s/inbox", (int)root_len, rest);
	}
	/* the same expansion as a Maildir path (~, %u %n %d %h) */
	char *loc = rg_strdup_printf("maildir:%s", inbox);
	int ret = maildir_location_path(loc, home, user, path_r, error_r);
	rg_free(loc);
	rg_free(inbox);
	return ret;
}
