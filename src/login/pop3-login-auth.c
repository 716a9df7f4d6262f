/* pop3-login-auth.c — the POP3 login core's authentication: the configured
 * SASL mechanisms (what is offered where, CAPA and AUTH's list), USER/PASS
 * as SASL PLAIN, AUTH with or without an initial response and its
 * continuation lines, APOP (RFC 1939) and its greeting timestamp. Replies
 * follow Dovecot's pop3-login word for word. */
#include "login/pop3-login-private.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "lib/alloc.h"
#include "lib/base64.h"

/* ---- mechanisms ---- */

/* Mechanisms that send the password in the clear (Dovecot's
 * MECH_SEC_PLAINTEXT): refused where plaintext auth is not allowed. */
static bool pop3_mech_is_plaintext(const char *mech, size_t len)
{
	/* OAuth2 bearer tokens are as replayable as passwords (Dovecot
	   flags OAUTHBEARER and XOAUTH2 MECH_SEC_PLAINTEXT too) */
	return (len == 5 && strncasecmp(mech, "PLAIN", 5) == 0) ||
	       (len == 5 && strncasecmp(mech, "LOGIN", 5) == 0) ||
	       (len == 11 && strncasecmp(mech, "OAUTHBEARER", 11) == 0) ||
	       (len == 7 && strncasecmp(mech, "XOAUTH2", 7) == 0);
}

/* APOP is its own command, not a SASL mechanism */
static bool pop3_mech_is_apop(const char *mech, size_t len)
{
	return len == 4 && strncasecmp(mech, "APOP", 4) == 0;
}

/* SCRAM-*-PLUS binds to the TLS channel: offered on TLS connections only */
static bool pop3_mech_needs_tls(const char *mech, size_t len)
{
	return len > 5 && strncasecmp(mech + len - 5, "-PLUS", 5) == 0;
}

static bool pop3_mech_advertised(const struct login_session *s, const char *mech, size_t len)
{
	return !pop3_mech_is_apop(mech, len) &&
	       (s->plaintext_auth_allowed || !pop3_mech_is_plaintext(mech, len)) &&
	       (s->tls || !pop3_mech_needs_tls(mech, len));
}

/* Walks the configured mechanisms: returns the next word at *pos, its length
 * in *len_r, or NULL at the end. */
static const char *pop3_mech_next(const struct login_session *s, size_t *pos, size_t *len_r)
{
	const char *m = s->mechanisms;
	while (m[*pos] == ' ')
		(*pos)++;
	if (m[*pos] == '\0')
		return NULL;
	const char *word = m + *pos;
	size_t len = strcspn(word, " ");
	*pos += len;
	*len_r = len;
	return word;
}

/* the configured spelling of mech (upper case), or NULL */
static const char *pop3_mech_find(const struct login_session *s, const char *mech,
				  size_t mech_len, size_t *len_r)
{
	size_t pos = 0, len;
	const char *word;
	while ((word = pop3_mech_next(s, &pos, &len)) != NULL) {
		if (len == mech_len && strncasecmp(word, mech, len) == 0) {
			*len_r = len;
			return word;
		}
	}
	return NULL;
}

/* ---- commands ---- */

bool pop3_cmd_capa(struct login_session *s)
{
	size_t cap = 256 + strlen(s->mechanisms);
	char *buf = rg_malloc(cap);
	size_t n = 0;
#define APPEND(str_, len_) do { memcpy(buf + n, (str_), (len_)); n += (len_); } while (0)
#define APPEND_LIT(lit_) APPEND(lit_, sizeof(lit_) - 1)
	APPEND_LIT("+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\n");
	if (s->starttls_available)
		APPEND_LIT("STLS\r\n");
	if (s->plaintext_auth_allowed)
		APPEND_LIT("USER\r\n");
	size_t pos = 0, len;
	const char *word;
	bool any = false;
	while ((word = pop3_mech_next(s, &pos, &len)) != NULL) {
		if (!pop3_mech_advertised(s, word, len))
			continue;
		if (!any)
			APPEND_LIT("SASL");
		any = true;
		APPEND_LIT(" ");
		APPEND(word, len);
	}
	if (any)
		APPEND_LIT("\r\n");
	APPEND_LIT(".\r\n");
	s->cb->send(s->ctx, buf, n);
	rg_free(buf);
	return true;
}

