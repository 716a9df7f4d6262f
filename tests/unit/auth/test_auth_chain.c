/* The passdb/userdb chain (auth-chain.h) over real passwd-files: Dovecot's
 * result rules, deny and master passdbs, filters, field rollback, internal
 * failures. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "auth/auth-chain.h"
#include "lib/alloc.h"
#include "lib/settings.h"
#include "chain-test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct result {
	bool called;
	enum passdb_result result;
	enum userdb_result uresult;
};
static struct result last;

static void verify_cb(enum passdb_result result, struct auth_db_request *req)
{
	(void)req;
	assert_false(last.called);
	last.called = true;
	last.result = result;
}

static void userdb_cb(enum userdb_result result, struct auth_db_request *req)
{
	(void)req;
	last.called = true;
	last.uresult = result;
}

static enum passdb_result verify(struct auth_chain *chain, struct auth_db_request *req,
				 const char *user, const char *pw)
{
	auth_db_request_clear(req);
	auth_db_request_init(req, user);
	memset(&last, 0, sizeof(last));
	auth_chain_verify_plain(chain, req, (const uint8_t *)pw, strlen(pw), verify_cb);
	assert_true(last.called);
	return last.result;
}

static void test_default_rules(void **state)
{
	(void)state;
	/* first file: alice; second: bob, and alice with another password */
	char *a = file_with("a", "alice:{PLAIN}apw:1000:1000::/home/alice::ina=1\n");
	char *b = file_with("b", "bob:{PLAIN}bpw:1001:1001::/home/bob::inb=1\n"
				 "alice:{PLAIN}other:1000:1000::/h2::inb=2\n");
	struct db_settings *p = block("passwd-file", a);
	p->next = block("passwd-file", b);
	char *error = NULL;
	struct auth_chain *chain = auth_chain_new(p, NULL, &error);
	assert_non_null(chain);
	assert_int_equal(auth_chain_passdb_count(chain), 2);
	struct auth_db_request req;
	memset(&req, 0, sizeof(req));

	/* found in the first: return-ok, the second is not asked */
	assert_int_equal(verify(chain, &req, "alice", "apw"), PASSDB_RESULT_OK);
	assert_string_equal(auth_fields_get(&req.passdb_fields, "ina"), "1");
	assert_null(auth_fields_get(&req.passdb_fields, "inb"));
	/* a mismatch in the first continues; the second knows alice with
	 * another password */
	assert_int_equal(verify(chain, &req, "alice", "other"), PASSDB_RESULT_OK);
	/* the failed passdb's fields were rolled back */
	assert_null(auth_fields_get(&req.passdb_fields, "ina"));
	assert_string_equal(auth_fields_get(&req.passdb_fields, "inb"), "2");
	/* unknown in the first, found in the second */
	assert_int_equal(verify(chain, &req, "bob", "bpw"), PASSDB_RESULT_OK);
	/* the last one's failure is the answer */
	assert_int_equal(verify(chain, &req, "bob", "x"), PASSDB_RESULT_PASSWORD_MISMATCH);
	assert_null(auth_fields_get(&req.passdb_fields, "inb"));
	assert_int_equal(verify(chain, &req, "carol", "x"), PASSDB_RESULT_USER_UNKNOWN);

	/* a file that is gone: internal failure on the way, and when nothing
	 * succeeds the answer is temporary (it might have had the password) */
	unlink(a);
	usleep(1100 * 1000); /* the file is re-checked at most once a second */
	assert_int_equal(verify(chain, &req, "bob", "bpw"), PASSDB_RESULT_OK);
	assert_int_equal(verify(chain, &req, "bob", "x"), PASSDB_RESULT_INTERNAL_FAILURE);

	auth_db_request_clear(&req);
	auth_chain_free(chain);
	blocks_free(p);
	rg_free(a);
	rg_free(b);
}

