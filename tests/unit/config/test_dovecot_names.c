/* Tests for the table of Dovecot's names (lib/dovecot-names.h): it is
 * sorted (bsearch needs it), it holds what doveconf -a of 2.3.19 prints,
 * and each look-up answers by kind: setting, section, strlist, filter,
 * service, protocol. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lib/dovecot-names.h"

static void test_table_sorted(void **state)
{
	(void)state;
	assert_true(dovecot_names_count > 400);
	for (size_t i = 1; i < dovecot_names_count; i++) {
		if (strcmp(dovecot_names[i - 1].path, dovecot_names[i].path) >= 0)
			fail_msg("not sorted: '%s' before '%s'", dovecot_names[i - 1].path,
				 dovecot_names[i].path);
	}
	/* every entry is found by its own path */
	for (size_t i = 0; i < dovecot_names_count; i++)
		assert_ptr_equal(dovecot_name_find(dovecot_names[i].path), &dovecot_names[i]);
}

static void test_lookups(void **state)
{
	const struct dovecot_name *n;
	(void)state;

	/* global settings, with Dovecot's defaults */
	assert_true(dovecot_setting_known("", "mail_plugins"));
	assert_true(dovecot_setting_known("", "mail_privileged_group"));
	assert_true(dovecot_setting_known("", "ssl_client_ca_dir"));
	n = dovecot_name_find("auth_username_format");
	assert_non_null(n);
	assert_string_equal(n->def, "%Lu");
	n = dovecot_name_find("default_vsz_limit");
	assert_non_null(n);
	assert_string_equal(n->def, "256 M");
	/* typos are not */
	assert_false(dovecot_setting_known("", "sevice_count"));
	assert_false(dovecot_setting_known("", "mail_plugin"));
	assert_false(dovecot_setting_known("", ""));
	/* a section type is no setting */
	assert_false(dovecot_setting_known("", "namespace"));
	assert_false(dovecot_setting_known("", "protocol"));

	/* sections and what is inside them */
	assert_true(dovecot_section_known("", "namespace"));
	assert_true(dovecot_section_known("namespace/", "mailbox"));
	assert_true(dovecot_setting_known("namespace/mailbox/", "special_use"));
	assert_false(dovecot_section_known("namespace/mailbox/", "mailbox"));
	assert_true(dovecot_setting_known("namespace/", "inbox"));
	assert_true(dovecot_section_known("service/", "unix_listener"));
	assert_true(dovecot_section_known("service/", "fifo_listener"));
	assert_true(dovecot_setting_known("service/unix_listener/", "mode"));
	assert_true(dovecot_setting_known("service/", "executable"));
	assert_true(dovecot_setting_known("passdb/", "result_internalfail"));
	assert_true(dovecot_setting_known("userdb/", "override_fields"));
	assert_false(dovecot_setting_known("userdb/", "deny")); /* passdb only */
	assert_true(dovecot_section_known("", "metric"));
	assert_true(dovecot_section_known("", "event_exporter"));
	assert_false(dovecot_section_known("", "mailbox")); /* only inside namespace */

	/* strlists take any key, but no section */
	assert_true(dovecot_section_known("", "plugin"));
	assert_true(dovecot_setting_known("plugin/", "quota_rule"));
	assert_true(dovecot_setting_known("dict/", "anything"));
	assert_false(dovecot_section_known("plugin/", "x"));

	/* filters */
	assert_true(dovecot_filter_known("protocol"));
	assert_true(dovecot_filter_known("local"));
	assert_true(dovecot_filter_known("remote"));
	assert_true(dovecot_filter_known("local_name"));
	assert_true(dovecot_section_known("", "protocol"));
	assert_false(dovecot_filter_known("service"));

	/* services and protocols */
	assert_true(dovecot_service_known("lmtp"));
	assert_true(dovecot_service_known("director"));
	assert_true(dovecot_service_known("imap-login"));
	assert_true(dovecot_service_known("submission-login"));
	assert_false(dovecot_service_known("imap-logn"));
	/* Pigeonhole's ManageSieve, which Debian sites often add */
	assert_true(dovecot_service_known("managesieve-login"));
	assert_true(dovecot_protocol_known("sieve"));
	assert_true(dovecot_setting_known("", "managesieve_notify_capability"));
	assert_true(dovecot_protocol_known("lmtp"));
	assert_true(dovecot_protocol_known("submission"));
	assert_false(dovecot_protocol_known("lmpt"));

	/* a name longer than any path is simply unknown */
	char longname[600];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_false(dovecot_setting_known("", longname));
	assert_false(dovecot_section_known("namespace/", longname));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_sorted),
		cmocka_unit_test(test_lookups),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
