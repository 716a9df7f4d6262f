/* libFuzzer target: JWT local validation (src/auth/jwt.c). Mode byte bit 0
 * clear: the rest is a token as a client sends it. Bit 0 set: the rest is a
 * JOSE header and a claims set (2-byte big-endian length each), which the
 * harness encodes and signs with HS256 under the test secret, so the claim
 * checks after the signature are reached too. Keys: that HS256 secret and
 * one Ed25519 public key. Checks: a failure says why and leaves no user; a
 * success names a non-empty valid user within bounds. */
#include "auth/auth-sasl.h"
#include "auth/jwt.h"
#include "lib/base64.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char secret[] = "0123456789abcdef0123456789abcdef";
static const char ed_pem[] = "-----BEGIN PUBLIC KEY-----\n"
			     "MCowBQYDK2VwAyEAX5va1419f7sqCwhaI+sJwlDhuOOTfZ/feF1VwrfUkQY=\n"
			     "-----END PUBLIC KEY-----\n";
static struct crypto_pubkey *ed;

static bool lookup(void *ctx, const char *azp, const char *alg, const char *kid,
		   struct jwt_key *key)
{
	(void)ctx, (void)azp, (void)kid;
	if (strncmp(alg, "HS", 2) == 0) {
		key->secret = (const uint8_t *)secret;
		key->secret_len = sizeof(secret) - 1;
		return true;
	}
	key->pub = ed;
	return true;
}

static size_t b64url(const uint8_t *in, size_t len, char *out)
{
	size_t n = base64_encode(in, len, out);
	while (n > 0 && out[n - 1] == '=')
		n--;
	for (size_t i = 0; i < n; i++)
		out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (ed == NULL) {
		const char *error;
		ed = crypto_pubkey_load_pem(ed_pem, sizeof(ed_pem) - 1, &error);
		if (ed == NULL)
			abort();
	}
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	data++;
	size--;
	static const char *const issuers[] = { "https://idp.example.org", NULL };
	struct jwt_params p = { .now = 1700000000, .leeway = mode >> 4,
				.username_attribute = (mode & 2) != 0 ? "email" : "sub",
				.issuers = (mode & 4) != 0 ? issuers : NULL,
				.audience = (mode & 8) != 0 ? "mail" : NULL, .lookup = lookup };
	static char tok[BASE64_ENCODED_LEN(JWT_MAX_TOKEN) + 128];
	const char *t = (const char *)data;
	size_t tlen = size;
	if ((mode & 1) != 0) {
		if (size < 4)
			return 0;
		size_t hl = (size_t)data[0] << 8 | data[1];
		if (hl > size - 2)
			hl = size - 2;
		const uint8_t *h = data + 2;
		const uint8_t *pl = h + hl;
		size_t pll = size - 2 - hl;
		if (hl > 2048 || pll > JWT_MAX_TOKEN)
			return 0;
		size_t n = b64url(h, hl, tok);
		tok[n++] = '.';
		n += b64url(pl, pll, tok + n);
		uint8_t mac[CRYPTO_HASH_MAX];
		crypto_hmac(CRYPTO_SHA256, secret, sizeof(secret) - 1, tok, n, mac);
		tok[n++] = '.';
		n += b64url(mac, 32, tok + n);
		t = tok;
		tlen = n;
	}
	struct jwt_result r;
	const char *error = NULL;
	if (jwt_verify(t, tlen, &p, &r, &error)) {
		size_t n = strlen(r.user);
		if (n == 0 || n > JWT_MAX_USER || !sasl_name_valid((const uint8_t *)r.user, n) ||
		    r.exp <= p.now - (int64_t)p.leeway)
			abort();
	} else if (error == NULL || r.user[0] != '\0') {
		abort();
	}
	return 0;
}
