#include "auth/auth-oauth2.h"
#include "auth/auth-http.h"
#include "auth/jwt.h"
#include "auth/oauth2-introspect.h"

#include "lib/alloc.h"
#include "lib/base64.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONF_MAX (64 * 1024)
#define KEY_FILE_MAX (16 * 1024)
#define MAX_ISSUERS 16

/* the settings of the remote modes, as written (NULL: unset) */
enum remote_key {
	RK_INTROSPECTION_URL, RK_TOKENINFO_URL, RK_CLIENT_SECRET, RK_ACTIVE_ATTRIBUTE,
	RK_ACTIVE_VALUE, RK_TLS_CA_CERT_FILE, RK_TLS_CA_CERT_DIR, RK_TLS_CERT_FILE,
	RK_TLS_KEY_FILE, RK_TLS_ALLOW_INVALID_CERT, RK_TIMEOUT_MSECS,
	RK_MAX_PARALLEL_CONNECTIONS, RK_CACHE_SIZE, RK_CACHE_TTL_MSECS, RK_USERNAME_FORMAT,
	RK_COUNT
};
static const char *const remote_names[RK_COUNT] = {
	"introspection_url", "tokeninfo_url", "client_secret", "active_attribute",
	"active_value", "tls_ca_cert_file", "tls_ca_cert_dir", "tls_cert_file",
	"tls_key_file", "tls_allow_invalid_cert", "timeout_msecs",
	"max_parallel_connections", "introspection_cache_size",
	"introspection_cache_ttl_msecs", "username_format",
};

struct oauth2_config {
	enum oauth2_mode mode;
	char *remote[RK_COUNT];
	unsigned timeout_msecs, max_parallel, cache_size, cache_ttl_msecs;
	char *key_dir;       /* ends in '/' */
	char *username_attribute;
	char *client_id;     /* when set, aud must name it */
	char *scope;
	char *issuers_buf;
	const char *issuers[MAX_ISSUERS + 1];
	bool have_issuers;
};

/* Dovecot's dovecot-oauth2.conf.ext names ringgate reads nothing from
   (introspection and grant settings, HTTP client and TLS knobs) */
static const char *const ignored[] = {
	"grant_url", "username_validation_format", "force_introspection",
	"openid_configuration_url", "rawlog_dir", "max_idle_time_msecs",
	"max_pipelined_requests", "tls_cipher_suite", "debug", "use_grant_password", "blocking",
	"pass_attrs", "send_auth_headers", "use_worker_with_mech", NULL,
};

static char *read_file(const char *path, size_t max, size_t *len_r, int *err_r)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*err_r = errno;
		return NULL;
	}
	char *buf = rg_malloc(max + 1);
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, buf + n, max + 1 - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			*err_r = errno;
			close(fd);
			rg_free(buf);
			return NULL;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max) {
			*err_r = EFBIG;
			close(fd);
			rg_free(buf);
			return NULL;
		}
	}
	close(fd);
	buf[n] = '\0';
	*len_r = n;
	return buf;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		s[--n] = '\0';
	return s;
}

void oauth2_config_free(struct oauth2_config **cfgp)
{
	struct oauth2_config *cfg = *cfgp;
	if (cfg == NULL)
		return;
	*cfgp = NULL;
	rg_free(cfg->key_dir);
	rg_free(cfg->username_attribute);
	rg_free(cfg->client_id);
	rg_free(cfg->scope);
	rg_free(cfg->issuers_buf);
	for (unsigned i = 0; i < RK_COUNT; i++) {
		if (cfg->remote[i] != NULL)
			explicit_bzero(cfg->remote[i], strlen(cfg->remote[i]));
		rg_free(cfg->remote[i]);
	}
	rg_free(cfg);
}

static bool parse_uint(const char *s, unsigned max, unsigned *r)
{
	char *end;
	if (s[0] < '0' || s[0] > '9')
		return false;
	unsigned long v = strtoul(s, &end, 10);
	if (*end != '\0' || v > max)
		return false;
	*r = (unsigned)v;
	return true;
}

