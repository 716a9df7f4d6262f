/* tls.h — TLS (server side for clients, client side for backends): contexts (certificate, SNI certificates, ticket
 * keys shared by every login process) and a per-connection engine that turns
 * ciphertext into plaintext and back over memory buffers. The engine never
 * makes a system call: the caller feeds it what the ring received and sends
 * what it leaves in its output buffer.
 *
 * Invariants: a connection holds at most TLS_IN_MAX bytes of unprocessed
 * input and TLS_OUT_MAX bytes of unsent output, and holds neither buffer
 * while it is empty. This is the only module that includes wolfSSL. */
#ifndef RG_TLS_H
#define RG_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ticket key material, made by master and given to every login process:
 * 16 bytes key name, then a 32-byte AES-256-GCM key */
#define TLS_TICKET_KEY_SIZE 48
/* one TLS record (header + largest ciphertext): tls_conn_feed takes at
 * least this much whenever a handshake/read call has returned TLS_WANT_INPUT */
#define TLS_IN_MAX (5 + 16384 + 2048)
/* unsent ciphertext: room for eight full records, so a relay keeps one
 * 64 KiB receive's records in flight to the client while it encrypts the
 * next (records wait in one piece, sent together) */
#define TLS_OUT_MAX (8 * (16384 + 512))

enum tls_result {
	TLS_OK = 0,	 /* done; for read: *len_r > 0 bytes of plaintext */
	TLS_WANT_INPUT,	 /* feed more ciphertext (and send pending output) */
	TLS_WANT_OUTPUT, /* output buffer full: send, consume, call again */
	TLS_CLOSED,	 /* the peer sent close_notify */
	TLS_ERROR,	 /* fatal: send pending output (the alert), then close */
};

struct tls_ctx_settings {
	const char *cert_pem;	  /* certificate chain, leaf first (ssl_cert) */
	const char *key_pem;	  /* its private key, RSA or ECDSA (ssl_key) */
	const char *ca_pem;	  /* optional trust anchors (ssl_ca); NULL or "" */
	const char *min_protocol; /* "TLSv1.2" (also for NULL/"") or "TLSv1.3" */
	const char *cipher_list;  /* OpenSSL syntax for TLS <= 1.2; NULL or "" = default */
	bool prefer_server_ciphers;
	const char *dh_pem;	  /* DH parameters for DHE suites (ssl_dh); NULL or "" = none */
	/* key exchange groups in preference order, colon-separated canonical
	 * names as settings stores them ("X25519:P-256:P-384"); NULL or "" =
	 * X25519, P-256, X448, P-384, P-521, ffdhe2048, ffdhe3072 */
	const char *curve_list;
	/* ssl_verify_client_cert: ask every client for a certificate and check
	 * it against ca_pem's certificates. As in Dovecot's login processes,
	 * a missing or invalid certificate does not fail the handshake; auth
	 * refuses what needs one (tls_conn_peer_cert). Session tickets are not
	 * issued then: a resumed session has no certificate to show. The
	 * certificate request names ca_pem's CAs (TLS 1.2). */
	bool verify_client;
	/* ssl_require_crl: the CRLs in ca_pem are checked for every
	 * certificate of a client's chain, and one without a CRL of its
	 * issuer is invalid; false: CRLs are not checked */
	bool require_crl;
	/* ssl_cert_username_field: the subject entry that names the user
	 * (OpenSSL's names: "commonName", "CN", "emailAddress", ...); NULL or
	 * "" = commonName */
	const char *cert_username_field;
};

struct tls_ctx;
struct tls_conn;

/* Which wolfSSL this binary carries, for `ringgate -V` and the start-up log:
 * "wolfSSL 5.5.4 asm build, CPU paths: AES-NI AVX AVX2 BMI2 ADX" (the paths
 * its assembly picks on this CPU) or "wolfSSL 5.5.4 system build, Debian's,
 * no assembly". */
const char *tls_crypto_info(void);

/* Error strings (error_r) are for the log and stay valid until the next
 * tls_* call. */

/* A server context from PEM text. Session tickets work at once with a random
 * key; tls_ctx_set_ticket_keys makes them resumable across processes.
 * Returns 0, or -EINVAL with error_r ("ssl_key: does not match ssl_cert"). */
int tls_ctx_create(const struct tls_ctx_settings *set, struct tls_ctx **ctx_r,
		   const char **error_r);
/* A client context, for the login process's connections to backends
 * (passdb proxy ssl/starttls): verify = the backend's chain must lead to a
 * certificate in ca_pem (ssl=yes; tls_conn_set_peer_name adds the name
 * check), else nothing is verified (any-cert). TLS 1.2 or later. 0 or
 * -EINVAL with error_r. */
