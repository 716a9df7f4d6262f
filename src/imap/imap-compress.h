/* imap-compress.h — COMPRESS=DEFLATE (RFC 4978) for the IMAP worker: raw
 * deflate (RFC 1951, no zlib header) both ways, as a stream layer with no
 * syscalls. The worker hands it the socket's bytes to inflate into a buffer
 * of its own (so a decompression bomb never holds more than that buffer
 * here; the command parser bounds what it keeps), and the session's output
 * to deflate, which goes on to the send callback in bounded chunks; each
 * flush (one per batch of responses) ends with Z_SYNC_FLUSH so the client
 * can decode everything sent so far. zlib stays behind this header. */
#ifndef RG_IMAP_COMPRESS_H
#define RG_IMAP_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "imap/imap-client.h"
#include "lib/parse.h"

struct imap_compress;

/* compressed output goes to send(ctx, ...) */
struct imap_compress *imap_compress_create(imap_send_fn *send, void *ctx);
void imap_compress_destroy(struct imap_compress *z);

/* deflate data (buffered inside zlib until the next flush or a full chunk) */
void imap_compress_write(struct imap_compress *z, const void *data, size_t len);
/* Z_SYNC_FLUSH what was written since the last flush (nothing if nothing) */
void imap_compress_flush(struct imap_compress *z);

/* Inflate from in[0..len) into out[0..size): *used_r input bytes taken,
 * *out_len_r produced. PARSE_MORE: call again while input is left or out
 * came back full; PARSE_OK: the client ended the deflate stream (no more
 * input may follow); PARSE_ERROR: the stream is corrupt (*error_r says
 * how, for the log). */
enum parse_result imap_compress_inflate(struct imap_compress *z, const uint8_t *in, size_t len,
					size_t *used_r, uint8_t *out, size_t size,
					size_t *out_len_r, const char **error_r);

#endif
