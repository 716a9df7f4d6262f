/* db-passwd-file.c — passdb and userdb `passwd-file` (auth-passwd.h) on the
 * driver interface. Non-blocking: the file is in memory, re-read at most
 * once a second when it changed. A passdb and a userdb block naming the same
 * file (and username_format) share one loaded copy.
 *
 * A path with %-variables (`/etc/dovecot/users.%d`, Dovecot's per-domain
 * files) is expanded per request; each value has '/' replaced by '_' and a
 * value of "." or ".." becomes "_" / "__", so no user name leaves the
 * directory the administrator named. The expanded files are loaded on first
 * use and kept in a per-block list of at most PF_MAX_FILES (least recently
 * used goes first); a path that does not exist means "no such user". */
#include "auth/auth-passwd.h"
#include "auth/auth-scheme.h"
#include "auth/passdb.h"
#include "auth/userdb.h"

#include "lib/alloc.h"
#include "lib/log.h"
#include "lib/var-expand.h"

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

#define PF_MAX_FILES 64

/* one expanded file of a templated block */
struct pf_dyn {
	struct pf_dyn *next; /* most recently used first */
	struct passwd_file *pf;
};

/* a block's state: a fixed file (shared), or a template and its files */
struct pf_module {
	struct pf_shared *fixed;
	struct passwd_args targs; /* targs.path: the template */
	struct pf_dyn *files;
	unsigned nfiles;
};

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
		    strcmp(s->args.default_scheme, args.default_scheme) == 0 &&
		    strcmp(s->args.username_format != NULL ? s->args.username_format : "",
			   args.username_format != NULL ? args.username_format : "") == 0) {
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

static int pf_module_open(const char *args_text, void **ctx_r, char **error_r)
{
	struct pf_module *mod = rg_calloc(1, sizeof(*mod));
	struct passwd_args args;
	if (passwd_args_parse(args_text, &args, error_r) < 0) {
		rg_free(mod);
		return -1;
	}
	/* check the templates once (an unknown variable is an error) */
	const char *tmpl[2] = { args.path, args.username_format };
	for (unsigned i = 0; i < 2; i++) {
		if (tmpl[i] == NULL)
			continue;
		struct auth_db_request probe;
		auth_db_request_init(&probe, "user@domain");
		char *out = NULL, *error = NULL;
		int ret = auth_request_expand(&probe, tmpl[i], NULL, NULL, &out, &error);
		auth_db_request_clear(&probe);
		rg_free(out);
		if (ret < 0) {
			*error_r = rg_strdup_printf("passwd-file %s: %s", tmpl[i], error);
			rg_free(error);
			passwd_args_clear(&args);
			rg_free(mod);
			return -1;
		}
	}
	if (var_has_variables(args.path)) {
		mod->targs = args;
		*ctx_r = mod;
		return 0;
	}
	passwd_args_clear(&args);
	void *shared;
	if (pf_open(args_text, &shared, error_r) < 0) {
		rg_free(mod);
		return -1;
	}
	mod->fixed = shared;
	*ctx_r = mod;
	return 0;
}

static void pf_module_close(void *ctx)
{
	struct pf_module *mod = ctx;
	if (mod == NULL)
		return;
	pf_close(mod->fixed);
	while (mod->files != NULL) {
		struct pf_dyn *d = mod->files;
		mod->files = d->next;
		passwd_file_free(d->pf);
		rg_free(d);
	}
	passwd_args_clear(&mod->targs);
	rg_free(mod);
}

/* a variable's value inside a path: no '/', not "." or ".." */
static char *path_escape(const char *value, void *context)
{
	(void)context;
	if (strcmp(value, ".") == 0)
		return rg_strdup("_");
	if (strcmp(value, "..") == 0)
		return rg_strdup("__");
	char *out = rg_strdup(value);
	for (char *p = out; *p != '\0'; p++) {
		if (*p == '/')
			*p = '_';
	}
	return out;
}

/* the file of a templated block for this request: *pf_r NULL when it does
 * not exist; -1: it cannot be read (logged) */
static int pf_dyn_get(struct pf_module *mod, struct auth_db_request *req,
		      struct passwd_file **pf_r)
{
	char lu[300];
	char *path = NULL, *error = NULL;
	*pf_r = NULL;
	if (auth_request_expand(req, mod->targs.path, path_escape, NULL, &path, &error) < 0) {
		log_error("%s(%s,%s): passwd-file %s: %s", req->db_name,
			  log_user(req, lu, sizeof(lu)), req->rip, mod->targs.path, error);
		rg_free(error);
		return -1;
	}
	struct pf_dyn **pp = &mod->files;
	for (; *pp != NULL; pp = &(*pp)->next) {
		if (strcmp(passwd_file_path((*pp)->pf), path) == 0)
			break;
	}
	if (*pp != NULL) {
		struct pf_dyn *d = *pp;
		*pp = d->next; /* to the front */
		d->next = mod->files;
		mod->files = d;
		rg_free(path);
		if (passwd_file_refresh(d->pf, mono_ms()) < 0)
			return -1;
		*pf_r = d->pf;
		return 0;
	}
	struct passwd_args args = mod->targs;
	args.path = path;
	struct passwd_file *pf = passwd_file_load_opt(&args, &error);
	if (pf == NULL) {
		int ret = 0;
		if (error != NULL) {
			log_error("%s(%s,%s): %s", req->db_name, log_user(req, lu, sizeof(lu)),
				  req->rip, error);
			ret = -1;
		} else {
			log_debug("%s(%s,%s): passwd-file %s does not exist", req->db_name,
				  log_user(req, lu, sizeof(lu)), req->rip, path);
		}
		rg_free(error);
		rg_free(path);
		return ret;
	}
	rg_free(path);
	struct pf_dyn *d = rg_calloc(1, sizeof(*d));
	d->pf = pf;
	d->next = mod->files;
	mod->files = d;
	if (++mod->nfiles > PF_MAX_FILES) {
		struct pf_dyn **last = &mod->files;
		while ((*last)->next != NULL)
			last = &(*last)->next;
		passwd_file_free((*last)->pf);
		rg_free(*last);
		*last = NULL;
		mod->nfiles--;
	}
	*pf_r = pf;
	return 0;
}

/* 0 with *e_r (NULL: unknown user), -1: the file cannot be trusted now */
static int pf_lookup(struct pf_module *mod, struct auth_db_request *req,
		     const struct passwd_entry **e_r)
{
	struct passwd_file *pf;
	const char *fmt = mod->fixed != NULL ? mod->fixed->args.username_format :
		mod->targs.username_format;
	*e_r = NULL;
	if (mod->fixed != NULL) {
		pf = mod->fixed->pf;
		if (passwd_file_refresh(pf, mono_ms()) < 0)
			return -1;
	} else if (pf_dyn_get(mod, req, &pf) < 0) {
		return -1;
	} else if (pf == NULL) {
		return 0;
	}
	if (fmt == NULL) {
		*e_r = passwd_file_lookup(pf, req->user);
		return 0;
	}
	char *key = NULL, *error = NULL;
	if (auth_request_expand(req, fmt, NULL, NULL, &key, &error) < 0) {
		char lu[300];
		log_error("%s(%s,%s): username_format: %s", req->db_name,
			  log_user(req, lu, sizeof(lu)), req->rip, error);
		rg_free(error);
		return -1;
	}
	*e_r = passwd_file_lookup(pf, key);
	rg_free(key);
	return 0;
}

/* ---- passdb ---------------------------------------------------------------- */

static int passdb_pf_init(struct passdb_module *m, char **error_r)
{
	return pf_module_open(m->args, &m->ctx, error_r);
}

static void passdb_pf_deinit(struct passdb_module *m)
{
	pf_module_close(m->ctx);
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
	return pf_module_open(m->args, &m->ctx, error_r);
}

static void userdb_pf_deinit(struct userdb_module *m)
{
	pf_module_close(m->ctx);
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

/* every entry, in file order (Dovecot's passwd-file iterate) */
static void userdb_pf_iterate(struct userdb_module *m, userdb_iter_callback *cb, void *context)
{
	const struct pf_module *mod = m->ctx;
	if (mod->fixed == NULL) {
		/* which files exist is not known: Dovecot refuses too */
		log_error("passwd-file %s: users cannot be listed with %%variables in the path",
			  mod->targs.path);
		cb(NULL, true, context);
		return;
	}
	const struct pf_shared *s = mod->fixed;
	if (passwd_file_refresh(s->pf, mono_ms()) < 0) {
		cb(NULL, true, context);
		return;
	}
	for (unsigned i = 0; i < passwd_file_count(s->pf); i++)
		cb(passwd_file_entry(s->pf, i)->user, false, context);
	cb(NULL, false, context);
}

const struct userdb_driver userdb_driver_passwd_file = {
	.name = "passwd-file",
	.blocking = false,
	.init = userdb_pf_init,
	.deinit = userdb_pf_deinit,
	.lookup = userdb_pf_lookup,
	.iterate = userdb_pf_iterate,
};
