/* mbox.h — read access to an mbox spool (Debian's default INBOX,
 * `mbox:~/mail:INBOX=/var/mail/%u`) for the POP3 worker: scan, read, and
 * expunge with Dovecot's lock rules.
 *
 * A struct mbox is a snapshot taken at open under an fcntl read lock
 * (mbox_read_locks = fcntl): where each message starts ("From " line after
 * a blank line, or the file's start), its size as the client sees it and
 * its UIDL. Dovecot's own headers (X-IMAP, X-IMAPbase, X-UID, X-Keywords,
 * Status, X-Status, Content-Length) are hidden from the client, as Dovecot
 * does, and the first message is Dovecot's folder-data pseudo message when
 * it has X-IMAP: it is not numbered. A read checks that the file still has
 * a "From " line where the snapshot saw one. mbox_expunge() takes
 * mbox_write_locks = "fcntl dotlock" (PATH.lock, stale after 2 minutes as
 * mbox_dotlock_change_timeout), checks the snapshot still holds, and
 * rewrites the file in place (same inode, owner and mode), keeping mail
 * appended since the snapshot. Every lock wait is bounded; a lock held
 * longer is -EAGAIN ("[IN-USE]"). */
#ifndef RG_MBOX_H
#define RG_MBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MBOX_LOCK_TIMEOUT_MS 10000
#define MBOX_DOTLOCK_STALE_SECS 120
#define MBOX_UIDL_MAX 24

struct mbox_msg {
	uint64_t from_offset; /* the "From " line */
	uint64_t hdr_offset;  /* the line after it: what the client sees */
	uint64_t end_offset;  /* end of the message, without the separating blank line */
	uint64_t vsize;       /* bytes sent with CRLF line ends, hidden headers left out */
	char uidl[MBOX_UIDL_MAX];
};

struct mbox {
	char *path;
	int fd;
	dev_t dev;
	ino_t ino;
	uint64_t size;        /* file size at the snapshot */
	size_t count;
	struct mbox_msg *msgs;
};

/* Open and scan path under a read lock waited for at most timeout_ms. A
 * missing file is an empty mailbox. 0 or -errno (-EAGAIN: locked; -EINVAL:
 * not an mbox file), *error_r says what for the log. */
int mbox_open(const char *path, unsigned timeout_ms, struct mbox **box_r, const char **error_r);
void mbox_close(struct mbox *box);

/* The message as the client sees it (hidden headers left out) in a fresh
 * allocation. -ESTALE when the file was rewritten by someone else. */
int mbox_msg_read(struct mbox *box, size_t idx, char **data_r, size_t *len_r);

/* Remove the messages whose expunge[idx] is set, under the write locks
 * (each waited for at most timeout_ms). Mail delivered since the snapshot
 * is kept. 0 or -errno (-EAGAIN: locked, -ESTALE: rewritten by another
 * program meanwhile: nothing is removed). */
int mbox_expunge(struct mbox *box, const bool *expunge, unsigned timeout_ms,
		 const char **error_r);

/* The INBOX path of an mbox mail_location ("mbox:~/mail:INBOX=/var/mail/%u";
 * without INBOX=, ROOT/inbox), %u %n %d %h and ~ expanded. */
int mbox_location_inbox(const char *location, const char *home, const char *user,
			char **path_r, const char **error_r);
/* whether location names the mbox storage */
bool mbox_location_is_mbox(const char *location);

#endif
