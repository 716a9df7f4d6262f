/* settings.h — the parsed, validated configuration every process reads.
 *
 * settings_load() parses a Dovecot-syntax file (config.h does the syntax),
 * applies Dovecot's defaults, merges `service` sections over the built-in
 * ones (imap-login, pop3-login, imap, pop3, auth), resolves `service_count`,
 * `client_limit`, `process_limit` and `vsz_limit` zeros to their defaults
 * (except where 0 means "unlimited", see below), and validates values. Any
 * error is one message `file:line: reason`. All strings are owned by the
 * struct; settings_free() frees everything. */
#ifndef RG_SETTINGS_H
#define RG_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum ssl_mode { SSL_NO, SSL_YES, SSL_REQUIRED };

struct listener_settings {
	char *name;        /* section name: "imap", "imaps", "pop3", "pop3s" */
	char *address;     /* space-separated; default: the global `listen` */
	unsigned port;     /* 0 disables the listener */
	bool ssl;
	bool haproxy;
	bool reuse_port;
};

struct service_settings {
	char *name;              /* "imap-login", "pop3-login", "imap", "pop3", "auth" */
	char *protocol;          /* "imap", "pop3", "" */
	unsigned service_count;  /* 0 = unlimited (after resolving defaults) */
	unsigned client_limit;   /* resolved: never 0 */
	unsigned process_limit;  /* resolved: never 0 */
	unsigned process_min_avail;
	uint64_t vsz_limit;      /* bytes; 0 = no limit */
	unsigned idle_kill;      /* seconds; 0 = default (60) resolved */
	struct listener_settings *listeners;
	unsigned listener_count;
};

/* `local_name NAMES { ssl_cert = <f  ssl_key = <f }`: the certificate for
 * clients asking (SNI) for one of NAMES (space-separated, "*.example.com"
 * matches one label). */
struct local_name_settings {
	char *names;
	char *ssl_cert, *ssl_key;
	char *ssl_cert_file, *ssl_key_file; /* paths when given as <file, else "" */
	char *file;                         /* where the section is, for messages */
	unsigned line;
};

/* One `passdb { }` / `userdb { }` block. Blocks are tried in file order:
 * settings.passdb is the first, each block's next the one after it (NULL at
 * the end). Dovecot's names and defaults (src/auth/auth-chain.h applies the
 * result_* / skip rules). */
struct db_settings {
	struct db_settings *next;
	char *driver;          /* "passwd-file", "pam", "passwd", ...; "" = no block */
	char *args;            /* the driver's args, %-variables unexpanded */
	char *name;            /* for log lines; default: the driver */
	char *skip;            /* never | authenticated | unauthenticated (userdb: found | notfound) */
	char *result_success;  /* return-ok (default) | return | return-fail | continue | continue-ok | continue-fail */
	char *result_failure;  /* continue (default) */
	char *result_internalfail; /* continue (default) */
	char *mechanisms;      /* passdb: the SASL mechanisms it serves; "" = all */
	char *username_filter; /* passdb: space-separated wildcards, !negated; "" = all */
	char *default_fields;  /* fields set before the lookup (key=value ...) */
	char *override_fields; /* fields set after it */
	bool deny;             /* passdb: a user found here is refused */
	bool master;           /* passdb: master users (auth_master_user_separator) */
	bool pass;             /* master passdb: look the target user up in the passdbs too */
	char *file;            /* where the block is, for messages */
	unsigned line;
};

/* Something a Dovecot configuration says that ringgate accepts and does not
 * use: a setting or section Dovecot 2.3 knows (dovecot-names.h), an
 * `!include_try` that found nothing, a passdb driver not served yet. Named
 * once: master logs each as an Info line at start-up, `-n` as a comment. */
struct settings_ignored {
	char *name;  /* "mail_plugins", "dict { }", "service lmtp { }",
			"protocol imap { mail_plugins }" */
	char *note;  /* why it is set aside, for the log line */
	char *file;
	unsigned line;
};

struct settings {
	char *config_path;       /* absolute path of the main file */

