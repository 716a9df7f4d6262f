/* proxy-pump.h — the one byte relay of a login process: two symmetric ends,
 * each an fd on the ring with an optional TLS engine (tls.h); bytes read
 * from one end are written to the other (decrypted on the way in, encrypted
 * on the way out, no copy beyond the one out of the ring's buffer). Used for
 * a TLS client and its worker's socketpair, and for any client and its
 * backend (passdb proxy), plaintext or TLS on either side.
 *
 * Back-pressure, one rule for both directions: while the relay runs, an end
 * is read one receive buffer at a time, and only while the other end takes
 * a whole buffer (a TLS engine: tls_conn_can_take, with nothing queued
 * before it; a plaintext end: at most PUMP_HIGH queued), so a buffer's
 * bytes go straight into the engine or queue and a slow reader never makes
 * the pump copy what the source's socket holds. An end whose received
 * bytes the other end cannot take (a TLS engine: anything it could not
 * take; a plaintext end: over OUTQ_RELAY queued) is paused, and read again
 * once they are down to PUMP_LOW (0 for a TLS end).
 * Half-close: an end's EOF (or close_notify) is passed on once everything
 * before it is flushed: to a half_close end (worker, backend) as
 * close_notify (TLS) then shutdown(SHUT_WR), and that end is still read; to
 * the client as close_notify, after which the relay is over. From the
 * server's EOF on the client has PUMP_FLUSH_SECS (proxy_pump_tick) to take
 * the rest. At the end the ring retires both ends (cancel, wait, close) and
 * done() reports the byte counts.
 *
 * Before the relay starts the server end can be used alone (the backend
 * login dialogue): connect it, start TLS on it, write plaintext to it, and
 * get its plaintext through input(). Only ring.h, tls.h and proxy-outq.h. */
#ifndef RG_PROXY_PUMP_H
#define RG_PROXY_PUMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct outq;
struct ring;
struct tls_conn;
struct proxy_pump;

#define PUMP_HIGH (64 * 1024)
#define PUMP_LOW (16 * 1024)
/* after the server's EOF, the client may take this long to read the rest */
#define PUMP_FLUSH_SECS 30

enum proxy_pump_side { PUMP_CLIENT = 0, PUMP_SERVER = 1 };

/* An fd that already has operations on the ring (the client's connection):
 * the pump becomes the owner of its slot and of what is in flight there. */
struct proxy_pump_handover {
	int fd;
	uint32_t slot;
	struct tls_conn *tls;	/* after its handshake, or NULL */
	struct outq *out;	/* plaintext not yet sent (a plaintext end) */
	bool recv_armed;	/* its multishot receive is in flight */
	bool send_armed;	/* a send of it is in flight ... */
	bool send_tls;		/* ... from the TLS engine's output, else from out */
};

struct proxy_pump_callbacks {
	/* Before the relay starts (the backend dialogue): */
	/* the server's plaintext */
	void (*input)(void *ctx, const uint8_t *data, size_t len);
	/* proxy_pump_connect completed: 0 or -errno */
	void (*connected)(void *ctx, int res);
	/* proxy_pump_start_tls's handshake is done */
	void (*tls_ready)(void *ctx);
	/* the server end failed (error for the log) or closed (error NULL);
	 * the owner calls proxy_pump_abort */
	void (*failed)(void *ctx, const char *error);

	/* The relay: the server is done and the client gets the rest within
	 * PUMP_FLUSH_SECS (NULL: not wanted) */
	void (*closing)(void *ctx);
	/* the relay is over and the pump freed (the ring closed both fds);
	 * in = plaintext bytes client->server, out = server->client; error is
	 * NULL after a clean end. Never called after proxy_pump_abort. */
	void (*done)(void *ctx, uint64_t in, uint64_t out, const char *error);
};

/* A pump with no end yet. now: the owner's monotonic seconds, read for the
 * flush deadline. */
struct proxy_pump *proxy_pump_new(struct ring *ring, const uint32_t *now,
				  const struct proxy_pump_callbacks *cb, void *ctx);

/* The server end on a fresh fd (slot allocated here; the pump closes fd).
 * half_close: the client's EOF reaches it as SHUT_WR. */
void proxy_pump_attach_server(struct proxy_pump *p, int fd, bool half_close);
/* The client end, taken over with what it has in flight (the pump owns the
 * fd, the slot, the engine and the queue from now on). */
void proxy_pump_attach_client(struct proxy_pump *p, const struct proxy_pump_handover *h);

/* Before the relay, on the server end: connect its fd to addr (valid until
 * the next ring_run); start a client TLS engine (the pump owns tls); queue
 * plaintext (sent by the next flush, after the handshake for TLS); flush. */
void proxy_pump_connect(struct proxy_pump *p, const void *addr, unsigned addr_len);
void proxy_pump_start_tls(struct proxy_pump *p, struct tls_conn *tls);
void proxy_pump_write(struct proxy_pump *p, const void *data, size_t len);
void proxy_pump_flush(struct proxy_pump *p);

/* Both ends attached: relay, after writing to_server (what the client sent
 * during the login) and to_client (the server's bytes after its OK). May be
 * called from input(). */
void proxy_pump_start(struct proxy_pump *p, const uint8_t *to_server, size_t to_server_len,
		      const uint8_t *to_client, size_t to_client_len);

/* End it now without flushing: the ring retires the ends; no callback
 * comes any more. */
void proxy_pump_abort(struct proxy_pump *p);
/* the flush deadline: call about once a second while closing */
void proxy_pump_tick(struct proxy_pump *p);

void proxy_pump_counts(const struct proxy_pump *p, uint64_t *in_r, uint64_t *out_r);

#endif
