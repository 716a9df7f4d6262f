#include "master/master-pidhash.h"
#include "lib/alloc.h"

#include <stdint.h>

#define PIDHASH_MIN_SIZE 64

static unsigned bucket_of(const struct pidhash *h, pid_t pid)
{
	/* Fibonacci hashing: pids come in runs, the multiply spreads them */
	return (unsigned)(((uint32_t)pid * 2654435769u) >> 7) & (h->size - 1);
}

static void grow(struct pidhash *h)
{
	unsigned old_size = h->size;
	struct pidhash_node **old = h->buckets;
	h->size = old_size == 0 ? PIDHASH_MIN_SIZE : old_size * 2;
	h->buckets = rg_calloc(h->size, sizeof(*h->buckets));
	for (unsigned i = 0; i < old_size; i++) {
		struct pidhash_node *n = old[i], *next;
		for (; n != NULL; n = next) {
			next = n->next;
			unsigned b = bucket_of(h, n->pid);
			n->next = h->buckets[b];
			h->buckets[b] = n;
		}
	}
	rg_free(old);
}

void pidhash_add(struct pidhash *h, struct pidhash_node *node)
{
	if (h->count >= h->size)
		grow(h);
	unsigned b = bucket_of(h, node->pid);
	node->next = h->buckets[b];
	h->buckets[b] = node;
	h->count++;
}

struct pidhash_node *pidhash_find(const struct pidhash *h, pid_t pid)
{
	if (h->size == 0)
		return NULL;
	for (struct pidhash_node *n = h->buckets[bucket_of(h, pid)]; n != NULL; n = n->next) {
		if (n->pid == pid)
			return n;
	}
	return NULL;
}

bool pidhash_remove(struct pidhash *h, struct pidhash_node *node)
{
	if (h->size == 0)
		return false;
	for (struct pidhash_node **pp = &h->buckets[bucket_of(h, node->pid)]; *pp != NULL;
	     pp = &(*pp)->next) {
		if (*pp == node) {
			*pp = node->next;
			node->next = NULL;
			h->count--;
			return true;
		}
	}
	return false;
}

void pidhash_free(struct pidhash *h)
{
	rg_free(h->buckets);
	h->buckets = NULL;
	h->size = h->count = 0;
}
