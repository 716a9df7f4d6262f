/* auth-request.h — what a passdb or userdb driver sees of one
 * authentication: whom it is about (user, service, addresses) and the fields
 * the drivers found so far. The owner (auth-server.c, or an auth-worker)
 * fills the input part; drivers read it and add fields through
 * auth_request_set_field() / auth_request_set_userdb_field(). The chain's
 * own state lives at the end and is private to auth-chain.c.
 *
 * Lifetime: a request given to a driver stays valid until that driver's
 * callback has been called (exactly once, possibly before the call
 * returns). A client that goes away meanwhile does not free it: its owner
 * waits for the callback. */
#ifndef RG_AUTH_REQUEST_H
#define RG_AUTH_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/var-expand.h"

#define AUTH_REQUEST_MAX_IP 64

/* key → value list, in insertion order; a bare key has value "". */
struct auth_fields {
	char **kv; /* kv[2i] key, kv[2i+1] value */
	unsigned count, alloc;
};

/* set (replacing an earlier value of key) */
void auth_fields_set(struct auth_fields *f, const char *key, const char *value);
/* value, "" for a bare key, NULL when absent */
const char *auth_fields_get(const struct auth_fields *f, const char *key);
bool auth_fields_remove(struct auth_fields *f, const char *key);
/* drop the fields added after the first count (a failed passdb's, Dovecot's
 * snapshot/rollback) */
void auth_fields_truncate(struct auth_fields *f, unsigned count);
void auth_fields_clear(struct auth_fields *f);
/* TAB-separated key[=value] (values with TAB or LF have them replaced by
 * spaces); "" when empty. Allocated. */
char *auth_fields_export(const struct auth_fields *f);
/* Add TAB-separated key[=value] pairs (auth_fields_export()'s form). */
void auth_fields_import(struct auth_fields *f, const char *text, size_t len);

struct auth_chain;

struct auth_db_request {
	/* ---- input: set by the owner, read by drivers ---- */
	char *user;          /* the name drivers look up (after auth_username_format);
				a passdb's `user` field replaces it */
	char *original_user; /* as the client gave it */
	char *master_user;   /* a master user logging in as user; NULL otherwise */
	const char *service; /* "imap", "pop3" */
	const char *mech;    /* SASL mechanism, upper case ("PLAIN") */
	char rip[AUTH_REQUEST_MAX_IP], lip[AUTH_REQUEST_MAX_IP];
	unsigned rport, lport;
	bool secured;        /* TLS, loopback or login_trusted_networks */
	/* An earlier passdb of the chain verified the password: a driver that
	 * can looks the user up only (found = PASSDB_RESULT_OK). */
	bool skip_password_check;

	/* ---- output: what the drivers found ---- */
	struct auth_fields passdb_fields; /* nologin, proxy, host, ... */
	struct auth_fields userdb_fields; /* uid, gid, home, mail, ... */
	/* the name of the passdb/userdb being asked (its `name`, else its
	 * driver), for log lines */
	const char *db_name;

	/* ---- private to auth-chain.c ---- */
	struct auth_chain *chain;
	const void *chain_db;    /* the block being tried */
	void *chain_cb;          /* the owner's callback */
	char *requested_user;    /* master login: the user to become */
	/* the AUTH_FIELD_FAILURE_MSG field of the last passdb that failed (its
	 * other fields are rolled back): shown to the client if the login
	 * fails (PAM's failure_show_msg) */
	char *fail_reason;
	const uint8_t *chain_pw; /* valid during the passdb chain only */
	size_t chain_pw_len;
	char *chain_scheme;
	uint8_t *delayed_cred;   /* credentials of a passdb that said continue */
	size_t delayed_cred_len;
	char *delayed_scheme;
	unsigned fields_mark, ufields_mark;
	bool passdb_success, seen_internal_failure, seen_user_unknown, userdb_found;
	bool saved_skip; /* skip_password_check around a deny passdb's lookup */
	char *cache_key;  /* a cache miss: store the answer under this key */
	unsigned cache_pmark, cache_umark; /* the fields this lookup added start here */
};

/* A failing passdb's message for the client (a passdb field a driver sets
 * only when it fails; the chain keeps it in fail_reason). Other
 * fields of a failed passdb, `reason` included, are not shown: they would
 * tell a password guesser what the administrator wrote for the user. */
#define AUTH_FIELD_FAILURE_MSG "ringgate_failure_msg"

void auth_db_request_init(struct auth_db_request *req, const char *user);
void auth_db_request_clear(struct auth_db_request *req);

/* A field from a passdb: "userdb_X" goes to the userdb fields as X, "user"
 * renames the user, anything else is a passdb field. */
void auth_request_set_field(struct auth_db_request *req, const char *key, const char *value);
void auth_request_set_userdb_field(struct auth_db_request *req, const char *key,
				   const char *value);
/* "key=value key2 ..." (space-separated, as passwd-file's extra fields and
 * Dovecot's default_fields/override_fields) through auth_request_set_field
 * (userdb: auth_request_set_userdb_field). */
void auth_request_set_fields_str(struct auth_db_request *req, const char *text, bool userdb);

/* Dovecot's name rules, applied to what a client gives before any passdb:
 * auth_default_realm added to a name without '@', auth_username_translation
 * pairs, auth_username_chars checked, auth_username_format applied (%u = the
 * name; the request gives the other variables). NULL or "" members: that
 * rule is off. */
struct auth_username_rules {
	const char *format, *chars, *translation, *default_realm;
};
/* 0 with *user_r (allocated), -1 with *error_r (allocated, for the log). */
int auth_username_fix(const struct auth_username_rules *rules, struct auth_db_request *req,
		      const char *name, char **user_r, char **error_r);

/* Expand a template (args, default_fields, paths, queries) with the
 * request's %-variables (lib/var-expand.h): %u user, %n its part before
 * '@', %d after it, %s service, %h home and %i uid (userdb fields so far),
 * %l/%r local/remote IP, %a/%b local/remote port, %m mechanism, %c
 * "secured" or "", and the long names user username domain service home
 * uid gid lip rip lport rport mech secured master_user orig_user
 * orig_username orig_domain. escape: per value (SQL/LDAP quoting), or NULL. */
int auth_request_expand(const struct auth_db_request *req, const char *str,
			var_expand_escape_fn *escape, void *context, char **result_r,
			char **error_r);

#endif
