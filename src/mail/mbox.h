/* mbox.h — an mbox file (Debian's default INBOX,
 * `mbox:~/mail:INBOX=/var/mail/%u`, and the folders under ~/mail) for the
 * POP3 and IMAP workers: scan, read, and rewrite with Dovecot's lock rules.
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
 * longer is -EAGAIN ("[IN-USE]").
 *
 * Dovecot's metadata is parsed as it writes it (checked against Dovecot
 * 2.3's own output): the first message's `X-IMAPbase: <uidvalidity>
 * <last uid> [keyword...]` (or the pseudo message's `X-IMAP:`), then per
 * message `X-UID: <uid>`, `Status: R O` (\Seen, not \Recent),
 * `X-Status: A F T D` (\Answered \Flagged \Draft \Deleted) and
 * `X-Keywords: name...`. mbox_rewrite() writes them back for the messages
 * marked dirty, moves X-IMAPbase to the new first message when the old one
 * goes, and leaves a pseudo message holding it when every message goes,
 * so UIDVALIDITY and the last UID survive. */
#ifndef RG_MBOX_H
#define RG_MBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define MBOX_LOCK_TIMEOUT_MS 10000
#define MBOX_DOTLOCK_STALE_SECS 120
#define MBOX_UIDL_MAX 24

#define MBOX_STATUS_MAX 8

struct mbox_msg {
	uint64_t from_offset; /* the "From " line */
	uint64_t hdr_offset;  /* the line after it: what the client sees */
	uint64_t hdr_end;     /* the blank line ending the header (or where the header stops) */
	uint64_t end_offset;  /* end of the message, without the separating blank line */
	uint64_t vsize;       /* bytes sent with CRLF line ends, hidden headers left out */
	char uidl[MBOX_UIDL_MAX];
	/* Dovecot's metadata, as read; the IMAP backend edits them and sets
	 * dirty so that mbox_rewrite() writes them */
	uint32_t uid;         /* X-UID, 0 = none */
	char status[MBOX_STATUS_MAX];  /* Status: letters */
	char xstatus[MBOX_STATUS_MAX]; /* X-Status: letters */
	char *keywords;       /* X-Keywords: names separated by spaces, NULL = none */
	time_t date;          /* the From line's date, 0 when unreadable */
	bool dirty, expunge;  /* for mbox_rewrite() */
};

struct mbox {
	char *path;
	int fd;
	dev_t dev;
	ino_t ino;
	uint64_t size;        /* file size at the snapshot */
	struct timespec mtime; /* the file's mtime at the snapshot */
	uint64_t content_hash; /* of [0, size): tells a delivery (appended) from a rewrite */
	bool writable;        /* opened read-write */
	size_t count;
	struct mbox_msg *msgs;
	/* X-IMAPbase (or the pseudo message's X-IMAP): 0 = none */
	uint32_t uidvalidity, last_uid;
	char *base_keywords;  /* its keyword names, NULL = none */
	/* the last uid's digits in the file (Dovecot pads them to 10, so an
	 * append can raise it in place); width 0 = none */
	uint64_t base_uid_offset;
	size_t base_uid_width;
	/* Dovecot's folder-data pseudo message at the start: [0, pseudo_end) */
	bool pseudo;
	uint64_t pseudo_hdr, pseudo_hdr_end, pseudo_end;
};

/* FNV-1a over data, continuing from h (start: MBOX_HASH_INIT) */
#define MBOX_HASH_INIT 14695981039346656037ULL
uint64_t mbox_hash(uint64_t h, const void *data, size_t len);

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

/* Write the messages marked dirty with their metadata and leave out the
 * ones marked expunge, under the write locks (each waited for at most
 * timeout_ms); base_dirty: the uidvalidity, last_uid or base_keywords
 * changed. Mail delivered since the snapshot is kept. Afterwards the
 * snapshot's offsets are stale: mbox_close() it and open again. 0 or
 * -errno as mbox_expunge(). */
int mbox_rewrite(struct mbox *box, bool base_dirty, unsigned timeout_ms, const char **error_r);

/* A new mbox file (-EEXIST when there is one): empty, or with uidvalidity
 * (not 0) the pseudo message holding it. */
int mbox_create(const char *path, uint32_t uidvalidity);

/* The INBOX path of an mbox mail_location ("mbox:~/mail:INBOX=/var/mail/%u";
 * without INBOX=, ROOT/inbox), %u %n %d %h and ~ expanded. */
int mbox_location_inbox(const char *location, const char *home, const char *user,
			char **path_r, const char **error_r);
/* whether location names the mbox storage */
bool mbox_location_is_mbox(const char *location);
/* The root directory of an mbox location ("mbox:~/mail:..." -> home/mail),
 * expanded; -EINVAL when it names none. */
int mbox_location_root(const char *location, const char *home, const char *user,
		       char **path_r, const char **error_r);

#endif
