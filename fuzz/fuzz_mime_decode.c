/* fuzz_mime_decode — the Content-Transfer-Encoding decoders IMAP BINARY uses
 * (mail/mime-decode.h) on message bytes a sender controls. Byte 0 picks the
 * encoding and a split point: fed in two pieces or in one, the result and
 * the output must be the same, and never longer than the input plus 3.
 * Arbitrary bytes base64-encoded must decode back to themselves. Then the
 * whole input parsed as a message and every first-level part decoded. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base64.h"
#include "mail/mime-decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool cond)
{
	if (!cond)
		abort();
}

static enum parse_result run(enum mime_cte cte, const uint8_t *in, size_t len, size_t split,
			     struct mime_buf *out)
{
	struct mime_decoder dec;
	mime_decoder_init(&dec, cte);
	out->len = 0;
	if (mime_decoder_feed(&dec, in, split, out) == PARSE_ERROR ||
	    mime_decoder_feed(&dec, in + split, len - split, out) == PARSE_ERROR)
		return PARSE_ERROR;
	return mime_decoder_finish(&dec, out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	enum mime_cte cte = (enum mime_cte)(data[0] & 3);
	data++;
	size--;
	size_t split = size > 0 ? (size_t)data[0] % (size + 1) : 0;

	struct mime_buf whole = { 0 }, parts = { 0 };
	enum parse_result r1 = run(cte, data, size, size, &whole);
	enum parse_result r2 = run(cte, data, size, split, &parts);
	check(r1 == r2 && r1 != PARSE_MORE);
	if (r1 == PARSE_OK) {
		check(whole.len == parts.len && memcmp(whole.data, parts.data, whole.len) == 0);
		check(whole.len <= size + 3);
	}

	/* base64 of anything decodes back to it, wrapped or not */
	char *enc = malloc(BASE64_ENCODED_LEN(size) + 1);
	size_t elen = base64_encode(data, size, enc);
	check(run(MIME_CTE_BASE64, (const uint8_t *)enc, elen, split % (elen + 1), &whole) == PARSE_OK);
	check(whole.len == size && memcmp(whole.data, data, size) == 0);
	free(enc);

	/* the input as a message: decode what BINARY[n] would */
	char *msg = malloc(size + 1);
	memcpy(msg, data, size);
	msg[size] = '\0';
	struct mime_part *root = mime_parse(msg, size);
	int ret = mime_part_decode(root, msg, true, &whole);
	check(ret == 0 || ret == -ENOTSUP || ret == -EILSEQ);
	for (size_t i = 0; i < root->nchildren; i++) {
		const struct mime_part *child = &root->children[i];
		ret = mime_part_decode(child, msg, false, &whole);
		check(ret == 0 || ret == -ENOTSUP || ret == -EILSEQ);
		check(ret == 0 || whole.len == 0);
		if (ret == 0 && child->nchildren == 0 && child->message == NULL)
			check(whole.len <= child->body_len + 3);
	}
	mime_free(root);
	free(msg);
	mime_buf_free(&whole);
	mime_buf_free(&parts);
	return 0;
}
