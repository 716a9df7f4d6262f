/* Tests for settings_load()/settings_print() (lib/settings.h): Dovecot's
 * defaults, service and listener merging, zero resolution, every validation
 * error with its exact "file:line: reason", and print → load round trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/alloc.h"
#include "lib/settings.h"

#define NO_SSL "ssl = no\n"

static struct settings *load_ok(const char *text)
{
	char *error = NULL;
	struct settings *set = settings_load_string("t.conf", text, strlen(text), false, &error);

	if (set == NULL)
		fail_msg("unexpected error: %s", error);
	assert_null(error);
	return set;
}

static void assert_load_fails(const char *text, const char *expected)
{
	char *error = NULL;
	struct settings *set = settings_load_string("t.conf", text, strlen(text), false, &error);

	if (set != NULL)
		fail_msg("accepted: %s", text);
	assert_non_null(error);
	assert_string_equal(error, expected);
	rg_free(error);
}

static const struct listener_settings *listener(const struct service_settings *svc,
						const char *name)
{
	for (unsigned i = 0; i < svc->listener_count; i++) {
		if (strcmp(svc->listeners[i].name, name) == 0)
			return &svc->listeners[i];
	}
	return NULL;
}

static void test_defaults(void **state)
{
	struct settings *set = load_ok(NO_SSL);
	const struct service_settings *svc;
	const struct listener_settings *ls;
	(void)state;

	assert_string_equal(set->config_path, "t.conf");
	assert_string_equal(set->listen, "*, ::");
	assert_string_equal(set->base_dir, "/var/run/ringgate");
	assert_string_equal(set->protocols, "imap pop3");
	assert_string_equal(set->log_path, "");
	assert_string_equal(set->info_log_path, "");
	assert_string_equal(set->debug_log_path, "");
	assert_string_equal(set->syslog_facility, "mail");
	assert_int_equal(set->ssl, SSL_NO);
	assert_string_equal(set->ssl_cert, "");
	assert_string_equal(set->ssl_key, "");
	assert_string_equal(set->ssl_ca, "");
	assert_string_equal(set->ssl_cert_file, "");
	assert_string_equal(set->ssl_min_protocol, "TLSv1.2");
	assert_false(set->ssl_prefer_server_ciphers);
	assert_true(set->disable_plaintext_auth);
	assert_string_equal(set->auth_mechanisms, "plain");
	assert_int_equal(set->auth_failure_delay, 2);
	assert_string_equal(set->login_greeting, "ringgate ready.");
	assert_string_equal(set->login_trusted_networks, "");
	assert_string_equal(set->haproxy_trusted_networks, "");
	assert_int_equal(set->login_timeout, 180);
	assert_string_equal(set->default_login_user, "dovenull");
	assert_string_equal(set->default_internal_user, "dovecot");
	assert_int_equal(set->default_process_limit, 100);
	assert_int_equal(set->default_client_limit, 1000);
	assert_int_equal(set->default_vsz_limit, 256 * 1024 * 1024);
	assert_int_equal(set->default_idle_kill, 60);
	assert_int_equal(set->first_valid_uid, 500);
	assert_int_equal(set->last_valid_uid, 0);
	assert_string_equal(set->mail_location, "");
	assert_string_equal(set->passdb.driver, "");
	assert_string_equal(set->userdb.args, "");

	assert_int_equal(set->service_count, 6);
	/* the metrics listener exists and is off */
	svc = settings_service(set, "stats");
	assert_non_null(svc);
	assert_int_equal(svc->listener_count, 1);
	assert_string_equal(svc->listeners[0].name, "http");
	assert_int_equal(svc->listeners[0].port, 0);
	svc = settings_service(set, "imap-login");
	assert_non_null(svc);
	assert_string_equal(svc->protocol, "imap");
	assert_int_equal(svc->service_count, 1);
	assert_int_equal(svc->client_limit, 1000);
	assert_int_equal(svc->process_limit, 100);
	assert_int_equal(svc->process_min_avail, 0);
	assert_int_equal(svc->vsz_limit, 256 * 1024 * 1024);
	assert_int_equal(svc->idle_kill, 60);
	assert_int_equal(svc->listener_count, 2);
	ls = listener(svc, "imap");
	assert_int_equal(ls->port, 143);
	assert_false(ls->ssl);
	assert_string_equal(ls->address, "* ::");
	assert_false(ls->haproxy);
	assert_false(ls->reuse_port);
	ls = listener(svc, "imaps");
	assert_int_equal(ls->port, 993);
	assert_true(ls->ssl);

	svc = settings_service(set, "pop3-login");
	assert_string_equal(svc->protocol, "pop3");
	assert_int_equal(listener(svc, "pop3")->port, 110);
	assert_int_equal(listener(svc, "pop3s")->port, 995);
	assert_true(listener(svc, "pop3s")->ssl);

	svc = settings_service(set, "imap");
	assert_string_equal(svc->protocol, "imap");
	assert_int_equal(svc->listener_count, 0);
	assert_int_equal(svc->process_limit, 1024);
	assert_int_equal(svc->client_limit, 1);
	assert_int_equal(svc->service_count, 1);
	svc = settings_service(set, "pop3");
	assert_int_equal(svc->process_limit, 1024);
	svc = settings_service(set, "auth");
	assert_string_equal(svc->protocol, "");
	assert_int_equal(svc->process_limit, 1);
	assert_int_equal(svc->service_count, 0);
	assert_int_equal(svc->client_limit, 1000);
	assert_null(settings_service(set, "lmtp"));

	assert_true(settings_protocol_enabled(set, "imap"));
	assert_true(settings_protocol_enabled(set, "pop3"));
	assert_false(settings_protocol_enabled(set, "lmtp"));
	settings_free(set);
}

