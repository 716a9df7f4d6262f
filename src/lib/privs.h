/* privs.h — dropping root for good. Every process that starts as root and
 * runs on as someone else (auth, login, workers) goes through here, so the
 * order (groups, gid, uid) and the check that nothing of root is left are
 * written once. */
#ifndef RG_PRIVS_H
#define RG_PRIVS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Set real, effective and saved uid/gid to uid/gid; supplementary groups
 * become just gid (with_group) or none. Verifies every id and that root
 * cannot be regained. 0, or -errno with *error_r naming the step. */
int privs_drop(uid_t uid, gid_t gid, bool with_group, const char **error_r);
/* The same with supplementary groups gid plus extra[0..n) (a worker's
 * mail_access_groups). */
int privs_drop_groups(uid_t uid, gid_t gid, const gid_t *extra, size_t n, const char **error_r);

/* chroot(dir), remembered so that an ASan build's LeakSanitizer skips
 * its exit check (it cannot read /proc inside). 0 or -errno. */
int privs_chroot(const char *dir);

/* A worker with a chroot (valid_chroot_dirs): its binary and libraries
 * live outside the chroot, so it must chroot after exec, as an ordinary
 * user. In master's forked child, privs_chroot_keep() before the drop and
 * privs_chroot_pass() after it leave exactly CAP_SYS_CHROOT, as an
 * ambient capability that survives the exec and nothing else. 0 or
 * -errno with *error_r naming the step. */
int privs_chroot_keep(const char **error_r);
int privs_chroot_pass(const char **error_r);
/* In the worker: chroot(dir) and chdir(home) (dir NULL: no chroot), then
 * drop every capability, ambient ones included, and verify none is left.
 * Loads the time zone first: /etc/localtime is outside the chroot. */
int privs_worker_jail(const char *dir, const char *home, const char **error_r);

/* The internal helpers started as root (the access checker, the stats
 * process): chroot to base_dir/login and drop to user (refused when it is
 * root); fatal on failure. Without root, nothing. */
void privs_drop_internal(const char *base_dir, const char *user);

#endif
