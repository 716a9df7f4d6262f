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

/* ---- FETCH ---- */

enum fetch_kind {
	FETCH_UID, FETCH_FLAGS, FETCH_SIZE, FETCH_INTERNALDATE, FETCH_BODY,
	FETCH_ENVELOPE, FETCH_BODYSTRUCTURE, FETCH_BODY_NOEXT, FETCH_MODSEQ,
	FETCH_BINARY, FETCH_BINARY_SIZE, /* RFC 3516 */
};

enum fetch_section {
	SEC_ALL, SEC_HEADER, SEC_TEXT, SEC_MIME, SEC_FIELDS, SEC_FIELDS_NOT,
};

struct fetch_item {
	enum fetch_kind kind;
	enum fetch_section section;
	bool peek;
	const char *reply_name; /* "RFC822", "RFC822.HEADER", ... or NULL: BODY[sec] */
	const char *section_text; /* inside the brackets, as sent */
	size_t section_len;
	size_t parts_len;         /* "1.2" at the start of section_text */
	const char *fields;       /* HEADER.FIELDS list, inside "(...)" */
	size_t fields_len;
	bool partial;
	uint64_t part_off, part_len;
};

static bool parse_partial(const char *p, struct fetch_item *item)
{
	if (*p == '\0')
		return true;
	char *end;
	if (*p != '<' || !isdigit((unsigned char)p[1]))
		return false;
	errno = 0;
	unsigned long long off = strtoull(p + 1, &end, 10);
	if (errno != 0 || *end != '.' || !isdigit((unsigned char)end[1]))
		return false;
	unsigned long long len = strtoull(end + 1, &end, 10);
	if (errno != 0 || *end != '>' || end[1] != '\0' || len == 0)
		return false;
	item->partial = true;
	item->part_off = off;
	item->part_len = len;
	return true;
}

static bool parse_body_item(const char *s, struct fetch_item *item)
{
	const char *open = strchr(s, '[');
	const char *close = open != NULL ? strrchr(open, ']') : NULL;
	if (close == NULL)
		return false;
	item->kind = FETCH_BODY;
	item->section_text = open + 1;
	item->section_len = (size_t)(close - open - 1);
	const char *sec = item->section_text;
	size_t len = item->section_len;
	/* part numbers first: "1.2.HEADER", "3", "1.MIME" */
	size_t p = 0;
	while (p < len && isdigit((unsigned char)sec[p])) {
		while (p < len && isdigit((unsigned char)sec[p]))
			p++;
		if (p < len && sec[p] == '.' && p + 1 < len) {
			p++;
			if (!isdigit((unsigned char)sec[p])) {
				p--;
				break;
			}
		}
	}
	item->parts_len = p;
	if (p > 0) {
		if (p == len) {
			item->section = SEC_ALL;
			return parse_partial(close + 1, item);
		}
		if (sec[p] != '.')
			return false;
		sec += p + 1;
		len -= p + 1;
	}
	if (len == 0 && p == 0) {
		item->section = SEC_ALL;
	} else if (len == 6 && strncasecmp(sec, "HEADER", 6) == 0) {
		item->section = SEC_HEADER;
	} else if (len == 4 && strncasecmp(sec, "TEXT", 4) == 0) {
		item->section = SEC_TEXT;
	} else if (len == 4 && strncasecmp(sec, "MIME", 4) == 0 && p > 0) {
		item->section = SEC_MIME;
	} else if (len > 13 && strncasecmp(sec, "HEADER.FIELDS", 13) == 0) {
		const char *q = sec + 13;
		item->section = SEC_FIELDS;
		if (strncasecmp(q, ".NOT", 4) == 0) {
			item->section = SEC_FIELDS_NOT;
			q += 4;
		}
		if (q[0] != ' ' || q[1] != '(' || close[-1] != ')' || close - 1 <= q + 2)
			return false;
		item->fields = q + 2;
		item->fields_len = (size_t)(close - 1 - item->fields);
	} else {
		return false;
	}
	return parse_partial(close + 1, item);
}

/* BINARY[1.2]<0.10>, BINARY.PEEK[..], BINARY.SIZE[..]: only part numbers
 * (RFC 3516 section-binary), no partial for the size */
