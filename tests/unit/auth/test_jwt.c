#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "auth/jwt.h"
#include "auth/sasl-oauth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jwt-vectors.h"

static struct crypto_pubkey *k_rsa, *k_p256, *k_p384, *k_ed;

static struct crypto_pubkey *load(const char *pem)
{
	const char *error = NULL;
	struct crypto_pubkey *k = crypto_pubkey_load_pem(pem, strlen(pem), &error);
	if (k == NULL)
		fail_msg("%s", error);
	return k;
}

static int setup(void **state)
{
	(void)state;
	k_rsa = load(pem_rsa);
	k_p256 = load(pem_p256);
	k_p384 = load(pem_p384);
	k_ed = load(pem_ed25519);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	crypto_pubkey_free(&k_rsa);
	crypto_pubkey_free(&k_p256);
	crypto_pubkey_free(&k_p384);
	crypto_pubkey_free(&k_ed);
	return 0;
}

/* as local_validation_key_dict: one key per (azp, alg, kid) */
static bool lookup_dict(void *ctx, const char *azp, const char *alg, const char *kid,
			struct jwt_key *key)
{
	(void)ctx;
	if (strcmp(azp, "default") != 0 || strcmp(kid, "default") != 0)
		return false;
	if (strncmp(alg, "HS", 2) == 0) {
		key->secret = (const uint8_t *)jwt_secret;
		key->secret_len = strlen(jwt_secret);
	} else if (strncmp(alg, "RS", 2) == 0) {
		key->pub = k_rsa;
	} else if (strcmp(alg, "ES256") == 0) {
		key->pub = k_p256;
	} else if (strcmp(alg, "ES384") == 0) {
		key->pub = k_p384;
	} else if (strcmp(alg, "EdDSA") == 0) {
		key->pub = k_ed;
	} else {
		return false;
	}
	return true;
}

/* a careless store keyed by kid alone: whatever alg the token names, it
   answers with the RSA public key */
static bool lookup_kid_only(void *ctx, const char *azp, const char *alg, const char *kid,
			    struct jwt_key *key)
{
	(void)ctx, (void)azp, (void)alg, (void)kid;
	key->pub = k_rsa;
	return true;
}

static const char *const issuers[] = { "https://idp.example.org", NULL };

static struct jwt_params params(void)
{
	struct jwt_params p = { .now = JWT_NOW,
				.leeway = 0,
				.username_attribute = "sub",
				.issuers = issuers,
				.audience = "mail",
				.lookup = lookup_dict };
	return p;
}

static bool verify_exact(const char *tok, size_t len, const struct jwt_params *p,
			 struct jwt_result *r, const char **error)
{
	char *buf = malloc(len > 0 ? len : 1);
	memcpy(buf, tok, len);
	bool ok = jwt_verify(buf, len, p, r, error);
	free(buf);
	return ok;
}

static void test_good(void **state)
{
	(void)state;
	struct jwt_params p = params();
	for (unsigned i = 0; i < sizeof(jwt_good) / sizeof(jwt_good[0]); i++) {
		struct jwt_result r;
		const char *error = NULL;
		if (!verify_exact(jwt_good[i].token, strlen(jwt_good[i].token), &p, &r, &error))
			fail_msg("%s: %s", jwt_good[i].alg, error);
		assert_string_equal(r.user, "alice");
		assert_int_equal(r.exp, JWT_EXP);
	}
	/* another user claim; no issuer or audience policy */
	p.username_attribute = "email";
	p.issuers = NULL;
	p.audience = NULL;
	struct jwt_result r;
	const char *error = NULL;
	assert_true(jwt_verify(jwt_good[0].token, strlen(jwt_good[0].token), &p, &r, &error));
	assert_string_equal(r.user, "alice@example.org");
	/* the audience may be any element of the array */
	p.audience = "other";
	assert_true(jwt_verify(jwt_good[0].token, strlen(jwt_good[0].token), &p, &r, &error));
	/* at exp it is over */
	p.now = JWT_EXP;
	assert_false(jwt_verify(jwt_good[0].token, strlen(jwt_good[0].token), &p, &r, &error));
	assert_string_equal(error, "token expired");
	assert_string_equal(r.user, "");
}

