/* settings-value.c — one setting's config text into its field (see
 * settings-private.h): the types of the settings table, word lists,
 * networks, curve names, and freeing a table's strings. */
#include "lib/settings-private.h"

#include "lib/alloc.h"
#include "lib/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>

char **set_field_str(void *base, size_t offset)
{
	return (char **)((char *)base + offset);
}

static bool has_line_break(const char *s)
{
	return strpbrk(s, "\r\n") != NULL;
}

/* split on commas and whitespace into a fresh array of words */
unsigned set_split_words(const char *s, char ***words_r)
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

void set_free_words(char **words, unsigned count)
{
	for (unsigned i = 0; i < count; i++)
		rg_free(words[i]);
	rg_free(words);
}

char *set_join_words(char **words, unsigned count)
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
int set_parse_word_list(const char *value, const char *const *allowed, bool lower,
			bool none_ok, bool (*check)(const char *), char **out_r,
			const char **reason_r)
{
	char **words;
	unsigned count = set_split_words(value, &words);

	if (none_ok && count == 1 && strcasecmp(words[0], "none") == 0) {
		set_free_words(words, count);
		*out_r = rg_strdup("");
		return 0;
	}
	for (unsigned i = 0; i < count; i++) {
		if (lower) {
			for (char *c = words[i]; *c != '\0'; c++)
				*c = (char)tolower((unsigned char)*c);
		}
		if (check != NULL && !check(words[i])) {
			set_free_words(words, count);
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
				set_free_words(words, count);
				*reason_r = NULL; /* caller words it */
				return -1;
			}
		}
	}
	*out_r = set_join_words(words, count);
	set_free_words(words, count);
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
int set_apply_value(void *base, const struct set_def *def, const char *value,
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
		rg_free(*set_field_str(base, def->file_offset));
		*set_field_str(base,
			       def->file_offset) = rg_strdup(value_file != NULL ? value_file : "");
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
		if (def == &set_listener_defs[0]) {
			/* listener addresses are kept space-separated */
			if (set_parse_word_list(value, NULL, false, false, NULL, &str,
						reason_r) < 0)
				return -1;
		} else {
			str = rg_strdup(value);
		}
		break;
	case ST_PROTOCOLS:
		if (set_parse_word_list(value, protocol_names, true, true, NULL, &str,
					reason_r) < 0) {
			*reason_r = "protocols must be imap, pop3 or none";
			return -1;
		}
		break;
	case ST_MECHS:
		if (set_parse_word_list(value, mech_names, true, false, NULL, &str, reason_r) < 0) {
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
		if (set_parse_word_list(value, NULL, false, false, valid_network, &str,
					reason_r) < 0)
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
		if (set_parse_word_list(value, NULL, false, false, valid_socket_name, &str,
					reason_r) < 0) {
			*reason_r = "socket names are 1-32 of A-Z a-z 0-9 _ . - (files in base_dir/login)";
			return -1;
		}
		break;
	}
	rg_free(*(char **)field);
	*(char **)field = str;
	return 0;
}

void set_free_strings(void *base, const struct set_def *defs, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		switch (defs[i].type) {
		case ST_PEM:
			rg_free(*set_field_str(base, defs[i].file_offset));
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
			rg_free(*set_field_str(base, defs[i].offset));
			break;
		default:
			break;
		}
	}
}
