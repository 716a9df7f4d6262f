/* login-relay.c — the relays after login, on the pump (src/proxy/proxy-pump.h):
 * a TLS client's plaintext to its worker's socketpair, any client's bytes to
 * its backend. The connection hands its fd, slot, TLS engine and output
 * queue to the pump and keeps only its lifecycle (lists, counts, the log
 * line); the pump's done() ends it. */
#include "login/login-private.h"

/* the server end is done: the client takes the rest within PUMP_FLUSH_SECS,
 * on the closing list, where the tick looks at it */
static void relay_closing(void *ctx)
{
	struct conn *c = ctx;
	conn_set_state(c, CONN_CLOSING);
	c->deadline = srv.now + PUMP_FLUSH_SECS;
}

/* count and log a relay's end; c no longer has one */
static void relay_account(struct conn *c, uint64_t in, uint64_t out, const char *error)
{
	c->pump = NULL;
	const char *name = login_auth_user(c);
	if ((c->flags & CF_RELAY_BACKEND) != 0 && name != NULL) {
		char user[80];
		log_escape(name, strlen(name), 64, user, sizeof(user));
		log_info("proxy(%s): disconnected%s%s, in=%llu out=%llu, session=<%s>", user,
			 error != NULL ? ": " : "", error != NULL ? error : "",
			 (unsigned long long)in, (unsigned long long)out, c->session_id);
	}
	log_debug("conn %u: proxy done: in=%llu out=%llu%s%s", c->slot, (unsigned long long)in,
		  (unsigned long long)out, error != NULL ? ": " : "", error != NULL ? error : "");
	srv.stats.v[STAT_PROXY_IN] += in;
	srv.stats.v[STAT_PROXY_OUT] += out;
}

/* the pump is over and freed: so is the connection (called from the ring
 * after the event, nothing of c is on the stack) */
static void relay_done(void *ctx, uint64_t in, uint64_t out, const char *error)
{
	struct conn *c = ctx;
	relay_account(c, in, out, error);
	if (c->state != CONN_CLOSING)
		conn_set_state(c, CONN_CLOSING);
	conn_free_now(c);
}

/* A relay that must end now (shutdown, or the client went before the relay
 * started): no more callbacks; the ring closes its ends. */
void relay_abort(struct conn *c)
{
	uint64_t in, out;
	proxy_pump_counts(c->pump, &in, &out);
	proxy_pump_abort(c->pump);
	relay_account(c, in, out, NULL);
}

static const struct proxy_pump_callbacks relay_callbacks = {
	.closing = relay_closing,
	.done = relay_done,
};

/* The client's end goes to the pump with whatever it has in flight. */
static void relay_handover(struct conn *c)
{
	struct proxy_pump_handover h = {
		.fd = c->fd,
		.slot = c->slot,
		.tls = c->tls,
		.out = c->out,
		.recv_armed = (c->flags & CF_RECV) != 0,
		.send_armed = (c->flags & CF_SEND) != 0,
		.send_tls = (c->flags & CF_SEND_TLS) != 0,
	};
	proxy_pump_attach_client(c->pump, &h);
	c->fd = -1;
	c->tls = NULL;
	c->out = NULL;
	c->flags = (c->flags & ~(CF_RECV | CF_RECV_CANCELLED | CF_SEND | CF_SEND_TLS)) | CF_RELAY;
}

/* the pre-login state is over once the relay runs (a backend relay's end
 * line names the user: it keeps the auth phase) */
static void relay_prelogin_free(struct conn *c)
{
	conn_handoff_end(c);
	if (c->session != NULL) {
		srv.set->proto->destroy(c->session);
		c->session = NULL;
	}
	if ((c->flags & CF_RELAY_BACKEND) == 0)
		login_auth_end(c);
}

/* After a successful hand-off of a TLS client: relay between its engine and
 * the worker's socketpair. */
void relay_start(struct conn *c)
{
	struct conn_handoff *ho = c->ho;
	c->pump = proxy_pump_new(srv.ring, &srv.now, &relay_callbacks, c);
	proxy_pump_attach_server(c->pump, ho->proxy_fd, true);
	ho->proxy_fd = -1;
	relay_handover(c);
	conn_set_state(c, CONN_PROXY);
	/* bytes decrypted after the hand-off was sent: the worker's first
	 * input after the preread that travelled with it */
	proxy_pump_start(c->pump, ho->preread + ho->sent_len,
			 (size_t)(ho->preread_len - ho->sent_len), NULL, 0);
	relay_prelogin_free(c);
}

/* The backend said OK and its line (with the client's tag) is queued to the
 * client: the client's end joins the backend's, what the client pipelined
 * goes to the backend, and rest (the backend's bytes after its OK) to the
 * client. */
void relay_start_backend(struct conn *c, const uint8_t *rest, size_t rest_len)
{
	struct conn_handoff *ho = c->ho;
	relay_handover(c);
	c->flags |= CF_RELAY_BACKEND;
	conn_set_state(c, CONN_PROXY);
	proxy_pump_start(c->pump, ho->preread, ho->preread_len, rest, rest_len);
	relay_prelogin_free(c);
}

const struct proxy_pump_callbacks *relay_backend_callbacks(void)
{
	static const struct proxy_pump_callbacks cb = {
		.input = backend_pump_input,
		.connected = backend_pump_connected,
		.tls_ready = backend_pump_tls_ready,
		.failed = backend_pump_failed,
		.closing = relay_closing,
		.done = relay_done,
	};
	return &cb;
}
