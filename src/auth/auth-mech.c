#include "auth/auth-mech.h"
#include "auth/sasl-cram.h"
#include "auth/sasl-oauth.h"
#include "auth/sasl-scram.h"

#include "lib/alloc.h"
#include "lib/base64.h"

#include <errno.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

enum stage {
	ST_START,
	ST_WANT_RESP,   /* a challenge went out; the next response continues */
	ST_WANT_CREDS,  /* LOOKUP pending */
	ST_WANT_VERIFY, /* VERIFY pending */
	ST_WANT_FINAL_ACK, /* SCRAM: server-final sent, an empty response ends it */
	ST_WANT_ERROR_ACK, /* OAuth: the error JSON sent, the client's reply ends it */
	ST_DONE,
};

struct auth_mech {
	enum sasl_mech mech;
	enum stage stage;
	struct auth_mech_params params;
	char user[SASL_MAX_USER + 1];
	union {
		struct scram_server scram;
		struct {
			char challenge[CRAM_MAX_CHALLENGE];
			size_t chal_len;
			uint8_t digest[16];
		} cram;
		struct {
			/* copy of the client's APOP message: the challenge points in */
			uint8_t msg[CRAM_MAX_CHALLENGE + CRAM_MAX_USER + 18];
			struct apop_msg m;
		} apop;
		struct {
			char json[256];
		} oauth;
	} u;
};

bool auth_mech_handles(enum sasl_mech mech)
{
	return mech != SASL_MECH_PLAIN && mech != SASL_MECH_LOGIN;
}

static bool mech_is_scram(enum sasl_mech mech)
{
	return mech == SASL_MECH_SCRAM_SHA1 || mech == SASL_MECH_SCRAM_SHA256 ||
	       mech == SASL_MECH_SCRAM_SHA1_PLUS || mech == SASL_MECH_SCRAM_SHA256_PLUS;
}

const char *auth_mech_scheme(enum sasl_mech mech)
{
	switch (mech) {
	case SASL_MECH_SCRAM_SHA1:
	case SASL_MECH_SCRAM_SHA1_PLUS:
		return "SCRAM-SHA-1";
	case SASL_MECH_SCRAM_SHA256:
	case SASL_MECH_SCRAM_SHA256_PLUS:
		return "SCRAM-SHA-256";
	case SASL_MECH_CRAM_MD5:
		return "CRAM-MD5";
	case SASL_MECH_APOP:
		return "PLAIN";
	default:
		return NULL;
	}
}

static bool random_fill(void *buf, size_t len)
{
	uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		p += n;
		len -= (size_t)n;
	}
	return true;
}

static void set_user(struct auth_mech *m, const char *user);

struct auth_mech *auth_mech_new(enum sasl_mech mech, const struct auth_mech_params *params)
{
	struct auth_mech *m = rg_calloc(1, sizeof(*m));
	m->mech = mech;
	m->params = *params;
	if (mech_is_scram(mech)) {
		bool sha1 = mech == SASL_MECH_SCRAM_SHA1 || mech == SASL_MECH_SCRAM_SHA1_PLUS;
		bool plus = mech == SASL_MECH_SCRAM_SHA1_PLUS || mech == SASL_MECH_SCRAM_SHA256_PLUS;
		/* scram_init copies the binding (and takes none that does
		   not fit: the exchange then fails) */
		scram_init(&m->u.scram, sha1 ? CRYPTO_SHA1 : CRYPTO_SHA256, plus,
			   params->plus_offered, params->cb_type, params->cb_data, params->cb_len);
	}
	if (mech == SASL_MECH_EXTERNAL && params->cert_user != NULL)
		set_user(m, params->cert_user);
	/* the pointers are the caller's: none is kept */
	m->params.cb_type = NULL;
	m->params.cb_data = NULL;
	m->params.cb_len = 0;
	m->params.cert_user = NULL;
	return m;
}

void auth_mech_free(struct auth_mech **mp)
{
	struct auth_mech *m = *mp;
	if (m == NULL)
		return;
	*mp = NULL;
	explicit_bzero(m, sizeof(*m));
	rg_free(m);
}

static void out_fail(struct auth_mech *m, const char *error, struct auth_mech_out *out)
{
	m->stage = ST_DONE;
	memset(out, 0, sizeof(*out));
	out->action = AUTH_MECH_FAIL;
	out->error = error;
	out->user = m->user[0] != '\0' ? m->user : NULL;
}

