/* mbox-save.c — adding messages to an mbox for IMAP APPEND and COPY, see
 * mbox-imap.h. The messages go at the end of the file under the write
 * locks with their X-UIDs; X-IMAPbase's last UID is raised in place (Dovecot
 * pads it to 10 digits for that), else the next open rewrites it. */
#include "mail/mbox-imap.h"

#include "lib/alloc.h"
#include "mail/maildir-private.h"
#include "mail/mbox-private.h"
#include "mail/mime.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SAVE_ATTEMPTS 3

/* text with LF line ends, Dovecot's headers left out of its header, lines
   starting "From " quoted; hidden goes where the header ends */
static void add_message(const char *data, size_t len, const struct mime_buf *hidden,
			struct mime_buf *out)
{
	bool in_header = true, hiding = false;
	for (size_t i = 0; i < len;) {
		const char *nl = memchr(data + i, '\n', len - i);
		size_t llen = (nl != NULL ? (size_t)(nl - data) + 1 : len) - i;
		const char *line = data + i;
		size_t body = llen; /* without the line end */
		if (body > 0 && line[body - 1] == '\n')
			body--;
		if (body > 0 && line[body - 1] == '\r')
			body--;
		i += llen;
		if (in_header && body == 0) {
			mime_buf_add(out, hidden->data, hidden->len);
			in_header = false;
		} else if (in_header) {
			if (line[0] != ' ' && line[0] != '\t')
				hiding = mbox_header_hidden(line, body + 1);
			if (hiding)
				continue;
		}
		if (body >= 5 && memcmp(line, "From ", 5) == 0)
			mime_buf_str(out, ">");
		mime_buf_add(out, line, body);
		mime_buf_str(out, "\n");
	}
	if (in_header) {
		/* no body: the header still ends with a blank line */
		mime_buf_add(out, hidden->data, hidden->len);
		mime_buf_str(out, "\n");
	}
}

/* the bytes that make a "From " line written at size a separator */
static const char *separator(int fd, uint64_t size)
{
	char end[2] = { '\n', '\n' };
	if (size == 0)
		return "";
	size_t n = size >= 2 ? 2 : 1;
	if (pread(fd, end + 2 - n, n, (off_t)(size - n)) != (ssize_t)n)
		return "\n\n";
	if (end[1] != '\n')
		return "\n\n";
	return end[0] == '\n' ? "" : "\n";
}

/* the metadata of one new message in the destination's terms */
static void new_metadata(struct maildir *box, const struct mbox_imap_new *m, struct mbox_msg *fm)
{
	char flags[MAILDIR_MAX_FLAGS + 1];
	size_t o = 0;
	for (const char *f = m->flags; *f != '\0' && o < MAILDIR_MAX_FLAGS; f++) {
		int k = *f - 'a';
		if (k < 0 || k >= MAILDIR_MAX_KEYWORDS) {
			flags[o++] = *f;
			continue;
		}
		const char *name = m->names != NULL ? m->names[k] : box->keywords[k];
		char l = name != NULL ? mbox_imap_keyword_letter(box, name, strlen(name), true) : 0;
		if (l != 0)
			flags[o++] = l;
	}
	flags[o] = '\0';
	memset(fm, 0, sizeof(*fm));
	mbox_imap_flags_to_file(box, flags, fm);
}

