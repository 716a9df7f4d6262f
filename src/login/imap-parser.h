/* imap-parser.h — resumable parser for pre-auth IMAP command lines
 * (`tag SP name [SP args] CRLF`, bare LF accepted). Fed any split of the input,
 * it never looks past the bytes given. One command is bounded by
 * LOGIN_MAX_LINE bytes (literal data included; an ID command
 * IMAP_PARSER_MAX_ID_LINE) and IMAP_PARSER_MAX_ARGS
 * arguments; its storage is allocated when the first byte of a line arrives
 * and freed (wiped: it may hold a password) when the command is done, so an
 * idle parser owns no memory. After an error it skips to the end of the line
 * (past any literal it was inside) and starts afresh with the next command. */
#ifndef RG_IMAP_PARSER_H
#define RG_IMAP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/parse.h"

#define IMAP_PARSER_MAX_ARGS 64 /* arguments and list items together */
/* An ID command may carry RFC 2971's most: 30 fields of 30 octets with
 * values of 1024 (quoted, each byte maybe escaped): its line may be this
 * long, as Dovecot's 64 KiB imap_max_line_length allows. Only a line whose
 * command name is ID gets past LOGIN_MAX_LINE. */
#define IMAP_PARSER_MAX_ID_LINE (64 * 1024)

enum imap_arg_type {
	IMAP_ARG_ATOM,
	IMAP_ARG_QUOTED,
	IMAP_ARG_LITERAL,
	IMAP_ARG_NIL,  /* the atom NIL (any case); str is still the atom text */
	IMAP_ARG_LIST, /* "(...)": its list_count items follow it in the array */
};

/* Arguments are one flat array: a list at index i has its items at
 * i+1 .. i+list_count. Lists do not nest (nothing pre-auth needs it). */
struct imap_arg {
	enum imap_arg_type type;
	unsigned int list_count;
	const char *str; /* NUL-terminated (literals may hold other bytes); NULL for lists */
	size_t len;
};

struct imap_parser_store;

struct imap_parser {
	/* all private */
	unsigned int state;
	struct imap_parser_store *store;
	size_t line_len;     /* bytes of this line consumed so far */
	size_t max_line;     /* LOGIN_MAX_LINE, or IMAP_PARSER_MAX_ID_LINE for ID */
	size_t literal_size; /* announced size (saturates past LOGIN_MAX_LINE) */
	size_t literal_left; /* literal data bytes still to read or skip */
	size_t cur;          /* offset in store->buf of the argument being read */
	int list_arg;        /* index of the open list, -1 outside lists */
	bool literal_digits, literal_nonsync, continuation, fatal, tag_done;
	const char *error;
};

void imap_parser_init(struct imap_parser *p);
/* frees (and wipes) any command in progress */
void imap_parser_deinit(struct imap_parser *p);

/* Consume bytes up to the end of one event; *consumed_r says how many.
 * PARSE_OK: a command is complete (tag/name/args valid until
 *   imap_parser_command_done()).
 * PARSE_ERROR: this line is bad; imap_parser_error() gives the reason,
 *   imap_parser_tag() the tag if it was complete. The parser discards the
 *   rest of the line by itself. A fatal error (the connection can't be
 *   resynced) leaves the parser swallowing everything.
 * PARSE_MORE: everything consumed, or (with *consumed_r < len) a
 *   synchronizing literal was announced: check imap_parser_take_continuation(). */
enum parse_result imap_parser_parse(struct imap_parser *p, const uint8_t *data,
				    size_t len, size_t *consumed_r);
/* true once after a synchronizing literal {N} was accepted: send "+ OK" */
bool imap_parser_take_continuation(struct imap_parser *p);

const char *imap_parser_tag(const struct imap_parser *p);
const char *imap_parser_name(const struct imap_parser *p);
const struct imap_arg *imap_parser_args(const struct imap_parser *p, unsigned int *count_r);
/* reason of the last PARSE_ERROR; *fatal_r true when the line can't be resynced */
const char *imap_parser_error(const struct imap_parser *p, bool *fatal_r);
/* after PARSE_OK: release the command's storage */
void imap_parser_command_done(struct imap_parser *p);
/* no partial command and no storage held */
bool imap_parser_idle(const struct imap_parser *p);

/* helper for command handlers: atom, quoted, literal or NIL text */
bool imap_arg_get_astring(const struct imap_arg *arg, const char **str_r, size_t *len_r);

#endif
