#include "login/login-conn.h"
#include "lib/access-proto.h"
#include "lib/alloc.h"
#include "lib/base64.h"
#include "lib/ipc.h"
#include "lib/iplimit.h"
#include "lib/log.h"
#include "proxy/proxy-backend.h"
#include "proxy/proxy-protocol.h"
#include "lib/stats.h"
#include "ring/ring.h"
#include "tls/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* A client's unsent output beyond this means it does not read: pre-auth
 * output is a few lines, so such a client is disconnected. */
#define CONN_OUT_MAX (16 * 1024)
#define CONN_OUT_MIN 512
/* how long a closing connection may take to flush, and shutdown as a whole */
#define CONN_FLUSH_SECS 2
#define SHUTDOWN_SECS 2
/* request ids sent to auth and master: slot in the low bits, a sequence
 * number above, so a reply for a reused slot or an older request is
 * recognised */
#define REQ_SLOT_BITS 20
#define REQ_SLOT_MASK ((1u << REQ_SLOT_BITS) - 1)
#define SESSION_RAW 9 /* 12 base64 chars */
/* TLS proxy: stop reading the client while this much plaintext waits for
 * the worker, start again below the low mark */
#define PROXY_TO_WORKER_MAX (64 * 1024)
#define PROXY_TO_WORKER_LOW (16 * 1024)
/* a finished proxy session may take this long to flush its last records */
#define PROXY_FLUSH_SECS 30
#define TLS_READ_CHUNK 16384

enum conn_state {
	CONN_PRELOGIN,		/* reading commands (or the TLS handshake) */
	CONN_AUTHENTICATING,	/* a request is at auth */
	CONN_HANDOFF,		/* logged in: draining reads, then at master */
	CONN_BACKEND,		/* logged in, proxied: connecting/logging in to the backend */
	CONN_PROXY,		/* TLS client logged in: we relay plaintext to its worker */
	CONN_CLOSING,		/* flushing output, then waiting for the ring */
};

static const char *const conn_state_names[] = {
	[CONN_PRELOGIN] = "prelogin", [CONN_AUTHENTICATING] = "authenticating",
	[CONN_HANDOFF] = "handoff", [CONN_BACKEND] = "backend", [CONN_PROXY] = "proxy",
	[CONN_CLOSING] = "closing",
};

enum conn_flag {
	CF_RECV = 1 << 0,		/* a multishot receive is armed */
	CF_SEND = 1 << 1,		/* a send is in flight */
	CF_RECV_CANCELLED = 1 << 2,
	CF_HANDOFF_SENT = 1 << 4,	/* LOGIN_HANDOFF is at master */
	CF_FORCE = 1 << 5,		/* closing without flushing */
	CF_TEMPFAIL = 1 << 6,		/* deferred: answer the auth request TEMPFAIL */
	CF_DEFERRED = 1 << 7,		/* on the deferred list */
	CF_SECURED = 1 << 8,
	CF_LOGGED = 1 << 9,		/* the end of this client is logged */
	CF_TLS = 1 << 10,		/* the client talks TLS (implicit, or after STARTTLS) */
	CF_SEND_TLS = 1 << 11,		/* the send in flight is from the TLS engine */
	CF_PAUSED = 1 << 12,		/* proxy: not reading the client (worker behind) */
	CF_HAPROXY = 1 << 13,		/* reading the PROXY header (haproxy = yes) */
	CF_HAPROXY_TLS = 1 << 14,	/* ... on an implicit TLS listener: TLS follows it */
	CF_HAPROXY_SSL = 1 << 15,	/* the header says the client spoke TLS to the proxy */
	CF_RETIRED = 1 << 16,		/* its slot is retired: freed once the ring is done */
};

enum proxy_flag {
	PX_RECV = 1 << 0,		/* a multishot receive from the worker is armed */
	PX_SEND = 1 << 1,
	PX_RECV_CANCELLED = 1 << 2,
	PX_SEND_CANCELLED = 1 << 3,
	PX_PAUSED = 1 << 4,		/* not reading the worker: TLS output is full */
	PX_WORKER_EOF = 1 << 5,
	PX_CLIENT_EOF = 1 << 6,
	PX_SHUT = 1 << 7,		/* the worker was told EOF (SHUT_WR) */
	PX_CONNECTING = 1 << 8,		/* backend: the connect is in flight */
	PX_BACKEND = 1 << 9,		/* the other end is a backend, not a worker */
	PX_SEND_TLS = 1 << 10,		/* the send in flight is the backend TLS engine's */
};

/* Bytes waiting to be sent: data[head..tail) is unsent; while a send is in
 * flight it covers data[head..head+sending) (or, after a growth, the same
 * bytes in retired). Allocated on the first byte, freed when drained. */
struct outq {
	uint8_t *retired;	/* an older copy a send in flight still points into */
	uint32_t head, tail, size, sending;
	uint8_t data[];
};

/* Only from AUTH_OK to the end of the hand-off. */
struct conn_handoff {
	char cookie[33];
	char *tag;
	int proxy_fd;		/* TLS: our end of the worker's socketpair, else -1 */
	uint16_t core_len;	/* preread[0..core_len) came from the core */
	uint16_t sent_len;	/* preread[0..sent_len) went to master */
	uint16_t preread_len;	/* the rest arrived while the recv was cancelled */
	uint8_t preread[LOGIN_MAX_PENDING];
};

struct conn;

/* A logged-in TLS client's relay to its worker, or any client's relay to
 * its backend (CONN_BACKEND, CONN_PROXY). "worker" below is either. c is
 * NULL once retired (its slot: the ring frees it when its operations have
 * ended). */
struct conn_proxy {
	struct ring_owner ro;
	uint32_t flags;		/* enum proxy_flag */
	int fd;			/* our end of the worker's socketpair */
	uint32_t slot;
	struct conn *c;
	struct outq *to_worker;	/* plaintext from the client */
	struct outq *hold;	/* worker output the TLS engine could not take yet */
	uint64_t in, out;	/* plaintext bytes client->worker, worker->client */
	/* a backend over TLS (passdb ssl= / starttls=): its engine, and
	 * ciphertext received that the engine could not take yet (paused) */
	struct tls_conn *tls;
	struct outq *bin;
};

/* a DNS name is at most 253 characters */
#define RG_BACKEND_NAME_MAX 253

enum backend_tls { BACKEND_TLS_NONE, BACKEND_TLS_IMPLICIT, BACKEND_TLS_STARTTLS };

/* A proxied user's backend (passdb proxy fields): from AUTH_OK until the
 * backend answered the login. pass is wiped once the dialogue has it. */
struct conn_backend {
	struct sockaddr_storage addr;
	socklen_t addr_len;
	char name[RG_BACKEND_NAME_MAX + 80]; /* host:port or host[ip]:port, for the logs */
	char host[RG_BACKEND_NAME_MAX + 1]; /* passdb host: the TLS peer name */
	unsigned timeout;	/* proxy_timeout, seconds: connect and login */
	uint32_t deadline;
	struct backend_login *login;
	char *destuser, *master;
	uint8_t *pass;
	size_t pass_len;
	uint8_t tls;		/* enum backend_tls */
	bool verify;		/* yes: the chain must lead to ssl_client_ca_file */
};

/* a refused TLS client waiting for its handshake to hear why */
enum access_verdict { ACCESS_PENDING_NONE, ACCESS_DENIED, ACCESS_FAILED };

/* One lookup on one login_access_sockets socket (src/lib/access-proto.h):
 * connect, send the request, read "1\n" / "0\n", all on the ring with its
 * own slot. c is NULL once retired (decided, or the client went away): the
 * ring frees it when its operations have ended. */
struct conn_access {
	struct ring_owner ro;
	bool recv_armed;
	int fd;
	uint32_t slot;
	uint32_t deadline;	/* login_access_timeout */
	struct conn *c;
	struct access_reply_parser reply;
	size_t req_len;
	char req[ACCESS_REQUEST_MAX + 1];
	struct sockaddr_un addr;
};

struct conn {
	struct ring_owner ro;
	uint8_t state;			/* enum conn_state */
	uint8_t auth_attempts;
	char mech[9];			/* last SASL mechanism, for the log */
	uint32_t flags;			/* enum conn_flag */
	uint8_t access_next;		/* login_access_sockets: the next one to ask */
	uint8_t access_verdict;		/* enum access_verdict, for a TLS client not yet greeted */
	int fd;
	uint32_t slot;
	uint32_t req_id;		/* auth request or hand-off in flight; 0 = none */
	uint32_t accept_time;		/* monotonic seconds */
	uint32_t deadline;		/* CLOSING: force the close at this time */
	struct login_session *session;
	struct outq *out;
	struct conn_handoff *ho;
	struct tls_conn *tls;		/* from the first handshake byte on */
	struct conn_proxy *px;
	struct conn_backend *be;	/* proxied user, until the backend login ends */
	struct proxy_parser *hp;	/* only while CF_HAPROXY */
	/* login access check in flight: no greeting before it allows; a
	 * plaintext client's bytes that came before the greeting wait in early */
	struct conn_access *ac;
	struct outq *early;
	char *user;			/* as auth named it, for the log */
	struct conn *prev, *next;	/* live list (accept order) or closing list */
	struct conn *defer_next;
	struct login_addr local, remote;
	struct iplimit_ticket preauth;	/* its count under login_max_preauth_ip_connections */
	char session_id[BASE64_ENCODED_LEN(SESSION_RAW) + 1];
};

/* the listeners, the IPC channels, the signalfd and the tick */
struct login_src {
	struct ring_owner ro;	/* its event function says which source it is */
	bool ssl;	/* listener: implicit TLS */
	bool haproxy;	/* listener: a PROXY header comes first */
	uint8_t armed;	/* listener: accepts in flight */
	bool cancelling;
	int fd;
	uint32_t slot;
	/* auth and master channels: what their socket had no room for yet */
	struct ipc_outq outq;	/* outq.armed: a RING_OP_WRITABLE is in flight */
};

struct conn_list {
	struct conn *head, *tail;
};

static struct {
	const struct login_conn_config *set;
	struct ring *ring;
	uint32_t now;

	struct login_src *listeners;
	struct login_src master, signal, tick;
	struct login_src *auth; /* NULL while auth is gone */

	struct conn_list live;	 /* not closing, in accept order */
	struct conn_list closing;
	struct conn *deferred;

	unsigned conns, prelogin, backends;
	unsigned haproxy_waiting;	/* connections still reading a PROXY header */
	unsigned access_pending;	/* connections waiting for an access answer */
	unsigned access_waiting;	/* refused TLS clients waiting for their handshake */
	struct login_addr *listen_addrs; /* for proxy_maybe */
	struct tls_ctx *backend_tls[2];	/* client contexts: any-cert, verifying */
	bool reported_busy;	/* prelogin > 0 in the last LOGIN_STATUS */
	unsigned long long total;
	unsigned long long preauth_refused;	/* login_max_preauth_ip_connections */
	unsigned preauth_refused_unlogged;
	uint32_t preauth_refused_logged;	/* when the last was logged */
	unsigned accepts_armed;
	bool accepting, full, shutting_down;
	bool overflow;		/* master: process_limit reached, accept while full */
	bool retired;		/* master reloaded: never accept again, exit when idle */
	uint32_t shutdown_deadline;
	uint32_t req_seq;

	uint8_t random[SESSION_RAW * 64];
	unsigned random_pos;

	struct tls_ctx *tls;	/* built on first use */
	uint8_t ticket_keys[2 * TLS_TICKET_KEY_SIZE];
	size_t ticket_keys_len;	/* from master, applied when tls exists */

	struct ipc_rx rx;
	struct ipc_msg msg;
	struct login_counters stats; /* plain increments; sent on request */
} srv;

static void conn_check(struct conn *c);
static void conn_event(struct ring_owner *owner, const struct ring_event *ev);
static void conn_close(struct conn *c, bool force);
static void login_status(void);
static void accept_update(void);
static void conn_log_end(struct conn *c, const char *reason);
static void proxy_start(struct conn *c);
static void proxy_event(struct ring_owner *owner, const struct ring_event *ev);
static void proxy_output_room(struct conn_proxy *px);
static void backend_tls_failed(struct conn_proxy *px, const char *what, const char *error);
static void backend_tls_feed(struct conn_proxy *px);
static void conn_backend_free(struct conn_backend **bep);
static void conn_handoff_abandon(struct conn *c, const char *reason);
static void cb_send(void *ctx, const void *data, size_t len);
static void access_retire(struct conn *c);
static void access_refuse_send(struct conn *c, enum access_verdict verdict);
static void conn_tls_pump(struct conn *c);

/* bytes a logged-in client sent while its hand-off is under way */
static void conn_handoff_preread(struct conn *c, const uint8_t *data, size_t len)
{
	struct conn_handoff *ho = c->ho;
	if (len > sizeof(ho->preread) - ho->preread_len) {
		conn_log_end(c, "Too much input during hand-off");
		conn_close(c, true);
		return;
	}
	memcpy(ho->preread + ho->preread_len, data, len);
	ho->preread_len += (uint16_t)len;
}

static int fd_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

static uint32_t monotonic_secs(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint32_t)ts.tv_sec;
}

