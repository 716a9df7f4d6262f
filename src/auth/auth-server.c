#include "auth/auth-server.h"
#include "auth/auth-cookie.h"
#include "auth/auth-dns.h"
#include "auth/auth-passwd.h"
#include "auth/auth-penalty.h"
#include "auth/auth-sasl.h"
#include "auth/auth-scheme.h"

#include "lib/alloc.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/stats.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_MSGS_PER_WAKEUP 64
/* a login process never has more requests in flight than clients */
#define MAX_REQUESTS_PER_CLIENT 100000
#define PENALTY_TABLE_MAX 65536
#define REASON_TEMP "Temporary authentication failure."
#define REASON_MECH "Unsupported authentication mechanism."
#define REASON_PLAINTEXT "Plaintext authentication disallowed on non-secure (SSL/TLS) connections."
#define REASON_NOLOGIN "Login disabled."

enum src_type { SRC_MASTER, SRC_TIMER, SRC_CLIENT, SRC_DNS };

struct ep_src {
	enum src_type type;
};

/* REQ_DNS: credentials verified, waiting for the resolver (passdb host is
 * a DNS name); the SASL state (the password for the backend) is kept */
enum req_state { REQ_SASL, REQ_DELAYED, REQ_DNS };

struct auth_client;

struct auth_request {
	struct auth_request *cprev, *cnext; /* the channel's requests */
	struct auth_request *dprev, *dnext; /* delay queue, by due_ms */
	struct auth_client *client;
	uint32_t id;
	enum req_state state;
	bool secured;
	int64_t due_ms;
	char rip[PENALTY_IP_MAX + 1];
	char *fail_user;   /* sent with the delayed AUTH_FAIL */
	uint32_t dns_id;   /* REQ_DNS: the lookup's id */
	char hostip[64];   /* the resolved passdb host, added as hostip */
	struct sasl_state sasl;
};

/* A login process's channel. Invariant: fd >= 0 while it is in the epoll set
 * and on srv->clients; a closed one waits on srv->dead until the end of the
 * loop turn, because later events of the same epoll batch may still name it. */
struct auth_client {
	struct ep_src src; /* first: epoll data points here */
	struct auth_client *prev, *next;
	int fd;
	uint32_t pid;
	char service[16];
	struct auth_request *requests;
	unsigned request_count;
	struct ipc_outq outq; /* replies the socket had no room for yet */
};

struct auth_server {
	struct auth_config cfg;
	char *mechanisms, *mail_location;
	int master_fd, epfd, timerfd;
	struct ep_src master_src, timer_src, dns_src;
	int dns_fd;        /* the resolver child's channel (auth-dns.h), -1: none */
	struct ipc_outq dns_outq; /* lookups the channel had no room for yet */
	uint32_t dns_next; /* lookup ids */
	unsigned dns_pending;
	struct passwd_file *passdb;
	struct passwd_file *userdb; /* == passdb when they are one file */
	struct cookie_table *cookies;
	struct penalty_table *penalties;
	struct auth_client *clients, *dead;
	struct auth_request *delay_head, *delay_tail;
	int64_t timer_armed_ms; /* 0 = disarmed */
	struct ipc_rx *rx;
	struct ipc_msg msg;
	struct auth_counters stats; /* for `ringgate stats`, on master's request */
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *esc_user(const char *user, char *buf, size_t size)
{
	if (user == NULL || user[0] == '\0')
		return "?";
	return log_escape(user, strlen(user), 64, buf, size);
}

/* ---- delay queue ------------------------------------------------------- */

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

static struct auth_request *request_find(struct auth_client *c, uint32_t id)
{
	for (struct auth_request *r = c->requests; r != NULL; r = r->cnext) {
		if (r->id == id)
			return r;
	}
	return NULL;
}

static void request_free(struct auth_server *srv, struct auth_request *req)
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
	sasl_clear(&req->sasl);
	rg_free(req->fail_user);
	rg_free(req);
}

