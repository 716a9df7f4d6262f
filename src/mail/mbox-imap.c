/* mbox-imap.c — the IMAP view of an mbox file, see mbox-imap.h. */
#include "mail/mbox-imap.h"

#include "lib/alloc.h"
#include "lib/log.h"
#include "lib/siphash.h"
#include "mail/maildir-private.h"
#include "mail/mbox-private.h"
#include "mail/mime.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* what a box->msgs[i] entry has pending for the file */
#define PENDING_FLAGS 1
#define PENDING_EXPUNGE 2

struct mbox_view {
	char *file;
	struct mbox *mb;  /* the current snapshot of the file */
	size_t *fidx;     /* box->msgs[i] is mb->msgs[fidx[i]]; SIZE_MAX: gone */
	uint8_t *pending; /* PENDING_* per box->msgs[i] */
	/* PENDING_FLAGS: the letters this session added and removed, applied at
	   the flush to the flags the file has then (another session's change to
	   other flags of the message is kept) */
	char (*delta)[2][MAILDIR_MAX_FLAGS + 1];
	bool base_dirty;  /* the keyword list grew */
	bool rw;
	struct mbox_view *next; /* the open views (keyword look-ups by path) */
	struct maildir *box;
};

/* one session per process: the boxes open now, so that a keyword created
   by STORE is known to the view that will write it */
static struct mbox_view *open_views;

/* IMAP letters <-> Dovecot's X-Status letters */
static const char xstatus_map[][2] = {
	{ 'A', MAILDIR_FLAG_REPLIED },
	{ 'F', MAILDIR_FLAG_FLAGGED },
	{ 'T', MAILDIR_FLAG_DRAFT },
	{ 'D', MAILDIR_FLAG_TRASHED },
};
#define XSTATUS_COUNT (sizeof(xstatus_map) / sizeof(xstatus_map[0]))

bool mbox_imap_path(const char *path)
{
	return strncmp(path, MBOX_IMAP_PREFIX, strlen(MBOX_IMAP_PREFIX)) == 0;
}

/* the keyword's letter in box (added when missing and there is room), or 0 */
char mbox_imap_keyword_letter(struct maildir *box, const char *name, size_t len, bool add)
{
	int free_slot = -1;
	for (int k = 0; k < MAILDIR_MAX_KEYWORDS; k++) {
		if (box->keywords[k] == NULL) {
			if (free_slot < 0)
				free_slot = k;
		} else if (strlen(box->keywords[k]) == len && strncasecmp(box->keywords[k], name, len) == 0) {
			return (char)('a' + k);
		}
	}
	if (!add || free_slot < 0 || len == 0 || len > MAILDIR_MAX_KEYWORD_LEN)
		return 0;
	box->keywords[free_slot] = rg_strndup(name, len);
	box->mbox->base_dirty = true;
	return (char)('a' + free_slot);
}

/* the message's flags as Maildir letters */
static void flags_from_file(struct maildir *box, const struct mbox_msg *fm, char out[MAILDIR_MAX_FLAGS + 1])
{
	char raw[MAILDIR_MAX_FLAGS * 2 + 1];
	size_t o = 0;
	if (strchr(fm->status, 'R') != NULL)
		raw[o++] = MAILDIR_FLAG_SEEN;
	for (size_t i = 0; i < XSTATUS_COUNT; i++) {
		if (strchr(fm->xstatus, xstatus_map[i][0]) != NULL)
			raw[o++] = xstatus_map[i][1];
	}
	for (const char *p = fm->keywords; p != NULL && *p != '\0' && o < sizeof(raw) - 1;) {
		size_t n = strcspn(p, " ");
		char l = mbox_imap_keyword_letter(box, p, n, true);
		if (l != 0)
			raw[o++] = l;
		p += n;
		p += *p == ' ';
	}
	raw[o] = '\0';
	maildir_flags_normalize(raw, out);
}

