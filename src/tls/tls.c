/* tls.c — wolfSSL behind tls.h. wolfSSL only ever sees our memory buffers
 * through the I/O callbacks below, so every byte on the wire passes through
 * tls_conn_feed and tls_conn_pending_output. */
#include "tls/tls-wolfssl.h"
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/openssl/evp.h>
#include <wolfssl/openssl/pem.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/version.h>
#if RINGGATE_WOLFSSL_ASM
#include <wolfssl/wolfcrypt/cpuid.h>
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/alloc.h"
#include "lib/hash.h"
#include "lib/log.h"
#include "tls/tls.h"

#define TICKET_NAME_SIZE 16
#define TICKET_AES_SIZE 32
#define TICKET_IV_SIZE 12
#define TICKET_TAG_SIZE 16
/* longest DNS name */
#define SNI_NAME_MAX 253
/* how many SNI names one context may hold: bounds the table's growth */
#define SNI_NAMES_MAX (1u << 20)
/* ciphertext a TLS 1.2/1.3 record adds to its plaintext, at most (CBC IV,
 * MAC, padding); tls_conn_write only hands wolfSSL what fits with this */
#define RECORD_OVERHEAD 512
#define RECORD_PLAIN_MAX 16384

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
};

/* Unsent ciphertext is a queue of chunks: data[off, off + len) is unsent,
 * appends go to the tail chunk's free space or a new chunk, so bytes never
 * move once written and the caller can send straight from the head chunk.
 * A chunk is freed as soon as it is sent; a small flight costs a small
 * chunk, not TLS_OUT_MAX. */
struct tls_out_chunk {
	struct tls_out_chunk *next;
	size_t off, len, cap;
	uint8_t data[];
};
#define OUT_CHUNK_MIN 4096

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
	int cert_error;
};

static char tls_error_buf[256];
static bool tls_initialized;

static const char *tls_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *tls_error(const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	vsnprintf(tls_error_buf, sizeof(tls_error_buf), fmt, args);
	va_end(args);
	return tls_error_buf;
}

static const char *tls_wolf_reason(int err)
{
	static char buf[WOLFSSL_MAX_ERROR_SZ];

	wolfSSL_ERR_error_string_n((unsigned long)(err < 0 ? -err : err), buf, sizeof(buf));
	/* wolfSSL formats as "error:-NNN:...:reason"; keep only the reason */
	char *p = strrchr(buf, ':');
	return p != NULL && p[1] != '\0' ? p + 1 : buf;
}

static void tls_init(void)
{
	if (tls_initialized)
		return;
	/* headers and library of one release (tls-wolfssl.h checks that they
	 * are of one build) */
	if (wolfSSL_lib_version_hex() != LIBWOLFSSL_VERSION_HEX)
		log_fatal("wolfSSL headers %s but library %s: rebuild", LIBWOLFSSL_VERSION_STRING,
			  wolfSSL_lib_version());
	if (wolfSSL_Init() != WOLFSSL_SUCCESS)
		log_fatal("wolfSSL_Init failed");
	tls_initialized = true;
}

const char *tls_crypto_info(void)
{
	static char buf[160];

	if (buf[0] != '\0')
		return buf;
#if RINGGATE_WOLFSSL_ASM
	/* what wolfSSL's own CPUID probe found: its assembly picks AES-NI
	 * (AES-GCM), AVX/AVX2 (GCM, ChaCha20-Poly1305, SHA-2) and BMI2+ADX
	 * (P-256, X25519) by these at run time, portable code otherwise */
	static const struct {
		word32 flag;
		const char *name;
	} paths[] = {
		{ CPUID_AESNI, "AES-NI" }, { CPUID_AVX1, "AVX" }, { CPUID_AVX2, "AVX2" },
		{ CPUID_BMI2, "BMI2" },	   { CPUID_ADX, "ADX" },
	};
	word32 flags = cpuid_get_flags();
	size_t len = (size_t)snprintf(buf, sizeof(buf), "wolfSSL %s asm build, CPU paths:",
				      wolfSSL_lib_version());
	bool any = false;
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]) && len < sizeof(buf); i++) {
		if ((flags & paths[i].flag) != 0) {
			len += (size_t)snprintf(buf + len, sizeof(buf) - len, " %s", paths[i].name);
			any = true;
		}
	}
	if (!any && len < sizeof(buf))
		snprintf(buf + len, sizeof(buf) - len, " none (portable code)");
#else
	snprintf(buf, sizeof(buf), "wolfSSL %s system build, Debian's, no assembly",
		 wolfSSL_lib_version());
#endif
	return buf;
}

/* --- I/O callbacks: the only way bytes reach or leave wolfSSL --- */

static int tls_io_recv(WOLFSSL *ssl, char *buf, int sz, void *arg)
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

static int tls_io_send(WOLFSSL *ssl, char *buf, int sz, void *arg)
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
		size_t cap = want > OUT_CHUNK_MIN ? want : OUT_CHUNK_MIN;
		struct tls_out_chunk *chunk = rg_malloc(sizeof(*chunk) + cap);
		chunk->next = NULL;
		chunk->off = 0;
		chunk->len = want;
		chunk->cap = cap;
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

