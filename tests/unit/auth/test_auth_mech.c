#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "auth/auth-mech.h"
#include "auth/auth-scheme.h"
#include "auth/sasl-cram.h"
#include "auth/sasl-scram.h"
#include "lib/base64.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S(lit) (const uint8_t *)(lit), sizeof(lit) - 1

static const struct auth_mech_params params = { .login_pid = 4242, .hostname = "mx.example",
						.oauth2_scope = "mail" };

/* the client side of SCRAM from RFC 5802's formulas: the final message for
   the server-first it got */
static void scram_client_final_c(enum crypto_hash h, const char *pw, const char *cfirst_bare,
				 const char *c64, const uint8_t *sfirst, size_t sfirst_len,
				 char *out);

static void scram_client_final_msg(enum crypto_hash h, const char *pw, const char *cfirst_bare,
				   const uint8_t *sfirst, size_t sfirst_len, char *out)
{
	scram_client_final_c(h, pw, cfirst_bare, "biws", sfirst, sfirst_len, out);
}

/* c64: the c= attribute, base64 of the gs2 header and any binding data */
static void scram_client_final_c(enum crypto_hash h, const char *pw, const char *cfirst_bare,
				 const char *c64, const uint8_t *sfirst, size_t sfirst_len,
				 char *out)
{
	char sf[256];
	memcpy(sf, sfirst, sfirst_len);
	sf[sfirst_len] = '\0';
	const char *r = strstr(sf, "r=") + 2, *s = strstr(sf, ",s=") + 3, *i = strstr(sf, ",i=") + 3;
	char nonce[128], salt64[128];
	snprintf(nonce, sizeof(nonce), "%.*s", (int)(strchr(r, ',') - r), r);
	snprintf(salt64, sizeof(salt64), "%.*s", (int)(strchr(s, ',') - s), s);
	uint8_t salt[64];
	size_t salt_len;
	assert_true(base64_decode(salt64, strlen(salt64), salt, sizeof(salt), &salt_len));
	unsigned iter = (unsigned)atoi(i);
	char without[256], auth[1024];
	snprintf(without, sizeof(without), "c=%s,r=%s", c64, nonce);
	snprintf(auth, sizeof(auth), "%s,%s,%s", cfirst_bare, sf, without);
	size_t hl = crypto_hash_len(h);
	uint8_t salted[64], ck[64], sk[64], sig[64];
	assert_int_equal(crypto_pbkdf2(h, pw, strlen(pw), salt, salt_len, iter, salted, hl), 0);
	crypto_hmac(h, salted, hl, "Client Key", 10, ck);
	crypto_hash(h, ck, hl, sk);
	crypto_hmac(h, sk, hl, auth, strlen(auth), sig);
	for (size_t k = 0; k < hl; k++)
		ck[k] ^= sig[k];
	char p64[128];
	base64_encode(ck, hl, p64);
	sprintf(out, "%s,p=%s", without, p64);
}

static void scram_run(enum sasl_mech mech, const char *scheme, const char *cred,
		      const char *client_pw, bool want_ok)
{
	struct auth_mech *m = auth_mech_new(mech, &params);
	struct auth_mech_out o;
	auth_mech_begin(m, false, NULL, 0, &o);
	assert_int_equal(o.action, AUTH_MECH_CHALLENGE);
	assert_int_equal(o.len, 0);
	auth_mech_continue(m, S("n,,n=bob,r=clientnonce"), &o);
	assert_int_equal(o.action, AUTH_MECH_LOOKUP);
	assert_string_equal(o.user, "bob");
	assert_string_equal(o.scheme, mech == SASL_MECH_SCRAM_SHA1 ? "SCRAM-SHA-1" : "SCRAM-SHA-256");
	auth_mech_credentials(m, true, scheme, (const uint8_t *)cred, strlen(cred), &o);
	assert_int_equal(o.action, AUTH_MECH_CHALLENGE);
	char fin[512];
	scram_client_final_msg(mech == SASL_MECH_SCRAM_SHA1 ? CRYPTO_SHA1 : CRYPTO_SHA256,
			       client_pw, "n=bob,r=clientnonce", o.data, o.len, fin);
	auth_mech_continue(m, (const uint8_t *)fin, strlen(fin), &o);
	if (!want_ok) {
		assert_int_equal(o.action, AUTH_MECH_FAIL);
		assert_string_equal(o.error, "wrong proof (password mismatch)");
		assert_string_equal(o.user, "bob");
		auth_mech_free(&m);
		return;
	}
	assert_int_equal(o.action, AUTH_MECH_CHALLENGE);
	assert_memory_equal(o.data, "v=", 2);
	auth_mech_continue(m, S(""), &o);
	assert_int_equal(o.action, AUTH_MECH_SUCCESS);
	assert_string_equal(o.user, "bob");
	auth_mech_free(&m);
	assert_null(m);
}

