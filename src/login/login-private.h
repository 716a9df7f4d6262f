/* login-private.h — what the files of a login process's connection layer
 * (login-conn.h is its interface to login-main.c) share: the connection and
 * its phase objects, the process state, and the functions one file calls in
 * another. Not for use outside src/login.
 *
 * struct conn holds the lifecycle (state, flags, fd, slot, addresses, the
 * lists, the session id) and a pointer per phase object: the protocol
 * core's session, the output queue, the TLS engine, the PROXY header parser,
 * the access check (login-access.c), the auth phase (login-auth.c: request
 * id, attempts, mechanism, user), the hand-off (login-master.c), the backend
 * dialogue, the relay; each is allocated when its phase starts and freed
 * when it ends, not when the connection closes. */
#ifndef RG_LOGIN_PRIVATE_H
#define RG_LOGIN_PRIVATE_H

#include "login/login-conn.h"
#include "lib/access-proto.h"
#include "lib/alloc.h"
#include "lib/base64.h"
#include "lib/ipc.h"
#include "lib/iplimit.h"
#include "lib/log.h"
#include "lib/stats.h"
#include "proxy/proxy-backend.h"
#include "proxy/proxy-outq.h"
#include "proxy/proxy-protocol.h"
#include "proxy/proxy-pump.h"
#include "ring/ring.h"
#include "tls/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* A client's unsent output beyond this means it does not read: pre-auth
 * output is a few lines, so such a client is disconnected. */
#define CONN_OUT_MAX (16 * 1024)
/* how long a closing connection may take to flush, and shutdown as a whole */
#define CONN_FLUSH_SECS 2
#define SHUTDOWN_SECS 2
/* request ids sent to auth and master: slot in the low bits, a sequence
 * number above, so a reply for a reused slot or an older request is
 * recognised */
#define REQ_SLOT_BITS 20
#define REQ_SLOT_MASK ((1u << REQ_SLOT_BITS) - 1)
#define SESSION_RAW 9 /* 12 base64 chars */
#define TLS_READ_CHUNK 16384

enum conn_state {
	CONN_PRELOGIN,		/* reading commands (or the TLS handshake) */
	CONN_AUTHENTICATING,	/* a request is at auth */
	CONN_HANDOFF,		/* logged in: draining reads, then at master */
	CONN_BACKEND,		/* logged in, proxied: connecting/logging in to the backend */
	CONN_PROXY,		/* logged in, relayed (TLS to its worker, or to its backend):
				 * the pump has its fd and slot */
	CONN_CLOSING,		/* flushing output, then waiting for the ring */
};

extern const char *const conn_state_names[];

enum conn_flag {
	CF_RECV = 1 << 0,		/* a multishot receive is armed */
	CF_SEND = 1 << 1,		/* a send is in flight */
	CF_RECV_CANCELLED = 1 << 2,
	CF_SEND_LAST = 1 << 3,		/* ... with the last words (ring_send_last) */
	CF_HANDOFF_SENT = 1 << 4,	/* LOGIN_HANDOFF is at master */
	CF_FORCE = 1 << 5,		/* closing without flushing */
	CF_TEMPFAIL = 1 << 6,		/* deferred: answer the auth request TEMPFAIL */
	CF_DEFERRED = 1 << 7,		/* on the deferred list */
	CF_SECURED = 1 << 8,
	CF_LOGGED = 1 << 9,		/* the end of this client is logged */
	CF_TLS = 1 << 10,		/* the client talks TLS (implicit, or after STARTTLS) */
	CF_SEND_TLS = 1 << 11,		/* the send in flight is from the TLS engine */
	CF_HAPROXY = 1 << 13,		/* reading the PROXY header (haproxy = yes) */
	CF_HAPROXY_TLS = 1 << 14,	/* ... on an implicit TLS listener: TLS follows it */
	CF_HAPROXY_SSL = 1 << 15,	/* the header says the client spoke TLS to the proxy */
	CF_RETIRED = 1 << 16,		/* its slot is retired: freed once the ring is done */
	CF_RELAY = 1 << 17,		/* its fd, slot, engine and output are the pump's */
	CF_RELAY_BACKEND = 1 << 18,	/* ... relayed to a backend (passdb proxy) */
};

/* Only from AUTH_OK to the end of the hand-off. */
struct conn_handoff {
	char cookie[33];
	char *tag;
	int proxy_fd;		/* TLS: our end of the worker's socketpair, else -1 */
	uint16_t core_len;	/* preread[0..core_len) came from the core */
	uint16_t sent_len;	/* preread[0..sent_len) went to master */
	uint16_t preread_len;	/* the rest arrived while the recv was cancelled */
	uint32_t req_id;	/* LOGIN_HANDOFF at master; 0 = none */
	uint8_t preread[LOGIN_MAX_PENDING];
};

