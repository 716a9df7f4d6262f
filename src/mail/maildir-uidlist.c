#include "mail/maildir-private.h"

#include "lib/alloc.h"
#include "mail/mailfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* uidlist files are small (tens of bytes per message); this only bounds a
 * corrupt or hostile file */
#define UIDLIST_MAX_SIZE (256u * 1024 * 1024)

/* ---- the uid list ---- */

int maildir_cmp_uid_entry_base(const void *a, const void *b)
{
	return strcmp(((const struct uid_entry *)a)->base, ((const struct uid_entry *)b)->base);
}

static int cmp_uid_entry_uid(const void *a, const void *b)
{
	uint32_t x = ((const struct uid_entry *)a)->uid, y = ((const struct uid_entry *)b)->uid;
	return x < y ? -1 : x > y;
}

void maildir_uidlist_free(struct uid_entry *list, size_t count)
{
	for (size_t i = 0; i < count; i++)
		rg_free(list[i].base);
	rg_free(list);
}

/* Read the uid list. 0 with *exists_r false when there is none; -EINVAL
 * when it is corrupt (the caller starts a new UIDVALIDITY). */
int maildir_uidlist_read(const char *path, uint32_t *validity_r, uint32_t *next_r,
			 uint32_t *first_recent_r, struct uid_entry **list_r, size_t *count_r,
			 bool *exists_r, uint32_t *stale_r)
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
	size_t got;
	/* an error reads as a shorter (so corrupt) list */
	(void)mailfile_read_all(fd, data, size, &got);
	close(fd);
	data[got] = '\0';
	unsigned long old_validity;
	if (sscanf(data, "1 V%lu", &old_validity) == 1 && old_validity <= UINT32_MAX &&
	    old_validity > *stale_r)
		*stale_r = (uint32_t)old_validity;

	int ret = -EINVAL;
	struct uid_entry *list = NULL;
	size_t count = 0, alloc = 0;
	unsigned long validity, next, first_recent;
	char *line = data, *nl = strchr(line, '\n');
	if (nl == NULL)
		goto out;
	*nl = '\0';
	int pos = 0, rpos = 0;
	if (sscanf(line, "1 V%lu N%lu%n", &validity, &next, &pos) != 2 ||
	    validity == 0 || validity > UINT32_MAX || next == 0 || next > UINT32_MAX)
		goto out;
	/* " R<uid>": the first UID no session has seen yet (\Recent); 0 for a
	 * list written before it existed: the caller starts it after the
	 * files it finds in cur/ */
	first_recent = 0;
	if (line[pos] == ' ' && (sscanf(line + pos, " R%lu%n", &first_recent, &rpos) != 1 ||
				 first_recent == 0 || first_recent > next))
		goto out;
	if (line[pos + rpos] != '\0')
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
		qsort(list, count, sizeof(*list), maildir_cmp_uid_entry_base);
	*validity_r = (uint32_t)validity;
	*next_r = (uint32_t)next;
	*first_recent_r = (uint32_t)first_recent;
	*list_r = list;
	*count_r = count;
	list = NULL;
	count = 0;
	ret = 0;
out:
	maildir_uidlist_free(list, count);
	rg_free(data);
	return ret;
}

int maildir_cmp_msg_uid(const void *a, const void *b)
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
int maildir_uidlist_write(const struct maildir *box)
{
	size_t cap = 64, len = 0;
	for (size_t i = 0; i < box->count; i++)
		cap += strlen(box->msgs[i].base) + 16;
	char *data = rg_malloc(cap);
	len += (size_t)snprintf(data, cap, "1 V%u N%u R%u\n", box->uidvalidity, box->uidnext,
				box->first_recent);
	for (size_t i = 0; i < box->count; i++)
		len += (size_t)snprintf(data + len, cap - len, "%u %s\n", box->msgs[i].uid,
					box->msgs[i].base);
	int ret = uidlist_replace(box->path, data, len);
	rg_free(data);
	return ret;
}
uint32_t maildir_new_uidvalidity(uint32_t old)
{
	uint32_t v = (uint32_t)time(NULL);
	/* must change when the list is rebuilt, even within one second */
	if (v <= old)
		v = old + 1;
	return v == 0 ? 1 : v;
}

