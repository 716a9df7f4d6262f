/* maildir-msg.c — one message of an open Maildir folder: its path (found
 * again when another session renamed it), mtime, contents, virtual size,
 * flags (set, change, the letters' rules) and expunge. See
 * maildir-private.h. */
#include "mail/maildir.h"

#include "lib/alloc.h"
#include "lib/log.h"
#include "mail/maildir-private.h"
#include "mail/mailfile.h"
#include "mail/mbox-imap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *maildir_msg_path(const struct maildir *box, const struct maildir_msg *m)
{
	return maildir_path_join3(box->path, m->in_new ? "new" : "cur", m->name);
}

/* Another session renamed the file (flags change, new/ -> cur/): find it
 * again by its base name. -ENOENT when it was expunged. */
static int msg_relocate(struct maildir *box, struct maildir_msg *m)
{
	static const char *const dirs[] = { "cur", "new" };
	size_t blen = strlen(m->base);
	for (size_t d = 0; d < 2; d++) {
		char *dirpath = rg_strdup_printf("%s/%s", box->path, dirs[d]);
		DIR *dir = opendir(dirpath);
		rg_free(dirpath);
		if (dir == NULL)
			continue;
		struct dirent *de;
		while ((de = readdir(dir)) != NULL) {
			if (strncmp(de->d_name, m->base, blen) != 0 ||
			    (de->d_name[blen] != '\0' && de->d_name[blen] != ':'))
				continue;
			rg_free(m->name);
			m->name = rg_strdup(de->d_name);
			m->in_new = d == 1;
			maildir_name_flags(m->name, m->flags);
			closedir(dir);
			return 0;
		}
		closedir(dir);
	}
	return -ENOENT;
}

int maildir_msg_open(struct maildir *box, struct maildir_msg *m)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		char *file = maildir_msg_path(box, m);
		int fd = open(file, O_RDONLY | O_CLOEXEC);
		rg_free(file);
		if (fd >= 0)
			return fd;
		if (errno != ENOENT)
			return -errno;
		int ret = msg_relocate(box, m);
		if (ret < 0)
			return ret;
	}
	return -ENOENT;
}

time_t maildir_msg_mtime(struct maildir *box, size_t idx)
{
	struct maildir_msg *m = &box->msgs[idx];
	if (m->mtime >= 0)
		return m->mtime;
	for (int attempt = 0; attempt < 2; attempt++) {
		char *file = maildir_msg_path(box, m);
		struct stat st;
		int ret = stat(file, &st);
		rg_free(file);
		if (ret == 0) {
			m->mtime = st.st_mtime;
			return m->mtime;
		}
		if (errno != ENOENT || msg_relocate(box, m) < 0)
			break;
	}
	return 0;
}

int maildir_msg_read(struct maildir *box, size_t idx, char **data_r, size_t *len_r)
{
	if (box->mbox != NULL)
		return mbox_imap_read(box, idx, data_r, len_r);
	struct maildir_msg *m = &box->msgs[idx];
	if (m->expunged)
		return -ENOENT;
	int fd = maildir_msg_open(box, m);
	if (fd < 0)
		return fd;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int ret = -errno;
		close(fd);
		return ret;
	}
	size_t size = (size_t)st.st_size;
	char *data = rg_malloc(size + 1);
	size_t got;
	/* a short read (truncated meanwhile: Maildir files never change, but
	   be safe) keeps what was read */
	int rret = mailfile_read_all(fd, data, size, &got);
	if (rret < 0) {
		close(fd);
		rg_free(data);
		return rret;
	}
	close(fd);
	data[got] = '\0';
	m->size = got;
	if (m->vsize < 0)
		m->vsize = (int64_t)maildir_crlf_size(data, got);
	*data_r = data;
	*len_r = got;
	return 0;
}

int maildir_msg_vsize(struct maildir *box, size_t idx, uint64_t *vsize_r)
{
	struct maildir_msg *m = &box->msgs[idx];
	if (m->vsize < 0) {
		char *data;
		size_t len;
		int ret = maildir_msg_read(box, idx, &data, &len);
		if (ret < 0)
			return ret;
		rg_free(data);
	}
	*vsize_r = (uint64_t)m->vsize;
	return 0;
}

bool maildir_msg_has_flag(const struct maildir_msg *msg, char flag)
{
	return strchr(msg->flags, flag) != NULL && flag != '\0';
}

