/* proxy-pump.c — the relay between two ends on the ring (proxy-pump.h). */
#include "proxy/proxy-pump.h"
#include "proxy/proxy-outq.h"
#include "lib/alloc.h"
#include "lib/log.h"
#include "ring/ring.h"
#include "tls/tls.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#define PUMP_READ_CHUNK 16384
#define PUMP_READ_MIN 4096

enum end_flag {
	E_ATTACHED = 1 << 0,
	E_RECV = 1 << 1,	 /* a multishot receive is armed */
	E_RECV_CANCEL = 1 << 2,	 /* ... and its cancel is on the way */
	E_SEND = 1 << 3,	 /* a send is in flight */
	E_SEND_TLS = 1 << 4,	 /* ... from the engine's output, else from out */
	E_CONNECTING = 1 << 5,
	E_PAUSED = 1 << 6,	 /* not read: the other end has too much waiting */
	E_EOF = 1 << 7,		 /* it said EOF (or close_notify) */
	E_EOF_OUT = 1 << 8,	 /* the other end's EOF is to be passed to it */
	E_NOTIFY = 1 << 9,	 /* our close_notify is queued */
	E_SHUT = 1 << 10,	 /* the other end's EOF reached it */
	E_HALF_CLOSE = 1 << 11,	 /* an EOF to it is SHUT_WR, and it is still read */
	E_READ_BLOCKED = 1 << 12, /* the engine's read waits for its output to go */
};

enum pump_state {
	PUMP_SETUP,	/* the server end alone: the backend dialogue */
	PUMP_RUNNING,
	PUMP_CLOSING,	/* the server is done: the client takes the rest */
	PUMP_OVER,	/* both ends retired: done() once the ring has freed them */
};

/* Invariant: out holds plaintext for this end that is not sent yet (a
 * plaintext end; a send in flight covers data[head..head+sending)) or that
 * its engine could not take yet (a TLS end; never sent from directly). in
 * holds ciphertext received while the engine could take no more (paused). */
struct pump_end {
	struct ring_owner ro;
	struct proxy_pump *p;
	uint32_t flags;
	int fd;
	uint32_t slot;
	struct tls_conn *tls;
	struct outq *out;
	struct outq *in;
	uint64_t bytes;		/* relayed plaintext written to this end */
};

struct proxy_pump {
	struct ring *ring;
	const uint32_t *now;
	const struct proxy_pump_callbacks *cb;
	void *ctx;
	struct pump_end end[2];
	uint8_t state;
	uint8_t live;		/* attached ends the ring has not freed yet */
	bool aborted;		/* no callbacks any more */
	bool failed;		/* error_buf says why */
	uint32_t deadline;	/* PUMP_CLOSING: pump_over at this time */
	char error_buf[160];
};

static void end_send_more(struct pump_end *e);
static void end_tls_read(struct pump_end *e);

static struct pump_end *end_other(struct pump_end *e)
{
	return &e->p->end[e == &e->p->end[PUMP_CLIENT] ? PUMP_SERVER : PUMP_CLIENT];
}

/* waiting for e, and the marks for its source: a TLS end takes what its
 * engine takes and no more */
static size_t end_backlog(const struct pump_end *e)
{
	return outq_pending(e->out);
}

/* a plaintext end: no receive is armed for it past PUMP_HIGH
 * (end_room_for), and what was received already goes on into its queue up
 * to OUTQ_RELAY before its source pauses */
static size_t end_high(const struct pump_end *e)
{
	return e->tls != NULL ? 0 : OUTQ_RELAY;
}

static size_t end_low(const struct pump_end *e)
{
	return e->tls != NULL ? 0 : PUMP_LOW;
}

/* t takes n more bytes (a receive's worth, decrypted or not) without going
 * over its limit: a TLS engine takes them whole with nothing waiting before
 * them; a plaintext end's queue is at most PUMP_HIGH, so it then holds at
 * most PUMP_HIGH + n (n <= 64 KiB: OUTQ_RELAY) */
