#include "auth/auth-sasl.h"

#include <string.h>
#include <strings.h>

static const char *const mech_names[] = {
	[SASL_MECH_PLAIN] = "PLAIN",
	[SASL_MECH_LOGIN] = "LOGIN",
	[SASL_MECH_SCRAM_SHA1] = "SCRAM-SHA-1",
	[SASL_MECH_SCRAM_SHA256] = "SCRAM-SHA-256",
	[SASL_MECH_CRAM_MD5] = "CRAM-MD5",
	[SASL_MECH_APOP] = "APOP",
	[SASL_MECH_OAUTHBEARER] = "OAUTHBEARER",
	[SASL_MECH_XOAUTH2] = "XOAUTH2",
	[SASL_MECH_SCRAM_SHA1_PLUS] = "SCRAM-SHA-1-PLUS",
	[SASL_MECH_SCRAM_SHA256_PLUS] = "SCRAM-SHA-256-PLUS",
	[SASL_MECH_EXTERNAL] = "EXTERNAL",
};

bool sasl_mech_parse(const char *name, enum sasl_mech *mech_r)
{
	for (unsigned i = 0; i < sizeof(mech_names) / sizeof(mech_names[0]); i++) {
		if (strcasecmp(name, mech_names[i]) == 0) {
			*mech_r = (enum sasl_mech)i;
			return true;
		}
	}
	return false;
}

const char *sasl_mech_name(enum sasl_mech mech)
{
	return mech_names[mech];
}

bool sasl_mech_allowed(const char *list, enum sasl_mech mech)
{
	const char *name = mech_names[mech];
	size_t nlen = strlen(name);
	const char *p = list;
	while (*p != '\0') {
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		const char *start = p;
		while (*p != '\0' && *p != ' ' && *p != ',' && *p != '\t')
			p++;
		if ((size_t)(p - start) == nlen && strncasecmp(start, name, nlen) == 0)
			return true;
	}
	return false;
}

bool sasl_name_valid(const uint8_t *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		uint8_t c = s[i];
		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f)
				return false;
			i++;
			continue;
		}
		unsigned n;
		uint32_t cp, min;
		if ((c & 0xe0) == 0xc0) {
			n = 1; cp = c & 0x1f; min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2; cp = c & 0x0f; min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3; cp = c & 0x07; min = 0x10000;
		} else {
			return false;
		}
		if (len - i <= n)
			return false;
		for (unsigned k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		/* C1 controls */
		if (cp >= 0x80 && cp < 0xa0)
			return false;
		i += n + 1;
	}
	return true;
}

static bool set_user(struct sasl_state *st, const uint8_t *s, size_t len, const char **error_r)
{
	if (len == 0) {
		*error_r = "empty user name";
		return false;
	}
	if (len > SASL_MAX_USER) {
		*error_r = "user name too long";
		return false;
	}
	if (memchr(s, '\0', len) != NULL) {
		*error_r = "NUL in the user name";
		return false;
	}
	if (!sasl_name_valid(s, len)) {
		*error_r = "user name is not valid UTF-8 text";
		return false;
	}
	memcpy(st->user, s, len);
	st->user[len] = '\0';
	st->user_len = len;
	return true;
}

static bool set_pass(struct sasl_state *st, const uint8_t *s, size_t len, const char **error_r)
{
	if (len == 0) {
		*error_r = "empty password";
		return false;
	}
	if (len > SASL_MAX_PASS) {
		*error_r = "password too long";
		return false;
	}
	if (memchr(s, '\0', len) != NULL) {
		*error_r = "NUL in the password";
		return false;
	}
	memcpy(st->pass, s, len);
	st->pass[len] = '\0';
	st->pass_len = len;
	return true;
}

