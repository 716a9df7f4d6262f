#include "mail/maildir-private.h"

#include "lib/alloc.h"
#include "mail/mailfile.h"
#include "mail/mime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

/* ---- modseqs (CONDSTORE) and expunge modseqs (QRESYNC) ---- */

struct modseq_entry {
	uint32_t uid;
	uint64_t modseq;
	char flags[MAILDIR_MAX_FLAGS + 1];
};

/* ringgate-modseq in memory */
struct modseq_table {
	uint64_t highest;
	uint64_t floor;       /* expunges up to this modseq may be forgotten */
	uint32_t uidnext;     /* uidnext at the last sync; 0: unknown */
	struct modseq_entry *list; /* by uid */
	size_t count;
	struct maildir_vanished *van; /* by modseq, then as recorded */
	size_t nvan;
};

static void table_free(struct modseq_table *t)
{
	rg_free(t->list);
	rg_free(t->van);
	t->list = NULL;
	t->van = NULL;
	t->count = t->nvan = 0;
}

static bool parse_vanished(const char *line, uint64_t highest, const struct modseq_table *t,
			   struct maildir_vanished *out)
{
	unsigned long lo, hi;
	unsigned long long modseq;
	char end;
	if (sscanf(line, "X%lu %lu %llu%c", &lo, &hi, &modseq, &end) != 4 || end != '\n' ||
	    lo == 0 || lo > hi || hi > UINT32_MAX || modseq > highest || modseq <= t->floor ||
	    (t->nvan > 0 && modseq < t->van[t->nvan - 1].modseq))
		return false;
	out->lo = (uint32_t)lo;
	out->hi = (uint32_t)hi;
	out->modseq = modseq;
	return true;
}

/* the header's optional fields after "1 H<highest>": " E<floor>" and
 * " U<uidnext>"; a table without E is older than expunge tracking, so
 * nothing before its highest modseq is known */
static bool parse_header(const char *line, struct modseq_table *t)
{
	unsigned long long highest;
	int pos = 0;
	if (sscanf(line, "1 H%llu%n", &highest, &pos) != 1)
		return false;
	t->highest = highest;
	t->floor = highest;
	t->uidnext = 0;
	const char *p = line + pos;
	while (*p == ' ') {
		char *end;
		unsigned long long v = strtoull(p + 2, &end, 10);
		if (end == p + 2 || (p[1] != 'E' && p[1] != 'U'))
			return false;
		if (p[1] == 'E') {
			if (v > highest)
				return false;
			t->floor = v;
		} else {
			if (v > UINT32_MAX)
				return false;
			t->uidnext = (uint32_t)v;
		}
		p = end;
	}
	return *p == '\n';
}

/* false when missing or corrupt */
static bool modseq_read(const char *path, struct modseq_table *t)
{
	char *file = rg_strdup_printf("%s/%s", path, MAILDIR_MODSEQ_NAME);
	FILE *f = fopen(file, "re");
	rg_free(file);
	memset(t, 0, sizeof(*t));
	if (f == NULL)
		return false;
	char line[MAILDIR_MAX_FLAGS + 64];
	bool ok = fgets(line, sizeof(line), f) != NULL && parse_header(line, t);
	size_t alloc = 0, valloc = 0;
	uint32_t last = 0;
	while (ok && fgets(line, sizeof(line), f) != NULL) {
		if (line[0] == 'X') {
			if (t->nvan == valloc) {
				valloc = valloc == 0 ? 16 : valloc * 2;
				t->van = rg_realloc(t->van, valloc * sizeof(*t->van));
			}
			ok = t->nvan < MAILDIR_VANISHED_MAX && parse_vanished(line, t->highest, t, &t->van[t->nvan]);
			t->nvan += ok;
			continue;
		}
		unsigned long uid;
		unsigned long long modseq;
		int pos = 0;
		if (sscanf(line, "%lu %llu %n", &uid, &modseq, &pos) != 2 || uid <= last ||
		    uid > UINT32_MAX || modseq > t->highest) {
			ok = false;
			break;
		}
		size_t flen = strcspn(line + pos, "\n");
		if (flen > MAILDIR_MAX_FLAGS) {
			ok = false;
			break;
		}
		if (t->count == alloc) {
			alloc = alloc == 0 ? 256 : alloc * 2;
			t->list = rg_realloc(t->list, alloc * sizeof(*t->list));
		}
		struct modseq_entry *e = &t->list[t->count++];
		e->uid = (uint32_t)uid;
		e->modseq = modseq;
		memcpy(e->flags, line + pos, flen);
		e->flags[flen] = '\0';
		last = (uint32_t)uid;
	}
	fclose(f);
	if (!ok)
		table_free(t);
	return ok;
}

