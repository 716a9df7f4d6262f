/* proxy-backend.h — logging a proxied user in to the backend (IMAP or POP3),
 * in memory: backend bytes in, commands out through a callback.
 *
 * IMAP: greeting (its [CAPABILITY] or a CAPABILITY command), ID with the
 * client's addresses and session when the backend offers ID, then
 * AUTHENTICATE PLAIN (SASL-IR when offered; authzid = user and authcid =
 * master for a master user login), after STARTTLS when asked. POP3:
 * greeting, STLS when asked, XCLIENT ADDR PORT
 * SESSION when the greeting says [XCLIENT], then AUTH PLAIN. The final
 * answer (tagged OK/NO, +OK/-ERR) is returned for relaying to the client.
 *
 * Invariants: a backend line is bounded (BACKEND_MAX_LINE, longer is an
 * error), the parser never looks past the bytes it was given and consumes
 * nothing after the final answer's line (those bytes belong to the client),
 * and the password is wiped when the dialogue is freed. */
#ifndef RG_PROXY_BACKEND_H
#define RG_PROXY_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BACKEND_MAX_LINE 4096

struct backend_login_config {
	bool pop3;
	bool starttls;		/* STARTTLS / STLS after the greeting (passdb starttls=) */
	const char *user;	/* the user to log in as (destuser or the user) */
	const char *master;	/* NULL, or the master user that logs in for user */
	const uint8_t *pass;	/* the user's (or master's) password */
	size_t pass_len;
	/* forwarded as ID x-originating-* / x-connected-* and XCLIENT */
	const char *rip, *lip, *session;
	unsigned rport, lport;
};

enum backend_result {
	BACKEND_MORE,	/* all bytes consumed, no answer yet */
	BACKEND_OK,	/* logged in: *reply_r is the answer line */
	BACKEND_FAIL,	/* the backend refused the login: *reply_r is its answer */
	BACKEND_ERROR,	/* the backend does not speak the protocol: *reply_r says why */
	BACKEND_STARTTLS, /* the backend said OK to STARTTLS/STLS: do the TLS
			   * handshake, then call backend_login_tls_started() */
};

typedef void backend_send_fn(void *ctx, const void *data, size_t len);

struct backend_login;

/* The strings are copied. */
struct backend_login *backend_login_new(const struct backend_login_config *config,
					backend_send_fn *send, void *ctx);
/* Backend bytes. *consumed_r: bytes used (all of them unless OK/FAIL ended
 * before the end of data). *reply_r: for OK/FAIL the answer without the IMAP
 * tag and without CRLF ("OK [CAPABILITY …] Logged in", "+OK Logged in."),
 * for ERROR a reason for the log; valid until the next call or free. */
enum backend_result backend_login_input(struct backend_login *b, const uint8_t *data, size_t len,
					size_t *consumed_r, const char **reply_r);
/* After BACKEND_STARTTLS, once the handshake is done: the dialogue goes on
 * (IMAP asks for the capabilities again). */
void backend_login_tls_started(struct backend_login *b);
void backend_login_free(struct backend_login **b);

#endif
