#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "auth/auth-sasl.h"

#include <string.h>

#define S(lit) (const uint8_t *)(lit), sizeof(lit) - 1

static void test_mechs(void **state)
{
	(void)state;
	enum sasl_mech m;
	assert_true(sasl_mech_parse("PLAIN", &m));
	assert_int_equal(m, SASL_MECH_PLAIN);
	assert_true(sasl_mech_parse("login", &m));
	assert_int_equal(m, SASL_MECH_LOGIN);
	assert_true(sasl_mech_parse("cram-md5", &m));
	assert_int_equal(m, SASL_MECH_CRAM_MD5);
	assert_true(sasl_mech_parse("SCRAM-SHA-256", &m));
	assert_int_equal(m, SASL_MECH_SCRAM_SHA256);
	assert_true(sasl_mech_parse("SCRAM-SHA-256-PLUS", &m));
	assert_int_equal(m, SASL_MECH_SCRAM_SHA256_PLUS);
	assert_true(sasl_mech_parse("scram-sha-1-plus", &m));
	assert_int_equal(m, SASL_MECH_SCRAM_SHA1_PLUS);
	assert_true(sasl_mech_parse("External", &m));
	assert_int_equal(m, SASL_MECH_EXTERNAL);
	assert_false(sasl_mech_parse("SCRAM-SHA-256-PLUSX", &m));
	/* the -PLUS form is its own word in a list */
	assert_false(sasl_mech_allowed("scram-sha-256-plus", SASL_MECH_SCRAM_SHA256));
	assert_false(sasl_mech_allowed("scram-sha-256", SASL_MECH_SCRAM_SHA256_PLUS));
	assert_false(sasl_mech_parse("DIGEST-MD5", &m));
	assert_true(sasl_mech_allowed("plain scram-sha-1", SASL_MECH_SCRAM_SHA1));
	assert_false(sasl_mech_allowed("plain scram-sha-1", SASL_MECH_SCRAM_SHA256));
	assert_false(sasl_mech_parse("", &m));
	assert_false(sasl_mech_parse("PLAINX", &m));
	assert_true(sasl_mech_allowed("plain", SASL_MECH_PLAIN));
	assert_false(sasl_mech_allowed("plain", SASL_MECH_LOGIN));
	assert_true(sasl_mech_allowed("plain login", SASL_MECH_LOGIN));
	assert_true(sasl_mech_allowed(" LOGIN,plain ", SASL_MECH_PLAIN));
	assert_false(sasl_mech_allowed("plainlogin", SASL_MECH_PLAIN));
	assert_false(sasl_mech_allowed("", SASL_MECH_PLAIN));
}

static void test_plain_good(void **state)
{
	(void)state;
	struct sasl_state st;
	const char *error = NULL;
	sasl_init(&st, SASL_MECH_PLAIN);
	assert_true(sasl_plain_decode(S("\0alice\0pw"), &st, &error));
	assert_string_equal(st.user, "alice");
	assert_int_equal(st.user_len, 5);
	assert_memory_equal(st.pass, "pw", 2);
	assert_int_equal(st.pass_len, 2);

	/* authzid equal to authcid */
	assert_true(sasl_plain_decode(S("alice\0alice\0p w"), &st, &error));
	assert_string_equal(st.user, "alice");
	assert_int_equal(st.pass_len, 3);

	/* UTF-8 names; passwords are any bytes but NUL */
	assert_true(sasl_plain_decode(S("\0j\xc3\xbcrgen\0\xff\xfe\x01"), &st, &error));
	assert_string_equal(st.user, "j\xc3\xbcrgen");
	assert_int_equal(st.pass_len, 3);

	/* the bounds themselves are fine */
	uint8_t buf[SASL_MAX_RESP];
	memset(buf, 'u', sizeof(buf));
	buf[0] = '\0';
	buf[1 + SASL_MAX_USER] = '\0';
	assert_true(sasl_plain_decode(buf, sizeof(buf), &st, &error));
	assert_int_equal(st.user_len, SASL_MAX_USER);
	assert_int_equal(st.pass_len, SASL_MAX_RESP - SASL_MAX_USER - 2);
	sasl_clear(&st);
	assert_int_equal(st.user_len, 0);
	assert_int_equal(st.pass[0], 0);
}