/* --- client certificates --- */

/* Called by wolfSSL for each certificate of a client's chain that fails
 * (preverify 0): Dovecot's login processes accept the handshake anyway
 * (allow_invalid_cert) and refuse the login later, so we remember it. */
static int tls_verify_cb(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
	if (preverify)
		return 1;
	WOLFSSL *ssl = wolfSSL_X509_STORE_CTX_get_ex_data(store, wolfSSL_get_ex_data_X509_STORE_CTX_idx());
	struct tls_conn *conn = ssl != NULL ? wolfSSL_GetIOReadCtx(ssl) : NULL;
	if (conn == NULL)
		return 0; /* nowhere to remember it: fail the handshake instead */
	if (!conn->cert_broken) {
		conn->cert_broken = true;
		conn->cert_error = wolfSSL_X509_STORE_CTX_get_error(store);
	}
	return 1;
}

/* --- session tickets --- */

static void tls_ticket_key_clear(struct tls_ticket_key *key)
{
	if (key->set)
		wc_AesFree(&key->aes);
	memset(key, 0, sizeof(*key));
}

static void tls_ticket_key_set(struct tls_ticket_key *key, const uint8_t material[TLS_TICKET_KEY_SIZE])
{
	tls_ticket_key_clear(key);
	memcpy(key->name, material, TICKET_NAME_SIZE);
	if (wc_AesInit(&key->aes, NULL, INVALID_DEVID) != 0 ||
	    wc_AesGcmSetKey(&key->aes, material + TICKET_NAME_SIZE, TICKET_AES_SIZE) != 0)
		log_fatal("tls: cannot set the AES-256-GCM ticket key");
	key->set = true;
}

static struct tls_ctx *tls_ticket_owner(struct tls_ctx *ctx)
{
	return ctx->parent != NULL ? ctx->parent : ctx;
}

/* Our own ticket sealing (instead of wolfSSL's per-process default key) so
 * that every login process opens every other's tickets. Layout inside
 * wolfSSL's ticket: key_name = key name, iv = 12-byte GCM nonce (rest zero),
 * mac = 16-byte GCM tag (rest zero); key name and nonce are authenticated. */
static int tls_ticket_cb(WOLFSSL *ssl, unsigned char key_name[WOLFSSL_TICKET_NAME_SZ],
			 unsigned char iv[WOLFSSL_TICKET_IV_SZ], unsigned char mac[WOLFSSL_TICKET_MAC_SZ],
			 int enc, unsigned char *ticket, int in_len, int *out_len, void *arg)
{
	struct tls_ctx *ctx = tls_ticket_owner(arg);
	uint8_t aad[TICKET_NAME_SIZE + TICKET_IV_SIZE];
	(void)ssl;

	if (in_len < 0)
		return WOLFSSL_TICKET_RET_FATAL;
	if (enc) {
		memcpy(key_name, ctx->cur.name, TICKET_NAME_SIZE);
		memset(iv, 0, WOLFSSL_TICKET_IV_SZ);
		memset(mac, 0, WOLFSSL_TICKET_MAC_SZ);
		if (wc_RNG_GenerateBlock(&ctx->rng, iv, TICKET_IV_SIZE) != 0)
			return WOLFSSL_TICKET_RET_FATAL;
		memcpy(aad, key_name, TICKET_NAME_SIZE);
		memcpy(aad + TICKET_NAME_SIZE, iv, TICKET_IV_SIZE);
		if (wc_AesGcmEncrypt(&ctx->cur.aes, ticket, ticket, (word32)in_len, iv, TICKET_IV_SIZE, mac,
				     TICKET_TAG_SIZE, aad, sizeof(aad)) != 0)
			return WOLFSSL_TICKET_RET_FATAL;
		*out_len = in_len;
		return WOLFSSL_TICKET_RET_OK;
	}

	struct tls_ticket_key *key;
	if (ctx->cur.set && memcmp(key_name, ctx->cur.name, TICKET_NAME_SIZE) == 0)
		key = &ctx->cur;
	else if (ctx->prev.set && memcmp(key_name, ctx->prev.name, TICKET_NAME_SIZE) == 0)
		key = &ctx->prev;
	else
		return WOLFSSL_TICKET_RET_REJECT; /* an unknown or retired key: full handshake */
	memcpy(aad, key_name, TICKET_NAME_SIZE);
	memcpy(aad + TICKET_NAME_SIZE, iv, TICKET_IV_SIZE);
	if (wc_AesGcmDecrypt(&key->aes, ticket, ticket, (word32)in_len, iv, TICKET_IV_SIZE, mac,
			     TICKET_TAG_SIZE, aad, sizeof(aad)) != 0)
		return WOLFSSL_TICKET_RET_REJECT;
	*out_len = in_len;
	/* a ticket under the previous key is replaced, so clients move on
	 * before that key is retired */
	return key == &ctx->cur ? WOLFSSL_TICKET_RET_OK : WOLFSSL_TICKET_RET_CREATE;
}