bool sasl_plain_decode(const uint8_t *data, size_t len, struct sasl_state *st,
		       const char **error_r)
{
	if (len > SASL_MAX_RESP) {
		*error_r = "response too long";
		return false;
	}
	const uint8_t *nul1 = memchr(data, '\0', len);
	if (nul1 == NULL) {
		*error_r = "missing NUL after authzid";
		return false;
	}
	const uint8_t *authcid = nul1 + 1;
	size_t rest = len - (size_t)(authcid - data);
	const uint8_t *nul2 = memchr(authcid, '\0', rest);
	if (nul2 == NULL) {
		*error_r = "missing NUL after authcid";
		return false;
	}
	size_t authzid_len = (size_t)(nul1 - data);
	size_t authcid_len = (size_t)(nul2 - authcid);
	const uint8_t *pass = nul2 + 1;
	size_t pass_len = len - (size_t)(pass - data);

	if (!set_user(st, authcid, authcid_len, error_r))
		return false;
	if (authzid_len != 0 &&
	    (authzid_len != authcid_len || memcmp(data, authcid, authcid_len) != 0)) {
		*error_r = "authorization id differs from the authentication id";
		sasl_clear(st);
		return false;
	}
	if (!set_pass(st, pass, pass_len, error_r)) {
		sasl_clear(st);
		return false;
	}
	return true;
}

void sasl_init(struct sasl_state *st, enum sasl_mech mech)
{
	sasl_clear(st);
	st->mech = mech;
}

void sasl_clear(struct sasl_state *st)
{
	enum sasl_mech mech = st->mech;
	explicit_bzero(st, sizeof(*st));
	st->mech = mech;
}

static enum sasl_step login_step(struct sasl_state *st, const uint8_t *resp, size_t len,
				 const uint8_t **chal_r, size_t *chal_len_r, const char **error_r)
{
	if (len > SASL_MAX_RESP) {
		*error_r = "response too long";
		return SASL_STEP_FAIL;
	}
	if (st->stage == 0) {
		if (!set_user(st, resp, len, error_r))
			return SASL_STEP_FAIL;
		st->stage = 1;
		*chal_r = (const uint8_t *)"Password:";
		*chal_len_r = 9;
		return SASL_STEP_CHALLENGE;
	}
	if (st->stage != 1) {
		*error_r = "unexpected response";
		return SASL_STEP_FAIL;
	}
	if (!set_pass(st, resp, len, error_r))
		return SASL_STEP_FAIL;
	st->stage = 2;
	return SASL_STEP_DONE;
}

enum sasl_step sasl_begin(struct sasl_state *st, bool has_resp, const uint8_t *resp,
			  size_t len, const uint8_t **chal_r, size_t *chal_len_r,
			  const char **error_r)
{
	switch (st->mech) {
	case SASL_MECH_PLAIN:
		if (!has_resp) {
			*chal_r = (const uint8_t *)"";
			*chal_len_r = 0;
			return SASL_STEP_CHALLENGE;
		}
		return sasl_plain_decode(resp, len, st, error_r) ? SASL_STEP_DONE : SASL_STEP_FAIL;
	case SASL_MECH_LOGIN:
		/* an initial response is the user name; an empty one is none
		   (as Dovecot) */
		if (!has_resp || len == 0) {
			*chal_r = (const uint8_t *)"Username:";
			*chal_len_r = 9;
			return SASL_STEP_CHALLENGE;
		}
		return login_step(st, resp, len, chal_r, chal_len_r, error_r);
	default:
		break;
	}
	*error_r = "unknown mechanism";
	return SASL_STEP_FAIL;
}

enum sasl_step sasl_continue(struct sasl_state *st, const uint8_t *resp, size_t len,
			     const uint8_t **chal_r, size_t *chal_len_r, const char **error_r)
{
	switch (st->mech) {
	case SASL_MECH_PLAIN:
		if (st->stage != 0) {
			*error_r = "unexpected response";
			return SASL_STEP_FAIL;
		}
		st->stage = 1;
		return sasl_plain_decode(resp, len, st, error_r) ? SASL_STEP_DONE : SASL_STEP_FAIL;
	case SASL_MECH_LOGIN:
		return login_step(st, resp, len, chal_r, chal_len_r, error_r);
	default:
		break;
	}
	*error_r = "unknown mechanism";
	return SASL_STEP_FAIL;
}
