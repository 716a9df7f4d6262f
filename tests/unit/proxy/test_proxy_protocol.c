/* The PROXY protocol parser: every valid v1/v2 sample, with mail protocol
 * bytes after it, fed at every split point and one byte at a time must give
 * the same header and consume exactly the header; every bad sample must give
 * its error at every split, never a header. Chunks are copied into
 * exact-size allocations so ASan catches a read past them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "proxy/proxy-protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRAILER "a1 CAPABILITY\r\n"

/* ---- rendering a header as a string to compare ---------------------- */

static void addr_str(const struct sockaddr_storage *ss, char *out, size_t size)
{
	char a[INET6_ADDRSTRLEN];
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &s->sin_addr, a, sizeof(a));
		snprintf(out, size, "%s:%u", a, ntohs(s->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof(a));
		snprintf(out, size, "[%s]:%u", a, ntohs(s->sin6_port));
	} else {
		snprintf(out, size, "?");
	}
}

static void render(const struct proxy_header *h, char *out, size_t size)
{
	char src[64], dst[64];
	int n;
	if (h->local) {
		n = snprintf(out, size, "v%u local", h->version);
	} else {
		addr_str(&h->src, src, sizeof(src));
		addr_str(&h->dst, dst, sizeof(dst));
		n = snprintf(out, size, "v%u %s -> %s", h->version, src, dst);
	}
	if (h->ssl || h->ssl_client != 0)
		n += snprintf(out + n, size - (size_t)n, " ssl=%u/%02x/%u", h->ssl, h->ssl_client,
			      h->ssl_verify);
	if (h->ssl_version != NULL)
		n += snprintf(out + n, size - (size_t)n, " ver=%.*s", (int)h->ssl_version_len,
			      (const char *)h->ssl_version);
	if (h->ssl_cn != NULL)
		n += snprintf(out + n, size - (size_t)n, " cn=%.*s", (int)h->ssl_cn_len,
			      (const char *)h->ssl_cn);
	if (h->authority != NULL)
		n += snprintf(out + n, size - (size_t)n, " auth=%.*s", (int)h->authority_len,
			      (const char *)h->authority);
	if (h->alpn != NULL)
		n += snprintf(out + n, size - (size_t)n, " alpn=%.*s", (int)h->alpn_len,
			      (const char *)h->alpn);
	if (h->crc32c)
		snprintf(out + n, size - (size_t)n, " crc32c");
}

/* ---- feeding --------------------------------------------------------- */

struct outcome {
	enum parse_result r;
	enum proxy_error err;
	size_t consumed; /* total bytes consumed when the parser finished */
	char text[512];
};

/* Feeds in[0..n) in chunks ending at the given cut points (ascending, < n),
 * stopping at the first OK/ERROR. */
static void feed_cuts(const uint8_t *in, size_t n, const size_t *cuts, size_t ncuts,
		      struct outcome *o)
{
	struct proxy_parser *p = malloc(sizeof(*p));
	proxy_parser_init(p);
	memset(o, 0, sizeof(*o));
	o->r = PARSE_MORE;
	size_t off = 0;
	for (size_t c = 0; c <= ncuts && o->r == PARSE_MORE; c++) {
		size_t end = c < ncuts ? cuts[c] : n;
		size_t len = end - off;
		uint8_t *chunk = malloc(len == 0 ? 1 : len);
		memcpy(chunk, in + off, len);
		size_t consumed = 99999;
		struct proxy_header h;
		enum proxy_error err = PROXY_ERR_NONE;
		o->r = proxy_parser_feed(p, chunk, len, &consumed, &h, &err);
		assert_true(consumed <= len);
		if (o->r == PARSE_MORE) {
			assert_int_equal(consumed, len);
			assert_int_equal(err, PROXY_ERR_NONE);
		} else if (o->r == PARSE_OK) {
			assert_int_equal(err, PROXY_ERR_NONE);
			assert_int_equal(h.len, off + consumed);
			render(&h, o->text, sizeof(o->text));
		} else {
			assert_int_not_equal(err, PROXY_ERR_NONE);
			o->err = err;
		}
		o->consumed = off + consumed;
		free(chunk);
		off = end;
	}
	/* a finished parser takes nothing more */
	if (o->r != PARSE_MORE) {
		size_t consumed;
		struct proxy_header h;
		enum proxy_error err;
		assert_int_equal(proxy_parser_feed(p, (const uint8_t *)"x", 1, &consumed, &h, &err),
				 PARSE_ERROR);
		assert_int_equal(consumed, 0);
	}
	free(p);
}

