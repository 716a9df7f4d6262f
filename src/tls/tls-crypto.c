#include "tls/tls-wolfssl.h"
#include "tls/tls-crypto.h"

#include "lib/alloc.h"
#include "lib/log.h"

#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/ed25519.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/hmac.h>
#include <wolfssl/wolfcrypt/md5.h>
#include <wolfssl/wolfcrypt/pwdbased.h>
#include <wolfssl/wolfcrypt/rsa.h>
#include <wolfssl/wolfcrypt/signature.h>

#include <errno.h>
#include <limits.h>
#include <string.h>

static const struct {
	enum wc_HashType type;
	size_t len;
} hashes[] = {
	[CRYPTO_MD5] = { WC_HASH_TYPE_MD5, 16 },
	[CRYPTO_SHA1] = { WC_HASH_TYPE_SHA, 20 },
	[CRYPTO_SHA256] = { WC_HASH_TYPE_SHA256, 32 },
	[CRYPTO_SHA384] = { WC_HASH_TYPE_SHA384, 48 },
	[CRYPTO_SHA512] = { WC_HASH_TYPE_SHA512, 64 },
};

size_t crypto_hash_len(enum crypto_hash h)
{
	return hashes[h].len;
}

void crypto_hash(enum crypto_hash h, const void *data, size_t len, uint8_t *out)
{
	if (len > UINT32_MAX ||
	    wc_Hash(hashes[h].type, data, (word32)len, out, (word32)hashes[h].len) != 0)
		log_fatal("wolfSSL: hash failed");
}

void crypto_hmac(enum crypto_hash h, const void *key, size_t key_len, const void *data,
		 size_t len, uint8_t *out)
{
	Hmac hmac;
	if (key_len > UINT32_MAX || len > UINT32_MAX || wc_HmacInit(&hmac, NULL, INVALID_DEVID) != 0)
		log_fatal("wolfSSL: HMAC init failed");
	if (wc_HmacSetKey(&hmac, (int)hashes[h].type, key, (word32)key_len) != 0 ||
	    wc_HmacUpdate(&hmac, data, (word32)len) != 0 || wc_HmacFinal(&hmac, out) != 0)
		log_fatal("wolfSSL: HMAC failed");
	wc_HmacFree(&hmac);
	explicit_bzero(&hmac, sizeof(hmac));
}

int crypto_pbkdf2(enum crypto_hash h, const void *pw, size_t pw_len, const void *salt,
		  size_t salt_len, unsigned iterations, uint8_t *out, size_t out_len)
{
	if (iterations == 0 || iterations > INT_MAX || pw_len > INT_MAX || salt_len > INT_MAX ||
	    out_len > INT_MAX)
		return -EINVAL;
	if (wc_PBKDF2(out, pw, (int)pw_len, salt, (int)salt_len, (int)iterations, (int)out_len,
		      (int)hashes[h].type) != 0)
		return -EINVAL;
	return 0;
}

/* ---- CRAM-MD5 contexts ------------------------------------------------- */

static void md5_state_put(const wc_Md5 *md5, uint8_t *out)
{
	for (unsigned i = 0; i < 4; i++) {
		uint32_t w = md5->digest[i];
		out[i * 4] = (uint8_t)w;
		out[i * 4 + 1] = (uint8_t)(w >> 8);
		out[i * 4 + 2] = (uint8_t)(w >> 16);
		out[i * 4 + 3] = (uint8_t)(w >> 24);
	}
}

/* an MD5 that has consumed exactly one 64-byte block whose state is st */
static void md5_state_get(wc_Md5 *md5, const uint8_t *st)
{
	if (wc_InitMd5(md5) != 0)
		log_fatal("wolfSSL: MD5 init failed");
	for (unsigned i = 0; i < 4; i++)
		md5->digest[i] = (uint32_t)st[i * 4] | (uint32_t)st[i * 4 + 1] << 8 |
				 (uint32_t)st[i * 4 + 2] << 16 | (uint32_t)st[i * 4 + 3] << 24;
	md5->buffLen = 0;
	md5->loLen = WC_MD5_BLOCK_SIZE;
	md5->hiLen = 0;
}