static void list_add(struct conn_list *l, struct conn *c)
{
	c->next = NULL;
	c->prev = l->tail;
	if (l->tail != NULL)
		l->tail->next = c;
	else
		l->head = c;
	l->tail = c;
}

static void list_del(struct conn_list *l, struct conn *c)
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
static void conn_set_state(struct conn *c, enum conn_state state)
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
		if (c->ac != NULL)
			access_retire(c);
		if (c->access_verdict != ACCESS_PENDING_NONE) {
			c->access_verdict = ACCESS_PENDING_NONE;
			srv.access_waiting--;
		}
		list_del(&srv.live, c);
		list_add(&srv.closing, c);
		c->deadline = srv.now + CONN_FLUSH_SECS;
	}
	c->state = (uint8_t)state;
}

/* cancel op on slot unless it is not armed or already being cancelled;
 * returns flags with the cancelled bit set when it was sent */
static unsigned cancel_once(uint32_t slot, enum ring_op op, unsigned flags, unsigned armed,
			    unsigned cancelled)
{
	if ((flags & (armed | cancelled)) == armed) {
		ring_cancel(srv.ring, slot, op);
		flags |= cancelled;
	}
	return flags;
}

static void conn_defer(struct conn *c)
{
	if ((c->flags & CF_DEFERRED) != 0)
		return;
	c->flags |= CF_DEFERRED;
	c->defer_next = srv.deferred;
	srv.deferred = c;
}

static uint32_t next_req_id(struct conn *c)
{
	if (++srv.req_seq >= (1u << (32 - REQ_SLOT_BITS)))
		srv.req_seq = 1;
	return (srv.req_seq << REQ_SLOT_BITS) | c->slot;
}

static void make_session_id(char *out)
{
	if (srv.random_pos == 0 || srv.random_pos + SESSION_RAW > sizeof(srv.random)) {
		if (getrandom(srv.random, sizeof(srv.random), 0) != (ssize_t)sizeof(srv.random))
			log_fatal("getrandom: %m");
		srv.random_pos = 0;
	}
	base64_encode(srv.random + srv.random_pos, SESSION_RAW, out);
	srv.random_pos += SESSION_RAW;
	/* session ids end up in log lines and file names: keep them tame */
	for (char *p = out; *p != '\0'; p++) {
		if (*p == '/')
			*p = '_';
		else if (*p == '+')
			*p = '-';
	}
}

/* ---- the log lines fail2ban reads ---- */

static void conn_log_end(struct conn *c, const char *reason)
{
	if ((c->flags & CF_LOGGED) != 0)
		return;
	c->flags |= CF_LOGGED;
	char rip[64], lip[64], why[80], user[80], cause[96];
	login_addr_ip(&c->remote, rip, sizeof(rip));
	login_addr_ip(&c->local, lip, sizeof(lip));
	log_escape(reason, strlen(reason), 60, why, sizeof(why));
	unsigned secs = srv.now - c->accept_time;

	if (c->state == CONN_AUTHENTICATING)
		snprintf(cause, sizeof(cause), "client didn't finish SASL auth, waited %u secs", secs);
	else if (c->auth_attempts == 0)
		snprintf(cause, sizeof(cause), "no auth attempts in %u secs", secs);
	else
		snprintf(cause, sizeof(cause), "auth failed, %u attempts in %u secs",
			 c->auth_attempts, secs);
	if (c->user != NULL)
		log_escape(c->user, strlen(c->user), 64, user, sizeof(user));
	else
		user[0] = '\0';
	/* a client that logged out before logging in: Dovecot's classic
	   "Aborted login (...)", which fail2ban's dovecot filter knows */
	bool aborted = strncmp(reason, "Aborted login", 13) == 0;
	/* Dovecot's login_log_format_elements: empty ones are left out */
	log_info("%s%s%s (%s): user=<%s>, %s%s%srip=%s, lip=%s%s, session=<%s>",
		 aborted ? "Aborted login" : "Disconnected",
		 !aborted && why[0] != '\0' ? ": " : "", aborted ? "" : why, cause, user,
		 c->auth_attempts > 0 ? "method=" : "", c->auth_attempts > 0 ? c->mech : "",
		 c->auth_attempts > 0 ? ", " : "", rip, lip,
		 (c->flags & CF_TLS) != 0 && c->tls != NULL && tls_conn_handshake_done(c->tls) ?
		 ", TLS" : (c->flags & CF_SECURED) != 0 ? ", secured" : "", c->session_id);
}

/* ---- output ---- */

static size_t outq_pending(const struct outq *q)
{
	return q == NULL ? 0 : q->tail - q->head;
}

/* Append len bytes; in_flight says a send covers q->data[head..head+sending). */
static void outq_append(struct outq **qp, const void *data, size_t len, bool in_flight)
{
	struct outq *q = *qp;
	size_t pending = outq_pending(q);

	if (len == 0)
		return;
	if (q == NULL || q->size - q->tail < len) {
		size_t size = CONN_OUT_MIN;
		while (size < pending + len)
			size *= 2;
		struct outq *n = rg_malloc(sizeof(*n) + size);
		n->size = (uint32_t)size;
		n->head = 0;
		n->tail = (uint32_t)pending;
		n->sending = 0;
		n->retired = NULL;
		if (q != NULL) {
			memcpy(n->data, q->data + q->head, pending);
			n->sending = q->sending;
			if (in_flight) {
				/* the send in flight points into q: keep it */
				n->retired = q->retired != NULL ? q->retired : (uint8_t *)q;
				if (q->retired != NULL)
					rg_free(q);
			} else {
				rg_free(q->retired);
				rg_free(q);
			}
		}
		*qp = q = n;
	}
	memcpy(q->data + q->tail, data, len);
	q->tail += (uint32_t)len;
}

static void outq_free(struct outq **qp)
{
	if (*qp != NULL) {
		rg_free((*qp)->retired);
		rg_free(*qp);
		*qp = NULL;
	}
}

/* n bytes from the head are gone (sent or taken); drained queues are freed */
static void outq_consume(struct outq **qp, size_t n)
{
	struct outq *q = *qp;
	rg_free(q->retired);
	q->retired = NULL;
	q->head += (uint32_t)n;
	q->sending = 0;
	if (q->head == q->tail)
		outq_free(qp); /* idle connections hold no output buffer */
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
static void conn_send_more(struct conn *c)
{
	struct outq *o = c->out;
	if ((c->flags & (CF_SEND | CF_FORCE)) != 0)
		return;
	if (outq_pending(o) > 0) {
		o->sending = o->tail - o->head;
		c->flags |= CF_SEND;
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

static void conn_drop_not_reading(struct conn *c)
{
	log_debug("conn %u: client does not read its output", c->slot);
	conn_log_end(c, "Output buffer full");
	conn_close(c, true);
	conn_defer(c);
}

static void conn_out_append(struct conn *c, const void *data, size_t len)
{
	if (state_prelogin(c->state) && outq_pending(c->out) + len > CONN_OUT_MAX) {
		conn_drop_not_reading(c);
		return;
	}
	if (c->state == CONN_CLOSING && (c->flags & CF_FORCE) != 0)
		return;
	outq_append(&c->out, data, len, (c->flags & CF_SEND) != 0 && (c->flags & CF_SEND_TLS) == 0);
	conn_send_more(c);
}

static void conn_tls_failed(struct conn *c, const char *what, const char *error)
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
static void conn_tls_write(struct conn *c, const void *data, size_t len)
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

static void conn_out_free(struct conn *c)
{
	outq_free(&c->out);
}

static void conn_tls_output_room(struct conn *c);

static void conn_on_send(struct conn *c, int res)
{
	bool tls = (c->flags & CF_SEND_TLS) != 0;
	c->flags &= ~(CF_SEND | CF_SEND_TLS);
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
		conn_tls_output_room(c);
	} else {
		outq_consume(&c->out, (size_t)res);
		/* a plaintext client of a backend took some: read the backend again */
		if (c->px != NULL && c->tls == NULL && c->state == CONN_PROXY &&
		    outq_pending(c->out) < PROXY_TO_WORKER_LOW)
			proxy_output_room(c->px);
	}
	conn_send_more(c);
}

/* ---- internal channels ---- */

/* Send on the auth or master channel: now, or queued until the socket is
 * writable (ipc.h). 0 or -errno (the channel is broken). */
static int chan_send(struct login_src *ch, struct ipc_msg *msg, int pass_fd)
{
	int ret = ipc_outq_send(&ch->outq, ch->fd, msg, pass_fd);
	if (ret == 0 && ipc_outq_pending(&ch->outq) && !ch->outq.armed) {
		ch->outq.armed = true;
		ring_poll_writable(srv.ring, ch->slot, ch->fd);
	}
	return ret;
}

/* RING_OP_WRITABLE on a channel: send what waited. -errno when broken. */
static int chan_writable(struct login_src *ch, int res)
{
	ch->outq.armed = false;
	if (res == -ECANCELED || ch->fd < 0)
		return 0;
	int ret = res < 0 ? res : ipc_outq_flush(&ch->outq, ch->fd);
	if (ret == 1) {
		ch->outq.armed = true;
		ring_poll_writable(srv.ring, ch->slot, ch->fd);
		return 0;
	}
	return ret;
}

/* ---- closing ---- */

static void conn_close(struct conn *c, bool force)
{
	if (force)
		c->flags |= CF_FORCE;
	if (c->state == CONN_AUTHENTICATING && c->req_id != 0 && srv.auth != NULL) {
		/* auth forgets the request and sends nothing back */
		ipc_msg_init(&srv.msg, IPC_AUTH_ABORT, c->req_id);
		(void)chan_send(srv.auth, &srv.msg, -1);
	}
	/* a hand-off at master keeps its id: the reply releases the connection */
	if ((c->flags & CF_HANDOFF_SENT) == 0)
		c->req_id = 0;
	conn_set_state(c, CONN_CLOSING);
}

/* the ring is done with c's slot (ring_slot_retire) */
static void conn_free(struct ring_owner *owner)
{
	struct conn *c = RING_OWNER(owner, struct conn, ro);
	log_debug("conn %u: freed", c->slot);
	list_del(&srv.closing, c);
	if (c->session != NULL)
		srv.set->proto->destroy(c->session);
	if (c->fd >= 0)
		ring_close(srv.ring, c->fd);
	conn_out_free(c);
	outq_free(&c->early);
	if (c->ho != NULL) {
		explicit_bzero(c->ho->cookie, sizeof(c->ho->cookie));
		if (c->ho->proxy_fd >= 0)
			close(c->ho->proxy_fd);
		rg_free(c->ho->tag);
		rg_free(c->ho);
	}
	conn_backend_free(&c->be);
	if (c->tls != NULL)
		tls_conn_free(&c->tls);
	if ((c->flags & CF_HAPROXY) != 0)
		srv.haproxy_waiting--;
	rg_free(c->hp);
	rg_free(c->user);
	rg_free(c);
	srv.conns--;
	login_status();
	accept_update();
}

/* ---- TLS ---- */

static void conn_start_session(struct conn *c);

/* pause or resume reading the client (proxy back-pressure) */
static void conn_recv_pause(struct conn *c)
{
	if ((c->flags & CF_PAUSED) != 0)
		return;
	c->flags |= CF_PAUSED;
	c->flags = cancel_once(c->slot, RING_OP_RECV, c->flags, CF_RECV, CF_RECV_CANCELLED);
}

static bool conn_wants_recv(const struct conn *c)
{
	switch ((enum conn_state)c->state) {
	case CONN_PRELOGIN:
	case CONN_AUTHENTICATING:
		/* a plaintext client is not read before its greeting */
		return c->ac == NULL || (c->flags & CF_TLS) != 0;
	case CONN_HANDOFF:
		/* a TLS client's later bytes are decrypted into the preread */
		return (c->flags & CF_TLS) != 0;
	case CONN_BACKEND:
		return true; /* into the preread, for the backend */
	case CONN_PROXY:
		return (c->flags & CF_PAUSED) == 0 && (c->px->flags & PX_CLIENT_EOF) == 0;
	case CONN_CLOSING:
		break;
	}
	return false;
}

static void conn_recv_arm(struct conn *c)
{
	if ((c->flags & CF_RECV) == 0 && conn_wants_recv(c)) {
		c->flags |= CF_RECV;
		ring_recv(srv.ring, c->slot, c->fd);
	}
}

static void conn_recv_resume(struct conn *c)
{
	if ((c->flags & CF_PAUSED) == 0)
		return;
	c->flags &= ~CF_PAUSED;
	/* a cancel still on its way re-arms when it completes */
	if ((c->flags & CF_RECV_CANCELLED) == 0)
		conn_recv_arm(c);
}

static void proxy_send_more(struct conn_proxy *px)
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
static void proxy_finish(struct conn_proxy *px)
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
static void proxy_to_client(struct conn_proxy *px, const uint8_t *data, size_t len)
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
			px->flags = cancel_once(px->slot, RING_OP_RECV, px->flags, PX_RECV,
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
		px->flags = cancel_once(px->slot, RING_OP_RECV, px->flags, PX_RECV, PX_RECV_CANCELLED);
	}
	conn_send_more(c);
}

static void proxy_recv_arm(struct conn_proxy *px)
{
	if ((px->flags & (PX_RECV | PX_PAUSED | PX_WORKER_EOF | PX_CONNECTING)) == 0 &&
	    px->c != NULL && (px->c->state == CONN_PROXY || px->c->state == CONN_BACKEND)) {
		px->flags |= PX_RECV;
		ring_recv(srv.ring, px->slot, px->fd);
	}
}

/* The client took some output: move held worker output into the engine. */
static void proxy_output_room(struct conn_proxy *px)
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
		proxy_finish(px);
		return;
	}
	if ((px->flags & PX_PAUSED) != 0) {
		px->flags &= ~PX_PAUSED;
		/* a TLS backend: records already received come first */
		if (px->tls != NULL)
			backend_tls_feed(px);
		if ((px->flags & (PX_RECV_CANCELLED | PX_PAUSED)) == 0 && px->c != NULL)
			proxy_recv_arm(px);
	}
}

