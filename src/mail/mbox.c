/* mbox.c — an mbox spool for the POP3 worker, see mbox.h. */
#include "mail/mbox-private.h"

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

int mbox_fcntl_lock(int fd, short type, unsigned timeout_ms)
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

int mbox_dotlock_take(const char *path, unsigned timeout_ms, char **lock_r)
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

void mbox_dotlock_release(char *lock)
{
	if (lock != NULL)
		unlink(lock);
	rg_free(lock);
}

/* ---- headers ---- */

bool mbox_header_hidden(const char *line, size_t len)
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
	bool hdr_ended;       /* m.hdr_end is set */
	bool in_keywords;     /* the header line being read is X-Keywords */
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
	if (!s->hdr_ended)
		s->m.hdr_end = end;
}

/* the value of a "Name: value" line without the name, blanks and line end */
static void header_value(const char *line, size_t len, size_t name_len, const char **v_r,
			 size_t *vlen_r)
{
	size_t i = name_len;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	while (len > i && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ' ||
			   line[len - 1] == '\t'))
		len--;
	*v_r = line + i;
	*vlen_r = len - i;
}

/* Status: / X-Status: letters (only A-Z, at most MBOX_STATUS_MAX - 1) */
static void status_letters(const char *v, size_t vlen, char out[MBOX_STATUS_MAX])
{
	size_t o = 0;
	for (size_t i = 0; i < vlen && o + 1 < MBOX_STATUS_MAX; i++) {
		if (v[i] >= 'A' && v[i] <= 'Z' && memchr(out, v[i], o) == NULL)
			out[o++] = v[i];
	}
	out[o] = '\0';
}

/* words of v appended to *list (space separated), NULs and controls dropped */
static void words_append(char **list, const char *v, size_t vlen)
{
	size_t have = *list != NULL ? strlen(*list) : 0;
	char *out = rg_realloc(*list, have + vlen + 2);
	size_t o = have;
	for (size_t i = 0; i < vlen; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c <= ' ' || c == 0x7f) {
			if (o > 0 && out[o - 1] != ' ')
				out[o++] = ' ';
		} else {
			if (o == have && o > 0)
				out[o++] = ' ';
			out[o++] = (char)c;
		}
	}
	while (o > 0 && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
	if (o == 0) {
		rg_free(out);
		out = NULL;
	}
	*list = out;
}

/* X-IMAP / X-IMAPbase: "<uidvalidity> <last uid> [keyword...]"; where the
   last uid's digits are (offset in v, count) */
static void parse_base(struct mbox *box, const char *v, size_t vlen, size_t *pos_r, size_t *len_r)
{
	char num[24];
	size_t i = 0;
	uint32_t vals[2] = { 0, 0 };
	for (int k = 0; k < 2; k++) {
		size_t n = 0;
		while (i < vlen && v[i] == ' ')
			i++;
		*pos_r = i;
		while (i < vlen && v[i] >= '0' && v[i] <= '9' && n + 1 < sizeof(num))
			num[n++] = v[i++];
		num[n] = '\0';
		*len_r = n;
		if (n == 0 || (i < vlen && v[i] != ' ')) {
			/* not Dovecot's: as if there were none */
			box->uidvalidity = box->last_uid = 0;
			*len_r = 0;
			return;
		}
		unsigned long x = strtoul(num, NULL, 10);
		vals[k] = x > UINT32_MAX ? 0 : (uint32_t)x;
	}
	box->uidvalidity = vals[0];
	box->last_uid = vals[1];
	rg_free(box->base_keywords);
	box->base_keywords = NULL;
	if (i < vlen)
		words_append(&box->base_keywords, v + i, vlen - i);
}