static void test_rules_and_filters(void **state)
{
	(void)state;
	char *a = file_with("ra", "alice:{PLAIN}apw::::::first=1\nroot@example.com:{PLAIN}r\n");
	char *b = file_with("rb", "alice:{PLAIN}unused::::::second=1\n");
	struct db_settings *p = block("passwd-file", a);
	p->result_success = (char *)"continue";
	p->next = block("passwd-file", b);
	char *error = NULL;
	struct auth_chain *chain = auth_chain_new(p, NULL, &error);
	assert_non_null(chain);
	struct auth_db_request req;
	memset(&req, 0, sizeof(req));
	/* continue after success: the second is a lookup (its password is not
	 * checked), both passdbs' fields stay */
	assert_int_equal(verify(chain, &req, "alice", "apw"), PASSDB_RESULT_OK);
	assert_string_equal(auth_fields_get(&req.passdb_fields, "first"), "1");
	assert_string_equal(auth_fields_get(&req.passdb_fields, "second"), "1");
	assert_true(req.skip_password_check);
	auth_chain_free(chain);

	/* continue, but the last one does not know the user: plain continue
	 * never set success, so the result is the last one's */
	p->result_success = (char *)"continue";
	chain = auth_chain_new(p, NULL, &error);
	assert_non_null(chain);
	assert_int_equal(verify(chain, &req, "root@example.com", "r"),
			 PASSDB_RESULT_USER_UNKNOWN);
	auth_chain_free(chain);
	/* continue-ok makes it a success whatever follows */
	p->result_success = (char *)"continue-ok";
	chain = auth_chain_new(p, NULL, &error);
	assert_int_equal(verify(chain, &req, "root@example.com", "r"), PASSDB_RESULT_OK);
	auth_chain_free(chain);
	/* return-fail on failure stops the chain: the second's alice is not
	 * reached */
	p->result_success = NULL;
	p->result_failure = (char *)"return-fail";
	chain = auth_chain_new(p, NULL, &error);
	assert_int_equal(verify(chain, &req, "alice", "unused"), PASSDB_RESULT_PASSWORD_MISMATCH);
	auth_chain_free(chain);
	p->result_failure = NULL;

	/* username_filter and mechanisms skip a passdb */
	p->username_filter = (char *)"*@example.com !root@*";
	chain = auth_chain_new(p, NULL, &error);
	assert_int_equal(verify(chain, &req, "alice", "unused"), PASSDB_RESULT_OK);
	assert_null(auth_fields_get(&req.passdb_fields, "first"));
	assert_int_equal(verify(chain, &req, "root@example.com", "r"), PASSDB_RESULT_USER_UNKNOWN);
	auth_chain_free(chain);
	p->username_filter = NULL;
	p->mechanisms = (char *)"login";
	chain = auth_chain_new(p, NULL, &error);
	assert_int_equal(verify(chain, &req, "alice", "apw"), PASSDB_RESULT_PASSWORD_MISMATCH);
	auth_chain_free(chain);
	p->mechanisms = NULL;

	/* every passdb skipped: internal failure */
	p->username_filter = (char *)"nobody";
	p->next->username_filter = (char *)"nobody";
	chain = auth_chain_new(p, NULL, &error);
	assert_int_equal(verify(chain, &req, "alice", "apw"), PASSDB_RESULT_INTERNAL_FAILURE);
	auth_chain_free(chain);
	p->username_filter = p->next->username_filter = NULL;

	/* a misspelt rule stops start-up */
	p->result_internalfail = (char *)"contine";
	p->file = (char *)"x.conf";
	p->line = 7;
	assert_null(auth_chain_new(p, NULL, &error));
	assert_string_equal(error, "x.conf:7: invalid value for 'result_internalfail'");
	rg_free(error);
	p->result_internalfail = NULL;
	p->file = NULL;

	auth_db_request_clear(&req);
	blocks_free(p);
	rg_free(a);
	rg_free(b);
}

