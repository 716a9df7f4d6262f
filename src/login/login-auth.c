/* login-auth.c — the auth channel (fd 4 or its replacement): SASL requests for the
 * protocol core and auth's replies. */
#include "login/login-private.h"

#include <fcntl.h>

static struct login_src *auth_chan; /* NULL while auth is gone */

/* freed auth phase objects, kept for the next logins */
#define AUTH_FREE_MAX 64
static struct conn_auth *auth_free_list;
static unsigned auth_free_count;

static struct conn_auth *auth_phase(struct conn *c)
{
	if (c->auth != NULL)
		return c->auth;
	struct conn_auth *a = auth_free_list;
	if (a != NULL) {
		auth_free_list = a->free_next;
		auth_free_count--;
		memset(a, 0, sizeof(*a));
	} else {
		a = rg_calloc(1, sizeof(*a));
	}
	c->auth = a;
	return a;
}

/* the login is over (or the client went): the auth phase ends */
void login_auth_end(struct conn *c)
{
	struct conn_auth *a = c->auth;
	if (a == NULL)
		return;
	c->auth = NULL;
	log_debug("conn %u: auth phase over", c->slot);
	rg_free(a->user);
	if (auth_free_count < AUTH_FREE_MAX) {
		a->free_next = auth_free_list;
		auth_free_list = a;
		auth_free_count++;
	} else {
		rg_free(a);
	}
}

const char *login_auth_user(const struct conn *c)
{
	return c->auth != NULL ? c->auth->user : NULL;
}

static void auth_set_user(struct conn_auth *a, const char *user)
{
	rg_free(a->user);
	a->user = user != NULL ? rg_strdup(user) : NULL;
}

static bool auth_send(struct conn *c, struct ipc_msg *msg)
{
	if (auth_chan == NULL)
		return false;
	int ret = login_chan_send(auth_chan, msg, -1);
	explicit_bzero(msg->buf, msg->len);
	if (ret < 0) {
		log_warning("conn %u: auth request not sent: %s", c->slot, strerror(-ret));
		return false;
	}
	return true;
}

