/* mailfile.h — the two file disciplines the Maildir code shares: a lock
 * file held with flock(LOCK_EX) while a shared file is read and rewritten,
 * and replacing a whole file by writing <name>.tmp then rename(), so a
 * reader sees the old file or the new one, never half of either. Files are
 * created 0600: mail and its indexes are the user's alone. */
#ifndef RG_MAILFILE_H
#define RG_MAILFILE_H

#include <stddef.h>

/* Open (creating) <dir>/<name> and wait for an exclusive flock on it;
 * closing *fd_r releases it. 0 or -errno. */
int mailfile_lock(const char *dir, const char *name, int *fd_r);
/* read up to size bytes into buf, retrying short reads and EINTR, stopping
 * early at end of file; *got_r is what was read (also on failure). 0 or
 * -errno */
int mailfile_read_all(int fd, void *buf, size_t size, size_t *got_r);
/* write all of data, retrying short writes and EINTR; 0 or -errno */
int mailfile_write_all(int fd, const void *data, size_t len);
/* Replace <dir>/<name> with data through <dir>/<name>.tmp + rename();
 * on failure the tmp file is removed and the old file stays. 0 or -errno. */
int mailfile_replace(const char *dir, const char *name, const void *data, size_t len);

#endif