/* the remote modes' settings: checked, numbers parsed, defaults */
static char *remote_check(struct oauth2_config *cfg, const char *path)
{
	struct {
		enum remote_key key;
		unsigned def, max;
		unsigned *dst;
	} nums[] = {
		{ RK_TIMEOUT_MSECS, 5000, 600000, &cfg->timeout_msecs },
		{ RK_MAX_PARALLEL_CONNECTIONS, 1, 1024, &cfg->max_parallel },
		{ RK_CACHE_SIZE, 1024, 1000000, &cfg->cache_size },
		{ RK_CACHE_TTL_MSECS, 60000, 86400000, &cfg->cache_ttl_msecs },
	};
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		const char *v = cfg->remote[nums[i].key];
		*nums[i].dst = nums[i].def;
		if (v != NULL && v[0] != '\0' && !parse_uint(v, nums[i].max, nums[i].dst))
			return rg_strdup_printf("%s: %s must be a number up to %u", path,
						remote_names[nums[i].key], nums[i].max);
	}
	/* Dovecot's 0: no timeout of its own; ringgate bounds every request */
	if (cfg->timeout_msecs == 0)
		cfg->timeout_msecs = 5000;
	if (cfg->max_parallel == 0)
		cfg->max_parallel = 1;
	const char *url = cfg->remote[RK_INTROSPECTION_URL];
	if (url == NULL || url[0] == '\0') {
		url = cfg->remote[RK_TOKENINFO_URL];
		if (url == NULL || url[0] == '\0')
			return rg_strdup_printf("%s: introspection_mode needs introspection_url "
						"(or tokeninfo_url)", path);
		cfg->mode = OAUTH2_MODE_TOKENINFO;
	}
	if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0)
		return rg_strdup_printf("%s: the IdP's URL must be http:// or https://", path);
	const char *uf = cfg->remote[RK_USERNAME_FORMAT];
	if (uf != NULL && uf[0] != '\0' && strcmp(uf, "%Lu") != 0 && strcmp(uf, "%u") != 0 &&
	    strcmp(uf, "%Ln") != 0 && strcmp(uf, "%n") != 0)
		return rg_strdup_printf("%s: username_format must be %%Lu, %%u, %%Ln or %%n", path);
	const char *inv = cfg->remote[RK_TLS_ALLOW_INVALID_CERT];
	if (inv != NULL && strcmp(inv, "yes") != 0 && strcmp(inv, "no") != 0 && inv[0] != '\0')
		return rg_strdup_printf("%s: tls_allow_invalid_cert must be yes or no", path);
	return NULL;
}

