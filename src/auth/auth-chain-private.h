/* auth-chain-private.h — the chain's objects, shared by auth-chain.c (building
 * it from the passdb/userdb blocks, accessors) and auth-chain-lookup.c (cache,
 * matching, running requests). Not for use outside these two files. */
#ifndef RG_AUTH_CHAIN_PRIVATE_H
#define RG_AUTH_CHAIN_PRIVATE_H

#include "auth/auth-chain.h"

#include <stdbool.h>
#include <stdint.h>

enum db_rule {
	RULE_RETURN,
	RULE_RETURN_OK,
	RULE_RETURN_FAIL,
	RULE_CONTINUE,
	RULE_CONTINUE_OK,
	RULE_CONTINUE_FAIL,
};

enum db_skip { SKIP_NEVER, SKIP_AUTHENTICATED, SKIP_UNAUTHENTICATED, SKIP_FOUND, SKIP_NOTFOUND };

struct chain_db {
	struct chain_db *next; /* in its list: masters, passdbs or userdbs */
	unsigned index;        /* in file order among passdbs (or userdbs) */
	char *name;
	struct passdb_module pmod;
	struct userdb_module umod;
	enum db_skip skip;
	enum db_rule success, failure, internalfail;
	char *mechanisms, *username_filter, *default_fields, *override_fields;
	bool deny, master;
	bool inited; /* the driver's init ran (deinit is due) */
};

struct auth_chain {
	struct chain_db *passdbs, *masters, *userdbs;
	struct chain_db **pall, **uall; /* by index */
	unsigned pcount, ucount;
	const struct auth_chain_worker_ops *wops;
	void *wctx;
	struct auth_cache *cache;
	uint64_t cache_hits, cache_misses;
};

#endif
