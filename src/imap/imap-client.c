#include "imap/imap-client.h"

#include "imap/imap-cmd-parser.h"
#include "imap/imap-search.h"
#include "lib/alloc.h"
#include "lib/log.h"
#include "mail/folder.h"
#include "mail/maildir.h"
#include "mail/mime.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#define IMAP_ERR_INTERNAL "[SERVERBUG] Internal error occurred. Refer to server log for more information."

enum imap_state { STATE_AUTH, STATE_SELECTED, STATE_LOGOUT };

struct imap_client {
	imap_send_fn *send;
	void *ctx;
	char *mail_path; /* the root Maildir (INBOX) */
	struct imap_cmd_parser *parser;
	enum imap_state state;
	bool done;
	unsigned int bad_commands;
	/* the running command may be told about other sessions' changes
	 * (untagged EXPUNGE/EXISTS/FETCH) just before its tagged reply */
	bool sync_ok;
	/* CONDSTORE was enabled: FETCH responses with FLAGS carry MODSEQ */
	bool condstore;

	/* selected mailbox: sequence number n is box->msgs[map[n - 1]];
	 * the view holds every message of box that is not expunged, by uid */
	struct maildir *box;
	char *box_name, *box_path;
	bool readonly;
	size_t *map;
	size_t count;

	/* IDLE: waiting for "DONE"; idle_line holds its first bytes */
	bool idling, idle_overflow;
	size_t idle_len;
	char idle_line[8];
	char idle_tag[IMAP_MAX_TAG + 1];

	/* send_fmt()'s line, kept so formatting does not allocate per reply */
	struct mime_buf line;
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
	/* the whole line, however long: never cut in the middle of its CRLF */
	c->line.len = 0;
	va_list ap;
	va_start(ap, fmt);
	mime_buf_vprintf(&c->line, fmt, ap);
	va_end(ap);
	if (c->line.len > 0)
		send_raw(c, c->line.data, c->line.len);
	/* an odd huge line must not stay in an idle session's memory */
	if (c->line.size > 16384)
		mime_buf_free(&c->line);
}

static void sync_view(struct imap_client *c);

static void tagged(struct imap_client *c, const char *tag, const char *status, const char *text)
{
	if (c->sync_ok && c->box != NULL && !c->done) {
		sync_view(c);
		if (c->done)
			return; /* the sync said BYE: the session is over */
	}
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
	bool sync = c->sync_ok;
	c->sync_ok = false;
	tagged(c, tag, "BAD", text);
	c->sync_ok = sync;
	if (++c->bad_commands >= IMAP_MAX_BAD_COMMANDS) {
		send_str(c, "* BYE Too many invalid IMAP commands.\r\n");
		c->done = true;
	}
	return false;
}

static bool bad_args(struct imap_client *c, const char *tag, const char *cmd)
{
	char text[128];
	snprintf(text, sizeof(text), "Error in IMAP command %s: Invalid arguments.", cmd);
	return bad(c, tag, text);
}

/* a mailbox name as IMAP wants it: an atom when it can be, else quoted */
static void send_mailbox_name(struct imap_client *c, const char *name)
{
	bool atom = *name != '\0';
	for (const char *p = name; *p != '\0' && atom; p++) {
		unsigned char ch = (unsigned char)*p;
		atom = ch > 0x20 && ch < 0x7f && strchr("(){ %*\"\\]", ch) == NULL;
	}
	if (atom) {
		send_str(c, name);
		return;
	}
	struct mime_buf b = { 0 };
	mime_buf_nstring(&b, name, strlen(name));
	send_raw(c, b.data, b.len);
	mime_buf_free(&b);
}

