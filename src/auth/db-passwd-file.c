/* db-passwd-file.c — passdb and userdb `passwd-file` (auth-passwd.h) on the
 * driver interface. Non-blocking: the file is in memory, re-read at most
 * once a second when it changed. A passdb and a userdb block naming the same
 * file (and username_format) share one loaded copy. */
#include "auth/auth-passwd.h"
#include "auth/auth-scheme.h"
#include "auth/passdb.h"
#include "auth/userdb.h"

#include "lib/alloc.h"
#include "lib/log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

struct pf_shared {
	struct pf_shared *next;
	unsigned refcount;
	struct passwd_args args;
	struct passwd_file *pf;
};

static struct pf_shared *shared_files;

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int pf_open(const char *args_text, void **ctx_r, char **error_r)
{
	struct passwd_args args;
	if (passwd_args_parse(args_text, &args, error_r) < 0)
		return -1;
	for (struct pf_shared *s = shared_files; s != NULL; s = s->next) {
		if (strcmp(s->args.path, args.path) == 0 && s->args.lowercase == args.lowercase &&
		    strcmp(s->args.default_scheme, args.default_scheme) == 0) {
			passwd_args_clear(&args);
			s->refcount++;
			*ctx_r = s;
			return 0;
		}
	}
	struct passwd_file *pf = passwd_file_load(&args, error_r);
	if (pf == NULL) {
		passwd_args_clear(&args);
		return -1;
	}
	struct pf_shared *s = rg_calloc(1, sizeof(*s));
	s->refcount = 1;
	s->args = args;
	s->pf = pf;
	s->next = shared_files;
	shared_files = s;
	*ctx_r = s;
	return 0;
}

static void pf_close(void *ctx)
{
	struct pf_shared *s = ctx;
	if (s == NULL || --s->refcount > 0)
		return;
	for (struct pf_shared **p = &shared_files; *p != NULL; p = &(*p)->next) {
		if (*p == s) {
			*p = s->next;
			break;
		}
	}
	passwd_file_free(s->pf);
	passwd_args_clear(&s->args);
	rg_free(s);
}

static const char *log_user(const struct auth_db_request *req, char *buf, size_t size)
{
	if (req->user == NULL || req->user[0] == '\0')
		return "?";
	return log_escape(req->user, strlen(req->user), 64, buf, size);
}

/* the entry's extra fields as request fields (passdb: userdb_* go to the
 * userdb fields) */
static void entry_fields(struct auth_db_request *req, const struct passwd_entry *e)
{
	for (unsigned i = 0; i < e->extra_count; i++) {
		const char *x = e->extra[i];
		const char *eq = strchr(x, '=');
		if (eq == NULL) {
			auth_request_set_field(req, x, "");
			continue;
		}
		char key[PASSWD_MAX_KEY + 8];
		size_t klen = (size_t)(eq - x);
		if (klen >= sizeof(key))
			continue; /* the parser bounds keys: cannot happen */
		memcpy(key, x, klen);
		key[klen] = '\0';
		auth_request_set_field(req, key, eq + 1);
	}
}

/* 0 with *e_r (NULL: unknown user), -1: the file cannot be trusted now */
static int pf_lookup(struct pf_shared *s, struct auth_db_request *req,
		     const struct passwd_entry **e_r)
{
	if (passwd_file_refresh(s->pf, mono_ms()) < 0)
		return -1;
	*e_r = passwd_file_lookup(s->pf, req->user);
	return 0;
}

/* ---- passdb ---------------------------------------------------------------- */

static int passdb_pf_init(struct passdb_module *m, char **error_r)
{
	return pf_open(m->args, &m->ctx, error_r);
}

static void passdb_pf_deinit(struct passdb_module *m)
{
	pf_close(m->ctx);
	m->ctx = NULL;
}

static void passdb_pf_verify(struct passdb_module *m, struct auth_db_request *req,
			     const uint8_t *pw, size_t pw_len, passdb_verify_callback *cb)
{
	char lu[300];
	const struct passwd_entry *e;
	if (pf_lookup(m->ctx, req, &e) < 0) {
		cb(PASSDB_RESULT_INTERNAL_FAILURE, req);
		return;
	}
	if (e == NULL) {
		log_info("%s(%s,%s): unknown user", req->db_name, log_user(req, lu, sizeof(lu)),
			 req->rip);
		cb(PASSDB_RESULT_USER_UNKNOWN, req);
		return;
	}
	entry_fields(req, e);
	if (req->skip_password_check) {
		cb(PASSDB_RESULT_OK, req);
		return;
	}
	if (e->scheme == NULL) {
		if (passwd_entry_field(e, "nopassword") != NULL) {
			cb(PASSDB_RESULT_OK, req);
			return;
		}
		log_info("%s(%s,%s): no password for the user", req->db_name,
			 log_user(req, lu, sizeof(lu)), req->rip);
		cb(PASSDB_RESULT_PASSWORD_MISMATCH, req);
		return;
	}
	enum scheme_result res = auth_scheme_verify(e->scheme, e->password, pw, pw_len);
	switch (res) {
	case SCHEME_OK:
		cb(PASSDB_RESULT_OK, req);
		return;
	case SCHEME_MISMATCH:
		log_info("%s(%s,%s): Password mismatch", req->db_name,
			 log_user(req, lu, sizeof(lu)), req->rip);
		break;
	case SCHEME_UNKNOWN:
		log_error("%s(%s,%s): unknown password scheme %s", req->db_name,
			  log_user(req, lu, sizeof(lu)), req->rip, e->scheme);
		break;
	case SCHEME_BAD_HASH:
		log_error("%s(%s,%s): the stored password is not a valid %s hash", req->db_name,
			  log_user(req, lu, sizeof(lu)), req->rip, e->scheme);
		break;
	}
	cb(PASSDB_RESULT_PASSWORD_MISMATCH, req);
}

