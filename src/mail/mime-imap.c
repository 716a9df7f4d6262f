/* mime-imap.c — IMAP's views of a parsed message: ENVELOPE (with the
 * address-list parser it needs, also behind mime_addresses_text) and
 * BODYSTRUCTURE / BODY. The part tree comes from mime.c. */
#include "mail/mime.h"
#include "mail/mime-private.h"

#include "lib/alloc.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void buf_nstr(struct mime_buf *b, const char *s)
{
	mime_buf_nstring(b, s, s == NULL ? 0 : strlen(s));
}

/* ---- ENVELOPE ---- */

struct address {
	char *name, *route, *mailbox, *host;
	bool group_start, group_end;
};

static void addr_add(struct address **list, size_t *count, struct address a)
{
	if (*count >= 1000) {
		rg_free(a.name);
		rg_free(a.route);
		rg_free(a.mailbox);
		rg_free(a.host);
		return;
	}
	*list = rg_realloc(*list, (*count + 1) * sizeof(**list));
	(*list)[(*count)++] = a;
}

/* a phrase without comments and quotes, spaces squeezed */
static char *phrase_clean(const char *s, size_t len)
{
	struct mime_buf b = { 0 };
	mime_buf_add(&b, "", 0);
	const char *p = s, *end = s + len;
	while (p < end) {
		if (*p == '"') {
			p++;
			while (p < end && *p != '"') {
				if (*p == '\\' && p + 1 < end)
					p++;
				mime_buf_add(&b, p, 1);
				p++;
			}
			p++;
		} else if (*p == '(') {
			int depth = 0;
			do {
				if (*p == '(')
					depth++;
				else if (*p == ')')
					depth--;
				p++;
			} while (p < end && depth > 0);
		} else if (*p == ' ' || *p == '\t') {
			if (b.len > 0 && b.data[b.len - 1] != ' ')
				mime_buf_add(&b, " ", 1);
			p++;
		} else {
			mime_buf_add(&b, p, 1);
			p++;
		}
	}
	while (b.len > 0 && b.data[b.len - 1] == ' ')
		b.data[--b.len] = '\0';
	if (b.len == 0) {
		mime_buf_free(&b);
		return NULL;
	}
	return b.data;
}

static void addr_spec(const char *s, size_t len, struct address *a)
{
	char *spec = phrase_clean(s, len);
	if (spec == NULL)
		return;
	/* comments and folding may leave spaces around the dots and the "@"
	 * ("user (c)@ (c) domain.org"): an addr-spec has none */
	char *w = spec;
	for (const char *q = spec; *q != '\0'; q++)
		if (*q != ' ')
			*w++ = *q;
	*w = '\0';
	char *p = spec;
	/* obsolete source route "@a,@b:" (RFC 5322 4.4): ENVELOPE's adl */
	if (*p == '@') {
		char *colon = strchr(p, ':');
		if (colon != NULL) {
			a->route = rg_strndup(p, (size_t)(colon - p));
			p = colon + 1;
		}
	}
	char *at = strrchr(p, '@');
	if (at != NULL) {
		a->mailbox = rg_strndup(p, (size_t)(at - p));
		a->host = rg_strdup(at + 1);
	} else {
		a->mailbox = rg_strdup(p);
		a->host = rg_strdup("MISSING_DOMAIN");
	}
	rg_free(spec);
}

static void parse_mailbox(const char *s, size_t len, struct address **list, size_t *count)
{
	struct address a = { 0 };
	const char *lt = NULL, *gt = NULL;
	bool quoted = false;
	int depth = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\\' && i + 1 < len) {
			i++;
			continue;
		}
		if (s[i] == '"' && depth == 0)
			quoted = !quoted;
		else if (!quoted && s[i] == '(')
			depth++;
		else if (!quoted && s[i] == ')' && depth > 0)
			depth--;
		else if (!quoted && depth == 0 && s[i] == '<' && lt == NULL)
			lt = s + i;
		else if (!quoted && depth == 0 && s[i] == '>' && lt != NULL && gt == NULL)
			gt = s + i;
	}
	if (lt != NULL) {
		a.name = phrase_clean(s, (size_t)(lt - s));
		size_t inner = gt != NULL ? (size_t)(gt - lt - 1) : len - (size_t)(lt - s) - 1;
		addr_spec(lt + 1, inner, &a);
	} else {
		addr_spec(s, len, &a);
		if (a.mailbox == NULL)
			return; /* nothing but comments: no address (an empty group) */
		/* "user@host (Name)": the comment names the address */
		const char *open = memchr(s, '(', len), *close = open != NULL ?
			memchr(open, ')', len - (size_t)(open - s)) : NULL;
		if (close != NULL && close > open + 1)
			a.name = phrase_clean(open + 1, (size_t)(close - open - 1));
	}
	if (a.mailbox == NULL && a.name == NULL)
		return;
	if (a.mailbox == NULL) {
		a.mailbox = rg_strdup("");
		a.host = rg_strdup("MISSING_DOMAIN");
	}
	addr_add(list, count, a);
}

