#include "mail/maildir-private.h"

#include "lib/alloc.h"
#include "mail/mailfile.h"
#include "mail/mbox-imap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* ---- adding messages ---- */

/* a unique base name as Dovecot makes them: <secs>.M<usecs>P<pid>Q<n>.<host>,S=<size>[,W=<vsize>] */
static char *unique_base(uint64_t size, int64_t vsize)
{
	static unsigned int counter;
	char host[64];
	struct timeval tv;
	if (gethostname(host, sizeof(host)) < 0)
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = '\0';
	for (char *h = host; *h != '\0'; h++) {
		if (*h == '/' || *h == ':' || *h == ',')
			*h = '_';
	}
	gettimeofday(&tv, NULL);
	if (vsize >= 0)
		return rg_strdup_printf("%lld.M%ldP%dQ%u.%s,S=%llu,W=%lld", (long long)tv.tv_sec,
					(long)tv.tv_usec, (int)getpid(), ++counter, host,
					(unsigned long long)size, (long long)vsize);
	return rg_strdup_printf("%lld.M%ldP%dQ%u.%s,S=%llu", (long long)tv.tv_sec, (long)tv.tv_usec,
				(int)getpid(), ++counter, host, (unsigned long long)size);
}

static int set_mtime(const char *file, time_t mtime)
{
	if (mtime <= 0)
		return 0;
	struct timespec ts[2] = { { mtime, 0 }, { mtime, 0 } };
	return utimensat(AT_FDCWD, file, ts, 0) < 0 ? -errno : 0;
}

/* messages of an mbox into an mbox: read, then appended in one go */
static int mbox_copy(struct maildir *src, const size_t *idxs, size_t n, const char *dest_path,
		     uint32_t *uids_r, uint32_t *uidvalidity_r, const char **error_r)
{
	struct mbox_imap_new *msgs = rg_calloc(n + 1, sizeof(*msgs));
	char **texts = rg_calloc(n + 1, sizeof(*texts));
	uint32_t *uids = rg_calloc(n + 1, sizeof(*uids));
	size_t *slot = rg_calloc(n + 1, sizeof(*slot));
	size_t count = 0;
	int ret = 0;
	for (size_t i = 0; i < n && ret == 0; i++) {
		const struct maildir_msg *m = &src->msgs[idxs[i]];
		size_t len;
		uids_r[i] = 0;
		int r = maildir_msg_read(src, idxs[i], &texts[count], &len);
		if (r == -ENOENT)
			continue; /* expunged meanwhile: no UID */
		if (r < 0) {
			*error_r = "reading the message failed";
			ret = r;
			break;
		}
		msgs[count] = (struct mbox_imap_new){ .data = texts[count], .len = len, .flags = m->flags,
						      .names = src->keywords, .date = m->mtime };
		slot[count++] = i;
	}
	if (ret == 0 && count > 0)
		ret = mbox_imap_save(dest_path, msgs, count, uids, uidvalidity_r, error_r);
	for (size_t k = 0; k < count; k++) {
		if (ret == 0)
			uids_r[slot[k]] = uids[k];
		rg_free(texts[k]);
	}
	rg_free(texts);
	rg_free(msgs);
	rg_free(uids);
	rg_free(slot);
	return ret;
}

int maildir_save(const char *path, const void *data, size_t len, const char *flags,
		 time_t mtime, uint32_t *uid_r, uint32_t *uidvalidity_r, const char **error_r)
{
	char sorted[MAILDIR_MAX_FLAGS + 1];
	int ret;
	if (mbox_imap_path(path)) {
		struct mbox_imap_new m = { .data = data, .len = len, .flags = flags, .date = mtime };
		return mbox_imap_save(path, &m, 1, uid_r, uidvalidity_r, error_r);
	}
	if ((ret = maildir_create(path)) < 0) {
		*error_r = "creating the Maildir failed";
		return ret;
	}
	maildir_flags_normalize(flags, sorted);
	char *base = unique_base(len, (int64_t)maildir_crlf_size(data, len));
	char *tmp = maildir_path_join3(path, "tmp", base);
	char *dest = rg_strdup_printf("%s/cur/%s:2,%s", path, base, sorted);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
		*error_r = "creating the file in tmp/ failed";
		goto out;
	}
	ret = mailfile_write_all(fd, data, len);
	if (ret == 0 && fdatasync(fd) < 0)
		ret = -errno;
	if (close(fd) < 0 && ret == 0)
		ret = -errno;
	if (ret == 0)
		ret = set_mtime(tmp, mtime);
	if (ret == 0 && rename(tmp, dest) < 0)
		ret = -errno;
	if (ret < 0) {
		*error_r = "writing the message failed";
		unlink(tmp);
		goto out;
	}
	ret = maildir_uidlist_register(path, &base, 1, uid_r, uidvalidity_r, error_r);
out:
	rg_free(base);
	rg_free(tmp);
	rg_free(dest);
	return ret;
}

/* copy src_fd's bytes into a new file at dest */
static int copy_file(int src_fd, const char *dest)
{
	int fd = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	char buf[65536];
	int ret = 0;
	for (;;) {
		ssize_t n = read(src_fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			break;
		}
		if (n == 0)
			break;
		if ((ret = mailfile_write_all(fd, buf, (size_t)n)) < 0)
			break;
	}
	if (ret == 0 && fdatasync(fd) < 0)
		ret = -errno;
	if (close(fd) < 0 && ret == 0)
		ret = -errno;
	if (ret < 0)
		unlink(dest);
	return ret;
}

