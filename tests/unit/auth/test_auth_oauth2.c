#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "auth/auth-oauth2.h"
#include "lib/base64.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jwt-vectors.h"

static char dir[64];

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
		assert_false(oauth2_token_check(cfg, "bob@example.org", t, strlen(t), JWT_NOW, NULL, 0, &err));
		assert_string_equal(err, "the token is for another user");
		assert_false(oauth2_token_check(cfg, "alice@example.org", t, strlen(t), JWT_EXP, NULL, 0, &err));
		assert_string_equal(err, "token expired");
	}
	/* no ES256 key in the dict */
	const char *t = good("ES256");
	assert_false(oauth2_token_check(cfg, "alice@example.org", t, strlen(t), JWT_NOW, NULL, 0, &err));
	assert_string_equal(err, "no key for the token's azp/alg/kid");
	/* rotation: a new file under the same name is used at once */
	write_file("keys/shared/default/ES256/default", pem_p256);
	assert_true(oauth2_token_check(cfg, "alice@example.org", t, strlen(t), JWT_NOW, NULL, 0, &err));
	write_file("keys/shared/default/RS256/default", pem_p256);
	t = good("RS256");
	assert_false(oauth2_token_check(cfg, "alice@example.org", t, strlen(t), JWT_NOW, NULL, 0, &err));
	assert_string_equal(err, "key type does not match alg");
	write_file("keys/shared/default/RS256/default", pem_rsa);
	oauth2_config_free(&cfg);
	assert_null(cfg);

	/* another audience and issuer policy; the user from sub */
	snprintf(conf, sizeof(conf),
		 "introspection_mode = local\nlocal_validation_key_dict = %s/keys\n"
		 "client_id = web\nusername_attribute = sub\n", dir);
	cfg = load(conf, &error);
	assert_non_null(cfg);
	assert_false(oauth2_token_check(cfg, "alice", t, strlen(t), JWT_NOW, NULL, 0, &err));
	assert_string_equal(err, "audience not accepted");
	oauth2_config_free(&cfg);
	snprintf(conf, sizeof(conf),
		 "introspection_mode = local\nlocal_validation_key_dict = %s/keys\n"
		 "issuers = https://other.example\nusername_attribute = sub\n", dir);
	cfg = load(conf, &error);
	assert_false(oauth2_token_check(cfg, "alice", t, strlen(t), JWT_NOW, NULL, 0, &err));
	assert_string_equal(err, "issuer not accepted");
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
		  ": introspection_mode = post is not supported (only local JWT validation)" },
		{ "local_validation_key_dict = /k\n",
		  ": introspection_mode = (unset) is not supported (only local JWT validation)" },
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_local),
		cmocka_unit_test(test_config_errors),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
