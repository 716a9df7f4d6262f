#include "mail/mime.h"
#include "mail/mime-private.h"

#include "lib/alloc.h"
#include "lib/base64.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- mime_buf ---- */

/* room for len more bytes and the NUL after them */
static void buf_reserve(struct mime_buf *b, size_t len)
{
	if (b->len + len + 1 > b->size) {
		size_t size = b->size == 0 ? 256 : b->size;
		while (size < b->len + len + 1)
			size *= 2;
		b->data = rg_realloc(b->data, size);
		b->size = size;
	}
}

void mime_buf_add(struct mime_buf *b, const void *data, size_t len)
{
	buf_reserve(b, len);
	if (len > 0)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

void mime_buf_str(struct mime_buf *b, const char *s)
{
	mime_buf_add(b, s, strlen(s));
}

void mime_buf_vprintf(struct mime_buf *b, const char *fmt, va_list ap)
{
	/* straight into the free space; only a longer result formats twice */
	size_t room = b->size - b->len;
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(room > 0 ? b->data + b->len : NULL, room, fmt, ap2);
	va_end(ap2);
	if (n < 0) {
		if (room > 0)
			b->data[b->len] = '\0';
		return;
	}
	if ((size_t)n >= room) {
		buf_reserve(b, (size_t)n);
		vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	}
	b->len += (size_t)n;
}

void mime_buf_printf(struct mime_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	mime_buf_vprintf(b, fmt, ap);
	va_end(ap);
}

void mime_buf_nstring(struct mime_buf *b, const char *s, size_t len)
{
	if (s == NULL) {
		mime_buf_str(b, "NIL");
		return;
	}
	bool quotable = len < 1024;
	for (size_t i = 0; i < len && quotable; i++) {
		unsigned char c = (unsigned char)s[i];
		quotable = c >= 0x20 && c < 0x80;
	}
	if (!quotable) {
		mime_buf_printf(b, "{%zu}\r\n", len);
		mime_buf_add(b, s, len);
		return;
	}
	mime_buf_add(b, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\')
			mime_buf_add(b, "\\", 1);
		mime_buf_add(b, &s[i], 1);
	}
	mime_buf_add(b, "\"", 1);
}

void mime_buf_free(struct mime_buf *b)
{
	rg_free(b->data);
	b->data = NULL;
	b->len = b->size = 0;
}

/* ---- header fields ---- */

size_t mime_header_size(const char *msg, size_t len)
{
	if (len >= 2 && msg[0] == '\r' && msg[1] == '\n')
		return 2;
	const char *p = memmem(msg, len, "\r\n\r\n", 4);
	return p == NULL ? len : (size_t)(p - msg) + 4;
}

/* Calls fn for each field: name[0..nlen), raw value (with folds) [0..vlen).
 * Stops when fn returns false. */
typedef bool field_fn(void *ctx, const char *name, size_t nlen, const char *value, size_t vlen);

static void header_fields(const char *hdr, size_t len, field_fn *fn, void *ctx)
{
	size_t pos = 0;
	while (pos < len) {
		const char *line = hdr + pos;
		if (line[0] == '\r' || line[0] == '\n')
			break;
		/* the field runs until a line that does not start with WSP */
		size_t end = pos;
		for (;;) {
			const char *nl = memchr(hdr + end, '\n', len - end);
			end = nl == NULL ? len : (size_t)(nl - hdr) + 1;
			if (end >= len || (hdr[end] != ' ' && hdr[end] != '\t'))
				break;
		}
		const char *colon = memchr(line, ':', end - pos);
		if (colon != NULL) {
			size_t nlen = (size_t)(colon - line);
			while (nlen > 0 && (line[nlen - 1] == ' ' || line[nlen - 1] == '\t'))
				nlen--;
			if (!fn(ctx, line, nlen, colon + 1, (size_t)(hdr + end - colon - 1)))
				return;
		}
		pos = end;
	}
}

/* value without CRLFs of folding, trimmed */
static char *unfold(const char *v, size_t len)
{
	char *out = rg_malloc(len + 1);
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		if (v[i] == '\r' || v[i] == '\n')
			continue;
		out[o++] = v[i] == '\t' ? ' ' : v[i];
	}
	size_t start = 0;
	while (start < o && out[start] == ' ')
		start++;
	while (o > start && out[o - 1] == ' ')
		o--;
	memmove(out, out + start, o - start);
	out[o - start] = '\0';
	return out;
}