int tls_ctx_create_client(const char *ca_pem, bool verify, struct tls_ctx **ctx_r,
			  const char **error_r);
/* Drops one reference; connections made from ctx must be freed first. */
void tls_ctx_free(struct tls_ctx **ctx);
/* A fresh DRBG for ctx (its SNI subs have none: they draw from ctx's), for
 * a process forked from the one that built ctx (the high-security login
 * template): without it, parent and children draw the same ticket IVs.
 * Each connection's own DRBG is made at tls_conn_new, from getrandom(). */
void tls_ctx_reseed(struct tls_ctx *ctx);

/* Tickets are sealed with current and opened with current or previous
 * (NULL: none), so keys can be rotated without failing live tickets; a
 * ticket opened with previous is replaced by a fresh one. */
void tls_ctx_set_ticket_keys(struct tls_ctx *ctx, const uint8_t current[TLS_TICKET_KEY_SIZE],
			     const uint8_t *previous);

/* Serve sub's certificate to clients asking for name (case-insensitive;
 * "*.example.com" matches one label). ctx takes a reference on sub; many
 * names may share one sub, and a connection only points at it, so names
 * cost no memory per connection. sub seals tickets with ctx's keys: a sub
 * belongs to one parent. Unknown or absent names get ctx's certificate.
 * Returns 0 or -EINVAL (bad or duplicate name). */
int tls_ctx_add_sni(struct tls_ctx *ctx, const char *name, struct tls_ctx *sub,
		    const char **error_r);

/* local_name certificates built on first use. A builder collects each
 * name with its certificate and key text (identical text is kept once);
 * finishing lays them out, with base's other settings (ca, protocols,
 * suites, groups, client certificates), in one read-only shared mapping:
 * a fork copies none of its page tables, and a process touches only the
 * pages its lookups read. No context is built until asked for. */
struct tls_sni_builder;
struct tls_sni_store;
struct tls_sni_builder *tls_sni_builder_new(void);
/* the entry (>= 0) serving name (case-insensitive; "*.example.com"
 * matches one label); the same text gives the same entry. -EINVAL with
 * error_r for a bad or duplicate name, too many names or bytes. */
int tls_sni_builder_add(struct tls_sni_builder *b, const char *name, const char *cert_pem,
			const char *key_pem, const char **error_r);
/* The store (NULL when no name was added); frees the builder and wipes
 * its copies of the key text. */
struct tls_sni_store *tls_sni_builder_finish(struct tls_sni_builder **b,
					     const struct tls_ctx_settings *base);
void tls_sni_builder_free(struct tls_sni_builder **b);
void tls_sni_store_free(struct tls_sni_store **store);
/* The store in a sealed memfd (no process can change it once made: master
 * makes it, every login process maps the same pages): the fd (close-on-
 * exec) or -errno. */
int tls_sni_store_fd(const struct tls_sni_store *store);
/* Map such an fd read-only (the caller may close it then): 0, or -errno /
 * -EINVAL (not sealed, not a store of this version) with error_r. */
int tls_sni_store_map(int fd, struct tls_sni_store **store_r, const char **error_r);
/* the entry serving a client's name (exact, then "*." + all but its first
 * label), or -1 (unknown, or not a host name: NULL, empty, too long, odd
 * characters) */
int tls_sni_store_find(const struct tls_sni_store *store, const char *name);
unsigned tls_sni_store_entries(const struct tls_sni_store *store);
/* Build entry's context (for a start-up check: prove_pair proves the key
 * belongs to the certificate). 0 or -EINVAL with error_r. */
int tls_sni_store_ctx(const struct tls_sni_store *store, unsigned entry, struct tls_ctx *owner,
		      bool prove_pair, struct tls_ctx **ctx_r, const char **error_r);
/* ctx serves store's names (after its tls_ctx_add_sni ones), building an
 * entry's context when a client first asks for one of its names and
 * keeping the TLS_SNI_CACHE_MAX (256) last used; ctx owns store. */
void tls_ctx_set_sni_store(struct tls_ctx *ctx, struct tls_sni_store *store);

/* TLS state for one client. Call it when the client's first handshake byte
 * arrives (on 993/995 the first receive, after STARTTLS/STLS the first
 * byte after the OK), not at accept: an idle connection holds no TLS memory. */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx);
void tls_conn_free(struct tls_conn **conn);

/* A client connection to a backend called host (passdb host=: a DNS name
 * or an IP address), before the first handshake call: a name goes out as
 * SNI, and with check_name the handshake fails unless the certificate names
 * host (subjectAltName DNS or IP entries, else its CN; "*.example.com"
 * matches one label) with the reason "subject name mismatch". */
void tls_conn_set_peer_name(struct tls_conn *conn, const char *host, bool check_name);