static bool parse_binary_item(const char *s, struct fetch_item *item)
{
	bool size = strncasecmp(s, "BINARY.SIZE[", 12) == 0;
	bool peek = strncasecmp(s, "BINARY.PEEK[", 12) == 0;
	if ((!size && !peek && strncasecmp(s, "BINARY[", 7) != 0) || !parse_body_item(s, item) ||
	    item->section != SEC_ALL || item->parts_len != item->section_len || (size && item->partial))
		return false;
	item->kind = size ? FETCH_BINARY_SIZE : FETCH_BINARY;
	item->peek = size || peek;
	return true;
}

static bool parse_fetch_atom(const char *s, struct fetch_item *items, size_t *n, size_t max)
{
	static const struct {
		const char *name;
		enum fetch_kind kinds[5];
		size_t count;
	} macros[] = {
		{ "FAST", { FETCH_FLAGS, FETCH_INTERNALDATE, FETCH_SIZE }, 3 },
		{ "ALL", { FETCH_FLAGS, FETCH_INTERNALDATE, FETCH_SIZE, FETCH_ENVELOPE }, 4 },
		{ "FULL", { FETCH_FLAGS, FETCH_INTERNALDATE, FETCH_SIZE, FETCH_ENVELOPE, FETCH_BODY_NOEXT }, 5 },
	};
	if (*n + 5 > max)
		return false;
	for (size_t i = 0; i < sizeof(macros) / sizeof(macros[0]); i++) {
		if (strcasecmp(s, macros[i].name) != 0)
			continue;
		for (size_t k = 0; k < macros[i].count; k++)
			items[(*n)++] = (struct fetch_item){ .kind = macros[i].kinds[k] };
		return true;
	}
	struct fetch_item *item = &items[*n];
	memset(item, 0, sizeof(*item));
	if (strcasecmp(s, "UID") == 0) {
		item->kind = FETCH_UID;
	} else if (strcasecmp(s, "FLAGS") == 0) {
		item->kind = FETCH_FLAGS;
	} else if (strcasecmp(s, "RFC822.SIZE") == 0) {
		item->kind = FETCH_SIZE;
	} else if (strcasecmp(s, "INTERNALDATE") == 0) {
		item->kind = FETCH_INTERNALDATE;
	} else if (strcasecmp(s, "MODSEQ") == 0) {
		item->kind = FETCH_MODSEQ;
	} else if (strcasecmp(s, "ENVELOPE") == 0) {
		item->kind = FETCH_ENVELOPE;
	} else if (strcasecmp(s, "BODYSTRUCTURE") == 0) {
		item->kind = FETCH_BODYSTRUCTURE;
	} else if (strcasecmp(s, "BODY") == 0) {
		item->kind = FETCH_BODY_NOEXT;
	} else if (strcasecmp(s, "RFC822") == 0) {
		item->kind = FETCH_BODY;
		item->reply_name = "RFC822";
	} else if (strcasecmp(s, "RFC822.HEADER") == 0) {
		item->kind = FETCH_BODY;
		item->section = SEC_HEADER;
		item->peek = true;
		item->reply_name = "RFC822.HEADER";
	} else if (strcasecmp(s, "RFC822.TEXT") == 0) {
		item->kind = FETCH_BODY;
		item->section = SEC_TEXT;
		item->reply_name = "RFC822.TEXT";
	} else if (strncasecmp(s, "BODY.PEEK[", 10) == 0) {
		item->peek = true;
		if (!parse_body_item(s, item))
			return false;
	} else if (strncasecmp(s, "BODY[", 5) == 0) {
		if (!parse_body_item(s, item))
			return false;
	} else if (strncasecmp(s, "BINARY", 6) == 0 && (s[6] == '[' || s[6] == '.')) {
		if (!parse_binary_item(s, item))
			return false;
	} else {
		return false;
	}
	(*n)++;
	return true;
}

static bool field_listed(const struct fetch_item *item, const char *name, size_t name_len)
{
	const char *p = item->fields, *end = item->fields + item->fields_len;
	while (p < end) {
		while (p < end && *p == ' ')
			p++;
		const char *w = p;
		while (p < end && *p != ' ')
			p++;
		const char *ws = w, *we = p;
		if (we - ws >= 2 && *ws == '"' && we[-1] == '"') {
			ws++;
			we--;
		}
		if ((size_t)(we - ws) == name_len && strncasecmp(ws, name, name_len) == 0)
			return true;
	}
	return false;
}

