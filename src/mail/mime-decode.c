#include "mail/mime-decode.h"

#include "lib/base64.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

enum qp_state {
	QP_TEXT,
	QP_CR,     /* CR in text: LF ends the line, anything else keeps the CR */
	QP_EQ,     /* "=": two hex digits, or a soft line break */
	QP_EQ_HEX, /* "=" and one hex digit */
	QP_EQ_WS,  /* "=" then SP/HTAB: only the line end may follow */
	QP_EQ_CR,  /* "=" [ws] CR: LF */
};

#define NO_WS SIZE_MAX

enum mime_cte mime_cte_parse(const char *encoding)
{
	if (encoding == NULL || strcasecmp(encoding, "7bit") == 0 || strcasecmp(encoding, "8bit") == 0 ||
	    strcasecmp(encoding, "binary") == 0)
		return MIME_CTE_IDENTITY;
	if (strcasecmp(encoding, "base64") == 0)
		return MIME_CTE_BASE64;
	if (strcasecmp(encoding, "quoted-printable") == 0)
		return MIME_CTE_QP;
	return MIME_CTE_UNKNOWN;
}

void mime_decoder_init(struct mime_decoder *dec, enum mime_cte cte)
{
	*dec = (struct mime_decoder){ .cte = cte, .state = QP_TEXT, .ws_start = NO_WS };
}

/* the bytes a quantum of n characters (2..4) holds */
static void b64_emit(struct mime_decoder *d, unsigned int n, struct mime_buf *out)
{
	uint8_t b[3] = { (uint8_t)(d->bits >> 16), (uint8_t)(d->bits >> 8), (uint8_t)d->bits };
	mime_buf_add(out, b, n - 1);
	d->quantum = 0;
	d->bits = 0;
}

static bool b64_byte(struct mime_decoder *d, unsigned char c, struct mime_buf *out)
{
	if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
		return true;
	if (c == '=') {
		/* "xx==" or "xxx=": the padding that ends the data */
		if (d->pad == 1 && d->quantum == 2) {
			d->bits <<= 12;
			b64_emit(d, 2, out);
			d->pad = 2;
			return true;
		}
		if (d->pad != 0 || d->quantum < 2)
			return false;
		if (d->quantum == 3) {
			d->bits <<= 6;
			b64_emit(d, 3, out);
			d->pad = 2;
		} else {
			d->pad = 1;
		}
		return true;
	}
	int v = base64_value((char)c);
	if (v < 0 || d->pad != 0)
		return false;
	d->bits = (d->bits << 6) | (uint32_t)v;
	if (++d->quantum == 4)
		b64_emit(d, 4, out);
	return true;
}

static int hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* a line ends in text: its trailing SP/HTAB were added by a transport
 * (RFC 2045 6.7 rule 3) and go */
static void qp_line_end(struct mime_decoder *d, struct mime_buf *out, const char *eol, size_t n)
{
	if (d->ws_start != NO_WS) {
		out->len = d->ws_start;
		out->data[out->len] = '\0';
	}
	d->ws_start = NO_WS;
	mime_buf_add(out, eol, n);
}

static bool qp_byte(struct mime_decoder *d, unsigned char c, struct mime_buf *out)
{
	switch ((enum qp_state)d->state) {
	case QP_CR:
		d->state = QP_TEXT;
		if (c == '\n') {
			qp_line_end(d, out, "\r\n", 2);
			return true;
		}
		/* a bare CR is data */
		d->ws_start = NO_WS;
		mime_buf_add(out, "\r", 1);
		return qp_byte(d, c, out);
	case QP_TEXT:
		if (c == '=') {
			d->ws_start = NO_WS;
			d->state = QP_EQ;
		} else if (c == '\r') {
			d->state = QP_CR;
		} else if (c == '\n') {
			qp_line_end(d, out, "\n", 1);
		} else {
			if (c == ' ' || c == '\t') {
				if (d->ws_start == NO_WS)
					d->ws_start = out->len;
			} else {
				d->ws_start = NO_WS;
			}
			mime_buf_add(out, &c, 1);
		}
		return true;
	case QP_EQ:
		if (hex_value(c) >= 0) {
			d->hex = (uint8_t)hex_value(c);
			d->state = QP_EQ_HEX;
		} else if (c == ' ' || c == '\t') {
			d->state = QP_EQ_WS;
		} else if (c == '\r') {
			d->state = QP_EQ_CR;
		} else if (c == '\n') {
			d->state = QP_TEXT; /* soft line break */
		} else {
			return false;
		}
		return true;
	case QP_EQ_HEX: {
		int v = hex_value(c);
		if (v < 0)
			return false;
		uint8_t b = (uint8_t)(d->hex << 4 | v);
		mime_buf_add(out, &b, 1);
		d->state = QP_TEXT;
		return true;
	}
	case QP_EQ_WS:
		if (c == ' ' || c == '\t')
			return true;
		if (c == '\r')
			d->state = QP_EQ_CR;
		else if (c == '\n')
			d->state = QP_TEXT;
		else
			return false;
		return true;
	case QP_EQ_CR:
		if (c != '\n')
			return false;
		d->state = QP_TEXT;
		return true;
	}
	return false;
}

