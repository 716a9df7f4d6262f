/* pop3-parser.h — resumable splitter of POP3 client lines (RFC 1939/2449/5034).
 *
 * Bytes go in any split; out come whole lines "CMD[ SP args]" without their
 * CRLF (or bare LF). Invariants: the parser never looks past the bytes it was
 * given, holds no buffer between lines (one is allocated when a line starts
 * and wiped and freed when the caller is done with it), never buffers more
 * than the caller's max_line, and skips an over-long or NUL-carrying line to
 * its end without buffering it, then reports the error once. */
#ifndef RG_POP3_PARSER_H
#define RG_POP3_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/parse.h"

#define POP3_MAX_CMD_LINE 512 /* a command line, terminator excluded */

enum pop3_parse_error {
	POP3_PARSE_ERROR_NONE = 0,
	POP3_PARSE_ERROR_TOO_LONG,
	POP3_PARSE_ERROR_NUL,
};

/* One complete line. line is NUL-terminated (the parser refuses NUL bytes, so
 * it is a proper C string), valid until pop3_parser_line_done() or the next
 * feed. cmd is line[0..cmd_len); args is what follows the first SP (NULL when
 * the line has no SP). */
struct pop3_line {
	const char *line;
	size_t len;
	size_t cmd_len;
	const char *args;
};

/* buf holds the bytes of the line in progress (len of them, size allocated,
 * NULL when no line is in progress); skipping means the current line is being
 * discarded up to its LF and error says why. */
struct pop3_parser {
	char *buf;
	size_t len, size;
	bool in_line;
	bool skipping;
	bool line_held; /* a returned line is still in buf */
	enum pop3_parse_error error;
};

void pop3_parser_init(struct pop3_parser *p);
/* wipes and frees whatever is buffered */
void pop3_parser_deinit(struct pop3_parser *p);

/* Consumes bytes up to and including the end of at most one line; *consumed_r
 * says how many. PARSE_OK: *line_r is filled. PARSE_ERROR: a bad line ended
 * here, *error_r says why. PARSE_MORE: all of data consumed, no line ended.
 * max_line bounds the line's length without its terminator; it must stay the
 * same for all feeds of one line. */
enum parse_result pop3_parser_feed(struct pop3_parser *p, const uint8_t *data, size_t len,
				   size_t max_line, size_t *consumed_r,
				   struct pop3_line *line_r, enum pop3_parse_error *error_r);
/* the caller is done with the last line: wipe (it may hold a password) and free */
void pop3_parser_line_done(struct pop3_parser *p);
/* true when no line is partially received (nothing buffered) */
bool pop3_parser_idle(const struct pop3_parser *p);
const char *pop3_parse_error_str(enum pop3_parse_error error);

#endif
