/* db-system.c — the machine's own users: passdb `shadow` (getspnam_r and
 * crypt, as Dovecot's; a locked entry `!`/`*` fails without a crypt call,
 * an expired account is PASS_EXPIRED), passdb `passwd` (the crypt hash in
 * getpwnam_r's pw_passwd, as Dovecot's: NIS and the like; `!`/`*` is a
 * disabled user) and userdb `passwd` (getpwnam_r: uid, gid, home; any NSS
 * module). All block (files, NSS modules, crypt) and so run in
 * auth-workers; shadow needs root there. */
#include "auth/auth-scheme.h"
#include "auth/passdb.h"
#include "auth/userdb.h"

#include "lib/alloc.h"
#include "lib/log.h"

#include <errno.h>
#include <pwd.h>
#include <shadow.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define NSS_BUF 16384

static int no_args_init(const char *driver, const char *args, char **error_r)
{
	/* Dovecot's blocking=yes|no is accepted: these always run in workers */
	while (*args == ' ')
		args++;
	if (args[0] != '\0' && strncmp(args, "blocking=", 9) != 0) {
		*error_r = rg_strdup_printf("%s: unknown args '%s'", driver, args);
		return -1;
	}
	return 0;
}

static const char *log_user(const struct auth_db_request *req, char *buf, size_t size)
{
	return log_escape(req->user, strlen(req->user), 64, buf, size);
}

/* ---- passdb shadow ----------------------------------------------------------- */

static int shadow_init(struct passdb_module *m, char **error_r)
{
	m->cache_key = rg_strdup("%u");
	return no_args_init("shadow", m->args, error_r);
}

/* 0 with *sp_r; 1 unknown user; -1 internal (logged) */
static int shadow_get(struct auth_db_request *req, struct spwd *sp, char *buf, size_t size,
		      struct spwd **sp_r)
{
	char lu[300];
	int err = getspnam_r(req->user, sp, buf, size, sp_r);
	if (*sp_r != NULL)
		return 0;
	if (err == 0 || err == ENOENT)
		return 1;
	log_error("%s(%s,%s): getspnam_r() failed: %s", req->db_name,
		  log_user(req, lu, sizeof(lu)), req->rip, strerror(err));
	return -1;
}

/* locked or expired: the result, else PASSDB_RESULT_OK to go on */
static enum passdb_result shadow_usable(struct auth_db_request *req, const struct spwd *sp)
{
	char lu[300];
	const char *pw = sp->sp_pwdp != NULL ? sp->sp_pwdp : "";
	if (pw[0] == '!' || pw[0] == '*' || pw[0] == '\0') {
		log_info("%s(%s,%s): account locked (no usable password)", req->db_name,
			 log_user(req, lu, sizeof(lu)), req->rip);
		return PASSDB_RESULT_USER_DISABLED;
	}
	if (sp->sp_expire > 0 && (long)(time(NULL) / 86400) >= sp->sp_expire) {
		log_info("%s(%s,%s): account expired", req->db_name,
			 log_user(req, lu, sizeof(lu)), req->rip);
		return PASSDB_RESULT_PASS_EXPIRED;
	}
	return PASSDB_RESULT_OK;
}

static void shadow_verify(struct passdb_module *m, struct auth_db_request *req,
			  const uint8_t *pw, size_t pw_len, passdb_verify_callback *cb)
{
	(void)m;
	char lu[300];
	static char buf[NSS_BUF];
	struct spwd sp, *spp = NULL;
	int ret = shadow_get(req, &sp, buf, sizeof(buf), &spp);
	if (ret != 0) {
		if (ret > 0)
			log_info("%s(%s,%s): unknown user", req->db_name,
				 log_user(req, lu, sizeof(lu)), req->rip);
		cb(ret > 0 ? PASSDB_RESULT_USER_UNKNOWN : PASSDB_RESULT_INTERNAL_FAILURE, req);
		return;
	}
	enum passdb_result res = shadow_usable(req, spp);
	if (res == PASSDB_RESULT_OK && !req->skip_password_check) {
		switch (auth_scheme_verify("CRYPT", spp->sp_pwdp, pw, pw_len)) {
		case SCHEME_OK:
			break;
		case SCHEME_MISMATCH:
			log_info("%s(%s,%s): Password mismatch", req->db_name,
				 log_user(req, lu, sizeof(lu)), req->rip);
			res = PASSDB_RESULT_PASSWORD_MISMATCH;
			break;
		default:
			log_error("%s(%s,%s): the shadow entry is not a crypt hash libcrypt knows",
				  req->db_name, log_user(req, lu, sizeof(lu)), req->rip);
			res = PASSDB_RESULT_INTERNAL_FAILURE;
			break;
		}
	}
	explicit_bzero(buf, sizeof(buf));
	cb(res, req);
}

