#include "imap/imap-cmd-parser.h"

#include "lib/alloc.h"

#include <string.h>
#include <strings.h>

enum parser_state {
	S_START,       /* before the tag; empty lines are skipped */
	S_TAG,
	S_NAME_START,
	S_NAME,
	S_ARG_START,   /* a token may start (after SP or "(") */
	S_ARG_AFTER,   /* a token ended: SP, ")" or the line end */
	S_ATOM,
	S_QUOTED,
	S_QUOTED_ESC,
	S_TILDE,       /* "~" starting a token: "{" makes a literal8 */
	S_LIT_LEN,
	S_LIT_CLOSE,   /* after "+": "}" */
	S_LIT_CR,
	S_LIT_LF,
	S_LITERAL,
	S_CR,          /* CR seen at the line end: LF */
	S_SKIP,        /* error: discard up to LF */
	S_DONE,
};

/* A token in buf (offsets, since buf may move). LIST tokens record the
 * index of their last descendant + 1 in end. */
struct token {
	enum imap_cmd_arg_type type;
	bool literal8;
	size_t off, len;
	size_t end;
};

struct imap_cmd_parser {
	enum parser_state state;
	enum parse_result result; /* of the command in S_DONE */
	const char *error;
	bool fatal, need_cont, tag_done;

	size_t line_bytes;        /* command bytes outside literals */
	size_t max_line;          /* bound of line_bytes (imap_max_line_length) */
	uint64_t max_command;     /* bound of buf_len + announced literals */
	uint64_t lit_size;        /* literal being announced / left to read */
	bool lit_plus, lit_too_large, lit8;
	unsigned int lit_digits;
	unsigned int bracket_depth; /* inside "[...]" of an atom */

	size_t tag_len, name_len;
	char tag[IMAP_MAX_TAG + 1];
	char name[IMAP_MAX_NAME + 1];

	/* buf[0..buf_len) holds token bytes, each token NUL-terminated;
	 * buf_len + literal bytes still announced <= max_command */
	char *buf;
	size_t buf_len, buf_size;
	struct token *toks;
	size_t ntoks, toks_size;
	size_t stack[IMAP_MAX_LIST_DEPTH]; /* open LIST token indexes */
	unsigned int depth;

	/* the finished command */
	struct imap_cmd_arg *args;
	size_t args_size, top_count;
};

struct imap_cmd_parser *imap_cmd_parser_create(void)
{
	struct imap_cmd_parser *p = rg_calloc(1, sizeof(*p));
	p->max_line = IMAP_MAX_LINE;
	p->max_command = IMAP_MAX_COMMAND;
	return p;
}

void imap_cmd_parser_set_max_line(struct imap_cmd_parser *p, size_t max_line)
{
	p->max_line = max_line;
	/* the whole command keeps its room for literals beside the line */
	p->max_command = max_line > IMAP_MAX_LINE ? IMAP_MAX_COMMAND - IMAP_MAX_LINE + (uint64_t)max_line
						  : IMAP_MAX_COMMAND;
}

void imap_cmd_parser_destroy(struct imap_cmd_parser *p)
{
	if (p == NULL)
		return;
	rg_free(p->buf);
	rg_free(p->toks);
	rg_free(p->args);
	rg_free(p);
}

static void parser_reset(struct imap_cmd_parser *p)
{
	p->state = S_START;
	p->error = NULL;
	p->fatal = p->need_cont = p->tag_done = false;
	p->line_bytes = 0;
	p->lit_size = 0;
	p->lit_plus = p->lit_too_large = p->lit8 = false;
	p->lit_digits = 0;
	p->bracket_depth = 0;
	p->tag_len = p->name_len = 0;
	p->tag[0] = p->name[0] = '\0';
	p->buf_len = 0;
	p->ntoks = 0;
	p->depth = 0;
	p->top_count = 0;
	/* an idle session should not keep a big command's memory */
	if (p->buf_size > 16384) {
		rg_free(p->buf);
		p->buf = NULL;
		p->buf_size = 0;
	}
	if (p->toks_size > 1024) {
		rg_free(p->toks);
		p->toks = NULL;
		p->toks_size = 0;
		rg_free(p->args);
		p->args = NULL;
		p->args_size = 0;
	}
}

