/* auth-dbconf.h — Dovecot's dovecot-sql.conf.ext and dovecot-ldap.conf.ext.
 *
 * Pure parsers (no connection, no I/O besides reading the file): the text is
 * read as Dovecot's lib-settings reads these files (`key = value`, '#'
 * comments outside quotes, a trailing '\' continues the line, "…" / '…'
 * values unescaped), every key checked against Dovecot 2.3's list for that
 * file, values checked, defaults as Dovecot's. Every error is one allocated
 * "file:line: reason" (the caller frees). Also the escaping that the
 * drivers apply to client input before it reaches a store: LDAP filter
 * values (RFC 4515). SQL strings are escaped by the client library on a
 * connection (auth-sql.h). */
#ifndef RG_AUTH_DBCONF_H
#define RG_AUTH_DBCONF_H

#include <stdbool.h>
#include <stddef.h>

/* ringgate's bound on one lookup (queue wait + query) when the file does not
 * set `request_timeout`; past it the login gets a temporary failure */
#define DBCONF_DEFAULT_REQUEST_TIMEOUT_MS 5000u
/* Dovecot's default `maxconns` of a connect string: connections per host */
#define SQL_DEFAULT_MAXCONNS 5u

enum sql_driver {
	SQL_DRIVER_PGSQL,
	SQL_DRIVER_MYSQL,
	SQL_DRIVER_SQLITE,
};

struct sql_conf {
	enum sql_driver driver;
	char *connect;         /* as written */
	/* the connect string split as Dovecot's sqlpool does: every host= is a
	   host of its own (fail-over and load spreading), the other words are
	   the same for each (pgsql: libpq conninfo; mysql: Dovecot's keys);
	   sqlite: connect is the database file and host_count is 0 */
	char **hosts;
	unsigned host_count;   /* 0: libpq's / mysql's default host */
	char *connect_rest;    /* connect without host= and maxconns= */
	unsigned maxconns;     /* connections per host */
	/* mysql connect words (Dovecot's names); NULL / 0 when not given */
	char *my_user, *my_password, *my_dbname, *my_socket;
	unsigned my_port;
	char *password_query, *user_query, *iterate_query, *update_query;
	char *default_pass_scheme; /* upper case; Dovecot's default MD5 */
	unsigned request_timeout_ms;
};

/* Parse the file at path into *conf_r (free with sql_conf_free()). */
int sql_conf_load(const char *path, struct sql_conf *conf_r, char **error_r);
/* The same from text in memory; name stands for it in messages. */
int sql_conf_parse(const char *name, const char *text, size_t len,
		   struct sql_conf *conf_r, char **error_r);
void sql_conf_free(struct sql_conf *conf);
const char *sql_driver_name(enum sql_driver driver);

/* One entry of pass_attrs / user_attrs / iterate_attrs:
   `ldapAttr=field`, `ldapAttr=field=template` (%$ = the attribute's
   value), `=field=template` (no attribute), template text may use
   %{ldap:attr} (and %{ldap:attr:default}) to use another attribute. */
struct ldap_attr_entry {
	char *attr;  /* "" for a template-only field */
	char *field; /* e.g. "password", "home", "userdb_quota_rule" */
	char *tmpl;  /* NULL: the attribute's value as it is */
};

struct ldap_attr_map {
	struct ldap_attr_entry *entries;
	unsigned count;
	/* every attribute to request: the entries' and the templates'
	   %{ldap:…} ones, each once, NULL-terminated (for ldap_search_ext) */
	char **attrs;
	unsigned attr_count;
};

int ldap_attr_map_parse(const char *str, struct ldap_attr_map *map_r, const char **error_r);
void ldap_attr_map_free(struct ldap_attr_map *map);

enum ldap_conf_scope { LDAP_CONF_SCOPE_BASE, LDAP_CONF_SCOPE_ONELEVEL, LDAP_CONF_SCOPE_SUBTREE };
enum ldap_conf_deref {
	LDAP_CONF_DEREF_NEVER, LDAP_CONF_DEREF_SEARCHING,
	LDAP_CONF_DEREF_FINDING, LDAP_CONF_DEREF_ALWAYS,
};

struct ldap_conf {
	char *uris;  /* space-separated ldap:// / ldaps:// / ldapi:// URIs;
	                `hosts` (host[:port] …) become ldap://host:port */
	char *dn, *dnpass;     /* NULL: anonymous bind */
	bool auth_bind;
	char *auth_bind_userdn; /* NULL: search for the user's DN */
	bool tls;               /* StartTLS */
	char *tls_ca_cert_file, *tls_ca_cert_dir, *tls_cert_file, *tls_key_file;
	char *tls_cipher_suite;
	int tls_require_cert;   /* -1: library default; never 0, hard 1, demand 2,
	                           allow 3, try 4 (OpenLDAP's LDAP_OPT_X_TLS_*) */
	enum ldap_conf_deref deref;
	enum ldap_conf_scope scope;
	char *base;
	unsigned ldap_version;
	char *pass_filter, *user_filter, *iterate_filter;
	struct ldap_attr_map pass_attrs, user_attrs, iterate_attrs;
	char *default_pass_scheme; /* upper case; Dovecot's default CRYPT */
	unsigned request_timeout_ms;
};

int ldap_conf_load(const char *path, struct ldap_conf *conf_r, char **error_r);
int ldap_conf_parse(const char *name, const char *text, size_t len,
		    struct ldap_conf *conf_r, char **error_r);
void ldap_conf_free(struct ldap_conf *conf);

/* RFC 4515 filter value escaping: '*', '(', ')', '\\' and NUL become \2a,
   \28, \29, \5c, \00; len bytes of in (NUL included). Allocated result. */
char *ldap_filter_escape(const char *in, size_t len);
/* RFC 4514 DN value escaping for auth_bind_userdn (`,+"\<>;=` and a
   leading '#' or space, a trailing space, NUL as \00). Allocated. */
char *ldap_dn_escape(const char *in, size_t len);

#endif
