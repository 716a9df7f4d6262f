/* imap-login.c — the IMAP pre-auth core behind imap_login_proto (see
 * login-proto.h): greeting, CAPABILITY/NOOP/LOGOUT/ID/ENABLE/STARTTLS,
 * LOGIN and AUTHENTICATE relayed to auth through the callbacks, hand-off.
 * Replies follow Dovecot 2.3's imap-login word for word where it has one.
 *
 * Re-entrancy: callbacks may call back into the core (a synchronous
 * auth_reply from inside auth_begin, destroy from inside disconnect). State
 * is set before each callback, destroy is deferred to the outermost entry,
 * and pending input is drained only there, so bytes keep their order. */
#include "login/login-proto.h"

#include <stdarg.h>
#include <string.h>
#include <strings.h>

#include "lib/alloc.h"
#include "lib/base64.h"
#include "lib/log.h"
#include "login/imap-login-texts.h"
#include "login/imap-parser.h"

#define IMAP_ERROR_MSG "Error in IMAP command received by server."
#define IMAP_PLAINTEXT_DISABLED_MSG \
	"Plaintext authentication disallowed on non-secure (SSL/TLS) connections."
#define IMAP_ID_MAX_PAIRS 30
#define IMAP_ID_MAX_KEY 64
#define IMAP_ID_MAX_VALUE 1024

enum imap_state {
	IMAP_STATE_COMMANDS,    /* parsing commands */
	IMAP_STATE_AUTH_WAIT,   /* request at auth: input is only kept */
	IMAP_STATE_AUTH_CLIENT, /* challenge sent: the next line is the SASL response */
	IMAP_STATE_HANDOFF,     /* handoff() called: input is only kept */
	IMAP_STATE_CLOSED,      /* disconnect() called: input is dropped */
};

/* pend holds input received while the core may not parse it (auth or
 * hand-off in flight); [0, pend_len) is unprocessed client input in arrival
 * order, never more than LOGIN_MAX_PENDING bytes. resp is the SASL response
 * line being received in AUTH_CLIENT, at most LOGIN_MAX_LINE bytes. Both
 * exist only while used. */
struct login_session {
	const struct login_callbacks *cb;
	void *ctx;
	/* greeting, mechanisms, CAPABILITY: shared by the process's sessions */
	struct imap_texts *texts;
	const char *capability; /* in texts, for the session's state */
	bool plaintext_auth_allowed;
	bool starttls_available; /* and cb->starttls set */
	bool discard_input;      /* drop the rest of this input (after STARTTLS) */
	bool trusted;            /* may forward x-originating-* in ID */
	bool tls;                /* TLS: the -PLUS mechanisms are offered */

	enum imap_state state;
	struct imap_parser parser;
	unsigned int bad_count;
	char *auth_tag;

	uint8_t *pend;
	size_t pend_len;
	uint8_t *resp;
	size_t resp_len;

	unsigned int depth;  /* nesting of public entry points on the stack */
	bool handoff_pending;
	bool destroy_pending;
};

static void imap_process(struct login_session *s, const uint8_t *data, size_t len);

static bool mech_available(const struct login_session *s, const char *mech)
{
	size_t mlen = strlen(mech);
	const char *p = imap_texts_mechanisms(s->texts);
	if (!s->tls && imap_mech_needs_tls(mech, mlen))
		return false;
	while (*p != '\0') {
		while (*p == ' ')
			p++;
		size_t len = strcspn(p, " ");
		if (len == mlen && len > 0 && strncmp(p, mech, len) == 0)
			return true;
		p += len;
	}
	return false;
}

/* Every reply format uses %s only (the format attribute checks the
 * arguments; anything else is fatal here): the reply is put together by
 * copying, without printf, as the greeting and LOGOUT run for every
 * client. */
