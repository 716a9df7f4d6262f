/* maildir-private.h — what the files of one Maildir folder share (private
 * to src/mail; callers use maildir.h).
 *   maildir.c           the core: create, file names, scan, open/close, CRLF,
 *                       mail_location
 *   maildir-msg.c       per message: path, mtime, read, vsize, flags, delete
 *   maildir-uidlist.c   ringgate-uidlist (read, write, register new files)
 *                       and the one-time import of Dovecot's dovecot-uidlist
 *   maildir-keywords.c  dovecot-keywords: keyword names <-> letters a-z
 *   maildir-modseq.c    ringgate-modseq: CONDSTORE modseqs, QRESYNC expunge modseqs
 *   maildir-save.c      adding messages: maildir_save(), maildir_copy() */
#ifndef RG_MAILDIR_PRIVATE_H
#define RG_MAILDIR_PRIVATE_H

#include "mail/maildir.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* one line of the uid list */
struct uid_entry {
	uint32_t uid;
	char *base;
	bool seen;
};

/* maildir.c */
char *maildir_path_join3(const char *a, const char *b, const char *c);
/* sorted, de-duplicated flag letters of flags into out */
void maildir_flags_normalize(const char *flags, char out[MAILDIR_MAX_FLAGS + 1]);
/* the flag letters of a file name (after ":2,"), normalized */
void maildir_name_flags(const char *name, char out[MAILDIR_MAX_FLAGS + 1]);
/* take the uid list lock (flock on MAILDIR_LOCK_NAME) */
int maildir_lock_open(const char *path, int *fd_r);
/* full scan under the lock: assigns UIDs and rewrites the list */
int maildir_scan_and_assign(struct maildir *box, bool move_new, const char **error_r);
char *maildir_msg_path(const struct maildir *box, const struct maildir_msg *m);
int maildir_msg_open(struct maildir *box, struct maildir_msg *m);

/* maildir-uidlist.c; all called under the lock */
int maildir_cmp_uid_entry_base(const void *a, const void *b);
int maildir_cmp_msg_uid(const void *a, const void *b);
void maildir_uidlist_free(struct uid_entry *list, size_t count);
/* 0 with *exists_r false when there is none; -EINVAL when it is corrupt
 * (the caller starts a new UIDVALIDITY) */
int maildir_uidlist_read(const char *path, uint32_t *validity_r, uint32_t *next_r,
			 uint32_t *first_recent_r, struct uid_entry **list_r, size_t *count_r,
			 bool *exists_r, uint32_t *stale_r);
int maildir_uidlist_write(const struct maildir *box);
uint32_t maildir_new_uidvalidity(uint32_t old);
bool maildir_dovecot_uidlist_import(const char *path, uint32_t *validity_r, uint32_t *next_r,
				    struct uid_entry **list_r, size_t *count_r);
/* give bases[0..n) (files already in cur/ of path) UIDs in this order */
int maildir_uidlist_register(const char *path, char *const *bases, size_t n, uint32_t *uids_r,
			     uint32_t *validity_r, const char **error_r);

/* maildir-keywords.c */
void maildir_keywords_free(char **kw);
int maildir_keywords_read(const char *path, char **kw);

/* maildir-modseq.c: compare every message's flags with the recorded ones
 * and give the changed ones new modseqs (at open, under the lock) */
int maildir_modseq_sync(struct maildir *box);

#endif
