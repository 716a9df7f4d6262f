#include "lib/var-expand.h"

#include "lib/alloc.h"
#include "lib/strbuf.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MODIFIERS "LUEXRDT"
#define MAX_MODIFIERS 8


static const struct var_expand_entry *find_key(const struct var_expand_entry *t, char key)
{
	for (; t->key != 0 || t->long_key != NULL; t++) {
		if (t->key == key)
			return t;
	}
	return NULL;
}

static const struct var_expand_entry *find_long(const struct var_expand_entry *t,
						const char *name, size_t len)
{
	for (; t->key != 0 || t->long_key != NULL; t++) {
		if (t->long_key != NULL && strlen(t->long_key) == len &&
		    memcmp(t->long_key, name, len) == 0)
			return t;
	}
	return NULL;
}

/* apply one modifier to v (allocated), returning the new allocated value */
static char *modify(char mod, char *v)
{
	size_t len = strlen(v);
	switch (mod) {
	case 'L':
		for (size_t i = 0; i < len; i++)
			v[i] = (char)tolower((unsigned char)v[i]);
		return v;
	case 'U':
		for (size_t i = 0; i < len; i++)
			v[i] = (char)toupper((unsigned char)v[i]);
		return v;
	case 'R':
		for (size_t i = 0; i < len / 2; i++) {
			char c = v[i];
			v[i] = v[len - 1 - i];
			v[len - 1 - i] = c;
		}
		return v;
	case 'T':
		while (len > 0 && isspace((unsigned char)v[len - 1]))
			v[--len] = '\0';
		return v;
	case 'X': {
		unsigned long long n = strtoull(v, NULL, 10);
		rg_free(v);
		return rg_strdup_printf("%llx", n);
	}
	case 'E': {
		struct strbuf o = { 0 };
		strbuf_add(&o, "", 0);
		for (size_t i = 0; i < len; i++) {
			if (v[i] == '\\' || v[i] == '"' || v[i] == '\'')
				strbuf_add(&o, "\\", 1);
			strbuf_add(&o, &v[i], 1);
		}
		rg_free(v);
		return o.buf;
	}
	case 'D': {
		/* sub.example.org -> dc=sub,dc=example,dc=org */
		struct strbuf o = { 0 };
		strbuf_add(&o, "", 0);
		const char *p = v;
		for (;;) {
			size_t n = strcspn(p, ".");
			if (o.len > 0)
				strbuf_add(&o, ",", 1);
			strbuf_add(&o, "dc=", 3);
			strbuf_add(&o, p, n);
			if (p[n] == '\0')
				break;
			p += n + 1;
		}
		rg_free(v);
		return o.buf;
	}
	}
	return v;
}

/* the substring rule of var-expand.h */
static char *substring(const char *v, bool have_offset, long offset, bool have_width, long width)
{
	size_t len = strlen(v);
	size_t start = 0, n = len;
	if (have_offset) {
		if (offset >= 0) {
			if ((size_t)offset >= len)
				return rg_strdup("");
			start = (size_t)offset;
		} else {
			size_t back = (size_t)(-offset);
			start = back >= len ? 0 : len - back;
		}
		n = len - start;
	}
	if (have_width) {
		if (width < 0 && !have_offset) {
			/* the last -width bytes */
			size_t w = (size_t)(-width);
			if (w < len) {
				start = len - w;
				n = w;
			}
		} else if (width >= 0 && (size_t)width < n) {
			n = (size_t)width;
		}
	}
	return rg_strndup(v + start, n);
}

static int fail(char **error_r, const char *what, const char *at, size_t len)
{
	char shown[40];
	size_t n = len < sizeof(shown) - 1 ? len : sizeof(shown) - 1;
	for (size_t i = 0; i < n; i++)
		shown[i] = isprint((unsigned char)at[i]) ? at[i] : '?';
	shown[n] = '\0';
	*error_r = rg_strdup_printf("%s '%s'", what, shown);
	return -1;
}

int var_expand(const char *str, const struct var_expand_entry *table,
	       var_expand_escape_fn *escape, void *context, char **result_r, char **error_r)
{
	struct strbuf o = { 0 };
	strbuf_add(&o, "", 0);
	const char *p = str;
	while (*p != '\0') {
		const char *pct = strchr(p, '%');
		if (pct == NULL) {
			strbuf_add(&o, p, strlen(p));
			break;
		}
		strbuf_add(&o, p, (size_t)(pct - p));
		const char *s = pct + 1;
		if (*s == '%') {
			strbuf_add(&o, "%", 1);
			p = s + 1;
			continue;
		}
		char mods[MAX_MODIFIERS];
		unsigned nmods = 0;
		bool have_offset = false, have_width = false;
		long offset = 0, width = 0;
		for (unsigned round = 0; round < 2; round++) {
			while (*s != '\0' && strchr(MODIFIERS, *s) != NULL) {
				if (nmods == MAX_MODIFIERS) {
					rg_free(o.buf);
					return fail(error_r, "too many modifiers in", pct,
						    (size_t)(s - pct) + 1);
				}
				mods[nmods++] = *s++;
			}
			if (round == 1 || have_width)
				break;
			bool neg = *s == '-';
			const char *num = neg ? s + 1 : s;
			if (!isdigit((unsigned char)*num))
				continue;
			char *end;
			long a = strtol(num, &end, 10);
			if (a > 100000)
				a = 100000;
			s = end;
			if (*s == '.') {
				s++;
				if (!isdigit((unsigned char)*s)) {
					rg_free(o.buf);
					return fail(error_r, "bad substring in", pct, (size_t)(s - pct) + 1);
				}
				long b = strtol(s, &end, 10);
				s = end;
				have_offset = true;
				offset = neg ? -a : a;
				have_width = true;
				width = b > 100000 ? 100000 : b;
			} else {
				have_width = true;
				width = neg ? -a : a;
			}
		}
		const struct var_expand_entry *e;
		const char *name_end;
		if (*s == '{') {
			const char *close = strchr(s + 1, '}');
			if (close == NULL) {
				rg_free(o.buf);
				return fail(error_r, "missing '}' in", pct, strlen(pct));
			}
			e = find_long(table, s + 1, (size_t)(close - s - 1));
			name_end = close + 1;
		} else if (*s == '\0') {
			rg_free(o.buf);
			return fail(error_r, "incomplete %-variable at the end:", pct, strlen(pct));
		} else {
			e = find_key(table, *s);
			name_end = s + 1;
		}
		if (e == NULL) {
			rg_free(o.buf);
			if (s[0] != '\0' && strchr("HNM", s[0]) != NULL)
				return fail(error_r, "unsupported modifier (hashes) in", pct,
					    (size_t)(name_end - pct));
			return fail(error_r, "unknown variable", pct, (size_t)(name_end - pct));
		}
		char *v = substring(e->value != NULL ? e->value : "", have_offset, offset,
				    have_width, width);
		for (unsigned i = 0; i < nmods; i++)
			v = modify(mods[i], v);
		if (escape != NULL) {
			char *esc = escape(v, context);
			rg_free(v);
			v = esc;
		}
		strbuf_add(&o, v, strlen(v));
		rg_free(v);
		p = name_end;
	}
	*result_r = o.buf;
	return 0;
}

bool var_has_variables(const char *str)
{
	for (const char *p = strchr(str, '%'); p != NULL; p = strchr(p, '%')) {
		if (p[1] != '%')
			return true;
		p += 2;
	}
	return false;
}