enum parse_result mime_decoder_feed(struct mime_decoder *dec, const void *in, size_t len,
				    struct mime_buf *out)
{
	const unsigned char *p = in;
	if (dec->failed)
		return PARSE_ERROR;
	if (dec->cte == MIME_CTE_IDENTITY) {
		mime_buf_add(out, p, len);
		return PARSE_MORE;
	}
	/* out->data exists (qp_line_end may cut it back) even if nothing is decoded */
	mime_buf_add(out, "", 0);
	for (size_t i = 0; i < len; i++) {
		bool ok = dec->cte == MIME_CTE_BASE64 ? b64_byte(dec, p[i], out) :
			  dec->cte == MIME_CTE_QP ? qp_byte(dec, p[i], out) : false;
		if (!ok) {
			dec->failed = true;
			return PARSE_ERROR;
		}
	}
	return PARSE_MORE;
}

enum parse_result mime_decoder_finish(struct mime_decoder *dec, struct mime_buf *out)
{
	mime_buf_add(out, "", 0);
	if (dec->failed || dec->cte == MIME_CTE_UNKNOWN)
		return PARSE_ERROR;
	if (dec->cte == MIME_CTE_BASE64) {
		/* a quantum cut short without its padding: what it holds */
		if (dec->quantum == 1)
			return PARSE_ERROR;
		if (dec->quantum >= 2) {
			dec->bits <<= 6 * (4 - dec->quantum);
			b64_emit(dec, dec->quantum, out);
		}
		return PARSE_OK;
	}
	if (dec->cte == MIME_CTE_QP) {
		switch ((enum qp_state)dec->state) {
		case QP_CR:
			mime_buf_add(out, "\r", 1);
			break;
		case QP_TEXT:
			/* the last line's trailing whitespace */
			if (dec->ws_start != NO_WS) {
				out->len = dec->ws_start;
				out->data[out->len] = '\0';
			}
			break;
		case QP_EQ_HEX:
			return PARSE_ERROR;
		case QP_EQ:
		case QP_EQ_WS:
		case QP_EQ_CR:
			break; /* a soft line break at the very end */
		}
		dec->state = QP_TEXT;
		dec->ws_start = NO_WS;
	}
	return PARSE_OK;
}

/* ---- whole parts: BINARY of a part, APPEND of binary content ---- */

static bool is_leaf(const struct mime_part *part)
{
	return part->nchildren == 0 && part->message == NULL;
}

/* RFC 2045 6.4: a composite type's body is never encoded */
static enum mime_cte part_cte(const struct mime_part *part)
{
	if (!is_leaf(part) || strcmp(part->type, "multipart") == 0 || strcmp(part->type, "message") == 0)
		return MIME_CTE_IDENTITY;
	return mime_cte_parse(part->encoding);
}

static int body_decode(const struct mime_part *part, const char *msg, enum mime_cte cte,
		       struct mime_buf *out)
{
	struct mime_decoder dec;
	mime_decoder_init(&dec, cte);
	if (mime_decoder_feed(&dec, msg + part->body_off, part->body_len, out) == PARSE_ERROR ||
	    mime_decoder_finish(&dec, out) == PARSE_ERROR)
		return -EILSEQ;
	return 0;
}

/* the part's header without its Content-Transfer-Encoding field, then
 * "Content-Transfer-Encoding: <cte>" and the empty line */
static void header_with_cte(const char *hdr, size_t len, const char *cte, struct mime_buf *out)
{
	size_t pos = 0;
	bool skip = false;
	while (pos < len) {
		const char *nl = memchr(hdr + pos, '\n', len - pos);
		size_t end = nl == NULL ? len : (size_t)(nl - hdr) + 1;
		const char *line = hdr + pos;
		size_t line_len = end - pos;
		if (line_len <= 2 && (line[0] == '\r' || line[0] == '\n'))
			break; /* the empty line */
		if (line[0] != ' ' && line[0] != '\t')
			skip = line_len > 26 && strncasecmp(line, "Content-Transfer-Encoding", 25) == 0 &&
			       (line[25] == ':' || line[25] == ' ' || line[25] == '\t');
		if (!skip)
			mime_buf_add(out, line, line_len);
		pos = end;
	}
	mime_buf_printf(out, "Content-Transfer-Encoding: %s\r\n\r\n", cte);
}

