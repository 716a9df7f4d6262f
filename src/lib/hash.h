/* hash.h — the string hash and bucket sizing that chained hash tables share.
 * FNV-1a: fast, no allocation; tables are bounded by their owners, and keys
 * that attackers choose (user names, IPs) only lengthen one chain. */
#ifndef RG_HASH_H
#define RG_HASH_H

#include <stdint.h>

static inline uint32_t hash_str(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s != '\0'; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

/* The smallest power of two >= want, at least 64 and at most cap (a power
 * of two). */
static inline unsigned hash_buckets(unsigned want, unsigned cap)
{
	unsigned nb = 64;
	while (nb < want && nb < cap)
		nb *= 2;
	return nb;
}

#endif
