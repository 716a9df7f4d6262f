/* pop3-login.c — the POP3 AUTHORIZATION state (RFC 1939, 2449, 2595, 5034)
 * as a login_proto core: no sockets, everything through callbacks. Replies
 * follow Dovecot's pop3-login word for word where one exists, so clients and
 * scripts tuned against Dovecot see the same server.
 *
 * Invariants: at most one command is being handled; while auth (or master) is
 * working on a login the bytes that follow are kept in pending (at most
 * LOGIN_MAX_PENDING) and parsed, or handed off, only when the answer comes.
 * A callback may re-enter the core, even destroy it: every entry point holds a
 * reference (depth) and the session is freed when the outermost one returns. */
#include "login/login-proto.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "lib/alloc.h"
#include "lib/base64.h"
#include "lib/log.h"
#include "login/pop3-parser.h"

#define POP3_DEFAULT_GREETING "ringgate ready."
#define POP3_MAX_REASON 200 /* bytes of an auth/master reason shown to the client */

#define MSG_PLAINTEXT_DISALLOWED \
	"-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections."

enum pop3_state {
	POP3_STATE_CMD,       /* reading commands */
	POP3_STATE_AUTH_WAIT, /* auth_begin/continue sent, waiting for auth_reply */
	POP3_STATE_AUTH_CONT, /* challenge sent, reading the client's response line */
	POP3_STATE_HANDOFF,   /* handoff called, waiting for master (or the end) */
	POP3_STATE_DONE,      /* disconnect requested: input is dropped */
};

struct login_session {
	const struct login_callbacks *cb;
	void *ctx;
	char *mechanisms; /* copy of config->mechanisms */
	char *apop_challenge; /* the greeting's timestamp, when APOP is enabled */
	bool secured;
	bool plaintext_auth_allowed;
	bool starttls_available;
	bool trusted; /* may send XCLIENT */
	bool tls;     /* TLS: the -PLUS mechanisms are offered */

	enum pop3_state state;
	struct pop3_parser parser;
	char *user; /* from USER, until PASS or STLS */
	unsigned int bad_commands;

	/* Client bytes received after a login command, while state is
	 * AUTH_WAIT or HANDOFF: pending[0..pending_len) in arrival order. */
	uint8_t *pending;
	size_t pending_len;

	/* The unparsed rest of the buffer pop3_process() is working on: a
	 * reply that arrives from inside a callback (auth answering at once)
	 * can still take it as preread. */
	const uint8_t *cur;
	size_t cur_len;

	unsigned int depth;  /* entry points on the stack */
	bool destroyed;      /* destroy() was called while depth > 0 */
	bool draining;       /* pop3_process() is on the stack */
};

static void pop3_process(struct login_session *s, const uint8_t *data, size_t len);

static void pop3_free(struct login_session *s)
{
	pop3_parser_deinit(&s->parser);
	if (s->user != NULL) {
		explicit_bzero(s->user, strlen(s->user));
		rg_free(s->user);
	}
	if (s->pending != NULL) {
		explicit_bzero(s->pending, s->pending_len);
		rg_free(s->pending);
	}
	rg_free(s->mechanisms);
	rg_free(s->apop_challenge);
	rg_free(s);
}

static void pop3_ref(struct login_session *s)
{
	s->depth++;
}

static void pop3_unref(struct login_session *s)
{
	if (--s->depth == 0 && s->destroyed)
		pop3_free(s);
}

/* true once the session must not do anything more on this call path */
static bool pop3_gone(const struct login_session *s)
{
	return s->destroyed || s->state == POP3_STATE_DONE;
}

static void pop3_send(struct login_session *s, const char *text)
{
	s->cb->send(s->ctx, text, strlen(text));
}

static void pop3_disconnect(struct login_session *s, const char *reason)
{
	s->state = POP3_STATE_DONE;
	s->cb->disconnect(s->ctx, reason);
}

