#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "lib/base64.h"

#include <string.h>

static const struct { const char *plain, *enc; } vectors[] = {
	{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
};

static void test_rfc4648_vectors(void **state)
{
	(void)state;
	char enc[64];
	unsigned char dec[64];
	size_t n;
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		size_t len = strlen(vectors[i].plain);
		assert_int_equal(base64_encode(vectors[i].plain, len, enc), strlen(vectors[i].enc));
		assert_string_equal(enc, vectors[i].enc);
		assert_true(base64_decode(vectors[i].enc, strlen(vectors[i].enc), dec, sizeof(dec), &n));
		assert_int_equal(n, len);
		assert_memory_equal(dec, vectors[i].plain, len);
	}
}

static void test_binary_round_trip(void **state)
{
	(void)state;
	unsigned char src[256], dec[256];
	char enc[BASE64_ENCODED_LEN(256) + 1];
	size_t n;
	for (int i = 0; i < 256; i++)
		src[i] = (unsigned char)(255 - i);
	for (size_t len = 0; len <= sizeof(src); len++) {
		size_t e = base64_encode(src, len, enc);
		assert_int_equal(e, BASE64_ENCODED_LEN(len));
		assert_true(base64_decode(enc, e, dec, sizeof(dec), &n));
		assert_int_equal(n, len);
		assert_memory_equal(dec, src, len);
	}
}

static void test_rejects(void **state)
{
	(void)state;
	unsigned char dec[16];
	size_t n;
	const char *bad[] = {
		"Zg=", "Zg", "Z===", "====", "Zm9v\n", "Zm 9", "Zm9v!A==", "Zg==Zg==",
		"Zh==", /* non-zero pad bits */ "Zm9=", "Z=g=", "=Zg=",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(base64_decode(bad[i], strlen(bad[i]), dec, sizeof(dec), &n));
	/* output too small */
	assert_false(base64_decode("Zm9vYmFy", 8, dec, 5, &n));
	assert_true(base64_decode("Zm9vYmFy", 8, dec, 6, &n));
}

/* lenient: every canonical encoding decodes as the strict decoder does */
static void test_lenient_agrees_on_valid(void **state)
{
	(void)state;
	unsigned char src[64], dec[BASE64_DECODED_MAX(BASE64_ENCODED_LEN(64))];
	char enc[BASE64_ENCODED_LEN(64) + 1];
	for (int i = 0; i < 64; i++)
		src[i] = (unsigned char)(i * 37 + 200);
	for (size_t len = 0; len <= sizeof(src); len++) {
		size_t e = base64_encode(src, len, enc);
		assert_int_equal(base64_decode_lenient(enc, e, dec), len);
		assert_memory_equal(dec, src, len);
	}
}

/* what mail carries: line breaks, missing or stray padding, junk bytes
 * (8-bit too) are skipped; bits short of a byte are dropped */
static void test_lenient_mail_input(void **state)
{
	(void)state;
	static const struct { const char *enc, *plain; } cases[] = {
		{ "Zm9v\r\nYmFy", "foobar" },
		{ "Zm 9v\tYm Fy\n", "foobar" },
		{ "Zm9vYg", "foob" },        /* no padding */
		{ "Zm9vYmE", "fooba" },
		{ "Zm9v=YmFy", "foobar" },   /* padding inside: skipped */
		{ "Z", "" },                 /* 6 bits: no byte */
		{ "Zm9", "fo" },             /* 18 bits: two bytes, 2 dropped */
		{ "!Zm\x80\xff" "9v?", "foo" }, /* junk and 8-bit bytes */
		{ "====", "" },
		{ "", "" },
	};
	unsigned char dec[64];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = strlen(cases[i].enc);
		size_t n = base64_decode_lenient(cases[i].enc, len, dec);
		assert_true(n <= BASE64_DECODED_MAX(len));
		assert_int_equal(n, strlen(cases[i].plain));
		assert_memory_equal(dec, cases[i].plain, n);
	}
	/* the length bound holds for every count of alphabet characters */
	char many[40];
	memset(many, '/', sizeof(many));
	for (size_t len = 0; len <= sizeof(many); len++) {
		size_t n = base64_decode_lenient(many, len, dec);
		assert_int_equal(n, len * 6 / 8);
		assert_true(n <= BASE64_DECODED_MAX(len));
		for (size_t k = 0; k < n; k++)
			assert_int_equal(dec[k], 0xff);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc4648_vectors),
		cmocka_unit_test(test_binary_round_trip),
		cmocka_unit_test(test_rejects),
		cmocka_unit_test(test_lenient_agrees_on_valid),
		cmocka_unit_test(test_lenient_mail_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
