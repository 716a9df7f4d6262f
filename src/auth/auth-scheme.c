#include "auth/auth-scheme.h"
#include "auth/sasl-cram.h"
#include "auth/sasl-scram.h"

#include "lib/alloc.h"
#include "lib/base64.h"
#include "lib/log.h"

#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

enum scheme_kind {
	KIND_PLAIN, KIND_CRYPT, KIND_SCRAM_SHA1, KIND_SCRAM_SHA256, KIND_CRAM_MD5,
	KIND_DIGEST,      /* base64 (or hex) of H(password): {SHA}, {SHA256}, {SHA512} */
	KIND_SALTED,      /* base64 of H(password + salt) + salt: {SSHA}, ... (LDAP's) */
};

/* prefix a crypt hash of the scheme must start with ("" = any crypt hash);
   gen: the crypt_gensalt prefix `ringgate pw` makes such hashes with */
static const struct {
	const char *name;
	const char *prefixes[4];
	enum scheme_kind kind;
	const char *gen;
	enum crypto_hash hash; /* KIND_DIGEST, KIND_SALTED */
} schemes[] = {
	{ "PLAIN", { NULL }, KIND_PLAIN, NULL, CRYPTO_MD5 },
	{ "CLEARTEXT", { NULL }, KIND_PLAIN, NULL, CRYPTO_MD5 },
	{ "CRYPT", { "", NULL }, KIND_CRYPT, NULL, CRYPTO_MD5 },
	{ "DES-CRYPT", { "", NULL }, KIND_CRYPT, NULL, CRYPTO_MD5 },
	{ "MD5-CRYPT", { "$1$", NULL }, KIND_CRYPT, "$1$", CRYPTO_MD5 },
	{ "SHA256-CRYPT", { "$5$", NULL }, KIND_CRYPT, "$5$", CRYPTO_MD5 },
	{ "SHA512-CRYPT", { "$6$", NULL }, KIND_CRYPT, "$6$", CRYPTO_MD5 },
	{ "BLF-CRYPT", { "$2a$", "$2b$", "$2y$", NULL }, KIND_CRYPT, "$2y$", CRYPTO_MD5 },
	{ "SCRAM-SHA-1", { NULL }, KIND_SCRAM_SHA1, NULL, CRYPTO_MD5 },
	{ "SCRAM-SHA-256", { NULL }, KIND_SCRAM_SHA256, NULL, CRYPTO_MD5 },
	{ "CRAM-MD5", { NULL }, KIND_CRAM_MD5, NULL, CRYPTO_MD5 },
	{ "SHA", { NULL }, KIND_DIGEST, NULL, CRYPTO_SHA1 },
	{ "SHA1", { NULL }, KIND_DIGEST, NULL, CRYPTO_SHA1 },
	{ "SHA256", { NULL }, KIND_DIGEST, NULL, CRYPTO_SHA256 },
	{ "SHA512", { NULL }, KIND_DIGEST, NULL, CRYPTO_SHA512 },
	{ "SSHA", { NULL }, KIND_SALTED, NULL, CRYPTO_SHA1 },
	{ "SSHA256", { NULL }, KIND_SALTED, NULL, CRYPTO_SHA256 },
	{ "SSHA512", { NULL }, KIND_SALTED, NULL, CRYPTO_SHA512 },
};
#define SCHEME_COUNT (sizeof(schemes) / sizeof(schemes[0]))

static int scheme_find(const char *name)
{
	for (unsigned i = 0; i < SCHEME_COUNT; i++) {
		if (strcasecmp(schemes[i].name, name) == 0)
			return (int)i;
	}
	return -1;
}

bool auth_scheme_known(const char *scheme)
{
	return scheme_find(scheme) >= 0;
}

bool auth_mem_equal(const void *a, size_t alen, const void *b, size_t blen)
{
	const volatile uint8_t *pa = a, *pb = b;
	uint8_t diff = alen != blen;
	size_t n = alen < blen ? alen : blen;
	for (size_t i = 0; i < n; i++)
		diff |= pa[i] ^ pb[i];
	return diff == 0;
}

/* a plaintext password against stored SCRAM keys: the keys the password
   gives with the stored salt and count must be the stored ones */
