#include "proxy/proxy-protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

/* the spec's numbers (doc/proxy-protocol.txt in HAProxy) */
static const uint8_t v2_signature[12] = {
	0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
};
static const char v1_signature[] = "PROXY ";
#define V1_SIG_LEN 6

enum {
	V2_CMD_LOCAL = 0x0, V2_CMD_PROXY = 0x1,
	V2_AF_UNSPEC = 0x0, V2_AF_INET = 0x1, V2_AF_INET6 = 0x2, V2_AF_UNIX = 0x3,
	V2_SOCK_UNSPEC = 0x0, V2_SOCK_STREAM = 0x1,
	V2_ADDR_INET = 12, V2_ADDR_INET6 = 36, V2_ADDR_UNIX = 216,
	PP2_TYPE_ALPN = 0x01, PP2_TYPE_AUTHORITY = 0x02, PP2_TYPE_CRC32C = 0x03, PP2_TYPE_SSL = 0x20,
	PP2_SUBTYPE_SSL_VERSION = 0x21, PP2_SUBTYPE_SSL_CN = 0x22,
	PP2_SSL_FIXED = 5, /* client (1) + verify (4) before the sub-TLVs */
};

void proxy_parser_init(struct proxy_parser *p)
{
	p->len = 0;
	p->need = 0;
	p->version = 0;
	p->error = PROXY_ERR_NONE;
}

const char *proxy_error_str(enum proxy_error error)
{
	switch (error) {
	case PROXY_ERR_NONE:
		return "no error";
	case PROXY_ERR_SIGNATURE:
		return "no valid PROXY header signature";
	case PROXY_ERR_VERSION:
		return "unsupported protocol version";
	case PROXY_ERR_COMMAND:
		return "invalid command";
	case PROXY_ERR_TOO_LONG:
		return "header too long";
	case PROXY_ERR_SYNTAX:
		return "malformed header line";
	case PROXY_ERR_PROTOCOL:
		return "unsupported proxied protocol";
	case PROXY_ERR_ADDRESS:
		return "invalid address";
	case PROXY_ERR_PORT:
		return "invalid port";
	case PROXY_ERR_TLV:
		return "TLV overruns the header";
	case PROXY_ERR_CHECKSUM:
		return "CRC32C mismatch";
	}
	return "unknown error";
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void set_in4(struct sockaddr_storage *ss, const uint8_t addr[4], uint16_t port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	memset(ss, 0, sizeof(*ss));
	sin->sin_family = AF_INET;
	memcpy(&sin->sin_addr, addr, 4);
	sin->sin_port = htons(port);
}

static void set_in6(struct sockaddr_storage *ss, const uint8_t addr[16], uint16_t port)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	memset(ss, 0, sizeof(*ss));
	sin6->sin6_family = AF_INET6;
	memcpy(&sin6->sin6_addr, addr, 16);
	sin6->sin6_port = htons(port);
}

/* ---- v1: "PROXY TCP4 src dst sport dport\r\n" ------------------------- */

/* Next space-separated field of line[*pos..end): exactly one space between
 * fields, none leading or trailing. */
static bool v1_field(const char *line, size_t end, size_t *pos, const char **f_r, size_t *len_r)
{
	size_t start = *pos;
	if (start >= end)
		return false;
	size_t i = start;
	while (i < end && line[i] != ' ')
		i++;
	if (i == start)
		return false; /* empty field: two spaces */
	*f_r = line + start;
	*len_r = i - start;
	if (i < end) {
		i++; /* the separator */
		if (i == end)
			return false; /* trailing space */
	}
	*pos = i;
	return true;
}

static bool v1_port(const char *f, size_t len, uint16_t *port_r)
{
	if (len == 0 || len > 5 || (len > 1 && f[0] == '0'))
		return false;
	uint32_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (f[i] < '0' || f[i] > '9')
			return false;
		v = v * 10 + (uint32_t)(f[i] - '0');
	}
	if (v > 65535)
		return false;
	*port_r = (uint16_t)v;
	return true;
}

static bool v1_addr(const char *f, size_t len, int family, uint8_t out[16])
{
	char tmp[INET6_ADDRSTRLEN];
	if (len >= sizeof(tmp))
		return false;
	memcpy(tmp, f, len);
	tmp[len] = '\0';
	return inet_pton(family, tmp, out) == 1;
}