/* box's flags of one message into the file's metadata */
void mbox_imap_flags_to_file(const struct maildir *box, const char *flags, struct mbox_msg *fm)
{
	bool old = strchr(fm->status, 'O') != NULL;
	snprintf(fm->status, sizeof(fm->status), "%s%s", strchr(flags, MAILDIR_FLAG_SEEN) ? "R" : "",
		 old ? "O" : "");
	size_t o = 0;
	for (size_t i = 0; i < XSTATUS_COUNT; i++) {
		if (strchr(flags, xstatus_map[i][1]) != NULL)
			fm->xstatus[o++] = xstatus_map[i][0];
	}
	fm->xstatus[o] = '\0';
	struct mime_buf kw = { 0 };
	for (const char *f = flags; *f != '\0'; f++) {
		int k = *f - 'a';
		if (k >= 0 && k < MAILDIR_MAX_KEYWORDS && box->keywords[k] != NULL)
			mime_buf_printf(&kw, "%s%s", kw.len > 0 ? " " : "", box->keywords[k]);
	}
	rg_free(fm->keywords);
	fm->keywords = kw.len > 0 ? kw.data : NULL;
	if (fm->keywords == NULL)
		mime_buf_free(&kw);
	fm->dirty = true;
}

/* the keyword list of X-IMAPbase from box's names (in letter order) */
static void base_keywords_set(const struct maildir *box, struct mbox *mb)
{
	struct mime_buf kw = { 0 };
	for (int k = 0; k < MAILDIR_MAX_KEYWORDS; k++) {
		if (box->keywords[k] != NULL)
			mime_buf_printf(&kw, "%s%s", kw.len > 0 ? " " : "", box->keywords[k]);
	}
	rg_free(mb->base_keywords);
	mb->base_keywords = kw.len > 0 ? kw.data : NULL;
	if (mb->base_keywords == NULL)
		mime_buf_free(&kw);
}

static uint64_t mtime_modseq(const struct mbox *mb)
{
	uint64_t us = (uint64_t)mb->mtime.tv_sec * 1000000 + (uint64_t)mb->mtime.tv_nsec / 1000;
	return us == 0 ? 1 : us;
}

/* a UIDVALIDITY for a file without X-IMAPbase that stays the same until
   one is written: from the path, so an INBOX seen empty (no file yet)
   keeps it when the first delivery creates the file */
static uint32_t path_uidvalidity(const char *file)
{
	static const uint8_t key[16] = "ringgate mbox uv";
	uint32_t v = (uint32_t)siphash24(key, file, strlen(file));
	return (v & 0x7fffffff) | 0x10000000;
}

/* Give the messages of mb without a valid X-UID the next UIDs (marking them
   for writing) and, for a read-write open, mark the new ones old. */
static bool assign_uids(struct mbox *mb, const char *file, bool rw, bool *recent)
{
	bool dirty = false;
	if (mb->uidvalidity == 0) {
		/* no X-IMAPbase: any X-UID is someone else's numbering */
		mb->uidvalidity = path_uidvalidity(file);
		mb->last_uid = 0;
		for (size_t i = 0; i < mb->count; i++)
			mb->msgs[i].uid = 0;
		dirty = mb->count > 0;
	}
	uint32_t prev = 0;
	for (size_t i = 0; i < mb->count; i++) {
		struct mbox_msg *fm = &mb->msgs[i];
		if (fm->uid == 0 || fm->uid <= prev) {
			fm->uid = ++mb->last_uid;
			fm->dirty = dirty = true;
		} else if (fm->uid > mb->last_uid) {
			mb->last_uid = fm->uid;
			dirty = true;
		}
		prev = fm->uid;
		recent[i] = strchr(fm->status, 'O') == NULL;
		if (recent[i] && rw) {
			size_t n = strlen(fm->status);
			if (n + 1 < sizeof(fm->status)) {
				fm->status[n] = 'O';
				fm->status[n + 1] = '\0';
			}
			fm->dirty = dirty = true;
		}
	}
	return dirty;
}

static int view_scan(struct mbox_view *v, const char **error_r)
{
	struct mbox *mb;
	int ret = mbox_open(v->file, MBOX_LOCK_TIMEOUT_MS, &mb, error_r);
	if (ret < 0)
		return ret;
	mbox_close(v->mb);
	v->mb = mb;
	return 0;
}

/* after a rescan: where each message of the view is now, by UID; with
   reload, the flags are taken from the file again */
