/* login-tls.c — the client side of TLS: the engine fed from the ring (implicit TLS or
 * after STARTTLS), the handshake, pre-login records, the shared context and
 * its ticket keys. */
#include "login/login-private.h"

#include <strings.h>

static struct {
	struct tls_ctx *ctx;	/* built on first use */
	uint8_t ticket_keys[2 * TLS_TICKET_KEY_SIZE];
	size_t ticket_keys_len;	/* from master, applied when ctx exists */
} ctls;

void conn_tls_failed(struct conn *c, const char *what, const char *error)
{
	char msg[160];
	snprintf(msg, sizeof(msg), "%s: %s", what, error != NULL ? error : "failed");
	log_debug("conn %u: %s", c->slot, msg);
	if (c->tls != NULL && !tls_conn_handshake_done(c->tls))
		srv.stats.v[STAT_HS_FAILED]++;
	if (c->state != CONN_CLOSING) {
		conn_log_end(c, msg);
		/* flush the alert the engine queued */
		conn_close(c, false);
		conn_defer(c);
	}
}

/* Encrypt pre-login output (the core's replies): a client that does not read
 * them fills the engine's output buffer and is dropped. */
void conn_tls_write(struct conn *c, const void *data, size_t len)
{
	const uint8_t *p = data;
	const char *error;
	while (len > 0 && c->state != CONN_CLOSING) {
		size_t taken = 0;
		enum tls_result r = tls_conn_write(c->tls, p, len, &taken, &error);
		p += taken;
		len -= taken;
		if (r == TLS_ERROR) {
			conn_tls_failed(c, "TLS", error);
			return;
		}
		if (r == TLS_WANT_OUTPUT && len > 0) {
			conn_drop_not_reading(c);
			return;
		}
	}
	conn_send_more(c);
}

static void conn_tls_established(struct conn *c)
{
	c->flags |= CF_SECURED;
	srv.stats.v[tls_conn_resumed(c->tls) ? STAT_HS_RESUMED : STAT_HS_FULL]++;
	log_debug("conn %u: %s %s%s%s%s", c->slot, tls_conn_version(c->tls),
		  tls_conn_cipher(c->tls), tls_conn_resumed(c->tls) ? ", resumed" : "",
		  tls_conn_sni(c->tls) != NULL ? ", sni=" : "",
		  tls_conn_sni(c->tls) != NULL ? tls_conn_sni(c->tls) : "");
	if (access_handshake_done(c))
		return; /* refused by the access check meanwhile: told instead */
	if (c->session == NULL && c->access == NULL)
		conn_start_session(c); /* implicit TLS: the greeting goes out now */
}

/* Drive the engine after input or output progress: the handshake, then
 * every record it can decrypt. */
void conn_tls_pump(struct conn *c)
{
	const char *error;
	enum tls_result r;

	if (!tls_conn_handshake_done(c->tls)) {
		r = tls_conn_handshake(c->tls, &error);
		if (r == TLS_ERROR) {
			conn_tls_failed(c, "TLS handshaking", error);
			return;
		}
		if (r != TLS_OK) {
			conn_send_more(c);
			return;
		}
		conn_tls_established(c);
	}
	uint8_t buf[TLS_READ_CHUNK];
	/* not before the greeting (an access check still running): the
	 * engine keeps the records until then */
	while (c->state != CONN_CLOSING && (c->state != CONN_PRELOGIN || c->session != NULL)) {
		size_t n = 0;
		r = tls_conn_read(c->tls, buf, sizeof(buf), &n, &error);
		if (r == TLS_OK) {
			conn_plaintext_in(c, buf, n);
			continue;
		}
		if (r == TLS_CLOSED)
			conn_client_eof(c, false);
		else if (r == TLS_ERROR)
			conn_tls_failed(c, "TLS", error);
		break;
	}
	explicit_bzero(buf, sizeof(buf));
	conn_send_more(c);
}

static struct tls_ctx *login_tls_ctx(void)
{
	if (ctls.ctx == NULL) {
		ctls.ctx = srv.set->tls_build();
		if (ctls.ticket_keys_len > 0)
			login_tls_set_ticket_keys(ctls.ticket_keys, ctls.ticket_keys_len);
	}
	return ctls.ctx;
}

/* LOGIN_TICKET_KEYS from master: current, then maybe previous */
void login_tls_set_ticket_keys(const uint8_t *keys, size_t len)
{
	if (keys != ctls.ticket_keys)
		memcpy(ctls.ticket_keys, keys, len);
	ctls.ticket_keys_len = len;
	if (ctls.ctx != NULL)
		tls_ctx_set_ticket_keys(ctls.ctx, ctls.ticket_keys,
					len > TLS_TICKET_KEY_SIZE ?
					ctls.ticket_keys + TLS_TICKET_KEY_SIZE : NULL);
}

void login_tls_deinit(void)
{
	if (ctls.ctx != NULL)
		tls_ctx_free(&ctls.ctx);
	explicit_bzero(ctls.ticket_keys, sizeof(ctls.ticket_keys));
}

void conn_tls_input(struct conn *c, const uint8_t *data, size_t len)
{
	if (c->state == CONN_CLOSING)
		return;
	if (c->tls == NULL) {
		/* the first handshake byte: only now does TLS cost memory */
		c->tls = tls_conn_new(login_tls_ctx());
	}
	while (len > 0 && c->state != CONN_CLOSING) {
		size_t n = tls_conn_feed(c->tls, data, len);
		data += n;
		len -= n;
		conn_tls_pump(c);
		if (n == 0 && c->state != CONN_CLOSING) {
			/* the engine took nothing although it was drained */
			conn_tls_failed(c, "TLS", "input stalled");
			return;
		}
	}
}

/* What auth learns from the TLS session with AUTH_BEGIN: that the client
 * talks TLS (F_TLS: a -PLUS mechanism is offered), its certificate when the
 * context asks for one (F_CERT_VALID, F_CERT_USER), and for a -PLUS
 * mechanism the channel binding (F_CB_TYPE, F_CB_DATA). Nothing is computed
 * for a client without TLS, a certificate or a -PLUS mechanism. */
void conn_tls_msg_add_auth(struct conn *c, struct ipc_msg *msg, const char *mech)
{
	if (c->tls == NULL || !tls_conn_handshake_done(c->tls))
		return;
	ipc_msg_add_str(msg, IPC_F_TLS, "1");
	char name[TLS_CERT_NAME_MAX];
	const char *error = NULL;
	switch (tls_conn_peer_cert(c->tls, name, &error)) {
	case TLS_PEER_CERT_VALID:
		ipc_msg_add_str(msg, IPC_F_CERT_VALID, "1");
		if (name[0] != '\0')
			ipc_msg_add_str(msg, IPC_F_CERT_USER, name);
		break;
	case TLS_PEER_CERT_INVALID:
		/* Dovecot's login: "client sent an invalid cert"; auth sees
		 * no certificate and refuses what needs one */
		log_debug("conn %u: invalid client certificate: %s", c->slot, error);
		break;
	case TLS_PEER_CERT_NONE:
		break;
	}
	size_t mlen = strlen(mech);
	if (mlen > 5 && strcasecmp(mech + mlen - 5, "-PLUS") == 0) {
		uint8_t cb[TLS_CB_MAX];
		const char *type = NULL;
		size_t n = tls_conn_channel_binding(c->tls, &type, cb);
		if (n > 0) {
			ipc_msg_add_str(msg, IPC_F_CB_TYPE, type);
			ipc_msg_add(msg, IPC_F_CB_DATA, cb, n);
		}
		explicit_bzero(cb, sizeof(cb));
	}
}
