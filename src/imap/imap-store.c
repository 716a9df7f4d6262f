#include "imap/imap-common.h"

#include "imap/imap-qresync.h"

#include "imap/imap-search.h"
#include "lib/alloc.h"
#include "lib/log.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- flags ---- */

static const struct {
	char letter;
	const char *name;
} imap_flags[] = {
	{ MAILDIR_FLAG_REPLIED, "\\Answered" }, { MAILDIR_FLAG_FLAGGED, "\\Flagged" },
	{ MAILDIR_FLAG_TRASHED, "\\Deleted" },  { MAILDIR_FLAG_SEEN, "\\Seen" },
	{ MAILDIR_FLAG_DRAFT, "\\Draft" },
};
_Static_assert(sizeof(imap_flags) / sizeof(imap_flags[0]) == IMAP_FLAG_COUNT, "IMAP_FLAG_COUNT");

/* the message's flags as IMAP names; keywords through box's names */
void imap_flags_str(const struct maildir *box, const struct maildir_msg *m, char *out, size_t size)
{
	size_t o = 0;
	out[0] = '\0';
	for (size_t i = 0; i < IMAP_FLAG_COUNT; i++) {
		if (!maildir_msg_has_flag(m, imap_flags[i].letter))
			continue;
		o += (size_t)snprintf(out + o, size - o, "%s%s", o == 0 ? "" : " ", imap_flags[i].name);
		if (o >= size)
			return;
	}
	if (m->recent && o + 9 < size)
		o += (size_t)snprintf(out + o, size - o, "%s\\Recent", o == 0 ? "" : " ");
	for (const char *f = m->flags; *f != '\0'; f++) {
		int k = *f - 'a';
		if (k < 0 || k >= MAILDIR_MAX_KEYWORDS || box->keywords[k] == NULL)
			continue;
		if (o + strlen(box->keywords[k]) + 2 >= size)
			return;
		o += (size_t)snprintf(out + o, size - o, "%s%s", o == 0 ? "" : " ", box->keywords[k]);
	}
}

/* "\\Answered ... kw1 kw2" for FLAGS and PERMANENTFLAGS */
static void send_flag_names(struct imap_client *c, const struct maildir *box, bool permanent)
{
	imap_send_str(c, "\\Answered \\Flagged \\Deleted \\Seen \\Draft");
	for (size_t k = 0; k < MAILDIR_MAX_KEYWORDS; k++) {
		if (box->keywords[k] != NULL)
			imap_send_fmt(c, " %s", box->keywords[k]);
	}
	if (permanent)
		imap_send_str(c, " \\*");
}

static uint32_t keyword_mask(const struct maildir *box)
{
	uint32_t mask = 0;
	for (size_t k = 0; k < MAILDIR_MAX_KEYWORDS; k++) {
		if (box->keywords[k] != NULL)
			mask |= 1u << k;
	}
	return mask;
}

void imap_send_flags(struct imap_client *c, const struct maildir *box)
{
	imap_send_str(c, "* FLAGS (");
	send_flag_names(c, box, false);
	imap_send_str(c, ")\r\n");
	if (c->readonly) {
		imap_send_str(c, "* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n");
	} else {
		imap_send_str(c, "* OK [PERMANENTFLAGS (");
		send_flag_names(c, box, true);
		imap_send_str(c, ")] Flags permitted.\r\n");
	}
	c->kw_announced = keyword_mask(box);
}

void imap_announce_keywords(struct imap_client *c, const struct maildir *box)
{
	if ((keyword_mask(box) & ~c->kw_announced) != 0)
		imap_send_flags(c, box);
}

static char flag_letter(const char *name)
{
	for (size_t i = 0; i < IMAP_FLAG_COUNT; i++) {
		if (strcasecmp(imap_flags[i].name, name) == 0)
			return imap_flags[i].letter;
	}
	return '\0';
}

/* Flag list (or one flag) into Maildir letters; keywords are looked up
 * (with create, added) in the folder at path. false with *error_r on an
 * unknown system flag or a malformed keyword. */
