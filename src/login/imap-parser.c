#include "login/imap-parser.h"

#include <string.h>
#include <strings.h>

#include "lib/alloc.h"
#include "login/login-proto.h"

#define STORE_INITIAL_CAP 256
/* bytes stored never exceed bytes of the line consumed (every NUL replaces a
 * separator or quote), so one more than the line limit always suffices */
#define STORE_MAX_CAP (IMAP_PARSER_MAX_ID_LINE + 1)

/* The command in progress. buf holds the tag, the name and every argument,
 * each NUL-terminated, in arrival order: [0, used) is written, nothing past it
 * is meaningful. offs[] are offsets into buf (buf moves when it grows);
 * args[].str pointers are set only when the command completes. */
struct imap_parser_store {
	unsigned int nargs;
	size_t used, cap, name_off;
	bool complete;
	size_t offs[IMAP_PARSER_MAX_ARGS];
	struct imap_arg args[IMAP_PARSER_MAX_ARGS];
	char *buf;
};

enum {
	sw_start = 0,
	sw_tag,
	sw_name_start,
	sw_name,
	sw_arg_start,
	sw_atom,
	sw_quoted,
	sw_quoted_escape,
	sw_literal_size,
	sw_literal_plus,
	sw_literal_cr,
	sw_literal_lf,
	sw_literal_data,
	sw_after_arg,
	sw_almost_done,
	sw_skip_literal,
	sw_skip_line,
	sw_dead,
};

/* RFC 3501 ASTRING-CHAR minus '+': CHAR except atom-specials, ']' allowed */
static bool is_tag_char(uint8_t c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	return strchr("(){%*\"\\+", c) == NULL;
}

/* Looser than RFC 3501 on purpose, like Dovecot: 8-bit bytes (UTF-8 user
 * names) and list wildcards are accepted in atoms. */
static bool is_atom_char(uint8_t c)
{
	if (c <= 0x20 || c == 0x7f)
		return false;
	return c >= 0x80 || strchr("(){\"\\", c) == NULL;
}

void imap_parser_init(struct imap_parser *p)
{
	memset(p, 0, sizeof(*p));
	p->list_arg = -1;
}

static void store_free(struct imap_parser *p)
{
	struct imap_parser_store *st = p->store;
	if (st == NULL)
		return;
	explicit_bzero(st->buf, st->cap);
	rg_free(st->buf);
	explicit_bzero(st, sizeof(*st));
	rg_free(st);
	p->store = NULL;
}

void imap_parser_deinit(struct imap_parser *p)
{
	store_free(p);
}

static void store_alloc(struct imap_parser *p)
{
	struct imap_parser_store *st = rg_calloc(1, sizeof(*st));
	st->cap = STORE_INITIAL_CAP;
	st->buf = rg_malloc(st->cap);
	p->store = st;
}

/* grow by copying so the old copy (maybe a password) can be wiped */
static bool store_reserve(struct imap_parser_store *st, size_t more)
{
	if (st->used + more <= st->cap)
		return true;
	if (st->used + more > STORE_MAX_CAP)
		return false;
	size_t cap = st->cap;
	while (cap < st->used + more)
		cap *= 2;
	if (cap > STORE_MAX_CAP)
		cap = STORE_MAX_CAP;
	char *nbuf = rg_malloc(cap);
	memcpy(nbuf, st->buf, st->used);
	explicit_bzero(st->buf, st->cap);
	rg_free(st->buf);
	st->buf = nbuf;
	st->cap = cap;
	return true;
}

static bool put(struct imap_parser *p, uint8_t c)
{
	struct imap_parser_store *st = p->store;
	if (!store_reserve(st, 1))
		return false;
	st->buf[st->used++] = (char)c;
	return true;
}

/* Record the error and pick how the rest of the line is discarded: a byte
 * inside literal data is not a line end, and an LF outside one ends it. */
