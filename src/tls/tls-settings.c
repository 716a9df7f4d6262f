#include "tls/tls-settings.h"
#include "lib/alloc.h"

#include <errno.h>
#include <string.h>

static struct tls_ctx_settings ctx_settings(const struct settings *set, const char *cert,
					    const char *key)
{
	return (struct tls_ctx_settings){
		.cert_pem = cert,
		.key_pem = key,
		.ca_pem = set->ssl_ca,
		.min_protocol = set->ssl_min_protocol,
		.cipher_list = set->ssl_cipher_list,
		.prefer_server_ciphers = set->ssl_prefer_server_ciphers,
		.dh_pem = set->ssl_dh,
		.curve_list = set->ssl_curve_list,
		.verify_client = set->ssl_verify_client_cert,
		.require_crl = set->ssl_require_crl,
		.cert_username_field = set->ssl_cert_username_field,
	};
}

/* "ssl_cert = </etc/x.pem" or "ssl_cert" for an inline value */
static char *describe(const char *key, const char *file)
{
	return file != NULL && file[0] != '\0' ? rg_strdup_printf("%s = <%s", key, file)
					       : rg_strdup(key);
}

/* local_name sections that name the same certificate and key share one
 * context: thousands of names cost a name each, not a certificate each */
struct sni_cache {
	const struct local_name_settings *ln;
	struct tls_ctx *sub;
};

static struct tls_ctx *cached_sub(const struct sni_cache *cache, unsigned count,
				  const struct local_name_settings *ln)
{
	for (unsigned i = 0; i < count; i++) {
		if (strcmp(cache[i].ln->ssl_cert, ln->ssl_cert) == 0 &&
		    strcmp(cache[i].ln->ssl_key, ln->ssl_key) == 0)
			return cache[i].sub;
	}
	return NULL;
}

static int add_local_name(const struct settings *set, const struct local_name_settings *ln,
			  struct tls_ctx *ctx, struct sni_cache *cache, unsigned *cache_count,
			  char **error_r)
{
	struct tls_ctx *sub = cached_sub(cache, *cache_count, ln);
	const char *error;

	if (sub == NULL) {
		struct tls_ctx_settings cs = ctx_settings(set, ln->ssl_cert, ln->ssl_key);
		if (tls_ctx_create(&cs, &sub, &error) < 0) {
			char *cert = describe("ssl_cert", ln->ssl_cert_file);
			*error_r = rg_strdup_printf("%s:%u: local_name %s: %s (%s)", ln->file,
						    ln->line, ln->names, error, cert);
			rg_free(cert);
			return -EINVAL;
		}
		/* the cache holds this reference until the end */
		cache[*cache_count].ln = ln;
		cache[*cache_count].sub = sub;
		(*cache_count)++;
	}
	char *names = rg_strdup(ln->names);
	char *save = NULL;
	int ret = 0;
	for (char *name = strtok_r(names, " ", &save); name != NULL && ret == 0;
	     name = strtok_r(NULL, " ", &save)) {
		ret = tls_ctx_add_sni(ctx, name, sub, &error);
		if (ret < 0)
			*error_r = rg_strdup_printf("%s:%u: local_name %s: %s", ln->file, ln->line,
						    name, error);
	}
	rg_free(names);
	return ret;
}

int tls_settings_ctx_create(const struct settings *set, struct tls_ctx **ctx_r, char **error_r)
{
	struct tls_ctx_settings cs = ctx_settings(set, set->ssl_cert, set->ssl_key);
	const char *error;

	*ctx_r = NULL;
	if (tls_ctx_create(&cs, ctx_r, &error) < 0) {
		char *cert = describe("ssl_cert", set->ssl_cert_file);
		char *key = describe("ssl_key", set->ssl_key_file);
		*error_r = rg_strdup_printf("%s: %s (%s, %s)", set->config_path, error, cert, key);
		rg_free(cert);
		rg_free(key);
		return -EINVAL;
	}
	struct sni_cache *cache = rg_calloc(set->local_name_count + 1, sizeof(*cache));
	unsigned cache_count = 0;
	int ret = 0;
	for (unsigned i = 0; i < set->local_name_count && ret == 0; i++)
		ret = add_local_name(set, &set->local_names[i], *ctx_r, cache, &cache_count, error_r);
	/* ctx holds its own references to the subs it uses */
	for (unsigned i = 0; i < cache_count; i++)
		tls_ctx_free(&cache[i].sub);
	rg_free(cache);
	if (ret < 0)
		tls_ctx_free(ctx_r);
	return ret;
}