bool imap_parse_flag_list(const struct imap_cmd_arg *arg, const char *path, bool create,
			  char letters[IMAP_FLAG_COUNT + MAILDIR_MAX_KEYWORDS + 1], const char **error_r)
{
	const struct imap_cmd_arg *fl = arg->type == IMAP_CMD_ARG_LIST ? arg->list : arg;
	size_t nfl = arg->type == IMAP_CMD_ARG_LIST ? arg->count : 1;
	size_t nl = 0;
	const char **kw = rg_malloc((nfl + 1) * sizeof(*kw));
	size_t nkw = 0;
	for (size_t i = 0; i < nfl; i++) {
		if (fl[i].type != IMAP_CMD_ARG_ATOM) {
			rg_free(kw);
			*error_r = "Invalid flags.";
			return false;
		}
		char l = flag_letter(fl[i].str);
		if (l == '\0') {
			if (strcasecmp(fl[i].str, "\\Recent") == 0)
				continue; /* only the server sets it */
			if (fl[i].str[0] == '\\' || strpbrk(fl[i].str, "[]%*") != NULL ||
			    fl[i].len > MAILDIR_MAX_KEYWORD_LEN) {
				rg_free(kw);
				*error_r = fl[i].str[0] == '\\' ? "Invalid system flag." : "Invalid keyword.";
				return false;
			}
			kw[nkw++] = fl[i].str;
			continue;
		}
		if (memchr(letters, l, nl) == NULL && nl < IMAP_FLAG_COUNT)
			letters[nl++] = l;
	}
	letters[nl] = '\0';
	if (nkw > 0 && path != NULL) {
		int ret = maildir_keywords_lookup(path, kw, nkw, create, letters + nl);
		if (ret < 0)
			log_error("keywords of %s: %s", path, strerror(-ret));
	}
	rg_free(kw);
	return true;
}
/* ---- STORE ---- */

