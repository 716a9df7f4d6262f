#include "auth/auth-cache.h"

#include "lib/alloc.h"
#include "lib/siphash.h"

#include <string.h>
#include <sys/random.h>

#define BUCKETS 4096

/* Invariant: every entry is in one bucket chain and in the LRU list (head
 * most recently used); bytes is the sum of the entries' sizes. */
struct entry {
	struct entry *hnext;
	struct entry *prev, *next; /* LRU */
	char *key, *owner, *user, *pfields, *ufields;
	enum auth_cache_kind kind;
	bool have_pw;
	uint64_t pw_hash;
	int64_t created_ms;
	size_t size;
};

struct auth_cache {
	struct entry *buckets[BUCKETS];
	struct entry *head, *tail;
	size_t bytes, max_bytes;
	unsigned count;
	int64_t ttl_ms, negative_ttl_ms;
	uint8_t key[16];    /* buckets */
	uint8_t pw_key[16]; /* password hashes */
};

struct auth_cache *auth_cache_new(size_t max_bytes, unsigned ttl_secs, unsigned negative_ttl_secs)
{
	if (max_bytes == 0)
		return NULL;
	struct auth_cache *c = rg_calloc(1, sizeof(*c));
	c->max_bytes = max_bytes;
	c->ttl_ms = (int64_t)ttl_secs * 1000;
	c->negative_ttl_ms = (int64_t)negative_ttl_secs * 1000;
	if (getrandom(c->key, sizeof(c->key), 0) != (ssize_t)sizeof(c->key) ||
	    getrandom(c->pw_key, sizeof(c->pw_key), 0) != (ssize_t)sizeof(c->pw_key)) {
		rg_free(c);
		return NULL;
	}
	return c;
}

static struct entry **bucket(struct auth_cache *c, const char *key)
{
	return &c->buckets[siphash24(c->key, key, strlen(key)) % BUCKETS];
}

static void entry_unlink(struct auth_cache *c, struct entry *e)
{
	for (struct entry **p = bucket(c, e->key); *p != NULL; p = &(*p)->hnext) {
		if (*p == e) {
			*p = e->hnext;
			break;
		}
	}
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	c->bytes -= e->size;
	c->count--;
	rg_free(e->key);
	rg_free(e->owner);
	rg_free(e->user);
	rg_free(e->pfields);
	rg_free(e->ufields);
	rg_free(e);
}

void auth_cache_free(struct auth_cache *c)
{
	if (c == NULL)
		return;
	while (c->head != NULL)
		entry_unlink(c, c->head);
	explicit_bzero(c->pw_key, sizeof(c->pw_key));
	rg_free(c);
}

static struct entry *find(struct auth_cache *c, const char *key)
{
	for (struct entry *e = *bucket(c, key); e != NULL; e = e->hnext) {
		if (strcmp(e->key, key) == 0)
			return e;
	}
	return NULL;
}

static void lru_front(struct auth_cache *c, struct entry *e)
{
	if (c->head == e)
		return;
	e->prev->next = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = NULL;
	e->next = c->head;
	c->head->prev = e;
	c->head = e;
}

bool auth_cache_lookup(struct auth_cache *c, const char *key, const uint8_t *pw,
		       size_t pw_len, int64_t now_ms, struct auth_cache_entry_view *view_r)
{
	if (c == NULL)
		return false;
	struct entry *e = find(c, key);
	if (e == NULL)
		return false;
	int64_t ttl = e->kind == AUTH_CACHE_UNKNOWN ? c->negative_ttl_ms : c->ttl_ms;
	if (now_ms - e->created_ms >= ttl) {
		entry_unlink(c, e);
		return false;
	}
	if (e->kind == AUTH_CACHE_OK && pw != NULL &&
	    (!e->have_pw || siphash24(c->pw_key, pw, pw_len) != e->pw_hash))
		return false; /* another password: ask the store */
	lru_front(c, e);
	view_r->kind = e->kind;
	view_r->passdb_fields = e->pfields;
	view_r->userdb_fields = e->ufields;
	view_r->user = e->user;
	return true;
}

void auth_cache_put(struct auth_cache *c, const char *key, const char *owner,
		    enum auth_cache_kind kind, const uint8_t *pw, size_t pw_len,
		    const char *passdb_fields, const char *userdb_fields, const char *user,
		    int64_t now_ms)
{
	if (c == NULL)
		return;
	struct entry *old = find(c, key);
	if (old != NULL)
		entry_unlink(c, old);
	struct entry *e = rg_calloc(1, sizeof(*e));
	e->key = rg_strdup(key);
	e->owner = rg_strdup(owner != NULL ? owner : "");
	e->user = rg_strdup(user != NULL ? user : "");
	e->pfields = rg_strdup(passdb_fields != NULL ? passdb_fields : "");
	e->ufields = rg_strdup(userdb_fields != NULL ? userdb_fields : "");
	e->kind = kind;
	if (pw != NULL) {
		e->have_pw = true;
		e->pw_hash = siphash24(c->pw_key, pw, pw_len);
	}
	e->created_ms = now_ms;
	e->size = sizeof(*e) + strlen(e->key) + strlen(e->owner) + strlen(e->user) +
		  strlen(e->pfields) + strlen(e->ufields) + 5;
	struct entry **b = bucket(c, key);
	e->hnext = *b;
	*b = e;
	e->next = c->head;
	if (c->head != NULL)
		c->head->prev = e;
	c->head = e;
	if (c->tail == NULL)
		c->tail = e;
	c->bytes += e->size;
	c->count++;
	/* the least recently used go; an entry bigger than the whole cache
	 * does not stay either */
	while (c->bytes > c->max_bytes && c->tail != NULL)
		entry_unlink(c, c->tail);
}

unsigned auth_cache_flush(struct auth_cache *c, const char *const *users, unsigned count)
{
	if (c == NULL)
		return 0;
	unsigned n = 0;
	for (struct entry *e = c->head, *next; e != NULL; e = next) {
		next = e->next;
		bool drop = users == NULL || count == 0;
		for (unsigned i = 0; !drop && i < count; i++)
			drop = strcmp(e->owner, users[i]) == 0 || strcmp(e->user, users[i]) == 0;
		if (drop) {
			entry_unlink(c, e);
			n++;
		}
	}
	return n;
}

unsigned auth_cache_count(const struct auth_cache *c)
{
	return c != NULL ? c->count : 0;
}

size_t auth_cache_bytes(const struct auth_cache *c)
{
	return c != NULL ? c->bytes : 0;
}
