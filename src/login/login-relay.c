/* login-relay.c — the relays after login: a TLS client's plaintext to its worker, any
 * client's bytes to its backend (plaintext or TLS), with back-pressure. */
#include "login/login-private.h"

static void backend_tls_failed(struct conn_proxy *px, const char *what, const char *error);
static void backend_tls_feed(struct conn_proxy *px);

void relay_send_more(struct conn_proxy *px)
{
	struct outq *q = px->to_worker;
	if ((px->flags & (PX_SEND | PX_CONNECTING)) != 0 || px->c == NULL ||
	    (px->c->state != CONN_PROXY && px->c->state != CONN_BACKEND))
		return;
	if (px->tls != NULL) {
		/* plaintext into the backend's engine (after its handshake),
		 * then its records out */
		const char *error;
		while (tls_conn_handshake_done(px->tls) && outq_pending(px->to_worker) > 0) {
			q = px->to_worker;
			size_t taken = 0;
			enum tls_result r = tls_conn_write(px->tls, q->data + q->head,
							   q->tail - q->head, &taken, &error);
			if (taken > 0)
				outq_consume(&px->to_worker, taken);
			if (r == TLS_ERROR) {
				backend_tls_failed(px, "TLS", error);
				return;
			}
			if (taken == 0)
				break;
		}
		const uint8_t *data;
		size_t len;
		if (tls_conn_pending_output(px->tls, &data, &len)) {
			px->flags |= PX_SEND | PX_SEND_TLS;
			ring_send(srv.ring, px->slot, px->fd, data, len);
			return;
		}
		q = px->to_worker;
	}
	if (outq_pending(q) == 0) {
		if ((px->flags & (PX_CLIENT_EOF | PX_SHUT)) == PX_CLIENT_EOF) {
			/* the client is done: the worker reads EOF, ends the
			 * session and closes, which ends ours */
			px->flags |= PX_SHUT;
			(void)shutdown(px->fd, SHUT_WR);
		}
		return;
	}
	q->sending = q->tail - q->head;
	px->flags |= PX_SEND;
	ring_send(srv.ring, px->slot, px->fd, q->data + q->head, q->sending);
}

/* The worker is done and everything it said is with the engine: say
 * close_notify, flush, close. */
static void relay_finish(struct conn_proxy *px)
{
	struct conn *c = px->c;
	const char *error;
	if (c->state != CONN_PROXY)
		return;
	if (c->tls != NULL && tls_conn_shutdown(c->tls, &error) == TLS_ERROR)
		log_debug("conn %u: TLS shutdown: %s", c->slot, error);
	conn_close(c, false);
	c->deadline = srv.now + PROXY_FLUSH_SECS;
	conn_send_more(c);
}

/* Worker output into the engine; what it cannot take waits in hold and the
 * worker is not read until the client has taken some. */
void relay_to_client(struct conn_proxy *px, const uint8_t *data, size_t len)
{
	struct conn *c = px->c;
	const char *error;
	size_t taken = 0;

	px->out += len;
	if (c->tls == NULL) {
		/* a plaintext client (backend proxy): its own output queue is
		 * the buffer; stop reading the backend while it is full */
		outq_append(&c->out, data, len, (c->flags & CF_SEND) != 0);
		if (outq_pending(c->out) > PROXY_TO_WORKER_MAX) {
			px->flags |= PX_PAUSED;
			px->flags = login_cancel_once(px->slot, RING_OP_RECV, px->flags, PX_RECV,
							  PX_RECV_CANCELLED);
		}
		conn_send_more(c);
		return;
	}
	if (outq_pending(px->hold) == 0) {
		if (tls_conn_write(c->tls, data, len, &taken, &error) == TLS_ERROR) {
			conn_tls_failed(c, "TLS", error);
			return;
		}
	}
	if (taken < len) {
		outq_append(&px->hold, data + taken, len - taken, false);
		px->flags |= PX_PAUSED;
		px->flags = login_cancel_once(px->slot, RING_OP_RECV, px->flags, PX_RECV, PX_RECV_CANCELLED);
	}
	conn_send_more(c);
}

static void relay_recv_arm(struct conn_proxy *px)
{
	if ((px->flags & (PX_RECV | PX_PAUSED | PX_WORKER_EOF | PX_CONNECTING)) == 0 &&
	    px->c != NULL && (px->c->state == CONN_PROXY || px->c->state == CONN_BACKEND)) {
		px->flags |= PX_RECV;
		ring_recv(srv.ring, px->slot, px->fd);
	}
}

