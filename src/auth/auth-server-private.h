/* auth-server-private.h — shared by the auth-server*.c files only: the
 * event loop's state (struct auth_server), a login process's channel
 * (struct auth_client) and one SASL exchange (struct auth_request).
 *
 * auth-server.c: requests, the delay queue, the passdb/userdb chain's
 * callbacks, the loop's life cycle; auth-server-reply.c: what a
 * successful request hands on (the user for master, proxy fields);
 * auth-server-mech.c: the mechanisms of auth-mech.h; auth-server-login.c:
 * login channels; auth-server-dns.c: the resolver child's channel;
 * auth-server-master.c: master's channel. */
#ifndef RG_AUTH_SERVER_PRIVATE_H
#define RG_AUTH_SERVER_PRIVATE_H

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

static inline struct auth_request *request_of(struct auth_db_request *db)
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

static inline int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline const char *esc_user(const char *user, char *buf, size_t size)
{
	if (user == NULL || user[0] == '\0')
		return "?";
	return log_escape(user, strlen(user), 64, buf, size);
}

/* auth-server.c: requests, the delay queue, the chain's callbacks */
struct auth_request *asrv_request_find(struct auth_client *c, uint32_t id);
void asrv_request_free(struct auth_server *srv, struct auth_request *req);
void asrv_request_reply(struct auth_server *srv, struct auth_request *req);
void asrv_request_fail_now(struct auth_server *srv, struct auth_request *req,
			   const char *reason, bool temp, const char *user);
void asrv_request_fail_delayed(struct auth_server *srv, struct auth_request *req);
void asrv_request_success(struct auth_server *srv, struct auth_request *req);
struct auth_request *asrv_request_resume(struct auth_db_request *dbreq);
bool asrv_request_db_prepare(struct auth_server *srv, struct auth_request *req,
			     const char *login_name);
void asrv_request_step(struct auth_server *srv, struct auth_request *req, enum sasl_step step,
		       const uint8_t *chal, size_t chal_len, const char *error);
void asrv_delay_run(struct auth_server *srv);
void asrv_client_close(struct auth_server *srv, struct auth_client *c);
void asrv_client_error(struct auth_server *srv, struct auth_client *c, const char *error);
int asrv_client_send(struct auth_server *srv, struct auth_client *c);
void asrv_client_output(struct auth_server *srv, struct auth_client *c);
void asrv_free_dead(struct auth_server *srv);

/* auth-server-reply.c: what a successful request hands on */
const char *asrv_pfield(const struct auth_request *req, const char *key);
struct auth_user *asrv_user_build(struct auth_server *srv, struct auth_request *req,
				  const char *logname);
char *asrv_passdb_extra(const struct auth_request *req);
bool asrv_is_ip(const char *s);
bool asrv_proxy_resolve(struct auth_server *srv, struct auth_request *req, const char *logname);
size_t asrv_proxy_pass_len(const struct auth_request *req);
void asrv_proxy_add_pass(struct auth_server *srv, struct auth_request *req);
void asrv_request_proxy(struct auth_server *srv, struct auth_request *req, const char *logname);

/* auth-server-mech.c */
void asrv_mech_act(struct auth_server *srv, struct auth_request *req,
		   const struct auth_mech_out *out);
bool asrv_mech_is_plaintext(enum sasl_mech mech);

/* auth-server-login.c */
void asrv_client_message(struct auth_server *srv, struct auth_client *c, const struct ipc_rx *rx);
void asrv_client_input(struct auth_server *srv, struct auth_client *c);

/* auth-server-dns.c */
void asrv_dns_output(struct auth_server *srv);
void asrv_dns_input(struct auth_server *srv);

/* auth-server-master.c */
bool asrv_master_input(struct auth_server *srv);

#endif