static bool end_room_for(const struct pump_end *t, size_t n)
{
	if (t->tls != NULL)
		return outq_pending(t->out) == 0 && tls_conn_can_take(t->tls, n);
	return outq_pending(t->out) <= PUMP_HIGH;
}

static void end_free(struct ring_owner *owner)
{
	struct pump_end *e = RING_OWNER(owner, struct pump_end, ro);
	struct proxy_pump *p = e->p;
	if (e->fd >= 0)
		ring_close(p->ring, e->fd);
	if (e->tls != NULL)
		tls_conn_free(&e->tls);
	outq_free(&e->out);
	outq_free(&e->in);
	if (--p->live > 0)
		return;
	if (!p->aborted && p->cb->done != NULL)
		p->cb->done(p->ctx, p->end[PUMP_SERVER].bytes, p->end[PUMP_CLIENT].bytes,
			    p->failed ? p->error_buf : NULL);
	rg_free(p);
}

/* The end: the ring cancels what is in flight on both ends and frees them
 * after this event; the last one calls done(). */
static void pump_over(struct proxy_pump *p, const char *error)
{
	if (p->state == PUMP_OVER)
		return;
	p->state = PUMP_OVER;
	if (error != NULL && !p->failed) {
		p->failed = true;
		if (error != p->error_buf)
			snprintf(p->error_buf, sizeof(p->error_buf), "%s", error);
	}
	unsigned n = 0;
	for (unsigned i = 0; i < 2; i++) {
		struct pump_end *e = &p->end[i];
		if ((e->flags & E_ATTACHED) != 0) {
			ring_slot_retire(p->ring, e->slot, end_free);
			n++;
		}
	}
	if (n == 0) {
		/* nothing attached, so nothing of the pump is on the stack */
		if (!p->aborted && p->cb->done != NULL)
			p->cb->done(p->ctx, 0, 0, p->failed ? p->error_buf : NULL);
		rg_free(p);
	}
}

static void end_fail(struct pump_end *e, const char *what, const char *detail)
{
	struct proxy_pump *p = e->p;
	if (p->state == PUMP_OVER)
		return;
	snprintf(p->error_buf, sizeof(p->error_buf), "%s: %s", what,
		 detail != NULL ? detail : "failed");
	p->failed = true;
	if (p->state == PUMP_SETUP) {
		/* the backend dialogue: its owner decides (and aborts) */
		p->failed = false;
		p->cb->failed(p->ctx, p->error_buf);
		return;
	}
	pump_over(p, p->error_buf);
}

static void end_recv_arm(struct pump_end *e)
{
	struct proxy_pump *p = e->p;
	if ((e->flags & (E_ATTACHED | E_RECV | E_PAUSED | E_EOF | E_CONNECTING)) != E_ATTACHED ||
	    p->state == PUMP_OVER || p->state == PUMP_CLOSING)
		return;
	if (p->state == PUMP_RUNNING) {
		/* The relay: one buffer at a time, and only while the other
		 * end takes a whole one. A multishot receive would empty the
		 * source's socket into buffers at each wake-up (hundreds of
		 * KiB behind a slow reader), all of it copied into a queue
		 * that grows; this way a buffer's bytes go into the other
		 * end's engine or queue at once, and a send's completion
		 * (end_output_room) arms the next receive. */
		if (!end_room_for(end_other(e), ring_recv_large_size(p->ring)))
			return;
		e->flags |= E_RECV;
		ring_recv_large_once(p->ring, e->slot, e->fd);
		return;
	}
	e->flags |= E_RECV;
	ring_recv_large(p->ring, e->slot, e->fd);
}

static void end_recv_stop(struct pump_end *e)
{
	if ((e->flags & (E_RECV | E_RECV_CANCEL)) == E_RECV) {
		e->flags |= E_RECV_CANCEL;
		ring_cancel(e->p->ring, e->slot, RING_OP_RECV);
	}
}