void auth_cb_begin(void *ctx, const char *mech, const uint8_t *resp, size_t resp_len,
			  bool has_resp)
{
	struct conn *c = ctx;

	if (c->state != CONN_PRELOGIN)
		log_fatal("conn %u: auth_begin in state %s", c->slot, conn_state_names[c->state]);
	struct conn_auth *a = auth_phase(c);
	size_t mech_len = strnlen(mech, sizeof(a->mech) - 1);
	memcpy(a->mech, mech, mech_len);
	a->mech[mech_len] = '\0';
	if (a->attempts < UINT8_MAX)
		a->attempts++;
	auth_set_user(a, NULL);
	a->req_id = conn_next_req_id(c);
	conn_set_state(c, CONN_AUTHENTICATING);

	ipc_msg_init(&srv.msg, IPC_AUTH_BEGIN, a->req_id);
	ipc_msg_add_str(&srv.msg, IPC_F_MECH, mech);
	ipc_msg_add_str(&srv.msg, IPC_F_SERVICE, srv.set->service);
	conn_msg_add_client(c, &srv.msg);
	conn_tls_msg_add_auth(c, &srv.msg, mech);
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

void auth_cb_continue(void *ctx, const uint8_t *resp, size_t resp_len)
{
	struct conn *c = ctx;
	if (c->state != CONN_AUTHENTICATING || c->auth == NULL || c->auth->req_id == 0)
		log_fatal("conn %u: auth_continue without a request", c->slot);
	ipc_msg_init(&srv.msg, IPC_AUTH_CONTINUE, c->auth->req_id);
	if (resp_len > ipc_msg_room(&srv.msg))
		resp_len = ipc_msg_room(&srv.msg);
	ipc_msg_add(&srv.msg, IPC_F_RESP, resp, resp_len);
	if (!auth_send(c, &srv.msg)) {
		c->flags |= CF_TEMPFAIL;
		conn_defer(c);
	}
}

void auth_cb_abort(void *ctx)
{
	struct conn *c = ctx;
	if (c->state != CONN_AUTHENTICATING)
		return;
	login_auth_abort(c);
	c->auth->req_id = 0;
	c->flags &= ~CF_TEMPFAIL;
	conn_set_state(c, CONN_PRELOGIN);
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
void login_auth_retire(void)
{
	struct login_src *a = auth_chan;
	if (a == NULL)
		return;
	auth_chan = NULL;
	ipc_outq_clear(&a->outq);
	ring_slot_retire(srv.ring, a->slot, auth_src_free);
	auth_channel_lost();
}

static void auth_input(void)
{
	const char *error;
	for (;;) {
		if (auth_chan == NULL)
			return;
		int ret = ipc_recv(auth_chan->fd, &srv.rx, &error);
		if (ret == -EAGAIN)
			return;
		if (ret == -EPROTO)
			log_fatal("auth sent a malformed message: %s", error);
		if (ret <= 0) {
			login_signals_check();
			if (srv.shutting_down)
				log_debug("auth channel %s while shutting down",
					  ret == 0 ? "closed" : strerror(-ret));
			else
				log_error("auth channel %s", ret == 0 ? "closed" : strerror(-ret));
			login_auth_retire();
			return;
		}
		if (srv.rx.fd >= 0)
			log_fatal("auth sent an fd with %s", ipc_type_name(srv.rx.hdr.type));
		const struct ipc_fields *f = &srv.rx.fields;
		struct conn *c = conn_by_req(srv.rx.hdr.id);
		if (c != NULL && (c->state != CONN_AUTHENTICATING || c->auth == NULL ||
				  c->auth->req_id != srv.rx.hdr.id))
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
			bool proxied = backend_extra_proxied(extra);
			/* a proxied user (passdb proxy) has no cookie: no worker */
			if (user == NULL || (cookie == NULL && !proxied) ||
			    (cookie != NULL && f->len[IPC_F_COOKIE] != 32))
				log_fatal("auth: OK without user or cookie");
			if (c == NULL)
				break;
			srv.stats.v[STAT_LOGIN_OK]++;
			c->auth->req_id = 0;
			auth_set_user(c->auth, user);
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
			if (user != NULL)
				auth_set_user(c->auth, user);
			c->auth->req_id = 0;
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
		login_process_deferred();
	}
}

/* only delivered for the current channel: an old one is retired */
void auth_chan_event(struct ring_owner *owner, const struct ring_event *ev)
{
	struct login_src *s = RING_OWNER(owner, struct login_src, ro);
	if (ev->op == RING_OP_WRITABLE) {
		int ret = login_chan_writable(s, ev->res);
		if (ret < 0) {
			log_error("auth channel: %s", strerror(-ret));
			login_auth_retire();
		}
		return;
	}
	if (ev->res < 0 && ev->res != -ECANCELED)
		log_fatal("poll on auth channel: %s", strerror(-ev->res));
	if (ev->res > 0)
		auth_input();
	/* auth_input() may have retired it */
	if (auth_chan == s && !ev->more && ev->res >= 0)
		ring_poll(srv.ring, s->slot, s->fd);
}

/* the channel master gave: at start-up (fd 4) or after auth restarted */
void login_auth_open(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		log_fatal("auth channel: %m");
	struct login_src *a = rg_calloc(1, sizeof(*a));
	a->ro.event = auth_chan_event;
	a->fd = fd;
	a->slot = ring_slot_alloc(srv.ring, &a->ro);
	auth_chan = a;
	ring_poll(srv.ring, a->slot, a->fd);
}

/* the client goes away during a request: auth forgets it, answers nothing */
void login_auth_abort(struct conn *c)
{
	if (c->auth == NULL || c->auth->req_id == 0 || auth_chan == NULL)
		return;
	ipc_msg_init(&srv.msg, IPC_AUTH_ABORT, c->auth->req_id);
	(void)login_chan_send(auth_chan, &srv.msg, -1);
}

/* at exit: the channel's memory (the ring is gone, the fd closes with the
 * process or here) */
void login_auth_close(void)
{
	while (auth_free_list != NULL) {
		struct conn_auth *a = auth_free_list;
		auth_free_list = a->free_next;
		rg_free(a);
	}
	auth_free_count = 0;
	if (auth_chan == NULL)
		return;
	ipc_outq_clear(&auth_chan->outq);
	close(auth_chan->fd);
	rg_free(auth_chan);
	auth_chan = NULL;
}
