#include "auth/auth-oauth2.h"
#include "auth/jwt.h"

#include "lib/alloc.h"
#include "lib/base64.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CONF_MAX (64 * 1024)
#define KEY_FILE_MAX (16 * 1024)
#define MAX_ISSUERS 16

struct oauth2_config {
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
	"tokeninfo_url", "grant_url", "introspection_url", "username_validation_format",
	"active_attribute", "active_value", "client_secret", "force_introspection",
	"openid_configuration_url", "rawlog_dir", "timeout_msecs", "max_idle_time_msecs",
	"max_parallel_connections", "max_pipelined_requests", "tls_ca_cert_file",
	"tls_ca_cert_dir", "tls_cert_file", "tls_key_file", "tls_cipher_suite",
	"tls_allow_invalid_cert", "debug", "use_grant_password", "blocking", "pass_attrs",
	"send_auth_headers", "use_worker_with_mech", NULL,
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
	rg_free(cfg);
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
	if (*error_r == NULL && (mode == NULL || strcmp(mode, "local") != 0))
		*error_r = rg_strdup_printf("%s: introspection_mode = %s is not supported "
					    "(only local JWT validation)", path,
					    mode != NULL ? mode : "(unset)");
	rg_free(mode);
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