/* every 2-chunk split, a 3-chunk split family and one byte at a time must
 * agree with the whole-buffer outcome */
static void feed_all_splits(const uint8_t *in, size_t n, struct outcome *whole)
{
	feed_cuts(in, n, NULL, 0, whole);
	struct outcome o;
	for (size_t s = 0; s <= n; s++) {
		size_t cuts[2] = { s, 0 };
		feed_cuts(in, n, cuts, 1, &o);
		assert_int_equal(o.r, whole->r);
		assert_int_equal(o.err, whole->err);
		assert_string_equal(o.text, whole->text);
		if (o.r == PARSE_OK)
			assert_int_equal(o.consumed, whole->consumed);
		for (size_t t = s; t <= n; t += 7) {
			cuts[1] = t;
			feed_cuts(in, n, cuts, 2, &o);
			assert_int_equal(o.r, whole->r);
			assert_int_equal(o.err, whole->err);
			assert_string_equal(o.text, whole->text);
		}
	}
	size_t *cuts = malloc(sizeof(size_t) * (n + 1));
	for (size_t i = 0; i < n; i++)
		cuts[i] = i + 1;
	feed_cuts(in, n, cuts, n > 0 ? n - 1 : 0, &o);
	free(cuts);
	assert_int_equal(o.r, whole->r);
	assert_int_equal(o.err, whole->err);
	assert_string_equal(o.text, whole->text);
	if (o.r == PARSE_OK)
		assert_int_equal(o.consumed, whole->consumed);
}

/* ---- building samples ------------------------------------------------ */

struct sample {
	uint8_t b[2048];
	size_t n;
};

static void put(struct sample *s, const void *d, size_t n)
{
	assert_true(s->n + n <= sizeof(s->b));
	memcpy(s->b + s->n, d, n);
	s->n += n;
}

static void put_str(struct sample *s, const char *str)
{
	put(s, str, strlen(str));
}

static void put_u8(struct sample *s, uint8_t v)
{
	put(s, &v, 1);
}

static void put_u16(struct sample *s, uint16_t v)
{
	put_u8(s, (uint8_t)(v >> 8));
	put_u8(s, (uint8_t)v);
}

static const uint8_t sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49,
				 0x54, 0x0A };

/* v2 header: the fixed part, then body (already built) */
static void v2(struct sample *s, uint8_t ver_cmd, uint8_t fam, const struct sample *body)
{
	s->n = 0;
	put(s, sig, sizeof(sig));
	put_u8(s, ver_cmd);
	put_u8(s, fam);
	put_u16(s, (uint16_t)body->n);
	put(s, body->b, body->n);
}

static void body_inet(struct sample *b, const char *src, const char *dst, uint16_t sp, uint16_t dp)
{
	uint8_t a[4];
	inet_pton(AF_INET, src, a);
	put(b, a, 4);
	inet_pton(AF_INET, dst, a);
	put(b, a, 4);
	put_u16(b, sp);
	put_u16(b, dp);
}

static void body_inet6(struct sample *b, const char *src, const char *dst, uint16_t sp,
		       uint16_t dp)
{
	uint8_t a[16];
	inet_pton(AF_INET6, src, a);
	put(b, a, 16);
	inet_pton(AF_INET6, dst, a);
	put(b, a, 16);
	put_u16(b, sp);
	put_u16(b, dp);
}

static void tlv(struct sample *b, uint8_t type, const void *v, size_t n)
{
	put_u8(b, type);
	put_u16(b, (uint16_t)n);
	put(b, v, n);
}

/* s (a whole v2 block) with its CRC32C TLV's value (at offset at) filled
 * in as a sender computes it: over the block with the value as zeros */
static void crc_fill(struct sample *s, size_t at)
{
	memset(s->b + at, 0, 4);
	uint32_t c = proxy_crc32c(0, s->b, s->n);
	s->b[at] = (uint8_t)(c >> 24);
	s->b[at + 1] = (uint8_t)(c >> 16);
	s->b[at + 2] = (uint8_t)(c >> 8);
	s->b[at + 3] = (uint8_t)c;
}

