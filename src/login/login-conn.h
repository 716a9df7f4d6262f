/* login-conn.h — the connection layer of a login process (login-server.c and
 * the login-*.c files that share login-private.h): accepts clients on
 * the ring, feeds their bytes to the protocol core, relays SASL to auth (fd 4),
 * hands logged-in clients to master (fd 3), enforces login_timeout,
 * client_limit and service_count, and shuts down on SIGTERM or master EOF.
 * TLS clients (implicit, or after STARTTLS) run through the src/tls engine
 * fed from the ring; after login such a client stays here and its plaintext
 * is relayed to the worker over a socketpair by the pump (src/proxy/
 * proxy-pump.h), which also relays proxied users to their backends.
 * On haproxy = yes listeners a PROXY v1/v2 header (src/proxy) is read first,
 * only from haproxy_trusted_networks, and its addresses replace the socket's.
 * With login_access_sockets each client's address (the header's, behind a
 * PROXY listener) is checked on those UNIX sockets, on the ring, before its
 * greeting (src/lib/access-proto.h).
 *
 * Invariants: a connection changes state only in conn_set_state(); its slot is
 * retired through the ring (ring_slot_retire) or handed to the pump with
 * what it has in flight, never freed by hand; an idle pre-login
 * connection holds no receive and no output buffer. A client's socket error
 * closes that client only; a malformed message from master or auth is fatal. */
#ifndef RG_LOGIN_CONN_H
#define RG_LOGIN_CONN_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/net.h"
#include "login/login-proto.h"

struct iplimit;
struct tls_ctx;

struct login_conn_config {
	const struct login_proto *proto;
	const char *service;		/* "imap" or "pop3" */
	const char *greeting;
	const char *hostname;		/* for APOP timestamps, read before the chroot */
	const char *mechanisms;		/* upper-case, space-separated */
	bool disable_plaintext_auth;
	bool ssl_required;		/* ssl = required: no login before TLS */
	/* ssl != no: builds the TLS context on first use (the first handshake
	 * byte), so a process that only ever serves plaintext (high-security
	 * mode, port 143) never pays wolfSSL's start-up; NULL: ssl = no */
	struct tls_ctx *(*tls_build)(void);
	const struct net_list *trusted;
	const struct net_list *haproxy_trusted; /* haproxy_trusted_networks */
	const char *client_ca_pem;	/* ssl_client_ca_file's text, for ssl=yes backends */
	/* login_max_preauth_ip_connections (> 0) counted in this shared
	 * table; NULL: no limit */
	struct iplimit *iplimit;
	unsigned max_preauth_per_ip;
	unsigned login_timeout;		/* seconds */
	unsigned haproxy_timeout;	/* seconds for a PROXY header */
	/* login_access_sockets: names (for the log) and socket paths as seen
	 * from the chroot, asked in order before the greeting; access_timeout
	 * seconds for each answer */
	const char *const *access_names;
	const char *const *access_paths;
	unsigned access_count;
	unsigned access_timeout;
	unsigned client_limit;		/* never 0 */
	unsigned service_count;		/* 0 = unlimited */
	/* the caller _exits when login_conn_run returns (a process forked
	 * from the high-security template): nothing is torn down, as its
	 * memory is a copy of the template's and freeing it would only fault
	 * pages in; the kernel closes the ring with the process */
	bool exit_after;
	int master_fd, auth_fd;
	const int *listen_fds;		/* fds to accept on */
	const bool *listen_ssl;		/* per fd: implicit TLS (needs tls) */
	const bool *listen_haproxy;	/* per fd: a PROXY v1/v2 header comes first */
	unsigned listen_count;
};

/* Create the ring (0 or -errno). Called while still root: a ring made with
 * CAP_IPC_LOCK is not charged to the login user's RLIMIT_MEMLOCK, which all
 * login processes share (8 MiB by default: about 50 processes). */
int login_conn_prepare(unsigned service_count);

/* Set up the ring (unless prepared) and serve until the process has nothing left to do
 * (stopped accepting and no connection left). Returns the exit status. */
int login_conn_run(const struct login_conn_config *config);

#endif
