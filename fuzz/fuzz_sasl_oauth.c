/* libFuzzer target: the OAUTHBEARER (RFC 7628) and XOAUTH2 client messages
 * (src/auth/sasl-oauth.c). The whole input goes to both parsers. Checks: a
 * failure says why; a success gives a token inside the message within
 * JWT_MAX_TOKEN, and a user that is empty (OAUTHBEARER without authzid) or
 * valid UTF-8 text within OAUTH_MAX_USER. */
#include "auth/auth-sasl.h"
#include "auth/sasl-oauth.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const struct oauth_msg *r, const uint8_t *data, size_t size, bool need_user)
{
	const char *t = r->token;
	if (r->token_len == 0 || r->token_len > JWT_MAX_TOKEN || t < (const char *)data ||
	    t + r->token_len > (const char *)data + size)
		abort();
	size_t n = strlen(r->user);
	if (n > OAUTH_MAX_USER || (need_user && n == 0) ||
	    (n > 0 && !sasl_name_valid((const uint8_t *)r->user, n)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct oauth_msg r;
	const char *error = NULL;
	if (oauthbearer_parse(data, size, &r, &error))
		check(&r, data, size, false);
	else if (error == NULL)
		abort();
	error = NULL;
	if (xoauth2_parse(data, size, &r, &error))
		check(&r, data, size, true);
	else if (error == NULL)
		abort();
	return 0;
}