static void client_close(struct auth_server *srv, struct auth_client *c)
{
	if (c->fd < 0)
		return;
	while (c->requests != NULL)
		request_free(srv, c->requests);
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

static void client_error(struct auth_server *srv, struct auth_client *c, const char *error)
{
	log_error("login %u: %s: closing its channel", c->pid, error);
	client_close(srv, c);
}

/* Send srv->msg to a login process: now, or queued until its channel is
 * writable (a busy login process reads its replies a little later).
 * 0 or -errno: the channel is broken. */
static int client_send(struct auth_server *srv, struct auth_client *c)
{
	return ipc_outq_epoll_send(&c->outq, srv->epfd, c->fd, &c->src, &srv->msg, -1);
}

/* EPOLLOUT: send what waited */
static void client_output(struct auth_server *srv, struct auth_client *c)
{
	int ret = ipc_outq_epoll_flush(&c->outq, srv->epfd, c->fd, &c->src);
	if (ret < 0) {
		char why[96];
		snprintf(why, sizeof(why), "sending queued replies failed: %s", strerror(-ret));
		client_error(srv, c, why);
	}
}

/* Send srv->msg to req's login process and forget req. */
static void request_reply(struct auth_server *srv, struct auth_request *req)
{
	struct auth_client *c = req->client;
	request_free(srv, req);
	int ret = client_send(srv, c);
	if (ret < 0) {
		/* a login process that does not read its replies is broken */
		char why[96];
		snprintf(why, sizeof(why), "sending %s failed: %s",
			 ipc_type_name(((struct ipc_hdr *)(void *)srv->msg.buf)->type),
			 strerror(-ret));
		client_error(srv, c, why);
	}
}

/* Immediate failure: internal errors and policy refusals, no penalty. */
static void request_fail_now(struct auth_server *srv, struct auth_request *req,
			     const char *reason, bool temp, const char *user)
{
	ipc_msg_init(&srv->msg, IPC_AUTH_FAIL, req->id);
	if (reason != NULL)
		ipc_msg_add_str(&srv->msg, IPC_F_REASON, reason);
	if (temp)
		ipc_msg_add_str(&srv->msg, IPC_F_TEMP, "1");
	if (user != NULL && user[0] != '\0')
		ipc_msg_add_str(&srv->msg, IPC_F_USER, user);
	request_reply(srv, req);
}

/* Wrong credentials: answer after the delay plus the IP's penalty. */
static void request_fail_delayed(struct auth_server *srv, struct auth_request *req)
{
	int64_t now = now_ms();
	unsigned failures = 1;
	if (req->rip[0] != '\0')
		failures = penalty_fail(srv->penalties, req->rip, now);
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

static void delay_run(struct auth_server *srv)
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
		request_reply(srv, req);
	}
	timer_update(srv);
}

/* Append key[=value] to a TAB-separated list. */
static void extra_append(char **list, const char *field)
{
	char *old = *list;
	*list = rg_strdup_printf("%s%s%s", old, old[0] != '\0' ? "\t" : "", field);
	rg_free(old);
}

static bool is_userdb_core(const char *field, size_t klen)
{
	static const char *const core[] = { "uid", "gid", "home", "mail" };
	for (unsigned i = 0; i < 4; i++) {
		if (strlen(core[i]) == klen && strncmp(field, core[i], klen) == 0)
			return true;
	}
	return false;
}

/* The userdb result for entry (of the userdb file). NULL with a logged
 * error when the entry lacks what a worker needs. */
static struct auth_user *userdb_build(struct auth_server *srv, const struct passwd_entry *e,
				      const char *logname)
{
	uint32_t uid = e->uid, gid = e->gid;
	bool have_uid = e->have_uid, have_gid = e->have_gid;
	const char *v;
	char *end;
	if ((v = passwd_entry_field(e, "userdb_uid")) != NULL) {
		unsigned long n = strtoul(v, &end, 10);
		have_uid = *v >= '0' && *v <= '9' && *end == '\0' && n < UINT32_MAX;
		uid = (uint32_t)n;
	}
	if ((v = passwd_entry_field(e, "userdb_gid")) != NULL) {
		unsigned long n = strtoul(v, &end, 10);
		have_gid = *v >= '0' && *v <= '9' && *end == '\0' && n < UINT32_MAX;
		gid = (uint32_t)n;
	}
	if (!have_uid || !have_gid) {
		log_error("passwd-file(%s): userdb lookup: no valid uid/gid for the user", logname);
		return NULL;
	}
	struct auth_user *u = rg_calloc(1, sizeof(*u));
	u->user = rg_strdup(e->user);
	u->uid = uid;
	u->gid = gid;
	v = passwd_entry_field(e, "userdb_home");
	u->home = rg_strdup(v != NULL ? v : e->home);
	v = passwd_entry_field(e, "userdb_mail");
	if (v == NULL)
		v = passwd_entry_field(e, "mail");
	u->mail = rg_strdup(v != NULL ? v : srv->cfg.mail_location);
	u->extra = rg_strdup("");
	for (unsigned i = 0; i < e->extra_count; i++) {
		const char *x = e->extra[i];
		if (strncmp(x, "userdb_", 7) != 0)
			continue;
		x += 7;
		size_t klen = strcspn(x, "=");
		if (!is_userdb_core(x, klen))
			extra_append(&u->extra, x);
	}
	return u;
}

/* passdb extra fields for the login process: not the userdb_ ones, and not
 * pass (it travels as F_PASS) */
static char *passdb_extra(const struct auth_request *req, const struct passwd_entry *e)
{
	char *extra = rg_strdup("");
	for (unsigned i = 0; i < e->extra_count; i++) {
		const char *x = e->extra[i];
		if (strncmp(x, "userdb_", 7) != 0 && strncmp(x, "pass=", 5) != 0)
			extra_append(&extra, x);
	}
	if (req->hostip[0] != '\0') {
		char field[80];
		snprintf(field, sizeof(field), "hostip=%s", req->hostip);
		extra_append(&extra, field);
	}
	return extra;
}

