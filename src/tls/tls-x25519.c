/* tls-x25519.c — the X25519 key share's public key by fixed-base
 * multiplication (asm build only).
 *
 * wolfSSL 5.5.4 makes an X25519 public key with the generic Montgomery
 * ladder on the base point: as costly as the shared secret, about 15% of a
 * full TLS 1.3 handshake's CPU in a login process. The same point is
 * [k]B on the birationally equivalent Edwards curve, which wolfSSL's
 * Ed25519 code computes from precomputed tables of B (ge_scalarmult_base,
 * constant time) several times faster; the Montgomery u of an Edwards
 * point (X:Y:Z) is (Z + Y) / (Z - Y) (RFC 7748 4.1; libsodium computes its
 * crypto_scalarmult_curve25519_base the same way).
 *
 * The TLS code calls wc_curve25519_make_key directly (no callback in
 * 5.5.4), so the asm build links with `--wrap=wc_curve25519_make_key`
 * (src/tls/CMakeLists.txt): every call from the static library comes here.
 * The private key is made by wolfSSL (its RNG, its clamping); only the
 * public key's computation differs, and test_tls_x25519 checks it against
 * the ladder. Debian's shared library (the system build) cannot be wrapped
 * and keeps its ladder. */
#include "tls/tls-private.h"

#if RINGGATE_WOLFSSL_ASM
#include <wolfssl/wolfcrypt/curve25519.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/fe_operations.h>
#include <wolfssl/wolfcrypt/ge_operations.h>

#include <string.h>

void tls_x25519_base(uint8_t pub[TLS_X25519_SIZE], const uint8_t k[TLS_X25519_SIZE])
{
	ge_p3 a;
	fe zpy, zmy, inv, u;

	/* k is clamped: bit 255 clear, as ge_scalarmult_base requires */
	fe_init();
	ge_scalarmult_base(&a, k);
	fe_add(zpy, a.Z, a.Y);
	fe_sub(zmy, a.Z, a.Y);
	fe_invert(inv, zmy);
	fe_mul(u, zpy, inv);
	fe_tobytes(pub, u);
	/* the point tells the private key to whoever reads this stack */
	explicit_bzero(&a, sizeof(a));
	explicit_bzero(zpy, sizeof(zpy));
	explicit_bzero(zmy, sizeof(zmy));
	explicit_bzero(inv, sizeof(inv));
}

int __real_wc_curve25519_make_key(WC_RNG *rng, int keysize, curve25519_key *key);

int __wrap_wc_curve25519_make_key(WC_RNG *rng, int keysize, curve25519_key *key)
{
	if (key == NULL || rng == NULL || keysize != CURVE25519_KEYSIZE)
		return __real_wc_curve25519_make_key(rng, keysize, key);
	int ret = wc_curve25519_make_priv(rng, keysize, key->k);
	if (ret != 0)
		return ret;
	key->privSet = 1;
	tls_x25519_base(key->p.point, key->k);
	key->pubSet = 1;
	return 0;
}
#endif