static void test_sample(void **state)
{
	char *error = NULL;
	struct settings *set = settings_load(SAMPLES_DIR "/ringgate.conf", &error);
	const struct service_settings *svc;
	const struct listener_settings *ls;
	(void)state;

	if (set == NULL)
		fail_msg("%s", error);
	assert_non_null(strstr(set->config_path, "/samples/ringgate.conf"));
	assert_string_equal(set->listen, "127.0.0.1, ::1");
	assert_int_equal(set->ssl, SSL_REQUIRED);
	assert_string_equal(set->ssl_cert, "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n");
	assert_non_null(strstr(set->ssl_cert_file, "/samples/ssl/cert.pem"));
	assert_string_equal(set->ssl_key, "-----BEGIN PRIVATE KEY-----\nMIIEkey\n-----END PRIVATE KEY-----\n");
	assert_string_equal(set->ssl_min_protocol, "TLSv1.3");
	assert_string_equal(set->auth_mechanisms, "plain login");
	assert_string_equal(set->login_greeting, "Mail # server \"ready\"");
	assert_string_equal(set->login_trusted_networks, "10.0.0.0/8 192.168.1.1 ::1/128");
	assert_string_equal(set->mail_location, "maildir:~/Maildir:INDEX=/run/ringgate-test/index/%u");
	assert_string_equal(set->log_path, "/var/log/ringgate.log");
	assert_string_equal(set->passdb.driver, "passwd-file");
	assert_string_equal(set->passdb.args, "scheme=SHA512-CRYPT /etc/ringgate/users");
	assert_string_equal(set->userdb.args, "/etc/ringgate/users");

	svc = settings_service(set, "imap-login");
	assert_int_equal(svc->service_count, 0);
	assert_int_equal(svc->process_min_avail, 2);
	assert_int_equal(svc->client_limit, 2000);
	assert_int_equal(svc->process_limit, 100);
	assert_int_equal(svc->vsz_limit, 0);
	assert_int_equal(svc->idle_kill, 120);
	assert_int_equal(svc->listener_count, 3);
	ls = listener(svc, "imap");
	assert_int_equal(ls->port, 10143);
	assert_string_equal(ls->address, "127.0.0.1 ::1");
	ls = listener(svc, "imaps");
	assert_int_equal(ls->port, 10993);
	assert_true(ls->ssl);
	assert_true(ls->reuse_port);
	ls = listener(svc, "imap-haproxy");
	assert_int_equal(ls->port, 10144);
	assert_true(ls->haproxy);
	assert_false(ls->ssl);
	assert_string_equal(ls->address, "127.0.0.2");

	svc = settings_service(set, "pop3-login");
	assert_int_equal(svc->service_count, 1);
	assert_int_equal(svc->idle_kill, 30);
	assert_int_equal(svc->vsz_limit, 1024 * 1024 * 1024);
	assert_int_equal(listener(svc, "pop3")->port, 10110);
	assert_int_equal(listener(svc, "pop3s")->port, 0);
	svc = settings_service(set, "imap");
	assert_int_equal(svc->process_limit, 512);
	assert_int_equal(svc->vsz_limit, 512 * 1024 * 1024);
	settings_free(set);
}

static void test_resolution(void **state)
{
	struct settings *set;
	const struct service_settings *svc;
	(void)state;

	/* order does not matter: defaults set after the service still apply */
	set = load_ok(NO_SSL
		"service pop3-login {\n"
		"  client_limit = 0\n  process_limit = 0\n  idle_kill = 0\n"
		"  service_count = 0\n  vsz_limit = 18446744073709551615\n"
		"}\n"
		"service imap-login {\n  vsz_limit = 0\n}\n"
		"service imap-login {\n  process_min_avail = 4\n}\n"
		"default_client_limit = 7\ndefault_process_limit = 8\n"
		"default_idle_kill = 9 secs\ndefault_vsz_limit = 10M\n"
		"listen = 10.0.0.1,10.0.0.2  ::1\n"
		"protocols = none\n");
	svc = settings_service(set, "pop3-login");
	assert_int_equal(svc->client_limit, 7);
	assert_int_equal(svc->process_limit, 8);
	assert_int_equal(svc->idle_kill, 9);
	assert_int_equal(svc->service_count, 0);
	assert_int_equal(svc->vsz_limit, 10 * 1024 * 1024);
	assert_string_equal(listener(svc, "pop3")->address, "10.0.0.1 10.0.0.2 ::1");
	svc = settings_service(set, "imap-login");
	assert_int_equal(svc->vsz_limit, 0);
	assert_int_equal(svc->process_min_avail, 4);
	assert_int_equal(svc->client_limit, 7);
	assert_string_equal(set->protocols, "");
	assert_false(settings_protocol_enabled(set, "imap"));
	settings_free(set);

	/* protocols and mechanisms are normalised; empty protocol sections are fine */
	set = load_ok(NO_SSL "protocols = IMAP,pop3\nauth_mechanisms = PLAIN, Login\n"
		      "protocol imap {\n}\nprotocol pop3 {\n}\n");
	assert_string_equal(set->protocols, "imap pop3");
	assert_string_equal(set->auth_mechanisms, "plain login");
	settings_free(set);

	/* $protocols is Dovecot's default (Debian's 2.3: empty), so Debian's
	 * protocols.d files enable exactly what they name; without any
	 * protocols line ringgate serves both */
	set = load_ok(NO_SSL "protocols = $protocols imap\n");
	assert_string_equal(set->protocols, "imap");
	settings_free(set);
	set = load_ok(NO_SSL "protocols = $protocols imap\nprotocols = $protocols pop3\n");
	assert_string_equal(set->protocols, "imap pop3");
	settings_free(set);
	set = load_ok(NO_SSL "protocols = $protocols\n");
	assert_string_equal(set->protocols, "");
	settings_free(set);

	/* ssl needs cert and key unless no protocol is enabled */
	set = load_ok("protocols = none\n");
	assert_int_equal(set->ssl, SSL_YES);
	settings_free(set);
}

