#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "auth/auth-http.h"
#include "auth/auth-oauth2.h"
#include "auth/oauth2-introspect.h"
#include "lib/base64.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jwt-vectors.h"

static char dir[64];
static char conf_buf[512];

static void write_file(const char *rel, const char *text)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	/* make the parents */
	for (char *p = path + strlen(dir) + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		mkdir(path, 0700);
		*p = '/';
	}
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static struct oauth2_config *load(const char *conf, char **error)
{
	write_file("oauth2.conf", conf);
	char path[256];
	snprintf(path, sizeof(path), "%s/oauth2.conf", dir);
	*error = NULL;
	return oauth2_config_load(path, error);
}

static const char *good(const char *alg)
{
	for (unsigned i = 0; i < sizeof(jwt_good) / sizeof(jwt_good[0]); i++) {
		if (strcmp(jwt_good[i].alg, alg) == 0)
			return jwt_good[i].token;
	}
	fail();
	return NULL;
}

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/rg-oauth2-XXXXXX");
	assert_non_null(mkdtemp(dir));
	write_file("keys/shared/default/RS256/default", pem_rsa);
	write_file("keys/shared/default/EdDSA/default", pem_ed25519);
	char b64[128];
	base64_encode(jwt_secret, strlen(jwt_secret), b64);
	strcat(b64, "\n");
	write_file("keys/shared/default/HS256/default", b64);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* cfg refuses token t for user at time now, saying why */
static void assert_refused(const struct oauth2_config *cfg, const char *user, const char *t,
			   int64_t now, const char *why)
{
	const char *err = NULL;
	assert_false(oauth2_token_check(cfg, user, t, strlen(t), now, NULL, 0, &err));
	assert_string_equal(err, why);
}

static void test_local(void **state)
{
	(void)state;
	char conf[512], *error;
	snprintf(conf, sizeof(conf),
		 "# Dovecot's file, as an administrator writes it\n"
		 "introspection_mode = local\n"
		 "local_validation_key_dict = fs:posix:prefix=%s/keys/\n"
		 "issuers = https://other.example https://idp.example.org\n"
		 "client_id = mail\n"
		 "scope = openid email\n"
		 "tls_ca_cert_file = /etc/ssl/certs/ca-certificates.crt\n",
		 dir);
	struct oauth2_config *cfg = load(conf, &error);
	if (cfg == NULL)
		fail_msg("%s", error);
	assert_string_equal(oauth2_config_scope(cfg), "openid email");
	const char *err = NULL;
	/* username_attribute defaults to email, as Dovecot's */
	for (const char *alg = "RS256"; alg != NULL;
	     alg = strcmp(alg, "RS256") == 0 ? "EdDSA" : strcmp(alg, "EdDSA") == 0 ? "HS256" : NULL) {
		const char *t = good(alg);
		if (!oauth2_token_check(cfg, "alice@example.org", t, strlen(t), JWT_NOW, NULL, 0, &err))
			fail_msg("%s: %s", alg, err);
		assert_refused(cfg, "bob@example.org", t, JWT_NOW, "the token is for another user");
		assert_refused(cfg, "alice@example.org", t, JWT_EXP, "token expired");
	}
	/* no ES256 key in the dict */
	const char *t = good("ES256");
	assert_refused(cfg, "alice@example.org", t, JWT_NOW, "no key for the token's azp/alg/kid");
	/* rotation: a new file under the same name is used at once */
	write_file("keys/shared/default/ES256/default", pem_p256);
	assert_true(oauth2_token_check(cfg, "alice@example.org", t, strlen(t), JWT_NOW, NULL, 0, &err));
	write_file("keys/shared/default/RS256/default", pem_p256);
	t = good("RS256");
	assert_refused(cfg, "alice@example.org", t, JWT_NOW, "key type does not match alg");
	write_file("keys/shared/default/RS256/default", pem_rsa);
	oauth2_config_free(&cfg);
	assert_null(cfg);

	/* another audience and issuer policy; the user from sub */
	snprintf(conf, sizeof(conf),
		 "introspection_mode = local\nlocal_validation_key_dict = %s/keys\n"
		 "client_id = web\nusername_attribute = sub\n", dir);
	cfg = load(conf, &error);
	assert_non_null(cfg);
	assert_refused(cfg, "alice", t, JWT_NOW, "audience not accepted");
	oauth2_config_free(&cfg);
	snprintf(conf, sizeof(conf),
		 "introspection_mode = local\nlocal_validation_key_dict = %s/keys\n"
		 "issuers = https://other.example\nusername_attribute = sub\n", dir);
	cfg = load(conf, &error);
	assert_refused(cfg, "alice", t, JWT_NOW, "issuer not accepted");
	oauth2_config_free(&cfg);
	snprintf(conf, sizeof(conf),
		 "introspection_mode = local\nlocal_validation_key_dict = %s/keys\n"
		 "username_attribute = sub\n", dir);
	cfg = load(conf, &error);
	assert_true(oauth2_token_check(cfg, "alice", t, strlen(t), JWT_NOW, NULL, 0, &err));
	/* no user asked (OAUTHBEARER without authzid): the claim names it */
	char user[64] = "";
	assert_true(oauth2_token_check(cfg, "", t, strlen(t), JWT_NOW, user, sizeof(user), &err));
	assert_string_equal(user, "alice");
	/* but the token must still be good */
	user[0] = '\0';
	assert_false(oauth2_token_check(cfg, "", t, strlen(t), JWT_EXP, user, sizeof(user), &err));
	assert_string_equal(user, "");
	oauth2_config_free(&cfg);
}