static void parser_fail(struct imap_cmd_parser *p, const char *error)
{
	if (p->error == NULL)
		p->error = error;
	p->state = S_SKIP;
}

static void buf_reserve(struct imap_cmd_parser *p, size_t more)
{
	if (p->buf_len + more <= p->buf_size)
		return;
	size_t size = p->buf_size == 0 ? 256 : p->buf_size;
	while (size < p->buf_len + more)
		size *= 2;
	p->buf = rg_realloc(p->buf, size);
	p->buf_size = size;
}

static void buf_add(struct imap_cmd_parser *p, char c)
{
	buf_reserve(p, 1);
	p->buf[p->buf_len++] = c;
}

static void token_start(struct imap_cmd_parser *p, enum imap_cmd_arg_type type)
{
	if (p->ntoks == p->toks_size) {
		p->toks_size = p->toks_size == 0 ? 16 : p->toks_size * 2;
		p->toks = rg_realloc(p->toks, p->toks_size * sizeof(*p->toks));
	}
	struct token *t = &p->toks[p->ntoks++];
	t->type = type;
	t->literal8 = false;
	t->off = p->buf_len;
	t->len = 0;
	t->end = 0;
}

static void token_end(struct imap_cmd_parser *p)
{
	struct token *t = &p->toks[p->ntoks - 1];
	t->len = p->buf_len - t->off;
	buf_add(p, '\0');
}

/* characters that end or may not appear in an atom (outside "[...]") */
static bool is_atom_char(unsigned char c)
{
	return c > 0x20 && c != 0x7f && c != '(' && c != ')' && c != '"' && c != '{';
}

/* "[" opens a section (kept whole, spaces and all, up to its "]") only
 * after a FETCH attribute that takes one: BODY[HEADER.FIELDS (From)].
 * Anywhere else "[" is an ATOM-CHAR like any other (RFC 3501 9), as in a
 * mailbox name "a[b". */
static bool atom_opens_section(const struct imap_cmd_parser *p)
{
	static const char *const names[] = { "BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK",
					     "BINARY.SIZE" };
	const struct token *t = &p->toks[p->ntoks - 1];
	size_t len = p->buf_len - t->off;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strlen(names[i]) == len && strncasecmp(p->buf + t->off, names[i], len) == 0)
			return true;
	}
	return false;
}

static bool is_tag_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && strchr("(){%*\"\\+", c) == NULL;
}

static bool list_open(struct imap_cmd_parser *p)
{
	if (p->depth == IMAP_MAX_LIST_DEPTH) {
		parser_fail(p, "Too deep parenthesis nesting.");
		return false;
	}
	token_start(p, IMAP_CMD_ARG_LIST);
	p->stack[p->depth++] = p->ntoks - 1;
	return true;
}

static bool list_close(struct imap_cmd_parser *p)
{
	if (p->depth == 0) {
		parser_fail(p, "Unexpected ')'.");
		return false;
	}
	p->toks[p->stack[--p->depth]].end = p->ntoks;
	return true;
}

/* Lay the children of tokens [first, end) out contiguously in args from
 * *next_free on; returns where they start. */
