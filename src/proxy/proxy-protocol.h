/* proxy-protocol.h — incremental parser of HAProxy's PROXY protocol header
 * (v1 text line, v2 binary block with TLVs), as a load balancer sends it
 * before the client's first byte.
 *
 * Bytes go in any split; the parser consumes exactly the header's bytes and
 * never looks past them, so whatever follows in the same chunk belongs to the
 * mail protocol. Invariants: it holds at most PROXY_HEADER_MAX bytes (a v1
 * line longer than 107 bytes or a v2 block longer than PROXY_V2_MAX_BODY is
 * refused as soon as its length is known), every length inside a v2 block
 * (addresses, TLVs, SSL sub-TLVs) is checked against its enclosing length,
 * a v2 block carrying PP2_TYPE_CRC32C must match it (CRC32C of the whole
 * block with the TLV's value as zeros, as the spec says; a mismatch drops
 * the connection), and after an error it accepts nothing more. */
#ifndef RG_PROXY_PROTOCOL_H
#define RG_PROXY_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "lib/parse.h"

#define PROXY_V1_MAX 107            /* the whole v1 line, CRLF included (spec) */
#define PROXY_V2_FIXED 16           /* signature, ver/cmd, family, length */
#define PROXY_V2_MAX_BODY 1024      /* addresses + TLVs we accept (spec allows 64 kB) */
#define PROXY_HEADER_MAX (PROXY_V2_FIXED + PROXY_V2_MAX_BODY)

enum proxy_error {
	PROXY_ERR_NONE = 0,
	PROXY_ERR_SIGNATURE,  /* neither "PROXY " nor the v2 signature */
	PROXY_ERR_VERSION,    /* v2 block of another version */
	PROXY_ERR_COMMAND,    /* v2 command neither LOCAL nor PROXY */
	PROXY_ERR_TOO_LONG,   /* v1 line > 107 bytes, v2 block > our bound */
	PROXY_ERR_SYNTAX,     /* v1: bad field layout, bare LF, control bytes */
	PROXY_ERR_PROTOCOL,   /* v1 not TCP4/TCP6/UNKNOWN; v2 family/transport */
	PROXY_ERR_ADDRESS,    /* an address that does not parse or fit */
	PROXY_ERR_PORT,       /* v1 port not 0..65535 in plain decimal */
	PROXY_ERR_TLV,        /* v2 TLV (or SSL sub-TLV) overruns its container,
			       * a CRC32C TLV not 4 bytes or given twice */
	PROXY_ERR_CHECKSUM,   /* v2 PP2_TYPE_CRC32C does not match the block */
};

/* PP2_CLIENT_* bits of the SSL TLV */
#define PROXY_SSL_CLIENT_SSL 0x01
#define PROXY_SSL_CLIENT_CERT_CONN 0x02
#define PROXY_SSL_CLIENT_CERT_SESS 0x04

/* A parsed header. The byte ranges point into the parser's buffer: valid
 * until the parser is fed again, reset or freed (copy what you keep). They
 * are NULL with length 0 when the TLV is absent. */
struct proxy_header {
	unsigned int version;   /* 1 or 2 */
	size_t len;             /* bytes the header took on the wire */
	/* keep the socket's own addresses: v2 LOCAL (health check), v1
	 * UNKNOWN, v2 AF_UNSPEC or AF_UNIX */
	bool local;
	/* !local: the client's address and the address it connected to */
	struct sockaddr_storage src, dst;
	/* v2 PP2_TYPE_SSL: the client spoke TLS to the proxy */
	bool ssl;
	uint8_t ssl_client;     /* PP2_CLIENT_* bits */
	uint32_t ssl_verify;    /* 0: the client's certificate verified */
	const uint8_t *ssl_version; size_t ssl_version_len; /* PP2_SUBTYPE_SSL_VERSION */
	const uint8_t *ssl_cn; size_t ssl_cn_len;           /* PP2_SUBTYPE_SSL_CN */
	const uint8_t *authority; size_t authority_len;     /* PP2_TYPE_AUTHORITY (SNI) */
	const uint8_t *alpn; size_t alpn_len;               /* PP2_TYPE_ALPN */
	/* PP2_TYPE_CRC32C was present, and matched (else PROXY_ERR_CHECKSUM) */
	bool crc32c;
};

/* buf[0..len) is what was received so far; need is the whole header's size
 * once known (v2 after its fixed part), else 0. */
struct proxy_parser {
	uint16_t len;
	uint16_t need;
	uint8_t version;        /* 0 until the first byte, then 1 or 2 */
	enum proxy_error error; /* sticky */
	uint8_t buf[PROXY_HEADER_MAX];
};

void proxy_parser_init(struct proxy_parser *p);

/* Consumes bytes up to the header's end; *consumed_r says how many.
 * PARSE_OK: *hdr_r is filled, data[*consumed_r..len) is not the header's.
 * PARSE_MORE: all of data consumed, header incomplete. PARSE_ERROR: *error_r
 * says why; the connection should be closed. */
enum parse_result proxy_parser_feed(struct proxy_parser *p, const uint8_t *data, size_t len,
				    size_t *consumed_r, struct proxy_header *hdr_r,
				    enum proxy_error *error_r);

const char *proxy_error_str(enum proxy_error error);

/* CRC32C (Castagnoli, as iSCSI and PROXY v2), continuing from crc (0 to
 * start): proxy_crc32c(0, "123456789", 9) == 0xE3069283. */
uint32_t proxy_crc32c(uint32_t crc, const uint8_t *data, size_t len);

#endif