static void imap_send(struct login_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void imap_send(struct login_session *s, const char *fmt, ...)
{
	char small[512];
	va_list ap;

	if (s->state == IMAP_STATE_CLOSED)
		return;
	size_t n = 0;
	va_start(ap, fmt);
	for (const char *f = fmt; *f != '\0'; f++) {
		if (*f != '%') {
			n++;
		} else if (f[1] == 's') {
			n += strlen(va_arg(ap, const char *));
			f++;
		} else {
			log_fatal("imap_send: format other than %%s: %s", fmt);
		}
	}
	va_end(ap);
	char *out = n < sizeof(small) ? small : rg_malloc(n + 1);
	char *o = out;
	va_start(ap, fmt);
	for (const char *f = fmt; *f != '\0'; f++) {
		if (*f != '%') {
			*o++ = *f;
			continue;
		}
		const char *arg = va_arg(ap, const char *);
		size_t len = strlen(arg);
		memcpy(o, arg, len);
		o += len;
		f++;
	}
	va_end(ap);
	s->cb->send(s->ctx, out, n);
	if (out != small)
		rg_free(out);
}

static void imap_disconnect(struct login_session *s, const char *reason)
{
	if (s->state == IMAP_STATE_CLOSED)
		return;
	s->state = IMAP_STATE_CLOSED;
	s->cb->disconnect(s->ctx, reason);
}

static void imap_bye(struct login_session *s, const char *text, const char *reason)
{
	imap_send(s, "* BYE %s\r\n", text);
	imap_disconnect(s, reason);
}

/* Dovecot counts every BAD; the third one is answered with BYE instead. */
static void imap_bad(struct login_session *s, const char *tag, const char *text)
{
	if (++s->bad_count >= LOGIN_MAX_BAD_COMMANDS) {
		imap_bye(s, "Too many invalid IMAP commands.", "Too many invalid commands");
		return;
	}
	imap_send(s, "%s BAD %s\r\n", tag != NULL ? tag : "*", text);
}

static void pend_append(struct login_session *s, const uint8_t *data, size_t len)
{
	if (len == 0)
		return;
	if (len > LOGIN_MAX_PENDING - s->pend_len) {
		imap_bye(s, "Too much pipelined input", "Too much pipelined input");
		return;
	}
	if (s->pend == NULL)
		s->pend = rg_malloc(LOGIN_MAX_PENDING);
	memcpy(s->pend + s->pend_len, data, len);
	s->pend_len += len;
}

static void pend_free(struct login_session *s)
{
	if (s->pend != NULL) {
		explicit_bzero(s->pend, LOGIN_MAX_PENDING);
		rg_free(s->pend);
	}
	s->pend = NULL;
	s->pend_len = 0;
}

static void resp_free(struct login_session *s)
{
	if (s->resp != NULL) {
		explicit_bzero(s->resp, LOGIN_MAX_LINE);
		rg_free(s->resp);
	}
	s->resp = NULL;
	s->resp_len = 0;
}

static void auth_finished(struct login_session *s)
{
	rg_free(s->auth_tag);
	s->auth_tag = NULL;
	resp_free(s);
	if (s->state != IMAP_STATE_CLOSED)
		s->state = IMAP_STATE_COMMANDS;
}

/* ---- commands ---- */

static void cmd_capability(struct login_session *s, const char *tag)
{
	imap_send(s, "* CAPABILITY %s\r\n%s OK Pre-login capabilities listed, "
		  "post-login capabilities have more.\r\n", s->capability, tag);
}

static void cmd_id(struct login_session *s, const char *tag,
		   const struct imap_arg *args, unsigned int count)
{
	bool ok = count >= 1 && (args[0].type == IMAP_ARG_NIL || args[0].type == IMAP_ARG_LIST);
	if (ok && args[0].type == IMAP_ARG_LIST) {
		unsigned int items = args[0].list_count;
		ok = items <= IMAP_ID_MAX_PAIRS * 2;
		for (unsigned int i = 0; ok && i < items; i++) {
			const struct imap_arg *a = &args[1 + i];
			if (a->type == IMAP_ARG_NIL)
				ok = i % 2 == 1; /* values may be NIL, keys not */
			else if (a->type == IMAP_ARG_ATOM)
				ok = false;
			else
				ok = a->len <= (i % 2 == 0 ? IMAP_ID_MAX_KEY : IMAP_ID_MAX_VALUE);
		}
	}
	if (!ok) {
		imap_bad(s, tag, "Invalid ID parameters");
		return;
	}
	if (s->trusted && s->cb->forward != NULL && args[0].type == IMAP_ARG_LIST) {
		/* as Dovecot: a proxy in login_trusted_networks tells who its
		 * client is */
		static const char *const keys[][2] = {
			{ "x-originating-ip", "rip" }, { "x-originating-port", "rport" },
			{ "x-connected-ip", "lip" }, { "x-connected-port", "lport" },
			{ "x-session-id", "session" },
		};
		for (unsigned int i = 0; i + 1 < args[0].list_count; i += 2) {
			const struct imap_arg *k = &args[1 + i], *v = &args[2 + i];
			if (v->type == IMAP_ARG_NIL || v->type == IMAP_ARG_LIST ||
			    k->type == IMAP_ARG_LIST)
				continue;
			for (unsigned int j = 0; j < sizeof(keys) / sizeof(keys[0]); j++) {
				if (strcasecmp(k->str, keys[j][0]) == 0)
					s->cb->forward(s->ctx, keys[j][1], v->str);
			}
		}
	}
	imap_send(s, "* ID (\"name\" \"ringgate\")\r\n%s OK ID completed.\r\n", tag);
}

static void cmd_starttls(struct login_session *s, const char *tag)
{
	if (!s->starttls_available) {
		imap_send(s, "%s BAD TLS support isn't enabled.\r\n", tag);
		return;
	}
	imap_send(s, "%s OK Begin TLS negotiation now.\r\n", tag);
	/* Bytes pipelined after STARTTLS arrived in plaintext: running them
	 * inside TLS would let a man in the middle inject commands
	 * (CVE-2011-0411), so they are dropped. A failed handshake closes the
	 * connection, so from here on the session counts as secured. */
	s->discard_input = true;
	s->starttls_available = false;
	s->plaintext_auth_allowed = true;
	s->tls = true;
	s->capability = imap_texts_capability(s->texts, s->starttls_available,
					      s->plaintext_auth_allowed, s->tls);
	s->cb->starttls(s->ctx);
}

static void auth_start(struct login_session *s, const char *tag, const char *mech,
		       const uint8_t *resp, size_t resp_len, bool has_resp)
{
	/* state first: auth_begin may answer synchronously */
	s->auth_tag = rg_strdup(tag);
	s->state = IMAP_STATE_AUTH_WAIT;
	s->cb->auth_begin(s->ctx, mech, resp, resp_len, has_resp);
}

static void cmd_login(struct login_session *s, const char *tag,
		      const struct imap_arg *args, unsigned int count)
{
	const char *user, *pass;
	size_t ulen, plen;

	if (count != 2 || !imap_arg_get_astring(&args[0], &user, &ulen) ||
	    !imap_arg_get_astring(&args[1], &pass, &plen)) {
		imap_bad(s, tag, IMAP_ERROR_MSG);
		return;
	}
	if (!s->plaintext_auth_allowed) {
		imap_send(s, "%s NO [PRIVACYREQUIRED] " IMAP_PLAINTEXT_DISABLED_MSG "\r\n", tag);
		return;
	}
	/* SASL PLAIN: authzid NUL authcid NUL password */
	size_t len = 1 + ulen + 1 + plen;
	uint8_t *buf = rg_malloc(len);
	buf[0] = '\0';
	memcpy(buf + 1, user, ulen);
	buf[1 + ulen] = '\0';
	memcpy(buf + 2 + ulen, pass, plen);
	auth_start(s, tag, "PLAIN", buf, len, true);
	explicit_bzero(buf, len);
	rg_free(buf);
}

static void cmd_authenticate(struct login_session *s, const char *tag,
			     const struct imap_arg *args, unsigned int count)
{
	char mech[64];

	if (count < 1 || count > 2 || args[0].type != IMAP_ARG_ATOM ||
	    args[0].len >= sizeof(mech) ||
	    (count == 2 && args[1].type != IMAP_ARG_ATOM)) {
		imap_bad(s, tag, IMAP_ERROR_MSG);
		return;
	}
	for (size_t i = 0; i <= args[0].len; i++) {
		char c = args[0].str[i];
		mech[i] = c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
	}
	if (!mech_available(s, mech)) {
		imap_send(s, "%s NO [ALERT] Unsupported authentication mechanism.\r\n", tag);
		return;
	}
	if (!s->plaintext_auth_allowed && imap_mech_is_plaintext(mech, strlen(mech))) {
		imap_send(s, "%s NO [PRIVACYREQUIRED] " IMAP_PLAINTEXT_DISABLED_MSG "\r\n", tag);
		return;
	}
	if (count == 1) {
		auth_start(s, tag, mech, NULL, 0, false);
		return;
	}
	const char *ir = args[1].str;
	size_t irlen = args[1].len;
	if (irlen == 1 && ir[0] == '=') {
		auth_start(s, tag, mech, (const uint8_t *)"", 0, true);
		return;
	}
	size_t outsize = BASE64_DECODED_MAX(irlen), outlen;
	uint8_t *out = rg_malloc(outsize);
	if (!base64_decode(ir, irlen, out, outsize, &outlen))
		imap_send(s, "%s BAD Invalid base64 data in initial response\r\n", tag);
	else
		auth_start(s, tag, mech, out, outlen, true);
	explicit_bzero(out, outsize);
	rg_free(out);
}

static void imap_command(struct login_session *s, const char *tag, const char *name,
			 const struct imap_arg *args, unsigned int count)
{
	if (strcasecmp(name, "CAPABILITY") == 0) {
		cmd_capability(s, tag);
	} else if (strcasecmp(name, "NOOP") == 0) {
		imap_send(s, "%s OK NOOP completed.\r\n", tag);
	} else if (strcasecmp(name, "LOGOUT") == 0) {
		imap_send(s, "* BYE Logging out\r\n%s OK Logout completed.\r\n", tag);
		imap_disconnect(s, "Aborted login by logging out");
	} else if (strcasecmp(name, "ID") == 0) {
		cmd_id(s, tag, args, count);
	} else if (strcasecmp(name, "ENABLE") == 0) {
		imap_send(s, "* ENABLED\r\n%s OK ENABLE ignored in non-authenticated state.\r\n", tag);
	} else if (strcasecmp(name, "STARTTLS") == 0) {
		cmd_starttls(s, tag);
	} else if (strcasecmp(name, "LOGIN") == 0) {
		cmd_login(s, tag, args, count);
	} else if (strcasecmp(name, "AUTHENTICATE") == 0) {
		cmd_authenticate(s, tag, args, count);
	} else {
		imap_bad(s, tag, IMAP_ERROR_MSG);
	}
}

/* ---- input ---- */

/* One SASL response line, complete without its LF. */
static void imap_sasl_response(struct login_session *s)
{
	size_t len = s->resp_len;
	const char *line = (const char *)s->resp;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len == 1 && line[0] == '*') {
		char *tag = s->auth_tag;
		s->auth_tag = NULL;
		auth_finished(s);
		s->cb->auth_abort(s->ctx);
		imap_send(s, "%s BAD Authentication aborted by client.\r\n", tag);
		rg_free(tag);
		return;
	}
	size_t outsize = BASE64_DECODED_MAX(len), outlen;
	uint8_t *out = rg_malloc(outsize);
	if (!base64_decode(line, len, out, outsize, &outlen)) {
		char *tag = s->auth_tag;
		s->auth_tag = NULL;
		auth_finished(s);
		s->cb->auth_abort(s->ctx);
		imap_send(s, "%s NO [ALERT] Invalid base64 in response\r\n", tag);
		rg_free(tag);
	} else {
		resp_free(s);
		s->state = IMAP_STATE_AUTH_WAIT;
		s->cb->auth_continue(s->ctx, out, outlen);
	}
	explicit_bzero(out, outsize);
	rg_free(out);
}