static struct imap_cmd_arg *place(struct imap_cmd_parser *p, size_t first, size_t end,
			      size_t *next_free, size_t *count_r)
{
	size_t n = 0;
	for (size_t t = first; t < end; t = p->toks[t].type == IMAP_CMD_ARG_LIST ? p->toks[t].end : t + 1)
		n++;
	struct imap_cmd_arg *dest = &p->args[*next_free];
	*next_free += n;
	size_t i = 0;
	for (size_t t = first; t < end; i++) {
		const struct token *tok = &p->toks[t];
		struct imap_cmd_arg *a = &dest[i];
		a->type = tok->type;
		a->literal8 = tok->literal8;
		if (tok->type == IMAP_CMD_ARG_LIST) {
			a->str = NULL;
			a->len = 0;
			a->list = place(p, t + 1, tok->end, next_free, &a->count);
			t = tok->end;
		} else {
			a->str = p->buf + tok->off;
			a->len = tok->len;
			a->list = NULL;
			a->count = 0;
			t++;
		}
	}
	*count_r = n;
	return dest;
}

static void command_finish(struct imap_cmd_parser *p)
{
	if (p->depth > 0) {
		p->error = "Missing ')'.";
		p->result = PARSE_ERROR;
		p->state = S_DONE;
		return;
	}
	if (p->args_size < p->ntoks + 1) {
		rg_free(p->args);
		p->args_size = p->ntoks + 1;
		p->args = rg_malloc(p->args_size * sizeof(*p->args));
	}
	size_t next_free = 0;
	place(p, 0, p->ntoks, &next_free, &p->top_count);
	p->result = PARSE_OK;
	p->state = S_DONE;
}

/* the line ended in a state where that is allowed */
static void line_end(struct imap_cmd_parser *p, unsigned char c)
{
	if (c == '\r')
		p->state = S_CR;
	else
		command_finish(p);
}

static void literal_begin(struct imap_cmd_parser *p)
{
	if (p->lit_too_large) {
		parser_fail(p, "Literal too large.");
		/* the client sends a {n+} literal without waiting: we can no
		 * longer tell its bytes from commands */
		p->fatal = p->lit_plus;
		return;
	}
	buf_reserve(p, (size_t)p->lit_size + 1);
	token_start(p, IMAP_CMD_ARG_LITERAL);
	p->toks[p->ntoks - 1].literal8 = p->lit8;
	if (!p->lit_plus)
		p->need_cont = true;
	if (p->lit_size == 0) {
		token_end(p);
		p->state = S_ARG_AFTER;
	} else {
		p->state = S_LITERAL;
	}
}