static void no_mailbox(struct imap_client *c, const char *tag, const char *name, bool trycreate)
{
	char safe[48], text[128];
	sanitize(name, safe);
	snprintf(text, sizeof(text), "%sMailbox doesn't exist: %s", trycreate ? "[TRYCREATE] " : "", safe);
	tagged(c, tag, "NO", text);
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

#define FLAGS_BUF (IMAP_FLAG_COUNT * 12 + MAILDIR_MAX_KEYWORDS * (MAILDIR_MAX_KEYWORD_LEN + 1) + 16)

/* the message's flags as IMAP names; keywords through box's names */
static void flags_str(const struct maildir *box, const struct maildir_msg *m, char *out, size_t size)
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
static void send_flag_names(struct imap_client *c, bool permanent)
{
	send_str(c, "\\Answered \\Flagged \\Deleted \\Seen \\Draft");
	for (size_t k = 0; k < MAILDIR_MAX_KEYWORDS; k++) {
		if (c->box->keywords[k] != NULL)
			send_fmt(c, " %s", c->box->keywords[k]);
	}
	if (permanent)
		send_str(c, " \\*");
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
static bool parse_flag_list(const struct imap_cmd_arg *arg, const char *path, bool create,
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

/* ---- the selected mailbox ---- */

static void mailbox_close(struct imap_client *c)
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

static size_t view_recent(const struct imap_client *c)
{
	size_t n = 0;
	for (size_t i = 0; i < c->count; i++)
		n += c->box->msgs[c->map[i]].recent;
	return n;
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

/* Rescan the folder when it changed and tell the client what other
 * sessions and deliveries did: EXPUNGE (in order, each number counted
 * after the ones before), FETCH FLAGS, then EXISTS/RECENT for new mail. */
static void sync_view(struct imap_client *c)
{
	if (c->box == NULL || !maildir_changed(c->box))
		return;
	struct stat st;
	if (stat(c->box_path, &st) < 0) {
		send_str(c, "* BYE Selected mailbox was deleted, have to disconnect.\r\n");
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
		send_str(c, "* BYE Mailbox UIDVALIDITY changed, have to disconnect.\r\n");
		c->done = true;
		maildir_close(nb);
		return;
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
			if (strcmp(nm->flags, om->flags) != 0) {
				flags_str(nb, nm, buf, sizeof(buf));
				if (c->condstore)
					send_fmt(c, "* %zu FETCH (UID %u FLAGS (%s) MODSEQ (%" PRIu64 "))\r\n",
						 n, nm->uid, buf, nm->modseq);
				else
					send_fmt(c, "* %zu FETCH (UID %u FLAGS (%s))\r\n", n, nm->uid, buf);
			}
		} else {
			send_fmt(c, "* %zu EXPUNGE\r\n", n + 1);
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
		send_fmt(c, "* %zu EXISTS\r\n* %zu RECENT\r\n", n, view_recent(c));
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
static void uidset_out(struct mime_buf *b, const uint32_t *uids, size_t n)
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
	return ret;
}

/* ---- FETCH ---- */

enum fetch_kind {
	FETCH_UID, FETCH_FLAGS, FETCH_SIZE, FETCH_INTERNALDATE, FETCH_BODY,
	FETCH_ENVELOPE, FETCH_BODYSTRUCTURE, FETCH_BODY_NOEXT, FETCH_MODSEQ,
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

static void send_body_item(struct imap_client *c, const struct fetch_item *item,
			   const char *msg, size_t len, struct mime_part **tree)
{
	const char *data;
	size_t dlen;
	char *tmp;
	section_bytes(item, msg, len, tree, &data, &dlen, &tmp);
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
	bool want_body = false, sets_seen = false, has_flags = false, has_uid = false, has_modseq = false;
	for (size_t i = 0; i < nitems; i++) {
		want_body |= items[i].kind >= FETCH_BODY && items[i].kind != FETCH_MODSEQ;
		sets_seen |= items[i].kind == FETCH_BODY && !items[i].peek;
		has_flags |= items[i].kind == FETCH_FLAGS;
		has_uid |= items[i].kind == FETCH_UID;
		has_modseq |= items[i].kind == FETCH_MODSEQ;
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
		/* the implicit \\Seen is a change a CONDSTORE client must see */
		if (ret == 0 && c->condstore)
			maildir_modseq_commit(c->box, &idx, 1);
	}

	send_fmt(c, "* %zu FETCH (", pos + 1);
	bool first = true;
	if (uid_cmd && !has_uid) {
		send_fmt(c, "UID %u", m->uid);
		first = false;
	}
	char buf[FLAGS_BUF];
	struct mime_part *tree = NULL;
	struct mime_buf mb = { 0 };
	for (size_t i = 0; i < nitems; i++) {
		if (!first)
			send_str(c, " ");
		first = false;
		switch (items[i].kind) {
		case FETCH_UID:
			send_fmt(c, "UID %u", m->uid);
			break;
		case FETCH_FLAGS:
			flags_str(c->box, m, buf, sizeof(buf));
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
			time_t date = maildir_msg_mtime(c->box, idx);
			localtime_r(&date, &tm);
			strftime(buf, sizeof(buf), "%e-%b-%Y %H:%M:%S %z", &tm);
			send_fmt(c, "INTERNALDATE \"%s\"", buf);
			break;
		}
		case FETCH_BODY:
			send_body_item(c, &items[i], msg, len, &tree);
			break;
		case FETCH_MODSEQ:
			send_fmt(c, "MODSEQ (%" PRIu64 ")", m->modseq);
			break;
		case FETCH_ENVELOPE:
			mb.len = 0;
			mime_buf_str(&mb, "ENVELOPE ");
			mime_envelope(msg, mime_header_size(msg, len), &mb);
			send_raw(c, mb.data, mb.len);
			break;
		case FETCH_BODYSTRUCTURE:
		case FETCH_BODY_NOEXT:
			if (tree == NULL)
				tree = mime_parse(msg, len);
			mb.len = 0;
			mime_buf_str(&mb, items[i].kind == FETCH_BODY_NOEXT ? "BODY " : "BODYSTRUCTURE ");
			mime_bodystructure(tree, msg, items[i].kind == FETCH_BODYSTRUCTURE, &mb);
			send_raw(c, mb.data, mb.len);
			break;
		}
	}
	if (add_flags) {
		flags_str(c->box, m, buf, sizeof(buf));
		send_fmt(c, " FLAGS (%s)", buf);
	}
	if (c->condstore && (has_flags || add_flags) && !has_modseq)
		send_fmt(c, " MODSEQ (%" PRIu64 ")", m->modseq);
	send_str(c, ")\r\n");
	mime_buf_free(&mb);
	mime_free(tree);
	rg_free(msg);
	return true;
}

static bool cmd_fetch_common(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args,
			     size_t count, bool uid)
{
	uint64_t changedsince = 0;
	bool has_changedsince = false;
	if (count == 3) {
		/* RFC 7162: (CHANGEDSINCE <modseq>) */
		const struct imap_cmd_arg *mod = &args[2];
		char *end;
		if (mod->type != IMAP_CMD_ARG_LIST || mod->count != 2 || mod->list[0].type != IMAP_CMD_ARG_ATOM ||
		    strcasecmp(mod->list[0].str, "CHANGEDSINCE") != 0 || mod->list[1].type != IMAP_CMD_ARG_ATOM ||
		    !isdigit((unsigned char)mod->list[1].str[0]) ||
		    (changedsince = strtoull(mod->list[1].str, &end, 10), *end != '\0'))
			return bad(c, tag, "Error in IMAP command FETCH: Invalid modifier.");
		has_changedsince = true;
		c->condstore = true;
		count = 2;
	}
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
	size_t max = 5 * nlist + 6; /* FULL is five items; CHANGEDSINCE adds MODSEQ */
	struct fetch_item *items = rg_calloc(max, sizeof(*items));
	size_t nitems = 0;
	if (has_changedsince)
		items[nitems++].kind = FETCH_MODSEQ;
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
	for (size_t i = 0; i < nitems; i++)
		c->condstore |= items[i].kind == FETCH_MODSEQ;
	for (size_t i = 0; i < npos; i++) {
		if (has_changedsince && c->box->msgs[c->map[pos[i]]].modseq <= changedsince)
			continue;
		all_ok &= fetch_one(c, pos[i], items, nitems, uid);
	}
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
			return bad(c, tag, text);
		}
		c->condstore = true;
		shifted[0] = args[0];
		shifted[1] = args[2];
		shifted[2] = args[3];
		args = shifted;
		count = 3;
	}
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
	char letters[IMAP_FLAG_COUNT + MAILDIR_MAX_KEYWORDS + 1];
	const char *ferror;
	/* keywords are created only when the store could add them */
	if (!parse_flag_list(&args[2], c->readonly ? NULL : c->box_path, mode != '-', letters, &ferror)) {
		snprintf(text, sizeof(text), "Error in IMAP command %s: %s", cmd, ferror);
		return bad(c, tag, text);
	}
	size_t nl = strlen(letters);
	if (strpbrk(letters, "abcdefghijklmnopqrstuvwxyz") != NULL)
		maildir_keywords_reload(c->box);
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
	/* the changes first, then their modseqs, then the replies */
	size_t *changed = rg_malloc((npos + 1) * sizeof(*changed));
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
		char flags[MAILDIR_MAX_FLAGS + IMAP_FLAG_COUNT + MAILDIR_MAX_KEYWORDS + 1];
		size_t o = 0;
		if (mode != '=') {
			/* keep what this change does not touch */
			for (const char *f = m->flags; *f != '\0'; f++) {
				if (mode == '-' && strchr(letters, *f) != NULL)
					continue;
				flags[o++] = *f;
			}
		} else {
			/* \\Passed has no IMAP name: a replace keeps it */
			for (const char *f = m->flags; *f != '\0'; f++) {
				if (*f == MAILDIR_FLAG_PASSED)
					flags[o++] = *f;
			}
		}
		if (mode != '-') {
			memcpy(flags + o, letters, nl);
			o += nl;
		}
		flags[o] = '\0';
		char before[MAILDIR_MAX_FLAGS + 1];
		memcpy(before, m->flags, sizeof(before));
		int ret = maildir_msg_set_flags(c->box, idx, flags);
		if (ret < 0) {
			if (ret != -ENOENT)
				log_error("storing flags on uid %u failed: %s", m->uid, strerror(-ret));
			failed = true;
			continue;
		}
		if (strcmp(before, m->flags) != 0)
			idxs[nidxs++] = idx;
		if (strcmp(before, m->flags) != 0 || !silent)
			changed[nchanged++] = pos[i];
	}
	/* only real changes get a new modseq */
	if (c->condstore && nidxs > 0) {
		int ret = maildir_modseq_commit(c->box, idxs, nidxs);
		if (ret < 0)
			log_error("recording modseqs in %s failed: %s", c->box_path, strerror(-ret));
	}
	rg_free(idxs);
	for (size_t i = 0; i < nchanged; i++) {
		struct maildir_msg *m = &c->box->msgs[c->map[changed[i]]];
		/* .SILENT still reports the new modseq to a CONDSTORE client */
		if (silent && !c->condstore)
			continue;
		char buf[FLAGS_BUF];
		flags_str(c->box, m, buf, sizeof(buf));
		send_fmt(c, "* %zu FETCH (", changed[i] + 1);
		if (uid)
			send_fmt(c, "UID %u ", m->uid);
		if (!silent)
			send_fmt(c, "FLAGS (%s)%s", buf, c->condstore ? " " : "");
		if (c->condstore)
			send_fmt(c, "MODSEQ (%" PRIu64 ")", m->modseq);
		send_str(c, ")\r\n");
	}
	rg_free(pos);
	rg_free(changed);
	if (nmodified > 0) {
		struct mime_buf b = { 0 };
		mime_buf_str(&b, "[MODIFIED ");
		uidset_out(&b, modified, nmodified);
		mime_buf_str(&b, "] Conditional store failed.");
		tagged(c, tag, "OK", b.data);
		mime_buf_free(&b);
	} else if (failed) {
		tagged(c, tag, "NO", "Some messages could not be updated (expunged?).");
	} else {
		tagged(c, tag, "OK", "Store completed.");
	}
	rg_free(modified);
	return true;
}

/* ---- SEARCH ---- */

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

static bool cmd_search_common(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args,
			      size_t count, bool uid)
{
	const char *cmd = uid ? "UID SEARCH" : "SEARCH";
	char text[160];
	if (count >= 1 && args[0].type == IMAP_CMD_ARG_ATOM && strcasecmp(args[0].str, "CHARSET") == 0) {
		const char *cs = count >= 2 ? imap_cmd_arg_astring(&args[1]) : NULL;
		if (cs == NULL)
			return bad_args(c, tag, cmd);
		if (strcasecmp(cs, "UTF-8") != 0 && strcasecmp(cs, "US-ASCII") != 0) {
			tagged(c, tag, "NO", "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset");
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
		return bad(c, tag, text);
	}
	struct mime_buf out = { 0 };
	uint64_t max_modseq = 0;
	bool matched = false;
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
			mime_buf_printf(&out, " %u", uid ? m->uid : (uint32_t)(i + 1));
			if (m->modseq > max_modseq)
				max_modseq = m->modseq;
			matched = true;
		}
		rg_free(sl.msg);
	}
	/* RFC 7162: a MODSEQ search says the highest modseq it found */
	if (imap_search_needs_modseq(s)) {
		c->condstore = true;
		if (matched)
			mime_buf_printf(&out, " (MODSEQ %" PRIu64 ")", max_modseq);
	}
	mime_buf_str(&out, "\r\n");
	send_raw(c, out.data, out.len);
	mime_buf_free(&out);
	imap_search_free(s);
	tagged(c, tag, "OK", "Search completed.");
	return true;
}

/* ---- COPY / MOVE / UID EXPUNGE ---- */

static bool cmd_copy_common(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args,
			    size_t count, bool uid, bool move)
{
	const char *cmd = move ? (uid ? "UID MOVE" : "MOVE") : (uid ? "UID COPY" : "COPY");
	char text[256];
	const char *name = count == 2 ? imap_cmd_arg_astring(&args[1]) : NULL;
	if (name == NULL || args[0].type != IMAP_CMD_ARG_ATOM)
		return bad_args(c, tag, cmd);
	size_t *pos, npos;
	const char *error;
	if (!seqset_resolve(c, args[0].str, uid, &pos, &npos, &error)) {
		snprintf(text, sizeof(text), "Error in IMAP command %s: %s", cmd, error);
		return bad(c, tag, text);
	}
	char *dest = folder_path(c->mail_path, name);
	if (dest == NULL || !folder_exists(c->mail_path, name)) {
		rg_free(dest);
		rg_free(pos);
		no_mailbox(c, tag, name, true);
		return true;
	}
	if (move && c->readonly) {
		rg_free(dest);
		rg_free(pos);
		tagged(c, tag, "NO", "Mailbox is read-only.");
		return true;
	}
	if (npos == 0) {
		rg_free(dest);
		rg_free(pos);
		tagged(c, tag, "OK", move ? "No messages found." : "No messages found.");
		return true;
	}
	size_t *idxs = rg_malloc(npos * sizeof(*idxs));
	uint32_t *src_uids = rg_malloc(npos * sizeof(*src_uids));
	uint32_t *dst_uids = rg_calloc(npos, sizeof(*dst_uids));
	for (size_t i = 0; i < npos; i++)
		idxs[i] = c->map[pos[i]];
	uint32_t validity = 0;
	int ret = maildir_copy(c->box, idxs, npos, dest, dst_uids, &validity, &error);
	if (ret < 0) {
		log_error("%s to %s failed: %s: %s", cmd, dest, error, strerror(-ret));
		tagged(c, tag, "NO", IMAP_ERR_INTERNAL);
		goto out;
	}
	size_t copied = 0;
	for (size_t i = 0; i < npos; i++) {
		if (dst_uids[i] == 0)
			continue;
		src_uids[copied] = c->box->msgs[idxs[i]].uid;
		dst_uids[copied] = dst_uids[i];
		idxs[copied++] = idxs[i];
	}
	struct mime_buf code = { 0 };
	if (copied > 0 && validity != 0) {
		mime_buf_printf(&code, "[COPYUID %u ", validity);
		uidset_out(&code, src_uids, copied);
		mime_buf_str(&code, " ");
		uidset_out(&code, dst_uids, copied);
		mime_buf_str(&code, "] ");
	}
	if (!move) {
		mime_buf_str(&code, copied < npos ? "Some messages were expunged meanwhile." : "Copy completed.");
		tagged(c, tag, copied < npos ? "NO" : "OK", code.data);
	} else {
		if (code.len > 0)
			send_fmt(c, "* OK %sMoved UIDs.\r\n", code.data);
		for (size_t i = 0; i < copied; i++) {
			int r = maildir_msg_delete(c->box, idxs[i]);
			if (r < 0)
				log_error("expunging moved uid %u failed: %s", c->box->msgs[idxs[i]].uid,
					  strerror(-r));
		}
		send_expunges(c, false);
		tagged(c, tag, copied < npos ? "NO" : "OK",
		       copied < npos ? "Some messages were expunged meanwhile." : "Move completed.");
	}
	mime_buf_free(&code);
out:
	rg_free(idxs);
	rg_free(src_uids);
	rg_free(dst_uids);
	rg_free(dest);
	rg_free(pos);
	return true;
}

static bool cmd_copy(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	return cmd_copy_common(c, tag, args, count, false, false);
}

static bool cmd_move(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	return cmd_copy_common(c, tag, args, count, false, true);
}

static bool cmd_search(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	return cmd_search_common(c, tag, args, count, false);
}

/* ---- APPEND ---- */

/* "dd-Mon-yyyy hh:mm:ss +zzzz" */
static bool parse_datetime(const char *s, time_t *t_r)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	int day, year, hh, mm, ss, zone;
	char mon[4], sign;
	int n = 0;
	while (*s == ' ')
		s++;
	if (sscanf(s, "%2d-%3s-%4d %2d:%2d:%2d %c%4d%n", &day, mon, &year, &hh, &mm, &ss, &sign,
		   &zone, &n) != 8 || s[n] != '\0' || (sign != '+' && sign != '-'))
		return false;
	const char *m = strcasestr(months, mon);
	if (m == NULL || strlen(mon) != 3 || (m - months) % 3 != 0 || day < 1 || day > 31 ||
	    year < 1970 || hh > 23 || mm > 59 || ss > 60)
		return false;
	struct tm tm = { .tm_year = year - 1900, .tm_mon = (int)((m - months) / 3), .tm_mday = day,
			 .tm_hour = hh, .tm_min = mm, .tm_sec = ss };
	time_t t = timegm(&tm);
	int off = (zone / 100) * 3600 + (zone % 100) * 60;
	*t_r = sign == '+' ? t - off : t + off;
	return true;
}