struct conn;

/* what a client hears when its backend cannot be used */
#define BACKEND_UNAVAILABLE "Account is temporarily unavailable."

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
	struct tls_conn *engine;	/* its TLS engine, owned by the pump */
	bool verify;		/* yes: the chain must lead to ssl_client_ca_file */
};

/* The auth phase (login-auth.c): from the client's first SASL request until
 * its login is over (master took the hand-off, or the relay to its worker
 * started) or it goes. It names the client in the end-of-session line; a
 * backend relay keeps it, its end line names the user. A few freed ones are
 * kept for the next clients (no allocation per login). */
struct conn_auth {
	uint32_t req_id;	/* the request at auth; 0 = none */
	uint8_t attempts;
	char mech[9];		/* last SASL mechanism, for the log */
	char *user;		/* as auth named it, for the log */
	struct conn_auth *free_next;
};

/* the access check's phase (login-access.c, login_access_sockets): from
 * accept (or the PROXY header) until the greeting goes out, or the refused
 * client is told */
struct conn_access;

struct conn {
	struct ring_owner ro;
	uint8_t state;			/* enum conn_state */
	uint32_t flags;			/* enum conn_flag */
	int fd;
	uint32_t slot;
	uint32_t accept_time;		/* monotonic seconds */
	uint32_t deadline;		/* CLOSING: force the close at this time */
	struct login_session *session;
	struct outq *out;
	struct conn_handoff *ho;
	struct tls_conn *tls;		/* from the first handshake byte on */
	struct proxy_pump *pump;	/* the backend dialogue's, then the relay's */
	struct conn_backend *be;	/* proxied user, until the backend login ends */
	struct proxy_parser *hp;	/* only while CF_HAPROXY */
	struct conn_auth *auth;		/* from the first SASL request to the login */
	struct conn_access *access;	/* login access check: no greeting before it allows */
	struct conn *prev, *next;	/* live list (accept order) or closing list */
	struct conn *defer_next;
	struct net_addr local, remote;
	struct iplimit_ticket preauth;	/* its count under login_max_preauth_ip_connections */
	char session_id[BASE64_ENCODED_LEN(SESSION_RAW) + 1];
};

/* one accept in flight on a listener (login-server.c) */
struct login_accept;

/* the listeners, the IPC channels, the signalfd and the tick */
struct login_src {
	struct ring_owner ro;	/* its event function says which source it is */
	bool ssl;	/* listener: implicit TLS */
	bool haproxy;	/* listener: a PROXY header comes first */
	uint8_t armed;	/* listener: accepts in flight */
	bool cancelling;
	/* listener: ACCEPT_BATCH accepts, each with its slot and the buffer
	 * the kernel writes the client's address into */
	struct login_accept *accepts;
	int fd;
	uint32_t slot;
	/* auth and master channels: what their socket had no room for yet */
	struct ipc_outq outq;	/* outq.armed: a RING_OP_WRITABLE is in flight */
};

struct conn_list {
	struct conn *head, *tail;
};

/* the process's state, shared by the files of the connection layer */
struct login_server {
	const struct login_conn_config *set;
	struct ring *ring;
	uint32_t now;

	struct login_src *listeners;
	struct login_src master, signal, tick;

	struct conn_list live;	 /* not closing, in accept order */
	struct conn_list closing;
	struct conn *deferred;

	unsigned conns, prelogin, backends;
	struct net_addr *listen_addrs; /* for proxy_maybe */
	bool reported_busy;	/* prelogin > 0 in the last LOGIN_STATUS */
	unsigned reported_conns; /* conns in the last LOGIN_STATUS */
	unsigned long long total;
	unsigned accepts_armed;
	bool accepting, full, shutting_down;
	bool overflow;		/* master: process_limit reached, accept while full */
	bool retired;		/* master reloaded: never accept again, exit when idle */
	uint32_t shutdown_deadline;
	uint32_t req_seq;

	struct login_counters stats; /* plain increments; sent on request */

	/* last, and not zeroed at the start (ipc_recv and ipc_msg_init set
	 * what they use): ~20 KiB of zero pages a forked child would
	 * otherwise fault in before its first client */
	struct ipc_rx rx;
	struct ipc_msg msg;
};

extern struct login_server srv;

