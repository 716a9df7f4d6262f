/* siphash.h — SipHash-2-4, a keyed hash for tables whose keys an attacker
 * chooses (client addresses): without the key, collisions cannot be aimed. */
#ifndef RG_SIPHASH_H
#define RG_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t siphash24(const uint8_t key[16], const void *in, size_t len);

#endif
