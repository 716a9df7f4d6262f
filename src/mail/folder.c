#include "mail/folder.h"

#include "lib/alloc.h"
#include "mail/mailfile.h"
#include "mail/maildir.h"
#include "mail/mbox-imap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SUBSCRIPTIONS_MAX_SIZE (1024 * 1024)

static const char *const special_names[][2] = {
	{ "Drafts", "\\Drafts" },
	{ "Sent", "\\Sent" },
	{ "Trash", "\\Trash" },
	{ "Junk", "\\Junk" },
};
#define SPECIAL_COUNT (sizeof(special_names) / sizeof(special_names[0]))

bool folder_is_inbox(const char *name)
{
	return name != NULL && strcasecmp(name, "INBOX") == 0;
}

bool folder_name_valid_sep(const char *name, char sep)
{
	size_t len = strlen(name);
	if (len == 0 || len > FOLDER_MAX_NAME || name[0] == sep || name[len - 1] == sep)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		/* IMAP names are 7-bit (modified UTF-7) */
		if (c < 0x20 || c >= 0x7f || c == '*' || c == '%' ||
		    (c == '/' && sep != '/') || (c == sep && name[i + 1] == sep))
			return false;
		/* a file level never starts with a dot (no "..", no .imap) */
		if (sep == '/' && c == '.' && (i == 0 || name[i - 1] == '/'))
			return false;
	}
	return true;
}

bool folder_name_valid(const char *name)
{
	return folder_name_valid_sep(name, FOLDER_SEP);
}

char folder_sep(const char *root)
{
	return folder_root_is_mbox(root) ? '/' : FOLDER_SEP;
}

char *folder_path(const char *root, const char *name)
{
	if (folder_root_is_mbox(root))
		return folder_mbox_path(root, name);
	if (folder_is_inbox(name))
		return rg_strdup(root);
	if (!folder_name_valid(name))
		return NULL;
	return rg_strdup_printf("%s/.%s", root, name);
}

bool folder_exists(const char *root, const char *name)
{
	if (folder_root_is_mbox(root))
		return folder_mbox_exists(root, name);
	if (folder_is_inbox(name))
		return true;
	char *path = folder_path(root, name);
	struct stat st;
	bool ok = path != NULL && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
	rg_free(path);
	return ok;
}

