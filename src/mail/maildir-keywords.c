#include "mail/maildir-private.h"

#include "lib/alloc.h"
#include "mail/mailfile.h"
#include "mail/mbox-imap.h"
#include "mail/mime.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ---- keywords ---- */

void maildir_keywords_free(char **kw)
{
	for (size_t i = 0; i < MAILDIR_MAX_KEYWORDS; i++) {
		rg_free(kw[i]);
		kw[i] = NULL;
	}
}

/* read dovecot-keywords into kw (missing file: none); bad lines are skipped */
int maildir_keywords_read(const char *path, char **kw)
{
	char *file = rg_strdup_printf("%s/%s", path, MAILDIR_KEYWORDS_NAME);
	FILE *f = fopen(file, "re");
	rg_free(file);
	maildir_keywords_free(kw);
	if (f == NULL)
		return errno == ENOENT ? 0 : -errno;
	char line[MAILDIR_MAX_KEYWORD_LEN + 16];
	while (fgets(line, sizeof(line), f) != NULL) {
		char *end;
		unsigned long n = strtoul(line, &end, 10);
		if (end == line || *end != ' ' || n >= MAILDIR_MAX_KEYWORDS)
			continue;
		size_t len = strcspn(end + 1, "\r\n");
		if (len == 0 || kw[n] != NULL)
			continue;
		kw[n] = rg_strndup(end + 1, len);
	}
	fclose(f);
	return 0;
}

static int keywords_write(const char *path, char *const *kw)
{
	struct mime_buf b = { 0 };
	mime_buf_add(&b, "", 0);
	for (size_t i = 0; i < MAILDIR_MAX_KEYWORDS; i++) {
		if (kw[i] != NULL)
			mime_buf_printf(&b, "%zu %s\n", i, kw[i]);
	}
	int ret = mailfile_replace(path, MAILDIR_KEYWORDS_NAME, b.data, b.len);
	mime_buf_free(&b);
	return ret;
}

static bool keyword_name_ok(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > MAILDIR_MAX_KEYWORD_LEN)
		return false;
	for (const char *p = name; *p != '\0'; p++) {
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return false;
	}
	return true;
}

int maildir_keywords_lookup(const char *path, const char *const *names, size_t n, bool create,
			    char *letters_r)
{
	char *kw[MAILDIR_MAX_KEYWORDS] = { 0 };
	int ret, lock_fd = -1;
	size_t o = 0;
	letters_r[0] = '\0';
	if (mbox_imap_path(path))
		return mbox_imap_keywords_lookup(path, names, n, create, letters_r);
	if (create && (ret = maildir_lock_open(path, &lock_fd)) < 0)
		return ret;
	ret = maildir_keywords_read(path, kw);
	bool dirty = false;
	for (size_t i = 0; i < n && ret == 0; i++) {
		int found = -1, free_slot = -1;
		for (int k = 0; k < MAILDIR_MAX_KEYWORDS; k++) {
			if (kw[k] != NULL && strcasecmp(kw[k], names[i]) == 0)
				found = k;
			else if (kw[k] == NULL && free_slot < 0)
				free_slot = k;
		}
		if (found < 0 && create && free_slot >= 0 && keyword_name_ok(names[i])) {
			kw[free_slot] = rg_strdup(names[i]);
			found = free_slot;
			dirty = true;
		}
		if (found >= 0 && memchr(letters_r, 'a' + found, o) == NULL)
			letters_r[o++] = (char)('a' + found);
	}
	letters_r[o] = '\0';
	if (ret == 0 && dirty)
		ret = keywords_write(path, kw);
	maildir_keywords_free(kw);
	if (lock_fd >= 0)
		close(lock_fd);
	return ret;
}

int maildir_keywords_reload(struct maildir *box)
{
	if (box->mbox != NULL)
		return 0; /* the view's own list is the current one */
	return maildir_keywords_read(box->path, box->keywords);
}