static void fail(struct imap_parser *p, const char *reason, uint8_t c)
{
	p->error = reason;
	if (p->state == sw_literal_data) {
		p->literal_left--;
		p->state = p->literal_left > 0 ? sw_skip_literal : sw_skip_line;
	} else if (c == '\n') {
		p->state = sw_start;
	} else {
		p->state = sw_skip_line;
	}
}

static void fail_fatal(struct imap_parser *p, const char *reason)
{
	p->error = reason;
	p->fatal = true;
	p->state = sw_dead;
}

static bool begin_arg(struct imap_parser *p, enum imap_arg_type type)
{
	struct imap_parser_store *st = p->store;
	if (st->nargs == IMAP_PARSER_MAX_ARGS)
		return false;
	struct imap_arg *arg = &st->args[st->nargs];
	arg->type = type;
	arg->list_count = 0;
	arg->str = NULL;
	arg->len = 0;
	st->offs[st->nargs] = st->used;
	if (type == IMAP_ARG_LIST)
		p->list_arg = (int)st->nargs;
	else if (p->list_arg >= 0)
		st->args[p->list_arg].list_count++;
	st->nargs++;
	return true;
}

static bool end_arg(struct imap_parser *p)
{
	struct imap_parser_store *st = p->store;
	struct imap_arg *arg = &st->args[st->nargs - 1];
	size_t off = st->offs[st->nargs - 1];
	arg->len = st->used - off;
	if (!put(p, '\0'))
		return false;
	if (arg->type == IMAP_ARG_ATOM && arg->len == 3 &&
	    strncasecmp(st->buf + off, "NIL", 3) == 0)
		arg->type = IMAP_ARG_NIL;
	return true;
}

static bool close_list(struct imap_parser *p)
{
	if (p->list_arg < 0)
		return false;
	p->list_arg = -1;
	return true;
}

static void finish_command(struct imap_parser *p)
{
	struct imap_parser_store *st = p->store;
	for (unsigned int i = 0; i < st->nargs; i++) {
		if (st->args[i].type != IMAP_ARG_LIST)
			st->args[i].str = st->buf + st->offs[i];
	}
	st->complete = true;
	p->state = sw_start;
}

/* After '}': the whole literal, the CRLF after the brace and the final CRLF
 * must still fit in the line; decided before anything is allocated. */
static bool literal_fits(const struct imap_parser *p)
{
	size_t room = p->max_line - p->line_len;
	return room >= 4 && p->literal_size <= room - 4;
}

