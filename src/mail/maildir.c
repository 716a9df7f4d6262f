#include "mail/maildir.h"

#include "lib/alloc.h"
#include "lib/log.h"
#include "mail/mailfile.h"
#include "mail/mime.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* uidlist files are small (tens of bytes per message); this only bounds a
 * corrupt or hostile file */
#define UIDLIST_MAX_SIZE (256u * 1024 * 1024)

struct scan_entry {
	char *name;
	char *base;
	bool in_new;
	uint64_t size;
	time_t mtime;
	uint32_t uid;
};

struct uid_entry {
	uint32_t uid;
	char *base;
	bool seen;
};

static char *path_join3(const char *a, const char *b, const char *c)
{
	return rg_strdup_printf("%s/%s/%s", a, b, c);
}

static int mkdir_one(const char *path)
{
	if (mkdir(path, 0700) == 0 || errno == EEXIST)
		return 0;
	return -errno;
}

static int mkdir_parents(const char *path)
{
	char *copy = rg_strdup(path);
	int ret = 0;
	for (char *p = copy + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		ret = mkdir_one(copy);
		*p = '/';
		if (ret < 0)
			break;
	}
	if (ret == 0)
		ret = mkdir_one(copy);
	rg_free(copy);
	return ret;
}

int maildir_create(const char *path)
{
	static const char *const subdirs[] = { "cur", "new", "tmp" };
	struct stat st;
	int ret;

	if (stat(path, &st) < 0) {
		if (errno != ENOENT)
			return -errno;
		if ((ret = mkdir_parents(path)) < 0)
			return ret;
	} else if (!S_ISDIR(st.st_mode)) {
		return -ENOTDIR;
	}
	for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
		char *sub = rg_strdup_printf("%s/%s", path, subdirs[i]);
		ret = mkdir_one(sub);
		rg_free(sub);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* ---- file names ---- */

static char *name_base(const char *name)
{
	const char *colon = strchr(name, ':');
	return colon == NULL ? rg_strdup(name) : rg_strndup(name, (size_t)(colon - name));
}

static int cmp_char(const void *a, const void *b)
{
	return *(const unsigned char *)a - *(const unsigned char *)b;
}

/* sorted, de-duplicated flag letters of flags into out */
static void flags_normalize(const char *flags, char out[MAILDIR_MAX_FLAGS + 1])
{
	size_t n = 0;
	for (const char *p = flags; *p != '\0' && n < MAILDIR_MAX_FLAGS; p++) {
		if (!isalpha((unsigned char)*p) || memchr(out, *p, n) != NULL)
			continue;
		out[n++] = *p;
	}
	qsort(out, n, 1, cmp_char);
	out[n] = '\0';
}

static void name_flags(const char *name, char out[MAILDIR_MAX_FLAGS + 1])
{
	const char *info = strstr(name, ":2,");
	out[0] = '\0';
	if (info != NULL)
		flags_normalize(info + 3, out);
}

/* value of ",<key>=<digits>" in the base name, or -1 */
static int64_t base_size_field(const char *base, char key)
{
	for (const char *p = strchr(base, ','); p != NULL; p = strchr(p + 1, ',')) {
		if (p[1] != key || p[2] != '=' || !isdigit((unsigned char)p[3]))
			continue;
		char *end;
		errno = 0;
		unsigned long long v = strtoull(p + 3, &end, 10);
		if (errno == 0 && (*end == '\0' || *end == ',') && v < (1ULL << 62))
			return (int64_t)v;
	}
	return -1;
}

/* ---- directory scan ---- */

static int scan_dir(const char *path, bool in_new, struct scan_entry **arr,
		    size_t *count, size_t *alloc)
{
	char *dirpath = rg_strdup_printf("%s/%s", path, in_new ? "new" : "cur");
	DIR *dir = opendir(dirpath);
	if (dir == NULL) {
		int ret = -errno;
		rg_free(dirpath);
		return ret;
	}
	int dfd = dirfd(dir);
	struct dirent *de;
	errno = 0;
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char *base = name_base(de->d_name);
		/* a name carrying its size needs no stat: a big folder opens
		 * with one readdir (the date is read when asked for) */
		int64_t named_size = de->d_type == DT_REG ? base_size_field(base, 'S') : -1;
		struct stat st;
		if (named_size >= 0) {
			st.st_size = (off_t)named_size;
			st.st_mtime = -1;
		} else if (fstatat(dfd, de->d_name, &st, 0) < 0) {
			rg_free(base);
			/* renamed or expunged by another session meanwhile */
			if (errno == ENOENT) {
				errno = 0;
				continue;
			}
			int ret = -errno;
			closedir(dir);
			rg_free(dirpath);
			return ret;
		} else if (!S_ISREG(st.st_mode)) {
			rg_free(base);
			errno = 0;
			continue;
		}
		if (*count == *alloc) {
			*alloc = *alloc == 0 ? 64 : *alloc * 2;
			*arr = rg_realloc(*arr, *alloc * sizeof(**arr));
		}
		struct scan_entry *e = &(*arr)[(*count)++];
		e->name = rg_strdup(de->d_name);
		e->base = base;
		e->in_new = in_new;
		e->size = (uint64_t)st.st_size;
		e->mtime = st.st_mtime;
		e->uid = 0;
		errno = 0;
	}
	int ret = errno != 0 ? -errno : 0;
	closedir(dir);
	rg_free(dirpath);
	return ret;
}

