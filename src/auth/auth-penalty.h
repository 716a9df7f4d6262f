/* auth-penalty.h — per remote IP failure counts that lengthen the failure
 * delay. A failure after PENALTY_EXPIRE_MS of quiet starts again from one;
 * a success resets the count. The table holds at most max entries and
 * evicts the least recently used one, so an attacker cycling addresses
 * costs bounded memory (and only forgets its own penalties). */
#ifndef RG_AUTH_PENALTY_H
#define RG_AUTH_PENALTY_H

#include <stdint.h>

#define PENALTY_EXPIRE_MS (60 * 60 * 1000)
#define PENALTY_MAX_DELAY_MS 15000
#define PENALTY_IP_MAX 63

struct penalty_table;

struct penalty_table *penalty_table_new(unsigned max_entries);
void penalty_table_free(struct penalty_table *t);
unsigned penalty_table_count(const struct penalty_table *t);

/* consecutive failures recorded for ip (0 if none or expired) */
unsigned penalty_get(struct penalty_table *t, const char *ip, int64_t now_ms);
/* record one more failure; returns the new count */
unsigned penalty_fail(struct penalty_table *t, const char *ip, int64_t now_ms);
void penalty_reset(struct penalty_table *t, const char *ip);

/* Delay before answering the failures-th consecutive failure:
 * base, then base + 1 s, + 2 s, + 4 s, … capped at max(base, 15 s). */
unsigned penalty_delay_ms(unsigned base_ms, unsigned failures);

#endif
