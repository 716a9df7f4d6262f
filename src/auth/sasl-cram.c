#include "auth/sasl-cram.h"
#include "auth/auth-sasl.h"
#include "auth/auth-scheme.h"

#include <stdio.h>
#include <string.h>

static bool host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-' || c == '_';
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

static bool hex_decode(const char *s, size_t len, uint8_t *out)
{
	if (len % 2 != 0)
		return false;
	for (size_t i = 0; i < len; i += 2) {
		int hi = hexval(s[i]), lo = hexval(s[i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

static void hex_encode(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

bool cram_challenge_make(const uint8_t random[16], unsigned pid, long unix_time,
			 const char *host, char *out, size_t *len_r)
{
	size_t hlen = strlen(host);
	if (hlen == 0 || hlen > 128)
		return false;
	for (size_t i = 0; i < hlen; i++) {
		if (!host_char(host[i]))
			return false;
	}
	char rnd[33];
	hex_encode(random, 16, rnd);
	int n = snprintf(out, CRAM_MAX_CHALLENGE, "<%u.%ld.%s@%s>", pid,
			 unix_time < 0 ? 0 : unix_time, rnd, host);
	if (n < 0 || n >= CRAM_MAX_CHALLENGE)
		return false;
	*len_r = (size_t)n;
	return true;
}

static size_t digits(const char *s, size_t len, unsigned long *val_r)
{
	size_t i = 0;
	unsigned long v = 0;
	while (i < len && i < 19 && s[i] >= '0' && s[i] <= '9')
		v = v * 10 + (unsigned long)(s[i++] - '0');
	*val_r = v;
	return i;
}

bool cram_challenge_parse(const char *s, size_t len, unsigned *pid_r)
{
	if (len < 2 + 1 + 1 + 1 + 1 + 32 + 2 || len >= CRAM_MAX_CHALLENGE || s[0] != '<' ||
	    s[len - 1] != '>')
		return false;
	size_t p = 1;
	unsigned long pid, t;
	size_t n = digits(s + p, len - p, &pid);
	if (n == 0 || n > 10 || pid > 0xffffffffUL || s[p + n] != '.')
		return false;
	p += n + 1;
	n = digits(s + p, len - p, &t);
	if (n == 0 || s[p + n] != '.')
		return false;
	p += n + 1;
	if (len - p < 32 + 2)
		return false;
	for (size_t i = 0; i < 32; i++) {
		if (hexval(s[p + i]) < 0)
			return false;
	}
	p += 32;
	if (s[p] != '@')
		return false;
	p++;
	if (p >= len - 1)
		return false;
	for (; p < len - 1; p++) {
		if (!host_char(s[p]))
			return false;
	}
	*pid_r = (unsigned)pid;
	return true;
}

static bool user_set(const uint8_t *s, size_t len, char user[CRAM_MAX_USER + 1],
		     const char **error_r)
{
	if (len == 0) {
		*error_r = "empty user name";
		return false;
	}
	if (len > CRAM_MAX_USER) {
		*error_r = "user name too long";
		return false;
	}
	if (memchr(s, '\0', len) != NULL || !sasl_name_valid(s, len)) {
		*error_r = "user name is not valid UTF-8 text";
		return false;
	}
	memcpy(user, s, len);
	user[len] = '\0';
	return true;
}

bool cram_md5_parse(const uint8_t *resp, size_t len, char user[CRAM_MAX_USER + 1],
		    uint8_t digest[16], const char **error_r)
{
	if (len > CRAM_MAX_RESP) {
		*error_r = "response too long";
		return false;
	}
	if (len < 33 || resp[len - 33] != ' ') {
		*error_r = "response is not \"user digest\"";
		return false;
	}
	if (!hex_decode((const char *)resp + len - 32, 32, digest)) {
		*error_r = "digest is not 32 hex digits";
		return false;
	}
	/* user names may hold spaces: the digest is after the last one */
	return user_set(resp, len - 33, user, error_r);
}

bool cram_md5_verify_context(const uint8_t ctx[CRYPTO_CRAM_MD5_CONTEXT_LEN],
			     const char *challenge, size_t chal_len, const uint8_t digest[16])
{
	uint8_t want[16];
	crypto_cram_md5_from_context(ctx, challenge, chal_len, want);
	return auth_mem_equal(want, 16, digest, 16);
}

bool cram_md5_verify_plain(const uint8_t *pw, size_t pw_len, const char *challenge,
			   size_t chal_len, const uint8_t digest[16])
{
	uint8_t want[16];
	crypto_hmac(CRYPTO_MD5, pw, pw_len, challenge, chal_len, want);
	return auth_mem_equal(want, 16, digest, 16);
}

bool cram_md5_context_parse(const char *hex, uint8_t ctx[CRYPTO_CRAM_MD5_CONTEXT_LEN])
{
	return strlen(hex) == 2 * CRYPTO_CRAM_MD5_CONTEXT_LEN &&
	       hex_decode(hex, 2 * CRYPTO_CRAM_MD5_CONTEXT_LEN, ctx);
}

void cram_md5_context_format(const uint8_t ctx[CRYPTO_CRAM_MD5_CONTEXT_LEN], char *out)
{
	hex_encode(ctx, CRYPTO_CRAM_MD5_CONTEXT_LEN, out);
}

/* ---- APOP -------------------------------------------------------------- */

bool apop_parse(const uint8_t *msg, size_t len, struct apop_msg *r, const char **error_r)
{
	memset(r, 0, sizeof(*r));
	const uint8_t *nul1 = memchr(msg, '\0', len);
	if (nul1 == NULL) {
		*error_r = "missing NUL after the challenge";
		return false;
	}
	size_t chal_len = (size_t)(nul1 - msg);
	unsigned pid;
	if (!cram_challenge_parse((const char *)msg, chal_len, &pid)) {
		*error_r = "malformed APOP challenge";
		return false;
	}
	const uint8_t *u = nul1 + 1;
	size_t rest = len - chal_len - 1;
	const uint8_t *nul2 = memchr(u, '\0', rest);
	if (nul2 == NULL) {
		*error_r = "missing NUL after the user name";
		return false;
	}
	if (!user_set(u, (size_t)(nul2 - u), r->user, error_r))
		return false;
	rest -= (size_t)(nul2 - u) + 1;
	if (rest != 16) {
		*error_r = "APOP digest is not 16 bytes";
		return false;
	}
	memcpy(r->digest, nul2 + 1, 16);
	r->challenge = (const char *)msg;
	r->chal_len = chal_len;
	return true;
}

bool apop_encode(const char *challenge, const char *user, size_t user_len, const char *hex,
		 size_t hex_len, uint8_t *out, size_t *len_r)
{
	size_t clen = strlen(challenge);
	if (clen >= CRAM_MAX_CHALLENGE || user_len == 0 || user_len > CRAM_MAX_USER ||
	    memchr(user, '\0', user_len) != NULL || hex_len != 32)
		return false;
	size_t o = 0;
	memcpy(out, challenge, clen);
	o += clen;
	out[o++] = '\0';
	memcpy(out + o, user, user_len);
	o += user_len;
	out[o++] = '\0';
	if (!hex_decode(hex, 32, out + o))
		return false;
	*len_r = o + 16;
	return true;
}

bool apop_verify(const struct apop_msg *m, const uint8_t *pw, size_t pw_len)
{
	/* MD5(challenge || password); the two parts never exceed the bounds */
	uint8_t buf[CRAM_MAX_CHALLENGE + 1024];
	if (pw_len > sizeof(buf) - m->chal_len)
		return false;
	memcpy(buf, m->challenge, m->chal_len);
	memcpy(buf + m->chal_len, pw, pw_len);
	uint8_t want[16];
	crypto_hash(CRYPTO_MD5, buf, m->chal_len + pw_len, want);
	explicit_bzero(buf, sizeof(buf));
	return auth_mem_equal(want, 16, m->digest, 16);
}
