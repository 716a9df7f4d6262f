/* db-store.h — what the sql and ldap drivers (db-sql.c, db-ldap.c) share:
 * auth's event loop as the store clients' db_loop (auth-dbloop.h over
 * auth-loop.h), the expansion of Dovecot's %-variables in queries, filters
 * and DNs with the store's escaping of every value, and the password check
 * of a found entry.
 *
 * Variables are auth_request_expand()'s (auth-request.h, Dovecot's: %u %n
 * %d %s %r %l ..., %{long} names, modifiers); every value passes through
 * the store's escape function, the template's own text never does. Errors
 * are the administrator's, reported with the
 * template's name. */
#ifndef RG_DB_STORE_H
#define RG_DB_STORE_H

#include "auth/auth-dbloop.h"
#include "auth/auth-request.h"
#include "auth/passdb.h"

#include <stddef.h>

/* auth's loop (auth-loop.h) in the clients' shape */
extern const struct db_loop db_store_loop;

/* value escaped for the store (allocated); NULL: cannot be escaped */
typedef char *db_escape_callback(const char *value, size_t len, void *context);

/* tmpl with its variables replaced by req's values, each passed through
 * escape (NULL: as they are). Allocated; NULL with *error_r (static). */
char *db_store_expand(const char *tmpl, const struct auth_db_request *req,
		      db_escape_callback *escape, void *escape_context, const char **error_r);

/* Dovecot's auth_cache_parse_key(): the %-variables the templates use
 * (each token once, as written, TAB-separated), the module's cache_key:
 * two lookups with the same values ask the store the same thing. NULL
 * templates are skipped. Allocated; NULL when none uses a variable (the
 * module is then not cached). */
char *db_store_cache_key(const char *const *templates, unsigned count);

/* The request's user name for log lines (escaped, bounded) into buf. */
const char *db_store_log_user(const struct auth_db_request *req, char *buf, size_t size);

/* Check pw against a stored password: "{SCHEME}hash" or hash under
 * default_scheme; NULL stored = none (OK only with the `nopassword`
 * field). Logs a mismatch or a broken hash as passwd-file does. */
enum passdb_result db_store_verify(struct auth_db_request *req, const char *stored,
				   const char *default_scheme, const uint8_t *pw, size_t pw_len);

/* Split "{SCHEME}hash" (scheme upper-cased into scheme_buf) or use
 * default_scheme; returns the hash part. */
const char *db_store_scheme(const char *stored, const char *default_scheme, char *scheme_buf,
			    size_t size, const char **scheme_r);

#endif