static bool is_ip(const char *s)
{
	uint8_t a[16];
	return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

/* A proxied user's host is a DNS name (and passdb gives no hostip): ask the
 * resolver, the request waits in REQ_DNS. true when that happened (or the
 * request failed), false when the answer can go now. */
static bool proxy_resolve(struct auth_server *srv, struct auth_request *req,
			  const struct passwd_entry *e, const char *logname)
{
	const char *host = passwd_entry_field(e, "host");
	const char *hostip = passwd_entry_field(e, "hostip");
	if (req->hostip[0] != '\0' || host == NULL || host[0] == '\0' || is_ip(host) ||
	    (hostip != NULL && hostip[0] != '\0'))
		return false;
	if (strlen(host) > 253 || srv->dns_fd < 0) {
		log_error("passwd-file(%s,%s): proxy host %s cannot be resolved", logname, req->rip,
			  srv->dns_fd < 0 ? "(no resolver)" : "(name too long)");
		request_fail_now(srv, req, REASON_TEMP, true, e->user);
		return true;
	}
	if (++srv->dns_next == 0)
		srv->dns_next = 1;
	struct ipc_msg *msg = rg_malloc(sizeof(*msg));
	ipc_msg_init(msg, IPC_DNS_LOOKUP, srv->dns_next);
	ipc_msg_add_str(msg, IPC_F_HOST, host);
	int ret = ipc_outq_epoll_send(&srv->dns_outq, srv->epfd, srv->dns_fd, &srv->dns_src, msg, -1);
	rg_free(msg);
	if (ret < 0) {
		log_error("passwd-file(%s,%s): proxy host lookup: sending to the resolver: %s",
			  logname, req->rip, strerror(-ret));
		request_fail_now(srv, req, REASON_TEMP, true, e->user);
		return true;
	}
	req->dns_id = srv->dns_next;
	req->state = REQ_DNS;
	srv->dns_pending++;
	log_debug("passwd-file(%s,%s): resolving proxy host", logname, req->rip);
	return true;
}

/* The backend password: the passdb's pass field (a master user's password),
 * else what the client gave (as Dovecot does). */
static size_t proxy_pass_len(const struct auth_request *req, const struct passwd_entry *e)
{
	const char *pass = passwd_entry_field(e, "pass");
	return (pass != NULL ? strlen(pass) : req->sasl.pass_len) + 8;
}

static void proxy_add_pass(struct auth_server *srv, struct auth_request *req,
			   const struct passwd_entry *e)
{
	const char *pass = passwd_entry_field(e, "pass");
	if (pass != NULL)
		ipc_msg_add_str(&srv->msg, IPC_F_PASS, pass);
	else
		ipc_msg_add(&srv->msg, IPC_F_PASS, req->sasl.pass, req->sasl.pass_len);
}

/* A user whose passdb entry says proxy: AUTH_OK with the extra fields and
 * the password, no userdb lookup and no cookie (master never sees it). */
static void request_proxy(struct auth_server *srv, struct auth_request *req,
			  const struct passwd_entry *e, const char *logname)
{
	if (proxy_resolve(srv, req, e, logname))
		return;
	char *extra = passdb_extra(req, e);
	ipc_msg_init(&srv->msg, IPC_AUTH_OK, req->id);
	if (strlen(e->user) + strlen(extra) + proxy_pass_len(req, e) + 3 * 8 >
	    ipc_msg_room(&srv->msg)) {
		log_error("passwd-file(%s): fields too long for IPC", logname);
		rg_free(extra);
		request_fail_now(srv, req, REASON_TEMP, true, e->user);
		return;
	}
	ipc_msg_add_str(&srv->msg, IPC_F_USER, e->user);
	ipc_msg_add_str(&srv->msg, IPC_F_EXTRA, extra);
	rg_free(extra);
	proxy_add_pass(srv, req, e);
	log_debug("passwd-file(%s,%s): authenticated, proxied", logname, req->rip);
	request_reply(srv, req);
}

/* proxy_maybe needs the address too (the login process compares it with
 * its own listeners); proxy is resolved in request_proxy */
static bool proxy_maybe_resolve(struct auth_server *srv, struct auth_request *req,
				const struct passwd_entry *e, const char *logname)
{
	return passwd_entry_field(e, "nologin") == NULL &&
	       passwd_entry_field(e, "proxy_maybe") != NULL && proxy_resolve(srv, req, e, logname);
}

static void request_success(struct auth_server *srv, struct auth_request *req,
			    const struct passwd_entry *e, const char *logname)
{
	int64_t now = now_ms();
	if (req->rip[0] != '\0')
		penalty_reset(srv->penalties, req->rip);
	if (proxy_maybe_resolve(srv, req, e, logname))
		return;

	const char *nologin = passwd_entry_field(e, "nologin");
	if (nologin != NULL) {
		const char *reason = passwd_entry_field(e, "reason");
		char rbuf[256];
		/* shown to the client: bounded, and a message must never overflow */
		snprintf(rbuf, sizeof(rbuf), "%s", reason != NULL && reason[0] != '\0' ?
			 reason : REASON_NOLOGIN);
		log_info("passwd-file(%s,%s): login disabled (nologin)", logname, req->rip);
		request_fail_now(srv, req, rbuf, false, e->user);
		return;
	}

	/* Dovecot's proxy fields: the login process logs in to host itself.
	 * proxy: no userdb lookup, no cookie. proxy_maybe: both, since the
	 * login process may find that host is itself and hand off locally. */
	bool proxy = passwd_entry_field(e, "proxy") != NULL;
	bool proxy_maybe = passwd_entry_field(e, "proxy_maybe") != NULL;
	if (proxy && !proxy_maybe) {
		request_proxy(srv, req, e, logname);
		return;
	}

	const struct passwd_entry *ue = e;
	if (srv->userdb != srv->passdb) {
		if (passwd_file_refresh(srv->userdb, now) < 0) {
			request_fail_now(srv, req, REASON_TEMP, true, e->user);
			return;
		}
		ue = passwd_file_lookup(srv->userdb, e->user);
		if (ue == NULL) {
			log_error("passwd-file(%s,%s): user not found in the userdb", logname, req->rip);
			request_fail_now(srv, req, REASON_TEMP, true, e->user);
			return;
		}
	}
	struct auth_user *u = userdb_build(srv, ue, logname);
	if (u == NULL) {
		request_fail_now(srv, req, REASON_TEMP, true, e->user);
		return;
	}

	/* passdb extra fields travel with AUTH_OK (proxy, host, …) */
	char *extra = passdb_extra(req, e);
	size_t need = strlen(e->user) + COOKIE_HEX_LEN + strlen(extra) + 3 * 8 +
		      proxy_pass_len(req, e);
	ipc_msg_init(&srv->msg, IPC_AUTH_OK, req->id);
	if (need > ipc_msg_room(&srv->msg) ||
	    strlen(u->user) + strlen(u->home) + strlen(u->mail) + strlen(u->extra) + 128 >
	    IPC_MAX_PAYLOAD) {
		log_error("passwd-file(%s): fields too long for IPC", logname);
		auth_user_free(u);
		rg_free(extra);
		request_fail_now(srv, req, REASON_TEMP, true, e->user);
		return;
	}
	char cookie[COOKIE_HEX_LEN + 1];
	int ret = cookie_add(srv->cookies, req->client->pid, u, now, cookie);
	if (ret < 0) {
		log_error("getrandom() failed: %s", strerror(-ret));
		auth_user_free(u);
		rg_free(extra);
		request_fail_now(srv, req, REASON_TEMP, true, e->user);
		return;
	}
	ipc_msg_init(&srv->msg, IPC_AUTH_OK, req->id);
	ipc_msg_add_str(&srv->msg, IPC_F_USER, e->user);
	ipc_msg_add_str(&srv->msg, IPC_F_COOKIE, cookie);
	if (extra[0] != '\0')
		ipc_msg_add_str(&srv->msg, IPC_F_EXTRA, extra);
	rg_free(extra);
	if (proxy_maybe)
		proxy_add_pass(srv, req, e);
	explicit_bzero(cookie, sizeof(cookie));
	log_debug("passwd-file(%s,%s): authenticated", logname, req->rip);
	request_reply(srv, req);
}

/* The SASL exchange produced credentials: check them against the passdb. */
static void request_verify(struct auth_server *srv, struct auth_request *req)
{
	char logname[300];
	esc_user(req->sasl.user, logname, sizeof(logname));

	if (srv->passdb == NULL) {
		log_error("passwd-file(%s,%s): no passdb configured", logname, req->rip);
		request_fail_now(srv, req, REASON_TEMP, true, req->sasl.user);
		return;
	}
	if (passwd_file_refresh(srv->passdb, now_ms()) < 0) {
		request_fail_now(srv, req, REASON_TEMP, true, req->sasl.user);
		return;
	}
	const struct passwd_entry *e = passwd_file_lookup(srv->passdb, req->sasl.user);
	if (e == NULL) {
		log_info("passwd-file(%s,%s): unknown user", logname, req->rip);
		request_fail_delayed(srv, req);
		return;
	}
	if (e->scheme == NULL) {
		log_info("passwd-file(%s,%s): no password for the user", logname, req->rip);
		request_fail_delayed(srv, req);
		return;
	}
	enum scheme_result res = auth_scheme_verify(e->scheme, e->password, req->sasl.pass,
						    req->sasl.pass_len);
	switch (res) {
	case SCHEME_OK:
		/* request_success() may need the password (proxy); the
		 * reply frees the request, which wipes it */
		request_success(srv, req, e, logname);
		return;
	case SCHEME_MISMATCH:
		log_info("passwd-file(%s,%s): Password mismatch", logname, req->rip);
		break;
	case SCHEME_UNKNOWN:
		log_error("passwd-file(%s,%s): unknown password scheme %s", logname, req->rip,
			  e->scheme);
		break;
	case SCHEME_BAD_HASH:
		log_error("passwd-file(%s,%s): the stored password is not a valid %s hash",
			  logname, req->rip, e->scheme);
		break;
	}
	request_fail_delayed(srv, req);
}

static void request_step(struct auth_server *srv, struct auth_request *req, enum sasl_step step,
			 const uint8_t *chal, size_t chal_len, const char *error)
{
	switch (step) {
	case SASL_STEP_CHALLENGE:
		ipc_msg_init(&srv->msg, IPC_AUTH_CHALLENGE, req->id);
		ipc_msg_add(&srv->msg, IPC_F_CHALLENGE, chal, chal_len);
		if (client_send(srv, req->client) < 0)
			client_error(srv, req->client, "sending a challenge failed");
		return;
	case SASL_STEP_FAIL: {
		char logname[300];
		log_info("%s(%s,%s): %s", sasl_mech_name(req->sasl.mech),
			 esc_user(req->sasl.user, logname, sizeof(logname)), req->rip, error);
		request_fail_delayed(srv, req);
		return;
	}
	case SASL_STEP_DONE:
		request_verify(srv, req);
		return;
	}
}

/* ---- login channels ---------------------------------------------------- */

static void client_begin(struct auth_server *srv, struct auth_client *c, const struct ipc_rx *rx)
{
	const struct ipc_fields *f = &rx->fields;
	const char *mech_name = ipc_str(f, IPC_F_MECH);
	if (mech_name == NULL) {
		client_error(srv, c, "AUTH_BEGIN without MECH");
		return;
	}
	if (request_find(c, rx->hdr.id) != NULL) {
		client_error(srv, c, "AUTH_BEGIN for a request id in use");
		return;
	}
	if (c->request_count >= MAX_REQUESTS_PER_CLIENT) {
		client_error(srv, c, "too many requests in flight");
		return;
	}
	struct auth_request *req = rg_calloc(1, sizeof(*req));
	req->client = c;
	req->id = rx->hdr.id;
	req->secured = ipc_has(f, IPC_F_SECURED);
	const char *rip = ipc_str(f, IPC_F_RIP);
	if (rip != NULL) {
		/* the key of the penalty table and part of log lines: keep it
		   printable */
		log_escape(rip, f->len[IPC_F_RIP], 40, req->rip, sizeof(req->rip));
	}
	req->cnext = c->requests;
	if (c->requests != NULL)
		c->requests->cprev = req;
	c->requests = req;
	c->request_count++;

	enum sasl_mech mech;
	if (!sasl_mech_parse(mech_name, &mech) || !sasl_mech_allowed(srv->mechanisms, mech)) {
		char esc[40];
		log_info("login %u: mechanism %s not allowed", c->pid,
			 log_escape(mech_name, f->len[IPC_F_MECH], 20, esc, sizeof(esc)));
		request_fail_now(srv, req, REASON_MECH, false, NULL);
		return;
	}
	if (srv->cfg.disable_plaintext_auth && !req->secured) {
		request_fail_now(srv, req, REASON_PLAINTEXT, false, NULL);
		return;
	}
	sasl_init(&req->sasl, mech);
	const uint8_t *chal = NULL;
	size_t chal_len = 0;
	const char *error = NULL;
	bool has_resp = ipc_has(f, IPC_F_RESP);
	enum sasl_step step = sasl_begin(&req->sasl, has_resp, has_resp ? f->val[IPC_F_RESP] : NULL,
					 has_resp ? f->len[IPC_F_RESP] : 0, &chal, &chal_len, &error);
	request_step(srv, req, step, chal, chal_len, error);
}

static void client_continue(struct auth_server *srv, struct auth_client *c,
			    const struct ipc_rx *rx)
{
	const struct ipc_fields *f = &rx->fields;
	if (!ipc_has(f, IPC_F_RESP)) {
		client_error(srv, c, "AUTH_CONTINUE without RESP");
		return;
	}
	struct auth_request *req = request_find(c, rx->hdr.id);
	if (req == NULL) {
		/* nothing to continue: say so rather than leave it hanging */
		ipc_msg_init(&srv->msg, IPC_AUTH_FAIL, rx->hdr.id);
		if (client_send(srv, c) < 0)
			client_error(srv, c, "sending a reply failed");
		return;
	}
	if (req->state != REQ_SASL) {
		client_error(srv, c, "AUTH_CONTINUE for a request being failed");
		return;
	}
	const uint8_t *chal = NULL;
	size_t chal_len = 0;
	const char *error = NULL;
	enum sasl_step step = sasl_continue(&req->sasl, f->val[IPC_F_RESP], f->len[IPC_F_RESP],
					    &chal, &chal_len, &error);
	request_step(srv, req, step, chal, chal_len, error);
}

/* One decoded message from a login channel (no fd with it). */
static void client_message(struct auth_server *srv, struct auth_client *c,
			   const struct ipc_rx *rx)
{
	switch (rx->hdr.type) {
	case IPC_AUTH_BEGIN:
		client_begin(srv, c, rx);
		break;
	case IPC_AUTH_CONTINUE:
		client_continue(srv, c, rx);
		break;
	case IPC_AUTH_ABORT: {
		/* may cross our reply: an unknown id is fine */
		struct auth_request *req = request_find(c, rx->hdr.id);
		if (req != NULL)
			request_free(srv, req);
		break;
	}
	default: {
		char why[64];
		snprintf(why, sizeof(why), "unexpected message %s", ipc_type_name(rx->hdr.type));
		client_error(srv, c, why);
		break;
	}
	}
}

static void client_input(struct auth_server *srv, struct auth_client *c)
{
	struct ipc_rx *rx = srv->rx;
	for (unsigned i = 0; i < MAX_MSGS_PER_WAKEUP && c->fd >= 0; i++) {
		const char *error = NULL;
		int ret = ipc_recv(c->fd, rx, &error);
		if (ret == -EAGAIN)
			return;
		if (ret == 0) {
			log_debug("login %u: channel closed", c->pid);
			client_close(srv, c);
			return;
		}
		if (ret == -EPROTO) {
			client_error(srv, c, error);
			return;
		}
		if (ret < 0) {
			client_error(srv, c, strerror(-ret));
			return;
		}
		if (rx->fd >= 0) {
			close(rx->fd);
			client_error(srv, c, "message with an fd");
		} else {
			client_message(srv, c, rx);
		}
		/* responses hold passwords */
		explicit_bzero(rx->buf, IPC_HDR_SIZE + rx->hdr.len);
	}
}

/* ---- the resolver child ------------------------------------------------ */

static struct auth_request *dns_request_find(struct auth_server *srv, uint32_t id)
{
	for (struct auth_client *c = srv->clients; c != NULL; c = c->next) {
		for (struct auth_request *r = c->requests; r != NULL; r = r->cnext) {
			if (r->state == REQ_DNS && r->dns_id == id)
				return r;
		}
	}
	return NULL;
}

/* The answer for a waiting request: on with the (re-read) passdb entry,
 * now with hostip, or a temporary failure. */
static void dns_result(struct auth_server *srv, const struct ipc_rx *rx)
{
	struct auth_request *req = dns_request_find(srv, rx->hdr.id);
	if (req == NULL)
		return; /* its client went away meanwhile */
	char logname[300];
	esc_user(req->sasl.user, logname, sizeof(logname));
	req->state = REQ_SASL;
	srv->dns_pending--;
	const char *ip = ipc_str(&rx->fields, IPC_F_HOST);
	if (ip == NULL || !is_ip(ip) || strlen(ip) >= sizeof(req->hostip)) {
		const char *why = ipc_str(&rx->fields, IPC_F_REASON);
		char esc[128];
		log_error("passwd-file(%s,%s): proxy host lookup failed: %s", logname, req->rip,
			  why != NULL ? log_escape(why, strlen(why), 100, esc, sizeof(esc)) : "no address");
		request_fail_now(srv, req, REASON_TEMP, true, req->sasl.user);
		return;
	}
	memcpy(req->hostip, ip, strlen(ip) + 1);
	const struct passwd_entry *e = srv->passdb != NULL ?
		passwd_file_lookup(srv->passdb, req->sasl.user) : NULL;
	if (e == NULL) {
		log_error("passwd-file(%s,%s): user gone during the proxy host lookup", logname,
			  req->rip);
		request_fail_now(srv, req, REASON_TEMP, true, req->sasl.user);
		return;
	}
	request_success(srv, req, e, logname);
}

/* the resolver died: nothing waiting will be answered */
static void dns_lost(struct auth_server *srv, const char *why)
{
	log_error("DNS resolver: %s: proxy hosts given by name fail from now on", why);
	if (epoll_ctl(srv->epfd, EPOLL_CTL_DEL, srv->dns_fd, NULL) < 0)
		log_error("epoll_ctl(DEL): %m");
	ipc_outq_clear(&srv->dns_outq);
	close(srv->dns_fd);
	srv->dns_fd = -1;
	/* failing one may close its client and every request with it: look
	 * again from the start each time */
	for (;;) {
		struct auth_request *r = NULL;
		for (struct auth_client *c = srv->clients; c != NULL && r == NULL; c = c->next) {
			for (r = c->requests; r != NULL && r->state != REQ_DNS; r = r->cnext)
				;
		}
		if (r == NULL)
			break;
		r->state = REQ_SASL;
		srv->dns_pending--;
		request_fail_now(srv, r, REASON_TEMP, true, r->sasl.user);
	}
}

/* EPOLLOUT: the lookups that waited */
static void dns_output(struct auth_server *srv)
{
	int ret = ipc_outq_epoll_flush(&srv->dns_outq, srv->epfd, srv->dns_fd, &srv->dns_src);
	if (ret < 0)
		dns_lost(srv, strerror(-ret));
}

static void dns_input(struct auth_server *srv)
{
	struct ipc_rx *rx = srv->rx;
	for (unsigned i = 0; i < MAX_MSGS_PER_WAKEUP && srv->dns_fd >= 0; i++) {
		const char *error = NULL;
		int ret = ipc_recv(srv->dns_fd, rx, &error);
		if (ret == -EAGAIN)
			return;
		if (ret <= 0 || rx->fd >= 0 || rx->hdr.type != IPC_DNS_RESULT) {
			if (ret > 0 && rx->fd >= 0)
				close(rx->fd);
			dns_lost(srv, ret == 0 ? "exited" : ret < 0 ? (error != NULL ? error :
					strerror(-ret)) : "unexpected message");
			return;
		}
		dns_result(srv, rx);
	}
}

void auth_server_set_dns(struct auth_server *srv, int fd)
{
	srv->dns_fd = fd;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &srv->dns_src };
	if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		log_fatal("epoll_ctl(ADD dns): %m");
}

