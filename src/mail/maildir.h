/* maildir.h — one Maildir folder: scan, stable UIDs, flags, delete, read.
 *
 * UIDs live in <maildir>/ringgate-uidlist ("1 V<uidvalidity> N<nextuid> R<first recent uid>",
 * then "<uid> <base>" lines, base = file name without ":2,FLAGS"). The list
 * is only read and rewritten (tmp + rename) under an flock on
 * ringgate-uidlist.lock, so two sessions opening the same Maildir never hand
 * out the same UID twice, and UIDs/UIDVALIDITY survive across sessions.
 * A Maildir without our list but with Dovecot's dovecot-uidlist keeps
 * Dovecot's UIDs and UIDVALIDITY (read once, then ours is written).
 * A struct maildir is a snapshot taken at open: messages are sorted by UID;
 * later deliveries are seen at the next open (maildir_changed() says when
 * one is worth it). maildir_save()/maildir_copy() add files and give them
 * their UIDs at once, under the same lock, so APPENDUID/COPYUID are exact. */
#ifndef RG_MAILDIR_H
#define RG_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define MAILDIR_UIDLIST_NAME "ringgate-uidlist"
#define MAILDIR_LOCK_NAME "ringgate-uidlist.lock"

/* Maildir flag letters, in the sorted order they appear after ":2," */
#define MAILDIR_FLAG_DRAFT 'D'
#define MAILDIR_FLAG_FLAGGED 'F'
#define MAILDIR_FLAG_PASSED 'P'
#define MAILDIR_FLAG_REPLIED 'R'
#define MAILDIR_FLAG_SEEN 'S'
#define MAILDIR_FLAG_TRASHED 'T'
#define MAILDIR_MAX_FLAGS 32 /* letters kept per message (keywords a-z too) */
/* keywords are the letters a-z; <maildir>/dovecot-keywords names them
 * ("<n> <name>" lines, n = letter - 'a'), as Dovecot does */
#define MAILDIR_KEYWORDS_NAME "dovecot-keywords"
#define MAILDIR_MAX_KEYWORDS 26
#define MAILDIR_MAX_KEYWORD_LEN 128
/* CONDSTORE: <maildir>/ringgate-modseq holds "1 H<highest> E<floor>
 * U<uidnext>" then "<uid> <modseq> <flags>" lines. Every scan compares
 * each file's flags with the recorded ones and gives a changed message the
 * next modseq, so changes by any session or program are counted; a lost
 * file restarts above any modseq handed out before (a start from the clock
 * in µs).
 * QRESYNC: messages gone since the last scan (and UIDs handed out since
 * then that are gone already) are expunges of one new modseq, kept as
 * "X<lo> <hi> <modseq>" records (neighbouring ranges with no message
 * between them merged). At most MAILDIR_VANISHED_MAX records are kept;
 * older ones are dropped and the floor E rises to their modseq: asked for
 * expunges since a modseq below E, the answer is every UID below uidnext
 * that is not in the folder (a superset, which RFC 7162 3.2.5.2 allows).
 * A table without E (older than this) has its floor at its highest. */
#define MAILDIR_MODSEQ_NAME "ringgate-modseq"
#define MAILDIR_VANISHED_MAX 1024

struct maildir_uid_range {
	uint32_t lo, hi;
};

/* UIDs lo..hi were expunged at modseq */
struct maildir_vanished {
	uint32_t lo, hi;
	uint64_t modseq;
};

struct maildir_msg {
	uint32_t uid;
	bool in_new;      /* file is still in new/ */
	bool expunged;    /* deleted by us in this snapshot */
	char *base;       /* unique part of the name, without ":2,..." */
	char *name;       /* current file name inside new/ or cur/ */
	char flags[MAILDIR_MAX_FLAGS + 1]; /* sorted letters, NUL-terminated */
	uint64_t size;    /* bytes on disk */
	int64_t vsize;    /* size with CRLF line endings; -1 until known */
	time_t mtime;     /* delivery time (INTERNALDATE); -1 until maildir_msg_mtime() */
	bool recent;      /* \\Recent: UID >= first_recent when opened, or in new/ */
	uint64_t modseq;  /* of its last flag change (CONDSTORE) */
};

