#include "auth/sasl-scram.h"
#include "auth/auth-sasl.h"
#include "auth/auth-scheme.h"

#include "lib/base64.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void scram_init(struct scram_server *st, enum crypto_hash hash, bool plus, bool plus_offered,
		const char *cb_name, const uint8_t *cb_data, size_t cb_len)
{
	explicit_bzero(st, sizeof(*st));
	st->hash = hash;
	st->plus = plus;
	st->plus_offered = plus_offered || plus;
	if (plus && cb_name != NULL && strlen(cb_name) < sizeof(st->cb_name) &&
	    cb_len <= sizeof(st->cb_data)) {
		strcpy(st->cb_name, cb_name);
		memcpy(st->cb_data, cb_data, cb_len);
		st->cb_len = cb_len;
	}
	st->stage = SCRAM_WANT_CLIENT_FIRST;
}

void scram_clear(struct scram_server *st)
{
	explicit_bzero(st, sizeof(*st));
	st->stage = SCRAM_FAILED;
}

static enum scram_result fail(struct scram_server *st, const char *why, const char **error_r)
{
	st->stage = SCRAM_FAILED;
	*error_r = why;
	return SCRAM_FAIL;
}

static bool nonce_char(uint8_t c)
{
	return c >= 0x21 && c <= 0x7e && c != ',';
}

/* saslname up to ',' or the end: "=2C" is ',', "=3D" is '='; any other '='
   is malformed. Returns the input bytes used, 0 on error. */
static size_t saslname_decode(const uint8_t *s, size_t len, char *out, size_t outsize,
			      size_t *out_len_r, const char **error_r)
{
	size_t i = 0, o = 0;
	while (i < len && s[i] != ',') {
		char c = (char)s[i];
		if (c == '=') {
			bool comma = len - i >= 3 && s[i + 1] == '2' && s[i + 2] == 'C';
			bool equals = len - i >= 3 && s[i + 1] == '3' && s[i + 2] == 'D';
			if (!comma && !equals) {
				*error_r = "malformed '=' escape in the user name";
				return 0;
			}
			c = comma ? ',' : '=';
			i += 3;
		} else {
			i++;
		}
		if (c == '\0') {
			*error_r = "NUL in the user name";
			return 0;
		}
		if (o + 1 >= outsize) {
			*error_r = "user name too long";
			return 0;
		}
		out[o++] = c;
	}
	out[o] = '\0';
	*out_len_r = o;
	if (o == 0) {
		*error_r = "empty user name";
		return 0;
	}
	if (!sasl_name_valid((const uint8_t *)out, o)) {
		*error_r = "user name is not valid UTF-8 text";
		return 0;
	}
	return i;
}

/* optional extensions ("," attr "=" value)* up to the end of s */
static bool extensions_valid(const uint8_t *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		if (s[i] != ',' || len - i < 3)
			return false;
		i++;
		uint8_t a = s[i];
		if (!((a >= 'a' && a <= 'z') || (a >= 'A' && a <= 'Z')) || s[i + 1] != '=')
			return false;
		i += 2;
		size_t start = i;
		while (i < len && s[i] != ',') {
			if (s[i] == '\0')
				return false;
			i++;
		}
		if (i == start)
			return false;
	}
	return true;
}

