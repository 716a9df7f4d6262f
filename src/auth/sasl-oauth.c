#include "auth/sasl-oauth.h"
#include "auth/auth-sasl.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define KVSEP 0x01

static bool fail(const char *why, const char **error_r)
{
	*error_r = why;
	return false;
}

/* RFC 6750's b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=" */
static bool b64token(const uint8_t *s, size_t len)
{
	size_t i = 0;
	while (i < len && ((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
			   (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '.' ||
			   s[i] == '_' || s[i] == '~' || s[i] == '+' || s[i] == '/'))
		i++;
	if (i == 0)
		return false;
	while (i < len && s[i] == '=')
		i++;
	return i == len;
}

/* "Bearer" SP token, the scheme case-insensitive */
static bool bearer(const uint8_t *v, size_t len, struct oauth_msg *r, const char **error_r)
{
	if (len < 7 || strncasecmp((const char *)v, "Bearer ", 7) != 0)
		return fail("auth is not a Bearer token", error_r);
	if (len - 7 > JWT_MAX_TOKEN)
		return fail("token too long", error_r);
	if (!b64token(v + 7, len - 7))
		return fail("malformed bearer token", error_r);
	r->token = (const char *)v + 7;
	r->token_len = len - 7;
	return true;
}

static bool set_user(struct oauth_msg *r, const uint8_t *s, size_t len, const char **error_r)
{
	if (len == 0)
		return fail("empty user name", error_r);
	if (len > OAUTH_MAX_USER)
		return fail("user name too long", error_r);
	if (memchr(s, '\0', len) != NULL || !sasl_name_valid(s, len))
		return fail("user name is not valid UTF-8 text", error_r);
	memcpy(r->user, s, len);
	r->user[len] = '\0';
	return true;
}

/* key=value pairs, each ended by KVSEP, the list by one more KVSEP. Keys
   are ALPHA+; values VCHAR / SP / HTAB / CR / LF (RFC 7628 section 3.1). */
static bool kvpairs(const uint8_t *s, size_t len, struct oauth_msg *r, const char **error_r)
{
	size_t p = 0;
	bool have_auth = false;
	for (;;) {
		if (p >= len)
			return fail("missing final kvsep", error_r);
		if (s[p] == KVSEP) {
			if (p + 1 != len)
				return fail("data after the final kvsep", error_r);
			break;
		}
		size_t k = p;
		while (p < len && ((s[p] >= 'a' && s[p] <= 'z') || (s[p] >= 'A' && s[p] <= 'Z')))
			p++;
		if (p == k || p >= len || s[p] != '=')
			return fail("malformed key=value pair", error_r);
		size_t klen = p - k;
		size_t v = ++p;
		while (p < len && s[p] != KVSEP) {
			uint8_t c = s[p];
			if (!((c >= 0x21 && c <= 0x7e) || c == ' ' || c == '\t' || c == '\r' ||
			      c == '\n'))
				return fail("invalid character in a value", error_r);
			p++;
		}
		if (p >= len)
			return fail("missing kvsep after a value", error_r);
		if (klen == 4 && memcmp(s + k, "auth", 4) == 0) {
			if (have_auth)
				return fail("auth given twice", error_r);
			if (!bearer(s + v, p - v, r, error_r))
				return false;
			have_auth = true;
		}
		p++;
	}
	if (!have_auth)
		return fail("no auth=Bearer token", error_r);
	return true;
}

bool oauthbearer_parse(const uint8_t *msg, size_t len, struct oauth_msg *r, const char **error_r)
{
	memset(r, 0, sizeof(*r));
	if (len > OAUTH_MAX_MSG)
		return fail("message too long", error_r);
	if (len < 2)
		return fail("malformed gs2 header", error_r);
	if (msg[0] == 'p')
		return fail("channel binding is not supported by OAUTHBEARER", error_r);
	if ((msg[0] != 'n' && msg[0] != 'y') || msg[1] != ',')
		return fail("malformed gs2 header", error_r);
	size_t p = 2;
	if (len - p >= 2 && msg[p] == 'a' && msg[p + 1] == '=') {
		p += 2;
		/* saslname: "=2C" is ',', "=3D" is '=' */
		char name[OAUTH_MAX_USER + 1] = "";
		size_t n = 0;
		while (p < len && msg[p] != ',') {
			uint8_t c = msg[p];
			if (c == '=') {
				if (len - p >= 3 && msg[p + 1] == '2' && msg[p + 2] == 'C')
					c = ',';
				else if (len - p >= 3 && msg[p + 1] == '3' && msg[p + 2] == 'D')
					c = '=';
				else
					return fail("malformed '=' escape in the user name", error_r);
				p += 3;
			} else {
				p++;
			}
			if (n == OAUTH_MAX_USER)
				return fail("user name too long", error_r);
			name[n++] = (char)c;
		}
		if (!set_user(r, (const uint8_t *)name, n, error_r))
			return false;
	}
	if (p >= len || msg[p] != ',')
		return fail("malformed gs2 header", error_r);
	p++;
	if (p >= len || msg[p] != KVSEP)
		return fail("missing kvsep after the gs2 header", error_r);
	return kvpairs(msg + p + 1, len - p - 1, r, error_r);
}

bool xoauth2_parse(const uint8_t *msg, size_t len, struct oauth_msg *r, const char **error_r)
{
	memset(r, 0, sizeof(*r));
	if (len > OAUTH_MAX_MSG)
		return fail("message too long", error_r);
	if (len < 5 || memcmp(msg, "user=", 5) != 0)
		return fail("missing user=", error_r);
	const uint8_t *u = msg + 5;
	const uint8_t *sep = memchr(u, KVSEP, len - 5);
	if (sep == NULL)
		return fail("missing kvsep after the user", error_r);
	if (!set_user(r, u, (size_t)(sep - u), error_r))
		return false;
	const uint8_t *a = sep + 1;
	size_t rest = len - (size_t)(a - msg);
	if (rest < 5 || memcmp(a, "auth=", 5) != 0)
		return fail("missing auth=", error_r);
	const uint8_t *end = memchr(a + 5, KVSEP, rest - 5);
	if (end == NULL)
		return fail("missing kvsep after the token", error_r);
	/* the message ends with two kvseps */
	if ((size_t)(end - msg) + 2 != len || end[1] != KVSEP)
		return fail("missing final kvsep", error_r);
	return bearer(a + 5, (size_t)(end - a - 5), r, error_r);
}

size_t oauth_error_json(const char *scope, char *out, size_t outsize)
{
	int n;
	if (scope != NULL && scope[0] != '\0')
		n = snprintf(out, outsize,
			     "{\"status\":\"invalid_token\",\"schemes\":\"bearer\",\"scope\":\"%s\"}",
			     scope);
	else
		n = snprintf(out, outsize, "{\"status\":\"invalid_token\",\"schemes\":\"bearer\"}");
	if (n < 0 || (size_t)n >= outsize) {
		out[0] = '\0';
		return 0;
	}
	return (size_t)n;
}