static void test_config_errors(void **state)
{
	(void)state;
	static const struct {
		const char *conf;
		const char *error; /* after "DIR/oauth2.conf" */
	} bad[] = {
		{ "introspection_mode = post\nlocal_validation_key_dict = /k\n",
		  ": introspection_mode needs introspection_url (or tokeninfo_url)" },
		/* unset is Dovecot's auth */
		{ "local_validation_key_dict = /k\n",
		  ": introspection_mode needs introspection_url (or tokeninfo_url)" },
		{ "introspection_mode = remote\n",
		  ": introspection_mode must be auth, get, post or local, not 'remote'" },
		{ "introspection_url = ftp://idp/x\n",
		  ": the IdP's URL must be http:// or https://" },
		{ "introspection_url = https://idp/x\ntimeout_msecs = 5s\n",
		  ": timeout_msecs must be a number up to 600000" },
		{ "introspection_url = https://idp/x\nmax_parallel_connections = 5000\n",
		  ": max_parallel_connections must be a number up to 1024" },
		{ "introspection_url = https://idp/x\ntls_allow_invalid_cert = maybe\n",
		  ": tls_allow_invalid_cert must be yes or no" },
		{ "introspection_url = https://idp/x\nusername_format = %{user | lower}\n",
		  ": username_format must be %Lu, %u, %Ln or %n" },
		{ "introspection_mode = local\n",
		  ": local validation needs local_validation_key_dict" },
		{ "introspection_mode = local\nlocal_validation_key_dict = redis:host=x\n",
		  ": local_validation_key_dict must be fs:posix:prefix=/DIR/ or a directory" },
		{ "introspection_mode = local\nlocal_validation_key_dict = /k\nintrospection_url\n",
		  ":3: expected key = value" },
		{ "introspection_mode = local\nlocal_validation_key_dict = /k\nintrospection_mod = x\n",
		  ":3: unknown setting 'introspection_mod'" },
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *error;
		assert_null(load(bad[i].conf, &error));
		char want[512];
		snprintf(want, sizeof(want), "%s/oauth2.conf%s", dir, bad[i].error);
		assert_string_equal(error, want);
		free(error);
	}
	char *error = NULL;
	assert_null(oauth2_config_load("/nonexistent/oauth2.conf", &error));
	assert_string_equal(error, "/nonexistent/oauth2.conf: No such file or directory");
	free(error);
}

