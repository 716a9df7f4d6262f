/* libFuzzer target: the SCRAM-SHA-1/-256 (+PLUS) server of ringgate-auth.
 * Input: one mode byte (bit 0: SHA-256 instead of SHA-1, bit 1: the -PLUS
 * mechanism with tls-unique data "0123456789ab", bit 2: the server also
 * offers -PLUS, bit 3: the harness appends the right proof to the client's
 * final message, so the success path is reached), then the client-first and
 * the client-final message, each as a 2-byte big-endian length and its
 * bytes. Checks: a failure always says why; a user name that comes out is
 * non-empty valid UTF-8 within SCRAM_MAX_USER; the server-first message
 * carries the client's nonce; a success answers "v=". */
#include "auth/auth-sasl.h"
#include "auth/sasl-scram.h"
#include "lib/base64.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool take(const uint8_t **data, size_t *size, const uint8_t **msg, size_t *len)
{
	if (*size < 2)
		return false;
	size_t n = (size_t)(*data)[0] << 8 | (*data)[1];
	*data += 2;
	*size -= 2;
	if (n > *size)
		n = *size;
	*msg = *data;
	*len = n;
	*data += n;
	*size -= n;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct scram_creds creds[2];
	static bool init;
	static const uint8_t salt[] = "fuzzsaltfuzzsalt";
	if (!init) {
		if (scram_creds_from_password(CRYPTO_SHA1, (const uint8_t *)"pencil", 6, salt, 16, 2,
					      &creds[0]) < 0 ||
		    scram_creds_from_password(CRYPTO_SHA256, (const uint8_t *)"pencil", 6, salt, 16,
					      2, &creds[1]) < 0)
			abort();
		init = true;
	}
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	data++;
	size--;
	enum crypto_hash h = (mode & 1) != 0 ? CRYPTO_SHA256 : CRYPTO_SHA1;
	bool plus = (mode & 2) != 0;
	static const uint8_t cb[] = "0123456789ab";
	struct scram_server st;
	scram_init(&st, h, plus, (mode & 4) != 0, "tls-unique", cb, 12);

	const uint8_t *msg;
	size_t len;
	const char *error = NULL, *out = NULL;
	size_t out_len = 0;
	if (!take(&data, &size, &msg, &len))
		return 0;
	if (scram_client_first(&st, msg, len, &error) != SCRAM_OK) {
		if (error == NULL || st.stage != SCRAM_FAILED)
			abort();
		return 0;
	}
	if (st.user_len == 0 || st.user_len > SCRAM_MAX_USER || strlen(st.user) != st.user_len ||
	    !sasl_name_valid((const uint8_t *)st.user, st.user_len))
		abort();
	if (scram_server_first(&st, &creds[h == CRYPTO_SHA256], "SERVERNONCE-fuzz-0123", &out,
			       &out_len, &error) != SCRAM_OK)
		abort();
	if (out_len < 2 + st.cnonce_len || memcmp(out, "r=", 2) != 0 ||
	    memcmp(out + 2, st.nonce, st.cnonce_len) != 0)
		abort();
	if (!take(&data, &size, &msg, &len))
		return 0;

	uint8_t final[SCRAM_MAX_MSG + 128];
	if ((mode & 8) != 0 && len + 4 + 88 <= sizeof(final)) {
		/* the proof the client would compute for this message */
		char auth[sizeof(st.auth_msg) + 8];
		if (st.auth_len + 1 + len > sizeof(st.auth_msg))
			return 0;
		memcpy(auth, st.auth_msg, st.auth_len);
		auth[st.auth_len] = ',';
		memcpy(auth + st.auth_len + 1, msg, len);
		size_t hl = crypto_hash_len(h);
		uint8_t salted[CRYPTO_HASH_MAX], ck[CRYPTO_HASH_MAX], sk[CRYPTO_HASH_MAX],
			sig[CRYPTO_HASH_MAX];
		crypto_pbkdf2(h, "pencil", 6, salt, 16, 2, salted, hl);
		crypto_hmac(h, salted, hl, "Client Key", 10, ck);
		crypto_hash(h, ck, hl, sk);
		crypto_hmac(h, sk, hl, auth, st.auth_len + 1 + len, sig);
		for (size_t i = 0; i < hl; i++)
			ck[i] ^= sig[i];
		memcpy(final, msg, len);
		memcpy(final + len, ",p=", 3);
		size_t n = base64_encode(ck, hl, (char *)final + len + 3);
		msg = final;
		len += 3 + n;
	}
	error = NULL;
	if (scram_client_final(&st, msg, len, &out, &out_len, &error) == SCRAM_OK) {
		if (out_len < 3 || memcmp(out, "v=", 2) != 0 || st.stage != SCRAM_DONE)
			abort();
	} else if (error == NULL) {
		abort();
	}
	scram_clear(&st);
	return 0;
}
