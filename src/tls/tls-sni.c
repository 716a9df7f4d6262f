/* tls-sni.c — certificates by server name: a context's table of names
 * (open addressing, wildcards of one label) and wolfSSL's servername
 * callback that switches a connection to the named sub-context. */
#include "tls/tls-private.h"

#include <errno.h>
#include <string.h>

#include "lib/alloc.h"
#include "lib/hash.h"

/* longest DNS name */
#define SNI_NAME_MAX 253
/* how many SNI names one context may hold: bounds the table's growth */
#define SNI_NAMES_MAX (1u << 20)

/* Lowercase a client's or the administrator's name into out; false when it
 * is not a host name we could match (empty, too long, odd characters). */
static bool tls_sni_normalize(const char *name, char out[SNI_NAME_MAX + 1], bool allow_wildcard)
{
	size_t len = strlen(name);

	if (len == 0 || len > SNI_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		else if (c == '*') {
			/* only a whole first label: "*.example.com" */
			if (!allow_wildcard || i != 0 || len < 3 || name[1] != '.')
				return false;
		} else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
			     c == '.' || c == '_'))
			return false;
		out[i] = c;
	}
	out[len] = '\0';
	return out[0] != '.' && out[len - 1] != '.' && strstr(out, "..") == NULL;
}

static struct tls_sni_entry *tls_sni_slot(const struct tls_ctx *ctx, const char *name)
{
	unsigned mask = ctx->sni_size - 1;
	for (unsigned i = hash_str(name) & mask;; i = (i + 1) & mask) {
		struct tls_sni_entry *e = &ctx->sni[i];
		if (e->name == NULL || strcmp(e->name, name) == 0)
			return e;
	}
}

static void tls_sni_grow(struct tls_ctx *ctx)
{
	struct tls_sni_entry *old = ctx->sni;
	unsigned old_size = ctx->sni_size;

	ctx->sni_size = old_size == 0 ? 64 : old_size * 2;
	ctx->sni = rg_calloc(ctx->sni_size, sizeof(*ctx->sni));
	for (unsigned i = 0; i < old_size; i++) {
		if (old[i].name != NULL)
			*tls_sni_slot(ctx, old[i].name) = old[i];
	}
	rg_free(old);
}

static struct tls_ctx *tls_sni_lookup(const struct tls_ctx *ctx, const char *requested)
{
	char name[SNI_NAME_MAX + 2];

	if (ctx->sni_count == 0 || !tls_sni_normalize(requested, name + 1, false))
		return NULL;
	struct tls_sni_entry *e = tls_sni_slot(ctx, name + 1);
	if (e->name != NULL)
		return e->sub;
	/* "*.example.com" covers "a.example.com" but neither "example.com"
	 * nor "a.b.example.com" */
	char *dot = strchr(name + 1, '.');
	if (dot == NULL || strchr(dot + 1, '.') == NULL)
		return NULL;
	dot[-1] = '*';
	e = tls_sni_slot(ctx, dot - 1);
	return e->name != NULL ? e->sub : NULL;
}

int tls_sni_cb(WOLFSSL *ssl, int *alert, void *arg)
{
	struct tls_ctx *ctx = arg;
	(void)alert;

	const char *requested = wolfSSL_get_servername(ssl, WOLFSSL_SNI_HOST_NAME);
	if (requested == NULL)
		return 0;
	struct tls_ctx *sub = tls_sni_lookup(ctx, requested);
	if (sub != NULL && wolfSSL_set_SSL_CTX(ssl, sub->wctx) == NULL)
		return 0; /* keep the default certificate: better than failing */
	return 0; /* SSL_TLSEXT_ERR_OK: unknown names get the default */
}

int tls_ctx_add_sni(struct tls_ctx *ctx, const char *name, struct tls_ctx *sub, const char **error_r)
{
	char norm[SNI_NAME_MAX + 1];

	if (!tls_sni_normalize(name, norm, true)) {
		*error_r = tls_error("local_name %.80s: not a valid host name", name);
		return -EINVAL;
	}
	if (sub == ctx || sub->sni_count > 0 || (sub->parent != NULL && sub->parent != ctx)) {
		*error_r = tls_error("local_name %s: its context cannot serve as a SNI certificate", norm);
		return -EINVAL;
	}
	if (ctx->sni_count >= SNI_NAMES_MAX) {
		*error_r = tls_error("local_name %s: more than %u names", norm, SNI_NAMES_MAX);
		return -EINVAL;
	}
	if ((ctx->sni_count + 1) * 2 > ctx->sni_size)
		tls_sni_grow(ctx);
	struct tls_sni_entry *e = tls_sni_slot(ctx, norm);
	if (e->name != NULL) {
		*error_r = tls_error("local_name %s: given twice", norm);
		return -EINVAL;
	}
	e->name = rg_strdup(norm);
	e->sub = sub;
	sub->refcount++;
	sub->parent = ctx;
	/* it draws ticket IVs from ctx's DRBG (tls_ticket_owner): one DRBG
	 * per tree, so a forked process reseeds one (tls_ctx_reseed) */
	wc_FreeRng(&sub->rng);
	ctx->sni_count++;
	return 0;
}
