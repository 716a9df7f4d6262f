/* stats-request.h — the two requests ringgate-stats reads from the network
 * and the control socket, as resumable parsers (any split, one byte at a
 * time included; nothing read past what they were given), bounded, with
 * no sockets. Master never sees these bytes: the stats process turns them
 * into a typed CTL_REQUEST (docs/ipc.md).
 *
 * HTTP: `METHOD SP /PATH SP HTTP/1.0|1.1`, then header lines (skipped), up
 * to an empty line; lines end in LF or CRLF. A malformed request is still
 * read to its empty line, so the client gets its 400. */
#ifndef RG_STATS_REQUEST_H
#define RG_STATS_REQUEST_H

#include "lib/ctl-proto.h"
#include "lib/parse.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* a whole request, header lines included; past it no request fits and the
 * connection is closed unanswered */
#define STATS_HTTP_MAX 1024
#define STATS_HTTP_METHOD_MAX 7
#define STATS_HTTP_PATH_MAX 63
/* longest request line that can be valid: METHOD SP PATH SP HTTP/1.x CR */
#define STATS_HTTP_LINE_MAX (STATS_HTTP_METHOD_MAX + 1 + STATS_HTTP_PATH_MAX + 1 + 8 + 1)

enum stats_http_answer {
	STATS_HTTP_METRICS,          /* GET /metrics or GET / */
	STATS_HTTP_BAD_REQUEST,      /* 400 */
	STATS_HTTP_NOT_FOUND,        /* 404 */
	STATS_HTTP_BAD_METHOD,       /* 405 */
};

struct stats_http_parser {
	size_t total;                /* bytes of the request so far */
	bool in_headers, done;
	/* the request line (line_len may pass sizeof(line): then it is bad) */
	char line[STATS_HTTP_LINE_MAX];
	size_t line_len;
	/* the current header line: its length, whether it is only a CR */
	size_t hdr_len;
	bool hdr_cr;
	/* the parsed request line; bad with error (static text) if malformed */
	bool bad;
	const char *error;
	char method[STATS_HTTP_METHOD_MAX + 1];
	char path[STATS_HTTP_PATH_MAX + 1];
	unsigned minor;              /* HTTP/1.<minor> */
};

void stats_http_init(struct stats_http_parser *p);
/* PARSE_OK once the empty line came (*consumed_r: how much of data that
 * took; later bytes are not the request's), then stats_http_answer() says
 * what to send. PARSE_MORE: all of data taken. PARSE_ERROR with *error_r:
 * STATS_HTTP_MAX bytes without the end of the request. */
enum parse_result stats_http_feed(struct stats_http_parser *p, const uint8_t *data, size_t len,
				  size_t *consumed_r, const char **error_r);
enum stats_http_answer stats_http_answer(const struct stats_http_parser *p);

/* The control socket: one line, `who`, `who -1`, `stats` or `reload`
 * (trailing CR and spaces ignored), at most STATS_CTL_MAX bytes with its
 * LF. */
#define STATS_CTL_MAX 1024
struct stats_ctl_parser {
	char line[STATS_CTL_MAX];    /* every command fits; longer lines are none */
	size_t args;                 /* PARSE_OK of `auth flush USER...`: where the names start */
	size_t len;                  /* bytes of the line so far (may pass sizeof(line)) */
};
void stats_ctl_init(struct stats_ctl_parser *p);
/* PARSE_OK with *cmd_r once the LF came (*consumed_r as above;
 * CTL_CMD_NONE for a line that is no command, and `metrics`, which only
 * HTTP asks for), PARSE_MORE, PARSE_ERROR with *error_r for a line over
 * STATS_CTL_MAX. */
enum parse_result stats_ctl_feed(struct stats_ctl_parser *p, const uint8_t *data, size_t len,
				 size_t *consumed_r, enum ctl_cmd *cmd_r, const char **error_r);
/* After PARSE_OK with CTL_CMD_AUTH_FLUSH: the user names (space-separated,
 * "" = all), NUL-terminated inside the parser's line. */
const char *stats_ctl_args(const struct stats_ctl_parser *p);

#endif
