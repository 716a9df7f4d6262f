/* db-sql.c — passdb and userdb `sql` with Dovecot's dovecot-sql.conf.ext
 * (`args` = its path) on the asynchronous pool of auth-sql.h. Blocks
 * naming the same file share one pool.
 *
 * As Dovecot's passdb-sql/userdb-sql: the query's variables are escaped by
 * the connection's library; one row is the user, no row an unknown user,
 * more than one an internal error (logged with the query's name); every
 * non-NULL column becomes a field (`password`, `password_noscheme`, `user`,
 * `userdb_*` prefetch, `nologin`, `reason`, `proxy`, `host`, `port`, ...;
 * userdb: `uid`, `gid`, `home`, `mail`, ...). A store that cannot answer in
 * time is an internal (temporary) failure.
 *
 * driver = sqlite blocks (a file read under SQLite's locks), so its blocks
 * are marked `blocking`: the chain asks them in an auth-worker, where a
 * slow disk stalls no other login. The database is opened read-only on
 * first use, escaping is SQLite's own %q, and a locked database is waited
 * for at most request_timeout.
 *
 * On pgsql, password_query and user_query are prepared statements where
 * sql-template.h can convert them: the values go as parameters, unescaped
 * because they never enter the statement's text; the server parses and
 * plans each query once per connection. Other queries (and mysql's) are
 * text with escaped values. */
#include "auth/auth-sql.h"
#include "auth/db-store.h"
#include "auth/sql-template.h"
#include "auth/passdb.h"
#include "auth/userdb.h"

#include "lib/alloc.h"
#include "lib/log.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

struct sql_db {
	struct sql_db *next;
	unsigned refcount;
	char *path;
	struct sql_conf conf;
	struct sql_pool *pool; /* pgsql, mysql */
	/* password_query, user_query as statements (stmt -1: as text) */
	struct sql_prepared {
		const char *query;     /* the conf's template this is for */
		struct sql_template t;
		int stmt;
	} prepared[2];
	sqlite3 *sqlite;       /* sqlite: opened on first use */
};

static struct sql_db *sql_dbs;

static int sql_db_open(const char *args, void **ctx_r, char **error_r)
{
	const char *path = args;

	while (*path == ' ')
		path++;
	if (*path == '\0') {
		*error_r = rg_strdup("sql: args must be the path of a dovecot-sql.conf.ext");
		return -1;
	}
	for (struct sql_db *d = sql_dbs; d != NULL; d = d->next) {
		if (strcmp(d->path, path) == 0) {
			d->refcount++;
			*ctx_r = d;
			return 0;
		}
	}
	struct sql_db *d = rg_calloc(1, sizeof(*d));
	if (sql_conf_load(path, &d->conf, error_r) < 0) {
		rg_free(d);
		return -1;
	}
	char *name = rg_strdup_printf("sql(%s)", path);
	if (d->conf.driver != SQL_DRIVER_SQLITE)
		d->pool = sql_pool_new(name, &d->conf, &db_store_loop, error_r);
	rg_free(name);
	if (d->pool == NULL && d->conf.driver != SQL_DRIVER_SQLITE) {
		sql_conf_free(&d->conf);
		rg_free(d);
		return -1;
	}
	const char *queries[2] = { d->conf.password_query, d->conf.user_query };
	for (unsigned i = 0; i < 2; i++) {
		struct sql_prepared *sp = &d->prepared[i];
		sp->query = queries[i];
		sp->stmt = -1;
		if (d->pool != NULL && sp->query != NULL && sql_template_parse(sp->query, &sp->t)) {
			sp->stmt = sql_pool_statement(d->pool, sp->t.sql, sp->t.nparams);
			if (sp->stmt < 0)
				sql_template_free(&sp->t);
		}
	}
	d->path = rg_strdup(path);
	d->refcount = 1;
	d->next = sql_dbs;
	sql_dbs = d;
	*ctx_r = d;
	return 0;
}

