/* access-proto.h — the login access check's wire protocol
 * (login_access_sockets): what a login process asks a checker on a UNIX
 * stream socket before it greets a client, and the checker's answer.
 *
 *   request  (login -> checker): "SERVICE RIP LIP\n"   e.g. "imap 192.0.2.7 198.51.100.1\n"
 *   answer   (checker -> login): "1\n" (allow) or "0\n" (deny), then EOF
 *
 * The answer is Dovecot's (login-common/access-lookup.c reads exactly "1\n"
 * or "0\n"); the request carries the client's address as text instead of
 * the client socket (Dovecot passes the fd, whose peer is a proxy's address
 * behind a PROXY header). One connection per lookup. Both parsers are
 * resumable (any split of the input), bounded and never look past what they
 * were given. */
#ifndef RG_ACCESS_PROTO_H
#define RG_ACCESS_PROTO_H

#include "lib/parse.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* a whole request line, LF included */
#define ACCESS_REQUEST_MAX 128
#define ACCESS_SERVICE_MAX 15

/* The request line into buf (NUL-terminated); its length without the NUL,
 * or 0 when a field is empty, has a space or control character, the
 * service is longer than ACCESS_SERVICE_MAX, or it does not fit. An
 * unknown address is sent as "-". */
size_t access_request_format(char *buf, size_t size, const char *service, const char *rip,
			     const char *lip);

/* The checker's answer: exactly "1\n" or "0\n". */
struct access_reply_parser {
	uint8_t state;	/* 0: nothing yet, 1: digit seen, 2: complete */
	bool allow;
};
void access_reply_init(struct access_reply_parser *p);
/* PARSE_OK with *allow_r once the answer is complete (every byte given
 * consumed: anything after the LF is an error), PARSE_MORE, or PARSE_ERROR
 * for anything else (a third byte included). */
enum parse_result access_reply_feed(struct access_reply_parser *p, const uint8_t *data, size_t len,
				    bool *allow_r);

/* The checker's side: one request line. */
struct access_request_parser {
	char line[ACCESS_REQUEST_MAX];
	size_t len;
};
struct access_request {
	const char *service, *rip, *lip;	/* point into the parser's line */
};
void access_request_init(struct access_request_parser *p);
/* PARSE_OK with *req_r (valid while p lives) once the LF came; *consumed_r
 * says how much of data that took (bytes after the LF are not the
 * request's). PARSE_ERROR with *error_r (static text) for a line that is
 * too long, has a control character or not exactly three fields. */
enum parse_result access_request_feed(struct access_request_parser *p, const uint8_t *data,
				      size_t len, size_t *consumed_r, struct access_request *req_r,
				      const char **error_r);

#endif