static bool cmd_append(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	const char *name = count >= 2 ? imap_cmd_arg_astring(&args[0]) : NULL;
	if (name == NULL)
		return bad_args(c, tag, "APPEND");
	size_t i = 1;
	char letters[IMAP_FLAG_COUNT + MAILDIR_MAX_KEYWORDS + 1] = "";
	const struct imap_cmd_arg *flag_arg = NULL;
	time_t date = 0;
	if (i < count && args[i].type == IMAP_CMD_ARG_LIST) {
		const char *ferror;
		/* checked now, keywords looked up once the folder is known */
		if (!parse_flag_list(&args[i], NULL, false, letters, &ferror)) {
			char text[96];
			snprintf(text, sizeof(text), "Error in IMAP command APPEND: %s", ferror);
			return bad(c, tag, text);
		}
		flag_arg = &args[i];
		i++;
	}
	if (i + 1 < count && args[i].type == IMAP_CMD_ARG_STRING) {
		if (!parse_datetime(args[i].str, &date))
			return bad(c, tag, "Error in IMAP command APPEND: Invalid internal date.");
		i++;
	}
	if (i + 1 != count || args[i].type == IMAP_CMD_ARG_LIST ||
	    (args[i].type == IMAP_CMD_ARG_ATOM))
		return bad_args(c, tag, "APPEND");
	if (args[i].len == 0) {
		tagged(c, tag, "NO", "Can't save a zero byte message.");
		return true;
	}
	char *dest = folder_path(c->mail_path, name);
	if (dest == NULL || !folder_exists(c->mail_path, name)) {
		rg_free(dest);
		no_mailbox(c, tag, name, true);
		return true;
	}
	uint32_t uid = 0, validity = 0;
	const char *error;
	if (flag_arg != NULL)
		(void)parse_flag_list(flag_arg, dest, true, letters, &error);
	int ret = maildir_save(dest, args[i].str, args[i].len, letters, date, &uid, &validity, &error);
	if (ret < 0) {
		log_error("APPEND to %s failed: %s: %s", dest, error, strerror(-ret));
		tagged(c, tag, "NO", IMAP_ERR_INTERNAL);
	} else {
		char text[96];
		snprintf(text, sizeof(text), "[APPENDUID %u %u] Append completed.", validity, uid);
		tagged(c, tag, "OK", text);
	}
	rg_free(dest);
	return true;
}

