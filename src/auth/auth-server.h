/* auth-server.h — the auth process's event loop (epoll + one timerfd).
 *
 * It serves master's channel (AUTH_NEW_CLIENT, AUTH_REQUEST) and every login
 * process's channel (AUTH_BEGIN/CONTINUE/ABORT), keyed by (channel, request
 * id). Failed logins are answered after auth_failure_delay plus the per-IP
 * penalty from a time-ordered queue, never by sleeping, so other requests are
 * served meanwhile. A malformed message from master is fatal; from a login
 * process it closes only that channel. Takes no settings file: main() fills
 * struct auth_config, so tests can build one directly. */
#ifndef RG_AUTH_SERVER_H
#define RG_AUTH_SERVER_H

#include <stdbool.h>
#include <stdint.h>

struct db_settings;

struct auth_config {
	const char *mechanisms;      /* auth_mechanisms, e.g. "plain login" */
	unsigned failure_delay_ms;   /* auth_failure_delay */
	const char *mail_location;   /* used when the userdb has no mail field */
	/* the passdb/userdb blocks (settings.h lists); NULL: the shortcuts */
	const struct db_settings *passdbs, *userdbs;
	const char *passdb_args;     /* shortcut: passwd-file args; "" = no passdb */
	const char *userdb_args;     /* shortcut: "" = the passdb file */
	bool disable_plaintext_auth; /* refuse PLAIN/LOGIN without F_SECURED */
	/* auth_ssl_require_client_cert: no login without F_CERT_VALID;
	 * auth_ssl_username_from_cert: F_CERT_USER is the user, whatever name
	 * the mechanism gave (and EXTERNAL's user) */
	bool ssl_require_client_cert, ssl_username_from_cert;
	/* auth_username_format, _chars, _translation, auth_default_realm
	 * (NULL: off) and auth_master_user_separator (NULL or "": none) */
	const char *username_format, *username_chars, *username_translation;
	const char *default_realm, *master_user_separator;
	/* auth_cache_size (0: none), auth_cache_ttl, auth_cache_negative_ttl */
	uint64_t cache_size;
	unsigned cache_ttl_secs, cache_negative_ttl_secs;
};

struct auth_server;
struct auth_chain;

/* The passdb/userdb chain cfg describes (auth-chain.h), as the server
 * builds it: a passwd-file passdb with no userdb block is the userdb too.
 * NULL with *error_r (allocated). `ringgate user` uses it alone. */
struct auth_chain *auth_server_chain_build(const struct auth_config *cfg, char **error_r);

/* Loads the passwd-file(s); NULL with *error_r (allocated) on failure. */
struct auth_server *auth_server_new(const struct auth_config *cfg, int master_fd,
				    char **error_r);
/* Serve until master closes its channel. Returns 0, or -errno when epoll
 * itself fails. */
int auth_server_run(struct auth_server *srv);
void auth_server_free(struct auth_server *srv);
/* The resolver child's channel (auth-dns.h), taken over: passdb proxy hosts
 * given by name are resolved through it. Without one they fail (temp). */
void auth_server_set_dns(struct auth_server *srv, int fd);
/* The auth-worker spawner's channel (auth-worker.h), taken over: blocking
 * passdbs/userdbs run in up to max_count workers, each request bounded by
 * timeout_ms. Without one they are called inline (tests). */
void auth_server_set_workers(struct auth_server *srv, int spawner_fd, unsigned max_count,
			     unsigned timeout_ms);

/* In-memory entry points: what the event loop does around ipc_recv(), for
 * tests and fuzz/fuzz_auth_server.c. */
struct auth_client;
struct ipc_rx;
/* Add a login channel as AUTH_NEW_CLIENT does; fd (the auth side of a
 * SEQPACKET socketpair) is taken over and made non-blocking. */
struct auth_client *auth_server_login_add(struct auth_server *srv, int fd, uint32_t pid,
					  const char *service);
/* Handle one decoded message from c (replies go to c's fd). false when c is
 * closed, before or because of it (a misbehaving channel is cut off). */
bool auth_server_login_message(struct auth_server *srv, struct auth_client *c,
			       const struct ipc_rx *rx);
/* Close c: its requests are dropped; c is freed by the next tick. */
void auth_server_login_close(struct auth_server *srv, struct auth_client *c);
/* One decoded message from master (AUTH_NEW_CLIENT takes rx->fd). A
 * malformed one is fatal, as on the socket. */
void auth_server_master_message(struct auth_server *srv, struct ipc_rx *rx);
/* Answer the delayed failures now due and free closed channels. */
void auth_server_tick(struct auth_server *srv);

#endif
