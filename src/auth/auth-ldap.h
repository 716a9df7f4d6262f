/* auth-ldap.h — asynchronous LDAP client for the ldap passdb/userdb
 * (OpenLDAP's libldap, as Dovecot).
 *
 * Two connections per dovecot-ldap.conf.ext, opened on first use: one for
 * searches, bound as `dn`/`dnpass` (anonymous without them), carrying any
 * number of searches at once (ldap_search_ext, answers read with
 * ldap_result on its socket from the owner's loop, auth-dbloop.h); and,
 * with `auth_bind = yes`, one for the users' own binds, one bind at a time
 * (a bind changes that connection's identity), the others queued.
 *
 * The TCP connect, ldaps:// handshake and StartTLS (`tls = yes`) of a new
 * connection are made inside libldap, bounded by LDAP_OPT_NETWORK_TIMEOUT
 * = request_timeout (as Dovecot, which does them blocking); every bind and
 * search after that is asynchronous. Time bound: a request not answered
 * within `request_timeout` (default 5 s) of its submission gets
 * LDAP_CLIENT_TEMPFAIL (a running search is abandoned, a running bind
 * closes its connection). A lost connection fails its requests and is
 * reopened on the next one, after a back-off of 1 s doubling to 30 s. */
#ifndef RG_AUTH_LDAP_H
#define RG_AUTH_LDAP_H

#include "auth/auth-dbconf.h"
#include "auth/auth-dbloop.h"

#include <stddef.h>

enum ldap_client_status {
	LDAP_CLIENT_OK,
	LDAP_CLIENT_INVALID_CREDENTIALS, /* bind: wrong password / no such DN */
	LDAP_CLIENT_ERROR,    /* the server refused the request (bad filter, ...) */
	LDAP_CLIENT_TEMPFAIL, /* no connection, connection lost, time bound */
};

struct ldap_client_attr {
	char *name;
	char **values; /* count */
	unsigned count;
};

struct ldap_client_entry {
	char *dn;
	struct ldap_client_attr *attrs;
	unsigned attr_count;
};

struct ldap_client_result {
	struct ldap_client_entry *entries;
	unsigned count;
};

/* values of attribute name (case-insensitive) in e, NULL when absent */
const struct ldap_client_attr *ldap_client_entry_attr(const struct ldap_client_entry *e,
						      const char *name);

/* result is valid during the call only (LDAP_CLIENT_OK) */
typedef void ldap_search_callback(void *context, enum ldap_client_status status,
				  const struct ldap_client_result *result, const char *error);
typedef void ldap_bind_callback(void *context, enum ldap_client_status status, const char *error);

struct ldap_client;

struct ldap_client *ldap_client_new(const char *name, const struct ldap_conf *conf,
				    const struct db_loop *loop, char **error_r);
/* filter: expanded and escaped already; attrs NULL-terminated (copied) */
void ldap_client_search(struct ldap_client *client, const char *base, const char *filter,
			char *const *attrs, ldap_search_callback *callback, void *context);
/* The same for listing (iterate_filter): RFC 2696 paged results,
   LDAP_PAGE_SIZE entries a page, so a directory with a size limit for
   plain searches (slapd `sizelimit`, AD's MaxPageSize) still lists all;
   the control is not critical (a server without paging answers as to a
   plain search). The callback gets every page's entries at once; the time
   bound applies to each page. */
#define LDAP_PAGE_SIZE 500
void ldap_client_search_paged(struct ldap_client *client, const char *base, const char *filter,
			      char *const *attrs, ldap_search_callback *callback, void *context);
/* simple bind as dn with password (auth_bind); the callback may run before
   this returns (an empty password is refused without asking) */
void ldap_client_bind(struct ldap_client *client, const char *dn, const char *password,
		      ldap_bind_callback *callback, void *context);
void ldap_client_free(struct ldap_client *client);

#endif
