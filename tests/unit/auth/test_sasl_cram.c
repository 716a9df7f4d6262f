#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "auth/sasl-cram.h"

#include <stdlib.h>
#include <string.h>

#define S(lit) (const uint8_t *)(lit), sizeof(lit) - 1

/* RFC 2195's example */
#define RFC_CHAL "<1896.697170952@postoffice.reston.mci.net>"
#define RFC_RESP "tim b913a602c7eda7a495b4e6e7334d3890"

static bool parse_exact(const char *resp, size_t len, char *user, uint8_t *digest,
			const char **error)
{
	uint8_t *buf = malloc(len > 0 ? len : 1);
	memcpy(buf, resp, len);
	bool ok = cram_md5_parse(buf, len, user, digest, error);
	free(buf);
	return ok;
}

static void test_cram_rfc2195(void **state)
{
	(void)state;
	char user[CRAM_MAX_USER + 1];
	uint8_t digest[16];
	const char *error = NULL;
	assert_true(parse_exact(RFC_RESP, strlen(RFC_RESP), user, digest, &error));
	assert_string_equal(user, "tim");
	assert_true(cram_md5_verify_plain(S("tanstaaftanstaaf"), RFC_CHAL, strlen(RFC_CHAL),
					  digest));
	assert_false(cram_md5_verify_plain(S("tanstaaftanstaag"), RFC_CHAL, strlen(RFC_CHAL),
					   digest));
	assert_false(cram_md5_verify_plain(S("tanstaaftanstaaf"), RFC_CHAL,
					   strlen(RFC_CHAL) - 1, digest));

	/* the stored context serves the same check without the password */
	uint8_t ctx[CRYPTO_CRAM_MD5_CONTEXT_LEN];
	crypto_cram_md5_context("tanstaaftanstaaf", 16, ctx);
	assert_true(cram_md5_verify_context(ctx, RFC_CHAL, strlen(RFC_CHAL), digest));
	char hex[65];
	cram_md5_context_format(ctx, hex);
	uint8_t back[CRYPTO_CRAM_MD5_CONTEXT_LEN];
	assert_true(cram_md5_context_parse(hex, back));
	assert_memory_equal(back, ctx, sizeof(ctx));
	ctx[5] ^= 1;
	assert_false(cram_md5_verify_context(ctx, RFC_CHAL, strlen(RFC_CHAL), digest));

	/* upper-case hex digits are the same digest */
	assert_true(parse_exact("tim B913A602C7EDA7A495B4E6E7334D3890", 36, user, digest, &error));
	assert_true(cram_md5_verify_plain(S("tanstaaftanstaaf"), RFC_CHAL, strlen(RFC_CHAL),
					  digest));
	/* a user name with a space: the digest follows the last one */
	assert_true(parse_exact("t m b913a602c7eda7a495b4e6e7334d3890", 36, user, digest, &error));
	assert_string_equal(user, "t m");
}

/* Dovecot's own {CRAM-MD5} for "tanstaaftanstaaf" (doveadm pw -s CRAM-MD5,
   Dovecot 2.3): our context has its layout, and the digest computed from it
   is RFC 2195's; a key longer than a block is hashed first, as HMAC says */
#define DOVECOT_CRAM "d06d4e1b26fccaa4b0b61801132340a354b21152711fb604ca3e035e7015116b"

static void test_cram_context(void **state)
{
	(void)state;
	uint8_t ctx[CRYPTO_CRAM_MD5_CONTEXT_LEN], digest[16];
	char hexctx[65];
	crypto_cram_md5_context("tanstaaftanstaaf", 16, ctx);
	cram_md5_context_format(ctx, hexctx);
	assert_string_equal(hexctx, DOVECOT_CRAM);
	uint8_t dctx[CRYPTO_CRAM_MD5_CONTEXT_LEN];
	const char *error = NULL;
	char user[CRAM_MAX_USER + 1];
	assert_true(cram_md5_context_parse(DOVECOT_CRAM, dctx));
	assert_true(parse_exact(RFC_RESP, strlen(RFC_RESP), user, digest, &error));
	assert_true(cram_md5_verify_context(dctx, RFC_CHAL, strlen(RFC_CHAL), digest));

	char longkey[100];
	memset(longkey, 'k', sizeof(longkey));
	crypto_cram_md5_context(longkey, sizeof(longkey), ctx);
	crypto_cram_md5_from_context(ctx, "msg", 3, digest);
	uint8_t want[16];
	crypto_hmac(CRYPTO_MD5, longkey, sizeof(longkey), "msg", 3, want);
	assert_memory_equal(digest, want, 16);
	/* every key length around the block size */
	for (size_t klen = 0; klen <= 70; klen++) {
		crypto_cram_md5_context(longkey, klen, ctx);
		crypto_cram_md5_from_context(ctx, RFC_CHAL, strlen(RFC_CHAL), digest);
		crypto_hmac(CRYPTO_MD5, longkey, klen, RFC_CHAL, strlen(RFC_CHAL), want);
		assert_memory_equal(digest, want, 16);
	}
	assert_false(cram_md5_context_parse("00", ctx));
	char hex[65];
	memset(hex, 'g', 64);
	hex[64] = '\0';
	assert_false(cram_md5_context_parse(hex, ctx));
}

