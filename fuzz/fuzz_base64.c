/* fuzz_base64 — lib/base64 alone, as SASL uses it pre-auth.
 * Decoding is strict and canonical, so anything it accepts must encode back to
 * exactly the input; anything encoded must decode back to the original. The
 * output buffer is exact-size (byte 0 may shrink it) so ASan sees any write
 * past it, and a too-small buffer must give false, never a partial result. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool cond)
{
	if (!cond)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t shrink = data[0] & 7;
	data++;
	size--;

	/* decode: exact-size copies of input and output */
	char *src = malloc(size + 1);
	memcpy(src, data, size);
	size_t outsize = BASE64_DECODED_MAX(size);
	outsize = outsize > shrink ? outsize - shrink : 0;
	uint8_t *out = malloc(outsize + 1);
	size_t outlen = (size_t)-1;
	if (base64_decode(src, size, out, outsize, &outlen)) {
		check(outlen <= outsize && size % 4 == 0 && outlen <= size / 4 * 3);
		char *again = malloc(BASE64_ENCODED_LEN(outlen) + 1);
		size_t n = base64_encode(out, outlen, again);
		check(n == size && memcmp(again, src, size) == 0 && again[n] == '\0');
		free(again);
	} else {
		/* only a buffer too small may reject a canonical encoding */
		check(outlen == (size_t)-1);
	}
	free(out);
	free(src);

	/* encode arbitrary bytes, decode them back into an exact buffer */
	char *enc = malloc(BASE64_ENCODED_LEN(size) + 1);
	size_t elen = base64_encode(data, size, enc);
	check(elen == BASE64_ENCODED_LEN(size) && strlen(enc) == elen);
	uint8_t *dec = malloc(size + 1);
	size_t dlen = 0;
	check(base64_decode(enc, elen, dec, size, &dlen));
	check(dlen == size && memcmp(dec, data, size) == 0);
	if (size > 0)
		check(!base64_decode(enc, elen, dec, size - 1, &dlen));
	free(dec);
	free(enc);
	return 0;
}