static void test_plain_bad(void **state)
{
	(void)state;
	static const struct {
		const char *data;
		size_t len;
		const char *error;
	} bad[] = {
		{ "", 0, "missing NUL after authzid" },
		{ "alicepw", 7, "missing NUL after authzid" },
		{ "\0alicepw", 8, "missing NUL after authcid" },
		{ "\0\0pw", 4, "empty user name" },
		{ "\0alice\0", 7, "empty password" },
		{ "\0alice\0pw\0", 10, "NUL in the password" },
		{ "\0alice\0p\0w", 10, "NUL in the password" },
		{ "bob\0alice\0pw", 12, "authorization id differs from the authentication id" },
		{ "alic\0alice\0pw", 13, "authorization id differs from the authentication id" },
		{ "\0al\x01ice\0pw", 10, "user name is not valid UTF-8 text" },
		{ "\0al\xffice\0pw", 10, "user name is not valid UTF-8 text" },
		{ "\0al\xc3\0pw", 7, "user name is not valid UTF-8 text" },
		{ "\0\xc0\xaf\0pw", 6, "user name is not valid UTF-8 text" },     /* overlong */
		{ "\0\xed\xa0\x80\0pw", 7, "user name is not valid UTF-8 text" }, /* surrogate */
		{ "\0\xc2\x85\0pw", 6, "user name is not valid UTF-8 text" },     /* C1 NEL */
		{ "\0a\x7f\0pw", 6, "user name is not valid UTF-8 text" },
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sasl_state st;
		const char *error = NULL;
		sasl_init(&st, SASL_MECH_PLAIN);
		if (sasl_plain_decode((const uint8_t *)bad[i].data, bad[i].len, &st, &error))
			fail_msg("accepted case %u", i);
		assert_string_equal(error, bad[i].error);
		assert_int_equal(st.pass_len, 0);
	}

	struct sasl_state st;
	const char *error = NULL;
	uint8_t buf[SASL_MAX_RESP + 1];
	memset(buf, 'u', sizeof(buf));
	buf[0] = '\0';
	buf[5] = '\0';
	assert_false(sasl_plain_decode(buf, sizeof(buf), &st, &error));
	assert_string_equal(error, "response too long");
	buf[5] = 'u';
	buf[2 + SASL_MAX_USER] = '\0';
	assert_false(sasl_plain_decode(buf, SASL_MAX_RESP, &st, &error));
	assert_string_equal(error, "user name too long");
}

static void test_plain_steps(void **state)
{
	(void)state;
	struct sasl_state st;
	const uint8_t *chal = NULL;
	size_t chal_len = 99;
	const char *error = NULL;

	/* initial response */
	sasl_init(&st, SASL_MECH_PLAIN);
	assert_int_equal(sasl_begin(&st, true, S("\0u\0p"), &chal, &chal_len, &error), SASL_STEP_DONE);
	assert_string_equal(st.user, "u");

	/* none: an empty challenge, then the response */
	sasl_init(&st, SASL_MECH_PLAIN);
	assert_int_equal(sasl_begin(&st, false, NULL, 0, &chal, &chal_len, &error),
			 SASL_STEP_CHALLENGE);
	assert_int_equal(chal_len, 0);
	assert_int_equal(sasl_continue(&st, S("\0u\0p"), &chal, &chal_len, &error), SASL_STEP_DONE);
	assert_string_equal(st.user, "u");
	/* a second response is a protocol error */
	assert_int_equal(sasl_continue(&st, S("\0u\0p"), &chal, &chal_len, &error), SASL_STEP_FAIL);

	/* an empty initial response is an empty PLAIN message: malformed */
	sasl_init(&st, SASL_MECH_PLAIN);
	assert_int_equal(sasl_begin(&st, true, S(""), &chal, &chal_len, &error), SASL_STEP_FAIL);
	sasl_init(&st, SASL_MECH_PLAIN);
	assert_int_equal(sasl_begin(&st, false, NULL, 0, &chal, &chal_len, &error),
			 SASL_STEP_CHALLENGE);
	assert_int_equal(sasl_continue(&st, S("garbage"), &chal, &chal_len, &error), SASL_STEP_FAIL);
	assert_string_equal(error, "missing NUL after authzid");
}