/* The client took some output: move held worker output into the engine. */
void relay_output_room(struct conn_proxy *px)
{
	struct conn *c = px->c;
	const char *error;
	while (outq_pending(px->hold) > 0) {
		struct outq *h = px->hold;
		size_t taken = 0;
		if (tls_conn_write(c->tls, h->data + h->head, h->tail - h->head, &taken,
				   &error) == TLS_ERROR) {
			conn_tls_failed(c, "TLS", error);
			return;
		}
		if (taken == 0)
			break;
		outq_consume(&px->hold, taken);
	}
	if (outq_pending(px->hold) > 0)
		return;
	if ((px->flags & PX_WORKER_EOF) != 0) {
		relay_finish(px);
		return;
	}
	if ((px->flags & PX_PAUSED) != 0) {
		px->flags &= ~PX_PAUSED;
		/* a TLS backend: records already received come first */
		if (px->tls != NULL)
			backend_tls_feed(px);
		if ((px->flags & (PX_RECV_CANCELLED | PX_PAUSED)) == 0 && px->c != NULL)
			relay_recv_arm(px);
	}
}

/* After a successful hand-off of a TLS client: relay between the engine and
 * the worker's socketpair. */
void relay_start(struct conn *c)
{
	struct conn_handoff *ho = c->ho;
	struct conn_proxy *px = rg_calloc(1, sizeof(*px));

	px->ro.event = relay_event;
	px->c = c;
	px->fd = ho->proxy_fd;
	ho->proxy_fd = -1;
	px->slot = ring_slot_alloc(srv.ring, &px->ro);
	c->px = px;
	/* bytes decrypted after the hand-off was sent: the worker's first input
	 * after the preread that travelled with it */
	if (ho->preread_len > ho->sent_len) {
		outq_append(&px->to_worker, ho->preread + ho->sent_len,
			    (size_t)(ho->preread_len - ho->sent_len), false);
		px->in += (uint64_t)(ho->preread_len - ho->sent_len);
	}
	conn_handoff_end(c);
	if (c->session != NULL) {
		srv.set->proto->destroy(c->session);
		c->session = NULL;
	}
	conn_set_state(c, CONN_PROXY);
	relay_recv_arm(px);
	relay_send_more(px);
	conn_recv_arm(c);
}

/* the ring is done with the relay's slot (ring_slot_retire) */
static void relay_free(struct ring_owner *owner)
{
	struct conn_proxy *px = RING_OWNER(owner, struct conn_proxy, ro);
	if (px->tls != NULL)
		tls_conn_free(&px->tls);
	outq_free(&px->bin);
	ring_close(srv.ring, px->fd);
	outq_free(&px->to_worker);
	outq_free(&px->hold);
	rg_free(px);
}

/* The relay is over (the backend given up, or the client gone): the ring
 * cancels what is in flight and frees it when the last completion is in. */
void relay_retire(struct conn_proxy *px)
{
	px->c->px = NULL;
	px->c = NULL;
	ring_slot_retire(srv.ring, px->slot, relay_free);
}

/* the backend's plaintext, wherever the session is */
static void backend_plain_in(struct conn_proxy *px, const uint8_t *data, size_t len)
{
	if (px->c->state == CONN_BACKEND)
		conn_backend_input(px->c, data, len);
	else if (px->c->state == CONN_PROXY)
		relay_to_client(px, data, len);
}

/* the backend will send nothing more */
static void backend_eof(struct conn_proxy *px, bool error)
{
	struct conn *c = px->c;
	if (c->state == CONN_BACKEND) {
		conn_backend_failed(c, error ? "backend connection failed"
					     : "backend closed the connection", NULL);
		return;
	}
	px->flags |= PX_WORKER_EOF;
	if (outq_pending(px->hold) == 0)
		relay_finish(px);
}

static void backend_tls_failed(struct conn_proxy *px, const char *what, const char *error)
{
	struct conn *c = px->c;
	char why[200];
	snprintf(why, sizeof(why), "%s: %s", what, error != NULL ? error : "failed");
	if (c->state == CONN_BACKEND) {
		conn_backend_failed(c, why, NULL);
	} else if (c->state == CONN_PROXY) {
		log_debug("conn %u: backend %s", c->slot, why);
		conn_close(c, true);
	}
}

/* Handshake, then every record the engine can decrypt (not while the client
 * is not taking output: PX_PAUSED). */
void backend_tls_pump(struct conn_proxy *px)
{
	struct conn *c = px->c;
	const char *error;
	if (!tls_conn_handshake_done(px->tls)) {
		enum tls_result r = tls_conn_handshake(px->tls, &error);
		if (r == TLS_ERROR) {
			backend_tls_failed(px, "TLS handshake", error);
			return;
		}
		if (r != TLS_OK) {
			relay_send_more(px);
			return;
		}
		log_debug("conn %u: backend %s %s", c->slot, tls_conn_version(px->tls),
			  tls_conn_cipher(px->tls));
		if (c->state == CONN_BACKEND && c->be->tls == BACKEND_TLS_STARTTLS)
			backend_login_tls_started(c->be->login);
	}
	uint8_t buf[TLS_READ_CHUNK];
	while (px->c != NULL && (px->flags & PX_PAUSED) == 0 &&
	       (c->state == CONN_BACKEND || c->state == CONN_PROXY)) {
		size_t n = 0;
		enum tls_result r = tls_conn_read(px->tls, buf, sizeof(buf), &n, &error);
		if (r == TLS_OK) {
			backend_plain_in(px, buf, n);
			continue;
		}
		if (r == TLS_CLOSED)
			backend_eof(px, false);
		else if (r == TLS_ERROR)
			backend_tls_failed(px, "TLS", error);
		break;
	}
	explicit_bzero(buf, sizeof(buf));
	if (px->c != NULL)
		relay_send_more(px);
}