static void test_scram(void **state)
{
	(void)state;
	const char *error = NULL;
	/* from a {PLAIN} entry and from a stored {SCRAM-*} entry */
	scram_run(SASL_MECH_SCRAM_SHA256, "PLAIN", "s3cret", "s3cret", true);
	scram_run(SASL_MECH_SCRAM_SHA1, "PLAIN", "s3cret", "s3cret", true);
	scram_run(SASL_MECH_SCRAM_SHA256, "PLAIN", "s3cret", "s3creT", false);
	char *h = auth_scheme_generate("SCRAM-SHA-256", S("pencil"), 0, &error);
	assert_non_null(h);
	/* without its "{SCRAM-SHA-256}" prefix, as a passdb gives it */
	scram_run(SASL_MECH_SCRAM_SHA256, "SCRAM-SHA-256", h + 15, "pencil", true);
	scram_run(SASL_MECH_SCRAM_SHA256, "SCRAM-SHA-256", h + 15, "pencil2", false);
	free(h);

	/* a crypt hash cannot serve SCRAM */
	struct auth_mech *m = auth_mech_new(SASL_MECH_SCRAM_SHA256, &params);
	struct auth_mech_out o;
	auth_mech_begin(m, true, S("n,,n=bob,r=x"), &o);
	assert_int_equal(o.action, AUTH_MECH_LOOKUP);
	auth_mech_credentials(m, true, "SHA512-CRYPT", S("$6$abc$def"), &o);
	assert_int_equal(o.action, AUTH_MECH_FAIL);
	assert_string_equal(o.error, "the passdb has no SCRAM or plaintext credentials for the user");
	auth_mech_free(&m);
	/* no such user */
	m = auth_mech_new(SASL_MECH_SCRAM_SHA1, &params);
	auth_mech_begin(m, true, S("n,,n=bob,r=x"), &o);
	auth_mech_credentials(m, false, NULL, NULL, 0, &o);
	assert_int_equal(o.action, AUTH_MECH_FAIL);
	assert_string_equal(o.error, "unknown user");
	auth_mech_free(&m);
	/* a SCRAM-SHA-1 entry for SCRAM-SHA-256 */
	m = auth_mech_new(SASL_MECH_SCRAM_SHA256, &params);
	auth_mech_begin(m, true, S("n,,n=bob,r=x"), &o);
	auth_mech_credentials(m, true, "SCRAM-SHA-1", S("4096,QSXCR+Q6sek8bf92,6dlGYMOdZcOPutkcNY8U2g7vK9Y=,D+CSWLOshSulAsxiupA+qs2/fTE="), &o);
	assert_int_equal(o.action, AUTH_MECH_FAIL);
	auth_mech_free(&m);
	/* malformed first message; out-of-order calls */
	m = auth_mech_new(SASL_MECH_SCRAM_SHA256, &params);
	auth_mech_begin(m, true, S("p=tls-unique,,n=bob,r=x"), &o);
	assert_int_equal(o.action, AUTH_MECH_FAIL);
	assert_string_equal(o.error, "channel binding requested but not offered by this mechanism");
	auth_mech_continue(m, S("n,,n=bob,r=x"), &o);
	assert_int_equal(o.action, AUTH_MECH_FAIL);
	auth_mech_free(&m);
	m = auth_mech_new(SASL_MECH_SCRAM_SHA256, &params);
	auth_mech_credentials(m, true, "PLAIN", S("x"), &o);
	assert_int_equal(o.action, AUTH_MECH_FAIL);
	assert_string_equal(o.error, "credentials out of order");
	auth_mech_free(&m);
}