static enum scheme_result scram_verify(enum crypto_hash h, const char *hash, const uint8_t *pw,
				       size_t pw_len)
{
	struct scram_creds stored, made;
	const char *error;
	if (!scram_creds_parse(h, hash, &stored, &error))
		return SCHEME_BAD_HASH;
	if (scram_creds_from_password(h, pw, pw_len, stored.salt, stored.salt_len,
				      stored.iterations, &made) < 0)
		return SCHEME_BAD_HASH;
	size_t hl = crypto_hash_len(h);
	bool ok = auth_mem_equal(made.stored_key, hl, stored.stored_key, hl) &&
		  auth_mem_equal(made.server_key, hl, stored.server_key, hl);
	explicit_bzero(&made, sizeof(made));
	return ok ? SCHEME_OK : SCHEME_MISMATCH;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* {SHA*} / {SSHA*}: the stored value decoded (base64; an unsalted digest
   may also be hex, as Dovecot accepts), compared with H(pw + salt) */
static enum scheme_result digest_verify(enum crypto_hash h, bool salted, const char *hash,
					const uint8_t *pw, size_t pw_len)
{
	size_t hl = crypto_hash_len(h), len = strlen(hash), n = 0;
	uint8_t stored[CRYPTO_HASH_MAX + 64], got[CRYPTO_HASH_MAX];

	if (!salted && len == hl * 2) {
		for (size_t i = 0; i < hl; i++) {
			int hi = hexval(hash[2 * i]), lo = hexval(hash[2 * i + 1]);
			if (hi < 0 || lo < 0)
				return SCHEME_BAD_HASH;
			stored[i] = (uint8_t)(hi << 4 | lo);
		}
		n = hl;
	} else if (!base64_decode(hash, len, stored, sizeof(stored), &n)) {
		return SCHEME_BAD_HASH;
	}
	if (salted ? n <= hl : n != hl)
		return SCHEME_BAD_HASH;
	uint8_t *buf = rg_malloc(pw_len + (n - hl) + 1);
	memcpy(buf, pw, pw_len);
	memcpy(buf + pw_len, stored + hl, n - hl);
	crypto_hash(h, buf, pw_len + (n - hl), got);
	explicit_bzero(buf, pw_len);
	rg_free(buf);
	bool ok = auth_mem_equal(got, hl, stored, hl);
	explicit_bzero(got, sizeof(got));
	return ok ? SCHEME_OK : SCHEME_MISMATCH;
}

enum scheme_result auth_scheme_verify(const char *scheme, const char *hash,
				      const uint8_t *pw, size_t pw_len)
{
	int idx = scheme_find(scheme);
	if (idx < 0)
		return SCHEME_UNKNOWN;
	switch (schemes[idx].kind) {
	case KIND_PLAIN:
		return auth_mem_equal(pw, pw_len, hash, strlen(hash)) ? SCHEME_OK : SCHEME_MISMATCH;
	case KIND_SCRAM_SHA1:
	case KIND_SCRAM_SHA256:
		return scram_verify(schemes[idx].kind == KIND_SCRAM_SHA1 ? CRYPTO_SHA1 : CRYPTO_SHA256,
				    hash, pw, pw_len);
	case KIND_CRAM_MD5: {
		uint8_t want[CRYPTO_CRAM_MD5_CONTEXT_LEN], got[CRYPTO_CRAM_MD5_CONTEXT_LEN];
		if (!cram_md5_context_parse(hash, want))
			return SCHEME_BAD_HASH;
		crypto_cram_md5_context(pw, pw_len, got);
		bool ok = auth_mem_equal(want, sizeof(want), got, sizeof(got));
		explicit_bzero(got, sizeof(got));
		return ok ? SCHEME_OK : SCHEME_MISMATCH;
	}
	case KIND_DIGEST:
	case KIND_SALTED:
		return digest_verify(schemes[idx].hash, schemes[idx].kind == KIND_SALTED, hash, pw,
				     pw_len);
	case KIND_CRYPT:
		break;
	}

	bool prefix_ok = false;
	for (unsigned i = 0; i < 4 && schemes[idx].prefixes[i] != NULL && !prefix_ok; i++) {
		const char *p = schemes[idx].prefixes[i];
		prefix_ok = strncmp(hash, p, strlen(p)) == 0;
	}
	/* a hash without salt would make crypt() fail; "*" and "!" are the
	   usual locked-account markers and never match */
	if (!prefix_ok || strlen(hash) < 2 || hash[0] == '*' || hash[0] == '!')
		return SCHEME_BAD_HASH;
	if (memchr(pw, '\0', pw_len) != NULL)
		return SCHEME_MISMATCH;

	char *pwz = rg_malloc(pw_len + 1);
	memcpy(pwz, pw, pw_len);
	pwz[pw_len] = '\0';
	struct crypt_data *cd = rg_calloc(1, sizeof(*cd));
	const char *out = crypt_rn(pwz, hash, cd, (int)sizeof(*cd));
	enum scheme_result ret;
	if (out == NULL || out[0] == '*')
		ret = SCHEME_BAD_HASH;
	else
		ret = auth_mem_equal(out, strlen(out), hash, strlen(hash)) ? SCHEME_OK : SCHEME_MISMATCH;
	explicit_bzero(cd, sizeof(*cd));
	explicit_bzero(pwz, pw_len);
	rg_free(cd);
	rg_free(pwz);
	return ret;
}

static void random_bytes(void *buf, size_t len)
{
	uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_fatal("getrandom: %m");
		}
		p += n;
		len -= (size_t)n;
	}
}