static void test_errors(void **state)
{
	static const struct { const char *text, *error; } cases[] = {
		{ NO_SSL "sevice = 1\n", "t.conf:2: unknown setting 'sevice'" },
		{ NO_SSL "syslog_facility = mial\n", "t.conf:2: syslog_facility: unknown facility "
		  "'mial' (mail, auth, authpriv, daemon, user, local0..local7, ...)" },
		{ NO_SSL "syslog_facility = local8\n", "t.conf:2: syslog_facility: unknown facility "
		  "'local8' (mail, auth, authpriv, daemon, user, local0..local7, ...)" },
		{ NO_SSL "foo {\n}\n", "t.conf:2: unknown section type 'foo'" },
		{ NO_SSL "service = imap\n", "t.conf:2: unknown setting 'service'" },
		{ NO_SSL "service {\n}\n", "t.conf:2: service section needs a name" },
		{ NO_SSL "service imap-logn {\n}\n", "t.conf:2: unknown service 'imap-logn'" },
		{ NO_SSL "service imap {\n  usr = x\n}\n", "t.conf:3: unknown setting 'usr'" },
		{ NO_SSL "service imap {\n  sevice_count = 1\n}\n",
		  "t.conf:3: unknown setting 'sevice_count'" },
		{ NO_SSL "service auth {\n  unix_listener x {\n    mod = 0600\n  }\n}\n",
		  "t.conf:4: unknown setting 'mod'" },
		{ NO_SSL "service auth {\n  unix_listenr x {\n  }\n}\n",
		  "t.conf:3: unknown section type 'unix_listenr'" },
		{ NO_SSL "service lmtp {\n  executabl = lmtp\n}\n", "t.conf:3: unknown setting 'executabl'" },
		{ NO_SSL "service lmtp {\n  inet_listener lmtp {\n    prot = 24\n  }\n}\n",
		  "t.conf:4: unknown setting 'prot'" },
		{ NO_SSL "service imap {\n  inet_listener x {\n  }\n}\n",
		  "t.conf:3: service 'imap' cannot have an inet_listener" },
		{ NO_SSL "service imap-login {\n  inet_listener {\n  }\n}\n",
		  "t.conf:3: inet_listener section needs a name" },
		{ NO_SSL "service imap-login {\n  inet_listener \"a b\" {\n  }\n}\n",
		  "t.conf:3: invalid inet_listener name 'a b'" },
		{ NO_SSL "service imap-login {\n  inet_listener imap {\n    ports = 1\n  }\n}\n",
		  "t.conf:4: unknown setting 'ports'" },
		{ NO_SSL "service imap-login {\n  inet_listener imap {\n    x {\n    }\n  }\n}\n",
		  "t.conf:4: unknown section type 'x'" },
		{ NO_SSL "service imap-login {\n  inet_listener imap {\n    port = 65536\n  }\n}\n",
		  "t.conf:4: invalid value for 'port': port must be 0..65535" },
		{ NO_SSL "service imap-login {\n  inet_listener imap {\n    port = imap\n  }\n}\n",
		  "t.conf:4: invalid value for 'port': not a number" },
		{ NO_SSL "service imap-login {\n  inet_listener imap {\n    ssl = true\n  }\n}\n",
		  "t.conf:4: invalid value for 'ssl': must be 'yes' or 'no'" },
		{ NO_SSL "service imap-login {\n  client_limit = -1\n}\n",
		  "t.conf:3: invalid value for 'client_limit': not a number" },
		{ NO_SSL "service imap-login {\n  vsz_limit = 1Q\n}\n",
		  "t.conf:3: invalid value for 'vsz_limit': invalid size unit (use B, k, M, G or T)" },
		{ NO_SSL "service imap-login {\n  idle_kill = 1 year\n}\n",
		  "t.conf:3: invalid value for 'idle_kill': invalid time unit (use msecs, secs, mins, hours, days or weeks)" },
		{ NO_SSL "ssl_prefer_server_ciphers = maybe\n",
		  "t.conf:2: invalid value for 'ssl_prefer_server_ciphers': must be 'yes' or 'no'" },
		{ "ssl = maybe\n", "t.conf:1: invalid value for 'ssl': must be 'yes', 'no' or 'required'" },
		{ NO_SSL "ssl_min_protocol = TLSv1.1\n",
		  "t.conf:2: invalid value for 'ssl_min_protocol': must be TLSv1.2 or TLSv1.3" },
		{ NO_SSL "ssl_min_protocol = SSLv3\n",
		  "t.conf:2: invalid value for 'ssl_min_protocol': must be TLSv1.2 or TLSv1.3" },
		{ NO_SSL "protocols = imap lmpt\n",
		  "t.conf:2: invalid value for 'protocols': protocols must be imap, pop3 or none" },
		{ NO_SSL "auth_mechanisms = plain digest-md5\n",
		  "t.conf:2: invalid value for 'auth_mechanisms': supported mechanisms are plain, login, "
		  "scram-sha-256, scram-sha-1, cram-md5, apop, oauthbearer and xoauth2" },
		{ NO_SSL "auth_mechanisms =\n",
		  "t.conf:2: invalid value for 'auth_mechanisms': must not be empty" },
		{ NO_SSL "login_trusted_networks = 10.0.0.0/33\n",
		  "t.conf:2: invalid value for 'login_trusted_networks': not an IP address or network (addr/bits)" },
		{ NO_SSL "login_trusted_networks = example.com\n",
		  "t.conf:2: invalid value for 'login_trusted_networks': not an IP address or network (addr/bits)" },
		{ NO_SSL "haproxy_trusted_networks = 10.0.0.1 nope\n",
		  "t.conf:2: invalid value for 'haproxy_trusted_networks': not an IP address or network (addr/bits)" },
		{ NO_SSL "login_trusted_networks = ::1/129\n",
		  "t.conf:2: invalid value for 'login_trusted_networks': not an IP address or network (addr/bits)" },
		{ NO_SSL "base_dir = run/ringgate\n",
		  "t.conf:2: invalid value for 'base_dir': must be an absolute path" },
		{ NO_SSL "default_login_user =\n",
		  "t.conf:2: invalid value for 'default_login_user': must not be empty" },
		{ NO_SSL "default_client_limit = 0\n",
		  "t.conf:2: invalid value for 'default_client_limit': must be greater than 0" },
		{ NO_SSL "default_process_limit = 4294967296\n",
		  "t.conf:2: invalid value for 'default_process_limit': number too large" },
		{ NO_SSL "default_idle_kill = 0\n",
		  "t.conf:2: invalid value for 'default_idle_kill': must be greater than 0" },
		{ NO_SSL "login_timeout = 1500 msecs\n",
		  "t.conf:2: invalid value for 'login_timeout': milliseconds not supported for this setting" },
		{ NO_SSL "default_vsz_limit = lots\n",
		  "t.conf:2: invalid value for 'default_vsz_limit': not a number" },
		{ NO_SSL "first_valid_uid = x\n",
		  "t.conf:2: invalid value for 'first_valid_uid': not a number" },
		{ NO_SSL "first_valid_uid = 1000\nlast_valid_uid = 999\n",
		  "t.conf:3: first_valid_uid is greater than last_valid_uid" },
		{ NO_SSL "last_valid_uid = 10\n",
		  "t.conf:2: first_valid_uid is greater than last_valid_uid" },
		{ NO_SSL "passdb {\n  driver = passwd-file\n  args = /a\n}\npassdb {\n}\n",
		  "t.conf:6: passdb section has no driver" },
		{ NO_SSL "passdb {\n  args = /a\n}\n", "t.conf:2: passdb section has no driver" },
		{ NO_SSL "userdb {\n  driver = nosuch\n  args = x\n}\n",
		  "t.conf:3: invalid value for 'driver': unknown userdb driver 'nosuch'" },
		{ NO_SSL "passdb {\n  driver = nosuch\n}\n",
		  "t.conf:3: invalid value for 'driver': unknown passdb driver 'nosuch'" },
		{ NO_SSL "passdb {\n  driver = passwd-file\n  args = /a\n  deny = maybe\n}\n",
		  "t.conf:5: invalid value for 'deny': must be 'yes' or 'no'" },
		{ NO_SSL "userdb {\n  driver = passwd-file\n}\n",
		  "t.conf:2: userdb section has no args (the passwd-file path)" },
		{ NO_SSL "passdb {\n  denied = yes\n}\n", "t.conf:3: unknown setting 'denied'" },
		{ NO_SSL "auth_username_format = %Lq\n",
		  "t.conf:2: invalid value for 'auth_username_format': unknown variable '%Lq'" },
		{ NO_SSL "auth_username_translation = a@/\n",
		  "t.conf:2: auth_username_translation must be pairs of characters" },
		{ NO_SSL "passdb {\n  driver = vpopmail\n}\n",
		  "t.conf:3: invalid value for 'driver': unknown passdb driver 'vpopmail'" },
		{ NO_SSL "userdb {\n  driver = shadow\n}\n",
		  "t.conf:3: invalid value for 'driver': unknown userdb driver 'shadow'" },
		{ NO_SSL "passdb {\n  driver = passwd-file\n  args = /a\n  auth_verbose_x = yes\n}\n",
		  "t.conf:5: unknown setting 'auth_verbose_x'" },
		{ NO_SSL "passdb {\n  x {\n  }\n}\n", "t.conf:3: unknown section type 'x'" },
		{ NO_SSL "protocol {\n}\n", "t.conf:2: protocol section needs a name" },
		{ NO_SSL "protocol imap {\n  login_greeting = hi\n}\n",
		  "t.conf:3: 'login_greeting' inside 'protocol imap { }' is not supported: ringgate "
		  "has one value for every protocol and address, set it outside the section" },
		{ NO_SSL "local 10.0.0.1 {\n  protocol pop3 {\n    ssl_cert = x\n  }\n}\n",
		  "t.conf:4: 'ssl_cert' inside 'local 10.0.0.1 { protocol pop3 { } }' is not supported: "
		  "ringgate has one value for every protocol and address, set it outside the section" },
		{ NO_SSL "protocol imap {\n  mail_plugin = quota\n}\n",
		  "t.conf:3: unknown setting 'mail_plugin'" },
		{ NO_SSL "protocol lmtp {\n  mail_plugin = quota\n}\n",
		  "t.conf:3: unknown setting 'mail_plugin'" },
		{ NO_SSL "protocol !indexer-worker {\n  passdb {\n  }\n}\n",
		  "t.conf:3: 'passdb' sections are not supported inside 'protocol !indexer-worker { }'" },
		{ NO_SSL "remote 10.0.0.0/8 {\n  namespac {\n  }\n}\n",
		  "t.conf:3: unknown section type 'namespac'" },
		{ NO_SSL "sevice_count = 1\n", "t.conf:2: unknown setting 'sevice_count'" },
		{ NO_SSL "mail_location = sdbox:~/sdbox\n",
		  "t.conf:2: invalid value for 'mail_location': sdbox is not supported (Maildir or "
		  "mbox)" },
		{ NO_SSL "mail_location = mdbox:/var/vmail/%d/%n:INDEX=/x\n",
		  "t.conf:2: invalid value for 'mail_location': mdbox is not supported (Maildir or "
		  "mbox)" },
		{ NO_SSL "namespace inbox {\n  inbx = yes\n}\n", "t.conf:3: unknown setting 'inbx'" },
		{ NO_SSL "namespace inbox {\n  mailbox Sent {\n    special_us = \\Sent\n  }\n}\n",
		  "t.conf:4: unknown setting 'special_us'" },
		{ NO_SSL "namespace {\n  mailbox x {\n    mailbox y {\n    }\n  }\n}\n",
		  "t.conf:4: unknown section type 'mailbox'" },
		{ NO_SSL "dict {\n  x {\n  }\n}\n", "t.conf:3: unknown section type 'x'" },
		{ NO_SSL "plugin {\n  x = y\n  z {\n  }\n}\n", "t.conf:4: unknown section type 'z'" },
		{ NO_SSL "metric m {\n  filtr = x\n}\n", "t.conf:3: unknown setting 'filtr'" },
		{ NO_SSL "local_name x {\n  ssl_cert = \"c\"\n  ssl_key = \"k\"\n  mail_plugin = x\n}\n",
		  "t.conf:5: 'mail_plugin' is not supported inside local_name (only ssl_cert and ssl_key)" },
		{ "ssl = yes\n", "t.conf:1: ssl enabled, but ssl_cert not set" },
		{ "login_greeting = hi\n", "t.conf: ssl enabled, but ssl_cert not set" },
		{ "ssl = required\nssl_cert = \"x\"\n", "t.conf:1: ssl enabled, but ssl_key not set" },
		/* syntax errors come through unchanged */
		{ NO_SSL "service imap {\n", "t.conf:2: missing '}'" },
		{ NO_SSL "a = $nope\n", "t.conf:2: unknown variable '$nope'" },
		{ NO_SSL "ssl_cert = </etc/hostname\n",
		  "t.conf:2: </etc/hostname: reading files is disabled here" },
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_load_fails(cases[i].text, cases[i].error);
}

static void test_variables(void **state)
{
	struct settings *set;
	(void)state;

	/* $name of a setting the file has not set is its default */
	set = load_ok(NO_SSL "service imap-login {\n  client_limit = $default_client_limit\n}\n"
		      "login_greeting = $login_greeting on $base_dir\n");
	assert_int_equal(settings_service(set, "imap-login")->client_limit, 1000);
	assert_string_equal(set->login_greeting, "ringgate ready. on /var/run/ringgate");
	settings_free(set);
}

/* every field, so a round trip that loses one fails */
static void assert_settings_equal(const struct settings *a, const struct settings *b)
{
	assert_string_equal(a->listen, b->listen);
	assert_string_equal(a->base_dir, b->base_dir);
	assert_string_equal(a->protocols, b->protocols);
	assert_string_equal(a->log_path, b->log_path);
	assert_int_equal(a->ssl, b->ssl);
	assert_string_equal(a->ssl_cert, b->ssl_cert);
	assert_string_equal(a->ssl_cert_file, b->ssl_cert_file);
	assert_string_equal(a->ssl_key_file, b->ssl_key_file);
	assert_string_equal(a->ssl_ca, b->ssl_ca);
	assert_string_equal(a->ssl_ca_file, b->ssl_ca_file);
	assert_string_equal(a->ssl_min_protocol, b->ssl_min_protocol);
	assert_string_equal(a->ssl_cipher_list, b->ssl_cipher_list);
	assert_int_equal(a->ssl_prefer_server_ciphers, b->ssl_prefer_server_ciphers);
	assert_int_equal(a->disable_plaintext_auth, b->disable_plaintext_auth);
	assert_string_equal(a->auth_mechanisms, b->auth_mechanisms);
	assert_int_equal(a->auth_failure_delay, b->auth_failure_delay);
	assert_string_equal(a->login_greeting, b->login_greeting);
	assert_string_equal(a->login_trusted_networks, b->login_trusted_networks);
	assert_string_equal(a->haproxy_trusted_networks, b->haproxy_trusted_networks);
	assert_int_equal(a->login_timeout, b->login_timeout);
	assert_string_equal(a->default_login_user, b->default_login_user);
	assert_string_equal(a->default_internal_user, b->default_internal_user);
	assert_int_equal(a->default_process_limit, b->default_process_limit);
	assert_int_equal(a->default_client_limit, b->default_client_limit);
	assert_int_equal(a->default_vsz_limit, b->default_vsz_limit);
	assert_int_equal(a->default_idle_kill, b->default_idle_kill);
	assert_int_equal(a->first_valid_uid, b->first_valid_uid);
	assert_int_equal(a->last_valid_uid, b->last_valid_uid);
	assert_string_equal(a->mail_location, b->mail_location);
	assert_string_equal(a->passdb.driver, b->passdb.driver);
	assert_string_equal(a->passdb.args, b->passdb.args);
	assert_string_equal(a->userdb.driver, b->userdb.driver);
	assert_string_equal(a->userdb.args, b->userdb.args);
	assert_int_equal(a->service_count, b->service_count);
	for (unsigned i = 0; i < a->service_count; i++) {
		const struct service_settings *sa = &a->services[i], *sb = &b->services[i];
		assert_string_equal(sa->name, sb->name);
		assert_string_equal(sa->protocol, sb->protocol);
		assert_int_equal(sa->service_count, sb->service_count);
		assert_int_equal(sa->client_limit, sb->client_limit);
		assert_int_equal(sa->process_limit, sb->process_limit);
		assert_int_equal(sa->process_min_avail, sb->process_min_avail);
		assert_int_equal(sa->vsz_limit, sb->vsz_limit);
		assert_int_equal(sa->idle_kill, sb->idle_kill);
		assert_int_equal(sa->listener_count, sb->listener_count);
		for (unsigned j = 0; j < sa->listener_count; j++) {
			const struct listener_settings *la = &sa->listeners[j], *lb = &sb->listeners[j];
			assert_string_equal(la->name, lb->name);
			assert_string_equal(la->address, lb->address);
			assert_int_equal(la->port, lb->port);
			assert_int_equal(la->ssl, lb->ssl);
			assert_int_equal(la->haproxy, lb->haproxy);
			assert_int_equal(la->reuse_port, lb->reuse_port);
		}
	}
}

static char *print_to_string(const struct settings *set, bool all)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	settings_print(set, all, out);
	fclose(out);
	return text;
}

