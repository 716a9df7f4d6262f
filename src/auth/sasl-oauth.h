/* sasl-oauth.h — the client messages of SASL OAUTHBEARER (RFC 7628) and
 * XOAUTH2 (Google's), and the JSON error the server sends before failing.
 * Pure: no I/O, no allocation; each message arrives whole and is bounded
 * by OAUTH_MAX_MSG. The token is only located here (a pointer into the
 * message); jwt.h or the introspection client judges it. */
#ifndef RG_SASL_OAUTH_H
#define RG_SASL_OAUTH_H

#include "auth/jwt.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OAUTH_MAX_MSG (JWT_MAX_TOKEN + 1024)
#define OAUTH_MAX_USER 255

struct oauth_msg {
	char user[OAUTH_MAX_USER + 1]; /* "" when the client named none (OAUTHBEARER) */
	const char *token;             /* the bearer token, inside the message */
	size_t token_len;
};

/* gs2-header ("n," or "y,", then an optional "a=" authzid and ","), then
 * kvsep-separated key=value pairs ending in two kvseps; auth=Bearer <token>
 * is required. Channel binding ("p=") is refused: OAUTHBEARER has none. */
bool oauthbearer_parse(const uint8_t *msg, size_t len, struct oauth_msg *r, const char **error_r);
/* "user=" user ^A "auth=Bearer " token ^A ^A */
bool xoauth2_parse(const uint8_t *msg, size_t len, struct oauth_msg *r, const char **error_r);
/* The failure challenge: {"status":"invalid_token","schemes":"bearer",
 * "scope":"<scope>"} (RFC 7628 section 3.2.2); scope may be NULL. out needs
 * 128 + strlen(scope) bytes; returns the length. The scope must be
 * printable ASCII without '"' or '\' (it comes from the configuration). */
size_t oauth_error_json(const char *scope, char *out, size_t outsize);

#endif