int maildir_copy(struct maildir *src, const size_t *idxs, size_t n, const char *dest_path,
		 uint32_t *uids_r, uint32_t *uidvalidity_r, const char **error_r)
{
	if (src->mbox != NULL || mbox_imap_path(dest_path)) {
		if (src->mbox == NULL || !mbox_imap_path(dest_path)) {
			*error_r = "COPY between Maildir and mbox";
			return -ENOTSUP;
		}
		return mbox_copy(src, idxs, n, dest_path, uids_r, uidvalidity_r, error_r);
	}
	int ret = 0;
	char **bases = rg_calloc(n + 1, sizeof(*bases));
	size_t *slot = rg_calloc(n + 1, sizeof(*slot));
	size_t nb = 0;

	if ((ret = maildir_create(dest_path)) < 0) {
		*error_r = "creating the Maildir failed";
		goto out;
	}
	/* A folder without a uid list (a new one) gets it first: registering
	 * into a list numbers the copies in the order given, as COPY's source
	 * set, where a list-less folder's full scan would number them by
	 * (mtime, name). */
	char *list = rg_strdup_printf("%s/%s", dest_path, MAILDIR_UIDLIST_NAME);
	bool no_list = access(list, F_OK) < 0 && errno == ENOENT;
	rg_free(list);
	if (no_list) {
		struct maildir *dest;
		if ((ret = maildir_open(dest_path, false, &dest, error_r)) < 0)
			goto out;
		maildir_close(dest);
	}
	/* keyword letters are per folder: translate them by name */
	char kw_map[MAILDIR_MAX_KEYWORDS] = { 0 };
	bool same = strcmp(src->path, dest_path) == 0;
	for (size_t i = 0; i < n && !same; i++) {
		const char *f = src->msgs[idxs[i]].flags;
		for (; *f != '\0'; f++) {
			int k = *f - 'a';
			if (k < 0 || k >= MAILDIR_MAX_KEYWORDS || kw_map[k] != 0 || src->keywords[k] == NULL)
				continue;
			char letter[2];
			const char *name = src->keywords[k];
			if (maildir_keywords_lookup(dest_path, &name, 1, true, letter) == 0 && letter[0] != '\0')
				kw_map[k] = letter[0];
			else
				kw_map[k] = '-'; /* no room: dropped */
		}
	}
	for (size_t i = 0; i < n && ret == 0; i++) {
		struct maildir_msg *m = &src->msgs[idxs[i]];
		char flags[MAILDIR_MAX_FLAGS + 1];
		size_t fo = 0;
		for (const char *f = m->flags; *f != '\0'; f++) {
			int k = *f - 'a';
			char l = same || k < 0 || k >= MAILDIR_MAX_KEYWORDS ? *f : kw_map[k];
			if (l != '-' && l != 0)
				flags[fo++] = l;
		}
		flags[fo] = '\0';
		char sorted[MAILDIR_MAX_FLAGS + 1];
		maildir_flags_normalize(flags, sorted);
		uids_r[i] = 0;
		if (m->expunged)
			continue;
		int fd = maildir_msg_open(src, m);
		if (fd == -ENOENT)
			continue; /* expunged by another session: nothing to copy */
		if (fd < 0) {
			ret = fd;
			*error_r = "opening the source message failed";
			break;
		}
		struct stat st;
		if (fstat(fd, &st) < 0) {
			ret = -errno;
			close(fd);
			*error_r = "stat of the source message failed";
			break;
		}
		char *base = unique_base((uint64_t)st.st_size, m->vsize);
		char *dest = rg_strdup_printf("%s/cur/%s:2,%s", dest_path, base, sorted);
		char *from = maildir_msg_path(src, m);
		/* a link shares the bytes and keeps the date; a copy elsewhere */
		if (link(from, dest) < 0) {
			char *tmp = maildir_path_join3(dest_path, "tmp", base);
			ret = copy_file(fd, tmp);
			if (ret == 0)
				ret = set_mtime(tmp, st.st_mtime);
			if (ret == 0 && rename(tmp, dest) < 0)
				ret = -errno;
			if (ret < 0) {
				unlink(tmp);
				*error_r = "copying the message failed";
			}
			rg_free(tmp);
		}
		close(fd);
		rg_free(from);
		rg_free(dest);
		if (ret < 0) {
			rg_free(base);
			break;
		}
		slot[nb] = i;
		bases[nb++] = base;
	}
	if (ret == 0 && nb > 0) {
		uint32_t *uids = rg_calloc(nb, sizeof(*uids));
		ret = maildir_uidlist_register(dest_path, bases, nb, uids, uidvalidity_r, error_r);
		for (size_t k = 0; k < nb && ret == 0; k++)
			uids_r[slot[k]] = uids[k];
		rg_free(uids);
	} else if (ret == 0) {
		*uidvalidity_r = 0;
	}
out:
	for (size_t k = 0; k < nb; k++)
		rg_free(bases[k]);
	rg_free(bases);
	rg_free(slot);
	return ret;
}
