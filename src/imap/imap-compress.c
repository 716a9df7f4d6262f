#include "imap/imap-compress.h"

#include "lib/alloc.h"
#include "lib/log.h"

#include <string.h>
#include <zlib.h>

/* deflate's output is handed on in chunks of this size */
#define COMPRESS_CHUNK 16384

struct imap_compress {
	z_stream in, out;
	imap_send_fn *send;
	void *ctx;
	/* bytes went into deflate since its last sync flush */
	bool pending;
	bool in_ended;
	uint8_t chunk[COMPRESS_CHUNK];
};

struct imap_compress *imap_compress_create(imap_send_fn *send, void *ctx)
{
	struct imap_compress *z = rg_calloc(1, sizeof(*z));
	z->send = send;
	z->ctx = ctx;
	/* windowBits -15: raw deflate with the largest window, as RFC 4978
	 * asks (the client may use any window up to 32 KiB) */
	if (deflateInit2(&z->out, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK ||
	    inflateInit2(&z->in, -15) != Z_OK)
		log_fatal("zlib initialisation failed");
	return z;
}

void imap_compress_destroy(struct imap_compress *z)
{
	if (z == NULL)
		return;
	deflateEnd(&z->out);
	inflateEnd(&z->in);
	rg_free(z);
}

/* run deflate over what it was given, passing each full chunk on */
static void deflate_run(struct imap_compress *z, int flush)
{
	for (;;) {
		z->out.next_out = z->chunk;
		z->out.avail_out = sizeof(z->chunk);
		int ret = deflate(&z->out, flush);
		size_t n = sizeof(z->chunk) - z->out.avail_out;
		if (n > 0)
			z->send(z->ctx, z->chunk, n);
		/* deflate cannot fail on a valid stream with room to write */
		if (ret != Z_OK && ret != Z_BUF_ERROR)
			log_fatal("deflate failed: %d", ret);
		if (z->out.avail_out != 0 && z->out.avail_in == 0)
			return;
	}
}

void imap_compress_write(struct imap_compress *z, const void *data, size_t len)
{
	const uint8_t *p = data;
	while (len > 0) {
		/* avail_in is an unsigned int */
		uInt n = len > (1u << 30) ? 1u << 30 : (uInt)len;
		z->out.next_in = (Bytef *)(uintptr_t)p;
		z->out.avail_in = n;
		deflate_run(z, Z_NO_FLUSH);
		p += n;
		len -= n;
		z->pending = true;
	}
}

void imap_compress_flush(struct imap_compress *z)
{
	if (!z->pending)
		return;
	z->out.next_in = NULL;
	z->out.avail_in = 0;
	deflate_run(z, Z_SYNC_FLUSH);
	z->pending = false;
}

enum parse_result imap_compress_inflate(struct imap_compress *z, const uint8_t *in, size_t len,
					size_t *used_r, uint8_t *out, size_t size,
					size_t *out_len_r, const char **error_r)
{
	*used_r = 0;
	*out_len_r = 0;
	if (z->in_ended) {
		*error_r = "data after the end of the deflate stream";
		return len > 0 ? PARSE_ERROR : PARSE_OK;
	}
	uInt n_in = len > (1u << 30) ? 1u << 30 : (uInt)len;
	uInt n_out = size > (1u << 30) ? 1u << 30 : (uInt)size;
	z->in.next_in = (Bytef *)(uintptr_t)in;
	z->in.avail_in = n_in;
	z->in.next_out = out;
	z->in.avail_out = n_out;
	int ret = inflate(&z->in, Z_SYNC_FLUSH);
	*used_r = n_in - z->in.avail_in;
	*out_len_r = n_out - z->in.avail_out;
	switch (ret) {
	case Z_OK:
	case Z_BUF_ERROR: /* no progress possible: needs more input */
		return PARSE_MORE;
	case Z_STREAM_END:
		z->in_ended = true;
		return PARSE_OK;
	case Z_NEED_DICT:
		*error_r = "deflate stream asks for a dictionary";
		return PARSE_ERROR;
	case Z_MEM_ERROR:
		log_fatal("inflate: out of memory");
	default:
		*error_r = z->in.msg != NULL ? z->in.msg : "corrupt deflate stream";
		return PARSE_ERROR;
	}
}