static void sql_db_close(void *ctx)
{
	struct sql_db *d = ctx;

	if (d == NULL || --d->refcount > 0)
		return;
	for (struct sql_db **p = &sql_dbs; *p != NULL; p = &(*p)->next) {
		if (*p == d) {
			*p = d->next;
			break;
		}
	}
	sql_pool_free(d->pool);
	for (unsigned i = 0; i < 2; i++)
		sql_template_free(&d->prepared[i].t);
	if (d->sqlite != NULL)
		sqlite3_close_v2(d->sqlite);
	sql_conf_free(&d->conf);
	rg_free(d->path);
	rg_free(d);
}

enum sql_lookup_kind { LOOKUP_VERIFY, LOOKUP_CREDENTIALS, LOOKUP_USERDB };

struct sql_lookup {
	struct sql_db *db;
	struct auth_db_request *req;
	enum sql_lookup_kind kind;
	const char *query_name;
	const char *tmpl;
	const uint8_t *pw;
	size_t pw_len;
	passdb_verify_callback *verify_cb;
	passdb_credentials_callback *cred_cb;
	userdb_callback *userdb_cb;
};

static char *escape_cb(const char *value, size_t len, void *context)
{
	char *v = rg_strndup(value, len);
	char *e = sql_escape(context, v);
	rg_free(v);
	return e;
}

static char *lookup_build(void *context, struct sql_escaper *esc, const char **error_r)
{
	struct sql_lookup *l = context;
	return db_store_expand(l->tmpl, l->req, escape_cb, esc, error_r);
}

static void lookup_fail(struct sql_lookup *l, int passdb_result)
{
	switch (l->kind) {
	case LOOKUP_VERIFY:
		l->verify_cb(passdb_result, l->req);
		break;
	case LOOKUP_CREDENTIALS:
		l->cred_cb(passdb_result, NULL, NULL, 0, l->req);
		break;
	case LOOKUP_USERDB:
		l->userdb_cb(passdb_result == PASSDB_RESULT_USER_UNKNOWN ? USERDB_RESULT_USER_UNKNOWN :
			     USERDB_RESULT_INTERNAL_FAILURE, l->req);
		break;
	}
	rg_free(l);
}

static void lookup_done(void *context, enum sql_status status, const struct sql_result *res,
			const char *error)
{
	struct sql_lookup *l = context;
	struct auth_db_request *req = l->req;
	char lu[300];

	if (status != SQL_OK) {
		log_error("%s(%s,%s): %s failed: %s", req->db_name,
			  db_store_log_user(req, lu, sizeof(lu)), req->rip, l->query_name, error);
		lookup_fail(l, PASSDB_RESULT_INTERNAL_FAILURE);
		return;
	}
	if (res->rows == 0) {
		log_info("%s(%s,%s): unknown user", req->db_name, db_store_log_user(req, lu, sizeof(lu)),
			 req->rip);
		lookup_fail(l, PASSDB_RESULT_USER_UNKNOWN);
		return;
	}
	if (res->rows > 1) {
		log_error("%s(%s,%s): %s returned %u rows for one user", req->db_name,
			  db_store_log_user(req, lu, sizeof(lu)), req->rip, l->query_name, res->rows);
		lookup_fail(l, PASSDB_RESULT_INTERNAL_FAILURE);
		return;
	}
	const char *password = NULL;
	bool have_password_col = false, noscheme = false;
	for (unsigned c = 0; c < res->cols; c++) {
		const char *name = res->names[c], *value = sql_result_value(res, 0, c);
		if (l->kind != LOOKUP_USERDB &&
		    (strcmp(name, "password") == 0 || strcmp(name, "password_noscheme") == 0)) {
			have_password_col = true;
			password = value;
			noscheme = name[8] == '_';
			continue;
		}
		if (value == NULL)
			continue;
		if (l->kind == LOOKUP_USERDB)
			auth_request_set_userdb_field(req, name, value);
		else
			auth_request_set_field(req, name, value);
	}
	if (l->kind == LOOKUP_USERDB) {
		l->userdb_cb(USERDB_RESULT_OK, req);
		rg_free(l);
		return;
	}
	bool nopassword = auth_fields_get(&req->passdb_fields, "nopassword") != NULL;
	if (!have_password_col && !nopassword && !req->skip_password_check) {
		log_error("%s(%s,%s): %s returned no password column", req->db_name,
			  db_store_log_user(req, lu, sizeof(lu)), req->rip, l->query_name);
		lookup_fail(l, PASSDB_RESULT_INTERNAL_FAILURE);
		return;
	}
	char *stored = NULL;
	if (password != NULL)
		stored = noscheme ? rg_strdup_printf("{%s}%s", l->db->conf.default_pass_scheme, password) :
			rg_strdup(password);
	if (l->kind == LOOKUP_VERIFY) {
		enum passdb_result r = req->skip_password_check ? PASSDB_RESULT_OK :
			db_store_verify(req, stored, l->db->conf.default_pass_scheme, l->pw, l->pw_len);
		l->verify_cb(r, req);
	} else if (stored == NULL) {
		l->cred_cb(nopassword ? PASSDB_RESULT_OK : PASSDB_RESULT_SCHEME_NOT_AVAILABLE, "",
			   (const uint8_t *)"", 0, req);
	} else {
		char schemebuf[64];
		const char *scheme;
		const char *hash = db_store_scheme(stored, l->db->conf.default_pass_scheme, schemebuf,
						   sizeof(schemebuf), &scheme);
		l->cred_cb(PASSDB_RESULT_OK, scheme, (const uint8_t *)hash, strlen(hash), req);
	}
	if (stored != NULL) {
		explicit_bzero(stored, strlen(stored));
		rg_free(stored);
	}
	rg_free(l);
}

