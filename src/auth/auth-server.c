/* auth-server.c — the auth process's event loop, see auth-server.h and
 * auth-server-private.h: requests and their delay queue, the passdb/userdb
 * chain's callbacks, and the loop's life cycle. */
#include "auth/auth-server-private.h"

static void timer_update(struct auth_server *srv)
{
	int64_t due = srv->delay_head != NULL ? srv->delay_head->due_ms : 0;
	if (due == srv->timer_armed_ms)
		return;
	struct itimerspec its;
	memset(&its, 0, sizeof(its));
	if (due != 0) {
		/* CLOCK_MONOTONIC, absolute: 0 would disarm, so never pass it */
		its.it_value.tv_sec = due / 1000;
		its.it_value.tv_nsec = (long)(due % 1000) * 1000000 + 1;
	}
	if (timerfd_settime(srv->timerfd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
		log_fatal("timerfd_settime: %m");
	srv->timer_armed_ms = due;
}

static void delay_unlink(struct auth_server *srv, struct auth_request *req)
{
	if (req->dprev != NULL)
		req->dprev->dnext = req->dnext;
	else
		srv->delay_head = req->dnext;
	if (req->dnext != NULL)
		req->dnext->dprev = req->dprev;
	else
		srv->delay_tail = req->dprev;
	req->dprev = req->dnext = NULL;
}

static void delay_insert(struct auth_server *srv, struct auth_request *req)
{
	/* most requests get the base delay, so the tail is usually the spot */
	struct auth_request *after = srv->delay_tail;
	while (after != NULL && after->due_ms > req->due_ms)
		after = after->dprev;
	req->dprev = after;
	req->dnext = after != NULL ? after->dnext : srv->delay_head;
	if (req->dnext != NULL)
		req->dnext->dprev = req;
	else
		srv->delay_tail = req;
	if (after != NULL)
		after->dnext = req;
	else
		srv->delay_head = req;
}

/* ---- requests ---------------------------------------------------------- */

struct auth_request *asrv_request_find(struct auth_client *c, uint32_t id)
{
	for (struct auth_request *r = c->requests; r != NULL; r = r->cnext) {
		if (r->id == id)
			return r;
	}
	return NULL;
}

static void request_destroy(struct auth_request *req)
{
	sasl_clear(&req->sasl);
	auth_mech_free(&req->mech);
	if (req->token != NULL) {
		explicit_bzero(req->token, req->token_len);
		rg_free(req->token);
	}
	auth_db_request_clear(&req->db);
	rg_free(req->fail_user);
	rg_free(req->cert_user);
	rg_free(req);
}

void asrv_request_free(struct auth_server *srv, struct auth_request *req)
{
	struct auth_client *c = req->client;
	if (req->state == REQ_DELAYED) {
		delay_unlink(srv, req);
		timer_update(srv);
	}
	if (req->state == REQ_DNS)
		srv->dns_pending--;
	if (req->cprev != NULL)
		req->cprev->cnext = req->cnext;
	else
		c->requests = req->cnext;
	if (req->cnext != NULL)
		req->cnext->cprev = req->cprev;
	c->request_count--;
	if (req->state == REQ_PASSDB || req->state == REQ_USERDB) {
		/* a driver still holds it: its callback frees it */
		req->orphan = true;
		req->client = NULL;
		req->cprev = req->cnext = NULL;
		return;
	}
	request_destroy(req);
}

void asrv_client_close(struct auth_server *srv, struct auth_client *c)
{
	if (c->fd < 0)
		return;
	while (c->requests != NULL)
		asrv_request_free(srv, c->requests);
	if (epoll_ctl(srv->epfd, EPOLL_CTL_DEL, c->fd, NULL) < 0)
		log_error("epoll_ctl(DEL): %m");
	ipc_outq_clear(&c->outq);
	close(c->fd);
	c->fd = -1;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		srv->clients = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = NULL;
	c->next = srv->dead;
	srv->dead = c;
}

void asrv_client_error(struct auth_server *srv, struct auth_client *c, const char *error)
{
	log_error("login %u: %s: closing its channel", c->pid, error);
	asrv_client_close(srv, c);
}

/* Send srv->msg to a login process: now, or queued until its channel is
 * writable (a busy login process reads its replies a little later).
 * 0 or -errno: the channel is broken. */
int asrv_client_send(struct auth_server *srv, struct auth_client *c)
{
	return ipc_outq_epoll_send(&c->outq, srv->epfd, c->fd, &c->src, &srv->msg, -1);
}

/* EPOLLOUT: send what waited */
void asrv_client_output(struct auth_server *srv, struct auth_client *c)
{
	int ret = ipc_outq_epoll_flush(&c->outq, srv->epfd, c->fd, &c->src);
	if (ret < 0) {
		char why[96];
		snprintf(why, sizeof(why), "sending queued replies failed: %s", strerror(-ret));
		asrv_client_error(srv, c, why);
	}
}

/* Send srv->msg to req's login process and forget req. */
void asrv_request_reply(struct auth_server *srv, struct auth_request *req)
{
	struct auth_client *c = req->client;
	asrv_request_free(srv, req);
	int ret = asrv_client_send(srv, c);
	if (ret < 0) {
		/* a login process that does not read its replies is broken */
		char why[96];
		snprintf(why, sizeof(why), "sending %s failed: %s",
			 ipc_type_name(((struct ipc_hdr *)(void *)srv->msg.buf)->type),
			 strerror(-ret));
		asrv_client_error(srv, c, why);
	}
}

/* Immediate failure: internal errors and policy refusals, no penalty. */
void asrv_request_fail_now(struct auth_server *srv, struct auth_request *req,
			   const char *reason, bool temp, const char *user)
{
	ipc_msg_init(&srv->msg, IPC_AUTH_FAIL, req->id);
	if (reason != NULL)
		ipc_msg_add_str(&srv->msg, IPC_F_REASON, reason);
	if (temp)
		ipc_msg_add_str(&srv->msg, IPC_F_TEMP, "1");
	if (user != NULL && user[0] != '\0')
		ipc_msg_add_str(&srv->msg, IPC_F_USER, user);
	asrv_request_reply(srv, req);
}

/* Wrong credentials: answer after the delay plus the IP's penalty. */
void asrv_request_fail_delayed(struct auth_server *srv, struct auth_request *req)
{
	int64_t now = now_ms();
	unsigned failures = 1;
	if (req->rip[0] != '\0')
		failures = req->penalty_counted ? penalty_get(srv->penalties, req->rip, now)
						: penalty_fail(srv->penalties, req->rip, now);
	if (failures == 0)
		failures = 1;
	srv->stats.v[AUTH_STAT_FAILED]++;
	if (failures > 1)
		srv->stats.v[AUTH_STAT_PENALTIES]++;
	if (req->sasl.user_len > 0 && req->fail_user == NULL)
		req->fail_user = rg_strdup(req->sasl.user);
	sasl_clear(&req->sasl);
	req->state = REQ_DELAYED;
	req->due_ms = now + penalty_delay_ms(srv->cfg.failure_delay_ms, failures);
	delay_insert(srv, req);
	timer_update(srv);
}

void asrv_delay_run(struct auth_server *srv)
{
	uint64_t ticks;
	if (read(srv->timerfd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		log_fatal("read(timerfd): %m");
	srv->timer_armed_ms = -1; /* force re-arming */
	int64_t now = now_ms();
	while (srv->delay_head != NULL && srv->delay_head->due_ms <= now) {
		struct auth_request *req = srv->delay_head;
		ipc_msg_init(&srv->msg, IPC_AUTH_FAIL, req->id);
		if (req->fail_user != NULL)
			ipc_msg_add_str(&srv->msg, IPC_F_USER, req->fail_user);
		if (req->db.fail_reason != NULL) {
			/* a failed passdb's reason (PAM failure_show_msg): shown
			 * to the client, so bounded (the login process also
			 * replaces control characters) */
			char rbuf[REASON_MAX];
			snprintf(rbuf, sizeof(rbuf), "%s", req->db.fail_reason);
			ipc_msg_add_str(&srv->msg, IPC_F_REASON, rbuf);
		}
		asrv_request_reply(srv, req);
	}
	timer_update(srv);
}

static void request_userdb_done(enum userdb_result result, struct auth_db_request *dbreq);

/* The passdb chain said yes (or the proxy host got resolved): nologin,
 * proxy, else on to the userdb chain. */
void asrv_request_success(struct auth_server *srv, struct auth_request *req)
{
	char logname[300];
	esc_user(req->db.user, logname, sizeof(logname));
	if (req->rip[0] != '\0')
		penalty_reset(srv->penalties, req->rip);
	if (asrv_pfield(req, "nologin") == NULL && asrv_pfield(req, "proxy_maybe") != NULL &&
	    asrv_proxy_resolve(srv, req, logname))
		return;

	if (asrv_pfield(req, "nologin") != NULL) {
		const char *reason = asrv_pfield(req, "reason");
		char rbuf[REASON_MAX];
		/* shown to the client: bounded, and a message must never overflow */
		snprintf(rbuf, sizeof(rbuf), "%s", reason != NULL && reason[0] != '\0' ?
			 reason : REASON_NOLOGIN);
		log_info("%s(%s,%s): login disabled (nologin)", req->db.db_name, logname, req->rip);
		asrv_request_fail_now(srv, req, rbuf, false, req->db.user);
		return;
	}

	/* Dovecot's proxy fields: the login process logs in to host itself.
	 * proxy: no userdb lookup, no cookie. proxy_maybe: both, since the
	 * login process may find that host is itself and hand off locally. */
	if (asrv_pfield(req, "proxy") != NULL && asrv_pfield(req, "proxy_maybe") == NULL) {
		asrv_request_proxy(srv, req, logname);
		return;
	}
	req->state = REQ_USERDB;
	auth_chain_userdb_lookup(srv->chain, &req->db, request_userdb_done);
}

/* A chain callback arrived: the request, or NULL when its client went
 * meanwhile (the orphan is freed here). */
struct auth_request *asrv_request_resume(struct auth_db_request *dbreq)
{
	struct auth_request *req = request_of(dbreq);
	req->state = REQ_SASL;
	if (req->orphan) {
		request_destroy(req);
		return NULL;
	}
	return req;
}

static void request_userdb_done(enum userdb_result result, struct auth_db_request *dbreq)
{
	struct auth_request *req = asrv_request_resume(dbreq);
	if (req == NULL)
		return;
	struct auth_server *srv = req->srv;
	char logname[300];
	esc_user(req->db.user, logname, sizeof(logname));
	if (result == USERDB_RESULT_USER_UNKNOWN) {
		/* a passdb knows the user, no userdb does (PAM, but not in
		 * /etc/passwd): a failed login, as Dovecot's */
		log_info("userdb(%s,%s): user not found in any userdb", logname, req->rip);
		asrv_request_fail_delayed(srv, req);
		return;
	}
	if (result != USERDB_RESULT_OK) {
		asrv_request_fail_now(srv, req, REASON_TEMP, true, req->db.user);
		return;
	}
	struct auth_user *u = asrv_user_build(srv, req, logname);
	if (u == NULL) {
		asrv_request_fail_now(srv, req, REASON_TEMP, true, req->db.user);
		return;
	}
	bool proxy_maybe = asrv_pfield(req, "proxy_maybe") != NULL;
	/* passdb extra fields travel with AUTH_OK (proxy, host, …) */
	char *extra = asrv_passdb_extra(req);
	size_t need = strlen(req->db.user) + COOKIE_HEX_LEN + strlen(extra) + 3 * 8 +
		      asrv_proxy_pass_len(req);
	ipc_msg_init(&srv->msg, IPC_AUTH_OK, req->id);
	if (need > ipc_msg_room(&srv->msg) ||
	    strlen(u->user) + strlen(u->home) + strlen(u->mail) + strlen(u->extra) + 128 >
	    IPC_MAX_PAYLOAD) {
		log_error("%s(%s): fields too long for IPC", req->db.db_name, logname);
		auth_user_free(u);
		rg_free(extra);
		asrv_request_fail_now(srv, req, REASON_TEMP, true, req->db.user);
		return;
	}
	char cookie[COOKIE_HEX_LEN + 1];
	int ret = cookie_add(srv->cookies, req->client->pid, u, now_ms(), cookie);
	if (ret < 0) {
		log_error("getrandom() failed: %s", strerror(-ret));
		auth_user_free(u);
		rg_free(extra);
		asrv_request_fail_now(srv, req, REASON_TEMP, true, req->db.user);
		return;
	}
	ipc_msg_init(&srv->msg, IPC_AUTH_OK, req->id);
	ipc_msg_add_str(&srv->msg, IPC_F_USER, req->db.user);
	ipc_msg_add_str(&srv->msg, IPC_F_COOKIE, cookie);
	if (extra[0] != '\0')
		ipc_msg_add_str(&srv->msg, IPC_F_EXTRA, extra);
	rg_free(extra);
	if (proxy_maybe)
		asrv_proxy_add_pass(srv, req);
	explicit_bzero(cookie, sizeof(cookie));
	log_debug("%s(%s,%s): authenticated", req->db.db_name, logname, req->rip);
	asrv_request_reply(srv, req);
}

static void request_passdb_done(enum passdb_result result, struct auth_db_request *dbreq)
{
	struct auth_request *req = asrv_request_resume(dbreq);
	if (req == NULL)
		return;
	struct auth_server *srv = req->srv;
	switch (result) {
	case PASSDB_RESULT_OK:
		/* asrv_request_success() may need the password (proxy); the
		 * reply frees the request, which wipes it */
		asrv_request_success(srv, req);
		return;
	case PASSDB_RESULT_INTERNAL_FAILURE:
		asrv_request_fail_now(srv, req, REASON_TEMP, true, req->sasl.user);
		return;
	default:
		asrv_request_fail_delayed(srv, req);
		return;
	}
}

/* req->db for the name the client gave (login_name): the master user
 * separator and the name rules. false: refused (logged, failure queued). */
bool asrv_request_db_prepare(struct auth_server *srv, struct auth_request *req,
			     const char *login_name)
{
	/* Dovecot: "cert_username overrides the username given by the
	   authentication mechanism", the rules below still apply to it */
	if (req->cert_user != NULL)
		login_name = req->cert_user;
	auth_db_request_clear(&req->db);
	auth_db_request_init(&req->db, login_name);
	req->db.service = req->client->service;
	req->db.mech = sasl_mech_name(req->sasl.mech);
	snprintf(req->db.rip, sizeof(req->db.rip), "%s", req->rip);
	req->db.secured = req->secured;

	/* user*master: the master user's password, the user's session */
	const char *sep = srv->cfg.master_user_separator;
	char *login = rg_strdup(login_name), *master = NULL;
	char *p = sep != NULL && sep[0] != '\0' ? strchr(login, sep[0]) : NULL;
	if (p != NULL) {
		*p = '\0';
		master = p + 1;
	}
	char *user = NULL, *master_user = NULL, *error = NULL;
	if (auth_username_fix(&srv->rules, &req->db, login, &user, &error) < 0 ||
	    (master != NULL &&
	     auth_username_fix(&srv->rules, &req->db, master, &master_user, &error) < 0)) {
		char logname[300];
		log_info("auth(%s,%s): %s", esc_user(login_name, logname, sizeof(logname)),
			 req->rip, error);
		rg_free(error);
		rg_free(user);
		rg_free(login);
		if (req->fail_user == NULL)
			req->fail_user = rg_strdup(login_name);
		asrv_request_fail_delayed(srv, req);
		return false;
	}
	rg_free(login);
	rg_free(req->db.user);
	req->db.user = user;
	req->db.master_user = master_user;
	return true;
}

/* The SASL exchange produced credentials: the passdb chain. */
static void request_verify(struct auth_server *srv, struct auth_request *req)
{
	if (!asrv_request_db_prepare(srv, req, req->sasl.user))
		return;
	req->state = REQ_PASSDB;
	auth_chain_verify_plain(srv->chain, &req->db, req->sasl.pass, req->sasl.pass_len,
				request_passdb_done);
}

void asrv_request_step(struct auth_server *srv, struct auth_request *req, enum sasl_step step,
		       const uint8_t *chal, size_t chal_len, const char *error)
{
	switch (step) {
	case SASL_STEP_CHALLENGE:
		ipc_msg_init(&srv->msg, IPC_AUTH_CHALLENGE, req->id);
		ipc_msg_add(&srv->msg, IPC_F_CHALLENGE, chal, chal_len);
		if (asrv_client_send(srv, req->client) < 0)
			asrv_client_error(srv, req->client, "sending a challenge failed");
		return;
	case SASL_STEP_FAIL: {
		char logname[300];
		log_info("%s(%s,%s): %s", sasl_mech_name(req->sasl.mech),
			 esc_user(req->sasl.user, logname, sizeof(logname)), req->rip, error);
		asrv_request_fail_delayed(srv, req);
		return;
	}
	case SASL_STEP_DONE:
		request_verify(srv, req);
		return;
	}
}

/* ---- in-memory entry points (tests, fuzzing) ---------------------------- */

bool auth_server_login_message(struct auth_server *srv, struct auth_client *c,
			       const struct ipc_rx *rx)
{
	if (c->fd < 0)
		return false;
	if (rx->fd >= 0)
		asrv_client_error(srv, c, "message with an fd");
	else
		asrv_client_message(srv, c, rx);
	return c->fd >= 0;
}

void auth_server_login_close(struct auth_server *srv, struct auth_client *c)
{
	asrv_client_close(srv, c);
}

void asrv_free_dead(struct auth_server *srv)
{
	while (srv->dead != NULL) {
		struct auth_client *c = srv->dead;
		srv->dead = c->next;
		rg_free(c);
	}
}

void auth_server_tick(struct auth_server *srv)
{
	asrv_delay_run(srv);
	asrv_free_dead(srv);
}

/* ---- life cycle -------------------------------------------------------- */

/* The chain from the settings' blocks, or (tests, the fuzzer) from the
 * passwd-file shortcuts: passdb_args, and userdb_args or else the passdb's
 * file as the userdb. */
struct auth_chain *auth_server_chain_build(const struct auth_config *cfg, char **error_r)
{
	const struct db_settings *passdbs = cfg->passdbs, *userdbs = cfg->userdbs;
	struct db_settings p, u;
	memset(&p, 0, sizeof(p));
	memset(&u, 0, sizeof(u));
	if (passdbs == NULL && cfg->passdb_args != NULL && cfg->passdb_args[0] != '\0') {
		p.driver = (char *)"passwd-file";
		p.args = (char *)cfg->passdb_args;
		passdbs = &p;
	}
	if (userdbs == NULL && passdbs == &p) {
		u.driver = (char *)"passwd-file";
		u.args = (char *)(cfg->userdb_args != NULL && cfg->userdb_args[0] != '\0' ?
				  cfg->userdb_args : cfg->passdb_args);
		userdbs = &u;
	} else if (passdbs != NULL && (userdbs == NULL || userdbs->driver[0] == '\0') &&
		   strcmp(passdbs->driver, "passwd-file") == 0) {
		/* no userdb block: the passdb's file is the userdb too */
		u.driver = (char *)"passwd-file";
		u.args = passdbs->args;
		userdbs = &u;
	}
	return auth_chain_new(passdbs, userdbs, error_r);
}

/* A mechanism the passdbs cannot serve is a configuration error: say which
   and why, as the administrator would otherwise find out one failed login
   at a time. */
static bool mechanisms_servable(struct auth_chain *chain, const char *mechanisms,
				char **error_r)
{
	for (unsigned m = 0; m < SASL_MECH_COUNT; m++) {
		enum sasl_mech mech = (enum sasl_mech)m;
		if (!sasl_mech_allowed(mechanisms, mech) || !auth_mech_handles(mech))
			continue;
		const char *scheme = auth_mech_scheme(mech);
		/* EXTERNAL: any passdb, whose entries say nopassword */
		bool ok = mech == SASL_MECH_EXTERNAL && auth_chain_passdb_count(chain) > 0;
		for (unsigned i = 0; i < auth_chain_passdb_count(chain) && !ok; i++) {
			const struct passdb_module *pm = auth_chain_passdb(chain, i);
			ok = scheme != NULL ? pm->driver->lookup_credentials != NULL
					    : pm->driver == &passdb_driver_oauth2;
		}
		if (ok)
			continue;
		if (scheme == NULL)
			*error_r = rg_strdup_printf("auth_mechanisms: %s needs a passdb { driver = "
						    "oauth2 } to check its tokens",
						    sasl_mech_name(mech));
		else if (strcmp(scheme, "PLAIN") == 0)
			*error_r = rg_strdup_printf("auth_mechanisms: %s needs plaintext passwords "
						    "from a passdb that can give them (passwd-file "
						    "with {PLAIN})", sasl_mech_name(mech));
		else
			*error_r = rg_strdup_printf("auth_mechanisms: %s needs {%s} or plaintext "
						    "passwords from a passdb that can give them "
						    "(passwd-file), and no passdb can",
						    sasl_mech_name(mech), scheme);
		return false;
	}
	return true;
}

struct auth_server *auth_server_new(const struct auth_config *cfg, int master_fd,
				    char **error_r)
{
	struct auth_chain *chain = auth_server_chain_build(cfg, error_r);
	if (chain == NULL)
		return NULL;
	if (!mechanisms_servable(chain, cfg->mechanisms != NULL ? cfg->mechanisms : "plain",
				 error_r)) {
		auth_chain_free(chain);
		return NULL;
	}

	struct auth_server *srv = rg_calloc(1, sizeof(*srv));
	srv->mechanisms = rg_strdup(cfg->mechanisms != NULL ? cfg->mechanisms : "plain");
	srv->mail_location = rg_strdup(cfg->mail_location != NULL ? cfg->mail_location : "");
	srv->cfg = *cfg;
	srv->cfg.mechanisms = srv->mechanisms;
	srv->cfg.mail_location = srv->mail_location;
	srv->cfg.passdb_args = srv->cfg.userdb_args = NULL;
	srv->cfg.passdbs = srv->cfg.userdbs = NULL;
	/* copies: cfg's strings belong to settings that main() frees */
	srv->username_format = cfg->username_format != NULL ? rg_strdup(cfg->username_format) : NULL;
	srv->username_chars = cfg->username_chars != NULL ? rg_strdup(cfg->username_chars) : NULL;
	srv->username_translation = cfg->username_translation != NULL ?
		rg_strdup(cfg->username_translation) : NULL;
	srv->default_realm = cfg->default_realm != NULL ? rg_strdup(cfg->default_realm) : NULL;
	srv->master_user_separator = cfg->master_user_separator != NULL ?
		rg_strdup(cfg->master_user_separator) : NULL;
	srv->cfg.master_user_separator = srv->master_user_separator;
	srv->cfg.username_format = srv->cfg.username_chars = NULL;
	srv->cfg.username_translation = srv->cfg.default_realm = NULL;
	srv->rules.format = srv->username_format;
	srv->rules.chars = srv->username_chars;
	srv->rules.translation = srv->username_translation;
	srv->rules.default_realm = srv->default_realm;
	srv->master_fd = master_fd;
	srv->chain = chain;
	srv->cache = auth_cache_new(cfg->cache_size > SIZE_MAX ? SIZE_MAX : (size_t)cfg->cache_size,
				    cfg->cache_ttl_secs, cfg->cache_negative_ttl_secs);
	auth_chain_set_cache(chain, srv->cache);
	srv->cookies = cookie_table_new(COOKIE_MAX);
	srv->penalties = penalty_table_new(PENALTY_TABLE_MAX);
	srv->rx = rg_malloc(sizeof(*srv->rx));
	srv->master_src.type = SRC_MASTER;
	srv->timer_src.type = SRC_TIMER;
	srv->dns_src.type = SRC_DNS;
	srv->dns_fd = -1;
	if (auth_chain_passdb_count(chain) == 0)
		log_warning("no passdb configured: every login fails");
	if (gethostname(srv->hostname, sizeof(srv->hostname) - 1) < 0 || srv->hostname[0] == '\0')
		strcpy(srv->hostname, "localhost");
	srv->mech_params.hostname = srv->hostname;
	for (unsigned i = 0; i < auth_chain_passdb_count(chain); i++) {
		const char *scope = passdb_oauth2_scope(auth_chain_passdb(chain, i));
		if (scope != NULL)
			srv->mech_params.oauth2_scope = scope;
	}

	srv->epfd = epoll_create1(EPOLL_CLOEXEC);
	srv->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (srv->epfd < 0 || srv->timerfd < 0)
		log_fatal("epoll/timerfd: %m");
	auth_loop_init(srv->epfd);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &srv->master_src };
	if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, master_fd, &ev) < 0)
		log_fatal("epoll_ctl(ADD master): %m");
	ev.data.ptr = &srv->timer_src;
	if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->timerfd, &ev) < 0)
		log_fatal("epoll_ctl(ADD timer): %m");
	return srv;
}