/* "-ERR <prefix><text>\r\n" with text made safe for one line */
static void pop3_send_err_text(struct login_session *s, const char *prefix, const char *text)
{
	char clean[POP3_MAX_REASON + 1];
	size_t n = 0;
	for (; text[n] != '\0' && n < POP3_MAX_REASON; n++) {
		unsigned char c = (unsigned char)text[n];
		clean[n] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
	}
	clean[n] = '\0';
	char *line = rg_strdup_printf("-ERR %s%s\r\n", prefix, clean);
	pop3_send(s, line);
	rg_free(line);
}

static void pop3_clear_user(struct login_session *s)
{
	if (s->user != NULL) {
		explicit_bzero(s->user, strlen(s->user));
		rg_free(s->user);
		s->user = NULL;
	}
}

static void pop3_clear_pending(struct login_session *s)
{
	if (s->pending != NULL) {
		explicit_bzero(s->pending, s->pending_len);
		rg_free(s->pending);
	}
	s->pending = NULL;
	s->pending_len = 0;
}

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

/* Each returns false for a bad command (counts towards the limit). */

static bool pop3_cmd_capa(struct login_session *s)
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

static bool pop3_cmd_user(struct login_session *s, const char *args)
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

static bool pop3_cmd_pass(struct login_session *s, const char *args)
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

static bool pop3_cmd_auth(struct login_session *s, const char *args)
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

static bool pop3_cmd_stls(struct login_session *s)
{
	if (!s->starttls_available || s->cb->starttls == NULL) {
		pop3_send(s, "-ERR TLS support isn't enabled.\r\n");
		return true;
	}
	pop3_send(s, "+OK Begin TLS negotiation now.\r\n");
	/* From here the connection is TLS: no second STLS, plaintext auth is
	 * fine, and nothing said in the clear counts (no USER carried over). */
	s->starttls_available = false;
	s->secured = true;
	s->plaintext_auth_allowed = true;
	s->tls = true;
	pop3_clear_user(s);
	s->cb->starttls(s->ctx);
	return true;
}

/* XCLIENT ADDR=ip PORT=port SESSION=id (Dovecot's, from a proxy in
 * login_trusted_networks): who the proxy's client is */
static bool pop3_cmd_xclient(struct login_session *s, const char *args)
{
	if (!s->trusted) {
		pop3_send(s, "-ERR You aren't allowed to use XCLIENT command.\r\n");
		return false;
	}
	static const char *const keys[][2] = {
		{ "ADDR=", "rip" }, { "PORT=", "rport" }, { "SESSION=", "session" },
	};
	char word[POP3_MAX_CMD_LINE + 1];
	for (const char *p = args != NULL ? args : ""; *p != '\0';) {
		size_t n = strcspn(p, " ");
		if (n > 0 && n < sizeof(word) && s->cb->forward != NULL) {
			memcpy(word, p, n);
			word[n] = '\0';
			for (unsigned int j = 0; j < sizeof(keys) / sizeof(keys[0]); j++) {
				size_t kl = strlen(keys[j][0]);
				if (strncasecmp(word, keys[j][0], kl) == 0)
					s->cb->forward(s->ctx, keys[j][1], word + kl);
			}
		}
		p += n;
		while (*p == ' ')
			p++;
	}
	pop3_send(s, "+OK\r\n");
	return true;
}

/* APOP name digest (RFC 1939): to auth as Dovecot's APOP mechanism, whose
 * message is the greeting's challenge NUL name NUL the 16-byte digest */
static bool pop3_cmd_apop(struct login_session *s, const char *args)
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

