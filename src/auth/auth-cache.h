/* auth-cache.h — Dovecot's auth cache: results of passdb and userdb lookups
 * kept for auth_cache_ttl (failures "user unknown" for
 * auth_cache_negative_ttl), bounded by auth_cache_size bytes (least
 * recently used go first). A passdb verify is answered from the cache when
 * the password matches the one that succeeded before; that match is a keyed
 * hash (SipHash with a per-process random key), so a cached login costs no
 * PAM, crypt or network call and the cache holds no password. A different
 * password is a miss (the store is asked again: the password may have
 * changed). Keys are the module's cache_key template expanded per request
 * (auth-chain.c). Times are passed in so tests control the clock. */
#ifndef RG_AUTH_CACHE_H
#define RG_AUTH_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct auth_cache;

enum auth_cache_kind {
	AUTH_CACHE_OK,       /* found: fields (and, for a passdb, the password hash) */
	AUTH_CACHE_UNKNOWN,  /* user unknown: a negative entry */
};

struct auth_cache_entry_view {
	enum auth_cache_kind kind;
	const char *passdb_fields; /* TAB-separated (auth_fields_export form) */
	const char *userdb_fields;
	const char *user;          /* the user name after the lookup */
};

/* max_bytes 0: no cache (auth_cache_new returns NULL) */
struct auth_cache *auth_cache_new(size_t max_bytes, unsigned ttl_secs, unsigned negative_ttl_secs);
void auth_cache_free(struct auth_cache *cache);

/* Look key up. Passdb entries: pw (NULL for a lookup without password)
 * must match. true on a hit (*view_r valid until the next call). */
bool auth_cache_lookup(struct auth_cache *cache, const char *key, const uint8_t *pw,
		       size_t pw_len, int64_t now_ms, struct auth_cache_entry_view *view_r);
/* Store (replacing) an entry; owner is the user name flush matches. pw:
 * the password that succeeded (a passdb), or NULL. */
void auth_cache_put(struct auth_cache *cache, const char *key, const char *owner,
		    enum auth_cache_kind kind, const uint8_t *pw, size_t pw_len,
		    const char *passdb_fields, const char *userdb_fields, const char *user,
		    int64_t now_ms);
/* Drop the entries of these users (NULL or empty: all). Returns how many. */
unsigned auth_cache_flush(struct auth_cache *cache, const char *const *users, unsigned count);
unsigned auth_cache_count(const struct auth_cache *cache);
size_t auth_cache_bytes(const struct auth_cache *cache);

#endif
