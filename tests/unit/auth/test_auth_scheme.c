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
	assert_true(auth_scheme_known("SSHA"));
	assert_false(auth_scheme_known("SMD5"));
	assert_false(auth_scheme_known(""));
	assert_int_equal(verify("SMD5", "whatever", "x"), SCHEME_UNKNOWN);
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

/* Dovecot 2.3's `doveadm pw -p pencil` output for each scheme: a plaintext
   login (PLAIN, LOGIN, IMAP LOGIN, USER/PASS) against these entries */
static void test_dovecot_hashes(void **state)
{
	(void)state;
	static const struct {
		const char *scheme, *hash;
	} dc[] = {
		{ "SCRAM-SHA-256", "4096,42Yz7uDuskGDQNyhf7kNYQ==,"
				   "O43YZVJ65lqfA2moNzwfI2aniD1RbTI5tsLmiywe5FU=,"
				   "deD5TDhN5XCE67Ak80tp+M3g+nxR+hl9f4h20i5i/ls=" },
		{ "CRAM-MD5", "d06d4e1b26fccaa4b0b61801132340a354b21152711fb604ca3e035e7015116b" },
	};
	assert_int_equal(verify(dc[0].scheme, dc[0].hash, "pencil"), SCHEME_OK);
	assert_int_equal(verify(dc[0].scheme, dc[0].hash, "pencil "), SCHEME_MISMATCH);
	assert_int_equal(verify("SCRAM-SHA-1", dc[0].hash, "pencil"), SCHEME_BAD_HASH);
	assert_int_equal(verify(dc[0].scheme, "4096,abc", "pencil"), SCHEME_BAD_HASH);
	/* that CRAM-MD5 entry is for "tanstaaftanstaaf" (RFC 2195) */
	assert_int_equal(verify(dc[1].scheme, dc[1].hash, "tanstaaftanstaaf"), SCHEME_OK);
	assert_int_equal(verify(dc[1].scheme, dc[1].hash, "pencil"), SCHEME_MISMATCH);
	assert_int_equal(verify(dc[1].scheme, "d06d", "pencil"), SCHEME_BAD_HASH);
}

/* ringgate pw: every scheme it makes verifies with the same password only,
   and two runs never share a salt */
/* LDAP's and Dovecot's digest schemes; the vectors were made with Python's
   hashlib (base64 of H(pw + salt) + salt) */
static void test_digests(void **state)
{
	(void)state;
	assert_int_equal(verify("SHA", "W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "password"), SCHEME_OK);
	assert_int_equal(verify("SHA1", "5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8", "password"),
			 SCHEME_OK);
	assert_int_equal(verify("SHA", "W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "passwort"), SCHEME_MISMATCH);
	assert_int_equal(verify("SHA256", "MMlS+rEiw/l1nwKm2Vw3WLJGtP7iOZV7LU/uRuJhcMQ=", "pw"), SCHEME_OK);
	assert_int_equal(verify("SSHA", "4Wn6wvHdy364mypeUrqQn21bUu5yZ3NhbHQ0Mg==", "demo pass"), SCHEME_OK);
	assert_int_equal(verify("ssha", "4Wn6wvHdy364mypeUrqQn21bUu5yZ3NhbHQ0Mg==", "demo pasS"),
			 SCHEME_MISMATCH);
	assert_int_equal(verify("SSHA256", "Aks4Fe+qDrMZTahMHWVVhr9EWnmey7ryK3Eo7e4/sEtOYUNs", "pw256"),
			 SCHEME_OK);
	assert_int_equal(verify("SSHA512", "hj8hfeLjY8jhdoFkcv1P0hwwJVaZY2+aCoOvCGiPukcM1V74YQZLAJ4lAp4dPZ"
				"alGXyfPTEjBN/etsiyFINYA3NhbHRzYWx0", "pw512"), SCHEME_OK);
	/* malformed: not base64, a digest of the wrong length, no salt */
	assert_int_equal(verify("SSHA", "not base64!", "x"), SCHEME_BAD_HASH);
	assert_int_equal(verify("SHA", "W6ph5Mm5Pz8GgiULbPgzG37mj9g=AAAA", "x"), SCHEME_BAD_HASH);
	assert_int_equal(verify("SSHA", "W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "password"), SCHEME_BAD_HASH);
	assert_int_equal(verify("SHA1", "5baa61e4c9b93f3f0682250b6cf8331b7ee68fdz", "x"), SCHEME_BAD_HASH);
}

static void test_generate(void **state)
{
	(void)state;
	static const char *const gen[] = { "PLAIN", "MD5-CRYPT", "SHA256-CRYPT", "SHA512-CRYPT",
					   "BLF-CRYPT", "SCRAM-SHA-1", "SCRAM-SHA-256", "CRAM-MD5",
					   "SSHA", "SSHA256", "SSHA512", "SHA", "SHA256" };
	for (unsigned i = 0; i < sizeof(gen) / sizeof(gen[0]); i++) {
		const char *error = NULL;
		char *a = auth_scheme_generate(gen[i], (const uint8_t *)"p w", 3, 0, &error);
		char *b = auth_scheme_generate(gen[i], (const uint8_t *)"p w", 3, 0, &error);
		assert_non_null(a);
		assert_non_null(b);
		size_t plen = strlen(gen[i]) + 2;
		assert_int_equal(strncmp(a + 1, gen[i], plen - 2), 0);
		assert_int_equal(a[plen - 1], '}');
		assert_int_equal(verify(gen[i], a + plen, "p w"), SCHEME_OK);
		assert_int_equal(verify(gen[i], a + plen, "p W"), SCHEME_MISMATCH);
		if (strcmp(gen[i], "PLAIN") != 0 && strcmp(gen[i], "CRAM-MD5") != 0 &&
		    strncmp(gen[i], "SHA", 3) != 0)
			assert_string_not_equal(a, b);
		free(a);
		free(b);
	}
	const char *error = NULL;
	char *h = auth_scheme_generate("SCRAM-SHA-256", (const uint8_t *)"x", 1, 5000, &error);
	assert_non_null(h);
	assert_int_equal(strncmp(h, "{SCRAM-SHA-256}5000,", 20), 0);
	free(h);
	assert_null(auth_scheme_generate("NOPE", (const uint8_t *)"x", 1, 0, &error));
	assert_string_equal(error, "unknown scheme");
	assert_null(auth_scheme_generate("DES-CRYPT", (const uint8_t *)"x", 1, 0, &error));
	assert_null(auth_scheme_generate("PLAIN", (const uint8_t *)"a\0b", 3, 0, &error));
	assert_string_equal(error, "NUL in the password");
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
		cmocka_unit_test(test_dovecot_hashes),
		cmocka_unit_test(test_digests),
		cmocka_unit_test(test_generate),
		cmocka_unit_test(test_config_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