static void shadow_credentials(struct passdb_module *m, struct auth_db_request *req,
			       const char *scheme, passdb_credentials_callback *cb)
{
	(void)m;
	(void)scheme;
	static char buf[NSS_BUF];
	struct spwd sp, *spp = NULL;
	int ret = shadow_get(req, &sp, buf, sizeof(buf), &spp);
	if (ret != 0) {
		cb(ret > 0 ? PASSDB_RESULT_USER_UNKNOWN : PASSDB_RESULT_INTERNAL_FAILURE, NULL,
		   NULL, 0, req);
		return;
	}
	enum passdb_result res = shadow_usable(req, spp);
	if (res != PASSDB_RESULT_OK)
		cb(res, NULL, NULL, 0, req);
	else
		cb(res, "CRYPT", (const uint8_t *)spp->sp_pwdp, strlen(spp->sp_pwdp), req);
	explicit_bzero(buf, sizeof(buf));
}

const struct passdb_driver passdb_driver_shadow = {
	.name = "shadow",
	.blocking = true,
	.init = shadow_init,
	.deinit = NULL,
	.verify_plain = shadow_verify,
	.lookup_credentials = shadow_credentials,
};

/* ---- passdb passwd ----------------------------------------------------------- */

static int pwpass_init(struct passdb_module *m, char **error_r)
{
	m->cache_key = rg_strdup("%u");
	return no_args_init("passwd", m->args, error_r);
}

/* 0 with *pw_r (a usable crypt hash in pw_passwd); else the result */
static enum passdb_result pwpass_get(struct auth_db_request *req, struct passwd *pw, char *buf,
				     size_t size, struct passwd **pw_r)
{
	char lu[300];
	int err = getpwnam_r(req->user, pw, buf, size, pw_r);
	if (*pw_r == NULL) {
		if (err == 0 || err == ENOENT) {
			log_info("%s(%s,%s): unknown user", req->db_name,
				 log_user(req, lu, sizeof(lu)), req->rip);
			return PASSDB_RESULT_USER_UNKNOWN;
		}
		log_error("%s(%s,%s): getpwnam_r() failed: %s", req->db_name,
			  log_user(req, lu, sizeof(lu)), req->rip, strerror(err));
		return PASSDB_RESULT_INTERNAL_FAILURE;
	}
	const char *hash = (*pw_r)->pw_passwd != NULL ? (*pw_r)->pw_passwd : "";
	if (hash[0] == '!' || hash[0] == '*') {
		/* Dovecot's IS_VALID_PASSWD; no crypt call */
		log_info("%s(%s,%s): invalid password field", req->db_name,
			 log_user(req, lu, sizeof(lu)), req->rip);
		return PASSDB_RESULT_USER_DISABLED;
	}
	return PASSDB_RESULT_OK;
}

static void pwpass_verify(struct passdb_module *m, struct auth_db_request *req,
			  const uint8_t *pw, size_t pw_len, passdb_verify_callback *cb)
{
	(void)m;
	char lu[300];
	static char buf[NSS_BUF];
	struct passwd pwd, *pwp = NULL;
	enum passdb_result res = pwpass_get(req, &pwd, buf, sizeof(buf), &pwp);
	if (res == PASSDB_RESULT_OK && !req->skip_password_check) {
		/* "x" (the hash is in /etc/shadow) or "" never match */
		if (pwp->pw_passwd[0] == '\0' ||
		    auth_scheme_verify("CRYPT", pwp->pw_passwd, pw, pw_len) != SCHEME_OK) {
			log_info("%s(%s,%s): Password mismatch", req->db_name,
				 log_user(req, lu, sizeof(lu)), req->rip);
			res = PASSDB_RESULT_PASSWORD_MISMATCH;
		}
	}
	/* the name exactly as the database has it */
	if (res == PASSDB_RESULT_OK && strcmp(pwp->pw_name, req->user) != 0)
		auth_request_set_field(req, "user", pwp->pw_name);
	explicit_bzero(buf, sizeof(buf));
	cb(res, req);
}

