/* var-expand.h — Dovecot 2.3's %-variables: `%u`, `%{user}`, with
 * modifiers and substrings, for paths, args, queries and mail_location.
 *
 *   %%            a literal %
 *   %X            the variable whose one-letter key is X
 *   %{name}       the variable whose long name is name
 *   %<mods><sub>X  mods: L lower case, U upper case, E backslash-escape
 *                 \ " ', X decimal to hex, R reverse, D domain to
 *                 dc=a,dc=b, T trim trailing white space; applied in order
 *                 after the substring
 *   sub: N        the first N bytes;  -N  the last N bytes
 *        O.N      N bytes from offset O; -O.N  from O bytes before the end
 *                 (an offset past the end gives "", one before the start
 *                 starts at the start)
 * Modifiers may stand before or after the substring (`%L1u`, `%1Lu`).
 * A variable that is in the table without a value expands to "". Anything
 * else (an unknown variable or modifier, `%{` without `}`, a `%` at the
 * end) is an error naming the offending text: a typo in a configuration
 * must not silently become an empty path component. */
#ifndef RG_VAR_EXPAND_H
#define RG_VAR_EXPAND_H

#include <stdbool.h>
#include <stddef.h>

struct var_expand_entry {
	char key;             /* one-letter name; 0: long name only */
	const char *long_key; /* long name; NULL: letter only */
	const char *value;    /* NULL: known, empty here */
};
/* a table ends with an entry whose key is 0 and long_key NULL */

/* Applied to each variable's value after the modifiers (SQL, LDAP quoting).
 * Returns an allocated string. */
typedef char *var_expand_escape_fn(const char *value, void *context);

/* 0 with *result_r (allocated), or -1 with *error_r (allocated, for the
 * administrator). */
int var_expand(const char *str, const struct var_expand_entry *table,
	       var_expand_escape_fn *escape, void *context, char **result_r, char **error_r);

/* Whether str contains a variable at all (a `%` that is not `%%`): callers
 * that need per-user values (a passwd-file path with %d) tell a fixed
 * string from a template. */
bool var_has_variables(const char *str);

#endif
