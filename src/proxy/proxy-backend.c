#include "proxy/proxy-backend.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/alloc.h"
#include "lib/base64.h"

enum backend_state {
	B_GREETING,
	B_STARTTLS,	/* waiting for STARTTLS's / STLS's answer */
	B_TLS,		/* BACKEND_STARTTLS returned: waiting for the handshake */
	B_CAPA,		/* IMAP: waiting for "C" (CAPABILITY) */
	B_LOGIN,	/* IMAP: waiting for "L" (and "I" before it) */
	B_XCLIENT,	/* POP3 */
	B_AUTH,		/* POP3 */
	B_DONE,
};

/* line[0..line_len) is the backend line in progress (without CRLF once
 * complete); reply holds the last answer handed out. */
struct backend_login {
	enum backend_state state;
	bool pop3, has_id, sasl_ir, want_cont, starttls, xclient;
	backend_send_fn *send;
	void *ctx;
	char *user, *master, *rip, *lip, *session;
	uint8_t *pass;
	size_t pass_len;
	unsigned rport, lport;
	size_t line_len;
	char line[BACKEND_MAX_LINE + 1];
};

struct backend_login *backend_login_new(const struct backend_login_config *cfg,
					backend_send_fn *send, void *ctx)
{
	struct backend_login *b = rg_calloc(1, sizeof(*b));
	b->pop3 = cfg->pop3;
	b->starttls = cfg->starttls;
	b->send = send;
	b->ctx = ctx;
	b->user = rg_strdup(cfg->user);
	b->master = cfg->master != NULL && cfg->master[0] != '\0' ? rg_strdup(cfg->master) : NULL;
	b->pass = rg_malloc(cfg->pass_len + 1);
	memcpy(b->pass, cfg->pass, cfg->pass_len);
	b->pass_len = cfg->pass_len;
	b->rip = rg_strdup(cfg->rip != NULL ? cfg->rip : "");
	b->lip = rg_strdup(cfg->lip != NULL ? cfg->lip : "");
	b->session = rg_strdup(cfg->session != NULL ? cfg->session : "");
	b->rport = cfg->rport;
	b->lport = cfg->lport;
	return b;
}

void backend_login_free(struct backend_login **bp)
{
	struct backend_login *b = *bp;
	if (b == NULL)
		return;
	*bp = NULL;
	explicit_bzero(b->pass, b->pass_len);
	explicit_bzero(b->line, sizeof(b->line));
	rg_free(b->pass);
	rg_free(b->user);
	rg_free(b->master);
	rg_free(b->rip);
	rg_free(b->lip);
	rg_free(b->session);
	rg_free(b);
}

static void send_str(struct backend_login *b, const char *s)
{
	b->send(b->ctx, s, strlen(s));
}

/* base64 of PLAIN's "authzid NUL authcid NUL password", then CRLF */
static void send_plain(struct backend_login *b, const char *prefix)
{
	const char *authzid = b->master != NULL ? b->user : "";
	const char *authcid = b->master != NULL ? b->master : b->user;
	size_t zl = strlen(authzid), cl = strlen(authcid);
	size_t raw_len = zl + 1 + cl + 1 + b->pass_len;
	size_t plen = strlen(prefix);
	uint8_t *raw = rg_malloc(raw_len);
	memcpy(raw, authzid, zl);
	raw[zl] = '\0';
	memcpy(raw + zl + 1, authcid, cl);
	raw[zl + 1 + cl] = '\0';
	memcpy(raw + zl + 2 + cl, b->pass, b->pass_len);
	size_t out_size = plen + BASE64_ENCODED_LEN(raw_len) + 3;
	char *out = rg_malloc(out_size);
	memcpy(out, prefix, plen);
	size_t n = plen + base64_encode(raw, raw_len, out + plen);
	out[n++] = '\r';
	out[n++] = '\n';
	b->send(b->ctx, out, n);
	explicit_bzero(raw, raw_len);
	explicit_bzero(out, out_size);
	rg_free(raw);
	rg_free(out);
}

