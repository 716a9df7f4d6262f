/* tls-conn.c — the per-connection engine: ciphertext in through
 * tls_conn_feed, out through a queue of chunks, and the handshake, read,
 * write and shutdown calls that drive wolfSSL between them. No system
 * call: the ring moves the bytes. */
#include "tls/tls-private.h"
#include <wolfssl/error-ssl.h>

#include <arpa/inet.h>
#include <string.h>

#include "lib/alloc.h"
#include "lib/log.h"

/* ciphertext a TLS 1.2/1.3 record adds to its plaintext, at most (CBC IV,
 * MAC, padding); tls_conn_write only hands wolfSSL what fits with this */
#define RECORD_OVERHEAD 512
#define RECORD_PLAIN_MAX 16384
/* the smallest output chunk: a small flight costs this, not TLS_OUT_MAX */
#define OUT_CHUNK_MIN 4096
/* A record of at least this much ciphertext starts a bulk chunk, room for
 * TLS_OUT_MAX: the records after it go into the same chunk, so the ring
 * sends several in one go. */
#define OUT_BULK_MIN 8192
/* Bulk chunks a process keeps for its next ones (per process, not per
 * connection): a relay's busy connections reuse them instead of asking
 * jemalloc for a record's worth per record, whose pages come back from
 * the kernel after its decay (a page fault per 4 KiB each time). */
#define OUT_SPARE_MAX 4

static struct tls_out_chunk *out_spare;
static unsigned out_spare_count;
static bool out_spare_used; /* taken or given back since the last release */

static struct tls_out_chunk *out_chunk_new(size_t want)
{
	struct tls_out_chunk *chunk;
	size_t cap;

	if (want >= OUT_BULK_MIN) {
		cap = TLS_OUT_MAX;
		chunk = out_spare;
		if (chunk != NULL) {
			out_spare = chunk->next;
			out_spare_count--;
			out_spare_used = true;
		} else {
			chunk = rg_malloc(sizeof(*chunk) + cap);
		}
	} else {
		cap = want > OUT_CHUNK_MIN ? want : OUT_CHUNK_MIN;
		chunk = rg_malloc(sizeof(*chunk) + cap);
	}
	chunk->next = NULL;
	chunk->off = 0;
	chunk->len = 0;
	chunk->cap = cap;
	return chunk;
}

static void out_chunk_free(struct tls_out_chunk *chunk)
{
	if (chunk->cap == TLS_OUT_MAX && out_spare_count < OUT_SPARE_MAX) {
		chunk->next = out_spare;
		out_spare = chunk;
		out_spare_count++;
		out_spare_used = true;
		return;
	}
	rg_free(chunk);
}

void tls_release_spares(void)
{
	if (out_spare_used) {
		out_spare_used = false;
		return;
	}
	while (out_spare != NULL) {
		struct tls_out_chunk *next = out_spare->next;
		rg_free(out_spare);
		out_spare = next;
	}
	out_spare_count = 0;
}

/* --- I/O callbacks: the only way bytes reach or leave wolfSSL --- */

int tls_io_recv(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
	struct tls_conn *conn = arg;
	(void)ssl;

	if (conn->in_len == 0)
		return WOLFSSL_CBIO_ERR_WANT_READ;
	size_t n = conn->in_len < (size_t)sz ? conn->in_len : (size_t)sz;
	memcpy(buf, conn->in + conn->in_off, n);
	conn->in_off += n;
	conn->in_len -= n;
	if (conn->in_len == 0) {
		/* an idle connection holds no input buffer */
		rg_free(conn->in);
		conn->in = NULL;
		conn->in_off = conn->in_cap = 0;
	}
	return (int)n;
}

int tls_io_send(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
	struct tls_conn *conn = arg;
	(void)ssl;

	size_t room = TLS_OUT_MAX - conn->out_total;
	if (room == 0)
		return WOLFSSL_CBIO_ERR_WANT_WRITE;
	size_t n = room < (size_t)sz ? room : (size_t)sz, done = 0;
	struct tls_out_chunk *tail = conn->out_tail;

	if (tail != NULL) {
		size_t free_space = tail->cap - tail->off - tail->len;
		done = free_space < n ? free_space : n;
		memcpy(tail->data + tail->off + tail->len, buf, done);
		tail->len += done;
	}
	if (done < n) {
		size_t want = n - done;
		struct tls_out_chunk *chunk = out_chunk_new(want);
		chunk->len = want;
		memcpy(chunk->data, buf + done, want);
		if (tail != NULL)
			tail->next = chunk;
		else
			conn->out_head = chunk;
		conn->out_tail = chunk;
	}
	conn->out_total += n;
	conn->sent_any = true;
	return (int)n;
}

struct tls_conn *tls_conn_new(struct tls_ctx *ctx)
{
	/* room for a client certificate's name only where one is asked for */
	struct tls_conn *conn =
		rg_calloc(1, sizeof(*conn) + (ctx->verify_client ? TLS_CERT_NAME_MAX : 0));