/* ---- folders ---- */

/* IMAP LIST wildcard match: '*' anything, '%' anything but the separator.
 * Iterative with one backtrack point per '*'/'%' run would miss cases;
 * a table over (pattern, name) positions keeps it linear in their product. */
static bool list_match(const char *pattern, const char *name, bool fold)
{
	size_t pl = strlen(pattern), nl = strlen(name);
	if (pl > 512 || nl > 512)
		return false;
	/* row[j]: pattern[0..i) matches name[0..j) */
	bool *prev = rg_calloc(nl + 1, sizeof(bool)), *cur = rg_calloc(nl + 1, sizeof(bool));
	prev[0] = true;
	for (size_t i = 1; i <= pl; i++) {
		char p = pattern[i - 1];
		cur[0] = prev[0] && (p == '*' || p == '%');
		for (size_t j = 1; j <= nl; j++) {
			char n = name[j - 1];
			if (p == '*')
				cur[j] = prev[j] || cur[j - 1];
			else if (p == '%')
				cur[j] = prev[j] || (cur[j - 1] && n != FOLDER_SEP);
			else
				cur[j] = prev[j - 1] && (p == n || (fold && toupper((unsigned char)p) ==
								       toupper((unsigned char)n)));
		}
		bool *t = prev;
		prev = cur;
		cur = t;
	}
	bool ok = prev[nl];
	rg_free(prev);
	rg_free(cur);
	return ok;
}