static void view_match(struct maildir *box, bool reload)
{
	struct mbox_view *v = box->mbox;
	struct mbox *mb = v->mb;
	size_t j = 0;
	for (size_t i = 0; i < box->count; i++) {
		struct maildir_msg *m = &box->msgs[i];
		v->fidx[i] = SIZE_MAX;
		while (j < mb->count && mb->msgs[j].uid != 0 && mb->msgs[j].uid < m->uid)
			j++;
		bool wanted = !m->expunged || (v->pending[i] & PENDING_EXPUNGE);
		if (wanted && j < mb->count && mb->msgs[j].uid == m->uid) {
			v->fidx[i] = j;
			if (reload)
				flags_from_file(box, &mb->msgs[j], m->flags);
		}
	}
	uint64_t modseq = mtime_modseq(mb);
	if (modseq <= box->highest_modseq)
		modseq = box->highest_modseq + 1;
	box->highest_modseq = modseq;
	box->vanished_floor = modseq;
}

int mbox_imap_open(const char *path, bool rw, struct maildir **box_r, const char **error_r)
{
	struct mbox_view *v = rg_calloc(1, sizeof(*v));
	v->file = rg_strdup(path + strlen(MBOX_IMAP_PREFIX));
	v->rw = rw;
	int ret = view_scan(v, error_r);
	if (ret < 0) {
		rg_free(v->file);
		rg_free(v);
		return ret;
	}
	struct mbox *mb = v->mb;
	struct maildir *box = rg_calloc(1, sizeof(*box));
	box->path = rg_strdup(path);
	box->mbox = v;
	v->box = box;
	bool *recent = rg_calloc(mb->count + 1, sizeof(*recent));
	bool dirty = assign_uids(mb, v->file, rw, recent);
	/* X-IMAPbase's names first, so letters follow its order */
	for (const char *p = mb->base_keywords; p != NULL && *p != '\0';) {
		size_t n = strcspn(p, " ");
		mbox_imap_keyword_letter(box, p, n, true);
		p += n;
		p += *p == ' ';
	}
	v->base_dirty = false;
	box->uidvalidity = mb->uidvalidity;
	box->count = mb->count;
	box->msgs = rg_calloc(mb->count + 1, sizeof(*box->msgs));
	v->fidx = rg_calloc(mb->count + 1, sizeof(*v->fidx));
	v->pending = rg_calloc(mb->count + 1, sizeof(*v->pending));
	v->delta = rg_calloc(mb->count + 1, sizeof(*v->delta));
	for (size_t i = 0; i < mb->count; i++) {
		struct maildir_msg *m = &box->msgs[i];
		const struct mbox_msg *fm = &mb->msgs[i];
		m->uid = fm->uid;
		m->size = fm->end_offset - fm->hdr_offset;
		m->vsize = (int64_t)fm->vsize;
		m->mtime = fm->date != 0 ? fm->date : mb->mtime.tv_sec;
		m->recent = recent[i];
		v->fidx[i] = i;
		flags_from_file(box, fm, m->flags);
	}
	rg_free(recent);
	if (v->base_dirty)
		dirty = true;
	box->uidnext = mb->last_uid + 1;
	box->first_recent = box->uidnext;
	if (dirty && mb->writable) {
		/* UIDs (and Status: O) written now keep them for the next session */
		base_keywords_set(box, mb);
		const char *werr;
		ret = mbox_rewrite(mb, true, MBOX_LOCK_TIMEOUT_MS, &werr);
		if (ret == 0)
			ret = view_scan(v, &werr);
		if (ret < 0)
			log_warning("%s: writing UIDs failed: %s: %s", v->file, werr, strerror(-ret));
		else
			view_match(box, false);
		v->base_dirty = false;
	}
	box->highest_modseq = mtime_modseq(v->mb);
	for (size_t i = 0; i < box->count; i++)
		box->msgs[i].modseq = box->highest_modseq;
	/* no record of expunges: QRESYNC's VANISHED since any older modseq is
	   every UID the view lacks (exact enough, never missing one) */
	box->vanished_floor = box->highest_modseq;
	v->next = open_views;
	open_views = v;
	*box_r = box;
	return 0;
}

