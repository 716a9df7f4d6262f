/* tls-private.h — what the files of src/tls share: the context and
 * connection structs and the helpers each file uses from another. Nothing
 * outside src/tls includes it (tls.h is the interface). */
#ifndef RG_TLS_PRIVATE_H
#define RG_TLS_PRIVATE_H

#include "tls/tls-wolfssl.h"
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/random.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tls/tls.h"

/* tls-exporter channel binding: 32 bytes (RFC 9266) */
#define TLS_EXPORTER_SIZE 32

#define TICKET_NAME_SIZE 16
#define TICKET_AES_SIZE 32
#define TICKET_IV_SIZE 12
#define TICKET_TAG_SIZE 16

_Static_assert(TLS_TICKET_KEY_SIZE == TICKET_NAME_SIZE + TICKET_AES_SIZE, "ticket key layout");
_Static_assert(WOLFSSL_TICKET_NAME_SZ == TICKET_NAME_SIZE, "wolfSSL ticket key name size");
_Static_assert(WOLFSSL_TICKET_IV_SZ >= TICKET_IV_SIZE, "wolfSSL ticket IV room");
_Static_assert(WOLFSSL_TICKET_MAC_SZ >= TICKET_TAG_SIZE, "wolfSSL ticket MAC room");

struct tls_ticket_key {
	bool set;
	uint8_t name[TICKET_NAME_SIZE];
	Aes aes; /* expanded once per key, not once per ticket */
};

/* names are stored lowercased; "*.example.com" is stored as is and looked up
 * by replacing a request's first label with "*" */
struct tls_sni_entry {
	char *name; /* NULL: free slot */
	struct tls_ctx *sub;
};

/* a built local_name context, by its store entry (tls-sni.c) */
struct tls_sni_cached {
	unsigned entry;
	unsigned long used; /* the cache's clock at its last use: LRU */
	struct tls_ctx *sub;
};

/* built local_name contexts a process keeps: a few hundred names in
 * active use cost a context each, 10,000 configured ones cost nothing */
#define TLS_SNI_CACHE_MAX 256
/* longest DNS name */
#define TLS_SNI_NAME_MAX 253

struct tls_ctx {
	int refcount;
	WOLFSSL_CTX *wctx;
	/* the context whose ticket keys and RNG a SNI sub uses; NULL for a
	 * top-level context (which uses its own) */
	struct tls_ctx *parent;
	WC_RNG rng;
	struct tls_ticket_key cur, prev;
	bool client_order;
	bool client;	/* connections to backends: we are the TLS client */
	bool verify_client; /* clients are asked for a certificate */
	int username_nid;   /* the subject entry tls_conn_peer_cert names */
	/* open addressing, size a power of two, at most half full */
	struct tls_sni_entry *sni;
	unsigned sni_size, sni_count;
	/* local_name certificates built on first use (tls_ctx_set_sni_store):
	 * the store, and the contexts built from it, least recently used
	 * evicted first. A cached sub has no pointer of its own in wolfSSL
	 * (its callbacks' argument is this context) and a connection that
	 * switched to it holds a wolfSSL reference to its WOLFSSL_CTX, so
	 * evicting it never pulls anything from under a connection. */
	struct tls_sni_store *store;
	struct tls_sni_cached *cache;
	unsigned cache_count;
	unsigned long cache_clock;
};

/* Unsent ciphertext is a queue of chunks: data[off, off + len) is unsent,
 * appends go to the tail chunk's free space or a new chunk, so bytes never
 * move once written and the caller can send straight from the head chunk.
 * A chunk is freed as soon as it is sent; a small flight costs a small
 * chunk, not TLS_OUT_MAX. A full record starts a bulk chunk of TLS_OUT_MAX
 * that the records after it fill (one send for all); sent bulk chunks wait
 * in a per-process spare list (tls-conn.c) for the next ones. */
struct tls_out_chunk {
	struct tls_out_chunk *next;
	size_t off, len, cap;
	uint8_t data[];
};

/* Buffers: in[in_off, in_off + in_len) is ciphertext not yet given to
 * wolfSSL; in is NULL when in_len is 0. out_total is the sum of the out
 * chunks' len, at most TLS_OUT_MAX; no chunk is held when it is 0. */