static void test_deny_and_master(void **state)
{
	(void)state;
	char *deny = file_with("deny", "mallory\n");
	char *masters = file_with("masters", "admin:{PLAIN}adminpw\n");
	char *users = file_with("users", "alice:{PLAIN}apw:1000:1000::/home/alice\n"
				     "mallory:{PLAIN}mpw:1002:1002::/home/m\n");
	struct db_settings *p = block("passwd-file", deny);
	p->deny = true;
	p->next = block("passwd-file", masters);
	p->next->master = true;
	p->next->next = block("passwd-file", users);
	char *error = NULL;
	struct auth_chain *chain = auth_chain_new(p, NULL, &error);
	assert_non_null(chain);
	assert_true(auth_chain_has_masters(chain));
	struct auth_db_request req;
	memset(&req, 0, sizeof(req));

	/* the deny list: found there = disabled, whatever the password */
	assert_int_equal(verify(chain, &req, "mallory", "mpw"), PASSDB_RESULT_USER_DISABLED);
	assert_int_equal(verify(chain, &req, "alice", "apw"), PASSDB_RESULT_OK);
	/* master passdbs are not asked for normal logins */
	assert_int_equal(verify(chain, &req, "admin", "adminpw"), PASSDB_RESULT_USER_UNKNOWN);

	/* master login: admin's password, alice's session */
	auth_db_request_clear(&req);
	auth_db_request_init(&req, "alice");
	req.master_user = rg_strdup("admin");
	memset(&last, 0, sizeof(last));
	auth_chain_verify_plain(chain, &req, (const uint8_t *)"adminpw", 7, verify_cb);
	assert_true(last.called);
	assert_int_equal(last.result, PASSDB_RESULT_OK);
	assert_string_equal(req.user, "alice");
	assert_string_equal(req.master_user, "admin");
	/* wrong master password */
	auth_db_request_clear(&req);
	auth_db_request_init(&req, "alice");
	req.master_user = rg_strdup("admin");
	memset(&last, 0, sizeof(last));
	auth_chain_verify_plain(chain, &req, (const uint8_t *)"apw", 3, verify_cb);
	assert_int_equal(last.result, PASSDB_RESULT_PASSWORD_MISMATCH);
	auth_chain_free(chain);

	/* pass = yes: the target must exist in the normal passdbs too */
	p->next->pass = true;
	chain = auth_chain_new(p, NULL, &error);
	auth_db_request_clear(&req);
	auth_db_request_init(&req, "nosuch");
	req.master_user = rg_strdup("admin");
	memset(&last, 0, sizeof(last));
	auth_chain_verify_plain(chain, &req, (const uint8_t *)"adminpw", 7, verify_cb);
	assert_int_equal(last.result, PASSDB_RESULT_USER_UNKNOWN);
	auth_db_request_clear(&req);
	auth_db_request_init(&req, "alice");
	req.master_user = rg_strdup("admin");
	memset(&last, 0, sizeof(last));
	auth_chain_verify_plain(chain, &req, (const uint8_t *)"adminpw", 7, verify_cb);
	assert_int_equal(last.result, PASSDB_RESULT_OK);
	assert_string_equal(req.user, "alice");

	/* the userdb chain: the users file */
	struct db_settings *u = block("passwd-file", users);
	u->default_fields = (char *)"mail=maildir:~/M quota=1G";
	auth_chain_free(chain);
	chain = auth_chain_new(p, u, &error);
	assert_non_null(chain);
	memset(&last, 0, sizeof(last));
	auth_chain_userdb_lookup(chain, &req, userdb_cb);
	assert_true(last.called);
	assert_int_equal(last.uresult, USERDB_RESULT_OK);
	assert_string_equal(auth_fields_get(&req.userdb_fields, "uid"), "1000");
	assert_string_equal(auth_fields_get(&req.userdb_fields, "home"), "/home/alice");
	assert_string_equal(auth_fields_get(&req.userdb_fields, "mail"), "maildir:~/M");
	rg_free(req.user);
	req.user = rg_strdup("nosuch");
	auth_fields_clear(&req.userdb_fields);
	memset(&last, 0, sizeof(last));
	auth_chain_userdb_lookup(chain, &req, userdb_cb);
	assert_int_equal(last.uresult, USERDB_RESULT_USER_UNKNOWN);
	/* a failed userdb's default fields are rolled back */
	assert_null(auth_fields_get(&req.userdb_fields, "quota"));
	u->default_fields = NULL;

	auth_db_request_clear(&req);
	auth_chain_free(chain);
	blocks_free(u);
	blocks_free(p);
	rg_free(deny);
	rg_free(masters);
	rg_free(users);
}