/* After a successful hand-off of a TLS client: relay between the engine and
 * the worker's socketpair. */
static void proxy_start(struct conn *c)
{
	struct conn_handoff *ho = c->ho;
	struct conn_proxy *px = rg_calloc(1, sizeof(*px));

	px->ro.event = proxy_event;
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
	explicit_bzero(ho->cookie, sizeof(ho->cookie));
	explicit_bzero(ho->preread, sizeof(ho->preread));
	rg_free(ho->tag);
	rg_free(ho);
	c->ho = NULL;
	if (c->session != NULL) {
		srv.set->proto->destroy(c->session);
		c->session = NULL;
	}
	conn_set_state(c, CONN_PROXY);
	proxy_recv_arm(px);
	proxy_send_more(px);
	conn_recv_arm(c);
}

/* ---- proxying to a backend (passdb proxy fields) ---- */

#define BACKEND_TIMEOUT_DEFAULT 30 /* seconds, as Dovecot's proxy connect timeout */
#define BACKEND_UNAVAILABLE "Account is temporarily unavailable."

static void conn_backend_free(struct conn_backend **bep)
{
	struct conn_backend *be = *bep;
	if (be == NULL)
		return;
	*bep = NULL;
	backend_login_free(&be->login);
	if (be->pass != NULL) {
		explicit_bzero(be->pass, be->pass_len);
		rg_free(be->pass);
	}
	rg_free(be->destuser);
	rg_free(be->master);
	rg_free(be);
}

/* The value of key in TAB-separated key=value fields, copied into out ("" for
 * a bare key); false when absent or longer than out. */
static bool extra_get(const char *extra, const char *key, char *out, size_t size)
{
	size_t klen = strlen(key);
	for (const char *p = extra; *p != '\0';) {
		size_t n = strcspn(p, "\t");
		if (n >= klen && strncmp(p, key, klen) == 0 && (n == klen || p[klen] == '=')) {
			size_t vlen = n == klen ? 0 : n - klen - 1;
			if (vlen >= size)
				return false;
			memcpy(out, p + n - vlen, vlen);
			out[vlen] = '\0';
			return true;
		}
		p += n;
		if (*p == '\t')
			p++;
	}
	return false;
}

static bool extra_proxied(const char *extra)
{
	char v[8];
	return extra != NULL && (extra_get(extra, "proxy", v, sizeof(v)) ||
				 extra_get(extra, "proxy_maybe", v, sizeof(v)));
}

/* proxy_maybe: is host:port one of our own listeners? */
static bool backend_is_us(const struct sockaddr *sa, socklen_t len)
{
	struct login_addr a;
	login_addr_from_sockaddr(sa, len, &a);
	for (unsigned i = 0; i < srv.set->listen_count; i++) {
		const struct login_addr *l = &srv.listen_addrs[i];
		if (l->port != a.port)
			continue;
		static const uint8_t zero[16];
		bool any = l->family != 0 &&
			   memcmp(l->ip, zero, l->family == AF_INET ? 4 : 16) == 0;
		if (any || login_addr_same_ip(l, &a))
			return true;
	}
	return false;
}

/* Dovecot's proxy fields from AUTH_OK: where to and as whom. false (logged)
 * when they are unusable; *local_r for proxy_maybe naming ourselves. */
static bool conn_backend_parse(struct conn *c, const char *extra, const struct ipc_fields *f,
			       bool *local_r)
{
	char v[256], host[RG_BACKEND_NAME_MAX + 1], hostip[64], user[80];
	log_escape(c->user, strlen(c->user), 64, user, sizeof(user));
	*local_r = false;
	if (!extra_get(extra, "host", host, sizeof(host)) || host[0] == '\0') {
		log_error("proxy(%s): host not given or longer than %u characters", user,
			  RG_BACKEND_NAME_MAX);
		return false;
	}
	/* Dovecot's hostip: where to connect, host staying the name the
	 * backend's certificate must carry. auth adds it for a host that is
	 * a DNS name (the login process has no DNS). */
	bool have_ip = extra_get(extra, "hostip", hostip, sizeof(hostip)) && hostip[0] != '\0';
	if (!have_ip) {
		size_t n = strlen(host);
		if (n >= sizeof(hostip))
			n = 0; /* too long for an address: a DNS name */
		memcpy(hostip, host, n);
		hostip[n] = '\0';
	}
	unsigned port = srv.set->proto->backend_port;
	if (extra_get(extra, "port", v, sizeof(v))) {
		char *end;
		unsigned long n = strtoul(v, &end, 10);
		if (v[0] < '0' || v[0] > '9' || *end != '\0' || n == 0 || n > 65535) {
			log_error("proxy(%s): invalid port '%s'", user, v);
			return false;
		}
		port = (unsigned)n;
	}
	uint8_t tls_mode = BACKEND_TLS_NONE;
	bool verify = false;
	if (extra_get(extra, "ssl", v, sizeof(v)))
		tls_mode = BACKEND_TLS_IMPLICIT;
	else if (extra_get(extra, "starttls", v, sizeof(v)))
		tls_mode = BACKEND_TLS_STARTTLS;
	if (tls_mode != BACKEND_TLS_NONE) {
		/* Dovecot's values: yes verifies the certificate, any-cert not */
		if (strcmp(v, "yes") == 0) {
			verify = true;
		} else if (strcmp(v, "any-cert") != 0) {
			log_error("proxy(%s): invalid %s value '%s' (yes or any-cert)", user,
				  tls_mode == BACKEND_TLS_IMPLICIT ? "ssl" : "starttls", v);
			return false;
		}
		if (verify && (srv.set->client_ca_pem == NULL || srv.set->client_ca_pem[0] == '\0')) {
			log_error("proxy(%s): ssl=yes/starttls=yes needs ssl_client_ca_file", user);
			return false;
		}
	}
	struct sockaddr_storage ss;
	socklen_t sslen;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	char name[sizeof(((struct conn_backend *)0)->name)];
	if (inet_pton(AF_INET, hostip, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		sslen = sizeof(*sin);
	} else if (inet_pton(AF_INET6, hostip, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		sslen = sizeof(*sin6);
	} else if (have_ip) {
		log_error("proxy(%s): hostip '%s' is not an IP address", user, hostip);
		return false;
	} else {
		char esc[96];
		log_escape(host, strlen(host), 80, esc, sizeof(esc));
		log_error("proxy(%s): host '%s' is not an IP address and was not resolved", user,
			  esc);
		return false;
	}
	if (strcmp(host, hostip) != 0 && strspn(host, "abcdefghijklmnopqrstuvwxyz"
						    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") !=
					     strlen(host)) {
		log_error("proxy(%s): host is neither an IP address nor a DNS name", user);
		return false;
	}
	bool v6 = ss.ss_family == AF_INET6;
	if (strcmp(host, hostip) == 0)
		snprintf(name, sizeof(name), v6 ? "[%s]:%u" : "%s:%u", host, port);
	else
		snprintf(name, sizeof(name), "%s[%s]:%u", host, hostip, port);
	if (extra_get(extra, "proxy_maybe", v, sizeof(v)) &&
	    backend_is_us((struct sockaddr *)&ss, sslen)) {
		*local_r = true;
		return true;
	}
	if (!ipc_has(f, IPC_F_PASS)) {
		log_error("proxy(%s): no password for the backend", user);
		return false;
	}
	struct conn_backend *be = rg_calloc(1, sizeof(*be));
	be->tls = tls_mode;
	be->verify = verify;
	be->addr = ss;
	be->addr_len = sslen;
	memcpy(be->name, name, sizeof(name));
	memcpy(be->host, host, sizeof(host));
	be->timeout = BACKEND_TIMEOUT_DEFAULT;
	if (extra_get(extra, "proxy_timeout", v, sizeof(v))) {
		char *end;
		unsigned long n = strtoul(v, &end, 10);
		if (v[0] >= '0' && v[0] <= '9' && *end == '\0' && n > 0 && n <= 3600)
			be->timeout = (unsigned)n;
		else
			log_warning("proxy(%s): invalid proxy_timeout '%s', using %u", user, v,
				    be->timeout);
	}
	if (extra_get(extra, "destuser", v, sizeof(v)) && v[0] != '\0')
		be->destuser = rg_strdup(v);
	if (extra_get(extra, "master", v, sizeof(v)) && v[0] != '\0')
		be->master = rg_strdup(v);
	be->pass_len = f->len[IPC_F_PASS];
	be->pass = rg_malloc(be->pass_len + 1);
	memcpy(be->pass, f->val[IPC_F_PASS], be->pass_len);
	c->be = be;
	return true;
}

/* the ring is done with the relay's slot (ring_slot_retire) */
static void proxy_free(struct ring_owner *owner)
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
static void proxy_retire(struct conn_proxy *px)
{
	px->c->px = NULL;
	px->c = NULL;
	ring_slot_retire(srv.ring, px->slot, proxy_free);
}

/* The backend cannot be used (down, refused, stalled, not speaking the
 * protocol): as Dovecot, the client gets NO [UNAVAILABLE] / -ERR
 * [SYS/TEMP] and the session goes on before login. */
static void conn_backend_failed(struct conn *c, const char *why, const char *client_text)
{
	char rip[64], user[80];
	log_escape(c->user, strlen(c->user), 64, user, sizeof(user));
	log_error("proxy(%s): %s: %s (rip=%s, session=<%s>)", user,
		  c->be != NULL ? c->be->name : "?", why,
		  login_addr_ip(&c->remote, rip, sizeof(rip)), c->session_id);
	if (c->px != NULL)
		proxy_retire(c->px);
	conn_backend_free(&c->be);
	conn_handoff_abandon(c, client_text != NULL ? client_text : BACKEND_UNAVAILABLE);
}

/* The dialogue's commands are only queued: what one backend input (or the
 * connect) makes them say leaves in one send (ID and AUTHENTICATE in one
 * segment), flushed by conn_backend_input(), the connect's completion or
 * the TLS pump. */
static void backend_send(void *ctx, const void *data, size_t len)
{
	struct conn_proxy *px = ctx;
	outq_append(&px->to_worker, data, len, (px->flags & PX_SEND) != 0);
}

/* AUTH_OK for a proxied user and the core's hand-off: connect to the
 * backend instead of master (no worker, no cookie). */
static void conn_backend_start(struct conn *c)
{
	struct conn_backend *be = c->be;
	conn_set_state(c, CONN_BACKEND);
	be->deadline = srv.now + be->timeout;
	int fd = socket(be->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		char why[96];
		snprintf(why, sizeof(why), "socket: %s", strerror(errno));
		conn_backend_failed(c, why, NULL);
		return;
	}
	struct conn_proxy *px = rg_calloc(1, sizeof(*px));
	px->ro.event = proxy_event;
	px->c = c;
	px->fd = fd;
	px->slot = ring_slot_alloc(srv.ring, &px->ro);
	px->flags = PX_CONNECTING | PX_BACKEND;
	c->px = px;
	char rip[64], lip[64];
	struct backend_login_config bc = {
		.pop3 = srv.set->proto->backend_pop3,
		.starttls = be->tls == BACKEND_TLS_STARTTLS,
		.user = be->destuser != NULL ? be->destuser : c->user,
		.master = be->master,
		.pass = be->pass,
		.pass_len = be->pass_len,
		.rip = login_addr_ip(&c->remote, rip, sizeof(rip)),
		.lip = login_addr_ip(&c->local, lip, sizeof(lip)),
		.rport = c->remote.port,
		.lport = c->local.port,
		.session = c->session_id,
	};
	be->login = backend_login_new(&bc, backend_send, px);
	explicit_bzero(be->pass, be->pass_len);
	rg_free(be->pass);
	be->pass = NULL;
	log_debug("conn %u: connecting to backend %s", c->slot, be->name);
	ring_connect(srv.ring, px->slot, fd, &be->addr, be->addr_len);
}

/* The backend said OK: relay its answer with the client's tag, send it what
 * the client pipelined, and pump. */
static void conn_backend_ok(struct conn *c, const char *reply, const uint8_t *rest,
			    size_t rest_len)
{
	struct conn_proxy *px = c->px;
	struct conn_handoff *ho = c->ho;
	char *line = ho->tag != NULL ? rg_strdup_printf("%s %s\r\n", ho->tag, reply)
				     : rg_strdup_printf("%s\r\n", reply);
	cb_send(c, line, strlen(line));
	rg_free(line);
	if (c->state == CONN_CLOSING)
		return; /* the client does not read: conn_free() cleans up */
	char rip[64], lip[64], user[80];
	log_escape(c->user, strlen(c->user), 64, user, sizeof(user));
	log_info("proxy(%s): started proxying to %s: rip=%s, lip=%s, session=<%s>", user,
		 c->be->name, login_addr_ip(&c->remote, rip, sizeof(rip)),
		 login_addr_ip(&c->local, lip, sizeof(lip)), c->session_id);
	c->flags |= CF_LOGGED;
	conn_backend_free(&c->be);
	if (ho->preread_len > 0) {
		outq_append(&px->to_worker, ho->preread, ho->preread_len, (px->flags & PX_SEND) != 0);
		px->in += ho->preread_len;
	}
	explicit_bzero(ho->cookie, sizeof(ho->cookie));
	explicit_bzero(ho->preread, sizeof(ho->preread));
	rg_free(ho->tag);
	rg_free(ho);
	c->ho = NULL;
	if (c->session != NULL) {
		srv.set->proto->destroy(c->session);
		c->session = NULL;
	}
	conn_set_state(c, CONN_PROXY);
	if (rest_len > 0)
		proxy_to_client(px, rest, rest_len);
	proxy_send_more(px);
	conn_recv_arm(c);
}

/* ---- TLS to the backend ---- */

static struct tls_ctx *backend_tls_ctx(bool verify)
{
	struct tls_ctx **ctx = &srv.backend_tls[verify ? 1 : 0];
	const char *error;
	if (*ctx == NULL && tls_ctx_create_client(srv.set->client_ca_pem, verify, ctx, &error) < 0) {
		log_error("proxy: TLS client context: %s", error);
		*ctx = NULL;
	}
	return *ctx;
}

static void conn_backend_input(struct conn *c, const uint8_t *data, size_t len);

/* the backend's plaintext, wherever the session is */
static void backend_plain_in(struct conn_proxy *px, const uint8_t *data, size_t len)
{
	if (px->c->state == CONN_BACKEND)
		conn_backend_input(px->c, data, len);
	else if (px->c->state == CONN_PROXY)
		proxy_to_client(px, data, len);
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
		proxy_finish(px);
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
static void backend_tls_pump(struct conn_proxy *px)
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
			proxy_send_more(px);
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
		proxy_send_more(px);
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
		px->flags = cancel_once(px->slot, RING_OP_RECV, px->flags, PX_RECV,
						  PX_RECV_CANCELLED);
	}
}

static void backend_tls_start(struct conn *c)
{
	struct conn_proxy *px = c->px;
	struct tls_ctx *ctx = backend_tls_ctx(c->be->verify);
	if (ctx == NULL) {
		conn_backend_failed(c, "no TLS client context", NULL);
		return;
	}
	px->tls = tls_conn_new(ctx);
	/* ssl=yes: the certificate must also name host (hostip is only
	 * where we connect), as Dovecot checks it */
	tls_conn_set_peer_name(px->tls, c->be->host, c->be->verify);
	backend_tls_pump(px); /* the ClientHello */
}

static void conn_backend_input(struct conn *c, const uint8_t *data, size_t len)
{
	size_t consumed = 0;
	const char *reply;
	char why[160];
	enum backend_result r = backend_login_input(c->be->login, data, len, &consumed, &reply);
	switch (r) {
	case BACKEND_MORE:
		proxy_send_more(c->px);
		return;
	case BACKEND_ERROR:
		snprintf(why, sizeof(why), "protocol error: %s", reply);
		conn_backend_failed(c, why, NULL);
		return;
	case BACKEND_FAIL: {
		/* the backend's own refusal goes to the client, as Dovecot
		 * relays it; the session goes on before login */
		char esc[128];
		log_escape(reply, strlen(reply), 100, esc, sizeof(esc));
		snprintf(why, sizeof(why), "login refused: %s", esc);
		const char *text = reply;
		if (strncmp(text, "NO ", 3) == 0)
			text += 3;
		else if (strncmp(text, "BAD ", 4) == 0)
			text += 4;
		else if (strncmp(text, "-ERR ", 5) == 0)
			text += 5;
		/* with its response code; without one, the code of a failed
		 * login here ([UNAVAILABLE] / [SYS/TEMP] would invite a retry) */
		char *copy = rg_strdup_printf("%s%s", text[0] == '[' ? "" :
					      srv.set->proto->backend_fail_code, text);
		conn_backend_failed(c, why, copy);
		rg_free(copy);
		return;
	}
	case BACKEND_OK:
		conn_backend_ok(c, reply, data + consumed, len - consumed);
		return;
	case BACKEND_STARTTLS:
		backend_tls_start(c);
		return;
	}
}

static void proxy_event(struct ring_owner *owner, const struct ring_event *ev)
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
		proxy_recv_arm(px);
		if (c->be->tls == BACKEND_TLS_IMPLICIT)
			backend_tls_start(c);
		else
			proxy_send_more(px);
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
			proxy_recv_arm(px);
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
			proxy_send_more(px);
		break;
	}
	default:
		log_fatal("conn %u: unexpected proxy ring op %d", c->slot, (int)ev->op);
	}
	conn_check(c);
}