/* Move every new/ file to cur/ with ":2,". Called under the uidlist lock so
 * two sessions do not race on the same file; an MDA only ever adds files.
 * The bases this call moved go to *moved_r (sorted): they are \Recent. */
static int cmp_str_ptr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int move_new_to_cur(const char *path, char ***moved_r, size_t *moved_count_r)
{
	char *dirpath = rg_strdup_printf("%s/new", path);
	DIR *dir = opendir(dirpath);
	int ret = 0;
	char **moved = NULL;
	size_t count = 0, alloc = 0;
	if (dir == NULL) {
		ret = -errno;
		rg_free(dirpath);
		return ret;
	}
	struct dirent *de;
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char *from = path_join3(path, "new", de->d_name);
		char *to = strchr(de->d_name, ':') != NULL ?
			path_join3(path, "cur", de->d_name) :
			rg_strdup_printf("%s/cur/%s:2,", path, de->d_name);
		if (rename(from, to) < 0) {
			if (errno != ENOENT && ret == 0)
				ret = -errno;
		} else {
			if (count == alloc) {
				alloc = alloc == 0 ? 16 : alloc * 2;
				moved = rg_realloc(moved, alloc * sizeof(*moved));
			}
			moved[count++] = name_base(de->d_name);
		}
		rg_free(from);
		rg_free(to);
	}
	closedir(dir);
	rg_free(dirpath);
	if (count > 1)
		qsort(moved, count, sizeof(*moved), cmp_str_ptr);
	*moved_r = moved;
	*moved_count_r = count;
	return ret;
}

/* ---- the uid list ---- */

static int cmp_uid_entry_base(const void *a, const void *b)
{
	return strcmp(((const struct uid_entry *)a)->base, ((const struct uid_entry *)b)->base);
}

static int cmp_uid_entry_uid(const void *a, const void *b)
{
	uint32_t x = ((const struct uid_entry *)a)->uid, y = ((const struct uid_entry *)b)->uid;
	return x < y ? -1 : x > y;
}

static void uidlist_free(struct uid_entry *list, size_t count)
{
	for (size_t i = 0; i < count; i++)
		rg_free(list[i].base);
	rg_free(list);
}

/* Read the uid list. 0 with *exists_r false when there is none; -EINVAL
 * when it is corrupt (the caller starts a new UIDVALIDITY). */
