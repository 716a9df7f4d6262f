#include "auth/jwt.h"
#include "auth/auth-sasl.h"
#include "auth/auth-scheme.h"

#include "lib/base64.h"
#include "lib/json.h"

#include <string.h>
#include <strings.h>

enum alg_family { FAM_HMAC, FAM_RSA, FAM_ECDSA, FAM_EDDSA };

static const struct {
	const char *name;
	enum alg_family fam;
	enum crypto_hash hash;
} algs[] = {
	{ "HS256", FAM_HMAC, CRYPTO_SHA256 },  { "HS384", FAM_HMAC, CRYPTO_SHA384 },
	{ "HS512", FAM_HMAC, CRYPTO_SHA512 },  { "RS256", FAM_RSA, CRYPTO_SHA256 },
	{ "RS384", FAM_RSA, CRYPTO_SHA384 },   { "RS512", FAM_RSA, CRYPTO_SHA512 },
	{ "ES256", FAM_ECDSA, CRYPTO_SHA256 }, { "ES384", FAM_ECDSA, CRYPTO_SHA384 },
	{ "EdDSA", FAM_EDDSA, CRYPTO_SHA512 },
};

static bool b64url_chars(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
	}
	return true;
}

static bool key_fits_alg(const struct jwt_key *key, enum alg_family fam, enum crypto_hash h)
{
	if (fam == FAM_HMAC)
		return key->pub == NULL && key->secret != NULL && key->secret_len > 0;
	if (key->pub == NULL || key->secret != NULL)
		return false;
	enum crypto_key_type t = crypto_pubkey_type(key->pub);
	switch (fam) {
	case FAM_RSA:
		return t == CRYPTO_KEY_RSA;
	case FAM_ECDSA:
		return (t == CRYPTO_KEY_P256 && h == CRYPTO_SHA256) ||
		       (t == CRYPTO_KEY_P384 && h == CRYPTO_SHA384);
	case FAM_EDDSA:
		return t == CRYPTO_KEY_ED25519;
	case FAM_HMAC:
		break;
	}
	return false;
}

static bool fail(const char *why, const char **error_r)
{
	*error_r = why;
	return false;
}

