/* zygote.h — the fork of a template process (the zygote pattern: the
 * high-security login template, src/login/login-template.h, and the worker
 * templates, src/mail/worker-template.h). The child is made with
 * CLONE_PARENT, so it is the template's parent's child (master's: reaped,
 * counted, listed and killed by master like an exec'd process), and it
 * runs by hand the atfork handlers of ours that fork() would have run
 * (clone() runs none). */
#ifndef RG_ZYGOTE_H
#define RG_ZYGOTE_H

#include <sys/types.h>

/* fork() with CLONE_PARENT: the child's pid in the template, 0 in the
 * child (its cached pids reset: ipc_pid_reset(), log_forked()), -errno
 * on failure. Single-threaded callers only: glibc's and jemalloc's atfork
 * handlers do not run either, harmless while no other thread holds their
 * locks. */
pid_t zygote_fork(void);

/* Once, before the first zygote_fork(): what every child would otherwise
 * fault in on its own is made the template's, so fork copies its page
 * table entries: each executable segment gets an anonymous page (the
 * segment is writable for that moment; a failure to make it read-only
 * again is fatal), and jemalloc gets a slab of every small size class. */
void zygote_prepare(void);

#endif