/* Everything for e went out, and its source said EOF: pass it on. */
static void end_pass_eof(struct pump_end *e)
{
	struct proxy_pump *p = e->p;
	const char *error;
	if (e->tls != NULL && (e->flags & E_NOTIFY) == 0) {
		e->flags |= E_NOTIFY;
		if (tls_conn_shutdown(e->tls, &error) == TLS_ERROR)
			log_debug("pump: TLS shutdown: %s", error);
		const uint8_t *data;
		size_t len;
		if (tls_conn_pending_output(e->tls, &data, &len)) {
			end_send_more(e); /* back here once it is sent */
			return;
		}
	}
	e->flags |= E_SHUT;
	if ((e->flags & E_HALF_CLOSE) != 0) {
		/* the worker or backend reads EOF, ends and closes: that
		 * ends the other direction */
		(void)shutdown(e->fd, SHUT_WR);
		return;
	}
	pump_over(p, NULL); /* the client has everything */
}

/* Send what waits for e: plaintext queued before the engine first. */
static void end_send_more(struct pump_end *e)
{
	struct proxy_pump *p = e->p;
	if (p->state == PUMP_OVER || (e->flags & (E_ATTACHED | E_SEND | E_CONNECTING)) != E_ATTACHED)
		return;
	if (e->tls != NULL) {
		const char *error;
		while (tls_conn_handshake_done(e->tls) && outq_pending(e->out) > 0) {
			struct outq *q = e->out;
			size_t taken = 0;
			enum tls_result r = tls_conn_write(e->tls, q->data + q->head, q->tail - q->head,
							   &taken, &error);
			if (taken > 0)
				outq_consume(&e->out, taken);
			if (r == TLS_ERROR) {
				end_fail(e, "TLS", error);
				return;
			}
			if (taken == 0)
				break;
		}
		const uint8_t *data;
		size_t len;
		if (tls_conn_pending_output(e->tls, &data, &len)) {
			e->flags |= E_SEND | E_SEND_TLS;
			ring_send(p->ring, e->slot, e->fd, data, len);
			return;
		}
	} else if (outq_pending(e->out) > 0) {
		struct outq *q = e->out;
		q->sending = q->tail - q->head;
		e->flags |= E_SEND;
		ring_send(p->ring, e->slot, e->fd, q->data + q->head, q->sending);
		return;
	}
	if ((e->flags & (E_EOF_OUT | E_SHUT)) == E_EOF_OUT && outq_pending(e->out) == 0)
		end_pass_eof(e);
}

/* Relayed plaintext for t: straight into its engine when nothing waits,
 * else behind what waits. */
static void end_write(struct pump_end *t, const uint8_t *data, size_t len)
{
	t->bytes += len;
	if (t->tls != NULL && outq_pending(t->out) == 0 && tls_conn_handshake_done(t->tls)) {
		size_t taken = 0;
		const char *error;
		if (tls_conn_write(t->tls, data, len, &taken, &error) == TLS_ERROR) {
			end_fail(t, "TLS", error);
			return;
		}
		data += taken;
		len -= taken;
	}
	if (len > 0)
		outq_append(&t->out, data, len, t->tls == NULL && (t->flags & E_SEND) != 0);
	end_send_more(t);
}

static void end_pause(struct pump_end *e)
{
	e->flags |= E_PAUSED;
	end_recv_stop(e);
}

/* Plaintext that came from e. */
static void end_deliver(struct pump_end *e, const uint8_t *data, size_t len)
{
	struct proxy_pump *p = e->p;
	if (p->state == PUMP_SETUP) {
		p->cb->input(p->ctx, data, len);
		return;
	}
	if (p->state != PUMP_RUNNING)
		return; /* closing: the server is gone, the client's bytes go nowhere */
	struct pump_end *t = end_other(e);
	if ((t->flags & E_EOF_OUT) != 0)
		return;
	end_write(t, data, len);
	if (p->state == PUMP_RUNNING && end_backlog(t) > end_high(t))
		end_pause(e);
}

/* A plaintext end the relay reads e's plaintext into directly (its queue's
 * tail), skipping a copy; NULL when it is not one. */
static struct pump_end *end_direct(struct pump_end *e)
{
	struct pump_end *t = end_other(e);
	if (e->p->state != PUMP_RUNNING || t->tls != NULL || (t->flags & E_EOF_OUT) != 0)
		return NULL;
	return t;
}