bool cmd_store_common(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args,
		      size_t count, bool uid)
{
	const char *cmd = uid ? "UID STORE" : "STORE";
	char text[160];
	uint64_t unchangedsince = UINT64_MAX;
	struct imap_cmd_arg shifted[3];
	if (count == 4 && args[1].type == IMAP_CMD_ARG_LIST) {
		/* RFC 7162: STORE set (UNCHANGEDSINCE <modseq>) op flags */
		const struct imap_cmd_arg *mod = &args[1];
		char *end;
		if (mod->count != 2 || mod->list[0].type != IMAP_CMD_ARG_ATOM ||
		    strcasecmp(mod->list[0].str, "UNCHANGEDSINCE") != 0 || mod->list[1].type != IMAP_CMD_ARG_ATOM ||
		    !isdigit((unsigned char)mod->list[1].str[0]) ||
		    (unchangedsince = strtoull(mod->list[1].str, &end, 10), *end != '\0')) {
			snprintf(text, sizeof(text), "Error in IMAP command %s: Invalid modifier.", cmd);
			return imap_bad(c, tag, text);
		}
		imap_condstore_enable(c);
		shifted[0] = args[0];
		shifted[1] = args[2];
		shifted[2] = args[3];
		args = shifted;
		count = 3;
	}
	if (count != 3 || args[0].type != IMAP_CMD_ARG_ATOM || args[1].type != IMAP_CMD_ARG_ATOM) {
		snprintf(text, sizeof(text), "Error in IMAP command %s: Invalid arguments.", cmd);
		return imap_bad(c, tag, text);
	}
	const char *op = args[1].str;
	char mode = '=';
	if (*op == '+' || *op == '-')
		mode = *op++;
	bool silent;
	if (strcasecmp(op, "FLAGS") == 0)
		silent = false;
	else if (strcasecmp(op, "FLAGS.SILENT") == 0)
		silent = true;
	else {
		snprintf(text, sizeof(text), "Error in IMAP command %s: Invalid arguments.", cmd);
		return imap_bad(c, tag, text);
	}
	char letters[IMAP_FLAG_COUNT + MAILDIR_MAX_KEYWORDS + 1];
	const char *ferror;
	/* keywords are created only when the store could add them */
	if (!imap_parse_flag_list(&args[2], c->readonly ? NULL : c->box_path, mode != '-', letters, &ferror)) {
		snprintf(text, sizeof(text), "Error in IMAP command %s: %s", cmd, ferror);
		return imap_bad(c, tag, text);
	}
	if (strpbrk(letters, "abcdefghijklmnopqrstuvwxyz") != NULL) {
		maildir_keywords_reload(c->box);
		imap_announce_keywords(c, c->box);
	}
	if (c->readonly) {
		imap_tagged(c, tag, "NO", "Mailbox is read-only.");
		return true;
	}
	size_t *pos, npos;
	const char *error;
	if (!imap_seqset_resolve(c, args[0].str, uid, &pos, &npos, &error)) {
		snprintf(text, sizeof(text), "Error in IMAP command %s: %s", cmd, error);
		return imap_bad(c, tag, text);
	}
	bool failed = false, expunged = false;
	/* the changes first, then their modseqs, then the replies; with
	 * CONDSTORE the renames and their modseqs under the folder's lock,
	 * so no other session's scan numbers a renamed file first */
	int lock_fd = -1;
	if (c->condstore && maildir_lock(c->box, &lock_fd) < 0) {
		log_error("locking %s failed", c->box_path);
		lock_fd = -1;
	}
	size_t *changed = rg_malloc((npos + 1) * sizeof(*changed));
	bool *full = rg_malloc((npos + 1) * sizeof(*full));
	size_t *idxs = rg_malloc((npos + 1) * sizeof(*idxs));
	size_t nchanged = 0, nidxs = 0;
	uint32_t *modified = rg_malloc((npos + 1) * sizeof(*modified));
	size_t nmodified = 0;
	for (size_t i = 0; i < npos; i++) {
		size_t idx = c->map[pos[i]];
		struct maildir_msg *m = &c->box->msgs[idx];
		if (m->modseq > unchangedsince) {
			modified[nmodified++] = uid ? m->uid : (uint32_t)(pos[i] + 1);
			continue;
		}
		char before[MAILDIR_MAX_FLAGS + 1], expect[MAILDIR_MAX_FLAGS + 1];
		memcpy(before, m->flags, sizeof(before));
		maildir_flags_apply(before, mode, letters, expect);
		int ret = maildir_msg_change_flags(c->box, idx, mode, letters);
		if (ret == -ENOENT) {
			/* another session expunged it: the client hears of
			 * that at the sync; the others were stored (as Dovecot) */
			expunged = true;
			continue;
		}
		if (ret < 0) {
			log_error("storing flags on uid %u failed: %s", m->uid, strerror(-ret));
			failed = true;
			continue;
		}
		/* only our renames get a new modseq: a change another session
		 * made meanwhile has its own (the next sync tells it) */
		if (ret == 1)
			idxs[nidxs++] = idx;
		if (strcmp(before, m->flags) != 0 || !silent) {
			/* flags beyond this STORE's change are another session's:
			 * shown even with .SILENT, the client has not seen them */
			full[nchanged] = !silent || strcmp(expect, m->flags) != 0;
			changed[nchanged++] = pos[i];
		}
	}
	/* an mbox writes the changes now, in one go; undone when it cannot */
	int flush_ret = maildir_flush(c->box);
	if (flush_ret < 0)
		failed = true;
	if (c->condstore && nidxs > 0) {
		uint64_t before = c->box->highest_modseq;
		int ret = lock_fd >= 0 ? maildir_modseq_commit_locked(c->box, idxs, nidxs) : -ENOLCK;
		if (ret < 0)
			log_error("recording modseqs in %s failed: %s", c->box_path, strerror(-ret));
		else
			imap_modseq_committed(c, before);
	}
	maildir_unlock(lock_fd);
	rg_free(idxs);
	for (size_t i = 0; i < nchanged; i++) {
		struct maildir_msg *m = &c->box->msgs[c->map[changed[i]]];
		/* .SILENT still reports the new modseq to a CONDSTORE client */
		if (!full[i] && !c->condstore)
			continue;
		char buf[FLAGS_BUF];
		imap_flags_str(c->box, m, buf, sizeof(buf));
		imap_send_fmt(c, "* %zu FETCH (", changed[i] + 1);
		if (uid || c->qresync)
			imap_send_fmt(c, "UID %u ", m->uid);
		if (full[i])
			imap_send_fmt(c, "FLAGS (%s)%s", buf, c->condstore ? " " : "");
		if (c->condstore)
			imap_send_fmt(c, "MODSEQ (%" PRIu64 ")", m->modseq);
		imap_send_str(c, ")\r\n");
	}
	rg_free(pos);
	rg_free(changed);
	rg_free(full);
	imap_modseq_hold_flush(c);
	if (nmodified > 0) {
		struct mime_buf b = { 0 };
		mime_buf_str(&b, "[MODIFIED ");
		imap_uidset_out(&b, modified, nmodified);
		mime_buf_str(&b, "] Conditional store failed.");
		imap_tagged(c, tag, "OK", b.data);
		mime_buf_free(&b);
	} else if (flush_ret == -EAGAIN) {
		imap_tagged(c, tag, "NO", IMAP_ERR_INUSE);
	} else if (failed) {
		imap_tagged(c, tag, "NO", "Some messages could not be updated.");
	} else if (expunged) {
		imap_tagged(c, tag, "OK", "[EXPUNGEISSUED] Some of the messages no longer exist.");
	} else {
		imap_tagged(c, tag, "OK", "Store completed.");
	}
	rg_free(modified);
	return true;
}

bool cmd_store(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	return cmd_store_common(c, tag, args, count, false);
}
