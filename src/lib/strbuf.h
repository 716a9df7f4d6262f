/* strbuf.h — a growing NUL-terminated string: the builder of var-expand.c
 * and auth's sql-template.c. Zero-initialise it; buf is an rg_malloc()
 * block the caller takes (or rg_free()s) when done. */
#ifndef RG_STRBUF_H
#define RG_STRBUF_H

#include "lib/alloc.h"

#include <stddef.h>
#include <string.h>

struct strbuf {
	char *buf;
	size_t len, cap;
};

/* append n bytes of s, keeping buf NUL-terminated */
static inline void strbuf_add(struct strbuf *o, const char *s, size_t n)
{
	if (o->len + n + 1 > o->cap) {
		o->cap = (o->len + n + 1) * 2;
		o->buf = rg_realloc(o->buf, o->cap);
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

#endif
