/* oauth2-introspect.h — the oauth2 passdb's remote modes, as Dovecot 2.3's
 * dovecot-oauth2.conf.ext: the request for a token (introspection_mode
 * auth: GET introspection_url with "Authorization: Bearer <token>"; get:
 * GET introspection_url<token>&client_id=..&client_secret=..; post: POST
 * token=..&client_id=..&client_secret=.. to introspection_url; or, with
 * tokeninfo_url alone, GET tokeninfo_url<token>), the judgement of the
 * IdP's answer, and a bounded cache of answers by token.
 *
 * Pure: no I/O (auth-http.h carries the request). The cache holds a
 * SHA-256 of each token, never the token. */
#ifndef RG_OAUTH2_INTROSPECT_H
#define RG_OAUTH2_INTROSPECT_H

#include "auth/passdb.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OAUTH2_USER_MAX 255
#define OAUTH2_BODY_MAX 16384 /* the longest answer read (lib/json's bound) */

enum oauth2_mode { OAUTH2_MODE_LOCAL, OAUTH2_MODE_AUTH, OAUTH2_MODE_GET, OAUTH2_MODE_POST,
		   OAUTH2_MODE_TOKENINFO };

struct oauth2_remote {
	enum oauth2_mode mode;
	const char *url;               /* introspection_url (tokeninfo_url) */
	const char *client_id, *client_secret;
	const char *username_attribute; /* "email" by default */
	const char *active_attribute, *active_value; /* NULL: not checked */
	const char *scope;             /* NULL: not checked */
	/* Dovecot's username_format, applied to both names before they are
	   compared: %Lu (its default), %u, %Ln, %n (the part before '@') */
	bool format_lower, format_local_part;
};

/* What to send for token: *url_r and *body_r (POST; else NULL) allocated,
 * *auth_header_r ("Authorization: Bearer ..", allocated, or NULL);
 * *method_r static. */
void oauth2_request_make(const struct oauth2_remote *r, const char *token, const char **method_r,
			 char **url_r, char **body_r, char **auth_header_r);

struct oauth2_verdict {
	enum passdb_result result; /* OK, PASSWORD_MISMATCH (token refused),
				      USER_UNKNOWN (another user's),
				      USER_DISABLED (inactive account, scope),
				      INTERNAL_FAILURE (IdP trouble) */
	char user[OAUTH2_USER_MAX + 1]; /* OK: the token's user */
	int64_t exp;                    /* the answer's "exp" (unix time), 0: none */
	const char *error;              /* not OK: for the log (static) */
};

/* Judge an HTTP answer (status, body) for a token, not yet for a user:
 * result OK means the token is good and names v->user. */
void oauth2_reply_judge(const struct oauth2_remote *r, long status, const char *body,
			size_t len, int64_t now, struct oauth2_verdict *v);
/* Then for the user the client named ("" takes the token's user):
 * USER_UNKNOWN when another; names compare through username_format
 * (format_lower, format_local_part of r). */
enum passdb_result oauth2_verdict_for_user(const struct oauth2_remote *r,
					   const struct oauth2_verdict *v, const char *user,
					   const char **error_r);

/* ---- the cache: verdicts by token, at most size entries (least recently
 * used go first), each for ttl_ms or until the token's exp if sooner.
 * INTERNAL_FAILURE verdicts are never stored. size 0: NULL (no cache). */
struct oauth2_cache;
struct oauth2_cache *oauth2_cache_new(unsigned size, unsigned ttl_ms);
void oauth2_cache_free(struct oauth2_cache **cache);
bool oauth2_cache_get(struct oauth2_cache *cache, const char *token, size_t len, int64_t now_ms,
		      int64_t unix_now, struct oauth2_verdict *v_r);
void oauth2_cache_put(struct oauth2_cache *cache, const char *token, size_t len, int64_t now_ms,
		      int64_t unix_now, const struct oauth2_verdict *v);
unsigned oauth2_cache_count(const struct oauth2_cache *cache);

#endif