/* returns bytes consumed from data */
static size_t imap_sasl_input(struct login_session *s, const uint8_t *data, size_t len)
{
	const uint8_t *lf = memchr(data, '\n', len);
	size_t take = lf != NULL ? (size_t)(lf - data) : len;
	if (take > LOGIN_MAX_LINE - s->resp_len) {
		s->cb->auth_abort(s->ctx);
		auth_finished(s);
		imap_bye(s, "Authentication response too long", "SASL response too long");
		return len;
	}
	if (take > 0) {
		if (s->resp == NULL)
			s->resp = rg_malloc(LOGIN_MAX_LINE);
		memcpy(s->resp + s->resp_len, data, take);
		s->resp_len += take;
	}
	if (lf == NULL)
		return len;
	imap_sasl_response(s);
	return take + 1;
}

static size_t imap_command_input(struct login_session *s, const uint8_t *data, size_t len)
{
	struct imap_parser *p = &s->parser;
	size_t consumed;
	bool fatal;

	enum parse_result ret = imap_parser_parse(p, data, len, &consumed);
	if (imap_parser_take_continuation(p))
		imap_send(s, "+ OK\r\n");
	switch (ret) {
	case PARSE_MORE:
		break;
	case PARSE_OK: {
		unsigned int count;
		const struct imap_arg *args = imap_parser_args(p, &count);
		imap_command(s, imap_parser_tag(p), imap_parser_name(p), args, count);
		imap_parser_command_done(p);
		break;
	}
	case PARSE_ERROR: {
		const char *error = imap_parser_error(p, &fatal);
		if (fatal) {
			imap_bye(s, error, error);
			imap_parser_command_done(p);
			return len;
		}
		imap_bad(s, imap_parser_tag(p), error);
		imap_parser_command_done(p);
		break;
	}
	}
	return consumed;
}

