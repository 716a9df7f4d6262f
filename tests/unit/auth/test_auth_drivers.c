/* Drivers of Dovecot's that a stock configuration may name, through the
 * chain (auth-chain.h): passdb static, passdb passwd, userdb checkpassword,
 * and passwd-file paths with %-variables (one file per domain). Blocking
 * drivers are called inline here (no auth-worker pool). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "auth/auth-chain.h"
#include "auth/auth-scheme.h"
#include "lib/alloc.h"
#include "lib/settings.h"
#include "chain-test.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct auth_chain *chain_or_fail(struct db_settings *p, struct db_settings *u)
{
	char *error = NULL;
	struct auth_chain *chain = auth_chain_new(p, u, &error);
	if (chain == NULL)
		fail_msg("%s", error);
	return chain;
}

static bool called;
static enum passdb_result presult;
static enum userdb_result uresult;
static char cred_scheme[32], cred[256];

static void verify_cb(enum passdb_result result, struct auth_db_request *req)
{
	(void)req;
	called = true;
	presult = result;
}

static void cred_cb(enum passdb_result result, const char *scheme, const uint8_t *c, size_t size,
		    struct auth_db_request *req)
{
	(void)req;
	called = true;
	presult = result;
	snprintf(cred_scheme, sizeof(cred_scheme), "%s", scheme != NULL ? scheme : "");
	snprintf(cred, sizeof(cred), "%.*s", (int)size, c != NULL ? (const char *)c : "");
}

static void userdb_cb(enum userdb_result result, struct auth_db_request *req)
{
	(void)req;
	called = true;
	uresult = result;
}

static enum passdb_result verify(struct auth_chain *chain, struct auth_db_request *req,
				 const char *user, const char *pw)
{
	auth_db_request_clear(req);
	auth_db_request_init(req, user);
	req->service = "imap";
	snprintf(req->rip, sizeof(req->rip), "192.0.2.7");
	called = false;
	auth_chain_verify_plain(chain, req, (const uint8_t *)pw, strlen(pw), verify_cb);
	assert_true(called);
	return presult;
}

static enum userdb_result lookup(struct auth_chain *chain, struct auth_db_request *req,
				 const char *user)
{
	auth_db_request_clear(req);
	auth_db_request_init(req, user);
	req->service = "pop3";
	called = false;
	auth_chain_userdb_lookup(chain, req, userdb_cb);
	assert_true(called);
	return uresult;
}

static void test_passdb_static(void **state)
{
	(void)state;
	struct auth_db_request req;
	memset(&req, 0, sizeof(req));
	/* a plain password with %-variables, and fields */
	struct db_settings *p = block("static", "password=pw-%n proxy host=mail.%d nologin=no");
	struct auth_chain *chain = chain_or_fail(p, NULL);
	assert_int_equal(verify(chain, &req, "ann@example.org", "pw-ann"), PASSDB_RESULT_OK);
	assert_string_equal(auth_fields_get(&req.passdb_fields, "host"), "mail.example.org");
	assert_non_null(auth_fields_get(&req.passdb_fields, "proxy"));
	assert_null(auth_fields_get(&req.passdb_fields, "password"));
	assert_int_equal(verify(chain, &req, "ann@example.org", "pw-bob"),
			 PASSDB_RESULT_PASSWORD_MISMATCH);
	/* a failed passdb's fields are rolled back */
	assert_null(auth_fields_get(&req.passdb_fields, "host"));
	/* credentials for SCRAM/CRAM: PLAIN, expanded */
	auth_db_request_clear(&req);
	auth_db_request_init(&req, "cy@example.net");
	called = false;
	auth_chain_lookup_credentials(chain, &req, "PLAIN", cred_cb);
	assert_true(called);
	assert_int_equal(presult, PASSDB_RESULT_OK);
	assert_string_equal(cred_scheme, "PLAIN");
	assert_string_equal(cred, "pw-cy");
	auth_chain_free(chain);
	blocks_free(p);

	/* a hashed password */
	const char *err = NULL;
	char *hash = auth_scheme_generate("SHA512-CRYPT", (const uint8_t *)"s3cret", 6, 0, &err);
	assert_non_null(hash);
	char *args = rg_strdup_printf("password=%s", hash);
	p = block("static", args);
	chain = chain_or_fail(p, NULL);
	assert_int_equal(verify(chain, &req, "x", "s3cret"), PASSDB_RESULT_OK);
	assert_int_equal(verify(chain, &req, "x", "s3cre"), PASSDB_RESULT_PASSWORD_MISMATCH);
	auth_chain_free(chain);
	blocks_free(p);
	rg_free(args);
	rg_free(hash);

	/* no password: only nopassword lets anyone in */
	p = block("static", "nopassword");
	chain = chain_or_fail(p, NULL);
	assert_int_equal(verify(chain, &req, "x", "anything"), PASSDB_RESULT_OK);
	auth_chain_free(chain);
	blocks_free(p);
	p = block("static", "allow_nets=127.0.0.1");
	chain = chain_or_fail(p, NULL);
	assert_int_equal(verify(chain, &req, "x", "anything"), PASSDB_RESULT_PASSWORD_MISMATCH);
	auth_chain_free(chain);
	blocks_free(p);

	/* the message a failing passdb leaves for the client survives the
	 * rollback of its fields; a later success or a new chain run clears it */
	p = block("static", "password=right " AUTH_FIELD_FAILURE_MSG "=Go-away");
	struct db_settings *p2 = block("static", "password=second");
	p->next = p2;
	chain = chain_or_fail(p, NULL);
	assert_int_equal(verify(chain, &req, "x", "wrong"), PASSDB_RESULT_PASSWORD_MISMATCH);
	assert_string_equal(req.fail_reason, "Go-away");
	assert_null(auth_fields_get(&req.passdb_fields, AUTH_FIELD_FAILURE_MSG));
	called = false;
	auth_chain_verify_plain(chain, &req, (const uint8_t *)"second", 6, verify_cb);
	assert_int_equal(presult, PASSDB_RESULT_OK);
	assert_null(req.fail_reason);
	auth_chain_free(chain);
	blocks_free(p); /* and p2, its next */

	/* an unknown variable: internal failure, not an empty password */
	p = block("static", "password=%{nosuchvar}");
	chain = chain_or_fail(p, NULL);
	assert_int_equal(verify(chain, &req, "x", ""), PASSDB_RESULT_INTERNAL_FAILURE);
	auth_chain_free(chain);
	blocks_free(p);
	auth_db_request_clear(&req);
}

