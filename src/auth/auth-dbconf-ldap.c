/* auth-dbconf-ldap.c — dovecot-ldap.conf.ext, the LDAP attribute maps
 * (pass_attrs, user_attrs, iterate_attrs) and LDAP filter/DN escaping; the
 * line reader and the tables are auth-dbconf.c's. */
#include "auth/auth-dbconf.h"
#include "auth/auth-dbconf-private.h"

#include "lib/alloc.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- LDAP attribute maps ----------------------------------------------- */

static bool attr_name_ok(const char *s, size_t n)
{
	/* RFC 4512 descr (letters, digits, '-') or a numeric OID, plus ';'
	   options */
	if (n == 0 || n > 128)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!isalnum(c) && c != '-' && c != '.' && c != ';' && c != '_')
			return false;
	}
	return true;
}

static void map_add_attr(struct ldap_attr_map *m, const char *s, size_t n)
{
	for (unsigned i = 0; i < m->attr_count; i++) {
		if (strlen(m->attrs[i]) == n && strncasecmp(m->attrs[i], s, n) == 0)
			return;
	}
	m->attrs = rg_realloc(m->attrs, sizeof(*m->attrs) * (m->attr_count + 2));
	m->attrs[m->attr_count++] = rg_strndup(s, n);
	m->attrs[m->attr_count] = NULL;
}

/* the %{ldap:attr[:default]} references of a template */
static int tmpl_attrs(struct ldap_attr_map *m, const char *t, const char **error_r)
{
	for (const char *p = strstr(t, "%{ldap:"); p != NULL; p = strstr(p, "%{ldap:")) {
		const char *a = p + 7;
		const char *close = strchr(a, '}');
		if (close == NULL) {
			*error_r = "%{ldap: without closing '}'";
			return -1;
		}
		size_t n = strcspn(a, ":}");
		if (!attr_name_ok(a, n)) {
			*error_r = "invalid attribute name in %{ldap:…}";
			return -1;
		}
		map_add_attr(m, a, n);
		p = close + 1;
	}
	return 0;
}

void ldap_attr_map_free(struct ldap_attr_map *m)
{
	for (unsigned i = 0; i < m->count; i++) {
		rg_free(m->entries[i].attr);
		rg_free(m->entries[i].field);
		rg_free(m->entries[i].tmpl);
	}
	rg_free(m->entries);
	for (unsigned i = 0; i < m->attr_count; i++)
		rg_free(m->attrs[i]);
	rg_free(m->attrs);
	memset(m, 0, sizeof(*m));
}

int ldap_attr_map_parse(const char *str, struct ldap_attr_map *m, const char **error_r)
{
	memset(m, 0, sizeof(*m));
	m->attrs = rg_calloc(1, sizeof(*m->attrs));
	for (const char *s = str; *s != '\0';) {
		const char *comma = strchr(s, ',');
		const char *e = comma != NULL ? comma : s + strlen(s);
		const char *next = comma != NULL ? comma + 1 : e;
		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		const char *te = e;
		while (te > s && (te[-1] == ' ' || te[-1] == '\t'))
			te--;
		if (te == s) {
			s = next;
			continue;
		}
		const char *eq = memchr(s, '=', (size_t)(te - s));
		struct ldap_attr_entry ent = { 0 };
		if (eq == NULL) {
			/* a bare attribute: its name is the field's */
			if (!attr_name_ok(s, (size_t)(te - s))) {
				*error_r = "invalid attribute name";
				goto fail;
			}
			ent.attr = rg_strndup(s, (size_t)(te - s));
			ent.field = rg_strdup(ent.attr);
		} else {
			if (eq > s && !attr_name_ok(s, (size_t)(eq - s))) {
				*error_r = "invalid attribute name";
				goto fail;
			}
			const char *f = eq + 1;
			const char *eq2 = memchr(f, '=', (size_t)(te - f));
			const char *fe = eq2 != NULL ? eq2 : te;
			while (f < fe && (*f == ' ' || *f == '\t'))
				f++;
			while (fe > f && (fe[-1] == ' ' || fe[-1] == '\t'))
				fe--;
			if (fe == f) {
				*error_r = "missing field name after '='";
				goto fail;
			}
			if (eq == s && eq2 == NULL) {
				*error_r = "a field without an LDAP attribute needs a template (=field=value)";
				goto fail;
			}
			ent.attr = rg_strndup(s, (size_t)(eq - s));
			ent.field = rg_strndup(f, (size_t)(fe - f));
			if (eq2 != NULL)
				ent.tmpl = rg_strndup(eq2 + 1, (size_t)(te - eq2 - 1));
		}
		if (ent.attr[0] != '\0')
			map_add_attr(m, ent.attr, strlen(ent.attr));
		if (ent.tmpl != NULL && tmpl_attrs(m, ent.tmpl, error_r) < 0) {
			rg_free(ent.attr);
			rg_free(ent.field);
			rg_free(ent.tmpl);
			goto fail;
		}
		m->entries = rg_realloc(m->entries, sizeof(*m->entries) * (m->count + 1));
		m->entries[m->count++] = ent;
		s = next;
	}
	return 0;
fail:
	ldap_attr_map_free(m);
	return -1;
}

