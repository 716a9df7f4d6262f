#include "auth/auth-server.h"
#include "auth/auth-cache.h"
#include "auth/auth-chain.h"
#include "auth/auth-cookie.h"
#include "auth/auth-dns.h"
#include "auth/auth-loop.h"
#include "auth/auth-worker.h"
#include "auth/auth-penalty.h"
#include "auth/auth-mech.h"
#include "auth/auth-oauth2.h"
#include "auth/auth-sasl.h"
#include "auth/auth-scheme.h"

#include "lib/alloc.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/settings.h"
#include "lib/stats.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
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
#define REASON_MAX 256 /* bytes of a passdb's reason sent to the client, NUL included */

enum src_type { SRC_MASTER, SRC_TIMER, SRC_CLIENT, SRC_DNS };

struct ep_src {
	enum src_type type;
};

/* REQ_PASSDB / REQ_USERDB: waiting for the chain's callback (auth-chain.h);
 * a request whose client goes meanwhile becomes an orphan, freed by the
 * callback. REQ_DNS: credentials verified, waiting for the resolver (passdb
 * host is a DNS name); the SASL state (the password for the backend) is
 * kept */
enum req_state { REQ_SASL, REQ_DELAYED, REQ_DNS, REQ_PASSDB, REQ_USERDB };
struct auth_server;

struct auth_client;

struct auth_request {
	struct auth_request *cprev, *cnext; /* the channel's requests */
	struct auth_request *dprev, *dnext; /* delay queue, by due_ms */
	struct auth_client *client; /* NULL once an orphan */
	struct auth_server *srv;
	uint32_t id;
	enum req_state state;
	bool secured;
	bool orphan;
	bool penalty_counted; /* the failure is in the penalty table already */
	/* auth_ssl_username_from_cert and a valid client certificate naming
	 * someone: that name replaces the one the mechanism gives */
	char *cert_user;
	int64_t due_ms;
	char rip[PENALTY_IP_MAX + 1];
	char *fail_user;   /* sent with the delayed AUTH_FAIL */
	uint32_t dns_id;   /* REQ_DNS: the lookup's id */
	char hostip[64];   /* the resolved passdb host, added as hostip */
	struct sasl_state sasl;
	struct auth_mech *mech;    /* the mechanisms beyond PLAIN/LOGIN (auth-mech.h) */
	/* OAUTHBEARER/XOAUTH2: a copy of the bearer token, the "password" the
	 * passdb chain checks (an introspecting passdb answers later, when
	 * the client's message is gone) and the one a proxy forwards, as
	 * Dovecot's mech_password; wiped on free */
	uint8_t *token;
	size_t token_len;
	bool user_from_token; /* OAUTHBEARER without authzid: the passdb names the user */
	struct auth_db_request db; /* what the passdb/userdb chain works on */
};

static struct auth_request *request_of(struct auth_db_request *db)
{
	return (struct auth_request *)(void *)((char *)db - offsetof(struct auth_request, db));
}

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
	struct auth_chain *chain;
	struct auth_worker_pool *workers; /* NULL: blocking drivers run inline */
	struct auth_cache *cache;         /* NULL: auth_cache_size = 0 */
	struct auth_username_rules rules;
	char *username_format, *username_chars, *username_translation, *default_realm;
	char *master_user_separator;
	struct auth_mech_params mech_params; /* login_pid set per request */
	char hostname[128];
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
	if (req->state == REQ_PASSDB || req->state == REQ_USERDB) {
		/* a driver still holds it: its callback frees it */
		req->orphan = true;
		req->client = NULL;
		req->cprev = req->cnext = NULL;
		return;
	}
	request_destroy(req);
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
		if (req->db.fail_reason != NULL) {
			/* a failed passdb's reason (PAM failure_show_msg): shown
			 * to the client, so bounded (the login process also
			 * replaces control characters) */
			char rbuf[REASON_MAX];
			snprintf(rbuf, sizeof(rbuf), "%s", req->db.fail_reason);
			ipc_msg_add_str(&srv->msg, IPC_F_REASON, rbuf);
		}
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

