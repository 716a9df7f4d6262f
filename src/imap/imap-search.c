#include "imap/imap-search.h"

#include "lib/alloc.h"
#include "mail/mime.h"
#include "mail/maildir.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SEARCH_MAX_DEPTH 32
#define SEARCH_MAX_NODES 1000

/* ---- sequence sets ---- */

static int cmp_range(const void *a, const void *b)
{
	const struct imap_seq_range *x = a, *y = b;
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

bool imap_seqset_parse(const char *str, uint32_t star, struct imap_seq_range **ranges_r,
		       size_t *count_r)
{
	size_t alloc = 1;
	for (const char *p = str; *p != '\0'; p++)
		alloc += *p == ',';
	struct imap_seq_range *r = rg_malloc(alloc * sizeof(*r));
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

bool imap_seqset_contains(const struct imap_seq_range *r, size_t count, uint32_t n)
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

/* ---- the program ---- */

enum node_kind {
	N_AND, N_OR, N_NOT, N_ALL,
	N_FLAG, N_UNFLAG,       /* letter */
	N_NEW, N_OLD, N_RECENT,
	N_KEYWORD, N_UNKEYWORD, /* str: the keyword name */
	N_LARGER, N_SMALLER,
	N_BEFORE, N_ON, N_SINCE,
	N_SENTBEFORE, N_SENTON, N_SENTSINCE,
	N_HEADER,               /* field + str */
	N_BODY, N_TEXT,
	N_SEQ, N_UID,
	N_MODSEQ,               /* num: at least this modseq */
};

struct node {
	enum node_kind kind;
	char letter;
	uint64_t num;
	int date;
	char *field, *str;
	bool address;           /* N_HEADER of FROM/TO/CC/BCC: match the addresses */
	struct imap_seq_range *ranges;
	size_t nranges;
	struct node **kids;
	size_t nkids;
};

struct imap_search {
	struct node *root;
	bool needs_text, needs_size, needs_date, needs_modseq;
};

struct parse_state {
	const struct imap_cmd_arg *args;
	size_t count, pos;
	uint32_t max_seq, max_uid;
	unsigned int nodes;
	bool needs_text, needs_size, needs_date, needs_modseq;
	const char *error;
};

static void node_free(struct node *n)
{
	if (n == NULL)
		return;
	for (size_t i = 0; i < n->nkids; i++)
		node_free(n->kids[i]);
	rg_free(n->kids);
	rg_free(n->field);
	rg_free(n->str);
	rg_free(n->ranges);
	rg_free(n);
}

static struct node *node_new(struct parse_state *ps, enum node_kind kind)
{
	struct node *n = rg_calloc(1, sizeof(*n));
	n->kind = kind;
	ps->nodes++;
	return n;
}

static void node_add(struct node *parent, struct node *kid)
{
	parent->kids = rg_realloc(parent->kids, (parent->nkids + 1) * sizeof(*parent->kids));
	parent->kids[parent->nkids++] = kid;
}

static const char *const months[] = { "jan", "feb", "mar", "apr", "may", "jun",
				      "jul", "aug", "sep", "oct", "nov", "dec" };

bool imap_search_parse_date(const char *s, int *ymd_r)
{
	char *end;
	long d = strtol(s, &end, 10);
	if (end == s || end - s > 2 || *end != '-' || d < 1 || d > 31)
		return false;
	const char *m = end + 1;
	int mon = -1;
	for (int i = 0; i < 12; i++) {
		if (strncasecmp(m, months[i], 3) == 0)
			mon = i + 1;
	}
	if (mon < 0 || m[3] != '-' || !isdigit((unsigned char)m[4]))
		return false;
	long y = strtol(m + 4, &end, 10);
	if (*end != '\0' || end - (m + 4) != 4)
		return false;
	*ymd_r = (int)(y * 10000 + mon * 100 + d);
	return true;
}

static const struct imap_cmd_arg *next_arg(struct parse_state *ps)
{
	if (ps->pos >= ps->count) {
		ps->error = "Missing argument";
		return NULL;
	}
	return &ps->args[ps->pos++];
}

static const char *next_string(struct parse_state *ps)
{
	const struct imap_cmd_arg *a = next_arg(ps);
	if (a == NULL)
		return NULL;
	const char *s = imap_cmd_arg_astring(a);
	if (s == NULL)
		ps->error = "Invalid string argument";
	return s;
}

static bool next_number(struct parse_state *ps, uint64_t *n_r)
{
	const struct imap_cmd_arg *a = next_arg(ps);
	if (a == NULL)
		return false;
	char *end;
	if (a->type != IMAP_CMD_ARG_ATOM || !isdigit((unsigned char)a->str[0])) {
		ps->error = "Invalid number";
		return false;
	}
	*n_r = strtoull(a->str, &end, 10);
	if (*end != '\0') {
		ps->error = "Invalid number";
		return false;
	}
	return true;
}

static struct node *parse_key(struct parse_state *ps, unsigned int depth);

static struct node *parse_list(struct parse_state *ps, const struct imap_cmd_arg *args,
			       size_t count, unsigned int depth)
{
	struct parse_state sub = *ps;
	sub.args = args;
	sub.count = count;
	sub.pos = 0;
	struct node *and = node_new(ps, N_AND);
	while (sub.pos < sub.count) {
		struct node *k = parse_key(&sub, depth + 1);
		if (k == NULL) {
			ps->error = sub.error;
			node_free(and);
			return NULL;
		}
		node_add(and, k);
	}
	ps->nodes = sub.nodes;
	ps->needs_text = sub.needs_text;
	ps->needs_size = sub.needs_size;
	ps->needs_date = sub.needs_date;
	ps->needs_modseq = sub.needs_modseq;
	if (and->nkids == 0) {
		ps->error = "Empty search list";
		node_free(and);
		return NULL;
	}
	return and;
}

static const struct {
	const char *name;
	enum node_kind kind;
	char letter;
} simple_keys[] = {
	{ "ALL", N_ALL, 0 },
	{ "ANSWERED", N_FLAG, MAILDIR_FLAG_REPLIED },
	{ "DELETED", N_FLAG, MAILDIR_FLAG_TRASHED },
	{ "DRAFT", N_FLAG, MAILDIR_FLAG_DRAFT },
	{ "FLAGGED", N_FLAG, MAILDIR_FLAG_FLAGGED },
	{ "SEEN", N_FLAG, MAILDIR_FLAG_SEEN },
	{ "UNANSWERED", N_UNFLAG, MAILDIR_FLAG_REPLIED },
	{ "UNDELETED", N_UNFLAG, MAILDIR_FLAG_TRASHED },
	{ "UNDRAFT", N_UNFLAG, MAILDIR_FLAG_DRAFT },
	{ "UNFLAGGED", N_UNFLAG, MAILDIR_FLAG_FLAGGED },
	{ "UNSEEN", N_UNFLAG, MAILDIR_FLAG_SEEN },
	{ "NEW", N_NEW, 0 },
	{ "OLD", N_OLD, 0 },
	{ "RECENT", N_RECENT, 0 },
};

static const struct {
	const char *name;
	enum node_kind kind;
} date_keys[] = {
	{ "BEFORE", N_BEFORE }, { "ON", N_ON }, { "SINCE", N_SINCE },
	{ "SENTBEFORE", N_SENTBEFORE }, { "SENTON", N_SENTON }, { "SENTSINCE", N_SENTSINCE },
};

static const char *const header_keys[] = { "BCC", "CC", "FROM", "SUBJECT", "TO" };

static struct node *parse_key(struct parse_state *ps, unsigned int depth)
{
	if (depth > SEARCH_MAX_DEPTH || ps->nodes > SEARCH_MAX_NODES) {
		ps->error = "Search program too complex";
		return NULL;
	}
	const struct imap_cmd_arg *a = next_arg(ps);
	if (a == NULL)
		return NULL;
	if (a->type == IMAP_CMD_ARG_LIST)
		return parse_list(ps, a->list, a->count, depth);
	if (a->type != IMAP_CMD_ARG_ATOM) {
		ps->error = "Invalid search key";
		return NULL;
	}
	const char *k = a->str;
	for (size_t i = 0; i < sizeof(simple_keys) / sizeof(simple_keys[0]); i++) {
		if (strcasecmp(k, simple_keys[i].name) == 0) {
			struct node *n = node_new(ps, simple_keys[i].kind);
			n->letter = simple_keys[i].letter;
			return n;
		}
	}
	for (size_t i = 0; i < sizeof(date_keys) / sizeof(date_keys[0]); i++) {
		if (strcasecmp(k, date_keys[i].name) != 0)
			continue;
		const char *d = next_string(ps);
		int ymd;
		if (d == NULL || !imap_search_parse_date(d, &ymd)) {
			ps->error = "Invalid date";
			return NULL;
		}
		struct node *n = node_new(ps, date_keys[i].kind);
		n->date = ymd;
		ps->needs_date = true;
		if (n->kind >= N_SENTBEFORE)
			ps->needs_text = true;
		return n;
	}
	for (size_t i = 0; i < sizeof(header_keys) / sizeof(header_keys[0]); i++) {
		if (strcasecmp(k, header_keys[i]) != 0)
			continue;
		const char *s = next_string(ps);
		if (s == NULL)
			return NULL;
		struct node *n = node_new(ps, N_HEADER);
		n->field = rg_strdup(header_keys[i]);
		n->str = rg_strdup(s);
		n->address = strcasecmp(k, "SUBJECT") != 0;
		ps->needs_text = true;
		return n;
	}
	if (strcasecmp(k, "HEADER") == 0) {
		const char *f = next_string(ps);
		const char *s = f != NULL ? next_string(ps) : NULL;
		if (s == NULL)
			return NULL;
		struct node *n = node_new(ps, N_HEADER);
		n->field = rg_strdup(f);
		n->str = rg_strdup(s);
		ps->needs_text = true;
		return n;
	}
	if (strcasecmp(k, "BODY") == 0 || strcasecmp(k, "TEXT") == 0) {
		const char *s = next_string(ps);
		if (s == NULL)
			return NULL;
		struct node *n = node_new(ps, toupper((unsigned char)k[0]) == 'B' ? N_BODY : N_TEXT);
		n->str = rg_strdup(s);
		ps->needs_text = true;
		return n;
	}
	if (strcasecmp(k, "KEYWORD") == 0 || strcasecmp(k, "UNKEYWORD") == 0) {
		const struct imap_cmd_arg *f = next_arg(ps);
		if (f == NULL || f->type != IMAP_CMD_ARG_ATOM) {
			ps->error = "Invalid keyword";
			return NULL;
		}
		struct node *n = node_new(ps, toupper((unsigned char)k[0]) == 'K' ? N_KEYWORD : N_UNKEYWORD);
		n->str = rg_strdup(f->str);
		return n;
	}
	if (strcasecmp(k, "LARGER") == 0 || strcasecmp(k, "SMALLER") == 0) {
		uint64_t num;
		if (!next_number(ps, &num))
			return NULL;
		struct node *n = node_new(ps, toupper((unsigned char)k[0]) == 'L' ? N_LARGER : N_SMALLER);
		n->num = num;
		ps->needs_size = true;
		return n;
	}
	if (strcasecmp(k, "MODSEQ") == 0) {
		/* MODSEQ [<entry-name> <entry-type>] <modseq>: entries name
		 * per-flag modseqs, which are the message's here */
		if (ps->pos + 2 < ps->count && ps->args[ps->pos].type != IMAP_CMD_ARG_LIST &&
		    ps->args[ps->pos + 1].type == IMAP_CMD_ARG_ATOM &&
		    !isdigit((unsigned char)ps->args[ps->pos].str[0])) {
			const char *type = ps->args[ps->pos + 1].str;
			if (strcasecmp(type, "priv") != 0 && strcasecmp(type, "shared") != 0 &&
			    strcasecmp(type, "all") != 0) {
				ps->error = "Invalid MODSEQ entry type";
				return NULL;
			}
			ps->pos += 2;
		}
		uint64_t num;
		if (!next_number(ps, &num))
			return NULL;
		struct node *n = node_new(ps, N_MODSEQ);
		n->num = num;
		ps->needs_modseq = true;
		return n;
	}
	if (strcasecmp(k, "NOT") == 0) {
		struct node *kid = parse_key(ps, depth + 1);
		if (kid == NULL)
			return NULL;
		struct node *n = node_new(ps, N_NOT);
		node_add(n, kid);
		return n;
	}
	if (strcasecmp(k, "OR") == 0) {
		struct node *x = parse_key(ps, depth + 1);
		if (x == NULL)
			return NULL;
		struct node *y = parse_key(ps, depth + 1);
		if (y == NULL) {
			node_free(x);
			return NULL;
		}
		struct node *n = node_new(ps, N_OR);
		node_add(n, x);
		node_add(n, y);
		return n;
	}
	bool uid = strcasecmp(k, "UID") == 0;
	const char *set = k;
	if (uid) {
		const struct imap_cmd_arg *s = next_arg(ps);
		if (s == NULL)
			return NULL;
		set = s->type == IMAP_CMD_ARG_ATOM ? s->str : "";
	}
	struct imap_seq_range *ranges;
	size_t nranges;
	if (!imap_seqset_parse(set, uid ? ps->max_uid : ps->max_seq, &ranges, &nranges)) {
		ps->error = uid ? "Invalid UID messageset" : "Unknown argument";
		return NULL;
	}
	struct node *n = node_new(ps, uid ? N_UID : N_SEQ);
	n->ranges = ranges;
	n->nranges = nranges;
	return n;
}

struct imap_search *imap_search_parse(const struct imap_cmd_arg *args, size_t count,
				      uint32_t max_seq, uint32_t max_uid, const char **error_r)
{
	struct parse_state ps = { .max_seq = max_seq, .max_uid = max_uid };
	struct node *root = count == 0 ? NULL : parse_list(&ps, args, count, 0);
	if (root == NULL) {
		*error_r = ps.error != NULL ? ps.error : "Missing search keys";
		return NULL;
	}
	struct imap_search *s = rg_calloc(1, sizeof(*s));
	s->root = root;
	s->needs_text = ps.needs_text;
	s->needs_size = ps.needs_size;
	s->needs_date = ps.needs_date;
	s->needs_modseq = ps.needs_modseq;
	return s;
}

void imap_search_free(struct imap_search *s)
{
	if (s == NULL)
		return;
	node_free(s->root);
	rg_free(s);
}

bool imap_search_needs_text(const struct imap_search *s)
{
	return s->needs_text;
}

bool imap_search_needs_size(const struct imap_search *s)
{
	return s->needs_size;
}

bool imap_search_needs_date(const struct imap_search *s)
{
	return s->needs_date;
}

bool imap_search_needs_modseq(const struct imap_search *s)
{
	return s->needs_modseq;
}

/* ---- matching ---- */

struct match_ctx {
	const struct imap_search_msg *msg;
	bool loaded;
	const char *text;
	size_t len, hdr_len;
};

static bool load(struct match_ctx *mc)
{
	if (!mc->loaded) {
		mc->loaded = true;
		mc->text = mc->msg->load != NULL ? mc->msg->load(mc->msg->ctx, &mc->len) : NULL;
		if (mc->text != NULL)
			mc->hdr_len = mime_header_size(mc->text, mc->len);
	}
	return mc->text != NULL;
}

/* case-insensitive (ASCII) substring; an empty needle always matches */
static bool contains(const char *hay, size_t len, const char *needle)
{
	size_t nl = strlen(needle);
	if (nl == 0)
		return true;
	if (nl > len)
		return false;
	unsigned char first = (unsigned char)tolower((unsigned char)needle[0]);
	for (size_t i = 0; i + nl <= len; i++) {
		if ((unsigned char)tolower((unsigned char)hay[i]) == first &&
		    strncasecmp(hay + i, needle, nl) == 0)
			return true;
	}
	return false;
}

/* header text is searched as the user reads it: RFC 2047 words decoded */
static bool contains_decoded(const char *text, const char *needle)
{
	char *dec = mime_decode_words(text);
	bool ok = contains(dec, strlen(dec), needle);
	rg_free(dec);
	return ok;
}

static int local_ymd(time_t t)
{
	struct tm tm;
	localtime_r(&t, &tm);
	return (tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
}

/* the date of a Date: header ("Mon, 23 Nov 2026 10:00:00 +0000"), in its
 * own zone; 0 when it cannot be read */
static int header_ymd(const char *v)
{
	const char *p = v;
	const char *comma = strchr(p, ',');
	if (comma != NULL)
		p = comma + 1;
	while (*p == ' ')
		p++;
	char *end;
	long d = strtol(p, &end, 10);
	if (end == p || d < 1 || d > 31)
		return 0;
	p = end;
	while (*p == ' ' || *p == '-')
		p++;
	int mon = -1;
	for (int i = 0; i < 12; i++) {
		if (strncasecmp(p, months[i], 3) == 0)
			mon = i + 1;
	}
	if (mon < 0)
		return 0;
	p += 3;
	while (*p == ' ' || *p == '-')
		p++;
	long y = strtol(p, &end, 10);
	if (end == p)
		return 0;
	if (y < 50)
		y += 2000;
	else if (y < 1000)
		y += 1900;
	return (int)(y * 10000 + mon * 100 + d);
}

static bool has_keyword(const struct imap_search_msg *m, const char *name)
{
	if (m->keywords == NULL)
		return false;
	for (const char *f = m->flags; *f != '\0'; f++) {
		int k = *f - 'a';
		if (k >= 0 && k < 26 && m->keywords[k] != NULL && strcasecmp(m->keywords[k], name) == 0)
			return true;
	}
	return false;
}

static bool match_node(const struct node *n, struct match_ctx *mc)
{
	const struct imap_search_msg *m = mc->msg;
	switch (n->kind) {
	case N_AND:
		for (size_t i = 0; i < n->nkids; i++) {
			if (!match_node(n->kids[i], mc))
				return false;
		}
		return true;
	case N_OR:
		return match_node(n->kids[0], mc) || match_node(n->kids[1], mc);
	case N_NOT:
		return !match_node(n->kids[0], mc);
	case N_ALL:
		return true;
	case N_KEYWORD:
	case N_UNKEYWORD:
		return has_keyword(m, n->str) == (n->kind == N_KEYWORD);
	case N_FLAG:
		return strchr(m->flags, n->letter) != NULL;
	case N_UNFLAG:
		return strchr(m->flags, n->letter) == NULL;
	case N_NEW:
		return m->recent && strchr(m->flags, MAILDIR_FLAG_SEEN) == NULL;
	case N_OLD:
		return !m->recent;
	case N_RECENT:
		return m->recent;
	case N_LARGER:
		return m->size > n->num;
	case N_SMALLER:
		return m->size < n->num;
	case N_BEFORE:
		return local_ymd(m->internal_date) < n->date;
	case N_ON:
		return local_ymd(m->internal_date) == n->date;
	case N_SINCE:
		return local_ymd(m->internal_date) >= n->date;
	case N_SENTBEFORE:
	case N_SENTON:
	case N_SENTSINCE: {
		if (!load(mc))
			return false;
		char *v = mime_header_get(mc->text, mc->hdr_len, "Date");
		int ymd = v != NULL ? header_ymd(v) : 0;
		rg_free(v);
		if (ymd == 0)
			ymd = local_ymd(m->internal_date); /* as Dovecot: fall back */
		return n->kind == N_SENTBEFORE ? ymd < n->date :
		       n->kind == N_SENTON ? ymd == n->date : ymd >= n->date;
	}
	case N_HEADER: {
		if (!load(mc))
			return false;
		char *v = mime_header_get_all(mc->text, mc->hdr_len, n->field);
		if (v == NULL)
			return false;
		if (n->address) {
			/* RFC 3501: the string is looked for in the envelope's
			 * address field, so comments and folding inside an
			 * address do not hide it */
			for (char *nl = strchr(v, '\n'); nl != NULL; nl = strchr(nl, '\n'))
				*nl = ',';
			char *addrs = mime_addresses_text(v);
			rg_free(v);
			v = addrs;
		}
		bool ok = contains_decoded(v, n->str);
		rg_free(v);
		return ok;
	}
	case N_BODY:
		if (!load(mc))
			return false;
		return contains(mc->text + mc->hdr_len, mc->len - mc->hdr_len, n->str);
	case N_TEXT:
		if (!load(mc))
			return false;
		if (contains(mc->text, mc->len, n->str))
			return true;
		{
			char *hdr = rg_strndup(mc->text, mc->hdr_len);
			bool ok = contains_decoded(hdr, n->str);
			rg_free(hdr);
			return ok;
		}
	case N_MODSEQ:
		return m->modseq >= n->num;
	case N_SEQ:
		return imap_seqset_contains(n->ranges, n->nranges, m->seq);
	case N_UID:
		return imap_seqset_contains(n->ranges, n->nranges, m->uid);
	}
	return false;
}

bool imap_search_match(const struct imap_search *s, const struct imap_search_msg *msg)
{
	struct match_ctx mc = { .msg = msg };
	return match_node(s->root, &mc);
}