/* ---- sqlite: synchronous, in an auth-worker -------------------------------- */

static char *sqlite_escape_cb(const char *value, size_t len, void *context)
{
	(void)context;
	char *q = sqlite3_mprintf("%.*q", (int)len, value);
	if (q == NULL)
		return NULL;
	char *out = rg_strdup(q);
	sqlite3_free(q);
	return out;
}

/* Run query on d's database into *res (free with sql_result_clear()).
   SQL_TEMPFAIL: the file cannot be opened or stays locked; SQL_ERROR: the
   query is wrong. */
static enum sql_status sqlite_run(struct sql_db *d, const char *query, struct sql_result *res,
				  char *error, size_t errsize)
{
	memset(res, 0, sizeof(*res));
	if (d->sqlite == NULL) {
		int rc = sqlite3_open_v2(d->conf.connect_rest, &d->sqlite, SQLITE_OPEN_READONLY, NULL);
		if (rc != SQLITE_OK) {
			snprintf(error, errsize, "%s: %s", d->conf.connect_rest,
				 d->sqlite != NULL ? sqlite3_errmsg(d->sqlite) : sqlite3_errstr(rc));
			sqlite3_close_v2(d->sqlite);
			d->sqlite = NULL;
			return SQL_TEMPFAIL;
		}
		sqlite3_busy_timeout(d->sqlite, (int)d->conf.request_timeout_ms);
	}
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(d->sqlite, query, -1, &st, NULL);
	if (rc != SQLITE_OK) {
		snprintf(error, errsize, "%s", sqlite3_errmsg(d->sqlite));
		return rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? SQL_TEMPFAIL : SQL_ERROR;
	}
	unsigned cols = (unsigned)sqlite3_column_count(st), cap = 0;
	res->cols = cols;
	res->names = rg_calloc(cols + 1, sizeof(char *));
	for (unsigned c = 0; c < cols; c++)
		res->names[c] = rg_strdup(sqlite3_column_name(st, (int)c));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (res->rows == cap) {
			cap = cap == 0 ? 2 : cap * 2;
			res->values = rg_realloc(res->values, sizeof(char *) * ((size_t)cap * cols + 1));
		}
		for (unsigned c = 0; c < cols; c++) {
			const unsigned char *v = sqlite3_column_text(st, (int)c);
			res->values[(size_t)res->rows * cols + c] =
				v != NULL && sqlite3_column_type(st, (int)c) != SQLITE_NULL ?
				rg_strndup((const char *)v, (size_t)sqlite3_column_bytes(st, (int)c)) : NULL;
		}
		res->rows++;
	}
	if (res->values == NULL)
		res->values = rg_calloc(1, sizeof(char *));
	enum sql_status ret = SQL_OK;
	if (rc != SQLITE_DONE) {
		snprintf(error, errsize, "%s", sqlite3_errmsg(d->sqlite));
		ret = rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? SQL_TEMPFAIL : SQL_ERROR;
	}
	sqlite3_finalize(st);
	return ret;
}

