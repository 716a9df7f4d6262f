/* auth-chain.h — Dovecot's passdb and userdb chains: the configuration's
 * `passdb { }` and `userdb { }` blocks tried in order, with their rules
 * (`skip`, `result_success`, `result_failure`, `result_internalfail`,
 * `deny`, `master`, `pass`, `mechanisms`, `username_filter`,
 * `default_fields`, `override_fields`), as Dovecot 2.3's auth-request.c
 * combines them. The chain asks drivers (passdb.h, userdb.h); a module whose
 * driver blocks is asked through the worker hooks (auth-worker.h) when they
 * are set, and directly when not (inside an auth-worker, and in tests).
 *
 * Every entry point ends in exactly one callback, before or after it
 * returns; the request must stay valid until then. */
#ifndef RG_AUTH_CHAIN_H
#define RG_AUTH_CHAIN_H

#include "auth/passdb.h"
#include "auth/userdb.h"

struct db_settings;

/* How a blocking module is asked: index = the module's place in
 * auth_chain_passdb()/auth_chain_userdb() order. Set by auth-server.c to
 * the auth-worker client; NULL members: call the driver directly. */
struct auth_chain_worker_ops {
	void (*verify_plain)(void *ctx, unsigned index, struct auth_db_request *req,
			     const uint8_t *pw, size_t pw_len, passdb_verify_callback *cb);
	void (*lookup_credentials)(void *ctx, unsigned index, struct auth_db_request *req,
				   const char *scheme, passdb_credentials_callback *cb);
	void (*userdb_lookup)(void *ctx, unsigned index, struct auth_db_request *req,
			      userdb_callback *cb);
};

struct auth_chain;

/* The blocks from settings (passdb/userdb lists, see settings.h). An empty
 * driver means no block. NULL with *error_r (allocated) when a driver is
 * unknown, a rule misspelt, or a driver's init fails. */
struct auth_chain *auth_chain_new(const struct db_settings *passdbs,
				  const struct db_settings *userdbs, char **error_r);
/* The same inside an auth-worker: only blocking modules are initialised
 * (the others are never asked there); indexes are the same as in auth. */
struct auth_chain *auth_chain_new_worker(const struct db_settings *passdbs,
					 const struct db_settings *userdbs, char **error_r);
void auth_chain_free(struct auth_chain *chain);
void auth_chain_set_worker(struct auth_chain *chain, const struct auth_chain_worker_ops *ops,
			   void *ctx);

struct auth_cache;
/* Answer from and fill cache (auth-cache.h; NULL: none) for the modules
 * that have a cache_key. The chain does not own it. */
void auth_chain_set_cache(struct auth_chain *chain, struct auth_cache *cache);
/* cache hits and misses so far */
void auth_chain_cache_counts(const struct auth_chain *chain, uint64_t *hits_r,
			     uint64_t *misses_r);

unsigned auth_chain_passdb_count(const struct auth_chain *chain);
unsigned auth_chain_userdb_count(const struct auth_chain *chain);
/* modules by index (master passdbs included, in file order); NULL past the end */
struct passdb_module *auth_chain_passdb(struct auth_chain *chain, unsigned index);
struct userdb_module *auth_chain_userdb(struct auth_chain *chain, unsigned index);
/* the name for log lines of a module */
const char *auth_chain_passdb_name(const struct auth_chain *chain, unsigned index);
const char *auth_chain_userdb_name(const struct auth_chain *chain, unsigned index);
/* whether any block names this driver */
bool auth_chain_has_driver(const struct auth_chain *chain, const char *driver);
/* a block has `master = yes` */
bool auth_chain_has_masters(const struct auth_chain *chain);

/* Run the passdb chain for req (req->user; with req->master_user set, the
 * master passdbs first with that name, then req->user is the login user).
 * pw is used only until the callback. Final results: OK (fields in req),
 * PASSWORD_MISMATCH, USER_UNKNOWN, USER_DISABLED (a deny passdb), or
 * INTERNAL_FAILURE (also when a passdb on the way had one and none
 * succeeded). */
void auth_chain_verify_plain(struct auth_chain *chain, struct auth_db_request *req,
			     const uint8_t *pw, size_t pw_len, passdb_verify_callback *cb);
/* The same for a mechanism that needs the stored credentials (SCRAM,
 * CRAM-MD5, APOP): the first passdb that has the user and can give
 * credentials answers; one that cannot (PAM) is passed over. */
void auth_chain_lookup_credentials(struct auth_chain *chain, struct auth_db_request *req,
				   const char *scheme, passdb_credentials_callback *cb);
/* The userdb chain for req->user (the passdb's userdb_* fields are already
 * in req->userdb_fields; userdbs add to and override them). With no userdb
 * block at all: OK with what the passdbs gave. */
void auth_chain_userdb_lookup(struct auth_chain *chain, struct auth_db_request *req,
			      userdb_callback *cb);

/* Dovecot's username_filter: space-separated wildcards (* and ?), `!`
 * negates; true when user passes (matches a positive one, if any, and no
 * negated one). */
bool auth_username_filter_match(const char *filter, const char *user);
/* one such wildcard, ignoring case (doveadm user's masks) */
bool auth_wildcard_match_icase(const char *pattern, const char *s);

#endif