const char *auth_scheme_name(unsigned i)
{
	return i < SCHEME_COUNT ? schemes[i].name : NULL;
}

char *auth_scheme_generate(const char *scheme, const uint8_t *pw, size_t pw_len,
			   unsigned rounds, const char **error_r)
{
	int idx = scheme_find(scheme);
	if (idx < 0) {
		*error_r = "unknown scheme";
		return NULL;
	}
	const char *name = schemes[idx].name;
	switch (schemes[idx].kind) {
	case KIND_PLAIN:
		if (memchr(pw, '\0', pw_len) != NULL) {
			*error_r = "NUL in the password";
			return NULL;
		}
		return rg_strdup_printf("{%s}%.*s", name, (int)pw_len, (const char *)pw);
	case KIND_SCRAM_SHA1:
	case KIND_SCRAM_SHA256: {
		enum crypto_hash h = schemes[idx].kind == KIND_SCRAM_SHA1 ? CRYPTO_SHA1 : CRYPTO_SHA256;
		uint8_t salt[16];
		struct scram_creds creds;
		random_bytes(salt, sizeof(salt));
		if (scram_creds_from_password(h, pw, pw_len, salt, sizeof(salt),
					      rounds != 0 ? rounds : SCRAM_DEFAULT_ITERATIONS,
					      &creds) < 0) {
			*error_r = "iteration count out of range";
			return NULL;
		}
		char str[SCRAM_CREDS_STR_MAX];
		scram_creds_format(h, &creds, str);
		explicit_bzero(&creds, sizeof(creds));
		return rg_strdup_printf("{%s}%s", name, str);
	}
	case KIND_CRAM_MD5: {
		uint8_t ctx[CRYPTO_CRAM_MD5_CONTEXT_LEN];
		char hex[2 * CRYPTO_CRAM_MD5_CONTEXT_LEN + 1];
		crypto_cram_md5_context(pw, pw_len, ctx);
		cram_md5_context_format(ctx, hex);
		explicit_bzero(ctx, sizeof(ctx));
		return rg_strdup_printf("{%s}%s", name, hex);
	}
	case KIND_DIGEST:
	case KIND_SALTED: {
		enum crypto_hash h = schemes[idx].hash;
		size_t hl = crypto_hash_len(h), salt_len = schemes[idx].kind == KIND_SALTED ? 8 : 0;
		uint8_t raw[CRYPTO_HASH_MAX + 8];
		uint8_t *buf = rg_malloc(pw_len + salt_len + 1);
		random_bytes(raw + hl, salt_len);
		memcpy(buf, pw, pw_len);
		memcpy(buf + pw_len, raw + hl, salt_len);
		crypto_hash(h, buf, pw_len + salt_len, raw);
		explicit_bzero(buf, pw_len);
		rg_free(buf);
		char b64[(CRYPTO_HASH_MAX + 8) / 3 * 4 + 8];
		b64[base64_encode(raw, hl + salt_len, b64)] = '\0';
		return rg_strdup_printf("{%s}%s", name, b64);
	}
	case KIND_CRYPT:
		break;
	}
	if (schemes[idx].gen == NULL) {
		*error_r = "the scheme is accepted for old entries but not made any more";
		return NULL;
	}
	if (memchr(pw, '\0', pw_len) != NULL) {
		*error_r = "NUL in the password";
		return NULL;
	}
	uint8_t rnd[16];
	random_bytes(rnd, sizeof(rnd));
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	if (crypt_gensalt_rn(schemes[idx].gen, rounds, (const char *)rnd, sizeof(rnd), setting,
			     sizeof(setting)) == NULL) {
		*error_r = "libcrypt refused the rounds for this scheme";
		return NULL;
	}
	char *pwz = rg_strndup((const char *)pw, pw_len);
	struct crypt_data *cd = rg_calloc(1, sizeof(*cd));
	const char *out = crypt_rn(pwz, setting, cd, (int)sizeof(*cd));
	char *ret = NULL;
	if (out == NULL || out[0] == '*')
		*error_r = "crypt() failed";
	else
		ret = rg_strdup_printf("{%s}%s", name, out);
	explicit_bzero(cd, sizeof(*cd));
	explicit_bzero(pwz, pw_len);
	rg_free(cd);
	rg_free(pwz);
	return ret;
}