/* Plaintext from the engine, wherever the session is. */
static void conn_plaintext_in(struct conn *c, const uint8_t *data, size_t len)
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
	case CONN_PROXY: {
		struct conn_proxy *px = c->px;
		if ((px->flags & PX_CLIENT_EOF) != 0)
			break;
		outq_append(&px->to_worker, data, len, (px->flags & PX_SEND) != 0);
		px->in += len;
		if (outq_pending(px->to_worker) > PROXY_TO_WORKER_MAX)
			conn_recv_pause(c);
		proxy_send_more(px);
		break;
	}
	case CONN_CLOSING:
		break;
	}
}

/* The client will send nothing more (EOF or close_notify). */
static void conn_client_eof(struct conn *c, bool error)
{
	if (c->state == CONN_PROXY && !error) {
		c->px->flags |= PX_CLIENT_EOF;
		c->flags = cancel_once(c->slot, RING_OP_RECV, c->flags, CF_RECV, CF_RECV_CANCELLED);
		proxy_send_more(c->px);
		return;
	}
	if (c->state != CONN_CLOSING) {
		if ((c->flags & CF_HAPROXY) != 0) {
			char rip[64];
			log_info("haproxy: Client disconnected (rip=%s)",
				 login_addr_ip(&c->remote, rip, sizeof(rip)));
			c->flags |= CF_LOGGED;
		}
		conn_log_end(c, error ? "Connection error" : "");
		conn_close(c, true);
	}
}

static void conn_tls_established(struct conn *c)
{
	c->flags |= CF_SECURED;
	srv.stats.v[tls_conn_resumed(c->tls) ? STAT_HS_RESUMED : STAT_HS_FULL]++;
	log_debug("conn %u: %s %s%s%s%s", c->slot, tls_conn_version(c->tls),
		  tls_conn_cipher(c->tls), tls_conn_resumed(c->tls) ? ", resumed" : "",
		  tls_conn_sni(c->tls) != NULL ? ", sni=" : "",
		  tls_conn_sni(c->tls) != NULL ? tls_conn_sni(c->tls) : "");
	if (c->access_verdict != ACCESS_PENDING_NONE) {
		/* refused by the access check meanwhile: say so instead */
		access_refuse_send(c, (enum access_verdict)c->access_verdict);
		return;
	}
	if (c->session == NULL && c->ac == NULL)
		conn_start_session(c); /* implicit TLS: the greeting goes out now */
}

/* Drive the engine after input or output progress: the handshake, then
 * every record it can decrypt. */
static void conn_tls_pump(struct conn *c)
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

static struct tls_ctx *tls_ctx_get(void)
{
	if (srv.tls == NULL) {
		srv.tls = srv.set->tls_build();
		if (srv.ticket_keys_len > 0)
			tls_ctx_set_ticket_keys(srv.tls, srv.ticket_keys,
						srv.ticket_keys_len > TLS_TICKET_KEY_SIZE ?
						srv.ticket_keys + TLS_TICKET_KEY_SIZE : NULL);
	}
	return srv.tls;
}

static void conn_tls_input(struct conn *c, const uint8_t *data, size_t len)
{
	if (c->state == CONN_CLOSING || (c->px != NULL && (c->px->flags & PX_CLIENT_EOF) != 0))
		return;
	if (c->tls == NULL) {
		/* the first handshake byte: only now does TLS cost memory */
		c->tls = tls_conn_new(tls_ctx_get());
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

static void conn_tls_output_room(struct conn *c)
{
	if (c->state == CONN_CLOSING)
		return;
	if (c->px != NULL)
		proxy_output_room(c->px);
	else if (!tls_conn_handshake_done(c->tls))
		conn_tls_pump(c);
}

/* ---- hand-off ---- */

/* The hand-off did not happen: the session goes on before login. The core
 * kept the preread it gave us and replays it itself, so only the bytes that
 * arrived after it called handoff are new to it. */
static void conn_handoff_abandon(struct conn *c, const char *reason)
{
	struct conn_handoff *ho = c->ho;
	uint8_t late[LOGIN_MAX_PENDING];
	size_t late_len = (size_t)(ho->preread_len - ho->core_len);

	memcpy(late, ho->preread + ho->core_len, late_len);
	if (ho->proxy_fd >= 0)
		close(ho->proxy_fd);
	explicit_bzero(ho->cookie, sizeof(ho->cookie));
	explicit_bzero(ho->preread, ho->preread_len);
	rg_free(ho->tag);
	rg_free(ho);
	c->ho = NULL;
	c->req_id = 0;
	conn_set_state(c, CONN_PRELOGIN);
	srv.set->proto->handoff_failed(c->session, reason);
	if (late_len > 0 && (c->state == CONN_PRELOGIN || c->state == CONN_AUTHENTICATING))
		srv.set->proto->input(c->session, late, late_len);
	if ((c->state == CONN_PRELOGIN || c->state == CONN_AUTHENTICATING) &&
	    (c->flags & CF_RECV) == 0) {
		c->flags |= CF_RECV;
		ring_recv(srv.ring, c->slot, c->fd);
	}
}

static void conn_send_handoff(struct conn *c)
{
	struct conn_handoff *ho = c->ho;
	char rip[64], lip[64];
	login_addr_ip(&c->remote, rip, sizeof(rip));
	login_addr_ip(&c->local, lip, sizeof(lip));

	c->req_id = next_req_id(c);
	ipc_msg_init(&srv.msg, IPC_LOGIN_HANDOFF, c->req_id);
	ipc_msg_add_str(&srv.msg, IPC_F_SERVICE, srv.set->service);
	ipc_msg_add_str(&srv.msg, IPC_F_USER, c->user);
	ipc_msg_add_str(&srv.msg, IPC_F_COOKIE, ho->cookie);
	if (ho->tag != NULL)
		ipc_msg_add_str(&srv.msg, IPC_F_TAG, ho->tag);
	ipc_msg_add_str(&srv.msg, IPC_F_RIP, rip);
	ipc_msg_add_uint(&srv.msg, IPC_F_RPORT, c->remote.port);
	ipc_msg_add_str(&srv.msg, IPC_F_LIP, lip);
	ipc_msg_add_uint(&srv.msg, IPC_F_LPORT, c->local.port);
	if ((c->flags & CF_SECURED) != 0)
		ipc_msg_add_str(&srv.msg, IPC_F_SECURED, "1");
	if (ho->preread_len > 0)
		ipc_msg_add(&srv.msg, IPC_F_PREREAD, ho->preread, ho->preread_len);
	ipc_msg_add_str(&srv.msg, IPC_F_SESSION, c->session_id);
	int pass_fd = c->fd;
	int pair[2] = { -1, -1 };
	if ((c->flags & CF_TLS) != 0) {
		/* the worker gets plaintext from us; we keep the TLS session */
		ipc_msg_add_str(&srv.msg, IPC_F_TLS, "1");
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) {
			log_error("conn %u: socketpair: %m", c->slot);
			explicit_bzero(srv.msg.buf, srv.msg.len);
			conn_handoff_abandon(c, "Internal error occurred. Refer to server log for more information.");
			conn_defer(c);
			return;
		}
		pass_fd = pair[1];
	}
	ho->sent_len = ho->preread_len;
	int ret = chan_send(&srv.master, &srv.msg, pass_fd);
	explicit_bzero(srv.msg.buf, srv.msg.len);
	if (pair[1] >= 0)
		close(pair[1]);
	ho->proxy_fd = pair[0];
	if (ret < 0) {
		log_error("conn %u: hand-off to master failed: %s", c->slot, strerror(-ret));
		conn_handoff_abandon(c, "Internal error occurred. Refer to server log for more information.");
		conn_defer(c);
		return;
	}
	c->flags |= CF_HANDOFF_SENT;
}

static void conn_handoff_reply(struct conn *c, const struct ipc_fields *f)
{
	const char *reason = ipc_str(f, IPC_F_REASON);
	char rip[64], lip[64], user[80];
	c->flags &= ~CF_HANDOFF_SENT;
	c->req_id = 0;
	if (reason == NULL) {
		srv.stats.v[STAT_HANDOFFS]++;
		login_addr_ip(&c->remote, rip, sizeof(rip));
		login_addr_ip(&c->local, lip, sizeof(lip));
		log_escape(c->user, strlen(c->user), 64, user, sizeof(user));
		unsigned long long mpid = 0;
		(void)ipc_uint(f, IPC_F_MPID, &mpid);
		log_info("Login: user=<%s>, method=%s, rip=%s, lip=%s, mpid=%llu%s, session=<%s>",
			 user, c->mech, rip, lip, mpid,
			 (c->flags & CF_TLS) != 0 ? ", TLS" :
			 (c->flags & CF_SECURED) != 0 ? ", secured" : "",
			 c->session_id);
		if ((c->flags & CF_TLS) != 0) {
			c->flags |= CF_LOGGED;
			proxy_start(c);
			return;
		}
		c->flags |= CF_LOGGED | CF_FORCE;
		/* the worker owns the client now: close our copy only */
		conn_set_state(c, CONN_CLOSING);
		return;
	}
	char why[120];
	log_escape(reason, strlen(reason), 100, why, sizeof(why));
	log_warning("conn %u: master refused the hand-off: %s", c->slot, why);
	conn_handoff_abandon(c, reason);
}

/* the relay of a closing connection: count and log it, and let it go */
static void conn_proxy_done(struct conn *c)
{
	struct conn_proxy *px = c->px;
	if ((px->flags & (PX_BACKEND | PX_CONNECTING)) == PX_BACKEND && c->user != NULL) {
		char user[80];
		log_escape(c->user, strlen(c->user), 64, user, sizeof(user));
		log_info("proxy(%s): disconnected, in=%llu out=%llu, session=<%s>", user,
			 (unsigned long long)px->in, (unsigned long long)px->out, c->session_id);
	}
	log_debug("conn %u: proxy done: in=%llu out=%llu", c->slot, (unsigned long long)px->in,
		  (unsigned long long)px->out);
	srv.stats.v[STAT_PROXY_IN] += px->in;
	srv.stats.v[STAT_PROXY_OUT] += px->out;
	proxy_retire(px);
}

/* Make progress on a connection after an event; it may be retired (the
 * ring frees it after this event). Only called when no protocol-core
 * function is on the stack. */
static void conn_check(struct conn *c)
{
	/* on the deferred list: process_deferred() comes back to it, and
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
	bool flushed = !conn_output_pending(c);
	if (!flushed && (c->flags & CF_FORCE) == 0 && (int32_t)(srv.now - c->deadline) < 0) {
		/* still flushing; stop reading meanwhile */
		c->flags = cancel_once(c->slot, RING_OP_RECV, c->flags, CF_RECV, CF_RECV_CANCELLED);
		return;
	}
	if (!flushed)
		c->flags |= CF_FORCE;
	if ((c->flags & CF_HANDOFF_SENT) != 0) {
		/* master's answer first; stop reading meanwhile */
		c->flags = cancel_once(c->slot, RING_OP_RECV, c->flags, CF_RECV, CF_RECV_CANCELLED);
		return;
	}
	/* a connect to an unreachable backend may take minutes: the retire
	 * cancels it with the rest */
	if (c->px != NULL)
		conn_proxy_done(c);
	c->flags |= CF_RETIRED;
	ring_slot_retire(srv.ring, c->slot, conn_free);
}

