/* libFuzzer target: CRAM-MD5 responses, APOP messages and their challenges
 * (ringgate-auth's sasl-cram.c). The whole input goes to each parser; what
 * parses is checked against the documented bounds and then verified against
 * a fixed password and its {CRAM-MD5} context, which must agree. */
#include "auth/auth-sasl.h"
#include "auth/sasl-cram.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_user(const char *user)
{
	size_t n = strlen(user);
	if (n == 0 || n > CRAM_MAX_USER || !sasl_name_valid((const uint8_t *)user, n))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char chal[] = "<1.2.00112233445566778899aabbccddeeff@fuzz>";
	uint8_t ctx[CRYPTO_CRAM_MD5_CONTEXT_LEN];
	crypto_cram_md5_context("pencil", 6, ctx);

	char user[CRAM_MAX_USER + 1];
	uint8_t digest[16];
	const char *error = NULL;
	if (cram_md5_parse(data, size, user, digest, &error)) {
		check_user(user);
		bool a = cram_md5_verify_plain((const uint8_t *)"pencil", 6, chal, sizeof(chal) - 1,
					       digest);
		bool b = cram_md5_verify_context(ctx, chal, sizeof(chal) - 1, digest);
		if (a != b)
			abort();
	} else if (error == NULL) {
		abort();
	}

	struct apop_msg m;
	error = NULL;
	if (apop_parse(data, size, &m, &error)) {
		check_user(m.user);
		unsigned pid;
		if (m.chal_len == 0 || m.chal_len >= CRAM_MAX_CHALLENGE ||
		    !cram_challenge_parse(m.challenge, m.chal_len, &pid))
			abort();
		(void)apop_verify(&m, (const uint8_t *)"pencil", 6);
	} else if (error == NULL) {
		abort();
	}

	unsigned pid;
	(void)cram_challenge_parse((const char *)data, size, &pid);
	return 0;
}
