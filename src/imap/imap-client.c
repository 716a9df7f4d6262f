#include "imap/imap-client.h"

#include "imap/imap-cmd-parser.h"
#include "lib/alloc.h"
#include "lib/log.h"
#include "mail/maildir.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define IMAP_ERR_INTERNAL "[SERVERBUG] Internal error occurred. Refer to server log for more information."

enum imap_state { STATE_AUTH, STATE_SELECTED, STATE_LOGOUT };

struct imap_client {
	imap_send_fn *send;
	void *ctx;
	char *mail_path;
	struct imap_cmd_parser *parser;
	enum imap_state state;
	bool done;
	unsigned int bad_commands;

	/* selected mailbox: sequence number n is box->msgs[map[n - 1]] */
	struct maildir *box;
	bool readonly;
	size_t *map;
	size_t count;

	/* IDLE: waiting for "DONE"; idle_line holds its first bytes */
	bool idling, idle_overflow;
	size_t idle_len;
	char idle_line[8];
	char idle_tag[IMAP_MAX_TAG + 1];
};

/* ---- output ---- */

static void send_raw(struct imap_client *c, const void *data, size_t len)
{
	c->send(c->ctx, data, len);
}

static void send_str(struct imap_client *c, const char *s)
{
	send_raw(c, s, strlen(s));
}

static void send_fmt(struct imap_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void send_fmt(struct imap_client *c, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf)) {
		/* never cut a line in the middle of its CRLF */
		char *big = rg_malloc((size_t)n + 1);
		va_start(ap, fmt);
		vsnprintf(big, (size_t)n + 1, fmt, ap);
		va_end(ap);
		send_raw(c, big, (size_t)n);
		rg_free(big);
		return;
	}
	send_raw(c, buf, (size_t)n);
}

static void tagged(struct imap_client *c, const char *tag, const char *status, const char *text)
{
	send_fmt(c, "%s %s %s\r\n", tag, status, text);
}

