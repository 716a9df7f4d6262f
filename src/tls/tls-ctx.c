/* tls-ctx.c — server and client contexts: protocol floor, certificate
 * and key (proved to be a pair), trust anchors and CRLs, suites, groups,
 * tickets and the I/O callbacks every connection of a context gets. */
#include "tls/tls-private.h"
#include <wolfssl/error-ssl.h>
#include <wolfssl/openssl/evp.h>
#include <wolfssl/openssl/pem.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/alloc.h"
#include "lib/log.h"

static int tls_parse_min_protocol(const char *value, int *version_r, const char **error_r)
{
	static const char *const too_old[] = { "ANY", "SSLv2", "SSLv3", "TLSv1", "TLSv1.0", "TLSv1.1" };

	if (value == NULL || value[0] == '\0' || strcasecmp(value, "TLSv1.2") == 0) {
		*version_r = WOLFSSL_TLSV1_2;
		return 0;
	}
	if (strcasecmp(value, "TLSv1.3") == 0) {
		*version_r = WOLFSSL_TLSV1_3;
		return 0;
	}
	for (size_t i = 0; i < sizeof(too_old) / sizeof(too_old[0]); i++) {
		if (strcasecmp(value, too_old[i]) == 0) {
			*error_r = tls_error("ssl_min_protocol: %s is not supported: ringgate supports TLSv1.2 "
					     "and TLSv1.3",
					     too_old[i]);
			return -EINVAL;
		}
	}
	*error_r = tls_error("ssl_min_protocol: unknown value '%.40s' (use TLSv1.2 or TLSv1.3)", value);
	return -EINVAL;
}

/* wolfSSL_CTX_check_private_key in wolfSSL 5.5.4 accepts an ECDSA key of
 * the right curve that belongs to another certificate, so prove the pair:
 * sign with the key, verify with the leaf certificate's public key. */
static bool tls_key_matches_cert(const char *cert_pem, const char *key_pem)
{
	static const char msg[] = "ringgate key check";
	unsigned char sig[1024];
	size_t sig_len = sizeof(sig);
	bool ok = false;

	WOLFSSL_X509 *x509 = wolfSSL_X509_load_certificate_buffer((const unsigned char *)cert_pem,
								   (int)strlen(cert_pem), WOLFSSL_FILETYPE_PEM);
	WOLFSSL_EVP_PKEY *pub = x509 != NULL ? wolfSSL_X509_get_pubkey(x509) : NULL;
	WOLFSSL_BIO *bio = wolfSSL_BIO_new_mem_buf(key_pem, (int)strlen(key_pem));
	WOLFSSL_EVP_PKEY *priv = bio != NULL ? wolfSSL_PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	WOLFSSL_EVP_MD_CTX *sign = wolfSSL_EVP_MD_CTX_new();
	WOLFSSL_EVP_MD_CTX *verify = wolfSSL_EVP_MD_CTX_new();

	if (pub != NULL && priv != NULL && sign != NULL && verify != NULL &&
	    wolfSSL_EVP_DigestSignInit(sign, NULL, wolfSSL_EVP_sha256(), NULL, priv) == WOLFSSL_SUCCESS &&
	    wolfSSL_EVP_DigestSignUpdate(sign, msg, sizeof(msg)) == WOLFSSL_SUCCESS &&
	    wolfSSL_EVP_DigestSignFinal(sign, sig, &sig_len) == WOLFSSL_SUCCESS &&
	    wolfSSL_EVP_DigestVerifyInit(verify, NULL, wolfSSL_EVP_sha256(), NULL, pub) == WOLFSSL_SUCCESS &&
	    wolfSSL_EVP_DigestVerifyUpdate(verify, msg, sizeof(msg)) == WOLFSSL_SUCCESS &&
	    wolfSSL_EVP_DigestVerifyFinal(verify, sig, sig_len) == WOLFSSL_SUCCESS)
		ok = true;
	wolfSSL_EVP_MD_CTX_free(sign);
	wolfSSL_EVP_MD_CTX_free(verify);
	wolfSSL_EVP_PKEY_free(priv);
	wolfSSL_BIO_free(bio);
	wolfSSL_EVP_PKEY_free(pub);
	wolfSSL_X509_free(x509);
	return ok;
}