/* Dovecot's remote modes: settings, defaults, the request for each mode */
static void test_remote_config(void **state)
{
	(void)state;
	char *error = NULL;
	struct oauth2_config *cfg = load("introspection_mode = post\n"
					 "introspection_url = https://idp.example/introspect\n"
					 "client_id = mail\nclient_secret = s3cr&t\n"
					 "active_attribute = active\nactive_value = true\n"
					 "tls_ca_cert_file = /etc/ca.pem\nscope = mail\n"
					 "max_parallel_connections = 4\n", &error);
	if (cfg == NULL)
		fail_msg("%s", error);
	struct oauth2_remote r;
	struct http_client_settings h;
	unsigned size, ttl;
	assert_true(oauth2_config_remote(cfg, &r, &h, &size, &ttl));
	assert_int_equal(r.mode, OAUTH2_MODE_POST);
	assert_string_equal(r.url, "https://idp.example/introspect");
	assert_string_equal(r.username_attribute, "email");
	assert_string_equal(r.active_value, "true");
	assert_string_equal(r.scope, "mail");
	assert_int_equal(h.max_parallel, 4);
	assert_int_equal(h.timeout_msecs, 5000);
	assert_int_equal(h.max_body, OAUTH2_BODY_MAX);
	assert_string_equal(h.ca_file, "/etc/ca.pem");
	assert_false(h.allow_invalid_cert);
	assert_int_equal(size, 1024);
	assert_int_equal(ttl, 60000);
	assert_true(r.format_lower); /* Dovecot's default %Lu */
	assert_false(r.format_local_part);
	const char *method;
	char *url, *body, *auth;
	oauth2_request_make(&r, "a+b/c=", &method, &url, &body, &auth);
	assert_string_equal(method, "POST");
	assert_string_equal(url, "https://idp.example/introspect");
	assert_string_equal(body, "token=a%2Bb%2Fc%3D&client_id=mail&client_secret=s3cr%26t");
	assert_null(auth);
	free(url);
	free(body);
	r.mode = OAUTH2_MODE_GET;
	r.url = "https://idp/i?token=";
	oauth2_request_make(&r, "tok", &method, &url, &body, &auth);
	assert_string_equal(method, "GET");
	assert_string_equal(url, "https://idp/i?token=tok&client_id=mail&client_secret=s3cr%26t");
	assert_null(body);
	free(url);
	r.mode = OAUTH2_MODE_AUTH;
	oauth2_request_make(&r, "tok", &method, &url, &body, &auth);
	assert_string_equal(url, "https://idp/i?token=");
	assert_string_equal(auth, "Authorization: Bearer tok");
	free(url);
	free(auth);
	oauth2_config_free(&cfg);
	/* tokeninfo_url alone; unset mode is auth; cache off */
	cfg = load("tokeninfo_url = http://127.0.0.1:1/ti?access_token=\n"
		   "introspection_cache_size = 0\ntimeout_msecs = 0\nusername_format = %n\n",
		   &error);
	assert_non_null(cfg);
	assert_true(oauth2_config_remote(cfg, &r, &h, &size, &ttl));
	assert_false(r.format_lower);
	assert_true(r.format_local_part);
	assert_int_equal(r.mode, OAUTH2_MODE_TOKENINFO);
	assert_int_equal(size, 0);
	assert_int_equal(h.timeout_msecs, 5000); /* Dovecot's 0: bounded anyway */
	oauth2_request_make(&r, "t.k", &method, &url, &body, &auth);
	assert_string_equal(url, "http://127.0.0.1:1/ti?access_token=t.k");
	free(url);
	oauth2_config_free(&cfg);
	/* local mode has no remote side */
	snprintf(conf_buf, sizeof(conf_buf),
		 "introspection_mode = local\nlocal_validation_key_dict = %s/keys\n", dir);
	cfg = load(conf_buf, &error);
	assert_non_null(cfg);
	assert_false(oauth2_config_remote(cfg, &r, &h, &size, &ttl));
	oauth2_config_free(&cfg);
}

static void judge(const struct oauth2_remote *r, long status, const char *body,
		  struct oauth2_verdict *v)
{
	oauth2_reply_judge(r, status, body, strlen(body), JWT_NOW, v);
}