/* Ciphertext waiting in bin into the engine, as far as it takes it. */
static void backend_tls_feed(struct conn_proxy *px)
{
	/* records the engine already holds first (after a pause) */
	backend_tls_pump(px);
	while (px->c != NULL && (px->flags & PX_PAUSED) == 0 && outq_pending(px->bin) > 0) {
		struct outq *q = px->bin;
		size_t n = tls_conn_feed(px->tls, q->data + q->head, q->tail - q->head);
		if (n > 0)
			outq_consume(&px->bin, n);
		backend_tls_pump(px);
		if (n == 0) {
			if (px->c != NULL && (px->flags & PX_PAUSED) == 0)
				backend_tls_failed(px, "TLS", "input stalled");
			break;
		}
	}
	if (px->c == NULL)
		return;
	if (outq_pending(px->bin) > PROXY_TO_WORKER_MAX) {
		/* the client is not reading: stop reading the backend */
		px->flags |= PX_PAUSED;
		px->flags = login_cancel_once(px->slot, RING_OP_RECV, px->flags, PX_RECV,
						  PX_RECV_CANCELLED);
	}
}

void relay_event(struct ring_owner *owner, const struct ring_event *ev)
{
	struct conn_proxy *px = RING_OWNER(owner, struct conn_proxy, ro);
	struct conn *c = px->c;
	switch (ev->op) {
	case RING_OP_CONNECT:
		px->flags &= ~PX_CONNECTING;
		if (c->state != CONN_BACKEND)
			break;
		if (ev->res < 0) {
			char why[96];
			snprintf(why, sizeof(why), "connect failed: %s", strerror(-ev->res));
			conn_backend_failed(c, why, NULL);
			break;
		}
		log_debug("conn %u: connected to backend %s", c->slot, c->be->name);
		relay_recv_arm(px);
		if (c->be->tls == BACKEND_TLS_IMPLICIT)
			backend_tls_start(c);
		else
			relay_send_more(px);
		break;
	case RING_OP_RECV:
		if (!ev->more)
			px->flags &= ~PX_RECV;
		if (ev->res > 0 && px->tls != NULL) {
			if (c->state == CONN_PROXY || c->state == CONN_BACKEND) {
				outq_append(&px->bin, ev->data, (size_t)ev->res, false);
				backend_tls_feed(px);
			}
		} else if (ev->res > 0) {
			backend_plain_in(px, ev->data, (size_t)ev->res);
		} else if (ev->res == 0 || (ev->res != -ENOBUFS && ev->res != -ECANCELED)) {
			if (ev->res < 0)
				log_debug("conn %u: worker recv: %s", c->slot, strerror(-ev->res));
			if (c->state == CONN_BACKEND || c->state == CONN_PROXY)
				backend_eof(px, ev->res < 0);
		}
		if (px->c == NULL)
			break; /* retired just now */
		if ((px->flags & PX_RECV) == 0) {
			px->flags &= ~PX_RECV_CANCELLED;
			relay_recv_arm(px);
		}
		break;
	case RING_OP_SEND: {
		bool sent_tls = (px->flags & PX_SEND_TLS) != 0;
		px->flags &= ~(PX_SEND | PX_SEND_TLS);
		if (ev->res <= 0) {
			if (ev->res != -ECANCELED)
				log_debug("conn %u: worker send: %s", c->slot, strerror(-ev->res));
			if (c->state == CONN_PROXY)
				conn_close(c, true);
			else if (c->state == CONN_BACKEND)
				conn_backend_failed(c, "backend connection failed", NULL);
			break;
		}
		if (sent_tls)
			tls_conn_consume_output(px->tls, (size_t)ev->res);
		else
			outq_consume(&px->to_worker, (size_t)ev->res);
		if (outq_pending(px->to_worker) < PROXY_TO_WORKER_LOW)
			conn_recv_resume(c);
		if (px->tls != NULL && !tls_conn_handshake_done(px->tls))
			backend_tls_pump(px);
		else
			relay_send_more(px);
		break;
	}
	default:
		log_fatal("conn %u: unexpected proxy ring op %d", c->slot, (int)ev->op);
	}
	conn_check(c);
}
