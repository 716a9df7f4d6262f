#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "auth/sasl-scram.h"
#include "lib/base64.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S(lit) (const uint8_t *)(lit), sizeof(lit) - 1

struct vec {
	enum crypto_hash hash;
	const char *salt64;
	const char *client_first, *snonce, *server_first, *client_final, *server_final;
};

/* RFC 5802 section 5 and RFC 7677 section 3; password "pencil" */
static const struct vec vectors[] = {
	{ CRYPTO_SHA1, "QSXCR+Q6sek8bf92", "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
	  "3rfcNHYJY1ZVvWVs7j",
	  "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
	  "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
	  "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=" },
	{ CRYPTO_SHA256, "W22ZaJ0SNY7soEsUEjb6gQ==", "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
	  "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
	  "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
	  "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
	  "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	  "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=" },
};

static void vec_creds(const struct vec *v, const char *password, struct scram_creds *creds)
{
	uint8_t salt[SCRAM_MAX_SALT];
	size_t salt_len;
	assert_true(base64_decode(v->salt64, strlen(v->salt64), salt, sizeof(salt), &salt_len));
	assert_int_equal(scram_creds_from_password(v->hash, (const uint8_t *)password,
						   strlen(password), salt, salt_len, 4096, creds),
			 0);
}

/* a message in a buffer of exactly its size, so ASan sees any overread */
static enum scram_result first_exact(struct scram_server *st, const char *msg, size_t len,
				     const char **error)
{
	uint8_t *buf = malloc(len > 0 ? len : 1);
	memcpy(buf, msg, len);
	enum scram_result r = scram_client_first(st, buf, len, error);
	free(buf);
	return r;
}

static enum scram_result final_exact(struct scram_server *st, const char *msg, size_t len,
				     const char **out, size_t *out_len, const char **error)
{
	uint8_t *buf = malloc(len > 0 ? len : 1);
	memcpy(buf, msg, len);
	enum scram_result r = scram_client_final(st, buf, len, out, out_len, error);
	free(buf);
	return r;
}

static void test_vectors(void **state)
{
	(void)state;
	for (unsigned i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const struct vec *v = &vectors[i];
		struct scram_creds creds;
		vec_creds(v, "pencil", &creds);
		struct scram_server st;
		const char *error = NULL, *out;
		size_t out_len;
		scram_init(&st, v->hash, false, false, NULL, NULL, 0);
		assert_int_equal(first_exact(&st, v->client_first, strlen(v->client_first), &error),
				 SCRAM_OK);
		assert_string_equal(st.user, "user");
		assert_int_equal(scram_server_first(&st, &creds, v->snonce, &out, &out_len, &error),
				 SCRAM_OK);
		assert_int_equal(out_len, strlen(v->server_first));
		assert_memory_equal(out, v->server_first, out_len);
		assert_int_equal(final_exact(&st, v->client_final, strlen(v->client_final), &out,
					     &out_len, &error),
				 SCRAM_OK);
		assert_int_equal(out_len, strlen(v->server_final));
		assert_memory_equal(out, v->server_final, out_len);

		/* the stored form round-trips and serves the same exchange */
		char str[SCRAM_CREDS_STR_MAX];
		scram_creds_format(v->hash, &creds, str);
		struct scram_creds parsed;
		assert_true(scram_creds_parse(v->hash, str, &parsed, &error));
		assert_int_equal(memcmp(&parsed, &creds, sizeof(creds)), 0);

		/* a wrong password gives other keys and the RFC's proof fails */
		struct scram_creds wrong;
		vec_creds(v, "pencil2", &wrong);
		scram_init(&st, v->hash, false, false, NULL, NULL, 0);
		assert_int_equal(scram_client_first(&st, (const uint8_t *)v->client_first,
						    strlen(v->client_first), &error),
				 SCRAM_OK);
		assert_int_equal(scram_server_first(&st, &wrong, v->snonce, &out, &out_len, &error),
				 SCRAM_OK);
		assert_int_equal(scram_client_final(&st, (const uint8_t *)v->client_final,
						    strlen(v->client_final), &out, &out_len, &error),
				 SCRAM_FAIL);
		assert_string_equal(error, "wrong proof (password mismatch)");
	}
}

/* Each step takes one whole SASL message, so "every split" is every
   truncation: a prefix of client-first is either refused or a valid shorter
   message (a shorter nonce); every strict prefix of client-final fails. */
static void test_truncations(void **state)
{
	(void)state;
	for (unsigned i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const struct vec *v = &vectors[i];
		struct scram_creds creds;
		vec_creds(v, "pencil", &creds);
		size_t flen = strlen(v->client_first);
		const char *nonce_at = strstr(v->client_first, ",r=") + 3;
		for (size_t k = 0; k < flen; k++) {
			struct scram_server st;
			const char *error = NULL;
			scram_init(&st, v->hash, false, false, NULL, NULL, 0);
			enum scram_result r = first_exact(&st, v->client_first, k, &error);
			if (v->client_first + k > nonce_at) {
				assert_int_equal(r, SCRAM_OK);
				assert_int_equal(st.cnonce_len, (size_t)(v->client_first + k - nonce_at));
			} else {
				assert_int_equal(r, SCRAM_FAIL);
				assert_non_null(error);
			}
		}
		size_t clen = strlen(v->client_final);
		for (size_t k = 0; k < clen; k++) {
			struct scram_server st;
			const char *error = NULL, *out;
			size_t out_len;
			scram_init(&st, v->hash, false, false, NULL, NULL, 0);
			assert_int_equal(first_exact(&st, v->client_first, flen, &error), SCRAM_OK);
			assert_int_equal(scram_server_first(&st, &creds, v->snonce, &out, &out_len,
							    &error),
					 SCRAM_OK);
			assert_int_equal(final_exact(&st, v->client_final, k, &out, &out_len, &error),
					 SCRAM_FAIL);
			assert_non_null(error);
		}
	}
}

static void test_first_good(void **state)
{
	(void)state;
	static const struct {
		const char *msg;
		const char *user;
	} good[] = {
		{ "n,,n=a=2Cb=3Dc,r=abc", "a,b=c" },
		{ "y,,n=user,r=abc", "user" },
		{ "n,a=user,n=user,r=x", "user" },
		{ "n,,n=user,r=abc,x=1,Y=two", "user" },
		{ "n,,n=j\xc3\xbcrgen,r=!~", "j\xc3\xbcrgen" },
	};
	for (unsigned i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct scram_server st;
		const char *error = NULL;
		scram_init(&st, CRYPTO_SHA256, false, false, NULL, NULL, 0);
		assert_int_equal(first_exact(&st, good[i].msg, strlen(good[i].msg), &error), SCRAM_OK);
		assert_string_equal(st.user, good[i].user);
		assert_int_equal(st.stage, SCRAM_WANT_CREDS);
	}
}

static void test_first_bad(void **state)
{
	(void)state;
	static const struct {
		const char *msg;
		size_t len;
		bool plus_offered;
		const char *error;
	} bad[] = {
		{ "", 0, false, "empty client-first message" },
		{ "x,,n=user,r=abc", 0, false, "malformed gs2 channel-binding flag" },
		{ "p=,,n=user,r=abc", 0, false, "empty channel-binding name" },
		{ "p=tls-unique,,n=user,r=abc", 0, false,
		  "channel binding requested but not offered by this mechanism" },
		{ "y,,n=user,r=abc", 0, true,
		  "client thinks the server lacks channel binding (downgrade)" },
		{ "n,n=user,r=abc", 0, false, "malformed gs2 header" },
		{ "n", 0, false, "malformed gs2 header" },
		{ "n,a=other,n=user,r=abc", 0, false,
		  "authorization id differs from the authentication id" },
		{ "n,a=,n=user,r=abc", 0, false, "empty user name" },
		{ "n,,m=ext,n=user,r=abc", 0, false, "unsupported mandatory extension" },
		{ "n,,r=abc,n=user", 0, false, "missing user name" },
		{ "n,,n=,r=abc", 0, false, "empty user name" },
		{ "n,,n=us=2Xer,r=abc", 0, false, "malformed '=' escape in the user name" },
		{ "n,,n=user=", 0, false, "malformed '=' escape in the user name" },
		{ "n,,n=us\0er,r=abc", 16, false, "NUL in the user name" },
		{ "n,,n=\xff,r=abc", 0, false, "user name is not valid UTF-8 text" },
		{ "n,,n=user", 0, false, "missing nonce" },
		{ "n,,n=user,x=abc", 0, false, "missing nonce" },
		{ "n,,n=user,r=", 0, false, "missing nonce" },
		{ "n,,n=user,r=,x=1", 0, false, "empty nonce" },
		{ "n,,n=user,r=a\x7f" "b", 0, false, "invalid character in the nonce" },
		{ "n,,n=user,r=abc,1=x", 0, false, "malformed extension" },
		{ "n,,n=user,r=abc,", 0, false, "malformed extension" },
		{ "n,,n=user,r=abc,x=", 0, false, "malformed extension" },
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct scram_server st;
		const char *error = NULL;
		size_t len = bad[i].len != 0 ? bad[i].len : strlen(bad[i].msg);
		scram_init(&st, CRYPTO_SHA256, false, bad[i].plus_offered, NULL, NULL, 0);
		assert_int_equal(first_exact(&st, bad[i].msg, len, &error), SCRAM_FAIL);
		assert_string_equal(error, bad[i].error);
		/* a failed exchange stays failed */
		assert_int_equal(first_exact(&st, "n,,n=user,r=abc", 15, &error), SCRAM_FAIL);
	}

	/* bounds: a 256-byte user name, a 1 MB message, a 65-byte nonce */
	struct scram_server st;
	const char *error = NULL;
	char buf[SCRAM_MAX_MSG + 1];
	int n = snprintf(buf, sizeof(buf), "n,,n=%0256d,r=abc", 0);
	scram_init(&st, CRYPTO_SHA256, false, false, NULL, NULL, 0);
	assert_int_equal(first_exact(&st, buf, (size_t)n, &error), SCRAM_FAIL);
	assert_string_equal(error, "user name too long");
	n = snprintf(buf, sizeof(buf), "n,,n=%0255d,r=abc", 0);
	scram_init(&st, CRYPTO_SHA256, false, false, NULL, NULL, 0);
	assert_int_equal(first_exact(&st, buf, (size_t)n, &error), SCRAM_OK);
	n = snprintf(buf, sizeof(buf), "n,,n=u,r=%065d", 0);
	scram_init(&st, CRYPTO_SHA256, false, false, NULL, NULL, 0);
	assert_int_equal(first_exact(&st, buf, (size_t)n, &error), SCRAM_FAIL);
	assert_string_equal(error, "nonce too long");
	size_t big = 1024 * 1024;
	char *huge = malloc(big);
	memset(huge, 'a', big);
	memcpy(huge, "n,,n=u,r=", 9);
	scram_init(&st, CRYPTO_SHA256, false, false, NULL, NULL, 0);
	assert_int_equal(scram_client_first(&st, (const uint8_t *)huge, big, &error), SCRAM_FAIL);
	assert_string_equal(error, "client-first message too long");
	free(huge);
}

static void start(struct scram_server *st, const struct scram_creds *creds)
{
	const char *error = NULL, *out;
	size_t out_len;
	scram_init(st, CRYPTO_SHA256, false, false, NULL, NULL, 0);
	assert_int_equal(scram_client_first(st, S("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"), &error),
			 SCRAM_OK);
	assert_int_equal(scram_server_first(st, creds, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", &out,
					    &out_len, &error),
			 SCRAM_OK);
}

static void test_final_bad(void **state)
{
	(void)state;
	struct scram_creds creds;
	vec_creds(&vectors[1], "pencil", &creds);
#define NONCE "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define PROOF "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	static const struct {
		const char *msg;
		const char *error;
	} bad[] = {
		{ "c=biws,r=" NONCE, "missing proof" },
		{ "c=biws,r=" NONCE ",p=abc", "malformed base64 in the proof" },
		{ "c=biws,r=" NONCE ",p=AAAA", "proof of the wrong length" },
		{ "r=" NONCE ",p=" PROOF, "missing channel binding attribute" },
		{ "c=bi*s,r=" NONCE ",p=" PROOF, "malformed base64 in the channel binding" },
		{ "c=eSws,r=" NONCE ",p=" PROOF, "channel binding does not match the gs2 header" },
		{ "c=biws,p=" PROOF, "missing nonce" },
		{ "c=biws,r=rOprNGfwEbeRWgbNEkqO,p=" PROOF, "wrong nonce" },
		{ "c=biws,r=" NONCE "x,p=" PROOF, "wrong nonce" },
		{ "c=biws,r=" NONCE ",=1,p=" PROOF, "malformed extension" },
		{ "c=biws,r=" NONCE ",p=" "AHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		  "wrong proof (password mismatch)" },
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct scram_server st;
		const char *error = NULL, *out;
		size_t out_len;
		start(&st, &creds);
		assert_int_equal(final_exact(&st, bad[i].msg, strlen(bad[i].msg), &out, &out_len,
					     &error),
				 SCRAM_FAIL);
		assert_string_equal(error, bad[i].error);
	}
	/* an extension before the proof is fine (and part of AuthMessage, so
	   the RFC's proof no longer matches) */
	struct scram_server st;
	const char *error = NULL, *out;
	size_t out_len;
	start(&st, &creds);
	assert_int_equal(final_exact(&st, "c=biws,r=" NONCE ",x=1,p=" PROOF,
				     strlen("c=biws,r=" NONCE ",x=1,p=" PROOF), &out, &out_len,
				     &error),
			 SCRAM_FAIL);
	assert_string_equal(error, "wrong proof (password mismatch)");
}

static void test_order(void **state)
{
	(void)state;
	struct scram_creds creds;
	vec_creds(&vectors[1], "pencil", &creds);
	struct scram_server st;
	const char *error = NULL, *out;
	size_t out_len;

	scram_init(&st, CRYPTO_SHA256, false, false, NULL, NULL, 0);
	assert_int_equal(scram_client_final(&st, S("c=biws,r=x,p=" PROOF), &out, &out_len, &error),
			 SCRAM_FAIL);
	assert_string_equal(error, "unexpected client-final message");

	scram_init(&st, CRYPTO_SHA256, false, false, NULL, NULL, 0);
	assert_int_equal(scram_server_first(&st, &creds, "0123456789abcdef", &out, &out_len,
					    &error),
			 SCRAM_FAIL);
	assert_string_equal(error, "server-first out of order");

	/* client-first twice */
	scram_init(&st, CRYPTO_SHA256, false, false, NULL, NULL, 0);
	assert_int_equal(scram_client_first(&st, S("n,,n=user,r=abc"), &error), SCRAM_OK);
	assert_int_equal(scram_client_first(&st, S("n,,n=user,r=abc"), &error), SCRAM_FAIL);
	assert_string_equal(error, "unexpected client-first message");

	/* client-final before the server spoke */
	scram_init(&st, CRYPTO_SHA256, false, false, NULL, NULL, 0);
	assert_int_equal(scram_client_first(&st, S("n,,n=user,r=abc"), &error), SCRAM_OK);
	assert_int_equal(scram_client_final(&st, S("c=biws,r=abc,p=" PROOF), &out, &out_len,
					    &error),
			 SCRAM_FAIL);
	assert_string_equal(error, "unexpected client-final message");

	/* server nonces: too short, a comma, then a replayed client-final */
	scram_init(&st, CRYPTO_SHA256, false, false, NULL, NULL, 0);
	assert_int_equal(scram_client_first(&st, S("n,,n=user,r=abc"), &error), SCRAM_OK);
	assert_int_equal(scram_server_first(&st, &creds, "short", &out, &out_len, &error),
			 SCRAM_FAIL);
	assert_string_equal(error, "server nonce of the wrong size");
	scram_init(&st, CRYPTO_SHA256, false, false, NULL, NULL, 0);
	assert_int_equal(scram_client_first(&st, S("n,,n=user,r=abc"), &error), SCRAM_OK);
	assert_int_equal(scram_server_first(&st, &creds, "0123456789,abcdef", &out, &out_len,
					    &error),
			 SCRAM_FAIL);
	assert_string_equal(error, "invalid server nonce");

	start(&st, &creds);
	const char *fin = "c=biws,r=" NONCE ",p=" PROOF;
	assert_int_equal(scram_client_final(&st, (const uint8_t *)fin, strlen(fin), &out, &out_len,
					    &error),
			 SCRAM_OK);
	assert_int_equal(scram_client_final(&st, (const uint8_t *)fin, strlen(fin), &out, &out_len,
					    &error),
			 SCRAM_FAIL);
	assert_string_equal(error, "unexpected client-final message");
}

/* the client side, from RFC 5802's formulas, for exchanges without vectors */
static void client_proof(enum crypto_hash h, const char *pw, const struct scram_creds *c,
			 const char *auth_msg, char *out)
{
	size_t hl = crypto_hash_len(h);
	uint8_t salted[CRYPTO_HASH_MAX], ck[CRYPTO_HASH_MAX], sk[CRYPTO_HASH_MAX],
		sig[CRYPTO_HASH_MAX];
	assert_int_equal(crypto_pbkdf2(h, pw, strlen(pw), c->salt, c->salt_len, c->iterations,
				       salted, hl),
			 0);
	crypto_hmac(h, salted, hl, "Client Key", 10, ck);
	crypto_hash(h, ck, hl, sk);
	crypto_hmac(h, sk, hl, auth_msg, strlen(auth_msg), sig);
	for (size_t i = 0; i < hl; i++)
		ck[i] ^= sig[i];
	base64_encode(ck, hl, out);
}

static void test_plus(void **state)
{
	(void)state;
	static const uint8_t cb[12] = "tls-unique!!";
	uint8_t salt[16];
	memset(salt, 7, sizeof(salt));
	struct scram_creds creds;
	assert_int_equal(scram_creds_from_password(CRYPTO_SHA256, S("secret"), salt, sizeof(salt),
						   1000, &creds),
			 0);
	for (int variant = 0; variant < 5; variant++) {
		struct scram_server st;
		const char *error = NULL, *out;
		size_t out_len;
		scram_init(&st, CRYPTO_SHA256, true, true, "tls-unique", cb, sizeof(cb));
		const char *first = variant == 1 ? "n,,n=bob,r=cnonce"
				    : variant == 2 ? "p=tls-exporter,,n=bob,r=cnonce"
				    : variant == 3 ? "y,,n=bob,r=cnonce"
						   : "p=tls-unique,,n=bob,r=cnonce";
		enum scram_result r = scram_client_first(&st, (const uint8_t *)first, strlen(first),
							 &error);
		if (variant == 1 || variant == 3) {
			assert_int_equal(r, SCRAM_FAIL);
			assert_string_equal(error, "SCRAM-PLUS without channel binding");
			continue;
		}
		if (variant == 2) {
			assert_int_equal(r, SCRAM_FAIL);
			assert_string_equal(error, "unsupported channel-binding type");
			continue;
		}
		assert_int_equal(r, SCRAM_OK);
		assert_int_equal(scram_server_first(&st, &creds, "SSSSSSSSSSSSSSSS", &out, &out_len,
						    &error),
				 SCRAM_OK);
		char sfirst[256];
		memcpy(sfirst, out, out_len);
		sfirst[out_len] = '\0';
		/* variant 4: the client binds other data */
		uint8_t cbind[64];
		memcpy(cbind, "p=tls-unique,,", 14);
		memcpy(cbind + 14, cb, sizeof(cb));
		if (variant == 4)
			cbind[20] ^= 1;
		char c64[128], without[512], auth[1024], proof[128], fin[1024];
		base64_encode(cbind, 14 + sizeof(cb), c64);
		snprintf(without, sizeof(without), "c=%s,r=cnonceSSSSSSSSSSSSSSSS", c64);
		snprintf(auth, sizeof(auth), "n=bob,r=cnonce,%s,%s", sfirst, without);
		client_proof(CRYPTO_SHA256, "secret", &creds, auth, proof);
		snprintf(fin, sizeof(fin), "%s,p=%s", without, proof);
		r = scram_client_final(&st, (const uint8_t *)fin, strlen(fin), &out, &out_len, &error);
		if (variant == 4) {
			assert_int_equal(r, SCRAM_FAIL);
			assert_string_equal(error, "channel-binding data mismatch");
		} else {
			assert_int_equal(r, SCRAM_OK);
			assert_memory_equal(out, "v=", 2);
		}
	}
}

static void test_creds_parse(void **state)
{
	(void)state;
	struct scram_creds c;
	const char *error = NULL;
	/* RFC 5802 example's keys, computed apart from us (Python hashlib) */
	assert_true(scram_creds_parse(CRYPTO_SHA1,
				      "4096,QSXCR+Q6sek8bf92,6dlGYMOdZcOPutkcNY8U2g7vK9Y=,"
				      "D+CSWLOshSulAsxiupA+qs2/fTE=",
				      &c, &error));
	assert_int_equal(c.iterations, 4096);
	assert_int_equal(c.salt_len, 12);
	/* RFC 5802's keys: the stored form made from "pencil" has them */
	struct scram_creds made;
	vec_creds(&vectors[0], "pencil", &made);
	assert_memory_equal(made.stored_key, c.stored_key, 20);
	assert_memory_equal(made.server_key, c.server_key, 20);

	static const struct {
		const char *s;
		const char *error;
	} bad[] = {
		{ "", "SCRAM credentials need four comma-separated fields" },
		{ "4096,a,b", "SCRAM credentials need four comma-separated fields" },
		{ "4096,a,b,c,d", "SCRAM credentials need four comma-separated fields" },
		{ "x,QSXCR+Q6sek8bf92,6dlGYMOdZcOPutkcNY8U2g7vK9Y=,D+CSWLOshSulAsxiupA+qs2/fTE=",
		  "SCRAM iteration count is not a number" },
		{ "0,QSXCR+Q6sek8bf92,6dlGYMOdZcOPutkcNY8U2g7vK9Y=,D+CSWLOshSulAsxiupA+qs2/fTE=",
		  "SCRAM iteration count out of range" },
		{ "4096,,6dlGYMOdZcOPutkcNY8U2g7vK9Y=,D+CSWLOshSulAsxiupA+qs2/fTE=",
		  "SCRAM salt is not base64 (or empty, or too long)" },
		{ "4096,QSXCR+Q6sek8bf92,6dlGYMOdZcOPutkcNY8U,D+CSWLOshSulAsxiupA+qs2/fTE=",
		  "SCRAM StoredKey is not base64 of the hash's size" },
		{ "4096,QSXCR+Q6sek8bf92,6dlGYMOdZcOPutkcNY8U2g7vK9Y=,D+CSWLOshSulAsxiupA+qs2/fT",
		  "SCRAM ServerKey is not base64 of the hash's size" },
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_false(scram_creds_parse(CRYPTO_SHA1, bad[i].s, &c, &error));
		assert_string_equal(error, bad[i].error);
	}
	/* Dovecot's own (doveadm pw -s SCRAM-SHA-256 -p pencil, Dovecot 2.3):
	   the keys are the ones "pencil" gives with its salt and count */
	assert_true(scram_creds_parse(CRYPTO_SHA256,
				      "4096,42Yz7uDuskGDQNyhf7kNYQ==,"
				      "O43YZVJ65lqfA2moNzwfI2aniD1RbTI5tsLmiywe5FU=,"
				      "deD5TDhN5XCE67Ak80tp+M3g+nxR+hl9f4h20i5i/ls=",
				      &c, &error));
	assert_int_equal(scram_creds_from_password(CRYPTO_SHA256, S("pencil"), c.salt, c.salt_len,
						   c.iterations, &made),
			 0);
	assert_int_equal(memcmp(&made, &c, sizeof(c)), 0);

	/* a SHA-1 entry is not a SHA-256 one */
	assert_false(scram_creds_parse(CRYPTO_SHA256,
				       "4096,QSXCR+Q6sek8bf92,6dlGYMOdZcOPutkcNY8U2g7vK9Y=,"
				       "D+CSWLOshSulAsxiupA+qs2/fTE=",
				       &c, &error));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),     cmocka_unit_test(test_truncations),
		cmocka_unit_test(test_first_good),  cmocka_unit_test(test_first_bad),
		cmocka_unit_test(test_final_bad),   cmocka_unit_test(test_order),
		cmocka_unit_test(test_plus),        cmocka_unit_test(test_creds_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