/* ---- dovecot-ldap.conf.ext --------------------------------------------- */

struct ldap_raw {
	char *hosts, *uris, *dn, *dnpass, *auth_bind_userdn, *deref, *scope, *base;
	bool auth_bind, tls, sasl_bind, blocking, userdb_warning_disable;
	char *sasl_mech, *sasl_realm, *sasl_authz_id;
	char *tls_ca_cert_file, *tls_ca_cert_dir, *tls_cert_file, *tls_key_file, *tls_cipher_suite;
	char *tls_require_cert, *ldaprc_path;
	unsigned ldap_version, debug_level;
	char *user_attrs, *user_filter, *pass_attrs, *pass_filter, *iterate_attrs, *iterate_filter;
	char *default_pass_scheme;
	unsigned request_timeout_ms;
};

#define LOFF(f) offsetof(struct ldap_raw, f)
static const struct set_def ldap_defs[] = {
	{ "hosts", SET_STR, LOFF(hosts) },
	{ "uris", SET_STR, LOFF(uris) },
	{ "dn", SET_STR, LOFF(dn) },
	{ "dnpass", SET_STR, LOFF(dnpass) },
	{ "auth_bind", SET_BOOL, LOFF(auth_bind) },
	{ "auth_bind_userdn", SET_STR, LOFF(auth_bind_userdn) },
	{ "tls", SET_BOOL, LOFF(tls) },
	{ "sasl_bind", SET_BOOL, LOFF(sasl_bind) },
	{ "sasl_mech", SET_STR, LOFF(sasl_mech) },
	{ "sasl_realm", SET_STR, LOFF(sasl_realm) },
	{ "sasl_authz_id", SET_STR, LOFF(sasl_authz_id) },
	{ "tls_ca_cert_file", SET_STR, LOFF(tls_ca_cert_file) },
	{ "tls_ca_cert_dir", SET_STR, LOFF(tls_ca_cert_dir) },
	{ "tls_cert_file", SET_STR, LOFF(tls_cert_file) },
	{ "tls_key_file", SET_STR, LOFF(tls_key_file) },
	{ "tls_cipher_suite", SET_STR, LOFF(tls_cipher_suite) },
	{ "tls_require_cert", SET_STR, LOFF(tls_require_cert) },
	{ "deref", SET_STR, LOFF(deref) },
	{ "scope", SET_STR, LOFF(scope) },
	{ "base", SET_STR, LOFF(base) },
	{ "ldap_version", SET_UINT, LOFF(ldap_version) },
	{ "debug_level", SET_UINT, LOFF(debug_level) },
	{ "ldaprc_path", SET_STR, LOFF(ldaprc_path) },
	{ "user_attrs", SET_STR, LOFF(user_attrs) },
	{ "user_filter", SET_STR, LOFF(user_filter) },
	{ "pass_attrs", SET_STR, LOFF(pass_attrs) },
	{ "pass_filter", SET_STR, LOFF(pass_filter) },
	{ "iterate_attrs", SET_STR, LOFF(iterate_attrs) },
	{ "iterate_filter", SET_STR, LOFF(iterate_filter) },
	{ "default_pass_scheme", SET_STR, LOFF(default_pass_scheme) },
	{ "userdb_warning_disable", SET_BOOL, LOFF(userdb_warning_disable) },
	{ "blocking", SET_BOOL, LOFF(blocking) },
	{ "request_timeout", SET_TIME, LOFF(request_timeout_ms) },
	{ NULL, 0, 0 },
};

static void ldap_raw_free(struct ldap_raw *r)
{
	for (const struct set_def *d = ldap_defs; d->key != NULL; d++) {
		if (d->type == SET_STR)
			rg_free(*(char **)((char *)r + d->offset));
	}
}

static void ldap_take(char **dst, char **src)
{
	*dst = *src;
	*src = NULL;
}

