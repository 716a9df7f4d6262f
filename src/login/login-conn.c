/* login-conn.c — one client connection's lifecycle: its state machine (conn_set_state),
 * output queue and sends, receives, the protocol core's callbacks, closing
 * and the retire that frees it. */
#include "login/login-private.h"

#include <sys/random.h>

/* session ids come from this pool, refilled by one getrandom */
static struct {
	uint8_t bytes[SESSION_RAW * 64];
	unsigned pos;
} session_random;

const char *const conn_state_names[] = {
	[CONN_PRELOGIN] = "prelogin", [CONN_AUTHENTICATING] = "authenticating",
	[CONN_HANDOFF] = "handoff", [CONN_BACKEND] = "backend", [CONN_PROXY] = "proxy",
	[CONN_CLOSING] = "closing",
};

void conn_list_add(struct conn_list *l, struct conn *c)
{
	c->next = NULL;
	c->prev = l->tail;
	if (l->tail != NULL)
		l->tail->next = c;
	else
		l->head = c;
	l->tail = c;
}

static void conn_list_del(struct conn_list *l, struct conn *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		l->head = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	else
		l->tail = c->prev;
	c->prev = c->next = NULL;
}

static bool state_prelogin(enum conn_state s)
{
	return s == CONN_PRELOGIN || s == CONN_AUTHENTICATING || s == CONN_HANDOFF ||
	       s == CONN_BACKEND;
}

/* the one place a connection changes state */
void conn_set_state(struct conn *c, enum conn_state state)
{
	enum conn_state old = c->state;
	if (old == state)
		return;
	log_debug("conn %u: %s -> %s", c->slot, conn_state_names[old], conn_state_names[state]);
	if (state_prelogin(old) && !state_prelogin(state)) {
		srv.prelogin--;
		if (c->preauth.epoch != 0)
			iplimit_release(srv.set->iplimit, &c->preauth);
		if (state == CONN_PROXY)
			login_status();
	}
	if (old == CONN_BACKEND)
		srv.backends--;
	if (state == CONN_BACKEND)
		srv.backends++;
	if (state == CONN_CLOSING) {
		access_end(c);
		conn_list_del(&srv.live, c);
		conn_list_add(&srv.closing, c);
		c->deadline = srv.now + CONN_FLUSH_SECS;
	}
	c->state = (uint8_t)state;
}

/* cancel op on slot unless it is not armed or already being cancelled;
 * returns flags with the cancelled bit set when it was sent */
unsigned login_cancel_once(uint32_t slot, enum ring_op op, unsigned flags, unsigned armed,
			    unsigned cancelled)
{
	if ((flags & (armed | cancelled)) == armed) {
		ring_cancel(srv.ring, slot, op);
		flags |= cancelled;
	}
	return flags;
}

void conn_defer(struct conn *c)
{
	if ((c->flags & CF_DEFERRED) != 0)
		return;
	c->flags |= CF_DEFERRED;
	c->defer_next = srv.deferred;
	srv.deferred = c;
}

uint32_t conn_next_req_id(struct conn *c)
{
	if (++srv.req_seq >= (1u << (32 - REQ_SLOT_BITS)))
		srv.req_seq = 1;
	return (srv.req_seq << REQ_SLOT_BITS) | c->slot;
}

void conn_make_session_id(char *out)
{
	uint8_t *b = session_random.bytes;
	if (session_random.pos == 0 || session_random.pos + SESSION_RAW > sizeof(session_random.bytes)) {
		if (getrandom(b, sizeof(session_random.bytes), 0) != (ssize_t)sizeof(session_random.bytes))
			log_fatal("getrandom: %m");
		session_random.pos = 0;
	}
	base64_encode(b + session_random.pos, SESSION_RAW, out);
	session_random.pos += SESSION_RAW;
	/* session ids end up in log lines and file names: keep them tame */
	for (char *p = out; *p != '\0'; p++) {
		if (*p == '/')
			*p = '_';
		else if (*p == '+')
			*p = '-';
	}
}

/* a bounded line put together by copying (conn_log_end runs for every
 * client: no printf) */
