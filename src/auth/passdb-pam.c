/* passdb-pam.c — passdb `pam` (Dovecot's args: [session=yes] [setcred=yes]
 * [failure_show_msg=yes] [max_requests=N] [cache_key=...] [SERVICE], the
 * service `dovecot` by default, %-variables allowed, `*` = the login
 * service). PAM calls block: the driver is `blocking` and runs only in
 * auth-workers (auth-worker.h). The conversation answers every prompt that
 * hides its echo with the password, and the others with the user name. */
#include "auth/auth-worker.h"
#include "auth/passdb.h"

#include "lib/alloc.h"
#include "lib/log.h"

#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pam_ctx {
	char *service; /* template */
	bool session, setcred, failure_show_msg;
	unsigned max_requests;
	char *cache_key;
};

struct conv_ctx {
	const struct auth_db_request *req;
	const uint8_t *pw;
	size_t pw_len;
	/* for failure_show_msg: the module's last error and info texts and
	 * the last hidden prompt (what Dovecot 2.3 shows) */
	char err[256], info[256], prompt[256];
};

static int pam_init_module(struct passdb_module *m, char **error_r)
{
	struct pam_ctx *ctx = rg_calloc(1, sizeof(*ctx));
	ctx->service = rg_strdup("dovecot");
	ctx->cache_key = rg_strdup("");
	const char *p = m->args;
	char word[256];
	while (*p != '\0') {
		while (*p == ' ')
			p++;
		size_t n = strcspn(p, " ");
		if (n == 0)
			break;
		if (n >= sizeof(word)) {
			*error_r = rg_strdup("pam: argument too long");
			goto fail;
		}
		memcpy(word, p, n);
		word[n] = '\0';
		p += n;
		if (strcmp(word, "session=yes") == 0) {
			ctx->session = true;
		} else if (strcmp(word, "setcred=yes") == 0) {
			ctx->setcred = true;
		} else if (strcmp(word, "failure_show_msg=yes") == 0) {
			ctx->failure_show_msg = true;
		} else if (strncmp(word, "max_requests=", 13) == 0) {
			char *end;
			unsigned long v = strtoul(word + 13, &end, 10);
			if (word[13] == '\0' || *end != '\0' || v > 1000000) {
				*error_r = rg_strdup_printf("pam: invalid %s", word);
				goto fail;
			}
			ctx->max_requests = (unsigned)v;
		} else if (strncmp(word, "cache_key=", 10) == 0) {
			rg_free(ctx->cache_key);
			ctx->cache_key = rg_strdup(word + 10);
		} else if (strchr(word, '=') != NULL && strncmp(word, "blocking=", 9) != 0) {
			*error_r = rg_strdup_printf("pam: unknown argument '%s'", word);
			goto fail;
		} else if (strncmp(word, "blocking=", 9) == 0) {
			/* PAM always runs in auth-workers */
		} else {
			rg_free(ctx->service);
			ctx->service = rg_strdup(strcmp(word, "*") == 0 ? "%s" : word);
		}
	}
	m->ctx = ctx;
	/* Dovecot caches PAM results only with cache_key (e.g. %u%s) */
	if (ctx->cache_key[0] != '\0')
		m->cache_key = rg_strdup(ctx->cache_key);
	auth_worker_set_max_requests(ctx->max_requests);
	return 0;
fail:
	rg_free(ctx->service);
	rg_free(ctx->cache_key);
	rg_free(ctx);
	return -1;
}

static void pam_deinit_module(struct passdb_module *m)
{
	struct pam_ctx *ctx = m->ctx;
	if (ctx == NULL)
		return;
	rg_free(ctx->service);
	rg_free(ctx->cache_key);
	rg_free(ctx);
	m->ctx = NULL;
}

static int conv(int num_msg, const struct pam_message **msgs, struct pam_response **resp_r,
		void *appdata)
{
	struct conv_ctx *cc = appdata;
	struct pam_response *resp = calloc((size_t)num_msg, sizeof(*resp));
	if (resp == NULL)
		return PAM_BUF_ERR;
	for (int i = 0; i < num_msg; i++) {
		switch (msgs[i]->msg_style) {
		case PAM_PROMPT_ECHO_OFF:
			resp[i].resp = strndup((const char *)cc->pw, cc->pw_len);
			snprintf(cc->prompt, sizeof(cc->prompt), "%s",
				 msgs[i]->msg != NULL ? msgs[i]->msg : "");
			break;
		case PAM_PROMPT_ECHO_ON:
			resp[i].resp = strdup(cc->req->user);
			break;
		case PAM_ERROR_MSG:
			snprintf(cc->err, sizeof(cc->err), "%s",
				 msgs[i]->msg != NULL ? msgs[i]->msg : "");
			break;
		case PAM_TEXT_INFO:
			snprintf(cc->info, sizeof(cc->info), "%s",
				 msgs[i]->msg != NULL ? msgs[i]->msg : "");
			break;
		default:
			break;
		}
		if ((msgs[i]->msg_style == PAM_PROMPT_ECHO_OFF ||
		     msgs[i]->msg_style == PAM_PROMPT_ECHO_ON) && resp[i].resp == NULL) {
			for (int j = 0; j < i; j++) {
				if (resp[j].resp != NULL) {
					explicit_bzero(resp[j].resp, strlen(resp[j].resp));
					free(resp[j].resp);
				}
			}
			free(resp);
			return PAM_BUF_ERR;
		}
	}
	*resp_r = resp;
	return PAM_SUCCESS;
}

