/* master-policy.h — master's decisions as pure functions, so they can be
 * tested without processes: how many login processes to start or which to
 * stop for a service (Dovecot's process_min_avail / process_limit /
 * service_count / client_limit / idle_kill meanings), the respawn back-off,
 * the uid a worker may run as, and the CPU a login process is pinned to.
 * Nothing here makes a system call or reads a clock; callers pass `now`. */
#ifndef RG_MASTER_POLICY_H
#define RG_MASTER_POLICY_H

#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* One login process as master sees it, from its LOGIN_STATUS reports. */
struct master_proc_state {
	pid_t pid;
	time_t started;
	unsigned conns, prelogin, total; /* last LOGIN_STATUS; all 0 before one */
	time_t idle_since;  /* when conns last became 0 (start time until then) */
	bool terminating;   /* master already sent SIGTERM */
};

/* The service's limits plus what master currently knows of its listeners. */
struct master_policy_input {
	unsigned service_count;     /* 0 = unlimited */
	unsigned client_limit;
	unsigned process_limit;
	unsigned process_min_avail;
	unsigned idle_kill;         /* seconds, 0 = never */
	/* master watches shared listening sockets; false with reuse_port,
	 * where each process owns its socket (min_avail 0 counts as 1) */
	bool watchable;
	/* a watched listener became readable while no process was available */
	bool conn_waiting;
	time_t now;
};

enum master_action_type {
	MASTER_ACTION_SPAWN,      /* start one login process */
	MASTER_ACTION_KILL_IDLE,  /* SIGTERM pid: idle beyond idle_kill */
	MASTER_ACTION_KILL_EVICT, /* SIGTERM pid: oldest with pre-login clients, limit reached */
	MASTER_ACTION_OVERFLOW,   /* every process: take connections, evicting your oldest */
};

struct master_action {
	enum master_action_type type;
	pid_t pid; /* kills only */
};

/* Whether the process can take a new connection now. */
bool master_proc_available(const struct master_policy_input *in,
			   const struct master_proc_state *proc);
/* process_min_avail as enforced (reuse_port raises 0 to 1) */
unsigned master_policy_min_avail(const struct master_policy_input *in);
/* Whether master should watch the shared listeners for a waiting connection:
 * they are watchable and no process is available. */
bool master_policy_should_watch(const struct master_policy_input *in,
				const struct master_proc_state *procs, unsigned count);

/* Decide what to do for one service. Writes at most max actions to
 * actions_r and returns how many. Spawns never exceed process_limit
 * (terminating processes still count until they exit); at most one eviction
 * is pending at a time. */
unsigned master_policy_decide(const struct master_policy_input *in,
			      const struct master_proc_state *procs, unsigned count,
			      struct master_action *actions_r, unsigned max);

/* A process that dies abnormally within this many ms of its start counts as
 * a start-up failure for the back-off. */
#define MASTER_FAST_FAILURE_MSECS 1000
#define MASTER_BACKOFF_MAX_SECS 60
/* Seconds to wait before respawning after `failures` consecutive start-up
 * failures: 0 for none, then 1, 2, 4, … capped at 60. */
unsigned master_backoff_secs(unsigned failures);

/* Whether a worker may run as uid. master_uid is master's own uid: when it is
 * not root, it cannot switch users, so only its own uid works. last_valid 0 =
 * no upper bound. On false, *reason_r says why (for the log). */
bool master_uid_allowed(uid_t uid, unsigned first_valid, unsigned last_valid,
			uid_t master_uid, const char **reason_r);

/* The CPU for the n-th login process: round-robin over the CPUs set in mask.
 * -1 when the mask is empty. */
int master_cpu_pick(const cpu_set_t *mask, unsigned n);

#endif