/* ---- master channel ---------------------------------------------------- */

static void master_send(struct auth_server *srv)
{
	int ret = ipc_send(srv->master_fd, &srv->msg, -1);
	if (ret < 0)
		log_fatal("sending to master failed: %s", strerror(-ret));
}

struct auth_client *auth_server_login_add(struct auth_server *srv, int fd, uint32_t pid,
					  const char *service)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		log_fatal("fcntl(O_NONBLOCK) on a login channel: %m");
	struct auth_client *c = rg_calloc(1, sizeof(*c));
	c->src.type = SRC_CLIENT;
	c->fd = fd;
	c->pid = pid;
	if (service != NULL)
		log_escape(service, strlen(service), 8, c->service, sizeof(c->service));
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &c->src };
	if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		log_fatal("epoll_ctl(ADD): %m");
	c->next = srv->clients;
	if (srv->clients != NULL)
		srv->clients->prev = c;
	srv->clients = c;
	log_debug("login %u (%s): channel added", c->pid, c->service);
	return c;
}

static void master_new_client(struct auth_server *srv, struct ipc_rx *rx)
{
	if (rx->fd < 0)
		log_fatal("master sent AUTH_NEW_CLIENT without an fd");
	int fd = rx->fd;
	rx->fd = -1;
	(void)auth_server_login_add(srv, fd, rx->hdr.id, ipc_str(&rx->fields, IPC_F_SERVICE));
}