/* Feed client bytes to whatever the state wants; keeps what it can't take. */
static void imap_process(struct login_session *s, const uint8_t *data, size_t len)
{
	size_t pos = 0;
	while (pos < len) {
		switch (s->state) {
		case IMAP_STATE_CLOSED:
			return;
		case IMAP_STATE_AUTH_WAIT:
		case IMAP_STATE_HANDOFF:
			pend_append(s, data + pos, len - pos);
			return;
		case IMAP_STATE_AUTH_CLIENT:
			pos += imap_sasl_input(s, data + pos, len - pos);
			break;
		case IMAP_STATE_COMMANDS:
			pos += imap_command_input(s, data + pos, len - pos);
			if (s->discard_input) {
				/* plaintext pipelined behind STARTTLS: an injection
				 * attempt or a broken client; dropped and counted */
				s->discard_input = false;
				if (pos < len) {
					s->bad_count++;
					log_info("STARTTLS: dropped %zu bytes sent in plaintext after "
						 "the command", len - pos);
				}
				return;
			}
			break;
		}
	}
}

static bool state_parses(const struct login_session *s)
{
	return s->state == IMAP_STATE_COMMANDS || s->state == IMAP_STATE_AUTH_CLIENT;
}

bool imap_login_idle(const struct login_session *s)
{
	return s->state == IMAP_STATE_COMMANDS && s->pend_len == 0 &&
	       imap_parser_idle(&s->parser);
}

