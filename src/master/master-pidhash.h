/* master-pidhash.h — master's children by pid. SIGCHLD hands master pids
 * by the hundreds when workers (one per session) end together; finding
 * each by a walk over every child made reaping O(sessions) per exit.
 * Intrusive (the node lives in the caller's struct, no allocation per
 * entry), chained, power-of-two buckets that double past one entry per
 * bucket. A pid is in the table at most once. */
#ifndef RG_MASTER_PIDHASH_H
#define RG_MASTER_PIDHASH_H

#include <stdbool.h>
#include <sys/types.h>

struct pidhash_node {
	pid_t pid;
	struct pidhash_node *next;
};

struct pidhash {
	struct pidhash_node **buckets;
	unsigned size;  /* 0 before the first add, then a power of two */
	unsigned count;
};

/* node->pid set by the caller; the pid must not be in the table */
void pidhash_add(struct pidhash *h, struct pidhash_node *node);
struct pidhash_node *pidhash_find(const struct pidhash *h, pid_t pid);
/* false when node is not in the table */
bool pidhash_remove(struct pidhash *h, struct pidhash_node *node);
/* the buckets only: the nodes are the caller's */
void pidhash_free(struct pidhash *h);

#endif