/* buf[0..len) is a whole line ending in CRLF, its bytes checked printable */
static enum proxy_error v1_parse(const uint8_t *buf, size_t len, struct proxy_header *h)
{
	const char *line = (const char *)buf;
	size_t end = len - 2, pos = V1_SIG_LEN;
	const char *f;
	size_t flen;

	if (!v1_field(line, end, &pos, &f, &flen))
		return PROXY_ERR_SYNTAX;
	int family;
	if (flen == 7 && memcmp(f, "UNKNOWN", 7) == 0) {
		/* the rest of the line is to be ignored */
		h->local = true;
		return PROXY_ERR_NONE;
	} else if (flen == 4 && memcmp(f, "TCP4", 4) == 0) {
		family = AF_INET;
	} else if (flen == 4 && memcmp(f, "TCP6", 4) == 0) {
		family = AF_INET6;
	} else {
		return PROXY_ERR_PROTOCOL;
	}

	uint8_t src[16], dst[16];
	uint16_t sport, dport;
	if (!v1_field(line, end, &pos, &f, &flen))
		return PROXY_ERR_SYNTAX;
	if (!v1_addr(f, flen, family, src))
		return PROXY_ERR_ADDRESS;
	if (!v1_field(line, end, &pos, &f, &flen))
		return PROXY_ERR_SYNTAX;
	if (!v1_addr(f, flen, family, dst))
		return PROXY_ERR_ADDRESS;
	if (!v1_field(line, end, &pos, &f, &flen))
		return PROXY_ERR_SYNTAX;
	if (!v1_port(f, flen, &sport))
		return PROXY_ERR_PORT;
	if (!v1_field(line, end, &pos, &f, &flen))
		return PROXY_ERR_SYNTAX;
	if (!v1_port(f, flen, &dport))
		return PROXY_ERR_PORT;
	if (pos != end)
		return PROXY_ERR_SYNTAX; /* a sixth field */

	if (family == AF_INET) {
		set_in4(&h->src, src, sport);
		set_in4(&h->dst, dst, dport);
	} else {
		set_in6(&h->src, src, sport);
		set_in6(&h->dst, dst, dport);
	}
	return PROXY_ERR_NONE;
}

/* ---- v2: fixed 16 bytes, addresses, TLVs ------------------------------ */

uint32_t proxy_crc32c(uint32_t crc, const uint8_t *data, size_t len)
{
	/* bit by bit, reflected polynomial 0x82F63B78: a header is at most
	 * PROXY_HEADER_MAX bytes, so a table would not pay for itself */
	crc = ~crc;
	for (size_t i = 0; i < len; i++) {
		crc ^= data[i];
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
	}
	return ~crc;
}

/* Walks the TLVs in v[0..len): each must fit in it. Calls back per TLV.
 * *crc_r: where a PP2_TYPE_CRC32C value is (top level only). */
static enum proxy_error v2_tlvs(const uint8_t *v, size_t len, struct proxy_header *h, bool ssl_sub,
				const uint8_t **crc_r);

static enum proxy_error v2_tlv(uint8_t type, const uint8_t *v, size_t len,
			       struct proxy_header *h, bool ssl_sub, const uint8_t **crc_r)
{
	if (ssl_sub) {
		switch (type) {
		case PP2_SUBTYPE_SSL_VERSION:
			h->ssl_version = v;
			h->ssl_version_len = len;
			break;
		case PP2_SUBTYPE_SSL_CN:
			h->ssl_cn = v;
			h->ssl_cn_len = len;
			break;
		default:
			break; /* cipher, algorithms, unknown: skipped */
		}
		return PROXY_ERR_NONE;
	}
	switch (type) {
	case PP2_TYPE_ALPN:
		h->alpn = v;
		h->alpn_len = len;
		break;
	case PP2_TYPE_AUTHORITY:
		h->authority = v;
		h->authority_len = len;
		break;
	case PP2_TYPE_SSL:
		if (len < PP2_SSL_FIXED)
			return PROXY_ERR_TLV;
		h->ssl_client = v[0];
		h->ssl_verify = be32(v + 1);
		h->ssl = (v[0] & PROXY_SSL_CLIENT_SSL) != 0;
		return v2_tlvs(v + PP2_SSL_FIXED, len - PP2_SSL_FIXED, h, true, crc_r);
	case PP2_TYPE_CRC32C:
		if (len != 4 || *crc_r != NULL)
			return PROXY_ERR_TLV;
		*crc_r = v; /* checked once the whole block is walked */
		break;
	default:
		break; /* NOOP, UNIQUE_ID, NETNS, custom: skipped */
	}
	return PROXY_ERR_NONE;
}