void tls_ctx_set_ticket_keys(struct tls_ctx *ctx, const uint8_t current[TLS_TICKET_KEY_SIZE],
			     const uint8_t *previous)
{
	tls_ticket_key_set(&ctx->cur, current);
	if (previous != NULL)
		tls_ticket_key_set(&ctx->prev, previous);
	else
		tls_ticket_key_clear(&ctx->prev);
}

/* --- SNI --- */

/* Lowercase a client's or the administrator's name into out; false when it
 * is not a host name we could match (empty, too long, odd characters). */
static bool tls_sni_normalize(const char *name, char out[SNI_NAME_MAX + 1], bool allow_wildcard)
{
	size_t len = strlen(name);

	if (len == 0 || len > SNI_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		else if (c == '*') {
			/* only a whole first label: "*.example.com" */
			if (!allow_wildcard || i != 0 || len < 3 || name[1] != '.')
				return false;
		} else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
			     c == '.' || c == '_'))
			return false;
		out[i] = c;
	}
	out[len] = '\0';
	return out[0] != '.' && out[len - 1] != '.' && strstr(out, "..") == NULL;
}

static struct tls_sni_entry *tls_sni_slot(const struct tls_ctx *ctx, const char *name)
{
	unsigned mask = ctx->sni_size - 1;
	for (unsigned i = hash_str(name) & mask;; i = (i + 1) & mask) {
		struct tls_sni_entry *e = &ctx->sni[i];
		if (e->name == NULL || strcmp(e->name, name) == 0)
			return e;
	}
}

static void tls_sni_grow(struct tls_ctx *ctx)
{
	struct tls_sni_entry *old = ctx->sni;
	unsigned old_size = ctx->sni_size;

	ctx->sni_size = old_size == 0 ? 64 : old_size * 2;
	ctx->sni = rg_calloc(ctx->sni_size, sizeof(*ctx->sni));
	for (unsigned i = 0; i < old_size; i++) {
		if (old[i].name != NULL)
			*tls_sni_slot(ctx, old[i].name) = old[i];
	}
	rg_free(old);
}

static struct tls_ctx *tls_sni_lookup(const struct tls_ctx *ctx, const char *requested)
{
	char name[SNI_NAME_MAX + 2];

	if (ctx->sni_count == 0 || !tls_sni_normalize(requested, name + 1, false))
		return NULL;
	struct tls_sni_entry *e = tls_sni_slot(ctx, name + 1);
	if (e->name != NULL)
		return e->sub;
	/* "*.example.com" covers "a.example.com" but neither "example.com"
	 * nor "a.b.example.com" */
	char *dot = strchr(name + 1, '.');
	if (dot == NULL || strchr(dot + 1, '.') == NULL)
		return NULL;
	dot[-1] = '*';
	e = tls_sni_slot(ctx, dot - 1);
	return e->name != NULL ? e->sub : NULL;
}

static int tls_sni_cb(WOLFSSL *ssl, int *alert, void *arg)
{
	struct tls_ctx *ctx = arg;
	(void)alert;

	const char *requested = wolfSSL_get_servername(ssl, WOLFSSL_SNI_HOST_NAME);
	if (requested == NULL)
		return 0;
	struct tls_ctx *sub = tls_sni_lookup(ctx, requested);
	if (sub != NULL && wolfSSL_set_SSL_CTX(ssl, sub->wctx) == NULL)
		return 0; /* keep the default certificate: better than failing */
	return 0; /* SSL_TLSEXT_ERR_OK: unknown names get the default */
}

int tls_ctx_add_sni(struct tls_ctx *ctx, const char *name, struct tls_ctx *sub, const char **error_r)
{
	char norm[SNI_NAME_MAX + 1];

	if (!tls_sni_normalize(name, norm, true)) {
		*error_r = tls_error("local_name %.80s: not a valid host name", name);
		return -EINVAL;
	}
	if (sub == ctx || sub->sni_count > 0 || (sub->parent != NULL && sub->parent != ctx)) {
		*error_r = tls_error("local_name %s: its context cannot serve as a SNI certificate", norm);
		return -EINVAL;
	}
	if (ctx->sni_count >= SNI_NAMES_MAX) {
		*error_r = tls_error("local_name %s: more than %u names", norm, SNI_NAMES_MAX);
		return -EINVAL;
	}
	if ((ctx->sni_count + 1) * 2 > ctx->sni_size)
		tls_sni_grow(ctx);
	struct tls_sni_entry *e = tls_sni_slot(ctx, norm);
	if (e->name != NULL) {
		*error_r = tls_error("local_name %s: given twice", norm);
		return -EINVAL;
	}
	e->name = rg_strdup(norm);
	e->sub = sub;
	sub->refcount++;
	sub->parent = ctx;
	ctx->sni_count++;
	return 0;
}

/* --- contexts --- */

