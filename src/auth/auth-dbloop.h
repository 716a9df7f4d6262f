/* auth-dbloop.h — what a network user-store client (auth-sql, auth-ldap)
 * needs from its owner's event loop: watch an fd, and one timer.
 *
 * The clients never block and never sleep: they register the sockets their
 * library gives them, and ask to be called back at their earliest deadline
 * (a request's time bound, a reconnect). auth's epoll loop implements it;
 * the store tests' probe (tests/integration/storeprobe.c) does with its own
 * epoll. */
#ifndef RG_AUTH_DBLOOP_H
#define RG_AUTH_DBLOOP_H

#include <stdint.h>

#define DB_IO_READ 0x1u
#define DB_IO_WRITE 0x2u
/* revents only: error or hang-up on the fd */
#define DB_IO_ERROR 0x4u

struct db_io;
typedef void db_io_callback(void *context, unsigned revents);
typedef void db_timer_callback(void *context);

struct db_loop {
	void *context;
	/* watch fd for events (DB_IO_READ | DB_IO_WRITE, may be 0) */
	struct db_io *(*io_add)(void *context, int fd, unsigned events,
				db_io_callback *callback, void *cb_context);
	void (*io_update)(void *context, struct db_io *io, unsigned events);
	/* before the fd is closed */
	void (*io_remove)(void *context, struct db_io *io);
	/* one timer per client: call callback at due_ms (CLOCK_MONOTONIC,
	   milliseconds); due_ms 0 disarms; a later call replaces the earlier */
	void (*timer_set)(void *context, void *owner, int64_t due_ms,
			  db_timer_callback *callback, void *cb_context);
};

/* CLOCK_MONOTONIC in milliseconds */
int64_t db_now_ms(void);

#endif