static void out_challenge(struct auth_mech *m, enum stage next, const void *data, size_t len,
			  struct auth_mech_out *out)
{
	m->stage = next;
	memset(out, 0, sizeof(*out));
	out->action = AUTH_MECH_CHALLENGE;
	out->data = data;
	out->len = len;
}

static void out_user(struct auth_mech *m, enum auth_mech_action action, enum stage next,
		     struct auth_mech_out *out)
{
	m->stage = next;
	memset(out, 0, sizeof(*out));
	out->action = action;
	out->user = m->user;
	out->scheme = auth_mech_scheme(m->mech);
}

static void set_user(struct auth_mech *m, const char *user)
{
	size_t n = strlen(user);
	if (n > SASL_MAX_USER)
		n = SASL_MAX_USER;
	memcpy(m->user, user, n);
	m->user[n] = '\0';
}

/* ---- the first client message of each mechanism ------------------------ */

static void scram_first(struct auth_mech *m, const uint8_t *resp, size_t len,
			struct auth_mech_out *out)
{
	const char *error;
	if (scram_client_first(&m->u.scram, resp, len, &error) != SCRAM_OK) {
		out_fail(m, error, out);
		return;
	}
	set_user(m, m->u.scram.user);
	out_user(m, AUTH_MECH_LOOKUP, ST_WANT_CREDS, out);
}

static void cram_response(struct auth_mech *m, const uint8_t *resp, size_t len,
			  struct auth_mech_out *out)
{
	const char *error;
	char user[CRAM_MAX_USER + 1];
	if (!cram_md5_parse(resp, len, user, m->u.cram.digest, &error)) {
		out_fail(m, error, out);
		return;
	}
	set_user(m, user);
	out_user(m, AUTH_MECH_LOOKUP, ST_WANT_CREDS, out);
}

static void apop_message(struct auth_mech *m, const uint8_t *resp, size_t len,
			 struct auth_mech_out *out)
{
	const char *error;
	if (len > sizeof(m->u.apop.msg)) {
		out_fail(m, "APOP message too long", out);
		return;
	}
	memcpy(m->u.apop.msg, resp, len);
	if (!apop_parse(m->u.apop.msg, len, &m->u.apop.m, &error)) {
		out_fail(m, error, out);
		return;
	}
	set_user(m, m->u.apop.m.user);
	unsigned pid;
	/* a challenge another login process showed is not this client's */
	if (!cram_challenge_parse(m->u.apop.m.challenge, m->u.apop.m.chal_len, &pid) ||
	    pid != m->params.login_pid) {
		out_fail(m, "APOP challenge not issued by this login process", out);
		return;
	}
	out_user(m, AUTH_MECH_LOOKUP, ST_WANT_CREDS, out);
}

static void oauth_message(struct auth_mech *m, const uint8_t *resp, size_t len,
			  struct auth_mech_out *out)
{
	struct oauth_msg om;
	const char *error;
	bool ok = m->mech == SASL_MECH_OAUTHBEARER ? oauthbearer_parse(resp, len, &om, &error)
						   : xoauth2_parse(resp, len, &om, &error);
	if (!ok) {
		out_fail(m, error, out);
		return;
	}
	/* OAUTHBEARER's authzid is optional (RFC 7628 3.1, RFC 5801's
	   gs2-header): without it the user is VERIFY's "" and the passdb
	   takes the name from the token (Dovecot 2.3 refuses such a
	   message: "Missing username") */
	set_user(m, om.user);
	out_user(m, AUTH_MECH_VERIFY, ST_WANT_VERIFY, out);
	out->data = (const uint8_t *)om.token;
	out->len = om.token_len;
}

/* EXTERNAL (RFC 4422 appendix A): the message is an authorization identity,
 * empty or the certificate's user (no proxy authorization, as for PLAIN);
 * the passdb then decides with an empty password, which only a
 * `nopassword` entry accepts, as in Dovecot */
static void external_message(struct auth_mech *m, const uint8_t *resp, size_t len,
			     struct auth_mech_out *out)
{
	if (m->user[0] == '\0') {
		out_fail(m, "no valid client certificate naming a user (EXTERNAL needs one, and "
			    "auth_ssl_username_from_cert = yes)", out);
		return;
	}
	if (len > 0 && (len != strlen(m->user) || memcmp(resp, m->user, len) != 0)) {
		out_fail(m, "authorization identity is not the certificate's user", out);
		return;
	}
	out_user(m, AUTH_MECH_VERIFY, ST_WANT_VERIFY, out);
	out->data = (const uint8_t *)"";
	out->len = 0;
}

