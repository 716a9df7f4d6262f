/* libFuzzer target: src/auth/oauth2-introspect.c, the judgement of an
 * IdP's introspection answer (network input from outside the machine).
 * The first byte picks the HTTP status class and which of Dovecot's checks
 * are on (active_attribute/active_value, scope); the rest is the body.
 * Checks: the verdict is one of the documented results, OK names a
 * non-empty user that the verdict then accepts for itself (any case) and
 * for "", and every refusal carries a reason; the cache takes and gives
 * back the verdict unchanged. */
#include "auth/oauth2-introspect.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > OAUTH2_BODY_MAX + 1)
		return 0;
	static const long statuses[] = { 200, 204, 401, 403, 500, 302, 100, 299 };
	uint8_t sel = data[0];
	struct oauth2_remote r = {
		.mode = OAUTH2_MODE_AUTH,
		.url = "https://idp.example/",
		.username_attribute = (sel & 0x08) ? "sub" : "email",
		.active_attribute = (sel & 0x10) ? "account" : NULL,
		.active_value = (sel & 0x20) ? "enabled" : NULL,
		.scope = (sel & 0x40) ? "mail" : NULL,
		.format_lower = true, /* Dovecot's default username_format %Lu */
	};
	/* the body as auth sees it: NUL-terminated */
	char *body = malloc(size);
	memcpy(body, data + 1, size - 1);
	body[size - 1] = '\0';
	struct oauth2_verdict v;
	oauth2_reply_judge(&r, statuses[sel & 7], body, size - 1, 1700000000, &v);
	switch (v.result) {
	case PASSDB_RESULT_OK:
		if (v.user[0] == '\0' || strlen(v.user) > OAUTH2_USER_MAX || v.error != NULL)
			abort();
		break;
	case PASSDB_RESULT_PASSWORD_MISMATCH:
	case PASSDB_RESULT_USER_DISABLED:
	case PASSDB_RESULT_INTERNAL_FAILURE:
		if (v.error == NULL || v.user[0] != '\0')
			abort();
		break;
	default:
		abort();
	}
	const char *err;
	enum passdb_result pr = oauth2_verdict_for_user(&r, &v, "", &err);
	if (pr != v.result)
		abort();
	if (v.result == PASSDB_RESULT_OK) {
		char upper[OAUTH2_USER_MAX + 1];
		size_t n = strlen(v.user);
		for (size_t i = 0; i <= n; i++)
			upper[i] = (v.user[i] >= 'a' && v.user[i] <= 'z') ? (char)(v.user[i] - 32)
									 : v.user[i];
		if (oauth2_verdict_for_user(&r, &v, upper, &err) != PASSDB_RESULT_OK)
			abort();
	}
	struct oauth2_cache *c = oauth2_cache_new(4, 1000);
	oauth2_cache_put(c, body, size - 1, 0, 1700000000, &v);
	struct oauth2_verdict got;
	bool hit = oauth2_cache_get(c, body, size - 1, 1, 1700000000, &got);
	if (hit != (v.result != PASSDB_RESULT_INTERNAL_FAILURE))
		abort();
	if (hit && (got.result != v.result || strcmp(got.user, v.user) != 0))
		abort();
	oauth2_cache_free(&c);
	free(body);
	return 0;
}
