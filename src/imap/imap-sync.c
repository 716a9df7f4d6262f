#include "imap/imap-common.h"

#include "imap/imap-qresync.h"
#include "imap/imap-search.h"
#include "lib/alloc.h"
#include "lib/log.h"
#include "mail/folder.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* ---- the selected mailbox ---- */

void imap_mailbox_close(struct imap_client *c)
{
	maildir_close(c->box);
	c->box = NULL;
	rg_free(c->map);
	c->map = NULL;
	c->count = 0;
	rg_free(c->box_name);
	rg_free(c->box_path);
	c->box_name = c->box_path = NULL;
	if (c->state == STATE_SELECTED)
		c->state = STATE_AUTH;
}

size_t imap_view_recent(const struct imap_client *c)
{
	size_t n = 0;
	for (size_t i = 0; i < c->count; i++)
		n += c->box->msgs[c->map[i]].recent;
	return n;
}

/* collects a view's expunged UIDs (ascending) for one VANISHED */
struct vanished_acc {
	struct maildir_uid_range *r;
	size_t n;
};

static void vanished_add(struct vanished_acc *v, uint32_t uid)
{
	if (v->n > 0 && v->r[v->n - 1].hi + 1 == uid) {
		v->r[v->n - 1].hi = uid;
		return;
	}
	if ((v->n & (v->n - 1)) == 0)
		v->r = rg_realloc(v->r, (v->n == 0 ? 1 : v->n * 2) * sizeof(*v->r));
	v->r[v->n].lo = v->r[v->n].hi = uid;
	v->n++;
}

/* remove the view's entries whose files we unlinked, telling the client
 * (with QRESYNC one VANISHED, RFC 7162 3.2.10) */
void imap_send_expunges(struct imap_client *c, bool silent)
{
	size_t kept = 0;
	struct vanished_acc v = { 0 };
	for (size_t i = 0; i < c->count; i++) {
		const struct maildir_msg *m = &c->box->msgs[c->map[i]];
		if (m->expunged) {
			if (c->qresync)
				vanished_add(&v, m->uid);
			else if (!silent)
				imap_send_fmt(c, "* %zu EXPUNGE\r\n", kept + 1);
			continue;
		}
		c->map[kept++] = c->map[i];
	}
	c->count = kept;
	if (!silent)
		imap_send_vanished(c, false, v.r, v.n);
	rg_free(v.r);
}

/* Rescan the folder when it changed and tell the client what other
 * sessions and deliveries did: EXPUNGE (in order, each number counted
 * after the ones before), FETCH FLAGS, then EXISTS/RECENT for new mail. */
void imap_sync_view(struct imap_client *c)
{
	if (c->box == NULL || !maildir_changed(c->box))
		return;
	if (!folder_path_exists(c->box_path)) {
		imap_send_str(c, "* BYE Selected mailbox was deleted, have to disconnect.\r\n");
		c->done = true;
		return;
	}
	struct maildir *nb;
	const char *error;
	int ret = maildir_open(c->box_path, !c->readonly, &nb, &error);
	if (ret < 0) {
		log_error("syncing %s failed: %s: %s", c->box_path, error, strerror(-ret));
		return;
	}
	if (nb->uidvalidity != c->box->uidvalidity) {
		log_warning("%s: UIDVALIDITY changed from %u to %u under the session", c->box_path,
			    c->box->uidvalidity, nb->uidvalidity);
		imap_send_str(c, "* BYE Mailbox UIDVALIDITY changed, have to disconnect.\r\n");
		c->done = true;
		maildir_close(nb);
		return;
	}
	/* keywords another session created come before the FETCHes showing them */
	imap_announce_keywords(c, nb);
	if (c->qresync) {
		/* one VANISHED first: the FETCHes' numbers count it */
		struct vanished_acc v = { 0 };
		for (size_t i = 0, k = 0; i < c->count; i++) {
			const struct maildir_msg *om = &c->box->msgs[c->map[i]];
			while (k < nb->count && nb->msgs[k].uid < om->uid)
				k++;
			if (om->expunged || k == nb->count || nb->msgs[k].uid != om->uid)
				vanished_add(&v, om->uid);
		}
		imap_send_vanished(c, false, v.r, v.n);
		rg_free(v.r);
	}
	size_t *map = rg_malloc((nb->count + 1) * sizeof(*map));
	size_t n = 0, j = 0;
	char buf[FLAGS_BUF];
	for (size_t i = 0; i < c->count; i++) {
		const struct maildir_msg *om = &c->box->msgs[c->map[i]];
		while (j < nb->count && nb->msgs[j].uid < om->uid)
			j++;
		if (j < nb->count && nb->msgs[j].uid == om->uid && !om->expunged) {
			struct maildir_msg *nm = &nb->msgs[j++];
			nm->recent |= om->recent;
			map[n++] = j - 1;
			/* a modseq that moved with the same flags: a race with
			 * another session's change, whose number this client
			 * must still get (RFC 7162 3.1.2 keeps them in step) */
			if (strcmp(nm->flags, om->flags) != 0 || (c->condstore && nm->modseq != om->modseq)) {
				imap_flags_str(nb, nm, buf, sizeof(buf));
				if (c->condstore)
					imap_send_fmt(c, "* %zu FETCH (UID %u FLAGS (%s) MODSEQ (%" PRIu64 "))\r\n",
						 n, nm->uid, buf, nm->modseq);
				else
					imap_send_fmt(c, "* %zu FETCH (UID %u FLAGS (%s))\r\n", n, nm->uid, buf);
			}
		} else if (!c->qresync) {
			imap_send_fmt(c, "* %zu EXPUNGE\r\n", n + 1);
		}
	}
	uint32_t last = c->count > 0 ? c->box->msgs[c->map[c->count - 1]].uid : 0;
	size_t before = n;
	for (size_t k = 0; k < nb->count; k++) {
		if (nb->msgs[k].uid > last)
			map[n++] = k;
	}
	maildir_close(c->box);
	rg_free(c->map);
	c->box = nb;
	c->map = map;
	c->count = n;
	if (n > before)
		imap_send_fmt(c, "* %zu EXISTS\r\n* %zu RECENT\r\n", n, imap_view_recent(c));
}

