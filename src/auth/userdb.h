/* userdb.h — the user database driver interface (Dovecot's userdb): after a
 * passdb chain succeeded, who the user is on this machine: uid, gid, home,
 * mail (and any other field, passed to the worker as extra fields).
 * Same rules as passdb.h: one callback per call, before or after it
 * returns; `blocking` drivers run only in an auth-worker. Fields go to
 * req->userdb_fields with auth_request_set_userdb_field(); uid and gid are
 * numbers or names (the chain resolves names with getpwnam/getgrnam in the
 * worker). */
#ifndef RG_USERDB_H
#define RG_USERDB_H

#include "auth/auth-request.h"

#include <stdbool.h>

enum userdb_result {
	USERDB_RESULT_INTERNAL_FAILURE = -1,
	USERDB_RESULT_USER_UNKNOWN = -2,
	USERDB_RESULT_OK = 1,
};

const char *userdb_result_str(enum userdb_result result);

typedef void userdb_callback(enum userdb_result result, struct auth_db_request *req);
/* one user per call; user == NULL at the end (failed: iteration broke off) */
typedef void userdb_iter_callback(const char *user, bool failed, void *context);

struct userdb_module {
	const struct userdb_driver *driver;
	char *args;
	void *ctx;
	bool blocking;
	char *cache_key; /* as passdb_module.cache_key */
};

struct userdb_driver {
	const char *name;
	bool blocking;
	bool init_sets_blocking; /* as passdb_driver's */
	int (*init)(struct userdb_module *module, char **error_r);
	void (*deinit)(struct userdb_module *module);
	void (*lookup)(struct userdb_module *module, struct auth_db_request *req,
		       userdb_callback *callback);
	/* optional (NULL): every user of the store */
	void (*iterate)(struct userdb_module *module, userdb_iter_callback *callback,
			void *context);
};

extern const struct userdb_driver userdb_driver_passwd_file;
extern const struct userdb_driver userdb_driver_passwd;
/* first_valid_uid / last_valid_uid (0: none) for the passwd userdb's
 * iterate (default 500, none) */
void userdb_passwd_set_valid_uids(unsigned first_valid_uid, unsigned last_valid_uid);
extern const struct userdb_driver userdb_driver_static;
extern const struct userdb_driver userdb_driver_checkpassword; /* passdb-checkpassword.c */
extern const struct userdb_driver userdb_driver_sql;  /* db-sql.c */
extern const struct userdb_driver userdb_driver_ldap; /* db-ldap.c */

#endif