static void test_passdb_passwd(void **state)
{
	(void)state;
	struct auth_db_request req;
	memset(&req, 0, sizeof(req));
	struct db_settings *p = block("passwd", "");
	struct auth_chain *chain = chain_or_fail(p, NULL);
	assert_int_equal(verify(chain, &req, "no-such-user-rg", "x"), PASSDB_RESULT_USER_UNKNOWN);
	/* root's entry holds "x" (the hash is in /etc/shadow) or a locked
	 * field: never a successful login */
	const struct passwd *pw = getpwnam("root");
	assert_non_null(pw);
	enum passdb_result r = verify(chain, &req, "root", pw->pw_passwd);
	assert_true(r == PASSDB_RESULT_PASSWORD_MISMATCH || r == PASSDB_RESULT_USER_DISABLED);
	auth_chain_free(chain);
	/* unknown args stop start-up */
	rg_free(p->args);
	p->args = rg_strdup("nonsense=1");
	char *error = NULL;
	assert_null(auth_chain_new(p, NULL, &error));
	assert_non_null(strstr(error, "passwd: unknown args"));
	rg_free(error);
	blocks_free(p);
	auth_db_request_clear(&req);
}

/* a lookup-capable checkpassword program: AUTHORIZED=1 from auth, found
 * users get AUTHORIZED=2 and the reply (written to fd 4 here, as the
 * reply helper would) and exit 2; unknown ones exit 3 */
