/* TLS engine tests: the X25519 public keys tls-x25519.c makes by
 * fixed-base multiplication (asm build) are the Montgomery ladder's: RFC
 * 7748's vectors, and random keys made through wc_curve25519_make_key
 * (wrapped in this binary as in every binary linked with rgtls) against
 * the ladder on the base point. The handshake tests negotiate X25519
 * through the same wrapper on both ends. */
#include "tls/tls-private.h"
#include <wolfssl/wolfcrypt/curve25519.h>
#include <wolfssl/wolfcrypt/random.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#if RINGGATE_WOLFSSL_ASM
static void hex(uint8_t out[32], const char *text)
{
	for (int i = 0; i < 32; i++) {
		unsigned v;
		assert_int_equal(sscanf(text + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

/* RFC 7748 6.1: Alice's and Bob's private keys and public keys */
static void test_rfc7748_vectors(void **state)
{
	static const char *const vec[][2] = {
		{ "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
		  "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a" },
		{ "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
		  "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		uint8_t k[32], want[32], got[32];
		hex(k, vec[i][0]);
		hex(want, vec[i][1]);
		/* X25519 clamps the scalar (RFC 7748 5) */
		k[0] &= 248;
		k[31] &= 127;
		k[31] |= 64;
		tls_x25519_base(got, k);
		assert_memory_equal(got, want, 32);
	}
}

/* wolfSSL's own callers reach the wrapper: the symbol this binary links
 * under wolfSSL's name is ours */
static void test_wrapped(void **state)
{
	(void)state;
	assert_ptr_equal((void *)wc_curve25519_make_key, (void *)__wrap_wc_curve25519_make_key);
}

static void test_random_keys_match_ladder(void **state)
{
	static const uint8_t base[32] = { 9 };
	WC_RNG rng;
	(void)state;
	assert_int_equal(wc_InitRng(&rng), 0);
	for (int i = 0; i < 2000; i++) {
		curve25519_key key;
		uint8_t want[32];
		assert_int_equal(wc_curve25519_init(&key), 0);
		assert_int_equal(wc_curve25519_make_key(&rng, CURVE25519_KEYSIZE, &key), 0);
		assert_true(key.privSet && key.pubSet);
		assert_int_equal(wc_curve25519_generic(32, want, 32, key.k, 32, base), 0);
		assert_memory_equal(key.p.point, want, 32);
		wc_curve25519_free(&key);
	}
	/* a key size it does not handle goes to wolfSSL's own, which refuses */
	curve25519_key key;
	assert_int_equal(wc_curve25519_init(&key), 0);
	assert_int_not_equal(wc_curve25519_make_key(&rng, 31, &key), 0);
	wc_curve25519_free(&key);
	wc_FreeRng(&rng);
}
#endif

int main(void)
{
#if RINGGATE_WOLFSSL_ASM
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc7748_vectors),
		cmocka_unit_test(test_wrapped),
		cmocka_unit_test(test_random_keys_match_ladder),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
#else
	/* Debian's shared library keeps its ladder: nothing of ours to test */
	return 0;
#endif
}
