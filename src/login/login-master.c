/* login-master.c — the master channel (fd 3) and the hand-off: a logged-in client's socket
 * (or a socketpair for a TLS client), cookie and preread go to master; one
 * teardown wipes the cookie and preread. */
#include "login/login-private.h"

/* The one end of a hand-off, whichever way it went (done, abandoned, the
 * backend took over, the client left): the cookie and the client's bytes
 * are wiped before the memory goes back. */
void conn_handoff_end(struct conn *c)
{
	struct conn_handoff *ho = c->ho;
	if (ho == NULL)
		return;
	c->ho = NULL;
	if (ho->proxy_fd >= 0)
		close(ho->proxy_fd);
	explicit_bzero(ho->cookie, sizeof(ho->cookie));
	explicit_bzero(ho->preread, ho->preread_len);
	rg_free(ho->tag);
	rg_free(ho);
	log_debug("conn %u: hand-off over", c->slot);
}

/* bytes a logged-in client sent while its hand-off is under way */
void conn_handoff_preread(struct conn *c, const uint8_t *data, size_t len)
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

/* The hand-off did not happen: the session goes on before login. The core
 * kept the preread it gave us and replays it itself, so only the bytes that
 * arrived after it called handoff are new to it. */
void conn_handoff_abandon(struct conn *c, const char *reason)
{
	struct conn_handoff *ho = c->ho;
	uint8_t late[LOGIN_MAX_PENDING];
	size_t late_len = (size_t)(ho->preread_len - ho->core_len);

	memcpy(late, ho->preread + ho->core_len, late_len);
	conn_handoff_end(c);
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

void conn_send_handoff(struct conn *c)
{
	struct conn_handoff *ho = c->ho;
	ho->req_id = conn_next_req_id(c);
	ipc_msg_init(&srv.msg, IPC_LOGIN_HANDOFF, ho->req_id);
	ipc_msg_add_str(&srv.msg, IPC_F_SERVICE, srv.set->service);
	ipc_msg_add_str(&srv.msg, IPC_F_USER, c->auth->user);
	ipc_msg_add_str(&srv.msg, IPC_F_COOKIE, ho->cookie);
	if (ho->tag != NULL)
		ipc_msg_add_str(&srv.msg, IPC_F_TAG, ho->tag);
	conn_msg_add_client(c, &srv.msg);
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
	int ret = login_chan_send(&srv.master, &srv.msg, pass_fd);
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
	c->ho->req_id = 0;
	if (reason == NULL) {
		srv.stats.v[STAT_HANDOFFS]++;
		net_addr_ip(&c->remote, rip, sizeof(rip));
		net_addr_ip(&c->local, lip, sizeof(lip));
		log_escape(c->auth->user, strlen(c->auth->user), 64, user, sizeof(user));
		unsigned long long mpid = 0;
		(void)ipc_uint(f, IPC_F_MPID, &mpid);
		log_info("Login: user=<%s>, method=%s, rip=%s, lip=%s, mpid=%llu%s, session=<%s>",
			 user, c->auth->mech, rip, lip, mpid,
			 (c->flags & CF_TLS) != 0 ? ", TLS" :
			 (c->flags & CF_SECURED) != 0 ? ", secured" : "",
			 c->session_id);
		if ((c->flags & CF_TLS) != 0) {
			c->flags |= CF_LOGGED;
			relay_start(c);
			return;
		}
		c->flags |= CF_LOGGED | CF_FORCE;
		/* the worker owns the client now: close our copy only; the
		 * login is over */
		login_auth_end(c);
		conn_handoff_end(c);
		conn_set_state(c, CONN_CLOSING);
		return;
	}
	char why[120];
	log_escape(reason, strlen(reason), 100, why, sizeof(why));
	log_warning("conn %u: master refused the hand-off: %s", c->slot, why);
	conn_handoff_abandon(c, reason);
}

void handoff_cb(void *ctx, const char *tag, const uint8_t *preread, size_t preread_len)
{
	struct conn *c = ctx;
	if (c->ho == NULL || login_auth_user(c) == NULL || c->state != CONN_AUTHENTICATING)
		log_fatal("conn %u: hand-off without a successful login", c->slot);
	if (preread_len > LOGIN_MAX_PENDING)
		log_fatal("conn %u: preread of %zu bytes", c->slot, preread_len);
	c->auth->req_id = 0;
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
			if (c != NULL && (c->ho == NULL || c->ho->req_id != srv.rx.hdr.id))
				c = NULL;
			if (c != NULL && c->state == CONN_CLOSING && (c->flags & CF_HANDOFF_SENT) != 0) {
				/* the client went away meanwhile (a TLS client's
				 * socket stays ours): its worker reads EOF */
				c->flags &= ~CF_HANDOFF_SENT;
				c->ho->req_id = 0;
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
			login_stop_accepting();
			login_listeners_close_idle();
			break;
		case IPC_LOGIN_IDLE_KILL:
			if (srv.rx.fd >= 0)
				log_fatal("master sent an fd with LOGIN_IDLE_KILL");
			/* master's view is as old as this process's last status:
			 * it reports a rise from no connections to some only when
			 * asked, here, so that it costs nothing per connection */
			if (srv.conns == 0 && !srv.shutting_down)
				login_shutdown("idle_kill");
			else
				login_status_send();
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
			login_accept_update();
			break;
		case IPC_LOGIN_TICKET_KEYS: {
			const struct ipc_fields *f = &srv.rx.fields;
			size_t len = f->len[IPC_F_TICKET_KEYS];
			if (srv.rx.fd >= 0 || !ipc_has(f, IPC_F_TICKET_KEYS) ||
			    (len != TLS_TICKET_KEY_SIZE && len != 2 * TLS_TICKET_KEY_SIZE))
				log_fatal("master sent malformed ticket keys");
			login_tls_set_ticket_keys(f->val[IPC_F_TICKET_KEYS], len);
			explicit_bzero(srv.rx.buf, IPC_HDR_SIZE + srv.rx.hdr.len);
			break;
		}
		case IPC_AUTH_NEW_CLIENT: {
			if (srv.rx.fd < 0)
				log_fatal("master sent AUTH_NEW_CLIENT without an fd");
			login_auth_retire();
			login_auth_open(srv.rx.fd);
			log_info("auth channel replaced");
			break;
		}
		default:
			if (srv.rx.fd >= 0)
				close(srv.rx.fd);
			log_fatal("master sent unexpected %s", ipc_type_name(srv.rx.hdr.type));
		}
		login_process_deferred();
	}
}

void master_chan_event(struct ring_owner *owner, const struct ring_event *ev)
{
	struct login_src *s = RING_OWNER(owner, struct login_src, ro);
	if (ev->op == RING_OP_WRITABLE) {
		int ret = login_chan_writable(&srv.master, ev->res);
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