/* one byte outside a literal's data */
static void parse_byte(struct imap_cmd_parser *p, unsigned char c)
{
	switch (p->state) {
	case S_START:
		if (c == '\r' || c == '\n')
			break;
		if (!is_tag_char(c)) {
			parser_fail(p, "Invalid tag.");
			break;
		}
		p->state = S_TAG;
		/* fall through */
	case S_TAG:
		if (c == ' ') {
			p->tag[p->tag_len] = '\0';
			p->tag_done = true;
			p->state = S_NAME_START;
		} else if (c == '\r' || c == '\n') {
			p->tag[p->tag_len] = '\0';
			p->tag_done = true;
			parser_fail(p, "Missing command.");
		} else if (!is_tag_char(c)) {
			parser_fail(p, "Invalid tag.");
		} else if (p->tag_len == IMAP_MAX_TAG) {
			parser_fail(p, "Tag too long.");
		} else {
			p->tag[p->tag_len++] = (char)c;
		}
		break;
	case S_NAME_START:
	case S_NAME:
		if (c == ' ' && p->state == S_NAME) {
			p->state = S_ARG_START;
		} else if ((c == '\r' || c == '\n') && p->state == S_NAME) {
			line_end(p, c);
		} else if (!is_atom_char(c) || c == '[' || c == ']') {
			parser_fail(p, "Invalid command name.");
		} else if (p->name_len == IMAP_MAX_NAME) {
			parser_fail(p, "Unknown command.");
		} else {
			p->name[p->name_len++] = (char)c;
			p->name[p->name_len] = '\0';
			p->state = S_NAME;
		}
		break;
	case S_ARG_START:
		if (c == ' ')
			break; /* tolerate doubled spaces, as Dovecot does */
		if (c == '(') {
			list_open(p);
		} else if (c == ')') {
			if (list_close(p))
				p->state = S_ARG_AFTER;
		} else if (c == '"') {
			token_start(p, IMAP_CMD_ARG_STRING);
			p->state = S_QUOTED;
		} else if (c == '{') {
			p->lit_size = 0;
			p->lit_digits = 0;
			p->lit_plus = p->lit_too_large = p->lit8 = false;
			p->state = S_LIT_LEN;
		} else if (c == '~') {
			p->state = S_TILDE;
		} else if (c == '\r' || c == '\n') {
			line_end(p, c);
		} else if (is_atom_char(c)) {
			token_start(p, IMAP_CMD_ARG_ATOM);
			p->bracket_depth = 0;
			p->state = S_ATOM;
			parse_byte(p, c);
		} else {
			parser_fail(p, "Invalid characters in atom.");
		}
		break;
	case S_ARG_AFTER:
		if (c == ' ')
			p->state = S_ARG_START;
		else if (c == ')')
			list_close(p);
		else if (c == '\r' || c == '\n')
			line_end(p, c);
		else
			parser_fail(p, "Missing space after argument.");
		break;
	case S_ATOM:
		if (p->bracket_depth > 0) {
			if (c == '\r' || c == '\n') {
				parser_fail(p, "Missing ']'.");
				break;
			}
			if (c == '[')
				p->bracket_depth++;
			else if (c == ']')
				p->bracket_depth--;
			buf_add(p, (char)c);
		} else if (c == ' ' || c == ')' || c == '\r' || c == '\n') {
			token_end(p);
			p->state = S_ARG_AFTER;
			parse_byte(p, c);
		} else if (c == '[' && atom_opens_section(p)) {
			p->bracket_depth++;
			buf_add(p, (char)c);
		} else if (is_atom_char(c)) {
			buf_add(p, (char)c);
		} else {
			parser_fail(p, "Invalid characters in atom.");
		}
		break;
	case S_QUOTED:
		if (c == '"') {
			token_end(p);
			p->state = S_ARG_AFTER;
		} else if (c == '\\') {
			p->state = S_QUOTED_ESC;
		} else if (c == '\r' || c == '\n' || c == '\0') {
			parser_fail(p, "Missing '\"'.");
		} else {
			buf_add(p, (char)c);
		}
		break;
	case S_QUOTED_ESC:
		if (c == '"' || c == '\\') {
			buf_add(p, (char)c);
			p->state = S_QUOTED;
		} else {
			parser_fail(p, "Invalid escape in quoted string.");
		}
		break;
	case S_TILDE:
		if (c == '{') {
			/* RFC 3516: binary data, only for APPEND's message */
			if (strcasecmp(p->name, "APPEND") != 0) {
				parser_fail(p, "Binary literal only allowed in APPEND.");
				break;
			}
			p->state = S_ARG_START;
			parse_byte(p, c);
			p->lit8 = true;
			break;
		}
		/* an atom starting with "~" */
		token_start(p, IMAP_CMD_ARG_ATOM);
		p->bracket_depth = 0;
		buf_add(p, '~');
		p->state = S_ATOM;
		parse_byte(p, c);
		break;
	case S_LIT_LEN:
		if (c >= '0' && c <= '9') {
			if (++p->lit_digits > 10) {
				parser_fail(p, "Invalid literal size.");
				break;
			}
			p->lit_size = p->lit_size * 10 + (uint64_t)(c - '0');
			/* only APPEND carries whole messages */
			bool append = strcasecmp(p->name, "APPEND") == 0;
			uint64_t lit_max = append ? IMAP_MAX_APPEND : IMAP_MAX_LITERAL;
			uint64_t cmd_max = append ? IMAP_MAX_APPEND + p->max_command : p->max_command;
			if (p->lit_size > lit_max || p->buf_len + p->lit_size > cmd_max)
				p->lit_too_large = true;
		} else if (c == '+' && p->lit_digits > 0) {
			p->lit_plus = true;
			p->state = S_LIT_CLOSE;
		} else if (c == '}' && p->lit_digits > 0) {
			p->state = S_LIT_CR;
		} else {
			parser_fail(p, "Invalid literal size.");
		}
		break;
	case S_LIT_CLOSE:
		if (c == '}')
			p->state = S_LIT_CR;
		else
			parser_fail(p, "Invalid literal size.");
		break;
	case S_LIT_CR:
		if (c == '\r')
			p->state = S_LIT_LF;
		else if (c == '\n')
			literal_begin(p);
		else
			parser_fail(p, "Missing CRLF after literal size.");
		break;
	case S_LIT_LF:
		if (c == '\n')
			literal_begin(p);
		else
			parser_fail(p, "Missing CRLF after literal size.");
		break;
	case S_CR:
		if (c == '\n')
			command_finish(p);
		else
			parser_fail(p, "CR without LF.");
		break;
	case S_LITERAL:
	case S_SKIP:
	case S_DONE:
		break;
	}
}

