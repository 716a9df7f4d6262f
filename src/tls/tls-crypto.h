/* tls-crypto.h — the hash, MAC, key-derivation and signature-verification
 * primitives that auth's SASL mechanisms and password schemes need (SCRAM,
 * CRAM-MD5, APOP, JWT), taken from wolfSSL so that src/tls stays the only
 * directory that includes it and ringgate carries no hash code of its own.
 * Stateless except for parsed public keys, which are opaque and immutable
 * once loaded. Nothing here allocates on the hash paths. */
#ifndef RG_TLS_CRYPTO_H
#define RG_TLS_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum crypto_hash {
	CRYPTO_MD5,
	CRYPTO_SHA1,
	CRYPTO_SHA256,
	CRYPTO_SHA384,
	CRYPTO_SHA512,
};
#define CRYPTO_HASH_MAX 64 /* the longest digest (SHA-512) */

size_t crypto_hash_len(enum crypto_hash h);
/* out holds crypto_hash_len(h) bytes */
void crypto_hash(enum crypto_hash h, const void *data, size_t len, uint8_t *out);
void crypto_hmac(enum crypto_hash h, const void *key, size_t key_len, const void *data,
		 size_t len, uint8_t *out);
/* PBKDF2-HMAC (RFC 8018), as SCRAM's Hi(); -EINVAL on an iteration count
 * or length wolfSSL refuses */
int crypto_pbkdf2(enum crypto_hash h, const void *pw, size_t pw_len, const void *salt,
		  size_t salt_len, unsigned iterations, uint8_t *out, size_t out_len);

/* CRAM-MD5's stored credential (Dovecot's {CRAM-MD5}): the MD5 states after
 * the outer and the inner HMAC pad blocks, little-endian words, outer first.
 * Lets the password stay hashed while HMAC-MD5 of any challenge can still be
 * computed. */
#define CRYPTO_CRAM_MD5_CONTEXT_LEN 32
void crypto_cram_md5_context(const void *key, size_t key_len,
			     uint8_t ctx[CRYPTO_CRAM_MD5_CONTEXT_LEN]);
/* HMAC-MD5(key, msg) from the key's context */
void crypto_cram_md5_from_context(const uint8_t ctx[CRYPTO_CRAM_MD5_CONTEXT_LEN],
				  const void *msg, size_t len, uint8_t out[16]);

/* A public key for JWT signature checks. */
enum crypto_key_type {
	CRYPTO_KEY_RSA,     /* >= 2048 bits */
	CRYPTO_KEY_P256,
	CRYPTO_KEY_P384,
	CRYPTO_KEY_ED25519,
};
struct crypto_pubkey;

/* PEM "PUBLIC KEY" (SubjectPublicKeyInfo) or "RSA PUBLIC KEY"; NULL with
 * *error_r on anything else (a private key, a short RSA key, a curve other
 * than P-256/P-384/Ed25519). */
struct crypto_pubkey *crypto_pubkey_load_pem(const char *pem, size_t len, const char **error_r);
enum crypto_key_type crypto_pubkey_type(const struct crypto_pubkey *key);
void crypto_pubkey_free(struct crypto_pubkey **key);

enum crypto_sig {
	CRYPTO_SIG_RSA_PKCS1, /* RSASSA-PKCS1-v1_5 with h (RS256/384/512) */
	CRYPTO_SIG_ECDSA_RAW, /* r || s, each the curve's size (ES256/384) */
	CRYPTO_SIG_ED25519,   /* pure Ed25519, h unused (EdDSA) */
};
/* true only when sig is a valid signature of msg by key under sig/h; a key
 * of another type than sig needs is a mismatch, never a conversion */
bool crypto_verify(const struct crypto_pubkey *key, enum crypto_sig sig, enum crypto_hash h,
		   const void *msg, size_t len, const uint8_t *signature, size_t sig_len);

#endif
