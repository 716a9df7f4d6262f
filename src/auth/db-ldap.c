/* db-ldap.c — passdb and userdb `ldap` with Dovecot's
 * dovecot-ldap.conf.ext (`args` = its path) on the asynchronous client of
 * auth-ldap.h. Blocks naming the same file share one client.
 *
 * As Dovecot's passdb-ldap/userdb-ldap: pass_filter / user_filter with
 * their variables escaped per RFC 4515 (base and auth_bind_userdn per RFC
 * 4514), searched under base with scope and deref; one entry is the user,
 * none an unknown user, more an internal error; pass_attrs / user_attrs map
 * attributes to fields (`attr=field`, `attr=field=template` with %$,
 * `=field=template`, %{ldap:attr[:default]}). The password is the
 * `password` field (default_pass_scheme when it has no {SCHEME}), or with
 * `auth_bind = yes` a bind as the user: as auth_bind_userdn's DN, else as
 * the DN the pass_filter search found. */
#include "auth/auth-ldap.h"
#include "auth/db-store.h"
#include "auth/passdb.h"
#include "auth/userdb.h"

#include "lib/alloc.h"
#include "lib/log.h"

#include <string.h>

struct ldap_db {
	struct ldap_db *next;
	unsigned refcount;
	char *path;
	struct ldap_conf conf;
	struct ldap_client *client;
};

static struct ldap_db *ldap_dbs;

static int ldap_db_open(const char *args, void **ctx_r, char **error_r)
{
	const char *path = args;

	while (*path == ' ')
		path++;
	if (*path == '\0') {
		*error_r = rg_strdup("ldap: args must be the path of a dovecot-ldap.conf.ext");
		return -1;
	}
	for (struct ldap_db *d = ldap_dbs; d != NULL; d = d->next) {
		if (strcmp(d->path, path) == 0) {
			d->refcount++;
			*ctx_r = d;
			return 0;
		}
	}
	struct ldap_db *d = rg_calloc(1, sizeof(*d));
	if (ldap_conf_load(path, &d->conf, error_r) < 0) {
		rg_free(d);
		return -1;
	}
	char *name = rg_strdup_printf("ldap(%s)", path);
	d->client = ldap_client_new(name, &d->conf, &db_store_loop, error_r);
	rg_free(name);
	if (d->client == NULL) {
		ldap_conf_free(&d->conf);
		rg_free(d);
		return -1;
	}
	d->path = rg_strdup(path);
	d->refcount = 1;
	d->next = ldap_dbs;
	ldap_dbs = d;
	*ctx_r = d;
	return 0;
}

static void ldap_db_close(void *ctx)
{
	struct ldap_db *d = ctx;

	if (d == NULL || --d->refcount > 0)
		return;
	for (struct ldap_db **p = &ldap_dbs; *p != NULL; p = &(*p)->next) {
		if (*p == d) {
			*p = d->next;
			break;
		}
	}
	ldap_client_free(d->client);
	ldap_conf_free(&d->conf);
	rg_free(d->path);
	rg_free(d);
}

static char *filter_escape_cb(const char *value, size_t len, void *context)
{
	(void)context;
	return ldap_filter_escape(value, len);
}

static char *dn_escape_cb(const char *value, size_t len, void *context)
{
	(void)context;
	return ldap_dn_escape(value, len);
}

/* ---- attribute maps ---------------------------------------------------------- */

struct sbuf {
	char *data;
	size_t len;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
	b->data = rg_realloc(b->data, b->len + n + 1);
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

/* a value inserted into a template, with '%' doubled so the variable
   expansion that follows leaves it alone */
static void sb_add_literal(struct sbuf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '%')
			sb_add(b, "%%", 2);
		else
			sb_add(b, s, 1);
	}
}

static const char *first_value(const struct ldap_client_entry *e, const char *attr)
{
	const struct ldap_client_attr *a = ldap_client_entry_attr(e, attr);
	return a != NULL && a->count > 0 ? a->values[0] : NULL;
}

