/* iplimit.h — the per-IP pre-login connection count that every login
 * process shares (login_max_preauth_ip_connections).
 *
 * Master creates one memfd; every login process maps it before it drops
 * privileges, so counting costs no system call and no round trip to master.
 * A count is a keyed count-min sketch (two rows of counters, keyed SipHash
 * from master's random key, so a client cannot choose colliding addresses):
 * a hash collision can only over-count, never let an address past its limit.
 *
 * Counts live in epochs of epoch_secs, longer than a pre-login connection
 * can live (login_timeout plus slack). A connection adds itself to the
 * current epoch's table; a check sums this epoch's and the previous one's.
 * So a count that a killed login process never took back is forgotten two
 * epochs later, without master knowing which addresses that process held.
 * The table of epoch e is zeroed by whoever first uses it in epoch e; while
 * that zeroing is in progress (microseconds), connections are not counted.
 *
 * The limit is soft by a hair: two processes checking at the same instant
 * may both admit the last slot. */
#ifndef RG_IPLIMIT_H
#define RG_IPLIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct iplimit;

/* What a connection keeps to take its count back: 8 bytes; epoch 0 = not
 * counted. */
struct iplimit_ticket {
	uint32_t epoch;
	uint16_t bucket[2];
};

/* Master: a sealed-size memfd holding a fresh table (random key), or -errno. */
int iplimit_create(uint32_t epoch_secs);
/* The epoch length for a login_timeout (seconds, 0 = none). */
uint32_t iplimit_epoch_secs(unsigned login_timeout);

/* Map the table behind fd (0 or -errno; -EINVAL for a foreign file). */
int iplimit_map(int fd, struct iplimit **table_r);
void iplimit_unmap(struct iplimit **table);

/* Count key (an address: family byte and IP, see callers) at monotonic time
 * now_secs if fewer than limit are counted for it: true, and *ticket_r says
 * what to release (it may be empty: not counted while a table is being
 * zeroed). false: limit reached, nothing counted. */
bool iplimit_acquire(struct iplimit *table, const void *key, size_t key_len, uint32_t now_secs,
		     unsigned limit, struct iplimit_ticket *ticket_r);
/* Take a ticket's count back (an empty or outdated ticket is a no-op) and
 * empty it. */
void iplimit_release(struct iplimit *table, struct iplimit_ticket *ticket);
/* What is counted for key now (both epochs), for tests and the log. */
unsigned iplimit_count(struct iplimit *table, const void *key, size_t key_len, uint32_t now_secs);

#endif
