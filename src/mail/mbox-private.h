/* mbox-private.h — what the mbox files share (private to src/mail; callers
 * use mbox.h).
 *   mbox.c        locks, scanning (boundaries, Dovecot's metadata), reading,
 *                 mail_location
 *   mbox-write.c  rewriting in place: metadata, expunges, the pseudo message
 *   mbox-imap.c   the IMAP view of an mbox behind maildir.h's interface
 *   mbox-folder.c the folder tree under the mbox root (~/mail) */
#ifndef RG_MBOX_PRIVATE_H
#define RG_MBOX_PRIVATE_H

#include "mail/mbox.h"

#include <stdbool.h>
#include <stddef.h>

/* fcntl lock of the whole file (F_RDLCK, F_WRLCK, F_UNLCK), waited for at
 * most timeout_ms: 0, -EAGAIN when still held by another, or -errno */
int mbox_fcntl_lock(int fd, short type, unsigned timeout_ms);
/* PATH.lock (mbox_write_locks' dotlock), created exclusively; one older than
 * MBOX_DOTLOCK_STALE_SECS is replaced. 0, -EAGAIN or -errno. */
int mbox_dotlock_take(const char *path, unsigned timeout_ms, char **lock_r);
void mbox_dotlock_release(char *lock);
/* one of Dovecot's own headers, never shown to a client */
bool mbox_header_hidden(const char *line, size_t len);
/* pwrite() all of data at off, retrying short writes and EINTR; 0 or -errno */
int mbox_pwrite_all(int fd, const void *data, size_t len, uint64_t off);
/* the file is still the one scanned, with "From " where each message starts */
int mbox_check_snapshot(struct mbox *box);

#endif