static void cram_run(const char *scheme, const char *cred, const char *client_pw, bool want_ok)
{
	struct auth_mech *m = auth_mech_new(SASL_MECH_CRAM_MD5, &params);
	struct auth_mech_out o;
	auth_mech_begin(m, false, NULL, 0, &o);
	assert_int_equal(o.action, AUTH_MECH_CHALLENGE);
	unsigned pid;
	assert_true(cram_challenge_parse((const char *)o.data, o.len, &pid));
	assert_int_equal(pid, (unsigned)getpid());
	assert_non_null(memmem(o.data, o.len, "@mx.example>", 12));
	uint8_t d[16];
	crypto_hmac(CRYPTO_MD5, client_pw, strlen(client_pw), o.data, o.len, d);
	char resp[64];
	int n = sprintf(resp, "tim ");
	for (int i = 0; i < 16; i++)
		n += sprintf(resp + n, "%02x", d[i]);
	auth_mech_continue(m, (const uint8_t *)resp, (size_t)n, &o);
	assert_int_equal(o.action, AUTH_MECH_LOOKUP);
	assert_string_equal(o.user, "tim");
	assert_string_equal(o.scheme, "CRAM-MD5");
	auth_mech_credentials(m, true, scheme, (const uint8_t *)cred, strlen(cred), &o);
	assert_int_equal(o.action, want_ok ? AUTH_MECH_SUCCESS : AUTH_MECH_FAIL);
	assert_string_equal(o.user, "tim");
	auth_mech_free(&m);
}

static void test_cram(void **state)
{
	(void)state;
	cram_run("PLAIN", "tanstaaftanstaaf", "tanstaaftanstaaf", true);
	cram_run("PLAIN", "tanstaaftanstaaf", "tanstaaftanstaag", false);
	/* Dovecot's {CRAM-MD5} of tanstaaftanstaaf */
	cram_run("CRAM-MD5", "d06d4e1b26fccaa4b0b61801132340a354b21152711fb604ca3e035e7015116b",
		 "tanstaaftanstaaf", true);
	cram_run("CRAM-MD5", "d06d4e1b26fccaa4b0b61801132340a354b21152711fb604ca3e035e7015116b",
		 "wrong", false);
	cram_run("CRAM-MD5", "d06d", "tanstaaftanstaaf", false);
	cram_run("SHA512-CRYPT", "$6$x$y", "tanstaaftanstaaf", false);

	struct auth_mech *m = auth_mech_new(SASL_MECH_CRAM_MD5, &params);
	struct auth_mech_out o;
	auth_mech_begin(m, true, S("tim 00"), &o);
	assert_int_equal(o.action, AUTH_MECH_FAIL);
	assert_string_equal(o.error, "CRAM-MD5 takes no initial response");
	auth_mech_free(&m);
	m = auth_mech_new(SASL_MECH_CRAM_MD5, &params);
	auth_mech_begin(m, false, NULL, 0, &o);
	auth_mech_continue(m, S("tim xyz"), &o);
	assert_int_equal(o.action, AUTH_MECH_FAIL);
	assert_string_equal(o.error, "response is not \"user digest\"");
	auth_mech_free(&m);
}

static void test_apop(void **state)
{
	(void)state;
	const char *chal = "<4242.1700000000.00112233445566778899aabbccddeeff@h>";
	for (int variant = 0; variant < 4; variant++) {
		char buf[256];
		snprintf(buf, sizeof(buf), "%s%s", variant == 2 ? "<4243.1700000000.00112233445566778899aabbccddeeff@h>" : chal, "tanstaaf");
		uint8_t d[16];
		crypto_hash(CRYPTO_MD5, buf, strlen(buf), d);
		char hex[33];
		for (int i = 0; i < 16; i++)
			sprintf(hex + 2 * i, "%02x", d[i]);
		uint8_t msg[512];
		size_t len;
		assert_true(apop_encode(variant == 2 ? "<4243.1700000000.00112233445566778899aabbccddeeff@h>" : chal,
					"mrose", 5, hex, 32, msg, &len));
		struct auth_mech *m = auth_mech_new(SASL_MECH_APOP, &params);
		struct auth_mech_out o;
		auth_mech_begin(m, true, msg, len, &o);
		if (variant == 2) {
			/* another login process's challenge */
			assert_int_equal(o.action, AUTH_MECH_FAIL);
			assert_string_equal(o.error, "APOP challenge not issued by this login process");
			auth_mech_free(&m);
			continue;
		}
		assert_int_equal(o.action, AUTH_MECH_LOOKUP);
		assert_string_equal(o.user, "mrose");
		assert_string_equal(o.scheme, "PLAIN");
		if (variant == 0)
			auth_mech_credentials(m, true, "PLAIN", S("tanstaaf"), &o);
		else if (variant == 1)
			auth_mech_credentials(m, true, "PLAIN", S("tanstaaF"), &o);
		else
			auth_mech_credentials(m, true, "SHA512-CRYPT", S("$6$x$y"), &o);
		assert_int_equal(o.action, variant == 0 ? AUTH_MECH_SUCCESS : AUTH_MECH_FAIL);
		auth_mech_free(&m);
	}
	struct auth_mech *m = auth_mech_new(SASL_MECH_APOP, &params);
	struct auth_mech_out o;
	auth_mech_begin(m, false, NULL, 0, &o);
	assert_int_equal(o.action, AUTH_MECH_FAIL);
	auth_mech_free(&m);
}