void crypto_cram_md5_context(const void *key, size_t key_len,
			     uint8_t ctx[CRYPTO_CRAM_MD5_CONTEXT_LEN])
{
	uint8_t k[WC_MD5_BLOCK_SIZE], pad[WC_MD5_BLOCK_SIZE];
	memset(k, 0, sizeof(k));
	if (key_len > sizeof(k))
		crypto_hash(CRYPTO_MD5, key, key_len, k);
	else
		memcpy(k, key, key_len);
	wc_Md5 md5;
	for (unsigned round = 0; round < 2; round++) {
		/* outer (0x5c) first, as Dovecot stores it */
		uint8_t x = round == 0 ? 0x5c : 0x36;
		for (unsigned i = 0; i < sizeof(pad); i++)
			pad[i] = k[i] ^ x;
		if (wc_InitMd5(&md5) != 0 || wc_Md5Update(&md5, pad, sizeof(pad)) != 0)
			log_fatal("wolfSSL: MD5 failed");
		md5_state_put(&md5, ctx + round * 16);
		wc_Md5Free(&md5);
	}
	explicit_bzero(k, sizeof(k));
	explicit_bzero(pad, sizeof(pad));
	explicit_bzero(&md5, sizeof(md5));
}

void crypto_cram_md5_from_context(const uint8_t ctx[CRYPTO_CRAM_MD5_CONTEXT_LEN],
				  const void *msg, size_t len, uint8_t out[16])
{
	wc_Md5 md5;
	uint8_t inner[WC_MD5_DIGEST_SIZE];
	md5_state_get(&md5, ctx + 16);
	if (len > UINT32_MAX || wc_Md5Update(&md5, msg, (word32)len) != 0 ||
	    wc_Md5Final(&md5, inner) != 0)
		log_fatal("wolfSSL: MD5 failed");
	wc_Md5Free(&md5);
	md5_state_get(&md5, ctx);
	if (wc_Md5Update(&md5, inner, sizeof(inner)) != 0 || wc_Md5Final(&md5, out) != 0)
		log_fatal("wolfSSL: MD5 failed");
	wc_Md5Free(&md5);
	explicit_bzero(&md5, sizeof(md5));
}

/* ---- public keys ------------------------------------------------------- */

struct crypto_pubkey {
	enum crypto_key_type type;
	union {
		RsaKey rsa;
		ecc_key ecc;
		ed25519_key ed;
	} u;
};

#define PUBKEY_DER_MAX 4096 /* an RSA-16384 SubjectPublicKeyInfo fits */

struct crypto_pubkey *crypto_pubkey_load_pem(const char *pem, size_t len, const char **error_r)
{
	if (len == 0 || len > 3 * PUBKEY_DER_MAX) {
		*error_r = "PEM key empty or too long";
		return NULL;
	}
	uint8_t *der = rg_malloc(PUBKEY_DER_MAX);
	int der_len = wc_PubKeyPemToDer((const unsigned char *)pem, (int)len, der, PUBKEY_DER_MAX);
	if (der_len <= 0) {
		rg_free(der);
		*error_r = "not a PEM public key";
		return NULL;
	}
	struct crypto_pubkey *key = rg_calloc(1, sizeof(*key));
	word32 idx = 0;
	*error_r = NULL;
	if (wc_InitRsaKey(&key->u.rsa, NULL) == 0) {
		if (wc_RsaPublicKeyDecode(der, &idx, &key->u.rsa, (word32)der_len) == 0) {
			key->type = CRYPTO_KEY_RSA;
			rg_free(der);
			if (wc_RsaEncryptSize(&key->u.rsa) < 2048 / 8) {
				crypto_pubkey_free(&key);
				*error_r = "RSA key shorter than 2048 bits";
			}
			return key;
		}
		wc_FreeRsaKey(&key->u.rsa);
	}
	memset(&key->u, 0, sizeof(key->u));
	idx = 0;
	if (wc_ecc_init(&key->u.ecc) == 0) {
		if (wc_EccPublicKeyDecode(der, &idx, &key->u.ecc, (word32)der_len) == 0) {
			int curve = key->u.ecc.dp != NULL ? key->u.ecc.dp->id : -1;
			rg_free(der);
			if (curve == ECC_SECP256R1) {
				key->type = CRYPTO_KEY_P256;
				return key;
			}
			if (curve == ECC_SECP384R1) {
				key->type = CRYPTO_KEY_P384;
				return key;
			}
			key->type = CRYPTO_KEY_P256;
			crypto_pubkey_free(&key);
			*error_r = "EC key on a curve other than P-256 or P-384";
			return NULL;
		}
		wc_ecc_free(&key->u.ecc);
	}
	memset(&key->u, 0, sizeof(key->u));
	idx = 0;
	if (wc_ed25519_init(&key->u.ed) == 0) {
		if (wc_Ed25519PublicKeyDecode(der, &idx, &key->u.ed, (word32)der_len) == 0) {
			key->type = CRYPTO_KEY_ED25519;
			rg_free(der);
			return key;
		}
		wc_ed25519_free(&key->u.ed);
	}
	rg_free(der);
	rg_free(key);
	*error_r = "unsupported public key (RSA, EC P-256/P-384 and Ed25519 are)";
	return NULL;
}

