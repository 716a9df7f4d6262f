/* login-access.c — the login access check (login_access_sockets): one lookup per socket on
 * the ring before the greeting. */
#include "login/login-private.h"

/* a refused TLS client waiting for its handshake to hear why */
enum access_verdict { ACCESS_PENDING_NONE, ACCESS_DENIED, ACCESS_FAILED };

/* One lookup on one login_access_sockets socket (src/lib/access-proto.h):
 * connect, send the request, read "1\n" / "0\n", all on the ring with its
 * own slot. c is NULL once retired (decided, or the client went away): the
 * ring frees it when its operations have ended. */
struct access_lookup {
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

/* the phase (c->access): one lookup after the other, the client's bytes
 * before its greeting, a refused TLS client's wait for its handshake */
struct conn_access {
	struct access_lookup *lookup;	/* the one in flight; NULL once decided */
	struct outq *early;	/* a plaintext client's bytes that came before the greeting */
	uint32_t deadline;	/* verdict: the handshake's time to carry it */
	uint8_t next;		/* login_access_sockets: the one asked (next) */
	uint8_t verdict;	/* enum access_verdict, for a TLS client not yet greeted */
};

static struct {
	unsigned pending;	/* connections waiting for an access answer */
	unsigned waiting;	/* refused TLS clients waiting for their handshake */
} acc;

static void access_start(struct conn *c);
static void access_event(struct ring_owner *owner, const struct ring_event *ev);

#define ACCESS_EARLY_MAX 4096 /* a plaintext client's bytes before its greeting */
#define ACCESS_TLS_WAIT_SECS 10 /* a refused TLS client's handshake, to tell it why */

static void access_lookup_free(struct ring_owner *owner)
{
	struct access_lookup *ac = RING_OWNER(owner, struct access_lookup, ro);
	if (ac->fd >= 0)
		ring_close(srv.ring, ac->fd);
	rg_free(ac);
}

/* The lookup is over (decided, or the client is going): the ring cancels
 * what is in flight and frees it when its last completion is in. */
static void access_retire(struct conn *c)
{
	struct access_lookup *ac = c->access->lookup;
	if (ac == NULL)
		return;
	c->access->lookup = NULL;
	acc.pending--;
	ac->c = NULL;
	ring_slot_retire(srv.ring, ac->slot, access_lookup_free);
}

/* The phase is over (the greeting goes out, the refused client was told, or
 * it is closing): its lookup is retired, its memory freed. */
void access_end(struct conn *c)
{
	struct conn_access *a = c->access;
	if (a == NULL)
		return;
	access_retire(c);
	if (a->verdict != ACCESS_PENDING_NONE)
		acc.waiting--;
	outq_free(&a->early);
	c->access = NULL;
	rg_free(a);
	log_debug("conn %u: access phase over", c->slot);
}

static const char *access_name(const struct conn *c)
{
	return srv.set->access_names[c->access->next];
}

/* Refused (the checker said 0, or closed without an answer: Dovecot's
 * "no success") or failed (no checker, an invalid answer, no answer within
 * login_access_timeout: Dovecot logs an error and refuses too). Either way
 * the client is told and closed; a TLS client after its handshake, in
 * TLS, as its greeting would have been. */
static void access_refuse_send(struct conn *c, enum access_verdict verdict)
{
	access_end(c);
	const char *line = verdict == ACCESS_DENIED ? srv.set->proto->line_access_denied
						    : srv.set->proto->line_internal_error;
	conn_cb_send(c, line, strlen(line));
	if (c->state != CONN_CLOSING)
		conn_close(c, false);
	conn_defer(c);
}

static void access_refuse(struct conn *c, enum access_verdict verdict, const char *why)
{
	char rip[64];
	net_addr_ip(&c->remote, rip, sizeof(rip));
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
		c->access->verdict = (uint8_t)verdict;
		c->access->deadline = srv.now + ACCESS_TLS_WAIT_SECS;
		acc.waiting++;
		conn_defer(c);
		return;
	}
	access_refuse_send(c, verdict);
}