void ldap_conf_free(struct ldap_conf *c)
{
	rg_free(c->uris);
	rg_free(c->dn);
	rg_free(c->dnpass);
	rg_free(c->auth_bind_userdn);
	rg_free(c->tls_ca_cert_file);
	rg_free(c->tls_ca_cert_dir);
	rg_free(c->tls_cert_file);
	rg_free(c->tls_key_file);
	rg_free(c->tls_cipher_suite);
	rg_free(c->base);
	rg_free(c->pass_filter);
	rg_free(c->user_filter);
	rg_free(c->iterate_filter);
	ldap_attr_map_free(&c->pass_attrs);
	ldap_attr_map_free(&c->user_attrs);
	ldap_attr_map_free(&c->iterate_attrs);
	rg_free(c->default_pass_scheme);
	memset(c, 0, sizeof(*c));
}

/* hosts = "host[:port] host2" → "ldap://host[:port] ldap://host2" */
static char *hosts_to_uris(const char *hosts)
{
	char *out = rg_strdup("");
	const char *s = hosts;

	while (*s != '\0') {
		while (*s == ' ' || *s == '\t')
			s++;
		const char *w = s;
		while (*s != '\0' && *s != ' ' && *s != '\t')
			s++;
		if (s == w)
			break;
		char *n = rg_strdup_printf("%s%sldap://%.*s", out, out[0] != '\0' ? " " : "",
					   (int)(s - w), w);
		rg_free(out);
		out = n;
	}
	return out;
}

static int uris_check(const char *uris)
{
	const char *s = uris;
	unsigned n = 0;

	while (*s != '\0') {
		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		if (*s == '\0')
			break;
		if (strncasecmp(s, "ldap://", 7) != 0 && strncasecmp(s, "ldaps://", 8) != 0 &&
		    strncasecmp(s, "ldapi://", 8) != 0)
			return -1;
		while (*s != '\0' && *s != ' ' && *s != '\t' && *s != ',')
			s++;
		n++;
	}
	return n > 0 ? 0 : -1;
}