	conn->ctx = ctx;
	conn->ssl = wolfSSL_new(ctx->wctx);
	if (conn->ssl == NULL)
		log_fatal("tls: wolfSSL_new failed (out of memory)");
	wolfSSL_SetIOReadCtx(conn->ssl, conn);
	wolfSSL_SetIOWriteCtx(conn->ssl, conn);
	/* the handshake's secrets stay until tls_conn_handshake_end has taken
	 * what it needs from them */
	wolfSSL_KeepArrays(conn->ssl);
	return conn;
}

void tls_conn_set_peer_name(struct tls_conn *conn, const char *host, bool check_name)
{
	uint8_t ip[16];
	bool is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
	/* RFC 6066 3: SNI carries host names only, never addresses */
	if (!is_ip && wolfSSL_UseSNI(conn->ssl, WOLFSSL_SNI_HOST_NAME, host,
				     (unsigned short)strlen(host)) != WOLFSSL_SUCCESS)
		log_fatal("tls: wolfSSL_UseSNI failed (out of memory)");
	if (check_name && wolfSSL_check_domain_name(conn->ssl, host) != WOLFSSL_SUCCESS)
		log_fatal("tls: wolfSSL_check_domain_name failed (out of memory)");
}

void tls_conn_free(struct tls_conn **_conn)
{
	struct tls_conn *conn = *_conn;

	if (conn == NULL)
		return;
	*_conn = NULL;
	wolfSSL_free(conn->ssl);
	explicit_bzero(conn->exporter, sizeof(conn->exporter));
	rg_free(conn->in);
	while (conn->out_head != NULL) {
		struct tls_out_chunk *next = conn->out_head->next;
		out_chunk_free(conn->out_head);
		conn->out_head = next;
	}
	rg_free(conn);
}

size_t tls_conn_feed(struct tls_conn *conn, const void *data, size_t len)
{
	size_t room = TLS_IN_MAX - conn->in_len;
	size_t n = len < room ? len : room;

	if (n == 0)
		return 0;
	if (conn->in_off > 0) {
		memmove(conn->in, conn->in + conn->in_off, conn->in_len);
		conn->in_off = 0;
	}
	if (conn->in_len + n > conn->in_cap) {
		/* exactly what is needed: most records are small */
		conn->in_cap = conn->in_len + n;
		conn->in = rg_realloc(conn->in, conn->in_cap);
	}
	memcpy(conn->in + conn->in_len, data, n);
	conn->in_len += n;
	return n;
}

/* map a failed wolfSSL call (ret <= 0) to our result */
static enum tls_result tls_conn_result(struct tls_conn *conn, int ret, const char *what, const char **error_r)
{
	int err = wolfSSL_get_error(conn->ssl, ret);

	switch (err) {
	case WOLFSSL_ERROR_WANT_READ:
		return TLS_WANT_INPUT;
	case WOLFSSL_ERROR_WANT_WRITE:
		return TLS_WANT_OUTPUT;
	case WOLFSSL_ERROR_ZERO_RETURN:
		conn->closed = true;
		return TLS_CLOSED;
	default:
		*error_r = tls_error("%s: %s", what, tls_wolf_reason(err));
		return TLS_ERROR;
	}
}

/* wolfSSL drops some bad ClientHellos (not TLS at all, a record it cannot
 * parse) without an alert; the client then only sees a closed socket. Say
 * why in a plaintext fatal alert, as the handshake never got encrypted. */
static void tls_conn_silent_alert(struct tls_conn *conn, int err)
{
	uint8_t alert[7] = { 21, 3, 3, 0, 2, 2, 10 /* unexpected_message */ };

	if (conn->sent_any)
		return;
	if (err == VERSION_ERROR)
		alert[6] = 70; /* protocol_version */
	else if (err == BUFFER_ERROR || err == INCOMPLETE_DATA || err == LENGTH_ERROR)
		alert[6] = 50; /* decode_error */
	tls_io_send(conn->ssl, (char *)alert, sizeof(alert), conn);
}

/* What an idle connection keeps is what it needs: the handshake's secrets
 * (wolfSSL's Arrays) go once the exporter a TLS 1.3 server may be asked for
 * (SCRAM-*-PLUS) is derived. */
static void tls_conn_handshake_end(struct tls_conn *conn)
{
	static const char label[] = "EXPORTER-Channel-Binding";

	if (!conn->ctx->client && wolfSSL_version(conn->ssl) == TLS1_3_VERSION &&
	    wolfSSL_export_keying_material(conn->ssl, conn->exporter, TLS_EXPORTER_SIZE, label,
					   sizeof(label) - 1, NULL, 0, 0) == WOLFSSL_SUCCESS)
		conn->has_exporter = true;
	wolfSSL_FreeArrays(conn->ssl);
}