/* one complete command line in state CMD */
static void pop3_command(struct login_session *s, const struct pop3_line *line)
{
	const char *cmd = line->line;
	size_t n = line->cmd_len;
	bool ok;

#define IS(name_) (n == sizeof(name_) - 1 && strncasecmp(cmd, name_, n) == 0)
	if (IS("CAPA"))
		ok = pop3_cmd_capa(s);
	else if (IS("USER"))
		ok = pop3_cmd_user(s, line->args);
	else if (IS("PASS"))
		ok = pop3_cmd_pass(s, line->args);
	else if (IS("AUTH"))
		ok = pop3_cmd_auth(s, line->args);
	else if (IS("APOP"))
		ok = pop3_cmd_apop(s, line->args);
	else if (IS("STLS"))
		ok = pop3_cmd_stls(s);
	else if (IS("XCLIENT"))
		ok = pop3_cmd_xclient(s, line->args);
	else if (IS("QUIT")) {
		pop3_send(s, "+OK Logging out\r\n");
		pop3_disconnect(s, "Aborted login by logging out");
		return;
	} else {
		pop3_send(s, "-ERR Unknown command.\r\n");
		ok = false;
	}
#undef IS
	if (pop3_gone(s))
		return;
	/* as Dovecot: a good command forgives earlier bad ones */
	if (ok) {
		s->bad_commands = 0;
		return;
	}
	if (++s->bad_commands >= LOGIN_MAX_BAD_COMMANDS) {
		pop3_send(s, "-ERR Too many invalid bad commands.\r\n");
		pop3_disconnect(s, "Disconnected: Too many bad commands");
	}
}

/* the client's answer to a challenge, state AUTH_CONT */
static void pop3_auth_response(struct login_session *s, const struct pop3_line *line)
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

static void pop3_line_error(struct login_session *s, enum pop3_parse_error error)
{
	if (s->state == POP3_STATE_AUTH_CONT) {
		s->state = POP3_STATE_CMD;
		s->cb->auth_abort(s->ctx);
		if (pop3_gone(s))
			return;
	}
	pop3_send(s, error == POP3_PARSE_ERROR_TOO_LONG ? "-ERR Input line too long.\r\n"
							 : "-ERR Invalid NUL byte in input.\r\n");
	if (++s->bad_commands >= LOGIN_MAX_BAD_COMMANDS) {
		pop3_send(s, "-ERR Too many invalid bad commands.\r\n");
		pop3_disconnect(s, "Disconnected: Too many bad commands");
	}
}

/* Keep bytes that arrive while a login is in progress. */
static void pop3_keep_pending(struct login_session *s, const uint8_t *data, size_t len)
{
	if (len == 0)
		return;
	if (len > LOGIN_MAX_PENDING - s->pending_len) {
		pop3_clear_pending(s);
		if (s->state == POP3_STATE_AUTH_WAIT) {
			s->state = POP3_STATE_DONE;
			s->cb->auth_abort(s->ctx);
			if (s->destroyed)
				return;
		}
		pop3_send(s, "-ERR Too much pipelined input\r\n");
		pop3_disconnect(s, "Disconnected: Too much pipelined input");
		return;
	}
	uint8_t *np = rg_malloc(s->pending_len + len);
	if (s->pending_len > 0)
		memcpy(np, s->pending, s->pending_len);
	memcpy(np + s->pending_len, data, len);
	size_t plen = s->pending_len + len;
	pop3_clear_pending(s);
	s->pending = np;
	s->pending_len = plen;
}

/* Parses and runs lines from data until it is used up or a login starts;
 * what follows a login command is kept in pending. */
static void pop3_process(struct login_session *s, const uint8_t *data, size_t len)
{
	bool was_draining = s->draining;
	const uint8_t *saved_cur = s->cur;
	size_t saved_cur_len = s->cur_len;
	s->draining = true;
	s->cur = data;
	s->cur_len = len;
	while (s->cur_len > 0 && !pop3_gone(s)) {
		if (s->state == POP3_STATE_AUTH_WAIT || s->state == POP3_STATE_HANDOFF) {
			pop3_keep_pending(s, s->cur, s->cur_len);
			s->cur_len = 0;
			break;
		}
		size_t max = s->state == POP3_STATE_AUTH_CONT ? LOGIN_MAX_LINE : POP3_MAX_CMD_LINE;
		size_t consumed;
		struct pop3_line line;
		enum pop3_parse_error error;
		enum parse_result ret = pop3_parser_feed(&s->parser, s->cur, s->cur_len, max,
							 &consumed, &line, &error);
		s->cur += consumed;
		s->cur_len -= consumed;
		if (ret == PARSE_MORE)
			break;
		if (ret == PARSE_ERROR) {
			pop3_line_error(s, error);
			continue;
		}
		bool stls = false;
		if (s->state == POP3_STATE_AUTH_CONT) {
			pop3_auth_response(s, &line);
		} else {
			stls = line.cmd_len == 4 && strncasecmp(line.line, "STLS", 4) == 0 &&
			       s->starttls_available && s->cb->starttls != NULL;
			pop3_command(s, &line);
		}
		if (!s->destroyed)
			pop3_parser_line_done(&s->parser);
		if (stls) {
			/* CVE-2011-0411: bytes sent in the clear after STLS
			 * must not be read as if they came over TLS */
			if (s->cur_len > 0) {
				s->bad_commands++;
				log_info("STLS: dropped %zu bytes sent in plaintext after the command",
					 s->cur_len);
				s->cur_len = 0;
			}
			break;
		}
	}
	s->draining = was_draining;
	s->cur = saved_cur;
	s->cur_len = saved_cur_len;
}

