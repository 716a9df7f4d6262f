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

/* Every local_name's names into a store. local_name sections that name the
 * same certificate and key share one entry: thousands of names cost a name
 * each, not a certificate each. first_r (when not NULL): per entry, the
 * index of the first section that named it, for the check's errors. */
static int sni_store_build(const struct settings *set, struct tls_sni_store **store_r,
			   unsigned **first_r, char **error_r)
{
	struct tls_sni_builder *b = tls_sni_builder_new();
	unsigned *first = first_r != NULL ? rg_calloc(set->local_name_count + 1, sizeof(*first)) : NULL;
	unsigned entries = 0;
	int ret = 0;

	for (unsigned i = 0; i < set->local_name_count && ret == 0; i++) {
		const struct local_name_settings *ln = &set->local_names[i];
		char *names = rg_strdup(ln->names);
		char *save = NULL;
		for (char *name = strtok_r(names, " ", &save); name != NULL && ret == 0;
		     name = strtok_r(NULL, " ", &save)) {
			const char *error;
			int entry = tls_sni_builder_add(b, name, ln->ssl_cert, ln->ssl_key, &error);
			if (entry < 0) {
				*error_r = rg_strdup_printf("%s:%u: local_name %s: %s", ln->file,
							    ln->line, name, error);
				ret = -EINVAL;
			} else if ((unsigned)entry == entries) {
				if (first != NULL)
					first[entry] = i;
				entries++;
			}
		}
		rg_free(names);
	}
	if (ret < 0) {
		tls_sni_builder_free(&b);
		rg_free(first);
		return ret;
	}
	struct tls_ctx_settings base = ctx_settings(set, NULL, NULL);
	*store_r = tls_sni_builder_finish(&b, &base);
	if (first_r != NULL)
		*first_r = first;
	return 0;
}

static int default_ctx_create(const struct settings *set, struct tls_ctx **ctx_r, char **error_r)
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
	return 0;
}

int tls_settings_ctx_create(const struct settings *set, struct tls_sni_store *store,
			    struct tls_ctx **ctx_r, char **error_r)
{
	if (default_ctx_create(set, ctx_r, error_r) < 0) {
		tls_sni_store_free(&store);
		return -EINVAL;
	}
	if (store == NULL && sni_store_build(set, &store, NULL, error_r) < 0) {
		tls_ctx_free(ctx_r);
		return -EINVAL;
	}
	if (store != NULL)
		tls_ctx_set_sni_store(*ctx_r, store);
	return 0;
}

int tls_settings_check(const struct settings *set, int *store_fd_r, char **error_r)
{
	if (store_fd_r != NULL)
		*store_fd_r = -1;
	struct tls_ctx *ctx;
	if (default_ctx_create(set, &ctx, error_r) < 0)
		return -EINVAL;
	struct tls_sni_store *store = NULL;
	unsigned *first = NULL;
	int ret = sni_store_build(set, &store, &first, error_r);
	unsigned entries = tls_sni_store_entries(store);
	for (unsigned e = 0; e < entries && ret == 0; e++) {
		struct tls_ctx *sub;
		const char *error;
		if (tls_sni_store_ctx(store, e, ctx, true, &sub, &error) < 0) {
			const struct local_name_settings *ln = &set->local_names[first[e]];
			char *cert = describe("ssl_cert", ln->ssl_cert_file);
			*error_r = rg_strdup_printf("%s:%u: local_name %s: %s (%s)", ln->file,
						    ln->line, ln->names, error, cert);
			rg_free(cert);
			ret = -EINVAL;
		} else {
			tls_ctx_free(&sub);
		}
	}
	rg_free(first);
	if (ret == 0 && store != NULL && store_fd_r != NULL) {
		*store_fd_r = tls_sni_store_fd(store);
		if (*store_fd_r < 0) {
			*error_r = rg_strdup_printf("local_name store: memfd: %s",
						    strerror(-*store_fd_r));
			ret = -EINVAL;
		}
	}
	tls_sni_store_free(&store);
	tls_ctx_free(&ctx);
	return ret;
}