struct line_out {
	char buf[512];
	size_t len;
};

static void line_add(struct line_out *o, const char *text)
{
	size_t n = strlen(text);
	if (n > sizeof(o->buf) - 1 - o->len)
		n = sizeof(o->buf) - 1 - o->len;
	memcpy(o->buf + o->len, text, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

static void line_add_uint(struct line_out *o, unsigned v)
{
	char digits[12];
	size_t i = sizeof(digits) - 1;
	digits[i] = '\0';
	do {
		digits[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	line_add(o, digits + i);
}

void conn_log_end(struct conn *c, const char *reason)
{
	if ((c->flags & CF_LOGGED) != 0)
		return;
	c->flags |= CF_LOGGED;
	char rip[64], lip[64], why[80], user[80];
	net_addr_ip(&c->remote, rip, sizeof(rip));
	net_addr_ip(&c->local, lip, sizeof(lip));
	log_escape(reason, strlen(reason), 60, why, sizeof(why));
	unsigned secs = srv.now - c->accept_time;
	const struct conn_auth *a = c->auth;
	unsigned attempts = a != NULL ? a->attempts : 0;
	if (a != NULL && a->user != NULL)
		log_escape(a->user, strlen(a->user), 64, user, sizeof(user));
	else
		user[0] = '\0';
	/* a client that logged out before logging in: Dovecot's classic
	   "Aborted login (...)", which fail2ban's dovecot filter knows */
	bool aborted = strncmp(reason, "Aborted login", 13) == 0;
	struct line_out o = { .len = 0 };
	line_add(&o, aborted ? "Aborted login" : "Disconnected");
	if (!aborted && why[0] != '\0') {
		line_add(&o, ": ");
		line_add(&o, why);
	}
	if (c->state == CONN_AUTHENTICATING) {
		line_add(&o, " (client didn't finish SASL auth, waited ");
		line_add_uint(&o, secs);
	} else if (attempts == 0) {
		line_add(&o, " (no auth attempts in ");
		line_add_uint(&o, secs);
	} else {
		line_add(&o, " (auth failed, ");
		line_add_uint(&o, attempts);
		line_add(&o, " attempts in ");
		line_add_uint(&o, secs);
	}
	/* Dovecot's login_log_format_elements: empty ones are left out */
	line_add(&o, " secs): user=<");
	line_add(&o, user);
	line_add(&o, ">, ");
	if (attempts > 0) {
		line_add(&o, "method=");
		line_add(&o, a->mech);
		line_add(&o, ", ");
	}
	line_add(&o, "rip=");
	line_add(&o, rip);
	line_add(&o, ", lip=");
	line_add(&o, lip);
	line_add(&o, (c->flags & CF_TLS) != 0 && c->tls != NULL && tls_conn_handshake_done(c->tls) ?
		     ", TLS" : (c->flags & CF_SECURED) != 0 ? ", secured" : "");
	line_add(&o, ", session=<");
	line_add(&o, c->session_id);
	line_add(&o, ">");
	log_text(LOG_INFO, o.buf);
}

static bool conn_output_pending(const struct conn *c)
{
	const uint8_t *data;
	size_t len;
	return outq_pending(c->out) > 0 ||
	       (c->tls != NULL && tls_conn_pending_output(c->tls, &data, &len));
}

/* Plaintext queued before TLS (the STARTTLS reply) goes first, then the
 * engine's records straight from its buffer. */
void conn_send_more(struct conn *c)
{
	struct outq *o = c->out;
	if ((c->flags & (CF_SEND | CF_FORCE)) != 0)
		return;
	if (outq_pending(o) > 0) {
		o->sending = o->tail - o->head;
		c->flags |= CF_SEND;
		/* a plaintext connection's last words (LOGOUT's reply, a
		 * BYE): held for the FIN, which conn_on_send() has follow
		 * them in the same segment */
		if (c->state == CONN_CLOSING && c->tls == NULL &&
		    (c->flags & (CF_HANDOFF_SENT | CF_RELAY)) == 0) {
			c->flags |= CF_SEND_LAST;
			ring_send_last(srv.ring, c->slot, c->fd, o->data + o->head, o->sending);
		} else
			ring_send(srv.ring, c->slot, c->fd, o->data + o->head, o->sending);
		return;
	}
	const uint8_t *data;
	size_t len;
	if (c->tls != NULL && tls_conn_pending_output(c->tls, &data, &len)) {
		c->flags |= CF_SEND | CF_SEND_TLS;
		ring_send(srv.ring, c->slot, c->fd, data, len);
	}
}

void conn_drop_not_reading(struct conn *c)
{
	log_debug("conn %u: client does not read its output", c->slot);
	conn_log_end(c, "Output buffer full");
	conn_close(c, true);
	conn_defer(c);
}

void conn_out_append(struct conn *c, const void *data, size_t len)
{
	if (state_prelogin(c->state) && outq_pending(c->out) + len > CONN_OUT_MAX) {
		conn_drop_not_reading(c);
		return;
	}
	if (c->state == CONN_CLOSING && (c->flags & CF_FORCE) != 0)
		return;
	outq_append(&c->out, data, len, (c->flags & CF_SEND) != 0 && (c->flags & CF_SEND_TLS) == 0);
	/* sent once the event is handled (login_process_deferred): what
	 * the core says in one event goes out in one send, and a reply the
	 * core ends the session with is known to be the last */
	conn_defer(c);
}

static void conn_out_free(struct conn *c)
{
	outq_free(&c->out);
}

static void conn_on_send(struct conn *c, int res)
{
	bool tls = (c->flags & CF_SEND_TLS) != 0;
	bool last = (c->flags & CF_SEND_LAST) != 0;
	c->flags &= ~(CF_SEND | CF_SEND_TLS | CF_SEND_LAST);
	if (res <= 0) {
		if (res != -ECANCELED)
			log_debug("conn %u: send: %s", c->slot, strerror(-res));
		if (!tls && c->out != NULL) {
			rg_free(c->out->retired);
			c->out->retired = NULL;
		}
		conn_log_end(c, "Connection closed");
		conn_close(c, true);
		return;
	}
	if (tls) {
		tls_conn_consume_output(c->tls, (size_t)res);
		/* the handshake goes on once its flight is out */
		if (c->state != CONN_CLOSING && !tls_conn_handshake_done(c->tls))
			conn_tls_pump(c);
	} else {
		outq_consume(&c->out, (size_t)res);
	}
	/* the last words are in: the FIN now, with them (a shutdown, not
	 * the close, which would reset instead when the client sent bytes
	 * nobody read, and drop them) */
	if (last && outq_pending(c->out) == 0 && c->fd >= 0)
		(void)shutdown(c->fd, SHUT_WR);
	conn_send_more(c);
}

void conn_close(struct conn *c, bool force)
{
	if (force)
		c->flags |= CF_FORCE;
	if (c->state == CONN_AUTHENTICATING)
		login_auth_abort(c);
	/* (a hand-off at master keeps its id: the reply releases the connection) */
	if (c->auth != NULL)
		c->auth->req_id = 0;
	conn_set_state(c, CONN_CLOSING);
}

/* Free c now: nothing of it is in flight (its slot retired and freed, or
 * given to a pump that is over) and no caller still looks at it. */
void conn_free_now(struct conn *c)
{
	log_debug("conn %u: freed", c->slot);
	conn_list_del(&srv.closing, c);
	if (c->session != NULL)
		srv.set->proto->destroy(c->session);
	if (c->fd >= 0)
		ring_close(srv.ring, c->fd);
	conn_out_free(c);
	access_end(c);
	login_auth_end(c);
	conn_handoff_end(c);
	conn_backend_free(&c->be);
	if (c->tls != NULL)
		tls_conn_free(&c->tls);
	admit_haproxy_end(c);
	rg_free(c);
	srv.conns--;
	login_status();
	login_accept_update();
}

/* the ring is done with c's slot (ring_slot_retire) */
static void conn_free(struct ring_owner *owner)
{
	conn_free_now(RING_OWNER(owner, struct conn, ro));
}

static bool conn_wants_recv(const struct conn *c)
{
	switch ((enum conn_state)c->state) {
	case CONN_PRELOGIN:
	case CONN_AUTHENTICATING:
		/* a plaintext client is not read before its greeting */
		return c->access == NULL || (c->flags & CF_TLS) != 0;
	case CONN_HANDOFF:
		/* a TLS client's later bytes are decrypted into the preread */
		return (c->flags & CF_TLS) != 0;
	case CONN_BACKEND:
		return true; /* into the preread, for the backend */
	case CONN_PROXY:
		break; /* the pump reads it */
	case CONN_CLOSING:
		break;
	}
	return false;
}

void conn_recv_arm(struct conn *c)
{
	if ((c->flags & CF_RECV) == 0 && conn_wants_recv(c)) {
		c->flags |= CF_RECV;
		ring_recv(srv.ring, c->slot, c->fd);
	}
}

/* Plaintext from the engine, wherever the session is. */
void conn_plaintext_in(struct conn *c, const uint8_t *data, size_t len)
{
	switch ((enum conn_state)c->state) {
	case CONN_PRELOGIN:
	case CONN_AUTHENTICATING:
		srv.set->proto->input(c->session, data, len);
		break;
	case CONN_HANDOFF:
	case CONN_BACKEND:
		conn_handoff_preread(c, data, len);
		break;
	case CONN_PROXY: /* the pump reads it */
	case CONN_CLOSING:
		break;
	}
}

/* The client will send nothing more (EOF or close_notify). */
void conn_client_eof(struct conn *c, bool error)
{
	if (c->state != CONN_CLOSING) {
		if ((c->flags & CF_HAPROXY) != 0) {
			char rip[64];
			log_info("haproxy: Client disconnected (rip=%s)",
				 net_addr_ip(&c->remote, rip, sizeof(rip)));
			c->flags |= CF_LOGGED;
		}
		conn_log_end(c, error ? "Connection error" : "");
		conn_close(c, true);
	}
}

/* Make progress on a connection after an event; it may be retired (the
 * ring frees it after this event). Only called when no protocol-core
 * function is on the stack. */
void conn_check(struct conn *c)
{
	/* on the deferred list: login_process_deferred() comes back to it, and
	 * freeing it now would leave the list pointing at freed memory */
	if ((c->flags & CF_DEFERRED) != 0)
		return;
	switch ((enum conn_state)c->state) {
	case CONN_PRELOGIN:
	case CONN_AUTHENTICATING:
		return;
	case CONN_HANDOFF:
		if ((c->flags & CF_TLS) != 0) {
			/* the socket stays ours: hand off a socketpair now, and
			 * keep reading (later bytes join the preread) */
			if ((c->flags & CF_HANDOFF_SENT) == 0)
				conn_send_handoff(c);
			return;
		}
		/* wait for the receive to end (its bytes join preread) and the
		 * output to be flushed, then pass the socket */
		if ((c->flags & (CF_RECV | CF_SEND | CF_HANDOFF_SENT)) == 0 &&
		    !conn_output_pending(c))
			conn_send_handoff(c);
		return;
	case CONN_BACKEND:
	case CONN_PROXY:
		return;
	case CONN_CLOSING:
		break;
	}
	if ((c->flags & CF_RETIRED) != 0)
		return;
	if ((c->flags & CF_RELAY) != 0) {
		/* the pump has the client: it ends itself (done frees c),
		 * unless it must end now */
		if ((c->flags & CF_FORCE) != 0) {
			relay_abort(c);
			conn_free_now(c);
		} else {
			proxy_pump_tick(c->pump);
		}
		return;
	}
	bool flushed = !conn_output_pending(c);
	if (!flushed && (c->flags & CF_FORCE) == 0 && (int32_t)(srv.now - c->deadline) < 0) {
		/* still flushing; stop reading meanwhile */
		c->flags = login_cancel_once(c->slot, RING_OP_RECV, c->flags, CF_RECV, CF_RECV_CANCELLED);
		return;
	}
	if (!flushed)
		c->flags |= CF_FORCE;
	if ((c->flags & CF_HANDOFF_SENT) != 0) {
		/* master's answer first; stop reading meanwhile */
		c->flags = login_cancel_once(c->slot, RING_OP_RECV, c->flags, CF_RECV, CF_RECV_CANCELLED);
		return;
	}
	/* a connect to an unreachable backend may take minutes: the pump's
	 * end cancels it with the rest */
	if (c->pump != NULL)
		relay_abort(c);
	c->flags |= CF_RETIRED;
	ring_slot_retire(srv.ring, c->slot, conn_free);
}

void conn_cb_send(void *ctx, const void *data, size_t len)
{
	struct conn *c = ctx;
	if (c->tls != NULL && tls_conn_handshake_done(c->tls))
		conn_tls_write(c, data, len);
	else
		conn_out_append(c, data, len);
}

static void cb_disconnect(void *ctx, const char *reason)
{
	struct conn *c = ctx;
	if (c->state == CONN_CLOSING)
		return;
	conn_log_end(c, reason != NULL ? reason : "");
	conn_close(c, false);
	conn_defer(c);
}

/* the core said OK to STARTTLS/STLS (queued in plaintext): the next bytes
 * are the client's handshake */
static void cb_starttls(void *ctx)
{
	struct conn *c = ctx;
	if (srv.set->tls_build == NULL || (c->flags & CF_TLS) != 0)
		log_fatal("conn %u: STARTTLS without TLS", c->slot);
	c->flags |= CF_TLS;
}

/* A client in login_trusted_networks (a proxy: another ringgate, Dovecot,
 * nginx) says who its client is: those addresses and session are used for
 * auth's penalty, the logs and the hand-off from now on. */
static void cb_forward(void *ctx, const char *key, const char *value)
{
	struct conn *c = ctx;
	char esc[64];
	if (strcmp(key, "rip") == 0 || strcmp(key, "lip") == 0) {
		struct net_addr *a = key[0] == 'r' ? &c->remote : &c->local;
		if (!net_addr_parse(value, a))
			goto bad;
	} else if (strcmp(key, "rport") == 0 || strcmp(key, "lport") == 0) {
		char *end;
		unsigned long n = strtoul(value, &end, 10);
		if (value[0] < '0' || value[0] > '9' || *end != '\0' || n > 65535)
			goto bad;
		(key[0] == 'r' ? &c->remote : &c->local)->port = (uint16_t)n;
	} else if (strcmp(key, "session") == 0) {
		size_t n = strlen(value);
		if (n == 0 || n >= sizeof(c->session_id) ||
		    strspn(value, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-") != n)
			goto bad;
		memcpy(c->session_id, value, n + 1);
	}
	log_debug("conn %u: forwarded %s", c->slot, key);
	return;
bad:
	log_escape(value, strlen(value), 40, esc, sizeof(esc));
	log_warning("conn %u: ignoring invalid forwarded %s '%s'", c->slot, key, esc);
}

static const struct login_callbacks conn_callbacks = {
	.send = conn_cb_send,
	.auth_begin = auth_cb_begin,
	.auth_continue = auth_cb_continue,
	.auth_abort = auth_cb_abort,
	.handoff = handoff_cb,
	.disconnect = cb_disconnect,
	.starttls = cb_starttls,
	.forward = cb_forward,
};

/* "* BYE text" / "-ERR text" and close; the core normally calls
 * disconnect itself, this covers a core that does not */
void conn_bye(struct conn *c, const char *text, const char *log_reason)
{
	conn_log_end(c, log_reason);
	if (c->session != NULL)
		srv.set->proto->bye(c->session, text);
	if (c->state != CONN_CLOSING)
		conn_close(c, false);
	conn_check(c);
}

/* the protocol core's session: at accept, or after the handshake for
 * implicit TLS (the greeting is the first thing encrypted) */
void conn_start_session(struct conn *c)
{
	bool secured = (c->flags & CF_SECURED) != 0;
	struct login_proto_config pc = {
		.greeting = srv.set->greeting,
		.hostname = srv.set->hostname,
		.mechanisms = srv.set->mechanisms,
		.secured = secured,
		.plaintext_auth_allowed = secured || (!srv.set->disable_plaintext_auth &&
						      !srv.set->ssl_required),
		/* as Dovecot: no STARTTLS when the proxy terminated TLS */
		.starttls_available = srv.set->tls_build != NULL &&
				      (c->flags & (CF_TLS | CF_HAPROXY_SSL)) == 0,
		.trusted = net_list_match(srv.set->trusted, &c->remote),
		.tls = (c->flags & CF_TLS) != 0,
	};
	c->session = srv.set->proto->create(&pc, &conn_callbacks, c);
	if (c->session == NULL) {
		c->flags |= CF_LOGGED;
		conn_close(c, true);
	}
}

static void conn_on_recv(struct conn *c, const struct ring_event *ev)
{
	if (!ev->more)
		c->flags &= ~CF_RECV;
	if (ev->res > 0 && (c->flags & CF_HAPROXY) != 0) {
		conn_haproxy_input(c, ev->data, (size_t)ev->res);
	} else if (ev->res > 0 && (c->flags & CF_TLS) != 0) {
		conn_tls_input(c, ev->data, (size_t)ev->res);
	} else if (ev->res > 0) {
		switch ((enum conn_state)c->state) {
		case CONN_PRELOGIN:
		case CONN_AUTHENTICATING:
			if (c->session == NULL)
				conn_early_input(c, ev->data, (size_t)ev->res);
			else
				srv.set->proto->input(c->session, ev->data, (size_t)ev->res);
			break;
		case CONN_HANDOFF:
		case CONN_BACKEND:
			conn_handoff_preread(c, ev->data, (size_t)ev->res);
			break;
		case CONN_PROXY:
			conn_plaintext_in(c, ev->data, (size_t)ev->res);
			break;
		case CONN_CLOSING:
			break;
		}
	} else if (ev->res == 0 || (ev->res != -ENOBUFS && ev->res != -ECANCELED)) {
		if (ev->res < 0)
			log_debug("conn %u: recv: %s", c->slot, strerror(-ev->res));
		conn_client_eof(c, ev->res < 0);
	}
	if ((c->flags & CF_RECV) == 0) {
		c->flags &= ~CF_RECV_CANCELLED;
		/* a multishot receive that ended (buffers ran out, or a pause
		 * that is over) is issued again while it is wanted */
		if (ev->rearm || ev->res == -ECANCELED)
			conn_recv_arm(c);
	}
	conn_check(c);
}

void conn_event(struct ring_owner *owner, const struct ring_event *ev)
{
	struct conn *c = RING_OWNER(owner, struct conn, ro);
	switch (ev->op) {
	case RING_OP_RECV:
		conn_on_recv(c, ev);
		break;
	case RING_OP_SEND:
		conn_on_send(c, ev->res);
		conn_check(c);
		break;
	default:
		log_fatal("conn %u: unexpected ring op %d", c->slot, (int)ev->op);
	}
}

/* the connection on the slot a request id names; the phase that sent the
 * request (auth, hand-off) checks the id is its own */
struct conn *conn_by_req(uint32_t id)
{
	struct ring_owner *o = ring_slot_owner(srv.ring, id & REQ_SLOT_MASK);
	if (o == NULL || o->event != conn_event || id == 0)
		return NULL;
	return RING_OWNER(o, struct conn, ro);
}

/* who the client is, for auth (penalty, logs) and master (the worker's
 * environment): addresses, ports, and whether it is secured */
void conn_msg_add_client(const struct conn *c, struct ipc_msg *msg)
{
	char rip[64], lip[64];
	ipc_msg_add_str(msg, IPC_F_RIP, net_addr_ip(&c->remote, rip, sizeof(rip)));
	ipc_msg_add_uint(msg, IPC_F_RPORT, c->remote.port);
	ipc_msg_add_str(msg, IPC_F_LIP, net_addr_ip(&c->local, lip, sizeof(lip)));
	ipc_msg_add_uint(msg, IPC_F_LPORT, c->local.port);
	if ((c->flags & CF_SECURED) != 0)
		ipc_msg_add_str(msg, IPC_F_SECURED, "1");
}
