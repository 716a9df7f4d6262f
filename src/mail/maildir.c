#include "mail/maildir.h"

#include "lib/alloc.h"
#include "lib/log.h"
#include "mail/maildir-private.h"
#include "mail/mailfile.h"
#include "mail/mbox-imap.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct scan_entry {
	char *name;
	char *base;
	bool in_new;
	uint64_t size;
	time_t mtime;
	uint32_t uid;
};

char *maildir_path_join3(const char *a, const char *b, const char *c)
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
void maildir_flags_normalize(const char *flags, char out[MAILDIR_MAX_FLAGS + 1])
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

void maildir_name_flags(const char *name, char out[MAILDIR_MAX_FLAGS + 1])
{
	const char *info = strstr(name, ":2,");
	out[0] = '\0';
	if (info != NULL)
		maildir_flags_normalize(info + 3, out);
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
		char *from = maildir_path_join3(path, "new", de->d_name);
		char *to = strchr(de->d_name, ':') != NULL ?
			maildir_path_join3(path, "cur", de->d_name) :
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
/* ---- open ---- */

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

int maildir_lock_open(const char *path, int *fd_r)
{
	return mailfile_lock(path, MAILDIR_LOCK_NAME, fd_r);
}

int maildir_lock(const struct maildir *box, int *fd_r)
{
	*fd_r = -1;
	return box->mbox != NULL ? 0 : maildir_lock_open(box->path, fd_r);
}

void maildir_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
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
	if (box->mbox != NULL)
		return mbox_imap_changed(box);
	struct timespec cur, new;
	bool recent = false;
	if (box->recheck)
		return true;
	dir_mtime(box->path, "cur", &cur, &recent);
	dir_mtime(box->path, "new", &new, &recent);
	return cur.tv_sec != box->cur_mtime.tv_sec || cur.tv_nsec != box->cur_mtime.tv_nsec ||
	       new.tv_sec != box->new_mtime.tv_sec || new.tv_nsec != box->new_mtime.tv_nsec;
}

int maildir_scan_and_assign(struct maildir *box, bool move_new, const char **error_r)
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

	ret = maildir_uidlist_read(box->path, &box->uidvalidity, &box->uidnext, &box->first_recent,
				   &list, &list_count, &exists, &stale);
	if (ret == -EINVAL) {
		log_warning("%s/%s is corrupt: rebuilding it with a new UIDVALIDITY",
			    box->path, MAILDIR_UIDLIST_NAME);
		box->uidvalidity = maildir_new_uidvalidity(stale);
		box->uidnext = 1;
		box->first_recent = 1;
		dirty = true;
	} else if (ret < 0) {
		*error_r = "reading the uid list failed";
		return ret;
	} else if (!exists) {
		if (maildir_dovecot_uidlist_import(box->path, &box->uidvalidity, &box->uidnext, &list,
					   &list_count)) {
			log_info("%s: UIDs taken over from dovecot-uidlist", box->path);
			box->first_recent = box->uidnext;
		} else {
			box->uidvalidity = maildir_new_uidvalidity(0);
			box->uidnext = 1;
			box->first_recent = 0; /* set below: what is in cur/ is old */
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
						  maildir_cmp_uid_entry_base);
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
		char *file = maildir_path_join3(box->path, fresh[i]->in_new ? "new" : "cur", fresh[i]->name);
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
	if (box->first_recent == 0)
		box->first_recent = box->uidnext;

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
		maildir_name_flags(m->name, m->flags);
		m->size = e->size;
		m->vsize = base_size_field(m->base, 'W');
		m->mtime = e->mtime;
		m->recent = m->uid >= box->first_recent || e->in_new ||
			(moved_count > 0 &&
			 bsearch(&m->base, moved, moved_count, sizeof(*moved), cmp_str_ptr) != NULL);
	}
	qsort(box->msgs, box->count, sizeof(*box->msgs), maildir_cmp_msg_uid);
	/* a read-write open claims the recent messages: no later session
	 * sees them as \Recent (RFC 3501 2.3.2) */
	if (move_new && box->first_recent < box->uidnext) {
		box->first_recent = box->uidnext;
		dirty = true;
	}

	if (dirty && (ret = maildir_uidlist_write(box)) < 0) {
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
	maildir_uidlist_free(list, list_count);
	for (size_t i = 0; i < moved_count; i++)
		rg_free(moved[i]);
	rg_free(moved);
	return ret;
}

int maildir_open(const char *path, bool move_new, struct maildir **box_r, const char **error_r)
{
	int ret, lock_fd = -1;

	*box_r = NULL;
	if (mbox_imap_path(path))
		return mbox_imap_open(path, move_new, box_r, error_r);
	if ((ret = maildir_create(path)) < 0) {
		*error_r = "creating the Maildir failed";
		return ret;
	}
	if ((ret = maildir_lock_open(path, &lock_fd)) < 0) {
		*error_r = "locking the uid list failed";
		return ret;
	}
	struct maildir *box = rg_calloc(1, sizeof(*box));
	box->path = rg_strdup(path);
	ret = maildir_scan_and_assign(box, move_new, error_r);
	if (ret == 0 && (ret = maildir_keywords_read(path, box->keywords)) < 0)
		*error_r = "reading dovecot-keywords failed";
	if (ret == 0 && (ret = maildir_modseq_sync(box)) < 0)
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
	if (box->mbox != NULL)
		mbox_imap_close(box);
	for (size_t i = 0; i < box->count; i++) {
		rg_free(box->msgs[i].base);
		rg_free(box->msgs[i].name);
	}
	rg_free(box->msgs);
	rg_free(box->vanished);
	rg_free(box->path);
	maildir_keywords_free(box->keywords);
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
