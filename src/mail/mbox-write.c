/* mbox-write.c — rewriting an mbox in place under Dovecot's write locks:
 * expunges, the metadata headers of changed messages, X-IMAPbase and the
 * pseudo message. See mbox.h. */
#include "mail/mbox-private.h"

#include "lib/alloc.h"
#include "mail/mime.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* a crash in the middle of a rewrite leaves what Dovecot's own in-place
   rewrite would: the file is written from the first changed message on */

int mbox_pwrite_all(int fd, const void *data, size_t len, uint64_t off)
{
	for (size_t done = 0; done < len;) {
		ssize_t w = pwrite(fd, (const char *)data + done, len - done, (off_t)(off + done));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		done += (size_t)w;
	}
	return 0;
}

int mbox_check_snapshot(struct mbox *box)
{
	struct stat st;

	if (fstat(box->fd, &st) < 0)
		return -errno;
	if (st.st_dev != box->dev || st.st_ino != box->ino || (uint64_t)st.st_size < box->size)
		return -ESTALE;
	if ((uint64_t)st.st_size == box->size && st.st_mtim.tv_sec == box->mtime.tv_sec &&
	    st.st_mtim.tv_nsec == box->mtime.tv_nsec)
		return 0;
	/* changed since: only mail appended is fine, the scanned part must be
	   byte for byte what was scanned (another session's rewrite is not) */
	char buf[65536];
	uint64_t h = MBOX_HASH_INIT;
	for (uint64_t off = 0; off < box->size;) {
		size_t chunk = box->size - off < sizeof(buf) ? (size_t)(box->size - off) : sizeof(buf);
		ssize_t n = pread(box->fd, buf, chunk, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -ESTALE;
		h = mbox_hash(h, buf, (size_t)n);
		off += (uint64_t)n;
	}
	return h == box->content_hash ? 0 : -ESTALE;
}

/* append [from, to) of the file to out */
static int copy_range(int fd, uint64_t from, uint64_t to, struct mime_buf *out)
{
	char buf[65536];
	while (from < to) {
		size_t chunk = to - from < sizeof(buf) ? (size_t)(to - from) : sizeof(buf);
		ssize_t n = pread(fd, buf, chunk, (off_t)from);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		mime_buf_add(out, buf, (size_t)n);
		from += (uint64_t)n;
	}
	return 0;
}

static void base_value(const struct mbox *box, struct mime_buf *out)
{
	mime_buf_printf(out, "%u %010u", box->uidvalidity, box->last_uid);
	if (box->base_keywords != NULL)
		mime_buf_printf(out, " %s", box->base_keywords);
}

/* the metadata headers in Dovecot's order */
static void hidden_block(const struct mbox *box, const struct mbox_msg *m, bool with_base,
			 struct mime_buf *out)
{
	if (with_base) {
		mime_buf_str(out, "X-IMAPbase: ");
		base_value(box, out);
		mime_buf_str(out, "\n");
	}
	if (m->uid != 0)
		mime_buf_printf(out, "X-UID: %u\n", m->uid);
	if (m->status[0] != '\0')
		mime_buf_printf(out, "Status: %s\n", m->status);
	if (m->xstatus[0] != '\0')
		mime_buf_printf(out, "X-Status: %s\n", m->xstatus);
	if (m->keywords != NULL)
		mime_buf_printf(out, "X-Keywords: %s\n", m->keywords);
}

/* one message (or the pseudo message) with its header lines kept but the
   hidden ones, which become `hidden`: [from, hdr) is the From line,
   [hdr, hdr_end) the header, [hdr_end, end) the rest */
static int compose(int fd, uint64_t from, uint64_t hdr, uint64_t hdr_end, uint64_t end,
		   const struct mime_buf *hidden, struct mime_buf *out)
{
	struct mime_buf raw = { 0 };
	int ret = copy_range(fd, from, end, &raw);
	if (ret < 0) {
		mime_buf_free(&raw);
		return ret;
	}
	size_t h = (size_t)(hdr - from), he = (size_t)(hdr_end - from);
	mime_buf_add(out, raw.data, h);
	if (h > 0 && raw.data[h - 1] != '\n')
		mime_buf_str(out, "\n"); /* a From line cut off at the end of the file */
	bool hiding = false, cut_cr = false;
	for (size_t i = h; i < he;) {
		const char *nl = memchr(raw.data + i, '\n', he - i);
		size_t llen = (nl != NULL ? (size_t)(nl - raw.data) + 1 : he) - i;
		if (raw.data[i] != ' ' && raw.data[i] != '\t')
			hiding = mbox_header_hidden(raw.data + i, llen);
		if (nl == NULL && llen == 1 && raw.data[i] == '\r') {
			/* a lone CR cut off at the end of the file: with its line
			   end it becomes the blank line, so it goes after the
			   hidden lines, or they would land in the body */
			cut_cr = true;
		} else if (!hiding) {
			mime_buf_add(out, raw.data + i, llen);
			if (raw.data[i + llen - 1] != '\n')
				mime_buf_str(out, "\n");
		}
		i += llen;
	}
	if (hidden->len > 0)
		mime_buf_add(out, hidden->data, hidden->len);
	if (cut_cr)
		mime_buf_str(out, "\r\n");
	mime_buf_add(out, raw.data + he, (size_t)(end - from) - he);
	mime_buf_free(&raw);
	return 0;
}

/* Dovecot's (and UW's) folder-data message, keeping X-IMAP when no
   message is left to carry X-IMAPbase */
static void pseudo_message(const struct mbox *box, struct mime_buf *out)
{
	char host[256] = "localhost";
	(void)gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	time_t now = time(NULL);
	struct tm tm;
	char from_date[64], date[64];
	gmtime_r(&now, &tm);
	strftime(from_date, sizeof(from_date), "%a %b %e %H:%M:%S %Y", &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	mime_buf_printf(out,
			"From MAILER_DAEMON %s\n"
			"Date: %s\n"
			"From: Mail System Internal Data <MAILER-DAEMON@%s>\n"
			"Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\n"
			"Message-ID: <%lld@%s>\n"
			"X-IMAP: ",
			from_date, date, host, (long long)now, host);
	base_value(box, out);
	mime_buf_str(out, "\nStatus: RO\n\n"
		     "This text is part of the internal format of your mail folder, and is not\n"
		     "a real message.  It is created automatically by the mail system software.\n"
		     "If deleted, important folder data will be lost, and it will be re-created\n"
		     "with the data reset to initial values.\n\n");
}

int mbox_rewrite(struct mbox *box, bool base_dirty, unsigned timeout_ms, const char **error_r)
{
	*error_r = NULL;
	size_t first_kept = box->count;
	for (size_t i = 0; i < box->count && first_kept == box->count; i++) {
		if (!box->msgs[i].expunge)
			first_kept = i;
	}
	bool has_base = box->uidvalidity != 0;
	/* where X-IMAPbase goes: the pseudo message, or the first message left */
	bool rewrite_pseudo = box->pseudo && base_dirty;
	bool base_in_first = !box->pseudo && has_base && first_kept < box->count &&
		(base_dirty || first_kept != 0);
	bool new_pseudo = !box->pseudo && has_base && first_kept == box->count &&
		(box->count > 0 || base_dirty);
	size_t first = box->count;
	for (size_t i = 0; i < box->count && first == box->count; i++) {
		const struct mbox_msg *m = &box->msgs[i];
		if (m->expunge || m->dirty || (i == first_kept && base_in_first))
			first = i;
	}
	if (first == box->count && !rewrite_pseudo && !new_pseudo)
		return 0;
	if (box->fd < 0) {
		*error_r = "the mbox file does not exist";
		return -ENOENT;
	}
	uint64_t start = rewrite_pseudo ? 0 : first < box->count ? box->msgs[first].from_offset :
		box->pseudo ? box->pseudo_end : box->size;
	if (new_pseudo)
		start = box->pseudo ? box->pseudo_end : 0;

	char *lock = NULL;
	int ret = mbox_dotlock_take(box->path, timeout_ms, &lock);
	if (ret < 0) {
		*error_r = ret == -EAGAIN ? "dotlock held by another process" :
			"creating the dotlock failed (the directory must be writable by the "
			"user: for /var/mail set mail_privileged_group = mail)";
		return ret;
	}
	if ((ret = mbox_fcntl_lock(box->fd, F_WRLCK, timeout_ms)) < 0) {
		*error_r = ret == -EAGAIN ? "mailbox is locked by another process" : "fcntl() failed";
		mbox_dotlock_release(lock);
		return ret;
	}
	struct stat st;
	struct mime_buf out = { 0 }, hidden = { 0 };
	if ((ret = mbox_check_snapshot(box)) < 0) {
		*error_r = "the mbox changed since it was read";
		goto out;
	}
	if (fstat(box->fd, &st) < 0) {
		ret = -errno;
		*error_r = "fstat() failed";
		goto out;
	}
	if (new_pseudo)
		pseudo_message(box, &out);
	if (rewrite_pseudo) {
		mime_buf_str(&hidden, "X-IMAP: ");
		base_value(box, &hidden);
		mime_buf_str(&hidden, "\nStatus: RO\n");
		ret = compose(box->fd, 0, box->pseudo_hdr, box->pseudo_hdr_end, box->pseudo_end,
			      &hidden, &out);
	}
	/* each message owns [from_offset, next from_offset): its separator too */
	for (size_t i = rewrite_pseudo ? 0 : first; i < box->count && ret == 0; i++) {
		const struct mbox_msg *m = &box->msgs[i];
		uint64_t end = i + 1 < box->count ? box->msgs[i + 1].from_offset : box->size;
		if (m->expunge)
			continue;
		bool base_here = !box->pseudo && has_base && i == first_kept;
		if (m->dirty || (base_here && base_in_first)) {
			hidden.len = 0;
			hidden_block(box, m, base_here, &hidden);
			ret = compose(box->fd, m->from_offset, m->hdr_offset, m->hdr_end, end, &hidden,
				      &out);
		} else {
			ret = copy_range(box->fd, m->from_offset, end, &out);
		}
	}
	/* mail delivered after the snapshot */
	if (ret == 0 && (uint64_t)st.st_size > box->size)
		ret = copy_range(box->fd, box->size, (uint64_t)st.st_size, &out);
	if (ret == 0)
		ret = mbox_pwrite_all(box->fd, out.data, out.len, start);
	if (ret == 0 && ftruncate(box->fd, (off_t)(start + out.len)) < 0)
		ret = -errno;
	if (ret == 0 && fsync(box->fd) < 0)
		ret = -errno;
	if (ret < 0 && *error_r == NULL)
		*error_r = "rewriting the mbox failed";
out:
	mime_buf_free(&out);
	mime_buf_free(&hidden);
	(void)mbox_fcntl_lock(box->fd, F_UNLCK, 0);
	mbox_dotlock_release(lock);
	return ret;
}

int mbox_create(const char *path, uint32_t uidvalidity)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	int ret = 0;
	if (uidvalidity != 0) {
		struct mbox box = { .uidvalidity = uidvalidity };
		struct mime_buf out = { 0 };
		pseudo_message(&box, &out);
		ret = mbox_pwrite_all(fd, out.data, out.len, 0);
		mime_buf_free(&out);
	}
	if (close(fd) < 0 && ret == 0)
		ret = -errno;
	if (ret < 0)
		unlink(path);
	return ret;
}

int mbox_expunge(struct mbox *box, const bool *expunge, unsigned timeout_ms,
		 const char **error_r)
{
	for (size_t i = 0; i < box->count; i++)
		box->msgs[i].expunge = expunge[i];
	return mbox_rewrite(box, false, timeout_ms, error_r);
}
