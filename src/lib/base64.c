#include "lib/base64.h"

#include <stdint.h>

static const char b64chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t base64_encode(const void *src, size_t len, char *out)
{
	const uint8_t *s = src;
	size_t o = 0, i = 0;
	for (; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
		out[o++] = b64chars[v >> 18];
		out[o++] = b64chars[(v >> 12) & 63];
		out[o++] = b64chars[(v >> 6) & 63];
		out[o++] = b64chars[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)s[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)s[i + 1] << 8;
		out[o++] = b64chars[v >> 18];
		out[o++] = b64chars[(v >> 12) & 63];
		out[o++] = i + 1 < len ? b64chars[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

int base64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* One decoded group of 24 bits w carrying bytes (1-3) of data: canonical
 * (bits past the data are zero) and within outsize. */
static bool put_group(uint32_t w, size_t bytes, uint8_t *o, size_t *n, size_t outsize)
{
	if ((bytes == 2 && (w & 0xff) != 0) || (bytes == 1 && (w & 0xffff) != 0))
		return false;
	if (*n + bytes > outsize)
		return false;
	o[(*n)++] = (uint8_t)(w >> 16);
	if (bytes > 1)
		o[(*n)++] = (uint8_t)(w >> 8);
	if (bytes > 2)
		o[(*n)++] = (uint8_t)w;
	return true;
}

bool base64_decode(const char *src, size_t len, void *out, size_t outsize, size_t *outlen_r)
{
	uint8_t *o = out;
	size_t n = 0;
	if (len % 4 != 0)
		return false;
	for (size_t i = 0; i < len; i += 4) {
		int v[4];
		size_t pad = 0;
		for (int j = 0; j < 4; j++) {
			char c = src[i + (size_t)j];
			if (c == '=' && i + 4 == len && j >= 2) {
				v[j] = 0;
				pad++;
			} else if (pad > 0 || (v[j] = base64_value(c)) < 0) {
				return false;
			}
		}
		if (pad == 1 && src[i + 2] == '=')
			return false;
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
			     (uint32_t)v[2] << 6 | (uint32_t)v[3];
		if (!put_group(w, 3 - pad, o, &n, outsize))
			return false;
	}
	*outlen_r = n;
	return true;
}

static int b64urlval(char c)
{
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	if (c == '+' || c == '/')
		return -1;
	return base64_value(c);
}

bool base64url_decode(const char *src, size_t len, void *out, size_t outsize,
		      size_t *outlen_r)
{
	uint8_t *o = out;
	size_t n = 0;
	if (len % 4 == 1)
		return false;
	for (size_t i = 0; i < len; i += 4) {
		size_t chunk = len - i < 4 ? len - i : 4;
		uint32_t w = 0;
		for (size_t j = 0; j < 4; j++) {
			int v = 0;
			if (j < chunk && (v = b64urlval(src[i + j])) < 0)
				return false;
			w = w << 6 | (uint32_t)v;
		}
		if (!put_group(w, chunk - 1, o, &n, outsize))
			return false;
	}
	*outlen_r = n;
	return true;
}

size_t base64_decode_lenient(const char *src, size_t len, void *out)
{
	uint8_t *o = out;
	size_t n = 0;
	uint32_t acc = 0;
	unsigned int bits = 0;
	for (size_t i = 0; i < len; i++) {
		int v = base64_value(src[i]);
		if (v < 0)
			continue;
		/* only the low 14 bits ever matter: keep acc from overflowing */
		acc = ((acc << 6) | (uint32_t)v) & 0x3fff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			o[n++] = (uint8_t)(acc >> bits);
		}
	}
	return n;
}
