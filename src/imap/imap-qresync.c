/* imap-qresync.c — QRESYNC (RFC 7162 3.2): the QRESYNC parameter of
 * SELECT/EXAMINE, UID FETCH's VANISHED modifier, and VANISHED responses.
 * The expunge modseqs come from the maildir's ringgate-modseq records
 * (mail/maildir.h: bounded; older than its floor, every missing UID). */
#include "imap/imap-qresync.h"

#include "lib/alloc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* mod-sequence-value (RFC 7162 7): 1*DIGIT up to 2^63 - 1; zero when
 * zero_ok (mod-sequence-valzer) */
bool imap_parse_modseq(const struct imap_cmd_arg *arg, bool zero_ok, uint64_t *modseq_r)
{
	if (arg->type != IMAP_CMD_ARG_ATOM || arg->len == 0 || arg->len > 19)
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < arg->len; i++) {
		if (arg->str[i] < '0' || arg->str[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(arg->str[i] - '0');
	}
	if (v > INT64_MAX || (v == 0 && !zero_ok))
		return false;
	*modseq_r = v;
	return true;
}

static bool parse_nz32(const struct imap_cmd_arg *arg, uint32_t *v_r)
{
	uint64_t v;
	if (!imap_parse_modseq(arg, false, &v) || v > UINT32_MAX)
		return false;
	*v_r = (uint32_t)v;
	return true;
}

/* a sequence set atom, checked with "*" as the largest number */
static bool parse_set(const struct imap_cmd_arg *arg, struct imap_seq_range **r_r, size_t *n_r)
{
	return arg->type == IMAP_CMD_ARG_ATOM && imap_seqset_parse(arg->str, UINT32_MAX, r_r, n_r);
}

void imap_select_params_free(struct imap_select_params *p)
{
	rg_free(p->known);
	rg_free(p->match_seq);
	rg_free(p->match_uid);
	memset(p, 0, sizeof(*p));
}

static uint64_t set_size(const struct imap_seq_range *r, size_t n)
{
	uint64_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += (uint64_t)r[i].hi - r[i].lo + 1;
	return total;
}

/* (uidvalidity modseq [known-uids [(known-seqs known-uids)]]) */
static bool parse_qresync(const struct imap_cmd_arg *q, struct imap_select_params *p, const char **error_r)
{
	*error_r = "Invalid QRESYNC parameters";
	if (q->type != IMAP_CMD_ARG_LIST || q->count < 2 || q->count > 4 ||
	    !parse_nz32(&q->list[0], &p->uidvalidity) || !imap_parse_modseq(&q->list[1], false, &p->modseq))
		return false;
	if (q->count >= 3 && !parse_set(&q->list[2], &p->known, &p->nknown))
		return false;
	if (q->count == 4) {
		const struct imap_cmd_arg *m = &q->list[3];
		if (m->type != IMAP_CMD_ARG_LIST || m->count != 2 ||
		    !parse_set(&m->list[0], &p->match_seq, &p->nmatch_seq) ||
		    !parse_set(&m->list[1], &p->match_uid, &p->nmatch_uid))
			return false;
		/* the two sets pair up one to one (RFC 7162 3.2.5.2) */
		if (set_size(p->match_seq, p->nmatch_seq) != set_size(p->match_uid, p->nmatch_uid)) {
			*error_r = "QRESYNC sequence match data sets differ in size";
			return false;
		}
	}
	return true;
}

bool imap_select_params_parse(const struct imap_cmd_arg *arg, bool qresync_enabled,
			      struct imap_select_params *p, const char **error_r)
{
	memset(p, 0, sizeof(*p));
	*error_r = "Invalid arguments";
	if (arg->type != IMAP_CMD_ARG_LIST || arg->count == 0)
		return false;
	for (size_t i = 0; i < arg->count; i++) {
		const struct imap_cmd_arg *a = &arg->list[i];
		if (a->type != IMAP_CMD_ARG_ATOM)
			goto fail;
		if (strcasecmp(a->str, "CONDSTORE") == 0 && !p->condstore) {
			p->condstore = true;
		} else if (strcasecmp(a->str, "QRESYNC") == 0 && !p->qresync && i + 1 < arg->count) {
			/* RFC 7162 3.2.5: only after ENABLE QRESYNC */
			if (!qresync_enabled) {
				*error_r = "QRESYNC isn't enabled";
				goto fail;
			}
			p->qresync = true;
			if (!parse_qresync(&arg->list[++i], p, error_r))
				goto fail;
		} else {
			*error_r = "Unknown select parameter";
			goto fail;
		}
	}
	return true;
fail:
	imap_select_params_free(p);
	return false;
}

bool imap_fetch_modifiers_parse(const struct imap_cmd_arg *arg, struct imap_fetch_modifiers *m,
				const char **error_r)
{
	memset(m, 0, sizeof(*m));
	*error_r = "Invalid modifier.";
	if (arg->type != IMAP_CMD_ARG_LIST || arg->count == 0)
		return false;
	for (size_t i = 0; i < arg->count; i++) {
		const struct imap_cmd_arg *a = &arg->list[i];
		if (a->type != IMAP_CMD_ARG_ATOM)
			return false;
		if (strcasecmp(a->str, "CHANGEDSINCE") == 0 && !m->changedsince && i + 1 < arg->count) {
			if (!imap_parse_modseq(&arg->list[++i], true, &m->since))
				return false;
			m->changedsince = true;
		} else if (strcasecmp(a->str, "VANISHED") == 0 && !m->vanished) {
			m->vanished = true;
		} else {
			return false;
		}
	}
	/* RFC 7162 3.2.6: VANISHED only with CHANGEDSINCE */
	if (m->vanished && !m->changedsince) {
		*error_r = "VANISHED used without CHANGEDSINCE.";
		return false;
	}
	return true;
}

void imap_send_vanished(struct imap_client *c, bool earlier, const struct maildir_uid_range *r, size_t n)
{
	if (n == 0)
		return;
	struct mime_buf b = { 0 };
	mime_buf_str(&b, earlier ? "* VANISHED (EARLIER) " : "* VANISHED ");
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			mime_buf_str(&b, ",");
		if (r[i].lo == r[i].hi)
			mime_buf_printf(&b, "%" PRIu32, r[i].lo);
		else
			mime_buf_printf(&b, "%" PRIu32 ":%" PRIu32, r[i].lo, r[i].hi);
	}
	mime_buf_str(&b, "\r\n");
	imap_send_raw(c, b.data, b.len);
	mime_buf_free(&b);
}