static void test_bad(void **state)
{
	(void)state;
	struct jwt_params p = params();
	for (unsigned i = 0; i < sizeof(jwt_bad) / sizeof(jwt_bad[0]); i++) {
		struct jwt_result r;
		const char *error = NULL;
		if (verify_exact(jwt_bad[i].token, strlen(jwt_bad[i].token), &p, &r, &error))
			fail_msg("%s: accepted", jwt_bad[i].name);
		if (strcmp(error, jwt_bad[i].error) != 0)
			fail_msg("%s: \"%s\", want \"%s\"", jwt_bad[i].name, error, jwt_bad[i].error);
		assert_string_equal(r.user, "");
	}
}

static const char *bad_token(const char *name)
{
	for (unsigned i = 0; i < sizeof(jwt_bad) / sizeof(jwt_bad[0]); i++) {
		if (strcmp(jwt_bad[i].name, name) == 0)
			return jwt_bad[i].token;
	}
	fail_msg("no vector %s", name);
	return NULL;
}

static void test_key_confusion(void **state)
{
	(void)state;
	/* even a store that hands out the RSA public key for HS256 does not
	   make the HMAC "signed" with that key's PEM valid */
	struct jwt_params p = params();
	p.lookup = lookup_kid_only;
	struct jwt_result r;
	const char *error = NULL;
	const char *t = bad_token("key_confusion");
	assert_false(jwt_verify(t, strlen(t), &p, &r, &error));
	assert_string_equal(error, "key type does not match alg");
	/* an EdDSA or ES256 token against an RSA key: the same */
	for (unsigned i = 0; i < sizeof(jwt_good) / sizeof(jwt_good[0]); i++) {
		if (strncmp(jwt_good[i].alg, "RS", 2) == 0)
			continue;
		assert_false(jwt_verify(jwt_good[i].token, strlen(jwt_good[i].token), &p, &r, &error));
		assert_string_equal(error, "key type does not match alg");
	}
}

static void test_leeway(void **state)
{
	(void)state;
	struct jwt_params p = params();
	struct jwt_result r;
	const char *error = NULL;
	const char *t = bad_token("expired"); /* exp = now - 1 */
	p.leeway = 1;
	assert_false(jwt_verify(t, strlen(t), &p, &r, &error));
	p.leeway = 2;
	assert_true(jwt_verify(t, strlen(t), &p, &r, &error));
	t = bad_token("nbf"); /* nbf = now + 3600 */
	p.leeway = 3599;
	assert_false(jwt_verify(t, strlen(t), &p, &r, &error));
	p.leeway = 3600;
	assert_true(jwt_verify(t, strlen(t), &p, &r, &error));
}

static void test_bounds(void **state)
{
	(void)state;
	struct jwt_params p = params();
	struct jwt_result r;
	const char *error = NULL;
	/* a 1 MB token is refused before it is read */
	size_t big = 1024 * 1024;
	char *huge = malloc(big);
	memset(huge, 'A', big);
	huge[100] = huge[200] = '.';
	assert_false(jwt_verify(huge, big, &p, &r, &error));
	assert_string_equal(error, "token too long");
	free(huge);
	/* every truncation of a good token fails */
	for (unsigned i = 0; i < sizeof(jwt_good) / sizeof(jwt_good[0]); i++) {
		const char *t = jwt_good[i].token;
		for (size_t k = 0; k < strlen(t); k++)
			assert_false(verify_exact(t, k, &p, &r, &error));
	}
}