/* print, write to a file, load that: equal to the original */
static void assert_round_trip(const struct settings *set, bool all)
{
	char path[] = "/tmp/rg-settings-XXXXXX";
	char *text = print_to_string(set, all);
	int fd = mkstemp(path);
	char *error = NULL;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	struct settings *again = settings_load(path, &error);
	if (again == NULL)
		fail_msg("reloading failed: %s\n%s", error, text);
	assert_settings_equal(set, again);
	settings_free(again);
	unlink(path);
	free(text);
}

static void test_print_round_trip(void **state)
{
	char *error = NULL;
	struct settings *set;
	(void)state;

	/* loaded by a relative path: <file paths must still print absolute */
	assert_int_equal(chdir(SAMPLES_DIR), 0);
	set = settings_load("ringgate.conf", &error);
	assert_non_null(set);
	assert_int_equal(chdir("/"), 0);
	assert_string_equal(set->ssl_key_file, SAMPLES_DIR "/ssl/key.pem");
	assert_round_trip(set, false);
	assert_round_trip(set, true);
	settings_free(set);

	set = load_ok(NO_SSL
		"login_greeting = \"  #$weird \\\"quoted\\\" \\\\ text  \"\n"
		"mail_location = \"<not a file\"\n"
		"default_vsz_limit = 1000\n"
		"auth_failure_delay = 90\n"
		"login_timeout = 2 days\n"
		"default_client_limit = 5\n"
		"service auth {\n  client_limit = 1000\n  vsz_limit = 0\n}\n"
		"service imap-login {\n  inet_listener extra {\n  }\n"
		"  inet_listener imaps {\n    address = 127.0.0.1\n  }\n}\n"
		"protocols = pop3\n");
	assert_round_trip(set, false);
	assert_round_trip(set, true);
	settings_free(set);

	set = load_ok(NO_SSL);
	assert_round_trip(set, false);
	assert_round_trip(set, true);
	settings_free(set);
}

