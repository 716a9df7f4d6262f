/* auth-passwd.h — passwd-file in Dovecot's format, the embedded passdb/userdb.
 *
 * A line is `user:{SCHEME}hash:uid:gid:gecos:home:shell:extra_fields`; trailing
 * fields may be missing, the extra fields are everything after the 7th ':'
 * (so values may hold ':'), space-separated `key=value` or bare `key`.
 * A loaded file is an immutable hash table; a reload builds a new one and
 * swaps it in, so an entry pointer is valid only until the next
 * passwd_file_refresh(). */
#ifndef RG_AUTH_PASSWD_H
#define RG_AUTH_PASSWD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PASSWD_MAX_USER 255
/* longest extra field name (the part before "=") */
#define PASSWD_MAX_KEY 128

struct passwd_entry {
	char *user;
	char *scheme;   /* upper case; NULL when the password field is empty */
	char *password; /* hash (or plaintext for PLAIN) without the {SCHEME} */
	char *home;     /* "" when empty */
	bool have_uid, have_gid;
	uint32_t uid, gid;
	char **extra;   /* "key" or "key=value", in file order */
	unsigned extra_count;
};

/* Parse one line (without its '\n'; a trailing '\r' is ignored).
 * Returns 1 with *entry_r filled (free with passwd_entry_clear()), 0 for a
 * blank or comment line, -1 with *error_r (static text) when malformed. */
int passwd_parse_line(const char *line, size_t len, const char *default_scheme,
		      struct passwd_entry *entry_r, const char **error_r);
void passwd_entry_clear(struct passwd_entry *entry);

/* Value of extra field key: "" for a bare key, NULL when absent. */
const char *passwd_entry_field(const struct passwd_entry *entry, const char *key);

/* passdb/userdb `args`: "[scheme=X] [username_format=TEMPLATE] PATH"
 * (PATH may hold %-variables: db-passwd-file.c expands it per request). */
struct passwd_args {
	char *path;
	char *default_scheme; /* upper case, default "CRYPT" */
	bool lowercase;       /* username_format=%Lu */
	/* another username_format (`%n`, for one file per domain): the key
	 * looked up is this template expanded per request; NULL for %u/%Lu */
	char *username_format;
};
int passwd_args_parse(const char *args, struct passwd_args *args_r, char **error_r);
void passwd_args_clear(struct passwd_args *args);

struct passwd_file;

/* Parse a whole file held in memory; name stands for it in `name:line: reason`
 * errors (*error_r allocated, caller frees). */
struct passwd_file *passwd_file_parse(const char *name, const char *text, size_t len,
				      const struct passwd_args *args, char **error_r);
/* Read and parse args->path. */
struct passwd_file *passwd_file_load(const struct passwd_args *args, char **error_r);
/* The same, but a file that does not exist is NULL with *error_r NULL */
struct passwd_file *passwd_file_load_opt(const struct passwd_args *args, char **error_r);
/* the path it was loaded from */
const char *passwd_file_path(const struct passwd_file *pf);
void passwd_file_free(struct passwd_file *pf);

/* Re-stat the file at most once per second and reload it when it changed.
 * A reload that fails to parse keeps the old contents (logged); a file that
 * vanished or cannot be read makes this return -1 (temporary failure) until
 * it is back, except that EACCES after privileges were dropped keeps the old
 * contents (logged once). Returns 0 when lookups can be trusted. */
int passwd_file_refresh(struct passwd_file *pf, int64_t now_ms);
unsigned passwd_file_count(const struct passwd_file *pf);
/* entry i (< passwd_file_count()), in file order */
const struct passwd_entry *passwd_file_entry(const struct passwd_file *pf, unsigned i);

/* user as the client gave it (lower-cased first with %Lu); NULL if unknown */
const struct passwd_entry *passwd_file_lookup(const struct passwd_file *pf, const char *user);

#endif
