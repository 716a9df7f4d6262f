/* sql-template.h — a dovecot-sql.conf.ext query as a prepared statement.
 *
 * Dovecot substitutes %-variables into the query text, escaped, inside the
 * administrator's '…' literals (`WHERE username = '%u'`). The same query can
 * be prepared once per connection and then only executed: every string
 * literal holding a '%' becomes a parameter $N, whose value is the literal's
 * text ('' as ') expanded with no escaping at all (the value never enters
 * the statement text, so there is nothing to escape). The server types a
 * parameter from its context as it types the literal.
 *
 * A query is not converted (sql_template_parse() is false: it is sent as
 * text, escaped, as before) when a '%' stands outside a plain literal (a
 * variable in an identifier, a comment, a number, a prefixed E'…' / U&'…'
 * literal), when a literal with a '%' holds a backslash (its meaning would
 * depend on standard_conforming_strings), when the text has a '$' (dollar
 * quoting, or its own parameters), a literal or quoted name does not end,
 * or no literal has a variable (nothing to gain). */
#ifndef RG_SQL_TEMPLATE_H
#define RG_SQL_TEMPLATE_H

#include <stdbool.h>

#define SQL_TEMPLATE_MAX_PARAMS 32

struct sql_template {
	char *sql;        /* the statement, $1..$nparams in place of the literals */
	unsigned nparams;
	char **params;    /* per parameter: its value's %-template */
};

/* tmpl → *t_r (free with sql_template_free()); false: not convertible
   (*t_r zeroed). */
bool sql_template_parse(const char *tmpl, struct sql_template *t_r);
void sql_template_free(struct sql_template *t);

#endif