struct get_ctx {
	const char *name;
	bool all;
	struct mime_buf buf;
	bool found;
};

static bool get_field(void *ctx, const char *name, size_t nlen, const char *value, size_t vlen)
{
	struct get_ctx *g = ctx;
	if (strlen(g->name) != nlen || strncasecmp(g->name, name, nlen) != 0)
		return true;
	char *v = unfold(value, vlen);
	if (g->found)
		mime_buf_add(&g->buf, "\n", 1);
	mime_buf_str(&g->buf, v);
	rg_free(v);
	g->found = true;
	return g->all;
}

char *mime_header_get(const char *hdr, size_t len, const char *name)
{
	struct get_ctx g = { .name = name };
	header_fields(hdr, len, get_field, &g);
	if (!g.found)
		return NULL;
	return g.buf.data != NULL ? g.buf.data : rg_strdup("");
}

char *mime_header_get_all(const char *hdr, size_t len, const char *name)
{
	struct get_ctx g = { .name = name, .all = true };
	header_fields(hdr, len, get_field, &g);
	if (!g.found)
		return NULL;
	return g.buf.data != NULL ? g.buf.data : rg_strdup("");
}

/* ---- RFC 2047 ---- */

/* longer than any real encoded word (75), short enough to bound the scans */
#define MIME_MAX_WORD 1024

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* one encoded word at s ("=?cs?E?text?="): decoded into out, length of the
 * word in *wlen_r; false when s is not one */
static bool decode_word(const char *s, struct mime_buf *out, size_t *wlen_r)
{
	if (s[0] != '=' || s[1] != '?')
		return false;
	const char *cs = s + 2, *q1 = memchr(cs, '?', strnlen(cs, MIME_MAX_WORD));
	if (q1 == NULL || q1 == cs || q1[1] == '\0' || q1[2] != '?')
		return false;
	char enc = (char)toupper((unsigned char)q1[1]);
	/* RFC 2047 words are at most 75 bytes: looking further would make a
	 * header full of "=?" quadratic */
	const char *text = q1 + 3;
	size_t window = strnlen(text, MIME_MAX_WORD);
	const char *end = memmem(text, window, "?=", 2);
	if (end == NULL || (enc != 'Q' && enc != 'B') || memchr(cs, ' ', (size_t)(end - cs)) != NULL)
		return false;
	size_t cslen = (size_t)(q1 - cs);
	const char *star = memchr(cs, '*', cslen); /* RFC 2231 language */
	if (star != NULL)
		cslen = (size_t)(star - cs);
	bool latin1 = (cslen == 10 && strncasecmp(cs, "iso-8859-1", 10) == 0) ||
		      (cslen == 12 && strncasecmp(cs, "windows-1252", 12) == 0);
	struct mime_buf raw = { 0 };
	if (enc == 'Q') {
		for (const char *p = text; p < end; p++) {
			char c = *p;
			if (c == '_') {
				c = ' ';
			} else if (c == '=' && p + 2 < end && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
				c = (char)(hexval(p[1]) * 16 + hexval(p[2]));
				p += 2;
			}
			mime_buf_add(&raw, &c, 1);
		}
	} else {
		/* end - text < MIME_MAX_WORD: the window above bounds it */
		char dec[BASE64_DECODED_MAX(MIME_MAX_WORD)];
		mime_buf_add(&raw, dec, base64_decode_lenient(text, (size_t)(end - text), dec));
	}
	for (size_t i = 0; i < raw.len; i++) {
		unsigned char c = (unsigned char)raw.data[i];
		if (latin1 && c >= 0x80) {
			char u[2] = { (char)(0xc0 | (c >> 6)), (char)(0x80 | (c & 0x3f)) };
			mime_buf_add(out, u, 2);
		} else {
			mime_buf_add(out, &raw.data[i], 1);
		}
	}
	mime_buf_free(&raw);
	*wlen_r = (size_t)(end + 2 - s);
	return true;
}