/* login-server.c */
int login_chan_send(struct login_src *ch, struct ipc_msg *msg, int pass_fd);
int login_chan_writable(struct login_src *ch, int res);
void login_process_deferred(void);
void login_stats_send(void);
void login_status(void);
void login_accept_update(void);
void login_listeners_close_idle(void);
void login_stop_accepting(void);
void login_shutdown(const char *why);
void login_signals_check(void);
/* LOGIN_STATUS to master now */
void login_status_send(void);

/* login-conn.c */
void conn_list_add(struct conn_list *l, struct conn *c);
void conn_set_state(struct conn *c, enum conn_state state);
unsigned login_cancel_once(uint32_t slot, enum ring_op op, unsigned flags, unsigned armed,
			    unsigned cancelled);
void conn_defer(struct conn *c);
uint32_t conn_next_req_id(struct conn *c);
void conn_make_session_id(char *out);
void conn_log_end(struct conn *c, const char *reason);
void conn_send_more(struct conn *c);
void conn_drop_not_reading(struct conn *c);
void conn_out_append(struct conn *c, const void *data, size_t len);
void conn_close(struct conn *c, bool force);
void conn_recv_arm(struct conn *c);
void conn_free_now(struct conn *c);
void conn_plaintext_in(struct conn *c, const uint8_t *data, size_t len);
void conn_client_eof(struct conn *c, bool error);
void conn_check(struct conn *c);
void conn_cb_send(void *ctx, const void *data, size_t len);
void conn_msg_add_client(const struct conn *c, struct ipc_msg *msg);
void conn_bye(struct conn *c, const char *text, const char *log_reason);
void conn_start_session(struct conn *c);
void conn_event(struct ring_owner *owner, const struct ring_event *ev);
struct conn *conn_by_req(uint32_t id);

/* login-tls.c */
void login_tls_set_ticket_keys(const uint8_t *keys, size_t len);
void login_tls_deinit(void);
void conn_tls_failed(struct conn *c, const char *what, const char *error);
void conn_tls_write(struct conn *c, const void *data, size_t len);
void conn_tls_pump(struct conn *c);
void conn_tls_input(struct conn *c, const uint8_t *data, size_t len);
void conn_tls_msg_add_auth(struct conn *c, struct ipc_msg *msg, const char *mech);

/* login-auth.c */
void login_auth_open(int fd);
void login_auth_abort(struct conn *c);
void login_auth_close(void);
void auth_cb_begin(void *ctx, const char *mech, const uint8_t *resp, size_t resp_len,
			  bool has_resp);
void auth_cb_continue(void *ctx, const uint8_t *resp, size_t resp_len);
void auth_cb_abort(void *ctx);
void login_auth_retire(void);
void login_auth_end(struct conn *c);
const char *login_auth_user(const struct conn *c);
void auth_chan_event(struct ring_owner *owner, const struct ring_event *ev);

/* login-master.c */
void conn_handoff_end(struct conn *c);
void conn_handoff_preread(struct conn *c, const uint8_t *data, size_t len);
void conn_handoff_abandon(struct conn *c, const char *reason);
void conn_send_handoff(struct conn *c);
void handoff_cb(void *ctx, const char *tag, const uint8_t *preread, size_t preread_len);
void master_chan_event(struct ring_owner *owner, const struct ring_event *ev);

/* login-access.c */
void access_end(struct conn *c);
bool access_handshake_done(struct conn *c);
bool access_begin(struct conn *c);
void conn_early_input(struct conn *c, const uint8_t *data, size_t len);
void access_tick(void);

/* login-admit.c */
void admit_haproxy_begin(struct conn *c, bool tls_follows);
void admit_haproxy_end(struct conn *c);
bool admit_haproxy_waiting(void);
bool conn_preauth_admit(struct conn *c);
void conn_haproxy_input(struct conn *c, const uint8_t *data, size_t len);

/* login-backend.c */
void conn_backend_free(struct conn_backend **bep);
bool backend_extra_proxied(const char *extra);
bool conn_backend_parse(struct conn *c, const char *extra, const struct ipc_fields *f,
			       bool *local_r);
void conn_backend_failed(struct conn *c, const char *why, const char *client_text);
void conn_backend_start(struct conn *c);
void backend_pump_input(void *ctx, const uint8_t *data, size_t len);
void backend_pump_connected(void *ctx, int res);
void backend_pump_tls_ready(void *ctx);
void backend_pump_failed(void *ctx, const char *error);

/* login-relay.c */
void relay_start(struct conn *c);
void relay_start_backend(struct conn *c, const uint8_t *rest, size_t rest_len);
void relay_abort(struct conn *c);
const struct proxy_pump_callbacks *relay_backend_callbacks(void);

#endif