static void lookup_done(void *context, enum sql_status status, const struct sql_result *res,
			const char *error);

/* Ask the store: the pool (asynchronous) or SQLite (here and now). */
static void lookup_start(struct sql_lookup *l)
{
	const char *err;
	if (l->db->pool != NULL) {
		const struct sql_prepared *sp = NULL;
		for (unsigned i = 0; i < 2 && sp == NULL; i++) {
			if (l->db->prepared[i].stmt >= 0 && l->db->prepared[i].query == l->tmpl)
				sp = &l->db->prepared[i];
		}
		if (sp == NULL) {
			sql_pool_query(l->db->pool, lookup_build, lookup_done, l);
			return;
		}
		/* the parameters' values, as they are: no escaping */
		char **values = rg_calloc(sp->t.nparams, sizeof(char *));
		for (unsigned i = 0; i < sp->t.nparams; i++) {
			values[i] = db_store_expand(sp->t.params[i], l->req, NULL, NULL, &err);
			if (values[i] == NULL) {
				for (unsigned j = 0; j < i; j++)
					rg_free(values[j]);
				rg_free(values);
				lookup_done(l, SQL_ERROR, NULL, err);
				return;
			}
		}
		sql_pool_query_stmt(l->db->pool, sp->stmt, values, lookup_build, lookup_done, l);
		return;
	}
	char *query = db_store_expand(l->tmpl, l->req, sqlite_escape_cb, NULL, &err);
	if (query == NULL) {
		lookup_done(l, SQL_ERROR, NULL, err);
		return;
	}
	struct sql_result res;
	char error[256] = "";
	enum sql_status st = sqlite_run(l->db, query, &res, error, sizeof(error));
	rg_free(query);
	lookup_done(l, st, st == SQL_OK ? &res : NULL, error);
	sql_result_clear(&res);
}

static struct sql_lookup *lookup_new(struct sql_db *db, struct auth_db_request *req,
				     enum sql_lookup_kind kind)
{
	struct sql_lookup *l = rg_calloc(1, sizeof(*l));
	l->db = db;
	l->req = req;
	l->kind = kind;
	if (kind == LOOKUP_USERDB) {
		l->tmpl = db->conf.user_query;
		l->query_name = "user_query";
	} else {
		l->tmpl = db->conf.password_query;
		l->query_name = "password_query";
	}
	return l;
}

/* ---- passdb ---------------------------------------------------------------- */

static int passdb_sql_init(struct passdb_module *m, char **error_r)
{
	if (sql_db_open(m->args, &m->ctx, error_r) < 0)
		return -1;
	const struct sql_db *db = m->ctx;
	if (db->conf.driver == SQL_DRIVER_SQLITE)
		m->blocking = true;
	const char *key_src[] = { db->conf.password_query };
	m->cache_key = db_store_cache_key(key_src, 1);
	return 0;
}

static void passdb_sql_deinit(struct passdb_module *m)
{
	sql_db_close(m->ctx);
	m->ctx = NULL;
}

static void passdb_sql_verify(struct passdb_module *m, struct auth_db_request *req,
			      const uint8_t *pw, size_t pw_len, passdb_verify_callback *cb)
{
	struct sql_lookup *l = lookup_new(m->ctx, req, LOOKUP_VERIFY);
	l->pw = pw;
	l->pw_len = pw_len;
	l->verify_cb = cb;
	lookup_start(l);
}

static void passdb_sql_credentials(struct passdb_module *m, struct auth_db_request *req,
				   const char *scheme, passdb_credentials_callback *cb)
{
	(void)scheme;
	struct sql_lookup *l = lookup_new(m->ctx, req, LOOKUP_CREDENTIALS);
	l->cred_cb = cb;
	lookup_start(l);
}