/* ---- protocol core callbacks ---- */

static void cb_send(void *ctx, const void *data, size_t len)
{
	struct conn *c = ctx;
	if (c->tls != NULL && tls_conn_handshake_done(c->tls))
		conn_tls_write(c, data, len);
	else
		conn_out_append(c, data, len);
}

static bool auth_send(struct conn *c, struct ipc_msg *msg)
{
	if (srv.auth == NULL)
		return false;
	int ret = chan_send(srv.auth, msg, -1);
	explicit_bzero(msg->buf, msg->len);
	if (ret < 0) {
		log_warning("conn %u: auth request not sent: %s", c->slot, strerror(-ret));
		return false;
	}
	return true;
}

static void cb_auth_begin(void *ctx, const char *mech, const uint8_t *resp, size_t resp_len,
			  bool has_resp)
{
	struct conn *c = ctx;
	char rip[64], lip[64];

	if (c->state != CONN_PRELOGIN)
		log_fatal("conn %u: auth_begin in state %s", c->slot, conn_state_names[c->state]);
	snprintf(c->mech, sizeof(c->mech), "%s", mech);
	if (c->auth_attempts < UINT8_MAX)
		c->auth_attempts++;
	rg_free(c->user);
	c->user = NULL;
	c->req_id = next_req_id(c);
	conn_set_state(c, CONN_AUTHENTICATING);

	login_addr_ip(&c->remote, rip, sizeof(rip));
	login_addr_ip(&c->local, lip, sizeof(lip));
	ipc_msg_init(&srv.msg, IPC_AUTH_BEGIN, c->req_id);
	ipc_msg_add_str(&srv.msg, IPC_F_MECH, mech);
	ipc_msg_add_str(&srv.msg, IPC_F_SERVICE, srv.set->service);
	ipc_msg_add_str(&srv.msg, IPC_F_RIP, rip);
	ipc_msg_add_uint(&srv.msg, IPC_F_RPORT, c->remote.port);
	ipc_msg_add_str(&srv.msg, IPC_F_LIP, lip);
	ipc_msg_add_uint(&srv.msg, IPC_F_LPORT, c->local.port);
	if ((c->flags & CF_SECURED) != 0)
		ipc_msg_add_str(&srv.msg, IPC_F_SECURED, "1");
	if (has_resp) {
		if (resp_len > ipc_msg_room(&srv.msg))
			resp_len = ipc_msg_room(&srv.msg); /* auth rejects it */
		ipc_msg_add(&srv.msg, IPC_F_RESP, resp, resp_len);
	}
	if (!auth_send(c, &srv.msg)) {
		/* answered after the core returns: it is not re-entered */
		c->flags |= CF_TEMPFAIL;
		conn_defer(c);
	}
}

static void cb_auth_continue(void *ctx, const uint8_t *resp, size_t resp_len)
{
	struct conn *c = ctx;
	if (c->state != CONN_AUTHENTICATING || c->req_id == 0)
		log_fatal("conn %u: auth_continue without a request", c->slot);
	ipc_msg_init(&srv.msg, IPC_AUTH_CONTINUE, c->req_id);
	if (resp_len > ipc_msg_room(&srv.msg))
		resp_len = ipc_msg_room(&srv.msg);
	ipc_msg_add(&srv.msg, IPC_F_RESP, resp, resp_len);
	if (!auth_send(c, &srv.msg)) {
		c->flags |= CF_TEMPFAIL;
		conn_defer(c);
	}
}

static void cb_auth_abort(void *ctx)
{
	struct conn *c = ctx;
	if (c->state != CONN_AUTHENTICATING)
		return;
	if (c->req_id != 0 && srv.auth != NULL) {
		ipc_msg_init(&srv.msg, IPC_AUTH_ABORT, c->req_id);
		(void)chan_send(srv.auth, &srv.msg, -1);
	}
	c->req_id = 0;
	c->flags &= ~CF_TEMPFAIL;
	conn_set_state(c, CONN_PRELOGIN);
}

static void cb_handoff(void *ctx, const char *tag, const uint8_t *preread, size_t preread_len)
{
	struct conn *c = ctx;
	if (c->ho == NULL || c->user == NULL || c->state != CONN_AUTHENTICATING)
		log_fatal("conn %u: hand-off without a successful login", c->slot);
	if (preread_len > LOGIN_MAX_PENDING)
		log_fatal("conn %u: preread of %zu bytes", c->slot, preread_len);
	c->req_id = 0;
	c->ho->tag = tag != NULL ? rg_strdup(tag) : NULL;
	if (preread_len > 0)
		memcpy(c->ho->preread, preread, preread_len);
	c->ho->preread_len = (uint16_t)preread_len;
	c->ho->core_len = (uint16_t)preread_len;
	if (c->be != NULL) {
		/* passdb proxy: the backend instead of master; keep reading */
		conn_backend_start(c);
		return;
	}
	conn_set_state(c, CONN_HANDOFF);
	/* stop reading: whatever arrives until the cancel completes joins
	 * the preread; conn_check() passes the socket once that is done.
	 * A TLS client keeps its socket here: no need to stop. */
	if ((c->flags & (CF_RECV | CF_RECV_CANCELLED | CF_TLS)) == CF_RECV) {
		c->flags |= CF_RECV_CANCELLED;
		ring_cancel(srv.ring, c->slot, RING_OP_RECV);
	}
	conn_defer(c);
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
		struct login_addr *a = key[0] == 'r' ? &c->remote : &c->local;
		if (!login_addr_parse(value, a))
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
	.send = cb_send,
	.auth_begin = cb_auth_begin,
	.auth_continue = cb_auth_continue,
	.auth_abort = cb_auth_abort,
	.handoff = cb_handoff,
	.disconnect = cb_disconnect,
	.starttls = cb_starttls,
	.forward = cb_forward,
};

static void process_deferred(void)
{
	while (srv.deferred != NULL) {
		struct conn *c = srv.deferred;
		srv.deferred = c->defer_next;
		c->flags &= ~CF_DEFERRED;
		if ((c->flags & CF_TEMPFAIL) != 0) {
			c->flags &= ~CF_TEMPFAIL;
			if (c->state == CONN_AUTHENTICATING) {
				c->req_id = 0;
				conn_set_state(c, CONN_PRELOGIN);
				srv.set->proto->auth_reply(c->session, LOGIN_AUTH_TEMPFAIL, NULL, 0, NULL);
			}
		}
		conn_check(c);
	}
}

/* ---- status to master ---- */

static void login_status_send(void)
{
	ipc_msg_init(&srv.msg, IPC_LOGIN_STATUS, 0);
	ipc_msg_add_uint(&srv.msg, IPC_F_CONNS, srv.conns);
	ipc_msg_add_uint(&srv.msg, IPC_F_PRELOGIN, srv.prelogin);
	ipc_msg_add_uint(&srv.msg, IPC_F_TOTAL, srv.total);
	srv.reported_busy = srv.prelogin > 0;
	int ret = chan_send(&srv.master, &srv.msg, -1);
	if (ret < 0)
		log_debug("status to master: %s", strerror(-ret));
}

/* the counters, on master's request and once before exiting (docs/ipc.md);
 * bytes of proxies still running are counted so far */
static void login_stats_send(void)
{
	struct login_counters now = srv.stats;
	char text[STATS_TEXT_MAX];
	now.v[STAT_CONNS] = srv.conns;
	now.v[STAT_PRELOGIN] = srv.prelogin;
	now.v[STAT_ACCEPTED] = srv.total;
	for (struct conn *c = srv.live.head; c != NULL; c = c->next) {
		if (c->px != NULL) {
			now.v[STAT_PROXY_IN] += c->px->in;
			now.v[STAT_PROXY_OUT] += c->px->out;
		}
	}
	stats_format(&now, text, sizeof(text));
	ipc_msg_init(&srv.msg, IPC_LOGIN_STATS, 0);
	ipc_msg_add_str(&srv.msg, IPC_F_STATS, text);
	int ret = chan_send(&srv.master, &srv.msg, -1);
	if (ret < 0)
		log_debug("stats to master: %s", strerror(-ret));
}

/* called after conns or prelogin changed: only the transitions master cares
 * about (full, idle, and no client logging in: a TLS proxy is not one) */
static void login_status(void)
{
	bool full = srv.conns >= srv.set->client_limit;
	bool busy = srv.prelogin > 0;
	if (full != srv.full || srv.conns == 0 || (busy != srv.reported_busy && !busy)) {
		srv.full = full;
		login_status_send();
	}
}

/* "* BYE text" / "-ERR text" and close; the core normally calls
 * disconnect itself, this covers a core that does not */
static void conn_bye(struct conn *c, const char *text, const char *log_reason)
{
	conn_log_end(c, log_reason);
	if (c->session != NULL)
		srv.set->proto->bye(c->session, text);
	if (c->state != CONN_CLOSING)
		conn_close(c, false);
	conn_check(c);
}

/* ---- accepting ---- */

/* Accept while the process has room (or master said overflow); a full
 * process leaves new connections in the listen queue, where master sees
 * them and starts another process. */
/* Single-shot accepts, at most ACCEPT_BATCH in flight per listener and
 * never more than the process has room for: a multishot accept takes the
 * whole backlog in one wake-up (the kernel loops until it is empty), which
 * put a burst of 1,500 connections into one process, 500 over its
 * client_limit, to be evicted again. Counting accepts in flight as
 * connections keeps conns + in flight <= client_limit, give or take one
 * per listener (each keeps one accept armed). */
#define ACCEPT_BATCH 8

static void accept_update(void)
{
	if (srv.conns < srv.set->client_limit)
		srv.overflow = false;
	bool wanted = srv.accepting && (srv.conns < srv.set->client_limit || srv.overflow);
	unsigned in_flight = 0;
	for (unsigned i = 0; i < srv.set->listen_count; i++)
		in_flight += srv.listeners[i].armed;
	for (unsigned i = 0; i < srv.set->listen_count; i++) {
		struct login_src *l = &srv.listeners[i];
		if (wanted) {
			if (l->cancelling)
				continue; /* armed again once the cancel has ended */
			/* one on every listener whatever the room (a client
			 * of any of them must get in), more while the room
			 * lasts; service_count likewise (one per listener in
			 * high-security mode, the first to complete wins) */
			while (l->armed == 0 ||
			       (l->armed < ACCEPT_BATCH &&
				(srv.overflow || srv.conns + in_flight < srv.set->client_limit) &&
				(srv.set->service_count == 0 ||
				 srv.total + in_flight < srv.set->service_count))) {
				l->armed++;
				in_flight++;
				ring_accept(srv.ring, l->slot, l->fd, false);
			}
		} else if (l->armed > 0 && !l->cancelling) {
			l->cancelling = true;
			ring_cancel(srv.ring, l->slot, RING_OP_ACCEPT);
		}
	}
}