enum scram_result scram_client_first(struct scram_server *st, const uint8_t *msg, size_t len,
				     const char **error_r)
{
	if (st->stage != SCRAM_WANT_CLIENT_FIRST)
		return fail(st, "unexpected client-first message", error_r);
	if (len > SCRAM_MAX_MSG)
		return fail(st, "client-first message too long", error_r);
	if (len == 0)
		return fail(st, "empty client-first message", error_r);

	/* gs2-header: cbind-flag "," [authzid] "," */
	size_t pos = 0;
	char flag = (char)msg[0];
	size_t cb_name_off = 0, cb_name_len = 0;
	if (flag == 'n' || flag == 'y') {
		pos = 1;
	} else if (flag == 'p' && len > 1 && msg[1] == '=') {
		pos = 2;
		cb_name_off = pos;
		while (pos < len && ((msg[pos] >= 'a' && msg[pos] <= 'z') ||
				     (msg[pos] >= 'A' && msg[pos] <= 'Z') ||
				     (msg[pos] >= '0' && msg[pos] <= '9') || msg[pos] == '.' ||
				     msg[pos] == '-'))
			pos++;
		cb_name_len = pos - cb_name_off;
		if (cb_name_len == 0)
			return fail(st, "empty channel-binding name", error_r);
	} else {
		return fail(st, "malformed gs2 channel-binding flag", error_r);
	}
	if (pos >= len || msg[pos] != ',')
		return fail(st, "malformed gs2 header", error_r);
	pos++;
	char authzid[SCRAM_MAX_USER + 1];
	size_t authzid_len = 0;
	bool has_authzid = false;
	if (pos + 1 < len && msg[pos] == 'a' && msg[pos + 1] == '=') {
		size_t used = saslname_decode(msg + pos + 2, len - pos - 2, authzid,
					      sizeof(authzid), &authzid_len, error_r);
		if (used == 0)
			return fail(st, *error_r, error_r);
		pos += 2 + used;
		has_authzid = true;
	}
	if (pos >= len || msg[pos] != ',')
		return fail(st, "malformed gs2 header", error_r);
	pos++;
	st->gs2_len = pos;
	memcpy(st->gs2, msg, pos);

	/* channel binding: what the client asks against what is offered */
	if (st->plus) {
		if (flag != 'p')
			return fail(st, "SCRAM-PLUS without channel binding", error_r);
		if (st->cb_len == 0 || cb_name_len != strlen(st->cb_name) ||
		    memcmp(msg + cb_name_off, st->cb_name, cb_name_len) != 0)
			return fail(st, "unsupported channel-binding type", error_r);
	} else if (flag == 'p') {
		return fail(st, "channel binding requested but not offered by this mechanism",
			    error_r);
	} else if (flag == 'y' && st->plus_offered) {
		return fail(st, "client thinks the server lacks channel binding (downgrade)",
			    error_r);
	}

	/* client-first-message-bare */
	const uint8_t *bare = msg + pos;
	size_t bare_len = len - pos;
	if (bare_len >= 2 && bare[0] == 'm' && bare[1] == '=')
		return fail(st, "unsupported mandatory extension", error_r);
	if (bare_len < 2 || bare[0] != 'n' || bare[1] != '=')
		return fail(st, "missing user name", error_r);
	size_t used = saslname_decode(bare + 2, bare_len - 2, st->user, sizeof(st->user),
				      &st->user_len, error_r);
	if (used == 0)
		return fail(st, *error_r, error_r);
	size_t p = 2 + used;
	if (bare_len - p < 4 || bare[p] != ',' || bare[p + 1] != 'r' || bare[p + 2] != '=')
		return fail(st, "missing nonce", error_r);
	p += 3;
	size_t nstart = p;
	while (p < bare_len && nonce_char(bare[p]))
		p++;
	size_t cnonce_len = p - nstart;
	if (cnonce_len == 0)
		return fail(st, "empty nonce", error_r);
	if (cnonce_len > SCRAM_NONCE_MAX / 2)
		return fail(st, "nonce too long", error_r);
	if (p < bare_len && bare[p] != ',')
		return fail(st, "invalid character in the nonce", error_r);
	if (!extensions_valid(bare + p, bare_len - p))
		return fail(st, "malformed extension", error_r);
	if (has_authzid && (authzid_len != st->user_len ||
			    memcmp(authzid, st->user, authzid_len) != 0))
		return fail(st, "authorization id differs from the authentication id", error_r);

	memcpy(st->nonce, bare + nstart, cnonce_len);
	st->cnonce_len = st->nonce_len = cnonce_len;
	memcpy(st->auth_msg, bare, bare_len);
	st->auth_len = bare_len;
	st->stage = SCRAM_WANT_CREDS;
	return SCRAM_OK;
}

enum scram_result scram_server_first(struct scram_server *st, const struct scram_creds *creds,
				     const char *snonce, const char **out_r, size_t *out_len_r,
				     const char **error_r)
{
	if (st->stage != SCRAM_WANT_CREDS)
		return fail(st, "server-first out of order", error_r);
	size_t slen = strlen(snonce);
	if (slen < 16 || slen > 64 || st->cnonce_len + slen > SCRAM_NONCE_MAX)
		return fail(st, "server nonce of the wrong size", error_r);
	for (size_t i = 0; i < slen; i++) {
		if (!nonce_char((uint8_t)snonce[i]))
			return fail(st, "invalid server nonce", error_r);
	}
	if (creds->salt_len == 0 || creds->salt_len > SCRAM_MAX_SALT || creds->iterations == 0)
		return fail(st, "invalid credentials", error_r);
	memcpy(st->nonce + st->cnonce_len, snonce, slen);
	st->nonce_len = st->cnonce_len + slen;
	st->nonce[st->nonce_len] = '\0';
	st->creds = *creds;

	char salt64[BASE64_ENCODED_LEN(SCRAM_MAX_SALT) + 1];
	base64_encode(creds->salt, creds->salt_len, salt64);
	char *o = st->auth_msg + st->auth_len;
	size_t room = sizeof(st->auth_msg) - st->auth_len;
	int n = snprintf(o, room, ",r=%s,s=%s,i=%u", st->nonce, salt64, creds->iterations);
	if (n < 0 || (size_t)n >= room)
		return fail(st, "server-first message too long", error_r);
	st->server_first_off = st->auth_len + 1;
	st->server_first_len = (size_t)n - 1;
	st->auth_len += (size_t)n;
	st->stage = SCRAM_WANT_CLIENT_FINAL;
	*out_r = st->auth_msg + st->server_first_off;
	*out_len_r = st->server_first_len;
	return SCRAM_OK;
}