static int tls_parse_min_protocol(const char *value, int *version_r, const char **error_r)
{
	static const char *const too_old[] = { "ANY", "SSLv2", "SSLv3", "TLSv1", "TLSv1.0", "TLSv1.1" };

	if (value == NULL || value[0] == '\0' || strcasecmp(value, "TLSv1.2") == 0) {
		*version_r = WOLFSSL_TLSV1_2;
		return 0;
	}
	if (strcasecmp(value, "TLSv1.3") == 0) {
		*version_r = WOLFSSL_TLSV1_3;
		return 0;
	}
	for (size_t i = 0; i < sizeof(too_old) / sizeof(too_old[0]); i++) {
		if (strcasecmp(value, too_old[i]) == 0) {
			*error_r = tls_error("ssl_min_protocol: %s is not supported: ringgate supports TLSv1.2 "
					     "and TLSv1.3",
					     too_old[i]);
			return -EINVAL;
		}
	}
	*error_r = tls_error("ssl_min_protocol: unknown value '%.40s' (use TLSv1.2 or TLSv1.3)", value);
	return -EINVAL;
}

/* wolfSSL_CTX_check_private_key in wolfSSL 5.5.4 accepts an ECDSA key of
 * the right curve that belongs to another certificate, so prove the pair:
 * sign with the key, verify with the leaf certificate's public key. */
static bool tls_key_matches_cert(const char *cert_pem, const char *key_pem)
{
	static const char msg[] = "ringgate key check";
	unsigned char sig[1024];
	size_t sig_len = sizeof(sig);
	bool ok = false;

	WOLFSSL_X509 *x509 = wolfSSL_X509_load_certificate_buffer((const unsigned char *)cert_pem,
								   (int)strlen(cert_pem), WOLFSSL_FILETYPE_PEM);
	WOLFSSL_EVP_PKEY *pub = x509 != NULL ? wolfSSL_X509_get_pubkey(x509) : NULL;
	WOLFSSL_BIO *bio = wolfSSL_BIO_new_mem_buf(key_pem, (int)strlen(key_pem));
	WOLFSSL_EVP_PKEY *priv = bio != NULL ? wolfSSL_PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	WOLFSSL_EVP_MD_CTX *sign = wolfSSL_EVP_MD_CTX_new();
	WOLFSSL_EVP_MD_CTX *verify = wolfSSL_EVP_MD_CTX_new();

	if (pub != NULL && priv != NULL && sign != NULL && verify != NULL &&
	    wolfSSL_EVP_DigestSignInit(sign, NULL, wolfSSL_EVP_sha256(), NULL, priv) == WOLFSSL_SUCCESS &&
	    wolfSSL_EVP_DigestSignUpdate(sign, msg, sizeof(msg)) == WOLFSSL_SUCCESS &&
	    wolfSSL_EVP_DigestSignFinal(sign, sig, &sig_len) == WOLFSSL_SUCCESS &&
	    wolfSSL_EVP_DigestVerifyInit(verify, NULL, wolfSSL_EVP_sha256(), NULL, pub) == WOLFSSL_SUCCESS &&
	    wolfSSL_EVP_DigestVerifyUpdate(verify, msg, sizeof(msg)) == WOLFSSL_SUCCESS &&
	    wolfSSL_EVP_DigestVerifyFinal(verify, sig, sig_len) == WOLFSSL_SUCCESS)
		ok = true;
	wolfSSL_EVP_MD_CTX_free(sign);
	wolfSSL_EVP_MD_CTX_free(verify);
	wolfSSL_EVP_PKEY_free(priv);
	wolfSSL_BIO_free(bio);
	wolfSSL_EVP_PKEY_free(pub);
	wolfSSL_X509_free(x509);
	return ok;
}

/* ssl_curve_list's canonical names (settings.c maps OpenSSL's aliases) */
static const struct {
	const char *name;
	int group;
} tls_groups[] = {
	{ "X25519", WOLFSSL_ECC_X25519 },	{ "P-256", WOLFSSL_ECC_SECP256R1 },
	{ "X448", WOLFSSL_ECC_X448 },		{ "P-384", WOLFSSL_ECC_SECP384R1 },
	{ "P-521", WOLFSSL_ECC_SECP521R1 },	{ "ffdhe2048", WOLFSSL_FFDHE_2048 },
	{ "ffdhe3072", WOLFSSL_FFDHE_3072 },
};
#define TLS_GROUPS_COUNT (sizeof(tls_groups) / sizeof(tls_groups[0]))

/* The supported groups in order. The default puts X25519 first (what
 * clients send a key share for; with Debian's wolfSSL it also costs a third
 * of P-256, with the asm build the two cost the same) and P-256 second, so
 * both are served without a HelloRetryRequest: TLS 1.3 takes the client's
 * key share when its group is in the list, and asks for the first listed
 * group the client supports otherwise. TLS 1.2 ECDHE takes a listed curve
 * the client offers (wolfSSL prefers 256-bit ones, then the client's
 * order); the EC curves of a list go through set1_curves_list for that,
 * which also disables the unlisted ones for TLS 1.2. */