static void first_message(struct auth_mech *m, const uint8_t *resp, size_t len,
			  struct auth_mech_out *out)
{
	switch (m->mech) {
	case SASL_MECH_SCRAM_SHA1:
	case SASL_MECH_SCRAM_SHA256:
	case SASL_MECH_SCRAM_SHA1_PLUS:
	case SASL_MECH_SCRAM_SHA256_PLUS:
		scram_first(m, resp, len, out);
		return;
	case SASL_MECH_EXTERNAL:
		external_message(m, resp, len, out);
		return;
	case SASL_MECH_CRAM_MD5:
		cram_response(m, resp, len, out);
		return;
	case SASL_MECH_APOP:
		apop_message(m, resp, len, out);
		return;
	case SASL_MECH_OAUTHBEARER:
	case SASL_MECH_XOAUTH2:
		oauth_message(m, resp, len, out);
		return;
	default:
		out_fail(m, "unknown mechanism", out);
		return;
	}
}

void auth_mech_begin(struct auth_mech *m, bool has_resp, const uint8_t *resp, size_t len,
		     struct auth_mech_out *out)
{
	if (m->stage != ST_START) {
		out_fail(m, "exchange already begun", out);
		return;
	}
	if (m->mech == SASL_MECH_CRAM_MD5) {
		if (has_resp && len > 0) {
			out_fail(m, "CRAM-MD5 takes no initial response", out);
			return;
		}
		uint8_t rnd[16];
		if (!random_fill(rnd, sizeof(rnd)) ||
		    !cram_challenge_make(rnd, (unsigned)getpid(), (long)time(NULL),
					 m->params.hostname != NULL ? m->params.hostname : "localhost",
					 m->u.cram.challenge, &m->u.cram.chal_len)) {
			out_fail(m, "cannot make a CRAM-MD5 challenge", out);
			return;
		}
		out_challenge(m, ST_WANT_RESP, m->u.cram.challenge, m->u.cram.chal_len, out);
		return;
	}
	if (m->mech == SASL_MECH_APOP && !has_resp) {
		out_fail(m, "APOP needs its message as the initial response", out);
		return;
	}
	if (!has_resp) {
		/* SCRAM, OAUTHBEARER, XOAUTH2, EXTERNAL: the client speaks first */
		out_challenge(m, ST_WANT_RESP, "", 0, out);
		return;
	}
	first_message(m, resp, len, out);
}

void auth_mech_continue(struct auth_mech *m, const uint8_t *resp, size_t len,
			struct auth_mech_out *out)
{
	switch (m->stage) {
	case ST_WANT_RESP:
		if (mech_is_scram(m->mech)) {
			if (m->u.scram.stage == SCRAM_WANT_CLIENT_FINAL) {
				const char *final, *error;
				size_t final_len;
				if (scram_client_final(&m->u.scram, resp, len, &final, &final_len,
						       &error) != SCRAM_OK) {
					out_fail(m, error, out);
					return;
				}
				out_challenge(m, ST_WANT_FINAL_ACK, final, final_len, out);
				return;
			}
		}
		first_message(m, resp, len, out);
		return;
	case ST_WANT_FINAL_ACK:
		if (len != 0) {
			out_fail(m, "non-empty response after the server's final message", out);
			return;
		}
		out_user(m, AUTH_MECH_SUCCESS, ST_DONE, out);
		return;
	case ST_WANT_ERROR_ACK:
		/* RFC 7628 3.2.3: the client answers the error with %x01 (and
		   XOAUTH2 clients with an empty line); either way it failed */
		out_fail(m, "token refused", out);
		return;
	default:
		out_fail(m, "unexpected response", out);
		return;
	}
}

static bool scheme_is(const char *scheme, const char *name)
{
	return scheme != NULL && strcasecmp(scheme, name) == 0;
}

static bool scheme_plain(const char *scheme)
{
	return scheme_is(scheme, "PLAIN") || scheme_is(scheme, "CLEARTEXT");
}

