/* mbox-imap.h — an mbox file behind maildir.h's interface for the IMAP
 * worker (private to src/mail; maildir.c, maildir-save.c and
 * maildir-keywords.c hand calls on a "mbox:<file>" path or on a box with
 * box->mbox set to these).
 *
 * The view is a struct maildir whose msgs[i] are the file's messages in
 * file order (UIDs ascend in an mbox). At open, messages without a valid
 * X-UID get the next UIDs and, on a writable file, the assignment is
 * written at once (with Status: O on a read-write open: they are no longer
 * \Recent for later sessions), so UIDs are stable across sessions as
 * Dovecot keeps them. Flags map as Dovecot's: Status R = \Seen, X-Status
 * A F T D = \Answered \Flagged \Draft \Deleted, X-Keywords = keywords
 * (letters a-z in box->keywords, in X-IMAPbase's order). STORE and EXPUNGE
 * change the view in memory; maildir_flush() writes them in one rewrite.
 * MODSEQs are the file's mtime in microseconds: coarse (every message
 * changes when the file does) but never missing a change. */
#ifndef RG_MBOX_IMAP_H
#define RG_MBOX_IMAP_H

#include "mail/maildir.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct mbox;
struct mbox_msg;

#define MBOX_IMAP_PREFIX "mbox:"

/* path names an mbox file ("mbox:<file>") */
bool mbox_imap_path(const char *path);
int mbox_imap_open(const char *path, bool rw, struct maildir **box_r, const char **error_r);
/* writes pending changes (failure logged) and frees the view */
void mbox_imap_close(struct maildir *box);
bool mbox_imap_changed(const struct maildir *box);
int mbox_imap_read(struct maildir *box, size_t idx, char **data_r, size_t *len_r);
int mbox_imap_change_flags(struct maildir *box, size_t idx, char mode, const char *letters);
int mbox_imap_delete(struct maildir *box, size_t idx);
int mbox_imap_flush(struct maildir *box);
/* maildir_keywords_lookup() for an mbox path: the letters of the open
 * view of that file (names created there, written at its next flush), or
 * of the file's own list */
int mbox_imap_keywords_lookup(const char *path, const char *const *names, size_t n, bool create,
			      char *letters_r);

/* for mbox-save.c: the view's current snapshot; the letter of a keyword
 * name (added to the view when add; 0: none); flags (letters of box) into
 * a message's metadata; whether the view's keyword list grew */
struct mbox *mbox_imap_file(struct maildir *box);
char mbox_imap_keyword_letter(struct maildir *box, const char *name, size_t len, bool add);
void mbox_imap_flags_to_file(const struct maildir *box, const char *flags, struct mbox_msg *fm);
bool mbox_imap_base_dirty(const struct maildir *box);

/* one message to add to an mbox: its text (CRLF or LF), flags as letters
 * whose keywords are names[letter - 'a'], its internal date (0: now) */
struct mbox_imap_new {
	const char *data;
	size_t len;
	const char *flags;
	char *const *names;
	time_t date;
};
/* Append msgs[0..n) to the mbox at path ("mbox:<file>", created when
 * missing) under the write locks with the next UIDs (uids_r[i]); Dovecot's
 * headers in the text are dropped, "From " lines quoted. 0 or -errno
 * (-EAGAIN: locked). */
int mbox_imap_save(const char *path, const struct mbox_imap_new *msgs, size_t n, uint32_t *uids_r,
		   uint32_t *uidvalidity_r, const char **error_r);

#endif