/* HEADER.FIELDS(.NOT) of the header hdr[0..hdr_len) into a new allocation */
static char *filter_header(const struct fetch_item *item, const char *hdr, size_t hdr_len,
			   size_t *len_r)
{
	char *out = rg_malloc(hdr_len + 3);
	size_t o = 0, pos = 0;
	bool keep = false;
	while (pos < hdr_len) {
		const char *nl = memchr(hdr + pos, '\n', hdr_len - pos);
		size_t end = nl == NULL ? hdr_len : (size_t)(nl - hdr) + 1;
		const char *line = hdr + pos;
		size_t line_len = end - pos;
		if (line_len <= 2 && line[0] == '\r')
			break; /* the empty line ending the header */
		if (line[0] != ' ' && line[0] != '\t') {
			const char *colon = memchr(line, ':', line_len);
			size_t name_len = colon == NULL ? 0 : (size_t)(colon - line);
			while (name_len > 0 && (line[name_len - 1] == ' ' || line[name_len - 1] == '\t'))
				name_len--;
			bool listed = colon != NULL && field_listed(item, line, name_len);
			keep = item->section == SEC_FIELDS ? listed : (colon != NULL && !listed);
		}
		if (keep) {
			memcpy(out + o, line, line_len);
			o += line_len;
		}
		pos = end;
	}
	memcpy(out + o, "\r\n", 2);
	o += 2;
	*len_r = o;
	return out;
}

/* the bytes of item's section; may allocate into *tmp_r. The MIME tree is
 * parsed on the first request that needs it. */
static void section_bytes(const struct fetch_item *item, const char *msg, size_t len,
			  struct mime_part **tree, const char **data_r, size_t *len_r, char **tmp_r)
{
	*tmp_r = NULL;
	*data_r = "";
	*len_r = 0;
	/* the message whose header/text the section means */
	size_t hoff = 0, hlen = mime_header_size(msg, len), boff = hlen, blen = len - hlen;
	if (item->parts_len > 0) {
		if (*tree == NULL)
			*tree = mime_parse(msg, len);
		const struct mime_part *part = mime_find_part(*tree, item->section_text, item->parts_len);
		if (part == NULL)
			return;
		if (item->section == SEC_ALL) {
			*data_r = msg + part->body_off;
			*len_r = part->body_len;
			return;
		}
		if (item->section == SEC_MIME) {
			*data_r = msg + part->hdr_off;
			*len_r = part->hdr_len;
			return;
		}
		if (part->message == NULL)
			return; /* HEADER and TEXT only exist for message/rfc822 */
		hoff = part->message->hdr_off;
		hlen = part->message->hdr_len;
		boff = part->message->body_off;
		blen = part->message->body_len;
	}
	switch (item->section) {
	case SEC_ALL:
		*data_r = msg;
		*len_r = len;
		return;
	case SEC_HEADER:
		*data_r = msg + hoff;
		*len_r = hlen;
		return;
	case SEC_TEXT:
		*data_r = msg + boff;
		*len_r = blen;
		return;
	case SEC_MIME:
		return;
	case SEC_FIELDS:
	case SEC_FIELDS_NOT:
		*tmp_r = filter_header(item, msg + hoff, hlen, len_r);
		*data_r = *tmp_r;
		return;
	}
}

/* <off.len> of data[0..*len_r): what of it the partial covers */
static void partial_range(const struct fetch_item *item, const char **data, size_t *len_r)
{
	if (!item->partial)
		return;
	uint64_t off = item->part_off < *len_r ? item->part_off : *len_r;
	uint64_t n = *len_r - off < item->part_len ? *len_r - off : item->part_len;
	*data += off;
	*len_r = (size_t)n;
}

static void send_body_item(struct imap_client *c, const struct fetch_item *item,
			   const char *msg, size_t len, struct mime_part **tree)
{
	const char *data;
	size_t dlen;
	char *tmp;
	section_bytes(item, msg, len, tree, &data, &dlen, &tmp);
	partial_range(item, &data, &dlen);
	if (item->reply_name != NULL)
		imap_send_str(c, item->reply_name);
	else
		imap_send_fmt(c, "BODY[%.*s]", (int)item->section_len, item->section_text);
	if (item->partial)
		imap_send_fmt(c, "<%" PRIu64 ">", item->part_off);
	imap_send_fmt(c, " {%zu}\r\n", dlen);
	imap_send_raw(c, data, dlen);
	rg_free(tmp);
}

/* BINARY[section] of every binary item, decoded before the response
 * starts (a failure answers the whole FETCH with NO): 0, -ENOTSUP for an
 * unknown encoding, -EILSEQ for invalid data. BINARY[] is the message. */