enum parse_result imap_parser_parse(struct imap_parser *p, const uint8_t *data,
				    size_t len, size_t *consumed_r)
{
	size_t i = 0;

	/* the previous command or error was not released by the caller */
	if (p->store != NULL && (p->store->complete || p->error != NULL))
		imap_parser_command_done(p);
	p->error = p->fatal ? p->error : NULL;

	for (; i < len; i++) {
		uint8_t c = data[i];

		switch (p->state) {
		case sw_dead:
			i = len - 1;
			continue;
		case sw_skip_line:
			if (c == '\n')
				p->state = sw_start;
			continue;
		case sw_skip_literal:
			if (--p->literal_left == 0)
				p->state = sw_skip_line;
			continue;
		case sw_start:
			p->line_len = 0;
			p->max_line = LOGIN_MAX_LINE;
			p->list_arg = -1;
			p->tag_done = false;
			if (p->store == NULL)
				store_alloc(p);
			break;
		default:
			break;
		}

		if (++p->line_len > p->max_line) {
			fail(p, "Command line too long", c);
			goto error;
		}
		if (c == '\0') {
			fail(p, "NUL characters not allowed", c);
			goto error;
		}

		switch (p->state) {
		case sw_start:
			if (is_tag_char(c)) {
				put(p, c);
				p->state = sw_tag;
				break;
			}
			fail(p, c == ' ' || c == '\r' || c == '\n' ? "Missing tag" :
			     "Invalid characters in tag", c);
			goto error;
		case sw_tag:
			if (is_tag_char(c)) {
				put(p, c);
			} else if (c == ' ') {
				put(p, '\0');
				p->tag_done = true;
				p->state = sw_name_start;
			} else if (c == '\r' || c == '\n') {
				/* the tag is complete: Dovecot answers it tagged */
				put(p, '\0');
				p->tag_done = true;
				fail(p, "Missing command", c);
				goto error;
			} else {
				fail(p, "Invalid characters in tag", c);
				goto error;
			}
			break;
		case sw_name_start:
			if (!is_atom_char(c)) {
				fail(p, c == ' ' || c == '\r' || c == '\n' ? "Missing command" :
				     "Invalid characters in command name", c);
				goto error;
			}
			p->store->name_off = p->store->used;
			put(p, c);
			p->state = sw_name;
			break;
		case sw_name:
			if (is_atom_char(c)) {
				put(p, c);
				break;
			}
			if (c != ' ' && c != '\r' && c != '\n') {
				fail(p, "Invalid characters in command name", c);
				goto error;
			}
			put(p, '\0');
			if (strcasecmp(p->store->buf + p->store->name_off, "ID") == 0)
				p->max_line = IMAP_PARSER_MAX_ID_LINE;
			if (c == '\n')
				goto done;
			p->state = c == ' ' ? sw_arg_start : sw_almost_done;
			break;
		case sw_arg_start:
			if (c == ' ')
				break;
			if (c == '\r') {
				p->state = sw_almost_done;
				break;
			}
			if (c == '\n')
				goto done;
			if (c == ')') {
				if (!close_list(p)) {
					fail(p, "Unexpected ')'", c);
					goto error;
				}
				p->state = sw_after_arg;
				break;
			}
			if (c == '(' && p->list_arg >= 0) {
				fail(p, "Nested lists not supported", c);
				goto error;
			}
			if (c != '(' && c != '"' && c != '{' && !is_atom_char(c)) {
				fail(p, "Invalid characters in atom", c);
				goto error;
			}
			if (!begin_arg(p, c == '(' ? IMAP_ARG_LIST : c == '"' ? IMAP_ARG_QUOTED :
				       c == '{' ? IMAP_ARG_LITERAL : IMAP_ARG_ATOM)) {
				fail(p, "Too many arguments", c);
				goto error;
			}
			if (c == '"') {
				p->state = sw_quoted;
			} else if (c == '{') {
				p->literal_size = 0;
				p->literal_digits = false;
				p->literal_nonsync = false;
				p->state = sw_literal_size;
			} else if (c != '(') {
				put(p, c);
				p->state = sw_atom;
			}
			break;
		case sw_atom:
			if (is_atom_char(c)) {
				if (!put(p, c)) {
					fail(p, "Command line too long", c);
					goto error;
				}
				break;
			}
			if (c != ' ' && c != '\r' && c != '\n' && c != ')') {
				fail(p, "Invalid characters in atom", c);
				goto error;
			}
			end_arg(p);
			if (c == '\n')
				goto done;
			if (c == ')') {
				if (!close_list(p)) {
					fail(p, "Unexpected ')'", c);
					goto error;
				}
				p->state = sw_after_arg;
			} else {
				p->state = c == ' ' ? sw_arg_start : sw_almost_done;
			}
			break;
		case sw_quoted:
			if (c == '"') {
				end_arg(p);
				p->state = sw_after_arg;
			} else if (c == '\\') {
				p->state = sw_quoted_escape;
			} else if (c == '\r' || c == '\n') {
				fail(p, "Missing '\"'", c);
				goto error;
			} else {
				put(p, c);
			}
			break;
		case sw_quoted_escape:
			if (c != '\\' && c != '"') {
				fail(p, "Invalid escape in quoted string", c);
				goto error;
			}
			put(p, c);
			p->state = sw_quoted;
			break;
		case sw_literal_size:
			if (c >= '0' && c <= '9') {
				p->literal_digits = true;
				/* saturate: anything past the line limit is too large anyway */
				if (p->literal_size <= p->max_line)
					p->literal_size = p->literal_size * 10 + (size_t)(c - '0');
				break;
			}
			if (!p->literal_digits || (c != '+' && c != '}')) {
				fail(p, "Invalid literal size", c);
				goto error;
			}
			if (c == '+') {
				p->literal_nonsync = true;
				p->state = sw_literal_plus;
				break;
			}
			goto brace;
		case sw_literal_plus:
			if (c != '}') {
				fail(p, "Invalid literal size", c);
				goto error;
			}
		brace:
			if (!literal_fits(p)) {
				/* the client sends a non-synchronizing literal without
				 * waiting: its bytes can't be told from commands */
				if (p->literal_nonsync)
					fail_fatal(p, "Literal size too large");
				else
					fail(p, "Literal size too large", c);
				goto error;
			}
			p->state = sw_literal_cr;
			break;
		case sw_literal_cr:
			if (c == '\r') {
				p->state = sw_literal_lf;
				break;
			}
			/* fall through */
		case sw_literal_lf:
			if (c != '\n') {
				fail(p, "Missing CRLF after literal size", c);
				goto error;
			}
			/* fits by literal_fits() and stored <= line_len */
			store_reserve(p->store, p->literal_size + 1);
			p->store->offs[p->store->nargs - 1] = p->store->used;
			if (p->literal_size == 0) {
				end_arg(p);
				p->state = sw_after_arg;
			} else {
				p->literal_left = p->literal_size;
				p->state = sw_literal_data;
			}
			if (!p->literal_nonsync) {
				p->continuation = true;
				*consumed_r = i + 1;
				return PARSE_MORE;
			}
			break;
		case sw_literal_data:
			put(p, c);
			if (--p->literal_left == 0) {
				end_arg(p);
				p->state = sw_after_arg;
			}
			break;
		case sw_after_arg:
			if (c == ' ') {
				p->state = sw_arg_start;
			} else if (c == '\r') {
				p->state = sw_almost_done;
			} else if (c == '\n') {
				goto done;
			} else if (c == ')') {
				if (!close_list(p)) {
					fail(p, "Unexpected ')'", c);
					goto error;
				}
			} else {
				fail(p, "Missing space after argument", c);
				goto error;
			}
			break;
		case sw_almost_done:
			if (c != '\n') {
				fail(p, "Missing LF after CR", c);
				goto error;
			}
			goto done;
		}
		continue;
	done:
		if (p->list_arg >= 0) {
			fail(p, "Missing ')'", c);
			goto error;
		}
		finish_command(p);
		*consumed_r = i + 1;
		return PARSE_OK;
	error:
		*consumed_r = i + 1;
		return PARSE_ERROR;
	}
	*consumed_r = len;
	return PARSE_MORE;
}