static const char *pfield(const struct auth_request *req, const char *key)
{
	return auth_fields_get(&req->db.passdb_fields, key);
}

static bool parse_id(const char *v, uint32_t *id_r)
{
	char *end;
	if (v == NULL || *v < '0' || *v > '9')
		return false;
	unsigned long n = strtoul(v, &end, 10);
	if (*end != '\0' || n >= UINT32_MAX)
		return false;
	*id_r = (uint32_t)n;
	return true;
}

/* The userdb result (req->db.userdb_fields) for the cookie. NULL with a
 * logged error when it lacks what a worker needs. */
static struct auth_user *user_build(struct auth_server *srv, struct auth_request *req,
				    const char *logname)
{
	const struct auth_fields *f = &req->db.userdb_fields;
	uint32_t uid, gid;
	if (!parse_id(auth_fields_get(f, "uid"), &uid) ||
	    !parse_id(auth_fields_get(f, "gid"), &gid)) {
		log_error("%s(%s): userdb lookup: no valid uid/gid for the user",
			  req->db.db_name != NULL ? req->db.db_name : "userdb", logname);
		return NULL;
	}
	struct auth_user *u = rg_calloc(1, sizeof(*u));
	u->user = rg_strdup(req->db.user);
	u->uid = uid;
	u->gid = gid;
	const char *v = auth_fields_get(f, "home");
	u->home = rg_strdup(v != NULL ? v : "");
	v = auth_fields_get(f, "mail");
	u->mail = rg_strdup(v != NULL ? v : srv->cfg.mail_location);
	u->extra = rg_strdup("");
	for (unsigned i = 0; i < f->count; i++) {
		const char *k = f->kv[2 * i], *val = f->kv[2 * i + 1];
		if (strcmp(k, "uid") == 0 || strcmp(k, "gid") == 0 || strcmp(k, "home") == 0 ||
		    strcmp(k, "mail") == 0)
			continue;
		char *item = val[0] != '\0' ? rg_strdup_printf("%s=%s", k, val) : rg_strdup(k);
		extra_append(&u->extra, item);
		rg_free(item);
	}
	return u;
}

/* passdb extra fields for the login process: not pass (it travels as
 * F_PASS) */
