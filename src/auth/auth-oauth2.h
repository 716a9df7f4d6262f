/* auth-oauth2.h — the oauth2 passdb's configuration and token check, as
 * Dovecot's `passdb { driver = oauth2 args = dovecot-oauth2.conf.ext }`.
 * introspection_mode = auth|get|post asks the IdP (db-oauth2.c through
 * oauth2-introspect.h and auth-http.h); local: the token is a JWT
 * checked by jwt.h with keys read from local_validation_key_dict, a
 * directory ("fs:posix:prefix=DIR/" or a plain path) holding one file per
 * key at shared/<azp>/<alg>/<kid> (azp and kid %-escaped; "default" for
 * a token without them): PEM for RS*, ES*, EdDSA, base64 for HS*. Keys are
 * read at each check, so replacing a file rotates the key without a
 * reload. */
#ifndef RG_AUTH_OAUTH2_H
#define RG_AUTH_OAUTH2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct oauth2_config;

/* NULL with *error_r ("file:line: reason", allocated) on a bad file or a
 * setting ringgate cannot honour */
struct oauth2_config *oauth2_config_load(const char *path, char **error_r);
void oauth2_config_free(struct oauth2_config **cfg);
/* the scope for RFC 7628's error, NULL when not set */
const char *oauth2_config_scope(const struct oauth2_config *cfg);

struct oauth2_remote;
struct http_client_settings;
/* introspection_mode auth/get/post (or tokeninfo_url): true with what to
 * ask (oauth2-introspect.h), the HTTP client's bounds (auth-http.h) and the
 * answer cache's (introspection_cache_size entries, _ttl_msecs); the
 * pointers stay valid while cfg lives. false: local mode. */
bool oauth2_config_remote(const struct oauth2_config *cfg, struct oauth2_remote *remote_r,
			  struct http_client_settings *http_r, unsigned *cache_size_r,
			  unsigned *cache_ttl_ms_r);

/* Is token a valid token for user at now? The user claim
 * (username_attribute) must equal user; user "" (OAUTHBEARER without
 * authzid) takes any, and the claim is copied to user_r (user_size bytes,
 * may be NULL). false with *error_r (static text, for the log; never the
 * token). */
bool oauth2_token_check(const struct oauth2_config *cfg, const char *user, const char *token,
			size_t len, int64_t now, char *user_r, size_t user_size,
			const char **error_r);

#endif