/* %$ and %{ldap:attr[:default]}, then the request's variables */
static char *template_expand(const char *tmpl, const struct ldap_client_entry *e,
			     const char *value, const struct auth_db_request *req,
			     const char **error_r)
{
	struct sbuf b = { 0 };

	sb_add(&b, "", 0);
	for (const char *p = tmpl; *p != '\0';) {
		if (p[0] == '%' && p[1] == '$') {
			sb_add_literal(&b, value != NULL ? value : "");
			p += 2;
		} else if (strncmp(p, "%{ldap:", 7) == 0 && strchr(p, '}') != NULL) {
			const char *name = p + 7, *close = strchr(p, '}');
			size_t nlen = strcspn(name, ":}");
			char *attr = rg_strndup(name, nlen);
			const char *v = first_value(e, attr);
			rg_free(attr);
			if (v == NULL && name[nlen] == ':') {
				char *def = rg_strndup(name + nlen + 1, (size_t)(close - name - nlen - 1));
				sb_add_literal(&b, def);
				rg_free(def);
			} else {
				sb_add_literal(&b, v != NULL ? v : "");
			}
			p = close + 1;
		} else if (p[0] == '%' && p[1] == '%') {
			sb_add(&b, "%%", 2);
			p += 2;
		} else {
			sb_add(&b, p, 1);
			p++;
		}
	}
	char *out = db_store_expand(b.data, req, NULL, NULL, error_r);
	rg_free(b.data);
	return out;
}

/* Apply map to entry e: fields to req (userdb: the userdb fields); the
   `password` field (passdb) goes to *password_r instead (allocated). */
static int map_apply(const struct ldap_attr_map *map, const struct ldap_client_entry *e,
		     struct auth_db_request *req, bool userdb, char **password_r)
{
	for (unsigned i = 0; i < map->count; i++) {
		const struct ldap_attr_entry *m = &map->entries[i];
		const char *v = NULL;
		char *expanded = NULL;
		if (m->attr[0] != '\0') {
			v = first_value(e, m->attr);
			if (v == NULL)
				continue;
		}
		if (m->tmpl != NULL) {
			const char *err;
			expanded = template_expand(m->tmpl, e, v, req, &err);
			if (expanded == NULL) {
				log_error("%s: field %s: %s", req->db_name, m->field, err);
				return -1;
			}
			v = expanded;
		}
		if (!userdb && password_r != NULL && strcmp(m->field, "password") == 0) {
			rg_free(*password_r);
			*password_r = rg_strdup(v);
		} else if (userdb) {
			auth_request_set_userdb_field(req, m->field, v);
		} else {
			auth_request_set_field(req, m->field, v);
		}
		rg_free(expanded);
	}
	return 0;
}

/* ---- lookups ----------------------------------------------------------------- */

enum ldap_lookup_kind { LOOKUP_VERIFY, LOOKUP_CREDENTIALS, LOOKUP_USERDB };

struct ldap_lookup {
	struct ldap_db *db;
	struct auth_db_request *req;
	enum ldap_lookup_kind kind;
	const uint8_t *pw;
	size_t pw_len;
	passdb_verify_callback *verify_cb;
	passdb_credentials_callback *cred_cb;
	userdb_callback *userdb_cb;
};

static void lookup_end(struct ldap_lookup *l, enum passdb_result r)
{
	switch (l->kind) {
	case LOOKUP_VERIFY:
		l->verify_cb(r, l->req);
		break;
	case LOOKUP_CREDENTIALS:
		l->cred_cb(r, NULL, NULL, 0, l->req);
		break;
	case LOOKUP_USERDB:
		l->userdb_cb(r == PASSDB_RESULT_OK ? USERDB_RESULT_OK :
			     r == PASSDB_RESULT_USER_UNKNOWN ? USERDB_RESULT_USER_UNKNOWN :
			     USERDB_RESULT_INTERNAL_FAILURE, l->req);
		break;
	}
	rg_free(l);
}