static void master_request(struct auth_server *srv, const struct ipc_rx *rx)
{
	const char *cookie = ipc_str(&rx->fields, IPC_F_COOKIE);
	unsigned long long pid;
	if (rx->fd >= 0 || cookie == NULL || !ipc_uint(&rx->fields, IPC_F_LOGIN_PID, &pid) ||
	    pid > UINT32_MAX)
		log_fatal("master sent a malformed AUTH_REQUEST");
	struct auth_user *u;
	enum cookie_result res = cookie_take(srv->cookies, cookie, (uint32_t)pid, now_ms(), &u);
	if (res != COOKIE_OK) {
		log_error("AUTH_REQUEST from master for login %llu: %s", pid, cookie_result_str(res));
		ipc_msg_init(&srv->msg, IPC_AUTH_FAIL, rx->hdr.id);
		ipc_msg_add_str(&srv->msg, IPC_F_REASON, cookie_result_str(res));
		master_send(srv);
		return;
	}
	ipc_msg_init(&srv->msg, IPC_AUTH_USER, rx->hdr.id);
	ipc_msg_add_str(&srv->msg, IPC_F_USER, u->user);
	ipc_msg_add_uint(&srv->msg, IPC_F_UID, u->uid);
	ipc_msg_add_uint(&srv->msg, IPC_F_GID, u->gid);
	ipc_msg_add_str(&srv->msg, IPC_F_HOME, u->home);
	ipc_msg_add_str(&srv->msg, IPC_F_MAIL, u->mail);
	if (u->extra[0] != '\0')
		ipc_msg_add_str(&srv->msg, IPC_F_EXTRA, u->extra);
	auth_user_free(u);
	master_send(srv);
}

