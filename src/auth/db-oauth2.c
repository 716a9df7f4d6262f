/* db-oauth2.c — Dovecot's `passdb { driver = oauth2 args = FILE }`: the
 * "password" is an OAuth2 bearer token (from OAUTHBEARER or XOAUTH2, or a
 * client that sends its token as the password of PLAIN). In local mode it
 * is checked here by auth-oauth2.h; in the remote modes the IdP is asked
 * over HTTP(S) on auth's loop (auth-http.h) and its answer judged and
 * cached (oauth2-introspect.h). It cannot give stored credentials. */
#include "auth/auth-http.h"
#include "auth/auth-oauth2.h"
#include "auth/jwt.h"
#include "auth/oauth2-introspect.h"
#include "auth/passdb.h"

#include "lib/alloc.h"
#include "lib/log.h"

#include <string.h>
#include <time.h>

struct oauth2_db {
	struct oauth2_config *cfg;
	bool remote;
	struct oauth2_remote r;          /* remote: what to ask */
	struct http_client_settings http_set;
	struct http_client *http;        /* made at the first remote check */
	struct oauth2_cache *cache;
};

/* one introspection in flight */
struct oauth2_pending {
	struct oauth2_db *db;
	struct auth_db_request *req;
	passdb_verify_callback *cb;
	char *token; /* the cache key (wiped on free) */
	size_t token_len;
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int passdb_oauth2_init(struct passdb_module *m, char **error_r)
{
	struct oauth2_config *cfg = oauth2_config_load(m->args, error_r);
	if (cfg == NULL)
		return -1;
	struct oauth2_db *db = rg_calloc(1, sizeof(*db));
	db->cfg = cfg;
	unsigned cache_size, cache_ttl;
	db->remote = oauth2_config_remote(cfg, &db->r, &db->http_set, &cache_size, &cache_ttl);
	if (db->remote)
		db->cache = oauth2_cache_new(cache_size, cache_ttl);
	m->ctx = db;
	return 0;
}

static void passdb_oauth2_deinit(struct passdb_module *m)
{
	struct oauth2_db *db = m->ctx;
	if (db == NULL)
		return;
	/* requests in flight are dropped with the client (auth is stopping) */
	http_client_free(&db->http);
	oauth2_cache_free(&db->cache);
	oauth2_config_free(&db->cfg);
	rg_free(db);
	m->ctx = NULL;
}

static void log_refusal(const struct auth_db_request *req, const char *error)
{
	char lu[300];
	log_info("%s(%s,%s): token refused: %s", req->db_name,
		 log_escape(req->user, strlen(req->user), 64, lu, sizeof(lu)), req->rip, error);
}

/* a verdict on the token, for this request's user */
static void verdict_apply(const struct oauth2_db *db, struct auth_db_request *req,
			  const struct oauth2_verdict *v, passdb_verify_callback *cb)
{
	const char *error;
	enum passdb_result result = oauth2_verdict_for_user(&db->r, v, req->user, &error);
	if (result == PASSDB_RESULT_OK) {
		/* OAUTHBEARER without authzid: the token names the user */
		if (req->user[0] == '\0')
			auth_request_set_field(req, "user", v->user);
		cb(PASSDB_RESULT_OK, req);
		return;
	}
	if (result == PASSDB_RESULT_INTERNAL_FAILURE) {
		char lu[300];
		log_error("%s(%s,%s): introspection failed: %s", req->db_name,
			  log_escape(req->user, strlen(req->user), 64, lu, sizeof(lu)), req->rip,
			  error);
	} else {
		log_refusal(req, error);
	}
	cb(result, req);
}

static void introspected(const struct http_response *resp, void *context)
{
	struct oauth2_pending *p = context;
	struct oauth2_db *db = p->db;
	struct oauth2_verdict v;
	if (resp->error != NULL) {
		memset(&v, 0, sizeof(v));
		v.result = PASSDB_RESULT_INTERNAL_FAILURE;
		v.error = resp->error;
	} else {
		int64_t now = (int64_t)time(NULL);
		oauth2_reply_judge(&db->r, resp->status, resp->body, resp->body_len, now, &v);
		if (v.result == PASSDB_RESULT_INTERNAL_FAILURE)
			log_warning("%s: the IdP answered HTTP %ld", p->req->db_name, resp->status);
		oauth2_cache_put(db->cache, p->token, p->token_len, mono_ms(), now, &v);
	}
	verdict_apply(db, p->req, &v, p->cb);
	explicit_bzero(p->token, p->token_len);
	rg_free(p->token);
	rg_free(p);
}

static void remote_verify(struct oauth2_db *db, struct auth_db_request *req, const char *token,
			  size_t len, passdb_verify_callback *cb)
{
	struct oauth2_verdict v;
	if (oauth2_cache_get(db->cache, token, len, mono_ms(), (int64_t)time(NULL), &v)) {
		verdict_apply(db, req, &v, cb);
		return;
	}
	if (db->http == NULL) {
		const char *error;
		db->http = http_client_new(&db->http_set, &error);
		if (db->http == NULL) {
			log_error("%s: %s", req->db_name, error);
			cb(PASSDB_RESULT_INTERNAL_FAILURE, req);
			return;
		}
	}
	const char *method;
	char *url, *body, *auth;
	oauth2_request_make(&db->r, token, &method, &url, &body, &auth);
	const char *headers[3] = { "Accept: application/json", auth, NULL };
	struct oauth2_pending *p = rg_calloc(1, sizeof(*p));
	p->db = db;
	p->req = req;
	p->cb = cb;
	p->token = rg_strndup(token, len);
	p->token_len = len;
	http_client_submit(db->http, method, url, headers, body, introspected, p);
	/* they carry the token */
	explicit_bzero(url, strlen(url));
	rg_free(url);
	if (body != NULL) {
		explicit_bzero(body, strlen(body));
		rg_free(body);
	}
	if (auth != NULL) {
		explicit_bzero(auth, strlen(auth));
		rg_free(auth);
	}
}

static void passdb_oauth2_verify(struct passdb_module *m, struct auth_db_request *req,
				 const uint8_t *pw, size_t pw_len, passdb_verify_callback *cb)
{
	struct oauth2_db *db = m->ctx;
	/* a token is printable ASCII (RFC 6750's b64token); anything else
	   would travel in a header or URL: refused here */
	for (size_t i = 0; i < pw_len || pw_len == 0; i++) {
		if (pw_len == 0 || pw[i] <= 0x20 || pw[i] >= 0x7f) {
			log_refusal(req, "not a bearer token (RFC 6750 b64token)");
			cb(PASSDB_RESULT_PASSWORD_MISMATCH, req);
			return;
		}
	}
	if (db->remote) {
		remote_verify(db, req, (const char *)pw, pw_len, cb);
		return;
	}
	const char *error;
	char user[JWT_MAX_USER + 1];
	if (oauth2_token_check(db->cfg, req->user, (const char *)pw, pw_len, (int64_t)time(NULL),
			       user, sizeof(user), &error)) {
		/* OAUTHBEARER without authzid: the token names the user */
		if (req->user[0] == '\0')
			auth_request_set_field(req, "user", user);
		cb(PASSDB_RESULT_OK, req);
		return;
	}
	log_refusal(req, error);
	cb(PASSDB_RESULT_PASSWORD_MISMATCH, req);
}

const char *passdb_oauth2_scope(const struct passdb_module *m)
{
	if (m->driver != &passdb_driver_oauth2 || m->ctx == NULL)
		return NULL;
	const struct oauth2_db *db = m->ctx;
	return oauth2_config_scope(db->cfg);
}

const struct passdb_driver passdb_driver_oauth2 = {
	.name = "oauth2",
	.blocking = false,
	.init = passdb_oauth2_init,
	.deinit = passdb_oauth2_deinit,
	.verify_plain = passdb_oauth2_verify,
	.lookup_credentials = NULL,
};