static void bind_done(void *context, enum ldap_client_status status, const char *error)
{
	struct ldap_lookup *l = context;
	char lu[300];

	switch (status) {
	case LDAP_CLIENT_OK:
		lookup_end(l, PASSDB_RESULT_OK);
		return;
	case LDAP_CLIENT_INVALID_CREDENTIALS:
		log_info("%s(%s,%s): Password mismatch (bind: %s)", l->req->db_name,
			 db_store_log_user(l->req, lu, sizeof(lu)), l->req->rip, error);
		lookup_end(l, PASSDB_RESULT_PASSWORD_MISMATCH);
		return;
	default:
		log_error("%s(%s,%s): auth bind failed: %s", l->req->db_name,
			  db_store_log_user(l->req, lu, sizeof(lu)), l->req->rip, error);
		lookup_end(l, PASSDB_RESULT_INTERNAL_FAILURE);
		return;
	}
}

static void user_bind(struct ldap_lookup *l, const char *dn)
{
	if (memchr(l->pw, '\0', l->pw_len) != NULL) {
		lookup_end(l, PASSDB_RESULT_PASSWORD_MISMATCH);
		return;
	}
	char *pw = rg_strndup((const char *)l->pw, l->pw_len);
	ldap_client_bind(l->db->client, dn, pw, bind_done, l);
	explicit_bzero(pw, l->pw_len);
	rg_free(pw);
}

static void search_done(void *context, enum ldap_client_status status,
			const struct ldap_client_result *res, const char *error)
{
	struct ldap_lookup *l = context;
	struct auth_db_request *req = l->req;
	const char *what = l->kind == LOOKUP_USERDB ? "user_filter" : "pass_filter";
	char lu[300];

	if (status != LDAP_CLIENT_OK) {
		log_error("%s(%s,%s): %s search failed: %s", req->db_name,
			  db_store_log_user(req, lu, sizeof(lu)), req->rip, what, error);
		lookup_end(l, PASSDB_RESULT_INTERNAL_FAILURE);
		return;
	}
	if (res->count == 0) {
		log_info("%s(%s,%s): unknown user", req->db_name, db_store_log_user(req, lu, sizeof(lu)),
			 req->rip);
		lookup_end(l, PASSDB_RESULT_USER_UNKNOWN);
		return;
	}
	if (res->count > 1) {
		log_error("%s(%s,%s): %s found %u entries for one user", req->db_name,
			  db_store_log_user(req, lu, sizeof(lu)), req->rip, what, res->count);
		lookup_end(l, PASSDB_RESULT_INTERNAL_FAILURE);
		return;
	}
	const struct ldap_client_entry *e = &res->entries[0];
	const struct ldap_conf *conf = &l->db->conf;
	char *password = NULL;
	if (map_apply(l->kind == LOOKUP_USERDB ? &conf->user_attrs : &conf->pass_attrs, e, req,
		      l->kind == LOOKUP_USERDB, &password) < 0) {
		rg_free(password);
		lookup_end(l, PASSDB_RESULT_INTERNAL_FAILURE);
		return;
	}
	enum passdb_result r = PASSDB_RESULT_OK;
	if (l->kind == LOOKUP_VERIFY && !req->skip_password_check) {
		if (conf->auth_bind) {
			rg_free(password);
			user_bind(l, e->dn);
			return;
		}
		r = db_store_verify(req, password, conf->default_pass_scheme, l->pw, l->pw_len);
	} else if (l->kind == LOOKUP_CREDENTIALS) {
		if (password == NULL) {
			l->cred_cb(auth_fields_get(&req->passdb_fields, "nopassword") != NULL ?
				   PASSDB_RESULT_OK : PASSDB_RESULT_SCHEME_NOT_AVAILABLE, "",
				   (const uint8_t *)"", 0, req);
		} else {
			char schemebuf[64];
			const char *scheme;
			const char *hash = db_store_scheme(password, conf->default_pass_scheme, schemebuf,
							   sizeof(schemebuf), &scheme);
			l->cred_cb(PASSDB_RESULT_OK, scheme, (const uint8_t *)hash, strlen(hash), req);
			explicit_bzero(password, strlen(password));
		}
		rg_free(password);
		rg_free(l);
		return;
	}
	if (password != NULL) {
		explicit_bzero(password, strlen(password));
		rg_free(password);
	}
	lookup_end(l, r);
}

