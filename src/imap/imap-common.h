/* imap-common.h — what the files of one IMAP session share (private to
 * src/imap; the worker and the tests use imap-client.h).
 *
 * The session is split along Dovecot's command families:
 *   imap-client.c  the client loop: output, the command table, IDLE, create/destroy
 *   imap-sync.c    the selected mailbox's view: SELECT/EXAMINE, sync, EXPUNGE, CLOSE
 *   imap-fetch.c   FETCH and SEARCH (reading messages)
 *   imap-store.c   flags and STORE
 *   imap-copy.c    COPY/MOVE and APPEND (adding messages)
 *   imap-list.c    folders: LIST/LSUB, CREATE/DELETE/RENAME, (UN)SUBSCRIBE, STATUS, NAMESPACE
 *   imap-qresync.c QRESYNC: SELECT's parameters, FETCH modifiers, VANISHED (imap-qresync.h) */
#ifndef RG_IMAP_COMMON_H
#define RG_IMAP_COMMON_H

#include "imap/imap-client.h"
#include "imap/imap-cmd-parser.h"
#include "mail/maildir.h"
#include "mail/mime.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IMAP_ERR_INTERNAL "[SERVERBUG] Internal error occurred. Refer to server log for more information."
/* an mbox held locked by another process (a delivery) past the bound */
#define IMAP_ERR_INUSE "[INUSE] Mailbox is locked by another process, try again later."

/* the system flags IMAP names (\Answered \Flagged \Deleted \Seen \Draft) */
#define IMAP_FLAG_COUNT 5
/* a message's flags as IMAP names, keywords included */
#define FLAGS_BUF (IMAP_FLAG_COUNT * 12 + MAILDIR_MAX_KEYWORDS * (MAILDIR_MAX_KEYWORD_LEN + 1) + 16)

enum imap_state { STATE_AUTH, STATE_SELECTED, STATE_LOGOUT };

struct imap_client {
	imap_send_fn *send;
	void *ctx;
	char *mail_path; /* the root Maildir (INBOX) */
	struct imap_cmd_parser *parser;
	enum imap_state state;
	bool done;
	unsigned int bad_commands;
	/* the running command may be told about other sessions' changes
	 * (untagged EXPUNGE/EXISTS/FETCH) just before its tagged reply */
	bool sync_ok;
	/* CONDSTORE was enabled: FETCH responses with FLAGS carry MODSEQ */
	bool condstore;
	/* COMPRESS: offered when compress_start is set; once active, input
	 * stops after the command (input_switch) for the caller to inflate */
	imap_compress_start_fn *compress_start;
	void *compress_ctx;
	bool compressed, input_switch;
	/* QRESYNC was enabled (implies condstore): VANISHED replaces
	 * EXPUNGE, every FETCH response carries UID */
	bool qresync;
	/* a HIGHESTMODSEQ to send before the tagged reply (0: none), see
	 * imap_modseq_committed() */
	uint64_t highest_hold;

	/* selected mailbox: sequence number n is box->msgs[map[n - 1]];
	 * the view holds every message of box that is not expunged, by uid */
	struct maildir *box;
	char *box_name, *box_path;
	bool readonly;
	uint32_t kw_announced; /* keyword letters (bit k = 'a' + k) sent in FLAGS */
	size_t *map;
	size_t count;

	/* IDLE: waiting for "DONE"; idle_line holds its first bytes */
	bool idling, idle_overflow;
	size_t idle_len;
	char idle_line[8];
	char idle_tag[IMAP_MAX_TAG + 1];

	/* imap_send_fmt()'s line, kept so formatting does not allocate per reply */
	struct mime_buf line;
};

/* a command's handler: true when the command was valid (a NO counts), false
 * after a BAD (counted towards IMAP_MAX_BAD_COMMANDS) */
typedef bool imap_cmd_fn(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args,
			 size_t count);

/* imap-client.c: output */
void imap_send_raw(struct imap_client *c, const void *data, size_t len);
void imap_send_str(struct imap_client *c, const char *s);
void imap_send_fmt(struct imap_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* the tagged reply, after the view's sync when the command allows one */
void imap_tagged(struct imap_client *c, const char *tag, const char *status, const char *text);
/* BAD; returns false; too many in a row end the session */
bool imap_bad(struct imap_client *c, const char *tag, const char *text);
bool imap_bad_args(struct imap_client *c, const char *tag, const char *cmd);
/* a client string fit to echo: printable, at most 40 bytes */
void imap_sanitize(const char *in, char out[48]);
void imap_send_mailbox_name(struct imap_client *c, const char *name);
void imap_no_mailbox(struct imap_client *c, const char *tag, const char *name, bool trycreate);

/* imap-sync.c: the selected mailbox */
void imap_mailbox_close(struct imap_client *c);
size_t imap_view_recent(const struct imap_client *c);
void imap_send_expunges(struct imap_client *c, bool silent);
void imap_sync_view(struct imap_client *c);
bool imap_seqset_resolve(struct imap_client *c, const char *set, bool uid, size_t **pos_r,
			 size_t *count_r, const char **error_r);
void imap_uidset_out(struct mime_buf *b, const uint32_t *uids, size_t n);

/* imap-store.c: flags */
void imap_flags_str(const struct maildir *box, const struct maildir_msg *m, char *out, size_t size);
/* untagged FLAGS and PERMANENTFLAGS for box (the selected mailbox or its
 * next snapshot); remembers which keywords the client now knows */
void imap_send_flags(struct imap_client *c, const struct maildir *box);
/* RFC 3501 7.2.6: before a response shows a keyword the client was not
 * told of, FLAGS (and PERMANENTFLAGS) list it: sent when box has one */
void imap_announce_keywords(struct imap_client *c, const struct maildir *box);
/* a command turned CONDSTORE on (RFC 7162 3.1): with a mailbox selected,
 * the first time also says its HIGHESTMODSEQ */
void imap_condstore_enable(struct imap_client *c);
bool imap_parse_flag_list(const struct imap_cmd_arg *arg, const char *path, bool create,
			  char letters[IMAP_FLAG_COUNT + MAILDIR_MAX_KEYWORDS + 1], const char **error_r);

/* the commands, by file; the *_common ones serve the UID variants too */
imap_cmd_fn cmd_select, cmd_examine, cmd_check, cmd_expunge, cmd_close, cmd_unselect, cmd_uid_expunge;
imap_cmd_fn cmd_fetch, cmd_search;
bool cmd_fetch_common(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args,
		      size_t count, bool uid);
bool cmd_search_common(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args,
		       size_t count, bool uid);
imap_cmd_fn cmd_store;
bool cmd_store_common(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args,
		      size_t count, bool uid);
imap_cmd_fn cmd_copy, cmd_move, cmd_append;
bool cmd_copy_common(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args,
		     size_t count, bool uid, bool move);
imap_cmd_fn cmd_list, cmd_lsub, cmd_create, cmd_delete, cmd_rename, cmd_subscribe, cmd_unsubscribe,
	cmd_status, cmd_namespace, cmd_getquotaroot, cmd_getquota, cmd_setquota;

#endif
