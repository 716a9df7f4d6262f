/* Maildir++ folders as Dovecot lays them out: names to paths, list, create,
 * delete, rename with children, subscriptions (both file versions),
 * special-use folders. Real temp dirs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/alloc.h"
#include "mail/folder.h"
#include "mail/maildir.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *make_root(void)
{
	char tmpl[] = "/tmp/rg-folder-XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	char *root = rg_strdup_printf("%s/Maildir", tmpl);
	assert_int_equal(maildir_create(root), 0);
	return root;
}

static void rm_root(char *root)
{
	char *cmd = rg_strdup_printf("rm -rf '%s/..'", root);
	*strrchr(cmd, '/') = '\0';
	char *c2 = rg_strdup_printf("%s'", cmd);
	assert_int_equal(system(c2), 0);
	rg_free(c2);
	rg_free(cmd);
	rg_free(root);
}

static bool is_dir(const char *root, const char *sub)
{
	char *p = rg_strdup_printf("%s/%s", root, sub);
	struct stat st;
	bool ok = stat(p, &st) == 0 && S_ISDIR(st.st_mode);
	rg_free(p);
	return ok;
}

static char *joined(char **names, size_t count)
{
	size_t len = 1;
	for (size_t i = 0; i < count; i++)
		len += strlen(names[i]) + 1;
	char *out = rg_calloc(1, len);
	for (size_t i = 0; i < count; i++) {
		if (i > 0)
			strcat(out, ",");
		strcat(out, names[i]);
	}
	return out;
}

/* the names list() gives for root, joined with ",", must be want */
static void check_names(int (*list)(const char *, char ***, size_t *), const char *root,
			const char *want)
{
	char **names;
	size_t count;
	assert_int_equal(list(root, &names, &count), 0);
	char *got = joined(names, count);
	assert_string_equal(got, want);
	rg_free(got);
	folder_list_free(names, count);
}

static void check_list(const char *root, const char *want)
{
	check_names(folder_list, root, want);
}

static void check_subs(const char *root, const char *want)
{
	check_names(folder_subscriptions, root, want);
}

static void test_names(void **state)
{
	(void)state;
	static const char *const bad[] = { "", ".a", "a.", "a..b", "a/b", "../x", "a*", "b%", "x\ty", "caf\xc3\xa9" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_false(folder_name_valid(bad[i]));
		assert_null(folder_path("/r", bad[i]));
	}
	char *long_name = rg_malloc(FOLDER_MAX_NAME + 2);
	memset(long_name, 'a', FOLDER_MAX_NAME + 1);
	long_name[FOLDER_MAX_NAME + 1] = '\0';
	assert_false(folder_name_valid(long_name));
	long_name[FOLDER_MAX_NAME] = '\0';
	assert_true(folder_name_valid(long_name));
	rg_free(long_name);
	char *p = folder_path("/r", "inBox");
	assert_string_equal(p, "/r");
	rg_free(p);
	p = folder_path("/r", "A.B c");
	assert_string_equal(p, "/r/.A.B c");
	rg_free(p);
	assert_true(folder_is_inbox("INBOX"));
	assert_false(folder_is_inbox("INBOX.x"));
	assert_string_equal(folder_special_use("Sent"), "\\Sent");
	assert_null(folder_special_use("sent"));
}

static void test_create_delete_rename(void **state)
{
	(void)state;
	char *root = make_root();
	check_list(root, "INBOX");
	assert_int_equal(folder_create(root, "Work"), 0);
	assert_int_equal(folder_create(root, "Work"), -EEXIST);
	assert_int_equal(folder_create(root, "inbox"), -EEXIST);
	assert_int_equal(folder_create(root, "a/b"), -EINVAL);
	assert_int_equal(folder_create(root, "Work.Sub"), 0);
	assert_int_equal(folder_create(root, "Other"), 0);
	assert_true(is_dir(root, ".Work.Sub/cur"));
	assert_true(is_dir(root, ".Work/new"));
	assert_true(is_dir(root, ".Work/tmp"));
	check_list(root, "INBOX,Other,Work,Work.Sub");
	assert_true(folder_exists(root, "Work.Sub"));
	assert_false(folder_exists(root, "Nope"));

	assert_int_equal(folder_rename(root, "Work", "Job"), 0);
	check_list(root, "INBOX,Job,Job.Sub,Other");
	assert_int_equal(folder_rename(root, "Job", "Other"), -EEXIST);
	assert_int_equal(folder_rename(root, "Job", "Job.Inner"), -EINVAL);
	assert_int_equal(folder_rename(root, "Nope", "X"), -ENOENT);
	assert_int_equal(folder_rename(root, "INBOX", "X"), -EPERM);
	/* a child's target taken: nothing moves */
	assert_int_equal(folder_create(root, "New.Sub"), 0);
	assert_int_equal(folder_rename(root, "Job", "New"), -EEXIST);
	check_list(root, "INBOX,Job,Job.Sub,New.Sub,Other");

	assert_int_equal(folder_delete(root, "INBOX"), -EPERM);
	assert_int_equal(folder_delete(root, "Nope"), -ENOENT);
	assert_int_equal(folder_delete(root, "Job"), 0);
	check_list(root, "INBOX,Job.Sub,New.Sub,Other");
	/* a leftover temporary name is neither listed nor a folder */
	char *trash = rg_strdup_printf("%s/..ringgate-trash.1", root);
	assert_int_equal(mkdir(trash, 0700), 0);
	rg_free(trash);
	check_list(root, "INBOX,Job.Sub,New.Sub,Other");
	rm_root(root);
}

static void test_subscriptions(void **state)
{
	(void)state;
	char *root = make_root();
	check_subs(root, "");
	assert_int_equal(folder_subscribe(root, "A", true), 0);
	assert_int_equal(folder_subscribe(root, "B.C", true), 0);
	assert_int_equal(folder_subscribe(root, "A", true), 0);
	check_subs(root, "A,B.C");
	assert_int_equal(folder_subscribe(root, "A", false), 0);
	check_subs(root, "B.C");
	assert_int_equal(folder_subscribe(root, "bad..name", true), -EINVAL);
	/* Dovecot's version 2 file */
	char *file = rg_strdup_printf("%s/subscriptions", root);
	FILE *f = fopen(file, "w");
	assert_non_null(f);
	fputs("V\t2\n\nINBOX\nX\tY\n", f);
	fclose(f);
	check_subs(root, "INBOX,X.Y");
	assert_int_equal(folder_subscribe(root, "Z", true), 0);
	check_subs(root, "INBOX,X.Y,Z");
	rg_free(file);
	rm_root(root);
}

static void test_special(void **state)
{
	(void)state;
	char *root = make_root();
	assert_int_equal(folder_create(root, "Sent"), 0);
	assert_int_equal(folder_ensure_special(root), 0);
	check_list(root, "INBOX,Drafts,Junk,Sent,Trash");
	/* Sent existed already: not subscribed by us */
	check_subs(root, "Drafts,Trash,Junk");
	assert_int_equal(folder_ensure_special(root), 0);
	check_subs(root, "Drafts,Trash,Junk");
	rm_root(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_create_delete_rename),
		cmocka_unit_test(test_subscriptions),
		cmocka_unit_test(test_special),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