struct oauth2_config *oauth2_config_load(const char *path, char **error_r)
{
	size_t len;
	int err = 0;
	char *text = read_file(path, CONF_MAX, &len, &err);
	if (text == NULL) {
		*error_r = rg_strdup_printf("%s: %s", path, strerror(err));
		return NULL;
	}
	struct oauth2_config *cfg = rg_calloc(1, sizeof(*cfg));
	char *mode = NULL;
	unsigned lineno = 0;
	char *save = NULL;
	*error_r = NULL;
	for (char *line = text; line != NULL && *error_r == NULL; line = save) {
		char *nl = strchr(line, '\n');
		save = nl != NULL ? nl + 1 : NULL;
		if (nl != NULL)
			*nl = '\0';
		lineno++;
		char *hash = strchr(line, '#');
		if (hash != NULL)
			*hash = '\0';
		char *l = trim(line);
		if (*l == '\0')
			continue;
		char *eq = strchr(l, '=');
		if (eq == NULL) {
			*error_r = rg_strdup_printf("%s:%u: expected key = value", path, lineno);
			break;
		}
		*eq = '\0';
		char *key = trim(l), *value = trim(eq + 1);
		char **dst = NULL;
		if (strcmp(key, "introspection_mode") == 0) {
			dst = &mode;
		} else if (strcmp(key, "local_validation_key_dict") == 0) {
			dst = &cfg->key_dir;
		} else if (strcmp(key, "username_attribute") == 0) {
			dst = &cfg->username_attribute;
		} else if (strcmp(key, "client_id") == 0) {
			dst = &cfg->client_id;
		} else if (strcmp(key, "scope") == 0) {
			dst = &cfg->scope;
		} else if (strcmp(key, "issuers") == 0) {
			dst = &cfg->issuers_buf;
		} else {
			for (unsigned i = 0; i < RK_COUNT && dst == NULL; i++) {
				if (strcmp(key, remote_names[i]) == 0)
					dst = &cfg->remote[i];
			}
		}
		if (dst == NULL) {
			bool known = false;
			for (unsigned i = 0; ignored[i] != NULL && !known; i++)
				known = strcmp(ignored[i], key) == 0;
			if (!known)
				*error_r = rg_strdup_printf("%s:%u: unknown setting '%s'", path,
							    lineno, key);
			continue;
		}
		rg_free(*dst);
		*dst = rg_strdup(value);
	}
	rg_free(text);
	/* Dovecot's modes; unset is auth, as Dovecot's */
	if (*error_r == NULL) {
		if (mode == NULL || mode[0] == '\0' || strcmp(mode, "auth") == 0)
			cfg->mode = OAUTH2_MODE_AUTH;
		else if (strcmp(mode, "get") == 0)
			cfg->mode = OAUTH2_MODE_GET;
		else if (strcmp(mode, "post") == 0)
			cfg->mode = OAUTH2_MODE_POST;
		else if (strcmp(mode, "local") == 0)
			cfg->mode = OAUTH2_MODE_LOCAL;
		else
			*error_r = rg_strdup_printf("%s: introspection_mode must be auth, get, "
						    "post or local, not '%s'", path, mode);
	}
	rg_free(mode);
	if (*error_r == NULL && cfg->mode != OAUTH2_MODE_LOCAL)
		*error_r = remote_check(cfg, path);
	if (*error_r == NULL && cfg->mode != OAUTH2_MODE_LOCAL) {
		if (cfg->username_attribute == NULL)
			cfg->username_attribute = rg_strdup("email");
		return cfg;
	}
	if (*error_r == NULL && (cfg->key_dir == NULL || cfg->key_dir[0] == '\0'))
		*error_r = rg_strdup_printf("%s: local validation needs local_validation_key_dict",
					    path);
	if (*error_r == NULL) {
		const char *d = cfg->key_dir;
		if (strncmp(d, "fs:posix:prefix=", 16) == 0)
			d += 16;
		else if (strncmp(d, "fs:posix:", 9) == 0 || d[0] != '/')
			*error_r = rg_strdup_printf("%s: local_validation_key_dict must be "
						    "fs:posix:prefix=/DIR/ or a directory", path);
		if (*error_r == NULL) {
			char *dir = rg_strdup_printf("%s%s", d, d[strlen(d) - 1] == '/' ? "" : "/");
			rg_free(cfg->key_dir);
			cfg->key_dir = dir;
		}
	}
	if (*error_r == NULL && cfg->issuers_buf != NULL) {
		unsigned n = 0;
		for (char *tok = strtok_r(cfg->issuers_buf, " ,", &save); tok != NULL;
		     tok = strtok_r(NULL, " ,", &save)) {
			if (n == MAX_ISSUERS) {
				*error_r = rg_strdup_printf("%s: more than %d issuers", path,
							    MAX_ISSUERS);
				break;
			}
			cfg->issuers[n++] = tok;
		}
		cfg->have_issuers = n > 0;
	}
	if (*error_r != NULL) {
		oauth2_config_free(&cfg);
		return NULL;
	}
	if (cfg->username_attribute == NULL)
		cfg->username_attribute = rg_strdup("email"); /* Dovecot's default */
	return cfg;
}

const char *oauth2_config_scope(const struct oauth2_config *cfg)
{
	return cfg->scope;
}

static const char *set_or_null(const char *s)
{
	return s != NULL && s[0] != '\0' ? s : NULL;
}

bool oauth2_config_remote(const struct oauth2_config *cfg, struct oauth2_remote *r,
			  struct http_client_settings *http, unsigned *cache_size_r,
			  unsigned *cache_ttl_ms_r)
{
	if (cfg->mode == OAUTH2_MODE_LOCAL)
		return false;
	const char *const *v = (const char *const *)cfg->remote;
	*r = (struct oauth2_remote){
		.mode = cfg->mode,
		.url = cfg->mode == OAUTH2_MODE_TOKENINFO ? v[RK_TOKENINFO_URL]
							  : v[RK_INTROSPECTION_URL],
		.client_id = set_or_null(cfg->client_id),
		.client_secret = set_or_null(v[RK_CLIENT_SECRET]),
		.username_attribute = cfg->username_attribute,
		.active_attribute = set_or_null(v[RK_ACTIVE_ATTRIBUTE]),
		.active_value = set_or_null(v[RK_ACTIVE_VALUE]),
		.scope = set_or_null(cfg->scope),
	};
	/* username_format: Dovecot's default %Lu */
	const char *uf = set_or_null(v[RK_USERNAME_FORMAT]);
	r->format_lower = uf == NULL || uf[1] == 'L';
	r->format_local_part = uf != NULL && uf[strlen(uf) - 1] == 'n';
	*http = (struct http_client_settings){
		.max_parallel = cfg->max_parallel,
		/* a login waits at most timeout_msecs anyway; beyond this
		   many waiting, the IdP is not keeping up: refuse at once */
		.max_queue = 64 * cfg->max_parallel + 1024,
		.timeout_msecs = cfg->timeout_msecs,
		.max_body = OAUTH2_BODY_MAX,
		.ca_file = set_or_null(v[RK_TLS_CA_CERT_FILE]),
		.ca_dir = set_or_null(v[RK_TLS_CA_CERT_DIR]),
		.cert_file = set_or_null(v[RK_TLS_CERT_FILE]),
		.key_file = set_or_null(v[RK_TLS_KEY_FILE]),
		.allow_invalid_cert = v[RK_TLS_ALLOW_INVALID_CERT] != NULL &&
				      strcmp(v[RK_TLS_ALLOW_INVALID_CERT], "yes") == 0,
	};
	*cache_size_r = cfg->cache_size;
	*cache_ttl_ms_r = cfg->cache_ttl_msecs;
	return true;
}

