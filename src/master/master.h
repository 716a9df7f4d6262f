/* master.h — the master process: listeners, the auth/login/worker process
 * table, the hand-off from login to worker, and orderly shutdown.
 *
 * master_run() owns the process until it stops: everything happens in one
 * epoll loop (signalfd for SIGCHLD/SIGTERM/SIGINT/SIGHUP, the IPC channels,
 * and the shared listeners while no login process is available). Decisions
 * live in master-policy.h; this module only applies them. */
#ifndef RG_MASTER_H
#define RG_MASTER_H

#include <stdbool.h>

#include "lib/settings.h"

#define RINGGATE_VERSION "0.1.0"
/* command name the kernel shows for a master (pid file liveness check) */
#define MASTER_COMM "ringgate"

/* Run the master with set (which it keeps). foreground false daemonizes
 * after the listeners are bound, so bind errors still reach the terminal.
 * Returns the process exit status. */
int master_run(struct settings *set, bool foreground);

/* base_dir/master.pid, allocated */
char *master_pidfile_path(const struct settings *set);
/* base_dir/ringgate-ctl: `who` and `stats` ask the running master there
 * (one line "who", "who -1" or "stats"; the answer is text, then EOF) */
char *master_ctl_path(const struct settings *set);

#endif
