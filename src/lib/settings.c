/* settings.c — config tree to struct settings, see settings.h.
 *
 * Global settings are one table (name, type, field, Dovecot's default as
 * config text), so applying, defaulting, $name lookups and printing share it.
 * Services start as the built-in five and the file's sections modify them;
 * zeros are resolved to the default_* values only after the whole file is
 * read, as Dovecot does, so the order of settings does not matter. */
#include "lib/settings.h"
#include "lib/var-expand.h"

#include "lib/alloc.h"
#include "lib/config.h"
#include "lib/dovecot-names.h"
#include "lib/log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* vsz_limit not set in the service: take default_vsz_limit (Dovecot's
   2^64-1 default means the same) */
#define VSZ_UNSET UINT64_MAX

enum set_type {
	ST_STR,       /* any single-line string */
	ST_NONEMPTY,  /* single-line, not empty */
	ST_ABSPATH,   /* absolute path */
	ST_PEM,       /* multi-line allowed, remembers its <file */
	ST_BOOL,
	ST_UINT,
	ST_UINT_POS,  /* > 0 */
	ST_PORT,
	ST_SIZE,
	ST_TIME,
	ST_TIME_POS,  /* > 0 */
	ST_SSL,
	ST_LISTEN,    /* addresses, comma and/or space separated */
	ST_PROTOCOLS,
	ST_MECHS,
	ST_NETWORKS,
	ST_TLSVER,
	ST_CURVES,    /* ssl_curve_list: colon-separated, canonical names kept */
	ST_SOCKNAMES, /* login_access_sockets: socket names under base_dir/login */
};

struct set_def {
	const char *key;
	enum set_type type;
	size_t offset;
	size_t file_offset; /* ST_PEM: where the <file path goes */
	const char *def;    /* default, as config text */
};