static void session_free(struct login_session *s);

static void enter(struct login_session *s)
{
	s->depth++;
}

/* Outermost exit: a deferred hand-off (now that every byte after the login
 * command is in pend), kept input the state now accepts, a deferred destroy. */
static void leave(struct login_session *s)
{
	while (s->depth == 1 && !s->destroy_pending) {
		if (s->handoff_pending) {
			s->handoff_pending = false;
			if (s->state == IMAP_STATE_HANDOFF)
				s->cb->handoff(s->ctx, s->auth_tag, s->pend, s->pend_len);
			continue;
		}
		if (s->pend_len == 0 || !state_parses(s))
			break;
		uint8_t *buf = s->pend;
		size_t len = s->pend_len;
		s->pend = NULL;
		s->pend_len = 0;
		imap_process(s, buf, len);
		explicit_bzero(buf, LOGIN_MAX_PENDING);
		rg_free(buf);
	}
	if (--s->depth == 0 && s->destroy_pending)
		session_free(s);
}

/* ---- login_proto ---- */

static struct login_session *imap_create(const struct login_proto_config *config,
					 const struct login_callbacks *cb, void *ctx)
{
	struct login_session *s = rg_calloc(1, sizeof(*s));
	s->cb = cb;
	s->trusted = config->trusted;
	s->tls = config->tls;
	s->ctx = ctx;
	s->texts = imap_texts_get(config->greeting, config->mechanisms);
	s->plaintext_auth_allowed = config->plaintext_auth_allowed;
	s->starttls_available = config->starttls_available && cb->starttls != NULL;
	s->capability = imap_texts_capability(s->texts, s->starttls_available,
					      s->plaintext_auth_allowed, s->tls);
	imap_parser_init(&s->parser);
	s->state = IMAP_STATE_COMMANDS;
	imap_send(s, "* OK [CAPABILITY %s] %s\r\n", s->capability,
		  imap_texts_greeting(s->texts));
	return s;
}

static void imap_input(struct login_session *s, const uint8_t *data, size_t len)
{
	if (s->destroy_pending)
		return;
	enter(s);
	/* input from inside a callback must queue behind what is being processed */
	if (s->depth > 1 && s->state != IMAP_STATE_CLOSED)
		pend_append(s, data, len);
	else
		imap_process(s, data, len);
	leave(s);
}