/* a path component: %-escape all but [A-Za-z0-9_-@.], and a leading '.' */
static void escape_component(const char *s, char *out, size_t outsize)
{
	size_t o = 0;
	for (size_t i = 0; s[i] != '\0' && o + 4 < outsize; i++) {
		unsigned char c = (unsigned char)s[i];
		bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			     (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '@' ||
			     (c == '.' && i > 0);
		if (plain) {
			out[o++] = (char)c;
		} else {
			snprintf(out + o, outsize - o, "%%%02x", c);
			o += 3;
		}
	}
	out[o] = '\0';
}

struct lookup_ctx {
	const struct oauth2_config *cfg;
	struct crypto_pubkey *pub;
	uint8_t secret[KEY_FILE_MAX];
};

static bool key_lookup(void *context, const char *azp, const char *alg, const char *kid,
		       struct jwt_key *key)
{
	struct lookup_ctx *ctx = context;
	char eazp[3 * JWT_MAX_AZP + 4], ekid[3 * JWT_MAX_KID + 4], path[4096];
	escape_component(azp, eazp, sizeof(eazp));
	escape_component(kid, ekid, sizeof(ekid));
	int n = snprintf(path, sizeof(path), "%sshared/%s/%s/%s", ctx->cfg->key_dir, eazp, alg,
			 ekid);
	if (n < 0 || (size_t)n >= sizeof(path))
		return false;
	size_t len;
	int err;
	char *text = read_file(path, KEY_FILE_MAX, &len, &err);
	if (text == NULL)
		return false;
	bool ok = false;
	if (alg[0] == 'H') {
		/* an HMAC secret is stored base64-encoded, whitespace around */
		char *t = trim(text);
		size_t tl = strlen(t);
		while (tl > 0 && (t[tl - 1] == '\n' || t[tl - 1] == '\r'))
			t[--tl] = '\0';
		size_t slen;
		if (base64_decode(t, tl, ctx->secret, sizeof(ctx->secret), &slen) && slen > 0) {
			key->secret = ctx->secret;
			key->secret_len = slen;
			ok = true;
		}
	} else {
		const char *error;
		ctx->pub = crypto_pubkey_load_pem(text, len, &error);
		if (ctx->pub != NULL) {
			key->pub = ctx->pub;
			ok = true;
		}
	}
	explicit_bzero(text, len);
	rg_free(text);
	return ok;
}

bool oauth2_token_check(const struct oauth2_config *cfg, const char *user, const char *token,
			size_t len, int64_t now, char *user_r, size_t user_size,
			const char **error_r)
{
	struct lookup_ctx *ctx = rg_calloc(1, sizeof(*ctx));
	ctx->cfg = cfg;
	struct jwt_params p = {
		.now = now,
		.leeway = 0,
		.username_attribute = cfg->username_attribute,
		.issuers = cfg->have_issuers ? cfg->issuers : NULL,
		.audience = cfg->client_id,
		.lookup = key_lookup,
		.context = ctx,
	};
	struct jwt_result r;
	bool ok = jwt_verify(token, len, &p, &r, error_r);
	if (ok && user[0] != '\0' && strcmp(r.user, user) != 0) {
		*error_r = "the token is for another user";
		ok = false;
	}
	if (ok && user_r != NULL)
		snprintf(user_r, user_size, "%s", r.user);
	crypto_pubkey_free(&ctx->pub);
	explicit_bzero(ctx, sizeof(*ctx));
	rg_free(ctx);
	return ok;
}