/* one attempt: 1 when the file grew between the scan and the lock */
static int save_locked(struct maildir *box, const char *file, const struct mbox_imap_new *msgs,
		       size_t n, uint32_t *uids_r, bool *full_r, const char **error_r)
{
	struct mbox *mb = mbox_imap_file(box);
	struct mime_buf out = { 0 }, hidden = { 0 };
	struct mbox_msg fm;
	uint32_t first = mb->last_uid + 1;
	/* an empty file without a pseudo message: the first one carries the base */
	bool base_here = mb->count == 0 && !mb->pseudo;

	/* metadata first: new keyword names must be in the base list we write */
	struct mbox_msg *meta = rg_calloc(n + 1, sizeof(*meta));
	for (size_t i = 0; i < n; i++)
		new_metadata(box, &msgs[i], &meta[i]);
	char *lock = NULL;
	int ret = mbox_dotlock_take(file, MBOX_LOCK_TIMEOUT_MS, &lock);
	if (ret < 0) {
		*error_r = ret == -EAGAIN ? "dotlock held by another process" : "creating the dotlock failed";
		goto free;
	}
	if ((ret = mbox_fcntl_lock(mb->fd, F_WRLCK, MBOX_LOCK_TIMEOUT_MS)) < 0) {
		*error_r = ret == -EAGAIN ? "mailbox is locked by another process" : "fcntl() failed";
		mbox_dotlock_release(lock);
		goto free;
	}
	struct stat st;
	if (fstat(mb->fd, &st) < 0) {
		ret = -errno;
		*error_r = "fstat() failed";
		goto unlock;
	}
	if (st.st_ino != mb->ino || (uint64_t)st.st_size != mb->size) {
		ret = 1; /* delivered meanwhile: scan again */
		goto unlock;
	}
	mime_buf_str(&out, separator(mb->fd, mb->size));
	for (size_t i = 0; i < n; i++) {
		time_t date = msgs[i].date > 0 ? msgs[i].date : time(NULL);
		struct tm tm;
		char when[64];
		localtime_r(&date, &tm);
		strftime(when, sizeof(when), "%a %b %e %H:%M:%S %Y", &tm);
		mime_buf_printf(&out, "From MAILER-DAEMON %s\n", when);
		hidden.len = 0;
		if (base_here && i == 0) {
			mime_buf_printf(&hidden, "X-IMAPbase: %u %010u", box->uidvalidity, first + (uint32_t)n - 1);
			for (int k = 0; k < MAILDIR_MAX_KEYWORDS; k++) {
				if (box->keywords[k] != NULL)
					mime_buf_printf(&hidden, " %s", box->keywords[k]);
			}
			mime_buf_str(&hidden, "\n");
		}
		fm = meta[i];
		fm.uid = first + (uint32_t)i;
		mime_buf_printf(&hidden, "X-UID: %u\n", fm.uid);
		if (fm.status[0] != '\0')
			mime_buf_printf(&hidden, "Status: %s\n", fm.status);
		if (fm.xstatus[0] != '\0')
			mime_buf_printf(&hidden, "X-Status: %s\n", fm.xstatus);
		if (fm.keywords != NULL)
			mime_buf_printf(&hidden, "X-Keywords: %s\n", fm.keywords);
		add_message(msgs[i].data, msgs[i].len, &hidden, &out);
		mime_buf_str(&out, "\n");
		uids_r[i] = fm.uid;
	}
	ret = mbox_pwrite_all(mb->fd, out.data, out.len, mb->size);
	/* X-IMAPbase's last UID in place when its digits hold the new one */
	char digits[16];
	int dn = snprintf(digits, sizeof(digits), "%0*u", (int)mb->base_uid_width, first + (uint32_t)n - 1);
	*full_r = !base_here;
	if (ret == 0 && !base_here && mb->base_uid_width > 0 && (size_t)dn == mb->base_uid_width &&
	    !mbox_imap_base_dirty(box)) {
		if (pwrite(mb->fd, digits, (size_t)dn, (off_t)mb->base_uid_offset) == dn)
			*full_r = false;
	}
	if (ret == 0 && fsync(mb->fd) < 0)
		ret = -errno;
	if (ret < 0) {
		*error_r = "writing the mbox failed";
		/* leave no half message behind */
		if (ftruncate(mb->fd, (off_t)mb->size) < 0) {
			/* the scan at the next open will show what is there */
		}
	}
unlock:
	(void)mbox_fcntl_lock(mb->fd, F_UNLCK, 0);
	mbox_dotlock_release(lock);
free:
	for (size_t i = 0; i < n; i++)
		rg_free(meta[i].keywords);
	rg_free(meta);
	mime_buf_free(&out);
	mime_buf_free(&hidden);
	return ret;
}

int mbox_imap_save(const char *path, const struct mbox_imap_new *msgs, size_t n, uint32_t *uids_r,
		   uint32_t *uidvalidity_r, const char **error_r)
{
	const char *file = path + strlen(MBOX_IMAP_PREFIX);
	int ret = 1;
	bool full = false;
	for (int attempt = 0; attempt < SAVE_ATTEMPTS && ret == 1; attempt++) {
		struct maildir *box;
		if ((ret = mbox_imap_open(path, false, &box, error_r)) < 0)
			return ret;
		if (mbox_imap_file(box)->fd < 0) {
			/* a spool not delivered to yet */
			maildir_close(box);
			ret = mbox_create(file, 0);
			if (ret < 0 && ret != -EEXIST) {
				*error_r = "creating the mbox failed";
				return ret;
			}
			ret = 1;
			continue;
		}
		if (!mbox_imap_file(box)->writable) {
			maildir_close(box);
			*error_r = "the mbox is read-only";
			return -EROFS;
		}
		*uidvalidity_r = box->uidvalidity;
		ret = save_locked(box, file, msgs, n, uids_r, &full, error_r);
		maildir_close(box);
	}
	if (ret == 1) {
		*error_r = "the mbox keeps changing";
		return -EAGAIN;
	}
	if (ret == 0 && full) {
		/* the open writes the raised last UID and new keyword names */
		struct maildir *box;
		const char *error;
		if (mbox_imap_open(path, false, &box, &error) == 0)
			maildir_close(box);
	}
	return ret;
}
