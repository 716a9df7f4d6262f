/* db-oauth2.c — Dovecot's `passdb { driver = oauth2 args = FILE }`: the
 * "password" is an OAuth2 bearer token (from OAUTHBEARER or XOAUTH2, or a
 * client that sends its token as the password of PLAIN), checked locally
 * by auth-oauth2.h. It cannot give stored credentials. */
#include "auth/auth-oauth2.h"
#include "auth/jwt.h"
#include "auth/passdb.h"

#include "lib/log.h"

#include <string.h>
#include <time.h>

static int passdb_oauth2_init(struct passdb_module *m, char **error_r)
{
	struct oauth2_config *cfg = oauth2_config_load(m->args, error_r);
	if (cfg == NULL)
		return -1;
	m->ctx = cfg;
	return 0;
}

static void passdb_oauth2_deinit(struct passdb_module *m)
{
	struct oauth2_config *cfg = m->ctx;
	oauth2_config_free(&cfg);
	m->ctx = NULL;
}

static void passdb_oauth2_verify(struct passdb_module *m, struct auth_db_request *req,
				 const uint8_t *pw, size_t pw_len, passdb_verify_callback *cb)
{
	const char *error;
	char lu[300], user[JWT_MAX_USER + 1];
	if (oauth2_token_check(m->ctx, req->user, (const char *)pw, pw_len, (int64_t)time(NULL),
			       user, sizeof(user), &error)) {
		/* OAUTHBEARER without authzid: the token names the user */
		if (req->user[0] == '\0')
			auth_request_set_field(req, "user", user);
		cb(PASSDB_RESULT_OK, req);
		return;
	}
	log_info("%s(%s,%s): token refused: %s", req->db_name,
		 log_escape(req->user, strlen(req->user), 64, lu, sizeof(lu)), req->rip, error);
	cb(PASSDB_RESULT_PASSWORD_MISMATCH, req);
}

const char *passdb_oauth2_scope(const struct passdb_module *m)
{
	return m->driver == &passdb_driver_oauth2 ? oauth2_config_scope(m->ctx) : NULL;
}

const struct passdb_driver passdb_driver_oauth2 = {
	.name = "oauth2",
	.blocking = false,
	.init = passdb_oauth2_init,
	.deinit = passdb_oauth2_deinit,
	.verify_plain = passdb_oauth2_verify,
	.lookup_credentials = NULL,
};