static void parse_addresses(const char *s, struct address **list_r, size_t *count_r)
{
	struct address *list = NULL;
	size_t count = 0, len = strlen(s), start = 0;
	bool quoted = false, in_group = false;
	int depth = 0, angle = 0;
	for (size_t i = 0; i <= len; i++) {
		char c = i < len ? s[i] : ',';
		if (c == '\\' && i + 1 < len) {
			i++;
			continue;
		}
		if (quoted) {
			if (c == '"')
				quoted = false;
			if (i < len)
				continue;
		}
		if (c == '"' && depth == 0) {
			quoted = true;
		} else if (c == '(') {
			depth++;
		} else if (c == ')' && depth > 0) {
			depth--;
		} else if (depth > 0 && i < len) {
			continue;
		} else if (c == '<') {
			angle++;
		} else if (c == '>' && angle > 0) {
			angle--;
		} else if (angle == 0 && c == ':' && !in_group) {
			struct address g = { .group_start = true, .mailbox = phrase_clean(s + start, i - start) };
			if (g.mailbox == NULL)
				g.mailbox = rg_strdup("");
			addr_add(&list, &count, g);
			in_group = true;
			start = i + 1;
		} else if (angle == 0 && (c == ',' || c == ';')) {
			parse_mailbox(s + start, i - start, &list, &count);
			start = i + 1;
			if (c == ';' && in_group) {
				addr_add(&list, &count, (struct address){ .group_end = true });
				in_group = false;
			}
		}
	}
	if (in_group)
		addr_add(&list, &count, (struct address){ .group_end = true });
	*list_r = list;
	*count_r = count;
}

char *mime_addresses_text(const char *value)
{
	struct address *list = NULL;
	size_t count = 0;
	parse_addresses(value, &list, &count);
	struct mime_buf b = { 0 };
	mime_buf_add(&b, "", 0);
	for (size_t i = 0; i < count; i++) {
		struct address *a = &list[i];
		if (a->group_start) {
			mime_buf_printf(&b, "%s%s:", b.len > 0 ? ", " : "", a->mailbox);
		} else if (a->group_end) {
			mime_buf_str(&b, ";");
		} else {
			if (b.len > 0 && b.data[b.len - 1] != ':')
				mime_buf_str(&b, ", ");
			else if (b.len > 0)
				mime_buf_str(&b, " ");
			if (a->name != NULL)
				mime_buf_printf(&b, "%s ", a->name);
			mime_buf_printf(&b, "<%s", a->mailbox);
			if (strcmp(a->host, "MISSING_DOMAIN") != 0)
				mime_buf_printf(&b, "@%s", a->host);
			mime_buf_str(&b, ">");
		}
		rg_free(a->name);
		rg_free(a->route);
		rg_free(a->mailbox);
		rg_free(a->host);
	}
	rg_free(list);
	return b.data;
}

static void envelope_addresses(struct mime_buf *out, const char *value)
{
	struct address *list = NULL;
	size_t count = 0;
	if (value != NULL)
		parse_addresses(value, &list, &count);
	if (count == 0) {
		mime_buf_str(out, "NIL");
		rg_free(list);
		return;
	}
	mime_buf_str(out, "(");
	for (size_t i = 0; i < count; i++) {
		struct address *a = &list[i];
		mime_buf_str(out, "(");
		if (a->group_end) {
			mime_buf_str(out, "NIL NIL NIL NIL");
		} else if (a->group_start) {
			mime_buf_str(out, "NIL NIL ");
			buf_nstr(out, a->mailbox);
			mime_buf_str(out, " NIL");
		} else {
			buf_nstr(out, a->name);
			mime_buf_str(out, " ");
			buf_nstr(out, a->route);
			mime_buf_str(out, " ");
			buf_nstr(out, a->mailbox);
			mime_buf_str(out, " ");
			buf_nstr(out, a->host);
		}
		mime_buf_str(out, ")");
		rg_free(a->name);
		rg_free(a->route);
		rg_free(a->mailbox);
		rg_free(a->host);
	}
	mime_buf_str(out, ")");
	rg_free(list);
}