/* n bytes of e's plaintext were read into t's queue (end_direct) */
static void end_took(struct pump_end *e, struct pump_end *t, size_t n)
{
	t->bytes += n;
	end_send_more(t);
	if (e->p->state == PUMP_RUNNING && end_backlog(t) > end_high(t))
		end_pause(e);
}

/* e said EOF (or close_notify). */
static void end_eof(struct pump_end *e)
{
	struct proxy_pump *p = e->p;
	if (p->state == PUMP_SETUP) {
		p->cb->failed(p->ctx, NULL);
		return;
	}
	if ((e->flags & E_EOF) != 0 || p->state == PUMP_OVER)
		return;
	e->flags |= E_EOF;
	end_recv_stop(e);
	struct pump_end *t = end_other(e);
	t->flags |= E_EOF_OUT;
	if ((t->flags & E_HALF_CLOSE) == 0 && p->state == PUMP_RUNNING) {
		/* the server is done: the client gets the rest in time, and
		 * what it still sends has nowhere to go */
		p->state = PUMP_CLOSING;
		p->deadline = *p->now + PUMP_FLUSH_SECS;
		end_recv_stop(t);
		if (p->cb->closing != NULL)
			p->cb->closing(p->ctx);
	}
	end_send_more(t);
}

/* Ciphertext from e (data may be NULL: only what waits in e->in and the
 * engine, after a pause). */
static void end_tls_input(struct pump_end *e, const uint8_t *data, size_t len)
{
	struct proxy_pump *p = e->p;
	bool pumped = false, retried = false;
	if (len > 0 && outq_pending(e->in) > 0) {
		/* behind what already waits */
		outq_append(&e->in, data, len, false);
		len = 0;
	}
	for (;;) {
		if (p->state == PUMP_OVER || (e->flags & E_EOF) != 0)
			return;
		bool queued = outq_pending(e->in) > 0;
		const uint8_t *src = queued ? e->in->data + e->in->head : data;
		size_t n = queued ? e->in->tail - e->in->head : len;
		if (n == 0)
			break;
		size_t took = tls_conn_feed(e->tls, src, n);
		if (queued) {
			if (took > 0)
				outq_consume(&e->in, took);
		} else {
			data += took;
			len -= took;
		}
		end_tls_read(e);
		pumped = true;
		if (took > 0)
			retried = false;
		if (p->state == PUMP_OVER || (e->flags & E_EOF) != 0)
			return;
		if (took == 0) {
			if ((e->flags & E_PAUSED) == 0 && !retried) {
				/* the engine was full when we came (records
				 * kept during a pause): the read above made
				 * room, feed again */
				retried = true;
				continue;
			}
			if ((e->flags & E_PAUSED) == 0) {
				end_fail(e, "TLS", "input stalled");
				return;
			}
			/* records wait in the engine until the other end has
			 * taken some */
			if (!queued && len > 0)
				outq_append(&e->in, data, len, false);
			return;
		}
	}
	if (!pumped)
		end_tls_read(e);
}

/* The handshake, then every record the engine can decrypt while e may be
 * read. */