static void test_cram_bad(void **state)
{
	(void)state;
	static const struct {
		const char *resp;
		const char *error;
	} bad[] = {
		{ "", "response is not \"user digest\"" },
		{ "tim", "response is not \"user digest\"" },
		{ "timb913a602c7eda7a495b4e6e7334d3890", "response is not \"user digest\"" },
		{ " b913a602c7eda7a495b4e6e7334d3890", "empty user name" },
		{ "tim b913a602c7eda7a495b4e6e7334d389g", "digest is not 32 hex digits" },
		{ "tim b913a602c7eda7a495b4e6e7334d38900", "response is not \"user digest\"" },
		{ "t\x01m b913a602c7eda7a495b4e6e7334d3890", "user name is not valid UTF-8 text" },
		{ "\xc0\xaf b913a602c7eda7a495b4e6e7334d3890", "user name is not valid UTF-8 text" },
	};
	char user[CRAM_MAX_USER + 1];
	uint8_t digest[16];
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *error = NULL;
		assert_false(parse_exact(bad[i].resp, strlen(bad[i].resp), user, digest, &error));
		assert_string_equal(error, bad[i].error);
	}
	/* NUL in the name */
	const char *error = NULL;
	assert_false(parse_exact("t\0m b913a602c7eda7a495b4e6e7334d3890", 36, user, digest, &error));
	assert_string_equal(error, "user name is not valid UTF-8 text");
	/* bounds: 255-byte name fine, 256 too long, 1 MB refused unread */
	char buf[CRAM_MAX_RESP + 2];
	memset(buf, 'u', sizeof(buf));
	memcpy(buf + 255, " b913a602c7eda7a495b4e6e7334d3890", 33);
	assert_true(parse_exact(buf, 255 + 33, user, digest, &error));
	memset(buf, 'u', sizeof(buf));
	memcpy(buf + 256, " b913a602c7eda7a495b4e6e7334d3890", 33);
	assert_false(parse_exact(buf, 256 + 33, user, digest, &error));
	assert_string_equal(error, "response too long");
	size_t big = 1024 * 1024;
	uint8_t *huge = calloc(1, big);
	assert_false(cram_md5_parse(huge, big, user, digest, &error));
	assert_string_equal(error, "response too long");
	free(huge);
	/* every truncation of a good response fails */
	for (size_t k = 0; k < strlen(RFC_RESP); k++)
		assert_false(parse_exact(RFC_RESP, k, user, digest, &error));
}

