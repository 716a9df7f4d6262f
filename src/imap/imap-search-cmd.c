/* imap-search-cmd.c — the SEARCH and UID SEARCH commands: the program
 * (imap-search.h) run over the selected mailbox, a message loaded only
 * when the program needs its text; ESEARCH's RETURN options (RFC 4731)
 * and CONDSTORE's MODSEQ in the answer. */
#include "imap/imap-common.h"

#include "imap/imap-qresync.h"

#include "imap/imap-search.h"
#include "lib/alloc.h"
#include "lib/log.h"
#include "mail/mime-decode.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct search_load {
	struct imap_client *c;
	size_t idx;
	char *msg;
	size_t len;
};

static const char *search_load_msg(void *ctx, size_t *len_r)
{
	struct search_load *sl = ctx;
	if (sl->msg == NULL) {
		char *raw;
		size_t raw_len;
		if (maildir_msg_read(sl->c->box, sl->idx, &raw, &raw_len) < 0)
			return NULL;
		sl->msg = maildir_to_crlf(raw, raw_len, &sl->len);
		rg_free(raw);
	}
	*len_r = sl->len;
	return sl->msg;
}

enum { ESEARCH_MIN = 1, ESEARCH_MAX = 2, ESEARCH_ALL = 4, ESEARCH_COUNT = 8 };

/* "* ESEARCH (TAG "t") [UID] [MIN n] [MAX n] [ALL set] [COUNT n] [MODSEQ m]"
 * into out (replacing "* SEARCH"); found[] ascending. With MODSEQ
 * (RFC 7162 3.1.5) the highest modseq of what is returned: of the MIN/MAX
 * messages alone when only they are asked for. */
static void esearch_out(struct mime_buf *out, const char *tag, bool uid, unsigned int opts,
			const uint32_t *found, const uint64_t *modseqs, size_t n, bool with_modseq)
{
	out->len = 0;
	mime_buf_str(out, "* ESEARCH (TAG ");
	mime_buf_nstring(out, tag, strlen(tag));
	mime_buf_str(out, ")");
	if (uid)
		mime_buf_str(out, " UID");
	uint64_t modseq = 0;
	if (n > 0 && (opts & ESEARCH_MIN) != 0) {
		mime_buf_printf(out, " MIN %u", found[0]);
		modseq = modseqs[0];
	}
	if (n > 0 && (opts & ESEARCH_MAX) != 0) {
		mime_buf_printf(out, " MAX %u", found[n - 1]);
		if (modseqs[n - 1] > modseq)
			modseq = modseqs[n - 1];
	}
	if (n > 0 && (opts & ESEARCH_ALL) != 0) {
		mime_buf_str(out, " ALL ");
		imap_uidset_out(out, found, n);
	}
	if ((opts & ESEARCH_COUNT) != 0)
		mime_buf_printf(out, " COUNT %zu", n);
	if ((opts & (ESEARCH_ALL | ESEARCH_COUNT)) != 0) {
		for (size_t i = 0; i < n; i++) {
			if (modseqs[i] > modseq)
				modseq = modseqs[i];
		}
	}
	if (with_modseq && n > 0)
		mime_buf_printf(out, " MODSEQ %" PRIu64, modseq);
}

