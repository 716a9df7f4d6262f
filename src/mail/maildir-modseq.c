#include "mail/maildir-private.h"

#include "lib/alloc.h"
#include "mail/mailfile.h"
#include "mail/mime.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

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
int maildir_modseq_sync(struct maildir *box)
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
	/* an mbox gives modseqs when maildir_flush() writes the changes */
	if (n == 0 || box->mbox != NULL)
		return 0;
	if ((ret = maildir_lock_open(box->path, &lock_fd)) < 0)
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