static void pwpass_credentials(struct passdb_module *m, struct auth_db_request *req,
			       const char *scheme, passdb_credentials_callback *cb)
{
	(void)m;
	(void)scheme;
	static char buf[NSS_BUF];
	struct passwd pwd, *pwp = NULL;
	enum passdb_result res = pwpass_get(req, &pwd, buf, sizeof(buf), &pwp);
	if (res != PASSDB_RESULT_OK) {
		cb(res, NULL, NULL, 0, req);
	} else {
		if (strcmp(pwp->pw_name, req->user) != 0)
			auth_request_set_field(req, "user", pwp->pw_name);
		cb(res, "CRYPT", (const uint8_t *)pwp->pw_passwd, strlen(pwp->pw_passwd), req);
	}
	explicit_bzero(buf, sizeof(buf));
}

const struct passdb_driver passdb_driver_passwd = {
	.name = "passwd",
	.blocking = true,
	.init = pwpass_init,
	.deinit = NULL,
	.verify_plain = pwpass_verify,
	.lookup_credentials = pwpass_credentials,
};

/* ---- userdb passwd ----------------------------------------------------------- */

static int passwd_init(struct userdb_module *m, char **error_r)
{
	m->cache_key = rg_strdup("%u");
	return no_args_init("passwd", m->args, error_r);
}

static void passwd_lookup(struct userdb_module *m, struct auth_db_request *req,
			  userdb_callback *cb)
{
	(void)m;
	char lu[300];
	static char buf[NSS_BUF];
	struct passwd pw, *pwp = NULL;
	int err = getpwnam_r(req->user, &pw, buf, sizeof(buf), &pwp);
	if (pwp == NULL) {
		if (err == 0 || err == ENOENT) {
			log_info("%s(%s,%s): unknown user", req->db_name,
				 log_user(req, lu, sizeof(lu)), req->rip);
			cb(USERDB_RESULT_USER_UNKNOWN, req);
		} else {
			log_error("%s(%s,%s): getpwnam_r() failed: %s", req->db_name,
				  log_user(req, lu, sizeof(lu)), req->rip, strerror(err));
			cb(USERDB_RESULT_INTERNAL_FAILURE, req);
		}
		return;
	}
	char num[16];
	snprintf(num, sizeof(num), "%u", (unsigned)pwp->pw_uid);
	auth_request_set_userdb_field(req, "uid", num);
	snprintf(num, sizeof(num), "%u", (unsigned)pwp->pw_gid);
	auth_request_set_userdb_field(req, "gid", num);
	auth_request_set_userdb_field(req, "home", pwp->pw_dir);
	cb(USERDB_RESULT_OK, req);
}

static unsigned iter_first_uid = 500, iter_last_uid;

void userdb_passwd_set_valid_uids(unsigned first_valid_uid, unsigned last_valid_uid)
{
	iter_first_uid = first_valid_uid;
	iter_last_uid = last_valid_uid;
}

/* getpwent() over the valid uid range, as Dovecot's: the rest are the
 * machine's daemons. Blocking: only `ringgate user` calls it. */
static void passwd_iterate(struct userdb_module *m, userdb_iter_callback *cb, void *context)
{
	(void)m;
	setpwent();
	for (;;) {
		errno = 0;
		const struct passwd *pw = getpwent();
		if (pw == NULL) {
			int err = errno;
			endpwent();
			if (err != 0 && err != ENOENT)
				log_error("passwd: getpwent() failed: %s", strerror(err));
			cb(NULL, err != 0 && err != ENOENT, context);
			return;
		}
		if (pw->pw_uid < iter_first_uid || (iter_last_uid != 0 && pw->pw_uid > iter_last_uid))
			continue;
		cb(pw->pw_name, false, context);
	}
}

const struct userdb_driver userdb_driver_passwd = {
	.name = "passwd",
	.blocking = true,
	.init = passwd_init,
	.deinit = NULL,
	.lookup = passwd_lookup,
	.iterate = passwd_iterate,
};
