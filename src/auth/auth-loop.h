/* auth-loop.h — auth's event loop as drivers see it: watch an fd, run a
 * function after a delay. A driver that talks to a server (SQL, LDAP, an
 * auth-worker) registers its sockets here and calls back from these
 * handlers, so no lookup blocks another. The loop is auth-server.c's epoll;
 * inside an auth-worker there is none and drivers must not use it.
 * Handlers may add and remove ios and timeouts, their own included. */
#ifndef RG_AUTH_LOOP_H
#define RG_AUTH_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct auth_io;
struct auth_timeout;

typedef void auth_io_callback(void *context, uint32_t epoll_events);
typedef void auth_timeout_callback(void *context);

/* Watch fd for epoll events (EPOLLIN, EPOLLOUT). NULL when there is no loop
 * (an auth-worker, a unit test without a server) or epoll refuses the fd. */
struct auth_io *auth_io_add(int fd, uint32_t epoll_events, auth_io_callback *cb, void *context);
/* change what is watched (e.g. add EPOLLOUT while output waits) */
void auth_io_set_events(struct auth_io *io, uint32_t epoll_events);
/* stop watching (the fd stays open: the caller closes it); *io = NULL */
void auth_io_remove(struct auth_io **io);

/* Call cb once, msecs from now. */
struct auth_timeout *auth_timeout_add(unsigned msecs, auth_timeout_callback *cb, void *context);
void auth_timeout_remove(struct auth_timeout **to);

/* ---- for auth-server.c ---- */
/* the epoll set ios are added to (-1: none) */
void auth_loop_init(int epfd);
void auth_loop_deinit(void);
/* an epoll event whose data.ptr is an auth_io: dispatch it. false when ptr
 * is not one (it is the server's own source) */
bool auth_loop_dispatch(void *ptr, uint32_t events);
/* milliseconds until the next timeout (-1: none), for epoll_wait */
int auth_loop_next_timeout_ms(void);
/* run the timeouts that are due */
void auth_loop_run_timeouts(void);
/* free the ios removed during this loop turn */
void auth_loop_free_dead(void);

#endif