static int tls_set_groups(WOLFSSL_CTX *w, const char *list, const char **error_r)
{
	int groups[TLS_GROUPS_COUNT];
	int count = 0;
	char ec[64] = "";

	if (list == NULL || list[0] == '\0') {
		for (size_t i = 0; i < TLS_GROUPS_COUNT; i++)
			groups[count++] = tls_groups[i].group;
	} else {
		const char *p = list;
		while (*p != '\0') {
			size_t len = strcspn(p, ":");
			size_t i;
			for (i = 0; i < TLS_GROUPS_COUNT; i++) {
				if (strlen(tls_groups[i].name) == len &&
				    strncmp(p, tls_groups[i].name, len) == 0)
					break;
			}
			if (i == TLS_GROUPS_COUNT || count == (int)TLS_GROUPS_COUNT) {
				*error_r = tls_error("ssl_curve_list: unknown curve '%.*s'",
						     (int)(len < 40 ? len : 40), p);
				return -EINVAL;
			}
			groups[count++] = tls_groups[i].group;
			if (strncmp(p, "ffdhe", 5) != 0 && strlen(ec) + len + 2 <= sizeof(ec)) {
				if (ec[0] != '\0')
					strcat(ec, ":");
				strncat(ec, p, len);
			}
			p += len;
			if (*p == ':')
				p++;
		}
	}
	if (ec[0] != '\0' && wolfSSL_CTX_set1_curves_list(w, ec) != WOLFSSL_SUCCESS) {
		*error_r = tls_error("ssl_curve_list: wolfSSL refused '%s'", ec);
		return -EINVAL;
	}
	if (wolfSSL_CTX_set_groups(w, groups, count) != WOLFSSL_SUCCESS) {
		*error_r = tls_error("ssl_curve_list: wolfSSL refused the list");
		return -EINVAL;
	}
	return 0;
}

/* The next PEM block labelled label ("CERTIFICATE", "X509 CRL") at or after
 * *pos: its start and length (BEGIN through END line), *pos moved past it;
 * NULL when there is none. */
static const char *tls_pem_next(const char **pos, const char *label, size_t *len_r)
{
	char begin[40], end[40];
	snprintf(begin, sizeof(begin), "-----BEGIN %s-----", label);
	snprintf(end, sizeof(end), "-----END %s-----", label);
	const char *b = strstr(*pos, begin);
	const char *e = b != NULL ? strstr(b, end) : NULL;
	if (e == NULL)
		return NULL;
	e += strlen(end);
	*pos = e;
	*len_r = (size_t)(e - b);
	return b;
}

/* ssl_ca: its certificates are trust anchors (for building our own chain,
 * and with verify_client for clients' certificates); with verify_client and
 * require_crl, its CRLs are checked for every certificate of a client's
 * chain (Dovecot's X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL).
 * Dovecot's ssl_ca file holds both, "CA certificate(s) followed by the
 * matching CRL(s)". */
static int tls_ctx_load_ca(struct tls_ctx *ctx, const struct tls_ctx_settings *set,
			   const char **error_r)
{
	WOLFSSL_CTX *w = ctx->wctx;
	const char *ca = set->ca_pem != NULL ? set->ca_pem : "";
	const char *pos = ca, *block;
	size_t len;
	unsigned certs = 0;
	int ret;

	while ((block = tls_pem_next(&pos, "CERTIFICATE", &len)) != NULL) {
		ret = wolfSSL_CTX_load_verify_buffer(w, (const unsigned char *)block, (long)len,
						     WOLFSSL_FILETYPE_PEM);
		if (ret != WOLFSSL_SUCCESS) {
			*error_r = tls_error("ssl_ca: certificate %u is not valid (%s)", certs + 1,
					     tls_wolf_reason(ret));
			return -EINVAL;
		}
		certs++;
	}
	if (ca[0] != '\0' && certs == 0 && strstr(ca, "-----BEGIN X509 CRL-----") == NULL) {
		*error_r = tls_error("ssl_ca: not valid PEM certificates (no certificate found)");
		return -EINVAL;
	}
	const char *field = set->cert_username_field != NULL && set->cert_username_field[0] != '\0' ?
				    set->cert_username_field : "commonName";
	ctx->username_nid = wolfSSL_OBJ_txt2nid(field);
	if (ctx->username_nid <= 0) {
		*error_r = tls_error("ssl_cert_username_field: unknown field '%.60s'", field);
		return -EINVAL;
	}
	if (!set->verify_client)
		return 0;
	if (certs == 0) {
		/* Dovecot: "Can't verify remote client certs without CA" */
		*error_r = tls_error("ssl_verify_client_cert = yes needs ssl_ca (the CA certificates "
				     "that issue client certificates)");
		return -EINVAL;
	}
	ctx->verify_client = true;
	wolfSSL_CTX_set_verify(w, WOLFSSL_VERIFY_PEER, tls_verify_cb);
	/* the CertificateRequest names the CAs (Dovecot's
	 * SSL_CTX_set_client_CA_list), so a client with several
	 * certificates can pick the right one; the context owns the list */
	WOLF_STACK_OF(WOLFSSL_X509_NAME) *names = wolfSSL_sk_X509_NAME_new(NULL);
	if (names == NULL)
		log_fatal("tls: out of memory");
	pos = ca;
	while ((block = tls_pem_next(&pos, "CERTIFICATE", &len)) != NULL) {
		WOLFSSL_X509 *x = wolfSSL_X509_load_certificate_buffer((const unsigned char *)block,
									(int)len, WOLFSSL_FILETYPE_PEM);
		WOLFSSL_X509_NAME *name = x != NULL ? wolfSSL_X509_get_subject_name(x) : NULL;
		WOLFSSL_X509_NAME *dup = name != NULL ? wolfSSL_X509_NAME_dup(name) : NULL;
		if (dup != NULL && wolfSSL_sk_X509_NAME_push(names, dup) <= 0)
			wolfSSL_X509_NAME_free(dup);
		wolfSSL_X509_free(x);
	}
	wolfSSL_CTX_set_client_CA_list(w, names);
	if (set->require_crl) {
		if (wolfSSL_CTX_EnableCRL(w, WOLFSSL_CRL_CHECKALL) != WOLFSSL_SUCCESS) {
			*error_r = tls_error("ssl_require_crl: wolfSSL cannot check CRLs");
			return -EINVAL;
		}
		unsigned crls = 0;
		pos = ca;
		while ((block = tls_pem_next(&pos, "X509 CRL", &len)) != NULL) {
			ret = wolfSSL_CTX_LoadCRLBuffer(w, (const unsigned char *)block, (long)len,
							WOLFSSL_FILETYPE_PEM);
			if (ret != WOLFSSL_SUCCESS) {
				*error_r = tls_error("ssl_ca: CRL %u is not valid (%s)", crls + 1,
						     tls_wolf_reason(ret));
				return -EINVAL;
			}
			crls++;
		}
	}
	/* a resumed session carries no client certificate: have clients show
	 * theirs on every connection */
	/* (in 5.5.4 the first returns WOLFSSL_SUCCESS, the second 0) */
	if (wolfSSL_CTX_NoTicketTLSv12(w) != WOLFSSL_SUCCESS || wolfSSL_CTX_no_ticket_TLSv13(w) != 0) {
		*error_r = tls_error("ssl_verify_client_cert: wolfSSL cannot turn session tickets off");
		return -EINVAL;
	}
	return 0;
}