char *mime_decode_words(const char *s)
{
	struct mime_buf out = { 0 };
	mime_buf_add(&out, "", 0);
	const char *p = s;
	bool last_word = false;
	while (*p != '\0') {
		size_t wlen;
		if (p[0] == '=' && p[1] == '?') {
			struct mime_buf tmp = { 0 };
			if (decode_word(p, &tmp, &wlen)) {
				mime_buf_add(&out, tmp.data != NULL ? tmp.data : "", tmp.len);
				mime_buf_free(&tmp);
				p += wlen;
				last_word = true;
				continue;
			}
			mime_buf_free(&tmp);
		}
		if (last_word && (*p == ' ' || *p == '\t')) {
			/* whitespace between two encoded words disappears */
			const char *q = p;
			while (*q == ' ' || *q == '\t')
				q++;
			struct mime_buf tmp = { 0 };
			if (q[0] == '=' && q[1] == '?' && decode_word(q, &tmp, &wlen)) {
				mime_buf_free(&tmp);
				p = q;
				continue;
			}
			mime_buf_free(&tmp);
		}
		last_word = false;
		mime_buf_add(&out, p, 1);
		p++;
	}
	return out.data;
}

/* ---- structured values ---- */

static void skip_cfws(const char **p)
{
	for (;;) {
		while (**p == ' ' || **p == '\t')
			(*p)++;
		if (**p != '(')
			return;
		int depth = 0;
		do {
			if (**p == '\\' && (*p)[1] != '\0')
				(*p)++;
			else if (**p == '(')
				depth++;
			else if (**p == ')')
				depth--;
			(*p)++;
		} while (**p != '\0' && depth > 0);
	}
}

static bool is_tspecial(char c)
{
	return strchr("()<>@,;:\\\"/[]?=", c) != NULL || c == ' ' || c == '\t' ||
	       (unsigned char)c < 0x20;
}

static char *read_token(const char **p)
{
	skip_cfws(p);
	const char *start = *p;
	while (**p != '\0' && !is_tspecial(**p))
		(*p)++;
	return *p == start ? NULL : rg_strndup(start, (size_t)(*p - start));
}

static char *read_quoted(const char **p)
{
	struct mime_buf b = { 0 };
	mime_buf_add(&b, "", 0);
	(*p)++;
	while (**p != '\0' && **p != '"') {
		if (**p == '\\' && (*p)[1] != '\0')
			(*p)++;
		mime_buf_add(&b, *p, 1);
		(*p)++;
	}
	if (**p == '"')
		(*p)++;
	return b.data;
}