static void end_tls_read(struct pump_end *e)
{
	struct proxy_pump *p = e->p;
	const char *error;
	if (!tls_conn_handshake_done(e->tls)) {
		enum tls_result r = tls_conn_handshake(e->tls, &error);
		if (r == TLS_ERROR) {
			end_fail(e, "TLS handshake", error);
			return;
		}
		if (r != TLS_OK) {
			end_send_more(e);
			return;
		}
		if (p->state == PUMP_SETUP && p->cb->tls_ready != NULL)
			p->cb->tls_ready(p->ctx);
		if (p->state == PUMP_OVER)
			return;
	}
	uint8_t buf[PUMP_READ_CHUNK];
	bool used_buf = false;
	e->flags &= ~E_READ_BLOCKED;
	while (p->state != PUMP_OVER && (e->flags & (E_PAUSED | E_EOF)) == 0) {
		size_t n = 0, want = PUMP_READ_CHUNK;
		struct pump_end *t = end_direct(e);
		uint8_t *dst = buf;
		if (t != NULL) {
			/* within the queue's relay size (a record's rest
			 * stays in the engine for the next read): no queue
			 * grows past what the spare list keeps */
			size_t room = OUTQ_RELAY - outq_pending(t->out);
			if (room < PUMP_READ_MIN) {
				end_pause(e); /* resumed once t's queue drains */
				break;
			}
			if (want > room)
				want = room;
			dst = outq_reserve(&t->out, want, (t->flags & E_SEND) != 0);
		}
		enum tls_result r = tls_conn_read(e->tls, dst, want, &n, &error);
		if (t != NULL) {
			outq_commit(&t->out, r == TLS_OK ? n : 0);
			if (r == TLS_OK) {
				end_took(e, t, n);
				continue;
			}
		}
		if (r == TLS_OK) {
			used_buf = true;
			end_deliver(e, buf, n);
			continue;
		}
		if (r == TLS_CLOSED)
			end_eof(e);
		else if (r == TLS_ERROR)
			end_fail(e, "TLS", error);
		else if (r == TLS_WANT_OUTPUT)
			e->flags |= E_READ_BLOCKED;
		break;
	}
	if (used_buf)
		explicit_bzero(buf, sizeof(buf));
	end_send_more(e);
}

static void end_resume(struct pump_end *e)
{
	e->flags &= ~E_PAUSED;
	if (e->tls != NULL)
		end_tls_input(e, NULL, 0); /* records that waited come first */
	if (e->p->state != PUMP_OVER)
		end_recv_arm(e);
}

/* e's send completed: more for it, and its source may be read again */
static void end_output_room(struct pump_end *e)
{
	struct proxy_pump *p = e->p;
	if (e->tls != NULL && (!tls_conn_handshake_done(e->tls) || (e->flags & E_READ_BLOCKED) != 0))
		end_tls_read(e);
	end_send_more(e);
	if (p->state != PUMP_RUNNING && p->state != PUMP_CLOSING)
		return;
	struct pump_end *s = end_other(e);
	if ((s->flags & E_PAUSED) != 0 && end_backlog(e) <= end_low(e))
		end_resume(s);
	else if (p->state == PUMP_RUNNING)
		end_recv_arm(s); /* a source toward TLS waits for room */
}

static void end_event(struct ring_owner *owner, const struct ring_event *ev)
{
	struct pump_end *e = RING_OWNER(owner, struct pump_end, ro);
	struct proxy_pump *p = e->p;
	switch (ev->op) {
	case RING_OP_CONNECT:
		e->flags &= ~E_CONNECTING;
		p->cb->connected(p->ctx, ev->res);
		if (ev->res >= 0)
			end_recv_arm(e);
		break;
	case RING_OP_RECV:
		if (!ev->more)
			e->flags &= ~E_RECV;
		if (ev->res > 0) {
			if (e->tls != NULL)
				end_tls_input(e, ev->data, (size_t)ev->res);
			else
				end_deliver(e, ev->data, (size_t)ev->res);
		} else if (ev->res == 0) {
			end_eof(e);
		} else if (ev->res != -ENOBUFS && ev->res != -ECANCELED) {
			end_fail(e, "recv", strerror(-ev->res));
		}
		if ((e->flags & E_RECV) == 0) {
			/* ended (buffers ran out, a pause's cancel): again while
			 * it is wanted */
			e->flags &= ~E_RECV_CANCEL;
			end_recv_arm(e);
		}
		break;
	case RING_OP_SEND: {
		bool sent_tls = (e->flags & E_SEND_TLS) != 0;
		e->flags &= ~(E_SEND | E_SEND_TLS);
		if (ev->res <= 0) {
			end_fail(e, "send", ev->res < 0 ? strerror(-ev->res) : "nothing sent");
			break;
		}
		if (sent_tls)
			tls_conn_consume_output(e->tls, (size_t)ev->res);
		else
			outq_consume(&e->out, (size_t)ev->res);
		end_output_room(e);
		break;
	}
	default:
		log_fatal("pump: unexpected ring op %d", (int)ev->op);
	}
}