bool imap_parser_take_continuation(struct imap_parser *p)
{
	bool ret = p->continuation;
	p->continuation = false;
	return ret;
}

const char *imap_parser_tag(const struct imap_parser *p)
{
	if (p->store == NULL || !p->tag_done)
		return NULL;
	return p->store->buf;
}

const char *imap_parser_name(const struct imap_parser *p)
{
	if (p->store == NULL || !p->store->complete)
		return NULL;
	return p->store->buf + p->store->name_off;
}

const struct imap_arg *imap_parser_args(const struct imap_parser *p, unsigned int *count_r)
{
	if (p->store == NULL || !p->store->complete) {
		*count_r = 0;
		return NULL;
	}
	*count_r = p->store->nargs;
	return p->store->args;
}

const char *imap_parser_error(const struct imap_parser *p, bool *fatal_r)
{
	if (fatal_r != NULL)
		*fatal_r = p->fatal;
	return p->error;
}

void imap_parser_command_done(struct imap_parser *p)
{
	store_free(p);
	if (!p->fatal)
		p->error = NULL;
}

bool imap_parser_idle(const struct imap_parser *p)
{
	return p->state == sw_start && p->store == NULL;
}

bool imap_arg_get_astring(const struct imap_arg *arg, const char **str_r, size_t *len_r)
{
	if (arg->type == IMAP_ARG_LIST)
		return false;
	*str_r = arg->str;
	*len_r = arg->len;
	return true;
}
