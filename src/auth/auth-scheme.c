#include "auth/auth-scheme.h"

#include "lib/alloc.h"

#include <crypt.h>
#include <string.h>
#include <strings.h>

/* prefix a crypt hash of the scheme must start with ("" = any crypt hash) */
static const struct {
	const char *name;
	const char *prefixes[4];
	bool crypt;
} schemes[] = {
	{ "PLAIN", { NULL }, false },
	{ "CLEARTEXT", { NULL }, false },
	{ "CRYPT", { "", NULL }, true },
	{ "DES-CRYPT", { "", NULL }, true },
	{ "MD5-CRYPT", { "$1$", NULL }, true },
	{ "SHA256-CRYPT", { "$5$", NULL }, true },
	{ "SHA512-CRYPT", { "$6$", NULL }, true },
	{ "BLF-CRYPT", { "$2a$", "$2b$", "$2y$", NULL }, true },
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

enum scheme_result auth_scheme_verify(const char *scheme, const char *hash,
				      const uint8_t *pw, size_t pw_len)
{
	int idx = scheme_find(scheme);
	if (idx < 0)
		return SCHEME_UNKNOWN;
	if (!schemes[idx].crypt)
		return auth_mem_equal(pw, pw_len, hash, strlen(hash)) ? SCHEME_OK : SCHEME_MISMATCH;

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
