/* sigfd.h — the stop signals as a file descriptor. Every long-running
 * process but master (login, access, stats) stops on SIGTERM or SIGINT and
 * waits for them on its event loop, so the blocking and the signalfd are
 * written once. */
#ifndef RG_SIGFD_H
#define RG_SIGFD_H

#include <stdbool.h>

/* Block SIGTERM and SIGINT and return a non-blocking, close-on-exec signalfd
 * that reports them; fatal on failure. */
int sigfd_open_stop(void);
/* Read every pending signal from fd; true when at least one was read. */
bool sigfd_drain(int fd);

#endif