int auth_server_run(struct auth_server *srv)
{
	struct epoll_event evs[64];
	for (;;) {
		int n = epoll_wait(srv->epfd, evs, 64, auth_loop_next_timeout_ms());
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		bool master_gone = false;
		for (int i = 0; i < n; i++) {
			struct ep_src *src = evs[i].data.ptr;
			if (src->type > SRC_DNS) {
				/* a driver's fd (auth-loop.h) */
				(void)auth_loop_dispatch(src, evs[i].events);
				continue;
			}
			switch (src->type) {
			case SRC_MASTER:
				if (!asrv_master_input(srv))
					master_gone = true;
				break;
			case SRC_TIMER:
				asrv_delay_run(srv);
				break;
			case SRC_DNS:
				if (srv->dns_fd >= 0 && (evs[i].events & EPOLLOUT) != 0)
					asrv_dns_output(srv);
				if (srv->dns_fd >= 0 && (evs[i].events & ~(uint32_t)EPOLLOUT) != 0)
					asrv_dns_input(srv);
				break;
			case SRC_CLIENT: {
				struct auth_client *c = (struct auth_client *)src;
				if (c->fd >= 0 && (evs[i].events & EPOLLOUT) != 0)
					asrv_client_output(srv, c);
				if (c->fd >= 0 && (evs[i].events & ~(uint32_t)EPOLLOUT) != 0)
					asrv_client_input(srv, c);
				break;
			}
			}
		}
		auth_loop_run_timeouts();
		asrv_free_dead(srv);
		auth_loop_free_dead();
		if (master_gone) {
			log_debug("master closed its channel: exiting");
			return 0;
		}
	}
}

void auth_server_free(struct auth_server *srv)
{
	if (srv == NULL)
		return;
	while (srv->clients != NULL)
		asrv_client_close(srv, srv->clients);
	asrv_free_dead(srv);
	auth_worker_pool_free(srv->workers);
	auth_chain_free(srv->chain);
	auth_cache_free(srv->cache);
	auth_loop_deinit();
	cookie_table_free(srv->cookies);
	penalty_table_free(srv->penalties);
	ipc_outq_clear(&srv->dns_outq);
	if (srv->dns_fd >= 0)
		close(srv->dns_fd);
	close(srv->epfd);
	close(srv->timerfd);
	rg_free(srv->rx);
	rg_free(srv->mechanisms);
	rg_free(srv->mail_location);
	rg_free(srv->username_format);
	rg_free(srv->username_chars);
	rg_free(srv->username_translation);
	rg_free(srv->default_realm);
	rg_free(srv->master_user_separator);
	rg_free(srv);
}