/* a retired process closes its listening sockets as soon as no accept is in
 * flight on them: a listener the reload removed stops queueing connections
 * nobody would take */
static void listeners_close_idle(void)
{
	for (unsigned i = 0; srv.retired && i < srv.set->listen_count; i++) {
		struct login_src *l = &srv.listeners[i];
		if (l->armed == 0 && l->fd >= 0) {
			ring_close(srv.ring, l->fd);
			l->fd = -1;
		}
	}
}

static void stop_accepting(void)
{
	if (!srv.accepting)
		return;
	srv.accepting = false;
	accept_update();
	log_debug("stopped accepting");
	login_status_send();
}

static struct conn *oldest_prelogin(void)
{
	for (struct conn *c = srv.live.head; c != NULL; c = c->next) {
		if (c->state == CONN_PRELOGIN)
			return c;
	}
	return NULL;
}

/* the protocol core's session: at accept, or after the handshake for
 * implicit TLS (the greeting is the first thing encrypted) */
static void conn_start_session(struct conn *c)
{
	bool secured = (c->flags & CF_SECURED) != 0;
	struct login_proto_config pc = {
		.greeting = srv.set->greeting,
		.mechanisms = srv.set->mechanisms,
		.secured = secured,
		.plaintext_auth_allowed = secured || (!srv.set->disable_plaintext_auth &&
						      !srv.set->ssl_required),
		/* as Dovecot: no STARTTLS when the proxy terminated TLS */
		.starttls_available = srv.set->tls_build != NULL &&
				      (c->flags & (CF_TLS | CF_HAPROXY_SSL)) == 0,
		.trusted = login_netlist_match(srv.set->trusted, &c->remote),
	};
	c->session = srv.set->proto->create(&pc, &conn_callbacks, c);
	if (c->session == NULL) {
		c->flags |= CF_LOGGED;
		conn_close(c, true);
	}
}

/* login_max_preauth_ip_connections: count this client's address, or turn
 * the client away before the greeting (on an ssl listener before the
 * handshake: no TLS work for it). login_trusted_networks are not counted. */
static bool conn_preauth_admit(struct conn *c)
{
	uint8_t key[LOGIN_ADDR_KEY_MAX];
	size_t len;
	if (srv.set->iplimit == NULL || login_netlist_match(srv.set->trusted, &c->remote) ||
	    (len = login_addr_limit_key(&c->remote, key)) == 0 ||
	    iplimit_acquire(srv.set->iplimit, key, len, srv.now, srv.set->max_preauth_per_ip,
			    &c->preauth))
		return true;
	srv.preauth_refused++;
	/* a flood from one address must not become a flood of log lines:
	 * one a second, with how many went unlogged */
	if (srv.preauth_refused_logged == srv.now && srv.preauth_refused > 1) {
		srv.preauth_refused_unlogged++;
		return false;
	}
	char rip[64], lip[64], more[64] = "";
	if (srv.preauth_refused_unlogged > 0)
		snprintf(more, sizeof(more), " (and %u more since the last such line)",
			 srv.preauth_refused_unlogged);
	log_info("Disconnected: Too many pre-login connections from this IP "
		 "(login_max_preauth_ip_connections=%u): user=<>, rip=%s, lip=%s, session=<%s>%s",
		 srv.set->max_preauth_per_ip, login_addr_ip(&c->remote, rip, sizeof(rip)),
		 login_addr_ip(&c->local, lip, sizeof(lip)), c->session_id, more);
	srv.preauth_refused_logged = srv.now;
	srv.preauth_refused_unlogged = 0;
	return false;
}

/* ---- the login access check (login_access_sockets) ---- */

#define ACCESS_EARLY_MAX 4096 /* a plaintext client's bytes before its greeting */
#define ACCESS_TLS_WAIT_SECS 10 /* a refused TLS client's handshake, to tell it why */

static void access_free(struct ring_owner *owner)
{
	struct conn_access *ac = RING_OWNER(owner, struct conn_access, ro);
	if (ac->fd >= 0)
		ring_close(srv.ring, ac->fd);
	rg_free(ac);
}

/* The lookup is over (decided, or the client is going): the ring cancels
 * what is in flight and frees it when its last completion is in. */
static void access_retire(struct conn *c)
{
	struct conn_access *ac = c->ac;
	c->ac = NULL;
	srv.access_pending--;
	ac->c = NULL;
	ring_slot_retire(srv.ring, ac->slot, access_free);
}

static const char *access_name(const struct conn *c)
{
	return srv.set->access_names[c->access_next];
}

/* Refused (the checker said 0, or closed without an answer: Dovecot's
 * "no success") or failed (no checker, an invalid answer, no answer within
 * login_access_timeout: Dovecot logs an error and refuses too). Either way
 * the client is told and closed; a TLS client after its handshake, in
 * TLS, as its greeting would have been. */
static void access_refuse_send(struct conn *c, enum access_verdict verdict)
{
	if (c->access_verdict != ACCESS_PENDING_NONE) {
		c->access_verdict = ACCESS_PENDING_NONE;
		srv.access_waiting--;
	}
	const char *line = verdict == ACCESS_DENIED ? srv.set->proto->line_access_denied
						    : srv.set->proto->line_internal_error;
	cb_send(c, line, strlen(line));
	if (c->state != CONN_CLOSING)
		conn_close(c, false);
	conn_defer(c);
}

static void access_refuse(struct conn *c, enum access_verdict verdict, const char *why)
{
	char rip[64];
	login_addr_ip(&c->remote, rip, sizeof(rip));
	if (verdict == ACCESS_DENIED)
		log_info("access(%s): Client refused (rip=%s, session=<%s>)", access_name(c), rip,
			 c->session_id);
	else
		log_error("access(%s): %s: client refused (rip=%s, session=<%s>)", access_name(c),
			  why, rip, c->session_id);
	c->flags |= CF_LOGGED;
	access_retire(c);
	/* an implicit-TLS client gets the answer once its handshake is done,
	 * within ACCESS_TLS_WAIT_SECS */
	if ((c->flags & CF_TLS) != 0 && (c->tls == NULL || !tls_conn_handshake_done(c->tls))) {
		c->access_verdict = (uint8_t)verdict;
		c->deadline = srv.now + ACCESS_TLS_WAIT_SECS;
		srv.access_waiting++;
		conn_defer(c);
		return;
	}
	access_refuse_send(c, verdict);
}

static void access_start(struct conn *c);
static void access_event(struct ring_owner *owner, const struct ring_event *ev);

/* Every socket said yes: greet (a TLS client once its handshake is done),
 * then whatever the client sent before it. */
static void access_allowed(struct conn *c)
{
	access_retire(c);
	if (++c->access_next < srv.set->access_count) {
		access_start(c);
		return;
	}
	log_debug("conn %u: access allowed", c->slot);
	if ((c->flags & CF_TLS) != 0) {
		if (c->tls != NULL && tls_conn_handshake_done(c->tls)) {
			conn_start_session(c);
			if (c->session != NULL)
				conn_tls_pump(c); /* records that came before the greeting */
		}
		conn_defer(c);
		return;
	}
	conn_start_session(c);
	if (c->early != NULL && c->session != NULL) {
		struct outq *e = c->early;
		c->early = NULL;
		srv.set->proto->input(c->session, e->data + e->head, e->tail - e->head);
		outq_free(&e);
	}
	conn_recv_arm(c);
	conn_defer(c);
}

/* Ask the next socket of login_access_sockets about c's address (the PROXY
 * header's, when there was one). */
static void access_start(struct conn *c)
{
	char rip[64], lip[64];
	struct conn_access *ac = rg_calloc(1, sizeof(*ac));
	ac->ro.event = access_event;
	ac->c = c;
	ac->fd = -1;
	ac->deadline = srv.now + srv.set->access_timeout;
	access_reply_init(&ac->reply);
	ac->slot = ring_slot_alloc(srv.ring, &ac->ro);
	c->ac = ac;
	srv.access_pending++;
	ac->req_len = access_request_format(ac->req, sizeof(ac->req), srv.set->service,
					    login_addr_ip(&c->remote, rip, sizeof(rip)),
					    login_addr_ip(&c->local, lip, sizeof(lip)));
	const char *path = srv.set->access_paths[c->access_next];
	ac->addr.sun_family = AF_UNIX;
	memcpy(ac->addr.sun_path, path, strlen(path) + 1); /* length checked at start-up */
	ac->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ac->fd < 0) {
		char why[96];
		snprintf(why, sizeof(why), "socket() failed: %s", strerror(errno));
		access_refuse(c, ACCESS_FAILED, why);
		return;
	}
	log_debug("conn %u: asking access socket %s", c->slot, path);
	ring_connect(srv.ring, ac->slot, ac->fd, &ac->addr, sizeof(ac->addr));
}

/* At accept, or after the PROXY header: with login_access_sockets the
 * greeting waits for the checkers. A plaintext client is not read
 * meanwhile (a PROXY listener's read in progress is cancelled; what it
 * brings waits in early); an implicit-TLS client's handshake goes on. */
static bool access_begin(struct conn *c)
{
	if (srv.set->access_count == 0)
		return false;
	c->access_next = 0;
	if ((c->flags & CF_TLS) == 0)
		c->flags = cancel_once(c->slot, RING_OP_RECV, c->flags, CF_RECV,
						 CF_RECV_CANCELLED);
	access_start(c);
	return true;
}

static void conn_early_input(struct conn *c, const uint8_t *data, size_t len)
{
	if (outq_pending(c->early) + len > ACCESS_EARLY_MAX) {
		conn_log_end(c, "Too much input before the greeting");
		conn_close(c, true);
		return;
	}
	outq_append(&c->early, data, len, false);
}

static void access_input(struct conn_access *ac, const uint8_t *data, size_t len)
{
	struct conn *c = ac->c;
	bool allow = false;
	enum parse_result r = access_reply_feed(&ac->reply, data, len, &allow);
	if (r == PARSE_MORE)
		return;
	if (r == PARSE_ERROR)
		access_refuse(c, ACCESS_FAILED, "Invalid input");
	else if (allow)
		access_allowed(c);
	else
		access_refuse(c, ACCESS_DENIED, NULL);
}

/* only delivered while the lookup is not retired: ac->c is set */
static void access_event(struct ring_owner *owner, const struct ring_event *ev)
{
	struct conn_access *ac = RING_OWNER(owner, struct conn_access, ro);
	struct conn *c = ac->c;
	char why[160];
	switch (ev->op) {
	case RING_OP_CONNECT:
		if (ev->res < 0) {
			/* no checker listening: as Dovecot, the client is not served */
			snprintf(why, sizeof(why), "connect(%s) failed: %s", ac->addr.sun_path,
				 strerror(-ev->res));
			access_refuse(c, ACCESS_FAILED, why);
			break;
		}
		if (ac->req_len == 0) {
			access_refuse(c, ACCESS_FAILED, "request not formatted");
			break;
		}
		ac->recv_armed = true;
		ring_send(srv.ring, ac->slot, ac->fd, ac->req, ac->req_len);
		ring_recv(srv.ring, ac->slot, ac->fd);
		break;
	case RING_OP_SEND:
		if (ev->res != (int)ac->req_len) {
			/* a fresh UNIX socket takes 100 bytes whole: anything
			 * else is an error */
			snprintf(why, sizeof(why), "send failed: %s",
				 ev->res < 0 ? strerror(-ev->res) : "short write");
			access_refuse(c, ACCESS_FAILED, why);
		}
		break;
	case RING_OP_RECV:
		if (!ev->more)
			ac->recv_armed = false;
		if (ev->res > 0) {
			access_input(ac, ev->data, (size_t)ev->res);
		} else if (ev->res == 0) {
			/* closed without an answer: Dovecot's "no success" */
			access_refuse(c, ACCESS_DENIED, NULL);
		} else if (ev->res != -ENOBUFS && ev->res != -ECANCELED) {
			snprintf(why, sizeof(why), "read failed: %s", strerror(-ev->res));
			access_refuse(c, ACCESS_FAILED, why);
		}
		if (ac->c != NULL && !ac->recv_armed) {
			ac->recv_armed = true;
			ring_recv(srv.ring, ac->slot, ac->fd);
		}
		break;
	default:
		log_fatal("access lookup: unexpected ring op %d", (int)ev->op);
	}
	conn_check(c);
}

/* login_access_timeout: a checker that does not answer in time fails the
 * lookup (Dovecot: "Timed out while waiting for reply"). */
static void access_tick(void)
{
	struct conn *next;
	for (struct conn *c = srv.live.head; c != NULL; c = next) {
		next = c->next;
		if (c->ac != NULL && (int32_t)(srv.now - c->ac->deadline) >= 0) {
			access_refuse(c, ACCESS_FAILED, "Timed out while waiting for reply");
		} else if (c->access_verdict != ACCESS_PENDING_NONE &&
			   (int32_t)(srv.now - c->deadline) >= 0) {
			/* refused, and no handshake to carry the answer */
			conn_close(c, true);
			conn_defer(c);
		}
	}
}

