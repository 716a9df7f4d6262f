/* imap-login-texts.h — the texts an IMAP pre-login session answers with
 * (greeting, mechanisms, CAPABILITY), shared by the sessions of a process.
 * Private to imap-login*.c.
 *
 * They depend only on the configuration, the same for every connection of
 * a listener: sanitized and built once per process, not per session, and
 * referenced (a reload may change them while sessions made before it live;
 * the old texts go with the last of those). Not thread-safe, as the login
 * process is single-threaded. */
#ifndef RG_IMAP_LOGIN_TEXTS_H
#define RG_IMAP_LOGIN_TEXTS_H

#include <stdbool.h>
#include <stddef.h>

#define IMAP_CAPABILITY_BANNER "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+"
#define IMAP_DEFAULT_GREETING "ringgate ready."

struct imap_texts;

/* a reference to the texts of this greeting (NULL: the default) and
 * mechanism list (upper-case, space-separated; NULL: none) */
struct imap_texts *imap_texts_get(const char *greeting, const char *mechanisms);
void imap_texts_unref(struct imap_texts **texts);

/* control characters replaced by spaces: safe inside a reply line */
const char *imap_texts_greeting(const struct imap_texts *texts);
const char *imap_texts_mechanisms(const struct imap_texts *texts);
/* the capability list without "* CAPABILITY ", for a session's state:
 * STARTTLS offered, plaintext authentication allowed, TLS (the -PLUS
 * mechanisms); valid while the reference is held */
const char *imap_texts_capability(struct imap_texts *texts, bool starttls, bool plaintext_auth,
				  bool tls);

/* a copy of text (NULL: "") with control characters replaced by spaces:
 * text we echo into a reply line must not break the line */
char *imap_sanitize_dup(const char *text);

/* PLAIN, LOGIN and the OAuth2 bearer mechanisms: hidden and refused where
 * plaintext authentication is not allowed */
bool imap_mech_is_plaintext(const char *mech, size_t len);
/* SCRAM-*-PLUS binds to the TLS channel: offered on TLS connections only */
bool imap_mech_needs_tls(const char *mech, size_t len);

#endif