	char *listen;            /* default "*, ::" */
	char *base_dir;          /* default "/var/run/ringgate" */
	char *protocols;         /* default "imap pop3" */
	char *log_path;          /* default "" = stderr; "syslog" or a file */
	char *info_log_path;     /* Info lines; default "" = log_path */
	char *debug_log_path;    /* Debug lines; default "" = info_log_path */
	char *syslog_facility;   /* default "mail" */
	char *log_timestamp;     /* strftime prefix of log_path lines, default "%b %d %H:%M:%S " */

	enum ssl_mode ssl;       /* default yes */
	char *ssl_cert;          /* contents when given as <file */
	char *ssl_key;
	char *ssl_ca;
	/* the paths ssl_cert/ssl_key/ssl_ca were read from (`<file`), "" when
	   given inline; settings_print() shows these instead of the PEM */
	char *ssl_cert_file;
	char *ssl_key_file;
	char *ssl_ca_file;
	char *ssl_dh;            /* DH parameters for DHE suites (TLS 1.2); "" = none */
	char *ssl_dh_file;
	char *ssl_min_protocol;  /* default "TLSv1.2" */
	char *ssl_cipher_list;
	bool ssl_prefer_server_ciphers;
	char *ssl_curve_list;    /* "X25519:P-256": key exchange groups in order,
				    canonical names; "" = the built-in order */
	char *ssl_client_ca_file;  /* CAs for backends' certificates (passdb ssl=yes), path */
	bool ssl_verify_client_cert; /* ask clients for a certificate, checked with ssl_ca */
	bool ssl_require_crl;        /* default yes: ssl_ca's CRLs checked, one needed per CA */
	char *ssl_cert_username_field; /* default "commonName": the subject entry naming the user */
	bool auth_ssl_require_client_cert; /* no login without a valid client certificate */
	bool auth_ssl_username_from_cert;  /* the certificate's name is the user, whatever the
					      mechanism says */

	bool disable_plaintext_auth; /* default yes */
	char *auth_mechanisms;       /* default "plain" */
	unsigned auth_failure_delay; /* seconds, default 2 */
	char *login_greeting;        /* default "ringgate ready." */
	char *login_trusted_networks;/* space-separated CIDRs, default "" */
	char *haproxy_trusted_networks;/* peers allowed to send a PROXY header, default "" */
	unsigned haproxy_timeout;      /* seconds for the PROXY header to arrive, default 3 */
	unsigned login_timeout;      /* seconds before a pre-login client is dropped, default 180 */
	/* pre-login connections one address may hold at once, all login
	 * processes of all services together; 0 = no limit (default) */
	unsigned login_max_preauth_ip_connections;
	/* high-security mode (service_count = 1): children a template login
	 * process forks before master replaces it by a fresh exec (also at
	 * once after a child dies of a signal); 0 = no template, an exec per
	 * connection. Default 100, at most 100 */
	unsigned login_template_forks;
	/* imap and pop3 workers: the new ones a worker template process forks
	 * before master replaces it by a fresh exec (also at once after a
	 * child dies of a signal); 0 = no template, an exec per worker.
	 * Default 100, at most 100 */
	unsigned worker_template_forks;
	/* login access check: socket names under base_dir/login asked before
	 * the greeting (space-separated, "" = none), how long an answer may
	 * take (seconds), and the built-in checker's CIDR lists */
	char *login_access_sockets;
	unsigned login_access_timeout;
	char *login_access_allow;
	char *login_access_deny;
	char *default_login_user;    /* default "dovenull" */
	char *default_internal_user; /* default "dovecot" */
	unsigned default_process_limit; /* 100 */
	unsigned default_client_limit;  /* 1000 */
	uint64_t default_vsz_limit;     /* 256M */
	unsigned default_idle_kill;     /* 60 s */
	unsigned first_valid_uid;       /* 500 */
	unsigned last_valid_uid;        /* 0 = none */
	unsigned first_valid_gid;       /* 1 */
	unsigned last_valid_gid;        /* 0 = none */
	char *mail_access_groups;       /* extra groups of every worker, names or numbers */
	char *mail_privileged_group;    /* one more (Debian: mail, for /var/mail dotlocks) */
	char *valid_chroot_dirs;        /* ':'-separated; a userdb chroot must be under one */
	char *auth_master_user_separator; /* "" = no master user logins */
	char *auth_username_format;      /* %-template applied to every name, default %Lu */
	char *auth_username_chars;       /* allowed characters; "" = any */
	char *auth_username_translation; /* pairs "fromto..." replaced before the check */
	char *auth_default_realm;        /* appended as @realm to names without '@' */
	char *auth_realms;               /* DIGEST-MD5 realms (no such mechanism here) */
	unsigned auth_worker_max_count;  /* auth-worker processes at most, default 30 */
	unsigned auth_worker_request_timeout; /* seconds one blocking lookup may take, 60 */
	uint64_t auth_cache_size;        /* bytes; 0 = no cache */
	unsigned auth_cache_ttl;         /* seconds, 3600 */
	unsigned auth_cache_negative_ttl; /* seconds, 3600 */
	bool auth_cache_verify_password_with_worker;
	char *mail_location;            /* default "" ; userdb `mail` overrides */
	uint64_t imap_max_line_length;  /* IMAP command line bytes outside literals, 64k */