static bool starts(const char *line, const char *prefix)
{
	return strncasecmp(line, prefix, strlen(prefix)) == 0;
}

/* capability words in s up to ']' or the end */
static void imap_caps(struct backend_login *b, const char *s)
{
	while (*s != '\0' && *s != ']') {
		while (*s == ' ')
			s++;
		size_t n = strcspn(s, " ]");
		if (n == 2 && strncasecmp(s, "ID", 2) == 0)
			b->has_id = true;
		else if (n == 7 && strncasecmp(s, "SASL-IR", 7) == 0)
			b->sasl_ir = true;
		s += n;
	}
}

/* ID and the login, pipelined */
static void imap_login(struct backend_login *b)
{
	if (b->has_id) {
		char id[512];
		snprintf(id, sizeof(id),
			 "I ID (\"x-originating-ip\" \"%s\" \"x-originating-port\" \"%u\" "
			 "\"x-connected-ip\" \"%s\" \"x-connected-port\" \"%u\" "
			 "\"x-session-id\" \"%s\")\r\n",
			 b->rip, b->rport, b->lip, b->lport, b->session);
		send_str(b, id);
	}
	if (b->sasl_ir) {
		send_plain(b, "L AUTHENTICATE PLAIN ");
	} else {
		send_str(b, "L AUTHENTICATE PLAIN\r\n");
		b->want_cont = true;
	}
	b->state = B_LOGIN;
}

static enum backend_result imap_line(struct backend_login *b, const char **reply_r)
{
	const char *line = b->line;
	switch (b->state) {
	case B_GREETING:
		if (!starts(line, "* OK")) {
			*reply_r = "unexpected greeting";
			return BACKEND_ERROR;
		}
		if (b->starttls) {
			send_str(b, "S STARTTLS\r\n");
			b->state = B_STARTTLS;
		} else if (starts(line, "* OK [CAPABILITY ")) {
			imap_caps(b, line + 17);
			imap_login(b);
		} else {
			send_str(b, "C CAPABILITY\r\n");
			b->state = B_CAPA;
		}
		return BACKEND_MORE;
	case B_STARTTLS:
		if (starts(line, "S OK")) {
			*reply_r = line;
			b->state = B_TLS;
			return BACKEND_STARTTLS;
		}
		if (starts(line, "* "))
			return BACKEND_MORE;
		*reply_r = "STARTTLS refused";
		return BACKEND_ERROR;
	case B_CAPA:
		if (starts(line, "* CAPABILITY ")) {
			imap_caps(b, line + 13);
		} else if (starts(line, "C ")) {
			imap_login(b);
		} else if (!starts(line, "* ")) {
			*reply_r = "unexpected reply to CAPABILITY";
			return BACKEND_ERROR;
		}
		return BACKEND_MORE;
	case B_LOGIN:
		if (line[0] == '+' && (line[1] == ' ' || line[1] == '\0')) {
			if (!b->want_cont) {
				*reply_r = "unexpected continuation";
				return BACKEND_ERROR;
			}
			b->want_cont = false;
			send_plain(b, "");
			return BACKEND_MORE;
		}
		if (starts(line, "* ") || starts(line, "I "))
			return BACKEND_MORE; /* untagged data; ID's answer whatever it is */
		if (starts(line, "L OK")) {
			*reply_r = line + 2;
			b->state = B_DONE;
			return BACKEND_OK;
		}
		if (starts(line, "L NO") || starts(line, "L BAD")) {
			*reply_r = line + 2;
			b->state = B_DONE;
			return BACKEND_FAIL;
		}
		*reply_r = "unexpected reply to AUTHENTICATE";
		return BACKEND_ERROR;
	default:
		break;
	}
	*reply_r = "protocol state";
	return BACKEND_ERROR;
}