static enum proxy_error v2_tlvs(const uint8_t *v, size_t len, struct proxy_header *h, bool ssl_sub,
				const uint8_t **crc_r)
{
	size_t off = 0;
	while (off < len) {
		if (len - off < 3)
			return PROXY_ERR_TLV;
		uint8_t type = v[off];
		size_t tlen = be16(v + off + 1);
		off += 3;
		if (tlen > len - off)
			return PROXY_ERR_TLV;
		enum proxy_error e = v2_tlv(type, v + off, tlen, h, ssl_sub, crc_r);
		if (e != PROXY_ERR_NONE)
			return e;
		off += tlen;
	}
	return PROXY_ERR_NONE;
}

/* buf[0..PROXY_V2_FIXED + body_len) is the whole block; signature, version
 * and command were checked as they arrived */
static enum proxy_error v2_parse(const uint8_t *buf, size_t body_len, struct proxy_header *h)
{
	uint8_t cmd = buf[12] & 0x0f;
	uint8_t family = buf[13] >> 4, transport = buf[13] & 0x0f;
	const uint8_t *body = buf + PROXY_V2_FIXED;

	if (cmd == V2_CMD_LOCAL) {
		/* health check from the proxy itself: the block is ignored */
		h->local = true;
		return PROXY_ERR_NONE;
	}
	size_t addr_len;
	switch (family) {
	case V2_AF_UNSPEC:
		addr_len = 0;
		h->local = true;
		break;
	case V2_AF_INET:
		addr_len = V2_ADDR_INET;
		break;
	case V2_AF_INET6:
		addr_len = V2_ADDR_INET6;
		break;
	case V2_AF_UNIX:
		addr_len = V2_ADDR_UNIX;
		h->local = true; /* a path tells nothing usable */
		break;
	default:
		return PROXY_ERR_PROTOCOL;
	}
	/* a mail session is a stream; UNSPEC's transport is unspecified too */
	if (family == V2_AF_UNSPEC ? transport != V2_SOCK_UNSPEC && transport != V2_SOCK_STREAM
				   : transport != V2_SOCK_STREAM)
		return PROXY_ERR_PROTOCOL;
	if (body_len < addr_len)
		return PROXY_ERR_ADDRESS;
	if (family == V2_AF_INET) {
		set_in4(&h->src, body, be16(body + 8));
		set_in4(&h->dst, body + 4, be16(body + 10));
	} else if (family == V2_AF_INET6) {
		set_in6(&h->src, body, be16(body + 32));
		set_in6(&h->dst, body + 16, be16(body + 34));
	}
	if (family == V2_AF_UNSPEC)
		return PROXY_ERR_NONE; /* no address block: whatever follows is not TLVs */
	const uint8_t *crc = NULL;
	enum proxy_error e = v2_tlvs(body + addr_len, body_len - addr_len, h, false, &crc);
	if (e != PROXY_ERR_NONE || crc == NULL)
		return e;
	/* the whole block with the checksum's 4 bytes as zeros */
	static const uint8_t zero[4];
	size_t at = (size_t)(crc - buf), total = PROXY_V2_FIXED + body_len;
	uint32_t sum = proxy_crc32c(0, buf, at);
	sum = proxy_crc32c(sum, zero, sizeof(zero));
	sum = proxy_crc32c(sum, crc + 4, total - at - 4);
	if (sum != be32(crc))
		return PROXY_ERR_CHECKSUM;
	h->crc32c = true;
	return PROXY_ERR_NONE;
}

/* ---- the incremental part --------------------------------------------- */

static enum parse_result fail(struct proxy_parser *p, enum proxy_error e, size_t consumed,
			      size_t *consumed_r, enum proxy_error *error_r)
{
	p->error = e;
	*consumed_r = consumed;
	*error_r = e;
	return PARSE_ERROR;
}

static enum parse_result done(struct proxy_parser *p, enum proxy_error e, size_t consumed,
			      size_t *consumed_r, struct proxy_header *h,
			      enum proxy_error *error_r)
{
	if (e != PROXY_ERR_NONE)
		return fail(p, e, consumed, consumed_r, error_r);
	h->version = p->version;
	h->len = p->len;
	*consumed_r = consumed;
	*error_r = PROXY_ERR_NONE;
	/* the header is complete: nothing more may be fed */
	p->need = p->len;
	return PARSE_OK;
}

