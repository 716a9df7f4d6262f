/* auth-server-login.c — login processes' channels: AUTH_BEGIN, CONTINUE
 * and ABORT, the client certificate rules, input. See
 * auth-server-private.h. */
#include "auth/auth-server-private.h"

/* The client's TLS certificate as the login process saw it: with
 * auth_ssl_require_client_cert none means a failed login (Dovecot: "Client
 * didn't present valid SSL certificate"); with auth_ssl_username_from_cert
 * its name is the user. false: failed (answered after the delay). */
static bool request_client_cert(struct auth_server *srv, struct auth_request *req,
				const struct ipc_fields *f)
{
	bool valid = ipc_has(f, IPC_F_CERT_VALID);
	if (srv->cfg.ssl_require_client_cert && !valid) {
		log_info("%s(?,%s): client didn't present a valid SSL certificate",
			 sasl_mech_name(req->sasl.mech), req->rip);
		asrv_request_fail_delayed(srv, req);
		return false;
	}
	const char *name = valid && srv->cfg.ssl_username_from_cert ?
				   ipc_str(f, IPC_F_CERT_USER) : NULL;
	if (name == NULL || name[0] == '\0')
		return true;
	/* the certificate's text: a name must be a name */
	size_t len = f->len[IPC_F_CERT_USER];
	if (len > SASL_MAX_USER || strlen(name) != len ||
	    !sasl_name_valid((const uint8_t *)name, len)) {
		char esc[80];
		log_info("%s(?,%s): the client certificate's user name is not valid: %s",
			 sasl_mech_name(req->sasl.mech), req->rip,
			 log_escape(name, len, 40, esc, sizeof(esc)));
		asrv_request_fail_delayed(srv, req);
		return false;
	}
	req->cert_user = rg_strdup(name);
	return true;
}

static void client_begin(struct auth_server *srv, struct auth_client *c, const struct ipc_rx *rx)
{
	const struct ipc_fields *f = &rx->fields;
	const char *mech_name = ipc_str(f, IPC_F_MECH);
	if (mech_name == NULL) {
		asrv_client_error(srv, c, "AUTH_BEGIN without MECH");
		return;
	}
	if (asrv_request_find(c, rx->hdr.id) != NULL) {
		asrv_client_error(srv, c, "AUTH_BEGIN for a request id in use");
		return;
	}
	if (c->request_count >= MAX_REQUESTS_PER_CLIENT) {
		asrv_client_error(srv, c, "too many requests in flight");
		return;
	}
	struct auth_request *req = rg_calloc(1, sizeof(*req));
	req->client = c;
	req->srv = srv;
	req->id = rx->hdr.id;
	req->secured = ipc_has(f, IPC_F_SECURED);
	const char *rip = ipc_str(f, IPC_F_RIP);
	if (rip != NULL) {
		/* the key of the penalty table and part of log lines: keep it
		   printable */
		log_escape(rip, f->len[IPC_F_RIP], 40, req->rip, sizeof(req->rip));
	}
	req->cnext = c->requests;
	if (c->requests != NULL)
		c->requests->cprev = req;
	c->requests = req;
	c->request_count++;

	enum sasl_mech mech;
	if (!sasl_mech_parse(mech_name, &mech) || !sasl_mech_allowed(srv->mechanisms, mech)) {
		char esc[40];
		log_info("login %u: mechanism %s not allowed", c->pid,
			 log_escape(mech_name, f->len[IPC_F_MECH], 20, esc, sizeof(esc)));
		asrv_request_fail_now(srv, req, REASON_MECH, false, NULL);
		return;
	}
	if (srv->cfg.disable_plaintext_auth && !req->secured && asrv_mech_is_plaintext(mech)) {
		asrv_request_fail_now(srv, req, REASON_PLAINTEXT, false, NULL);
		return;
	}
	sasl_init(&req->sasl, mech);
	if (!request_client_cert(srv, req, f))
		return;
	bool has_resp = ipc_has(f, IPC_F_RESP);
	if (auth_mech_handles(mech)) {
		struct auth_mech_params params = srv->mech_params;
		params.login_pid = c->pid;
		params.cert_user = req->cert_user;
		if (ipc_has(f, IPC_F_CB_TYPE) && ipc_has(f, IPC_F_CB_DATA)) {
			params.cb_type = ipc_str(f, IPC_F_CB_TYPE);
			params.cb_data = f->val[IPC_F_CB_DATA];
			params.cb_len = f->len[IPC_F_CB_DATA];
		}
		enum sasl_mech plus = mech == SASL_MECH_SCRAM_SHA1 ? SASL_MECH_SCRAM_SHA1_PLUS
								   : SASL_MECH_SCRAM_SHA256_PLUS;
		params.plus_offered = ipc_has(f, IPC_F_TLS) && sasl_mech_allowed(srv->mechanisms,
										 plus);
		req->mech = auth_mech_new(mech, &params);
		struct auth_mech_out out;
		auth_mech_begin(req->mech, has_resp, has_resp ? f->val[IPC_F_RESP] : NULL,
				has_resp ? f->len[IPC_F_RESP] : 0, &out);
		asrv_mech_act(srv, req, &out);
		return;
	}
	const uint8_t *chal = NULL;
	size_t chal_len = 0;
	const char *error = NULL;
	enum sasl_step step = sasl_begin(&req->sasl, has_resp, has_resp ? f->val[IPC_F_RESP] : NULL,
					 has_resp ? f->len[IPC_F_RESP] : 0, &chal, &chal_len, &error);
	asrv_request_step(srv, req, step, chal, chal_len, error);
}