static void test_filter_match(void **state)
{
	(void)state;
	assert_true(auth_username_filter_match("", "anyone"));
	assert_true(auth_username_filter_match("*@example.com", "a@example.com"));
	assert_false(auth_username_filter_match("*@example.com", "a@example.org"));
	assert_false(auth_username_filter_match("*@example.com !root@*", "root@example.com"));
	assert_true(auth_username_filter_match("!root", "alice"));
	assert_true(auth_username_filter_match("a?c x", "abc"));
	assert_false(auth_username_filter_match("a?c", "ac"));
	assert_true(auth_username_filter_match("**a", "bba"));
}

static void test_fields(void **state)
{
	(void)state;
	struct auth_fields f;
	memset(&f, 0, sizeof(f));
	auth_fields_set(&f, "a", "1");
	auth_fields_set(&f, "b", "");
	auth_fields_set(&f, "a", "2");
	assert_int_equal(f.count, 2);
	char *text = auth_fields_export(&f);
	assert_string_equal(text, "a=2\tb");
	rg_free(text);
	auth_fields_set(&f, "c", "x\ty");
	text = auth_fields_export(&f);
	assert_string_equal(text, "a=2\tb\tc=x y");
	struct auth_fields g;
	memset(&g, 0, sizeof(g));
	auth_fields_import(&g, text, strlen(text));
	rg_free(text);
	assert_int_equal(g.count, 3);
	assert_string_equal(auth_fields_get(&g, "c"), "x y");
	auth_fields_truncate(&g, 1);
	assert_null(auth_fields_get(&g, "b"));
	assert_true(auth_fields_remove(&g, "a"));
	assert_false(auth_fields_remove(&g, "a"));
	auth_fields_clear(&f);
	auth_fields_clear(&g);

	struct auth_db_request req;
	auth_db_request_init(&req, "u");
	auth_request_set_fields_str(&req, " userdb_uid=5 user=v  nologin reason=a=b ", false);
	assert_string_equal(req.user, "v");
	assert_string_equal(auth_fields_get(&req.userdb_fields, "uid"), "5");
	assert_string_equal(auth_fields_get(&req.passdb_fields, "nologin"), "");
	assert_string_equal(auth_fields_get(&req.passdb_fields, "reason"), "a=b");
	auth_db_request_clear(&req);
}

static void check_fix(const struct auth_username_rules *rules, const char *name,
		      const char *want, const char *want_error)
{
	struct auth_db_request req;
	auth_db_request_init(&req, "");
	req.service = "imap";
	char *user = NULL, *error = NULL;
	int ret = auth_username_fix(rules, &req, name, &user, &error);
	if (want != NULL) {
		if (ret < 0)
			fail_msg("%s: %s", name, error);
		assert_string_equal(user, want);
	} else {
		assert_int_equal(ret, -1);
		assert_string_equal(error, want_error);
	}
	rg_free(user);
	rg_free(error);
	auth_db_request_clear(&req);
}

static void test_username_rules(void **state)
{
	(void)state;
	struct auth_username_rules r = {
		.format = "%Lu",
		.chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01234567890.-_@",
		.translation = "#@/@",
		.default_realm = "",
	};
	check_fix(&r, "Alice", "alice", NULL);
	check_fix(&r, "Bob#Example.COM", "bob@example.com", NULL);
	check_fix(&r, "b/x", "b@x", NULL);
	check_fix(&r, "eve smith", NULL, "username character disallowed by auth_username_chars: 0x20");
	check_fix(&r, "x%u", NULL, "username character disallowed by auth_username_chars: 0x25");
	r.default_realm = "example.org";
	check_fix(&r, "Carol", "carol@example.org", NULL);
	check_fix(&r, "carol@other", "carol@other", NULL);
	r.format = "%n-%s";
	check_fix(&r, "dave@x", "dave-imap", NULL);
	r.format = "%Ln";
	r.default_realm = NULL;
	r.chars = "";
	check_fix(&r, "@x", NULL, "empty username");
	/* with the rules off, the name is taken as given */
	struct auth_username_rules off = { 0 };
	check_fix(&off, "Any Name%", "Any Name%", NULL);
}

/* userdb static with %-variables; passdb checkpassword with a real program
 * (called inline: without an auth-worker pool the chain calls blocking
 * drivers directly) */