static int tls_ctx_configure(struct tls_ctx *ctx, const struct tls_ctx_settings *set, const char **error_r)
{
	WOLFSSL_CTX *w = ctx->wctx;
	int version, ret;

	if (tls_parse_min_protocol(set->min_protocol, &version, error_r) < 0)
		return -EINVAL;
	if (wolfSSL_CTX_SetMinVersion(w, version) != WOLFSSL_SUCCESS) {
		*error_r = tls_error("ssl_min_protocol: wolfSSL refused it");
		return -EINVAL;
	}
	if (set->cert_pem == NULL || set->cert_pem[0] == '\0') {
		*error_r = tls_error("ssl_cert: missing");
		return -EINVAL;
	}
	if (set->key_pem == NULL || set->key_pem[0] == '\0') {
		*error_r = tls_error("ssl_key: missing");
		return -EINVAL;
	}
	ret = wolfSSL_CTX_use_certificate_chain_buffer_format(w, (const unsigned char *)set->cert_pem,
							      (long)strlen(set->cert_pem),
							      WOLFSSL_FILETYPE_PEM);
	if (ret != WOLFSSL_SUCCESS) {
		*error_r = tls_error("ssl_cert: not a valid PEM certificate chain (%s)", tls_wolf_reason(ret));
		return -EINVAL;
	}
	ret = wolfSSL_CTX_use_PrivateKey_buffer(w, (const unsigned char *)set->key_pem, (long)strlen(set->key_pem),
						WOLFSSL_FILETYPE_PEM);
	if (ret != WOLFSSL_SUCCESS) {
		*error_r = tls_error("ssl_key: not a valid PEM private key (%s)", tls_wolf_reason(ret));
		return -EINVAL;
	}
	if (wolfSSL_CTX_check_private_key(w) != WOLFSSL_SUCCESS ||
	    !tls_key_matches_cert(set->cert_pem, set->key_pem)) {
		*error_r = tls_error("ssl_key: does not match ssl_cert");
		return -EINVAL;
	}
	if (tls_ctx_load_ca(ctx, set, error_r) < 0)
		return -EINVAL;
	if (set->cipher_list != NULL && set->cipher_list[0] != '\0') {
		if (wolfSSL_CTX_set_cipher_list(w, set->cipher_list) != WOLFSSL_SUCCESS) {
			*error_r = tls_error("ssl_cipher_list: wolfSSL accepts none of '%.80s'", set->cipher_list);
			return -EINVAL;
		}
		/* the list is for TLS <= 1.2; TLS 1.3 keeps wolfSSL's suites,
		 * which it would drop from a list that does not name them */
		char *list = rg_strdup_printf("TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:"
					      "TLS13-CHACHA20-POLY1305-SHA256:%s",
					      set->cipher_list);
		ret = wolfSSL_CTX_set_cipher_list(w, list);
		rg_free(list);
		if (ret != WOLFSSL_SUCCESS) {
			*error_r = tls_error("ssl_cipher_list: wolfSSL accepts none of '%.80s'", set->cipher_list);
			return -EINVAL;
		}
	}
	if (set->dh_pem != NULL && set->dh_pem[0] != '\0') {
		/* only DHE suites (TLS 1.2) use them; without, those are skipped */
		ret = wolfSSL_CTX_SetTmpDH_buffer(w, (const unsigned char *)set->dh_pem,
						  (long)strlen(set->dh_pem), WOLFSSL_FILETYPE_PEM);
		if (ret != WOLFSSL_SUCCESS) {
			*error_r = tls_error("ssl_dh: not valid PEM DH parameters (%s)", tls_wolf_reason(ret));
			return -EINVAL;
		}
	}
	ctx->client_order = !set->prefer_server_ciphers;
	if (ctx->client_order)
		wolfSSL_CTX_UseClientSuites(w);

	/* resumption by ticket only: a server-side cache would be private to
	 * one login process and cost memory per session */
	wolfSSL_CTX_set_session_cache_mode(w, WOLFSSL_SESS_CACHE_OFF);
	if (wolfSSL_CTX_set_TicketEncCb(w, tls_ticket_cb) != WOLFSSL_SUCCESS ||
	    wolfSSL_CTX_set_TicketEncCtx(w, ctx) != WOLFSSL_SUCCESS) {
		*error_r = tls_error("wolfSSL: session tickets unavailable");
		return -EINVAL;
	}
	wolfSSL_CTX_SetIORecv(w, tls_io_recv);
	wolfSSL_CTX_SetIOSend(w, tls_io_send);
	if (tls_set_groups(w, set->curve_list, error_r) < 0)
		return -EINVAL;
	/* ServerHello..Finished in as few records and sends as possible */
	wolfSSL_CTX_set_group_messages(w);
	wolfSSL_CTX_set_servername_callback(w, tls_sni_cb);
	wolfSSL_CTX_set_servername_arg(w, ctx);
	return 0;
}