struct tls_conn {
	struct tls_ctx *ctx;
	WOLFSSL *ssl;
	uint8_t *in;
	size_t in_off, in_len, in_cap;
	struct tls_out_chunk *out_head, *out_tail;
	size_t out_total;
	/* wolfSSL_write hit a full output buffer after it had encrypted this
	 * many bytes of the caller's data: it must be called again with the
	 * same bytes, which tls_conn_write does because it reported them as
	 * not taken */
	size_t write_retry;
	bool handshake_done;
	bool closed;
	/* wolfSSL has sent something: the peer knows it talks TLS to us */
	bool sent_any;
	/* close_notify is queued: a second shutdown must not make wolfSSL
	 * wait for the peer's */
	bool shutdown_sent;
	/* the client's certificate chain failed verification (cert_error:
	 * why, a wolfSSL error or an X509_V_ERR code) */
	bool cert_broken;
	/* the verify callback saw the client's own certificate (depth 0) and
	 * put its ssl_cert_username_field entry into peer_name */
	bool peer_cert;
	int cert_error;
	/* TLS 1.3 server: the RFC 9266 channel binding, derived when the
	 * handshake ends, as wolfSSL's exporter needs the handshake's secrets
	 * (its Arrays, 3.4 kB), which are freed then */
	bool has_exporter;
	uint8_t exporter[TLS_EXPORTER_SIZE];
	/* only when ctx->verify_client (tls_conn_new allocates
	 * TLS_CERT_NAME_MAX bytes for it): the client certificate's name,
	 * taken during the handshake, as wolfSSL keeps no peer certificate
	 * (the asm build's RINGGATE_NO_KEEP_PEER_CERT); "" when it has none
	 * that Dovecot would take */
	char peer_name[];
};

/* tls.c: the library once per process, error texts (valid until the next
 * tls_* call) */
void tls_init(void);
const char *tls_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *tls_wolf_reason(int err);

/* tls-conn.c: wolfSSL's I/O callbacks, set on every context */
int tls_io_recv(WOLFSSL *ssl, char *buf, int sz, void *arg);
int tls_io_send(WOLFSSL *ssl, char *buf, int sz, void *arg);

/* tls-peer.c: wolfSSL's verify callback on contexts that ask clients for a
 * certificate: remembers a chain that failed verification and the client
 * certificate's name */
int tls_verify_cb(int preverify, WOLFSSL_X509_STORE_CTX *store);

/* tls-ticket.c: key material and wolfSSL's ticket callback */
void tls_ticket_key_clear(struct tls_ticket_key *key);
void tls_ticket_key_set(struct tls_ticket_key *key, const uint8_t material[TLS_TICKET_KEY_SIZE]);
int tls_ticket_cb(WOLFSSL *ssl, unsigned char key_name[WOLFSSL_TICKET_NAME_SZ],
		  unsigned char iv[WOLFSSL_TICKET_IV_SZ], unsigned char mac[WOLFSSL_TICKET_MAC_SZ],
		  int enc, unsigned char *ticket, int in_len, int *out_len, void *arg);

#if RINGGATE_WOLFSSL_ASM
/* tls-x25519.c: X25519 public key of the clamped private key k by
 * fixed-base multiplication; the wrapper the asm build links in place of
 * wolfSSL's wc_curve25519_make_key (its callers in the library included) */
#define TLS_X25519_SIZE 32
struct curve25519_key;
struct WC_RNG;
void tls_x25519_base(uint8_t pub[TLS_X25519_SIZE], const uint8_t k[TLS_X25519_SIZE]);
int __wrap_wc_curve25519_make_key(struct WC_RNG *rng, int keysize, struct curve25519_key *key);
#endif

/* tls-sni.c: wolfSSL's servername callback (arg: the parent context);
 * the cache's teardown for tls_ctx_free */
int tls_sni_cb(WOLFSSL *ssl, int *alert, void *arg);
void tls_sni_cache_free(struct tls_ctx *ctx);

/* tls-sni-store.c: lowercase a client's or the administrator's name into
 * out; false when it is not a host name we could match (empty, too long,
 * odd characters; "*." first only with allow_wildcard) */
bool tls_sni_normalize(const char *name, char out[TLS_SNI_NAME_MAX + 1], bool allow_wildcard);

/* tls-ctx.c: a local_name context (no DRBG, no ticket keys of its own):
 * with owner, wolfSSL's ticket and servername callbacks get owner, whose
 * keys seal its tickets; prove_pair signs with the key and verifies with
 * the certificate (the start-up check; a process building it on first use
 * relies on that check) */
int tls_ctx_create_sub(const struct tls_ctx_settings *set, struct tls_ctx *owner, bool prove_pair,
		       struct tls_ctx **ctx_r, const char **error_r);

#endif
