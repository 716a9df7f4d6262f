/* libFuzzer target: the SASL PLAIN and LOGIN server steps of ringgate-auth.
 * Input: one mode byte (bit 0: LOGIN instead of PLAIN, bit 1: the first
 * message is an initial response), then client messages, each as a 2-byte
 * big-endian length and its bytes. Credentials that come out must respect
 * the documented bounds: non-empty valid user name without NUL, non-empty
 * password without NUL, lengths within SASL_MAX_*. */
#include "auth/auth-sasl.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_creds(const struct sasl_state *st)
{
	if (st->user_len == 0 || st->user_len > SASL_MAX_USER ||
	    strlen(st->user) != st->user_len ||
	    !sasl_name_valid((const uint8_t *)st->user, st->user_len))
		abort();
	if (st->pass_len == 0 || st->pass_len > SASL_MAX_PASS ||
	    memchr(st->pass, '\0', st->pass_len) != NULL || st->pass[st->pass_len] != '\0')
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	data++;
	size--;

	/* the decoder alone, on the whole rest */
	struct sasl_state st;
	const char *error = NULL;
	sasl_init(&st, SASL_MECH_PLAIN);
	if (sasl_plain_decode(data, size, &st, &error))
		check_creds(&st);
	else if (error == NULL)
		abort();

	/* the exchange */
	sasl_init(&st, (mode & 1) != 0 ? SASL_MECH_LOGIN : SASL_MECH_PLAIN);
	const uint8_t *chal = NULL;
	size_t chal_len = 0;
	enum sasl_step step = SASL_STEP_CHALLENGE;
	bool first = true;
	if ((mode & 2) == 0) {
		step = sasl_begin(&st, false, NULL, 0, &chal, &chal_len, &error);
		first = false;
	}
	size_t pos = 0;
	while (step == SASL_STEP_CHALLENGE && pos + 2 <= size) {
		size_t len = ((size_t)data[pos] << 8) | data[pos + 1];
		pos += 2;
		if (len > size - pos)
			len = size - pos;
		const uint8_t *msg = data + pos;
		pos += len;
		error = NULL;
		if (first) {
			step = sasl_begin(&st, true, msg, len, &chal, &chal_len, &error);
			first = false;
		} else {
			step = sasl_continue(&st, msg, len, &chal, &chal_len, &error);
		}
		if (step == SASL_STEP_FAIL && error == NULL)
			abort();
		if (step == SASL_STEP_CHALLENGE && chal == NULL)
			abort();
	}
	if (step == SASL_STEP_DONE)
		check_creds(&st);
	sasl_clear(&st);
	return 0;
}