int maildir_uidlist_create(const char *path, uint32_t uidvalidity)
{
	int ret, lock_fd = -1;
	if ((ret = maildir_lock_open(path, &lock_fd)) < 0)
		return ret;
	char *file = rg_strdup_printf("%s/%s", path, MAILDIR_UIDLIST_NAME);
	struct stat st;
	if (stat(file, &st) < 0 && errno == ENOENT) {
		char head[48];
		int n = snprintf(head, sizeof(head), "1 V%u N1 R1\n", uidvalidity == 0 ? 1 : uidvalidity);
		ret = uidlist_replace(path, head, (size_t)n);
	}
	rg_free(file);
	close(lock_fd);
	return ret;
}

/* Dovecot's dovecot-uidlist (versions 1 and 3), read once when a Maildir
 * has no list of ours, so a folder Dovecot served keeps its UIDs and
 * UIDVALIDITY and clients do not download it again. false when there is
 * none or it cannot be trusted. */
bool maildir_dovecot_uidlist_import(const char *path, uint32_t *validity_r, uint32_t *next_r,
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
		maildir_uidlist_free(list, count);
		return false;
	}
	if (count > 0)
		qsort(list, count, sizeof(*list), maildir_cmp_uid_entry_base);
	*validity_r = (uint32_t)validity;
	*next_r = (uint32_t)next;
	*list_r = list;
	*count_r = count;
	return true;
}
/* Give bases[0..n) (files already in cur/ of path) UIDs in this order.
 * Under the lock: the list is read, extended and replaced. A missing or
 * corrupt list is rebuilt by a full scan, which numbers them too. */
int maildir_uidlist_register(const char *path, char *const *bases, size_t n, uint32_t *uids_r,
			     uint32_t *validity_r, const char **error_r)
{
	int ret, lock_fd = -1;
	if ((ret = maildir_lock_open(path, &lock_fd)) < 0) {
		*error_r = "locking the uid list failed";
		return ret;
	}
	struct uid_entry *list;
	size_t count;
	bool exists;
	uint32_t validity = 0, next = 0, first_recent = 0, stale = 0;
	ret = maildir_uidlist_read(path, &validity, &next, &first_recent, &list, &count, &exists,
				   &stale);
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
		size_t head_room = 48;
		size_t len = head_room;
		for (size_t i = 0; i < count; i++)
			len += (size_t)snprintf(data + len, cap - len, "%u %s\n", byuid[i].uid, byuid[i].base);
		uint32_t added = 0;
		for (size_t i = 0; i < n; i++) {
			/* a session that scanned between our rename into cur/
			 * and this lock has numbered the file already: keep that */
			struct uid_entry key = { .base = bases[i] };
			struct uid_entry *found = count == 0 ? NULL :
				bsearch(&key, list, count, sizeof(*list), maildir_cmp_uid_entry_base);
			if (found != NULL) {
				uids_r[i] = found->uid;
				continue;
			}
			uids_r[i] = next + added++;
			len += (size_t)snprintf(data + len, cap - len, "%u %s\n", uids_r[i], bases[i]);
		}
		if (first_recent == 0)
			first_recent = next; /* a list from before " R": ours are new */
		char head[48];
		size_t hl = (size_t)snprintf(head, sizeof(head), "1 V%u N%u R%u\n", validity, next + added,
					     first_recent);
		char *start = data + head_room - hl;
		memcpy(start, head, hl);
		rg_free(byuid);
		ret = uidlist_replace(path, start, len - (head_room - hl));
		rg_free(data);
		maildir_uidlist_free(list, count);
		if (ret < 0)
			*error_r = "writing the uid list failed";
		*validity_r = validity;
		close(lock_fd);
		return ret;
	}
	maildir_uidlist_free(list, count);
	/* no usable list: the scan numbers every file, ours included */
	struct maildir *box = rg_calloc(1, sizeof(*box));
	box->path = rg_strdup(path);
	ret = maildir_scan_and_assign(box, false, error_r);
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