static void lookup_search(struct ldap_lookup *l, const char *filter_tmpl,
			  const struct ldap_attr_map *map)
{
	const char *err;
	char *base = db_store_expand(l->db->conf.base, l->req, dn_escape_cb, NULL, &err);
	char *filter = base != NULL ? db_store_expand(filter_tmpl, l->req, filter_escape_cb, NULL, &err) :
		NULL;

	if (filter == NULL) {
		log_error("%s: %s: %s", l->req->db_name, base == NULL ? "base" : "filter", err);
		rg_free(base);
		lookup_end(l, PASSDB_RESULT_INTERNAL_FAILURE);
		return;
	}
	ldap_client_search(l->db->client, base, filter, map->attrs, search_done, l);
	rg_free(base);
	rg_free(filter);
}

static struct ldap_lookup *lookup_new(struct ldap_db *db, struct auth_db_request *req,
				      enum ldap_lookup_kind kind)
{
	struct ldap_lookup *l = rg_calloc(1, sizeof(*l));
	l->db = db;
	l->req = req;
	l->kind = kind;
	return l;
}

/* ---- passdb ---------------------------------------------------------------- */

/* Dovecot's key for an ldap module: the variables of base, the filter,
   the attribute templates (and for passdb auth_bind_userdn) */
static char *ldap_cache_key(const struct ldap_conf *conf, const char *filter,
			    const struct ldap_attr_map *map, const char *userdn)
{
	const char **src = rg_calloc(map->count + 3, sizeof(*src));
	unsigned n = 0;
	src[n++] = conf->base;
	src[n++] = filter;
	src[n++] = userdn;
	for (unsigned i = 0; i < map->count; i++)
		src[n++] = map->entries[i].tmpl;
	char *key = db_store_cache_key(src, n);
	rg_free(src);
	return key;
}

static int passdb_ldap_init(struct passdb_module *m, char **error_r)
{
	if (ldap_db_open(m->args, &m->ctx, error_r) < 0)
		return -1;
	const struct ldap_conf *conf = &((struct ldap_db *)m->ctx)->conf;
	m->cache_key = ldap_cache_key(conf, conf->pass_filter, &conf->pass_attrs,
				      conf->auth_bind ? conf->auth_bind_userdn : NULL);
	return 0;
}

static void passdb_ldap_deinit(struct passdb_module *m)
{
	ldap_db_close(m->ctx);
	m->ctx = NULL;
}

static void passdb_ldap_verify(struct passdb_module *m, struct auth_db_request *req,
			       const uint8_t *pw, size_t pw_len, passdb_verify_callback *cb)
{
	struct ldap_db *db = m->ctx;
	struct ldap_lookup *l = lookup_new(db, req, LOOKUP_VERIFY);

	l->pw = pw;
	l->pw_len = pw_len;
	l->verify_cb = cb;
	if (db->conf.auth_bind && db->conf.auth_bind_userdn != NULL && !req->skip_password_check) {
		const char *err;
		char *dn = db_store_expand(db->conf.auth_bind_userdn, req, dn_escape_cb, NULL, &err);
		if (dn == NULL) {
			log_error("%s: auth_bind_userdn: %s", req->db_name, err);
			lookup_end(l, PASSDB_RESULT_INTERNAL_FAILURE);
			return;
		}
		user_bind(l, dn);
		rg_free(dn);
		return;
	}
	lookup_search(l, db->conf.pass_filter, &db->conf.pass_attrs);
}

