#include "login/pop3-parser.h"

#include <string.h>

#include "lib/alloc.h"

/* First allocation for a line: most pre-auth lines (CAPA, USER x) fit. */
#define POP3_PARSER_INITIAL_SIZE 64

void pop3_parser_init(struct pop3_parser *p)
{
	memset(p, 0, sizeof(*p));
}

static void pop3_parser_free_buf(struct pop3_parser *p)
{
	if (p->buf != NULL) {
		/* the line may be a PASS or a SASL response */
		explicit_bzero(p->buf, p->size);
		rg_free(p->buf);
	}
	p->buf = NULL;
	p->len = 0;
	p->size = 0;
}

void pop3_parser_deinit(struct pop3_parser *p)
{
	pop3_parser_free_buf(p);
	pop3_parser_init(p);
}

void pop3_parser_line_done(struct pop3_parser *p)
{
	if (p->line_held) {
		pop3_parser_free_buf(p);
		p->line_held = false;
	}
}

bool pop3_parser_idle(const struct pop3_parser *p)
{
	return !p->in_line && !p->line_held;
}

const char *pop3_parse_error_str(enum pop3_parse_error error)
{
	switch (error) {
	case POP3_PARSE_ERROR_NONE:
		return "no error";
	case POP3_PARSE_ERROR_TOO_LONG:
		return "line too long";
	case POP3_PARSE_ERROR_NUL:
		return "NUL byte in line";
	}
	return "unknown error";
}

/* Room for one more byte plus the terminating NUL. Grows by doubling up to
 * max_line + 2 (a provisional CR and the NUL); never realloc() so that no
 * copy of a password is left behind in freed memory unwiped. */
static void pop3_parser_reserve(struct pop3_parser *p, size_t max_line)
{
	if (p->len + 2 <= p->size)
		return;
	size_t cap = max_line + 2;
	size_t nsize = p->size == 0 ? POP3_PARSER_INITIAL_SIZE : p->size * 2;
	if (nsize > cap)
		nsize = cap;
	if (nsize < p->len + 2)
		nsize = p->len + 2;
	char *nbuf = rg_malloc(nsize);
	if (p->len > 0)
		memcpy(nbuf, p->buf, p->len);
	size_t len = p->len;
	pop3_parser_free_buf(p);
	p->buf = nbuf;
	p->len = len;
	p->size = nsize;
}

static void pop3_parser_start_skip(struct pop3_parser *p, enum pop3_parse_error error)
{
	pop3_parser_free_buf(p);
	p->skipping = true;
	p->error = error;
}

enum parse_result pop3_parser_feed(struct pop3_parser *p, const uint8_t *data, size_t len,
				   size_t max_line, size_t *consumed_r,
				   struct pop3_line *line_r, enum pop3_parse_error *error_r)
{
	pop3_parser_line_done(p);
	*error_r = POP3_PARSE_ERROR_NONE;

	for (size_t i = 0; i < len; i++) {
		if (p->skipping) {
			/* discard without buffering: a 10 MB line costs nothing */
			const uint8_t *lf = memchr(data + i, '\n', len - i);
			if (lf == NULL) {
				*consumed_r = len;
				return PARSE_MORE;
			}
			*consumed_r = (size_t)(lf - data) + 1;
			*error_r = p->error;
			p->skipping = false;
			p->in_line = false;
			p->error = POP3_PARSE_ERROR_NONE;
			return PARSE_ERROR;
		}
		uint8_t c = data[i];
		p->in_line = true;
		if (c == '\n') {
			if (p->len > 0 && p->buf[p->len - 1] == '\r')
				p->len--;
			*consumed_r = i + 1;
			p->in_line = false;
			memset(line_r, 0, sizeof(*line_r));
			if (p->buf == NULL) {
				line_r->line = "";
				return PARSE_OK;
			}
			p->buf[p->len] = '\0';
			p->line_held = true;
			line_r->line = p->buf;
			line_r->len = p->len;
			const char *sp = memchr(p->buf, ' ', p->len);
			line_r->cmd_len = sp == NULL ? p->len : (size_t)(sp - p->buf);
			line_r->args = sp == NULL ? NULL : sp + 1;
			return PARSE_OK;
		}
		if (c == '\0') {
			pop3_parser_start_skip(p, POP3_PARSE_ERROR_NUL);
			continue;
		}
		/* one byte past the limit is allowed only as the CR of CRLF */
		if (p->len > max_line || (p->len == max_line && c != '\r')) {
			pop3_parser_start_skip(p, POP3_PARSE_ERROR_TOO_LONG);
			continue;
		}
		pop3_parser_reserve(p, max_line);
		p->buf[p->len++] = (char)c;
	}
	*consumed_r = len;
	return PARSE_MORE;
}
