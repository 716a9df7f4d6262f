/* tls-sni.c — certificates by server name: a context's table of names
 * (open addressing, wildcards of one label) with contexts built by the
 * caller, its store of local_name certificates (tls-sni-store.c) whose
 * contexts it builds on first use and keeps in a bounded LRU, and
 * wolfSSL's servername callback that switches a connection to the named
 * sub-context. */
#include "tls/tls-private.h"

#include <errno.h>
#include <string.h>

#include "lib/alloc.h"
#include "lib/hash.h"
#include "lib/log.h"

/* how many SNI names one context may hold: bounds the table's growth */
#define SNI_NAMES_MAX (1u << 20)

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
	char name[TLS_SNI_NAME_MAX + 2];

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

void tls_ctx_set_sni_store(struct tls_ctx *ctx, struct tls_sni_store *store)
{
	tls_sni_cache_free(ctx);
	tls_sni_store_free(&ctx->store);
	ctx->store = store;
}

void tls_sni_cache_free(struct tls_ctx *ctx)
{
	for (unsigned i = 0; i < ctx->cache_count; i++)
		tls_ctx_free(&ctx->cache[i].sub);
	rg_free(ctx->cache);
	ctx->cache = NULL;
	ctx->cache_count = 0;
}

/* The context of the store's entry for requested: cached, or built now
 * (replacing the least recently used when the cache is full); NULL when
 * no name matches or it cannot be built (the default certificate is
 * served then). A linear scan: a few hundred entries cost less than a
 * handshake's first hash. */
static struct tls_ctx *tls_sni_lazy(struct tls_ctx *ctx, const char *requested)
{
	int entry = tls_sni_store_find(ctx->store, requested);
	if (entry < 0)
		return NULL;
	struct tls_sni_cached *victim = NULL;
	for (unsigned i = 0; i < ctx->cache_count; i++) {
		struct tls_sni_cached *c = &ctx->cache[i];
		if (c->entry == (unsigned)entry) {
			c->used = ++ctx->cache_clock;
			return c->sub;
		}
		if (victim == NULL || c->used < victim->used)
			victim = c;
	}
	struct tls_ctx *sub;
	const char *error;
	if (tls_sni_store_ctx(ctx->store, (unsigned)entry, ctx, false, &sub, &error) < 0) {
		/* master built it at start-up: a file changed since? */
		log_error("tls: local_name %.80s: %s (serving the default certificate)", requested,
			  error);
		return NULL;
	}
	unsigned room = tls_sni_store_entries(ctx->store);
	if (room > TLS_SNI_CACHE_MAX)
		room = TLS_SNI_CACHE_MAX;
	if (ctx->cache == NULL)
		ctx->cache = rg_calloc(room, sizeof(*ctx->cache));
	if (ctx->cache_count < room)
		victim = &ctx->cache[ctx->cache_count++];
	else
		tls_ctx_free(&victim->sub); /* connections keep their WOLFSSL_CTX */
	victim->entry = (unsigned)entry;
	victim->used = ++ctx->cache_clock;
	victim->sub = sub;
	return sub;
}

int tls_sni_cb(WOLFSSL *ssl, int *alert, void *arg)
{
	struct tls_ctx *ctx = arg;
	(void)alert;

	const char *requested = wolfSSL_get_servername(ssl, WOLFSSL_SNI_HOST_NAME);
	if (requested == NULL)
		return 0;
	struct tls_ctx *sub = tls_sni_lookup(ctx, requested);
	if (sub == NULL && ctx->store != NULL)
		sub = tls_sni_lazy(ctx, requested);
	if (sub != NULL && wolfSSL_set_SSL_CTX(ssl, sub->wctx) == NULL)
		return 0; /* keep the default certificate: better than failing */
	return 0; /* SSL_TLSEXT_ERR_OK: unknown names get the default */
}

int tls_ctx_add_sni(struct tls_ctx *ctx, const char *name, struct tls_ctx *sub, const char **error_r)
{
	char norm[TLS_SNI_NAME_MAX + 1];

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
