/* auth-worker.h — Dovecot's auth-worker model. Drivers whose calls block
 * (PAM, shadow, passwd, checkpassword: `blocking` in passdb.h/userdb.h) run
 * in worker processes, one request at a time each, so a slow or hung PAM
 * module ties up only its worker.
 *
 *   auth ──SPAWN/KILL──> spawner (root, `ringgate-auth -S -c CONFIG`, fork+exec
 *    │                   ed before auth loads any password or drops privileges)
 *    └──REQUEST/RESULT─> workers (root, `ringgate-auth -W -c CONFIG`, children
 *                        of the spawner; their channel fd is passed to auth)
 *
 * The pool in auth keeps at most auth_worker_max_count workers; requests
 * wait in order for a free one. A request that takes longer than
 * auth_worker_request_timeout is answered INTERNAL_FAILURE (the client gets
 * a temporary failure), its worker is killed by the spawner and replaced on
 * demand. A worker exits by itself after a PAM passdb's max_requests. */
#ifndef RG_AUTH_WORKER_H
#define RG_AUTH_WORKER_H

#include "auth/auth-chain.h"

#include <sys/types.h>

/* Fork+exec the spawner (exe: this binary). 0 with *fd_r (auth's end,
 * non-blocking) and *pid_r, or -errno. */
int auth_worker_spawner_start(const char *exe, const char *config, int *fd_r, pid_t *pid_r);
/* `ringgate-auth -S`: fd 3 is the channel to auth. Does not return. */
void auth_worker_spawner_main(const char *config) __attribute__((noreturn));
/* `ringgate-auth -W`: fd 3 is the channel to auth. Does not return. */
void auth_worker_main(const char *config) __attribute__((noreturn));

/* In a worker: exit after n requests (a PAM passdb's max_requests; the
 * lowest wins). */
void auth_worker_set_max_requests(unsigned n);

struct auth_worker_pool;

/* spawner_fd is taken over (registered on auth's loop, auth-loop.h) */
struct auth_worker_pool *auth_worker_pool_new(int spawner_fd, unsigned max_count,
					      unsigned timeout_ms);
void auth_worker_pool_free(struct auth_worker_pool *pool);
/* route chain's blocking modules through the pool */
void auth_worker_pool_attach(struct auth_worker_pool *pool, struct auth_chain *chain);

/* counters for stats */
struct auth_worker_stats {
	unsigned workers;     /* running now */
	unsigned long long requests, timeouts, spawned;
};
void auth_worker_pool_stats(const struct auth_worker_pool *pool, struct auth_worker_stats *st);

#endif