enum parse_result imap_cmd_parser_feed(struct imap_cmd_parser *p, const uint8_t *data,
				   size_t len, size_t *consumed_r)
{
	size_t i = 0;

	if (p->state == S_DONE)
		parser_reset(p);
	while (i < len) {
		if (p->state == S_LITERAL) {
			size_t n = len - i;
			if (n > p->lit_size)
				n = (size_t)p->lit_size;
			memcpy(p->buf + p->buf_len, data + i, n); /* reserved at literal_begin */
			p->buf_len += n;
			p->lit_size -= n;
			i += n;
			if (p->lit_size == 0) {
				token_end(p);
				p->state = S_ARG_AFTER;
			}
			continue;
		}
		unsigned char c = data[i++];
		if (p->state != S_SKIP) {
			if (++p->line_bytes > p->max_line && c != '\n') {
				parser_fail(p, "Too long argument.");
			} else {
				bool had_cont = p->need_cont;
				parse_byte(p, c);
				if (p->state == S_DONE) {
					*consumed_r = i;
					return p->result;
				}
				if (p->need_cont && !had_cont) {
					/* stop so the caller can answer "+ OK" before
					 * reading on */
					*consumed_r = i;
					return PARSE_MORE;
				}
			}
		}
		if (p->state == S_SKIP && c == '\n') {
			p->state = S_DONE;
			p->result = PARSE_ERROR;
			*consumed_r = i;
			return PARSE_ERROR;
		}
		if (p->fatal) {
			p->state = S_DONE;
			p->result = PARSE_ERROR;
			*consumed_r = i;
			return PARSE_ERROR;
		}
	}
	*consumed_r = i;
	return PARSE_MORE;
}

bool imap_cmd_parser_take_continuation(struct imap_cmd_parser *p)
{
	bool cont = p->need_cont;
	p->need_cont = false;
	return cont;
}

const char *imap_cmd_parser_tag(const struct imap_cmd_parser *p)
{
	return p->tag_done ? p->tag : NULL;
}

const char *imap_cmd_parser_name(const struct imap_cmd_parser *p)
{
	return p->name;
}

const struct imap_cmd_arg *imap_cmd_parser_args(const struct imap_cmd_parser *p, size_t *count_r)
{
	*count_r = p->top_count;
	return p->args;
}

const char *imap_cmd_parser_error(const struct imap_cmd_parser *p)
{
	return p->error != NULL ? p->error : "Invalid command.";
}

bool imap_cmd_parser_fatal(const struct imap_cmd_parser *p)
{
	return p->fatal;
}

const char *imap_cmd_arg_astring(const struct imap_cmd_arg *arg)
{
	if (arg->type == IMAP_CMD_ARG_LIST || strlen(arg->str) != arg->len)
		return NULL;
	return arg->str;
}