static int modseq_write(const char *path, const struct modseq_table *t)
{
	struct mime_buf b = { 0 };
	mime_buf_printf(&b, "1 H%llu E%llu U%u\n", (unsigned long long)t->highest,
			(unsigned long long)t->floor, t->uidnext);
	for (size_t i = 0; i < t->count; i++)
		mime_buf_printf(&b, "%u %llu %s\n", t->list[i].uid, (unsigned long long)t->list[i].modseq,
				t->list[i].flags);
	for (size_t i = 0; i < t->nvan; i++)
		mime_buf_printf(&b, "X%u %u %llu\n", t->van[i].lo, t->van[i].hi,
				(unsigned long long)t->van[i].modseq);
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

/* a table that could not be read: nothing is known about what happened
 * before, so every expunge up to the new start is "forgotten" */
static void table_fresh(struct modseq_table *t)
{
	memset(t, 0, sizeof(*t));
	t->highest = t->floor = modseq_fresh_start();
}

/* true when box has a message with lo < uid < hi */
static bool box_has_between(const struct maildir *box, size_t *cursor, uint32_t lo, uint32_t hi)
{
	while (*cursor < box->count && box->msgs[*cursor].uid <= lo)
		(*cursor)++;
	return *cursor < box->count && box->msgs[*cursor].uid < hi;
}

/* Append the expunged UID ranges found by this sync (sorted by uid) as
 * records of one new modseq. Neighbouring ranges with no message of box
 * between them become one: the UIDs between were expunged earlier (or
 * never used), and reporting them again later is allowed (RFC 7162
 * 3.2.5.2 lets a server include UIDs expunged before the modseq). Past
 * MAILDIR_VANISHED_MAX records the oldest go and the floor rises. */
static void table_add_vanished(struct modseq_table *t, const struct maildir *box,
			       const struct maildir_uid_range *r, size_t n, uint64_t modseq)
{
	size_t cursor = 0, first = t->nvan;
	t->van = rg_realloc(t->van, (t->nvan + n + 1) * sizeof(*t->van));
	for (size_t i = 0; i < n; i++) {
		struct maildir_vanished *prev = t->nvan > first ? &t->van[t->nvan - 1] : NULL;
		if (prev != NULL && !box_has_between(box, &cursor, prev->hi, r[i].lo)) {
			if (r[i].hi > prev->hi)
				prev->hi = r[i].hi;
			continue;
		}
		t->van[t->nvan].lo = r[i].lo;
		t->van[t->nvan].hi = r[i].hi;
		t->van[t->nvan].modseq = modseq;
		t->nvan++;
	}
	if (t->nvan > MAILDIR_VANISHED_MAX) {
		size_t drop = t->nvan - MAILDIR_VANISHED_MAX;
		/* every record of the modseq of the last dropped one goes too,
		 * so the floor means "all expunges up to here are forgotten" */
		uint64_t floor = t->van[drop - 1].modseq;
		while (drop < t->nvan && t->van[drop].modseq == floor)
			drop++;
		memmove(t->van, t->van + drop, (t->nvan - drop) * sizeof(*t->van));
		t->nvan -= drop;
		t->floor = floor;
	}
}

static void range_push(struct maildir_uid_range **r, size_t *n, size_t *alloc, uint32_t lo, uint32_t hi)
{
	if (*n > 0 && (*r)[*n - 1].hi + 1 == lo) {
		(*r)[*n - 1].hi = hi;
		return;
	}
	if (*n == *alloc) {
		*alloc = *alloc == 0 ? 16 : *alloc * 2;
		*r = rg_realloc(*r, *alloc * sizeof(**r));
	}
	(*r)[*n].lo = lo;
	(*r)[(*n)++].hi = hi;
}

/* UIDs in [lo, hi] that box does not hold, as ranges */
static void box_gaps(const struct maildir *box, uint32_t lo, uint32_t hi, struct maildir_uid_range **r,
		     size_t *n, size_t *alloc)
{
	if (lo == 0)
		lo = 1;
	uint64_t next = lo;
	for (size_t i = 0; i < box->count && next <= hi; i++) {
		uint32_t uid = box->msgs[i].uid;
		if (uid < next)
			continue;
		if (uid > hi)
			break;
		if (uid > next)
			range_push(r, n, alloc, (uint32_t)next, uid - 1);
		next = (uint64_t)uid + 1;
	}
	if (next <= hi)
		range_push(r, n, alloc, (uint32_t)next, hi);
}

/* Under the lock, after a scan: give each message its modseq, bumping
 * those whose flags differ from the table; messages gone since the last
 * sync (and UIDs handed out since then that are gone already) are
 * expunges of one new modseq. The table is rewritten when anything
 * changed; box keeps the expunge records for QRESYNC. */
int maildir_modseq_sync(struct maildir *box)
{
	struct modseq_table t;
	bool dirty = false;
	if (!modseq_read(box->path, &t)) {
		table_fresh(&t);
		dirty = true;
	}
	struct modseq_entry *out = rg_malloc((box->count + 1) * sizeof(*out));
	struct maildir_uid_range *gone = NULL;
	size_t ngone = 0, gone_alloc = 0, j = 0;
	for (size_t i = 0; i < box->count; i++) {
		struct maildir_msg *m = &box->msgs[i];
		for (; j < t.count && t.list[j].uid < m->uid; j++)
			range_push(&gone, &ngone, &gone_alloc, t.list[j].uid, t.list[j].uid);
		if (j < t.count && t.list[j].uid == m->uid && strcmp(t.list[j].flags, m->flags) == 0) {
			m->modseq = t.list[j].modseq;
		} else {
			m->modseq = 0; /* numbered below, after the expunges */
			dirty = true;
		}
		if (j < t.count && t.list[j].uid == m->uid)
			j++;
	}
	for (; j < t.count; j++)
		range_push(&gone, &ngone, &gone_alloc, t.list[j].uid, t.list[j].uid);
	/* UIDs handed out since the last sync that no longer exist */
	if (t.uidnext > 0 && box->uidnext > t.uidnext)
		box_gaps(box, t.uidnext, box->uidnext - 1, &gone, &ngone, &gone_alloc);
	if (ngone > 0) {
		table_add_vanished(&t, box, gone, ngone, ++t.highest);
		dirty = true;
	}
	for (size_t i = 0; i < box->count; i++) {
		struct maildir_msg *m = &box->msgs[i];
		if (m->modseq == 0)
			m->modseq = ++t.highest;
		out[i].uid = m->uid;
		out[i].modseq = m->modseq;
		memcpy(out[i].flags, m->flags, sizeof(out[i].flags));
	}
	if (t.uidnext != box->uidnext) {
		t.uidnext = box->uidnext;
		dirty = true;
	}
	rg_free(gone);
	rg_free(t.list);
	t.list = out;
	t.count = box->count;
	int ret = dirty ? modseq_write(box->path, &t) : 0;
	box->highest_modseq = t.highest;
	box->vanished_floor = t.floor;
	rg_free(box->vanished);
	box->vanished = t.van;
	box->vanished_count = t.nvan;
	t.van = NULL;
	table_free(&t);
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
	ret = maildir_modseq_commit_locked(box, idxs, n);
	close(lock_fd);
	return ret;
}

int maildir_modseq_commit_locked(struct maildir *box, const size_t *idxs, size_t n)
{
	int ret;
	if (n == 0 || box->mbox != NULL)
		return 0;
	struct modseq_table t;
	if (!modseq_read(box->path, &t))
		table_fresh(&t);
	if (t.highest < box->highest_modseq)
		t.highest = box->highest_modseq;
	/* changes we have not seen yet got modseqs between ours and the
	 * snapshot's: the caller must not let the client skip them */
	box->modseq_behind = t.highest > box->highest_modseq;
	/* merge our messages into the table (both by uid) */
	size_t *order = rg_malloc(n * sizeof(*order));
	memcpy(order, idxs, n * sizeof(*order));
	for (size_t i = 1; i < n; i++) {
		for (size_t k = i; k > 0 && box->msgs[order[k]].uid < box->msgs[order[k - 1]].uid; k--) {
			size_t tmp = order[k];
			order[k] = order[k - 1];
			order[k - 1] = tmp;
		}
	}
	struct modseq_entry *out = rg_malloc((t.count + n + 1) * sizeof(*out));
	size_t o = 0, j = 0;
	for (size_t i = 0; i < n; i++) {
		struct maildir_msg *m = &box->msgs[order[i]];
		if (i > 0 && order[i] == order[i - 1])
			continue;
		while (j < t.count && t.list[j].uid < m->uid)
			out[o++] = t.list[j++];
		if (j < t.count && t.list[j].uid == m->uid)
			j++;
		m->modseq = ++t.highest;
		out[o].uid = m->uid;
		out[o].modseq = m->modseq;
		memcpy(out[o].flags, m->flags, sizeof(out[o].flags));
		o++;
	}
	while (j < t.count)
		out[o++] = t.list[j++];
	rg_free(t.list);
	t.list = out;
	t.count = o;
	ret = modseq_write(box->path, &t);
	box->highest_modseq = t.highest;
	table_free(&t);
	rg_free(order);
	return ret;
}

static int cmp_vanished_lo(const void *a, const void *b)
{
	const struct maildir_uid_range *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

void maildir_vanished_since(const struct maildir *box, uint64_t since, const struct maildir_uid_range *set,
			    size_t nset, struct maildir_uid_range **out_r, size_t *count_r)
{
	struct maildir_uid_range *cand = NULL;
	size_t ncand = 0, alloc = 0;
	if (since < box->vanished_floor) {
		/* older than what is remembered: every UID that is not here */
		if (box->uidnext > 1)
			box_gaps(box, 1, box->uidnext - 1, &cand, &ncand, &alloc);
	} else {
		struct maildir_uid_range *r = rg_malloc((box->vanished_count + 1) * sizeof(*r));
		size_t n = 0;
		for (size_t i = 0; i < box->vanished_count; i++) {
			if (box->vanished[i].modseq > since) {
				r[n].lo = box->vanished[i].lo;
				r[n++].hi = box->vanished[i].hi;
			}
		}
		qsort(r, n, sizeof(*r), cmp_vanished_lo);
		for (size_t i = 0; i < n; i++) {
			if (ncand > 0 && r[i].lo <= (uint64_t)cand[ncand - 1].hi + 1) {
				if (r[i].hi > cand[ncand - 1].hi)
					cand[ncand - 1].hi = r[i].hi;
			} else {
				range_push(&cand, &ncand, &alloc, r[i].lo, r[i].hi);
			}
		}
		rg_free(r);
	}
	/* intersect with set (sorted, merged) */
	struct maildir_uid_range *out = NULL;
	size_t nout = 0, oalloc = 0;
	for (size_t i = 0, k = 0; i < ncand && k < nset;) {
		uint32_t lo = cand[i].lo > set[k].lo ? cand[i].lo : set[k].lo;
		uint32_t hi = cand[i].hi < set[k].hi ? cand[i].hi : set[k].hi;
		if (lo <= hi)
			range_push(&out, &nout, &oalloc, lo, hi);
		if (cand[i].hi < set[k].hi)
			i++;
		else
			k++;
	}
	rg_free(cand);
	*out_r = out;
	*count_r = nout;
}