static void test_login(void **state)
{
	(void)state;
	struct sasl_state st;
	const uint8_t *chal = NULL;
	size_t chal_len = 0;
	const char *error = NULL;

	sasl_init(&st, SASL_MECH_LOGIN);
	assert_int_equal(sasl_begin(&st, false, NULL, 0, &chal, &chal_len, &error),
			 SASL_STEP_CHALLENGE);
	assert_int_equal(chal_len, 9);
	assert_memory_equal(chal, "Username:", 9);
	assert_int_equal(sasl_continue(&st, S("alice"), &chal, &chal_len, &error),
			 SASL_STEP_CHALLENGE);
	assert_memory_equal(chal, "Password:", 9);
	assert_int_equal(sasl_continue(&st, S("pw pw"), &chal, &chal_len, &error), SASL_STEP_DONE);
	assert_string_equal(st.user, "alice");
	assert_int_equal(st.pass_len, 5);
	assert_int_equal(sasl_continue(&st, S("more"), &chal, &chal_len, &error), SASL_STEP_FAIL);
	assert_string_equal(error, "unexpected response");

	/* initial response = the user name; an empty one counts as none */
	sasl_init(&st, SASL_MECH_LOGIN);
	assert_int_equal(sasl_begin(&st, true, S("bob"), &chal, &chal_len, &error),
			 SASL_STEP_CHALLENGE);
	assert_memory_equal(chal, "Password:", 9);
	assert_int_equal(sasl_continue(&st, S("x"), &chal, &chal_len, &error), SASL_STEP_DONE);
	assert_string_equal(st.user, "bob");
	sasl_init(&st, SASL_MECH_LOGIN);
	assert_int_equal(sasl_begin(&st, true, S(""), &chal, &chal_len, &error),
			 SASL_STEP_CHALLENGE);
	assert_memory_equal(chal, "Username:", 9);

	/* bad user names and passwords */
	static const struct {
		const char *user;
		size_t ulen;
		const char *pass;
		size_t plen;
		const char *error;
	} bad[] = {
		{ "", 0, NULL, 0, "empty user name" },
		{ "a\0b", 3, NULL, 0, "NUL in the user name" },
		{ "a\tb", 3, NULL, 0, "user name is not valid UTF-8 text" },
		{ "alice", 5, "", 0, "empty password" },
		{ "alice", 5, "p\0w", 3, "NUL in the password" },
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		sasl_init(&st, SASL_MECH_LOGIN);
		assert_int_equal(sasl_begin(&st, false, NULL, 0, &chal, &chal_len, &error),
				 SASL_STEP_CHALLENGE);
		enum sasl_step s = sasl_continue(&st, (const uint8_t *)bad[i].user, bad[i].ulen,
						 &chal, &chal_len, &error);
		if (bad[i].pass != NULL) {
			assert_int_equal(s, SASL_STEP_CHALLENGE);
			s = sasl_continue(&st, (const uint8_t *)bad[i].pass, bad[i].plen, &chal,
					  &chal_len, &error);
		}
		assert_int_equal(s, SASL_STEP_FAIL);
		assert_string_equal(error, bad[i].error);
	}
	uint8_t big[SASL_MAX_RESP + 1];
	memset(big, 'x', sizeof(big));
	sasl_init(&st, SASL_MECH_LOGIN);
	assert_int_equal(sasl_begin(&st, true, S("u"), &chal, &chal_len, &error),
			 SASL_STEP_CHALLENGE);
	assert_int_equal(sasl_continue(&st, big, sizeof(big), &chal, &chal_len, &error),
			 SASL_STEP_FAIL);
	assert_string_equal(error, "response too long");
	sasl_init(&st, SASL_MECH_LOGIN);
	assert_int_equal(sasl_begin(&st, true, big, SASL_MAX_USER + 1, &chal, &chal_len, &error),
			 SASL_STEP_FAIL);
	assert_string_equal(error, "user name too long");
	sasl_init(&st, SASL_MECH_LOGIN);
	assert_int_equal(sasl_begin(&st, true, S("u"), &chal, &chal_len, &error),
			 SASL_STEP_CHALLENGE);
	assert_int_equal(sasl_continue(&st, big, SASL_MAX_PASS, &chal, &chal_len, &error),
			 SASL_STEP_DONE);
	assert_int_equal(st.pass_len, SASL_MAX_PASS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mechs),
		cmocka_unit_test(test_plain_good),
		cmocka_unit_test(test_plain_bad),
		cmocka_unit_test(test_plain_steps),
		cmocka_unit_test(test_login),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