enum scram_result scram_client_final(struct scram_server *st, const uint8_t *msg, size_t len,
				     const char **out_r, size_t *out_len_r, const char **error_r)
{
	if (st->stage != SCRAM_WANT_CLIENT_FINAL)
		return fail(st, "unexpected client-final message", error_r);
	if (len > SCRAM_MAX_MSG)
		return fail(st, "client-final message too long", error_r);

	/* the proof is the last attribute */
	size_t pidx = len;
	for (size_t i = len; i >= 3; i--) {
		if (msg[i - 3] == ',' && msg[i - 2] == 'p' && msg[i - 1] == '=') {
			pidx = i - 3;
			break;
		}
	}
	if (pidx == len)
		return fail(st, "missing proof", error_r);
	const char *proof64 = (const char *)msg + pidx + 3;
	size_t proof64_len = len - pidx - 3;
	size_t hlen = crypto_hash_len(st->hash);
	uint8_t proof[CRYPTO_HASH_MAX + 3];
	size_t proof_len;
	if (!base64_decode(proof64, proof64_len, proof, sizeof(proof), &proof_len))
		return fail(st, "malformed base64 in the proof", error_r);
	if (proof_len != hlen)
		return fail(st, "proof of the wrong length", error_r);

	/* "c=" channel binding */
	if (pidx < 2 || msg[0] != 'c' || msg[1] != '=')
		return fail(st, "missing channel binding attribute", error_r);
	size_t p = 2;
	while (p < pidx && msg[p] != ',')
		p++;
	uint8_t cbind[SCRAM_MAX_MSG + SCRAM_MAX_CB];
	size_t cbind_len;
	if (!base64_decode((const char *)msg + 2, p - 2, cbind, sizeof(cbind), &cbind_len))
		return fail(st, "malformed base64 in the channel binding", error_r);
	size_t want_cb = st->plus ? st->cb_len : 0;
	if (cbind_len != st->gs2_len + want_cb || memcmp(cbind, st->gs2, st->gs2_len) != 0)
		return fail(st, "channel binding does not match the gs2 header", error_r);
	if (want_cb != 0 && !auth_mem_equal(cbind + st->gs2_len, want_cb, st->cb_data, want_cb))
		return fail(st, "channel-binding data mismatch", error_r);

	/* "r=" the whole nonce, then optional extensions */
	if (pidx - p < 3 || msg[p] != ',' || msg[p + 1] != 'r' || msg[p + 2] != '=')
		return fail(st, "missing nonce", error_r);
	p += 3;
	size_t nstart = p;
	while (p < pidx && msg[p] != ',')
		p++;
	if (p - nstart != st->nonce_len || memcmp(msg + nstart, st->nonce, st->nonce_len) != 0)
		return fail(st, "wrong nonce", error_r);
	if (!extensions_valid(msg + p, pidx - p))
		return fail(st, "malformed extension", error_r);

	if (st->auth_len + 1 + pidx > sizeof(st->auth_msg))
		return fail(st, "client-final message too long", error_r);
	st->auth_msg[st->auth_len] = ',';
	memcpy(st->auth_msg + st->auth_len + 1, msg, pidx);
	size_t auth_len = st->auth_len + 1 + pidx;

	uint8_t sig[CRYPTO_HASH_MAX], client_key[CRYPTO_HASH_MAX], stored[CRYPTO_HASH_MAX];
	crypto_hmac(st->hash, st->creds.stored_key, hlen, st->auth_msg, auth_len, sig);
	for (size_t i = 0; i < hlen; i++)
		client_key[i] = proof[i] ^ sig[i];
	crypto_hash(st->hash, client_key, hlen, stored);
	bool ok = auth_mem_equal(stored, hlen, st->creds.stored_key, hlen);
	explicit_bzero(client_key, sizeof(client_key));
	if (!ok)
		return fail(st, "wrong proof (password mismatch)", error_r);

	crypto_hmac(st->hash, st->creds.server_key, hlen, st->auth_msg, auth_len, sig);
	memcpy(st->out, "v=", 2);
	size_t n = base64_encode(sig, hlen, st->out + 2);
	st->stage = SCRAM_DONE;
	*out_r = st->out;
	*out_len_r = n + 2;
	return SCRAM_OK;
}

