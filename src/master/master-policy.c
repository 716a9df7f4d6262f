#include "master/master-policy.h"

bool master_proc_available(const struct master_policy_input *in,
			   const struct master_proc_state *proc)
{
	if (proc->terminating)
		return false;
	if (in->service_count == 1)
		return proc->total == 0;
	if (proc->conns >= in->client_limit)
		return false;
	/* service_count reached: the process stopped accepting and will exit
	 * once its last client is gone */
	return in->service_count == 0 || proc->total < in->service_count;
}

unsigned master_policy_min_avail(const struct master_policy_input *in)
{
	if (!in->watchable && in->process_min_avail == 0)
		return 1;
	return in->process_min_avail;
}

static unsigned count_available(const struct master_policy_input *in,
				const struct master_proc_state *procs, unsigned count)
{
	unsigned avail = 0;
	for (unsigned i = 0; i < count; i++) {
		if (master_proc_available(in, &procs[i]))
			avail++;
	}
	return avail;
}

bool master_policy_should_watch(const struct master_policy_input *in,
				const struct master_proc_state *procs, unsigned count)
{
	return in->watchable && count_available(in, procs, count) == 0;
}

static bool older(const struct master_proc_state *a, const struct master_proc_state *b)
{
	return a->started < b->started || (a->started == b->started && a->pid < b->pid);
}

unsigned master_policy_decide(const struct master_policy_input *in,
			      const struct master_proc_state *procs, unsigned count,
			      struct master_action *actions_r, unsigned max)
{
	unsigned n = 0;
	unsigned avail = count_available(in, procs, count);
	unsigned min_avail = master_policy_min_avail(in);
	bool terminating = false;

	for (unsigned i = 0; i < count; i++)
		terminating = terminating || procs[i].terminating;

	unsigned need = avail < min_avail ? min_avail - avail : 0;
	if (in->conn_waiting && avail == 0 && need == 0)
		need = 1;
	unsigned room = in->process_limit > count ? in->process_limit - count : 0;
	unsigned spawn = need < room ? need : room;
	for (unsigned i = 0; i < spawn && n < max; i++)
		actions_r[n++] = (struct master_action){ .type = MASTER_ACTION_SPAWN };

	/* Dovecot's high-security mode: at process_limit, the oldest process
	 * still logging clients in is destroyed to make room. One at a time: a
	 * pending SIGTERM will free a slot soon anyway. */
	if (in->service_count == 1 && in->conn_waiting && avail == 0 && spawn == 0 &&
	    room == 0 && !terminating) {
		const struct master_proc_state *victim = NULL;
		for (unsigned i = 0; i < count; i++) {
			if (procs[i].prelogin > 0 && (victim == NULL || older(&procs[i], victim)))
				victim = &procs[i];
		}
		if (victim != NULL && n < max)
			actions_r[n++] = (struct master_action){
				.type = MASTER_ACTION_KILL_EVICT, .pid = victim->pid };
	}

	/* Many connections per process: a full process stops accepting, so a
	 * waiting connection first gets a new process; at process_limit the
	 * full processes are told to take connections anyway and close their
	 * oldest pre-login client for each (Dovecot's "avail overflow"). */
	if (in->service_count != 1 && in->conn_waiting && avail == 0 && spawn == 0 &&
	    room == 0 && count > 0 && n < max)
		actions_r[n++] = (struct master_action){ .type = MASTER_ACTION_OVERFLOW };
	/* idle_kill: available processes beyond min_avail that had no
	 * connection for idle_kill seconds, longest idle first */
	if (in->idle_kill != 0 && avail > min_avail) {
		unsigned excess = avail - min_avail;
		for (unsigned k = 0; k < excess && n < max; k++) {
			const struct master_proc_state *victim = NULL;
			for (unsigned i = 0; i < count; i++) {
				const struct master_proc_state *p = &procs[i];
				if (p->conns != 0 || !master_proc_available(in, p) ||
				    p->idle_since + (time_t)in->idle_kill > in->now)
					continue;
				bool taken = false;
				for (unsigned j = 0; j < n && !taken; j++)
					taken = actions_r[j].type == MASTER_ACTION_KILL_IDLE &&
						actions_r[j].pid == p->pid;
				if (taken)
					continue;
				if (victim == NULL || p->idle_since < victim->idle_since ||
				    (p->idle_since == victim->idle_since && p->pid < victim->pid))
					victim = p;
			}
			if (victim == NULL)
				break;
			actions_r[n++] = (struct master_action){
				.type = MASTER_ACTION_KILL_IDLE, .pid = victim->pid };
		}
	}
	return n;
}

unsigned master_backoff_secs(unsigned failures)
{
	if (failures == 0)
		return 0;
	if (failures > 6)
		return MASTER_BACKOFF_MAX_SECS;
	unsigned secs = 1u << (failures - 1);
	return secs > MASTER_BACKOFF_MAX_SECS ? MASTER_BACKOFF_MAX_SECS : secs;
}

bool master_uid_allowed(uid_t uid, unsigned first_valid, unsigned last_valid,
			uid_t master_uid, const char **reason_r)
{
	if (uid == 0) {
		*reason_r = "uid 0 (root) is never allowed to log in";
		return false;
	}
	if (uid < first_valid) {
		*reason_r = "uid is below first_valid_uid";
		return false;
	}
	if (last_valid != 0 && uid > last_valid) {
		*reason_r = "uid is above last_valid_uid";
		return false;
	}
	if (master_uid != 0 && uid != master_uid) {
		*reason_r = "master is not running as root and cannot switch to another uid";
		return false;
	}
	return true;
}

int master_cpu_pick(const cpu_set_t *mask, unsigned n)
{
	int count = CPU_COUNT(mask);
	if (count <= 0)
		return -1;
	unsigned want = n % (unsigned)count;
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (CPU_ISSET(cpu, mask) && want-- == 0)
			return cpu;
	}
	return -1;
}