void auth_mech_credentials(struct auth_mech *m, bool found, const char *scheme,
			   const uint8_t *cred, size_t len, struct auth_mech_out *out)
{
	if (m->stage != ST_WANT_CREDS) {
		out_fail(m, "credentials out of order", out);
		return;
	}
	if (!found) {
		out_fail(m, "unknown user", out);
		return;
	}
	/* stored credentials are text; keep them NUL-terminated for parsing */
	char *text = rg_strndup((const char *)cred, len);
	bool ok = false;
	const char *error = NULL;
	switch (m->mech) {
	case SASL_MECH_SCRAM_SHA1:
	case SASL_MECH_SCRAM_SHA256:
	case SASL_MECH_SCRAM_SHA1_PLUS:
	case SASL_MECH_SCRAM_SHA256_PLUS: {
		enum crypto_hash h = m->u.scram.hash;
		struct scram_creds creds;
		if (scheme_is(scheme, auth_mech_scheme(m->mech))) {
			ok = scram_creds_parse(h, text, &creds, &error);
		} else if (scheme_plain(scheme)) {
			/* Dovecot does the same for a plaintext entry: fresh
			   salt, default count */
			uint8_t salt[16];
			ok = random_fill(salt, sizeof(salt)) &&
			     scram_creds_from_password(h, cred, len, salt, sizeof(salt),
						       SCRAM_DEFAULT_ITERATIONS, &creds) == 0;
			if (!ok)
				error = "cannot derive SCRAM keys";
		} else {
			error = "the passdb has no SCRAM or plaintext credentials for the user";
		}
		if (ok) {
			char snonce[33];
			uint8_t rnd[24];
			const char *sfirst;
			size_t sfirst_len;
			ok = random_fill(rnd, sizeof(rnd));
			if (ok) {
				/* base64 without ',' is a valid nonce */
				base64_encode(rnd, sizeof(rnd), snonce);
				ok = scram_server_first(&m->u.scram, &creds, snonce, &sfirst,
							&sfirst_len, &error) == SCRAM_OK;
			}
			explicit_bzero(&creds, sizeof(creds));
			if (ok) {
				rg_free(text);
				out_challenge(m, ST_WANT_RESP, sfirst, sfirst_len, out);
				return;
			}
		}
		break;
	}
	case SASL_MECH_CRAM_MD5: {
		uint8_t ctx[CRYPTO_CRAM_MD5_CONTEXT_LEN];
		if (scheme_is(scheme, "CRAM-MD5")) {
			if (!cram_md5_context_parse(text, ctx))
				error = "malformed {CRAM-MD5} credentials";
			else if (!(ok = cram_md5_verify_context(ctx, m->u.cram.challenge,
								 m->u.cram.chal_len, m->u.cram.digest)))
				error = "password mismatch";
		} else if (scheme_plain(scheme)) {
			if (!(ok = cram_md5_verify_plain(cred, len, m->u.cram.challenge,
							 m->u.cram.chal_len, m->u.cram.digest)))
				error = "password mismatch";
		} else {
			error = "the passdb has no CRAM-MD5 or plaintext credentials for the user";
		}
		explicit_bzero(ctx, sizeof(ctx));
		break;
	}
	case SASL_MECH_APOP:
		if (!scheme_plain(scheme))
			error = "the passdb has no plaintext credentials for the user (APOP needs them)";
		else if (!(ok = apop_verify(&m->u.apop.m, cred, len)))
			error = "password mismatch";
		break;
	default:
		error = "credentials for a mechanism that takes none";
		break;
	}
	explicit_bzero(text, len);
	rg_free(text);
	if (!ok) {
		out_fail(m, error, out);
		return;
	}
	out_user(m, AUTH_MECH_SUCCESS, ST_DONE, out);
}

void auth_mech_verified(struct auth_mech *m, bool ok, struct auth_mech_out *out)
{
	if (m->stage != ST_WANT_VERIFY) {
		out_fail(m, "verification out of order", out);
		return;
	}
	if (ok) {
		out_user(m, AUTH_MECH_SUCCESS, ST_DONE, out);
		return;
	}
	if (m->mech == SASL_MECH_EXTERNAL) {
		out_fail(m, "the passdb does not let the certificate's user in without a password "
			    "(nopassword)", out);
		return;
	}
	size_t n = oauth_error_json(m->params.oauth2_scope, m->u.oauth.json,
				    sizeof(m->u.oauth.json));
	out_challenge(m, ST_WANT_ERROR_ACK, m->u.oauth.json, n, out);
}