/* ssl_curve_list's canonical names (settings.c maps OpenSSL's aliases) */
static const struct {
	const char *name;
	int group;
} tls_groups[] = {
	{ "X25519", WOLFSSL_ECC_X25519 },	{ "P-256", WOLFSSL_ECC_SECP256R1 },
	{ "X448", WOLFSSL_ECC_X448 },		{ "P-384", WOLFSSL_ECC_SECP384R1 },
	{ "P-521", WOLFSSL_ECC_SECP521R1 },	{ "ffdhe2048", WOLFSSL_FFDHE_2048 },
	{ "ffdhe3072", WOLFSSL_FFDHE_3072 },
};
#define TLS_GROUPS_COUNT (sizeof(tls_groups) / sizeof(tls_groups[0]))

/* The supported groups in order. The default puts X25519 first (what
 * clients send a key share for; with Debian's wolfSSL it also costs a third
 * of P-256, with the asm build the two cost the same) and P-256 second, so
 * both are served without a HelloRetryRequest: TLS 1.3 takes the client's
 * key share when its group is in the list, and asks for the first listed
 * group the client supports otherwise. TLS 1.2 ECDHE takes a listed curve
 * the client offers (wolfSSL prefers 256-bit ones, then the client's
 * order); the EC curves of a list go through set1_curves_list for that,
 * which also disables the unlisted ones for TLS 1.2. */
static int tls_set_groups(WOLFSSL_CTX *w, const char *list, const char **error_r)
{
	int groups[TLS_GROUPS_COUNT];
	int count = 0;
	char ec[64] = "";

	if (list == NULL || list[0] == '\0') {
		for (size_t i = 0; i < TLS_GROUPS_COUNT; i++)
			groups[count++] = tls_groups[i].group;
	} else {
		const char *p = list;
		while (*p != '\0') {
			size_t len = strcspn(p, ":");
			size_t i;
			for (i = 0; i < TLS_GROUPS_COUNT; i++) {
				if (strlen(tls_groups[i].name) == len &&
				    strncmp(p, tls_groups[i].name, len) == 0)
					break;
			}
			if (i == TLS_GROUPS_COUNT || count == (int)TLS_GROUPS_COUNT) {
				*error_r = tls_error("ssl_curve_list: unknown curve '%.*s'",
						     (int)(len < 40 ? len : 40), p);
				return -EINVAL;
			}
			groups[count++] = tls_groups[i].group;
			if (strncmp(p, "ffdhe", 5) != 0 && strlen(ec) + len + 2 <= sizeof(ec)) {
				if (ec[0] != '\0')
					strcat(ec, ":");
				strncat(ec, p, len);
			}
			p += len;
			if (*p == ':')
				p++;
		}
	}
	if (ec[0] != '\0' && wolfSSL_CTX_set1_curves_list(w, ec) != WOLFSSL_SUCCESS) {
		*error_r = tls_error("ssl_curve_list: wolfSSL refused '%s'", ec);
		return -EINVAL;
	}
	if (wolfSSL_CTX_set_groups(w, groups, count) != WOLFSSL_SUCCESS) {
		*error_r = tls_error("ssl_curve_list: wolfSSL refused the list");
		return -EINVAL;
	}
	return 0;
}

/* The next PEM block labelled label ("CERTIFICATE", "X509 CRL") at or after
 * *pos: its start and length (BEGIN through END line), *pos moved past it;
 * NULL when there is none. */