struct proxy_pump *proxy_pump_new(struct ring *ring, const uint32_t *now,
				  const struct proxy_pump_callbacks *cb, void *ctx)
{
	struct proxy_pump *p = rg_calloc(1, sizeof(*p));
	p->ring = ring;
	p->now = now;
	p->cb = cb;
	p->ctx = ctx;
	p->state = PUMP_SETUP;
	for (unsigned i = 0; i < 2; i++) {
		p->end[i].p = p;
		p->end[i].ro.event = end_event;
		p->end[i].fd = -1;
	}
	return p;
}

void proxy_pump_attach_server(struct proxy_pump *p, int fd, bool half_close)
{
	struct pump_end *e = &p->end[PUMP_SERVER];
	e->fd = fd;
	e->slot = ring_slot_alloc(p->ring, &e->ro);
	e->flags = E_ATTACHED | (half_close ? E_HALF_CLOSE : 0);
	p->live++;
}

void proxy_pump_attach_client(struct proxy_pump *p, const struct proxy_pump_handover *h)
{
	struct pump_end *e = &p->end[PUMP_CLIENT];
	e->fd = h->fd;
	e->slot = h->slot;
	e->tls = h->tls;
	e->out = h->out;
	e->flags = E_ATTACHED | (h->recv_armed ? E_RECV : 0) |
		   (h->send_armed ? E_SEND | (h->send_tls ? E_SEND_TLS : 0) : 0);
	ring_slot_set_owner(p->ring, e->slot, &e->ro);
	p->live++;
}

void proxy_pump_connect(struct proxy_pump *p, const void *addr, unsigned addr_len)
{
	struct pump_end *e = &p->end[PUMP_SERVER];
	e->flags |= E_CONNECTING;
	ring_connect(p->ring, e->slot, e->fd, addr, addr_len);
}

void proxy_pump_start_tls(struct proxy_pump *p, struct tls_conn *tls)
{
	struct pump_end *e = &p->end[PUMP_SERVER];
	e->tls = tls;
	end_tls_read(e); /* the ClientHello */
}

void proxy_pump_write(struct proxy_pump *p, const void *data, size_t len)
{
	struct pump_end *e = &p->end[PUMP_SERVER];
	outq_append(&e->out, data, len, e->tls == NULL && (e->flags & E_SEND) != 0);
}

void proxy_pump_flush(struct proxy_pump *p)
{
	end_send_more(&p->end[PUMP_SERVER]);
}

void proxy_pump_start(struct proxy_pump *p, const uint8_t *to_server, size_t to_server_len,
		      const uint8_t *to_client, size_t to_client_len)
{
	struct pump_end *c = &p->end[PUMP_CLIENT], *s = &p->end[PUMP_SERVER];
	p->state = PUMP_RUNNING;
	/* the receives armed before (the client's, of the pre-login
	 * dialogue; the backend's) are multishot ones into small buffers:
	 * once their cancel is in, end_recv_arm arms the relay's kind */
	end_recv_stop(c);
	end_recv_stop(s);
	if (to_server_len > 0)
		end_write(s, to_server, to_server_len);
	if (to_client_len > 0 && p->state == PUMP_RUNNING)
		end_write(c, to_client, to_client_len);
	for (unsigned i = 0; i < 2 && p->state == PUMP_RUNNING; i++) {
		end_recv_arm(&p->end[i]);
		end_send_more(&p->end[i]);
	}
	if (p->state == PUMP_RUNNING && end_backlog(s) > end_high(s))
		end_pause(c);
}

void proxy_pump_abort(struct proxy_pump *p)
{
	p->aborted = true;
	pump_over(p, NULL);
}

void proxy_pump_tick(struct proxy_pump *p)
{
	if (p->state == PUMP_CLOSING && (int32_t)(*p->now - p->deadline) >= 0)
		pump_over(p, "flush timed out");
}

void proxy_pump_counts(const struct proxy_pump *p, uint64_t *in_r, uint64_t *out_r)
{
	*in_r = p->end[PUMP_SERVER].bytes;
	*out_r = p->end[PUMP_CLIENT].bytes;
}