static char *passdb_extra(const struct auth_request *req)
{
	struct auth_fields out;
	memset(&out, 0, sizeof(out));
	const struct auth_fields *f = &req->db.passdb_fields;
	for (unsigned i = 0; i < f->count; i++) {
		if (strcmp(f->kv[2 * i], "pass") != 0)
			auth_fields_set(&out, f->kv[2 * i], f->kv[2 * i + 1]);
	}
	if (req->hostip[0] != '\0')
		auth_fields_set(&out, "hostip", req->hostip);
	char *extra = auth_fields_export(&out);
	auth_fields_clear(&out);
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
static bool proxy_resolve(struct auth_server *srv, struct auth_request *req, const char *logname)
{
	const char *host = pfield(req, "host");
	const char *hostip = pfield(req, "hostip");
	if (req->hostip[0] != '\0' || host == NULL || host[0] == '\0' || is_ip(host) ||
	    (hostip != NULL && hostip[0] != '\0'))
		return false;
	if (strlen(host) > 253 || srv->dns_fd < 0) {
		log_error("%s(%s,%s): proxy host %s cannot be resolved", req->db.db_name, logname,
			  req->rip, srv->dns_fd < 0 ? "(no resolver)" : "(name too long)");
		request_fail_now(srv, req, REASON_TEMP, true, req->db.user);
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
		log_error("%s(%s,%s): proxy host lookup: sending to the resolver: %s",
			  req->db.db_name, logname, req->rip, strerror(-ret));
		request_fail_now(srv, req, REASON_TEMP, true, req->db.user);
		return true;
	}
	req->dns_id = srv->dns_next;
	req->state = REQ_DNS;
	srv->dns_pending++;
	log_debug("%s(%s,%s): resolving proxy host", req->db.db_name, logname, req->rip);
	return true;
}

/* The backend password: the passdb's pass field (a master user's password),
 * else what the client gave (as Dovecot's mech_password): PLAIN/LOGIN's
 * password, OAUTHBEARER/XOAUTH2's token. SCRAM, CRAM-MD5, APOP and EXTERNAL give
 * none: then no password goes (never an empty one) and the login process
 * refuses to proxy ("no password for the backend"), as Dovecot's login
 * does ("proxy: password not given"). NULL: none. */
static const uint8_t *proxy_pass(const struct auth_request *req, size_t *len_r)
{
	const char *pass = pfield(req, "pass");
	if (pass != NULL) {
		*len_r = strlen(pass);
		return (const uint8_t *)pass;
	}
	/* EXTERNAL's "token" is empty: no password to forward */
	if (req->token != NULL && req->token_len > 0) {
		*len_r = req->token_len;
		return req->token;
	}
	if (req->mech == NULL && req->sasl.pass_len > 0) {
		*len_r = req->sasl.pass_len;
		return req->sasl.pass;
	}
	*len_r = 0;
	return NULL;
}

static size_t proxy_pass_len(const struct auth_request *req)
{
	size_t len;
	(void)proxy_pass(req, &len);
	return len + 8;
}

static void proxy_add_pass(struct auth_server *srv, struct auth_request *req)
{
	size_t len;
	const uint8_t *pass = proxy_pass(req, &len);
	if (pass != NULL) {
		ipc_msg_add(&srv->msg, IPC_F_PASS, pass, len);
		return;
	}
	char logname[300];
	log_info("%s(%s,%s): proxy: no password for the backend: %s gives no plaintext "
		 "password and the passdb entry has no pass= (set pass=, e.g. a master "
		 "user's password)", req->db.db_name, esc_user(req->db.user, logname,
							      sizeof(logname)),
		 req->rip, sasl_mech_name(req->sasl.mech));
}

/* A user whose passdb entry says proxy: AUTH_OK with the extra fields and
 * the password, no userdb lookup and no cookie (master never sees it). */
static void request_proxy(struct auth_server *srv, struct auth_request *req, const char *logname)
{
	if (proxy_resolve(srv, req, logname))
		return;
	char *extra = passdb_extra(req);
	ipc_msg_init(&srv->msg, IPC_AUTH_OK, req->id);
	if (strlen(req->db.user) + strlen(extra) + proxy_pass_len(req) + 3 * 8 >
	    ipc_msg_room(&srv->msg)) {
		log_error("%s(%s): fields too long for IPC", req->db.db_name, logname);
		rg_free(extra);
		request_fail_now(srv, req, REASON_TEMP, true, req->db.user);
		return;
	}
	ipc_msg_add_str(&srv->msg, IPC_F_USER, req->db.user);
	ipc_msg_add_str(&srv->msg, IPC_F_EXTRA, extra);
	rg_free(extra);
	proxy_add_pass(srv, req);
	log_debug("%s(%s,%s): authenticated, proxied", req->db.db_name, logname, req->rip);
	request_reply(srv, req);
}

static void request_userdb_done(enum userdb_result result, struct auth_db_request *dbreq);

/* The passdb chain said yes (or the proxy host got resolved): nologin,
 * proxy, else on to the userdb chain. */
static void request_success(struct auth_server *srv, struct auth_request *req)
{
	char logname[300];
	esc_user(req->db.user, logname, sizeof(logname));
	if (req->rip[0] != '\0')
		penalty_reset(srv->penalties, req->rip);
	if (pfield(req, "nologin") == NULL && pfield(req, "proxy_maybe") != NULL &&
	    proxy_resolve(srv, req, logname))
		return;

	if (pfield(req, "nologin") != NULL) {
		const char *reason = pfield(req, "reason");
		char rbuf[REASON_MAX];
		/* shown to the client: bounded, and a message must never overflow */
		snprintf(rbuf, sizeof(rbuf), "%s", reason != NULL && reason[0] != '\0' ?
			 reason : REASON_NOLOGIN);
		log_info("%s(%s,%s): login disabled (nologin)", req->db.db_name, logname, req->rip);
		request_fail_now(srv, req, rbuf, false, req->db.user);
		return;
	}

	/* Dovecot's proxy fields: the login process logs in to host itself.
	 * proxy: no userdb lookup, no cookie. proxy_maybe: both, since the
	 * login process may find that host is itself and hand off locally. */
	if (pfield(req, "proxy") != NULL && pfield(req, "proxy_maybe") == NULL) {
		request_proxy(srv, req, logname);
		return;
	}
	req->state = REQ_USERDB;
	auth_chain_userdb_lookup(srv->chain, &req->db, request_userdb_done);
}

/* A chain callback arrived: the request, or NULL when its client went
 * meanwhile (the orphan is freed here). */
static struct auth_request *request_resume(struct auth_db_request *dbreq)
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
	struct auth_request *req = request_resume(dbreq);
	if (req == NULL)
		return;
	struct auth_server *srv = req->srv;
	char logname[300];
	esc_user(req->db.user, logname, sizeof(logname));
	if (result == USERDB_RESULT_USER_UNKNOWN) {
		/* a passdb knows the user, no userdb does (PAM, but not in
		 * /etc/passwd): a failed login, as Dovecot's */
		log_info("userdb(%s,%s): user not found in any userdb", logname, req->rip);
		request_fail_delayed(srv, req);
		return;
	}
	if (result != USERDB_RESULT_OK) {
		request_fail_now(srv, req, REASON_TEMP, true, req->db.user);
		return;
	}
	struct auth_user *u = user_build(srv, req, logname);
	if (u == NULL) {
		request_fail_now(srv, req, REASON_TEMP, true, req->db.user);
		return;
	}
	bool proxy_maybe = pfield(req, "proxy_maybe") != NULL;
	/* passdb extra fields travel with AUTH_OK (proxy, host, …) */
	char *extra = passdb_extra(req);
	size_t need = strlen(req->db.user) + COOKIE_HEX_LEN + strlen(extra) + 3 * 8 +
		      proxy_pass_len(req);
	ipc_msg_init(&srv->msg, IPC_AUTH_OK, req->id);
	if (need > ipc_msg_room(&srv->msg) ||
	    strlen(u->user) + strlen(u->home) + strlen(u->mail) + strlen(u->extra) + 128 >
	    IPC_MAX_PAYLOAD) {
		log_error("%s(%s): fields too long for IPC", req->db.db_name, logname);
		auth_user_free(u);
		rg_free(extra);
		request_fail_now(srv, req, REASON_TEMP, true, req->db.user);
		return;
	}
	char cookie[COOKIE_HEX_LEN + 1];
	int ret = cookie_add(srv->cookies, req->client->pid, u, now_ms(), cookie);
	if (ret < 0) {
		log_error("getrandom() failed: %s", strerror(-ret));
		auth_user_free(u);
		rg_free(extra);
		request_fail_now(srv, req, REASON_TEMP, true, req->db.user);
		return;
	}
	ipc_msg_init(&srv->msg, IPC_AUTH_OK, req->id);
	ipc_msg_add_str(&srv->msg, IPC_F_USER, req->db.user);
	ipc_msg_add_str(&srv->msg, IPC_F_COOKIE, cookie);
	if (extra[0] != '\0')
		ipc_msg_add_str(&srv->msg, IPC_F_EXTRA, extra);
	rg_free(extra);
	if (proxy_maybe)
		proxy_add_pass(srv, req);
	explicit_bzero(cookie, sizeof(cookie));
	log_debug("%s(%s,%s): authenticated", req->db.db_name, logname, req->rip);
	request_reply(srv, req);
}