static struct maildir_uid_range *to_uid_ranges(const struct imap_seq_range *r, size_t n)
{
	struct maildir_uid_range *out = rg_malloc((n + 1) * sizeof(*out));
	for (size_t i = 0; i < n; i++) {
		out[i].lo = r[i].lo;
		out[i].hi = r[i].hi;
	}
	return out;
}

void imap_send_vanished_earlier(struct imap_client *c, uint64_t since, const struct imap_seq_range *set,
				size_t nset, uint32_t skip_below)
{
	static const struct imap_seq_range all = { 1, UINT32_MAX };
	if (set == NULL) {
		set = &all;
		nset = 1;
	}
	struct maildir_uid_range *uset = to_uid_ranges(set, nset), *v;
	size_t nv;
	maildir_vanished_since(c->box, since, uset, nset, &v, &nv);
	/* sequence match data: no expunges at or below skip_below */
	size_t k = 0;
	while (k < nv && v[k].hi <= skip_below)
		k++;
	if (k < nv && v[k].lo <= skip_below)
		v[k].lo = skip_below + 1;
	imap_send_vanished(c, true, v + k, nv - k);
	rg_free(v);
	rg_free(uset);
}

/* the view position of uid, or -1 */
static ssize_t view_find_uid(const struct imap_client *c, uint32_t uid)
{
	size_t lo = 0, hi = c->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint32_t u = c->box->msgs[c->map[mid]].uid;
		if (u == uid)
			return (ssize_t)mid;
		if (u < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* RFC 7162 3.2.5.2: walk the (sequence number, UID) pairs in order; while
 * each UID still has the client's sequence number, nothing at or below it
 * was expunged. The highest such UID. */
static uint32_t seq_match_skip(const struct imap_client *c, const struct imap_select_params *p)
{
	uint32_t skip = 0;
	size_t si = 0, ui = 0;
	uint64_t s = p->nmatch_seq > 0 ? p->match_seq[0].lo : 0;
	uint64_t u = p->nmatch_uid > 0 ? p->match_uid[0].lo : 0;
	while (si < p->nmatch_seq && ui < p->nmatch_uid) {
		ssize_t pos = view_find_uid(c, (uint32_t)u);
		if (pos < 0 || (uint64_t)pos + 1 != s)
			break;
		skip = (uint32_t)u;
		if (++s > p->match_seq[si].hi && ++si < p->nmatch_seq)
			s = p->match_seq[si].lo;
		if (++u > p->match_uid[ui].hi && ++ui < p->nmatch_uid)
			u = p->match_uid[ui].lo;
	}
	return skip;
}

void imap_qresync_select(struct imap_client *c, const struct imap_select_params *p)
{
	if (!p->qresync || p->uidvalidity != c->box->uidvalidity)
		return;
	/* below what the expunge records cover, the sequence match data
	 * narrows the all-missing-UIDs answer */
	uint32_t skip = p->modseq < c->box->vanished_floor ? seq_match_skip(c, p) : 0;
	imap_send_vanished_earlier(c, p->modseq, p->known, p->nknown, skip);
	char buf[FLAGS_BUF];
	for (size_t i = 0; i < c->count; i++) {
		const struct maildir_msg *m = &c->box->msgs[c->map[i]];
		if (m->modseq <= p->modseq)
			continue;
		if (p->known != NULL && !imap_seqset_contains(p->known, p->nknown, m->uid))
			continue;
		imap_flags_str(c->box, m, buf, sizeof(buf));
		imap_send_fmt(c, "* %zu FETCH (UID %" PRIu32 " FLAGS (%s) MODSEQ (%" PRIu64 "))\r\n", i + 1, m->uid,
			      buf, m->modseq);
	}
}

void imap_modseq_committed(struct imap_client *c, uint64_t before)
{
	if (c->condstore && c->box->modseq_behind && (c->highest_hold == 0 || before < c->highest_hold))
		c->highest_hold = before;
}

void imap_modseq_hold_flush(struct imap_client *c)
{
	if (c->highest_hold == 0)
		return;
	/* RFC 7162 3.2: MODSEQs were sent above changes this client has
	 * not heard of yet; the HIGHESTMODSEQ it may resync from is lower */
	imap_send_fmt(c, "* OK [HIGHESTMODSEQ %" PRIu64 "] Highest\r\n", c->highest_hold);
	c->highest_hold = 0;
}