int tls_ctx_create(const struct tls_ctx_settings *set, struct tls_ctx **ctx_r, const char **error_r)
{
	tls_init();

	struct tls_ctx *ctx = rg_calloc(1, sizeof(*ctx));
	ctx->refcount = 1;
	if (wc_InitRng(&ctx->rng) != 0)
		log_fatal("tls: cannot initialise the random generator");
	ctx->wctx = wolfSSL_CTX_new(wolfSSLv23_server_method());
	if (ctx->wctx == NULL)
		log_fatal("tls: wolfSSL_CTX_new failed");
	if (tls_ctx_configure(ctx, set, error_r) < 0) {
		tls_ctx_free(&ctx);
		return -EINVAL;
	}
	/* tickets work at once; set_ticket_keys makes them cross-process */
	uint8_t key[TLS_TICKET_KEY_SIZE];
	if (wc_RNG_GenerateBlock(&ctx->rng, key, sizeof(key)) != 0)
		log_fatal("tls: cannot make a ticket key");
	tls_ticket_key_set(&ctx->cur, key);
	memset(key, 0, sizeof(key));
	*ctx_r = ctx;
	return 0;
}

int tls_ctx_create_client(const char *ca_pem, bool verify, struct tls_ctx **ctx_r,
			  const char **error_r)
{
	tls_init();
	struct tls_ctx *ctx = rg_calloc(1, sizeof(*ctx));
	ctx->refcount = 1;
	ctx->client = true;
	if (wc_InitRng(&ctx->rng) != 0)
		log_fatal("tls: cannot initialise the random generator");
	ctx->wctx = wolfSSL_CTX_new(wolfSSLv23_client_method());
	if (ctx->wctx == NULL)
		log_fatal("tls: wolfSSL_CTX_new failed");
	WOLFSSL_CTX *w = ctx->wctx;
	(void)wolfSSL_CTX_SetMinVersion(w, WOLFSSL_TLSV1_2);
	wolfSSL_CTX_SetIORecv(w, tls_io_recv);
	wolfSSL_CTX_SetIOSend(w, tls_io_send);
	wolfSSL_CTX_set_session_cache_mode(w, WOLFSSL_SESS_CACHE_OFF);
	if (verify) {
		if (ca_pem == NULL || ca_pem[0] == '\0' ||
		    wolfSSL_CTX_load_verify_buffer(w, (const unsigned char *)ca_pem,
						   (long)strlen(ca_pem),
						   WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS) {
			*error_r = tls_error("ssl_client_ca_file: no usable CA certificate");
			tls_ctx_free(&ctx);
			return -EINVAL;
		}
		wolfSSL_CTX_set_verify(w, WOLFSSL_VERIFY_PEER, NULL);
	} else {
		wolfSSL_CTX_set_verify(w, WOLFSSL_VERIFY_NONE, NULL);
	}
	*ctx_r = ctx;
	return 0;
}

void tls_ctx_free(struct tls_ctx **_ctx)
{
	struct tls_ctx *ctx = *_ctx;

	if (ctx == NULL)
		return;
	*_ctx = NULL;
	if (--ctx->refcount > 0)
		return;
	for (unsigned i = 0; i < ctx->sni_size; i++) {
		struct tls_sni_entry *e = &ctx->sni[i];
		if (e->name == NULL)
			continue;
		if (e->sub->parent == ctx && e->sub->refcount > 1)
			e->sub->parent = NULL;
		tls_ctx_free(&e->sub);
		rg_free(e->name);
	}
	rg_free(ctx->sni);
	wolfSSL_CTX_free(ctx->wctx);
	tls_ticket_key_clear(&ctx->cur);
	tls_ticket_key_clear(&ctx->prev);
	wc_FreeRng(&ctx->rng);
	rg_free(ctx);
}

/* --- connections --- */

struct tls_conn *tls_conn_new(struct tls_ctx *ctx)
{
	struct tls_conn *conn = rg_calloc(1, sizeof(*conn));

	conn->ctx = ctx;
	conn->ssl = wolfSSL_new(ctx->wctx);
	if (conn->ssl == NULL)
		log_fatal("tls: wolfSSL_new failed (out of memory)");
	wolfSSL_SetIOReadCtx(conn->ssl, conn);
	wolfSSL_SetIOWriteCtx(conn->ssl, conn);
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
	rg_free(conn->in);
	while (conn->out_head != NULL) {
		struct tls_out_chunk *next = conn->out_head->next;
		rg_free(conn->out_head);
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
		rg_free(head);
	}
}

bool tls_conn_handshake_done(const struct tls_conn *conn)
{
	return conn->handshake_done;
}

bool tls_conn_resumed(const struct tls_conn *conn)
{
	return conn->handshake_done && wolfSSL_session_reused(conn->ssl) != 0;
}

const char *tls_conn_version(const struct tls_conn *conn)
{
	return wolfSSL_get_version(conn->ssl);
}

/* OpenSSL's names, which Dovecot logs: wolfSSL's own for TLS <= 1.2 are
 * the same, for TLS 1.3 they differ ("TLS13-AES128-GCM-SHA256"), so those
 * come from the IANA table ("TLS_AES_128_GCM_SHA256") */
const char *tls_conn_cipher(const struct tls_conn *conn)
{
	if (wolfSSL_version(conn->ssl) == TLS1_3_VERSION) {
		int suite = wolfSSL_get_current_cipher_suite(conn->ssl);
		const char *name = wolfSSL_get_cipher_name_iana_from_suite((unsigned char)(suite >> 8),
									   (unsigned char)suite);
		if (name != NULL && strcmp(name, "None") != 0)
			return name;
	}
	return wolfSSL_get_cipher_name(conn->ssl);
}

const char *tls_conn_sni(const struct tls_conn *conn)
{
	return wolfSSL_get_servername(conn->ssl, WOLFSSL_SNI_HOST_NAME);
}

size_t tls_conn_channel_binding(struct tls_conn *conn, const char **type_r, uint8_t buf[TLS_CB_MAX])
{
	static const char label[] = "EXPORTER-Channel-Binding";

	if (!conn->handshake_done)
		return 0;
	if (wolfSSL_version(conn->ssl) == TLS1_3_VERSION) {
		if (wolfSSL_export_keying_material(conn->ssl, buf, 32, label, sizeof(label) - 1, NULL, 0,
						   0) != WOLFSSL_SUCCESS)
			return 0;
		*type_r = "tls-exporter";
		return 32;
	}
	/* wolfSSL keeps both Finished messages of the last handshake: the
	 * first sent is the client's in a full handshake, the server's in an
	 * abbreviated one */
	bool server = !conn->ctx->client;
	bool first_is_ours = server == (wolfSSL_session_reused(conn->ssl) != 0);
	size_t n = first_is_ours ? wolfSSL_get_finished(conn->ssl, buf, TLS_CB_MAX)
				 : wolfSSL_get_peer_finished(conn->ssl, buf, TLS_CB_MAX);
	if (n == 0 || n > TLS_CB_MAX)
		return 0;
	*type_r = "tls-unique";
	return n;
}

enum tls_peer_cert tls_conn_peer_cert(struct tls_conn *conn, char name[TLS_CERT_NAME_MAX],
				      const char **error_r)
{
	name[0] = '\0';
	if (!conn->handshake_done || !conn->ctx->verify_client)
		return TLS_PEER_CERT_NONE;
	if (conn->cert_broken || wolfSSL_get_verify_result(conn->ssl) != X509_V_OK) {
		int err = conn->cert_error != 0 ? conn->cert_error
						: (int)wolfSSL_get_verify_result(conn->ssl);
		*error_r = err < 0 ? tls_wolf_reason(err) : wolfSSL_X509_verify_cert_error_string(err);
		return TLS_PEER_CERT_INVALID;
	}
	WOLFSSL_X509 *x509 = wolfSSL_get_peer_certificate(conn->ssl);
	if (x509 == NULL)
		return TLS_PEER_CERT_NONE;
	/* the entry's length, then the text: Dovecot refuses a name whose
	 * text is shorter than its length (a NUL inside) */
	WOLFSSL_X509_NAME *subject = wolfSSL_X509_get_subject_name(x509);
	int len = subject != NULL ? wolfSSL_X509_NAME_get_text_by_NID(subject, conn->ctx->username_nid,
								       NULL, 0)
				  : -1;
	if (len <= 0 || len >= TLS_CERT_NAME_MAX ||
	    wolfSSL_X509_NAME_get_text_by_NID(subject, conn->ctx->username_nid, name,
					      TLS_CERT_NAME_MAX) != len ||
	    strlen(name) != (size_t)len)
		name[0] = '\0';
	wolfSSL_X509_free(x509);
	return TLS_PEER_CERT_VALID;
}