static void test_print_output(void **state)
{
	struct settings *set;
	char *text;
	(void)state;

	set = load_ok(NO_SSL "default_vsz_limit = 1G\nlogin_timeout = 90 secs\n"
		      "ssl_cert = \"inline\"\nssl_key = \"secret\"\n"
		      "service imap-login {\n  service_count = 0\n"
		      "  inet_listener imap {\n    port = 10143\n  }\n}\n");
	text = print_to_string(set, false);
	assert_string_equal(text,
		"# ringgate configuration: t.conf\n"
		"ssl = no\n"
		"ssl_cert = inline\n"
		"ssl_key = # hidden, use -P to show it\n"
		"login_timeout = 90 secs\n"
		"default_vsz_limit = 1G\n"
		"service imap-login {\n"
		"  service_count = 0\n"
		"  inet_listener imap {\n"
		"    port = 10143\n"
		"  }\n"
		"}\n");
	assert_null(strstr(text, "secret"));
	free(text);
	text = print_to_string(set, true);
	assert_non_null(strstr(text, "\nlisten = *, ::\n"));
	assert_non_null(strstr(text, "\nservice auth {\n  service_count = 0\n  client_limit = 1000\n"));
	assert_null(strstr(text, "secret"));
	free(text);
	settings_free(set);
}