int ldap_conf_parse(const char *name, const char *text, size_t len, struct ldap_conf *c,
		    char **error_r)
{
	/* Dovecot 2.3's defaults (db-ldap.c) */
	struct ldap_raw r = {
		.deref = rg_strdup("never"),
		.scope = rg_strdup("subtree"),
		.ldap_version = 3,
		.user_attrs = rg_strdup("homeDirectory=home,uidNumber=uid,gidNumber=gid"),
		.user_filter = rg_strdup("(&(objectClass=posixAccount)(uid=%u))"),
		.pass_attrs = rg_strdup("uid=user,userPassword=password"),
		.pass_filter = rg_strdup("(&(objectClass=posixAccount)(uid=%u))"),
		.iterate_attrs = rg_strdup("uid=user"),
		.iterate_filter = rg_strdup("(objectClass=posixAccount)"),
		.default_pass_scheme = rg_strdup("crypt"),
		.request_timeout_ms = DBCONF_DEFAULT_REQUEST_TIMEOUT_MS,
	};
	static const char *const keys[] = {
		"hosts", "uris", "deref", "scope", "tls_require_cert", "ldap_version",
		"pass_attrs", "user_attrs", "iterate_attrs", "sasl_bind", "base", NULL,
	};
	unsigned lines[11] = { 0 };
	const char *err;
	int ret = -1;

	memset(c, 0, sizeof(*c));
	if (dbconf_ext_parse(name, text, len, ldap_defs, &r, keys, lines, error_r) < 0)
		goto out;
	if (r.uris != NULL && r.uris[0] != '\0') {
		if (uris_check(r.uris) < 0) {
			*error_r = dbconf_errorf(name, lines[1],
						 "uris: expecting ldap://, ldaps:// or ldapi:// URIs");
			goto out;
		}
		ldap_take(&c->uris, &r.uris);
	} else if (r.hosts != NULL && r.hosts[0] != '\0') {
		c->uris = hosts_to_uris(r.hosts);
	} else {
		*error_r = rg_strdup_printf("%s: ldap: No uris or hosts set", name);
		goto out;
	}
	if (r.base == NULL) {
		*error_r = rg_strdup_printf("%s: ldap: No base given", name);
		goto out;
	}
	if (r.sasl_bind) {
		*error_r = dbconf_errorf(name, lines[9],
					 "sasl_bind: not supported by ringgate (use dn/dnpass)");
		goto out;
	}
	static const char *const derefs[] = { "never", "searching", "finding", "always", NULL };
	static const char *const scopes[] = { "base", "onelevel", "subtree", NULL };
	static const char *const reqcerts[] = { "never", "hard", "demand", "allow", "try", NULL };
	int i;
	for (i = 0; derefs[i] != NULL && strcasecmp(derefs[i], r.deref) != 0; i++)
		;
	if (derefs[i] == NULL) {
		*error_r = dbconf_errorf(name, lines[2], "deref: Invalid deref option '%s'",
					 r.deref);
		goto out;
	}
	c->deref = (enum ldap_conf_deref)i;
	for (i = 0; scopes[i] != NULL && strcasecmp(scopes[i], r.scope) != 0; i++)
		;
	if (scopes[i] == NULL) {
		*error_r = dbconf_errorf(name, lines[3], "scope: Invalid scope option '%s'",
					 r.scope);
		goto out;
	}
	c->scope = (enum ldap_conf_scope)i;
	c->tls_require_cert = -1;
	if (r.tls_require_cert != NULL) {
		for (i = 0; reqcerts[i] != NULL && strcasecmp(reqcerts[i],
							      r.tls_require_cert) != 0; i++)
			;
		if (reqcerts[i] == NULL) {
			*error_r = dbconf_errorf(name, lines[4],
						 "tls_require_cert: Invalid value '%s'",
					  r.tls_require_cert);
			goto out;
		}
		c->tls_require_cert = i;
	}
	if (r.ldap_version < 3) {
		*error_r = dbconf_errorf(name, lines[5], "ldap_version: only 3 is supported");
		goto out;
	}
	c->ldap_version = r.ldap_version;
	if (ldap_attr_map_parse(r.pass_attrs, &c->pass_attrs, &err) < 0) {
		*error_r = dbconf_errorf(name, lines[6], "pass_attrs: %s", err);
		goto out;
	}
	if (ldap_attr_map_parse(r.user_attrs, &c->user_attrs, &err) < 0) {
		*error_r = dbconf_errorf(name, lines[7], "user_attrs: %s", err);
		goto out;
	}
	if (ldap_attr_map_parse(r.iterate_attrs, &c->iterate_attrs, &err) < 0) {
		*error_r = dbconf_errorf(name, lines[8], "iterate_attrs: %s", err);
		goto out;
	}
	ldap_take(&c->dn, &r.dn);
	ldap_take(&c->dnpass, &r.dnpass);
	c->auth_bind = r.auth_bind;
	if (r.auth_bind_userdn != NULL && r.auth_bind_userdn[0] != '\0')
		ldap_take(&c->auth_bind_userdn, &r.auth_bind_userdn);
	c->tls = r.tls;
	ldap_take(&c->tls_ca_cert_file, &r.tls_ca_cert_file);
	ldap_take(&c->tls_ca_cert_dir, &r.tls_ca_cert_dir);
	ldap_take(&c->tls_cert_file, &r.tls_cert_file);
	ldap_take(&c->tls_key_file, &r.tls_key_file);
	ldap_take(&c->tls_cipher_suite, &r.tls_cipher_suite);
	ldap_take(&c->base, &r.base);
	ldap_take(&c->pass_filter, &r.pass_filter);
	ldap_take(&c->user_filter, &r.user_filter);
	ldap_take(&c->iterate_filter, &r.iterate_filter);
	c->default_pass_scheme = dbconf_upper_dup(r.default_pass_scheme);
	c->request_timeout_ms = r.request_timeout_ms;
	ret = 0;
out:
	if (ret < 0)
		ldap_conf_free(c);
	ldap_raw_free(&r);
	return ret;
}

int ldap_conf_load(const char *path, struct ldap_conf *conf_r, char **error_r)
{
	char *text;
	size_t len;

	memset(conf_r, 0, sizeof(*conf_r));
	if (dbconf_read_whole(path, &text, &len, error_r) < 0)
		return -1;
	int ret = ldap_conf_parse(path, text, len, conf_r, error_r);
	rg_free(text);
	return ret;
}

/* ---- escaping ---------------------------------------------------------- */

char *ldap_filter_escape(const char *in, size_t len)
{
	char *out = rg_malloc(len * 3 + 1), *o = out;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == '*' || c == '(' || c == ')' || c == '\\' || c == '\0') {
			static const char hex[] = "0123456789abcdef";
			*o++ = '\\';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		} else {
			*o++ = (char)c;
		}
	}
	*o = '\0';
	return out;
}

char *ldap_dn_escape(const char *in, size_t len)
{
	char *out = rg_malloc(len * 3 + 1), *o = out;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == '\0') {
			memcpy(o, "\\00", 3);
			o += 3;
			continue;
		}
		if (strchr(",+\"\\<>;=", c) != NULL || (i == 0 && (c == '#' || c == ' ')) ||
		    (i == len - 1 && c == ' '))
			*o++ = '\\';
		*o++ = (char)c;
	}
	*o = '\0';
	return out;
}
