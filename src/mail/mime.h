/* mime.h — a read-only MIME view of one message held in memory with CRLF
 * line endings: the part tree (RFC 2045/2046), IMAP's ENVELOPE and
 * BODYSTRUCTURE, section lookup for BODY[1.2.HEADER], header field values
 * and RFC 2047 decoding for SEARCH. Parts point into the caller's buffer
 * (offsets), which must outlive the tree; nesting is bounded by
 * MIME_MAX_DEPTH so a hostile message cannot exhaust the stack. */
#ifndef RG_MIME_H
#define RG_MIME_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#define MIME_MAX_DEPTH 20
#define MIME_MAX_PARTS 1000

/* a growable byte string; data is NUL-terminated */
struct mime_buf {
	char *data;
	size_t len, size;
};

void mime_buf_add(struct mime_buf *b, const void *data, size_t len);
void mime_buf_str(struct mime_buf *b, const char *s);
void mime_buf_printf(struct mime_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mime_buf_vprintf(struct mime_buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* an IMAP nstring: NIL for NULL, a quoted string when it can be, else a literal */
void mime_buf_nstring(struct mime_buf *b, const char *s, size_t len);
void mime_buf_free(struct mime_buf *b);

struct mime_param {
	char *name, *value;
};

struct mime_part {
	size_t hdr_off, hdr_len;   /* header, including the empty line */
	size_t body_off, body_len;
	size_t lines;              /* CRLFs in the body */
	char *type, *subtype;      /* lower case; text/plain by default */
	struct mime_param *params; /* Content-Type parameters */
	size_t nparams;
	char *id, *description, *encoding, *md5, *language, *location;
	char *disposition;         /* NULL when absent */
	struct mime_param *disp_params;
	size_t ndisp_params;
	struct mime_part *children; /* multipart: the parts */
	size_t nchildren;
	struct mime_part *message; /* message/rfc822: the enclosed message */
};

/* parse msg[0..len) (CRLF line ends); never fails, a broken structure
 * reads as text. mime_free() the result. */
struct mime_part *mime_parse(const char *msg, size_t len);
void mime_free(struct mime_part *part);

/* ENVELOPE of the header hdr[0..len) */
void mime_envelope(const char *hdr, size_t len, struct mime_buf *out);
/* BODYSTRUCTURE (extended) or BODY (not) of part */
void mime_bodystructure(const struct mime_part *part, const char *msg, bool extended,
			struct mime_buf *out);

/* Follow the part numbers of a section ("1.2" of "1.2.HEADER"): NULL when
 * a number names no part. len is the length of the numbers. */
const struct mime_part *mime_find_part(const struct mime_part *root, const char *numbers,
				       size_t len);

/* The unfolded value of the first header field called name, or NULL (rg_free). */
char *mime_header_get(const char *hdr, size_t len, const char *name);
/* Every field's unfolded value of name, joined with "\n" (NULL if none) */
char *mime_header_get_all(const char *hdr, size_t len, const char *name);
/* An address header's value as its addresses, without comments, folding
 * or source routes: "Name <user@host>, group: <a@b>;" (rg_free). SEARCH
 * FROM/TO/CC/BCC match there, as in the ENVELOPE's address lists. */
char *mime_addresses_text(const char *value);
/* RFC 2047 encoded words of s decoded into UTF-8 (Q and B; UTF-8,
 * US-ASCII and ISO-8859-1 charsets; others are kept as they are) */
char *mime_decode_words(const char *s);
/* header size: through the empty line that ends it (all of msg if none) */
size_t mime_header_size(const char *msg, size_t len);

#endif