static void pop3_send_mech_list(struct login_session *s)
{
	size_t cap = 16 + 2 * strlen(s->mechanisms);
	char *buf = rg_malloc(cap);
	size_t n = 0;
	APPEND_LIT("+OK\r\n");
	size_t pos = 0, len;
	const char *word;
	while ((word = pop3_mech_next(s, &pos, &len)) != NULL) {
		if (!pop3_mech_advertised(s, word, len))
			continue;
		APPEND(word, len);
		APPEND_LIT("\r\n");
	}
	APPEND_LIT(".\r\n");
#undef APPEND_LIT
#undef APPEND
	s->cb->send(s->ctx, buf, n);
	rg_free(buf);
}

bool pop3_cmd_user(struct login_session *s, const char *args)
{
	if (!s->plaintext_auth_allowed) {
		pop3_send(s, MSG_PLAINTEXT_DISALLOWED "\r\n");
		return false;
	}
	pop3_clear_user(s);
	/* as Dovecot: the rest of the line, spaces and all, even empty */
	s->user = rg_strdup(args == NULL ? "" : args);
	pop3_send(s, "+OK\r\n");
	return true;
}

static void pop3_auth_start(struct login_session *s, const char *mech,
			    const uint8_t *resp, size_t resp_len, bool has_resp)
{
	s->state = POP3_STATE_AUTH_WAIT;
	s->cb->auth_begin(s->ctx, mech, resp, resp_len, has_resp);
}

bool pop3_cmd_pass(struct login_session *s, const char *args)
{
	if (!s->plaintext_auth_allowed) {
		pop3_send(s, MSG_PLAINTEXT_DISALLOWED "\r\n");
		return false;
	}
	if (s->user == NULL) {
		/* Dovecot does not count this one as a bad command */
		pop3_send(s, "-ERR No username given.\r\n");
		return true;
	}
	const char *pass = args == NULL ? "" : args;
	size_t ulen = strlen(s->user), plen = strlen(pass);
	/* SASL PLAIN: authzid NUL authcid NUL passwd, authzid empty */
	size_t resp_len = ulen + plen + 2;
	uint8_t *resp = rg_malloc(resp_len);
	resp[0] = '\0';
	memcpy(resp + 1, s->user, ulen);
	resp[1 + ulen] = '\0';
	memcpy(resp + 2 + ulen, pass, plen);
	/* one PASS per USER, as Dovecot */
	pop3_clear_user(s);
	pop3_auth_start(s, "PLAIN", resp, resp_len, true);
	explicit_bzero(resp, resp_len);
	rg_free(resp);
	return true;
}

bool pop3_cmd_auth(struct login_session *s, const char *args)
{
	const char *p = args == NULL ? "" : args;
	while (*p == ' ')
		p++;
	if (*p == '\0') {
		pop3_send_mech_list(s);
		return true;
	}
	size_t mech_len = strcspn(p, " ");
	const char *ir = p + mech_len;
	while (*ir == ' ')
		ir++;
	size_t ir_len = strlen(ir);
	while (ir_len > 0 && ir[ir_len - 1] == ' ')
		ir_len--;

	size_t conf_len;
	const char *mech = pop3_mech_find(s, p, mech_len, &conf_len);
	if (mech == NULL || pop3_mech_is_apop(mech, conf_len) ||
	    (!s->tls && pop3_mech_needs_tls(mech, conf_len))) {
		pop3_send(s, "-ERR [AUTH] Unsupported authentication mechanism.\r\n");
		return true;
	}
	if (!s->plaintext_auth_allowed && pop3_mech_is_plaintext(mech, conf_len)) {
		pop3_send(s, "-ERR [AUTH] Plaintext authentication disabled.\r\n");
		return true;
	}
	char mech_name[64];
	if (conf_len >= sizeof(mech_name)) {
		pop3_send(s, "-ERR [AUTH] Unsupported authentication mechanism.\r\n");
		return true;
	}
	memcpy(mech_name, mech, conf_len);
	mech_name[conf_len] = '\0';

	if (ir_len == 0) {
		pop3_auth_start(s, mech_name, NULL, 0, false);
		return true;
	}
	if (ir_len == 1 && ir[0] == '=') {
		pop3_auth_start(s, mech_name, (const uint8_t *)"", 0, true);
		return true;
	}
	size_t cap = BASE64_DECODED_MAX(ir_len);
	uint8_t *resp = rg_malloc(cap);
	size_t resp_len;
	if (!base64_decode(ir, ir_len, resp, cap, &resp_len)) {
		rg_free(resp);
		pop3_send(s, "-ERR [AUTH] Invalid base64 data in initial response\r\n");
		return true;
	}
	pop3_auth_start(s, mech_name, resp, resp_len, true);
	explicit_bzero(resp, cap);
	rg_free(resp);
	return true;
}

