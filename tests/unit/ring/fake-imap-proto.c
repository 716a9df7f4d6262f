/* fake-imap-proto.c — a tiny stand-in for imap-login.c so ringgate-login can
 * be built and driven end to end before the real IMAP core lands: greeting,
 * CAPABILITY, NOOP, LOGOUT, LOGIN u p (atoms or simple quoted strings).
 * Linked only into the test binary when src/login/imap-login.c is absent. */
#include "login/login-proto.h"
#include "lib/alloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

struct login_session {
	const struct login_callbacks *cb;
	void *ctx;
	char line[LOGIN_MAX_LINE];
	size_t len;
	char tag[64];
	bool waiting; /* auth or hand-off in flight */
	bool closed;
	uint8_t pending[LOGIN_MAX_PENDING];
	size_t pending_len;
};

__attribute__((format(printf, 2, 3)))
static void out(struct login_session *s, const char *fmt, ...);
static void out(struct login_session *s, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		n = (int)sizeof(buf) - 1;
	s->cb->send(s->ctx, buf, (size_t)n);
}

static char *word(char **p)
{
	char *w = *p;
	while (*w == ' ')
		w++;
	if (*w == '\0')
		return NULL;
	char *e;
	if (*w == '"') {
		w++;
		e = strchr(w, '"');
		if (e == NULL)
			return NULL;
	} else {
		e = w + strcspn(w, " ");
	}
	if (*e != '\0')
		*e++ = '\0';
	*p = e;
	return w;
}

static void fake_command(struct login_session *s, char *line)
{
	char *p = line, *tag = word(&p), *cmd = tag != NULL ? word(&p) : NULL;
	if (cmd == NULL) {
		out(s, "* BAD Error in IMAP command%s%s\r\n", "", "");
		return;
	}
	snprintf(s->tag, sizeof(s->tag), "%s", tag);
	if (strcasecmp(cmd, "CAPABILITY") == 0) {
		out(s, "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n%s OK Capability completed.%s\r\n", tag, "");
	} else if (strcasecmp(cmd, "NOOP") == 0) {
		out(s, "%s OK NOOP completed.%s\r\n", tag, "");
	} else if (strcasecmp(cmd, "LOGOUT") == 0) {
		out(s, "* BYE Logging out\r\n%s OK Logout completed.%s\r\n", tag, "");
		s->closed = true;
		s->cb->disconnect(s->ctx, "Logged out");
	} else if (strcasecmp(cmd, "LOGIN") == 0) {
		char *u = word(&p), *pw = u != NULL ? word(&p) : NULL;
		if (pw == NULL) {
			out(s, "%s BAD Missing arguments.%s\r\n", tag, "");
			return;
		}
		uint8_t resp[600];
		size_t ul = strlen(u), pl = strlen(pw);
		if (ul + pl + 2 > sizeof(resp))
			return;
		resp[0] = 0;
		memcpy(resp + 1, u, ul);
		resp[1 + ul] = 0;
		memcpy(resp + 2 + ul, pw, pl);
		s->waiting = true;
		s->cb->auth_begin(s->ctx, "PLAIN", resp, ul + pl + 2, true);
	} else {
		out(s, "%s BAD Error in IMAP command received by server.%s\r\n", tag, "");
	}
}

static void fake_input(struct login_session *s, const uint8_t *data, size_t len)
{
	for (size_t i = 0; i < len && !s->closed; i++) {
		if (s->waiting) {
			if (s->pending_len < sizeof(s->pending))
				s->pending[s->pending_len++] = data[i];
			continue;
		}
		if (data[i] == '\n') {
			if (s->len > 0 && s->line[s->len - 1] == '\r')
				s->len--;
			s->line[s->len] = '\0';
			s->len = 0;
			fake_command(s, s->line);
		} else if (s->len < sizeof(s->line) - 1) {
			s->line[s->len++] = (char)data[i];
		}
	}
}

static struct login_session *fake_create(const struct login_proto_config *config,
					 const struct login_callbacks *cb, void *ctx)
{
	struct login_session *s = rg_calloc(1, sizeof(*s));
	s->cb = cb;
	s->ctx = ctx;
	out(s, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] %s%s\r\n", config->greeting, "");
	return s;
}

static void fake_auth_reply(struct login_session *s, enum login_auth_result result,
			    const uint8_t *data, size_t len, const char *reason)
{
	(void)data;
	(void)len;
	if (result == LOGIN_AUTH_OK) {
		s->cb->handoff(s->ctx, s->tag, s->pending, s->pending_len);
		return;
	}
	s->waiting = false;
	if (result == LOGIN_AUTH_TEMPFAIL)
		out(s, "%s NO [UNAVAILABLE] %s\r\n", s->tag, reason != NULL ? reason : "Temporary authentication failure.");
	else
		out(s, "%s NO [AUTHENTICATIONFAILED] %s\r\n", s->tag, reason != NULL ? reason : "Authentication failed.");
	uint8_t buf[LOGIN_MAX_PENDING];
	size_t n = s->pending_len;
	memcpy(buf, s->pending, n);
	s->pending_len = 0;
	fake_input(s, buf, n);
}

static void fake_handoff_failed(struct login_session *s, const char *reason)
{
	s->waiting = false;
	out(s, "%s NO [UNAVAILABLE] %s\r\n", s->tag, reason);
}

static void fake_bye(struct login_session *s, const char *text)
{
	if (s->closed)
		return;
	out(s, "* BYE %s%s\r\n", text, "");
	s->closed = true;
	s->cb->disconnect(s->ctx, text);
}

static void fake_destroy(struct login_session *s)
{
	rg_free(s);
}

const struct login_proto imap_login_proto = {
	.name = "imap",
	.backend_port = 143,
	.backend_fail_code = "[AUTHENTICATIONFAILED] ",
	.line_access_denied = "* BYE Access denied.\r\n",
	.line_internal_error = "* BYE [UNAVAILABLE] Internal error occurred.\r\n",
	.line_too_many_conns = "* BYE [UNAVAILABLE] Too many connections from your IP address.\r\n",
	.create = fake_create,
	.input = fake_input,
	.auth_reply = fake_auth_reply,
	.handoff_failed = fake_handoff_failed,
	.bye = fake_bye,
	.destroy = fake_destroy,
};