enum tls_result tls_conn_handshake(struct tls_conn *conn, const char **error_r)
{
	if (conn->handshake_done)
		return TLS_OK;
	int ret = conn->ctx->client ? wolfSSL_connect(conn->ssl) : wolfSSL_accept(conn->ssl);
	if (ret != WOLFSSL_SUCCESS) {
		enum tls_result res = tls_conn_result(conn, ret, "TLS handshake failed", error_r);
		if (res == TLS_ERROR)
			tls_conn_silent_alert(conn, wolfSSL_get_error(conn->ssl, ret));
		return res;
	}
	conn->handshake_done = true;
	tls_conn_handshake_end(conn);
	return TLS_OK;
}

enum tls_result tls_conn_read(struct tls_conn *conn, void *buf, size_t size, size_t *len_r,
			      const char **error_r)
{
	*len_r = 0;
	if (!conn->handshake_done) {
		enum tls_result res = tls_conn_handshake(conn, error_r);
		if (res != TLS_OK)
			return res;
	}
	if (conn->closed)
		return TLS_CLOSED;
	int ret = wolfSSL_read(conn->ssl, buf, size > INT32_MAX ? INT32_MAX : (int)size);
	if (ret > 0) {
		*len_r = (size_t)ret;
		return TLS_OK;
	}
	return tls_conn_result(conn, ret, "TLS read failed", error_r);
}

enum tls_result tls_conn_write(struct tls_conn *conn, const void *data, size_t len, size_t *taken_r,
			       const char **error_r)
{
	const uint8_t *p = data;

	*taken_r = 0;
	if (!conn->handshake_done) {
		*error_r = tls_error("TLS write before the handshake finished");
		return TLS_ERROR;
	}
	while (*taken_r < len) {
		size_t left = len - *taken_r, chunk;

		if (conn->write_retry > 0) {
			chunk = conn->write_retry < left ? conn->write_retry : left;
		} else {
			/* hand wolfSSL only what its records fit into our
			 * buffer, so it never keeps a half-sent record of its own */
			size_t room = TLS_OUT_MAX - conn->out_total;
			if (room <= RECORD_OVERHEAD)
				return TLS_WANT_OUTPUT;
			chunk = room - RECORD_OVERHEAD;
			if (chunk > RECORD_PLAIN_MAX)
				chunk = RECORD_PLAIN_MAX;
			if (chunk > left)
				chunk = left;
		}
		int ret = wolfSSL_write(conn->ssl, p + *taken_r, (int)chunk);
		if (ret <= 0) {
			enum tls_result res = tls_conn_result(conn, ret, "TLS write failed", error_r);
			if (res == TLS_WANT_OUTPUT)
				conn->write_retry = chunk;
			if (res == TLS_WANT_INPUT) {
				/* no renegotiation, so nothing to wait for: say
				 * so rather than leave the caller waiting */
				*error_r = tls_error("TLS write failed: wolfSSL wants input");
				return TLS_ERROR;
			}
			return res;
		}
		conn->write_retry = 0;
		*taken_r += (size_t)ret;
	}
	return TLS_OK;
}

bool tls_conn_can_take(const struct tls_conn *conn, size_t len)
{
	size_t records = (len + RECORD_PLAIN_MAX - 1) / RECORD_PLAIN_MAX;

	if (!conn->handshake_done || conn->write_retry > 0 || conn->shutdown_sent)
		return false;
	/* tls_conn_write hands wolfSSL a record while more than its
	 * plaintext plus RECORD_OVERHEAD is free */
	return TLS_OUT_MAX - conn->out_total >= len + records * RECORD_OVERHEAD;
}

enum tls_result tls_conn_shutdown(struct tls_conn *conn, const char **error_r)
{
	if (conn->shutdown_sent)
		return TLS_OK;
	int ret = wolfSSL_shutdown(conn->ssl);
	if (ret == WOLFSSL_SUCCESS || ret == WOLFSSL_SHUTDOWN_NOT_DONE) {
		conn->shutdown_sent = true;
		return TLS_OK;
	}
	enum tls_result res = tls_conn_result(conn, ret, "TLS shutdown failed", error_r);
	if (res == TLS_WANT_INPUT || res == TLS_CLOSED) {
		/* sent; only the peer's close_notify is missing */
		conn->shutdown_sent = true;
		return TLS_OK;
	}
	return res;
}

bool tls_conn_pending_output(const struct tls_conn *conn, const uint8_t **data_r, size_t *len_r)
{
	const struct tls_out_chunk *head = conn->out_head;

	if (head == NULL) {
		*data_r = NULL;
		*len_r = 0;
		return false;
	}
	*data_r = head->data + head->off;
	*len_r = head->len;
	return true;
}

void tls_conn_consume_output(struct tls_conn *conn, size_t n)
{
	struct tls_out_chunk *head = conn->out_head;

	if (head == NULL)
		return;
	/* only what pending_output showed can have been sent */
	if (n > head->len)
		n = head->len;
	head->off += n;
	head->len -= n;
	conn->out_total -= n;
	if (head->len == 0) {
		conn->out_head = head->next;
		if (conn->out_head == NULL)
			conn->out_tail = NULL;
		out_chunk_free(head);
	}
}

bool tls_conn_handshake_done(const struct tls_conn *conn)
{
	return conn->handshake_done;
}