void mbox_imap_close(struct maildir *box)
{
	struct mbox_view *v = box->mbox;
	int ret = mbox_imap_flush(box);
	if (ret < 0)
		log_error("%s: writing flag changes failed: %s", v->file, strerror(-ret));
	for (struct mbox_view **p = &open_views; *p != NULL; p = &(*p)->next) {
		if (*p == v) {
			*p = v->next;
			break;
		}
	}
	mbox_close(v->mb);
	rg_free(v->fidx);
	rg_free(v->pending);
	rg_free(v->delta);
	rg_free(v->file);
	rg_free(v);
	box->mbox = NULL;
}

struct mbox *mbox_imap_file(struct maildir *box)
{
	return box->mbox->mb;
}

bool mbox_imap_base_dirty(const struct maildir *box)
{
	return box->mbox->base_dirty;
}

bool mbox_imap_changed(const struct maildir *box)
{
	const struct mbox_view *v = box->mbox;
	struct stat st;
	if (stat(v->file, &st) < 0)
		return v->mb->fd >= 0; /* gone, or still none */
	/* more messages than the view holds (delivered during our own
	   rewrite), or fewer (expunged by another session before it) */
	size_t seen = 0;
	for (size_t i = 0; i < box->count; i++) {
		seen += v->fidx[i] != SIZE_MAX;
		if (v->fidx[i] == SIZE_MAX && !box->msgs[i].expunged)
			return true;
	}
	return v->mb->fd < 0 || st.st_ino != v->mb->ino || (uint64_t)st.st_size != v->mb->size ||
	       st.st_mtim.tv_sec != v->mb->mtime.tv_sec ||
	       st.st_mtim.tv_nsec != v->mb->mtime.tv_nsec || v->mb->count > seen;
}

int mbox_imap_read(struct maildir *box, size_t idx, char **data_r, size_t *len_r)
{
	struct mbox_view *v = box->mbox;
	if (box->msgs[idx].expunged || v->fidx[idx] == SIZE_MAX)
		return -ENOENT;
	int ret = mbox_msg_read(v->mb, v->fidx[idx], data_r, len_r);
	/* rewritten by another program: the message is found again by UID */
	if (ret == -ESTALE) {
		const char *error;
		if (view_scan(v, &error) == 0) {
			view_match(box, false);
			if (v->fidx[idx] == SIZE_MAX)
				return -ENOENT;
			ret = mbox_msg_read(v->mb, v->fidx[idx], data_r, len_r);
		}
	}
	return ret;
}

/* s without the letters of minus, plus those of plus (sorted) */
static void letters_update(char s[MAILDIR_MAX_FLAGS + 1], const char *minus, const char *plus)
{
	char tmp[MAILDIR_MAX_FLAGS * 2 + 1];
	size_t o = 0;
	for (const char *p = s; *p != '\0'; p++) {
		if (strchr(minus, *p) == NULL)
			tmp[o++] = *p;
	}
	for (const char *p = plus; *p != '\0' && o < sizeof(tmp) - 1; p++)
		tmp[o++] = *p;
	tmp[o] = '\0';
	maildir_flags_normalize(tmp, s);
}

int mbox_imap_change_flags(struct maildir *box, size_t idx, char mode, const char *letters)
{
	struct maildir_msg *m = &box->msgs[idx];
	if (m->expunged || box->mbox->fidx[idx] == SIZE_MAX)
		return -ENOENT;
	char sorted[MAILDIR_MAX_FLAGS + 1];
	maildir_flags_apply(m->flags, mode, letters, sorted);
	/* \Passed has no place in an mbox */
	char *p = strchr(sorted, MAILDIR_FLAG_PASSED);
	if (p != NULL)
		memmove(p, p + 1, strlen(p));
	if (strcmp(sorted, m->flags) != 0) {
		char added[MAILDIR_MAX_FLAGS + 1] = "", removed[MAILDIR_MAX_FLAGS + 1] = "";
		letters_update(added, "", sorted);
		letters_update(added, m->flags, "");
		letters_update(removed, "", m->flags);
		letters_update(removed, sorted, "");
		char (*d)[MAILDIR_MAX_FLAGS + 1] = box->mbox->delta[idx];
		letters_update(d[0], removed, added);
		letters_update(d[1], added, removed);
		memcpy(m->flags, sorted, sizeof(sorted));
		box->mbox->pending[idx] |= PENDING_FLAGS;
	}
	return 0;
}