static void test_userdb_checkpassword(void **state)
{
	(void)state;
	char *prog = file_with("cpu.sh",
		"#!/bin/bash\n"
		"IFS= read -r -d '' user <&3; IFS= read -r -d '' pass <&3\n"
		"[ -n \"$pass\" ] && exit 9\n"
		"[ \"$AUTHORIZED\" = 1 ] || exit 8\n"
		"case \"$user\" in\n"
		"  dee) printf 'userdb_uid=1500\\tuserdb_gid=1500\\tuserdb_home=/h/dee\\t"
		"reason=not-a-userdb-field\\tuserdb_quota=%s' \"$SERVICE\" >&4; exit 2 ;;\n"
		"  temp) exit 111 ;;\n"
		"  old) exit 0 ;;\n"
		"  *) exit 3 ;;\n"
		"esac\n");
	chmod(prog, 0755);
	struct db_settings *u = block("checkpassword", prog);
	struct auth_chain *chain = chain_or_fail(NULL, u);
	struct auth_db_request req;
	memset(&req, 0, sizeof(req));
	assert_int_equal(lookup(chain, &req, "dee"), USERDB_RESULT_OK);
	assert_string_equal(auth_fields_get(&req.userdb_fields, "uid"), "1500");
	assert_string_equal(auth_fields_get(&req.userdb_fields, "home"), "/h/dee");
	assert_string_equal(auth_fields_get(&req.userdb_fields, "quota"), "pop3");
	assert_null(auth_fields_get(&req.userdb_fields, "reason"));
	assert_int_equal(lookup(chain, &req, "eve"), USERDB_RESULT_USER_UNKNOWN);
	assert_int_equal(lookup(chain, &req, "temp"), USERDB_RESULT_INTERNAL_FAILURE);
	/* exit 0 is a password check's answer, not a lookup's */
	assert_int_equal(lookup(chain, &req, "old"), USERDB_RESULT_INTERNAL_FAILURE);
	auth_chain_free(chain);
	auth_db_request_clear(&req);
	/* a relative program path stops start-up */
	rg_free(u->args);
	u->args = rg_strdup("cpu.sh");
	char *error = NULL;
	assert_null(auth_chain_new(NULL, u, &error));
	assert_non_null(strstr(error, "absolute path"));
	rg_free(error);
	blocks_free(u);
	rg_free(prog);
}

