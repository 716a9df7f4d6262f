/* auth-server-mech.c — the mechanisms of auth-mech.h driven by the
 * server: their actions (challenge, credentials lookup, token check,
 * success, failure) on a request. See auth-server-private.h. */
#include "auth/auth-server-private.h"

/* A chain callback for a mechanism's request: the request to go on with,
 * or NULL when it is gone or failed temporarily (answered here). */
static struct auth_request *request_mech_resume(enum passdb_result result,
						struct auth_db_request *dbreq)
{
	struct auth_request *req = asrv_request_resume(dbreq);
	if (req != NULL && result == PASSDB_RESULT_INTERNAL_FAILURE) {
		asrv_request_fail_now(req->srv, req, REASON_TEMP, true, req->db.user);
		return NULL;
	}
	return req;
}

static void request_creds_done(enum passdb_result result, const char *scheme,
			       const uint8_t *cred, size_t size, struct auth_db_request *dbreq)
{
	struct auth_request *req = request_mech_resume(result, dbreq);
	if (req == NULL)
		return;
	struct auth_mech_out out;
	auth_mech_credentials(req->mech, result == PASSDB_RESULT_OK, scheme, cred, size, &out);
	asrv_mech_act(req->srv, req, &out);
}

/* OAUTHBEARER without authzid: the passdb set the user from the token;
 * the name rules (auth_username_format, ...) apply to it as to a name a
 * client gives. false: refused (logged, failure queued). */
static bool token_user_fix(struct auth_server *srv, struct auth_request *req)
{
	char *user = NULL, *error = NULL;
	char logname[300];
	if (req->db.user[0] == '\0') {
		log_info("%s(?,%s): the passdb named no user for the token",
			 sasl_mech_name(req->sasl.mech), req->rip);
		asrv_request_fail_delayed(srv, req);
		return false;
	}
	if (auth_username_fix(&srv->rules, &req->db, req->db.user, &user, &error) < 0) {
		log_info("auth(%s,%s): %s", esc_user(req->db.user, logname, sizeof(logname)),
			 req->rip, error);
		rg_free(error);
		if (req->fail_user == NULL)
			req->fail_user = rg_strdup(req->db.user);
		asrv_request_fail_delayed(srv, req);
		return false;
	}
	rg_free(req->db.user);
	req->db.user = user;
	return true;
}

static void request_token_done(enum passdb_result result, struct auth_db_request *dbreq)
{
	struct auth_request *req = request_mech_resume(result, dbreq);
	if (req == NULL)
		return;
	struct auth_server *srv = req->srv;
	if (result == PASSDB_RESULT_OK && req->user_from_token && !token_user_fix(srv, req))
		return;
	if (result != PASSDB_RESULT_OK && req->rip[0] != '\0' && !req->penalty_counted) {
		/* the RFC 7628 error round trip comes first: a client that
		   hangs up then must not escape the penalty */
		penalty_fail(srv->penalties, req->rip, now_ms());
		req->penalty_counted = true;
	}
	struct auth_mech_out out;
	auth_mech_verified(req->mech, result == PASSDB_RESULT_OK, &out);
	asrv_mech_act(srv, req, &out);
}

void asrv_mech_act(struct auth_server *srv, struct auth_request *req,
		   const struct auth_mech_out *out)
{
	switch (out->action) {
	case AUTH_MECH_CHALLENGE:
		asrv_request_step(srv, req, SASL_STEP_CHALLENGE, out->data, out->len, NULL);
		return;
	case AUTH_MECH_LOOKUP:
		if (!asrv_request_db_prepare(srv, req, out->user))
			return;
		req->state = REQ_PASSDB;
		auth_chain_lookup_credentials(srv->chain, &req->db, out->scheme,
					      request_creds_done);
		return;
	case AUTH_MECH_VERIFY:
		/* OAUTHBEARER without an authzid (RFC 7628: the gs2-header's
		   a= is optional): the passdb takes the user from the token;
		   the name rules apply to that name afterwards */
		req->user_from_token = out->user[0] == '\0';
		if (req->user_from_token) {
			auth_db_request_clear(&req->db);
			auth_db_request_init(&req->db, "");
			req->db.service = req->client->service;
			req->db.mech = sasl_mech_name(req->sasl.mech);
			snprintf(req->db.rip, sizeof(req->db.rip), "%s", req->rip);
			req->db.secured = req->secured;
		} else if (!asrv_request_db_prepare(srv, req, out->user)) {
			return;
		}
		if (req->token != NULL) {
			explicit_bzero(req->token, req->token_len);
			rg_free(req->token);
		}
		req->token = rg_malloc(out->len + 1);
		memcpy(req->token, out->data, out->len);
		req->token[out->len] = '\0';
		req->token_len = out->len;
		req->state = REQ_PASSDB;
		auth_chain_verify_plain(srv->chain, &req->db, req->token, req->token_len,
					request_token_done);
		return;
	case AUTH_MECH_SUCCESS:
		asrv_request_success(srv, req);
		return;
	case AUTH_MECH_FAIL: {
		char logname[300];
		log_info("%s(%s,%s): %s", sasl_mech_name(req->sasl.mech),
			 esc_user(out->user, logname, sizeof(logname)), req->rip, out->error);
		if (out->user != NULL && req->fail_user == NULL)
			req->fail_user = rg_strdup(out->user);
		auth_mech_free(&req->mech);
		asrv_request_fail_delayed(srv, req);
		return;
	}
	}
}

/* OAuth2 bearer tokens travel like passwords (Dovecot's MECH_SEC_PLAINTEXT) */
bool asrv_mech_is_plaintext(enum sasl_mech mech)
{
	return mech == SASL_MECH_PLAIN || mech == SASL_MECH_LOGIN ||
	       mech == SASL_MECH_OAUTHBEARER || mech == SASL_MECH_XOAUTH2;
}
