/* auth-sasl.h — the server side of SASL PLAIN (RFC 4616) and LOGIN. Pure:
 * no I/O, no allocation. Responses arrive whole (the login process
 * base64-decodes them), so each step sees one complete client message.
 * Credentials live in fixed buffers bounded by SASL_MAX_*; sasl_clear()
 * wipes them. */
#ifndef RG_AUTH_SASL_H
#define RG_AUTH_SASL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SASL_MAX_RESP 1024 /* one client message */
#define SASL_MAX_USER 255
#define SASL_MAX_PASS 1024

/* PLAIN and LOGIN are served here; the others by auth-mech.h */
enum sasl_mech {
	SASL_MECH_PLAIN,
	SASL_MECH_LOGIN,
	SASL_MECH_SCRAM_SHA1,
	SASL_MECH_SCRAM_SHA256,
	SASL_MECH_CRAM_MD5,
	SASL_MECH_APOP,
	SASL_MECH_OAUTHBEARER,
	SASL_MECH_XOAUTH2,
	SASL_MECH_SCRAM_SHA1_PLUS,   /* with TLS channel binding */
	SASL_MECH_SCRAM_SHA256_PLUS,
	SASL_MECH_EXTERNAL,          /* the TLS client certificate's user */
};
#define SASL_MECH_COUNT (SASL_MECH_EXTERNAL + 1)

enum sasl_step {
	SASL_STEP_CHALLENGE, /* send *chal_r, wait for the next response */
	SASL_STEP_DONE,      /* credentials are in the state */
	SASL_STEP_FAIL,      /* malformed exchange; *error_r says why (no secrets) */
};

struct sasl_state {
	enum sasl_mech mech;
	uint8_t stage;       /* LOGIN: 0 = want user, 1 = want password */
	size_t user_len, pass_len;
	char user[SASL_MAX_USER + 1];
	uint8_t pass[SASL_MAX_PASS + 1];
};

/* name case-insensitive; false for mechanisms we do not implement */
bool sasl_mech_parse(const char *name, enum sasl_mech *mech_r);
const char *sasl_mech_name(enum sasl_mech mech);
/* whether mech is in a space-separated list like auth_mechanisms */
bool sasl_mech_allowed(const char *list, enum sasl_mech mech);

/* PLAIN message: [authzid] NUL authcid NUL passwd. authzid must be empty or
 * equal to authcid (no proxy authorization); names must be non-empty valid
 * UTF-8 without control characters; the password non-empty without NUL. */
bool sasl_plain_decode(const uint8_t *data, size_t len, struct sasl_state *st,
		       const char **error_r);

void sasl_init(struct sasl_state *st, enum sasl_mech mech);
/* First step. has_resp: the client sent an initial response (maybe empty). */
enum sasl_step sasl_begin(struct sasl_state *st, bool has_resp, const uint8_t *resp,
			  size_t len, const uint8_t **chal_r, size_t *chal_len_r,
			  const char **error_r);
enum sasl_step sasl_continue(struct sasl_state *st, const uint8_t *resp, size_t len,
			     const uint8_t **chal_r, size_t *chal_len_r, const char **error_r);
void sasl_clear(struct sasl_state *st);

/* valid UTF-8 (no overlongs, no surrogates) without control characters */
bool sasl_name_valid(const uint8_t *s, size_t len);

#endif