/* false when master closed the channel */
static bool master_input(struct auth_server *srv)
{
	struct ipc_rx *rx = srv->rx;
	for (unsigned i = 0; i < MAX_MSGS_PER_WAKEUP; i++) {
		const char *error = NULL;
		int ret = ipc_recv(srv->master_fd, rx, &error);
		if (ret == -EAGAIN)
			return true;
		if (ret == 0)
			return false;
		if (ret == -EPROTO)
			log_fatal("malformed message from master: %s", error);
		if (ret < 0)
			log_fatal("master channel: %s", strerror(-ret));
		auth_server_master_message(srv, rx);
	}
	return true;
}

void auth_server_master_message(struct auth_server *srv, struct ipc_rx *rx)
{
	switch (rx->hdr.type) {
	case IPC_AUTH_NEW_CLIENT:
		master_new_client(srv, rx);
		break;
	case IPC_AUTH_REQUEST:
		master_request(srv, rx);
		break;
	case IPC_LOGIN_STATS_REQUEST: {
		char text[64];
		auth_stats_format(&srv->stats, text, sizeof(text));
		ipc_msg_init(&srv->msg, IPC_LOGIN_STATS, 0);
		ipc_msg_add_str(&srv->msg, IPC_F_STATS, text);
		master_send(srv);
		break;
	}
	default:
		log_fatal("unexpected message %s from master", ipc_type_name(rx->hdr.type));
	}
}