static void test_keys(void **state)
{
	(void)state;
	const char *error = NULL;
	assert_int_equal(crypto_pubkey_type(k_rsa), CRYPTO_KEY_RSA);
	assert_int_equal(crypto_pubkey_type(k_p256), CRYPTO_KEY_P256);
	assert_int_equal(crypto_pubkey_type(k_p384), CRYPTO_KEY_P384);
	assert_int_equal(crypto_pubkey_type(k_ed), CRYPTO_KEY_ED25519);
	assert_null(crypto_pubkey_load_pem(pem_rsa1024, strlen(pem_rsa1024), &error));
	assert_string_equal(error, "RSA key shorter than 2048 bits");
	assert_null(crypto_pubkey_load_pem(pem_rsa_private, strlen(pem_rsa_private), &error));
	assert_string_equal(error, "not a PEM public key");
	assert_null(crypto_pubkey_load_pem("garbage", 7, &error));
	assert_string_equal(error, "not a PEM public key");
	assert_null(crypto_pubkey_load_pem("", 0, &error));
	/* every truncation of a PEM key is refused, never misread */
	for (size_t k = 0; k + 1 < strlen(pem_p256); k++) {
		char *buf = malloc(k + 1);
		memcpy(buf, pem_p256, k);
		struct crypto_pubkey *key = crypto_pubkey_load_pem(buf, k, &error);
		/* the last bytes are "-----\n": a prefix without the newline
		   may still be the whole key */
		if (key != NULL)
			assert_true(k >= strlen(pem_p256) - 1);
		crypto_pubkey_free(&key);
		free(buf);
	}
}

/* ---- OAUTHBEARER / XOAUTH2 messages ------------------------------------- */

static bool ob_exact(const char *m, size_t len, struct oauth_msg *r, const char **error, bool x)
{
	uint8_t *buf = malloc(len > 0 ? len : 1);
	memcpy(buf, m, len);
	bool ok = x ? xoauth2_parse(buf, len, r, error) : oauthbearer_parse(buf, len, r, error);
	/* the token points into the message: compare before freeing */
	static char tok[64];
	if (ok && r->token_len < sizeof(tok)) {
		memcpy(tok, r->token, r->token_len);
		tok[r->token_len] = '\0';
		r->token = tok;
	}
	free(buf);
	return ok;
}

#define OB_GOOD "n,a=user@example.com,\001host=server.example.com\001port=143\001auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\001\001"
#define XO_GOOD "user=someuser@example.com\001auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\001\001"

static void test_oauth_good(void **state)
{
	(void)state;
	struct oauth_msg r;
	const char *error = NULL;
	/* RFC 7628 section 4.1's example */
	assert_true(ob_exact(OB_GOOD, strlen(OB_GOOD), &r, &error, false));
	assert_string_equal(r.user, "user@example.com");
	assert_string_equal(r.token, "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==");
	/* no authzid, "y", the scheme in another case, escapes in the name */
	static const char ob2[] = "y,,\001auth=bearer abc\001\001";
	assert_true(ob_exact(ob2, strlen(ob2), &r, &error, false));
	assert_string_equal(r.user, "");
	assert_string_equal(r.token, "abc");
	static const char ob3[] = "n,a=a=2Cb=3D,\001auth=Bearer t\001\001";
	assert_true(ob_exact(ob3, strlen(ob3), &r, &error, false));
	assert_string_equal(r.user, "a,b=");
	/* Google's XOAUTH2 example */
	assert_true(ob_exact(XO_GOOD, strlen(XO_GOOD), &r, &error, true));
	assert_string_equal(r.user, "someuser@example.com");
	assert_string_equal(r.token, "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg");
	/* every truncation fails */
	for (size_t k = 0; k < strlen(OB_GOOD); k++)
		assert_false(ob_exact(OB_GOOD, k, &r, &error, false));
	for (size_t k = 0; k < strlen(XO_GOOD); k++)
		assert_false(ob_exact(XO_GOOD, k, &r, &error, true));

	char json[256];
	size_t n = oauth_error_json("openid email", json, sizeof(json));
	assert_string_equal(json, "{\"status\":\"invalid_token\",\"schemes\":\"bearer\","
				  "\"scope\":\"openid email\"}");
	assert_int_equal(n, strlen(json));
	oauth_error_json(NULL, json, sizeof(json));
	assert_string_equal(json, "{\"status\":\"invalid_token\",\"schemes\":\"bearer\"}");
}