enum crypto_key_type crypto_pubkey_type(const struct crypto_pubkey *key)
{
	return key->type;
}

void crypto_pubkey_free(struct crypto_pubkey **keyp)
{
	struct crypto_pubkey *key = *keyp;
	if (key == NULL)
		return;
	*keyp = NULL;
	switch (key->type) {
	case CRYPTO_KEY_RSA:
		wc_FreeRsaKey(&key->u.rsa);
		break;
	case CRYPTO_KEY_P256:
	case CRYPTO_KEY_P384:
		wc_ecc_free(&key->u.ecc);
		break;
	case CRYPTO_KEY_ED25519:
		wc_ed25519_free(&key->u.ed);
		break;
	}
	rg_free(key);
}

bool crypto_verify(const struct crypto_pubkey *key, enum crypto_sig sig, enum crypto_hash h,
		   const void *msg, size_t len, const uint8_t *signature, size_t sig_len)
{
	/* wolfSSL's verify functions take non-const keys but do not change
	   them (no blinding or caches on the public side) */
	struct crypto_pubkey *k = (struct crypto_pubkey *)key;
	if (len > UINT32_MAX || sig_len > UINT32_MAX)
		return false;
	switch (sig) {
	case CRYPTO_SIG_RSA_PKCS1:
		if (key->type != CRYPTO_KEY_RSA || h == CRYPTO_MD5 || h == CRYPTO_SHA1 ||
		    (int)sig_len != wc_RsaEncryptSize(&k->u.rsa))
			return false;
		return wc_SignatureVerify(hashes[h].type, WC_SIGNATURE_TYPE_RSA_W_ENC, msg,
					  (word32)len, signature, (word32)sig_len, &k->u.rsa,
					  sizeof(k->u.rsa)) == 0;
	case CRYPTO_SIG_ECDSA_RAW: {
		size_t half;
		if (key->type == CRYPTO_KEY_P256 && h == CRYPTO_SHA256)
			half = 32;
		else if (key->type == CRYPTO_KEY_P384 && h == CRYPTO_SHA384)
			half = 48;
		else
			return false;
		if (sig_len != 2 * half)
			return false;
		uint8_t der[2 * 48 + 16];
		word32 der_len = sizeof(der);
		if (wc_ecc_rs_raw_to_sig(signature, (word32)half, signature + half, (word32)half,
					 der, &der_len) != 0)
			return false;
		uint8_t digest[CRYPTO_HASH_MAX];
		crypto_hash(h, msg, len, digest);
		int res = 0;
		return wc_ecc_verify_hash(der, der_len, digest, (word32)hashes[h].len, &res,
					  &k->u.ecc) == 0 && res == 1;
	}
	case CRYPTO_SIG_ED25519: {
		if (key->type != CRYPTO_KEY_ED25519 || sig_len != ED25519_SIG_SIZE)
			return false;
		int res = 0;
		return wc_ed25519_verify_msg(signature, (word32)sig_len, msg, (word32)len, &res,
					     &k->u.ed) == 0 && res == 1;
	}
	}
	return false;
}