/* PAM_FAIL_DELAY: no sleeping in the worker after a failure (pam_unix
 * asks for 2 s); auth delays failed logins itself without holding a worker */
static void no_fail_delay(int retval, unsigned usec_delay, void *appdata)
{
	(void)retval;
	(void)usec_delay;
	(void)appdata;
}

static enum passdb_result pam_result(int status)
{
	switch (status) {
	case PAM_SUCCESS:
		return PASSDB_RESULT_OK;
	case PAM_USER_UNKNOWN:
		return PASSDB_RESULT_USER_UNKNOWN;
	case PAM_NEW_AUTHTOK_REQD:
	case PAM_ACCT_EXPIRED:
		return PASSDB_RESULT_PASS_EXPIRED;
	case PAM_AUTH_ERR:
	case PAM_PERM_DENIED:
	case PAM_MAXTRIES:
	case PAM_CRED_INSUFFICIENT:
		return PASSDB_RESULT_PASSWORD_MISMATCH;
	default:
		/* PAM_AUTHINFO_UNAVAIL, PAM_SYSTEM_ERR, PAM_SERVICE_ERR, ... */
		return PASSDB_RESULT_INTERNAL_FAILURE;
	}
}

static void pam_verify(struct passdb_module *m, struct auth_db_request *req,
		       const uint8_t *pw, size_t pw_len, passdb_verify_callback *cb)
{
	struct pam_ctx *ctx = m->ctx;
	char *service = NULL, *error = NULL;
	char lu[300];
	const char *user_log = log_escape(req->user, strlen(req->user), 64, lu, sizeof(lu));
	if (auth_request_expand(req, ctx->service, NULL, NULL, &service, &error) < 0) {
		log_error("%s(%s,%s): service %s", req->db_name, user_log, req->rip, error);
		rg_free(error);
		cb(PASSDB_RESULT_INTERNAL_FAILURE, req);
		return;
	}
	if (req->skip_password_check) {
		/* PAM cannot look a user up without authenticating */
		log_error("%s(%s,%s): pam cannot be used after a passdb with continue "
			  "(no password check)", req->db_name, user_log, req->rip);
		rg_free(service);
		cb(PASSDB_RESULT_INTERNAL_FAILURE, req);
		return;
	}
	struct conv_ctx cc = { .req = req, .pw = pw, .pw_len = pw_len };
	struct pam_conv pconv = { .conv = conv, .appdata_ptr = &cc };
	pam_handle_t *ph = NULL;
	int status = pam_start(service, req->user, &pconv, &ph);
	const char *step = "pam_start";
	if (status == PAM_SUCCESS) {
		if (req->rip[0] != '\0')
			(void)pam_set_item(ph, PAM_RHOST, req->rip);
		(void)pam_set_item(ph, PAM_FAIL_DELAY, (const void *)no_fail_delay);
		(void)pam_set_item(ph, PAM_TTY, req->service != NULL && req->service[0] != '\0' ?
				   req->service : "ringgate");
		step = "pam_authenticate";
		status = pam_authenticate(ph, 0);
	}
	if (status == PAM_SUCCESS) {
		step = "pam_acct_mgmt";
		status = pam_acct_mgmt(ph, 0);
	}
	if (status == PAM_SUCCESS && ctx->setcred) {
		step = "pam_setcred";
		status = pam_setcred(ph, PAM_ESTABLISH_CRED);
	}
	if (status == PAM_SUCCESS && ctx->session) {
		/* Dovecot opens and closes the session right away too */
		step = "pam_open_session";
		status = pam_open_session(ph, 0);
		if (status == PAM_SUCCESS)
			(void)pam_close_session(ph, 0);
	}
	enum passdb_result result = pam_result(status);
	if (result != PASSDB_RESULT_OK) {
		const char *why = ph != NULL ? pam_strerror(ph, status) : "pam_start failed";
		if (result == PASSDB_RESULT_INTERNAL_FAILURE)
			log_error("%s(%s,%s): %s() failed: %s (service %s)", req->db_name, user_log,
				  req->rip, step, why, service);
		else
			log_info("%s(%s,%s): %s() failed: %s", req->db_name, user_log, req->rip,
				 step, result == PASSDB_RESULT_PASSWORD_MISMATCH ?
				 "Password mismatch" : why);
		if (ctx->failure_show_msg && result != PASSDB_RESULT_INTERNAL_FAILURE) {
			/* the module's own words first: its error, its info,
			 * else the password prompt it used (Dovecot 2.3 keeps
			 * only that one) */
			const char *text = cc.err[0] != '\0' ? cc.err :
				cc.info[0] != '\0' ? cc.info : cc.prompt;
			char clean[sizeof(cc.err)];
			size_t n = 0;
			for (const char *c = text; *c != '\0' && n < sizeof(clean) - 1; c++)
				clean[n++] = (unsigned char)*c < 0x20 || *c == 0x7f ? ' ' : *c;
			while (n > 0 && clean[n - 1] == ' ')
				n--;
			clean[n] = '\0';
			if (n > 0)
				auth_request_set_field(req, AUTH_FIELD_FAILURE_MSG, clean);
		}
	}
	if (ph != NULL)
		(void)pam_end(ph, status);
	rg_free(service);
	cb(result, req);
}

const struct passdb_driver passdb_driver_pam = {
	.name = "pam",
	.blocking = true,
	.init = pam_init_module,
	.deinit = pam_deinit_module,
	.verify_plain = pam_verify,
	.lookup_credentials = NULL,
};
