/* sql-template.c — a query template as a statement with parameters (see
 * sql-template.h). One pass over the administrator's text: plain text is
 * copied, '…' literals are copied or replaced, quoted names and comments
 * are copied (a '%' in them refuses the conversion). */
#include "auth/sql-template.h"

#include "lib/alloc.h"
#include "lib/strbuf.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>


/* The end of a quoted run starting at p (its quote char q), doubled quotes
   inside; NULL when it does not end. */
static const char *quoted_end(const char *p, char q)
{
	for (p++; *p != '\0'; p++) {
		if (*p != q)
			continue;
		if (p[1] != q)
			return p + 1;
		p++;
	}
	return NULL;
}

static bool has_char(const char *p, const char *end, char c)
{
	return memchr(p, c, (size_t)(end - p)) != NULL;
}

/* The literal's text (between the quotes) with '' as '. */
static char *literal_text(const char *start, const char *end)
{
	char *s = rg_malloc((size_t)(end - start) + 1), *w = s;
	for (const char *p = start; p < end; p++) {
		*w++ = *p;
		if (*p == '\'')
			p++; /* the second of a doubled quote */
	}
	*w = '\0';
	return s;
}

bool sql_template_parse(const char *tmpl, struct sql_template *t_r)
{
	struct strbuf o = { 0 };
	struct sql_template t = { 0 };
	const char *p = tmpl;

	memset(t_r, 0, sizeof(*t_r));
	t.params = rg_calloc(SQL_TEMPLATE_MAX_PARAMS, sizeof(char *));
	strbuf_add(&o, "", 0);
	while (*p != '\0') {
		const char *end;
		if (*p == '\'') {
			end = quoted_end(p, '\'');
			if (end == NULL)
				goto refuse;
			bool prefixed = p > tmpl && (isalnum((unsigned char)p[-1]) || p[-1] == '_' ||
						     p[-1] == '&');
			if (!has_char(p, end, '%')) {
				strbuf_add(&o, p, (size_t)(end - p));
			} else {
				if (prefixed || has_char(p, end, '\\') ||
				    t.nparams == SQL_TEMPLATE_MAX_PARAMS)
					goto refuse;
				char num[16];
				int n = snprintf(num, sizeof(num), "$%u", t.nparams + 1);
				strbuf_add(&o, num, (size_t)n);
				t.params[t.nparams++] = literal_text(p + 1, end - 1);
			}
			p = end;
			continue;
		}
		if (*p == '"') {
			end = quoted_end(p, '"');
		} else if (p[0] == '-' && p[1] == '-') {
			end = p + strcspn(p, "\n");
		} else if (p[0] == '/' && p[1] == '*') {
			const char *close = strstr(p + 2, "*/");
			end = close != NULL ? close + 2 : NULL;
		} else if (*p == '%' || *p == '$') {
			goto refuse;
		} else {
			strbuf_add(&o, p, 1);
			p++;
			continue;
		}
		if (end == NULL || has_char(p, end, '%'))
			goto refuse;
		strbuf_add(&o, p, (size_t)(end - p));
		p = end;
	}
	if (t.nparams == 0)
		goto refuse;
	t.sql = o.buf;
	*t_r = t;
	return true;
refuse:
	rg_free(o.buf);
	sql_template_free(&t);
	return false;
}

void sql_template_free(struct sql_template *t)
{
	for (unsigned i = 0; t->params != NULL && i < t->nparams; i++)
		rg_free(t->params[i]);
	rg_free(t->params);
	rg_free(t->sql);
	memset(t, 0, sizeof(*t));
}