/* a client string fit to echo: printable, at most 40 bytes */
static void sanitize(const char *in, char out[48])
{
	size_t n = 0;
	for (; *in != '\0' && n < 40; in++)
		out[n++] = (unsigned char)*in >= 0x20 && (unsigned char)*in < 0x7f ? *in : '?';
	if (*in != '\0') {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
}

static bool bad(struct imap_client *c, const char *tag, const char *text)
{
	tagged(c, tag, "BAD", text);
	if (++c->bad_commands >= IMAP_MAX_BAD_COMMANDS) {
		send_str(c, "* BYE Too many invalid IMAP commands.\r\n");
		c->done = true;
	}
	return false;
}

/* ---- flags ---- */

static const struct {
	char letter;
	const char *name;
} imap_flags[] = {
	{ MAILDIR_FLAG_REPLIED, "\\Answered" }, { MAILDIR_FLAG_FLAGGED, "\\Flagged" },
	{ MAILDIR_FLAG_TRASHED, "\\Deleted" },  { MAILDIR_FLAG_SEEN, "\\Seen" },
	{ MAILDIR_FLAG_DRAFT, "\\Draft" },
};
#define IMAP_FLAG_COUNT (sizeof(imap_flags) / sizeof(imap_flags[0]))

static void flags_str(const struct maildir_msg *m, char *out, size_t size)
{
	size_t o = 0;
	out[0] = '\0';
	for (size_t i = 0; i < IMAP_FLAG_COUNT; i++) {
		if (!maildir_msg_has_flag(m, imap_flags[i].letter))
			continue;
		o += (size_t)snprintf(out + o, size - o, "%s%s", o == 0 ? "" : " ", imap_flags[i].name);
		if (o >= size)
			break;
	}
}

static char flag_letter(const char *name)
{
	for (size_t i = 0; i < IMAP_FLAG_COUNT; i++) {
		if (strcasecmp(imap_flags[i].name, name) == 0)
			return imap_flags[i].letter;
	}
	return '\0';
}

/* ---- mailbox ---- */

static void mailbox_close(struct imap_client *c)
{
	maildir_close(c->box);
	c->box = NULL;
	rg_free(c->map);
	c->map = NULL;
	c->count = 0;
	c->state = STATE_AUTH;
}

static bool is_inbox(const char *name)
{
	return name != NULL && strcasecmp(name, "INBOX") == 0;
}

/* remove the view's entries whose files we unlinked, telling the client */
static void send_expunges(struct imap_client *c, bool silent)
{
	size_t kept = 0;
	for (size_t i = 0; i < c->count; i++) {
		if (c->box->msgs[c->map[i]].expunged) {
			if (!silent)
				send_fmt(c, "* %zu EXPUNGE\r\n", kept + 1);
			continue;
		}
		c->map[kept++] = c->map[i];
	}
	c->count = kept;
}

static int expunge_deleted(struct imap_client *c)
{
	int ret = 0;
	for (size_t i = 0; i < c->count; i++) {
		size_t idx = c->map[i];
		if (!maildir_msg_has_flag(&c->box->msgs[idx], MAILDIR_FLAG_TRASHED))
			continue;
		int r = maildir_msg_delete(c->box, idx);
		if (r < 0) {
			log_error("expunging uid %u failed: %s", c->box->msgs[idx].uid, strerror(-r));
			ret = r;
		}
	}
	return ret;
}

/* ---- sequence sets ---- */

struct seq_range {
	uint32_t lo, hi;
};

static int cmp_range(const void *a, const void *b)
{
	const struct seq_range *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static bool seq_number(const char **p, uint32_t star, uint32_t *num_r)
{
	if (**p == '*') {
		(*p)++;
		*num_r = star;
		return true;
	}
	if (**p < '1' || **p > '9')
		return false;
	uint64_t n = 0;
	while (isdigit((unsigned char)**p)) {
		n = n * 10 + (uint64_t)(**p - '0');
		if (n > UINT32_MAX)
			return false;
		(*p)++;
	}
	*num_r = (uint32_t)n;
	return true;
}

/* Parse "1:3,5,7:*" into sorted, merged ranges. star is what "*" means. */
static bool seqset_parse(const char *str, uint32_t star, struct seq_range **ranges_r, size_t *count_r)
{
	size_t alloc = 1;
	for (const char *p = str; *p != '\0'; p++)
		alloc += *p == ',';
	struct seq_range *r = rg_malloc(alloc * sizeof(*r));
	size_t n = 0;
	const char *p = str;
	for (;;) {
		uint32_t a, b;
		if (!seq_number(&p, star, &a))
			goto fail;
		b = a;
		if (*p == ':') {
			p++;
			if (!seq_number(&p, star, &b))
				goto fail;
		}
		r[n].lo = a < b ? a : b;
		r[n].hi = a < b ? b : a;
		n++;
		if (*p == '\0')
			break;
		if (*p++ != ',')
			goto fail;
	}
	qsort(r, n, sizeof(*r), cmp_range);
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		if (m > 0 && r[i].lo <= (uint64_t)r[m - 1].hi + 1) {
			if (r[i].hi > r[m - 1].hi)
				r[m - 1].hi = r[i].hi;
		} else {
			r[m++] = r[i];
		}
	}
	*ranges_r = r;
	*count_r = m;
	return true;
fail:
	rg_free(r);
	return false;
}

static bool seqset_contains(const struct seq_range *r, size_t count, uint32_t n)
{
	size_t lo = 0, hi = count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (n < r[mid].lo)
			hi = mid;
		else if (n > r[mid].hi)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

/* The view positions (0-based) a set names, in order. For sequence
 * numbers, one past the mailbox is an error, as in Dovecot. */
static bool seqset_resolve(struct imap_client *c, const char *set, bool uid,
			   size_t **pos_r, size_t *count_r, const char **error_r)
{
	uint32_t star = 0;
	if (uid)
		star = c->count > 0 ? c->box->msgs[c->map[c->count - 1]].uid : 0;
	else
		star = (uint32_t)c->count;
	struct seq_range *r;
	size_t nr;
	if (set == NULL || !seqset_parse(set, star, &r, &nr)) {
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
		if (seqset_contains(r, nr, key))
			pos[n++] = i;
	}
	rg_free(r);
	*pos_r = pos;
	*count_r = n;
	return true;
}

/* ---- FETCH ---- */

enum fetch_kind {
	FETCH_UID, FETCH_FLAGS, FETCH_SIZE, FETCH_INTERNALDATE, FETCH_BODY,
};

enum fetch_section {
	SEC_ALL, SEC_HEADER, SEC_TEXT, SEC_FIELDS, SEC_FIELDS_NOT,
};

struct fetch_item {
	enum fetch_kind kind;
	enum fetch_section section;
	bool peek;
	const char *reply_name; /* "RFC822", "RFC822.HEADER", ... or NULL: BODY[sec] */
	const char *section_text; /* inside the brackets, as sent */
	size_t section_len;
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
	if (len == 0) {
		item->section = SEC_ALL;
	} else if (len == 6 && strncasecmp(sec, "HEADER", 6) == 0) {
		item->section = SEC_HEADER;
	} else if (len == 4 && strncasecmp(sec, "TEXT", 4) == 0) {
		item->section = SEC_TEXT;
	} else if (strncasecmp(sec, "HEADER.FIELDS", 13) == 0) {
		const char *p = sec + 13;
		item->section = SEC_FIELDS;
		if (strncasecmp(p, ".NOT", 4) == 0) {
			item->section = SEC_FIELDS_NOT;
			p += 4;
		}
		if (p[0] != ' ' || p[1] != '(' || close[-1] != ')' || close - 1 <= p + 2)
			return false;
		item->fields = p + 2;
		item->fields_len = (size_t)(close - 1 - item->fields);
	} else {
		return false;
	}
	return parse_partial(close + 1, item);
}

static bool parse_fetch_atom(const char *s, struct fetch_item *items, size_t *n, size_t max)
{
	if (*n + 3 > max)
		return false;
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
	} else if (strcasecmp(s, "FAST") == 0) {
		items[(*n)++].kind = FETCH_FLAGS;
		items[*n] = (struct fetch_item){ .kind = FETCH_INTERNALDATE };
		(*n)++;
		items[*n] = (struct fetch_item){ .kind = FETCH_SIZE };
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

/* header of a CRLF message: up to and including the empty line */
static size_t header_size(const char *msg, size_t len)
{
	if (len >= 2 && msg[0] == '\r' && msg[1] == '\n')
		return 2;
	const char *p = memmem(msg, len, "\r\n\r\n", 4);
	return p == NULL ? len : (size_t)(p - msg) + 4;
}

/* the bytes of item's section; may allocate into *tmp_r */
static void section_bytes(const struct fetch_item *item, const char *msg, size_t len,
			  const char **data_r, size_t *len_r, char **tmp_r)
{
	size_t hdr = header_size(msg, len);
	*tmp_r = NULL;
	switch (item->section) {
	case SEC_ALL:
		*data_r = msg;
		*len_r = len;
		return;
	case SEC_HEADER:
		*data_r = msg;
		*len_r = hdr;
		return;
	case SEC_TEXT:
		*data_r = msg + hdr;
		*len_r = len - hdr;
		return;
	case SEC_FIELDS:
	case SEC_FIELDS_NOT:
		break;
	}
	char *out = rg_malloc(hdr + 3);
	size_t o = 0, pos = 0;
	bool keep = false;
	while (pos < hdr) {
		const char *nl = memchr(msg + pos, '\n', hdr - pos);
		size_t end = nl == NULL ? hdr : (size_t)(nl - msg) + 1;
		const char *line = msg + pos;
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
	*tmp_r = out;
	*data_r = out;
	*len_r = o;
}

static void send_body_item(struct imap_client *c, const struct fetch_item *item,
			   const char *msg, size_t len)
{
	const char *data;
	size_t dlen;
	char *tmp;
	section_bytes(item, msg, len, &data, &dlen, &tmp);
	if (item->partial) {
		uint64_t off = item->part_off < dlen ? item->part_off : dlen;
		uint64_t n = dlen - off < item->part_len ? dlen - off : item->part_len;
		data += off;
		dlen = (size_t)n;
	}
	if (item->reply_name != NULL)
		send_str(c, item->reply_name);
	else
		send_fmt(c, "BODY[%.*s]", (int)item->section_len, item->section_text);
	if (item->partial)
		send_fmt(c, "<%" PRIu64 ">", item->part_off);
	send_fmt(c, " {%zu}\r\n", dlen);
	send_raw(c, data, dlen);
	rg_free(tmp);
}

static bool fetch_one(struct imap_client *c, size_t pos, const struct fetch_item *items,
		      size_t nitems, bool uid_cmd)
{
	size_t idx = c->map[pos];
	struct maildir_msg *m = &c->box->msgs[idx];
	bool want_body = false, sets_seen = false, has_flags = false, has_uid = false;
	for (size_t i = 0; i < nitems; i++) {
		want_body |= items[i].kind == FETCH_BODY;
		sets_seen |= items[i].kind == FETCH_BODY && !items[i].peek;
		has_flags |= items[i].kind == FETCH_FLAGS;
		has_uid |= items[i].kind == FETCH_UID;
	}
	char *raw = NULL, *msg = NULL;
	size_t raw_len, len = 0;
	if (want_body) {
		int ret = maildir_msg_read(c->box, idx, &raw, &raw_len);
		if (ret < 0) {
			if (ret != -ENOENT)
				log_error("reading uid %u failed: %s", m->uid, strerror(-ret));
			return false;
		}
		msg = maildir_to_crlf(raw, raw_len, &len);
		rg_free(raw);
	}
	bool add_flags = false;
	if (sets_seen && !c->readonly && !maildir_msg_has_flag(m, MAILDIR_FLAG_SEEN)) {
		char flags[MAILDIR_MAX_FLAGS + 2];
		snprintf(flags, sizeof(flags), "%sS", m->flags);
		int ret = maildir_msg_set_flags(c->box, idx, flags);
		if (ret < 0 && ret != -ENOENT)
			log_error("setting \\Seen on uid %u failed: %s", m->uid, strerror(-ret));
		add_flags = ret == 0 && !has_flags;
	}

	send_fmt(c, "* %zu FETCH (", pos + 1);
	bool first = true;
	if (uid_cmd && !has_uid) {
		send_fmt(c, "UID %u", m->uid);
		first = false;
	}
	char buf[128];
	for (size_t i = 0; i < nitems; i++) {
		if (!first)
			send_str(c, " ");
		first = false;
		switch (items[i].kind) {
		case FETCH_UID:
			send_fmt(c, "UID %u", m->uid);
			break;
		case FETCH_FLAGS:
			flags_str(m, buf, sizeof(buf));
			send_fmt(c, "FLAGS (%s)", buf);
			break;
		case FETCH_SIZE: {
			uint64_t vsize = 0;
			if (maildir_msg_vsize(c->box, idx, &vsize) < 0)
				vsize = 0;
			send_fmt(c, "RFC822.SIZE %" PRIu64, vsize);
			break;
		}
		case FETCH_INTERNALDATE: {
			struct tm tm;
			localtime_r(&m->mtime, &tm);
			strftime(buf, sizeof(buf), "%e-%b-%Y %H:%M:%S %z", &tm);
			send_fmt(c, "INTERNALDATE \"%s\"", buf);
			break;
		}
		case FETCH_BODY:
			send_body_item(c, &items[i], msg, len);
			break;
		}
	}
	if (add_flags) {
		flags_str(m, buf, sizeof(buf));
		send_fmt(c, " FLAGS (%s)", buf);
	}
	send_str(c, ")\r\n");
	rg_free(msg);
	return true;
}

static bool cmd_fetch_common(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args,
			     size_t count, bool uid)
{
	if (count != 2 || args[0].type != IMAP_CMD_ARG_ATOM)
		return bad(c, tag, "Error in IMAP command FETCH: Invalid arguments.");
	const struct imap_cmd_arg *list = &args[1];
	size_t nlist = 1;
	if (args[1].type == IMAP_CMD_ARG_LIST) {
		list = args[1].list;
		nlist = args[1].count;
		if (nlist == 0)
			return bad(c, tag, "Error in IMAP command FETCH: Invalid arguments.");
	}
	size_t max = 3 * nlist + 3; /* FAST is three items */
	struct fetch_item *items = rg_calloc(max, sizeof(*items));
	size_t nitems = 0;
	for (size_t i = 0; i < nlist; i++) {
		if (list[i].type != IMAP_CMD_ARG_ATOM || !parse_fetch_atom(list[i].str, items, &nitems, max)) {
			char safe[48];
			sanitize(list[i].type == IMAP_CMD_ARG_LIST ? "(" : list[i].str, safe);
			char text[128];
			snprintf(text, sizeof(text), "Error in IMAP command FETCH: Unknown parameter %s", safe);
			rg_free(items);
			return bad(c, tag, text);
		}
	}
	size_t *pos, npos;
	const char *error;
	if (!seqset_resolve(c, args[0].str, uid, &pos, &npos, &error)) {
		rg_free(items);
		char text[128];
		snprintf(text, sizeof(text), "Error in IMAP command %sFETCH: %s", uid ? "UID " : "", error);
		return bad(c, tag, text);
	}
	bool all_ok = true;
	for (size_t i = 0; i < npos; i++)
		all_ok &= fetch_one(c, pos[i], items, nitems, uid);
	rg_free(pos);
	rg_free(items);
	if (all_ok)
		tagged(c, tag, "OK", "Fetch completed.");
	else
		tagged(c, tag, "NO", "Some messages could not be FETCHed (expunged or unreadable).");
	return true;
}

/* ---- STORE ---- */

static bool cmd_store_common(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args,
			     size_t count, bool uid)
{
	const char *cmd = uid ? "UID STORE" : "STORE";
	char text[160];
	if (count != 3 || args[0].type != IMAP_CMD_ARG_ATOM || args[1].type != IMAP_CMD_ARG_ATOM) {
		snprintf(text, sizeof(text), "Error in IMAP command %s: Invalid arguments.", cmd);
		return bad(c, tag, text);
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
		return bad(c, tag, text);
	}
	const struct imap_cmd_arg *fl = args[2].type == IMAP_CMD_ARG_LIST ? args[2].list : &args[2];
	size_t nfl = args[2].type == IMAP_CMD_ARG_LIST ? args[2].count : 1;
	char letters[IMAP_FLAG_COUNT + 1];
	size_t nl = 0;
	for (size_t i = 0; i < nfl; i++) {
		if (fl[i].type != IMAP_CMD_ARG_ATOM) {
			snprintf(text, sizeof(text), "Error in IMAP command %s: Invalid flags.", cmd);
			return bad(c, tag, text);
		}
		char l = flag_letter(fl[i].str);
		if (l == '\0') {
			if (fl[i].str[0] == '\\') {
				snprintf(text, sizeof(text), "Error in IMAP command %s: Invalid system flag.", cmd);
				return bad(c, tag, text);
			}
			tagged(c, tag, "NO", "[CANNOT] Keywords are not supported.");
			return true;
		}
		if (memchr(letters, l, nl) == NULL && nl < IMAP_FLAG_COUNT)
			letters[nl++] = l;
	}
	letters[nl] = '\0';
	if (c->readonly) {
		tagged(c, tag, "NO", "Mailbox is read-only.");
		return true;
	}
	size_t *pos, npos;
	const char *error;
	if (!seqset_resolve(c, args[0].str, uid, &pos, &npos, &error)) {
		snprintf(text, sizeof(text), "Error in IMAP command %s: %s", cmd, error);
		return bad(c, tag, text);
	}
	bool failed = false;
	for (size_t i = 0; i < npos; i++) {
		size_t idx = c->map[pos[i]];
		struct maildir_msg *m = &c->box->msgs[idx];
		char flags[MAILDIR_MAX_FLAGS + IMAP_FLAG_COUNT + 1];
		size_t o = 0;
		if (mode != '=') {
			/* keep what this change does not touch, keywords too */
			for (const char *f = m->flags; *f != '\0'; f++) {
				if (mode == '-' && strchr(letters, *f) != NULL)
					continue;
				flags[o++] = *f;
			}
		} else {
			for (const char *f = m->flags; *f != '\0'; f++) {
				if (islower((unsigned char)*f) || *f == MAILDIR_FLAG_PASSED)
					flags[o++] = *f;
			}
		}
		if (mode != '-') {
			memcpy(flags + o, letters, nl);
			o += nl;
		}
		flags[o] = '\0';
		int ret = maildir_msg_set_flags(c->box, idx, flags);
		if (ret < 0) {
			if (ret != -ENOENT)
				log_error("storing flags on uid %u failed: %s", m->uid, strerror(-ret));
			failed = true;
			continue;
		}
		if (!silent) {
			char buf[128];
			flags_str(m, buf, sizeof(buf));
			if (uid)
				send_fmt(c, "* %zu FETCH (UID %u FLAGS (%s))\r\n", pos[i] + 1, m->uid, buf);
			else
				send_fmt(c, "* %zu FETCH (FLAGS (%s))\r\n", pos[i] + 1, buf);
		}
	}
	rg_free(pos);
	if (failed)
		tagged(c, tag, "NO", "Some messages could not be updated (expunged?).");
	else
		tagged(c, tag, "OK", "Store completed.");
	return true;
}

/* ---- commands ---- */

typedef bool imap_cmd_fn(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args,
			 size_t count);

static bool cmd_capability(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	(void)args;
	(void)count;
	send_str(c, "* CAPABILITY " IMAP_CAPABILITY "\r\n");
	tagged(c, tag, "OK", "Capability completed.");
	return true;
}

static bool cmd_noop(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	(void)args;
	(void)count;
	tagged(c, tag, "OK", "NOOP completed.");
	return true;
}

static bool cmd_logout(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	(void)args;
	(void)count;
	send_str(c, "* BYE Logging out\r\n");
	tagged(c, tag, "OK", "Logout completed.");
	c->state = STATE_LOGOUT;
	c->done = true;
	return true;
}

static bool cmd_id(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	if (count != 1 || (args[0].type != IMAP_CMD_ARG_LIST &&
			   (args[0].type != IMAP_CMD_ARG_ATOM || strcasecmp(args[0].str, "NIL") != 0)))
		return bad(c, tag, "Error in IMAP command ID: Invalid arguments.");
	send_str(c, "* ID (\"name\" \"ringgate\")\r\n");
	tagged(c, tag, "OK", "ID completed.");
	return true;
}

static bool cmd_enable(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	(void)args;
	if (count == 0)
		return bad(c, tag, "Error in IMAP command ENABLE: Missing arguments.");
	/* no extension we have needs enabling */
	send_str(c, "* ENABLED\r\n");
	tagged(c, tag, "OK", "Enabled.");
	return true;
}

static bool cmd_select_common(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args,
			      size_t count, bool examine)
{
	const char *cmd = examine ? "EXAMINE" : "SELECT";
	char text[160];
	const char *name = count >= 1 ? imap_cmd_arg_astring(&args[0]) : NULL;
	if (count < 1 || name == NULL) {
		snprintf(text, sizeof(text), "Error in IMAP command %s: Invalid arguments.", cmd);
		return bad(c, tag, text);
	}
	if (c->box != NULL)
		mailbox_close(c);
	if (!is_inbox(name)) {
		char safe[48];
		sanitize(name, safe);
		snprintf(text, sizeof(text), "Mailbox doesn't exist: %s", safe);
		tagged(c, tag, "NO", text);
		return true;
	}
	const char *error;
	int ret = maildir_open(c->mail_path, !examine, &c->box, &error);
	if (ret < 0) {
		log_error("opening INBOX %s failed: %s: %s", c->mail_path, error, strerror(-ret));
		tagged(c, tag, "NO", IMAP_ERR_INTERNAL);
		return true;
	}
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
	send_str(c, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n");
	if (examine)
		send_str(c, "* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n");
	else
		send_str(c, "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)] Flags permitted.\r\n");
	send_fmt(c, "* %zu EXISTS\r\n* 0 RECENT\r\n", c->count);
	if (first_unseen > 0)
		send_fmt(c, "* OK [UNSEEN %zu] First unseen.\r\n", first_unseen);
	send_fmt(c, "* OK [UIDVALIDITY %u] UIDs valid\r\n", c->box->uidvalidity);
	send_fmt(c, "* OK [UIDNEXT %u] Predicted next UID\r\n", c->box->uidnext);
	tagged(c, tag, "OK", examine ? "[READ-ONLY] Examine completed." : "[READ-WRITE] Select completed.");
	return true;
}

static bool cmd_select(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	return cmd_select_common(c, tag, args, count, false);
}

static bool cmd_examine(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	return cmd_select_common(c, tag, args, count, true);
}

/* IMAP LIST wildcard match: '*' anything, '%' anything but the separator */
static bool list_match(const char *pattern, const char *name)
{
	if (*pattern == '\0')
		return *name == '\0';
	if (*pattern == '*' || *pattern == '%') {
		for (const char *n = name;; n++) {
			if (list_match(pattern + 1, n))
				return true;
			if (*n == '\0' || (*pattern == '%' && *n == '.'))
				return false;
		}
	}
	return toupper((unsigned char)*pattern) == toupper((unsigned char)*name) &&
	       list_match(pattern + 1, name + 1);
}

static bool cmd_list_common(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args,
			    size_t count, bool lsub)
{
	const char *cmd = lsub ? "LSUB" : "LIST";
	const char *ref = count == 2 ? imap_cmd_arg_astring(&args[0]) : NULL;
	const char *pattern = count == 2 ? imap_cmd_arg_astring(&args[1]) : NULL;
	char text[128];
	if (ref == NULL || pattern == NULL) {
		snprintf(text, sizeof(text), "Error in IMAP command %s: Invalid arguments.", cmd);
		return bad(c, tag, text);
	}
	if (*pattern == '\0' && !lsub) {
		send_str(c, "* LIST (\\Noselect) \".\" \"\"\r\n");
	} else if (strlen(ref) + strlen(pattern) < 256) {
		char full[256];
		size_t rlen = strlen(ref), plen = strlen(pattern);
		memcpy(full, ref, rlen);
		memcpy(full + rlen, pattern, plen + 1);
		/* depth-bounded by the 256 bytes; only INBOX exists for now */
		if (list_match(full, "INBOX"))
			send_fmt(c, "* %s (\\HasNoChildren) \".\" INBOX\r\n", cmd);
	}
	snprintf(text, sizeof(text), "%s completed.", lsub ? "Lsub" : "List");
	tagged(c, tag, "OK", text);
	return true;
}

static bool cmd_list(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	return cmd_list_common(c, tag, args, count, false);
}

static bool cmd_lsub(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	return cmd_list_common(c, tag, args, count, true);
}

static bool cmd_status(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	const char *name = count == 2 ? imap_cmd_arg_astring(&args[0]) : NULL;
	if (name == NULL || args[1].type != IMAP_CMD_ARG_LIST || args[1].count == 0)
		return bad(c, tag, "Error in IMAP command STATUS: Invalid arguments.");
	if (!is_inbox(name)) {
		char safe[48], text[96];
		sanitize(name, safe);
		snprintf(text, sizeof(text), "Mailbox doesn't exist: %s", safe);
		tagged(c, tag, "NO", text);
		return true;
	}
	struct maildir *box;
	const char *error;
	int ret = maildir_open(c->mail_path, false, &box, &error);
	if (ret < 0) {
		log_error("opening INBOX %s failed: %s: %s", c->mail_path, error, strerror(-ret));
		tagged(c, tag, "NO", IMAP_ERR_INTERNAL);
		return true;
	}
	size_t unseen = 0;
	for (size_t i = 0; i < box->count; i++)
		unseen += !maildir_msg_has_flag(&box->msgs[i], MAILDIR_FLAG_SEEN);
	char out[256];
	size_t o = 0;
	const struct imap_cmd_arg *items = args[1].list;
	for (size_t i = 0; i < args[1].count; i++) {
		const char *it = items[i].type == IMAP_CMD_ARG_ATOM ? items[i].str : "";
		unsigned long long v;
		if (strcasecmp(it, "MESSAGES") == 0)
			v = box->count;
		else if (strcasecmp(it, "RECENT") == 0)
			v = 0;
		else if (strcasecmp(it, "UIDNEXT") == 0)
			v = box->uidnext;
		else if (strcasecmp(it, "UIDVALIDITY") == 0)
			v = box->uidvalidity;
		else if (strcasecmp(it, "UNSEEN") == 0)
			v = unseen;
		else {
			maildir_close(box);
			return bad(c, tag, "Error in IMAP command STATUS: Invalid status item.");
		}
		if (o + 40 < sizeof(out))
			o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%s %llu",
					      o == 0 ? "" : " ", it, v);
	}
	maildir_close(box);
	for (size_t i = 0; i < o; i++)
		out[i] = (char)toupper((unsigned char)out[i]);
	send_fmt(c, "* STATUS INBOX (%s)\r\n", out);
	tagged(c, tag, "OK", "Status completed.");
	return true;
}

static bool cmd_idle(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	(void)args;
	(void)count;
	c->idling = true;
	c->idle_overflow = false;
	c->idle_len = 0;
	snprintf(c->idle_tag, sizeof(c->idle_tag), "%s", tag);
	send_str(c, "+ idling\r\n");
	return true;
}

static bool cmd_fetch(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	return cmd_fetch_common(c, tag, args, count, false);
}

static bool cmd_store(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	return cmd_store_common(c, tag, args, count, false);
}

static bool cmd_expunge(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	(void)args;
	(void)count;
	if (c->readonly) {
		tagged(c, tag, "NO", "Mailbox is read-only.");
		return true;
	}
	int ret = expunge_deleted(c);
	send_expunges(c, false);
	tagged(c, tag, ret < 0 ? "NO" : "OK", ret < 0 ? IMAP_ERR_INTERNAL : "Expunge completed.");
	return true;
}

static bool cmd_close(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	(void)args;
	(void)count;
	if (!c->readonly)
		expunge_deleted(c);
	mailbox_close(c);
	tagged(c, tag, "OK", "Close completed.");
	return true;
}

static bool cmd_unselect(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	(void)args;
	(void)count;
	mailbox_close(c);
	tagged(c, tag, "OK", "Unselect completed.");
	return true;
}

static bool cmd_uid(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	const char *sub = count >= 1 && args[0].type == IMAP_CMD_ARG_ATOM ? args[0].str : "";
	if (strcasecmp(sub, "FETCH") == 0)
		return cmd_fetch_common(c, tag, args + 1, count - 1, true);
	if (strcasecmp(sub, "STORE") == 0)
		return cmd_store_common(c, tag, args + 1, count - 1, true);
	return bad(c, tag, "Unknown command.");
}

enum { CMD_SELECTED = 1 };

static const struct imap_command {
	const char *name;
	imap_cmd_fn *func;
	unsigned int flags;
} imap_commands[] = {
	{ "CAPABILITY", cmd_capability, 0 },
	{ "CLOSE", cmd_close, CMD_SELECTED },
	{ "ENABLE", cmd_enable, 0 },
	{ "EXAMINE", cmd_examine, 0 },
	{ "EXPUNGE", cmd_expunge, CMD_SELECTED },
	{ "FETCH", cmd_fetch, CMD_SELECTED },
	{ "ID", cmd_id, 0 },
	{ "IDLE", cmd_idle, 0 },
	{ "LIST", cmd_list, 0 },
	{ "LOGOUT", cmd_logout, 0 },
	{ "LSUB", cmd_lsub, 0 },
	{ "NOOP", cmd_noop, 0 },
	{ "SELECT", cmd_select, 0 },
	{ "STATUS", cmd_status, 0 },
	{ "STORE", cmd_store, CMD_SELECTED },
	{ "UID", cmd_uid, CMD_SELECTED },
	{ "UNSELECT", cmd_unselect, CMD_SELECTED },
};

static void handle_command(struct imap_client *c)
{
	const char *tag = imap_cmd_parser_tag(c->parser);
	const char *name = imap_cmd_parser_name(c->parser);
	size_t count;
	const struct imap_cmd_arg *args = imap_cmd_parser_args(c->parser, &count);

	for (size_t i = 0; i < sizeof(imap_commands) / sizeof(imap_commands[0]); i++) {
		const struct imap_command *cmd = &imap_commands[i];
		if (strcasecmp(cmd->name, name) != 0)
			continue;
		if ((cmd->flags & CMD_SELECTED) != 0 && c->state != STATE_SELECTED) {
			bad(c, tag, "No mailbox selected.");
			return;
		}
		if (cmd->func(c, tag, args, count))
			c->bad_commands = 0;
		return;
	}
	if (strcasecmp(name, "LOGIN") == 0 || strcasecmp(name, "AUTHENTICATE") == 0 ||
	    strcasecmp(name, "STARTTLS") == 0) {
		bad(c, tag, "Already logged in.");
		return;
	}
	bad(c, tag, "Unknown command.");
}

/* input while IDLE: one line, which must be DONE */
static size_t idle_input(struct imap_client *c, const uint8_t *data, size_t len)
{
	const uint8_t *nl = memchr(data, '\n', len);
	size_t chunk = nl == NULL ? len : (size_t)(nl - data);
	for (size_t i = 0; i < chunk; i++) {
		if (c->idle_len < sizeof(c->idle_line))
			c->idle_line[c->idle_len++] = (char)data[i];
		else
			c->idle_overflow = true;
	}
	if (nl == NULL)
		return len;
	size_t n = c->idle_len;
	if (n > 0 && c->idle_line[n - 1] == '\r')
		n--;
	c->idling = false;
	if (!c->idle_overflow && n == 4 && strncasecmp(c->idle_line, "DONE", 4) == 0) {
		tagged(c, c->idle_tag, "OK", "Idle completed.");
		c->bad_commands = 0;
	} else {
		bad(c, c->idle_tag, "Expected DONE.");
	}
	return chunk + 1;
}

bool imap_client_input(struct imap_client *c, const uint8_t *data, size_t len)
{
	size_t pos = 0;
	while (pos < len && !c->done) {
		if (c->idling) {
			pos += idle_input(c, data + pos, len - pos);
			continue;
		}
		size_t used;
		enum parse_result r = imap_cmd_parser_feed(c->parser, data + pos, len - pos, &used);
		pos += used;
		if (r == PARSE_MORE) {
			if (imap_cmd_parser_take_continuation(c->parser))
				send_str(c, "+ OK\r\n");
			continue;
		}
		if (r == PARSE_ERROR) {
			const char *tag = imap_cmd_parser_tag(c->parser);
			char text[128];
			snprintf(text, sizeof(text), "Error in IMAP command received by server: %s",
				 imap_cmd_parser_error(c->parser));
			bad(c, tag != NULL && *tag != '\0' ? tag : "*", text);
			if (imap_cmd_parser_fatal(c->parser) && !c->done) {
				send_str(c, "* BYE Too long literal.\r\n");
				c->done = true;
			}
			continue;
		}
		handle_command(c);
	}
	return !c->done;
}

struct imap_client *imap_client_create(const char *mail_path, imap_send_fn *send, void *ctx)
{
	struct imap_client *c = rg_calloc(1, sizeof(*c));
	c->send = send;
	c->ctx = ctx;
	c->mail_path = rg_strdup(mail_path);
	c->parser = imap_cmd_parser_create();
	c->state = STATE_AUTH;
	return c;
}

void imap_client_destroy(struct imap_client *c)
{
	if (c == NULL)
		return;
	mailbox_close(c);
	imap_cmd_parser_destroy(c->parser);
	rg_free(c->mail_path);
	rg_free(c);
}

void imap_client_send_login_reply(struct imap_client *c, const char *tag)
{
	send_fmt(c, "%s OK [CAPABILITY " IMAP_CAPABILITY "] Logged in\r\n",
		 tag != NULL && *tag != '\0' ? tag : "*");
}

bool imap_client_logged_out(const struct imap_client *c)
{
	return c->state == STATE_LOGOUT;
}

void imap_client_bye(struct imap_client *c, const char *reason)
{
	send_fmt(c, "* BYE %s\r\n", reason);
	c->done = true;
}
