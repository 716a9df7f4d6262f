/* imap-client.h — one logged-in IMAP session on a Maildir, with no socket:
 * bytes in via imap_client_input(), responses out through the send callback
 * (the binary, imap-main.c, owns the socket).
 *
 * Commands live in one table (name, handler, needs a selected mailbox, may
 * report other sessions' changes). Folders are Maildir++ (mail/folder.h);
 * the selected folder is a view on a maildir snapshot that is rescanned
 * when its directories change, and the differences go to the client as
 * untagged EXPUNGE/FETCH/EXISTS. A bad command gets BAD and the session
 * goes on; after IMAP_MAX_BAD_COMMANDS in a row the session ends with BYE,
 * as Dovecot does. */
#ifndef RG_IMAP_CLIENT_H
#define RG_IMAP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IMAP_MAX_BAD_COMMANDS 20
/* LITERAL+ covers what LITERAL- clients send, so only it is named */
#define IMAP_CAPABILITY "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ " \
	"UNSELECT NAMESPACE UIDPLUS MOVE CHILDREN SPECIAL-USE LIST-EXTENDED LIST-STATUS CONDSTORE " \
	"ESEARCH QUOTA BINARY QRESYNC"

typedef void imap_send_fn(void *ctx, const void *data, size_t len);

struct imap_client;

/* mail_path: the user's Maildir (INBOX), resolved by the caller; the
 * special-use folders (Drafts, Sent, Trash, Junk) are created if missing */
struct imap_client *imap_client_create(const char *mail_path, imap_send_fn *send, void *ctx);
void imap_client_destroy(struct imap_client *client);
/* imap_max_line_length: the command line bound (default IMAP_MAX_LINE) */
void imap_client_set_max_line(struct imap_client *client, size_t max_line);

/* "<tag> OK [CAPABILITY ...] Logged in" (tag NULL or empty: "*") */
void imap_client_send_login_reply(struct imap_client *client, const char *tag);

/* Feed client bytes (any split). Returns false once the session is over
 * (LOGOUT, too many bad commands, an unrecoverable literal). For callers
 * that registered no COMPRESS (or already inflate): bytes after an
 * accepted COMPRESS would be dropped, see imap_client_input_part(). */
bool imap_client_input(struct imap_client *client, const uint8_t *data, size_t len);

/* COMPRESS=DEFLATE (RFC 4978): a binary that can compress its socket
 * registers start (before the login reply); only then is COMPRESS
 * advertised and accepted. start(ctx) runs right after the tagged OK was
 * sent: what is sent from then on must be deflated, and the client's bytes
 * after the command's line are deflate data, which is why
 * imap_client_input_part() stops there. */
typedef void imap_compress_start_fn(void *ctx);
void imap_client_set_compress(struct imap_client *client, imap_compress_start_fn *start, void *ctx);
/* imap_client_input() that returns right after a COMPRESS command was
 * accepted; *used_r: the bytes it took */
bool imap_client_input_part(struct imap_client *client, const uint8_t *data, size_t len,
			    size_t *used_r);

bool imap_client_logged_out(const struct imap_client *client);

/* in IDLE: the caller polls imap_client_idle_check() every few seconds,
 * which sends what changed in the selected folder; false once the session
 * is over (the folder was deleted under it) */
bool imap_client_idling(const struct imap_client *client);
bool imap_client_idle_check(struct imap_client *client);

/* server-side end: "* BYE <reason>" */
void imap_client_bye(struct imap_client *client, const char *reason);

#endif
