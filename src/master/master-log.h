/* master-log.h — master's side of logging: log_path, info_log_path,
 * debug_log_path and syslog_facility become the three sinks of lib/log.h.
 *
 * A path is "syslog", a file (opened once, appended) or empty / "/dev/stderr"
 * for master's stderr; info_log_path defaults to log_path and debug_log_path
 * to info_log_path, as in Dovecot. A log_path file is also put on fd 2, so
 * whatever a library prints to stderr lands in it. "syslog" is one
 * AF_UNIX datagram socket connected to /dev/log (RINGGATE_SYSLOG_SOCKET
 * overrides the path, for tests) shared by every process: children inherit
 * it connected, so a chrooted login process logs with write() alone. The
 * sockets share one open file: when master re-connects it (syslogd
 * restarted and made a new /dev/log), every process logs to the new one. */
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

/* The fds a child gets after its own (fds_r, in this order); returns how
 * many (fd 2 is always inherited and never listed). */
unsigned master_log_child_fds(int fds_r[LOG_SINK_COUNT]);
/* RINGGATE_LOG text for a child that has master_log_child_fds()' fds at
 * first_fd, first_fd + 1, ... */
bool master_log_child_env(int first_fd, char *out, size_t outsize);

/* Connect the syslog socket again (cheap; does nothing without syslog).
 * 0 or -errno. */
int master_log_reconnect(void);

#endif
