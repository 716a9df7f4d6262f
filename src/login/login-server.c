/* login-server.c — the server of a login process: the ring and its handler, listeners and
 * accept, the master and auth channels' send queues, status and stats to
 * master, the 1 s tick (timeouts), SIGTERM and shutdown. */
#include "login/login-private.h"
#include "lib/sigfd.h"

#include <fcntl.h>
#include <stddef.h>
#include <signal.h>
#include <time.h>

struct login_server srv;

static uint32_t login_monotonic_secs(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint32_t)ts.tv_sec;
}

/* Send on the auth or master channel: now, or queued until the socket is
 * writable (ipc.h). 0 or -errno (the channel is broken). */
int login_chan_send(struct login_src *ch, struct ipc_msg *msg, int pass_fd)
{
	int ret = ipc_outq_send(&ch->outq, ch->fd, msg, pass_fd);
	if (ret == 0 && ipc_outq_pending(&ch->outq) && !ch->outq.armed) {
		ch->outq.armed = true;
		ring_poll_writable(srv.ring, ch->slot, ch->fd);
	}
	return ret;
}

/* RING_OP_WRITABLE on a channel: send what waited. -errno when broken. */
int login_chan_writable(struct login_src *ch, int res)
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

void login_process_deferred(void)
{
	while (srv.deferred != NULL) {
		struct conn *c = srv.deferred;
		srv.deferred = c->defer_next;
		c->flags &= ~CF_DEFERRED;
		if ((c->flags & CF_TEMPFAIL) != 0) {
			c->flags &= ~CF_TEMPFAIL;
			if (c->state == CONN_AUTHENTICATING) {
				c->auth->req_id = 0;
				conn_set_state(c, CONN_PRELOGIN);
				srv.set->proto->auth_reply(c->session, LOGIN_AUTH_TEMPFAIL, NULL, 0, NULL);
			}
		}
		conn_send_more(c);
		conn_check(c);
	}
}

void login_status_send(void)
{
	ipc_msg_init(&srv.msg, IPC_LOGIN_STATUS, 0);
	ipc_msg_add_uint(&srv.msg, IPC_F_CONNS, srv.conns);
	ipc_msg_add_uint(&srv.msg, IPC_F_PRELOGIN, srv.prelogin);
	ipc_msg_add_uint(&srv.msg, IPC_F_TOTAL, srv.total);
	srv.reported_busy = srv.prelogin > 0;
	srv.reported_conns = srv.conns;
	int ret = login_chan_send(&srv.master, &srv.msg, -1);
	if (ret < 0)
		log_debug("status to master: %s", strerror(-ret));
}

/* the counters, on master's request and once before exiting (docs/ipc.md);
 * bytes of proxies still running are counted so far */
void login_stats_send(void)
{
	struct login_counters now = srv.stats;
	char text[STATS_TEXT_MAX];
	now.v[STAT_CONNS] = srv.conns;
	now.v[STAT_PRELOGIN] = srv.prelogin;
	now.v[STAT_ACCEPTED] = srv.total;
	for (struct conn *c = srv.live.head; c != NULL; c = c->next) {
		if (c->pump != NULL) {
			uint64_t in, out;
			proxy_pump_counts(c->pump, &in, &out);
			now.v[STAT_PROXY_IN] += in;
			now.v[STAT_PROXY_OUT] += out;
		}
	}
	stats_format(&now, text, sizeof(text));
	ipc_msg_init(&srv.msg, IPC_LOGIN_STATS, 0);
	ipc_msg_add_str(&srv.msg, IPC_F_STATS, text);
	int ret = login_chan_send(&srv.master, &srv.msg, -1);
	if (ret < 0)
		log_debug("stats to master: %s", strerror(-ret));
}

/* called after conns or prelogin changed: only the transitions master cares
 * about (full, idle, and no client logging in: a TLS proxy is not one).
 * Idle is news only after a report of connections: master keeps the time
 * its view went to 0 (idle_kill), and more are not reported, so a process
 * that empties again and again under load (about once per 40 sessions at
 * 32 clients) would wake master each time for nothing it uses. */
void login_status(void)
{
	bool full = srv.conns >= srv.set->client_limit;
	bool busy = srv.prelogin > 0;
	if (full != srv.full || (srv.conns == 0 && srv.reported_conns != 0) ||
	    (busy != srv.reported_busy && !busy)) {
		srv.full = full;
		login_status_send();
	}
}

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

/* One accept in flight: its own slot, so its completion says which address
 * buffer the kernel filled (no getpeername() per connection). */
struct login_accept {
	struct ring_owner ro;
	struct login_src *listener;
	uint32_t slot;
	bool armed;
	socklen_t addr_len;
	struct sockaddr_storage addr;
};

static void listener_arm_one(struct login_src *l)
{
	for (unsigned i = 0; i < ACCEPT_BATCH; i++) {
		struct login_accept *a = &l->accepts[i];
		if (a->armed)
			continue;
		a->armed = true;
		a->addr_len = sizeof(a->addr);
		l->armed++;
		ring_accept_addr(srv.ring, a->slot, l->fd, &a->addr, &a->addr_len);
		return;
	}
	log_fatal("listener: more than %u accepts", ACCEPT_BATCH);
}

