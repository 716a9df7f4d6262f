/* The PROXY protocol parser (v1 and v2 with TLVs), fed the input twice: in
 * one piece and in chunks whose size byte 0 picks. Both must end the same
 * way at the same byte with the same header; an accepted header stays within
 * the bounds the module promises and its TLV ranges lie inside it. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy-protocol.h"

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

struct result {
	enum parse_result r;
	enum proxy_error err;
	size_t consumed;
	struct proxy_header h;
	uint8_t copy[PROXY_HEADER_MAX]; /* the header's bytes, for comparison */
};

static void check_range(const struct proxy_parser *p, const uint8_t *v, size_t len)
{
	if (v == NULL) {
		CHECK(len == 0);
		return;
	}
	CHECK(v >= p->buf && v + len <= p->buf + p->len);
}

static void run(const uint8_t *data, size_t size, size_t chunk, struct result *out)
{
	struct proxy_parser *p = malloc(sizeof(*p));
	proxy_parser_init(p);
	memset(out, 0, sizeof(*out));
	out->r = PARSE_MORE;
	size_t off = 0;
	while (off < size && out->r == PARSE_MORE) {
		size_t len = size - off < chunk ? size - off : chunk;
		/* an exact-size copy: ASan sees any read past the chunk */
		uint8_t *c = malloc(len);
		memcpy(c, data + off, len);
		size_t consumed = 0;
		out->r = proxy_parser_feed(p, c, len, &consumed, &out->h, &out->err);
		free(c);
		CHECK(consumed <= len);
		if (out->r == PARSE_MORE)
			CHECK(consumed == len && out->err == PROXY_ERR_NONE);
		off += consumed;
	}
	out->consumed = off;
	if (out->r == PARSE_OK) {
		const struct proxy_header *h = &out->h;
		CHECK(h->len == off);
		CHECK(h->version == 1 || h->version == 2);
		CHECK(h->len <= (h->version == 1 ? PROXY_V1_MAX : PROXY_HEADER_MAX));
		CHECK(h->local || h->src.ss_family == AF_INET || h->src.ss_family == AF_INET6);
		CHECK(h->local || h->src.ss_family == h->dst.ss_family);
		CHECK(!h->ssl || (h->ssl_client & PROXY_SSL_CLIENT_SSL));
		check_range(p, h->ssl_version, h->ssl_version_len);
		check_range(p, h->ssl_cn, h->ssl_cn_len);
		check_range(p, h->authority, h->authority_len);
		check_range(p, h->alpn, h->alpn_len);
		CHECK(memcmp(p->buf, data, h->len) == 0);
		/* pointers die with the parser: keep offsets only */
		out->h.ssl_version = out->h.ssl_version ? (const uint8_t *)(out->h.ssl_version - p->buf) : NULL;
		out->h.ssl_cn = out->h.ssl_cn ? (const uint8_t *)(out->h.ssl_cn - p->buf) : NULL;
		out->h.authority = out->h.authority ? (const uint8_t *)(out->h.authority - p->buf) : NULL;
		out->h.alpn = out->h.alpn ? (const uint8_t *)(out->h.alpn - p->buf) : NULL;
	} else if (out->r == PARSE_ERROR) {
		CHECK(out->err != PROXY_ERR_NONE);
		CHECK(proxy_error_str(out->err) != NULL);
	}
	free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	size_t chunk = (size_t)(data[0] % 32) + 1;
	data++;
	size--;
	static struct result whole, split;
	run(data, size, size == 0 ? 1 : size, &whole);
	run(data, size, chunk, &split);
	CHECK(whole.r == split.r);
	CHECK(whole.err == split.err);
	if (whole.r != PARSE_MORE)
		CHECK(whole.consumed == split.consumed);
	if (whole.r == PARSE_OK)
		CHECK(memcmp(&whole.h, &split.h, sizeof(whole.h)) == 0);
	return 0;
}