static void conn_accept(int fd, const struct login_src *listener)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct login_addr remote = { 0 };

	if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
		login_addr_from_sockaddr((struct sockaddr *)&ss, len, &remote);
	if (listener->haproxy && !login_netlist_match(srv.set->haproxy_trusted, &remote)) {
		char rip[64];
		log_warning("haproxy: Client not trusted (rip=%s)",
			    login_addr_ip(&remote, rip, sizeof(rip)));
		close(fd);
		return;
	}
	if (srv.conns >= srv.set->client_limit) {
		struct conn *old = oldest_prelogin();
		if (old == NULL) {
			log_warning("client_limit (%u) reached, all busy: connection dropped",
				    srv.set->client_limit);
			close(fd);
			return;
		}
		conn_bye(old, "Connection queue full", "Connection queue full");
		srv.stats.v[STAT_EVICTIONS]++;
	}
	struct conn *c = rg_calloc(1, sizeof(*c));

	c->ro.event = conn_event;
	c->fd = fd;
	c->state = CONN_PRELOGIN;
	c->accept_time = srv.now;
	c->slot = ring_slot_alloc(srv.ring, &c->ro);
	if (c->slot > REQ_SLOT_MASK)
		log_fatal("too many slots");
	c->remote = remote;
	/* a listener bound to one address: that is the connection's local
	 * address (a syscall less per connection); a wildcard one asks */
	const struct login_addr *bound = &srv.listen_addrs[listener - srv.listeners];
	if (bound->family != 0 && !login_addr_is_any(bound)) {
		c->local = *bound;
	} else {
		len = sizeof(ss);
		if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
			login_addr_from_sockaddr((struct sockaddr *)&ss, len, &c->local);
	}
	/* as Dovecot: a client on this host (remote IP = local IP) or in
	 * login_trusted_networks is secured; 127.0.0.2 -> 127.0.0.1 is not.
	 * Behind a PROXY header, that header decides. */
	if (!listener->haproxy && (login_addr_same_ip(&c->remote, &c->local) ||
				   login_netlist_match(srv.set->trusted, &c->remote)))
		c->flags |= CF_SECURED;
	make_session_id(c->session_id);
	list_add(&srv.live, c);
	srv.conns++;
	srv.prelogin++;
	srv.total++;
	log_debug("conn %u: accepted, session=<%s>", c->slot, c->session_id);

	if (listener->haproxy) {
		/* the header first; only these connections pay for its buffer.
		 * The per-IP cap counts the header's address, not the proxy's */
		c->hp = rg_malloc(sizeof(*c->hp));
		proxy_parser_init(c->hp);
		c->flags |= CF_HAPROXY | (listener->ssl ? CF_HAPROXY_TLS : 0);
		srv.haproxy_waiting++;
		conn_recv_arm(c);
	} else if (!conn_preauth_admit(c)) {
		c->flags |= CF_LOGGED;
		if (!listener->ssl) {
			const char *line = srv.set->proto->line_too_many_conns;
			conn_out_append(c, line, strlen(line));
		}
		conn_close(c, false);
	} else if (listener->ssl) {
		c->flags |= CF_TLS; /* the session starts after the handshake */
		(void)access_begin(c);
		conn_recv_arm(c);
	} else if (!access_begin(c)) {
		conn_start_session(c);
		conn_recv_arm(c);
	}
	if (srv.total == 1) {
		srv.full = srv.conns >= srv.set->client_limit;
		login_status_send();
	} else {
		login_status();
	}
	if (srv.set->service_count != 0 && srv.total >= srv.set->service_count)
		stop_accepting();
	conn_check(c);
}

/* ---- the PROXY header (haproxy = yes listeners) ---- */

/* Bytes before the header is complete. Its addresses replace the socket's for
 * everything after: the greeting's secured state, auth's rip/lip (penalty),
 * the logs and the hand-off. */
static void conn_haproxy_input(struct conn *c, const uint8_t *data, size_t len)
{
	size_t consumed = 0;
	struct proxy_header h;
	enum proxy_error err;
	char rip[64];

	if (c->state != CONN_PRELOGIN)
		return;
	enum parse_result r = proxy_parser_feed(c->hp, data, len, &consumed, &h, &err);
	if (r == PARSE_MORE)
		return;
	login_addr_ip(&c->remote, rip, sizeof(rip));
	if (r == PARSE_ERROR) {
		if (c->hp->version != 0)
			log_warning("haproxy(v%u): Client disconnected: %s (rip=%s)",
				    c->hp->version, proxy_error_str(err), rip);
		else
			log_warning("haproxy: Client disconnected: %s (rip=%s)",
				    proxy_error_str(err), rip);
		c->flags |= CF_LOGGED;
		conn_close(c, true);
		return;
	}
	if (!h.local) {
		login_addr_from_sockaddr((const struct sockaddr *)&h.src, sizeof(h.src), &c->remote);
		login_addr_from_sockaddr((const struct sockaddr *)&h.dst, sizeof(h.dst), &c->local);
	}
	/* as Dovecot: a PROXY connection comes from haproxy_trusted_networks
	 * and counts as secured unless ssl = required, where it needs the
	 * header's SSL TLV or a client on the proxy's own host */
	if (h.ssl || login_addr_same_ip(&c->remote, &c->local) || !srv.set->ssl_required)
		c->flags |= CF_SECURED;
	if (h.ssl)
		c->flags |= CF_HAPROXY_SSL;
	if (log_debug_enabled()) {
		char crip[64], clip[64];
		log_debug("conn %u: haproxy(v%u): %s rip=%s lip=%s (proxy %s)%s", c->slot,
			  h.version, h.local ? "local" : "proxied",
			  login_addr_ip(&c->remote, crip, sizeof(crip)),
			  login_addr_ip(&c->local, clip, sizeof(clip)), rip, h.ssl ? ", ssl" : "");
	}
	rg_free(c->hp);
	c->hp = NULL;
	c->flags &= ~CF_HAPROXY;
	srv.haproxy_waiting--;
	if (!conn_preauth_admit(c)) {
		/* login_max_preauth_ip_connections, for the header's address */
		c->flags |= CF_LOGGED;
		if ((c->flags & CF_HAPROXY_TLS) == 0) {
			const char *line = srv.set->proto->line_too_many_conns;
			conn_out_append(c, line, strlen(line));
		}
		conn_close(c, false);
		return;
	}
	data += consumed;
	len -= consumed;
	if ((c->flags & CF_HAPROXY_TLS) != 0) {
		c->flags |= CF_TLS;
		(void)access_begin(c);
		if (len > 0 && c->state == CONN_PRELOGIN)
			conn_tls_input(c, data, len);
		return;
	}
	if (access_begin(c)) {
		/* the real address decides; bytes after the header wait */
		if (len > 0 && c->state == CONN_PRELOGIN)
			conn_early_input(c, data, len);
		return;
	}
	conn_start_session(c);
	if (len > 0 && c->session != NULL && c->state == CONN_PRELOGIN)
		srv.set->proto->input(c->session, data, len);
}

/* ---- events ---- */

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

static void conn_event(struct ring_owner *owner, const struct ring_event *ev)
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

static struct conn *conn_by_req(uint32_t id)
{
	struct ring_owner *o = ring_slot_owner(srv.ring, id & REQ_SLOT_MASK);
	if (o == NULL || o->event != conn_event || id == 0)
		return NULL;
	struct conn *c = RING_OWNER(o, struct conn, ro);
	return c->req_id == id ? c : NULL;
}

static void auth_channel_lost(void)
{
	/* requests in flight on it get no answer any more */
	for (struct conn *c = srv.live.head; c != NULL; c = c->next) {
		if (c->state == CONN_AUTHENTICATING) {
			c->flags |= CF_TEMPFAIL;
			conn_defer(c);
		}
	}
}

static void auth_src_free(struct ring_owner *owner)
{
	struct login_src *a = RING_OWNER(owner, struct login_src, ro);
	close(a->fd);
	rg_free(a);
}

/* an old or broken channel: the ring frees it once its poll has ended */
static void auth_retire(void)
{
	struct login_src *a = srv.auth;
	if (a == NULL)
		return;
	srv.auth = NULL;
	ipc_outq_clear(&a->outq);
	ring_slot_retire(srv.ring, a->slot, auth_src_free);
	auth_channel_lost();
}

static void auth_event(struct ring_owner *owner, const struct ring_event *ev);

static void auth_input(void)
{
	const char *error;
	for (;;) {
		if (srv.auth == NULL)
			return;
		int ret = ipc_recv(srv.auth->fd, &srv.rx, &error);
		if (ret == -EAGAIN)
			return;
		if (ret == -EPROTO)
			log_fatal("auth sent a malformed message: %s", error);
		if (ret <= 0) {
			log_error("auth channel %s", ret == 0 ? "closed" : strerror(-ret));
			auth_retire();
			return;
		}
		if (srv.rx.fd >= 0)
			log_fatal("auth sent an fd with %s", ipc_type_name(srv.rx.hdr.type));
		const struct ipc_fields *f = &srv.rx.fields;
		struct conn *c = conn_by_req(srv.rx.hdr.id);
		if (c != NULL && c->state != CONN_AUTHENTICATING)
			c = NULL;
		switch (srv.rx.hdr.type) {
		case IPC_AUTH_CHALLENGE:
			if (!ipc_has(f, IPC_F_CHALLENGE))
				log_fatal("auth: CHALLENGE without a challenge");
			if (c != NULL)
				srv.set->proto->auth_reply(c->session, LOGIN_AUTH_CHALLENGE,
							   f->val[IPC_F_CHALLENGE],
							   f->len[IPC_F_CHALLENGE], NULL);
			break;
		case IPC_AUTH_OK: {
			const char *user = ipc_str(f, IPC_F_USER);
			const char *cookie = ipc_str(f, IPC_F_COOKIE);
			const char *extra = ipc_str(f, IPC_F_EXTRA);
			bool proxied = extra_proxied(extra);
			/* a proxied user (passdb proxy) has no cookie: no worker */
			if (user == NULL || (cookie == NULL && !proxied) ||
			    (cookie != NULL && f->len[IPC_F_COOKIE] != 32))
				log_fatal("auth: OK without user or cookie");
			if (c == NULL)
				break;
			srv.stats.v[STAT_LOGIN_OK]++;
			c->req_id = 0;
			rg_free(c->user);
			c->user = rg_strdup(user);
			conn_backend_free(&c->be);
			bool local = false;
			if (proxied && (!conn_backend_parse(c, extra, f, &local) ||
					(local && cookie == NULL))) {
				conn_set_state(c, CONN_PRELOGIN);
				srv.set->proto->auth_reply(c->session, LOGIN_AUTH_TEMPFAIL, NULL, 0,
							   BACKEND_UNAVAILABLE);
				break;
			}
			if (c->ho == NULL) {
				c->ho = rg_calloc(1, sizeof(*c->ho));
				c->ho->proxy_fd = -1;
			}
			if (cookie != NULL)
				memcpy(c->ho->cookie, cookie, 33);
			srv.set->proto->auth_reply(c->session, LOGIN_AUTH_OK, NULL, 0, NULL);
			if (c->state == CONN_AUTHENTICATING) {
				/* the core did not hand off (it disconnected?) */
				log_debug("conn %u: login not handed off", c->slot);
			}
			break;
		}
		case IPC_AUTH_FAIL: {
			if (c == NULL)
				break;
			srv.stats.v[STAT_LOGIN_FAILED]++;
			const char *user = ipc_str(f, IPC_F_USER);
			if (user != NULL) {
				rg_free(c->user);
				c->user = rg_strdup(user);
			}
			c->req_id = 0;
			conn_set_state(c, CONN_PRELOGIN);
			srv.set->proto->auth_reply(c->session,
						   ipc_has(f, IPC_F_TEMP) ? LOGIN_AUTH_TEMPFAIL : LOGIN_AUTH_FAIL,
						   NULL, 0, ipc_str(f, IPC_F_REASON));
			break;
		}
		default:
			log_fatal("auth sent unexpected %s", ipc_type_name(srv.rx.hdr.type));
		}
		explicit_bzero(srv.rx.buf, IPC_HDR_SIZE + srv.rx.hdr.len);
		if (c != NULL)
			conn_check(c);
		process_deferred();
	}
}

static void login_shutdown(const char *why)
{
	if (srv.shutting_down)
		return;
	log_debug("shutting down: %s", why);
	srv.shutting_down = true;
	srv.shutdown_deadline = srv.now + SHUTDOWN_SECS;
	stop_accepting();
	struct conn *next;
	for (struct conn *c = srv.live.head; c != NULL; c = next) {
		next = c->next;
		if (c->state == CONN_PRELOGIN || c->state == CONN_AUTHENTICATING) {
			conn_bye(c, "Server shutting down.", "Server shutting down");
			continue;
		} else if (c->state == CONN_HANDOFF && srv.master.fd < 0) {
			conn_log_end(c, "Server shutting down");
			c->flags &= ~CF_HANDOFF_SENT;
			conn_close(c, true);
		}
		conn_check(c);
	}
}