/* Dovecot's own header line: its value into the message or the box */
static void parse_hidden(struct mbox *box, struct scan_msg *cur, bool first, const char *line,
			 size_t len, uint64_t off)
{
	const char *v;
	size_t vlen;
	bool base = false;
	if (first && len > 7 && strncasecmp(line, "X-IMAP:", 7) == 0) {
		cur->internal = true;
		header_value(line, len, 7, &v, &vlen);
		base = true;
	} else if (first && len > 11 && strncasecmp(line, "X-IMAPbase:", 11) == 0) {
		header_value(line, len, 11, &v, &vlen);
		base = true;
	}
	if (base) {
		size_t pos = 0, n = 0;
		parse_base(box, v, vlen, &pos, &n);
		box->base_uid_offset = off + (uint64_t)(v - line) + pos;
		box->base_uid_width = n;
	} else if (len > 6 && strncasecmp(line, "X-UID:", 6) == 0) {
		header_value(line, len, 6, &v, &vlen);
		char num[12];
		size_t n = vlen < sizeof(num) - 1 ? vlen : sizeof(num) - 1;
		memcpy(num, v, n);
		num[n] = '\0';
		unsigned long x = strtoul(num, NULL, 10);
		cur->m.uid = x > UINT32_MAX ? 0 : (uint32_t)x;
	} else if (len > 7 && strncasecmp(line, "Status:", 7) == 0) {
		header_value(line, len, 7, &v, &vlen);
		status_letters(v, vlen, cur->m.status);
	} else if (len > 9 && strncasecmp(line, "X-Status:", 9) == 0) {
		header_value(line, len, 9, &v, &vlen);
		status_letters(v, vlen, cur->m.xstatus);
	} else if (len > 11 && strncasecmp(line, "X-Keywords:", 11) == 0) {
		header_value(line, len, 11, &v, &vlen);
		words_append(&cur->m.keywords, v, vlen);
		cur->in_keywords = true;
	}
}

/* The From line's date ("From sender Mon Dec  7 10:00:00 2026", maybe with
 * a zone before or after the year): local time as the delivery agent wrote
 * it, or an explicit +hhmm offset. 0 when unreadable. */
static time_t from_line_date(const char *line, size_t len)
{
	char buf[128];
	size_t n = 0;
	/* the sender ends at the first blank after "From " */
	size_t i = 5;
	while (i < len && line[i] != ' ' && line[i] != '\t')
		i++;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	for (; i < len && n + 1 < sizeof(buf); i++) {
		if (line[i] == '\0' || line[i] == '\r' || line[i] == '\n')
			break;
		buf[n++] = line[i];
	}
	buf[n] = '\0';
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	const char *rest = strptime(buf, "%a %b %d %H:%M:%S", &tm);
	if (rest == NULL)
		return 0;
	long offset = 0;
	bool have_offset = false;
	/* an optional zone name or offset, then the year, maybe then an offset */
	for (int pass = 0; pass < 2; pass++) {
		while (*rest == ' ')
			rest++;
		if ((*rest == '+' || *rest == '-') && isdigit((unsigned char)rest[1])) {
			long sign = *rest == '-' ? -1 : 1;
			char *zend;
			long z = strtol(rest + 1, &zend, 10);
			if (z < 0 || z > 9999)
				z = 0;
			offset = sign * (z / 100 * 3600 + z % 100 * 60);
			have_offset = true;
			rest = zend;
		} else if (pass == 0) {
			while (isalpha((unsigned char)*rest))
				rest++;
		}
		if (pass == 1)
			break;
		while (*rest == ' ')
			rest++;
		char *end;
		long year = strtol(rest, &end, 10);
		if (end == rest || year < 1970 || year > 9999)
			return 0;
		tm.tm_year = (int)(year - 1900);
		rest = end;
	}
	if (have_offset)
		return timegm(&tm) - offset;
	tm.tm_isdst = -1;
	time_t t = mktime(&tm);
	return t < 0 ? 0 : t;
}

static const uint8_t uidl_key[16] = "ringgate mbox ui";