struct mbox_view;

struct maildir {
	char *path;
	uint32_t uidvalidity;
	uint32_t uidnext;
	/* messages from this UID on are \Recent: no read-write open has seen
	 * them yet (the uid list's "R" field, as Dovecot's first recent UID);
	 * files still in new/ are too. A new list starts after the files
	 * already in cur/. */
	uint32_t first_recent;
	size_t count;
	struct maildir_msg *msgs; /* sorted by uid */
	/* mtimes of cur/ and new/ when scanned; recheck: they were so recent
	 * that a change in the same clock tick could hide behind them */
	struct timespec cur_mtime, new_mtime;
	bool recheck;
	/* keyword names by letter - 'a' (NULL: unused), read at open */
	char *keywords[MAILDIR_MAX_KEYWORDS];
	uint64_t highest_modseq;
	/* non-NULL: an mbox file seen through this interface (mbox-imap.h);
	 * its flag changes and expunges are kept until maildir_flush() */
	struct mbox_view *mbox;
	/* expunge records read at open (QRESYNC), by modseq; expunges up to
	 * vanished_floor may be missing from them */
	struct maildir_vanished *vanished;
	size_t vanished_count;
	uint64_t vanished_floor;
	/* set by maildir_modseq_commit(): other changes got modseqs between
	 * the snapshot's highest and the ones just handed out */
	bool modseq_behind;
};

/* Create path (and missing parents) with cur/ new/ tmp/, mode 0700. Existing
 * directories are fine. */
int maildir_create(const char *path);

/* Scan path (creating it if missing), assign UIDs to new files and, when
 * move_new is set (a read-write open), move new/ files to cur/ with ":2,"
 * (POP3 does this, as Dovecot does) and claim the recent messages: they
 * are \Recent in this snapshot only. 0 or -errno; *error_r describes the
 * failure for the log. */
int maildir_open(const char *path, bool move_new, struct maildir **box_r,
		 const char **error_r);
void maildir_close(struct maildir *box);

/* true when cur/ or new/ changed since box was scanned (a delivery, another
 * session's flag change or expunge): reopening would show something new */
bool maildir_changed(const struct maildir *box);

/* Start the uid list of the new, empty Maildir at path with this
 * UIDVALIDITY (a folder CREATE picks one never used in its mailbox root,
 * so a folder deleted and created again gets a new one). A list that
 * exists already is kept. 0 or -errno. */
int maildir_uidlist_create(const char *path, uint32_t uidvalidity);

/* Deliver data as a new message of the Maildir at path: tmp/, then cur/
 * with ":2,<flags>", mtime = internal date (0: now), then its UID is
 * registered in the uid list. 0 or -errno. */
int maildir_save(const char *path, const void *data, size_t len, const char *flags,
		 time_t mtime, uint32_t *uid_r, uint32_t *uidvalidity_r, const char **error_r);

/* Copy n messages of src (indexes idxs) into the Maildir at dest_path with
 * their flags and dates (hard links where possible). uids_r[i] is the new
 * UID of idxs[i]; 0 for a source file that vanished meanwhile. */
int maildir_copy(struct maildir *src, const size_t *idxs, size_t n, const char *dest_path,
		 uint32_t *uids_r, uint32_t *uidvalidity_r, const char **error_r);

/* The letters of keyword names[0..n) in the Maildir at path, into
 * letters_r (NUL-terminated, at most n letters). With create, missing names
 * are added to dovecot-keywords (under the uid list lock); otherwise, and
 * when all 26 are taken, they are left out. 0 or -errno. */
int maildir_keywords_lookup(const char *path, const char *const *names, size_t n, bool create,
			    char *letters_r);
/* Record the current flags of messages idxs[0..n) of box (changed by us)
 * with new modseqs now, so the client can be told at once. 0 or -errno. */
int maildir_modseq_commit(struct maildir *box, const size_t *idxs, size_t n);
/* the same with maildir_lock() held by the caller */
int maildir_modseq_commit_locked(struct maildir *box, const size_t *idxs, size_t n);