static bool name_matches(const char *pattern, const char *name)
{
	/* INBOX is case-insensitive, and so is its place in "INBOX.x" */
	if (strncasecmp(name, "INBOX", 5) == 0 && (name[5] == '\0' || name[5] == FOLDER_SEP) &&
	    strncasecmp(pattern, "INBOX", 5) == 0) {
		char *p2 = rg_strdup(pattern), *n2 = rg_strdup(name);
		memcpy(p2, "INBOX", 5);
		memcpy(n2, "INBOX", 5);
		bool ok = list_match(p2, n2, false);
		rg_free(p2);
		rg_free(n2);
		return ok;
	}
	if (folder_is_inbox(name))
		return list_match(pattern, name, true);
	return list_match(pattern, name, false);
}

static bool has_children(char **names, size_t count, const char *name)
{
	size_t len = strlen(name);
	for (size_t i = 0; i < count; i++) {
		if (strncmp(names[i], name, len) == 0 && names[i][len] == FOLDER_SEP)
			return true;
	}
	return false;
}

static bool name_listed(char **names, size_t count, const char *name)
{
	for (size_t i = 0; i < count; i++) {
		if (strcmp(names[i], name) == 0)
			return true;
	}
	return false;
}

static bool status_items_valid(const struct imap_cmd_arg *list);
static int send_status(struct imap_client *c, const char *name, const struct imap_cmd_arg *list);

enum {
	LIST_SEL_SUBSCRIBED = 1, LIST_SEL_SPECIAL = 2,
	LIST_RET_SUBSCRIBED = 4, LIST_RET_STATUS = 8,
};

/* LIST-EXTENDED (RFC 5258): "(selection)" ref patterns "RETURN (options)" */
static bool list_options(const struct imap_cmd_arg *list, bool selection, unsigned int *opts,
			 const struct imap_cmd_arg **status_r)
{
	for (size_t i = 0; i < list->count; i++) {
		const struct imap_cmd_arg *o = &list->list[i];
		if (o->type != IMAP_CMD_ARG_ATOM)
			return false;
		if (strcasecmp(o->str, "SUBSCRIBED") == 0)
			*opts |= selection ? LIST_SEL_SUBSCRIBED | LIST_RET_SUBSCRIBED : LIST_RET_SUBSCRIBED;
		else if (strcasecmp(o->str, "SPECIAL-USE") == 0)
			*opts |= selection ? LIST_SEL_SPECIAL : 0;
		else if (selection && (strcasecmp(o->str, "REMOTE") == 0 ||
				       strcasecmp(o->str, "RECURSIVEMATCH") == 0))
			continue;
		else if (!selection && strcasecmp(o->str, "CHILDREN") == 0)
			continue; /* always returned */
		else if (!selection && strcasecmp(o->str, "STATUS") == 0 && i + 1 < list->count &&
			 status_items_valid(&list->list[i + 1])) {
			*opts |= LIST_RET_STATUS;
			*status_r = &list->list[++i];
		} else {
			return false;
		}
	}
	return true;
}