/* The view positions (0-based) a set names, in order. For sequence
 * numbers, one past the mailbox is an error, as in Dovecot. */
bool imap_seqset_resolve(struct imap_client *c, const char *set, bool uid,
			 size_t **pos_r, size_t *count_r, const char **error_r)
{
	uint32_t star = 0;
	if (uid)
		star = c->count > 0 ? c->box->msgs[c->map[c->count - 1]].uid : 0;
	else
		star = (uint32_t)c->count;
	struct imap_seq_range *r;
	size_t nr;
	if (set == NULL || !imap_seqset_parse(set, star, &r, &nr)) {
		*error_r = "Invalid messageset";
		return false;
	}
	if (!uid && (nr == 0 || r[nr - 1].hi > c->count || r[0].lo == 0)) {
		rg_free(r);
		*error_r = "Invalid messageset";
		return false;
	}
	size_t *pos = rg_malloc((c->count + 1) * sizeof(*pos));
	size_t n = 0;
	for (size_t i = 0; i < c->count; i++) {
		uint32_t key = uid ? c->box->msgs[c->map[i]].uid : (uint32_t)(i + 1);
		if (imap_seqset_contains(r, nr, key))
			pos[n++] = i;
	}
	rg_free(r);
	*pos_r = pos;
	*count_r = n;
	return true;
}

/* uids as a compact set "1:3,7" */
void imap_condstore_enable(struct imap_client *c)
{
	if (c->condstore)
		return;
	c->condstore = true;
	if (c->box != NULL)
		imap_send_fmt(c, "* OK [HIGHESTMODSEQ %" PRIu64 "] Highest\r\n", c->box->highest_modseq);
}

void imap_uidset_out(struct mime_buf *b, const uint32_t *uids, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t k = i;
		while (k + 1 < n && uids[k + 1] == uids[k] + 1)
			k++;
		if (b->len > 0 && b->data[b->len - 1] != ' ')
			mime_buf_str(b, ",");
		if (k > i)
			mime_buf_printf(b, "%u:%u", uids[i], uids[k]);
		else
			mime_buf_printf(b, "%u", uids[i]);
		i = k + 1;
	}
}

static int expunge_deleted(struct imap_client *c, const struct imap_seq_range *uids, size_t nuids)
{
	int ret = 0;
	for (size_t i = 0; i < c->count; i++) {
		size_t idx = c->map[i];
		if (!maildir_msg_has_flag(&c->box->msgs[idx], MAILDIR_FLAG_TRASHED))
			continue;
		if (uids != NULL && !imap_seqset_contains(uids, nuids, c->box->msgs[idx].uid))
			continue;
		int r = maildir_msg_delete(c->box, idx);
		if (r < 0) {
			log_error("expunging uid %u failed: %s", c->box->msgs[idx].uid, strerror(-r));
			ret = r;
		}
	}
	/* an mbox removes them now, in one rewrite; kept when it cannot */
	int r = maildir_flush(c->box);
	return r < 0 ? r : ret;
}
bool cmd_check(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	(void)args;
	(void)count;
	imap_tagged(c, tag, "OK", "Check completed.");
	return true;
}

