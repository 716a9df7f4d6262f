/* tls-ticket.c — session tickets sealed with keys every login process
 * shares (master makes and rotates them), so resumption works whichever
 * process a client reaches. */
#include "tls/tls-private.h"

#include <string.h>

#include "lib/log.h"

void tls_ticket_key_clear(struct tls_ticket_key *key)
{
	if (key->set)
		wc_AesFree(&key->aes);
	memset(key, 0, sizeof(*key));
}

void tls_ticket_key_set(struct tls_ticket_key *key, const uint8_t material[TLS_TICKET_KEY_SIZE])
{
	tls_ticket_key_clear(key);
	memcpy(key->name, material, TICKET_NAME_SIZE);
	if (wc_AesInit(&key->aes, NULL, INVALID_DEVID) != 0 ||
	    wc_AesGcmSetKey(&key->aes, material + TICKET_NAME_SIZE, TICKET_AES_SIZE) != 0)
		log_fatal("tls: cannot set the AES-256-GCM ticket key");
	key->set = true;
}

static struct tls_ctx *tls_ticket_owner(struct tls_ctx *ctx)
{
	return ctx->parent != NULL ? ctx->parent : ctx;
}

/* Our own ticket sealing (instead of wolfSSL's per-process default key) so
 * that every login process opens every other's tickets. Layout inside
 * wolfSSL's ticket: key_name = key name, iv = 12-byte GCM nonce (rest zero),
 * mac = 16-byte GCM tag (rest zero); key name and nonce are authenticated. */
int tls_ticket_cb(WOLFSSL *ssl, unsigned char key_name[WOLFSSL_TICKET_NAME_SZ],
			 unsigned char iv[WOLFSSL_TICKET_IV_SZ], unsigned char mac[WOLFSSL_TICKET_MAC_SZ],
			 int enc, unsigned char *ticket, int in_len, int *out_len, void *arg)
{
	struct tls_ctx *ctx = tls_ticket_owner(arg);
	uint8_t aad[TICKET_NAME_SIZE + TICKET_IV_SIZE];
	(void)ssl;

	if (in_len < 0)
		return WOLFSSL_TICKET_RET_FATAL;
	if (enc) {
		memcpy(key_name, ctx->cur.name, TICKET_NAME_SIZE);
		memset(iv, 0, WOLFSSL_TICKET_IV_SZ);
		memset(mac, 0, WOLFSSL_TICKET_MAC_SZ);
		if (wc_RNG_GenerateBlock(&ctx->rng, iv, TICKET_IV_SIZE) != 0)
			return WOLFSSL_TICKET_RET_FATAL;
		memcpy(aad, key_name, TICKET_NAME_SIZE);
		memcpy(aad + TICKET_NAME_SIZE, iv, TICKET_IV_SIZE);
		if (wc_AesGcmEncrypt(&ctx->cur.aes, ticket, ticket, (word32)in_len, iv, TICKET_IV_SIZE, mac,
				     TICKET_TAG_SIZE, aad, sizeof(aad)) != 0)
			return WOLFSSL_TICKET_RET_FATAL;
		*out_len = in_len;
		return WOLFSSL_TICKET_RET_OK;
	}

	struct tls_ticket_key *key;
	if (ctx->cur.set && memcmp(key_name, ctx->cur.name, TICKET_NAME_SIZE) == 0)
		key = &ctx->cur;
	else if (ctx->prev.set && memcmp(key_name, ctx->prev.name, TICKET_NAME_SIZE) == 0)
		key = &ctx->prev;
	else
		return WOLFSSL_TICKET_RET_REJECT; /* an unknown or retired key: full handshake */
	memcpy(aad, key_name, TICKET_NAME_SIZE);
	memcpy(aad + TICKET_NAME_SIZE, iv, TICKET_IV_SIZE);
	if (wc_AesGcmDecrypt(&key->aes, ticket, ticket, (word32)in_len, iv, TICKET_IV_SIZE, mac,
			     TICKET_TAG_SIZE, aad, sizeof(aad)) != 0)
		return WOLFSSL_TICKET_RET_REJECT;
	*out_len = in_len;
	/* a ticket under the previous key is replaced, so clients move on
	 * before that key is retired */
	return key == &ctx->cur ? WOLFSSL_TICKET_RET_OK : WOLFSSL_TICKET_RET_CREATE;
}

void tls_ctx_set_ticket_keys(struct tls_ctx *ctx, const uint8_t current[TLS_TICKET_KEY_SIZE],
			     const uint8_t *previous)
{
	tls_ticket_key_set(&ctx->cur, current);
	if (previous != NULL)
		tls_ticket_key_set(&ctx->prev, previous);
	else
		tls_ticket_key_clear(&ctx->prev);
}