bool jwt_verify(const char *token, size_t len, const struct jwt_params *params,
		struct jwt_result *result_r, const char **error_r)
{
	memset(result_r, 0, sizeof(*result_r));
	if (len > JWT_MAX_TOKEN)
		return fail("token too long", error_r);
	const char *dot1 = memchr(token, '.', len);
	const char *dot2 = dot1 != NULL ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token))
					: NULL;
	if (dot1 == NULL || dot2 == NULL ||
	    memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL)
		return fail("not a JWS compact serialization (three dot-separated parts)", error_r);
	size_t h64_len = (size_t)(dot1 - token), p64_len = (size_t)(dot2 - dot1 - 1);
	const char *s64 = dot2 + 1;
	size_t s64_len = len - (size_t)(s64 - token);
	if (h64_len == 0 || p64_len == 0 || !b64url_chars(token, h64_len) ||
	    !b64url_chars(dot1 + 1, p64_len) || !b64url_chars(s64, s64_len))
		return fail("malformed base64url in the token", error_r);

	/* header */
	char hdr[JWT_MAX_HEADER];
	size_t hdr_len;
	if (!base64url_decode(token, h64_len, hdr, sizeof(hdr), &hdr_len))
		return fail("header is not base64url or too long", error_r);
	struct json_object obj;
	const char *jerr;
	if (!json_parse_object(hdr, hdr_len, &obj, &jerr))
		return fail("header is not a JSON object", error_r);
	char alg[16], kid[JWT_MAX_KID + 1], typ[16];
	const struct json_member *m = json_get(&obj, "alg");
	if (m == NULL)
		return fail("header has no alg", error_r);
	if (!json_get_string(&obj, "alg", alg, sizeof(alg)))
		return fail("unsupported alg", error_r);
	if (strcasecmp(alg, "none") == 0)
		return fail("alg none refused", error_r);
	int ai = -1;
	for (unsigned i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		if (strcmp(algs[i].name, alg) == 0)
			ai = (int)i;
	}
	if (ai < 0)
		return fail("unsupported alg", error_r);
	if (json_get(&obj, "crit") != NULL)
		return fail("critical header extensions are not supported", error_r);
	if (json_get(&obj, "typ") != NULL &&
	    (!json_get_string(&obj, "typ", typ, sizeof(typ)) ||
	     (strcasecmp(typ, "JWT") != 0 && strcasecmp(typ, "at+jwt") != 0 &&
	      strcasecmp(typ, "application/at+jwt") != 0)))
		return fail("typ is not JWT", error_r);
	strcpy(kid, "default");
	if (json_get(&obj, "kid") != NULL) {
		m = json_get(&obj, "kid");
		if (m->type != JSON_STRING)
			return fail("kid is not a string", error_r);
		if (!json_get_string(&obj, "kid", kid, sizeof(kid)))
			return fail("kid too long (or holds NUL)", error_r);
		if (kid[0] == '\0' || !sasl_name_valid((const uint8_t *)kid, strlen(kid)))
			return fail("kid is empty or not printable text", error_r);
	}

	/* claims: parsed now (the key depends on azp), trusted only after the
	   signature checks */
	char payload[JSON_MAX_LEN];
	size_t payload_len;
	if (!base64url_decode(dot1 + 1, p64_len, payload, sizeof(payload), &payload_len))
		return fail("payload is not base64url or too long", error_r);
	if (!json_parse_object(payload, payload_len, &obj, &jerr))
		return fail("payload is not a JSON object", error_r);
	char azp[JWT_MAX_AZP + 1];
	strcpy(azp, "default");
	if (json_get(&obj, "azp") != NULL &&
	    (!json_get_string(&obj, "azp", azp, sizeof(azp)) || azp[0] == '\0' ||
	     !sasl_name_valid((const uint8_t *)azp, strlen(azp))))
		return fail("azp is not a short text string", error_r);

	/* signature */
	struct jwt_key key;
	memset(&key, 0, sizeof(key));
	if (params->lookup == NULL || !params->lookup(params->context, azp, alg, kid, &key))
		return fail("no key for the token's azp/alg/kid", error_r);
	enum alg_family fam = algs[ai].fam;
	enum crypto_hash h = algs[ai].hash;
	if (!key_fits_alg(&key, fam, h))
		return fail("key type does not match alg", error_r);
	uint8_t sig[1024];
	size_t sig_len;
	if (!base64url_decode(s64, s64_len, sig, sizeof(sig), &sig_len) || sig_len == 0)
		return fail("signature is not base64url or too long", error_r);
	size_t signed_len = (size_t)(dot2 - token);
	bool ok;
	if (fam == FAM_HMAC) {
		uint8_t mac[CRYPTO_HASH_MAX];
		crypto_hmac(h, key.secret, key.secret_len, token, signed_len, mac);
		ok = auth_mem_equal(mac, crypto_hash_len(h), sig, sig_len);
	} else {
		enum crypto_sig st = fam == FAM_RSA	? CRYPTO_SIG_RSA_PKCS1
				     : fam == FAM_ECDSA ? CRYPTO_SIG_ECDSA_RAW
							: CRYPTO_SIG_ED25519;
		ok = crypto_verify(key.pub, st, h, token, signed_len, sig, sig_len);
	}
	if (!ok)
		return fail("bad signature", error_r);

	/* time */
	int64_t exp, t, lw = (int64_t)params->leeway;
	if (json_get(&obj, "exp") == NULL)
		return fail("token has no exp", error_r);
	if (!json_get_int64(&obj, "exp", &exp))
		return fail("exp is not a number", error_r);
	if (params->now - lw >= exp)
		return fail("token expired", error_r);
	if (json_get(&obj, "nbf") != NULL) {
		if (!json_get_int64(&obj, "nbf", &t))
			return fail("nbf is not a number", error_r);
		if (params->now + lw < t)
			return fail("token not valid yet (nbf)", error_r);
	}
	if (json_get(&obj, "iat") != NULL) {
		if (!json_get_int64(&obj, "iat", &t))
			return fail("iat is not a number", error_r);
		if (params->now + lw < t)
			return fail("token issued in the future (iat)", error_r);
	}

	/* issuer and audience */
	if (params->issuers != NULL) {
		char iss[512];
		if (!json_get_string(&obj, "iss", iss, sizeof(iss)))
			return fail("token has no iss", error_r);
		bool known = false;
		for (const char *const *i = params->issuers; *i != NULL && !known; i++)
			known = strcmp(*i, iss) == 0;
		if (!known)
			return fail("issuer not accepted", error_r);
	}
	if (params->audience != NULL &&
	    !json_member_has_string(json_get(&obj, "aud"), params->audience))
		return fail("audience not accepted", error_r);

	/* the user */
	const char *ua = params->username_attribute != NULL ? params->username_attribute : "sub";
	if (!json_get_string(&obj, ua, result_r->user, sizeof(result_r->user)))
		return fail("token has no string user claim (username_attribute)", error_r);
	if (result_r->user[0] == '\0' ||
	    !sasl_name_valid((const uint8_t *)result_r->user, strlen(result_r->user))) {
		memset(result_r, 0, sizeof(*result_r));
		return fail("user claim is empty or not printable text", error_r);
	}
	result_r->exp = exp;
	return true;
}