/* what a walk does with one leaf: writes its replacement (header and
 * body) onto out and returns 1, keeps it as it is (0) or fails (-errno) */
typedef int leaf_fn(const struct mime_part *leaf, const char *msg, struct mime_buf *out);

/* the leaves under part in message order; the bytes from *cursor up to a
 * replaced leaf are copied as they are, *cursor moves past it */
static int walk_leaves(const struct mime_part *part, const char *msg, size_t *cursor,
		       struct mime_buf *out, leaf_fn *fn)
{
	if (!is_leaf(part)) {
		for (size_t i = 0; i < part->nchildren; i++) {
			int ret = walk_leaves(&part->children[i], msg, cursor, out, fn);
			if (ret < 0)
				return ret;
		}
		return part->message != NULL ? walk_leaves(part->message, msg, cursor, out, fn) : 0;
	}
	if (part->hdr_off < *cursor)
		return 0;
	size_t mark = out->len;
	mime_buf_add(out, msg + *cursor, part->hdr_off - *cursor);
	int ret = fn(part, msg, out);
	if (ret <= 0) {
		out->len = mark;
		out->data[mark] = '\0';
		return ret;
	}
	*cursor = part->body_off + part->body_len;
	return 0;
}

/* BINARY: an encoded leaf inside what is asked for is decoded and its
 * header says so, as Dovecot does */
static int binary_leaf(const struct mime_part *leaf, const char *msg, struct mime_buf *out)
{
	enum mime_cte cte = part_cte(leaf);
	if (cte == MIME_CTE_UNKNOWN)
		return -ENOTSUP;
	if (cte == MIME_CTE_IDENTITY)
		return 0;
	header_with_cte(msg + leaf->hdr_off, leaf->hdr_len, "binary", out);
	return body_decode(leaf, msg, cte, out) < 0 ? -EILSEQ : 1;
}

int mime_part_decode(const struct mime_part *part, const char *msg, bool whole, struct mime_buf *out)
{
	out->len = 0;
	mime_buf_add(out, "", 0);
	int ret;
	size_t cursor = whole ? part->hdr_off : part->body_off;
	if (is_leaf(part) && !whole) {
		enum mime_cte cte = part_cte(part);
		ret = cte == MIME_CTE_UNKNOWN ? -ENOTSUP : body_decode(part, msg, cte, out);
		cursor = part->body_off + part->body_len;
	} else {
		ret = walk_leaves(part, msg, &cursor, out, binary_leaf);
	}
	if (ret < 0) {
		out->len = 0;
		out->data[0] = '\0';
		return ret;
	}
	size_t end = part->body_off + part->body_len;
	if (cursor < end)
		mime_buf_add(out, msg + cursor, end - cursor);
	return 0;
}

/* a body the Maildir's LF line ends would not give back as it was */
static bool body_needs_encoding(const char *body, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (body[i] == '\0' || (body[i] == '\r' && (i + 1 == len || body[i + 1] != '\n')) ||
		    (body[i] == '\n' && (i == 0 || body[i - 1] != '\r')))
			return true;
	}
	return false;
}

static int base64_leaf(const struct mime_part *leaf, const char *msg, struct mime_buf *out)
{
	if (part_cte(leaf) != MIME_CTE_IDENTITY || strcmp(leaf->type, "multipart") == 0 ||
	    strcmp(leaf->type, "message") == 0 || !body_needs_encoding(msg + leaf->body_off, leaf->body_len))
		return 0;
	header_with_cte(msg + leaf->hdr_off, leaf->hdr_len, "base64", out);
	/* 57 bytes make a 76-character line (RFC 2045 6.8) */
	char line[BASE64_ENCODED_LEN(57) + 1];
	for (size_t off = 0; off < leaf->body_len; off += 57) {
		size_t n = leaf->body_len - off < 57 ? leaf->body_len - off : 57;
		mime_buf_add(out, line, base64_encode(msg + leaf->body_off + off, n, line));
		if (off + n < leaf->body_len)
			mime_buf_add(out, "\r\n", 2);
	}
	return 1;
}

char *mime_binary_to_base64(const char *msg, size_t len, size_t *len_r)
{
	struct mime_part *root = mime_parse(msg, len);
	struct mime_buf out = { 0 };
	size_t cursor = 0;
	(void)walk_leaves(root, msg, &cursor, &out, base64_leaf);
	mime_free(root);
	if (cursor == 0) {
		mime_buf_free(&out);
		return NULL;
	}
	mime_buf_add(&out, msg + cursor, len - cursor);
	*len_r = out.len;
	return out.data;
}
