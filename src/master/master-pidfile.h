/* master-pidfile.h — base_dir/master.pid: one running master per base_dir.
 *
 * A pid file counts only if it names a live process whose command name is the
 * expected one (a stale file after a crash, or a pid the kernel reused for
 * something else, is replaced). Zombies count as gone. */
#ifndef RG_MASTER_PIDFILE_H
#define RG_MASTER_PIDFILE_H

#include <stdbool.h>
#include <sys/types.h>

/* Read the pid in path. 0 with *pid_r, -ENOENT when there is no file, -EINVAL
 * when its contents are not a pid, other -errno. */
int master_pidfile_read(const char *path, pid_t *pid_r);

/* Whether pid is alive (not a zombie) and its /proc comm equals comm. */
bool master_pid_is(pid_t pid, const char *comm);

/* 1 with *pid_r when path names a live process called comm (other than the
 * caller), 0 when there is no such process (missing, garbage or stale file),
 * -errno when the file cannot be read. */
int master_pidfile_check(const char *path, const char *comm, pid_t *pid_r);

/* Write pid to path atomically (temp file + rename), mode 0644. 0 / -errno. */
int master_pidfile_write(const char *path, pid_t pid);

#endif
