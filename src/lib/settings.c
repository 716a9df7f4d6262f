/* settings.c — config tree to struct settings, see settings.h.
 *
 * Global settings are one table (name, type, field, Dovecot's default as
 * config text), so applying, defaulting, $name lookups and printing share it.
 * Services start as the built-in five and the file's sections modify them;
 * zeros are resolved to the default_* values only after the whole file is
 * read, as Dovecot does, so the order of settings does not matter. */
#include "lib/settings.h"
#include "lib/var-expand.h"
#include "lib/settings-private.h"

#include "lib/alloc.h"
#include "lib/config.h"
#include "lib/dovecot-names.h"
#include "lib/log.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define G(name, type, def) { #name, type, offsetof(struct settings, name), 0, def }
#define PEM(name) { #name, ST_PEM, offsetof(struct settings, name), \
		offsetof(struct settings, name##_file), "" }

const struct set_def set_global_defs[] = {
	G(listen, ST_LISTEN, "*, ::"),
	G(base_dir, ST_ABSPATH, "/var/run/ringgate"),
	G(protocols, ST_PROTOCOLS, "imap pop3"),
	G(log_path, ST_STR, ""),
	G(log_timestamp, ST_STR, "%b %d %H:%M:%S "),
	G(info_log_path, ST_STR, ""),
	G(debug_log_path, ST_STR, ""),
	G(syslog_facility, ST_STR, "mail"),
	G(ssl, ST_SSL, "yes"),
	PEM(ssl_cert),
	PEM(ssl_key),
	PEM(ssl_ca),
	PEM(ssl_dh),
	G(ssl_min_protocol, ST_TLSVER, "TLSv1.2"),
	G(ssl_cipher_list, ST_STR,
	  "ALL:!kRSA:!SRP:!kDHd:!DSS:!aNULL:!eNULL:!EXPORT:!DES:!3DES:!MD5:!PSK:!RC4:!ADH:!LOW@STRENGTH"),
	G(ssl_prefer_server_ciphers, ST_BOOL, "no"),
	G(ssl_curve_list, ST_CURVES, ""),
	G(ssl_client_ca_file, ST_STR, ""),
	G(ssl_verify_client_cert, ST_BOOL, "no"),
	G(ssl_require_crl, ST_BOOL, "yes"),
	G(ssl_cert_username_field, ST_NONEMPTY, "commonName"),
	G(auth_ssl_require_client_cert, ST_BOOL, "no"),
	G(auth_ssl_username_from_cert, ST_BOOL, "no"),
	G(disable_plaintext_auth, ST_BOOL, "yes"),
	G(auth_mechanisms, ST_MECHS, "plain"),
	G(auth_failure_delay, ST_TIME, "2 secs"),
	G(login_greeting, ST_STR, "ringgate ready."),
	G(login_trusted_networks, ST_NETWORKS, ""),
	G(haproxy_trusted_networks, ST_NETWORKS, ""),
	G(haproxy_timeout, ST_TIME_POS, "3 secs"),
	G(login_timeout, ST_TIME_POS, "3 mins"),
	G(login_max_preauth_ip_connections, ST_UINT, "0"),
	G(login_template_forks, ST_UINT, "100"),
	G(worker_template_forks, ST_UINT, "100"),
	G(login_access_sockets, ST_SOCKNAMES, ""),
	G(login_access_timeout, ST_TIME_POS, "1 mins"),
	G(login_access_allow, ST_NETWORKS, ""),
	G(login_access_deny, ST_NETWORKS, ""),
	G(default_login_user, ST_NONEMPTY, "dovenull"),
	G(default_internal_user, ST_NONEMPTY, "dovecot"),
	G(default_process_limit, ST_UINT_POS, "100"),
	G(default_client_limit, ST_UINT_POS, "1000"),
	G(default_vsz_limit, ST_SIZE, "256M"),
	G(default_idle_kill, ST_TIME_POS, "1 mins"),
	G(first_valid_uid, ST_UINT, "500"),
	G(last_valid_uid, ST_UINT, "0"),
	G(first_valid_gid, ST_UINT, "1"),
	G(last_valid_gid, ST_UINT, "0"),
	G(mail_access_groups, ST_STR, ""),
	G(mail_privileged_group, ST_STR, ""),
	G(valid_chroot_dirs, ST_STR, ""),
	G(auth_master_user_separator, ST_STR, ""),
	G(auth_username_format, ST_STR, "%Lu"),
	G(auth_username_chars, ST_STR,
	  "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01234567890.-_@"),
	G(auth_username_translation, ST_STR, ""),
	G(auth_default_realm, ST_STR, ""),
	G(auth_realms, ST_STR, ""),
	G(auth_worker_max_count, ST_UINT_POS, "30"),
	G(auth_worker_request_timeout, ST_TIME_POS, "1 mins"),
	G(auth_cache_size, ST_SIZE, "0"),
	G(auth_cache_ttl, ST_TIME, "1 hours"),
	G(auth_cache_negative_ttl, ST_TIME, "1 hours"),
	G(auth_cache_verify_password_with_worker, ST_BOOL, "no"),
	G(mail_location, ST_STR, ""),
	G(imap_max_line_length, ST_SIZE, "64k"),
};
const size_t set_global_count = sizeof(set_global_defs) / sizeof(set_global_defs[0]);

#define S(name, type) { #name, type, offsetof(struct service_settings, name), 0, NULL }
const struct set_def set_service_defs[] = {
	S(service_count, ST_UINT),
	S(client_limit, ST_UINT),
	S(process_limit, ST_UINT),
	S(process_min_avail, ST_UINT),
	S(vsz_limit, ST_SIZE),
	S(idle_kill, ST_TIME),
};
const size_t set_service_count = sizeof(set_service_defs) / sizeof(set_service_defs[0]);

#define L(name, type) { #name, type, offsetof(struct listener_settings, name), 0, NULL }
const struct set_def set_listener_defs[] = {
	L(address, ST_LISTEN),
	L(port, ST_PORT),
	L(ssl, ST_BOOL),
	L(haproxy, ST_BOOL),
	L(reuse_port, ST_BOOL),
};
const size_t set_listener_count = sizeof(set_listener_defs) / sizeof(set_listener_defs[0]);

const struct builtin_service set_builtin_services[] = {
	/* login: service_count 1 is Dovecot's high-security default */
	{ "imap-login", "imap", 1, 0, 0, { { "imap", 143, false }, { "imaps", 993, true } } },
	{ "pop3-login", "pop3", 1, 0, 0, { { "pop3", 110, false }, { "pop3s", 995, true } } },
	/* workers: one session per process, as Dovecot */
	{ "imap", "imap", 1, 1, 1024, { { NULL, 0, false }, { NULL, 0, false } } },
	{ "pop3", "pop3", 1, 1, 1024, { { NULL, 0, false }, { NULL, 0, false } } },
	{ "auth", "", 0, 0, 1, { { NULL, 0, false }, { NULL, 0, false } } },
	/* metrics: served by master itself on `inet_listener http` (port 0 =
	   off), as Dovecot's `service stats { inet_listener http { } }` */
	{ "stats", "", 0, 0, 1, { { "http", 0, false }, { NULL, 0, false } } },
};
const size_t set_builtin_count = sizeof(set_builtin_services) / sizeof(set_builtin_services[0]);

bool settings_is_login_service(const char *name)
{
	size_t len = strlen(name);
	return len > 6 && strcmp(name + len - 6, "-login") == 0;
}

/* ---- loading ---- */

int set_load_error(struct loader *l, const struct config_node *node, const char *fmt, ...)
{
	char *msg;
	va_list args;

	if (l->error != NULL)
		return -1;
	va_start(args, fmt);
	if (vasprintf(&msg, fmt, args) < 0)
		msg = NULL;
	va_end(args);
	if (node != NULL)
		l->error = rg_strdup_printf("%s:%u: %s", node->file, node->line,
					    msg != NULL ? msg : "error");
	else
		l->error = rg_strdup_printf("%s: %s", l->set->config_path,
					    msg != NULL ? msg : "error");
	free(msg);
	return -1;
}

const struct set_def *set_find_def(const struct set_def *defs, size_t count, const char *key)
{
	for (size_t i = 0; i < count; i++) {
		if (strcmp(defs[i].key, key) == 0)
			return &defs[i];
	}
	return NULL;
}

int set_apply_node(struct loader *l, void *base, const struct set_def *defs, size_t count,
		   const struct config_node *node)
{
	const struct set_def *def = set_find_def(defs, count, node->key);
	const char *reason = "invalid";

	if (def == NULL)
		return set_load_error(l, node, "unknown setting '%s'", node->key);
	if (set_apply_value(base, def, node->value, node->value_file, &reason) < 0)
		return set_load_error(l, node, "invalid value for '%s': %s", node->key, reason);
	return 0;
}

/* `protocols`: imap and pop3 are served; another protocol Dovecot's
 * services serve (lmtp, submission) is named and left out, and so is a
 * word named twice (Debian's protocols.d appends to the default). Other
 * words stay for set_apply_value() to refuse. */
static int load_protocols(struct loader *l, const struct config_node *n)
{
	char **words;
	unsigned count = set_split_words(n->value, &words), kept = 0;
	int ret = 0;

	for (unsigned i = 0; i < count; i++) {
		bool dup = false;
		for (unsigned j = 0; j < kept; j++)
			dup = dup || strcasecmp(words[j], words[i]) == 0;
		if (dup)
			continue;
		if (strcasecmp(words[i], "imap") != 0 && strcasecmp(words[i], "pop3") != 0 &&
		    dovecot_protocol_known(words[i])) {
			set_ignore_node(l, n,
					"a Dovecot protocol ringgate does not serve: left out",
					"protocols: %s", words[i]);
			continue;
		}
		char *w = words[i];
		words[i] = words[kept];
		words[kept++] = w;
	}
	char *value = set_join_words(words, kept);
	set_free_words(words, count);
	const char *reason = "invalid";
	if (set_apply_value(l->set, set_find_def(set_global_defs, set_global_count, "protocols"),
			    value, NULL,
			    &reason) < 0)
		ret = set_load_error(l, n, "invalid value for 'protocols': %s", reason);
	rg_free(value);
	return ret;
}

static int load_root(struct loader *l, const struct config_node *root)
{
	for (const struct config_node *n = root->children; n != NULL; n = n->next) {
		int ret;

		if (n->type == CONFIG_NODE_SETTING) {
			const struct set_def *def = set_find_def(set_global_defs, set_global_count,
								 n->key);
			if (def == NULL && dovecot_setting_known("", n->key)) {
				set_ignore_node(l, n, NOTE_SETTING, "%s", n->key);
				continue;
			}
			if (def != NULL && strcmp(def->key, "protocols") == 0)
				ret = load_protocols(l, n);
			else
				ret = set_apply_node(l, l->set, set_global_defs, set_global_count,
						     n);
			if (ret == 0)
				l->global_nodes[def - set_global_defs] = n;
		} else if (strcmp(n->key, "service") == 0) {
			ret = set_load_service(l, n);
		} else if (strcmp(n->key, "passdb") == 0) {
			ret = set_load_db(l, n, &l->set->passdb);
		} else if (strcmp(n->key, "userdb") == 0) {
			ret = set_load_db(l, n, &l->set->userdb);
		} else if (strcmp(n->key, "protocol") == 0 || strcmp(n->key, "local") == 0 ||
			   strcmp(n->key, "remote") == 0) {
			ret = set_load_filter(l, n, NULL, 0);
		} else if (strcmp(n->key, "local_name") == 0) {
			ret = set_load_local_name(l, n);
		} else if (dovecot_section_known("", n->key)) {
			char path[64];
			snprintf(path, sizeof(path), "%s/", n->key);
			ret = set_ignore_section(l, n, path, NULL);
		} else {
			ret = set_load_error(l, n, "unknown section type '%s'", n->key);
		}
		if (ret < 0)
			return -1;
	}
	return 0;
}

struct settings *settings_new(const char *config_path)
{
	struct settings *set = rg_calloc(1, sizeof(*set));
	const char *reason = NULL;

	set->config_path = rg_strdup(config_path);
	for (size_t i = 0; i < set_global_count; i++) {
		if (set_apply_value(set, &set_global_defs[i], set_global_defs[i].def, NULL,
				    &reason) < 0)
			abort(); /* the defaults table is wrong */
	}
	set_db_init(&set->passdb);
	set_db_init(&set->userdb);
	set->service_count = set_builtin_count;
	set->services = rg_calloc(set_builtin_count, sizeof(*set->services));
	for (size_t i = 0; i < set_builtin_count; i++) {
		const struct builtin_service *b = &set_builtin_services[i];
		struct service_settings *svc = &set->services[i];

		svc->name = rg_strdup(b->name);
		svc->protocol = rg_strdup(b->protocol);
		svc->service_count = b->service_count;
		svc->client_limit = b->client_limit;
		svc->process_limit = b->process_limit;
		svc->vsz_limit = VSZ_UNSET;
		for (size_t j = 0; j < 2 && b->listeners[j].name != NULL; j++) {
			svc->listeners = rg_realloc(svc->listeners,
						    (j + 1) * sizeof(*svc->listeners));
			set_listener_init(&svc->listeners[j], b->listeners[j].name,
					  b->listeners[j].port, b->listeners[j].ssl);
			svc->listener_count++;
		}
	}
	return set;
}

char *set_listen_addresses(const struct settings *set)
{
	char **words;
	unsigned count = set_split_words(set->listen, &words);
	char *out = set_join_words(words, count);

	set_free_words(words, count);
	return out;
}

static void resolve(struct settings *set)
{
	for (unsigned i = 0; i < set->service_count; i++) {
		struct service_settings *svc = &set->services[i];

		if (svc->client_limit == 0)
			svc->client_limit = set->default_client_limit;
		if (svc->process_limit == 0)
			svc->process_limit = set->default_process_limit;
		if (svc->vsz_limit == VSZ_UNSET)
			svc->vsz_limit = set->default_vsz_limit;
		if (svc->idle_kill == 0)
			svc->idle_kill = set->default_idle_kill;
		for (unsigned j = 0; j < svc->listener_count; j++) {
			if (svc->listeners[j].address == NULL)
				svc->listeners[j].address = set_listen_addresses(set);
		}
	}
}

static size_t global_index(const char *key)
{
	return (size_t)(set_find_def(set_global_defs, set_global_count, key) - set_global_defs);
}

static int check(struct loader *l)
{
	struct settings *set = l->set;

	if (log_facility_parse(set->syslog_facility) < 0)
		return set_load_error(l, l->global_nodes[global_index("syslog_facility")],
				      "syslog_facility: unknown facility '%s' (mail, auth, authpriv, "
				      "daemon, user, local0..local7, ...)",
				      set->syslog_facility);

	if (set->last_valid_uid != 0 && set->last_valid_uid < set->first_valid_uid) {
		const struct config_node *n = l->global_nodes[global_index("last_valid_uid")];
		if (n == NULL)
			n = l->global_nodes[global_index("first_valid_uid")];
		return set_load_error(l, n, "first_valid_uid is greater than last_valid_uid");
	}
	/* imap_max_line_length: a line must hold an ordinary command, and one
	 * worker's line buffer stays within its address space limit */
	if (set->imap_max_line_length < 1024 || set->imap_max_line_length > 64 * 1024 * 1024)
		return set_load_error(l, l->global_nodes[global_index("imap_max_line_length")],
				      "imap_max_line_length must be between 1k and 64M");
	/* a template's layout is known to every child it forks: bounded, so a
	 * crashing child cannot be retried against one layout for long */
	if (set->login_template_forks > 100)
		return set_load_error(l, l->global_nodes[global_index("login_template_forks")],
				      "login_template_forks must be at most 100");
	if (set->worker_template_forks > 100)
		return set_load_error(l, l->global_nodes[global_index("worker_template_forks")],
				      "worker_template_forks must be at most 100");
	if (strlen(set->auth_username_translation) % 2 != 0)
		return set_load_error(l, l->global_nodes[global_index("auth_username_translation")],
				      "auth_username_translation must be pairs of characters");
	{
		/* the template is checked once here, not at every login */
		static const struct var_expand_entry vars[] = {
			{ 'u', "user", "u@d" }, { 'n', "username", "u" }, { 'd', "domain", "d" },
			{ 's', "service", "imap" }, { 'l', "lip", "" }, { 'r', "rip", "" },
			{ 0, NULL, NULL },
		};
		char *out = NULL, *err = NULL;
		if (var_expand(set->auth_username_format, vars, NULL, NULL, &out, &err) < 0) {
			int ret = set_load_error(l,
						 l->global_nodes[global_index("auth_username_format")],
						 "invalid value for 'auth_username_format': %s", err);
			rg_free(err);
			return ret;
		}
		rg_free(out);
	}
	/* the CIDR lists belong to the built-in checker: set without it, they
	   would protect nothing */
	if ((set->login_access_allow[0] != '\0' || set->login_access_deny[0] != '\0') &&
	    !settings_access_builtin(set)) {
		const char *key = set->login_access_allow[0] != '\0' ? "login_access_allow"
								     : "login_access_deny";
		return set_load_error(l, l->global_nodes[global_index(key)],
				      "%s is set, but login_access_sockets does not name the built-in "
				      "checker '" SETTINGS_ACCESS_BUILTIN "'", key);
	}
	if (set->ssl != SSL_NO && set->protocols[0] != '\0') {
		const struct config_node *n = l->global_nodes[global_index("ssl")];
		if (set->ssl_cert[0] == '\0')
			return set_load_error(l, n, "ssl enabled, but ssl_cert not set");
		if (set->ssl_key[0] == '\0')
			return set_load_error(l, n, "ssl enabled, but ssl_key not set");
		/* Dovecot's own check and words */
		if (set->ssl_verify_client_cert && set->ssl_ca[0] == '\0')
			return set_load_error(l,
					      l->global_nodes[global_index("ssl_verify_client_cert")],
					      "ssl_verify_client_cert set, but ssl_ca not");
	}
	return 0;
}

/* `$name` before the file sets name: the default. `$protocols` is
 * Dovecot's (Debian 2.3's: empty), not ringgate's `imap pop3`, so that
 * Debian's protocols.d files (`protocols = $protocols imap`) enable exactly
 * the protocols whose packages are installed. */
static const char *default_value(const char *name, void *context)
{
	const struct set_def *def = set_find_def(set_global_defs, set_global_count, name);

	(void)context;
	if (def != NULL && strcmp(def->key, "protocols") == 0) {
		const struct dovecot_name *dn = dovecot_name_find("protocols");
		if (dn != NULL && dn->def != NULL)
			return dn->def;
	}
	return def != NULL ? def->def : NULL;
}

/* mail_location must name a storage the workers serve: Maildir (a path, or
 * maildir:) or mbox: (Debian's default). */
static int check_mail_location(struct loader *l)
{
	const char *loc = l->set->mail_location;
	const char *colon = strchr(loc, ':'), *slash = strchr(loc, '/');
	const struct config_node *n = l->global_nodes[global_index("mail_location")];

	if (n == NULL || colon == NULL || (slash != NULL && slash < colon) || loc[0] == '~')
		return 0;
	size_t len = (size_t)(colon - loc);
	if (len == 7 && strncasecmp(loc, "maildir", 7) == 0)
		return 0;
	if (len == 4 && strncasecmp(loc, "mbox", 4) == 0)
		return 0;
	return set_load_error(l, n, "invalid value for 'mail_location': %.*s is not supported "
			      "(Maildir or mbox)", (int)(len < 32 ? len : 32), loc);
}

/* what settings_load() hands the parser: where a skipped !include_try goes */
struct load_context {
	struct settings *set;
	unsigned ignored_cap;
};

static void include_skipped(const char *file, unsigned line, const char *path, void *context)
{
	struct load_context *ctx = context;

	set_ignore_add(ctx->set, &ctx->ignored_cap, file, line,
		       rg_strdup_printf("!include_try %s", path), "no such file: skipped");
}

static struct settings *load_finish(struct config_node *root, int ret, char *parse_error,
				    struct load_context *ctx, char **error_r)
{
	struct loader l;

	if (ret < 0) {
		settings_free(ctx->set);
		*error_r = parse_error;
		return NULL;
	}
	memset(&l, 0, sizeof(l));
	l.set = ctx->set;
	l.global_nodes = rg_calloc(set_global_count, sizeof(*l.global_nodes));
	l.imap_nodes = rg_calloc(set_global_count, sizeof(*l.imap_nodes));
	l.ignored_cap = ctx->ignored_cap;
	int root_ret = load_root(&l, root);
	for (size_t i = 0; i < set_global_count && root_ret == 0; i++) {
		if (l.imap_nodes[i] != NULL &&
		    (root_ret = set_apply_node(&l, l.set, set_global_defs, set_global_count,
					       l.imap_nodes[i])) == 0)
			l.global_nodes[i] = l.imap_nodes[i];
	}
	if (root_ret == 0) {
		resolve(l.set);
		if (check(&l) == 0)
			(void)check_mail_location(&l);
	}
	config_free(root);
	rg_free(l.global_nodes);
	rg_free(l.imap_nodes);
	if (l.error != NULL) {
		settings_free(l.set);
		*error_r = l.error;
		return NULL;
	}
	*error_r = NULL;
	return l.set;
}

struct settings *settings_load(const char *path, char **error_r)
{
	struct load_context ctx = { 0 };
	struct config_params params = {
		.default_value = default_value,
		.include_skipped = include_skipped,
		.context = &ctx,
	};
	struct config_node *root;
	char *error, *abs;
	int ret;

	abs = realpath(path, NULL);
	ctx.set = settings_new(abs != NULL ? abs : path);
	free(abs);
	ret = config_parse_file(path, &params, &root, &error);
	return load_finish(root, ret, error, &ctx, error_r);
}

struct settings *settings_load_string(const char *name, const char *text, size_t len,
				      bool allow_files, char **error_r)
{
	struct load_context ctx = { .set = settings_new(name) };
	struct config_params params = {
		.flags = allow_files ? 0 : CONFIG_FLAG_NO_FILES,
		.default_value = default_value,
		.include_skipped = include_skipped,
		.context = &ctx,
	};
	struct config_node *root;
	char *error;
	int ret;

	ret = config_parse_string(name, text, len, &params, &root, &error);
	return load_finish(root, ret, error, &ctx, error_r);
}

void settings_free(struct settings *set)
{
	if (set == NULL)
		return;
	set_free_strings(set, set_global_defs, set_global_count);
	for (unsigned i = 0; i < set->service_count; i++) {
		struct service_settings *svc = &set->services[i];

		for (unsigned j = 0; j < svc->listener_count; j++) {
			rg_free(svc->listeners[j].name);
			rg_free(svc->listeners[j].address);
		}
		rg_free(svc->listeners);
		rg_free(svc->name);
		rg_free(svc->protocol);
	}
	rg_free(set->services);
	for (unsigned i = 0; i < set->local_name_count; i++) {
		set_free_strings(&set->local_names[i], set_local_name_defs, set_local_name_count);
		rg_free(set->local_names[i].names);
		rg_free(set->local_names[i].file);
	}
	rg_free(set->local_names);
	for (struct db_settings *db = &set->passdb, *next; db != NULL; db = next) {
		next = db->next;
		set_db_free(db);
		if (db != &set->passdb)
			rg_free(db);
	}
	for (struct db_settings *db = &set->userdb, *next; db != NULL; db = next) {
		next = db->next;
		set_db_free(db);
		if (db != &set->userdb)
			rg_free(db);
	}
	for (unsigned i = 0; i < set->ignored_count; i++) {
		rg_free(set->ignored[i].name);
		rg_free(set->ignored[i].note);
		rg_free(set->ignored[i].file);
	}
	rg_free(set->ignored);
	rg_free(set->config_path);
	rg_free(set);
}

void settings_log_ignored(const struct settings *set)
{
	for (unsigned i = 0; i < set->ignored_count; i++) {
		const struct settings_ignored *ig = &set->ignored[i];
		log_info("%s:%u: %s: %s", ig->file, ig->line, ig->name, ig->note);
	}
}

static void forget(char **field)
{
	explicit_bzero(*field, strlen(*field));
	rg_free(*field);
	*field = rg_strdup("");
}

void settings_forget_pem(struct settings *set)
{
	forget(&set->ssl_cert);
	forget(&set->ssl_key);
	forget(&set->ssl_ca);
	forget(&set->ssl_dh);
	for (unsigned i = 0; i < set->local_name_count; i++) {
		struct local_name_settings *ln = &set->local_names[i];
		explicit_bzero(ln->ssl_cert, strlen(ln->ssl_cert));
		explicit_bzero(ln->ssl_key, strlen(ln->ssl_key));
		set_free_strings(ln, set_local_name_defs, set_local_name_count);
		rg_free(ln->names);
		rg_free(ln->file);
	}
	rg_free(set->local_names);
	set->local_names = NULL;
	set->local_name_count = 0;
}

const struct service_settings *settings_service(const struct settings *set, const char *name)
{
	return set_find_service((struct settings *)set, name);
}

bool settings_access_builtin(const struct settings *set)
{
	char **words;
	unsigned count = set_split_words(set->login_access_sockets, &words);
	bool found = false;
	for (unsigned i = 0; i < count; i++)
		found = found || strcmp(words[i], SETTINGS_ACCESS_BUILTIN) == 0;
	set_free_words(words, count);
	return found;
}

bool settings_protocol_enabled(const struct settings *set, const char *protocol)
{
	char **words;
	unsigned count = set_split_words(set->protocols, &words);
	bool found = false;

	for (unsigned i = 0; i < count && !found; i++)
		found = strcasecmp(words[i], protocol) == 0;
	set_free_words(words, count);
	return found;
}