static void imap_auth_reply(struct login_session *s, enum login_auth_result result,
			    const uint8_t *data, size_t len, const char *reason)
{
	if (s->destroy_pending || s->state != IMAP_STATE_AUTH_WAIT) {
		log_debug("imap: auth reply in unexpected state %d ignored", (int)s->state);
		return;
	}
	enter(s);
	char *tag = s->auth_tag;
	switch (result) {
	case LOGIN_AUTH_CHALLENGE: {
		char *b64 = rg_malloc(BASE64_ENCODED_LEN(len) + 1);
		base64_encode(data, len, b64);
		s->state = IMAP_STATE_AUTH_CLIENT;
		imap_send(s, "+ %s\r\n", b64);
		rg_free(b64);
		break;
	}
	case LOGIN_AUTH_OK:
		/* state first: handoff_failed may come synchronously. Inside
		 * input() (auth answered from auth_begin) the rest of that
		 * input is not kept yet: hand off when input() returns. */
		s->state = IMAP_STATE_HANDOFF;
		if (s->depth > 1)
			s->handoff_pending = true;
		else
			s->cb->handoff(s->ctx, tag, s->pend, s->pend_len);
		break;
	case LOGIN_AUTH_FAIL:
		s->auth_tag = NULL;
		auth_finished(s);
		if (reason != NULL && reason[0] != '\0') {
			/* passdb nologin + reason: as Dovecot, an ALERT */
			char *text = imap_sanitize_dup(reason);
			imap_send(s, "%s NO [ALERT] %s\r\n", tag, text);
			rg_free(text);
		} else {
			imap_send(s, "%s NO [AUTHENTICATIONFAILED] Authentication failed.\r\n", tag);
		}
		rg_free(tag);
		break;
	case LOGIN_AUTH_TEMPFAIL: {
		s->auth_tag = NULL;
		auth_finished(s);
		char *text = imap_sanitize_dup(reason != NULL ? reason :
					  "Temporary authentication failure.");
		imap_send(s, "%s NO [UNAVAILABLE] %s\r\n", tag, text);
		rg_free(text);
		rg_free(tag);
		break;
	}
	}
	leave(s);
}

static void imap_handoff_failed(struct login_session *s, const char *reason)
{
	if (s->destroy_pending || s->state != IMAP_STATE_HANDOFF)
		return;
	enter(s);
	char *tag = s->auth_tag;
	s->auth_tag = NULL;
	auth_finished(s);
	char *text = imap_sanitize_dup(reason != NULL ? reason : "Login failed.");
	/* a reason with a response code of its own (a backend's refusal,
	 * relayed as Dovecot does) goes as it is */
	imap_send(s, "%s NO %s%s\r\n", tag, text[0] == '[' ? "" : "[UNAVAILABLE] ", text);
	rg_free(text);
	rg_free(tag);
	leave(s);
}

static void imap_bye_api(struct login_session *s, const char *text)
{
	if (s->destroy_pending)
		return;
	enter(s);
	char *t = imap_sanitize_dup(text);
	imap_bye(s, t, t);
	rg_free(t);
	leave(s);
}

static void session_free(struct login_session *s)
{
	imap_parser_deinit(&s->parser);
	pend_free(s);
	resp_free(s);
	rg_free(s->auth_tag);
	imap_texts_unref(&s->texts);
	rg_free(s);
}

static void imap_destroy(struct login_session *s)
{
	if (s->depth > 0) {
		s->destroy_pending = true;
		s->state = IMAP_STATE_CLOSED;
		return;
	}
	session_free(s);
}

const struct login_proto imap_login_proto = {
	.name = "imap",
	.backend_port = 143,
	.backend_pop3 = false,
	.backend_fail_code = "[AUTHENTICATIONFAILED] ",
	.line_access_denied = "* BYE Access denied.\r\n",
	.line_internal_error = "* BYE [UNAVAILABLE] Internal error occurred. "
			       "Refer to server log for more information.\r\n",
	.line_too_many_conns = "* BYE [UNAVAILABLE] Too many connections from your IP address.\r\n",
	.create = imap_create,
	.input = imap_input,
	.auth_reply = imap_auth_reply,
	.handoff_failed = imap_handoff_failed,
	.bye = imap_bye_api,
	.destroy = imap_destroy,
};
