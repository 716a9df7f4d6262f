/* master-log.h — master's side of logging: log_path, info_log_path,
 * debug_log_path and syslog_facility become the three sinks of lib/log.h.
 *
 * A path is "syslog", a file (opened once, appended) or empty / "/dev/stderr"
 * for master's stderr; info_log_path defaults to log_path and debug_log_path
 * to info_log_path, as in Dovecot. A log_path file is also put on fd 2, so
 * whatever a library prints to stderr lands in it. "syslog" is an AF_UNIX
 * datagram socket connected to /dev/log (RINGGATE_SYSLOG_SOCKET overrides
 * the path, for tests): children inherit one connected, so a chrooted login
 * process logs with write() alone. Master has its own, auth one, the login
 * processes share one (one open file: when master re-connects it, every 10 s
 * and on reload, after a syslog daemon restarted with a new /dev/log, they
 * all follow), and every worker gets its own, made when it starts: a
 * process that can connect() its socket elsewhere (a worker has no seccomp
 * filter) moves only its own lines, never another user's or master's.
 * Workers do not follow a syslog restart: their failed lines go to stderr. */
#ifndef RG_MASTER_LOG_H
#define RG_MASTER_LOG_H

#include "lib/log.h"
#include "lib/settings.h"

#include <stdbool.h>
#include <stddef.h>

/* Open the sinks and log through them from now on. On failure nothing is
 * changed and *error_r (allocated) names the setting and the reason. */
int master_log_open(const struct settings *set, char **error_r);

/* true when a sink is a file: log_timestamp applies */
bool master_log_has_file(void);
/* true when log_path itself is not stderr (start-up errors also go to the
 * terminal then) */
bool master_log_error_elsewhere(void);

enum master_log_peer { MASTER_LOG_AUTH, MASTER_LOG_LOGIN, MASTER_LOG_WORKER,
		       MASTER_LOG_PEER_COUNT };

/* The syslog socket for a child of this kind, -1 when syslog is not used
 * (or a worker's could not be connected: it logs those lines to stderr).
 * A worker's is new: the caller closes it after the fork. */
int master_log_syslog_fd(enum master_log_peer peer);

/* The fds a child with this syslog socket gets after its own (fds_r, in
 * this order); returns how many (fd 2 is always inherited, never listed). */
unsigned master_log_child_fds(int syslog_child_fd, int fds_r[LOG_SINK_COUNT]);
/* RINGGATE_LOG text for that child, its log fds at first_fd, first_fd + 1, ... */
bool master_log_child_env(int syslog_child_fd, int first_fd, char *out, size_t outsize);

/* Connect master's, auth's and the login processes' syslog sockets again
 * (cheap; nothing without syslog; a failure is logged once). 0 or -errno. */
int master_log_reconnect(void);

#endif