#define G(name, type, def) { #name, type, offsetof(struct settings, name), 0, def }
#define PEM(name) { #name, ST_PEM, offsetof(struct settings, name), \
		offsetof(struct settings, name##_file), "" }

static const struct set_def global_defs[] = {
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
#define GLOBAL_COUNT (sizeof(global_defs) / sizeof(global_defs[0]))

#define S(name, type) { #name, type, offsetof(struct service_settings, name), 0, NULL }
static const struct set_def service_defs[] = {
	S(service_count, ST_UINT),
	S(client_limit, ST_UINT),
	S(process_limit, ST_UINT),
	S(process_min_avail, ST_UINT),
	S(vsz_limit, ST_SIZE),
	S(idle_kill, ST_TIME),
};

#define L(name, type) { #name, type, offsetof(struct listener_settings, name), 0, NULL }
static const struct set_def listener_defs[] = {
	L(address, ST_LISTEN),
	L(port, ST_PORT),
	L(ssl, ST_BOOL),
	L(haproxy, ST_BOOL),
	L(reuse_port, ST_BOOL),
};

struct builtin_listener {
	const char *name;
	unsigned port;
	bool ssl;
};

static const struct builtin_service {
	const char *name, *protocol;
	unsigned service_count, client_limit, process_limit;
	struct builtin_listener listeners[2];
} builtin_services[] = {
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
#define BUILTIN_COUNT (sizeof(builtin_services) / sizeof(builtin_services[0]))

bool settings_is_login_service(const char *name)
{
	size_t len = strlen(name);
	return len > 6 && strcmp(name + len - 6, "-login") == 0;
}

/* ---- value parsing ---- */

static char **field_str(void *base, size_t offset)
{
	return (char **)((char *)base + offset);
}

static bool has_line_break(const char *s)
{
	return strpbrk(s, "\r\n") != NULL;
}

/* split on commas and whitespace into a fresh array of words */
static unsigned split_words(const char *s, char ***words_r)
{
	char **words = NULL;
	unsigned count = 0, cap = 0;

	while (*s != '\0') {
		while (*s == ',' || isspace((unsigned char)*s))
			s++;
		if (*s == '\0')
			break;
		const char *start = s;
		while (*s != '\0' && *s != ',' && !isspace((unsigned char)*s))
			s++;
		/* grow by doubling: a realloc per word made a long listen value
		   quadratic under ASan (fuzz_config: 26 ms for a 1.8 KB file) */
		if (count == cap) {
			cap = cap == 0 ? 8 : cap * 2;
			words = rg_realloc(words, cap * sizeof(*words));
		}
		words[count++] = rg_strndup(start, (size_t)(s - start));
	}
	*words_r = words;
	return count;
}

static void free_words(char **words, unsigned count)
{
	for (unsigned i = 0; i < count; i++)
		rg_free(words[i]);
	rg_free(words);
}

static char *join_words(char **words, unsigned count)
{
	size_t len = 1;
	char *out;

	for (unsigned i = 0; i < count; i++)
		len += strlen(words[i]) + 1;
	out = rg_malloc(len);
	out[0] = '\0';
	for (unsigned i = 0; i < count; i++) {
		if (i > 0)
			strcat(out, " ");
		strcat(out, words[i]);
	}
	return out;
}

static bool valid_network(const char *word)
{
	char addr[INET6_ADDRSTRLEN + 1];
	unsigned char buf[sizeof(struct in6_addr)];
	const char *slash = strchr(word, '/');
	size_t len = slash != NULL ? (size_t)(slash - word) : strlen(word);
	unsigned bits, max;
	const char *error;

	if (len == 0 || len >= sizeof(addr))
		return false;
	memcpy(addr, word, len);
	addr[len] = '\0';
	if (inet_pton(AF_INET, addr, buf) == 1)
		max = 32;
	else if (inet_pton(AF_INET6, addr, buf) == 1)
		max = 128;
	else
		return false;
	if (slash == NULL)
		return true;
	return config_parse_uint(slash + 1, &bits, &error) == 0 && bits <= max;
}

/* Normalise a word list, checking each word with allowed (NULL: any).
   lower folds case. "none" alone means the empty list when none_ok. */
static int parse_word_list(const char *value, const char *const *allowed, bool lower,
			   bool none_ok, bool (*check)(const char *), char **out_r,
			   const char **reason_r)
{
	char **words;
	unsigned count = split_words(value, &words);

	if (none_ok && count == 1 && strcasecmp(words[0], "none") == 0) {
		free_words(words, count);
		*out_r = rg_strdup("");
		return 0;
	}
	for (unsigned i = 0; i < count; i++) {
		if (lower) {
			for (char *c = words[i]; *c != '\0'; c++)
				*c = (char)tolower((unsigned char)*c);
		}
		if (check != NULL && !check(words[i])) {
			free_words(words, count);
			*reason_r = "not an IP address or network (addr/bits)";
			return -1;
		}
		if (allowed != NULL) {
			unsigned j;
			for (j = 0; allowed[j] != NULL; j++) {
				if (strcmp(words[i], allowed[j]) == 0)
					break;
			}
			if (allowed[j] == NULL) {
				free_words(words, count);
				*reason_r = NULL; /* caller words it */
				return -1;
			}
		}
	}
	*out_r = join_words(words, count);
	free_words(words, count);
	return 0;
}

/* ssl_curve_list names: the names OpenSSL (so Dovecot) accepts for the
   groups wolfSSL offers, each mapped to the one name stored and printed */
static const struct {
	const char *name, *canonical;
} curve_names[] = {
	{ "X25519", "X25519" },	      { "X448", "X448" },	   { "P-256", "P-256" },
	{ "prime256v1", "P-256" },    { "secp256r1", "P-256" },	   { "P-384", "P-384" },
	{ "secp384r1", "P-384" },     { "P-521", "P-521" },	   { "secp521r1", "P-521" },
	{ "ffdhe2048", "ffdhe2048" }, { "ffdhe3072", "ffdhe3072" },
};
#define CURVE_NAMES_COUNT (sizeof(curve_names) / sizeof(curve_names[0]))

/* "X25519:prime256v1" -> "X25519:P-256"; "" stays "" (the built-in order) */
static int parse_curves(const char *value, char **out_r, const char **reason_r)
{
	static char reason[160];
	const char *canon[CURVE_NAMES_COUNT];
	unsigned count = 0;
	const char *p = value;

	while (isspace((unsigned char)*p))
		p++;
	if (*p == '\0') {
		*out_r = rg_strdup("");
		return 0;
	}
	for (;;) {
		const char *end = strchr(p, ':');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
		while (len > 0 && isspace((unsigned char)*p)) {
			p++;
			len--;
		}
		while (len > 0 && isspace((unsigned char)p[len - 1]))
			len--;
		const char *found = NULL;
		for (unsigned i = 0; i < CURVE_NAMES_COUNT && found == NULL; i++) {
			if (strlen(curve_names[i].name) == len &&
			    strncasecmp(p, curve_names[i].name, len) == 0)
				found = curve_names[i].canonical;
		}
		if (found == NULL) {
			snprintf(reason, sizeof(reason),
				 "unknown curve '%.*s' (known: X25519 X448 P-256 P-384 P-521 "
				 "ffdhe2048 ffdhe3072, or OpenSSL's names)",
				 (int)(len < 40 ? len : 40), p);
			*reason_r = reason;
			return -1;
		}
		for (unsigned i = 0; i < count; i++) {
			if (canon[i] == found) {
				snprintf(reason, sizeof(reason), "curve %s named twice", found);
				*reason_r = reason;
				return -1;
			}
		}
		canon[count++] = found;
		if (end == NULL)
			break;
		p = end + 1;
	}
	bool any_ec = false;
	for (unsigned i = 0; i < count; i++)
		any_ec = any_ec || strncmp(canon[i], "ffdhe", 5) != 0;
	if (!any_ec) {
		*reason_r = "must name at least one elliptic curve (X25519 X448 P-256 P-384 P-521)";
		return -1;
	}
	size_t total = 1;
	for (unsigned i = 0; i < count; i++)
		total += strlen(canon[i]) + 1;
	char *out = rg_malloc(total);
	out[0] = '\0';
	for (unsigned i = 0; i < count; i++) {
		if (i > 0)
			strcat(out, ":");
		strcat(out, canon[i]);
	}
	*out_r = out;
	return 0;
}

/* a login_access_sockets name: a file name under base_dir/login, short
   enough for sockaddr_un wherever base_dir is */
static bool valid_socket_name(const char *word)
{
	size_t n = strlen(word);
	if (n == 0 || n > 32 || strcmp(word, ".") == 0 || strcmp(word, "..") == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!isalnum((unsigned char)word[i]) && strchr("_.-", word[i]) == NULL)
			return false;
	}
	return true;
}

static const char *const protocol_names[] = { "imap", "pop3", NULL };
/* Dovecot's names for what auth serves (auth-sasl.h); the -PLUS ones are
   Dovecot 2.4's */
static const char *const mech_names[] = { "plain",
					  "login",
					  "scram-sha-256",
					  "scram-sha-1",
					  "scram-sha-256-plus",
					  "scram-sha-1-plus",
					  "cram-md5",
					  "apop",
					  "oauthbearer",
					  "xoauth2",
					  "external",
					  NULL };

/* Apply value to the field def describes in base; on failure *reason_r is
   static text saying why. */
static int apply_value(void *base, const struct set_def *def, const char *value,
		       const char *value_file, const char **reason_r)
{
	void *field = (char *)base + def->offset;
	char *str = NULL;
	uint64_t u64;
	unsigned u;
	bool b;

	switch (def->type) {
	case ST_STR:
	case ST_NONEMPTY:
	case ST_ABSPATH:
		if (has_line_break(value)) {
			*reason_r = "must not contain a line break";
			return -1;
		}
		if (def->type == ST_NONEMPTY && value[0] == '\0') {
			*reason_r = "must not be empty";
			return -1;
		}
		if (def->type == ST_ABSPATH && value[0] != '/') {
			*reason_r = "must be an absolute path";
			return -1;
		}
		str = rg_strdup(value);
		break;
	case ST_PEM:
		str = rg_strdup(value);
		rg_free(*field_str(base, def->file_offset));
		*field_str(base, def->file_offset) = rg_strdup(value_file != NULL ? value_file : "");
		break;
	case ST_BOOL:
		if (config_parse_bool(value, &b, reason_r) < 0)
			return -1;
		*(bool *)field = b;
		return 0;
	case ST_UINT:
	case ST_UINT_POS:
	case ST_PORT:
		if (config_parse_uint(value, &u, reason_r) < 0)
			return -1;
		if (def->type == ST_UINT_POS && u == 0) {
			*reason_r = "must be greater than 0";
			return -1;
		}
		if (def->type == ST_PORT && u > 65535) {
			*reason_r = "port must be 0..65535";
			return -1;
		}
		*(unsigned *)field = u;
		return 0;
	case ST_SIZE:
		if (config_parse_size(value, &u64, reason_r) < 0)
			return -1;
		*(uint64_t *)field = u64;
		return 0;
	case ST_TIME:
	case ST_TIME_POS:
		if (config_parse_time(value, &u, reason_r) < 0)
			return -1;
		if (def->type == ST_TIME_POS && u == 0) {
			*reason_r = "must be greater than 0";
			return -1;
		}
		*(unsigned *)field = u;
		return 0;
	case ST_SSL:
		if (strcasecmp(value, "no") == 0)
			*(enum ssl_mode *)field = SSL_NO;
		else if (strcasecmp(value, "yes") == 0)
			*(enum ssl_mode *)field = SSL_YES;
		else if (strcasecmp(value, "required") == 0)
			*(enum ssl_mode *)field = SSL_REQUIRED;
		else {
			*reason_r = "must be 'yes', 'no' or 'required'";
			return -1;
		}
		return 0;
	case ST_LISTEN:
		if (has_line_break(value)) {
			*reason_r = "must not contain a line break";
			return -1;
		}
		if (def == &listener_defs[0]) {
			/* listener addresses are kept space-separated */
			if (parse_word_list(value, NULL, false, false, NULL, &str, reason_r) < 0)
				return -1;
		} else {
			str = rg_strdup(value);
		}
		break;
	case ST_PROTOCOLS:
		if (parse_word_list(value, protocol_names, true, true, NULL, &str, reason_r) < 0) {
			*reason_r = "protocols must be imap, pop3 or none";
			return -1;
		}
		break;
	case ST_MECHS:
		if (parse_word_list(value, mech_names, true, false, NULL, &str, reason_r) < 0) {
			*reason_r = "supported mechanisms are plain, login, scram-sha-256, "
				    "scram-sha-1, cram-md5, apop, oauthbearer and xoauth2";
			return -1;
		}
		if (str[0] == '\0') {
			rg_free(str);
			*reason_r = "must not be empty";
			return -1;
		}
		break;
	case ST_NETWORKS:
		if (parse_word_list(value, NULL, false, false, valid_network, &str, reason_r) < 0)
			return -1;
		break;
	case ST_TLSVER:
		if (strcasecmp(value, "TLSv1.2") == 0)
			str = rg_strdup("TLSv1.2");
		else if (strcasecmp(value, "TLSv1.3") == 0)
			str = rg_strdup("TLSv1.3");
		else {
			*reason_r = "must be TLSv1.2 or TLSv1.3";
			return -1;
		}
		break;
	case ST_CURVES:
		if (parse_curves(value, &str, reason_r) < 0)
			return -1;
		break;
	case ST_SOCKNAMES:
		if (parse_word_list(value, NULL, false, false, valid_socket_name, &str, reason_r) < 0) {
			*reason_r = "socket names are 1-32 of A-Z a-z 0-9 _ . - (files in base_dir/login)";
			return -1;
		}
		break;
	}
	rg_free(*(char **)field);
	*(char **)field = str;
	return 0;
}

/* ---- loading ---- */

struct loader {
	struct settings *set;
	char *error;
	const struct config_node *global_nodes[GLOBAL_COUNT];
	/* imap_* settings inside a top-level `protocol imap { }`: they
	 * concern IMAP alone, so they win over the global value */
	const struct config_node *imap_nodes[GLOBAL_COUNT];
	unsigned ignored_cap;
};

static int load_error(struct loader *l, const struct config_node *node, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int load_error(struct loader *l, const struct config_node *node, const char *fmt, ...)
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

static const struct set_def *find_def(const struct set_def *defs, size_t count, const char *key)
{
	for (size_t i = 0; i < count; i++) {
		if (strcmp(defs[i].key, key) == 0)
			return &defs[i];
	}
	return NULL;
}

/* ---- what Dovecot knows and ringgate does not use ---- */

#define NOTE_SETTING "a Dovecot setting ringgate does not use: ignored"
#define NOTE_SECTION "a Dovecot section ringgate does not use: ignored"
#define NOTE_DEFAULT "Dovecot's default, which is what ringgate does: ignored"

/* Record name (allocated, taken) once, at its first place. */
static void ignore_add(struct settings *set, unsigned *cap, const char *file, unsigned line,
		       char *name, const char *note)
{
	for (unsigned i = 0; i < set->ignored_count; i++) {
		if (strcmp(set->ignored[i].name, name) == 0) {
			rg_free(name);
			return;
		}
	}
	if (set->ignored_count == *cap) {
		*cap = *cap == 0 ? 16 : *cap * 2;
		set->ignored = rg_realloc(set->ignored, *cap * sizeof(*set->ignored));
	}
	struct settings_ignored *ig = &set->ignored[set->ignored_count++];
	ig->name = name;
	ig->note = rg_strdup(note);
	ig->file = rg_strdup(file);
	ig->line = line;
}

static void ignore_node(struct loader *l, const struct config_node *n, const char *note,
			const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void ignore_node(struct loader *l, const struct config_node *n, const char *note,
			const char *fmt, ...)
{
	char *name;
	va_list args;

	va_start(args, fmt);
	if (vasprintf(&name, fmt, args) < 0)
		name = NULL;
	va_end(args);
	ignore_add(l->set, &l->ignored_cap, n->file, n->line,
		   rg_strdup(name != NULL ? name : n->key), note);
	free(name);
}

/* "namespace inbox", "dict": a section's type and name, for messages */
static char *section_label(const struct config_node *sec)
{
	if (sec->value[0] == '\0')
		return rg_strdup(sec->key);
	return rg_strdup_printf(strpbrk(sec->value, " \t") != NULL ? "%s \"%s\"" : "%s %s",
				sec->key, sec->value);
}

/* The contents of a section ringgate sets aside: each name must still be
 * one Dovecot knows, so a typo stops start-up there as anywhere else. path
 * is the section's path in dovecot-names.h ("namespace/"), "" for a
 * filter's contents (global settings and sections). */
static int check_dovecot_section(struct loader *l, const struct config_node *sec, const char *path)
{
	for (const struct config_node *n = sec->children; n != NULL; n = n->next) {
		char sub[128];
		int len;

		if (n->type == CONFIG_NODE_SETTING) {
			if (dovecot_setting_known(path, n->key) ||
			    (path[0] == '\0' && find_def(global_defs, GLOBAL_COUNT, n->key) != NULL))
				continue;
			return load_error(l, n, "unknown setting '%s'", n->key);
		}
		if (path[0] == '\0' && dovecot_filter_known(n->key))
			len = snprintf(sub, sizeof(sub), "%s", "");
		else if (dovecot_section_known(path, n->key))
			len = snprintf(sub, sizeof(sub), "%s%s/", path, n->key);
		else
			len = -1;
		if (len < 0 || (size_t)len >= sizeof(sub))
			return load_error(l, n, "unknown section type '%s'", n->key);
		if (check_dovecot_section(l, n, sub) < 0)
			return -1;
	}
	return 0;
}

/* A section ringgate does not use (dict, plugin, namespace, metric, a
 * service or protocol that is not ringgate's, a unix_listener): checked,
 * then named, inside outer ("service auth") when it is not at the top. */
static int ignore_section(struct loader *l, const struct config_node *sec, const char *path,
			  const char *outer)
{
	if (check_dovecot_section(l, sec, path) < 0)
		return -1;
	char *label = section_label(sec);
	if (outer == NULL)
		ignore_node(l, sec, NOTE_SECTION, "%s { }", label);
	else
		ignore_node(l, sec, NOTE_SECTION, "%s { %s { } }", outer, label);
	rg_free(label);
	return 0;
}

static int apply_node(struct loader *l, void *base, const struct set_def *defs, size_t count,
		      const struct config_node *node)
{
	const struct set_def *def = find_def(defs, count, node->key);
	const char *reason = "invalid";

	if (def == NULL)
		return load_error(l, node, "unknown setting '%s'", node->key);
	if (apply_value(base, def, node->value, node->value_file, &reason) < 0)
		return load_error(l, node, "invalid value for '%s': %s", node->key, reason);
	return 0;
}

static void listener_init(struct listener_settings *ls, const char *name, unsigned port, bool ssl)
{
	memset(ls, 0, sizeof(*ls));
	ls->name = rg_strdup(name);
	ls->port = port;
	ls->ssl = ssl;
	/* address stays NULL until resolved to `listen` */
}

static bool valid_listener_name(const char *name)
{
	if (name[0] == '\0')
		return false;
	for (; *name != '\0'; name++) {
		if (!isalnum((unsigned char)*name) && strchr("_.-", *name) == NULL)
			return false;
	}
	return true;
}

static int load_listener(struct loader *l, struct service_settings *svc,
			 const struct config_node *sec)
{
	struct listener_settings *ls = NULL;

	if (!settings_is_login_service(svc->name) && strcmp(svc->name, "stats") != 0)
		return load_error(l, sec, "service '%s' cannot have an inet_listener", svc->name);
	if (sec->value[0] == '\0')
		return load_error(l, sec, "inet_listener section needs a name");
	if (!valid_listener_name(sec->value))
		return load_error(l, sec, "invalid inet_listener name '%s'", sec->value);
	for (unsigned i = 0; i < svc->listener_count; i++) {
		if (strcmp(svc->listeners[i].name, sec->value) == 0)
			ls = &svc->listeners[i];
	}
	if (ls == NULL) {
		svc->listeners = rg_realloc(svc->listeners,
					    (svc->listener_count + 1) * sizeof(*svc->listeners));
		ls = &svc->listeners[svc->listener_count++];
		listener_init(ls, sec->value, 0, false);
	}
	for (const struct config_node *n = sec->children; n != NULL; n = n->next) {
		if (n->type == CONFIG_NODE_SECTION)
			return load_error(l, n, "unknown section type '%s'", n->key);
		if (apply_node(l, ls, listener_defs, sizeof(listener_defs) / sizeof(listener_defs[0]), n) < 0)
			return -1;
	}
	return 0;
}

static struct service_settings *find_service(struct settings *set, const char *name)
{
	for (unsigned i = 0; i < set->service_count; i++) {
		if (strcmp(set->services[i].name, name) == 0)
			return &set->services[i];
	}
	return NULL;
}

/* a service section for no service of ringgate's */
static int load_foreign_service(struct loader *l, const struct config_node *sec)
{
	/* Dovecot starts any service with an executable (Pigeonhole's
	   managesieve, a site's own); a name that is neither Dovecot's nor
	   one with an executable is more likely a typo of ringgate's */
	if (!dovecot_service_known(sec->value) && config_find(sec, "executable") == NULL)
		return load_error(l, sec, "unknown service '%s'", sec->value);
	return ignore_section(l, sec, "service/", NULL);
}

static int load_service(struct loader *l, const struct config_node *sec)
{
	struct service_settings *svc;

	if (sec->value[0] == '\0')
		return load_error(l, sec, "service section needs a name");
	svc = find_service(l->set, sec->value);
	if (svc == NULL)
		return load_foreign_service(l, sec);
	char *outer = rg_strdup_printf("service %s", svc->name);
	int ret = 0;
	for (const struct config_node *n = sec->children; n != NULL && ret == 0; n = n->next) {
		if (n->type == CONFIG_NODE_SECTION) {
			if (strcmp(n->key, "inet_listener") == 0) {
				ret = load_listener(l, svc, n);
			} else if (dovecot_section_known("service/", n->key)) {
				/* unix_listener, fifo_listener: ringgate's
				   sockets are its own */
				char path[64];
				snprintf(path, sizeof(path), "service/%s/", n->key);
				ret = ignore_section(l, n, path, outer);
			} else {
				ret = load_error(l, n, "unknown section type '%s'", n->key);
			}
		} else if (find_def(service_defs, sizeof(service_defs) / sizeof(service_defs[0]),
				    n->key) == NULL && dovecot_setting_known("service/", n->key)) {
			/* executable, user, chroot, ...: ringgate's processes
			   and users are fixed */
			ignore_node(l, n, NOTE_SETTING, "%s { %s }", outer, n->key);
		} else {
			ret = apply_node(l, svc, service_defs,
					 sizeof(service_defs) / sizeof(service_defs[0]), n);
		}
	}
	rg_free(outer);
	return ret;
}

#define LN_PEM(name) { #name, ST_PEM, offsetof(struct local_name_settings, name), \
		offsetof(struct local_name_settings, name##_file), "" }
static const struct set_def local_name_defs[] = { LN_PEM(ssl_cert), LN_PEM(ssl_key) };
#define LOCAL_NAME_DEFS (sizeof(local_name_defs) / sizeof(local_name_defs[0]))

static int load_local_name(struct loader *l, const struct config_node *sec)
{
	struct settings *set = l->set;
	char *names;
	const char *reason = NULL;

	if (sec->value[0] == '\0')
		return load_error(l, sec, "local_name section needs a host name");
	if (parse_word_list(sec->value, NULL, true, false, NULL, &names, &reason) < 0)
		return load_error(l, sec, "invalid local_name");
	set->local_names = rg_realloc(set->local_names,
				      (set->local_name_count + 1) * sizeof(*set->local_names));
	struct local_name_settings *ln = &set->local_names[set->local_name_count++];
	memset(ln, 0, sizeof(*ln));
	ln->names = names;
	ln->file = rg_strdup(sec->file);
	ln->line = sec->line;
	for (size_t i = 0; i < LOCAL_NAME_DEFS; i++) {
		if (apply_value(ln, &local_name_defs[i], "", NULL, &reason) < 0)
			abort();
	}
	for (const struct config_node *n = sec->children; n != NULL; n = n->next) {
		if (n->type == CONFIG_NODE_SECTION)
			return load_error(l, n, "unknown section type '%s'", n->key);
		if (find_def(local_name_defs, LOCAL_NAME_DEFS, n->key) == NULL &&
		    find_def(global_defs, GLOBAL_COUNT, n->key) == NULL &&
		    dovecot_setting_known("", n->key)) {
			ignore_node(l, n, NOTE_SETTING, "local_name %s { %s }", ln->names, n->key);
			continue;
		}
		if (find_def(local_name_defs, LOCAL_NAME_DEFS, n->key) == NULL)
			return load_error(l, n, "'%s' is not supported inside local_name "
					  "(only ssl_cert and ssl_key)", n->key);
		if (apply_node(l, ln, local_name_defs, LOCAL_NAME_DEFS, n) < 0)
			return -1;
	}
	if (ln->ssl_cert[0] == '\0' || ln->ssl_key[0] == '\0')
		return load_error(l, sec, "local_name %s needs both ssl_cert and ssl_key", ln->names);
	return 0;
}

static void free_strings(void *base, const struct set_def *defs, size_t count);

#define D(name, type) { #name, type, offsetof(struct db_settings, name), 0, "" }
static const struct set_def db_defs[] = {
	D(driver, ST_STR), D(args, ST_STR), D(name, ST_STR), D(skip, ST_STR),
	D(result_success, ST_STR), D(result_failure, ST_STR), D(result_internalfail, ST_STR),
	D(mechanisms, ST_STR), D(username_filter, ST_STR), D(default_fields, ST_STR),
	D(override_fields, ST_STR), D(deny, ST_BOOL), D(master, ST_BOOL), D(pass, ST_BOOL),
};
#define DB_DEFS (sizeof(db_defs) / sizeof(db_defs[0]))

/* the drivers src/auth implements (auth-chain.c has the same list and
 * refuses the rest at start-up too) */
static const char *const passdb_drivers[] = {
	"passwd-file", "pam", "shadow", "checkpassword", "passwd", "static", "oauth2", "sql",
	"ldap", NULL
};
static const char *const userdb_drivers[] = {
	"passwd-file", "passwd", "static", "checkpassword", "sql", "ldap", NULL
};

static bool str_in(const char *const *list, const char *s)
{
	for (; *list != NULL; list++) {
		if (strcmp(*list, s) == 0)
			return true;
	}
	return false;
}

/* A passdb/userdb field Dovecot knows that ringgate does not store: named
 * when it changes nothing (Dovecot's default, or only logging), an error
 * when ringgate would serve something else than Dovecot would. */
static int load_db_dovecot_field(struct loader *l, const struct config_node *sec,
				 const struct config_node *n)
{
	char path[64];
	snprintf(path, sizeof(path), "%s/%s", sec->key, n->key);
	const struct dovecot_name *dn = dovecot_name_find(path);

	if (strcmp(n->key, "auth_verbose") == 0) {
		ignore_node(l, n, NOTE_SETTING, "%s { %s }", sec->key, n->key);
		return 0;
	}
	if (dn != NULL && dn->def != NULL && strcmp(dn->def, n->value) == 0) {
		ignore_node(l, n, NOTE_DEFAULT, "%s { %s = %s }", sec->key, n->key, n->value);
		return 0;
	}
	return load_error(l, n, "'%s = %s' in %s is not supported yet", n->key, n->value,
			  sec->key);
}

static void db_init(struct db_settings *db)
{
	for (size_t i = 0; i < DB_DEFS; i++) {
		const char *reason;
		if (apply_value(db, &db_defs[i], db_defs[i].type == ST_BOOL ? "no" : "", NULL,
				&reason) < 0)
			abort();
	}
}

static void db_free(struct db_settings *db)
{
	free_strings(db, db_defs, DB_DEFS);
	rg_free(db->file);
}

/* one block, parsed into db */
static int load_db_block(struct loader *l, const struct config_node *sec, struct db_settings *db)
{
	const struct config_node *driver = NULL;
	bool passdb = strcmp(sec->key, "passdb") == 0;
	char path[16];

	snprintf(path, sizeof(path), "%s/", sec->key);
	db->file = rg_strdup(sec->file);
	db->line = sec->line;
	for (const struct config_node *n = sec->children; n != NULL; n = n->next) {
		if (n->type == CONFIG_NODE_SECTION)
			return load_error(l, n, "unknown section type '%s'", n->key);
		if (find_def(db_defs, DB_DEFS, n->key) == NULL && dovecot_setting_known(path, n->key)) {
			if (load_db_dovecot_field(l, sec, n) < 0)
				return -1;
			continue;
		}
		if (apply_node(l, db, db_defs, DB_DEFS, n) < 0)
			return -1;
		if (strcmp(n->key, "driver") == 0)
			driver = n;
	}
	if (driver == NULL || db->driver[0] == '\0')
		return load_error(l, sec, "%s section has no driver", sec->key);
	if (!str_in(passdb ? passdb_drivers : userdb_drivers, db->driver))
		return load_error(l, driver, "invalid value for 'driver': unknown %s driver '%s'",
				  sec->key, db->driver);
	if (strcmp(db->driver, "passwd-file") == 0 && db->args[0] == '\0')
		return load_error(l, sec, "%s section has no args (the passwd-file path)", sec->key);
	return 0;
}

bool settings_db_equal(const struct db_settings *a, const struct db_settings *b)
{
	for (; a != NULL && b != NULL; a = a->next, b = b->next) {
		for (size_t i = 0; i < DB_DEFS; i++) {
			const void *fa = (const char *)a + db_defs[i].offset;
			const void *fb = (const char *)b + db_defs[i].offset;
			if (db_defs[i].type == ST_BOOL ? *(const bool *)fa != *(const bool *)fb :
			    strcmp(*(char *const *)fa, *(char *const *)fb) != 0)
				return false;
		}
	}
	return a == NULL && b == NULL;
}

/* Several blocks are a chain in file order: first is the first block,
 * each later one is appended to its next list. */
static int load_db(struct loader *l, const struct config_node *sec, struct db_settings *first)
{
	struct db_settings *db = rg_calloc(1, sizeof(*db));
	db_init(db);
	int ret = load_db_block(l, sec, db);
	if (ret != 0) {
		db_free(db);
		rg_free(db);
		return ret < 0 ? -1 : 0;
	}
	if (first->driver[0] == '\0') {
		db_free(first);
		*first = *db;
		first->next = NULL;
		rg_free(db);
		return 0;
	}
	struct db_settings *tail = first;
	while (tail->next != NULL)
		tail = tail->next;
	tail->next = db;
	return 0;
}

/* Whether settings inside `protocol NAME { }` apply to a protocol ringgate
   serves: imap, pop3, or a negation ("!indexer-worker" is every other) */
static bool filter_applies(const struct config_node *sec)
{
	if (strcmp(sec->key, "protocol") != 0)
		return true; /* local, remote: some of ringgate's connections */
	return strcmp(sec->value, "imap") == 0 || strcmp(sec->value, "pop3") == 0 ||
	       sec->value[0] == '!';
}

/* protocol, local, remote sections. Dovecot applies the global settings
 * inside to one protocol or address; ringgate has one value of each
 * setting, so one it uses is an error there, one it does not use is named,
 * and a filter for another protocol (lmtp, lda, submission) is set aside
 * whole. outer: the enclosing filter's label, NULL at the top. */
static int load_filter(struct loader *l, const struct config_node *sec, const char *outer,
		       unsigned depth)
{
	if (sec->value[0] == '\0')
		return load_error(l, sec, "%s section needs a name", sec->key);
	if (!filter_applies(sec)) {
		if (outer == NULL)
			return ignore_section(l, sec, "", NULL);
		if (check_dovecot_section(l, sec, "") < 0)
			return -1;
		char *inner = section_label(sec);
		ignore_node(l, sec, NOTE_SECTION, "%s { %s { } }%s", outer, inner,
			    depth > 1 ? " }" : "");
		rg_free(inner);
		return 0;
	}

	/* "local 10.0.0.1 { protocol pop3": names inside get their closing
	   braces from depth */
	char *label = section_label(sec);
	if (outer != NULL) {
		char *nested = rg_strdup_printf("%s { %s", outer, label);
		rg_free(label);
		label = nested;
	}
	const char *close = depth > 0 ? " }" : "";
	int ret = 0;
	for (const struct config_node *n = sec->children; n != NULL && ret == 0; n = n->next) {
		if (n->type == CONFIG_NODE_SETTING) {
			const struct set_def *def = find_def(global_defs, GLOBAL_COUNT, n->key);
			if (def != NULL && outer == NULL && strcmp(sec->key, "protocol") == 0 &&
			    strcmp(sec->value, "imap") == 0 && strncmp(n->key, "imap_", 5) == 0)
				l->imap_nodes[def - global_defs] = n;
			else if (def != NULL)
				ret = load_error(l, n, "'%s' inside '%s { }%s' is not supported: "
						 "ringgate has one value for every protocol and "
						 "address, set it outside the section", n->key, label,
						 close);
			else if (dovecot_setting_known("", n->key))
				ignore_node(l, n, NOTE_SETTING, "%s { %s }%s", label, n->key, close);
			else
				ret = load_error(l, n, "unknown setting '%s'", n->key);
		} else if (strcmp(n->key, "protocol") == 0 || strcmp(n->key, "local") == 0 ||
			   strcmp(n->key, "remote") == 0) {
			ret = load_filter(l, n, label, depth + 1);
		} else if (strcmp(n->key, "service") == 0 || strcmp(n->key, "passdb") == 0 ||
			   strcmp(n->key, "userdb") == 0 || strcmp(n->key, "local_name") == 0) {
			ret = load_error(l, n, "'%s' sections are not supported inside '%s { }%s'",
					 n->key, label, close);
		} else if (dovecot_section_known("", n->key)) {
			char path[64];
			snprintf(path, sizeof(path), "%s/", n->key);
			if (check_dovecot_section(l, n, path) == 0) {
				char *inner = section_label(n);
				ignore_node(l, n, NOTE_SECTION, "%s { %s { } }%s", label, inner, close);
				rg_free(inner);
			} else {
				ret = -1;
			}
		} else {
			ret = load_error(l, n, "unknown section type '%s'", n->key);
		}
	}
	rg_free(label);
	return ret;
}

/* `protocols`: imap and pop3 are served; another protocol Dovecot's
 * services serve (lmtp, submission) is named and left out, and so is a
 * word named twice (Debian's protocols.d appends to the default). Other
 * words stay for apply_value() to refuse. */
static int load_protocols(struct loader *l, const struct config_node *n)
{
	char **words;
	unsigned count = split_words(n->value, &words), kept = 0;
	int ret = 0;

	for (unsigned i = 0; i < count; i++) {
		bool dup = false;
		for (unsigned j = 0; j < kept; j++)
			dup = dup || strcasecmp(words[j], words[i]) == 0;
		if (dup)
			continue;
		if (strcasecmp(words[i], "imap") != 0 && strcasecmp(words[i], "pop3") != 0 &&
		    dovecot_protocol_known(words[i])) {
			ignore_node(l, n, "a Dovecot protocol ringgate does not serve: left out",
				    "protocols: %s", words[i]);
			continue;
		}
		char *w = words[i];
		words[i] = words[kept];
		words[kept++] = w;
	}
	char *value = join_words(words, kept);
	free_words(words, count);
	const char *reason = "invalid";
	if (apply_value(l->set, find_def(global_defs, GLOBAL_COUNT, "protocols"), value, NULL,
			&reason) < 0)
		ret = load_error(l, n, "invalid value for 'protocols': %s", reason);
	rg_free(value);
	return ret;
}

static int load_root(struct loader *l, const struct config_node *root)
{
	for (const struct config_node *n = root->children; n != NULL; n = n->next) {
		int ret;

		if (n->type == CONFIG_NODE_SETTING) {
			const struct set_def *def = find_def(global_defs, GLOBAL_COUNT, n->key);
			if (def == NULL && dovecot_setting_known("", n->key)) {
				ignore_node(l, n, NOTE_SETTING, "%s", n->key);
				continue;
			}
			if (def != NULL && strcmp(def->key, "protocols") == 0)
				ret = load_protocols(l, n);
			else
				ret = apply_node(l, l->set, global_defs, GLOBAL_COUNT, n);
			if (ret == 0)
				l->global_nodes[def - global_defs] = n;
		} else if (strcmp(n->key, "service") == 0) {
			ret = load_service(l, n);
		} else if (strcmp(n->key, "passdb") == 0) {
			ret = load_db(l, n, &l->set->passdb);
		} else if (strcmp(n->key, "userdb") == 0) {
			ret = load_db(l, n, &l->set->userdb);
		} else if (strcmp(n->key, "protocol") == 0 || strcmp(n->key, "local") == 0 ||
			   strcmp(n->key, "remote") == 0) {
			ret = load_filter(l, n, NULL, 0);
		} else if (strcmp(n->key, "local_name") == 0) {
			ret = load_local_name(l, n);
		} else if (dovecot_section_known("", n->key)) {
			char path[64];
			snprintf(path, sizeof(path), "%s/", n->key);
			ret = ignore_section(l, n, path, NULL);
		} else {
			ret = load_error(l, n, "unknown section type '%s'", n->key);
		}
		if (ret < 0)
			return -1;
	}
	return 0;
}

static struct settings *settings_new(const char *config_path)
{
	struct settings *set = rg_calloc(1, sizeof(*set));
	const char *reason = NULL;

	set->config_path = rg_strdup(config_path);
	for (size_t i = 0; i < GLOBAL_COUNT; i++) {
		if (apply_value(set, &global_defs[i], global_defs[i].def, NULL, &reason) < 0)
			abort(); /* the defaults table is wrong */
	}
	db_init(&set->passdb);
	db_init(&set->userdb);
	set->service_count = BUILTIN_COUNT;
	set->services = rg_calloc(BUILTIN_COUNT, sizeof(*set->services));
	for (size_t i = 0; i < BUILTIN_COUNT; i++) {
		const struct builtin_service *b = &builtin_services[i];
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
			listener_init(&svc->listeners[j], b->listeners[j].name,
				      b->listeners[j].port, b->listeners[j].ssl);
			svc->listener_count++;
		}
	}
	return set;
}

static char *listen_addresses(const struct settings *set)
{
	char **words;
	unsigned count = split_words(set->listen, &words);
	char *out = join_words(words, count);

	free_words(words, count);
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
				svc->listeners[j].address = listen_addresses(set);
		}
	}
}

static size_t global_index(const char *key)
{
	return (size_t)(find_def(global_defs, GLOBAL_COUNT, key) - global_defs);
}

static int check(struct loader *l)
{
	struct settings *set = l->set;

	if (log_facility_parse(set->syslog_facility) < 0)
		return load_error(l, l->global_nodes[global_index("syslog_facility")],
				  "syslog_facility: unknown facility '%s' (mail, auth, authpriv, "
				  "daemon, user, local0..local7, ...)",
				  set->syslog_facility);

	if (set->last_valid_uid != 0 && set->last_valid_uid < set->first_valid_uid) {
		const struct config_node *n = l->global_nodes[global_index("last_valid_uid")];
		if (n == NULL)
			n = l->global_nodes[global_index("first_valid_uid")];
		return load_error(l, n, "first_valid_uid is greater than last_valid_uid");
	}
	/* imap_max_line_length: a line must hold an ordinary command, and one
	 * worker's line buffer stays within its address space limit */
	if (set->imap_max_line_length < 1024 || set->imap_max_line_length > 64 * 1024 * 1024)
		return load_error(l, l->global_nodes[global_index("imap_max_line_length")],
				  "imap_max_line_length must be between 1k and 64M");
	/* a template's layout is known to every child it forks: bounded, so a
	 * crashing child cannot be retried against one layout for long */
	if (set->login_template_forks > 100)
		return load_error(l, l->global_nodes[global_index("login_template_forks")],
				  "login_template_forks must be at most 100");
	if (strlen(set->auth_username_translation) % 2 != 0)
		return load_error(l, l->global_nodes[global_index("auth_username_translation")],
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
			int ret = load_error(l, l->global_nodes[global_index("auth_username_format")],
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
		return load_error(l, l->global_nodes[global_index(key)],
				  "%s is set, but login_access_sockets does not name the built-in "
				  "checker '" SETTINGS_ACCESS_BUILTIN "'", key);
	}
	if (set->ssl != SSL_NO && set->protocols[0] != '\0') {
		const struct config_node *n = l->global_nodes[global_index("ssl")];
		if (set->ssl_cert[0] == '\0')
			return load_error(l, n, "ssl enabled, but ssl_cert not set");
		if (set->ssl_key[0] == '\0')
			return load_error(l, n, "ssl enabled, but ssl_key not set");
		/* Dovecot's own check and words */
		if (set->ssl_verify_client_cert && set->ssl_ca[0] == '\0')
			return load_error(l, l->global_nodes[global_index("ssl_verify_client_cert")],
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
	const struct set_def *def = find_def(global_defs, GLOBAL_COUNT, name);

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
	return load_error(l, n, "invalid value for 'mail_location': %.*s is not supported "
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

	ignore_add(ctx->set, &ctx->ignored_cap, file, line,
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
	l.ignored_cap = ctx->ignored_cap;
	int root_ret = load_root(&l, root);
	for (size_t i = 0; i < GLOBAL_COUNT && root_ret == 0; i++) {
		if (l.imap_nodes[i] != NULL &&
		    (root_ret = apply_node(&l, l.set, global_defs, GLOBAL_COUNT, l.imap_nodes[i])) == 0)
			l.global_nodes[i] = l.imap_nodes[i];
	}
	if (root_ret == 0) {
		resolve(l.set);
		if (check(&l) == 0)
			(void)check_mail_location(&l);
	}
	config_free(root);
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

static void free_strings(void *base, const struct set_def *defs, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		switch (defs[i].type) {
		case ST_PEM:
			rg_free(*field_str(base, defs[i].file_offset));
			/* fall through */
		case ST_STR:
		case ST_NONEMPTY:
		case ST_ABSPATH:
		case ST_LISTEN:
		case ST_PROTOCOLS:
		case ST_MECHS:
		case ST_NETWORKS:
		case ST_TLSVER:
		case ST_CURVES:
		case ST_SOCKNAMES:
			rg_free(*field_str(base, defs[i].offset));
			break;
		default:
			break;
		}
	}
}

void settings_free(struct settings *set)
{
	if (set == NULL)
		return;
	free_strings(set, global_defs, GLOBAL_COUNT);
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
		free_strings(&set->local_names[i], local_name_defs, LOCAL_NAME_DEFS);
		rg_free(set->local_names[i].names);
		rg_free(set->local_names[i].file);
	}
	rg_free(set->local_names);
	for (struct db_settings *db = &set->passdb, *next; db != NULL; db = next) {
		next = db->next;
		db_free(db);
		if (db != &set->passdb)
			rg_free(db);
	}
	for (struct db_settings *db = &set->userdb, *next; db != NULL; db = next) {
		next = db->next;
		db_free(db);
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
		forget(&set->local_names[i].ssl_cert);
		forget(&set->local_names[i].ssl_key);
	}
}

const struct service_settings *settings_service(const struct settings *set, const char *name)
{
	return find_service((struct settings *)set, name);
}

bool settings_access_builtin(const struct settings *set)
{
	char **words;
	unsigned count = split_words(set->login_access_sockets, &words);
	bool found = false;
	for (unsigned i = 0; i < count; i++)
		found = found || strcmp(words[i], SETTINGS_ACCESS_BUILTIN) == 0;
	free_words(words, count);
	return found;
}

bool settings_protocol_enabled(const struct settings *set, const char *protocol)
{
	char **words;
	unsigned count = split_words(set->protocols, &words);
	bool found = false;

	for (unsigned i = 0; i < count && !found; i++)
		found = strcasecmp(words[i], protocol) == 0;
	free_words(words, count);
	return found;
}

/* ---- printing ---- */

static bool needs_quotes(const char *s)
{
	size_t len = strlen(s);

	if (len == 0)
		return false;
	if (s[0] == '<' || isspace((unsigned char)s[0]) || isspace((unsigned char)s[len - 1]))
		return true;
	return strpbrk(s, "#$\"\\") != NULL;
}

static void print_value(FILE *out, const char *s)
{
	if (!needs_quotes(s)) {
		fputs(s, out);
		return;
	}
	fputc('"', out);
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', out);
		fputc(*s, out);
	}
	fputc('"', out);
}

static char *format_size(uint64_t v)
{
	static const char units[] = "TGMk";

	for (int i = 0; i < 4 && v != 0; i++) {
		uint64_t mult = 1ULL << (10 * (4 - i));
		if (v % mult == 0)
			return rg_strdup_printf("%llu%c", (unsigned long long)(v / mult), units[i]);
	}
	return rg_strdup_printf("%llu", (unsigned long long)v);
}

static char *format_time(unsigned secs)
{
	static const struct { unsigned secs; const char *name; } units[] = {
		{ 604800, "weeks" }, { 86400, "days" }, { 3600, "hours" }, { 60, "mins" },
	};

	for (size_t i = 0; i < 4 && secs != 0; i++) {
		if (secs % units[i].secs == 0)
			return rg_strdup_printf("%u %s", secs / units[i].secs, units[i].name);
	}
	return rg_strdup_printf("%u secs", secs);
}

/* the value as config text (unquoted) */
static char *format_value(const void *base, const struct set_def *def)
{
	const void *field = (const char *)base + def->offset;

	switch (def->type) {
	case ST_BOOL:
		return rg_strdup(*(const bool *)field ? "yes" : "no");
	case ST_UINT:
	case ST_UINT_POS:
	case ST_PORT:
		return rg_strdup_printf("%u", *(const unsigned *)field);
	case ST_SIZE:
		return format_size(*(const uint64_t *)field);
	case ST_TIME:
	case ST_TIME_POS:
		return format_time(*(const unsigned *)field);
	case ST_SSL:
		switch (*(const enum ssl_mode *)field) {
		case SSL_NO: return rg_strdup("no");
		case SSL_YES: return rg_strdup("yes");
		case SSL_REQUIRED: return rg_strdup("required");
		}
		return rg_strdup("yes");
	default: {
		const char *s = *(char *const *)field;
		return rg_strdup(s != NULL ? s : "");
	}
	}
}

static void print_setting(FILE *out, int indent, const char *key, const char *value)
{
	fprintf(out, "%*s%s = ", indent, "", key);
	print_value(out, value);
	fputc('\n', out);
}

static void print_pem(FILE *out, int indent, const void *base, const struct set_def *def,
		      bool secrets)
{
	const char *value = *field_str((void *)base, def->offset);
	const char *file = *field_str((void *)base, def->file_offset);

	if (file[0] != '\0') {
		/* a path is no secret, and it reads back to the same key */
		fprintf(out, "%*s%s = <", indent, "", def->key);
		fputs(file, out);
		fputc('\n', out);
	} else if (!secrets && strcmp(def->key, "ssl_key") == 0 && value[0] != '\0') {
		fprintf(out, "%*s%s = # hidden, use -P to show it\n", indent, "", def->key);
	} else {
		print_setting(out, indent, def->key, value);
	}
}

static void print_local_names(FILE *out, const struct settings *set, bool secrets)
{
	for (unsigned i = 0; i < set->local_name_count; i++) {
		const struct local_name_settings *ln = &set->local_names[i];
		/* names are host names: quotes only to keep a list one word */
		fprintf(out, strchr(ln->names, ' ') != NULL ? "local_name \"%s\" {\n" :
			"local_name %s {\n", ln->names);
		for (size_t j = 0; j < LOCAL_NAME_DEFS; j++)
			print_pem(out, 2, ln, &local_name_defs[j], secrets);
		fprintf(out, "}\n");
	}
}

static void print_db(FILE *out, const char *name, const struct db_settings *first, bool all)
{
	for (const struct db_settings *db = first; db != NULL; db = db->next) {
		if (db->driver[0] == '\0')
			return;
		fprintf(out, "%s {\n", name);
		for (size_t i = 0; i < DB_DEFS; i++) {
			const void *field = (const char *)db + db_defs[i].offset;
			if (db_defs[i].type == ST_BOOL) {
				bool b = *(const bool *)field;
				if (b || all)
					print_setting(out, 2, db_defs[i].key, b ? "yes" : "no");
				continue;
			}
			const char *v = *(char *const *)field;
			if (i < 2 || all || v[0] != '\0')
				print_setting(out, 2, db_defs[i].key, v);
		}
		fprintf(out, "}\n");
	}
}

static void print_service(FILE *out, const struct settings *set,
			  const struct service_settings *svc, bool all)
{
	const struct builtin_service *b = NULL;
	struct service_settings base;
	char *text = NULL;
	size_t text_len = 0;
	FILE *body = open_memstream(&text, &text_len);

	for (size_t i = 0; i < BUILTIN_COUNT; i++) {
		if (strcmp(builtin_services[i].name, svc->name) == 0)
			b = &builtin_services[i];
	}
	memset(&base, 0, sizeof(base));
	if (b != NULL) {
		base.service_count = b->service_count;
		base.client_limit = b->client_limit != 0 ? b->client_limit : set->default_client_limit;
		base.process_limit = b->process_limit != 0 ? b->process_limit : set->default_process_limit;
	}
	base.vsz_limit = set->default_vsz_limit;
	base.idle_kill = set->default_idle_kill;

	for (size_t i = 0; i < sizeof(service_defs) / sizeof(service_defs[0]); i++) {
		char *v = format_value(svc, &service_defs[i]);
		char *d = format_value(&base, &service_defs[i]);
		if (all || strcmp(v, d) != 0)
			print_setting(body, 2, service_defs[i].key, v);
		rg_free(v);
		rg_free(d);
	}

	char *listen = listen_addresses(set);
	for (unsigned i = 0; i < svc->listener_count; i++) {
		const struct listener_settings *ls = &svc->listeners[i];
		struct listener_settings lbase = { .address = listen };
		bool builtin = false;
		char *ltext = NULL;
		size_t ltext_len = 0;
		FILE *lbody = open_memstream(&ltext, &ltext_len);

		for (size_t j = 0; b != NULL && j < 2 && b->listeners[j].name != NULL; j++) {
			if (strcmp(b->listeners[j].name, ls->name) == 0) {
				builtin = true;
				lbase.port = b->listeners[j].port;
				lbase.ssl = b->listeners[j].ssl;
			}
		}
		for (size_t j = 0; j < sizeof(listener_defs) / sizeof(listener_defs[0]); j++) {
			char *v = format_value(ls, &listener_defs[j]);
			char *d = format_value(&lbase, &listener_defs[j]);
			if (all || strcmp(v, d) != 0)
				print_setting(lbody, 4, listener_defs[j].key, v);
			rg_free(v);
			rg_free(d);
		}
		fclose(lbody);
		if (!builtin || ltext_len > 0)
			fprintf(body, "  inet_listener %s {\n%s  }\n", ls->name, ltext);
		free(ltext);
	}
	rg_free(listen);
	fclose(body);
	if (text_len > 0)
		fprintf(out, "service %s {\n%s}\n", svc->name, text);
	free(text);
}

/* a comment line cannot end early: a name holds no line break, but a
   section name or value from the file may hold anything else */
static void print_ignored(FILE *out, const struct settings *set)
{
	if (set->ignored_count == 0)
		return;
	fprintf(out, "# Accepted from a Dovecot configuration and not used by ringgate:\n");
	for (unsigned i = 0; i < set->ignored_count; i++) {
		const struct settings_ignored *ig = &set->ignored[i];
		fprintf(out, "#   %s:%u: %s (%s)\n", ig->file, ig->line, ig->name, ig->note);
	}
}

void settings_print(const struct settings *set, bool all, FILE *out)
{
	settings_print_secrets(set, all, false, out);
}

void settings_print_secrets(const struct settings *set, bool all, bool secrets, FILE *out)
{
	struct settings *defaults = settings_new(set->config_path);

	fprintf(out, "# ringgate configuration: %s\n", set->config_path);
	for (size_t i = 0; i < GLOBAL_COUNT; i++) {
		const struct set_def *def = &global_defs[i];
		char *v = format_value(set, def);
		char *d = format_value(defaults, def);
		bool differs = strcmp(v, d) != 0;

		if (def->type == ST_PEM)
			differs = differs || *field_str((void *)set, def->file_offset)[0] != '\0';
		if (all || differs) {
			if (def->type == ST_PEM)
				print_pem(out, 0, set, def, secrets);
			else
				print_setting(out, 0, def->key, v);
		}
		rg_free(v);
		rg_free(d);
	}
	settings_free(defaults);
	print_local_names(out, set, secrets);
	print_db(out, "passdb", &set->passdb, all);
	print_db(out, "userdb", &set->userdb, all);
	for (unsigned i = 0; i < set->service_count; i++)
		print_service(out, set, &set->services[i], all);
	print_ignored(out, set);
}