static const char *tls_pem_next(const char **pos, const char *label, size_t *len_r)
{
	char begin[40], end[40];
	snprintf(begin, sizeof(begin), "-----BEGIN %s-----", label);
	snprintf(end, sizeof(end), "-----END %s-----", label);
	const char *b = strstr(*pos, begin);
	const char *e = b != NULL ? strstr(b, end) : NULL;
	if (e == NULL)
		return NULL;
	e += strlen(end);
	*pos = e;
	*len_r = (size_t)(e - b);
	return b;
}

/* ssl_ca: its certificates are trust anchors (for building our own chain,
 * and with verify_client for clients' certificates); with verify_client and
 * require_crl, its CRLs are checked for every certificate of a client's
 * chain (Dovecot's X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL).
 * Dovecot's ssl_ca file holds both, "CA certificate(s) followed by the
 * matching CRL(s)". */
static int tls_ctx_load_ca(struct tls_ctx *ctx, const struct tls_ctx_settings *set,
			   const char **error_r)
{
	WOLFSSL_CTX *w = ctx->wctx;
	const char *ca = set->ca_pem != NULL ? set->ca_pem : "";
	const char *pos = ca, *block;
	size_t len;
	unsigned certs = 0;
	int ret;

	while ((block = tls_pem_next(&pos, "CERTIFICATE", &len)) != NULL) {
		ret = wolfSSL_CTX_load_verify_buffer(w, (const unsigned char *)block, (long)len,
						     WOLFSSL_FILETYPE_PEM);
		if (ret != WOLFSSL_SUCCESS) {
			*error_r = tls_error("ssl_ca: certificate %u is not valid (%s)", certs + 1,
					     tls_wolf_reason(ret));
			return -EINVAL;
		}
		certs++;
	}
	if (ca[0] != '\0' && certs == 0 && strstr(ca, "-----BEGIN X509 CRL-----") == NULL) {
		*error_r = tls_error("ssl_ca: not valid PEM certificates (no certificate found)");
		return -EINVAL;
	}
	const char *field = set->cert_username_field != NULL && set->cert_username_field[0] != '\0' ?
				    set->cert_username_field : "commonName";
	ctx->username_nid = wolfSSL_OBJ_txt2nid(field);
	if (ctx->username_nid <= 0) {
		*error_r = tls_error("ssl_cert_username_field: unknown field '%.60s'", field);
		return -EINVAL;
	}
	if (!set->verify_client)
		return 0;
	if (certs == 0) {
		/* Dovecot: "Can't verify remote client certs without CA" */
		*error_r = tls_error("ssl_verify_client_cert = yes needs ssl_ca (the CA certificates "
				     "that issue client certificates)");
		return -EINVAL;
	}
	ctx->verify_client = true;
	wolfSSL_CTX_set_verify(w, WOLFSSL_VERIFY_PEER, tls_verify_cb);
	/* the CertificateRequest names the CAs (Dovecot's
	 * SSL_CTX_set_client_CA_list), so a client with several
	 * certificates can pick the right one; the context owns the list */
	WOLF_STACK_OF(WOLFSSL_X509_NAME) *names = wolfSSL_sk_X509_NAME_new(NULL);
	if (names == NULL)
		log_fatal("tls: out of memory");
	pos = ca;
	while ((block = tls_pem_next(&pos, "CERTIFICATE", &len)) != NULL) {
		WOLFSSL_X509 *x = wolfSSL_X509_load_certificate_buffer((const unsigned char *)block,
									(int)len, WOLFSSL_FILETYPE_PEM);
		WOLFSSL_X509_NAME *name = x != NULL ? wolfSSL_X509_get_subject_name(x) : NULL;
		WOLFSSL_X509_NAME *dup = name != NULL ? wolfSSL_X509_NAME_dup(name) : NULL;
		if (dup != NULL && wolfSSL_sk_X509_NAME_push(names, dup) <= 0)
			wolfSSL_X509_NAME_free(dup);
		wolfSSL_X509_free(x);
	}
	wolfSSL_CTX_set_client_CA_list(w, names);
	if (set->require_crl) {
		if (wolfSSL_CTX_EnableCRL(w, WOLFSSL_CRL_CHECKALL) != WOLFSSL_SUCCESS) {
			*error_r = tls_error("ssl_require_crl: wolfSSL cannot check CRLs");
			return -EINVAL;
		}
		unsigned crls = 0;
		pos = ca;
		while ((block = tls_pem_next(&pos, "X509 CRL", &len)) != NULL) {
			ret = wolfSSL_CTX_LoadCRLBuffer(w, (const unsigned char *)block, (long)len,
							WOLFSSL_FILETYPE_PEM);
			if (ret != WOLFSSL_SUCCESS) {
				*error_r = tls_error("ssl_ca: CRL %u is not valid (%s)", crls + 1,
						     tls_wolf_reason(ret));
				return -EINVAL;
			}
			crls++;
		}
	}
	/* a resumed session carries no client certificate: have clients show
	 * theirs on every connection */
	/* (in 5.5.4 the first returns WOLFSSL_SUCCESS, the second 0) */
	if (wolfSSL_CTX_NoTicketTLSv12(w) != WOLFSSL_SUCCESS || wolfSSL_CTX_no_ticket_TLSv13(w) != 0) {
		*error_r = tls_error("ssl_verify_client_cert: wolfSSL cannot turn session tickets off");
		return -EINVAL;
	}
	return 0;
}