void login_accept_update(void)
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
				listener_arm_one(l);
				in_flight++;
			}
		} else if (l->armed > 0 && !l->cancelling) {
			l->cancelling = true;
			for (unsigned k = 0; k < ACCEPT_BATCH; k++) {
				if (l->accepts[k].armed)
					ring_cancel(srv.ring, l->accepts[k].slot, RING_OP_ACCEPT);
			}
		}
	}
}

/* a retired process closes its listening sockets as soon as no accept is in
 * flight on them: a listener the reload removed stops queueing connections
 * nobody would take */
void login_listeners_close_idle(void)
{
	for (unsigned i = 0; srv.retired && i < srv.set->listen_count; i++) {
		struct login_src *l = &srv.listeners[i];
		if (l->armed == 0 && l->fd >= 0) {
			ring_close(srv.ring, l->fd);
			l->fd = -1;
		}
	}
}

void login_stop_accepting(void)
{
	if (!srv.accepting)
		return;
	srv.accepting = false;
	login_accept_update();
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

static void conn_accept(int fd, const struct login_src *listener,
			const struct sockaddr_storage *peer, socklen_t peer_len)
{
	struct sockaddr_storage ss;
	socklen_t len;
	struct net_addr remote = { 0 };

	if (peer_len > 0 && peer_len <= sizeof(*peer))
		net_addr_from_sockaddr((const struct sockaddr *)peer, peer_len, &remote);
	if (listener->haproxy && !net_list_match(srv.set->haproxy_trusted, &remote)) {
		char rip[64];
		log_warning("haproxy: Client not trusted (rip=%s)",
			    net_addr_ip(&remote, rip, sizeof(rip)));
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
	const struct net_addr *bound = &srv.listen_addrs[listener - srv.listeners];
	if (bound->family != 0 && !net_addr_is_any(bound)) {
		c->local = *bound;
	} else {
		len = sizeof(ss);
		if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
			net_addr_from_sockaddr((struct sockaddr *)&ss, len, &c->local);
	}
	/* as Dovecot: a client on this host (remote IP = local IP) or in
	 * login_trusted_networks is secured; 127.0.0.2 -> 127.0.0.1 is not.
	 * Behind a PROXY header, that header decides. */
	if (!listener->haproxy && (net_addr_same_ip(&c->remote, &c->local) ||
				   net_list_match(srv.set->trusted, &c->remote)))
		c->flags |= CF_SECURED;
	conn_make_session_id(c->session_id);
	conn_list_add(&srv.live, c);
	srv.conns++;
	srv.prelogin++;
	srv.total++;
	log_debug("conn %u: accepted, session=<%s>", c->slot, c->session_id);

	if (listener->haproxy) {
		/* the header first; only these connections pay for its buffer.
		 * The per-IP cap counts the header's address, not the proxy's */
		admit_haproxy_begin(c, listener->ssl);
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
		login_stop_accepting();
	conn_check(c);
}

void login_shutdown(const char *why)
{
	if (srv.shutting_down)
		return;
	log_debug("shutting down: %s", why);
	srv.shutting_down = true;
	srv.shutdown_deadline = srv.now + SHUTDOWN_SECS;
	login_stop_accepting();
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

/* also called when a channel closes: master's SIGTERM reaches every child at
 * once, and auth may exit before this process has read its own */
void login_signals_check(void)
{
	/* the signalfd reports only SIGTERM and SIGINT */
	if (sigfd_drain(srv.signal.fd))
		login_shutdown("SIGTERM");
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
					    net_addr_ip(&c->remote, rip, sizeof(rip)));
				c->flags |= CF_LOGGED;
			}
			conn_bye(c, "Disconnected for inactivity.", "Inactivity");
		}
	}
	if (admit_haproxy_waiting() && srv.set->haproxy_timeout > 0) {
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
				    net_addr_ip(&c->remote, rip, sizeof(rip)));
			c->flags |= CF_LOGGED;
			conn_close(c, true);
			conn_check(c);
		}
	}
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
	/* the relays' spare buffers go once no relay used them for a tick
	 * (a high-security process whose client idles after a big FETCH
	 * keeps none), and what a burst of handshakes freed goes back to the
	 * kernel within jemalloc's decay time, also when no client is active
	 * (login-malloc.c) */
	tls_release_spares();
	outq_release_spares();
	rg_alloc_decay();
}

static void listener_event(struct ring_owner *owner, const struct ring_event *ev)
{
	struct login_accept *a = RING_OWNER(owner, struct login_accept, ro);
	struct login_src *s = a->listener;
	if (ev->op != RING_OP_ACCEPT)
		return;
	/* a connection accepted after we stopped accepting (the cancel was
	 * on its way) is already ours: serve it */
	a->armed = false;
	if (s->armed > 0 && --s->armed == 0)
		s->cancelling = false;
	if (ev->res >= 0)
		conn_accept(ev->res, s, &a->addr, a->addr_len);
	else if (ev->res != -ECANCELED)
		log_error("accept: %s", strerror(-ev->res));
	login_accept_update();
	login_listeners_close_idle();
}

