/* passdb.h — the password database driver interface (Dovecot's passdb).
 *
 * A driver is a table of functions (struct passdb_driver) registered in
 * auth-chain.c's list. Each `passdb { }` block becomes a passdb_module: the
 * driver's init() parses the block's args and keeps its state in ctx.
 *
 * The calls are asynchronous: verify_plain() and lookup_credentials() end
 * in exactly one callback, before or after they return. A driver that talks
 * to a server registers its fds and timers on auth's loop (auth-loop.h) and
 * calls back from there; a driver whose calls can only block (PAM, crypt of
 * /etc/shadow, exec) sets `blocking` and is then called only inside an
 * auth-worker process (auth-worker.h), where a blocking call stalls no other
 * login. The chain (auth-chain.h) decides which passdbs are asked, in which
 * order, and what their results add up to; a driver only answers for its
 * own store. Fields found go to the request with auth_request_set_field()
 * (auth-request.h): `nologin`, `reason`, `proxy`, `host`, `nopassword`,
 * `userdb_*`, ... */
#ifndef RG_PASSDB_H
#define RG_PASSDB_H

#include "auth/auth-request.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Dovecot's values and meanings */
enum passdb_result {
	PASSDB_RESULT_NEXT = -6,               /* no opinion: as if not asked */
	PASSDB_RESULT_PASS_EXPIRED = -5,
	PASSDB_RESULT_USER_DISABLED = -4,
	PASSDB_RESULT_USER_UNKNOWN = -3,
	PASSDB_RESULT_SCHEME_NOT_AVAILABLE = -2, /* lookup_credentials: cannot give that */
	PASSDB_RESULT_INTERNAL_FAILURE = -1,   /* store unreachable, broken entry: temporary */
	PASSDB_RESULT_PASSWORD_MISMATCH = 0,
	PASSDB_RESULT_OK = 1,
};

const char *passdb_result_str(enum passdb_result result);

typedef void passdb_verify_callback(enum passdb_result result, struct auth_db_request *req);
/* OK: credentials (size bytes, not NUL-terminated necessarily) stored under
 * scheme (upper case: "PLAIN", "CRAM-MD5", "SCRAM-SHA-256", "SHA512-CRYPT",
 * ...): the caller converts or refuses. Valid during the callback only. */
typedef void passdb_credentials_callback(enum passdb_result result, const char *scheme,
					 const uint8_t *credentials, size_t size,
					 struct auth_db_request *req);

struct passdb_module {
	const struct passdb_driver *driver;
	char *args;     /* the block's args, unexpanded */
	void *ctx;      /* the driver's state, made by init() */
	bool blocking;  /* run in an auth-worker (driver->blocking, or args blocking=yes|no) */
	/* the auth cache key template (%-variables: "%u", "%u%s"); NULL: this
	 * module's results are not cached. Set by init() (owned by the module:
	 * the chain frees it). */
	char *cache_key;
};

struct passdb_driver {
	const char *name; /* the `driver =` value */
	bool blocking;    /* default of passdb_module.blocking */
	/* init() may set module->blocking from the args (sql: driver = sqlite
	 * blocks, pgsql/mysql do not), so an auth-worker inits it too */
	bool init_sets_blocking;
	/* Parse module->args, open what is needed (runs as root, before auth
	 * drops privileges; also in each auth-worker). -1 with *error_r
	 * (allocated, for the administrator). */
	int (*init)(struct passdb_module *module, char **error_r);
	void (*deinit)(struct passdb_module *module);
	/* Is (req->user, pw) valid? PASSWORD_MISMATCH, USER_UNKNOWN, OK (with
	 * fields), INTERNAL_FAILURE. With req->skip_password_check: found = OK. */
	void (*verify_plain)(struct passdb_module *module, struct auth_db_request *req,
			     const uint8_t *pw, size_t pw_len, passdb_verify_callback *callback);
	/* The stored credentials of req->user, for SCRAM, CRAM-MD5, APOP and
	 * the cache. NULL: the driver cannot (PAM, checkpassword): the chain
	 * answers SCHEME_NOT_AVAILABLE. scheme: what the caller wants, a hint. */
	void (*lookup_credentials)(struct passdb_module *module, struct auth_db_request *req,
				   const char *scheme, passdb_credentials_callback *callback);
};

/* the built-in drivers (auth-chain.c lists them) */
extern const struct passdb_driver passdb_driver_passwd_file;
extern const struct passdb_driver passdb_driver_pam;
extern const struct passdb_driver passdb_driver_shadow;
extern const struct passdb_driver passdb_driver_checkpassword;
extern const struct passdb_driver passdb_driver_passwd; /* db-system.c */
extern const struct passdb_driver passdb_driver_static; /* passdb-static.c */
extern const struct passdb_driver passdb_driver_sql;  /* db-sql.c */
extern const struct passdb_driver passdb_driver_ldap; /* db-ldap.c */

/* `ringgate-auth -R`, or run without arguments with CHECKPASSWORD_REPLY_ENV
 * set (as a checkpassword program runs its first argument): the reply
 * helper (passdb-checkpassword.c) */
#define CHECKPASSWORD_REPLY_ENV "RINGGATE_CHECKPASSWORD_REPLY"
void auth_checkpassword_reply_main(void) __attribute__((noreturn));
extern const struct passdb_driver passdb_driver_oauth2;
/* an oauth2 module's scope (RFC 7628 errors name it); NULL for others */
const char *passdb_oauth2_scope(const struct passdb_module *module);

#endif