enum parse_result proxy_parser_feed(struct proxy_parser *p, const uint8_t *data, size_t len,
				    size_t *consumed_r, struct proxy_header *hdr_r,
				    enum proxy_error *error_r)
{
	*error_r = PROXY_ERR_NONE;
	if (p->error != PROXY_ERR_NONE)
		return fail(p, p->error, 0, consumed_r, error_r);
	if (p->need != 0 && p->len == p->need) /* fed again after PARSE_OK */
		return fail(p, PROXY_ERR_SYNTAX, 0, consumed_r, error_r);
	memset(hdr_r, 0, sizeof(*hdr_r));

	size_t i = 0;
	/* signature and version, byte by byte: a client that speaks IMAP
	 * straight away is refused at its first byte */
	while (i < len && (p->version == 0 || p->len < (p->version == 1 ? V1_SIG_LEN : 14))) {
		uint8_t c = data[i];
		if (p->version == 0) {
			if (c == (uint8_t)v1_signature[0])
				p->version = 1;
			else if (c == v2_signature[0])
				p->version = 2;
			else
				return fail(p, PROXY_ERR_SIGNATURE, i + 1, consumed_r, error_r);
		} else if (p->version == 1) {
			if (c != (uint8_t)v1_signature[p->len])
				return fail(p, PROXY_ERR_SIGNATURE, i + 1, consumed_r, error_r);
		} else if (p->len < sizeof(v2_signature)) {
			if (c != v2_signature[p->len])
				return fail(p, PROXY_ERR_SIGNATURE, i + 1, consumed_r, error_r);
		} else if (p->len == 12) {
			if ((c & 0xf0) != 0x20)
				return fail(p, PROXY_ERR_VERSION, i + 1, consumed_r, error_r);
			if ((c & 0x0f) != V2_CMD_LOCAL && (c & 0x0f) != V2_CMD_PROXY)
				return fail(p, PROXY_ERR_COMMAND, i + 1, consumed_r, error_r);
		}
		p->buf[p->len++] = c;
		i++;
	}

	if (p->version == 1) {
		for (; i < len; i++) {
			uint8_t c = data[i];
			if (p->len >= PROXY_V1_MAX)
				return fail(p, PROXY_ERR_TOO_LONG, i + 1, consumed_r, error_r);
			p->buf[p->len++] = c;
			if (c == '\n') {
				if (p->buf[p->len - 2] != '\r')
					return fail(p, PROXY_ERR_SYNTAX, i + 1, consumed_r, error_r);
				return done(p, v1_parse(p->buf, p->len, hdr_r), i + 1,
					    consumed_r, hdr_r, error_r);
			}
			/* a CR only right before the LF; no other control byte */
			if (c < 0x20 && c != '\r')
				return fail(p, PROXY_ERR_SYNTAX, i + 1, consumed_r, error_r);
			if (p->len >= 2 && p->buf[p->len - 2] == '\r')
				return fail(p, PROXY_ERR_SYNTAX, i + 1, consumed_r, error_r);
			if (c >= 0x7f)
				return fail(p, PROXY_ERR_SYNTAX, i + 1, consumed_r, error_r);
		}
		*consumed_r = len;
		return PARSE_MORE;
	}
	if (p->version == 2 && p->len >= 14) {
		if (p->need == 0) {
			/* the two length bytes */
			while (i < len && p->len < PROXY_V2_FIXED)
				p->buf[p->len++] = data[i++];
			if (p->len < PROXY_V2_FIXED) {
				*consumed_r = len;
				return PARSE_MORE;
			}
			size_t body = be16(p->buf + 14);
			if (body > PROXY_V2_MAX_BODY)
				return fail(p, PROXY_ERR_TOO_LONG, i, consumed_r, error_r);
			p->need = (uint16_t)(PROXY_V2_FIXED + body);
		}
		size_t take = p->need - p->len;
		if (take > len - i)
			take = len - i;
		memcpy(p->buf + p->len, data + i, take);
		p->len = (uint16_t)(p->len + take);
		i += take;
		if (p->len == p->need)
			return done(p, v2_parse(p->buf, (size_t)p->need - PROXY_V2_FIXED, hdr_r), i,
				    consumed_r, hdr_r, error_r);
	}
	*consumed_r = len;
	return PARSE_MORE;
}