/* the IdP's answers: each branch */
static void test_remote_judge(void **state)
{
	(void)state;
	struct oauth2_remote r = { .mode = OAUTH2_MODE_AUTH, .url = "https://idp/",
				   .username_attribute = "email", .format_lower = true };
	struct oauth2_verdict v;
	const char *err;
	judge(&r, 200, "{\"active\":true,\"email\":\"Alice@example.org\"}", &v);
	assert_int_equal(v.result, PASSDB_RESULT_OK);
	assert_string_equal(v.user, "Alice@example.org");
	assert_int_equal(oauth2_verdict_for_user(&r, &v, "alice@example.org", &err), PASSDB_RESULT_OK);
	assert_int_equal(oauth2_verdict_for_user(&r, &v, "", &err), PASSDB_RESULT_OK);
	assert_int_equal(oauth2_verdict_for_user(&r, &v, "bob@example.org", &err),
			 PASSDB_RESULT_USER_UNKNOWN);
	assert_string_equal(err, "the token is for another user");
	/* username_format %u: exact; %n: the local parts */
	r.format_lower = false;
	assert_int_equal(oauth2_verdict_for_user(&r, &v, "alice@example.org", &err),
			 PASSDB_RESULT_USER_UNKNOWN);
	assert_int_equal(oauth2_verdict_for_user(&r, &v, "Alice@example.org", &err),
			 PASSDB_RESULT_OK);
	r.format_local_part = true;
	assert_int_equal(oauth2_verdict_for_user(&r, &v, "Alice@other.example", &err),
			 PASSDB_RESULT_OK);
	assert_int_equal(oauth2_verdict_for_user(&r, &v, "Alic", &err),
			 PASSDB_RESULT_USER_UNKNOWN);
	r.format_lower = true;
	r.format_local_part = false;
	judge(&r, 200, "{\"active\":false}", &v);
	assert_int_equal(v.result, PASSDB_RESULT_PASSWORD_MISMATCH);
	assert_string_equal(v.error, "the token is not active");
	assert_int_equal(oauth2_verdict_for_user(&r, &v, "", &err), PASSDB_RESULT_PASSWORD_MISMATCH);
	judge(&r, 200, "{\"active\":\"yes\",\"email\":\"a\"}", &v);
	assert_int_equal(v.result, PASSDB_RESULT_PASSWORD_MISMATCH);
	char body[128];
	snprintf(body, sizeof(body), "{\"email\":\"a\",\"exp\":%lld}", (long long)JWT_NOW - 1);
	judge(&r, 200, body, &v);
	assert_string_equal(v.error, "the token expired");
	snprintf(body, sizeof(body), "{\"email\":\"a\",\"exp\":%lld}", (long long)JWT_NOW + 30);
	judge(&r, 200, body, &v);
	assert_int_equal(v.result, PASSDB_RESULT_OK);
	assert_int_equal(v.exp, JWT_NOW + 30);
	judge(&r, 200, "{\"sub\":\"a\"}", &v);
	assert_int_equal(v.result, PASSDB_RESULT_INTERNAL_FAILURE);
	judge(&r, 200, "{\"email\":\"\"}", &v);
	assert_int_equal(v.result, PASSDB_RESULT_INTERNAL_FAILURE);
	judge(&r, 200, "not json", &v);
	assert_int_equal(v.result, PASSDB_RESULT_INTERNAL_FAILURE);
	judge(&r, 200, "", &v);
	assert_int_equal(v.result, PASSDB_RESULT_INTERNAL_FAILURE);
	judge(&r, 401, "{\"error\":\"invalid_token\"}", &v);
	assert_int_equal(v.result, PASSDB_RESULT_PASSWORD_MISMATCH);
	judge(&r, 500, "{\"email\":\"a\"}", &v);
	assert_int_equal(v.result, PASSDB_RESULT_INTERNAL_FAILURE);
	judge(&r, 302, "", &v);
	assert_int_equal(v.result, PASSDB_RESULT_INTERNAL_FAILURE);
	/* 10,000-deep JSON: refused by the parser's bound, not a crash */
	char *deep = malloc(20003);
	memset(deep, '[', 10000);
	memset(deep + 10000, ']', 10000);
	deep[20000] = '\0';
	judge(&r, 200, deep, &v);
	assert_int_equal(v.result, PASSDB_RESULT_INTERNAL_FAILURE);
	free(deep);
	/* active_attribute / active_value, scope */
	r.active_attribute = "account_status";
	judge(&r, 200, "{\"email\":\"a\"}", &v);
	assert_int_equal(v.result, PASSDB_RESULT_USER_DISABLED);
	judge(&r, 200, "{\"email\":\"a\",\"account_status\":\"x\"}", &v);
	assert_int_equal(v.result, PASSDB_RESULT_OK);
	r.active_value = "enabled";
	judge(&r, 200, "{\"email\":\"a\",\"account_status\":\"x\"}", &v);
	assert_int_equal(v.result, PASSDB_RESULT_USER_DISABLED);
	judge(&r, 200, "{\"email\":\"a\",\"account_status\":\"enabled\"}", &v);
	assert_int_equal(v.result, PASSDB_RESULT_OK);
	r.active_attribute = "active";
	r.active_value = "true";
	judge(&r, 200, "{\"email\":\"a\",\"active\":true}", &v);
	assert_int_equal(v.result, PASSDB_RESULT_OK);
	r.active_attribute = r.active_value = NULL;
	r.scope = "mail";
	judge(&r, 200, "{\"email\":\"a\",\"scope\":\"openid mailx\"}", &v);
	assert_int_equal(v.result, PASSDB_RESULT_USER_DISABLED);
	judge(&r, 200, "{\"email\":\"a\",\"scope\":\"openid mail\"}", &v);
	assert_int_equal(v.result, PASSDB_RESULT_OK);
	judge(&r, 200, "{\"email\":\"a\"}", &v);
	assert_int_equal(v.result, PASSDB_RESULT_USER_DISABLED);
}