static void test_passwd_file_templates(void **state)
{
	(void)state;
	char *sub = rg_strdup_printf("%s/users", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	char *f1 = file_with("users/example.org", "ann:{PLAIN}ann-pw:1000:1000::/home/ann\n");
	char *f2 = file_with("users/example.net", "ann:{PLAIN}other-pw:1001:1001::/home/ann2\n");
	/* a file outside users/ that a crafted domain must not reach */
	char *outside = file_with("secret", "ann:{PLAIN}outside-pw:1:1::/\n");
	char *args = rg_strdup_printf("scheme=PLAIN username_format=%%n %s/users/%%Ld", dir);
	struct db_settings *p = block("passwd-file", args);
	struct db_settings *u = block("passwd-file", args);
	struct auth_chain *chain = chain_or_fail(p, u);
	struct auth_db_request req;
	memset(&req, 0, sizeof(req));
	assert_int_equal(verify(chain, &req, "ann@example.org", "ann-pw"), PASSDB_RESULT_OK);
	assert_int_equal(verify(chain, &req, "ann@EXAMPLE.net", "other-pw"), PASSDB_RESULT_OK);
	assert_int_equal(verify(chain, &req, "ann@example.org", "other-pw"),
			 PASSDB_RESULT_PASSWORD_MISMATCH);
	/* a domain without a file has no users */
	assert_int_equal(verify(chain, &req, "ann@example.com", "ann-pw"),
			 PASSDB_RESULT_USER_UNKNOWN);
	/* '/' and ".." in a value never leave the directory */
	assert_int_equal(verify(chain, &req, "ann@../secret", "outside-pw"),
			 PASSDB_RESULT_USER_UNKNOWN);
	assert_int_equal(verify(chain, &req, "ann@..", "outside-pw"), PASSDB_RESULT_USER_UNKNOWN);
	assert_int_equal(lookup(chain, &req, "ann@example.net"), USERDB_RESULT_OK);
	assert_string_equal(auth_fields_get(&req.userdb_fields, "uid"), "1001");
	assert_int_equal(lookup(chain, &req, "ann@nowhere.example"), USERDB_RESULT_USER_UNKNOWN);

	/* a file changed on disk is re-read for its domain */
	sleep(1);
	rg_free(file_with("users/example.org", "ann:{PLAIN}new-pw:1000:1000::/home/ann\n"));
	sleep(1); /* passwd_file_refresh stats at most once a second */
	assert_int_equal(verify(chain, &req, "ann@example.org", "new-pw"), PASSDB_RESULT_OK);

	/* many domains: the loaded files stay bounded, and an evicted one is
	 * read again when asked for */
	for (int i = 0; i < 80; i++) {
		char name[64], text[96];
		snprintf(name, sizeof(name), "users/d%d.test", i);
		snprintf(text, sizeof(text), "u:{PLAIN}p%d:1000:1000::/h\n", i);
		rg_free(file_with(name, text));
	}
	for (int i = 0; i < 80; i++) {
		char user[64], pw[16];
		snprintf(user, sizeof(user), "u@d%d.test", i);
		snprintf(pw, sizeof(pw), "p%d", i);
		assert_int_equal(verify(chain, &req, user, pw), PASSDB_RESULT_OK);
	}
	assert_int_equal(verify(chain, &req, "u@d0.test", "p0"), PASSDB_RESULT_OK);
	/* an unreadable file is an internal failure, not an unknown user */
	char *bad = rg_strdup_printf("%s/users/bad.test", dir);
	assert_int_equal(mkdir(bad, 0700), 0);
	assert_int_equal(verify(chain, &req, "ann@bad.test", "x"), PASSDB_RESULT_INTERNAL_FAILURE);
	auth_chain_free(chain);
	auth_db_request_clear(&req);

	/* the key is username_format expanded: "%n" looks up "ann" */
	rg_free(p->args);
	p->args = rg_strdup_printf("%s/users/example.org", dir);
	chain = chain_or_fail(p, NULL);
	assert_int_equal(verify(chain, &req, "ann@example.org", "new-pw"),
			 PASSDB_RESULT_USER_UNKNOWN);
	auth_chain_free(chain);
	rg_free(p->args);
	p->args = rg_strdup_printf("username_format=%%n %s/users/example.org", dir);
	chain = chain_or_fail(p, NULL);
	assert_int_equal(verify(chain, &req, "ann@example.org", "new-pw"), PASSDB_RESULT_OK);
	auth_chain_free(chain);
	auth_db_request_clear(&req);

	/* an unknown variable in the path stops start-up */
	rg_free(p->args);
	p->args = rg_strdup_printf("%s/users/%%{nosuch}", dir);
	char *error = NULL;
	assert_null(auth_chain_new(p, NULL, &error));
	assert_non_null(strstr(error, "nosuch"));
	rg_free(error);
	blocks_free(p);
	blocks_free(u);
	rg_free(args);
	rg_free(bad);
	rg_free(outside);
	rg_free(f1);
	rg_free(f2);
	rg_free(sub);
}

int main(void)
{
	if (scratch_dir_make("/tmp/rg-drivers-XXXXXX") < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_passdb_static),
		cmocka_unit_test(test_passdb_passwd),
		cmocka_unit_test(test_userdb_checkpassword),
		cmocka_unit_test(test_passwd_file_templates),
	};
	int ret = cmocka_run_group_tests(tests, NULL, NULL);
	if (scratch_dir_remove() != 0)
		ret = 1;
	return ret;
}
