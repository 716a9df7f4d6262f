/* mbox-folder.c — the folders of an mbox mail_location: INBOX is the spool
 * file, folder "a/b" is the file <root>/a/b (directories are hierarchy
 * levels and "/" the IMAP separator, as in Dovecot's mbox layout). Files
 * and directories whose names start with a dot (Dovecot's .imap,
 * .subscriptions) are not folders. See folder.h and mbox-imap.h. */
#include "mail/folder.h"

#include "lib/alloc.h"
#include "mail/mbox-imap.h"
#include "mail/mbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define INBOX_OPT ":INBOX="
#define LIST_MAX_DEPTH 16

static bool mbox_name_valid(const char *name)
{
	return folder_name_valid_sep(name, '/');
}

bool folder_root_is_mbox(const char *root)
{
	return mbox_imap_path(root) && strstr(root, INBOX_OPT) != NULL;
}

char *folder_mbox_root(const char *dir, const char *inbox)
{
	return rg_strdup_printf(MBOX_IMAP_PREFIX "%s" INBOX_OPT "%s", dir, inbox);
}

/* the root directory of an mbox root string (rg_free it) */
char *folder_mbox_dir(const char *root)
{
	const char *dir = root + strlen(MBOX_IMAP_PREFIX);
	const char *opt = strstr(dir, INBOX_OPT);
	return rg_strndup(dir, (size_t)(opt - dir));
}

/* the file of a folder (not INBOX), name already valid */
static char *folder_file(const char *root, const char *name)
{
	char *dir = folder_mbox_dir(root);
	char *file = rg_strdup_printf("%s/%s", dir, name);
	rg_free(dir);
	return file;
}

char *folder_mbox_path(const char *root, const char *name)
{
	if (folder_is_inbox(name))
		return rg_strdup_printf(MBOX_IMAP_PREFIX "%s", strstr(root, INBOX_OPT) + strlen(INBOX_OPT));
	if (!mbox_name_valid(name))
		return NULL;
	char *file = folder_file(root, name);
	char *path = rg_strdup_printf(MBOX_IMAP_PREFIX "%s", file);
	rg_free(file);
	return path;
}

bool folder_mbox_exists(const char *root, const char *name)
{
	if (folder_is_inbox(name))
		return true;
	if (!mbox_name_valid(name))
		return false;
	char *file = folder_file(root, name);
	struct stat st;
	bool ok = stat(file, &st) == 0 && S_ISREG(st.st_mode);
	rg_free(file);
	return ok;
}

static void list_dir(int dfd, const char *prefix, int depth, char ***names, size_t *count,
		     size_t *alloc)
{
	DIR *dir = fdopendir(dfd);
	if (dir == NULL) {
		close(dfd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char *name = rg_strdup_printf("%s%s%s", prefix, prefix[0] != '\0' ? "/" : "", de->d_name);
		struct stat st;
		if (!mbox_name_valid(name) || (prefix[0] == '\0' && folder_is_inbox(name)) ||
		    fstatat(dirfd(dir), de->d_name, &st, 0) < 0) {
			rg_free(name);
			continue;
		}
		if (S_ISREG(st.st_mode)) {
			if (*count == *alloc) {
				*alloc = *alloc == 0 ? 16 : *alloc * 2;
				*names = rg_realloc(*names, *alloc * sizeof(**names));
			}
			(*names)[(*count)++] = name;
			continue;
		}
		if (S_ISDIR(st.st_mode) && depth < LIST_MAX_DEPTH) {
			int sub = openat(dirfd(dir), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (sub >= 0)
				list_dir(sub, name, depth + 1, names, count, alloc);
		}
		rg_free(name);
	}
	closedir(dir);
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int folder_mbox_list(const char *root, char ***names_r, size_t *count_r)
{
	char **names = rg_malloc(16 * sizeof(*names));
	size_t count = 1, alloc = 16;
	names[0] = rg_strdup("INBOX");
	char *dir = folder_mbox_dir(root);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret = dfd < 0 && errno != ENOENT ? -errno : 0;
	rg_free(dir);
	if (ret < 0) {
		folder_list_free(names, count);
		return ret;
	}
	if (dfd >= 0)
		list_dir(dfd, "", 0, &names, &count, &alloc);
	if (count > 2)
		qsort(names + 1, count - 1, sizeof(*names), cmp_name);
	*names_r = names;
	*count_r = count;
	return 0;
}

/* the directories above file, as needed */
static int mkdir_parents(const char *file)
{
	char *copy = rg_strdup(file);
	int ret = 0;
	for (char *p = strchr(copy + 1, '/'); p != NULL && ret == 0; p = strchr(p + 1, '/')) {
		*p = '\0';
		if (mkdir(copy, 0700) < 0 && errno != EEXIST)
			ret = -errno;
		*p = '/';
	}
	rg_free(copy);
	return ret;
}

int folder_mbox_create(const char *root, const char *name)
{
	if (folder_is_inbox(name))
		return -EEXIST;
	if (!mbox_name_valid(name))
		return -EINVAL;
	char *file = folder_file(root, name);
	int ret = mkdir_parents(file);
	if (ret == 0) {
		/* a new UIDVALIDITY, kept in the pseudo message, so a name
		   deleted and created again does not reuse UIDs */
		char *dir = folder_mbox_dir(root);
		uint32_t v = folder_next_uidvalidity(dir, "." FOLDER_UIDVALIDITY);
		rg_free(dir);
		ret = mbox_create(file, v);
	}
	rg_free(file);
	return ret == -ENOTDIR ? -EINVAL : ret;
}

bool folder_mbox_is_level(const char *root, const char *name)
{
	if (folder_is_inbox(name) || !mbox_name_valid(name))
		return false;
	char *dir = folder_file(root, name);
	struct stat st;
	bool ok = lstat(dir, &st) == 0 && S_ISDIR(st.st_mode);
	rg_free(dir);
	return ok;
}

int folder_mbox_create_parent(const char *root, const char *name)
{
	if (folder_is_inbox(name))
		return -EEXIST;
	if (!mbox_name_valid(name))
		return -EINVAL;
	char *dir = folder_file(root, name);
	int ret = mkdir_parents(dir);
	if (ret == 0 && mkdir(dir, 0700) < 0)
		ret = -errno;
	rg_free(dir);
	return ret == -ENOTDIR ? -EINVAL : ret;
}

int folder_mbox_delete(const char *root, const char *name)
{
	if (folder_is_inbox(name))
		return -EPERM;
	if (!mbox_name_valid(name))
		return -ENOENT;
	char *file = folder_file(root, name);
	struct stat st;
	int ret = lstat(file, &st) < 0 ? -errno : 0;
	/* a level without a file of its own (\Noselect) goes when empty */
	if (ret == 0)
		ret = (S_ISDIR(st.st_mode) ? rmdir(file) : unlink(file)) < 0 ? -errno : 0;
	rg_free(file);
	return ret;
}

int folder_mbox_rename(const char *root, const char *from, const char *to)
{
	if (folder_is_inbox(from) || folder_is_inbox(to))
		return -EPERM;
	if (!mbox_name_valid(from) || !mbox_name_valid(to))
		return -EINVAL;
	if (!folder_mbox_exists(root, from))
		return -ENOENT;
	char *a = folder_file(root, from), *b = folder_file(root, to);
	struct stat st;
	int ret = lstat(b, &st) == 0 ? -EEXIST : mkdir_parents(b);
	if (ret == 0 && rename(a, b) < 0)
		ret = -errno;
	rg_free(a);
	rg_free(b);
	return ret == -ENOTDIR ? -EINVAL : ret;
}