/* the answer cache: hits, TTL, the token's exp, LRU bound, no failures */
static void test_remote_cache(void **state)
{
	(void)state;
	assert_null(oauth2_cache_new(0, 1000));
	struct oauth2_cache *c = oauth2_cache_new(2, 1000);
	struct oauth2_verdict ok = { .result = PASSDB_RESULT_OK, .user = "alice" }, got;
	struct oauth2_verdict bad = { .result = PASSDB_RESULT_PASSWORD_MISMATCH, .error = "x" };
	struct oauth2_verdict temp = { .result = PASSDB_RESULT_INTERNAL_FAILURE, .error = "t" };
	int64_t t = 100000, unix_now = JWT_NOW;
	assert_false(oauth2_cache_get(c, "A", 1, t, unix_now, &got));
	oauth2_cache_put(c, "A", 1, t, unix_now, &ok);
	oauth2_cache_put(c, "B", 1, t, unix_now, &bad);
	oauth2_cache_put(c, "T", 1, t, unix_now, &temp); /* never stored */
	assert_int_equal(oauth2_cache_count(c), 2);
	assert_true(oauth2_cache_get(c, "A", 1, t + 999, unix_now, &got));
	assert_string_equal(got.user, "alice");
	assert_true(oauth2_cache_get(c, "B", 1, t, unix_now, &got));
	assert_int_equal(got.result, PASSDB_RESULT_PASSWORD_MISMATCH);
	assert_false(oauth2_cache_get(c, "T", 1, t, unix_now, &got));
	assert_false(oauth2_cache_get(c, "AB", 2, t, unix_now, &got));
	/* the third evicts the least recently used (A: B was asked last) */
	oauth2_cache_put(c, "C", 1, t, unix_now, &ok);
	assert_int_equal(oauth2_cache_count(c), 2);
	assert_false(oauth2_cache_get(c, "A", 1, t, unix_now, &got));
	assert_true(oauth2_cache_get(c, "B", 1, t, unix_now, &got));
	/* TTL */
	assert_false(oauth2_cache_get(c, "C", 1, t + 1000, unix_now, &got));
	assert_int_equal(oauth2_cache_count(c), 1);
	/* a token expiring sooner than the TTL lives until its exp only */
	struct oauth2_verdict soon = ok;
	soon.exp = unix_now + 1;
	oauth2_cache_put(c, "S", 1, t, unix_now, &soon);
	assert_true(oauth2_cache_get(c, "S", 1, t + 500, unix_now, &got));
	assert_false(oauth2_cache_get(c, "S", 1, t + 500, unix_now + 1, &got));
	/* an exp far away (the IdP's number, any size): the TTL rules, no
	   overflow (found by fuzz_oauth2_reply) */
	struct oauth2_verdict far = ok;
	far.exp = 16000008290999999;
	oauth2_cache_put(c, "F", 1, t, unix_now, &far);
	assert_true(oauth2_cache_get(c, "F", 1, t + 999, unix_now, &got));
	assert_false(oauth2_cache_get(c, "F", 1, t + 1000, unix_now, &got));
	oauth2_cache_free(&c);
	assert_null(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_local),
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_remote_config),
		cmocka_unit_test(test_remote_judge),
		cmocka_unit_test(test_remote_cache),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
