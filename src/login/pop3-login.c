/* pop3-login.c — the POP3 AUTHORIZATION state (RFC 1939, 2449, 2595, 5034)
 * as a login_proto core: no sockets, everything through callbacks. Replies
 * follow Dovecot's pop3-login word for word where one exists, so clients and
 * scripts tuned against Dovecot see the same server.
 *
 * Invariants: at most one command is being handled; while auth (or master) is
 * working on a login the bytes that follow are kept in pending (at most
 * LOGIN_MAX_PENDING) and parsed, or handed off, only when the answer comes.
 * A callback may re-enter the core, even destroy it: every entry point holds a
 * reference (depth) and the session is freed when the outermost one returns.
 * The mechanisms and the login commands (CAPA, USER/PASS, AUTH, APOP) are in
 * pop3-login-auth.c. */
#include "login/pop3-login-private.h"

#include <string.h>
#include <strings.h>

#include "lib/alloc.h"
#include "lib/base64.h"
#include "lib/log.h"

#define POP3_DEFAULT_GREETING "ringgate ready."

static void pop3_process(struct login_session *s, const uint8_t *data, size_t len);
static void pop3_clear_pending(struct login_session *s);

static void pop3_free(struct login_session *s)
{
	pop3_parser_deinit(&s->parser);
	pop3_clear_user(s);
	pop3_clear_pending(s);
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

bool pop3_gone(const struct login_session *s)
{
	return s->destroyed || s->state == POP3_STATE_DONE;
}

void pop3_send(struct login_session *s, const char *text)
{
	s->cb->send(s->ctx, text, strlen(text));
}

static void pop3_disconnect(struct login_session *s, const char *reason)
{
	s->state = POP3_STATE_DONE;
	s->cb->disconnect(s->ctx, reason);
}

/* text made safe for one line: at most POP3_MAX_REASON bytes, control
 * characters as spaces */
static void pop3_clean_text(const char *text, char clean[POP3_MAX_REASON + 1])
{
	size_t n = 0;
	for (; text[n] != '\0' && n < POP3_MAX_REASON; n++) {
		unsigned char c = (unsigned char)text[n];
		clean[n] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
	}
	clean[n] = '\0';
}

/* "-ERR <prefix><text>\r\n" with text made safe for one line */
static void pop3_send_err_text(struct login_session *s, const char *prefix, const char *text)
{
	char clean[POP3_MAX_REASON + 1];
	pop3_clean_text(text, clean);
	char *line = rg_strdup_printf("-ERR %s%s\r\n", prefix, clean);
	pop3_send(s, line);
	rg_free(line);
}

void pop3_clear_user(struct login_session *s)
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

/* ---- commands (the login commands are in pop3-login-auth.c) ---- */

/* Each returns false for a bad command (counts towards the limit). */

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

/* "+OK greeting <APOP timestamp>\r\n", put together by copying: this runs
 * for every client */
static void pop3_send_greeting(struct login_session *s, const char *clean)
{
	/* as Dovecot: a trusted client (a proxy) learns it may send XCLIENT */
	const char *parts[] = { "+OK ", s->trusted ? "[XCLIENT] " : "", clean,
				s->apop_challenge != NULL ? " " : "",
				s->apop_challenge != NULL ? s->apop_challenge : "", "\r\n" };
	size_t lens[sizeof(parts) / sizeof(parts[0])], total = 0;
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		lens[i] = strlen(parts[i]);
		total += lens[i];
	}
	/* the challenge names the host: a long name takes the heap */
	char stack_line[512];
	char *line = total < sizeof(stack_line) ? stack_line : rg_malloc(total + 1);
	size_t n = 0;
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		memcpy(line + n, parts[i], lens[i]);
		n += lens[i];
	}
	line[n] = '\0';
	pop3_send(s, line);
	if (line != stack_line)
		rg_free(line);
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
	pop3_clean_text(greeting, clean);
	pop3_apop_challenge_init(s, config);
	pop3_ref(s);
	pop3_send_greeting(s, clean);
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
