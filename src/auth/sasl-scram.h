/* sasl-scram.h — the server side of SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802,
 * RFC 7677), with and without channel binding (-PLUS), and Dovecot's stored
 * credential format "{SCRAM-SHA-256}iter,salt,StoredKey,ServerKey" (base64
 * fields). Pure: no I/O, no allocation; the caller looks the credentials up
 * between the client's first message and the server's first one, so the
 * exchange fits both a synchronous passdb and an asynchronous lookup. Each
 * step sees one whole client message (login reassembles and base64-decodes
 * them); every size is bounded by SCRAM_MAX_*. */
#ifndef RG_SASL_SCRAM_H
#define RG_SASL_SCRAM_H

#include "tls/tls-crypto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCRAM_MAX_MSG 1024      /* one client message */
#define SCRAM_MAX_USER 255      /* the decoded user name */
#define SCRAM_MAX_SALT 64
#define SCRAM_MAX_CB 64         /* channel-binding data (tls-unique: 12..48) */
#define SCRAM_DEFAULT_ITERATIONS 4096
#define SCRAM_MAX_ITERATIONS 10000000u
#define SCRAM_NONCE_MAX 128     /* client nonce + server nonce */

struct scram_creds {
	unsigned iterations;
	size_t salt_len;
	uint8_t salt[SCRAM_MAX_SALT];
	uint8_t stored_key[CRYPTO_HASH_MAX];
	uint8_t server_key[CRYPTO_HASH_MAX];
};

enum scram_result {
	SCRAM_OK,
	SCRAM_FAIL, /* *error_r says why, for the log (no secrets) */
};

enum scram_stage {
	SCRAM_WANT_CLIENT_FIRST,
	SCRAM_WANT_CREDS,
	SCRAM_WANT_CLIENT_FINAL,
	SCRAM_DONE,
	SCRAM_FAILED,
};

struct scram_server {
	enum crypto_hash hash;
	enum scram_stage stage;
	bool plus;          /* this is the -PLUS mechanism */
	bool plus_offered;  /* the server advertises -PLUS (a "y" client is a downgrade) */
	size_t cb_len;
	uint8_t cb_data[SCRAM_MAX_CB]; /* the connection's binding (plus only) */
	char cb_name[16];              /* its type: "tls-unique" / "tls-exporter" */

	size_t user_len;
	char user[SCRAM_MAX_USER + 1];
	size_t gs2_len;     /* gs2 header, at the start of auth_msg's scratch */
	char gs2[SCRAM_MAX_MSG];
	size_t cnonce_len, nonce_len;
	char nonce[SCRAM_NONCE_MAX + 1];
	struct scram_creds creds;
	/* AuthMessage: client-first-bare "," server-first "," client-final
	   without proof; the server-first part doubles as that message */
	size_t auth_len, server_first_off, server_first_len;
	char auth_msg[3 * SCRAM_MAX_MSG + 256];
	char out[128];      /* server-final "v=..." */
};

/* hash: CRYPTO_SHA1 or CRYPTO_SHA256. For plus, cb_name/cb_data are the
 * channel binding the login process's TLS engine reported for this
 * connection; without plus they are ignored (pass NULL, 0). */
void scram_init(struct scram_server *st, enum crypto_hash hash, bool plus, bool plus_offered,
		const char *cb_name, const uint8_t *cb_data, size_t cb_len);
void scram_clear(struct scram_server *st);

/* client-first-message. OK: st->user (decoded saslname, valid UTF-8) is whose
 * credentials to fetch. */
enum scram_result scram_client_first(struct scram_server *st, const uint8_t *msg, size_t len,
				     const char **error_r);
/* The credentials and the server's part of the nonce (printable ASCII, no
 * ',', 16..64 chars; random in production). Writes the server-first
 * message, valid until the next call. */
enum scram_result scram_server_first(struct scram_server *st, const struct scram_creds *creds,
				     const char *snonce, const char **out_r, size_t *out_len_r,
				     const char **error_r);
/* client-final-message: verifies the proof. OK: *out_r is server-final. */
enum scram_result scram_client_final(struct scram_server *st, const uint8_t *msg, size_t len,
				     const char **out_r, size_t *out_len_r, const char **error_r);

/* Dovecot's stored form without the "{SCHEME}" prefix */
bool scram_creds_parse(enum crypto_hash hash, const char *s, struct scram_creds *creds_r,
		       const char **error_r);
/* from a plaintext password (a {PLAIN} passdb entry, or `ringgate pw`) */
int scram_creds_from_password(enum crypto_hash hash, const uint8_t *pw, size_t pw_len,
			      const uint8_t *salt, size_t salt_len, unsigned iterations,
			      struct scram_creds *creds_r);
/* the stored form; out needs SCRAM_CREDS_STR_MAX bytes */
#define SCRAM_CREDS_STR_MAX (12 + 4 * (SCRAM_MAX_SALT / 3 + 1) + 8 * (CRYPTO_HASH_MAX / 3 + 1) + 4)
void scram_creds_format(enum crypto_hash hash, const struct scram_creds *creds, char *out);

#endif