/* Copy received ciphertext in; returns how much was taken. All of it (up to
 * TLS_IN_MAX) once the last handshake/read call returned TLS_WANT_INPUT;
 * otherwise call read first and feed the rest after. */
size_t tls_conn_feed(struct tls_conn *conn, const void *data, size_t len);

/* Drive the server handshake: TLS_OK when done (call again: still TLS_OK),
 * TLS_WANT_INPUT, TLS_WANT_OUTPUT or TLS_ERROR with a reason. After every
 * call, send what tls_conn_pending_output shows. */
enum tls_result tls_conn_handshake(struct tls_conn *conn, const char **error_r);

/* Plaintext out: TLS_OK with *len_r > 0, TLS_WANT_INPUT, TLS_WANT_OUTPUT,
 * TLS_CLOSED (close_notify) or TLS_ERROR. Call until it returns something
 * other than TLS_OK; input left over after the handshake is read here. */
enum tls_result tls_conn_read(struct tls_conn *conn, void *buf, size_t size, size_t *len_r,
			      const char **error_r);

/* Encrypt plaintext into the output buffer: TLS_OK with *taken_r == len, or
 * TLS_WANT_OUTPUT with *taken_r < len (buffer full: send, then write the
 * rest), or TLS_ERROR. Only after the handshake. */
enum tls_result tls_conn_write(struct tls_conn *conn, const void *data, size_t len,
			       size_t *taken_r, const char **error_r);

/* Whether tls_conn_write would take len bytes whole now (TLS_OK): the
 * handshake is done and the output buffer has room for their records. A
 * relay reads a buffer's worth from its source only then. */
bool tls_conn_can_take(const struct tls_conn *conn, size_t len);

/* Queue close_notify: TLS_OK, TLS_WANT_OUTPUT (send, call again) or
 * TLS_ERROR. The connection may be closed once the output is sent. */
enum tls_result tls_conn_shutdown(struct tls_conn *conn, const char **error_r);

/* The output chunks a process keeps for its busy connections go back to the
 * allocator when none was taken or given back since the last call: call
 * about once a second, so an idle process holds none after two calls. */
void tls_release_spares(void);

/* Ciphertext to send. *data_r stays valid and unchanged until the next
 * tls_conn_consume_output or tls_conn_free, even while the engine appends
 * more, so the ring can send from it directly. false when there is none.
 * It may be only the first part of what is pending (output is kept in
 * chunks so a small flight costs little): after consuming all of it, ask
 * again. */
bool tls_conn_pending_output(const struct tls_conn *conn, const uint8_t **data_r, size_t *len_r);
/* n bytes of the pending output were sent (n <= the *len_r just shown). */
void tls_conn_consume_output(struct tls_conn *conn, size_t n);

bool tls_conn_handshake_done(const struct tls_conn *conn);
/* the handshake resumed a session (ticket) instead of a full one */
bool tls_conn_resumed(const struct tls_conn *conn);
/* for the log, after the handshake: "TLSv1.3", "TLS_AES_128_GCM_SHA256",
 * the SNI name or NULL */
const char *tls_conn_version(const struct tls_conn *conn);
const char *tls_conn_cipher(const struct tls_conn *conn);
const char *tls_conn_sni(const struct tls_conn *conn);

/* Channel binding data for SCRAM-*-PLUS, after the handshake: TLS 1.3 gives
 * "tls-exporter" (RFC 9266: 32 bytes of the exporter labelled
 * "EXPORTER-Channel-Binding", no context), TLS 1.2 "tls-unique" (RFC 5929:
 * the first Finished message of the latest handshake, the client's in a
 * full handshake, ours in a resumed one). Returns the length written to
 * buf (at most TLS_CB_MAX) and the type in *type_r, or 0 when there is
 * none (no handshake yet, or wolfSSL could not give it). */
#define TLS_CB_MAX 64
size_t tls_conn_channel_binding(struct tls_conn *conn, const char **type_r,
				uint8_t buf[TLS_CB_MAX]);

/* The client's certificate on a verify_client context, after the handshake:
 * NONE (none sent, or the context does not ask), INVALID (its chain did
 * not verify: unknown CA, expired, revoked, no CRL with require_crl; the
 * reason in *error_r) or VALID, with name set to the
 * cert_username_field entry of its subject ("" when it has none, or when
 * the entry holds a NUL byte: a name that is not what it seems). */
enum tls_peer_cert { TLS_PEER_CERT_NONE, TLS_PEER_CERT_VALID, TLS_PEER_CERT_INVALID };
#define TLS_CERT_NAME_MAX 256
enum tls_peer_cert tls_conn_peer_cert(struct tls_conn *conn, char name[TLS_CERT_NAME_MAX],
				      const char **error_r);

#endif
