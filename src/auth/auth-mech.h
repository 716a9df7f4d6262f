/* auth-mech.h — one authentication's exchange for the mechanisms beyond
 * PLAIN and LOGIN: SCRAM-SHA-1/-256 (and their -PLUS forms with TLS channel
 * binding), CRAM-MD5, APOP, OAUTHBEARER, XOAUTH2, EXTERNAL.
 * It drives the pure parsers (sasl-scram.h, sasl-cram.h, sasl-oauth.h) and
 * tells its owner (auth-server.c) what to do next, so the owner does all
 * I/O and all passdb calls:
 *   CHALLENGE  send data as AUTH_CHALLENGE, then auth_mech_continue();
 *   LOOKUP     fetch user's stored credentials (scheme is the wish), then
 *              auth_mech_credentials();
 *   VERIFY     run the passdb chain with the token as user's password (the
 *              oauth2 passdb judges it; EXTERNAL's is empty, which only a
 *              `nopassword` entry accepts), then auth_mech_verified(); user
 *              "" (OAUTHBEARER without authzid): the passdb names the user
 *              from the token;
 *   SUCCESS    user is authenticated;
 *   FAIL       a failed attempt (error says why, for the log): the failure
 *              delay and the per-IP penalty apply.
 * Every call writes one struct auth_mech_out; data and user stay valid
 * until the next call. */
#ifndef RG_AUTH_MECH_H
#define RG_AUTH_MECH_H

#include "auth/auth-sasl.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum auth_mech_action {
	AUTH_MECH_CHALLENGE,
	AUTH_MECH_LOOKUP,
	AUTH_MECH_VERIFY,
	AUTH_MECH_SUCCESS,
	AUTH_MECH_FAIL,
};

struct auth_mech_out {
	enum auth_mech_action action;
	const uint8_t *data; /* CHALLENGE: the bytes; VERIFY: the token (inside the
			      response just given: use it before that goes) */
	size_t len;
	const char *user;    /* LOOKUP, VERIFY, SUCCESS (and FAIL when known) */
	const char *scheme;  /* LOOKUP */
	const char *error;   /* FAIL */
};

struct auth_mech_params {
	unsigned login_pid;   /* the channel's login process: APOP challenges name it */
	const char *hostname; /* in CRAM-MD5 challenges */
	const char *oauth2_scope; /* in the RFC 7628 error, may be NULL */
	/* SCRAM-*-PLUS: the connection's channel binding as the login
	 * process reported it (copied by auth_mech_new); NULL/0: none */
	const char *cb_type;
	const uint8_t *cb_data;
	size_t cb_len;
	/* SCRAM without -PLUS: the -PLUS form is offered to this client (TLS,
	 * and in auth_mechanisms), so a client that says "y" was downgraded */
	bool plus_offered;
	/* EXTERNAL: the user its valid client certificate names (with
	 * auth_ssl_username_from_cert; copied by auth_mech_new); NULL: none */
	const char *cert_user;
};

/* whether auth_mech handles mech (else auth-sasl.c does) */
bool auth_mech_handles(enum sasl_mech mech);
/* the stored scheme the mechanism can use, for start-up checks and the
 * log: "SCRAM-SHA-256" ... ; NULL for the oauth2 ones */
const char *auth_mech_scheme(enum sasl_mech mech);

struct auth_mech;
struct auth_mech *auth_mech_new(enum sasl_mech mech, const struct auth_mech_params *params);
void auth_mech_free(struct auth_mech **m);

void auth_mech_begin(struct auth_mech *m, bool has_resp, const uint8_t *resp, size_t len,
		     struct auth_mech_out *out);
void auth_mech_continue(struct auth_mech *m, const uint8_t *resp, size_t len,
			struct auth_mech_out *out);
/* LOOKUP's answer: found false when the passdbs have no such user or no
 * usable credentials */
void auth_mech_credentials(struct auth_mech *m, bool found, const char *scheme,
			   const uint8_t *cred, size_t len, struct auth_mech_out *out);
/* VERIFY's answer */
void auth_mech_verified(struct auth_mech *m, bool ok, struct auth_mech_out *out);

#endif