int mbox_imap_delete(struct maildir *box, size_t idx)
{
	struct maildir_msg *m = &box->msgs[idx];
	if (m->expunged)
		return 0;
	if (box->mbox->fidx[idx] != SIZE_MAX)
		box->mbox->pending[idx] |= PENDING_EXPUNGE;
	m->expunged = true;
	return 0;
}

/* the pending changes onto the current snapshot; false when there are none */
static bool flush_prepare(struct maildir *box)
{
	struct mbox_view *v = box->mbox;
	struct mbox *mb = v->mb;
	bool any = v->base_dirty;
	for (size_t i = 0; i < box->count; i++) {
		size_t f = v->fidx[i];
		if (v->pending[i] == 0 || f == SIZE_MAX)
			continue;
		any = true;
		if (v->pending[i] & PENDING_EXPUNGE) {
			mb->msgs[f].expunge = true;
			continue;
		}
		char flags[MAILDIR_MAX_FLAGS + 1];
		flags_from_file(box, &mb->msgs[f], flags);
		letters_update(flags, v->delta[i][1], v->delta[i][0]);
		memcpy(box->msgs[i].flags, flags, sizeof(flags));
		mbox_imap_flags_to_file(box, flags, &mb->msgs[f]);
	}
	if (any && v->base_dirty)
		base_keywords_set(box, mb);
	return any;
}

int mbox_imap_flush(struct maildir *box)
{
	struct mbox_view *v = box->mbox;
	const char *error = NULL;
	int ret = 0;
	/* another session rewrote the file since our snapshot: read it again
	   and apply the changes to what it has now */
	for (int attempt = 0; attempt < 3; attempt++) {
		if (!flush_prepare(box)) {
			ret = 0; /* nothing (left) to write: maybe done by another session */
			break;
		}
		struct mbox *mb = v->mb;
		ret = mb->writable ? mbox_rewrite(mb, v->base_dirty, MBOX_LOCK_TIMEOUT_MS, &error) : -EROFS;
		if (ret == -EROFS)
			error = "the file is read-only";
		if (ret == 0)
			ret = view_scan(v, &error);
		if (ret != -ESTALE || view_scan(v, &error) < 0)
			break;
		view_match(box, false);
	}
	if (ret < 0) {
		log_error("%s: %s: %s", v->file, error, strerror(-ret));
		/* undo: the view shows what the file has */
		for (size_t i = 0; i < box->count; i++) {
			if (v->pending[i] & PENDING_EXPUNGE)
				box->msgs[i].expunged = false;
		}
		memset(v->pending, 0, box->count);
		if (view_scan(v, &error) == 0)
			view_match(box, true);
	} else {
		view_match(box, false);
		for (size_t i = 0; i < box->count; i++) {
			if (v->pending[i] & PENDING_FLAGS)
				box->msgs[i].modseq = box->highest_modseq;
		}
	}
	memset(v->pending, 0, box->count);
	memset(v->delta, 0, box->count * sizeof(*v->delta));
	v->base_dirty = false;
	return ret;
}

int mbox_imap_keywords_lookup(const char *path, const char *const *names, size_t n, bool create,
			      char *letters_r)
{
	struct mbox_view *v = open_views;
	while (v != NULL && strcmp(v->box->path, path) != 0)
		v = v->next;
	struct maildir *box = v != NULL ? v->box : NULL;
	const char *error;
	int ret = 0;
	if (box == NULL) {
		/* not open: the names the file has; nothing to create them in */
		/* not open here: names created now are written at once (the
		   close flushes the grown X-IMAPbase list) */
		ret = mbox_imap_open(path, false, &box, &error);
		if (ret < 0)
			return ret;
	}
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char l = mbox_imap_keyword_letter(box, names[i], strlen(names[i]), create);
		if (l != 0 && memchr(letters_r, l, o) == NULL)
			letters_r[o++] = l;
	}
	letters_r[o] = '\0';
	if (v == NULL)
		maildir_close(box);
	return ret;
}