static bool cmd_list_common(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args,
			    size_t count, bool lsub)
{
	const char *cmd = lsub ? "LSUB" : "LIST";
	unsigned int opts = lsub ? LIST_SEL_SUBSCRIBED : 0;
	const struct imap_cmd_arg *status = NULL;
	size_t i = 0;
	if (!lsub && count > 0 && args[0].type == IMAP_CMD_ARG_LIST) {
		if (!list_options(&args[0], true, &opts, &status))
			return bad_args(c, tag, cmd);
		i++;
	}
	const char *ref = i < count ? imap_cmd_arg_astring(&args[i]) : NULL;
	const struct imap_cmd_arg *pats = i + 1 < count ? &args[i + 1] : NULL;
	size_t npats = pats == NULL ? 0 : pats->type == IMAP_CMD_ARG_LIST && !lsub ? pats->count : 1;
	if (pats != NULL && pats->type == IMAP_CMD_ARG_LIST && !lsub)
		pats = pats->list;
	i += 2;
	if (!lsub && i + 2 == count && args[i].type == IMAP_CMD_ARG_ATOM &&
	    strcasecmp(args[i].str, "RETURN") == 0 && args[i + 1].type == IMAP_CMD_ARG_LIST) {
		if (!list_options(&args[i + 1], false, &opts, &status))
			return bad_args(c, tag, cmd);
		i += 2;
	}
	if (ref == NULL || npats == 0 || i != count)
		return bad_args(c, tag, cmd);
	for (size_t p = 0; p < npats; p++) {
		if (imap_cmd_arg_astring(&pats[p]) == NULL)
			return bad_args(c, tag, cmd);
	}
	if (npats == 1 && *imap_cmd_arg_astring(&pats[0]) == '\0' && !lsub) {
		send_str(c, "* LIST (\\Noselect) \".\" \"\"\r\n");
		tagged(c, tag, "OK", "List completed.");
		return true;
	}
	char **fulls = rg_calloc(npats, sizeof(*fulls));
	bool percent = false;
	for (size_t p = 0; p < npats; p++) {
		fulls[p] = rg_strdup_printf("%s%s", ref, imap_cmd_arg_astring(&pats[p]));
		percent |= strchr(fulls[p], '%') != NULL;
	}
	char **names = NULL, **subs = NULL;
	size_t count_n = 0, count_s = 0;
	int ret = folder_list(c->mail_path, &names, &count_n);
	if (ret == 0 && (opts & (LIST_SEL_SUBSCRIBED | LIST_RET_SUBSCRIBED)) != 0)
		ret = folder_subscriptions(c->mail_path, &subs, &count_s);
	if (ret < 0) {
		log_error("listing %s failed: %s", c->mail_path, strerror(-ret));
		folder_list_free(names, count_n);
		folder_list_free(fulls, npats);
		tagged(c, tag, "NO", IMAP_ERR_INTERNAL);
		return true;
	}
	/* what to show: the folders (or subscriptions), plus the parents
	 * their names imply, which exist only as hierarchy (\Noselect) */
	bool by_subs = (opts & LIST_SEL_SUBSCRIBED) != 0;
	char **cands = by_subs ? subs : names;
	size_t ncands = by_subs ? count_s : count_n;
	char **all = rg_malloc((ncands + 1) * sizeof(*all));
	size_t nall = 0;
	for (size_t k = 0; k < ncands; k++)
		all[nall++] = rg_strdup(cands[k]);
	/* a subscription list names an unsubscribed parent only where "%"
	 * stopped at it */
	bool parents = !by_subs || percent;
	for (size_t k = 0; k < ncands && parents; k++) {
		char *copy = rg_strdup(cands[k]);
		for (char *dot = strrchr(copy, FOLDER_SEP); dot != NULL; dot = strrchr(copy, FOLDER_SEP)) {
			*dot = '\0';
			if (*copy == '\0' || name_listed(all, nall, copy))
				continue;
			all = rg_realloc(all, (nall + 1) * sizeof(*all));
			all[nall++] = rg_strdup(copy);
		}
		rg_free(copy);
	}
	for (size_t k = 0; k < nall; k++) {
		const char *name = all[k];
		bool is_inbox = folder_is_inbox(name);
		bool matched = false;
		for (size_t p = 0; p < npats && !matched; p++)
			matched = name_matches(fulls[p], name);
		if (!matched)
			continue;
		bool exists = is_inbox || name_listed(names, count_n, name);
		const char *special = exists ? folder_special_use(name) : NULL;
		if ((opts & LIST_SEL_SPECIAL) != 0 && special == NULL)
			continue;
		struct mime_buf attrs = { 0 };
		mime_buf_add(&attrs, "", 0);
		bool implied = k >= ncands;
		if (lsub) {
			if (!exists || implied)
				mime_buf_str(&attrs, "\\Noselect");
		} else {
			if (!exists)
				mime_buf_str(&attrs, by_subs && !implied ? "\\NonExistent" : "\\Noselect");
			mime_buf_printf(&attrs, "%s%s", attrs.len > 0 ? " " : "",
					has_children(names, count_n, name) ? "\\HasChildren" : "\\HasNoChildren");
			if ((opts & LIST_RET_SUBSCRIBED) != 0 && name_listed(subs, count_s, name))
				mime_buf_str(&attrs, " \\Subscribed");
			if (special != NULL)
				mime_buf_printf(&attrs, " %s", special);
		}
		send_fmt(c, "* %s (%s) \".\" ", cmd, attrs.data);
		mime_buf_free(&attrs);
		send_mailbox_name(c, is_inbox ? "INBOX" : name);
		send_str(c, "\r\n");
		if ((opts & LIST_RET_STATUS) != 0 && exists)
			(void)send_status(c, name, status);
	}
	for (size_t k = 0; k < nall; k++)
		rg_free(all[k]);
	rg_free(all);
	folder_list_free(names, count_n);
	folder_list_free(subs, count_s);
	folder_list_free(fulls, npats);
	tagged(c, tag, "OK", lsub ? "Lsub completed." : "List completed.");
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

static bool folder_error(struct imap_client *c, const char *tag, int ret, const char *name)
{
	switch (ret) {
	case -EEXIST:
		tagged(c, tag, "NO", "[ALREADYEXISTS] Mailbox already exists");
		break;
	case -ENOENT:
		no_mailbox(c, tag, name, false);
		break;
	case -EINVAL:
		tagged(c, tag, "NO", "Invalid mailbox name");
		break;
	case -EPERM:
		tagged(c, tag, "NO", "[CANNOT] Not allowed for INBOX");
		break;
	default:
		log_error("folder operation on %s failed: %s", c->mail_path, strerror(-ret));
		tagged(c, tag, "NO", IMAP_ERR_INTERNAL);
		break;
	}
	return true;
}

/* a name the client sent, without a trailing separator (CREATE "a.") */
static char *client_name(const char *name)
{
	char *n = rg_strdup(name);
	size_t len = strlen(n);
	while (len > 0 && n[len - 1] == FOLDER_SEP)
		n[--len] = '\0';
	return n;
}

static bool cmd_create(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	const char *arg = count == 1 ? imap_cmd_arg_astring(&args[0]) : NULL;
	if (arg == NULL)
		return bad_args(c, tag, "CREATE");
	char *name = client_name(arg);
	int ret = folder_create(c->mail_path, name);
	if (ret < 0)
		folder_error(c, tag, ret, name);
	else
		tagged(c, tag, "OK", "Create completed.");
	rg_free(name);
	return true;
}

static bool cmd_delete(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	const char *name = count == 1 ? imap_cmd_arg_astring(&args[0]) : NULL;
	if (name == NULL)
		return bad_args(c, tag, "DELETE");
	if (folder_is_inbox(name))
		return folder_error(c, tag, -EPERM, name);
	if (!folder_exists(c->mail_path, name))
		return folder_error(c, tag, -ENOENT, name);
	/* deleting the selected folder first closes it, as Dovecot does */
	if (c->box_name != NULL && strcmp(c->box_name, name) == 0)
		mailbox_close(c);
	int ret = folder_delete(c->mail_path, name);
	if (ret < 0)
		return folder_error(c, tag, ret, name);
	tagged(c, tag, "OK", "Delete completed.");
	return true;
}

static bool cmd_rename(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	const char *from = count == 2 ? imap_cmd_arg_astring(&args[0]) : NULL;
	const char *to_arg = count == 2 ? imap_cmd_arg_astring(&args[1]) : NULL;
	if (from == NULL || to_arg == NULL)
		return bad_args(c, tag, "RENAME");
	char *to = client_name(to_arg);
	int ret = folder_rename(c->mail_path, from, to);
	if (ret < 0) {
		folder_error(c, tag, ret, ret == -EEXIST ? to : from);
	} else {
		if (c->box_name != NULL && strcmp(c->box_name, from) == 0) {
			rg_free(c->box_name);
			rg_free(c->box_path);
			c->box_name = rg_strdup(to);
			c->box_path = folder_path(c->mail_path, to);
			rg_free(c->box->path);
			c->box->path = rg_strdup(c->box_path);
		}
		tagged(c, tag, "OK", "Rename completed.");
	}
	rg_free(to);
	return true;
}

static bool cmd_subscribe_common(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args,
				 size_t count, bool on)
{
	const char *arg = count == 1 ? imap_cmd_arg_astring(&args[0]) : NULL;
	if (arg == NULL)
		return bad_args(c, tag, on ? "SUBSCRIBE" : "UNSUBSCRIBE");
	char *name = client_name(arg);
	int ret = folder_subscribe(c->mail_path, folder_is_inbox(name) ? "INBOX" : name, on);
	if (ret < 0)
		folder_error(c, tag, ret, name);
	else
		tagged(c, tag, "OK", on ? "Subscribe completed." : "Unsubscribe completed.");
	rg_free(name);
	return true;
}

static bool cmd_subscribe(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	return cmd_subscribe_common(c, tag, args, count, true);
}

static bool cmd_unsubscribe(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	return cmd_subscribe_common(c, tag, args, count, false);
}

static bool cmd_namespace(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	(void)args;
	(void)count;
	send_str(c, "* NAMESPACE ((\"\" \".\")) NIL NIL\r\n");
	tagged(c, tag, "OK", "Namespace completed.");
	return true;
}

static bool cmd_check(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	(void)args;
	(void)count;
	tagged(c, tag, "OK", "Check completed.");
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
	if (count == 0)
		return bad(c, tag, "Error in IMAP command ENABLE: Missing arguments.");
	bool now = false;
	for (size_t i = 0; i < count; i++) {
		if (args[i].type != IMAP_CMD_ARG_ATOM)
			return bad(c, tag, "Error in IMAP command ENABLE: Invalid arguments.");
		if (strcasecmp(args[i].str, "CONDSTORE") == 0 && !c->condstore)
			now = c->condstore = true;
	}
	send_str(c, now ? "* ENABLED CONDSTORE\r\n" : "* ENABLED\r\n");
	tagged(c, tag, "OK", "Enabled.");
	return true;
}

static bool cmd_select_common(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args,
			      size_t count, bool examine)
{
	const char *cmd = examine ? "EXAMINE" : "SELECT";
	char text[160];
	const char *name = count >= 1 ? imap_cmd_arg_astring(&args[0]) : NULL;
	bool params_ok = count == 1 || (count == 2 && args[1].type == IMAP_CMD_ARG_LIST &&
					 args[1].count == 1 && args[1].list[0].type == IMAP_CMD_ARG_ATOM &&
					 strcasecmp(args[1].list[0].str, "CONDSTORE") == 0);
	if (count < 1 || name == NULL || !params_ok) {
		snprintf(text, sizeof(text), "Error in IMAP command %s: Invalid arguments.", cmd);
		return bad(c, tag, text);
	}
	if (count == 2)
		c->condstore = true;
	if (c->box != NULL)
		mailbox_close(c);
	char *path = folder_path(c->mail_path, name);
	if (path == NULL || !folder_exists(c->mail_path, name)) {
		rg_free(path);
		no_mailbox(c, tag, name, false);
		return true;
	}
	const char *error;
	int ret = maildir_open(path, !examine, &c->box, &error);
	if (ret < 0) {
		log_error("opening %s failed: %s: %s", path, error, strerror(-ret));
		rg_free(path);
		tagged(c, tag, "NO", IMAP_ERR_INTERNAL);
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
	send_str(c, "* FLAGS (");
	send_flag_names(c, false);
	send_str(c, ")\r\n");
	if (examine) {
		send_str(c, "* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n");
	} else {
		send_str(c, "* OK [PERMANENTFLAGS (");
		send_flag_names(c, true);
		send_str(c, ")] Flags permitted.\r\n");
	}
	send_fmt(c, "* %zu EXISTS\r\n* %zu RECENT\r\n", c->count, view_recent(c));
	if (first_unseen > 0)
		send_fmt(c, "* OK [UNSEEN %zu] First unseen.\r\n", first_unseen);
	send_fmt(c, "* OK [UIDVALIDITY %u] UIDs valid\r\n", c->box->uidvalidity);
	send_fmt(c, "* OK [UIDNEXT %u] Predicted next UID\r\n", c->box->uidnext);
	if (c->condstore)
		send_fmt(c, "* OK [HIGHESTMODSEQ %" PRIu64 "] Highest\r\n", c->box->highest_modseq);
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

static const char *const status_items[] = { "MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN",
					    "HIGHESTMODSEQ" };

static bool status_items_valid(const struct imap_cmd_arg *list)
{
	if (list->type != IMAP_CMD_ARG_LIST || list->count == 0)
		return false;
	for (size_t i = 0; i < list->count; i++) {
		bool known = false;
		for (size_t k = 0; k < sizeof(status_items) / sizeof(status_items[0]); k++)
			known |= list->list[i].type == IMAP_CMD_ARG_ATOM &&
				 strcasecmp(list->list[i].str, status_items[k]) == 0;
		if (!known)
			return false;
	}
	return true;
}

/* "* STATUS name (...)" for a folder; -ENOENT when there is none */
static int send_status(struct imap_client *c, const char *name, const struct imap_cmd_arg *list)
{
	char *path = folder_path(c->mail_path, name);
	if (path == NULL || !folder_exists(c->mail_path, name)) {
		rg_free(path);
		return -ENOENT;
	}
	struct maildir *box;
	const char *error;
	int ret = maildir_open(path, false, &box, &error);
	if (ret < 0) {
		log_error("opening %s failed: %s: %s", path, error, strerror(-ret));
		rg_free(path);
		return ret;
	}
	rg_free(path);
	bool selected = c->box_name != NULL && strcmp(c->box_name, folder_is_inbox(name) ? "INBOX" : name) == 0;
	size_t recent = 0, unseen = 0;
	for (size_t i = 0; i < box->count; i++) {
		recent += box->msgs[i].in_new;
		unseen += !maildir_msg_has_flag(&box->msgs[i], MAILDIR_FLAG_SEEN);
	}
	if (selected)
		recent = view_recent(c);
	struct mime_buf out = { 0 };
	for (size_t i = 0; i < list->count; i++) {
		const char *it = list->list[i].str;
		unsigned long long v = 0;
		if (strcasecmp(it, "MESSAGES") == 0)
			v = box->count;
		else if (strcasecmp(it, "RECENT") == 0)
			v = recent;
		else if (strcasecmp(it, "UIDNEXT") == 0)
			v = box->uidnext;
		else if (strcasecmp(it, "UIDVALIDITY") == 0)
			v = box->uidvalidity;
		else if (strcasecmp(it, "UNSEEN") == 0)
			v = unseen;
		else if (strcasecmp(it, "HIGHESTMODSEQ") == 0)
			v = box->highest_modseq;
		mime_buf_printf(&out, "%s%s %llu", out.len == 0 ? "" : " ", it, v);
	}
	maildir_close(box);
	for (size_t i = 0; i < out.len; i++)
		out.data[i] = (char)toupper((unsigned char)out.data[i]);
	send_str(c, "* STATUS ");
	send_mailbox_name(c, folder_is_inbox(name) ? "INBOX" : name);
	send_fmt(c, " (%s)\r\n", out.data);
	mime_buf_free(&out);
	return 0;
}

static bool cmd_status(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	const char *name = count == 2 ? imap_cmd_arg_astring(&args[0]) : NULL;
	if (name == NULL || args[1].type != IMAP_CMD_ARG_LIST || args[1].count == 0)
		return bad(c, tag, "Error in IMAP command STATUS: Invalid arguments.");
	if (!status_items_valid(&args[1]))
		return bad(c, tag, "Error in IMAP command STATUS: Invalid status item.");
	for (size_t i = 0; i < args[1].count; i++)
		c->condstore |= strcasecmp(args[1].list[i].str, "HIGHESTMODSEQ") == 0;
	int ret = send_status(c, name, &args[1]);
	if (ret == -ENOENT)
		no_mailbox(c, tag, name, false);
	else if (ret < 0)
		tagged(c, tag, "NO", IMAP_ERR_INTERNAL);
	else
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
	sync_view(c);
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
	int ret = expunge_deleted(c, NULL, 0);
	send_expunges(c, false);
	tagged(c, tag, ret < 0 ? "NO" : "OK", ret < 0 ? IMAP_ERR_INTERNAL : "Expunge completed.");
	return true;
}

static bool cmd_close(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	(void)args;
	(void)count;
	if (!c->readonly)
		expunge_deleted(c, NULL, 0);
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

static bool cmd_uid_expunge(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args,
			    size_t count)
{
	if (count != 1 || args[0].type != IMAP_CMD_ARG_ATOM)
		return bad_args(c, tag, "UID EXPUNGE");
	uint32_t max_uid = c->count > 0 ? c->box->msgs[c->map[c->count - 1]].uid : 0;
	struct imap_seq_range *r;
	size_t nr;
	if (!imap_seqset_parse(args[0].str, max_uid, &r, &nr))
		return bad(c, tag, "Error in IMAP command UID EXPUNGE: Invalid messageset");
	if (c->readonly) {
		rg_free(r);
		tagged(c, tag, "NO", "Mailbox is read-only.");
		return true;
	}
	int ret = expunge_deleted(c, r, nr);
	rg_free(r);
	send_expunges(c, false);
	tagged(c, tag, ret < 0 ? "NO" : "OK", ret < 0 ? IMAP_ERR_INTERNAL : "Expunge completed.");
	return true;
}

static bool cmd_uid(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	const char *sub = count >= 1 && args[0].type == IMAP_CMD_ARG_ATOM ? args[0].str : "";
	/* UID commands may report expunges (RFC 3501 7.4.1) */
	c->sync_ok = true;
	if (strcasecmp(sub, "FETCH") == 0)
		return cmd_fetch_common(c, tag, args + 1, count - 1, true);
	if (strcasecmp(sub, "STORE") == 0)
		return cmd_store_common(c, tag, args + 1, count - 1, true);
	if (strcasecmp(sub, "SEARCH") == 0)
		return cmd_search_common(c, tag, args + 1, count - 1, true);
	if (strcasecmp(sub, "COPY") == 0)
		return cmd_copy_common(c, tag, args + 1, count - 1, true, false);
	if (strcasecmp(sub, "MOVE") == 0)
		return cmd_copy_common(c, tag, args + 1, count - 1, true, true);
	if (strcasecmp(sub, "EXPUNGE") == 0)
		return cmd_uid_expunge(c, tag, args + 1, count - 1);
	return bad(c, tag, "Unknown command.");
}

/* CMD_SYNC: other sessions' changes may be reported before the tagged
 * reply; not for FETCH, STORE and SEARCH, whose sequence numbers the
 * client must be able to trust (RFC 3501 7.4.1) */
enum { CMD_SELECTED = 1, CMD_SYNC = 2 };

static const struct imap_command {
	const char *name;
	imap_cmd_fn *func;
	unsigned int flags;
} imap_commands[] = {
	{ "APPEND", cmd_append, CMD_SYNC },
	{ "CAPABILITY", cmd_capability, CMD_SYNC },
	{ "CHECK", cmd_check, CMD_SELECTED | CMD_SYNC },
	{ "CLOSE", cmd_close, CMD_SELECTED },
	{ "COPY", cmd_copy, CMD_SELECTED | CMD_SYNC },
	{ "CREATE", cmd_create, CMD_SYNC },
	{ "DELETE", cmd_delete, CMD_SYNC },
	{ "ENABLE", cmd_enable, 0 },
	{ "EXAMINE", cmd_examine, 0 },
	{ "EXPUNGE", cmd_expunge, CMD_SELECTED | CMD_SYNC },
	{ "FETCH", cmd_fetch, CMD_SELECTED },
	{ "ID", cmd_id, 0 },
	{ "IDLE", cmd_idle, 0 },
	{ "LIST", cmd_list, CMD_SYNC },
	{ "LOGOUT", cmd_logout, 0 },
	{ "LSUB", cmd_lsub, CMD_SYNC },
	{ "MOVE", cmd_move, CMD_SELECTED | CMD_SYNC },
	{ "NAMESPACE", cmd_namespace, CMD_SYNC },
	{ "NOOP", cmd_noop, CMD_SYNC },
	{ "RENAME", cmd_rename, CMD_SYNC },
	{ "SEARCH", cmd_search, CMD_SELECTED },
	{ "SELECT", cmd_select, 0 },
	{ "STATUS", cmd_status, CMD_SYNC },
	{ "STORE", cmd_store, CMD_SELECTED },
	{ "SUBSCRIBE", cmd_subscribe, CMD_SYNC },
	{ "UID", cmd_uid, CMD_SELECTED },
	{ "UNSELECT", cmd_unselect, CMD_SELECTED },
	{ "UNSUBSCRIBE", cmd_unsubscribe, CMD_SYNC },
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
		c->sync_ok = (cmd->flags & CMD_SYNC) != 0;
		if (cmd->func(c, tag, args, count))
			c->bad_commands = 0;
		c->sync_ok = false;
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
	int ret = folder_ensure_special(mail_path);
	if (ret < 0)
		log_warning("creating the special-use folders in %s failed: %s", mail_path, strerror(-ret));
	return c;
}

void imap_client_destroy(struct imap_client *c)
{
	if (c == NULL)
		return;
	mailbox_close(c);
	imap_cmd_parser_destroy(c->parser);
	rg_free(c->mail_path);
	mime_buf_free(&c->line);
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

bool imap_client_idling(const struct imap_client *c)
{
	return c->idling;
}

bool imap_client_idle_check(struct imap_client *c)
{
	if (c->idling && !c->done)
		sync_view(c);
	return !c->done;
}