/* ---- in-memory entry points (tests, fuzzing) ---------------------------- */

bool auth_server_login_message(struct auth_server *srv, struct auth_client *c,
			       const struct ipc_rx *rx)
{
	if (c->fd < 0)
		return false;
	if (rx->fd >= 0)
		client_error(srv, c, "message with an fd");
	else
		client_message(srv, c, rx);
	return c->fd >= 0;
}

void auth_server_login_close(struct auth_server *srv, struct auth_client *c)
{
	client_close(srv, c);
}

static void free_dead(struct auth_server *srv)
{
	while (srv->dead != NULL) {
		struct auth_client *c = srv->dead;
		srv->dead = c->next;
		rg_free(c);
	}
}

void auth_server_tick(struct auth_server *srv)
{
	delay_run(srv);
	free_dead(srv);
}

/* ---- life cycle -------------------------------------------------------- */

struct auth_server *auth_server_new(const struct auth_config *cfg, int master_fd,
				    char **error_r)
{
	struct passwd_file *passdb = NULL, *userdb = NULL;
	struct passwd_args pargs, uargs;
	if (cfg->passdb_args != NULL && cfg->passdb_args[0] != '\0') {
		if (passwd_args_parse(cfg->passdb_args, &pargs, error_r) < 0)
			return NULL;
		passdb = passwd_file_load(&pargs, error_r);
		if (passdb == NULL) {
			passwd_args_clear(&pargs);
			return NULL;
		}
		userdb = passdb;
		if (cfg->userdb_args != NULL && cfg->userdb_args[0] != '\0') {
			if (passwd_args_parse(cfg->userdb_args, &uargs, error_r) < 0) {
				passwd_args_clear(&pargs);
				passwd_file_free(passdb);
				return NULL;
			}
			if (strcmp(uargs.path, pargs.path) != 0 || uargs.lowercase != pargs.lowercase) {
				userdb = passwd_file_load(&uargs, error_r);
				if (userdb == NULL) {
					passwd_args_clear(&pargs);
					passwd_args_clear(&uargs);
					passwd_file_free(passdb);
					return NULL;
				}
			}
			passwd_args_clear(&uargs);
		}
		passwd_args_clear(&pargs);
	}

	struct auth_server *srv = rg_calloc(1, sizeof(*srv));
	srv->mechanisms = rg_strdup(cfg->mechanisms != NULL ? cfg->mechanisms : "plain");
	srv->mail_location = rg_strdup(cfg->mail_location != NULL ? cfg->mail_location : "");
	srv->cfg = *cfg;
	srv->cfg.mechanisms = srv->mechanisms;
	srv->cfg.mail_location = srv->mail_location;
	srv->cfg.passdb_args = srv->cfg.userdb_args = NULL;
	srv->master_fd = master_fd;
	srv->passdb = passdb;
	srv->userdb = userdb;
	srv->cookies = cookie_table_new(COOKIE_MAX);
	srv->penalties = penalty_table_new(PENALTY_TABLE_MAX);
	srv->rx = rg_malloc(sizeof(*srv->rx));
	srv->master_src.type = SRC_MASTER;
	srv->timer_src.type = SRC_TIMER;
	srv->dns_src.type = SRC_DNS;
	srv->dns_fd = -1;
	if (passdb == NULL)
		log_warning("no passdb configured: every login fails");

	srv->epfd = epoll_create1(EPOLL_CLOEXEC);
	srv->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (srv->epfd < 0 || srv->timerfd < 0)
		log_fatal("epoll/timerfd: %m");
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
		int n = epoll_wait(srv->epfd, evs, 64, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		bool master_gone = false;
		for (int i = 0; i < n; i++) {
			struct ep_src *src = evs[i].data.ptr;
			switch (src->type) {
			case SRC_MASTER:
				if (!master_input(srv))
					master_gone = true;
				break;
			case SRC_TIMER:
				delay_run(srv);
				break;
			case SRC_DNS:
				if (srv->dns_fd >= 0 && (evs[i].events & EPOLLOUT) != 0)
					dns_output(srv);
				if (srv->dns_fd >= 0 && (evs[i].events & ~(uint32_t)EPOLLOUT) != 0)
					dns_input(srv);
				break;
			case SRC_CLIENT: {
				struct auth_client *c = (struct auth_client *)src;
				if (c->fd >= 0 && (evs[i].events & EPOLLOUT) != 0)
					client_output(srv, c);
				if (c->fd >= 0 && (evs[i].events & ~(uint32_t)EPOLLOUT) != 0)
					client_input(srv, c);
				break;
			}
			}
		}
		free_dead(srv);
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
		client_close(srv, srv->clients);
	free_dead(srv);
	if (srv->userdb != srv->passdb)
		passwd_file_free(srv->userdb);
	passwd_file_free(srv->passdb);
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
	rg_free(srv);
}