static bool cmd_select_common(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args,
			      size_t count, bool examine)
{
	const char *cmd = examine ? "EXAMINE" : "SELECT";
	char text[160];
	const char *name = count >= 1 ? imap_cmd_arg_astring(&args[0]) : NULL;
	struct imap_select_params params = { 0 };
	const char *perror = "Invalid arguments";
	if (count < 1 || count > 2 || name == NULL ||
	    (count == 2 && !imap_select_params_parse(&args[1], c->qresync, &params, &perror))) {
		snprintf(text, sizeof(text), "Error in IMAP command %s: %s.", cmd, perror);
		return imap_bad(c, tag, text);
	}
	if (params.condstore || params.qresync)
		c->condstore = true;
	if (c->box != NULL) {
		/* RFC 7162 3.2.11: the end of the old mailbox's responses */
		imap_mailbox_close(c);
		imap_send_str(c, "* OK [CLOSED] Previous mailbox closed.\r\n");
	}
	char *path = folder_path(c->mail_path, name);
	if (path == NULL || !folder_exists(c->mail_path, name)) {
		rg_free(path);
		imap_select_params_free(&params);
		imap_no_mailbox(c, tag, name, false);
		return true;
	}
	const char *error;
	int ret = maildir_open(path, !examine, &c->box, &error);
	if (ret < 0) {
		log_error("opening %s failed: %s: %s", path, error, strerror(-ret));
		rg_free(path);
		imap_select_params_free(&params);
		imap_tagged(c, tag, "NO", IMAP_ERR_INTERNAL);
		return true;
	}
	c->box_path = path;
	c->box_name = rg_strdup(folder_is_inbox(name) ? "INBOX" : name);
	c->readonly = examine;
	c->count = c->box->count;
	c->map = rg_malloc((c->count + 1) * sizeof(*c->map));
	size_t first_unseen = 0;
	for (size_t i = 0; i < c->count; i++) {
		c->map[i] = i;
		if (first_unseen == 0 && !maildir_msg_has_flag(&c->box->msgs[i], MAILDIR_FLAG_SEEN))
			first_unseen = i + 1;
	}
	c->state = STATE_SELECTED;
	imap_send_flags(c, c->box);
	imap_send_fmt(c, "* %zu EXISTS\r\n* %zu RECENT\r\n", c->count, imap_view_recent(c));
	if (first_unseen > 0)
		imap_send_fmt(c, "* OK [UNSEEN %zu] First unseen.\r\n", first_unseen);
	imap_send_fmt(c, "* OK [UIDVALIDITY %u] UIDs valid\r\n", c->box->uidvalidity);
	imap_send_fmt(c, "* OK [UIDNEXT %u] Predicted next UID\r\n", c->box->uidnext);
	if (c->condstore)
		imap_send_fmt(c, "* OK [HIGHESTMODSEQ %" PRIu64 "] Highest\r\n", c->box->highest_modseq);
	imap_qresync_select(c, &params);
	imap_select_params_free(&params);
	imap_tagged(c, tag, "OK", examine ? "[READ-ONLY] Examine completed." : "[READ-WRITE] Select completed.");
	return true;
}

bool cmd_select(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	return cmd_select_common(c, tag, args, count, false);
}

bool cmd_examine(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	return cmd_select_common(c, tag, args, count, true);
}

bool cmd_expunge(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	(void)args;
	(void)count;
	if (c->readonly) {
		imap_tagged(c, tag, "NO", "Mailbox is read-only.");
		return true;
	}
	int ret = expunge_deleted(c, NULL, 0);
	imap_send_expunges(c, false);
	imap_tagged(c, tag, ret < 0 ? "NO" : "OK", ret == -EAGAIN ? IMAP_ERR_INUSE :
		    ret < 0 ? IMAP_ERR_INTERNAL : "Expunge completed.");
	return true;
}

bool cmd_close(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	(void)args;
	(void)count;
	if (!c->readonly)
		expunge_deleted(c, NULL, 0);
	imap_mailbox_close(c);
	imap_tagged(c, tag, "OK", "Close completed.");
	return true;
}

bool cmd_unselect(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	(void)args;
	(void)count;
	imap_mailbox_close(c);
	imap_tagged(c, tag, "OK", "Unselect completed.");
	return true;
}

bool cmd_uid_expunge(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args,
		     size_t count)
{
	if (count != 1 || args[0].type != IMAP_CMD_ARG_ATOM)
		return imap_bad_args(c, tag, "UID EXPUNGE");
	uint32_t max_uid = c->count > 0 ? c->box->msgs[c->map[c->count - 1]].uid : 0;
	struct imap_seq_range *r;
	size_t nr;
	if (!imap_seqset_parse(args[0].str, max_uid, &r, &nr))
		return imap_bad(c, tag, "Error in IMAP command UID EXPUNGE: Invalid messageset");
	if (c->readonly) {
		rg_free(r);
		imap_tagged(c, tag, "NO", "Mailbox is read-only.");
		return true;
	}
	int ret = expunge_deleted(c, r, nr);
	rg_free(r);
	imap_send_expunges(c, false);
	imap_tagged(c, tag, ret < 0 ? "NO" : "OK", ret == -EAGAIN ? IMAP_ERR_INUSE :
		    ret < 0 ? IMAP_ERR_INTERNAL : "Expunge completed.");
	return true;
}