static void client_continue(struct auth_server *srv, struct auth_client *c,
			    const struct ipc_rx *rx)
{
	const struct ipc_fields *f = &rx->fields;
	if (!ipc_has(f, IPC_F_RESP)) {
		asrv_client_error(srv, c, "AUTH_CONTINUE without RESP");
		return;
	}
	struct auth_request *req = asrv_request_find(c, rx->hdr.id);
	if (req == NULL) {
		/* nothing to continue: say so rather than leave it hanging */
		ipc_msg_init(&srv->msg, IPC_AUTH_FAIL, rx->hdr.id);
		if (asrv_client_send(srv, c) < 0)
			asrv_client_error(srv, c, "sending a reply failed");
		return;
	}
	if (req->state != REQ_SASL) {
		asrv_client_error(srv, c, "AUTH_CONTINUE for a request being failed");
		return;
	}
	if (req->mech != NULL) {
		struct auth_mech_out out;
		auth_mech_continue(req->mech, f->val[IPC_F_RESP], f->len[IPC_F_RESP], &out);
		asrv_mech_act(srv, req, &out);
		return;
	}
	const uint8_t *chal = NULL;
	size_t chal_len = 0;
	const char *error = NULL;
	enum sasl_step step = sasl_continue(&req->sasl, f->val[IPC_F_RESP], f->len[IPC_F_RESP],
					    &chal, &chal_len, &error);
	asrv_request_step(srv, req, step, chal, chal_len, error);
}

/* One decoded message from a login channel (no fd with it). */
void asrv_client_message(struct auth_server *srv, struct auth_client *c,
			 const struct ipc_rx *rx)
{
	switch (rx->hdr.type) {
	case IPC_AUTH_BEGIN:
		client_begin(srv, c, rx);
		break;
	case IPC_AUTH_CONTINUE:
		client_continue(srv, c, rx);
		break;
	case IPC_AUTH_ABORT: {
		/* may cross our reply: an unknown id is fine */
		struct auth_request *req = asrv_request_find(c, rx->hdr.id);
		if (req != NULL)
			asrv_request_free(srv, req);
		break;
	}
	default: {
		char why[64];
		snprintf(why, sizeof(why), "unexpected message %s", ipc_type_name(rx->hdr.type));
		asrv_client_error(srv, c, why);
		break;
	}
	}
}

void asrv_client_input(struct auth_server *srv, struct auth_client *c)
{
	struct ipc_rx *rx = srv->rx;
	for (unsigned i = 0; i < MAX_MSGS_PER_WAKEUP && c->fd >= 0; i++) {
		const char *error = NULL;
		int ret = ipc_recv(c->fd, rx, &error);
		if (ret == -EAGAIN)
			return;
		if (ret == 0) {
			log_debug("login %u: channel closed", c->pid);
			asrv_client_close(srv, c);
			return;
		}
		if (ret == -EPROTO) {
			asrv_client_error(srv, c, error);
			return;
		}
		if (ret < 0) {
			asrv_client_error(srv, c, strerror(-ret));
			return;
		}
		if (rx->fd >= 0) {
			close(rx->fd);
			asrv_client_error(srv, c, "message with an fd");
		} else {
			asrv_client_message(srv, c, rx);
		}
		/* responses hold passwords */
		explicit_bzero(rx->buf, IPC_HDR_SIZE + rx->hdr.len);
	}
}
