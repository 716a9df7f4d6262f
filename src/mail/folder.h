/* folder.h — the folder tree of a Maildir++ mailbox as Dovecot lays it out:
 * INBOX is the root Maildir, folder "A.B" is the directory <root>/.A.B
 * ("." is the hierarchy separator), subscriptions are the lines of
 * <root>/subscriptions. Names are IMAP names (modified UTF-7 as sent);
 * folder_path() refuses any name that could leave the root. */
#ifndef RG_FOLDER_H
#define RG_FOLDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FOLDER_SEP '.'
#define FOLDER_MAX_NAME 255
#define FOLDER_SUBSCRIPTIONS "subscriptions"
/* the last UIDVALIDITY given to a new folder (hex), as Dovecot's
 * dovecot-uidvalidity */
#define FOLDER_UIDVALIDITY "ringgate-uidvalidity"

/* true for "INBOX" in any case */
bool folder_is_inbox(const char *name);
/* a Maildir++ name we can store: not empty, no "/", no empty hierarchy
 * level, no control or 8-bit characters (names are modified UTF-7), no
 * wildcards, at most FOLDER_MAX_NAME bytes */
bool folder_name_valid(const char *name);
/* the same rules with sep as the hierarchy separator; with '/' (an mbox
 * root) a level may hold '.' but may not start with one ("..", Dovecot's
 * .imap and .subscriptions) */
bool folder_name_valid_sep(const char *name, char sep);
/* root's IMAP hierarchy separator, Dovecot's for the layout: '.' for
 * Maildir++, '/' for mbox */
char folder_sep(const char *root);
/* directory of name (rg_free it), or NULL when the name is not valid */
char *folder_path(const char *root, const char *name);
/* true when the folder's directory exists (INBOX always does) */
bool folder_exists(const char *root, const char *name);

/* whether the folder at path (from folder_path()) is still there */
bool folder_path_exists(const char *path);

/* All folders: "INBOX" first, then the others sorted. Free with
 * folder_list_free(). 0 or -errno. */
int folder_list(const char *root, char ***names_r, size_t *count_r);
void folder_list_free(char **names, size_t count);

/* A UIDVALIDITY for a new folder: the clock, but always above the last one
 * handed out in dir (recorded in <dir>/<name>, under an flock), so a name
 * deleted and created again within a second still gets a new one (RFC 3501
 * 2.3.1.1). 0 when the record cannot be kept. */
uint32_t folder_next_uidvalidity(const char *dir, const char *name);

/* -EEXIST when it exists, -EINVAL for a bad name */
int folder_create(const char *root, const char *name);
/* CREATE "name." (RFC 3501 6.3.3: the name will hold others): Maildir++
 * makes the folder as folder_create() does; an mbox root makes a
 * directory, since a folder's file cannot hold others */
int folder_create_parent(const char *root, const char *name);
/* a hierarchy level that is no folder (an mbox root's directory, which
 * DELETE removes when empty); never for Maildir++ */
bool folder_is_level(const char *root, const char *name);
bool folder_mbox_is_level(const char *root, const char *name);
int folder_mbox_create_parent(const char *root, const char *name);
/* the folder's own directory only (children stay, as in Dovecot); INBOX
 * cannot be deleted (-EPERM); -ENOENT when missing */
int folder_delete(const char *root, const char *name);
/* renames the folder and its children; -ENOENT, -EEXIST, -EPERM (INBOX) */
int folder_rename(const char *root, const char *from, const char *to);

/* the subscribed names, in file order */
int folder_subscriptions(const char *root, char ***names_r, size_t *count_r);
/* add or remove name (under a lock; written with tmp + rename) */
int folder_subscribe(const char *root, const char *name, bool subscribe);

/* An mbox mail_location's root ("mbox:<dir>:INBOX=<file>", made by
 * folder_mbox_root()): every function above then serves the mbox layout
 * (mbox-folder.c): INBOX is <file>, folder "a/b" the file <dir>/a/b, and
 * folder_path() gives "mbox:<file>" for maildir_open(). Subscriptions are
 * <dir>/.subscriptions. */
bool folder_root_is_mbox(const char *root);
char *folder_mbox_root(const char *dir, const char *inbox);
char *folder_mbox_dir(const char *root);
char *folder_mbox_path(const char *root, const char *name);
bool folder_mbox_exists(const char *root, const char *name);
int folder_mbox_list(const char *root, char ***names_r, size_t *count_r);
int folder_mbox_create(const char *root, const char *name);
int folder_mbox_delete(const char *root, const char *name);
int folder_mbox_rename(const char *root, const char *from, const char *to);

/* "\\Drafts", "\\Sent", "\\Trash", "\\Junk" for the special folders, or NULL */
const char *folder_special_use(const char *name);
/* create and subscribe the special folders that are missing */
int folder_ensure_special(const char *root);

#endif