static void request_passdb_done(enum passdb_result result, struct auth_db_request *dbreq)
{
	struct auth_request *req = request_resume(dbreq);
	if (req == NULL)
		return;
	struct auth_server *srv = req->srv;
	switch (result) {
	case PASSDB_RESULT_OK:
		/* request_success() may need the password (proxy); the
		 * reply frees the request, which wipes it */
		request_success(srv, req);
		return;
	case PASSDB_RESULT_INTERNAL_FAILURE:
		request_fail_now(srv, req, REASON_TEMP, true, req->sasl.user);
		return;
	default:
		request_fail_delayed(srv, req);
		return;
	}
}

/* req->db for the name the client gave (login_name): the master user
 * separator and the name rules. false: refused (logged, failure queued). */
static bool request_db_prepare(struct auth_server *srv, struct auth_request *req,
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
		request_fail_delayed(srv, req);
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
	if (!request_db_prepare(srv, req, req->sasl.user))
		return;
	req->state = REQ_PASSDB;
	auth_chain_verify_plain(srv->chain, &req->db, req->sasl.pass, req->sasl.pass_len,
				request_passdb_done);
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

/* ---- the mechanisms of auth-mech.h -------------------------------------- */

static void mech_act(struct auth_server *srv, struct auth_request *req,
		     const struct auth_mech_out *out);

/* A chain callback for a mechanism's request: the request to go on with,
 * or NULL when it is gone or failed temporarily (answered here). */
static struct auth_request *request_mech_resume(enum passdb_result result,
						struct auth_db_request *dbreq)
{
	struct auth_request *req = request_resume(dbreq);
	if (req != NULL && result == PASSDB_RESULT_INTERNAL_FAILURE) {
		request_fail_now(req->srv, req, REASON_TEMP, true, req->db.user);
		return NULL;
	}
	return req;
}

static void request_creds_done(enum passdb_result result, const char *scheme,
			       const uint8_t *cred, size_t size, struct auth_db_request *dbreq)
{
	struct auth_request *req = request_mech_resume(result, dbreq);
	if (req == NULL)
		return;
	struct auth_mech_out out;
	auth_mech_credentials(req->mech, result == PASSDB_RESULT_OK, scheme, cred, size, &out);
	mech_act(req->srv, req, &out);
}

/* OAUTHBEARER without authzid: the passdb set the user from the token;
 * the name rules (auth_username_format, ...) apply to it as to a name a
 * client gives. false: refused (logged, failure queued). */
static bool token_user_fix(struct auth_server *srv, struct auth_request *req)
{
	char *user = NULL, *error = NULL;
	char logname[300];
	if (req->db.user[0] == '\0') {
		log_info("%s(?,%s): the passdb named no user for the token",
			 sasl_mech_name(req->sasl.mech), req->rip);
		request_fail_delayed(srv, req);
		return false;
	}
	if (auth_username_fix(&srv->rules, &req->db, req->db.user, &user, &error) < 0) {
		log_info("auth(%s,%s): %s", esc_user(req->db.user, logname, sizeof(logname)),
			 req->rip, error);
		rg_free(error);
		if (req->fail_user == NULL)
			req->fail_user = rg_strdup(req->db.user);
		request_fail_delayed(srv, req);
		return false;
	}
	rg_free(req->db.user);
	req->db.user = user;
	return true;
}

static void request_token_done(enum passdb_result result, struct auth_db_request *dbreq)
{
	struct auth_request *req = request_mech_resume(result, dbreq);
	if (req == NULL)
		return;
	struct auth_server *srv = req->srv;
	if (result == PASSDB_RESULT_OK && req->user_from_token && !token_user_fix(srv, req))
		return;
	if (result != PASSDB_RESULT_OK && req->rip[0] != '\0' && !req->penalty_counted) {
		/* the RFC 7628 error round trip comes first: a client that
		   hangs up then must not escape the penalty */
		penalty_fail(srv->penalties, req->rip, now_ms());
		req->penalty_counted = true;
	}
	struct auth_mech_out out;
	auth_mech_verified(req->mech, result == PASSDB_RESULT_OK, &out);
	mech_act(srv, req, &out);
}

static void mech_act(struct auth_server *srv, struct auth_request *req,
		     const struct auth_mech_out *out)
{
	switch (out->action) {
	case AUTH_MECH_CHALLENGE:
		request_step(srv, req, SASL_STEP_CHALLENGE, out->data, out->len, NULL);
		return;
	case AUTH_MECH_LOOKUP:
		if (!request_db_prepare(srv, req, out->user))
			return;
		req->state = REQ_PASSDB;
		auth_chain_lookup_credentials(srv->chain, &req->db, out->scheme, request_creds_done);
		return;
	case AUTH_MECH_VERIFY:
		/* OAUTHBEARER without an authzid (RFC 7628: the gs2-header's
		   a= is optional): the passdb takes the user from the token;
		   the name rules apply to that name afterwards */
		req->user_from_token = out->user[0] == '\0';
		if (req->user_from_token) {
			auth_db_request_clear(&req->db);
			auth_db_request_init(&req->db, "");
			req->db.service = req->client->service;
			req->db.mech = sasl_mech_name(req->sasl.mech);
			snprintf(req->db.rip, sizeof(req->db.rip), "%s", req->rip);
			req->db.secured = req->secured;
		} else if (!request_db_prepare(srv, req, out->user)) {
			return;
		}
		if (req->token != NULL) {
			explicit_bzero(req->token, req->token_len);
			rg_free(req->token);
		}
		req->token = rg_malloc(out->len + 1);
		memcpy(req->token, out->data, out->len);
		req->token[out->len] = '\0';
		req->token_len = out->len;
		req->state = REQ_PASSDB;
		auth_chain_verify_plain(srv->chain, &req->db, req->token, req->token_len,
					request_token_done);
		return;
	case AUTH_MECH_SUCCESS:
		request_success(srv, req);
		return;
	case AUTH_MECH_FAIL: {
		char logname[300];
		log_info("%s(%s,%s): %s", sasl_mech_name(req->sasl.mech),
			 esc_user(out->user, logname, sizeof(logname)), req->rip, out->error);
		if (out->user != NULL && req->fail_user == NULL)
			req->fail_user = rg_strdup(out->user);
		auth_mech_free(&req->mech);
		request_fail_delayed(srv, req);
		return;
	}
	}
}

/* OAuth2 bearer tokens travel like passwords (Dovecot's MECH_SEC_PLAINTEXT) */
static bool mech_is_plaintext(enum sasl_mech mech)
{
	return mech == SASL_MECH_PLAIN || mech == SASL_MECH_LOGIN ||
	       mech == SASL_MECH_OAUTHBEARER || mech == SASL_MECH_XOAUTH2;
}

/* ---- login channels ---------------------------------------------------- */

/* The client's TLS certificate as the login process saw it: with
 * auth_ssl_require_client_cert none means a failed login (Dovecot: "Client
 * didn't present valid SSL certificate"); with auth_ssl_username_from_cert
 * its name is the user. false: failed (answered after the delay). */
static bool request_client_cert(struct auth_server *srv, struct auth_request *req,
				const struct ipc_fields *f)
{
	bool valid = ipc_has(f, IPC_F_CERT_VALID);
	if (srv->cfg.ssl_require_client_cert && !valid) {
		log_info("%s(?,%s): client didn't present a valid SSL certificate",
			 sasl_mech_name(req->sasl.mech), req->rip);
		request_fail_delayed(srv, req);
		return false;
	}
	const char *name = valid && srv->cfg.ssl_username_from_cert ?
				   ipc_str(f, IPC_F_CERT_USER) : NULL;
	if (name == NULL || name[0] == '\0')
		return true;
	/* the certificate's text: a name must be a name */
	size_t len = f->len[IPC_F_CERT_USER];
	if (len > SASL_MAX_USER || strlen(name) != len ||
	    !sasl_name_valid((const uint8_t *)name, len)) {
		char esc[80];
		log_info("%s(?,%s): the client certificate's user name is not valid: %s",
			 sasl_mech_name(req->sasl.mech), req->rip,
			 log_escape(name, len, 40, esc, sizeof(esc)));
		request_fail_delayed(srv, req);
		return false;
	}
	req->cert_user = rg_strdup(name);
	return true;
}

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
	req->srv = srv;
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
	if (srv->cfg.disable_plaintext_auth && !req->secured && mech_is_plaintext(mech)) {
		request_fail_now(srv, req, REASON_PLAINTEXT, false, NULL);
		return;
	}
	sasl_init(&req->sasl, mech);
	if (!request_client_cert(srv, req, f))
		return;
	bool has_resp = ipc_has(f, IPC_F_RESP);
	if (auth_mech_handles(mech)) {
		struct auth_mech_params params = srv->mech_params;
		params.login_pid = c->pid;
		params.cert_user = req->cert_user;
		if (ipc_has(f, IPC_F_CB_TYPE) && ipc_has(f, IPC_F_CB_DATA)) {
			params.cb_type = ipc_str(f, IPC_F_CB_TYPE);
			params.cb_data = f->val[IPC_F_CB_DATA];
			params.cb_len = f->len[IPC_F_CB_DATA];
		}
		enum sasl_mech plus = mech == SASL_MECH_SCRAM_SHA1 ? SASL_MECH_SCRAM_SHA1_PLUS
								   : SASL_MECH_SCRAM_SHA256_PLUS;
		params.plus_offered = ipc_has(f, IPC_F_TLS) && sasl_mech_allowed(srv->mechanisms, plus);
		req->mech = auth_mech_new(mech, &params);
		struct auth_mech_out out;
		auth_mech_begin(req->mech, has_resp, has_resp ? f->val[IPC_F_RESP] : NULL,
				has_resp ? f->len[IPC_F_RESP] : 0, &out);
		mech_act(srv, req, &out);
		return;
	}
	const uint8_t *chal = NULL;
	size_t chal_len = 0;
	const char *error = NULL;
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
	if (req->mech != NULL) {
		struct auth_mech_out out;
		auth_mech_continue(req->mech, f->val[IPC_F_RESP], f->len[IPC_F_RESP], &out);
		mech_act(srv, req, &out);
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
	esc_user(req->db.user, logname, sizeof(logname));
	req->state = REQ_SASL;
	srv->dns_pending--;
	const char *ip = ipc_str(&rx->fields, IPC_F_HOST);
	if (ip == NULL || !is_ip(ip) || strlen(ip) >= sizeof(req->hostip)) {
		const char *why = ipc_str(&rx->fields, IPC_F_REASON);
		char esc[128];
		log_error("%s(%s,%s): proxy host lookup failed: %s", req->db.db_name, logname,
			  req->rip,
			  why != NULL ? log_escape(why, strlen(why), 100, esc, sizeof(esc)) : "no address");
		request_fail_now(srv, req, REASON_TEMP, true, req->db.user);
		return;
	}
	memcpy(req->hostip, ip, strlen(ip) + 1);
	request_success(srv, req);
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

void auth_server_set_workers(struct auth_server *srv, int spawner_fd, unsigned max_count,
			     unsigned timeout_ms)
{
	srv->workers = auth_worker_pool_new(spawner_fd, max_count, timeout_ms);
	auth_worker_pool_attach(srv->workers, srv->chain);
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
	case IPC_AUTH_CACHE_FLUSH: {
		/* `ringgate auth flush [USER...]`, or a reload that changed a
		 * passdb/userdb: F_USER = space-separated names, none = all */
		const char *users = ipc_str(&rx->fields, IPC_F_USER);
		char *copy = rg_strdup(users != NULL ? users : "");
		const char *list[64];
		unsigned n = 0;
		for (char *save = NULL, *u = strtok_r(copy, " ", &save); u != NULL && n < 64;
		     u = strtok_r(NULL, " ", &save))
			list[n++] = u;
		unsigned dropped = auth_cache_flush(srv->cache, list, n);
		log_info("auth cache flushed%s: %u entries", n > 0 ? " for the named users" : "",
			 dropped);
		rg_free(copy);
		break;
	}
	case IPC_LOGIN_STATS_REQUEST: {
		char text[160];
		uint64_t hits, misses;
		auth_chain_cache_counts(srv->chain, &hits, &misses);
		srv->stats.v[AUTH_STAT_CACHE_HITS] = hits;
		srv->stats.v[AUTH_STAT_CACHE_MISSES] = misses;
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
		auth_loop_run_timeouts();
		free_dead(srv);
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
		client_close(srv, srv->clients);
	free_dead(srv);
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