void mime_envelope(const char *hdr, size_t len, struct mime_buf *out)
{
	static const char *const fields[] = {
		"Date", "Subject", "From", "Sender", "Reply-To", "To", "Cc", "Bcc",
		"In-Reply-To", "Message-ID",
	};
	char *v[10];
	for (size_t i = 0; i < 10; i++)
		v[i] = mime_header_get(hdr, len, fields[i]);
	/* Sender and Reply-To default to From */
	for (size_t i = 3; i <= 4; i++) {
		if ((v[i] == NULL || v[i][0] == '\0') && v[2] != NULL) {
			rg_free(v[i]);
			v[i] = rg_strdup(v[2]);
		}
	}
	mime_buf_str(out, "(");
	for (size_t i = 0; i < 10; i++) {
		if (i > 0)
			mime_buf_str(out, " ");
		if (i >= 2 && i <= 7)
			envelope_addresses(out, v[i]);
		else
			buf_nstr(out, v[i] != NULL && v[i][0] != '\0' ? v[i] : NULL);
		rg_free(v[i]);
	}
	mime_buf_str(out, ")");
}

/* ---- BODYSTRUCTURE ---- */

static void params_out(struct mime_buf *out, const struct mime_param *params, size_t count)
{
	if (count == 0) {
		mime_buf_str(out, "NIL");
		return;
	}
	mime_buf_str(out, "(");
	for (size_t i = 0; i < count; i++) {
		if (i > 0)
			mime_buf_str(out, " ");
		buf_nstr(out, params[i].name);
		mime_buf_str(out, " ");
		buf_nstr(out, params[i].value);
	}
	mime_buf_str(out, ")");
}

static void extension_out(struct mime_buf *out, const struct mime_part *part)
{
	mime_buf_str(out, " ");
	if (part->disposition == NULL) {
		mime_buf_str(out, "NIL");
	} else {
		mime_buf_str(out, "(");
		buf_nstr(out, part->disposition);
		mime_buf_str(out, " ");
		params_out(out, part->disp_params, part->ndisp_params);
		mime_buf_str(out, ")");
	}
	mime_buf_str(out, " ");
	buf_nstr(out, part->language);
	mime_buf_str(out, " ");
	buf_nstr(out, part->location);
}

void mime_bodystructure(const struct mime_part *part, const char *msg, bool extended,
			struct mime_buf *out)
{
	mime_buf_str(out, "(");
	if (part->nchildren > 0) {
		for (size_t i = 0; i < part->nchildren; i++)
			mime_bodystructure(&part->children[i], msg, extended, out);
		mime_buf_str(out, " ");
		buf_nstr(out, part->subtype);
		if (extended) {
			mime_buf_str(out, " ");
			params_out(out, part->params, part->nparams);
			extension_out(out, part);
		}
		mime_buf_str(out, ")");
		return;
	}
	buf_nstr(out, part->type);
	mime_buf_str(out, " ");
	buf_nstr(out, part->subtype);
	mime_buf_str(out, " ");
	bool text = strcmp(part->type, "text") == 0;
	if (text && mime_param_get(part, "charset") == NULL) {
		/* RFC 2045's default, as Dovecot reports it */
		mime_buf_str(out, "(\"charset\" \"us-ascii\"");
		for (size_t i = 0; i < part->nparams; i++) {
			mime_buf_str(out, " ");
			buf_nstr(out, part->params[i].name);
			mime_buf_str(out, " ");
			buf_nstr(out, part->params[i].value);
		}
		mime_buf_str(out, ")");
	} else {
		params_out(out, part->params, part->nparams);
	}
	mime_buf_str(out, " ");
	buf_nstr(out, part->id);
	mime_buf_str(out, " ");
	buf_nstr(out, part->description);
	mime_buf_str(out, " ");
	buf_nstr(out, part->encoding != NULL ? part->encoding : "7bit");
	mime_buf_printf(out, " %zu", part->body_len);
	if (text) {
		mime_buf_printf(out, " %zu", part->lines);
	} else if (part->message != NULL) {
		mime_buf_str(out, " ");
		mime_envelope(msg + part->message->hdr_off, part->message->hdr_len, out);
		mime_buf_str(out, " ");
		mime_bodystructure(part->message, msg, extended, out);
		mime_buf_printf(out, " %zu", part->lines);
	}
	if (extended) {
		mime_buf_str(out, " ");
		buf_nstr(out, part->md5);
		extension_out(out, part);
	}
	mime_buf_str(out, ")");
}