/* Names Dovecot knows and ringgate does not use: accepted, each named once
 * at its first place (settings_ignored), in `-n` as a comment block that
 * loads back; what ringgate uses still applies around them. */
static void test_dovecot_accepted(void **state)
{
	static const struct { const char *name; unsigned line; } expected[] = {
		{ "dict { }", 2 },
		{ "mail_plugins", 5 },
		{ "plugin { }", 6 },
		{ "namespace inbox { }", 9 },
		{ "protocols: lmtp", 16 },
		{ "protocol lmtp { }", 17 },
		{ "protocol imap { mail_plugins }", 22 },
		{ "protocol imap { plugin { } }", 23 },
		{ "local 10.0.0.1 { protocol pop3 { pop3_uidl_format } }", 31 },
		{ "protocol lda { }", 34 },
		{ "service lmtp { }", 36 },
		{ "service site-filter { }", 41 },
		{ "service imap-login { user }", 48 },
		{ "service imap-login { unix_listener login/imap { } }", 50 },
		{ "service auth { fifo_listener x { } }", 57 },
		{ "service auth-worker { }", 60 },
		{ "metric auth_success { }", 72 },
		{ "ssl_client_ca_dir", 75 },
	};
	struct settings *set, *again;
	char *text, *error = NULL;
	(void)state;

	set = load_ok(NO_SSL
		"dict {\n  quota = redis:host=127.0.0.1\n}\n"                        /* 2 */
		"mail_plugins = quota\n"                                            /* 5 */
		"plugin {\n  quota = maildir:User quota\n}\n"                        /* 6 */
		"namespace inbox {\n  inbox = yes\n  mailbox \"Sent Messages\" {\n" /* 9 */
		"    special_use = \\Sent\n    auto = no\n  }\n}\n"
		"protocols = imap pop3 lmtp imap\n"                                 /* 16 */
		"protocol lmtp {\n  mail_plugins = $mail_plugins sieve\n"           /* 17 */
		"  login_greeting = not for ringgate\n}\n"
		"protocol imap {\n  mail_plugins = $mail_plugins imap_quota\n"      /* 21 */
		"  plugin {\n    x = y\n  }\n}\n"                                   /* 23 */
		"plugin {\n}\n"                                                     /* 27 */
		"local 10.0.0.1 {\n  protocol pop3 {\n    pop3_uidl_format = %v\n  }\n}\n" /* 29 */
		"protocol lda {\n}\n"                                               /* 34 */
		"service lmtp {\n  unix_listener lmtp {\n    mode = 0600\n  }\n}\n" /* 36 */
		"service site-filter {\n  executable = /usr/local/bin/site-filter\n" /* 41 */
		"  inet_listener filter {\n    port = 4190\n  }\n}\n"
		"service imap-login {\n  user = dovenull\n  service_count = 0\n"    /* 47 */
		"  unix_listener login/imap {\n  }\n"                               /* 50 */
		"  inet_listener imap {\n    port = 10143\n  }\n}\n"
		"service auth {\n  fifo_listener x {\n  }\n}\n"                     /* 56 */
		"service auth-worker {\n  user = root\n}\n"                         /* 60 */
		"passdb {\n  driver = pam\n  args = session=yes dovecot\n"          /* 63 */
		"  name = system\n  result_success = return-ok\n}\n"
		"userdb {\n  driver = passwd\n}\n"                                  /* 69 */
		"metric auth_success {\n  filter = event=auth_request_finished\n}\n" /* 72 */
		"ssl_client_ca_dir = /etc/ssl/certs\n");                            /* 75 */

	/* what ringgate uses is applied, the rest did not disturb it */
	assert_string_equal(set->protocols, "imap pop3");
	assert_int_equal(settings_service(set, "imap-login")->service_count, 0);
	assert_int_equal(settings_service(set, "imap-login")->listeners[0].port, 10143);
	assert_string_equal(set->passdb.driver, "pam");
	assert_string_equal(set->passdb.args, "session=yes dovecot");
	assert_string_equal(set->login_greeting, "ringgate ready.");

	assert_int_equal(set->ignored_count, sizeof(expected) / sizeof(expected[0]));
	for (unsigned i = 0; i < set->ignored_count; i++) {
		assert_string_equal(set->ignored[i].name, expected[i].name);
		assert_int_equal(set->ignored[i].line, expected[i].line);
		assert_string_equal(set->ignored[i].file, "t.conf");
	}

	/* -n: a comment block, and the output loads back to the same values */
	text = print_to_string(set, false);
	assert_non_null(strstr(text, "\n# Accepted from a Dovecot configuration and not used by "
				     "ringgate:\n#   t.conf:2: dict { } (a Dovecot section ringgate "
				     "does not use: ignored)\n"));
	/* pam and passwd are served: their blocks are printed, not named */
	assert_non_null(strstr(text, "\npassdb {\n  driver = pam\n  args = session=yes dovecot\n"
				     "  name = system\n  result_success = return-ok\n}\n"));
	assert_non_null(strstr(text, "\nuserdb {\n  driver = passwd\n"));
	again = settings_load_string("again.conf", text, strlen(text), false, &error);
	if (again == NULL)
		fail_msg("-n output does not load: %s\n%s", error, text);
	assert_round_trip(set, false);
	settings_free(again);
	free(text);
	settings_free(set);
}