/* QRESYNC: the UIDs of set[0..nset) (sorted, merged ranges) expunged
 * after modseq since, as sorted, merged ranges in *out_r (rg_free()).
 * Exact when since >= box->vanished_floor; below it, every UID under
 * uidnext that box does not hold. */
void maildir_vanished_since(const struct maildir *box, uint64_t since, const struct maildir_uid_range *set,
			    size_t nset, struct maildir_uid_range **out_r, size_t *count_r);

/* re-read box->keywords (after a lookup that created some) */
int maildir_keywords_reload(struct maildir *box);

/* index of uid in box->msgs, or -1 */
ssize_t maildir_find_uid(const struct maildir *box, uint32_t uid);

/* The message's delivery time (its file's mtime). A scan stats only files
 * whose name lacks ",S=<size>", so this may stat now; 0 when the file is
 * gone. */
time_t maildir_msg_mtime(struct maildir *box, size_t idx);

/* Whole raw file into a fresh allocation (caller rg_free()s *data_r). */
int maildir_msg_read(struct maildir *box, size_t idx, char **data_r, size_t *len_r);

/* Size with CRLF line endings (RFC822.SIZE, POP3 octets); from ",W=" in the
 * name when present, else computed by reading the file, then cached. */
int maildir_msg_vsize(struct maildir *box, size_t idx, uint64_t *vsize_r);

/* Replace the message's flags (any order, duplicates ignored) by renaming
 * the file into cur/ with ":2,<sorted flags>". */
int maildir_msg_set_flags(struct maildir *box, size_t idx, const char *flags);
bool maildir_msg_has_flag(const struct maildir_msg *msg, char flag);
/* STORE's change: mode '+' adds letters, '-' removes them, '=' replaces
 * the flags (keeping \\Passed, which IMAP cannot name). Applied to the
 * flags the file has when it is renamed, so another session's change to
 * other flags made meanwhile is kept (and shows in m->flags). 1 when the
 * file was renamed, 0 when its flags were so already, or -errno. */
int maildir_msg_change_flags(struct maildir *box, size_t idx, char mode, const char *letters);
/* cur's letters changed as STORE does (mode '+', '-', '='), sorted, as
 * maildir_msg_change_flags would name them */
void maildir_flags_apply(const char *cur, char mode, const char *letters, char out[MAILDIR_MAX_FLAGS + 1]);

/* The folder's lock (the uid list's flock, which every scan takes): held
 * across flag renames and maildir_modseq_commit_locked(), no scan sees a
 * renamed file before its modseq, so every session numbers it alike.
 * 0 or -errno; maildir_unlock(*fd_r) releases it. Not re-entrant. An
 * mbox has no such lock (its changes wait for maildir_flush()): *fd_r = -1. */
int maildir_lock(const struct maildir *box, int *fd_r);
void maildir_unlock(int fd);

/* Unlink the file; the entry stays in msgs with expunged = true. A file
 * already gone counts as success. */
int maildir_msg_delete(struct maildir *box, size_t idx);

/* Write what the storage keeps in memory: an mbox writes its flag changes
 * and expunges here, in one rewrite of the file (a Maildir writes each at
 * once: 0). On failure the changes are undone in box (flags as in the
 * file, nothing expunged) and -EAGAIN says the mailbox is locked by
 * another process (NO [INUSE]). */
int maildir_flush(struct maildir *box);

/* Bytes data would take with every bare LF turned into CRLF. */
uint64_t maildir_crlf_size(const char *data, size_t len);
/* Copy of data with bare LFs turned into CRLF; *len_r = the new length. */
char *maildir_to_crlf(const char *data, size_t len, size_t *len_r);

/* Paths: an mbox folder's path is "mbox:<file>" (folder_path() of an mbox
 * root, see folder.h); every function here then serves that mbox file
 * (mbox-imap.c). maildir_save() and maildir_copy() into one: -ENOTSUP. */

/* Turn a mail_location ("maildir:~/Maildir", "maildir:/abs:LAYOUT=fs",
 * "~/Maildir", empty = "maildir:~/Maildir") into a path. %u %n %d %h %% are
 * expanded as Dovecot does (user, user part, domain part, home). */
int maildir_location_path(const char *location, const char *home, const char *user,
			  char **path_r, const char **error_r);

#endif