/* owner: the context wolfSSL's ticket and servername callbacks get */
static int tls_ctx_configure(struct tls_ctx *ctx, const struct tls_ctx_settings *set,
			     struct tls_ctx *owner, bool prove_pair, const char **error_r)
{
	WOLFSSL_CTX *w = ctx->wctx;
	int version, ret;

	if (tls_parse_min_protocol(set->min_protocol, &version, error_r) < 0)
		return -EINVAL;
	if (wolfSSL_CTX_SetMinVersion(w, version) != WOLFSSL_SUCCESS) {
		*error_r = tls_error("ssl_min_protocol: wolfSSL refused it");
		return -EINVAL;
	}
	if (set->cert_pem == NULL || set->cert_pem[0] == '\0') {
		*error_r = tls_error("ssl_cert: missing");
		return -EINVAL;
	}
	if (set->key_pem == NULL || set->key_pem[0] == '\0') {
		*error_r = tls_error("ssl_key: missing");
		return -EINVAL;
	}
	ret = wolfSSL_CTX_use_certificate_chain_buffer_format(w, (const unsigned char *)set->cert_pem,
							      (long)strlen(set->cert_pem),
							      WOLFSSL_FILETYPE_PEM);
	if (ret != WOLFSSL_SUCCESS) {
		*error_r = tls_error("ssl_cert: not a valid PEM certificate chain (%s)", tls_wolf_reason(ret));
		return -EINVAL;
	}
	ret = wolfSSL_CTX_use_PrivateKey_buffer(w, (const unsigned char *)set->key_pem, (long)strlen(set->key_pem),
						WOLFSSL_FILETYPE_PEM);
	if (ret != WOLFSSL_SUCCESS) {
		*error_r = tls_error("ssl_key: not a valid PEM private key (%s)", tls_wolf_reason(ret));
		return -EINVAL;
	}
	if (wolfSSL_CTX_check_private_key(w) != WOLFSSL_SUCCESS ||
	    (prove_pair && !tls_key_matches_cert(set->cert_pem, set->key_pem))) {
		*error_r = tls_error("ssl_key: does not match ssl_cert");
		return -EINVAL;
	}
	if (tls_ctx_load_ca(ctx, set, error_r) < 0)
		return -EINVAL;
	if (set->cipher_list != NULL && set->cipher_list[0] != '\0') {
		if (wolfSSL_CTX_set_cipher_list(w, set->cipher_list) != WOLFSSL_SUCCESS) {
			*error_r = tls_error("ssl_cipher_list: wolfSSL accepts none of '%.80s'", set->cipher_list);
			return -EINVAL;
		}
		/* the list is for TLS <= 1.2; TLS 1.3 keeps wolfSSL's suites,
		 * which it would drop from a list that does not name them */
		char *list = rg_strdup_printf("TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:"
					      "TLS13-CHACHA20-POLY1305-SHA256:%s",
					      set->cipher_list);
		ret = wolfSSL_CTX_set_cipher_list(w, list);
		rg_free(list);
		if (ret != WOLFSSL_SUCCESS) {
			*error_r = tls_error("ssl_cipher_list: wolfSSL accepts none of '%.80s'", set->cipher_list);
			return -EINVAL;
		}
	}
	if (set->dh_pem != NULL && set->dh_pem[0] != '\0') {
		/* only DHE suites (TLS 1.2) use them; without, those are skipped */
		ret = wolfSSL_CTX_SetTmpDH_buffer(w, (const unsigned char *)set->dh_pem,
						  (long)strlen(set->dh_pem), WOLFSSL_FILETYPE_PEM);
		if (ret != WOLFSSL_SUCCESS) {
			*error_r = tls_error("ssl_dh: not valid PEM DH parameters (%s)", tls_wolf_reason(ret));
			return -EINVAL;
		}
	}
	ctx->client_order = !set->prefer_server_ciphers;
	if (ctx->client_order)
		wolfSSL_CTX_UseClientSuites(w);

