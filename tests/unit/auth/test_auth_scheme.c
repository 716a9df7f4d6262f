#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "auth/auth-scheme.h"

#include <crypt.h>
#include <stdlib.h>
#include <string.h>

static enum scheme_result verify(const char *scheme, const char *hash, const char *pw)
{
	return auth_scheme_verify(scheme, hash, (const uint8_t *)pw, strlen(pw));
}

/* hash "secret" with a fixed salt setting through libcrypt, as an admin's
   doveadm pw would */
static char *make_hash(const char *setting, const char *pw)
{
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	const char *out = crypt_rn(pw, setting, cd, (int)sizeof(*cd));
	assert_non_null(out);
	assert_true(out[0] != '*');
	char *ret = strdup(out);
	free(cd);
	return ret;
}

static void check_crypt(const char *scheme, const char *setting)
{
	char *hash = make_hash(setting, "s3cret pass");
	assert_int_equal(verify(scheme, hash, "s3cret pass"), SCHEME_OK);
	assert_int_equal(verify(scheme, hash, "s3cret pasS"), SCHEME_MISMATCH);
	assert_int_equal(verify(scheme, hash, "s3cret pass "), SCHEME_MISMATCH);
	assert_int_equal(verify(scheme, hash, "x"), SCHEME_MISMATCH);
	/* a NUL cannot be given to crypt(): never a match, even of a prefix */
	assert_int_equal(auth_scheme_verify(scheme, hash, (const uint8_t *)"s3cret pass\0x", 13),
			 SCHEME_MISMATCH);
	/* {CRYPT} accepts every crypt hash, as Dovecot's does */
	assert_int_equal(verify("CRYPT", hash, "s3cret pass"), SCHEME_OK);
	assert_int_equal(verify("crypt", hash, "wrong"), SCHEME_MISMATCH);
	free(hash);
}

static void test_md5_crypt(void **state)
{
	(void)state;
	check_crypt("MD5-CRYPT", "$1$saltsalt$");
}

static void test_sha256_crypt(void **state)
{
	(void)state;
	check_crypt("SHA256-CRYPT", "$5$saltsaltsaltsalt$");
}

static void test_sha512_crypt(void **state)
{
	(void)state;
	check_crypt("SHA512-CRYPT", "$6$saltsaltsaltsalt$");
	/* a known vector (glibc's test): "Hello world!" with saltstring */
	assert_int_equal(verify("SHA512-CRYPT",
				"$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJu"
				"esI68u4OTLiBFdcbYEdFCoEOfaS35inz1", "Hello world!"), SCHEME_OK);
}

static void test_blf_crypt(void **state)
{
	(void)state;
	check_crypt("BLF-CRYPT", "$2b$05$abcdefghijklmnopqrstuu");
	char *hash = make_hash("$2b$05$abcdefghijklmnopqrstuu", "pw");
	hash[2] = 'y'; /* $2y$ is the same algorithm */
	assert_int_equal(verify("BLF-CRYPT", hash, "pw"), SCHEME_OK);
	free(hash);
}

static void test_des_crypt(void **state)
{
	(void)state;
	char *hash = make_hash("ab", "secret");
	assert_int_equal(strlen(hash), 13);
	assert_int_equal(verify("CRYPT", hash, "secret"), SCHEME_OK);
	assert_int_equal(verify("CRYPT", hash, "secreT"), SCHEME_MISMATCH);
	assert_int_equal(verify("DES-CRYPT", hash, "secret"), SCHEME_OK);
	free(hash);
}

static void test_plain(void **state)
{
	(void)state;
	assert_int_equal(verify("PLAIN", "secret", "secret"), SCHEME_OK);
	assert_int_equal(verify("CLEARTEXT", "secret", "secret"), SCHEME_OK);
	assert_int_equal(verify("PLAIN", "secret", "secreT"), SCHEME_MISMATCH);
	assert_int_equal(verify("PLAIN", "secret", "secre"), SCHEME_MISMATCH);
	assert_int_equal(verify("PLAIN", "secret", "secrets"), SCHEME_MISMATCH);
	assert_int_equal(verify("PLAIN", "", "x"), SCHEME_MISMATCH);
	assert_int_equal(auth_scheme_verify("PLAIN", "a", (const uint8_t *)"a\0", 2), SCHEME_MISMATCH);
	assert_true(auth_mem_equal("abc", 3, "abc", 3));
	assert_false(auth_mem_equal("abc", 3, "abd", 3));
	assert_false(auth_mem_equal("abc", 3, "ab", 2));
	assert_true(auth_mem_equal("", 0, "", 0));
}

static void test_config_errors(void **state)
{
	(void)state;
	assert_true(auth_scheme_known("SHA512-CRYPT"));
	assert_true(auth_scheme_known("plain"));
	assert_false(auth_scheme_known("SSHA"));
	assert_false(auth_scheme_known(""));
	assert_int_equal(verify("SSHA", "whatever", "x"), SCHEME_UNKNOWN);
	/* hash of another scheme than its prefix says */
	char *md5 = make_hash("$1$saltsalt$", "pw");
	assert_int_equal(verify("SHA512-CRYPT", md5, "pw"), SCHEME_BAD_HASH);
	assert_int_equal(verify("BLF-CRYPT", md5, "pw"), SCHEME_BAD_HASH);
	free(md5);
	/* locked accounts and garbage never match */
	assert_int_equal(verify("CRYPT", "!", "x"), SCHEME_BAD_HASH);
	assert_int_equal(verify("CRYPT", "*", ""), SCHEME_BAD_HASH);
	assert_int_equal(verify("CRYPT", "", ""), SCHEME_BAD_HASH);
	/* libcrypt takes "$6$" as an empty salt: a hash that never matches */
	assert_int_not_equal(verify("SHA512-CRYPT", "$6$", "x"), SCHEME_OK);
	assert_int_equal(verify("CRYPT", "$9$nonsense", "x"), SCHEME_BAD_HASH);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_md5_crypt),
		cmocka_unit_test(test_sha256_crypt),
		cmocka_unit_test(test_sha512_crypt),
		cmocka_unit_test(test_blf_crypt),
		cmocka_unit_test(test_des_crypt),
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_config_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
