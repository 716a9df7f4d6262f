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

struct auth_config {
	const char *mechanisms;      /* auth_mechanisms, e.g. "plain login" */
	unsigned failure_delay_ms;   /* auth_failure_delay */
	const char *mail_location;   /* used when the userdb has no mail field */
	const char *passdb_args;     /* passwd-file args; "" = no passdb */
	const char *userdb_args;     /* "" = the passdb file */
	bool disable_plaintext_auth; /* refuse PLAIN/LOGIN without F_SECURED */
};

struct auth_server;

/* Loads the passwd-file(s); NULL with *error_r (allocated) on failure. */
struct auth_server *auth_server_new(const struct auth_config *cfg, int master_fd,
				    char **error_r);
/* Serve until master closes its channel. Returns 0, or -errno when epoll
 * itself fails. */
int auth_server_run(struct auth_server *srv);
void auth_server_free(struct auth_server *srv);

#endif
