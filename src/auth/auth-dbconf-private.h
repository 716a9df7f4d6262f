/* auth-dbconf-private.h — shared by auth-dbconf.c (the line reader, the
 * tables, dovecot-sql.conf.ext) and auth-dbconf-ldap.c
 * (dovecot-ldap.conf.ext, LDAP attribute maps and escaping) only. */
#ifndef RG_AUTH_DBCONF_PRIVATE_H
#define RG_AUTH_DBCONF_PRIVATE_H

#include <stddef.h>

enum set_type { SET_STR, SET_BOOL, SET_UINT, SET_TIME };

struct set_def {
	const char *key;
	enum set_type type;
	size_t offset;
};

/* "name:line: message", allocated */
char *dbconf_errorf(const char *name, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* the whole file (bounded, see auth-dbconf.c), NUL-terminated */
int dbconf_read_whole(const char *path, char **text_r, size_t *len_r, char **error_r);
/* Read every key of text through defs. lines_r (optional) gets the line
   of each key in keys[] (0 when absent). */
int dbconf_ext_parse(const char *name, const char *text, size_t len, const struct set_def *defs,
		     void *conf, const char *const *keys, unsigned *lines_r, char **error_r);
char *dbconf_upper_dup(const char *s);

#endif