static void expect_ok(const struct sample *s, const char *text)
{
	struct sample t = *s;
	size_t hlen = t.n;
	put_str(&t, TRAILER);
	struct outcome o;
	feed_all_splits(t.b, t.n, &o);
	if (o.r != PARSE_OK)
		fail_msg("expected OK (%s), got r=%d err=%s", text, o.r, proxy_error_str(o.err));
	assert_string_equal(o.text, text);
	assert_int_equal(o.consumed, hlen);
}

static void expect_err(const struct sample *s, enum proxy_error err)
{
	struct outcome o;
	feed_all_splits(s->b, s->n, &o);
	if (o.r != PARSE_ERROR || o.err != err)
		fail_msg("expected %s, got r=%d err=%s (%s)", proxy_error_str(err), o.r,
			 proxy_error_str(o.err), o.text);
}

static void expect_err_str(const char *str, enum proxy_error err)
{
	struct sample s = { .n = 0 };
	put_str(&s, str);
	expect_err(&s, err);
}

static void expect_ok_str(const char *str, const char *text)
{
	struct sample s = { .n = 0 };
	put_str(&s, str);
	expect_ok(&s, text);
}

/* ---- v1 -------------------------------------------------------------- */

static void test_v1_valid(void **state)
{
	(void)state;
	expect_ok_str("PROXY TCP4 192.0.2.1 198.51.100.7 56324 143\r\n",
		      "v1 192.0.2.1:56324 -> 198.51.100.7:143");
	expect_ok_str("PROXY TCP6 2001:db8::1 ::1 65535 0\r\n",
		      "v1 [2001:db8::1]:65535 -> [::1]:0");
	expect_ok_str("PROXY TCP6 ::ffff:192.0.2.1 2001:db8::2 1 993\r\n",
		      "v1 [::ffff:192.0.2.1]:1 -> [2001:db8::2]:993");
	expect_ok_str("PROXY UNKNOWN\r\n", "v1 local");
	expect_ok_str("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
		      "v1 local");
	/* the longest line the spec allows: 107 bytes with CRLF */
	expect_ok_str("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
		      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
		      "v1 [ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535 -> "
		      "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
}

static void test_v1_bad(void **state)
{
	(void)state;
	expect_err_str("a1 LOGIN user pass\r\n", PROXY_ERR_SIGNATURE);
	expect_err_str("PROXX TCP4 1.2.3.4 5.6.7.8 1 2\r\n", PROXY_ERR_SIGNATURE);
	expect_err_str("PROXY\r\n", PROXY_ERR_SIGNATURE);
	expect_err_str("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", PROXY_ERR_SIGNATURE);
	expect_err_str("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", PROXY_ERR_PROTOCOL);
	expect_err_str("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", PROXY_ERR_PROTOCOL);
	expect_err_str("PROXY UNKNOWNX\r\n", PROXY_ERR_PROTOCOL);
	expect_err_str("PROXY \r\n", PROXY_ERR_SYNTAX);
	expect_err_str("PROXY TCP4\r\n", PROXY_ERR_SYNTAX);
	expect_err_str("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", PROXY_ERR_SYNTAX);
	expect_err_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", PROXY_ERR_SYNTAX);
	expect_err_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", PROXY_ERR_SYNTAX);
	expect_err_str("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", PROXY_ERR_SYNTAX);
	expect_err_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", PROXY_ERR_SYNTAX);
	expect_err_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", PROXY_ERR_SYNTAX);
	expect_err_str("PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n", PROXY_ERR_SYNTAX);
	expect_err_str("PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n", PROXY_ERR_SYNTAX);
	struct sample nul = { .n = 0 };
	put(&nul, "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\0\r\n", 33);
	expect_err(&nul, PROXY_ERR_SYNTAX);
	expect_err_str("PROXY UNKNOWN \x80\r\n", PROXY_ERR_SYNTAX);
	/* addresses */
	expect_err_str("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", PROXY_ERR_ADDRESS);
	expect_err_str("PROXY TCP4 1.2.3.4 5.6.7.256 1 2\r\n", PROXY_ERR_ADDRESS);
	expect_err_str("PROXY TCP4 ::1 5.6.7.8 1 2\r\n", PROXY_ERR_ADDRESS);
	expect_err_str("PROXY TCP6 1.2.3.4 ::1 1 2\r\n", PROXY_ERR_ADDRESS);
	expect_err_str("PROXY TCP6 ::1 ::g 1 2\r\n", PROXY_ERR_ADDRESS);
	expect_err_str("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", PROXY_ERR_ADDRESS);
	expect_err_str("PROXY TCP6 ::1::2 ::1 1 2\r\n", PROXY_ERR_ADDRESS);
	expect_err_str("PROXY TCP6 0000:0000:0000:0000:0000:0000:0000:0000:0 ::1 1 2\r\n",
		       PROXY_ERR_ADDRESS);
	/* ports */
	expect_err_str("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", PROXY_ERR_PORT);
	expect_err_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n", PROXY_ERR_PORT);
	expect_err_str("PROXY TCP4 1.2.3.4 5.6.7.8 0143 2\r\n", PROXY_ERR_PORT);
	expect_err_str("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", PROXY_ERR_PORT);
	expect_err_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 +2\r\n", PROXY_ERR_PORT);
	expect_err_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2x\r\n", PROXY_ERR_PORT);
	expect_err_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 100000\r\n", PROXY_ERR_PORT);
	/* one byte over the spec's 107 */
	expect_err_str("PROXY UNKNOWN xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		       "xxxxxxxxxxxxxxxxxxxxxxxxxx\r\n", PROXY_ERR_TOO_LONG);
	/* an endless line stops at the bound, not at its end */
	struct sample s = { .n = 0 };
	put_str(&s, "PROXY UNKNOWN ");
	while (s.n < 1500)
		put_u8(&s, 'y');
	struct outcome o;
	feed_cuts(s.b, s.n, NULL, 0, &o);
	assert_int_equal(o.r, PARSE_ERROR);
	assert_int_equal(o.err, PROXY_ERR_TOO_LONG);
	assert_int_equal(o.consumed, PROXY_V1_MAX + 1);
}

static void test_v1_truncated(void **state)
{
	(void)state;
	const char *line = "PROXY TCP4 192.0.2.1 198.51.100.7 56324 143\r\n";
	size_t n = strlen(line);
	for (size_t i = 0; i < n; i++) {
		size_t cuts[1] = { 0 };
		struct outcome o;
		feed_cuts((const uint8_t *)line, i, cuts, 0, &o);
		assert_int_equal(o.r, PARSE_MORE);
	}
}

/* ---- v2 -------------------------------------------------------------- */

static void test_v2_valid(void **state)
{
	(void)state;
	struct sample s, b = { .n = 0 };
	body_inet(&b, "192.0.2.1", "198.51.100.7", 56324, 993);
	v2(&s, 0x21, 0x11, &b);
	expect_ok(&s, "v2 192.0.2.1:56324 -> 198.51.100.7:993");

	b.n = 0;
	body_inet6(&b, "2001:db8::1", "2001:db8::2", 40000, 143);
	v2(&s, 0x21, 0x21, &b);
	expect_ok(&s, "v2 [2001:db8::1]:40000 -> [2001:db8::2]:143");

	/* LOCAL: health check, addresses (even a bogus family) ignored */
	b.n = 0;
	v2(&s, 0x20, 0x00, &b);
	expect_ok(&s, "v2 local");
	body_inet(&b, "192.0.2.1", "198.51.100.7", 1, 2);
	v2(&s, 0x20, 0x11, &b);
	expect_ok(&s, "v2 local");
	v2(&s, 0x20, 0xf7, &b);
	expect_ok(&s, "v2 local");

	/* PROXY with AF_UNSPEC: keep the socket's addresses */
	b.n = 0;
	v2(&s, 0x21, 0x00, &b);
	expect_ok(&s, "v2 local");
	/* AF_UNIX: paths mean nothing to us */
	b.n = 0;
	for (int i = 0; i < 216; i++)
		put_u8(&b, (uint8_t)(i < 100 ? 'a' : 0));
	v2(&s, 0x21, 0x31, &b);
	expect_ok(&s, "v2 local");

	/* TLVs: SSL with version and CN sub-TLVs, authority, ALPN, unknown,
	 * NOOP and CRC32C skipped */
	b.n = 0;
	body_inet(&b, "203.0.113.9", "198.51.100.7", 5555, 143);
	tlv(&b, 0x04, "", 0);
	tlv(&b, 0x02, "mail.example.com", 16);
	tlv(&b, 0x01, "imap", 4);
	struct sample ssl = { .n = 0 };
	put_u8(&ssl, 0x07);
	put_u16(&ssl, 0);
	put_u16(&ssl, 0);
	tlv(&ssl, 0x21, "TLSv1.3", 7);
	tlv(&ssl, 0x23, "TLS_AES_256_GCM_SHA384", 22);
	tlv(&ssl, 0x22, "client.example", 14);
	tlv(&b, 0x20, ssl.b, ssl.n);
	size_t crc_at = PROXY_V2_FIXED + b.n + 3;
	tlv(&b, 0x03, "\x01\x02\x03\x04", 4);
	tlv(&b, 0xe0, "custom", 6);
	v2(&s, 0x21, 0x11, &b);
	crc_fill(&s, crc_at);
	expect_ok(&s, "v2 203.0.113.9:5555 -> 198.51.100.7:143 ssl=1/07/0 ver=TLSv1.3 "
		      "cn=client.example auth=mail.example.com alpn=imap crc32c");

	/* SSL TLV without the SSL bit (client sent plaintext to the proxy) */
	b.n = 0;
	body_inet(&b, "203.0.113.9", "198.51.100.7", 5555, 143);
	ssl.n = 0;
	put_u8(&ssl, 0x00);
	put_u16(&ssl, 0);
	put_u16(&ssl, 1);
	tlv(&b, 0x20, ssl.b, ssl.n);
	v2(&s, 0x21, 0x11, &b);
	expect_ok(&s, "v2 203.0.113.9:5555 -> 198.51.100.7:143");

	/* SSL TLV, bare (5 bytes), on IPv6 */
	b.n = 0;
	body_inet6(&b, "2001:db8::1", "::1", 1, 995);
	ssl.n = 0;
	put_u8(&ssl, 0x01);
	put_u16(&ssl, 0);
	put_u16(&ssl, 0x0100);
	tlv(&b, 0x20, ssl.b, ssl.n);
	v2(&s, 0x21, 0x21, &b);
	expect_ok(&s, "v2 [2001:db8::1]:1 -> [::1]:995 ssl=1/01/256");

	/* the largest block we take */
	b.n = 0;
	body_inet(&b, "192.0.2.1", "198.51.100.7", 1, 2);
	uint8_t pad[PROXY_V2_MAX_BODY];
	memset(pad, 'p', sizeof(pad));
	tlv(&b, 0x04, pad, PROXY_V2_MAX_BODY - 12 - 3);
	v2(&s, 0x21, 0x11, &b);
	assert_int_equal(s.n, PROXY_HEADER_MAX);
	expect_ok(&s, "v2 192.0.2.1:1 -> 198.51.100.7:2");
}

static void test_v2_bad(void **state)
{
	(void)state;
	struct sample s, b = { .n = 0 };
	body_inet(&b, "192.0.2.1", "198.51.100.7", 1, 2);

	/* every byte of the signature matters */
	for (size_t i = 0; i < 12; i++) {
		v2(&s, 0x21, 0x11, &b);
		s.b[i] ^= 0x40;
		expect_err(&s, PROXY_ERR_SIGNATURE);
	}
	v2(&s, 0x11, 0x11, &b);
	expect_err(&s, PROXY_ERR_VERSION);
	v2(&s, 0x31, 0x11, &b);
	expect_err(&s, PROXY_ERR_VERSION);
	v2(&s, 0x22, 0x11, &b);
	expect_err(&s, PROXY_ERR_COMMAND);
	v2(&s, 0x2f, 0x11, &b);
	expect_err(&s, PROXY_ERR_COMMAND);
	/* UDP, unknown transport, unknown family */
	v2(&s, 0x21, 0x12, &b);
	expect_err(&s, PROXY_ERR_PROTOCOL);
	v2(&s, 0x21, 0x10, &b);
	expect_err(&s, PROXY_ERR_PROTOCOL);
	v2(&s, 0x21, 0x41, &b);
	expect_err(&s, PROXY_ERR_PROTOCOL);
	v2(&s, 0x21, 0x02, &b);
	expect_err(&s, PROXY_ERR_PROTOCOL);
	/* address block shorter than its family needs */
	struct sample shortb = { .n = 0 };
	put(&shortb, b.b, 11);
	v2(&s, 0x21, 0x11, &shortb);
	expect_err(&s, PROXY_ERR_ADDRESS);
	v2(&s, 0x21, 0x21, &b);
	expect_err(&s, PROXY_ERR_ADDRESS);
	v2(&s, 0x21, 0x31, &b);
	expect_err(&s, PROXY_ERR_ADDRESS);
	/* over our bound: refused from the length field, without the body */
	struct sample big = { .n = 0 };
	put(&big, sig, 12);
	put_u8(&big, 0x21);
	put_u8(&big, 0x11);
	put_u16(&big, PROXY_V2_MAX_BODY + 1);
	expect_err(&big, PROXY_ERR_TOO_LONG);
	big.b[14] = 0xff;
	big.b[15] = 0xff;
	expect_err(&big, PROXY_ERR_TOO_LONG);

	/* TLVs overrunning the block: a partial type/length, a value longer
	 * than what is left, SSL shorter than its fixed part, a sub-TLV
	 * overrunning the SSL TLV */
	struct sample t = b;
	put_u8(&t, 0x02);
	v2(&s, 0x21, 0x11, &t);
	expect_err(&s, PROXY_ERR_TLV);
	t = b;
	put_u8(&t, 0x02);
	put_u8(&t, 0x00);
	v2(&s, 0x21, 0x11, &t);
	expect_err(&s, PROXY_ERR_TLV);
	t = b;
	put_u8(&t, 0x02);
	put_u16(&t, 5);
	put_str(&t, "abcd");
	v2(&s, 0x21, 0x11, &t);
	expect_err(&s, PROXY_ERR_TLV);
	t = b;
	tlv(&t, 0x20, "\x01\x00\x00\x00", 4);
	v2(&s, 0x21, 0x11, &t);
	expect_err(&s, PROXY_ERR_TLV);
	t = b;
	struct sample ssl = { .n = 0 };
	put_u8(&ssl, 0x01);
	put_u16(&ssl, 0);
	put_u16(&ssl, 0);
	put_u8(&ssl, 0x21);
	put_u16(&ssl, 10);
	put_str(&ssl, "TLSv1.3");
	tlv(&t, 0x20, ssl.b, ssl.n);
	tlv(&t, 0x02, "x", 1); /* the outer block still has room: must not matter */
	v2(&s, 0x21, 0x11, &t);
	expect_err(&s, PROXY_ERR_TLV);

	/* mixing: a v1 prefix then binary, the v2 signature then text */
	expect_err_str("PROXY\r\n\r\n\0\r\nQUIT\n", PROXY_ERR_SIGNATURE);
	expect_err_str("\r\nPROXY TCP4", PROXY_ERR_SIGNATURE);
}

static void test_v2_truncated(void **state)
{
	(void)state;
	struct sample s, b = { .n = 0 };
	body_inet6(&b, "2001:db8::1", "2001:db8::2", 40000, 143);
	tlv(&b, 0x02, "mail.example.com", 16);
	v2(&s, 0x21, 0x21, &b);
	for (size_t i = 0; i < s.n; i++) {
		struct outcome o;
		feed_cuts(s.b, i, NULL, 0, &o);
		assert_int_equal(o.r, PARSE_MORE);
	}
}

/* PP2_TYPE_CRC32C: the known check value, a right checksum (first TLV,
 * last TLV, IPv6) accepted at every split, any flipped bit refused */
static void test_v2_crc32c(void **state)
{
	(void)state;
	assert_int_equal(proxy_crc32c(0, (const uint8_t *)"123456789", 9), 0xE3069283u);
	assert_int_equal(proxy_crc32c(0, NULL, 0), 0);
	/* continuing gives the same as one pass */
	assert_int_equal(proxy_crc32c(proxy_crc32c(0, (const uint8_t *)"1234", 4),
				      (const uint8_t *)"56789", 5), 0xE3069283u);
	/* RFC 3720 B.4: 32 bytes of zeros */
	uint8_t zeros[32] = { 0 };
	assert_int_equal(proxy_crc32c(0, zeros, sizeof(zeros)), 0x8A9136AAu);

	struct sample b = { .n = 0 }, s;
	body_inet(&b, "203.0.113.9", "198.51.100.7", 5555, 143);
	size_t at = PROXY_V2_FIXED + b.n + 3;
	tlv(&b, 0x03, "\0\0\0\0", 4);
	tlv(&b, 0x02, "mail.example.com", 16);
	v2(&s, 0x21, 0x11, &b);
	crc_fill(&s, at);
	expect_ok(&s, "v2 203.0.113.9:5555 -> 198.51.100.7:143 auth=mail.example.com crc32c");
	/* every byte of the body matters (the fixed part has checks of its
	 * own that come first: a flipped length just waits for more) but the
	 * CRC32C TLV's own type byte: changed, there is no checksum to check */
	for (size_t i = PROXY_V2_FIXED; i < s.n; i++) {
		for (int bit = 0; bit < 8 && i != at - 3; bit += 7) {
			struct sample t = s;
			t.b[i] ^= (uint8_t)(1u << bit);
			struct outcome o;
			feed_all_splits(t.b, t.n, &o);
			assert_int_equal(o.r, PARSE_ERROR);
		}
	}
	/* a wrong sum alone: PROXY_ERR_CHECKSUM */
	struct sample t = s;
	t.b[at + 3] ^= 1;
	expect_err(&t, PROXY_ERR_CHECKSUM);
	t = s;
	t.b[s.n - 1] ^= 0x20; /* the authority's last byte */
	expect_err(&t, PROXY_ERR_CHECKSUM);

	/* IPv6, the checksum last */
	b.n = 0;
	body_inet6(&b, "2001:db8::1", "2001:db8::2", 40000, 993);
	tlv(&b, 0x01, "imap", 4);
	at = PROXY_V2_FIXED + b.n + 3;
	tlv(&b, 0x03, "\0\0\0\0", 4);
	v2(&s, 0x21, 0x21, &b);
	crc_fill(&s, at);
	expect_ok(&s, "v2 [2001:db8::1]:40000 -> [2001:db8::2]:993 alpn=imap crc32c");

	/* a CRC32C TLV of another length, or two of them: malformed */
	b.n = 0;
	body_inet(&b, "203.0.113.9", "198.51.100.7", 5555, 143);
	tlv(&b, 0x03, "\0\0\0", 3);
	v2(&s, 0x21, 0x11, &b);
	expect_err(&s, PROXY_ERR_TLV);
	b.n = 0;
	body_inet(&b, "203.0.113.9", "198.51.100.7", 5555, 143);
	at = PROXY_V2_FIXED + b.n + 3;
	tlv(&b, 0x03, "\0\0\0\0", 4);
	tlv(&b, 0x03, "\0\0\0\0", 4);
	v2(&s, 0x21, 0x11, &b);
	crc_fill(&s, at);
	expect_err(&s, PROXY_ERR_TLV);
	/* inside the SSL TLV it is just an unknown sub-TLV */
	b.n = 0;
	body_inet(&b, "203.0.113.9", "198.51.100.7", 5555, 143);
	struct sample ssl = { .n = 0 };
	put_u8(&ssl, 0x01);
	put_u16(&ssl, 0);
	put_u16(&ssl, 0);
	tlv(&ssl, 0x03, "\1\2", 2);
	tlv(&b, 0x20, ssl.b, ssl.n);
	v2(&s, 0x21, 0x11, &b);
	expect_ok(&s, "v2 203.0.113.9:5555 -> 198.51.100.7:143 ssl=1/01/0");
	/* LOCAL ignores the block, checksum and all */
	b.n = 0;
	tlv(&b, 0x03, "\1\2\3\4", 4);
	v2(&s, 0x20, 0x00, &b);
	expect_ok(&s, "v2 local");
}

static void test_error_strings(void **state)
{
	(void)state;
	for (int e = PROXY_ERR_NONE; e <= PROXY_ERR_CHECKSUM; e++)
		assert_string_not_equal(proxy_error_str((enum proxy_error)e), "unknown error");
	assert_string_equal(proxy_error_str((enum proxy_error)999), "unknown error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v1_valid),
		cmocka_unit_test(test_v1_bad),
		cmocka_unit_test(test_v1_truncated),
		cmocka_unit_test(test_v2_valid),
		cmocka_unit_test(test_v2_bad),
		cmocka_unit_test(test_v2_truncated),
		cmocka_unit_test(test_v2_crc32c),
		cmocka_unit_test(test_error_strings),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