const struct passdb_driver passdb_driver_sql = {
	.name = "sql",
	.blocking = false,
	.init_sets_blocking = true,
	.init = passdb_sql_init,
	.deinit = passdb_sql_deinit,
	.verify_plain = passdb_sql_verify,
	.lookup_credentials = passdb_sql_credentials,
};

/* ---- userdb ---------------------------------------------------------------- */

static int userdb_sql_init(struct userdb_module *m, char **error_r)
{
	if (sql_db_open(m->args, &m->ctx, error_r) < 0)
		return -1;
	const struct sql_db *db = m->ctx;
	if (db->conf.driver == SQL_DRIVER_SQLITE)
		m->blocking = true;
	const char *key_src[] = { db->conf.user_query };
	m->cache_key = db_store_cache_key(key_src, 1);
	return 0;
}

static void userdb_sql_deinit(struct userdb_module *m)
{
	sql_db_close(m->ctx);
	m->ctx = NULL;
}

static void userdb_sql_lookup(struct userdb_module *m, struct auth_db_request *req,
			      userdb_callback *cb)
{
	struct sql_lookup *l = lookup_new(m->ctx, req, LOOKUP_USERDB);
	l->userdb_cb = cb;
	lookup_start(l);
}

struct sql_iter {
	struct sql_db *db;
	userdb_iter_callback *cb;
	void *context;
};

static char *iter_build(void *context, struct sql_escaper *esc, const char **error_r)
{
	(void)esc;
	(void)error_r;
	struct sql_iter *it = context;
	return rg_strdup(it->db->conf.iterate_query);
}

static void iter_done(void *context, enum sql_status status, const struct sql_result *res,
		      const char *error)
{
	struct sql_iter *it = context;

	if (status != SQL_OK) {
		log_error("sql(%s): iterate_query failed: %s", it->db->path, error);
		it->cb(NULL, true, it->context);
		rg_free(it);
		return;
	}
	int user_col = -1, name_col = -1, domain_col = -1;
	for (unsigned c = 0; c < res->cols; c++) {
		if (strcmp(res->names[c], "user") == 0)
			user_col = (int)c;
		else if (strcmp(res->names[c], "username") == 0)
			name_col = (int)c;
		else if (strcmp(res->names[c], "domain") == 0)
			domain_col = (int)c;
	}
	if (user_col < 0 && name_col < 0) {
		log_error("sql(%s): iterate_query returned neither a user nor a username column",
			  it->db->path);
		it->cb(NULL, true, it->context);
		rg_free(it);
		return;
	}
	for (unsigned r = 0; r < res->rows; r++) {
		if (user_col >= 0) {
			const char *u = sql_result_value(res, r, (unsigned)user_col);
			if (u != NULL)
				it->cb(u, false, it->context);
			continue;
		}
		const char *n = sql_result_value(res, r, (unsigned)name_col);
		const char *d = domain_col >= 0 ? sql_result_value(res, r, (unsigned)domain_col) : NULL;
		if (n == NULL)
			continue;
		if (d == NULL) {
			it->cb(n, false, it->context);
		} else {
			char *u = rg_strdup_printf("%s@%s", n, d);
			it->cb(u, false, it->context);
			rg_free(u);
		}
	}
	it->cb(NULL, false, it->context);
	rg_free(it);
}

static void userdb_sql_iterate(struct userdb_module *m, userdb_iter_callback *cb, void *context)
{
	struct sql_iter *it = rg_calloc(1, sizeof(*it));
	it->db = m->ctx;
	it->cb = cb;
	it->context = context;
	if (it->db->pool != NULL) {
		sql_pool_query(it->db->pool, iter_build, iter_done, it);
		return;
	}
	struct sql_result res;
	char error[256] = "";
	enum sql_status st = sqlite_run(it->db, it->db->conf.iterate_query, &res, error, sizeof(error));
	iter_done(it, st, st == SQL_OK ? &res : NULL, error);
	sql_result_clear(&res);
}

const struct userdb_driver userdb_driver_sql = {
	.name = "sql",
	.blocking = false,
	.init_sets_blocking = true,
	.init = userdb_sql_init,
	.deinit = userdb_sql_deinit,
	.lookup = userdb_sql_lookup,
	.iterate = userdb_sql_iterate,
};