static void test_static_and_checkpassword(void **state)
{
	(void)state;
	struct db_settings *u = block("static", "uid=1234 gid=root home=/var/vmail/%Ld/%n "
				      "mail=maildir:~/M allow_all_users=yes");
	/* the program: exit 0 and run the reply helper's stand-in for the right
	 * password, 1 for a wrong one, 111 for the user "temp" */
	char *prog = file_with("cp.sh",
		"#!/bin/bash\n"
		"IFS= read -r -d '' user <&3; IFS= read -r -d '' pass <&3\n"
		"[ \"$user\" = temp ] && exit 111\n"
		"[ \"$user\" = misuse ] && exit 2\n"
		"[ \"$pass\" = \"right pw\" ] || exit 1\n"
		"printf 'userdb_quota=1G\\tseen_rip=%s\\tseen_service=%s' \"$TCPREMOTEIP\" "
		"\"$SERVICE\" >&4\n"
		"exit 0\n");
	chmod(prog, 0755);
	struct db_settings *p = block("checkpassword", prog);
	char *error = NULL;
	struct auth_chain *chain = auth_chain_new(p, u, &error);
	if (chain == NULL)
		fail_msg("%s", error);
	struct auth_db_request req;
	memset(&req, 0, sizeof(req));
	auth_db_request_init(&req, "bob@Example.COM");
	req.service = "imap";
	snprintf(req.rip, sizeof(req.rip), "192.0.2.5");
	memset(&last, 0, sizeof(last));
	auth_chain_verify_plain(chain, &req, (const uint8_t *)"right pw", 8, verify_cb);
	assert_int_equal(last.result, PASSDB_RESULT_OK);
	assert_string_equal(auth_fields_get(&req.passdb_fields, "seen_rip"), "192.0.2.5");
	assert_string_equal(auth_fields_get(&req.passdb_fields, "seen_service"), "imap");
	assert_string_equal(auth_fields_get(&req.userdb_fields, "quota"), "1G");
	memset(&last, 0, sizeof(last));
	auth_chain_userdb_lookup(chain, &req, userdb_cb);
	assert_int_equal(last.uresult, USERDB_RESULT_OK);
	assert_string_equal(auth_fields_get(&req.userdb_fields, "uid"), "1234");
	assert_string_equal(auth_fields_get(&req.userdb_fields, "gid"), "0");
	assert_string_equal(auth_fields_get(&req.userdb_fields, "home"), "/var/vmail/example.com/bob");
	assert_string_equal(auth_fields_get(&req.userdb_fields, "mail"), "maildir:~/M");
	assert_null(auth_fields_get(&req.userdb_fields, "allow_all_users"));

	assert_int_equal(verify(chain, &req, "bob", "wrong"), PASSDB_RESULT_PASSWORD_MISMATCH);
	assert_int_equal(verify(chain, &req, "temp", "x"), PASSDB_RESULT_INTERNAL_FAILURE);
	assert_int_equal(verify(chain, &req, "misuse", "x"), PASSDB_RESULT_INTERNAL_FAILURE);
	auth_db_request_clear(&req);
	auth_chain_free(chain);

	/* a static uid naming no user stops start-up */
	rg_free(u->args);
	u->args = rg_strdup("uid=no-such-user-here gid=0");
	assert_null(auth_chain_new(NULL, u, &error));
	assert_string_equal(error, "static: uid: unknown user 'no-such-user-here'");
	rg_free(error);
	/* checkpassword wants an absolute path */
	rg_free(p->args);
	p->args = rg_strdup("cp.sh");
	assert_null(auth_chain_new(p, NULL, &error));
	rg_free(error);
	blocks_free(p);
	blocks_free(u);
	rg_free(prog);
}

int main(void)
{
	if (scratch_dir_make("/tmp/rg-chain-XXXXXX") < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default_rules),
		cmocka_unit_test(test_rules_and_filters),
		cmocka_unit_test(test_deny_and_master),
		cmocka_unit_test(test_filter_match),
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_username_rules),
		cmocka_unit_test(test_static_and_checkpassword),
	};
	int ret = cmocka_run_group_tests(tests, NULL, NULL);
	if (scratch_dir_remove() != 0)
		ret = 1;
	return ret;
}
