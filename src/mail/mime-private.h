/* mime-private.h — what mime.c (part tree) and mime-imap.c (ENVELOPE,
 * BODYSTRUCTURE) share; not for use outside src/mail/mime*.c. */
#ifndef RG_MIME_PRIVATE_H
#define RG_MIME_PRIVATE_H

#include "mail/mime.h"

/* the value of a Content-Type parameter (names are lower-cased), or NULL */
const char *mime_param_get(const struct mime_part *part, const char *name);

#endif