bool folder_path_exists(const char *path)
{
	/* an mbox file that is gone is an empty mailbox (a spool removed
	   when emptied by another program) */
	if (mbox_imap_path(path))
		return true;
	struct stat st;
	return stat(path, &st) == 0;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void names_add(char ***names, size_t *count, size_t *alloc, char *name)
{
	if (*count == *alloc) {
		*alloc = *alloc == 0 ? 16 : *alloc * 2;
		*names = rg_realloc(*names, *alloc * sizeof(**names));
	}
	(*names)[(*count)++] = name;
}

int folder_list(const char *root, char ***names_r, size_t *count_r)
{
	if (folder_root_is_mbox(root))
		return folder_mbox_list(root, names_r, count_r);
	char **names = NULL;
	size_t count = 0, alloc = 0;
	DIR *dir = opendir(root);
	if (dir == NULL)
		return -errno;
	names_add(&names, &count, &alloc, rg_strdup("INBOX"));
	struct dirent *de;
	while ((de = readdir(dir)) != NULL) {
		/* ".." prefixes are our (and Dovecot's) temporary names */
		if (de->d_name[0] != '.' || de->d_name[1] == '.' || de->d_name[1] == '\0')
			continue;
		if (!folder_name_valid(de->d_name + 1) || folder_is_inbox(de->d_name + 1))
			continue;
		struct stat st;
		if (fstatat(dirfd(dir), de->d_name, &st, 0) < 0 || !S_ISDIR(st.st_mode))
			continue;
		names_add(&names, &count, &alloc, rg_strdup(de->d_name + 1));
	}
	closedir(dir);
	if (count > 2)
		qsort(names + 1, count - 1, sizeof(*names), cmp_name);
	*names_r = names;
	*count_r = count;
	return 0;
}

void folder_list_free(char **names, size_t count)
{
	for (size_t i = 0; i < count; i++)
		rg_free(names[i]);
	rg_free(names);
}

uint32_t folder_next_uidvalidity(const char *root, const char *name)
{
	char *file = rg_strdup_printf("%s/%s", root, name);
	int fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	rg_free(file);
	if (fd < 0)
		return 0;
	uint32_t v = 0;
	if (flock(fd, LOCK_EX) == 0) {
		char buf[16] = "";
		ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
		unsigned long last = n > 0 ? strtoul(buf, NULL, 16) : 0;
		v = (uint32_t)time(NULL);
		if (last >= v && last < UINT32_MAX)
			v = (uint32_t)last + 1;
		int len = snprintf(buf, sizeof(buf), "%08x\n", v);
		if (pwrite(fd, buf, (size_t)len, 0) != len || ftruncate(fd, len) < 0)
			v = 0;
	}
	close(fd);
	return v;
}

int folder_create(const char *root, const char *name)
{
	if (folder_root_is_mbox(root))
		return folder_mbox_create(root, name);
	if (folder_is_inbox(name))
		return -EEXIST;
	char *path = folder_path(root, name);
	if (path == NULL)
		return -EINVAL;
	int ret = 0;
	if (mkdir(path, 0700) < 0) {
		ret = -errno;
	} else {
		ret = maildir_create(path);
		if (ret == 0) {
			/* Dovecot and Courier mark Maildir++ folders so */
			char *mark = rg_strdup_printf("%s/maildirfolder", path);
			int fd = open(mark, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
			if (fd >= 0)
				close(fd);
			rg_free(mark);
			uint32_t v = folder_next_uidvalidity(root, FOLDER_UIDVALIDITY);
			if (v != 0)
				ret = maildir_uidlist_create(path, v);
		}
	}
	rg_free(path);
	return ret;
}

int folder_create_parent(const char *root, const char *name)
{
	if (folder_root_is_mbox(root))
		return folder_mbox_create_parent(root, name);
	return folder_create(root, name);
}

bool folder_is_level(const char *root, const char *name)
{
	return folder_root_is_mbox(root) && folder_mbox_is_level(root, name);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	int r = flag == FTW_DP ? rmdir(path) : unlink(path);
	return r < 0 && errno != ENOENT ? -1 : 0;
}

int folder_delete(const char *root, const char *name)
{
	if (folder_root_is_mbox(root))
		return folder_mbox_delete(root, name);
	if (folder_is_inbox(name))
		return -EPERM;
	char *path = folder_path(root, name);
	if (path == NULL)
		return -EINVAL;
	/* rename first, so the folder vanishes at once for every session and
	 * a crash half-way leaves no half folder */
	char *trash = rg_strdup_printf("%s/..ringgate-trash.%d", root, (int)getpid());
	int ret = 0;
	if (rename(path, trash) < 0)
		ret = -errno;
	else if (nftw(trash, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
		ret = -EIO;
	rg_free(trash);
	rg_free(path);
	return ret;
}

int folder_rename(const char *root, const char *from, const char *to)
{
	if (folder_root_is_mbox(root))
		return folder_mbox_rename(root, from, to);
	if (folder_is_inbox(from) || folder_is_inbox(to))
		return -EPERM;
	if (!folder_name_valid(from) || !folder_name_valid(to))
		return -EINVAL;
	size_t flen = strlen(from);
	if (strncmp(to, from, flen) == 0 && (to[flen] == '\0' || to[flen] == FOLDER_SEP))
		return -EINVAL; /* into itself */
	if (!folder_exists(root, from))
		return -ENOENT;
	if (folder_exists(root, to))
		return -EEXIST;
	char **names;
	size_t count;
	int ret = folder_list(root, &names, &count);
	if (ret < 0)
		return ret;
	/* children first checked, then everything renamed */
	for (size_t i = 0; i < count && ret == 0; i++) {
		if (strncmp(names[i], from, flen) != 0 || names[i][flen] != FOLDER_SEP)
			continue;
		char *target = rg_strdup_printf("%s%s", to, names[i] + flen);
		if (!folder_name_valid(target) || strlen(target) > FOLDER_MAX_NAME)
			ret = -EINVAL;
		else if (folder_exists(root, target))
			ret = -EEXIST;
		rg_free(target);
	}
	for (size_t i = 0; i < count && ret == 0; i++) {
		if (strncmp(names[i], from, flen) != 0 ||
		    (names[i][flen] != FOLDER_SEP && names[i][flen] != '\0'))
			continue;
		char *a = rg_strdup_printf("%s/.%s", root, names[i]);
		char *b = rg_strdup_printf("%s/.%s%s", root, to, names[i] + flen);
		if (rename(a, b) < 0)
			ret = -errno;
		rg_free(a);
		rg_free(b);
	}
	folder_list_free(names, count);
	return ret;
}

/* ---- subscriptions ---- */

/* where the subscriptions file of root lives: Maildir's root, or an mbox
   root's directory with Dovecot's mbox name */
static char *subs_dir(const char *root, const char **name_r)
{
	if (folder_root_is_mbox(root)) {
		*name_r = "." FOLDER_SUBSCRIPTIONS;
		return folder_mbox_dir(root);
	}
	*name_r = FOLDER_SUBSCRIPTIONS;
	return rg_strdup(root);
}

static int subs_read(const char *root, char ***names_r, size_t *count_r)
{
	const char *sname;
	char *dir = subs_dir(root, &sname);
	char *file = rg_strdup_printf("%s/%s", dir, sname);
	rg_free(dir);
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	rg_free(file);
	*names_r = NULL;
	*count_r = 0;
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	char *data = rg_malloc(SUBSCRIPTIONS_MAX_SIZE + 1);
	size_t got = 0;
	for (;;) {
		ssize_t n = read(fd, data + got, SUBSCRIPTIONS_MAX_SIZE - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got == SUBSCRIPTIONS_MAX_SIZE)
			break;
	}
	close(fd);
	data[got] = '\0';
	char **names = NULL;
	size_t count = 0, alloc = 0;
	char *line = data;
	/* Dovecot's version 2 file starts "V\t2\n\n" and separates levels
	 * with TABs; version 1 is one name a line. Both are read. */
	bool v2 = strncmp(data, "V\t2\n", 4) == 0;
	if (v2)
		line = data + 4;
	while (*line != '\0') {
		char *nl = strchr(line, '\n');
		if (nl != NULL)
			*nl = '\0';
		if (*line != '\0') {
			if (v2) {
				for (char *p = line; *p != '\0'; p++)
					if (*p == '\t')
						*p = folder_sep(root);
			}
			names_add(&names, &count, &alloc, rg_strdup(line));
		}
		if (nl == NULL)
			break;
		line = nl + 1;
	}
	rg_free(data);
	*names_r = names;
	*count_r = count;
	return 0;
}

int folder_subscriptions(const char *root, char ***names_r, size_t *count_r)
{
	return subs_read(root, names_r, count_r);
}

int folder_subscribe(const char *root, const char *name, bool subscribe)
{
	if (!folder_is_inbox(name) && !folder_name_valid_sep(name, folder_sep(root)))
		return -EINVAL;
	int lock_fd;
	const char *sname;
	char *dir = subs_dir(root, &sname);
	char *lock = rg_strdup_printf("%s.lock", sname);
	int ret = mkdir(dir, 0700) < 0 && errno != EEXIST ? -errno : 0;
	if (ret == 0)
		ret = mailfile_lock(dir, lock, &lock_fd);
	rg_free(lock);
	if (ret < 0) {
		rg_free(dir);
		return ret;
	}
	char **names;
	size_t count;
	ret = subs_read(root, &names, &count);
	if (ret < 0) {
		close(lock_fd);
		rg_free(dir);
		return ret;
	}
	bool found = false;
	size_t cap = strlen(name) + 2;
	for (size_t i = 0; i < count; i++) {
		found |= strcmp(names[i], name) == 0;
		cap += strlen(names[i]) + 1;
	}
	if (found != subscribe) {
		char *data = rg_malloc(cap + 1);
		size_t len = 0;
		for (size_t i = 0; i < count; i++) {
			if (strcmp(names[i], name) == 0)
				continue;
			len += (size_t)sprintf(data + len, "%s\n", names[i]);
		}
		if (subscribe)
			len += (size_t)sprintf(data + len, "%s\n", name);
		ret = mailfile_replace(dir, sname, data, len);
		rg_free(data);
	}
	folder_list_free(names, count);
	close(lock_fd);
	rg_free(dir);
	return ret;
}

const char *folder_special_use(const char *name)
{
	for (size_t i = 0; i < SPECIAL_COUNT; i++) {
		if (strcmp(name, special_names[i][0]) == 0)
			return special_names[i][1];
	}
	return NULL;
}

int folder_ensure_special(const char *root)
{
	int ret = 0;
	for (size_t i = 0; i < SPECIAL_COUNT; i++) {
		if (folder_exists(root, special_names[i][0]))
			continue;
		int r = folder_create(root, special_names[i][0]);
		if (r == 0)
			r = folder_subscribe(root, special_names[i][0], true);
		if (r < 0 && r != -EEXIST && ret == 0)
			ret = r;
	}
	return ret;
}