static void master_input(void)
{
	const char *error;
	for (;;) {
		int ret = ipc_recv(srv.master.fd, &srv.rx, &error);
		if (ret == -EAGAIN)
			return;
		if (ret == -EPROTO)
			log_fatal("master sent a malformed message: %s", error);
		if (ret <= 0) {
			if (ret < 0)
				log_error("master channel: %s", strerror(-ret));
			ring_cancel(srv.ring, srv.master.slot, RING_OP_POLL);
			srv.master.fd = -1;
			login_shutdown("master went away");
			return;
		}
		switch (srv.rx.hdr.type) {
		case IPC_LOGIN_HANDOFF_REPLY: {
			if (srv.rx.fd >= 0)
				log_fatal("master sent an fd with HANDOFF_REPLY");
			struct conn *c = conn_by_req(srv.rx.hdr.id);
			if (c != NULL && c->state == CONN_CLOSING && (c->flags & CF_HANDOFF_SENT) != 0) {
				/* the client went away meanwhile (a TLS client's
				 * socket stays ours): its worker reads EOF */
				c->flags &= ~CF_HANDOFF_SENT;
				c->req_id = 0;
				conn_check(c);
				break;
			}
			if (c == NULL || c->state != CONN_HANDOFF || (c->flags & CF_HANDOFF_SENT) == 0) {
				log_debug("hand-off reply %u for nobody", srv.rx.hdr.id);
				break;
			}
			conn_handoff_reply(c, &srv.rx.fields);
			conn_check(c);
			break;
		}
		case IPC_LOGIN_RETIRE:
			if (srv.rx.fd >= 0)
				log_fatal("master sent an fd with LOGIN_RETIRE");
			log_debug("retired by a reload: serving %u connections to their end", srv.conns);
			srv.retired = true;
			stop_accepting();
			listeners_close_idle();
			break;
		case IPC_LOGIN_STATS_REQUEST:
			if (srv.rx.fd >= 0)
				log_fatal("master sent an fd with LOGIN_STATS_REQUEST");
			login_stats_send();
			break;
		case IPC_LOGIN_OVERFLOW:
			if (srv.rx.fd >= 0)
				log_fatal("master sent an fd with LOGIN_OVERFLOW");
			srv.overflow = srv.conns >= srv.set->client_limit;
			accept_update();
			break;
		case IPC_LOGIN_TICKET_KEYS: {
			const struct ipc_fields *f = &srv.rx.fields;
			size_t len = f->len[IPC_F_TICKET_KEYS];
			if (srv.rx.fd >= 0 || !ipc_has(f, IPC_F_TICKET_KEYS) ||
			    (len != TLS_TICKET_KEY_SIZE && len != 2 * TLS_TICKET_KEY_SIZE))
				log_fatal("master sent malformed ticket keys");
			memcpy(srv.ticket_keys, f->val[IPC_F_TICKET_KEYS], len);
			srv.ticket_keys_len = len;
			if (srv.tls != NULL)
				tls_ctx_set_ticket_keys(srv.tls, srv.ticket_keys,
							len > TLS_TICKET_KEY_SIZE ?
							srv.ticket_keys + TLS_TICKET_KEY_SIZE : NULL);
			explicit_bzero(srv.rx.buf, IPC_HDR_SIZE + srv.rx.hdr.len);
			break;
		}
		case IPC_AUTH_NEW_CLIENT: {
			if (srv.rx.fd < 0)
				log_fatal("master sent AUTH_NEW_CLIENT without an fd");
			auth_retire();
			struct login_src *a = rg_calloc(1, sizeof(*a));
			a->ro.event = auth_event;
			a->fd = srv.rx.fd;
			a->slot = ring_slot_alloc(srv.ring, &a->ro);
			if (fd_set_nonblock(a->fd) < 0)
				log_fatal("new auth channel: %m");
			srv.auth = a;
			ring_poll(srv.ring, a->slot, a->fd);
			log_info("auth channel replaced");
			break;
		}
		default:
			if (srv.rx.fd >= 0)
				close(srv.rx.fd);
			log_fatal("master sent unexpected %s", ipc_type_name(srv.rx.hdr.type));
		}
		process_deferred();
	}
}

static void signal_input(void)
{
	struct signalfd_siginfo si;
	while (read(srv.signal.fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
			login_shutdown("SIGTERM");
	}
}

static void tick(void)
{
	struct conn *next;
	if (srv.set->login_timeout > 0) {
		for (struct conn *c = srv.live.head; c != NULL; c = next) {
			next = c->next;
			if (srv.now - c->accept_time < srv.set->login_timeout)
				break;
			if (c->state != CONN_PRELOGIN && c->state != CONN_AUTHENTICATING)
				continue;
			if ((c->flags & CF_HAPROXY) != 0) {
				char rip[64];
				log_warning("haproxy: Client timed out (rip=%s)",
					    login_addr_ip(&c->remote, rip, sizeof(rip)));
				c->flags |= CF_LOGGED;
			}
			conn_bye(c, "Disconnected for inactivity.", "Inactivity");
		}
	}
	if (srv.haproxy_waiting > 0 && srv.set->haproxy_timeout > 0) {
		/* haproxy_timeout: the header must come soon (accept order:
		 * stop at the first young connection) */
		for (struct conn *c = srv.live.head; c != NULL; c = next) {
			next = c->next;
			if (srv.now - c->accept_time < srv.set->haproxy_timeout)
				break;
			if ((c->flags & CF_HAPROXY) == 0 || c->state != CONN_PRELOGIN)
				continue;
			char rip[64];
			log_warning("haproxy: Client timed out (rip=%s)",
				    login_addr_ip(&c->remote, rip, sizeof(rip)));
			c->flags |= CF_LOGGED;
			conn_close(c, true);
			conn_check(c);
		}
	}
	if (srv.access_pending > 0 || srv.access_waiting > 0)
		access_tick();
	if (srv.backends > 0) {
		/* proxy_timeout: a backend that does not answer in time */
		for (struct conn *c = srv.live.head; c != NULL; c = next) {
			next = c->next;
			if (c->state == CONN_BACKEND && (int32_t)(srv.now - c->be->deadline) >= 0) {
				conn_backend_failed(c, "timed out", NULL);
				conn_check(c);
			}
		}
	}
	for (struct conn *c = srv.closing.head; c != NULL; c = next) {
		next = c->next;
		if ((int32_t)(srv.now - c->deadline) >= 0)
			conn_check(c);
	}
	if (srv.shutting_down && (int32_t)(srv.now - srv.shutdown_deadline) >= 0) {
		for (struct conn *c = srv.live.head; c != NULL; c = next) {
			next = c->next;
			c->flags &= ~CF_HANDOFF_SENT;
			conn_close(c, true);
			conn_check(c);
		}
		for (struct conn *c = srv.closing.head; c != NULL; c = next) {
			next = c->next;
			c->flags = (c->flags | CF_FORCE) & ~CF_HANDOFF_SENT;
			conn_check(c);
		}
	}
}

static void listener_event(struct ring_owner *owner, const struct ring_event *ev)
{
	struct login_src *s = RING_OWNER(owner, struct login_src, ro);
	if (ev->op != RING_OP_ACCEPT)
		return;
	/* a connection accepted after we stopped accepting (the cancel was
	 * on its way) is already ours: serve it */
	if (!ev->more && s->armed > 0 && --s->armed == 0)
		s->cancelling = false;
	if (ev->res >= 0)
		conn_accept(ev->res, s);
	else if (ev->res != -ECANCELED)
		log_error("accept: %s", strerror(-ev->res));
	accept_update();
	listeners_close_idle();
}

static void master_event(struct ring_owner *owner, const struct ring_event *ev)
{
	struct login_src *s = RING_OWNER(owner, struct login_src, ro);
	if (ev->op == RING_OP_WRITABLE) {
		int ret = chan_writable(&srv.master, ev->res);
		if (ret < 0 && srv.master.fd >= 0)
			log_error("master channel: %s", strerror(-ret));
		return;
	}
	if (ev->res < 0 && ev->res != -ECANCELED)
		log_fatal("poll on master channel: %s", strerror(-ev->res));
	if (srv.master.fd >= 0 && ev->res > 0)
		master_input();
	if (!ev->more && srv.master.fd >= 0 && ev->res >= 0)
		ring_poll(srv.ring, s->slot, s->fd);
}

/* only delivered for the current channel: an old one is retired */
static void auth_event(struct ring_owner *owner, const struct ring_event *ev)
{
	struct login_src *s = RING_OWNER(owner, struct login_src, ro);
	if (ev->op == RING_OP_WRITABLE) {
		int ret = chan_writable(s, ev->res);
		if (ret < 0) {
			log_error("auth channel: %s", strerror(-ret));
			auth_retire();
		}
		return;
	}
	if (ev->res < 0 && ev->res != -ECANCELED)
		log_fatal("poll on auth channel: %s", strerror(-ev->res));
	if (ev->res > 0)
		auth_input();
	/* auth_input() may have retired it */
	if (srv.auth == s && !ev->more && ev->res >= 0)
		ring_poll(srv.ring, s->slot, s->fd);
}

static void signal_event(struct ring_owner *owner, const struct ring_event *ev)
{
	struct login_src *s = RING_OWNER(owner, struct login_src, ro);
	if (ev->res > 0)
		signal_input();
	if (!ev->more && ev->res >= 0)
		ring_poll(srv.ring, s->slot, s->fd);
}

static void tick_event(struct ring_owner *owner, const struct ring_event *ev)
{
	(void)owner;
	(void)ev;
	tick();
}

static void ring_handler(struct ring *ring, const struct ring_event *ev, void *ctx)
{
	(void)ring;
	(void)ctx;
	srv.now = monotonic_secs();
	ring_owner_dispatch(ev);
	process_deferred();
}

static void src_init(struct login_src *s, ring_event_fn *event, int fd)
{
	s->ro.event = event;
	s->fd = fd;
	s->slot = ring_slot_alloc(srv.ring, &s->ro);
}

static struct ring *prepared_ring;

int login_conn_prepare(unsigned service_count)
{
	/* high-security: one client (and its TLS proxy) per process, so a
	 * small ring; otherwise room for client_limit connections */
	bool single = service_count == 1;
	struct ring_config rc = {
		.entries = single ? 64 : 1024,
		.buf_count = single ? 16 : 1024,
		.buf_size = 2048,
		.handler = ring_handler,
		.restricted = true,
	};
	if (prepared_ring != NULL)
		return 0;
	return ring_create(&rc, &prepared_ring);
}

int login_conn_run(const struct login_conn_config *set)
{
	memset(&srv, 0, sizeof(srv));
	srv.set = set;
	srv.now = monotonic_secs();

	int ret = login_conn_prepare(set->service_count);
	if (ret < 0)
		log_fatal("io_uring setup failed: %s", strerror(-ret));
	srv.ring = prepared_ring;
	log_debug("ring mode %s, connection struct %zu bytes", ring_mode(srv.ring),
		  sizeof(struct conn));

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		log_fatal("sigprocmask: %m");
	int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0)
		log_fatal("signalfd: %m");

	src_init(&srv.master, master_event, set->master_fd);
	src_init(&srv.signal, signal_event, sfd);
	src_init(&srv.tick, tick_event, -1);
	srv.auth = rg_calloc(1, sizeof(*srv.auth));
	src_init(srv.auth, auth_event, set->auth_fd);
	ring_poll(srv.ring, srv.master.slot, srv.master.fd);
	ring_poll(srv.ring, srv.signal.slot, sfd);
	ring_poll(srv.ring, srv.auth->slot, srv.auth->fd);
	ring_tick_start(srv.ring, srv.tick.slot, 1000);

	srv.listeners = rg_calloc(set->listen_count, sizeof(*srv.listeners));
	srv.listen_addrs = rg_calloc(set->listen_count + 1, sizeof(*srv.listen_addrs));
	for (unsigned i = 0; i < set->listen_count; i++) {
		src_init(&srv.listeners[i], listener_event, set->listen_fds[i]);
		srv.listeners[i].ssl = set->listen_ssl != NULL && set->listen_ssl[i];
		srv.listeners[i].haproxy = set->listen_haproxy != NULL && set->listen_haproxy[i];
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		if (getsockname(set->listen_fds[i], (struct sockaddr *)&ss, &sl) == 0)
			login_addr_from_sockaddr((struct sockaddr *)&ss, sl, &srv.listen_addrs[i]);
	}
	/* even without a listener (all ssl, say) wait for SIGTERM or master
	 * EOF rather than exit and be respawned in a loop */
	srv.accepting = true;
	accept_update();

	while (srv.accepting || srv.conns > 0) {
		ret = ring_run(srv.ring, 1);
		if (ret < 0)
			log_fatal("io_uring: %s", strerror(-ret));
		srv.now = monotonic_secs();
	}
	log_debug("nothing left to do: exiting (%llu connections served)", srv.total);
	if (srv.master.fd >= 0)
		login_stats_send(); /* the last word: master adds it to the service's totals */
	/* no need to wait for the ring: the process is going away */
	ring_destroy(srv.ring);
	prepared_ring = NULL;
	if (srv.tls != NULL)
		tls_ctx_free(&srv.tls);
	explicit_bzero(srv.ticket_keys, sizeof(srv.ticket_keys));
	return 0;
}