	struct db_settings passdb;
	struct db_settings userdb;

	struct service_settings *services;
	unsigned service_count;

	struct local_name_settings *local_names;
	unsigned local_name_count;

	/* in file order, each name once (its first place) */
	struct settings_ignored *ignored;
	unsigned ignored_count;
};

/* Returns NULL and sets *error_r (allocated, caller frees) on failure. */
struct settings *settings_load(const char *path, char **error_r);
/* The same from text in memory, name standing for the file in messages.
   With allow_files false, !include and <FILE are errors (the fuzzer). */
struct settings *settings_load_string(const char *name, const char *text, size_t len,
				      bool allow_files, char **error_r);
void settings_free(struct settings *set);
/* Zero and free the certificate and key text (global and local_name; the
 * global file paths stay, the local_name sections go). For a process that
 * has built its TLS context (and its store of local_name certificates): no
 * copy of a private key lingers in its heap, and 10,000 local_name sections
 * cost it no heap. */
void settings_forget_pem(struct settings *set);

/* One Info line per settings_ignored entry: `file:line: name: note`. */
void settings_log_ignored(const struct settings *set);

/* whether two passdb (or userdb) chains have the same blocks */
bool settings_db_equal(const struct db_settings *a, const struct db_settings *b);

/* NULL if there is no such service */
const struct service_settings *settings_service(const struct settings *set, const char *name);
/* "imap-login", "pop3-login": a service of login processes */
bool settings_is_login_service(const char *name);
/* the socket name of the built-in checker (ringgate-access), which master
 * starts when login_access_sockets names it */
#define SETTINGS_ACCESS_BUILTIN "access"
bool settings_access_builtin(const struct settings *set);
/* whether protocol (imap/pop3) is listed in `protocols` */
bool settings_protocol_enabled(const struct settings *set, const char *protocol);

/* Print the configuration as `ringgate -n` shows it: only values that differ
 * from the defaults (all when all is true), in Dovecot syntax that
 * settings_load() reads back to the same values, then the settings_ignored
 * entries as a comment block. Key material is shown as "# hidden". */
void settings_print(const struct settings *set, bool all, FILE *out);
/* The same; with secrets an inline ssl_key is printed too (`-P`, as
 * doveconf -P), so the output loads back even then. */
void settings_print_secrets(const struct settings *set, bool all, bool secrets, FILE *out);
/* What master writes to running.conf for its children: as
 * settings_print_secrets(set, false, true), but with local_names false the
 * local_name sections are left out (a comment counts them): login
 * processes get them from master as a store (tls.h), so a high-security
 * template's start does not grow with them. */
void settings_print_running(const struct settings *set, bool local_names, FILE *out);

#endif
