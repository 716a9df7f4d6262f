/* jwt.h — local validation of an OAuth2 access token that is a JWS-signed
 * JWT (RFC 7515/7519), as Dovecot's oauth2 passdb does with
 * introspection_mode = local: the signature (HS256/384/512, RS256/384/512,
 * ES256/384, EdDSA with Ed25519), then exp (required), nbf, iat, iss and
 * aud, and the user from a configured claim. Pure: no I/O, no allocation;
 * keys come from the caller's lookup, by (azp, alg, kid) as Dovecot's
 * local_validation_key_dict is keyed. "alg": "none" is refused, and a key
 * is used only with the algorithm family of its type (an RSA public key is
 * never an HMAC secret), so the classic key-confusion forgeries fail. */
#ifndef RG_JWT_H
#define RG_JWT_H

#include "tls/tls-crypto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JWT_MAX_TOKEN 16384 /* the compact serialization */
#define JWT_MAX_HEADER 1024 /* decoded JOSE header */
#define JWT_MAX_KID 128
#define JWT_MAX_USER 255
#define JWT_MAX_AZP 128

struct jwt_key {
	const uint8_t *secret;            /* HS*: the shared secret */
	size_t secret_len;
	const struct crypto_pubkey *pub;  /* RS*, ES*, EdDSA */
};

/* Fill *key_r for the token's azp ("default" when it has none), alg (as in
 * the header, e.g. "RS256") and kid ("default" when none); false if there
 * is no such key. */
typedef bool jwt_key_lookup_fn(void *context, const char *azp, const char *alg, const char *kid,
			       struct jwt_key *key_r);

struct jwt_params {
	int64_t now;                    /* Unix time */
	unsigned leeway;                /* seconds of clock skew allowed */
	const char *username_attribute; /* the claim naming the user, e.g. "sub", "email" */
	const char *const *issuers;     /* NULL-terminated; NULL = any iss */
	const char *audience;           /* NULL = aud not checked */
	jwt_key_lookup_fn *lookup;
	void *context;
};

struct jwt_result {
	char user[JWT_MAX_USER + 1];
	int64_t exp;
};

bool jwt_verify(const char *token, size_t len, const struct jwt_params *params,
		struct jwt_result *result_r, const char **error_r);

#endif