/* Every socket said yes: greet (a TLS client once its handshake is done),
 * then whatever the client sent before it. */
static void access_allowed(struct conn *c)
{
	access_retire(c);
	if (++c->access->next < srv.set->access_count) {
		access_start(c);
		return;
	}
	log_debug("conn %u: access allowed", c->slot);
	struct outq *e = c->access->early;
	c->access->early = NULL;
	access_end(c);
	if ((c->flags & CF_TLS) != 0) {
		outq_free(&e); /* (a TLS client's bytes wait in its engine) */
		if (c->tls != NULL && tls_conn_handshake_done(c->tls)) {
			conn_start_session(c);
			if (c->session != NULL)
				conn_tls_pump(c); /* records that came before the greeting */
		}
		conn_defer(c);
		return;
	}
	conn_start_session(c);
	if (e != NULL && c->session != NULL)
		srv.set->proto->input(c->session, e->data + e->head, e->tail - e->head);
	outq_free(&e);
	conn_recv_arm(c);
	conn_defer(c);
}

/* Ask the next socket of login_access_sockets about c's address (the PROXY
 * header's, when there was one). */
static void access_start(struct conn *c)
{
	char rip[64], lip[64];
	struct access_lookup *ac = rg_calloc(1, sizeof(*ac));
	ac->ro.event = access_event;
	ac->c = c;
	ac->fd = -1;
	ac->deadline = srv.now + srv.set->access_timeout;
	access_reply_init(&ac->reply);
	ac->slot = ring_slot_alloc(srv.ring, &ac->ro);
	c->access->lookup = ac;
	acc.pending++;
	ac->req_len = access_request_format(ac->req, sizeof(ac->req), srv.set->service,
					    net_addr_ip(&c->remote, rip, sizeof(rip)),
					    net_addr_ip(&c->local, lip, sizeof(lip)));
	const char *path = srv.set->access_paths[c->access->next];
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
bool access_begin(struct conn *c)
{
	if (srv.set->access_count == 0)
		return false;
	c->access = rg_calloc(1, sizeof(*c->access));
	if ((c->flags & CF_TLS) == 0)
		c->flags = login_cancel_once(c->slot, RING_OP_RECV, c->flags, CF_RECV,
						 CF_RECV_CANCELLED);
	access_start(c);
	return true;
}

/* a plaintext client's bytes before its greeting: kept for the core while
 * the check runs (none come after it refused: the client is closing) */
void conn_early_input(struct conn *c, const uint8_t *data, size_t len)
{
	struct conn_access *a = c->access;
	if (a == NULL)
		return;
	if (outq_pending(a->early) + len > ACCESS_EARLY_MAX) {
		conn_log_end(c, "Too much input before the greeting");
		conn_close(c, true);
		return;
	}
	outq_append(&a->early, data, len, false);
}

static void access_input(struct access_lookup *ac, const uint8_t *data, size_t len)
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
	struct access_lookup *ac = RING_OWNER(owner, struct access_lookup, ro);
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
void access_tick(void)
{
	if (acc.pending == 0 && acc.waiting == 0)
		return;
	struct conn *next;
	for (struct conn *c = srv.live.head; c != NULL; c = next) {
		next = c->next;
		struct conn_access *a = c->access;
		if (a == NULL)
			continue;
		if (a->lookup != NULL && (int32_t)(srv.now - a->lookup->deadline) >= 0) {
			access_refuse(c, ACCESS_FAILED, "Timed out while waiting for reply");
		} else if (a->verdict != ACCESS_PENDING_NONE &&
			   (int32_t)(srv.now - a->deadline) >= 0) {
			/* refused, and no handshake to carry the answer */
			conn_close(c, true);
			conn_defer(c);
		}
	}
}

/* A TLS client's handshake is done: one refused meanwhile is told now (true). */
bool access_handshake_done(struct conn *c)
{
	if (c->access == NULL || c->access->verdict == ACCESS_PENDING_NONE)
		return false;
	access_refuse_send(c, (enum access_verdict)c->access->verdict);
	return true;
}