/* mail_location: Maildir in its forms loads silently; mbox (Debian's
 * default) loads, and is named when IMAP is on, which it cannot serve */
/* imap_max_line_length (Dovecot's default 64k): globally or inside
 * protocol imap { }, where it wins over the global value */
static void test_imap_max_line_length(void **state)
{
	(void)state;
	struct settings *set = load_ok(NO_SSL);
	assert_int_equal(set->imap_max_line_length, 64 * 1024);
	settings_free(set);
	set = load_ok(NO_SSL "imap_max_line_length = 1M\n");
	assert_int_equal(set->imap_max_line_length, 1024 * 1024);
	settings_free(set);
	set = load_ok(NO_SSL "protocol imap {\n  imap_max_line_length = 128k\n}\nimap_max_line_length = 2M\n");
	assert_int_equal(set->imap_max_line_length, 128 * 1024);
	settings_free(set);
	assert_load_fails(NO_SSL "imap_max_line_length = 1000\n",
			  "t.conf:2: imap_max_line_length must be between 1k and 64M");
	assert_load_fails(NO_SSL "protocol imap {\n  imap_max_line_length = 65M\n}\n",
			  "t.conf:3: imap_max_line_length must be between 1k and 64M");
	assert_load_fails(NO_SSL "imap_max_line_length = lots\n",
			  "t.conf:2: invalid value for 'imap_max_line_length': not a number");
	/* elsewhere it would apply to one address or protocol only */
	assert_load_fails(NO_SSL "protocol pop3 {\n  imap_max_line_length = 1M\n}\n",
			  "t.conf:3: 'imap_max_line_length' inside 'protocol pop3 { }' is not supported: ringgate "
			  "has one value for every protocol and address, set it outside the section");
}

static void test_mail_location(void **state)
{
	static const char *const quiet[] = {
		"", "~/Maildir", "/var/vmail/%d/%n", "maildir:~/Maildir", "MAILDIR:~/Maildir:LAYOUT=fs",
		"maildir:/var/vmail/%d/%n:INDEX=/var/index/%u", "~/odd:name",
	};
	struct settings *set;
	(void)state;

	for (size_t i = 0; i < sizeof(quiet) / sizeof(quiet[0]); i++) {
		char *text = rg_strdup_printf(NO_SSL "mail_location = \"%s\"\n", quiet[i]);
		set = load_ok(text);
		assert_string_equal(set->mail_location, quiet[i]);
		assert_int_equal(set->ignored_count, 0);
		settings_free(set);
		rg_free(text);
	}
	/* Debian's mbox default serves IMAP too: nothing to name */
	set = load_ok(NO_SSL "mail_location = mbox:~/mail:INBOX=/var/mail/%u\n");
	assert_int_equal(set->ignored_count, 0);
	settings_free(set);
	set = load_ok(NO_SSL "protocols = pop3\nmail_location = mbox:~/mail:INBOX=/var/mail/%u\n");
	assert_int_equal(set->ignored_count, 0);
	settings_free(set);
}

/* !include_try of an absent file or a pattern matching nothing is named */
static void test_include_try_named(void **state)
{
	char dir[] = "/tmp/rg-settings-XXXXXX";
	char *path, *error = NULL;
	FILE *f;
	(void)state;

	assert_non_null(mkdtemp(dir));
	path = rg_strdup_printf("%s/main.conf", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("ssl = no\n!include_try local.conf\n!include_try conf.d/*.conf\n"
	      "!include_try local.conf\n", f);
	fclose(f);
	struct settings *set = settings_load(path, &error);
	if (set == NULL)
		fail_msg("%s", error);
	assert_int_equal(set->ignored_count, 2);
	char *want = rg_strdup_printf("!include_try %s/local.conf", dir);
	assert_string_equal(set->ignored[0].name, want);
	assert_int_equal(set->ignored[0].line, 2);
	assert_string_equal(set->ignored[0].note, "no such file: skipped");
	rg_free(want);
	want = rg_strdup_printf("!include_try %s/conf.d/*.conf", dir);
	assert_string_equal(set->ignored[1].name, want);
	assert_int_equal(set->ignored[1].line, 3);
	rg_free(want);
	settings_free(set);
	unlink(path);
	rmdir(dir);
	rg_free(path);
}

/* SNI sections: names normalised to lower case, PEM kept, a list of names
 * stays one section, and every misuse is a file:line error */
/* ssl_curve_list: OpenSSL's and Dovecot's names, canonical order kept,
 * spaces around names ignored; bad names and repeats name the culprit */
static void test_curve_list(void **state)
{
	static const struct {
		const char *value, *expected;
	} good[] = {
		{ "", "" },
		{ "X25519", "X25519" },
		{ "P-256", "P-256" },
		{ "prime256v1:X25519", "P-256:X25519" },
		{ "x25519:secp256r1:secp384r1:secp521r1", "X25519:P-256:P-384:P-521" },
		{ " X448 : P-384 ", "X448:P-384" },
		{ "ffdhe3072:ffdhe2048:X25519", "ffdhe3072:ffdhe2048:X25519" },
	};
	(void)state;

	struct settings *set = load_ok(NO_SSL);
	assert_string_equal(set->ssl_curve_list, "");
	settings_free(set);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		char *text = rg_strdup_printf(NO_SSL "ssl_curve_list = %s\n", good[i].value);
		set = load_ok(text);
		assert_string_equal(set->ssl_curve_list, good[i].expected);
		settings_free(set);
		rg_free(text);
	}
	assert_load_fails(NO_SSL "ssl_curve_list = X25519:brainpoolP256r1\n",
			  "t.conf:2: invalid value for 'ssl_curve_list': unknown curve "
			  "'brainpoolP256r1' (known: X25519 X448 P-256 P-384 P-521 ffdhe2048 "
			  "ffdhe3072, or OpenSSL's names)");
	assert_load_fails(NO_SSL "\nssl_curve_list = X25519::P-256\n",
			  "t.conf:3: invalid value for 'ssl_curve_list': unknown curve '' "
			  "(known: X25519 X448 P-256 P-384 P-521 ffdhe2048 ffdhe3072, or OpenSSL's names)");
	assert_load_fails(NO_SSL "ssl_curve_list = ffdhe2048\n",
			  "t.conf:2: invalid value for 'ssl_curve_list': must name at least one "
			  "elliptic curve (X25519 X448 P-256 P-384 P-521)");
	assert_load_fails(NO_SSL "ssl_curve_list = P-256:prime256v1\n",
			  "t.conf:2: invalid value for 'ssl_curve_list': curve P-256 named twice");
	assert_load_fails(NO_SSL "ssl_curve_list = X25519,P-256\n",
			  "t.conf:2: invalid value for 'ssl_curve_list': unknown curve 'X25519,P-256' "
			  "(known: X25519 X448 P-256 P-384 P-521 ffdhe2048 ffdhe3072, or OpenSSL's names)");
}

