/* tls-test.h — what the TLS engine's unit tests share: the certificates of
 * certs/ (see certs/README), a real wolfSSL client over memory buffers, and
 * the pumps that move bytes between it and a tls_conn in every split the
 * ring could produce. Each test_tls_*.c is its own ctest test. */
#ifndef RG_TEST_TLS_TEST_H
#define RG_TEST_TLS_TEST_H

#include "tls/tls-wolfssl.h"
#include <wolfssl/ssl.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tls/tls.h"

/* the PEM texts of certs/, loaded by tls_test_setup() */
extern char *rsa_cert, *rsa_key, *ec_cert, *ec_key, *other_cert, *other_key, *wild_cert, *wild_key,
	*mismatch_key, *dh_params;

/* cmocka group setup/teardown: load and free the certificates */
int tls_test_setup(void **state);
int tls_test_teardown(void **state);

/* a server context (prefer_server_ciphers on); fails the test on error */
struct tls_ctx *make_ctx_full(const char *cert, const char *key, const char *min_protocol,
			      const char *ciphers);
struct tls_ctx *make_ctx(const char *cert, const char *key);

/* --- the test client --- */

struct buf {
	uint8_t *data;
	size_t len, cap;
};

void buf_append(struct buf *b, const void *data, size_t len);
void buf_shift(struct buf *b, size_t n);
void buf_free(struct buf *b);

struct client {
	WOLFSSL_CTX *ctx;
	WOLFSSL *ssl;
	struct buf from_server; /* ciphertext the client has not read yet */
	struct buf to_server;	/* ciphertext the server has not been fed yet */
	struct buf transcript;	/* everything the server sent */
	bool done;
	/* set: a client error ends the handshake instead of the test, and
	 * lands in failed */
	bool may_fail;
	int failed;
	/* the server certificate's common name, taken by the client's verify
	 * callback (wolfSSL may keep no peer certificate after the handshake) */
	char peer_cn[256];
};

enum client_version { V12, V13, V11 };

/* when set, the next clients offer only these TLS <= 1.2 suites, in order */
extern const char *client_ciphers;
/* when set, the next TLS 1.3 clients send a key share for this group */
extern int client_key_share;
/* when set, the next clients support only these groups (0-terminated) */
extern const int *client_groups;

/* a client that offers tickets, with SNI `sni` and resuming `session` if
 * not NULL */
struct client *client_new(enum client_version v, const char *sni, WOLFSSL_SESSION *session);
void client_free(struct client *c);
/* one step of the client handshake; fails the test on a client error
 * (unless may_fail) */
void client_step(struct client *c);
/* client handshake step that may fail; returns the wolfSSL error or 0 */
int client_try(struct client *c);
/* let the client process what the server sent after the handshake (TLS 1.3
 * tickets) and return plaintext it read (appended to plain if not NULL) */
size_t client_read_all(struct client *c, struct buf *plain);
/* the CN of the certificate the server showed the client */
void peer_cn(struct client *c, char *out, size_t size);
/* did the server send a handshake message of this type in plaintext
 * handshake records (TLS 1.2: before its first ChangeCipherSpec)? */
bool transcript_has(const struct buf *t, uint8_t type);

/* --- moving bytes --- */

/* server output → client, consuming it in pieces of `piece` bytes so the
 * engine sees partial sends */
void server_to_client(struct tls_conn *s, struct client *c, size_t piece);
/* everything the client has written so far, fed to the server at once */
void feed_all(struct tls_conn *s, struct client *c);
/* Run both handshakes to completion, feeding the server `chunk` bytes at a
 * time. Returns the server's last result (TLS_OK or TLS_ERROR). */
enum tls_result pump_handshake(struct tls_conn *s, struct client *c, size_t chunk, const char **error_r);
/* a new server connection on ctx with a finished handshake to c */
struct tls_conn *handshake(struct tls_ctx *ctx, struct client *c);

/* one context, one client, one server connection after the handshake */
struct tls_pair {
	struct tls_ctx *ctx;
	struct client *c;
	struct tls_conn *s;
};
void pair_open(struct tls_pair *p, const char *cert, const char *key, enum client_version v);
void pair_close(struct tls_pair *p);

/* --- sessions --- */

void key_material(uint8_t key[TLS_TICKET_KEY_SIZE], uint8_t seed);
/* full handshake on ctx, returning the client's session (with ticket) */
WOLFSSL_SESSION *get_session(struct tls_ctx *ctx, enum client_version v);
/* a handshake offering sess: did the server resume it? The client's new
 * session goes to *new_sess_r if not NULL */
bool try_resume(struct tls_ctx *ctx, enum client_version v, WOLFSSL_SESSION *sess,
		WOLFSSL_SESSION **new_sess_r);

/* a handshake on ctx naming sni (NULL: none) shows a certificate for
 * expect_cn, and the server saw the name */
void check_sni(struct tls_ctx *ctx, enum client_version v, const char *sni, const char *expect_cn);
/* a TLS 1.3 session made on ctx naming sni resumes on another context
 * that has ctx's ticket keys (set here from seed) */
void check_resume_elsewhere(struct tls_ctx *ctx, const char *sni, uint8_t seed);

/* a reproducible pseudo-random byte pattern */
void fill_pattern(uint8_t *p, size_t len, uint32_t seed);

/* test_NAME_13 and test_NAME_12: check(V13) and check(V12) */
#define TLS_TEST_VERSIONS(name, check)                \
	static void name##_13(void **state)           \
	{                                             \
		(void)state;                          \
		check(V13);                           \
	}                                             \
	static void name##_12(void **state)           \
	{                                             \
		(void)state;                          \
		check(V12);                           \
	}

#endif
