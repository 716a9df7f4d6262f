/* libFuzzer target: dovecot-sql.conf.ext / dovecot-ldap.conf.ext parsers
 * (auth-dbconf.h). The input is read as both files; a failure must name
 * the file, a success must give the invariants the drivers rely on. The
 * LDAP filter escaping must leave no filter metacharacter unescaped. */
#include "auth/auth-dbconf.h"

#include "lib/alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_map(const struct ldap_attr_map *m)
{
	if (m->attrs == NULL || m->attrs[m->attr_count] != NULL)
		abort();
	for (unsigned i = 0; i < m->count; i++) {
		const struct ldap_attr_entry *e = &m->entries[i];
		if (e->field[0] == '\0' || (e->attr[0] == '\0' && e->tmpl == NULL))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	char *error = NULL;
	struct sql_conf sc;

	if (sql_conf_parse("f", text, size, &sc, &error) == 0) {
		if (sc.connect == NULL || sc.connect_rest == NULL || sc.maxconns == 0 ||
		    sc.password_query == NULL || sc.default_pass_scheme == NULL ||
		    sc.request_timeout_ms == 0)
			abort();
		for (unsigned i = 0; i < sc.host_count; i++) {
			if (sc.hosts[i][0] == '\0')
				abort();
		}
		sql_conf_free(&sc);
	} else {
		if (error == NULL || strncmp(error, "f:", 2) != 0)
			abort();
		rg_free(error);
	}

	struct ldap_conf lc;
	error = NULL;
	if (ldap_conf_parse("f", text, size, &lc, &error) == 0) {
		if (lc.uris == NULL || lc.uris[0] == '\0' || lc.base == NULL)
			abort();
		check_map(&lc.pass_attrs);
		check_map(&lc.user_attrs);
		check_map(&lc.iterate_attrs);
		ldap_conf_free(&lc);
	} else {
		if (error == NULL || strncmp(error, "f:", 2) != 0)
			abort();
		rg_free(error);
	}

	char *esc = ldap_filter_escape(text, size);
	for (const char *p = esc; *p != '\0'; p++) {
		if (*p == '*' || *p == '(' || *p == ')')
			abort();
		if (*p == '\\') {
			if (p[1] == '\0' || p[2] == '\0')
				abort();
			p += 2;
		}
	}
	rg_free(esc);
	return 0;
}