/* A login ended without hand-off: parse what the client sent meanwhile. */
static void pop3_resume(struct login_session *s)
{
	if (s->draining || s->pending_len == 0 || pop3_gone(s))
		return;
	/* take the buffer: new pending bytes may be kept while these run */
	uint8_t *buf = s->pending;
	size_t len = s->pending_len;
	s->pending = NULL;
	s->pending_len = 0;
	pop3_process(s, buf, len);
	explicit_bzero(buf, len);
	rg_free(buf);
}

/* ---- login_proto entry points ---- */

static struct login_session *pop3_create(const struct login_proto_config *config,
					 const struct login_callbacks *cb, void *ctx)
{
	struct login_session *s = rg_calloc(1, sizeof(*s));
	s->cb = cb;
	s->ctx = ctx;
	s->mechanisms = rg_strdup(config->mechanisms == NULL ? "" : config->mechanisms);
	s->secured = config->secured;
	s->plaintext_auth_allowed = config->plaintext_auth_allowed;
	s->starttls_available = config->starttls_available;
	s->trusted = config->trusted;
	s->tls = config->tls;
	s->state = POP3_STATE_CMD;
	pop3_parser_init(&s->parser);

	const char *greeting = config->greeting == NULL || config->greeting[0] == '\0'
			       ? POP3_DEFAULT_GREETING : config->greeting;
	char clean[POP3_MAX_REASON + 1];
	size_t n = 0;
	for (; greeting[n] != '\0' && n < POP3_MAX_REASON; n++) {
		unsigned char c = (unsigned char)greeting[n];
		clean[n] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
	}
	clean[n] = '\0';
	size_t apop_len;
	if (pop3_mech_find(s, "APOP", 4, &apop_len) != NULL) {
		/* RFC 1939's timestamp, in the form auth checks: this login
		   process's pid (so no other process's challenge is taken),
		   the time and 128 random bits; the host name as Dovecot's
		   <pid.connect-id.time.random@my_hostname> (read at start-up,
		   before the chroot) */
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
	/* as Dovecot: a trusted client (a proxy) learns it may send XCLIENT */
	char *line = rg_strdup_printf("+OK %s%s%s%s\r\n", s->trusted ? "[XCLIENT] " : "", clean,
				      s->apop_challenge != NULL ? " " : "",
				      s->apop_challenge != NULL ? s->apop_challenge : "");
	pop3_ref(s);
	pop3_send(s, line);
	rg_free(line);
	if (s->destroyed) {
		/* nonsense, but do not leak or use freed memory */
		pop3_unref(s);
		return NULL;
	}
	pop3_unref(s);
	return s;
}

static void pop3_input(struct login_session *s, const uint8_t *data, size_t len)
{
	if (pop3_gone(s))
		return;
	pop3_ref(s);
	pop3_process(s, data, len);
	pop3_unref(s);
}

static void pop3_auth_reply(struct login_session *s, enum login_auth_result result,
			    const uint8_t *data, size_t len, const char *reason)
{
	if (pop3_gone(s))
		return;
	if (s->state != POP3_STATE_AUTH_WAIT) {
		/* e.g. a reply racing the client's "*": auth was told to forget */
		log_debug("pop3: auth reply %d in state %d ignored", (int)result, (int)s->state);
		return;
	}
	pop3_ref(s);
	switch (result) {
	case LOGIN_AUTH_CHALLENGE: {
		char *line = rg_malloc(BASE64_ENCODED_LEN(len) + 5);
		memcpy(line, "+ ", 2);
		size_t n = 2 + base64_encode(data, len, line + 2);
		memcpy(line + n, "\r\n", 2);
		s->state = POP3_STATE_AUTH_CONT;
		s->cb->send(s->ctx, line, n + 2);
		rg_free(line);
		break;
	}
	case LOGIN_AUTH_OK:
		s->state = POP3_STATE_HANDOFF;
		if (s->cur_len > 0) {
			/* answered from inside auth_begin/continue: what
			 * follows the command in this input is preread too */
			pop3_keep_pending(s, s->cur, s->cur_len);
			s->cur_len = 0;
			if (pop3_gone(s))
				break;
		}
		s->bad_commands = 0;
		/* the worker answers "+OK Logged in." and reads preread first */
		s->cb->handoff(s->ctx, NULL, s->pending, s->pending_len);
		break;
	case LOGIN_AUTH_FAIL:
		s->state = POP3_STATE_CMD;
		if (reason != NULL && reason[0] != '\0')
			pop3_send_err_text(s, "[AUTH] ", reason);
		else
			pop3_send(s, "-ERR [AUTH] Authentication failed.\r\n");
		break;
	case LOGIN_AUTH_TEMPFAIL:
		s->state = POP3_STATE_CMD;
		if (reason != NULL && reason[0] != '\0')
			pop3_send_err_text(s, "[SYS/TEMP] ", reason);
		else
			pop3_send(s, "-ERR [SYS/TEMP] Temporary authentication failure.\r\n");
		break;
	}
	if (s->state == POP3_STATE_CMD || s->state == POP3_STATE_AUTH_CONT)
		pop3_resume(s);
	pop3_unref(s);
}

static void pop3_handoff_failed(struct login_session *s, const char *reason)
{
	if (pop3_gone(s) || s->state != POP3_STATE_HANDOFF)
		return;
	pop3_ref(s);
	s->state = POP3_STATE_CMD;
	/* a reason with a response code of its own (a backend's refusal)
	 * goes as it is */
	pop3_send_err_text(s, reason != NULL && reason[0] == '[' ? "" : "[SYS/TEMP] ",
			   reason != NULL && reason[0] != '\0' ? reason : "Internal error.");
	pop3_resume(s);
	pop3_unref(s);
}

static void pop3_bye(struct login_session *s, const char *text)
{
	if (pop3_gone(s))
		return;
	pop3_ref(s);
	if (s->state == POP3_STATE_AUTH_WAIT || s->state == POP3_STATE_AUTH_CONT) {
		/* auth holds the request until told otherwise */
		s->state = POP3_STATE_DONE;
		s->cb->auth_abort(s->ctx);
	}
	if (!s->destroyed) {
		pop3_send_err_text(s, "", text != NULL ? text : "Disconnected.");
		pop3_disconnect(s, text != NULL ? text : "bye");
	}
	pop3_unref(s);
}

bool pop3_login_idle(const struct login_session *s)
{
	return s->state == POP3_STATE_CMD && pop3_parser_idle(&s->parser) &&
	       s->pending_len == 0;
}

static void pop3_destroy(struct login_session *s)
{
	if (s == NULL)
		return;
	if (s->depth > 0) {
		s->destroyed = true;
		return;
	}
	pop3_free(s);
}

const struct login_proto pop3_login_proto = {
	.name = "pop3",
	.backend_port = 110,
	.backend_pop3 = true,
	.backend_fail_code = "[AUTH] ",
	.line_access_denied = "-ERR [AUTH] Access denied.\r\n",
	.line_internal_error = "-ERR [SYS/TEMP] Internal error occurred. "
			       "Refer to server log for more information.\r\n",
	.line_too_many_conns = "-ERR [SYS/TEMP] Too many connections from your IP address.\r\n",
	.create = pop3_create,
	.input = pop3_input,
	.auth_reply = pop3_auth_reply,
	.handoff_failed = pop3_handoff_failed,
	.bye = pop3_bye,
	.destroy = pop3_destroy,
};