static void test_oauth(void **state)
{
	(void)state;
	static const char ob[] = "n,a=alice,\001auth=Bearer tok.en.sig\001\001";
	static const char xo[] = "user=alice\001auth=Bearer tok.en.sig\001\001";
	for (int variant = 0; variant < 4; variant++) {
		bool xoauth = variant >= 2, ok = variant % 2 == 0;
		struct auth_mech *m = auth_mech_new(xoauth ? SASL_MECH_XOAUTH2 : SASL_MECH_OAUTHBEARER,
						    &params);
		struct auth_mech_out o;
		/* without an initial response: an empty challenge first */
		auth_mech_begin(m, false, NULL, 0, &o);
		assert_int_equal(o.action, AUTH_MECH_CHALLENGE);
		assert_int_equal(o.len, 0);
		if (xoauth)
			auth_mech_continue(m, (const uint8_t *)xo, sizeof(xo) - 1, &o);
		else
			auth_mech_continue(m, (const uint8_t *)ob, sizeof(ob) - 1, &o);
		assert_int_equal(o.action, AUTH_MECH_VERIFY);
		assert_string_equal(o.user, "alice");
		assert_int_equal(o.len, 10);
		assert_memory_equal(o.data, "tok.en.sig", 10);
		auth_mech_verified(m, ok, &o);
		if (ok) {
			assert_int_equal(o.action, AUTH_MECH_SUCCESS);
			assert_string_equal(o.user, "alice");
		} else {
			/* RFC 7628: the error JSON, then the client's %x01 */
			assert_int_equal(o.action, AUTH_MECH_CHALLENGE);
			assert_memory_equal(o.data, "{\"status\":\"invalid_token\"", 25);
			assert_non_null(memmem(o.data, o.len, "\"scope\":\"mail\"", 14));
			auth_mech_continue(m, S("\001"), &o);
			assert_int_equal(o.action, AUTH_MECH_FAIL);
			assert_string_equal(o.error, "token refused");
		}
		auth_mech_free(&m);
	}
	struct auth_mech *m = auth_mech_new(SASL_MECH_OAUTHBEARER, &params);
	struct auth_mech_out o;
	/* no authzid (RFC 7628): VERIFY with user "", the passdb names it */
	auth_mech_begin(m, true, S("n,,\001auth=Bearer t\001\001"), &o);
	assert_int_equal(o.action, AUTH_MECH_VERIFY);
	assert_string_equal(o.user, "");
	assert_int_equal(o.len, 1);
	assert_memory_equal(o.data, "t", 1);
	auth_mech_verified(m, true, &o);
	assert_int_equal(o.action, AUTH_MECH_SUCCESS);
	auth_mech_free(&m);
	m = auth_mech_new(SASL_MECH_OAUTHBEARER, &params);
	auth_mech_begin(m, true, S("n,,\001auth=Bearer t\001\001"), &o);
	assert_int_equal(o.action, AUTH_MECH_VERIFY);
	auth_mech_verified(m, false, &o);
	assert_int_equal(o.action, AUTH_MECH_CHALLENGE);
	auth_mech_continue(m, S("\001"), &o);
	assert_int_equal(o.action, AUTH_MECH_FAIL);
	/* a failure names no user when none was given */
	assert_null(o.user);
	auth_mech_free(&m);
	/* XOAUTH2 always names one */
	m = auth_mech_new(SASL_MECH_XOAUTH2, &params);
	auth_mech_begin(m, true, S("user=\001auth=Bearer t\001\001"), &o);
	assert_int_equal(o.action, AUTH_MECH_FAIL);
	auth_mech_free(&m);
	m = auth_mech_new(SASL_MECH_XOAUTH2, &params);
	auth_mech_verified(m, true, &o);
	assert_int_equal(o.action, AUTH_MECH_FAIL);
	assert_string_equal(o.error, "verification out of order");
	auth_mech_free(&m);
}