static void test_oauth_bad(void **state)
{
	(void)state;
	static const struct {
		const char *m;
		bool xoauth2;
		const char *error;
	} bad[] = {
		{ "", false, "malformed gs2 header" },
		{ "p=tls-unique,,\001auth=Bearer t\001\001", false,
		  "channel binding is not supported by OAUTHBEARER" },
		{ "x,,\001auth=Bearer t\001\001", false, "malformed gs2 header" },
		{ "n,a=u\001,\001auth=Bearer t\001\001", false, "user name is not valid UTF-8 text" },
		{ "n,a=u=2X,\001auth=Bearer t\001\001", false, "malformed '=' escape in the user name" },
		{ "n,a=,\001auth=Bearer t\001\001", false, "empty user name" },
		{ "n,,auth=Bearer t\001\001", false, "missing kvsep after the gs2 header" },
		{ "n,,\001auth=Bearer t\001", false, "missing final kvsep" },
		{ "n,,\001auth=Bearer t", false, "missing kvsep after a value" },
		{ "n,,\001auth=Bearer t\001\001x", false, "data after the final kvsep" },
		{ "n,,\001host=h\001\001", false, "no auth=Bearer token" },
		{ "n,,\001=x\001auth=Bearer t\001\001", false, "malformed key=value pair" },
		{ "n,,\0011x=y\001\001", false, "malformed key=value pair" },
		{ "n,,\001host=\x80\001auth=Bearer t\001\001", false, "invalid character in a value" },
		{ "n,,\001auth=Basic dTpw\001\001", false, "auth is not a Bearer token" },
		{ "n,,\001auth=Bearer \001\001", false, "malformed bearer token" },
		{ "n,,\001auth=Bearer a b\001\001", false, "malformed bearer token" },
		{ "n,,\001auth=Bearer a=b\001\001", false, "malformed bearer token" },
		{ "n,,\001auth=Bearer t\001auth=Bearer u\001\001", false, "auth given twice" },
		{ "", true, "missing user=" },
		{ "user=\001auth=Bearer t\001\001", true, "empty user name" },
		{ "user=u", true, "missing kvsep after the user" },
		{ "user=u\001Auth=Bearer t\001\001", true, "missing auth=" },
		{ "user=u\001auth=Bearer t", true, "missing kvsep after the token" },
		{ "user=u\001auth=Bearer t\001", true, "missing final kvsep" },
		{ "user=u\001auth=Bearer t\001\001\001", true, "missing final kvsep" },
		{ "user=u\001auth=bearer% t\001\001", true, "auth is not a Bearer token" },
		{ "user=\xff\001auth=Bearer t\001\001", true, "user name is not valid UTF-8 text" },
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct oauth_msg r;
		const char *error = NULL;
		assert_false(ob_exact(bad[i].m, strlen(bad[i].m), &r, &error, bad[i].xoauth2));
		if (strcmp(error, bad[i].error) != 0)
			fail_msg("%u: \"%s\", want \"%s\"", i, error, bad[i].error);
	}
	/* a 1 MB message, a 16 KB + 1 token */
	struct oauth_msg r;
	const char *error = NULL;
	size_t big = 1024 * 1024;
	uint8_t *huge = malloc(big);
	memset(huge, 'a', big);
	assert_false(oauthbearer_parse(huge, big, &r, &error));
	assert_string_equal(error, "message too long");
	assert_false(xoauth2_parse(huge, big, &r, &error));
	assert_string_equal(error, "message too long");
	size_t n = 0;
	memcpy(huge, "user=u\001auth=Bearer ", 19);
	n = 19 + JWT_MAX_TOKEN + 1;
	huge[n] = 1;
	huge[n + 1] = 1;
	assert_false(xoauth2_parse(huge, n + 2, &r, &error));
	assert_string_equal(error, "token too long");
	free(huge);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),	      cmocka_unit_test(test_bad),
		cmocka_unit_test(test_key_confusion), cmocka_unit_test(test_leeway),
		cmocka_unit_test(test_bounds),	      cmocka_unit_test(test_keys),
		cmocka_unit_test(test_oauth_good),    cmocka_unit_test(test_oauth_bad),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