static int binary_decode(const struct fetch_item *items, size_t nitems, const char *msg,
			 size_t len, struct mime_part **tree, struct mime_buf *bin)
{
	for (size_t i = 0; i < nitems; i++) {
		const struct fetch_item *item = &items[i];
		if (item->kind != FETCH_BINARY && item->kind != FETCH_BINARY_SIZE)
			continue;
		if (*tree == NULL)
			*tree = mime_parse(msg, len);
		const struct mime_part *part = item->parts_len == 0 ? *tree :
			mime_find_part(*tree, item->section_text, item->parts_len);
		if (part == NULL) {
			mime_buf_add(&bin[i], "", 0);
			continue;
		}
		int ret = mime_part_decode(part, msg, item->parts_len == 0, &bin[i]);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static void send_binary_item(struct imap_client *c, const struct fetch_item *item,
			     const struct mime_buf *bin)
{
	if (item->kind == FETCH_BINARY_SIZE) {
		imap_send_fmt(c, "BINARY.SIZE[%.*s] %zu", (int)item->section_len, item->section_text,
			      bin->len);
		return;
	}
	const char *data = bin->data;
	size_t dlen = bin->len;
	partial_range(item, &data, &dlen);
	imap_send_fmt(c, "BINARY[%.*s]", (int)item->section_len, item->section_text);
	if (item->partial)
		imap_send_fmt(c, "<%" PRIu64 ">", item->part_off);
	/* RFC 3516: data holding NUL goes as a literal8 */
	imap_send_fmt(c, " %s{%zu}\r\n", memchr(data, '\0', dlen) != NULL ? "~" : "", dlen);
	imap_send_raw(c, data, dlen);
}

/* 0, or -errno when the message could not be read (-ENOENT: expunged;
 * -ENOTSUP, -EILSEQ: a BINARY section could not be decoded) */
static int fetch_one(struct imap_client *c, size_t pos, const struct fetch_item *items,
		     size_t nitems, bool uid_cmd)
{
	size_t idx = c->map[pos];
	struct maildir_msg *m = &c->box->msgs[idx];
	bool want_body = false, sets_seen = false, has_flags = false, has_uid = false, has_modseq = false;
	bool has_binary = false;
	for (size_t i = 0; i < nitems; i++) {
		want_body |= items[i].kind >= FETCH_BODY && items[i].kind != FETCH_MODSEQ;
		sets_seen |= (items[i].kind == FETCH_BODY || items[i].kind == FETCH_BINARY) && !items[i].peek;
		has_flags |= items[i].kind == FETCH_FLAGS;
		has_uid |= items[i].kind == FETCH_UID;
		has_modseq |= items[i].kind == FETCH_MODSEQ;
		has_binary |= items[i].kind == FETCH_BINARY || items[i].kind == FETCH_BINARY_SIZE;
	}
	char *raw = NULL, *msg = NULL;
	size_t raw_len, len = 0;
	if (want_body) {
		int ret = maildir_msg_read(c->box, idx, &raw, &raw_len);
		if (ret < 0) {
			/* expunged by another session or program: skipped, the
			 * client hears of it at the next sync */
			if (ret == -ENOENT)
				log_info("%s uid %u vanished before FETCH", c->box_name, m->uid);
			else
				log_error("reading uid %u failed: %s", m->uid, strerror(-ret));
			return ret;
		}
		msg = maildir_to_crlf(raw, raw_len, &len);
		rg_free(raw);
	}
	struct mime_part *tree = NULL;
	struct mime_buf *bin = NULL;
	if (has_binary) {
		bin = rg_calloc(nitems, sizeof(*bin));
		int ret = binary_decode(items, nitems, msg, len, &tree, bin);
		if (ret < 0) {
			for (size_t i = 0; i < nitems; i++)
				mime_buf_free(&bin[i]);
			rg_free(bin);
			mime_free(tree);
			rg_free(msg);
			return ret;
		}
	}
	bool add_flags = false;
	if (sets_seen && !c->readonly && !maildir_msg_has_flag(m, MAILDIR_FLAG_SEEN)) {
		/* the implicit \\Seen is a change a CONDSTORE client must see:
		 * renamed and numbered under the folder's lock (as STORE) */
		int lock_fd = -1;
		if (c->condstore && maildir_lock(c->box, &lock_fd) < 0)
			lock_fd = -1;
		int ret = maildir_msg_change_flags(c->box, idx, '+', "S");
		if (ret < 0 && ret != -ENOENT)
			log_error("setting \\Seen on uid %u failed: %s", m->uid, strerror(-ret));
		add_flags = ret >= 0 && !has_flags;
		if (ret == 1 && lock_fd >= 0) {
			uint64_t before = c->box->highest_modseq;
			if (maildir_modseq_commit_locked(c->box, &idx, 1) == 0)
				imap_modseq_committed(c, before);
		}
		maildir_unlock(lock_fd);
	}

	imap_send_fmt(c, "* %zu FETCH (", pos + 1);
	bool first = true;
	/* with QRESYNC every FETCH response names its UID (RFC 7162 3.2.4) */
	if ((uid_cmd || c->qresync) && !has_uid) {
		imap_send_fmt(c, "UID %u", m->uid);
		first = false;
	}
	char buf[FLAGS_BUF];
	struct mime_buf mb = { 0 };
	for (size_t i = 0; i < nitems; i++) {
		if (!first)
			imap_send_str(c, " ");
		first = false;
		switch (items[i].kind) {
		case FETCH_UID:
			imap_send_fmt(c, "UID %u", m->uid);
			break;
		case FETCH_FLAGS:
			imap_flags_str(c->box, m, buf, sizeof(buf));
			imap_send_fmt(c, "FLAGS (%s)", buf);
			break;
		case FETCH_SIZE: {
			uint64_t vsize = 0;
			if (maildir_msg_vsize(c->box, idx, &vsize) < 0)
				vsize = 0;
			imap_send_fmt(c, "RFC822.SIZE %" PRIu64, vsize);
			break;
		}
		case FETCH_INTERNALDATE: {
			struct tm tm;
			time_t date = maildir_msg_mtime(c->box, idx);
			localtime_r(&date, &tm);
			strftime(buf, sizeof(buf), "%e-%b-%Y %H:%M:%S %z", &tm);
			imap_send_fmt(c, "INTERNALDATE \"%s\"", buf);
			break;
		}
		case FETCH_BODY:
			send_body_item(c, &items[i], msg, len, &tree);
			break;
		case FETCH_MODSEQ:
			imap_send_fmt(c, "MODSEQ (%" PRIu64 ")", m->modseq);
			break;
		case FETCH_BINARY:
		case FETCH_BINARY_SIZE:
			send_binary_item(c, &items[i], &bin[i]);
			break;
		case FETCH_ENVELOPE:
			mb.len = 0;
			mime_buf_str(&mb, "ENVELOPE ");
			mime_envelope(msg, mime_header_size(msg, len), &mb);
			imap_send_raw(c, mb.data, mb.len);
			break;
		case FETCH_BODYSTRUCTURE:
		case FETCH_BODY_NOEXT:
			if (tree == NULL)
				tree = mime_parse(msg, len);
			mb.len = 0;
			mime_buf_str(&mb, items[i].kind == FETCH_BODY_NOEXT ? "BODY " : "BODYSTRUCTURE ");
			mime_bodystructure(tree, msg, items[i].kind == FETCH_BODYSTRUCTURE, &mb);
			imap_send_raw(c, mb.data, mb.len);
			break;
		}
	}
	if (add_flags) {
		imap_flags_str(c->box, m, buf, sizeof(buf));
		imap_send_fmt(c, " FLAGS (%s)", buf);
	}
	if (c->condstore && (has_flags || add_flags) && !has_modseq)
		imap_send_fmt(c, " MODSEQ (%" PRIu64 ")", m->modseq);
	imap_send_str(c, ")\r\n");
	mime_buf_free(&mb);
	if (bin != NULL) {
		for (size_t i = 0; i < nitems; i++)
			mime_buf_free(&bin[i]);
		rg_free(bin);
	}
	mime_free(tree);
	rg_free(msg);
	return 0;
}

bool cmd_fetch_common(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args,
		      size_t count, bool uid)
{
	struct imap_fetch_modifiers mods = { 0 };
	if (count == 3) {
		/* RFC 7162: (CHANGEDSINCE <modseq> [VANISHED]) */
		const char *merr;
		char text[128];
		if (!imap_fetch_modifiers_parse(&args[2], &mods, &merr)) {
			snprintf(text, sizeof(text), "Error in IMAP command %sFETCH: %s", uid ? "UID " : "", merr);
			return imap_bad(c, tag, text);
		}
		/* VANISHED: UID FETCH after ENABLE QRESYNC only (3.2.6) */
		if (mods.vanished && (!uid || !c->qresync)) {
			snprintf(text, sizeof(text), "Error in IMAP command %sFETCH: %s", uid ? "UID " : "",
				 uid ? "QRESYNC not enabled." : "VANISHED only with UID FETCH.");
			return imap_bad(c, tag, text);
		}
		if (mods.changedsince)
			imap_condstore_enable(c);
		count = 2;
	}
	uint64_t changedsince = mods.since;
	bool has_changedsince = mods.changedsince;
	if (count != 2 || args[0].type != IMAP_CMD_ARG_ATOM)
		return imap_bad(c, tag, "Error in IMAP command FETCH: Invalid arguments.");
	const struct imap_cmd_arg *list = &args[1];
	size_t nlist = 1;
	if (args[1].type == IMAP_CMD_ARG_LIST) {
		list = args[1].list;
		nlist = args[1].count;
		if (nlist == 0)
			return imap_bad(c, tag, "Error in IMAP command FETCH: Invalid arguments.");
	}
	size_t max = 5 * nlist + 6; /* FULL is five items; CHANGEDSINCE adds MODSEQ */
	struct fetch_item *items = rg_calloc(max, sizeof(*items));
	size_t nitems = 0;
	if (has_changedsince)
		items[nitems++].kind = FETCH_MODSEQ;
	for (size_t i = 0; i < nlist; i++) {
		if (list[i].type != IMAP_CMD_ARG_ATOM || !parse_fetch_atom(list[i].str, items, &nitems, max)) {
			char safe[48];
			imap_sanitize(list[i].type == IMAP_CMD_ARG_LIST ? "(" : list[i].str, safe);
			char text[128];
			snprintf(text, sizeof(text), "Error in IMAP command FETCH: Unknown parameter %s", safe);
			rg_free(items);
			return imap_bad(c, tag, text);
		}
	}
	size_t *pos, npos;
	const char *error;
	if (!imap_seqset_resolve(c, args[0].str, uid, &pos, &npos, &error)) {
		rg_free(items);
		char text[128];
		snprintf(text, sizeof(text), "Error in IMAP command %sFETCH: %s", uid ? "UID " : "", error);
		return imap_bad(c, tag, text);
	}
	bool expunged = false, unreadable = false;
	int cte_error = 0;
	for (size_t i = 0; i < nitems; i++) {
		if (items[i].kind == FETCH_MODSEQ)
			imap_condstore_enable(c);
	}
	if (mods.vanished) {
		/* expunged UIDs of the set, before the FETCHes (RFC 7162 3.2.6);
		 * "*" here reaches past the last message, which may be gone */
		struct imap_seq_range *set;
		size_t nset;
		if (imap_seqset_parse(args[0].str, UINT32_MAX, &set, &nset)) {
			imap_send_vanished_earlier(c, changedsince, set, nset, 0);
			rg_free(set);
		}
	}
	for (size_t i = 0; i < npos; i++) {
		if (has_changedsince && c->box->msgs[c->map[pos[i]]].modseq <= changedsince)
			continue;
		int ret = fetch_one(c, pos[i], items, nitems, uid);
		if (ret == -ENOTSUP || ret == -EILSEQ) {
			cte_error = ret;
			break;
		}
		expunged |= ret == -ENOENT;
		unreadable |= ret < 0 && ret != -ENOENT;
	}
	/* an mbox writes the implicit \Seen now (failure logged by it) */
	(void)maildir_flush(c->box);
	rg_free(pos);
	rg_free(items);
	imap_modseq_hold_flush(c);
	/* RFC 5530 3: another session's EXPUNGE took some of them */
	if (cte_error == -ENOTSUP)
		imap_tagged(c, tag, "NO", "[UNKNOWN-CTE] Unknown Content-Transfer-Encoding.");
	else if (cte_error == -EILSEQ)
		imap_tagged(c, tag, "NO", "[UNKNOWN-CTE] Invalid data in MIME part");
	else if (unreadable)
		imap_tagged(c, tag, "NO", "Some messages could not be FETCHed (unreadable).");
	else if (expunged)
		imap_tagged(c, tag, "NO", "[EXPUNGEISSUED] Some of the requested messages no longer exist.");
	else
		imap_tagged(c, tag, "OK", "Fetch completed.");
	return true;
}

bool cmd_fetch(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	return cmd_fetch_common(c, tag, args, count, false);
}