uint64_t mbox_hash(uint64_t h, const void *data, size_t len)
{
	const uint8_t *p = data;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 1099511628211ULL;
	return h;
}

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
	box->mtime = st.st_mtim;
	box->writable = (fcntl(box->fd, F_GETFL) & O_ACCMODE) == O_RDWR;
	if ((ret = mbox_fcntl_lock(box->fd, F_RDLCK, timeout_ms)) < 0) {
		*error_r = ret == -EAGAIN ? "mailbox is locked by another process" : "fcntl() failed";
		mbox_close(box);
		return ret;
	}

	struct line_reader r = { .fd = box->fd };
	struct scan_msg *msgs = NULL, *cur = NULL;
	size_t count = 0, cap = 0;
	bool prev_blank = true, in_header = false, hiding = false;
	const char *line = NULL;
	size_t len = 0;
	uint64_t off = 0;

	*error_r = NULL;
	box->content_hash = MBOX_HASH_INIT;
	while ((ret = next_line(&r, &line, &len, &off)) > 0) {
		box->content_hash = mbox_hash(box->content_hash, line, len);
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
			cur->m.date = from_line_date(line, len);
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
				cur->hdr_ended = true;
				cur->m.hdr_end = off;
			} else if (line[0] != ' ' && line[0] != '\t') {
				hiding = mbox_header_hidden(line, len);
				cur->in_keywords = false;
				if (hiding)
					parse_hidden(box, cur, count == 1, line, len, off);
			} else if (cur->in_keywords) {
				words_append(&cur->m.keywords, line, len);
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
	(void)mbox_fcntl_lock(box->fd, F_UNLCK, 0);
	if (ret < 0) {
		if (*error_r == NULL)
			*error_r = "read() failed";
		for (size_t i = 0; i < count; i++) {
			rg_free(msgs[i].hdr);
			rg_free(msgs[i].m.keywords);
		}
		rg_free(msgs);
		mbox_close(box);
		return ret;
	}

	box->msgs = rg_calloc(count + 1, sizeof(*box->msgs));
	for (size_t i = 0; i < count; i++) {
		struct scan_msg *s = &msgs[i];
		if (s->internal) {
			box->pseudo = true;
			box->pseudo_hdr = s->m.hdr_offset;
			box->pseudo_hdr_end = s->m.hdr_end;
			box->pseudo_end = i + 1 < count ? msgs[i + 1].m.from_offset : box->size;
			rg_free(s->m.keywords);
		} else {
			struct mbox_msg *m = &box->msgs[box->count++];
			*m = s->m;
			if (box->uidvalidity != 0 && m->uid != 0)
				/* the UIDs Dovecot wrote: its pop3_uidl_format %08Xu%08Xv */
				snprintf(m->uidl, sizeof(m->uidl), "%08X%08X", m->uid, box->uidvalidity);
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
	for (size_t i = 0; i < box->count; i++)
		rg_free(box->msgs[i].keywords);
	rg_free(box->base_keywords);
	rg_free(box->msgs);
	rg_free(box->path);
	rg_free(box);
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
			hiding = mbox_header_hidden(data + in, llen);
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

	if ((ret = mbox_fcntl_lock(box->fd, F_RDLCK, MBOX_LOCK_TIMEOUT_MS)) < 0) {
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
	(void)mbox_fcntl_lock(box->fd, F_UNLCK, 0);
	if (ret < 0) {
		rg_free(data);
		return ret;
	}
	*len_r = strip_hidden(data, len);
	data[*len_r] = '\0';
	*data_r = data;
	return 0;
}

/* ---- mail_location ---- */

bool mbox_location_is_mbox(const char *location)
{
	return location != NULL && strncasecmp(location, "mbox:", 5) == 0;
}

int mbox_location_root(const char *location, const char *home, const char *user,
		       char **path_r, const char **error_r)
{
	const char *rest = location + 5;
	size_t root_len = strcspn(rest, ":");
	if (root_len == 0) {
		*error_r = "mbox location names no root directory";
		return -EINVAL;
	}
	char *loc = rg_strdup_printf("maildir:%.*s", (int)root_len, rest);
	int ret = maildir_location_path(loc, home, user, path_r, error_r);
	rg_free(loc);
	return ret;
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
