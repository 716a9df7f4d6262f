#include "auth/auth-penalty.h"

#include "lib/alloc.h"
#include "lib/hash.h"

#include <stdio.h>
#include <string.h>

struct penalty {
	struct penalty *hnext;
	struct penalty *prev, *next; /* LRU: most recent at t->head */
	int64_t last_ms;
	unsigned failures;
	uint32_t hash;
	char ip[PENALTY_IP_MAX + 1];
};

struct penalty_table {
	struct penalty **buckets;
	unsigned mask, count, max;
	struct penalty *head, *tail;
};

struct penalty_table *penalty_table_new(unsigned max_entries)
{
	struct penalty_table *t = rg_calloc(1, sizeof(*t));
	unsigned nb = hash_buckets(max_entries, 65536);
	t->buckets = rg_calloc(nb, sizeof(*t->buckets));
	t->mask = nb - 1;
	t->max = max_entries == 0 ? 1 : max_entries;
	return t;
}

static void lru_unlink(struct penalty_table *t, struct penalty *p)
{
	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		t->head = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	else
		t->tail = p->prev;
	p->prev = p->next = NULL;
}

static void lru_push(struct penalty_table *t, struct penalty *p)
{
	p->next = t->head;
	if (t->head != NULL)
		t->head->prev = p;
	else
		t->tail = p;
	t->head = p;
}

static void penalty_remove(struct penalty_table *t, struct penalty *p)
{
	struct penalty **pp = &t->buckets[p->hash & t->mask];
	while (*pp != p)
		pp = &(*pp)->hnext;
	*pp = p->hnext;
	lru_unlink(t, p);
	t->count--;
	rg_free(p);
}

void penalty_table_free(struct penalty_table *t)
{
	if (t == NULL)
		return;
	while (t->head != NULL)
		penalty_remove(t, t->head);
	rg_free(t->buckets);
	rg_free(t);
}

unsigned penalty_table_count(const struct penalty_table *t)
{
	return t->count;
}

static struct penalty *penalty_find(struct penalty_table *t, const char *ip, uint32_t hash)
{
	for (struct penalty *p = t->buckets[hash & t->mask]; p != NULL; p = p->hnext) {
		if (p->hash == hash && strcmp(p->ip, ip) == 0)
			return p;
	}
	return NULL;
}

/* drop entries nobody failed from for an hour, oldest first */
static void penalty_expire(struct penalty_table *t, int64_t now_ms)
{
	while (t->tail != NULL && now_ms - t->tail->last_ms >= PENALTY_EXPIRE_MS)
		penalty_remove(t, t->tail);
}

/* keys are bounded: a longer "address" is cut (it is not one anyway) */
#define IP_KEY(name, ip) \
	char name[PENALTY_IP_MAX + 1]; \
	snprintf(name, sizeof(name), "%s", ip)

unsigned penalty_get(struct penalty_table *t, const char *ip_in, int64_t now_ms)
{
	IP_KEY(ip, ip_in);
	penalty_expire(t, now_ms);
	struct penalty *p = penalty_find(t, ip, hash_str(ip));
	return p == NULL ? 0 : p->failures;
}

unsigned penalty_fail(struct penalty_table *t, const char *ip_in, int64_t now_ms)
{
	IP_KEY(ip, ip_in);
	penalty_expire(t, now_ms);
	uint32_t hash = hash_str(ip);
	struct penalty *p = penalty_find(t, ip, hash);
	if (p == NULL) {
		while (t->count >= t->max)
			penalty_remove(t, t->tail);
		p = rg_calloc(1, sizeof(*p));
		snprintf(p->ip, sizeof(p->ip), "%s", ip);
		p->hash = hash;
		p->hnext = t->buckets[hash & t->mask];
		t->buckets[hash & t->mask] = p;
		t->count++;
	} else {
		lru_unlink(t, p);
	}
	lru_push(t, p);
	p->last_ms = now_ms;
	if (p->failures < 1000)
		p->failures++;
	return p->failures;
}

void penalty_reset(struct penalty_table *t, const char *ip_in)
{
	IP_KEY(ip, ip_in);
	struct penalty *p = penalty_find(t, ip, hash_str(ip));
	if (p != NULL)
		penalty_remove(t, p);
}

unsigned penalty_delay_ms(unsigned base_ms, unsigned failures)
{
	unsigned cap = base_ms > PENALTY_MAX_DELAY_MS ? base_ms : PENALTY_MAX_DELAY_MS;
	if (failures <= 1)
		return base_ms;
	uint64_t extra = failures - 2 >= 16 ? PENALTY_MAX_DELAY_MS : 1000ull << (failures - 2);
	uint64_t total = (uint64_t)base_ms + extra;
	return total > cap ? cap : (unsigned)total;
}
