/* base64.h — RFC 4648 base64 for SASL. Decoding is strict: no whitespace, only
 * canonical padding; anything else is an error, never a guess. Mail bodies get
 * their own lenient decoder, kept apart so SASL never takes a guess. */
#ifndef RG_BASE64_H
#define RG_BASE64_H

#include <stdbool.h>
#include <stddef.h>

#define BASE64_ENCODED_LEN(n) ((((n) + 2) / 3) * 4)
#define BASE64_DECODED_MAX(n) (((n) / 4) * 3 + 3)

/* the standard alphabet's value of c (0-63), or -1 */
int base64_value(char c);
/* Writes BASE64_ENCODED_LEN(len) chars plus a NUL into out; returns the length. */
size_t base64_encode(const void *src, size_t len, char *out);
/* false on malformed input or when out (outsize bytes) is too small */
bool base64_decode(const char *src, size_t len, void *out, size_t outsize, size_t *outlen_r);
/* RFC 4648 section 5 (JWT's base64url): '-' and '_', no padding, canonical
 * trailing bits; false on anything else or when out is too small */
bool base64url_decode(const char *src, size_t len, void *out, size_t outsize,
		      size_t *outlen_r);
/* Lenient decoding for mail (RFC 2047 words, MIME bodies), where line
 * breaks, missing padding and stray bytes are common and a best effort is
 * what readers expect: characters outside the alphabet (padding included)
 * are skipped and trailing bits short of a byte are dropped. Never for
 * SASL. out must hold BASE64_DECODED_MAX(len) bytes; returns the length. */
size_t base64_decode_lenient(const char *src, size_t len, void *out);

#endif
