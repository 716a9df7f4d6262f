/* imap-cmd-parser.h — the IMAP worker's command parser: a resumable byte-level
 * state machine turning client input into (tag, name, argument tree).
 *
 * It accepts any split of the input (one byte at a time works) and never
 * looks past the bytes it is given. Atoms, quoted strings, literals ({n} with
 * a continuation request, {n+} without; ~{n} binary ones in APPEND) and
 * parenthesised lists are parsed;
 * an atom keeps "[...]" whole (BODY[HEADER.FIELDS (From)]<0.10>).
 * Bounds: IMAP_MAX_LINE bytes of command text outside literals (Dovecot's
 * imap_max_line_length default; imap_cmd_parser_set_max_line() changes it),
 * each literal at most IMAP_MAX_LITERAL (IMAP_MAX_APPEND for APPEND's
 * message), all of a command at most IMAP_MAX_COMMAND (plus the message for
 * APPEND, plus what a longer line limit adds); too
 * large is refused before anything is allocated. An error skips the rest of
 * the line and is reported once, at its end, so the session goes on. */
#ifndef RG_IMAP_CMD_PARSER_H
#define RG_IMAP_CMD_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/parse.h"

#define IMAP_MAX_LINE (64 * 1024)
#define IMAP_MAX_LITERAL (64 * 1024)
#define IMAP_MAX_COMMAND (256 * 1024)
#define IMAP_MAX_APPEND (64 * 1024 * 1024)
#define IMAP_MAX_TAG 128
#define IMAP_MAX_NAME 32
#define IMAP_MAX_LIST_DEPTH 16

enum imap_cmd_arg_type {
	IMAP_CMD_ARG_ATOM,
	IMAP_CMD_ARG_STRING,  /* quoted */
	IMAP_CMD_ARG_LITERAL,
	IMAP_CMD_ARG_LIST,
};

struct imap_cmd_arg {
	enum imap_cmd_arg_type type;
	/* ATOM/STRING/LITERAL: str[0..len) plus a NUL (a literal may hold NULs) */
	const char *str;
	size_t len;
	bool literal8; /* LITERAL sent as ~{n} (RFC 3516, APPEND only) */
	/* LIST: its children */
	const struct imap_cmd_arg *list;
	size_t count;
};

struct imap_cmd_parser;

struct imap_cmd_parser *imap_cmd_parser_create(void);
void imap_cmd_parser_destroy(struct imap_cmd_parser *parser);
/* bytes of command text outside literals (imap_max_line_length); a
 * longer line is BAD "Too long argument." and the session goes on */
void imap_cmd_parser_set_max_line(struct imap_cmd_parser *parser, size_t max_line);

/* Feed bytes. PARSE_OK: a whole command was parsed (see the accessors);
 * PARSE_ERROR: a bad command ended (imap_cmd_parser_error, and the tag when it
 * was read); PARSE_MORE: everything was used, more is needed. *consumed_r
 * says how many bytes were used (a command ends after its LF). The next
 * feed after OK/ERROR starts a new command. After PARSE_MORE, check
 * imap_cmd_parser_take_continuation(): a synchronising literal waits for "+ ". */
enum parse_result imap_cmd_parser_feed(struct imap_cmd_parser *parser, const uint8_t *data,
				   size_t len, size_t *consumed_r);

/* true once after a {n} literal header was read: send "+ OK" now */
bool imap_cmd_parser_take_continuation(struct imap_cmd_parser *parser);

/* the tag, or NULL when the command had none (or it was invalid) */
const char *imap_cmd_parser_tag(const struct imap_cmd_parser *parser);
/* command name as sent (compare case-insensitively) */
const char *imap_cmd_parser_name(const struct imap_cmd_parser *parser);
const struct imap_cmd_arg *imap_cmd_parser_args(const struct imap_cmd_parser *parser, size_t *count_r);
const char *imap_cmd_parser_error(const struct imap_cmd_parser *parser);
/* the error left the stream out of sync (a {n+} literal too large): the
 * caller must disconnect after replying */
bool imap_cmd_parser_fatal(const struct imap_cmd_parser *parser);

/* atom, quoted string or literal as a C string; NULL for lists and for
 * strings holding NUL */
const char *imap_cmd_arg_astring(const struct imap_cmd_arg *arg);

#endif