static void signal_event(struct ring_owner *owner, const struct ring_event *ev)
{
	struct login_src *s = RING_OWNER(owner, struct login_src, ro);
	if (ev->res > 0)
		login_signals_check();
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
	srv.now = login_monotonic_secs();
	ring_owner_dispatch(ev);
	login_process_deferred();
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
		/* receive buffers are lent per completion and back when
		 * its event is handled, so they bound the receives of one
		 * loop turn, not the connections (more in a turn: -ENOBUFS,
		 * rearmed). The kernel takes them in ring order, so every
		 * one gets touched and stays resident: 1,024 made 2 MB per
		 * process, 2 kB per connection at 1,000 held (issue 20) */
		.buf_count = single ? 16 : 256,
		.buf_size = 2048,
		/* the relays read up to four TLS records' worth at a time:
		 * a 2 KiB slice per receive made a record, a send and a
		 * completion per 2 KiB, a 16 KiB one a wake-up per record
		 * (memory is touched only once used) */
		.large_buf_count = single ? 2 : 16,
		.large_buf_size = 65536,
		.handler = ring_handler,
		.restricted = true,
	};
	if (prepared_ring != NULL)
		return 0;
	return ring_create(&rc, &prepared_ring);
}

int login_conn_run(const struct login_conn_config *set)
{
	memset(&srv, 0, offsetof(struct login_server, rx));
	srv.set = set;
	srv.now = login_monotonic_secs();

	int ret = login_conn_prepare(set->service_count);
	if (ret < 0)
		log_fatal("io_uring setup failed: %s", strerror(-ret));
	srv.ring = prepared_ring;
	log_debug("ring mode %s, connection struct %zu bytes", ring_mode(srv.ring),
		  sizeof(struct conn));

	int sfd = sigfd_open_stop();

	src_init(&srv.master, master_chan_event, set->master_fd);
	src_init(&srv.signal, signal_event, sfd);
	src_init(&srv.tick, tick_event, -1);
	ring_poll(srv.ring, srv.master.slot, srv.master.fd);
	ring_poll(srv.ring, srv.signal.slot, sfd);
	login_auth_open(set->auth_fd);
	ring_tick_start(srv.ring, srv.tick.slot, 1000);

	srv.listeners = rg_calloc(set->listen_count, sizeof(*srv.listeners));
	srv.listen_addrs = rg_calloc(set->listen_count + 1, sizeof(*srv.listen_addrs));
	for (unsigned i = 0; i < set->listen_count; i++) {
		struct login_src *l = &srv.listeners[i];
		l->fd = set->listen_fds[i];
		l->accepts = rg_calloc(ACCEPT_BATCH, sizeof(*l->accepts));
		for (unsigned k = 0; k < ACCEPT_BATCH; k++) {
			struct login_accept *a = &l->accepts[k];
			a->ro.event = listener_event;
			a->listener = l;
			a->slot = ring_slot_alloc(srv.ring, &a->ro);
		}
		srv.listeners[i].ssl = set->listen_ssl != NULL && set->listen_ssl[i];
		srv.listeners[i].haproxy = set->listen_haproxy != NULL && set->listen_haproxy[i];
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		if (getsockname(set->listen_fds[i], (struct sockaddr *)&ss, &sl) == 0)
			net_addr_from_sockaddr((struct sockaddr *)&ss, sl, &srv.listen_addrs[i]);
	}
	/* even without a listener (all ssl, say) wait for SIGTERM or master
	 * EOF rather than exit and be respawned in a loop */
	srv.accepting = true;
	login_accept_update();

	/* a line per client (its end): the lines of one loop turn go out
	 * with one write(), before the process waits again */
	log_set_batching(true);
	while (srv.accepting || srv.conns > 0) {
		ret = ring_run(srv.ring, 1);
		if (ret < 0)
			log_fatal("io_uring: %s", strerror(-ret));
		log_flush();
		srv.now = login_monotonic_secs();
	}
	log_set_batching(false);
	log_debug("nothing left to do: exiting (%llu connections served)", srv.total);
	if (srv.master.fd >= 0)
		login_stats_send(); /* the last word: master adds it to the service's totals */
	if (set->exit_after)
		return 0;
	/* no need to wait for the ring: the process is going away */
	ring_destroy(srv.ring);
	prepared_ring = NULL;
	login_tls_deinit();
	/* what a test running the layer in-process would see leak */
	login_auth_close();
	close(srv.signal.fd);
	for (unsigned i = 0; i < set->listen_count; i++)
		rg_free(srv.listeners[i].accepts);
	rg_free(srv.listeners);
	rg_free(srv.listen_addrs);
	return 0;
}