static int uidlist_read(const char *path, uint32_t *validity_r, uint32_t *next_r,
			struct uid_entry **list_r, size_t *count_r, bool *exists_r,
			uint32_t *stale_r)
{
	char *file = rg_strdup_printf("%s/%s", path, MAILDIR_UIDLIST_NAME);
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	rg_free(file);
	*list_r = NULL;
	*count_r = 0;
	*exists_r = false;
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	*exists_r = true;

	struct stat st;
	if (fstat(fd, &st) < 0) {
		int ret = -errno;
		close(fd);
		return ret;
	}
	if ((uint64_t)st.st_size > UIDLIST_MAX_SIZE) {
		close(fd);
		return -EINVAL;
	}
	/* a corrupt list must get a new UIDVALIDITY greater than the one it
	 * held; that one was a time no later than the file's mtime */
	*stale_r = (uint32_t)st.st_mtime;
	size_t size = (size_t)st.st_size;
	char *data = rg_malloc(size + 1);
	size_t got = 0;
	while (got < size) {
		ssize_t n = read(fd, data + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	data[got] = '\0';
	unsigned long old_validity;
	if (sscanf(data, "1 V%lu", &old_validity) == 1 && old_validity <= UINT32_MAX &&
	    old_validity > *stale_r)
		*stale_r = (uint32_t)old_validity;

	int ret = -EINVAL;
	struct uid_entry *list = NULL;
	size_t count = 0, alloc = 0;
	unsigned long validity, next;
	char *line = data, *nl = strchr(line, '\n');
	if (nl == NULL)
		goto out;
	*nl = '\0';
	int pos = 0;
	if (sscanf(line, "1 V%lu N%lu%n", &validity, &next, &pos) != 2 || line[pos] != '\0' ||
	    validity == 0 || validity > UINT32_MAX || next == 0 || next > UINT32_MAX)
		goto out;
	uint32_t last_uid = 0;
	for (line = nl + 1; *line != '\0'; line = nl + 1) {
		nl = strchr(line, '\n');
		if (nl == NULL)
			goto out; /* a torn last line: we always write whole files */
		*nl = '\0';
		char *end;
		errno = 0;
		unsigned long uid = strtoul(line, &end, 10);
		if (errno != 0 || end == line || *end != ' ' || end[1] == '\0' ||
		    uid <= last_uid || uid >= next)
			goto out;
		last_uid = (uint32_t)uid;
		if (count == alloc) {
			alloc = alloc == 0 ? 64 : alloc * 2;
			list = rg_realloc(list, alloc * sizeof(*list));
		}
		list[count].uid = (uint32_t)uid;
		list[count].base = rg_strdup(end + 1);
		list[count].seen = false;
		count++;
	}
	if (count > 0)
		qsort(list, count, sizeof(*list), cmp_uid_entry_base);
	*validity_r = (uint32_t)validity;
	*next_r = (uint32_t)next;
	*list_r = list;
	*count_r = count;
	list = NULL;
	count = 0;
	ret = 0;
out:
	uidlist_free(list, count);
	rg_free(data);
	return ret;
}

static int cmp_msg_uid(const void *a, const void *b)
{
	uint32_t x = ((const struct maildir_msg *)a)->uid, y = ((const struct maildir_msg *)b)->uid;
	return x < y ? -1 : x > y;
}

/* Replace the uid list with data (tmp + rename), so a reader never sees
 * half a list. Called under the lock. */
static int uidlist_replace(const char *path, const char *data, size_t len)
{
	return mailfile_replace(path, MAILDIR_UIDLIST_NAME, data, len);
}

/* Write the list of box (sorted by uid). Called under the lock. */
static int uidlist_write(const struct maildir *box)
{
	size_t cap = 64, len = 0;
	for (size_t i = 0; i < box->count; i++)
		cap += strlen(box->msgs[i].base) + 16;
	char *data = rg_malloc(cap);
	len += (size_t)snprintf(data, cap, "1 V%u N%u\n", box->uidvalidity, box->uidnext);
	for (size_t i = 0; i < box->count; i++)
		len += (size_t)snprintf(data + len, cap - len, "%u %s\n", box->msgs[i].uid,
					box->msgs[i].base);
	int ret = uidlist_replace(box->path, data, len);
	rg_free(data);
	return ret;
}

/* ---- open ---- */

static void keywords_free(char **kw);
static int keywords_read(const char *path, char **kw);
static int modseq_sync(struct maildir *box);

static int cmp_scan_base(const void *a, const void *b)
{
	const struct scan_entry *x = a, *y = b;
	int c = strcmp(x->base, y->base);
	/* a base in both dirs (moved meanwhile): prefer cur/ */
	return c != 0 ? c : (int)x->in_new - (int)y->in_new;
}

static int cmp_scan_ptr_arrival(const void *a, const void *b)
{
	const struct scan_entry *x = *(const struct scan_entry *const *)a;
	const struct scan_entry *y = *(const struct scan_entry *const *)b;
	if (x->mtime != y->mtime)
		return x->mtime < y->mtime ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int lock_open(const char *path, int *fd_r)
{
	return mailfile_lock(path, MAILDIR_LOCK_NAME, fd_r);
}

static void dir_mtime(const char *path, const char *sub, struct timespec *ts_r, bool *recent_r)
{
	char *dir = rg_strdup_printf("%s/%s", path, sub);
	struct stat st;
	if (stat(dir, &st) < 0) {
		memset(ts_r, 0, sizeof(*ts_r));
		*recent_r = true;
	} else {
		*ts_r = st.st_mtim;
		/* directory times come from a coarse clock: a change in the
		 * same tick leaves the time as it is */
		if (st.st_mtim.tv_sec + 2 >= time(NULL))
			*recent_r = true;
	}
	rg_free(dir);
}

static void dirs_stat(struct maildir *box)
{
	box->recheck = false;
	dir_mtime(box->path, "cur", &box->cur_mtime, &box->recheck);
	dir_mtime(box->path, "new", &box->new_mtime, &box->recheck);
}

bool maildir_changed(const struct maildir *box)
{
	struct timespec cur, new;
	bool recent = false;
	if (box->recheck)
		return true;
	dir_mtime(box->path, "cur", &cur, &recent);
	dir_mtime(box->path, "new", &new, &recent);
	return cur.tv_sec != box->cur_mtime.tv_sec || cur.tv_nsec != box->cur_mtime.tv_nsec ||
	       new.tv_sec != box->new_mtime.tv_sec || new.tv_nsec != box->new_mtime.tv_nsec;
}

static uint32_t new_uidvalidity(uint32_t old)
{
	uint32_t v = (uint32_t)time(NULL);
	/* must change when the list is rebuilt, even within one second */
	if (v <= old)
		v = old + 1;
	return v == 0 ? 1 : v;
}

/* Dovecot's dovecot-uidlist (versions 1 and 3), read once when a Maildir
 * has no list of ours, so a folder Dovecot served keeps its UIDs and
 * UIDVALIDITY and clients do not download it again. false when there is
 * none or it cannot be trusted. */
static bool dovecot_uidlist_import(const char *path, uint32_t *validity_r, uint32_t *next_r,
				   struct uid_entry **list_r, size_t *count_r)
{
	char *file = rg_strdup_printf("%s/dovecot-uidlist", path);
	FILE *f = fopen(file, "re");
	rg_free(file);
	if (f == NULL)
		return false;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	unsigned long validity = 0, next = 0;
	int version = 0;
	bool ok = false;
	if ((n = getline(&line, &cap, f)) > 0) {
		if (sscanf(line, "1 %lu %lu", &validity, &next) == 2) {
			version = 1;
		} else if (line[0] == '3' && line[1] == ' ') {
			version = 3;
			for (char *tok = strtok(line + 2, " \n"); tok != NULL; tok = strtok(NULL, " \n")) {
				if (tok[0] == 'V')
					validity = strtoul(tok + 1, NULL, 10);
				else if (tok[0] == 'N')
					next = strtoul(tok + 1, NULL, 10);
			}
		}
		ok = version != 0 && validity > 0 && validity <= UINT32_MAX && next > 0 && next <= UINT32_MAX;
	}
	struct uid_entry *list = NULL;
	size_t count = 0, alloc = 0;
	uint32_t last = 0;
	while (ok && (n = getline(&line, &cap, f)) > 0) {
		line[strcspn(line, "\n")] = '\0';
		char *end;
		unsigned long uid = strtoul(line, &end, 10);
		/* v3: "<uid> [<ext>...] :<base>"; v1: "<uid> <base>" */
		char *base = version == 3 ? strstr(end, " :") : end;
		if (base == NULL || end == line || *end != ' ' || uid <= last || uid >= UINT32_MAX) {
			ok = false;
			break;
		}
		base += version == 3 ? 2 : 1;
		/* Dovecot appends lines without rewriting N in the header */
		if (uid >= next && uid < UINT32_MAX)
			next = uid + 1;
		if (*base == '\0' || strchr(base, '/') != NULL) {
			ok = false;
			break;
		}
		if (count == alloc) {
			alloc = alloc == 0 ? 64 : alloc * 2;
			list = rg_realloc(list, alloc * sizeof(*list));
		}
		list[count].uid = (uint32_t)uid;
		list[count].base = rg_strdup(base);
		list[count].seen = false;
		count++;
		last = (uint32_t)uid;
	}
	free(line);
	fclose(f);
	if (!ok) {
		uidlist_free(list, count);
		return false;
	}
	if (count > 0)
		qsort(list, count, sizeof(*list), cmp_uid_entry_base);
	*validity_r = (uint32_t)validity;
	*next_r = (uint32_t)next;
	*list_r = list;
	*count_r = count;
	return true;
}

static int scan_and_assign(struct maildir *box, bool move_new, const char **error_r)
{
	struct uid_entry *list = NULL;
	size_t list_count = 0;
	struct scan_entry *scan = NULL;
	size_t scan_count = 0, scan_alloc = 0;
	bool exists, dirty = false;
	uint32_t stale = 0;
	char **moved = NULL;
	size_t moved_count = 0;
	int ret;

	ret = uidlist_read(box->path, &box->uidvalidity, &box->uidnext, &list, &list_count,
			   &exists, &stale);
	if (ret == -EINVAL) {
		log_warning("%s/%s is corrupt: rebuilding it with a new UIDVALIDITY",
			    box->path, MAILDIR_UIDLIST_NAME);
		box->uidvalidity = new_uidvalidity(stale);
		box->uidnext = 1;
		dirty = true;
	} else if (ret < 0) {
		*error_r = "reading the uid list failed";
		return ret;
	} else if (!exists) {
		if (dovecot_uidlist_import(box->path, &box->uidvalidity, &box->uidnext, &list,
					   &list_count)) {
			log_info("%s: UIDs taken over from dovecot-uidlist", box->path);
		} else {
			box->uidvalidity = new_uidvalidity(0);
			box->uidnext = 1;
		}
		dirty = true;
	}

	if (move_new && (ret = move_new_to_cur(box->path, &moved, &moved_count)) < 0) {
		*error_r = "moving new/ to cur/ failed";
		goto out;
	}
	/* before reading them: a change during the scan shows at the next check */
	dirs_stat(box);
	if ((ret = scan_dir(box->path, true, &scan, &scan_count, &scan_alloc)) < 0 ||
	    (ret = scan_dir(box->path, false, &scan, &scan_count, &scan_alloc)) < 0) {
		*error_r = "reading the Maildir failed";
		goto out;
	}
	if (scan_count > 0)
		qsort(scan, scan_count, sizeof(*scan), cmp_scan_base);

	/* match files to known UIDs; collect the unknown ones */
	struct scan_entry **fresh = rg_malloc((scan_count + 1) * sizeof(*fresh));
	size_t fresh_count = 0, kept = 0;
	for (size_t i = 0; i < scan_count; i++) {
		if (i > 0 && strcmp(scan[i].base, scan[i - 1].base) == 0) {
			scan[i].uid = UINT32_MAX; /* duplicate: ignored */
			continue;
		}
		struct uid_entry key = { .base = scan[i].base };
		struct uid_entry *found = list_count == 0 ? NULL :
			bsearch(&key, list, list_count, sizeof(*list),
						  cmp_uid_entry_base);
		if (found != NULL && !found->seen) {
			found->seen = true;
			scan[i].uid = found->uid;
			kept++;
		} else {
			fresh[fresh_count++] = &scan[i];
		}
	}
	if (kept != list_count)
		dirty = true; /* some files are gone */
	/* new files are numbered in arrival order: their dates are needed */
	for (size_t i = 0; i < fresh_count; i++) {
		if (fresh[i]->mtime >= 0)
			continue;
		char *file = path_join3(box->path, fresh[i]->in_new ? "new" : "cur", fresh[i]->name);
		struct stat st;
		fresh[i]->mtime = stat(file, &st) == 0 ? st.st_mtime : 0;
		rg_free(file);
	}
	qsort(fresh, fresh_count, sizeof(*fresh), cmp_scan_ptr_arrival);
	for (size_t i = 0; i < fresh_count; i++) {
		if (box->uidnext == UINT32_MAX) {
			/* 4 billion deliveries into one folder; the admin can
			 * remove the uid list to start a new UIDVALIDITY */
			rg_free(fresh);
			*error_r = "UIDs exhausted";
			ret = -EOVERFLOW;
			goto out;
		}
		fresh[i]->uid = box->uidnext++;
		dirty = true;
	}
	rg_free(fresh);

	box->msgs = rg_calloc(scan_count + 1, sizeof(*box->msgs));
	box->count = 0;
	for (size_t i = 0; i < scan_count; i++) {
		struct scan_entry *e = &scan[i];
		if (e->uid == UINT32_MAX)
			continue;
		struct maildir_msg *m = &box->msgs[box->count++];
		m->uid = e->uid;
		m->in_new = e->in_new;
		m->base = e->base;
		m->name = e->name;
		e->base = NULL;
		e->name = NULL;
		name_flags(m->name, m->flags);
		m->size = e->size;
		m->vsize = base_size_field(m->base, 'W');
		m->mtime = e->mtime;
		m->recent = moved_count > 0 &&
			bsearch(&m->base, moved, moved_count, sizeof(*moved), cmp_str_ptr) != NULL;
	}
	qsort(box->msgs, box->count, sizeof(*box->msgs), cmp_msg_uid);

	if (dirty && (ret = uidlist_write(box)) < 0) {
		*error_r = "writing the uid list failed";
		goto out;
	}
	ret = 0;
out:
	for (size_t i = 0; i < scan_count; i++) {
		rg_free(scan[i].name);
		rg_free(scan[i].base);
	}
	rg_free(scan);
	uidlist_free(list, list_count);
	for (size_t i = 0; i < moved_count; i++)
		rg_free(moved[i]);
	rg_free(moved);
	return ret;
}

int maildir_open(const char *path, bool move_new, struct maildir **box_r, const char **error_r)
{
	int ret, lock_fd = -1;

	*box_r = NULL;
	if ((ret = maildir_create(path)) < 0) {
		*error_r = "creating the Maildir failed";
		return ret;
	}
	if ((ret = lock_open(path, &lock_fd)) < 0) {
		*error_r = "locking the uid list failed";
		return ret;
	}
	struct maildir *box = rg_calloc(1, sizeof(*box));
	box->path = rg_strdup(path);
	ret = scan_and_assign(box, move_new, error_r);
	if (ret == 0 && (ret = keywords_read(path, box->keywords)) < 0)
		*error_r = "reading dovecot-keywords failed";
	if (ret == 0 && (ret = modseq_sync(box)) < 0)
		*error_r = "writing the modseq table failed";
	close(lock_fd); /* releases the flock */
	if (ret < 0) {
		maildir_close(box);
		return ret;
	}
	*box_r = box;
	return 0;
}

void maildir_close(struct maildir *box)
{
	if (box == NULL)
		return;
	for (size_t i = 0; i < box->count; i++) {
		rg_free(box->msgs[i].base);
		rg_free(box->msgs[i].name);
	}
	rg_free(box->msgs);
	rg_free(box->path);
	keywords_free(box->keywords);
	rg_free(box);
}

ssize_t maildir_find_uid(const struct maildir *box, uint32_t uid)
{
	size_t lo = 0, hi = box->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (box->msgs[mid].uid == uid)
			return (ssize_t)mid;
		if (box->msgs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* ---- per message ---- */

static char *msg_path(const struct maildir *box, const struct maildir_msg *m)
{
	return path_join3(box->path, m->in_new ? "new" : "cur", m->name);
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
			name_flags(m->name, m->flags);
			closedir(dir);
			return 0;
		}
		closedir(dir);
	}
	return -ENOENT;
}

static int msg_open(struct maildir *box, struct maildir_msg *m)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		char *file = msg_path(box, m);
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
		char *file = msg_path(box, m);
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
	struct maildir_msg *m = &box->msgs[idx];
	if (m->expunged)
		return -ENOENT;
	int fd = msg_open(box, m);
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
	size_t got = 0;
	while (got < size) {
		ssize_t n = read(fd, data + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int ret = -errno;
			close(fd);
			rg_free(data);
			return ret;
		}
		if (n == 0)
			break; /* truncated meanwhile: Maildir files never change, but be safe */
		got += (size_t)n;
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
	struct maildir_msg *m = &box->msgs[idx];
	char sorted[MAILDIR_MAX_FLAGS + 1];

	if (m->expunged)
		return -ENOENT;
	flags_normalize(flags, sorted);
	char *newname = rg_strdup_printf("%s:2,%s", m->base, sorted);
	if (!m->in_new && strcmp(newname, m->name) == 0) {
		rg_free(newname);
		return 0;
	}
	char *to = path_join3(box->path, "cur", newname);
	int ret = -ENOENT;
	for (int attempt = 0; attempt < 2; attempt++) {
		char *from = msg_path(box, m);
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

int maildir_msg_delete(struct maildir *box, size_t idx)
{
	struct maildir_msg *m = &box->msgs[idx];
	if (m->expunged)
		return 0;
	for (int attempt = 0; attempt < 2; attempt++) {
		char *file = msg_path(box, m);
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


/* ---- keywords ---- */

static void keywords_free(char **kw)
{
	for (size_t i = 0; i < MAILDIR_MAX_KEYWORDS; i++) {
		rg_free(kw[i]);
		kw[i] = NULL;
	}
}

/* read dovecot-keywords into kw (missing file: none); bad lines are skipped */
static int keywords_read(const char *path, char **kw)
{
	char *file = rg_strdup_printf("%s/%s", path, MAILDIR_KEYWORDS_NAME);
	FILE *f = fopen(file, "re");
	rg_free(file);
	keywords_free(kw);
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
	if (create && (ret = lock_open(path, &lock_fd)) < 0)
		return ret;
	ret = keywords_read(path, kw);
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
	keywords_free(kw);
	if (lock_fd >= 0)
		close(lock_fd);
	return ret;
}

int maildir_keywords_reload(struct maildir *box)
{
	return keywords_read(box->path, box->keywords);
}

/* ---- modseqs (CONDSTORE) ---- */

struct modseq_entry {
	uint32_t uid;
	uint64_t modseq;
	char flags[MAILDIR_MAX_FLAGS + 1];
};

/* the table sorted by uid; false when missing or corrupt */
static bool modseq_read(const char *path, uint64_t *highest_r, struct modseq_entry **list_r,
			size_t *count_r)
{
	char *file = rg_strdup_printf("%s/%s", path, MAILDIR_MODSEQ_NAME);
	FILE *f = fopen(file, "re");
	rg_free(file);
	*list_r = NULL;
	*count_r = 0;
	if (f == NULL)
		return false;
	unsigned long long highest;
	char line[MAILDIR_MAX_FLAGS + 64];
	bool ok = fgets(line, sizeof(line), f) != NULL && sscanf(line, "1 H%llu", &highest) == 1;
	struct modseq_entry *list = NULL;
	size_t count = 0, alloc = 0;
	uint32_t last = 0;
	while (ok && fgets(line, sizeof(line), f) != NULL) {
		unsigned long uid;
		unsigned long long modseq;
		int pos = 0;
		if (sscanf(line, "%lu %llu %n", &uid, &modseq, &pos) != 2 || uid <= last ||
		    uid > UINT32_MAX || modseq > highest) {
			ok = false;
			break;
		}
		size_t flen = strcspn(line + pos, "\n");
		if (flen > MAILDIR_MAX_FLAGS) {
			ok = false;
			break;
		}
		if (count == alloc) {
			alloc = alloc == 0 ? 256 : alloc * 2;
			list = rg_realloc(list, alloc * sizeof(*list));
		}
		list[count].uid = (uint32_t)uid;
		list[count].modseq = modseq;
		memcpy(list[count].flags, line + pos, flen);
		list[count].flags[flen] = '\0';
		last = (uint32_t)uid;
		count++;
	}
	fclose(f);
	if (!ok) {
		rg_free(list);
		return false;
	}
	*highest_r = highest;
	*list_r = list;
	*count_r = count;
	return true;
}

static int modseq_write(const char *path, uint64_t highest, const struct modseq_entry *list, size_t count)
{
	struct mime_buf b = { 0 };
	mime_buf_printf(&b, "1 H%llu\n", (unsigned long long)highest);
	for (size_t i = 0; i < count; i++)
		mime_buf_printf(&b, "%u %llu %s\n", list[i].uid, (unsigned long long)list[i].modseq, list[i].flags);
	int ret = mailfile_replace(path, MAILDIR_MODSEQ_NAME, b.data, b.len);
	mime_buf_free(&b);
	return ret;
}

static uint64_t modseq_fresh_start(void)
{
	/* above anything a lost table can have handed out: that would take
	 * more changes than microseconds since the table was made */
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000000 + (uint64_t)tv.tv_usec;
}

/* Under the lock, after a scan: give each message its modseq, bumping
 * those whose flags differ from the table, and rewrite the table when
 * anything changed (new, changed or gone messages). */
static int modseq_sync(struct maildir *box)
{
	uint64_t highest = 0;
	struct modseq_entry *list;
	size_t count;
	bool dirty = false;
	if (!modseq_read(box->path, &highest, &list, &count)) {
		highest = modseq_fresh_start();
		dirty = true;
	}
	struct modseq_entry *out = rg_malloc((box->count + 1) * sizeof(*out));
	size_t j = 0;
	for (size_t i = 0; i < box->count; i++) {
		struct maildir_msg *m = &box->msgs[i];
		while (j < count && list[j].uid < m->uid) {
			j++;
			dirty = true; /* expunged */
		}
		if (j < count && list[j].uid == m->uid && strcmp(list[j].flags, m->flags) == 0) {
			m->modseq = list[j].modseq;
		} else {
			m->modseq = ++highest;
			dirty = true;
		}
		if (j < count && list[j].uid == m->uid)
			j++;
		out[i].uid = m->uid;
		out[i].modseq = m->modseq;
		memcpy(out[i].flags, m->flags, sizeof(out[i].flags));
	}
	dirty |= j < count;
	box->highest_modseq = highest;
	int ret = dirty ? modseq_write(box->path, highest, out, box->count) : 0;
	rg_free(out);
	rg_free(list);
	return ret;
}

int maildir_modseq_commit(struct maildir *box, const size_t *idxs, size_t n)
{
	int ret, lock_fd = -1;
	if (n == 0)
		return 0;
	if ((ret = lock_open(box->path, &lock_fd)) < 0)
		return ret;
	uint64_t highest = 0;
	struct modseq_entry *list;
	size_t count;
	if (!modseq_read(box->path, &highest, &list, &count))
		highest = modseq_fresh_start();
	if (highest < box->highest_modseq)
		highest = box->highest_modseq;
	/* merge our messages into the table (both by uid) */
	size_t *order = rg_malloc(n * sizeof(*order));
	memcpy(order, idxs, n * sizeof(*order));
	for (size_t i = 1; i < n; i++) {
		for (size_t k = i; k > 0 && box->msgs[order[k]].uid < box->msgs[order[k - 1]].uid; k--) {
			size_t t = order[k];
			order[k] = order[k - 1];
			order[k - 1] = t;
		}
	}
	struct modseq_entry *out = rg_malloc((count + n + 1) * sizeof(*out));
	size_t o = 0, j = 0;
	for (size_t i = 0; i < n; i++) {
		struct maildir_msg *m = &box->msgs[order[i]];
		if (i > 0 && order[i] == order[i - 1])
			continue;
		while (j < count && list[j].uid < m->uid)
			out[o++] = list[j++];
		if (j < count && list[j].uid == m->uid)
			j++;
		m->modseq = ++highest;
		out[o].uid = m->uid;
		out[o].modseq = m->modseq;
		memcpy(out[o].flags, m->flags, sizeof(out[o].flags));
		o++;
	}
	while (j < count)
		out[o++] = list[j++];
	ret = modseq_write(box->path, highest, out, o);
	box->highest_modseq = highest;
	close(lock_fd);
	rg_free(out);
	rg_free(order);
	rg_free(list);
	return ret;
}

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

/* Give bases[0..n) (files already in cur/ of path) UIDs in this order.
 * Under the lock: the list is read, extended and replaced. A missing or
 * corrupt list is rebuilt by a full scan, which numbers them too. */
static int uidlist_register(const char *path, char *const *bases, size_t n, uint32_t *uids_r,
			    uint32_t *validity_r, const char **error_r)
{
	int ret, lock_fd = -1;
	if ((ret = lock_open(path, &lock_fd)) < 0) {
		*error_r = "locking the uid list failed";
		return ret;
	}
	struct uid_entry *list;
	size_t count;
	bool exists;
	uint32_t validity = 0, next = 0, stale = 0;
	ret = uidlist_read(path, &validity, &next, &list, &count, &exists, &stale);
	if (ret == 0 && exists && (uint64_t)next + n < UINT32_MAX) {
		size_t cap = 64;
		for (size_t i = 0; i < count; i++)
			cap += strlen(list[i].base) + 16;
		for (size_t i = 0; i < n; i++)
			cap += strlen(bases[i]) + 16;
		/* the list came back sorted by base: lines must go by uid */
		struct uid_entry *byuid = rg_malloc((count + 1) * sizeof(*byuid));
		if (count > 0)
			memcpy(byuid, list, count * sizeof(*byuid));
		if (count > 1)
			qsort(byuid, count, sizeof(*byuid), cmp_uid_entry_uid);
		/* entries first, the header (which needs the count) last */
		char *data = rg_malloc(cap);
		size_t head_room = 32;
		size_t len = head_room;
		for (size_t i = 0; i < count; i++)
			len += (size_t)snprintf(data + len, cap - len, "%u %s\n", byuid[i].uid, byuid[i].base);
		uint32_t added = 0;
		for (size_t i = 0; i < n; i++) {
			/* a session that scanned between our rename into cur/
			 * and this lock has numbered the file already: keep that */
			struct uid_entry key = { .base = bases[i] };
			struct uid_entry *found = count == 0 ? NULL :
				bsearch(&key, list, count, sizeof(*list), cmp_uid_entry_base);
			if (found != NULL) {
				uids_r[i] = found->uid;
				continue;
			}
			uids_r[i] = next + added++;
			len += (size_t)snprintf(data + len, cap - len, "%u %s\n", uids_r[i], bases[i]);
		}
		char head[32];
		size_t hl = (size_t)snprintf(head, sizeof(head), "1 V%u N%u\n", validity, next + added);
		char *start = data + head_room - hl;
		memcpy(start, head, hl);
		rg_free(byuid);
		ret = uidlist_replace(path, start, len - (head_room - hl));
		rg_free(data);
		uidlist_free(list, count);
		if (ret < 0)
			*error_r = "writing the uid list failed";
		*validity_r = validity;
		close(lock_fd);
		return ret;
	}
	uidlist_free(list, count);
	/* no usable list: the scan numbers every file, ours included */
	struct maildir *box = rg_calloc(1, sizeof(*box));
	box->path = rg_strdup(path);
	ret = scan_and_assign(box, false, error_r);
	close(lock_fd);
	if (ret == 0) {
		for (size_t i = 0; i < n; i++) {
			uids_r[i] = 0;
			for (size_t k = 0; k < box->count; k++) {
				if (strcmp(box->msgs[k].base, bases[i]) == 0)
					uids_r[i] = box->msgs[k].uid;
			}
		}
		*validity_r = box->uidvalidity;
	}
	maildir_close(box);
	return ret;
}

static int set_mtime(const char *file, time_t mtime)
{
	if (mtime <= 0)
		return 0;
	struct timespec ts[2] = { { mtime, 0 }, { mtime, 0 } };
	return utimensat(AT_FDCWD, file, ts, 0) < 0 ? -errno : 0;
}

int maildir_save(const char *path, const void *data, size_t len, const char *flags,
		 time_t mtime, uint32_t *uid_r, uint32_t *uidvalidity_r, const char **error_r)
{
	char sorted[MAILDIR_MAX_FLAGS + 1];
	int ret;
	if ((ret = maildir_create(path)) < 0) {
		*error_r = "creating the Maildir failed";
		return ret;
	}
	flags_normalize(flags, sorted);
	char *base = unique_base(len, (int64_t)maildir_crlf_size(data, len));
	char *tmp = path_join3(path, "tmp", base);
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
	ret = uidlist_register(path, &base, 1, uid_r, uidvalidity_r, error_r);
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
	int ret = 0;
	char **bases = rg_calloc(n + 1, sizeof(*bases));
	size_t *slot = rg_calloc(n + 1, sizeof(*slot));
	size_t nb = 0;

	if ((ret = maildir_create(dest_path)) < 0) {
		*error_r = "creating the Maildir failed";
		goto out;
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
		flags_normalize(flags, sorted);
		uids_r[i] = 0;
		if (m->expunged)
			continue;
		int fd = msg_open(src, m);
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
		char *from = msg_path(src, m);
		/* a link shares the bytes and keeps the date; a copy elsewhere */
		if (link(from, dest) < 0) {
			char *tmp = path_join3(dest_path, "tmp", base);
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
		ret = uidlist_register(dest_path, bases, nb, uids, uidvalidity_r, error_r);
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

/* ---- CRLF ---- */

uint64_t maildir_crlf_size(const char *data, size_t len)
{
	uint64_t size = len;
	const char *p = data, *end = data + len;
	while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		if (p == data || p[-1] != '\r')
			size++;
		p++;
	}
	return size;
}

char *maildir_to_crlf(const char *data, size_t len, size_t *len_r)
{
	size_t out_len = (size_t)maildir_crlf_size(data, len);
	char *out = rg_malloc(out_len + 1);
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
			out[o++] = '\r';
		out[o++] = data[i];
	}
	out[o] = '\0';
	*len_r = o;
	return out;
}

/* ---- mail_location ---- */

int maildir_location_path(const char *location, const char *home, const char *user,
			  char **path_r, const char **error_r)
{
	const char *loc = location == NULL || *location == '\0' ? "maildir:~/Maildir" : location;
	const char *colon = strchr(loc, ':');
	const char *slash = strchr(loc, '/');
	if (colon != NULL && (slash == NULL || colon < slash) && loc[0] != '~') {
		if ((size_t)(colon - loc) != 7 || strncasecmp(loc, "maildir", 7) != 0) {
			*error_r = "unsupported mail storage (only maildir is)";
			return -EINVAL;
		}
		loc = colon + 1;
	}
	/* drop ":LAYOUT=fs", ":INDEX=..." and other options */
	size_t len = strcspn(loc, ":");
	if (len == 0) {
		*error_r = "mail location has no path";
		return -EINVAL;
	}

	const char *domain = user != NULL ? strchr(user, '@') : NULL;
	size_t cap = len + 1, o = 0;
	char *out = rg_malloc(cap);
	for (size_t i = 0; i < len; i++) {
		const char *add = &loc[i];
		size_t add_len = 1;
		bool needs_home = false, needs_user = false;
		if (i == 0 && loc[0] == '~' && (len == 1 || loc[1] == '/')) {
			add = home;
			add_len = home != NULL ? strlen(home) : 0;
			needs_home = true;
		} else if (loc[i] == '%' && i + 1 < len) {
			switch (loc[++i]) {
			case 'u': add = user; needs_user = true; break;
			case 'n':
				add = user;
				needs_user = true;
				break;
			case 'd': add = domain != NULL ? domain + 1 : ""; break;
			case 'h': add = home; needs_home = true; break;
			case '%': add = "%"; break;
			default:
				rg_free(out);
				*error_r = "unknown %variable in mail location";
				return -EINVAL;
			}
			if (add != NULL)
				add_len = loc[i] == 'n' && domain != NULL ?
					(size_t)(domain - user) : strlen(add);
		}
		if ((needs_home && (home == NULL || *home == '\0')) ||
		    (needs_user && (user == NULL || *user == '\0'))) {
			rg_free(out);
			*error_r = needs_home ? "mail location needs a home, the user has none" :
				"mail location needs a user name";
			return -EINVAL;
		}
		if (o + add_len + 1 > cap) {
			cap = (o + add_len + 1) * 2;
			out = rg_realloc(out, cap);
		}
		memcpy(out + o, add, add_len);
		o += add_len;
	}
	out[o] = '\0';
	if (out[0] != '/') {
		if (home == NULL || home[0] != '/') {
			rg_free(out);
			*error_r = "mail location is not an absolute path";
			return -EINVAL;
		}
		char *abs = rg_strdup_printf("%s/%s", home, out);
		rg_free(out);
		out = abs;
	}
	/* a trailing slash would only make file names ugly */
	size_t olen = strlen(out);
	while (olen > 1 && out[olen - 1] == '/')
		out[--olen] = '\0';
	*path_r = out;
	return 0;
}