static void passdb_pf_credentials(struct passdb_module *m, struct auth_db_request *req,
				  const char *scheme, passdb_credentials_callback *cb)
{
	(void)scheme;
	const struct passwd_entry *e;
	if (pf_lookup(m->ctx, req, &e) < 0) {
		cb(PASSDB_RESULT_INTERNAL_FAILURE, NULL, NULL, 0, req);
		return;
	}
	if (e == NULL) {
		cb(PASSDB_RESULT_USER_UNKNOWN, NULL, NULL, 0, req);
		return;
	}
	entry_fields(req, e);
	if (e->scheme == NULL) {
		/* nopassword users have no credentials to give */
		cb(passwd_entry_field(e, "nopassword") != NULL ? PASSDB_RESULT_OK :
		   PASSDB_RESULT_SCHEME_NOT_AVAILABLE, "", (const uint8_t *)"", 0, req);
		return;
	}
	cb(PASSDB_RESULT_OK, e->scheme, (const uint8_t *)e->password, strlen(e->password), req);
}

const struct passdb_driver passdb_driver_passwd_file = {
	.name = "passwd-file",
	.blocking = false,
	.init = passdb_pf_init,
	.deinit = passdb_pf_deinit,
	.verify_plain = passdb_pf_verify,
	.lookup_credentials = passdb_pf_credentials,
};

/* ---- userdb ---------------------------------------------------------------- */

static int userdb_pf_init(struct userdb_module *m, char **error_r)
{
	return pf_open(m->args, &m->ctx, error_r);
}

static void userdb_pf_deinit(struct userdb_module *m)
{
	pf_close(m->ctx);
	m->ctx = NULL;
}

static void userdb_pf_lookup(struct userdb_module *m, struct auth_db_request *req,
			     userdb_callback *cb)
{
	char lu[300];
	const struct passwd_entry *e;
	if (pf_lookup(m->ctx, req, &e) < 0) {
		cb(USERDB_RESULT_INTERNAL_FAILURE, req);
		return;
	}
	if (e == NULL) {
		log_debug("%s(%s,%s): user not found in the userdb", req->db_name,
			 log_user(req, lu, sizeof(lu)), req->rip);
		cb(USERDB_RESULT_USER_UNKNOWN, req);
		return;
	}
	char num[16];
	if (e->have_uid) {
		snprintf(num, sizeof(num), "%u", e->uid);
		auth_request_set_userdb_field(req, "uid", num);
	}
	if (e->have_gid) {
		snprintf(num, sizeof(num), "%u", e->gid);
		auth_request_set_userdb_field(req, "gid", num);
	}
	if (e->home[0] != '\0')
		auth_request_set_userdb_field(req, "home", e->home);
	/* a bare `mail` extra field is the mail location too (older files) */
	const char *mail = passwd_entry_field(e, "mail");
	if (mail != NULL && passwd_entry_field(e, "userdb_mail") == NULL)
		auth_request_set_userdb_field(req, "mail", mail);
	for (unsigned i = 0; i < e->extra_count; i++) {
		const char *x = e->extra[i];
		if (strncmp(x, "userdb_", 7) != 0 || x[7] == '\0' || x[7] == '=')
			continue;
		const char *eq = strchr(x, '=');
		char key[PASSWD_MAX_KEY + 8];
		size_t klen = eq != NULL ? (size_t)(eq - x) - 7 : strlen(x + 7);
		if (klen >= sizeof(key))
			continue;
		memcpy(key, x + 7, klen);
		key[klen] = '\0';
		auth_request_set_userdb_field(req, key, eq != NULL ? eq + 1 : "");
	}
	cb(USERDB_RESULT_OK, req);
}

const struct userdb_driver userdb_driver_passwd_file = {
	.name = "passwd-file",
	.blocking = false,
	.init = userdb_pf_init,
	.deinit = userdb_pf_deinit,
	.lookup = userdb_pf_lookup,
	.iterate = NULL,
};