int maildir_msg_set_flags(struct maildir *box, size_t idx, const char *flags)
{
	if (box->mbox != NULL)
		return mbox_imap_change_flags(box, idx, '=', flags);
	struct maildir_msg *m = &box->msgs[idx];
	char sorted[MAILDIR_MAX_FLAGS + 1];

	if (m->expunged)
		return -ENOENT;
	maildir_flags_normalize(flags, sorted);
	char *newname = rg_strdup_printf("%s:2,%s", m->base, sorted);
	if (!m->in_new && strcmp(newname, m->name) == 0) {
		rg_free(newname);
		return 0;
	}
	char *to = maildir_path_join3(box->path, "cur", newname);
	int ret = -ENOENT;
	for (int attempt = 0; attempt < 2; attempt++) {
		char *from = maildir_msg_path(box, m);
		ret = rename(from, to) < 0 ? -errno : 0;
		rg_free(from);
		if (ret != -ENOENT || msg_relocate(box, m) < 0)
			break;
	}
	rg_free(to);
	if (ret < 0) {
		rg_free(newname);
		return ret;
	}
	rg_free(m->name);
	m->name = newname;
	m->in_new = false;
	memcpy(m->flags, sorted, sizeof(sorted));
	return 0;
}

void maildir_flags_apply(const char *cur, char mode, const char *letters,
			 char out[MAILDIR_MAX_FLAGS + 1])
{
	char flags[MAILDIR_MAX_FLAGS * 2 + 1];
	size_t o = 0, nl = strlen(letters);
	for (const char *f = cur; *f != '\0'; f++) {
		bool keep = mode == '=' ? *f == MAILDIR_FLAG_PASSED :
			    mode != '-' || strchr(letters, *f) == NULL;
		if (keep)
			flags[o++] = *f;
	}
	if (mode != '-') {
		if (nl > sizeof(flags) - 1 - o)
			nl = sizeof(flags) - 1 - o;
		memcpy(flags + o, letters, nl);
		o += nl;
	}
	flags[o] = '\0';
	maildir_flags_normalize(flags, out);
}

int maildir_msg_change_flags(struct maildir *box, size_t idx, char mode, const char *letters)
{
	if (box->mbox != NULL)
		return mbox_imap_change_flags(box, idx, mode, letters);
	struct maildir_msg *m = &box->msgs[idx];
	if (m->expunged)
		return -ENOENT;
	int ret = -ENOENT;
	/* a rename from a name another session changed meanwhile fails:
	 * find the file again and apply the change to the flags it has now */
	for (int attempt = 0; attempt < 3; attempt++) {
		char sorted[MAILDIR_MAX_FLAGS + 1];
		maildir_flags_apply(m->flags, mode, letters, sorted);
		char *newname = rg_strdup_printf("%s:2,%s", m->base, sorted);
		if (!m->in_new && strcmp(newname, m->name) == 0) {
			rg_free(newname);
			return 0;
		}
		char *from = maildir_msg_path(box, m);
		char *to = maildir_path_join3(box->path, "cur", newname);
		ret = rename(from, to) < 0 ? -errno : 0;
		rg_free(from);
		rg_free(to);
		if (ret == 0) {
			rg_free(m->name);
			m->name = newname;
			m->in_new = false;
			memcpy(m->flags, sorted, sizeof(sorted));
			return 1;
		}
		rg_free(newname);
		if (ret != -ENOENT || msg_relocate(box, m) < 0)
			break;
	}
	return ret;
}

int maildir_msg_delete(struct maildir *box, size_t idx)
{
	if (box->mbox != NULL)
		return mbox_imap_delete(box, idx);
	struct maildir_msg *m = &box->msgs[idx];
	if (m->expunged)
		return 0;
	for (int attempt = 0; attempt < 2; attempt++) {
		char *file = maildir_msg_path(box, m);
		int ret = unlink(file) < 0 ? -errno : 0;
		rg_free(file);
		if (ret == 0)
			break;
		if (ret != -ENOENT)
			return ret;
		if (msg_relocate(box, m) < 0)
			break; /* already gone: that is what we wanted */
	}
	m->expunged = true;
	return 0;
}

int maildir_flush(struct maildir *box)
{
	return box->mbox != NULL ? mbox_imap_flush(box) : 0;
}