	/* resumption by ticket only: a server-side cache would be private to
	 * one login process and cost memory per session */
	wolfSSL_CTX_set_session_cache_mode(w, WOLFSSL_SESS_CACHE_OFF);
#ifdef HAVE_EXT_CACHE
	/* and with a ticket too: builds with WOLFSSL_FORCE_CACHE_ON_TICKET
	 * (Debian's --enable-distro) otherwise copy every ticketed session
	 * into the cache (4% of a full handshake's CPU) */
	wolfSSL_CTX_set_session_cache_mode(w, WOLFSSL_SESS_CACHE_NO_INTERNAL);
#endif
	if (wolfSSL_CTX_set_TicketEncCb(w, tls_ticket_cb) != WOLFSSL_SUCCESS ||
	    wolfSSL_CTX_set_TicketEncCtx(w, owner) != WOLFSSL_SUCCESS) {
		*error_r = tls_error("wolfSSL: session tickets unavailable");
		return -EINVAL;
	}
	wolfSSL_CTX_SetIORecv(w, tls_io_recv);
	wolfSSL_CTX_SetIOSend(w, tls_io_send);
	if (tls_set_groups(w, set->curve_list, error_r) < 0)
		return -EINVAL;
	/* ServerHello..Finished in as few records and sends as possible */
	wolfSSL_CTX_set_group_messages(w);
	wolfSSL_CTX_set_servername_callback(w, tls_sni_cb);
	wolfSSL_CTX_set_servername_arg(w, owner);
	return 0;
}

int tls_ctx_create_sub(const struct tls_ctx_settings *set, struct tls_ctx *owner, bool prove_pair,
		       struct tls_ctx **ctx_r, const char **error_r)
{
	tls_init();

	struct tls_ctx *ctx = rg_calloc(1, sizeof(*ctx));
	ctx->refcount = 1;
	ctx->parent = owner;
	ctx->wctx = wolfSSL_CTX_new(wolfSSLv23_server_method());
	if (ctx->wctx == NULL)
		log_fatal("tls: wolfSSL_CTX_new failed");
	if (tls_ctx_configure(ctx, set, owner != NULL ? owner : ctx, prove_pair, error_r) < 0) {
		tls_ctx_free(&ctx);
		return -EINVAL;
	}
	*ctx_r = ctx;
	return 0;
}