static void passdb_ldap_credentials(struct passdb_module *m, struct auth_db_request *req,
				    const char *scheme, passdb_credentials_callback *cb)
{
	(void)scheme;
	struct ldap_db *db = m->ctx;

	if (db->conf.auth_bind) {
		/* the password is never read with auth binds */
		cb(PASSDB_RESULT_SCHEME_NOT_AVAILABLE, NULL, NULL, 0, req);
		return;
	}
	struct ldap_lookup *l = lookup_new(db, req, LOOKUP_CREDENTIALS);
	l->cred_cb = cb;
	lookup_search(l, db->conf.pass_filter, &db->conf.pass_attrs);
}

const struct passdb_driver passdb_driver_ldap = {
	.name = "ldap",
	.blocking = false,
	.init = passdb_ldap_init,
	.deinit = passdb_ldap_deinit,
	.verify_plain = passdb_ldap_verify,
	.lookup_credentials = passdb_ldap_credentials,
};

/* ---- userdb ---------------------------------------------------------------- */

static int userdb_ldap_init(struct userdb_module *m, char **error_r)
{
	if (ldap_db_open(m->args, &m->ctx, error_r) < 0)
		return -1;
	const struct ldap_conf *conf = &((struct ldap_db *)m->ctx)->conf;
	m->cache_key = ldap_cache_key(conf, conf->user_filter, &conf->user_attrs, NULL);
	return 0;
}

static void userdb_ldap_deinit(struct userdb_module *m)
{
	ldap_db_close(m->ctx);
	m->ctx = NULL;
}

static void userdb_ldap_lookup(struct userdb_module *m, struct auth_db_request *req,
			       userdb_callback *cb)
{
	struct ldap_db *db = m->ctx;
	struct ldap_lookup *l = lookup_new(db, req, LOOKUP_USERDB);

	l->userdb_cb = cb;
	lookup_search(l, db->conf.user_filter, &db->conf.user_attrs);
}

struct ldap_iter {
	struct ldap_db *db;
	userdb_iter_callback *cb;
	void *context;
};

static void iter_done(void *context, enum ldap_client_status status,
		      const struct ldap_client_result *res, const char *error)
{
	struct ldap_iter *it = context;

	if (status != LDAP_CLIENT_OK) {
		log_error("ldap(%s): iterate_filter search failed: %s", it->db->path, error);
		it->cb(NULL, true, it->context);
		rg_free(it);
		return;
	}
	/* iterate_attrs applied as a lookup's attrs are (templates such as
	   =user=%{ldap:uid}@%{ldap:associatedDomain} included): its `user` */
	const struct ldap_attr_map *map = &it->db->conf.iterate_attrs;
	for (unsigned i = 0; i < res->count; i++) {
		struct auth_db_request req;
		auth_db_request_init(&req, "");
		req.db_name = it->db->path;
		const char *u = NULL;
		if (map_apply(map, &res->entries[i], &req, true, NULL) == 0)
			u = auth_fields_get(&req.userdb_fields, "user");
		if (u != NULL && u[0] != '\0')
			it->cb(u, false, it->context);
		auth_db_request_clear(&req);
	}
	it->cb(NULL, false, it->context);
	rg_free(it);
}

static void userdb_ldap_iterate(struct userdb_module *m, userdb_iter_callback *cb, void *context)
{
	struct ldap_db *db = m->ctx;
	struct ldap_iter *it = rg_calloc(1, sizeof(*it));

	it->db = db;
	it->cb = cb;
	it->context = context;
	/* no request: the base and the filter are used as written */
	ldap_client_search_paged(db->client, db->conf.base, db->conf.iterate_filter,
				 db->conf.iterate_attrs.attrs, iter_done, it);
}

const struct userdb_driver userdb_driver_ldap = {
	.name = "ldap",
	.blocking = false,
	.init = userdb_ldap_init,
	.deinit = userdb_ldap_deinit,
	.lookup = userdb_ldap_lookup,
	.iterate = userdb_ldap_iterate,
};