/* APOP name digest (RFC 1939): to auth as Dovecot's APOP mechanism, whose
 * message is the greeting's challenge NUL name NUL the 16-byte digest */
bool pop3_cmd_apop(struct login_session *s, const char *args)
{
	if (s->apop_challenge == NULL) {
		pop3_send(s, "-ERR Unknown command.\r\n");
		return false;
	}
	const char *a = args == NULL ? "" : args;
	const char *sp = strrchr(a, ' ');
	size_t ulen = sp != NULL ? (size_t)(sp - a) : 0;
	const char *hex = sp != NULL ? sp + 1 : "";
	uint8_t digest[16];
	bool ok = ulen > 0 && ulen <= 255 && strlen(hex) == 32;
	for (size_t i = 0; ok && i < 16; i++) {
		int v = 0;
		for (int k = 0; k < 2 && ok; k++) {
			char c = hex[2 * i + (size_t)k];
			int d = c >= '0' && c <= '9' ? c - '0'
				: c >= 'a' && c <= 'f' ? c - 'a' + 10
				: c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
			ok = d >= 0;
			v = v << 4 | d;
		}
		digest[i] = (uint8_t)v;
	}
	if (!ok) {
		pop3_send(s, "-ERR APOP needs a name and a 32-digit hex digest.\r\n");
		return false;
	}
	size_t clen = strlen(s->apop_challenge);
	size_t len = clen + 1 + ulen + 1 + 16;
	uint8_t *msg = rg_malloc(len);
	memcpy(msg, s->apop_challenge, clen);
	msg[clen] = '\0';
	memcpy(msg + clen + 1, a, ulen);
	msg[clen + 1 + ulen] = '\0';
	memcpy(msg + clen + 2 + ulen, digest, 16);
	pop3_clear_user(s);
	pop3_auth_start(s, "APOP", msg, len, true);
	rg_free(msg);
	return true;
}

/* RFC 1939's timestamp, in the form auth checks: this login process's pid
 * (so no other process's challenge is taken), the time and 128 random bits;
 * the host name as Dovecot's <pid.connect-id.time.random@my_hostname> (read
 * at start-up, before the chroot) */
void pop3_apop_challenge_init(struct login_session *s, const struct login_proto_config *config)
{
	size_t apop_len;
	if (pop3_mech_find(s, "APOP", 4, &apop_len) == NULL)
		return;
	uint8_t rnd[16];
	char hex[33];
	if (getrandom(rnd, sizeof(rnd), 0) == (ssize_t)sizeof(rnd)) {
		for (int i = 0; i < 16; i++)
			snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
		s->apop_challenge = rg_strdup_printf(
			"<%u.%ld.%s@%s>", (unsigned)getpid(), (long)time(NULL), hex,
			config->hostname != NULL ? config->hostname : "localhost");
	}
}

/* the client's answer to a challenge, state AUTH_CONT */
void pop3_auth_response(struct login_session *s, const struct pop3_line *line)
{
	if (line->len == 1 && line->line[0] == '*') {
		s->state = POP3_STATE_CMD;
		s->cb->auth_abort(s->ctx);
		if (!pop3_gone(s))
			pop3_send(s, "-ERR Authentication aborted by client.\r\n");
		return;
	}
	size_t cap = BASE64_DECODED_MAX(line->len);
	uint8_t *resp = rg_malloc(cap);
	size_t resp_len;
	if (!base64_decode(line->line, line->len, resp, cap, &resp_len)) {
		rg_free(resp);
		s->state = POP3_STATE_CMD;
		s->cb->auth_abort(s->ctx);
		if (!pop3_gone(s))
			pop3_send(s, "-ERR [AUTH] Invalid base64 in response\r\n");
		return;
	}
	s->state = POP3_STATE_AUTH_WAIT;
	s->cb->auth_continue(s->ctx, resp, resp_len);
	explicit_bzero(resp, cap);
	rg_free(resp);
}