int tls_ctx_create(const struct tls_ctx_settings *set, struct tls_ctx **ctx_r, const char **error_r)
{
	tls_init();

	struct tls_ctx *ctx = rg_calloc(1, sizeof(*ctx));
	ctx->refcount = 1;
	if (wc_InitRng(&ctx->rng) != 0)
		log_fatal("tls: cannot initialise the random generator");
	ctx->wctx = wolfSSL_CTX_new(wolfSSLv23_server_method());
	if (ctx->wctx == NULL)
		log_fatal("tls: wolfSSL_CTX_new failed");
	if (tls_ctx_configure(ctx, set, ctx, true, error_r) < 0) {
		tls_ctx_free(&ctx);
		return -EINVAL;
	}
	/* tickets work at once; set_ticket_keys makes them cross-process */
	uint8_t key[TLS_TICKET_KEY_SIZE];
	if (wc_RNG_GenerateBlock(&ctx->rng, key, sizeof(key)) != 0)
		log_fatal("tls: cannot make a ticket key");
	tls_ticket_key_set(&ctx->cur, key);
	memset(key, 0, sizeof(key));
	*ctx_r = ctx;
	return 0;
}

int tls_ctx_create_client(const char *ca_pem, bool verify, struct tls_ctx **ctx_r,
			  const char **error_r)
{
	tls_init();
	struct tls_ctx *ctx = rg_calloc(1, sizeof(*ctx));
	ctx->refcount = 1;
	ctx->client = true;
	if (wc_InitRng(&ctx->rng) != 0)
		log_fatal("tls: cannot initialise the random generator");
	ctx->wctx = wolfSSL_CTX_new(wolfSSLv23_client_method());
	if (ctx->wctx == NULL)
		log_fatal("tls: wolfSSL_CTX_new failed");
	WOLFSSL_CTX *w = ctx->wctx;
	(void)wolfSSL_CTX_SetMinVersion(w, WOLFSSL_TLSV1_2);
	wolfSSL_CTX_SetIORecv(w, tls_io_recv);
	wolfSSL_CTX_SetIOSend(w, tls_io_send);
	wolfSSL_CTX_set_session_cache_mode(w, WOLFSSL_SESS_CACHE_OFF);
	if (verify) {
		if (ca_pem == NULL || ca_pem[0] == '\0' ||
		    wolfSSL_CTX_load_verify_buffer(w, (const unsigned char *)ca_pem,
						   (long)strlen(ca_pem),
						   WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS) {
			*error_r = tls_error("ssl_client_ca_file: no usable CA certificate");
			tls_ctx_free(&ctx);
			return -EINVAL;
		}
		wolfSSL_CTX_set_verify(w, WOLFSSL_VERIFY_PEER, NULL);
	} else {
		wolfSSL_CTX_set_verify(w, WOLFSSL_VERIFY_NONE, NULL);
	}
	*ctx_r = ctx;
	return 0;
}

void tls_ctx_reseed(struct tls_ctx *ctx)
{
	wc_FreeRng(&ctx->rng);
	if (wc_InitRng(&ctx->rng) != 0)
		log_fatal("tls: cannot initialise the random generator");
}

void tls_ctx_free(struct tls_ctx **_ctx)
{
	struct tls_ctx *ctx = *_ctx;

	if (ctx == NULL)
		return;
	*_ctx = NULL;
	if (--ctx->refcount > 0)
		return;
	for (unsigned i = 0; i < ctx->sni_size; i++) {
		struct tls_sni_entry *e = &ctx->sni[i];
		if (e->name == NULL)
			continue;
		if (e->sub->parent == ctx && e->sub->refcount > 1) {
			/* on its own again: its own DRBG again */
			e->sub->parent = NULL;
			tls_ctx_reseed(e->sub);
		}
		tls_ctx_free(&e->sub);
		rg_free(e->name);
	}
	rg_free(ctx->sni);
	tls_sni_cache_free(ctx);
	tls_sni_store_free(&ctx->store);
	wolfSSL_CTX_free(ctx->wctx);
	tls_ticket_key_clear(&ctx->cur);
	tls_ticket_key_clear(&ctx->prev);
	wc_FreeRng(&ctx->rng);
	rg_free(ctx);
}