/* SCRAM-SHA-256-PLUS: the client's c= must carry the gs2 header and the
 * binding the login process reported; the type must be the connection's */
static void plus_run(const char *cfirst, const uint8_t *client_cb, size_t client_cb_len,
		     bool want_ok, const char *want_error)
{
	static const uint8_t cb[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
	struct auth_mech_params p = params;
	p.cb_type = "tls-unique";
	p.cb_data = cb;
	p.cb_len = sizeof(cb);
	struct auth_mech *m = auth_mech_new(SASL_MECH_SCRAM_SHA256_PLUS, &p);
	struct auth_mech_out o;
	auth_mech_begin(m, true, (const uint8_t *)cfirst, strlen(cfirst), &o);
	if (o.action == AUTH_MECH_FAIL) {
		assert_false(want_ok);
		assert_string_equal(o.error, want_error);
		auth_mech_free(&m);
		return;
	}
	assert_int_equal(o.action, AUTH_MECH_LOOKUP);
	assert_string_equal(o.scheme, "SCRAM-SHA-256");
	auth_mech_credentials(m, true, "PLAIN", S("pencil"), &o);
	assert_int_equal(o.action, AUTH_MECH_CHALLENGE);
	/* c= is base64(gs2 header || binding) */
	const char *bare = strstr(cfirst, "n=bob");
	size_t gs2_len = (size_t)(bare - cfirst);
	uint8_t cbind[128];
	memcpy(cbind, cfirst, gs2_len);
	memcpy(cbind + gs2_len, client_cb, client_cb_len);
	char c64[200], fin[512];
	base64_encode(cbind, gs2_len + client_cb_len, c64);
	scram_client_final_c(CRYPTO_SHA256, "pencil", bare, c64, o.data, o.len, fin);
	auth_mech_continue(m, (const uint8_t *)fin, strlen(fin), &o);
	if (want_ok) {
		assert_int_equal(o.action, AUTH_MECH_CHALLENGE);
		assert_memory_equal(o.data, "v=", 2);
		auth_mech_continue(m, NULL, 0, &o);
		assert_int_equal(o.action, AUTH_MECH_SUCCESS);
	} else {
		assert_int_equal(o.action, AUTH_MECH_FAIL);
		assert_string_equal(o.error, want_error);
	}
	auth_mech_free(&m);
}

static void test_scram_plus(void **state)
{
	(void)state;
	static const uint8_t good[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
	static const uint8_t bad[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13 };
	plus_run("p=tls-unique,,n=bob,r=cn0nce", good, sizeof(good), true, NULL);
	plus_run("p=tls-unique,a=bob,n=bob,r=cn0nce", good, sizeof(good), true, NULL);
	plus_run("p=tls-unique,,n=bob,r=cn0nce", bad, sizeof(bad), false,
		 "channel-binding data mismatch");
	plus_run("p=tls-unique,,n=bob,r=cn0nce", good, 11, false,
		 "channel binding does not match the gs2 header");
	plus_run("p=tls-exporter,,n=bob,r=cn0nce", good, sizeof(good), false,
		 "unsupported channel-binding type");
	plus_run("n,,n=bob,r=cn0nce", good, 0, false, "SCRAM-PLUS without channel binding");
	plus_run("y,,n=bob,r=cn0nce", good, 0, false, "SCRAM-PLUS without channel binding");

	/* no binding reported (a client that asked -PLUS where it is not
	   offered): nothing matches */
	struct auth_mech *m = auth_mech_new(SASL_MECH_SCRAM_SHA1_PLUS, &params);
	struct auth_mech_out o;
	auth_mech_begin(m, true, S("p=tls-unique,,n=bob,r=cn0nce"), &o);
	assert_int_equal(o.action, AUTH_MECH_FAIL);
	assert_string_equal(o.error, "unsupported channel-binding type");
	auth_mech_free(&m);

	/* without -PLUS: p= is refused; y is a downgrade where -PLUS is
	   offered, fine where it is not */
	struct auth_mech_params offered = params;
	offered.plus_offered = true;
	const struct {
		const char *msg;
		bool offered;
		const char *error; /* NULL: accepted */
	} cases[] = {
		{ "p=tls-unique,,n=bob,r=x", false,
		  "channel binding requested but not offered by this mechanism" },
		{ "y,,n=bob,r=x", true, "client thinks the server lacks channel binding (downgrade)" },
		{ "y,,n=bob,r=x", false, NULL },
		{ "n,,n=bob,r=x", true, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		m = auth_mech_new(SASL_MECH_SCRAM_SHA256, cases[i].offered ? &offered : &params);
		auth_mech_begin(m, true, (const uint8_t *)cases[i].msg, strlen(cases[i].msg), &o);
		if (cases[i].error == NULL) {
			assert_int_equal(o.action, AUTH_MECH_LOOKUP);
		} else {
			assert_int_equal(o.action, AUTH_MECH_FAIL);
			assert_string_equal(o.error, cases[i].error);
		}
		auth_mech_free(&m);
	}
}

/* EXTERNAL: the user is the certificate's; the message is an authzid,
 * empty or that user, at every length a client could cut it to */
static void test_external(void **state)
{
	(void)state;
	struct auth_mech_params p = params;
	char user[] = "certuser";
	p.cert_user = user;
	for (int with_ir = 0; with_ir < 2; with_ir++) {
		for (size_t cut = 0; cut <= strlen(user) + 1; cut++) {
			struct auth_mech *m = auth_mech_new(SASL_MECH_EXTERNAL, &p);
			/* auth_mech_new copied the name */
			user[0] = 'X';
			struct auth_mech_out o;
			char msg[16] = "certuserZ";
			if (with_ir) {
				auth_mech_begin(m, true, (const uint8_t *)msg, cut, &o);
			} else {
				auth_mech_begin(m, false, NULL, 0, &o);
				assert_int_equal(o.action, AUTH_MECH_CHALLENGE);
				assert_int_equal(o.len, 0);
				auth_mech_continue(m, (const uint8_t *)msg, cut, &o);
			}
			user[0] = 'c';
			if (cut == 0 || cut == 8) {
				assert_int_equal(o.action, AUTH_MECH_VERIFY);
				assert_string_equal(o.user, "certuser");
				/* the passdb sees an empty password: nopassword only */
				assert_int_equal(o.len, 0);
				auth_mech_verified(m, cut == 0, &o);
				if (cut == 0) {
					assert_int_equal(o.action, AUTH_MECH_SUCCESS);
					assert_string_equal(o.user, "certuser");
				} else {
					assert_int_equal(o.action, AUTH_MECH_FAIL);
					assert_non_null(strstr(o.error, "nopassword"));
				}
			} else {
				assert_int_equal(o.action, AUTH_MECH_FAIL);
				assert_string_equal(o.error,
						    "authorization identity is not the certificate's user");
			}
			auth_mech_free(&m);
		}
	}
	/* no certificate user (none, invalid, or auth_ssl_username_from_cert off) */
	struct auth_mech *m = auth_mech_new(SASL_MECH_EXTERNAL, &params);
	struct auth_mech_out o;
	auth_mech_begin(m, true, NULL, 0, &o);
	assert_int_equal(o.action, AUTH_MECH_FAIL);
	assert_non_null(strstr(o.error, "no valid client certificate naming a user"));
	assert_null(o.user);
	auth_mech_free(&m);
	/* a second message after the verdict is out of order */
	m = auth_mech_new(SASL_MECH_EXTERNAL, &p);
	auth_mech_begin(m, true, NULL, 0, &o);
	assert_int_equal(o.action, AUTH_MECH_VERIFY);
	auth_mech_continue(m, NULL, 0, &o);
	assert_int_equal(o.action, AUTH_MECH_FAIL);
	auth_mech_free(&m);
	assert_null(auth_mech_scheme(SASL_MECH_EXTERNAL));
	assert_string_equal(auth_mech_scheme(SASL_MECH_SCRAM_SHA1_PLUS), "SCRAM-SHA-1");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scram_plus),
		cmocka_unit_test(test_external),
		cmocka_unit_test(test_scram),
		cmocka_unit_test(test_cram),
		cmocka_unit_test(test_apop),
		cmocka_unit_test(test_oauth),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