static void test_local_name(void **state)
{
	(void)state;
	struct settings *set = load_ok(NO_SSL
		"local_name \"IMAP.example.com *.example.org\" {\n"
		"  ssl_cert = CERT\n"
		"  ssl_key = KEY\n"
		"}\n"
		"local_name pop.example.net {\n"
		"  ssl_key = KEY2\n"
		"  ssl_cert = CERT2\n"
		"}\n"
		"ssl_dh = DH\n");
	assert_int_equal(set->local_name_count, 2);
	assert_string_equal(set->local_names[0].names, "imap.example.com *.example.org");
	assert_string_equal(set->local_names[0].ssl_cert, "CERT");
	assert_string_equal(set->local_names[0].ssl_key, "KEY");
	assert_int_equal(set->local_names[0].line, 2);
	assert_string_equal(set->local_names[1].names, "pop.example.net");
	assert_string_equal(set->local_names[1].ssl_cert, "CERT2");
	assert_string_equal(set->ssl_dh, "DH");

	/* printed: one section each, inline keys hidden */
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	settings_print(set, false, f);
	fclose(f);
	assert_non_null(strstr(text, "local_name \"imap.example.com *.example.org\" {\n"));
	assert_non_null(strstr(text, "local_name pop.example.net {\n  ssl_cert = CERT2\n"
				     "  ssl_key = # hidden"));
	assert_null(strstr(text, "KEY2"));
	free(text);
	settings_free(set);

	assert_load_fails(NO_SSL "local_name {\n ssl_cert = a\n ssl_key = b\n}\n",
			  "t.conf:2: local_name section needs a host name");
	assert_load_fails(NO_SSL "local_name x {\n ssl_cert = a\n}\n",
			  "t.conf:2: local_name x needs both ssl_cert and ssl_key");
	assert_load_fails(NO_SSL "local_name x {\n ssl_cert = a\n listen = *\n}\n",
			  "t.conf:4: 'listen' is not supported inside local_name (only ssl_cert and ssl_key)");
	assert_load_fails(NO_SSL "local_name x {\n ssl_cert = a\n sub {\n }\n}\n",
			  "t.conf:4: unknown section type 'sub'");
}

/* several passdb/userdb blocks: a chain in file order, with Dovecot's
 * per-block fields; -n prints them back */
static void test_db_chain(void **state)
{
	(void)state;
	static const char conf[] =
		"ssl = no\n"
		"auth_master_user_separator = *\n"
		"passdb {\n  driver = passwd-file\n  args = /deny\n  deny = yes\n}\n"
		"passdb {\n  driver = passwd-file\n  args = /masters\n  master = yes\n"
		"  pass = yes\n}\n"
		"passdb {\n  driver = passwd-file\n  args = /users\n  name = local\n"
		"  result_failure = return-fail\n  mechanisms = plain login\n"
		"  username_filter = *@example.com !root@*\n  skip = authenticated\n}\n"
		"userdb {\n  driver = passwd-file\n  args = /users\n"
		"  default_fields = mail=maildir:~/M\n}\n";
	char *error = NULL;
	struct settings *set = settings_load_string("t.conf", conf, sizeof(conf) - 1, false, &error);
	if (set == NULL)
		fail_msg("%s", error);
	assert_string_equal(set->auth_master_user_separator, "*");
	const struct db_settings *db = &set->passdb;
	assert_true(db->deny);
	assert_false(db->master);
	assert_int_equal(db->line, 3);
	db = db->next;
	assert_non_null(db);
	assert_true(db->master && db->pass);
	db = db->next;
	assert_non_null(db);
	assert_string_equal(db->name, "local");
	assert_string_equal(db->result_failure, "return-fail");
	assert_string_equal(db->result_success, "");
	assert_string_equal(db->mechanisms, "plain login");
	assert_string_equal(db->username_filter, "*@example.com !root@*");
	assert_string_equal(db->skip, "authenticated");
	assert_null(db->next);
	assert_string_equal(set->userdb.default_fields, "mail=maildir:~/M");
	assert_null(set->userdb.next);

	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	settings_print(set, false, out);
	fclose(out);
	assert_non_null(strstr(text, "  deny = yes\n"));
	assert_non_null(strstr(text, "  username_filter = *@example.com !root@*\n"));
	assert_non_null(strstr(text, "  args = /masters\n  master = yes\n  pass = yes\n"));
	free(text);
	settings_free(set);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_db_chain),
		cmocka_unit_test(test_sample),
		cmocka_unit_test(test_resolution),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_variables),
		cmocka_unit_test(test_print_round_trip),
		cmocka_unit_test(test_print_output),
		cmocka_unit_test(test_curve_list),
		cmocka_unit_test(test_local_name),
		cmocka_unit_test(test_dovecot_accepted),
		cmocka_unit_test(test_include_try_named),
		cmocka_unit_test(test_mail_location),
		cmocka_unit_test(test_imap_max_line_length),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