bool cmd_search_common(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args,
		       size_t count, bool uid)
{
	const char *cmd = uid ? "UID SEARCH" : "SEARCH";
	char text[160];
	/* ESEARCH (RFC 4731): RETURN (MIN MAX ALL COUNT); "()" is ALL */
	unsigned int ret_opts = 0;
	bool esearch = false;
	if (count >= 2 && args[0].type == IMAP_CMD_ARG_ATOM && strcasecmp(args[0].str, "RETURN") == 0 &&
	    args[1].type == IMAP_CMD_ARG_LIST) {
		static const char *const names[] = { "MIN", "MAX", "ALL", "COUNT" };
		for (size_t i = 0; i < args[1].count; i++) {
			const struct imap_cmd_arg *o = &args[1].list[i];
			size_t k = 0;
			while (k < 4 && (o->type != IMAP_CMD_ARG_ATOM || strcasecmp(o->str, names[k]) != 0))
				k++;
			if (k == 4) {
				snprintf(text, sizeof(text), "Error in IMAP command %s: Invalid search return option", cmd);
				return imap_bad(c, tag, text);
			}
			ret_opts |= 1u << k;
		}
		if (ret_opts == 0)
			ret_opts = ESEARCH_ALL;
		esearch = true;
		args += 2;
		count -= 2;
	}
	if (count >= 1 && args[0].type == IMAP_CMD_ARG_ATOM && strcasecmp(args[0].str, "CHARSET") == 0) {
		const char *cs = count >= 2 ? imap_cmd_arg_astring(&args[1]) : NULL;
		if (cs == NULL)
			return imap_bad_args(c, tag, cmd);
		if (strcasecmp(cs, "UTF-8") != 0 && strcasecmp(cs, "US-ASCII") != 0) {
			imap_tagged(c, tag, "NO", "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset");
			return true;
		}
		args += 2;
		count -= 2;
	}
	uint32_t max_uid = c->count > 0 ? c->box->msgs[c->map[c->count - 1]].uid : 0;
	const char *error;
	struct imap_search *s = imap_search_parse(args, count, (uint32_t)c->count, max_uid, &error);
	if (s == NULL) {
		snprintf(text, sizeof(text), "Error in IMAP command %s: %s", cmd, error);
		return imap_bad(c, tag, text);
	}
	struct mime_buf out = { 0 };
	uint64_t max_modseq = 0;
	bool matched = false;
	/* ESEARCH: the numbers found and their modseqs */
	uint32_t *found = NULL;
	uint64_t *found_modseq = NULL;
	size_t nfound = 0;
	if (esearch) {
		found = rg_malloc((c->count + 1) * sizeof(*found));
		found_modseq = rg_malloc((c->count + 1) * sizeof(*found_modseq));
	}
	mime_buf_str(&out, "* SEARCH");
	for (size_t i = 0; i < c->count; i++) {
		size_t idx = c->map[i];
		struct maildir_msg *m = &c->box->msgs[idx];
		struct search_load sl = { .c = c, .idx = idx };
		uint64_t size = 0;
		struct imap_search_msg sm = {
			.seq = (uint32_t)(i + 1), .uid = m->uid, .flags = m->flags,
			.recent = m->recent,
			.keywords = (const char *const *)c->box->keywords,
			.load = search_load_msg, .ctx = &sl,
		};
		/* the size costs a read when the name does not carry it */
		if (imap_search_needs_size(s) && maildir_msg_vsize(c->box, idx, &size) == 0)
			sm.size = size;
		if (imap_search_needs_date(s))
			sm.internal_date = maildir_msg_mtime(c->box, idx);
		sm.modseq = m->modseq;
		if (imap_search_match(s, &sm)) {
			if (esearch) {
				found[nfound] = uid ? m->uid : (uint32_t)(i + 1);
				found_modseq[nfound++] = m->modseq;
			} else {
				mime_buf_printf(&out, " %u", uid ? m->uid : (uint32_t)(i + 1));
			}
			if (m->modseq > max_modseq)
				max_modseq = m->modseq;
			matched = true;
		}
		rg_free(sl.msg);
	}
	/* RFC 7162: a MODSEQ search says the highest modseq it found */
	if (imap_search_needs_modseq(s))
		imap_condstore_enable(c);
	if (esearch) {
		esearch_out(&out, tag, uid, ret_opts, found, found_modseq, nfound,
			    imap_search_needs_modseq(s));
		rg_free(found);
		rg_free(found_modseq);
	} else if (imap_search_needs_modseq(s) && matched) {
		mime_buf_printf(&out, " (MODSEQ %" PRIu64 ")", max_modseq);
	}
	mime_buf_str(&out, "\r\n");
	imap_send_raw(c, out.data, out.len);
	mime_buf_free(&out);
	imap_search_free(s);
	imap_tagged(c, tag, "OK", "Search completed.");
	return true;
}

bool cmd_search(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	return cmd_search_common(c, tag, args, count, false);
}