/* after the greeting (and STLS): XCLIENT if offered, then the login */
static enum backend_result pop3_after_greeting(struct backend_login *b)
{
	if (b->xclient) {
		char x[256];
		snprintf(x, sizeof(x), "XCLIENT ADDR=%s PORT=%u SESSION=%s\r\n", b->rip, b->rport,
			 b->session);
		send_str(b, x);
		b->state = B_XCLIENT;
		return BACKEND_MORE;
	}
	send_plain(b, "AUTH PLAIN ");
	b->state = B_AUTH;
	return BACKEND_MORE;
}

void backend_login_tls_started(struct backend_login *b)
{
	if (b->state != B_TLS)
		return;
	if (b->pop3) {
		(void)pop3_after_greeting(b);
		return;
	}
	/* capabilities may differ after TLS (RFC 3501 6.2.1) */
	b->has_id = b->sasl_ir = false;
	send_str(b, "C CAPABILITY\r\n");
	b->state = B_CAPA;
}

static enum backend_result pop3_line(struct backend_login *b, const char **reply_r)
{
	const char *line = b->line;
	switch (b->state) {
	case B_GREETING:
		if (!starts(line, "+OK")) {
			*reply_r = "unexpected greeting";
			return BACKEND_ERROR;
		}
		b->xclient = starts(line, "+OK [XCLIENT]");
		if (b->starttls) {
			send_str(b, "STLS\r\n");
			b->state = B_STARTTLS;
			return BACKEND_MORE;
		}
		return pop3_after_greeting(b);
	case B_STARTTLS:
		if (!starts(line, "+OK")) {
			*reply_r = "STLS refused";
			return BACKEND_ERROR;
		}
		*reply_r = line;
		b->state = B_TLS;
		return BACKEND_STARTTLS;
	case B_XCLIENT:
		if (!starts(line, "+OK")) {
			*reply_r = "XCLIENT refused";
			return BACKEND_ERROR;
		}
		send_plain(b, "AUTH PLAIN ");
		b->state = B_AUTH;
		return BACKEND_MORE;
	case B_AUTH:
		if (starts(line, "+OK")) {
			*reply_r = line;
			b->state = B_DONE;
			return BACKEND_OK;
		}
		if (starts(line, "-ERR")) {
			*reply_r = line;
			b->state = B_DONE;
			return BACKEND_FAIL;
		}
		*reply_r = "unexpected reply to AUTH";
		return BACKEND_ERROR;
	default:
		break;
	}
	*reply_r = "protocol state";
	return BACKEND_ERROR;
}

enum backend_result backend_login_input(struct backend_login *b, const uint8_t *data, size_t len,
					size_t *consumed_r, const char **reply_r)
{
	*reply_r = NULL;
	if (b->state == B_DONE || b->state == B_TLS) {
		*consumed_r = 0;
		*reply_r = b->state == B_TLS ? "plaintext input during STARTTLS" : "input after the login";
		return BACKEND_ERROR;
	}
	for (size_t i = 0; i < len; i++) {
		uint8_t c = data[i];
		if (c != '\n') {
			if (b->line_len >= BACKEND_MAX_LINE || c == '\0') {
				*consumed_r = i + 1;
				*reply_r = c == '\0' ? "NUL in a line" : "line too long";
				b->state = B_DONE;
				return BACKEND_ERROR;
			}
			b->line[b->line_len++] = (char)c;
			continue;
		}
		if (b->line_len > 0 && b->line[b->line_len - 1] == '\r')
			b->line_len--;
		b->line[b->line_len] = '\0';
		b->line_len = 0;
		enum backend_result r = b->pop3 ? pop3_line(b, reply_r) : imap_line(b, reply_r);
		if (r != BACKEND_MORE) {
			/* BACKEND_STARTTLS too: what follows is the handshake's */
			*consumed_r = i + 1;
			if (r == BACKEND_ERROR)
				b->state = B_DONE;
			return r;
		}
	}
	*consumed_r = len;
	return BACKEND_MORE;
}
