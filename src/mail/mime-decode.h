/* mime-decode.h — Content-Transfer-Encoding decoders for IMAP BINARY
 * (RFC 3516): base64 and quoted-printable (RFC 2045 6.7, 6.8) as resumable
 * state machines that take any split of the input (one byte at a time
 * works) and append what they decode to a mime_buf; 7bit, 8bit and binary
 * pass through. Unlike the lenient decoder SEARCH uses for RFC 2047 words,
 * these refuse data that is not what the encoding allows (a character
 * outside the alphabet, data after base64 padding, "=" not followed by two
 * hex digits or a line end), as Dovecot does ("Invalid data in MIME part"):
 * a client asking for the decoded bytes must not get a guess. Output never
 * exceeds the input's length plus 3 bytes. */
#ifndef RG_MIME_DECODE_H
#define RG_MIME_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/parse.h"
#include "mail/mime.h"

enum mime_cte {
	MIME_CTE_IDENTITY, /* none, 7bit, 8bit, binary */
	MIME_CTE_BASE64,
	MIME_CTE_QP,
	MIME_CTE_UNKNOWN,
};

/* a part's Content-Transfer-Encoding value (NULL: none; case-insensitive) */
enum mime_cte mime_cte_parse(const char *encoding);

struct mime_decoder {
	enum mime_cte cte;
	bool failed;
	uint8_t state;
	/* base64: chars of the current quantum, their bits, '=' seen */
	uint8_t quantum, pad;
	uint32_t bits;
	/* quoted-printable: the first hex digit after "=";
	 * out->len where a run of trailing SP/HTAB began, or SIZE_MAX */
	uint8_t hex;
	size_t ws_start;
};

void mime_decoder_init(struct mime_decoder *dec, enum mime_cte cte);
/* Decode in[0..len) onto out. PARSE_MORE: fine so far; PARSE_ERROR: the
 * data is not valid in its encoding (and stays so: later feeds fail too). */
enum parse_result mime_decoder_feed(struct mime_decoder *dec, const void *in, size_t len,
				    struct mime_buf *out);
/* The input ended: PARSE_OK, or PARSE_ERROR when it ended inside a unit
 * (one base64 character of a quantum, "=" and one hex digit). */
enum parse_result mime_decoder_finish(struct mime_decoder *dec, struct mime_buf *out);

/* BINARY[section] (RFC 3516) of part, msg the message it points into:
 * its body with its Content-Transfer-Encoding undone; whole (BINARY[] of
 * the message) with its header. Inside a multipart or message/rfc822
 * part, each encoded leaf is decoded and its header's encoding becomes
 * "binary", as Dovecot does. 0; -ENOTSUP for an encoding we cannot decode
 * (IMAP's [UNKNOWN-CTE]); -EILSEQ for data invalid in its encoding. out
 * is replaced (empty on failure). */
int mime_part_decode(const struct mime_part *part, const char *msg, bool whole, struct mime_buf *out);

/* RFC 3516 4.4, APPEND with literal8: the leaf parts without an encoding
 * whose body the Maildir's LF line ends would not keep (NUL, bare CR or
 * LF) are stored base64-encoded, their Content-Transfer-Encoding changed
 * to match, so BINARY[n] gives back the bytes that were sent and BODY[n]
 * stays 7bit. NULL when nothing needs it; else the new message (rg_free). */
char *mime_binary_to_base64(const char *msg, size_t len, size_t *len_r);

#endif