static void test_challenge(void **state)
{
	(void)state;
	uint8_t rnd[16];
	for (int i = 0; i < 16; i++)
		rnd[i] = (uint8_t)(i * 17);
	char chal[CRAM_MAX_CHALLENGE];
	size_t len;
	assert_true(cram_challenge_make(rnd, 4242, 1700000000, "mail.example.org", chal, &len));
	assert_string_equal(chal, "<4242.1700000000.00112233445566778899aabbccddeeff@mail.example.org>");
	assert_int_equal(len, strlen(chal));
	unsigned pid = 0;
	assert_true(cram_challenge_parse(chal, len, &pid));
	assert_int_equal(pid, 4242);
	/* every truncation is refused */
	for (size_t k = 0; k < len; k++)
		assert_false(cram_challenge_parse(chal, k, &pid));
	assert_false(cram_challenge_make(rnd, 1, 1, "bad host", chal, &len));
	assert_false(cram_challenge_make(rnd, 1, 1, "", chal, &len));
	assert_false(cram_challenge_make(rnd, 1, 1, "a>b", chal, &len));
	static const char *const bad[] = {
		"<4242.1700000000.00112233445566778899aabbccddeeff@>",
		"<4242.1700000000.00112233445566778899aabbccddeefg@h>",
		"<.1700000000.00112233445566778899aabbccddeeff@h>",
		"<4242..00112233445566778899aabbccddeeff@h>",
		"<4242.1.00112233445566778899aabbccddeeff@h h>",
		"<4242.1.00112233445566778899aabbccddeeff h>",
		"4242.1.00112233445566778899aabbccddeeff@h",
		"<99999999999.1.00112233445566778899aabbccddeeff@h>",
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(cram_challenge_parse(bad[i], strlen(bad[i]), &pid));
}

static void test_apop(void **state)
{
	(void)state;
	/* RFC 1939's example: MD5("<1896.697170952@dbc.mtview.ca.us>tanstaaf") */
	struct apop_msg m;
	memset(&m, 0, sizeof(m));
	m.challenge = "<1896.697170952@dbc.mtview.ca.us>";
	m.chal_len = strlen(m.challenge);
	static const uint8_t d[16] = { 0xc4, 0xc9, 0x33, 0x4b, 0xac, 0x56, 0x0e, 0xcc,
				       0x97, 0x9e, 0x58, 0x00, 0x1b, 0x3e, 0x22, 0xfb };
	memcpy(m.digest, d, 16);
	assert_true(apop_verify(&m, S("tanstaaf")));
	assert_false(apop_verify(&m, S("tanstaaF")));

	/* login's encoding of "APOP user digest" and auth's parse of it */
	const char *chal = "<77.1700000000.00112233445566778899aabbccddeeff@h>";
	uint8_t msg[CRAM_MAX_CHALLENGE + CRAM_MAX_USER + 18];
	size_t len;
	assert_true(apop_encode(chal, "mrose", 5, "c4c9334bac560ecc979e58001b3e22fb", 32, msg,
				&len));
	const char *error = NULL;
	for (size_t k = 0; k <= len; k++) {
		uint8_t *buf = malloc(k > 0 ? k : 1);
		memcpy(buf, msg, k);
		bool ok = apop_parse(buf, k, &m, &error);
		assert_int_equal(ok, k == len);
		if (ok) {
			assert_string_equal(m.user, "mrose");
			assert_memory_equal(m.digest, d, 16);
			assert_int_equal(m.chal_len, strlen(chal));
		}
		free(buf);
	}
	assert_false(apop_encode(chal, "mrose", 5, "c4c9334bac560ecc979e58001b3e22f", 31, msg,
				 &len));
	assert_false(apop_encode(chal, "mrose", 5, "x4c9334bac560ecc979e58001b3e22fb", 32, msg,
				 &len));
	assert_false(apop_encode(chal, "", 0, "c4c9334bac560ecc979e58001b3e22fb", 32, msg, &len));

	static const struct {
		const char *m;
		size_t len;
		const char *error;
	} bad[] = {
		{ "<1.1.00112233445566778899aabbccddeeff@h>", 40, "missing NUL after the challenge" },
		{ "<1896.697170952@dbc.mtview.ca.us>\0u\0" "0123456789abcdef", 52,
		  "malformed APOP challenge" },
		{ "<1.1.00112233445566778899aabbccddeeff@h>\0user", 45, "missing NUL after the user name" },
		{ "<1.1.00112233445566778899aabbccddeeff@h>\0\0" "0123456789abcdef", 58,
		  "empty user name" },
		{ "<1.1.00112233445566778899aabbccddeeff@h>\0u\0" "0123456789abcde", 58,
		  "APOP digest is not 16 bytes" },
		{ "<1.1.00112233445566778899aabbccddeeff@h>\0u\0" "0123456789abcdefg", 60,
		  "APOP digest is not 16 bytes" },
		{ "<1.1.00112233445566778899aabbccddeeff@h>\0\x01\0" "0123456789abcdef", 59,
		  "user name is not valid UTF-8 text" },
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_false(apop_parse((const uint8_t *)bad[i].m, bad[i].len, &m, &error));
		assert_string_equal(error, bad[i].error);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cram_rfc2195), cmocka_unit_test(test_cram_context),
		cmocka_unit_test(test_cram_bad),     cmocka_unit_test(test_challenge),
		cmocka_unit_test(test_apop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