/* ---- stored credentials ------------------------------------------------ */

bool scram_creds_parse(enum crypto_hash hash, const char *s, struct scram_creds *creds_r,
		       const char **error_r)
{
	memset(creds_r, 0, sizeof(*creds_r));
	const char *f[4];
	size_t flen[4];
	const char *p = s;
	for (unsigned i = 0; i < 4; i++) {
		f[i] = p;
		const char *c = strchr(p, ',');
		if ((c == NULL) != (i == 3)) {
			*error_r = "SCRAM credentials need four comma-separated fields";
			return false;
		}
		flen[i] = c != NULL ? (size_t)(c - p) : strlen(p);
		p = c != NULL ? c + 1 : p;
	}
	if (flen[0] == 0 || flen[0] > 9 || strspn(f[0], "0123456789") != flen[0]) {
		*error_r = "SCRAM iteration count is not a number";
		return false;
	}
	unsigned long it = strtoul(f[0], NULL, 10);
	if (it == 0 || it > SCRAM_MAX_ITERATIONS) {
		*error_r = "SCRAM iteration count out of range";
		return false;
	}
	creds_r->iterations = (unsigned)it;
	size_t hlen = crypto_hash_len(hash), n;
	uint8_t key[CRYPTO_HASH_MAX + 3];
	if (!base64_decode(f[1], flen[1], creds_r->salt, sizeof(creds_r->salt), &n) || n == 0) {
		*error_r = "SCRAM salt is not base64 (or empty, or too long)";
		return false;
	}
	creds_r->salt_len = n;
	if (!base64_decode(f[2], flen[2], key, sizeof(key), &n) || n != hlen) {
		*error_r = "SCRAM StoredKey is not base64 of the hash's size";
		return false;
	}
	memcpy(creds_r->stored_key, key, hlen);
	if (!base64_decode(f[3], flen[3], key, sizeof(key), &n) || n != hlen) {
		*error_r = "SCRAM ServerKey is not base64 of the hash's size";
		return false;
	}
	memcpy(creds_r->server_key, key, hlen);
	return true;
}

int scram_creds_from_password(enum crypto_hash hash, const uint8_t *pw, size_t pw_len,
			      const uint8_t *salt, size_t salt_len, unsigned iterations,
			      struct scram_creds *creds_r)
{
	memset(creds_r, 0, sizeof(*creds_r));
	if (salt_len == 0 || salt_len > SCRAM_MAX_SALT || iterations == 0 ||
	    iterations > SCRAM_MAX_ITERATIONS)
		return -1;
	size_t hlen = crypto_hash_len(hash);
	uint8_t salted[CRYPTO_HASH_MAX], client_key[CRYPTO_HASH_MAX];
	if (crypto_pbkdf2(hash, pw, pw_len, salt, salt_len, iterations, salted, hlen) < 0)
		return -1;
	crypto_hmac(hash, salted, hlen, "Client Key", 10, client_key);
	crypto_hash(hash, client_key, hlen, creds_r->stored_key);
	crypto_hmac(hash, salted, hlen, "Server Key", 10, creds_r->server_key);
	explicit_bzero(salted, sizeof(salted));
	explicit_bzero(client_key, sizeof(client_key));
	memcpy(creds_r->salt, salt, salt_len);
	creds_r->salt_len = salt_len;
	creds_r->iterations = iterations;
	return 0;
}

void scram_creds_format(enum crypto_hash hash, const struct scram_creds *creds, char *out)
{
	size_t hlen = crypto_hash_len(hash);
	int n = sprintf(out, "%u,", creds->iterations);
	size_t o = (size_t)n;
	o += base64_encode(creds->salt, creds->salt_len, out + o);
	out[o++] = ',';
	o += base64_encode(creds->stored_key, hlen, out + o);
	out[o++] = ',';
	base64_encode(creds->server_key, hlen, out + o);
}
