/* pop3-client.h — one logged-in POP3 session (RFC 1939, CAPA, UIDL, TOP)
 * on a Maildir or an mbox spool, with no socket: bytes in via pop3_client_input(), replies out
 * through the send callback. The binary (pop3-main.c) owns the socket.
 *
 * Invariants: input is split into lines in a fixed buffer of POP3_MAX_LINE
 * bytes (a longer line is answered with -ERR and skipped, never grown);
 * message numbers are fixed for the session; DELE only marks, and only QUIT
 * applies the marks (a disconnect applies nothing). */
#ifndef RG_POP3_CLIENT_H
#define RG_POP3_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mail/maildir.h"
#include "mail/mbox.h"

#define POP3_MAX_LINE 4096
#define POP3_UIDL_SIZE 24
#define POP3_MAX_BAD_COMMANDS 20

typedef void pop3_send_fn(void *ctx, const void *data, size_t len);

struct pop3_client;

/* Takes ownership of box (opened with move_new = true). Fails (-errno with
 * *error_r) only when message sizes cannot be read. */
int pop3_client_create(struct maildir *box, pop3_send_fn *send, void *ctx,
		       struct pop3_client **client_r, const char **error_r);
/* The same on an mbox spool (mbox_open()): DELE'd messages are removed at
 * QUIT by rewriting the spool under its locks (mbox_expunge()). */
int pop3_client_create_mbox(struct mbox *box, pop3_send_fn *send, void *ctx,
			    struct pop3_client **client_r, const char **error_r);
void pop3_client_destroy(struct pop3_client *client);

/* "+OK Logged in." */
void pop3_client_send_greeting(struct pop3_client *client);

/* Feed client bytes (any split). Returns false once the session is over
 * (QUIT, or too many bad commands); later input is ignored. */
bool pop3_client_input(struct pop3_client *client, const uint8_t *data, size_t len);

bool pop3_client_quit_seen(const struct pop3_client *client);

/* Dovecot's logout statistics: "top=0/0, retr=1/120, del=0/3, size=360" */
void pop3_client_stats(const struct pop3_client *client, char *buf, size_t size);

#endif