static void lower(char *s)
{
	for (; s != NULL && *s != '\0'; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* ";name=value" pairs after a Content-Type or Content-Disposition value */
static void parse_params(const char *p, struct mime_param **params_r, size_t *count_r)
{
	struct mime_param *params = NULL;
	size_t count = 0;
	for (;;) {
		skip_cfws(&p);
		if (*p != ';')
			break;
		p++;
		char *name = read_token(&p);
		if (name == NULL)
			break;
		skip_cfws(&p);
		if (*p != '=') {
			rg_free(name);
			break;
		}
		p++;
		skip_cfws(&p);
		char *value = *p == '"' ? read_quoted(&p) : read_token(&p);
		if (value == NULL)
			value = rg_strdup("");
		if (count >= 64) {
			rg_free(name);
			rg_free(value);
			continue;
		}
		lower(name);
		params = rg_realloc(params, (count + 1) * sizeof(*params));
		params[count].name = name;
		params[count].value = value;
		count++;
	}
	*params_r = params;
	*count_r = count;
}

const char *mime_param_get(const struct mime_part *part, const char *name)
{
	for (size_t i = 0; i < part->nparams; i++) {
		if (strcmp(part->params[i].name, name) == 0)
			return part->params[i].value;
	}
	return NULL;
}

/* ---- the part tree ---- */

struct parse_ctx {
	const char *msg;
	size_t parts;
};

static void part_parse(struct parse_ctx *ctx, struct mime_part *part, size_t off, size_t len,
		       unsigned int depth, bool digest_child);

static void set_type(struct mime_part *part, const char *type, const char *subtype)
{
	rg_free(part->type);
	rg_free(part->subtype);
	part->type = rg_strdup(type);
	part->subtype = rg_strdup(subtype);
}

/* parse msg[off..off+len) as the next child of the multipart part (the
 * caller checks MIME_MAX_PARTS) */
static void add_child(struct parse_ctx *ctx, struct mime_part *part, size_t off, size_t len,
		      unsigned int depth)
{
	part->children = rg_realloc(part->children, (part->nchildren + 1) * sizeof(*part->children));
	struct mime_part *child = &part->children[part->nchildren];
	memset(child, 0, sizeof(*child));
	ctx->parts++;
	part_parse(ctx, child, off, len, depth + 1, strcmp(part->subtype, "digest") == 0);
	part->nchildren++;
}

/* the children of a multipart body; false when no delimiter was found */
static bool split_multipart(struct parse_ctx *ctx, struct mime_part *part, const char *boundary,
			    unsigned int depth)
{
	const char *msg = ctx->msg;
	size_t blen = strlen(boundary);
	size_t pos = part->body_off, end = part->body_off + part->body_len;
	size_t part_start = 0;
	bool in_part = false;
	while (pos < end) {
		const char *nl = memchr(msg + pos, '\n', end - pos);
		size_t line_end = nl == NULL ? end : (size_t)(nl - msg) + 1;
		const char *line = msg + pos;
		size_t line_len = line_end - pos;
		if (line_len >= 2 + blen && line[0] == '-' && line[1] == '-' &&
		    memcmp(line + 2, boundary, blen) == 0) {
			bool close = line_len >= 4 + blen && line[2 + blen] == '-' && line[3 + blen] == '-';
			if (in_part && ctx->parts < MIME_MAX_PARTS) {
				/* the CRLF before a delimiter belongs to it */
				size_t pend = pos;
				if (pend > part_start && msg[pend - 1] == '\n')
					pend--;
				if (pend > part_start && msg[pend - 1] == '\r')
					pend--;
				add_child(ctx, part, part_start, pend - part_start, depth);
			}
			if (close) {
				in_part = false;
				break;
			}
			in_part = true;
			part_start = line_end;
		}
		pos = line_end;
	}
	if (in_part && part_start <= end && ctx->parts < MIME_MAX_PARTS) {
		/* no closing delimiter: the last part runs to the end */
		add_child(ctx, part, part_start, end - part_start, depth);
	}
	return part->nchildren > 0;
}

static void part_parse(struct parse_ctx *ctx, struct mime_part *part, size_t off, size_t len,
		       unsigned int depth, bool digest_child)
{
	const char *msg = ctx->msg;
	part->hdr_off = off;
	part->hdr_len = mime_header_size(msg + off, len);
	part->body_off = off + part->hdr_len;
	part->body_len = len - part->hdr_len;
	for (size_t i = 0; i < part->body_len; i++)
		part->lines += msg[part->body_off + i] == '\n';

	const char *hdr = msg + off;
	size_t hlen = part->hdr_len;
	char *ct = mime_header_get(hdr, hlen, "Content-Type");
	if (ct != NULL) {
		const char *p = ct;
		char *type = read_token(&p);
		skip_cfws(&p);
		char *subtype = NULL;
		if (type != NULL && *p == '/') {
			p++;
			subtype = read_token(&p);
		}
		if (type != NULL && subtype != NULL) {
			lower(type);
			lower(subtype);
			part->type = type;
			part->subtype = subtype;
			parse_params(p, &part->params, &part->nparams);
		} else {
			rg_free(type);
			rg_free(subtype);
		}
		rg_free(ct);
	}
	if (part->type == NULL) {
		if (digest_child)
			set_type(part, "message", "rfc822");
		else
			set_type(part, "text", "plain");
	}
	part->id = mime_header_get(hdr, hlen, "Content-ID");
	part->description = mime_header_get(hdr, hlen, "Content-Description");
	part->md5 = mime_header_get(hdr, hlen, "Content-MD5");
	part->language = mime_header_get(hdr, hlen, "Content-Language");
	part->location = mime_header_get(hdr, hlen, "Content-Location");
	char *cte = mime_header_get(hdr, hlen, "Content-Transfer-Encoding");
	if (cte != NULL) {
		const char *p = cte;
		part->encoding = read_token(&p);
		rg_free(cte);
	}
	char *disp = mime_header_get(hdr, hlen, "Content-Disposition");
	if (disp != NULL) {
		const char *p = disp;
		part->disposition = read_token(&p);
		if (part->disposition != NULL)
			parse_params(p, &part->disp_params, &part->ndisp_params);
		rg_free(disp);
	}

	if (depth >= MIME_MAX_DEPTH)
		return;
	if (strcmp(part->type, "multipart") == 0) {
		const char *boundary = mime_param_get(part, "boundary");
		if (boundary == NULL || *boundary == '\0' || !split_multipart(ctx, part, boundary, depth)) {
			/* a multipart without parts cannot be described: text */
			set_type(part, "text", "plain");
		}
	} else if (strcmp(part->type, "message") == 0 && strcmp(part->subtype, "rfc822") == 0 &&
		   ctx->parts < MIME_MAX_PARTS) {
		ctx->parts++;
		part->message = rg_calloc(1, sizeof(*part->message));
		part_parse(ctx, part->message, part->body_off, part->body_len, depth + 1, false);
	}
}

struct mime_part *mime_parse(const char *msg, size_t len)
{
	struct parse_ctx ctx = { .msg = msg };
	struct mime_part *root = rg_calloc(1, sizeof(*root));
	part_parse(&ctx, root, 0, len, 0, false);
	return root;
}

static void params_free(struct mime_param *params, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		rg_free(params[i].name);
		rg_free(params[i].value);
	}
	rg_free(params);
}

static void part_free_fields(struct mime_part *part)
{
	rg_free(part->type);
	rg_free(part->subtype);
	params_free(part->params, part->nparams);
	rg_free(part->id);
	rg_free(part->description);
	rg_free(part->encoding);
	rg_free(part->md5);
	rg_free(part->language);
	rg_free(part->location);
	rg_free(part->disposition);
	params_free(part->disp_params, part->ndisp_params);
	for (size_t i = 0; i < part->nchildren; i++)
		part_free_fields(&part->children[i]);
	rg_free(part->children);
	if (part->message != NULL) {
		part_free_fields(part->message);
		rg_free(part->message);
	}
}

void mime_free(struct mime_part *part)
{
	if (part == NULL)
		return;
	part_free_fields(part);
	rg_free(part);
}

const struct mime_part *mime_find_part(const struct mime_part *root, const char *numbers, size_t len)
{
	/* RFC 3501 6.4.5: a multipart's parts are numbered from 1; anything
	 * else is part 1 of itself. The numbers after a message/rfc822 part
	 * name parts of the message it encloses; after any other single part
	 * nothing may follow. */
	const struct mime_part *part = root;
	size_t pos = 0;
	while (pos < len) {
		if (!isdigit((unsigned char)numbers[pos]) || numbers[pos] == '0')
			return NULL;
		unsigned long n = 0;
		while (pos < len && isdigit((unsigned char)numbers[pos])) {
			n = n * 10 + (unsigned long)(numbers[pos++] - '0');
			if (n > MIME_MAX_PARTS)
				return NULL;
		}
		bool more = false;
		if (pos < len) {
			if (numbers[pos] != '.' || pos + 1 == len)
				return NULL;
			pos++;
			more = true;
		}
		if (part->nchildren > 0) {
			if (n > part->nchildren)
				return NULL;
			part = &part->children[n - 1];
		} else if (n != 1 || (more && part->message == NULL)) {
			return NULL;
		}
		if (more && part->message != NULL)
			part = part->message;
	}
	return part;
}
