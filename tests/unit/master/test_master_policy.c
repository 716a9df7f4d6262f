/* master-policy: spawn/kill decisions per login-process mode, back-off,
 * uid checks, CPU round-robin. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "master/master-policy.h"

#define NOW 100000

static struct master_policy_input sc1(unsigned min_avail, unsigned limit)
{
	return (struct master_policy_input){
		.service_count = 1, .client_limit = 1, .process_limit = limit,
		.process_min_avail = min_avail, .idle_kill = 60, .watchable = true, .now = NOW,
	};
}

static struct master_policy_input sc0(unsigned min_avail, unsigned limit, unsigned clients)
{
	return (struct master_policy_input){
		.service_count = 0, .client_limit = clients, .process_limit = limit,
		.process_min_avail = min_avail, .idle_kill = 60, .watchable = true, .now = NOW,
	};
}

static struct master_proc_state proc(pid_t pid, time_t started, unsigned conns,
				     unsigned prelogin, unsigned total)
{
	return (struct master_proc_state){
		.pid = pid, .started = started, .conns = conns, .prelogin = prelogin,
		.total = total, .idle_since = NOW - 1,
	};
}

static unsigned count_type(const struct master_action *a, unsigned n, enum master_action_type t)
{
	unsigned c = 0;
	for (unsigned i = 0; i < n; i++)
		c += a[i].type == t;
	return c;
}

static void test_sc1_min_avail0_nothing_until_connection(void **state)
{
	(void)state;
	struct master_policy_input in = sc1(0, 10);
	struct master_action a[16];
	assert_int_equal(master_policy_decide(&in, NULL, 0, a, 16), 0);
	/* with nobody available, master watches the listeners */
	assert_true(master_policy_should_watch(&in, NULL, 0));
	in.conn_waiting = true;
	unsigned n = master_policy_decide(&in, NULL, 0, a, 16);
	assert_int_equal(n, 1);
	assert_int_equal(a[0].type, MASTER_ACTION_SPAWN);
}

static void test_sc1_fresh_process_is_available(void **state)
{
	(void)state;
	struct master_policy_input in = sc1(0, 10);
	struct master_proc_state p[2] = { proc(10, NOW, 0, 0, 0), proc(11, NOW, 1, 1, 1) };
	assert_true(master_proc_available(&in, &p[0]));
	assert_false(master_proc_available(&in, &p[1])); /* accepted its one client */
	assert_false(master_policy_should_watch(&in, p, 2));
	assert_true(master_policy_should_watch(&in, &p[1], 1));
	/* a process that accepted and went idle again is still not available */
	struct master_proc_state done = proc(12, NOW, 0, 0, 1);
	assert_false(master_proc_available(&in, &done));
	p[0].terminating = true;
	assert_false(master_proc_available(&in, &p[0]));
}

static void test_sc1_min_avail2(void **state)
{
	(void)state;
	struct master_policy_input in = sc1(2, 10);
	struct master_action a[16];
	unsigned n = master_policy_decide(&in, NULL, 0, a, 16);
	assert_int_equal(n, 2);
	assert_int_equal(count_type(a, n, MASTER_ACTION_SPAWN), 2);

	/* one took a client: one more spawn keeps two available */
	struct master_proc_state p[2] = { proc(10, NOW - 5, 1, 1, 1), proc(11, NOW - 5, 0, 0, 0) };
	n = master_policy_decide(&in, p, 2, a, 16);
	assert_int_equal(n, 1);
	assert_int_equal(a[0].type, MASTER_ACTION_SPAWN);

	/* both fresh: nothing to do, and no idle kill at min_avail */
	p[0] = proc(10, NOW - 500, 0, 0, 0);
	p[0].idle_since = NOW - 500;
	p[1].idle_since = NOW - 500;
	assert_int_equal(master_policy_decide(&in, p, 2, a, 16), 0);
	assert_false(master_policy_should_watch(&in, p, 2));
}

static void test_spawn_capped_by_process_limit(void **state)
{
	(void)state;
	struct master_policy_input in = sc1(5, 3);
	struct master_action a[16];
	struct master_proc_state p[1] = { proc(10, NOW, 1, 1, 1) };
	unsigned n = master_policy_decide(&in, p, 1, a, 16);
	assert_int_equal(n, 2);
	assert_int_equal(count_type(a, n, MASTER_ACTION_SPAWN), 2);
	/* a terminating process still holds its slot */
	struct master_proc_state q[3] = { proc(10, NOW, 1, 1, 1), proc(11, NOW, 1, 0, 1),
					  proc(12, NOW, 0, 0, 0) };
	q[2].terminating = true;
	assert_int_equal(master_policy_decide(&in, q, 3, a, 16), 0);
	/* the caller's array bound is respected */
	assert_int_equal(master_policy_decide(&in, p, 1, a, 1), 1);
}

static void test_limit_reached_kills_oldest_prelogin(void **state)
{
	(void)state;
	struct master_policy_input in = sc1(0, 3);
	struct master_action a[16];
	struct master_proc_state p[3] = {
		proc(10, NOW - 50, 1, 0, 1), /* oldest, but its client logged in (proxying) */
		proc(11, NOW - 40, 1, 1, 1),
		proc(12, NOW - 30, 1, 1, 1),
	};
	/* no waiting connection: nothing */
	assert_int_equal(master_policy_decide(&in, p, 3, a, 16), 0);
	in.conn_waiting = true;
	unsigned n = master_policy_decide(&in, p, 3, a, 16);
	assert_int_equal(n, 1);
	assert_int_equal(a[0].type, MASTER_ACTION_KILL_EVICT);
	assert_int_equal(a[0].pid, 11);

	/* same start second: lower pid counts as older */
	p[2].started = p[1].started;
	p[2].pid = 9;
	n = master_policy_decide(&in, p, 3, a, 16);
	assert_int_equal(n, 1);
	assert_int_equal(a[0].pid, 9);

	/* an eviction in progress: wait for it instead of killing another */
	p[2].terminating = true;
	assert_int_equal(master_policy_decide(&in, p, 3, a, 16), 0);

	/* nobody logging in: nothing to evict */
	struct master_proc_state q[3] = { proc(10, NOW, 1, 0, 1), proc(11, NOW, 1, 0, 1),
					  proc(12, NOW, 1, 0, 1) };
	assert_int_equal(master_policy_decide(&in, q, 3, a, 16), 0);
}

static void test_sc0_full_spawns(void **state)
{
	(void)state;
	struct master_policy_input in = sc0(1, 4, 2);
	struct master_action a[16];
	struct master_proc_state p[2] = { proc(10, NOW, 1, 1, 7), proc(11, NOW, 2, 0, 9) };
	/* 10 has room: available, nothing to do */
	assert_true(master_proc_available(&in, &p[0]));
	assert_false(master_proc_available(&in, &p[1]));
	assert_int_equal(master_policy_decide(&in, p, 2, a, 16), 0);
	/* both full: spawn one to keep min_avail 1 */
	p[0].conns = 2;
	unsigned n = master_policy_decide(&in, p, 2, a, 16);
	assert_int_equal(n, 1);
	assert_int_equal(a[0].type, MASTER_ACTION_SPAWN);

	/* min_avail 0: only a waiting connection spawns */
	in.process_min_avail = 0;
	assert_int_equal(master_policy_decide(&in, p, 2, a, 16), 0);
	assert_true(master_policy_should_watch(&in, p, 2));
	in.conn_waiting = true;
	n = master_policy_decide(&in, p, 2, a, 16);
	assert_int_equal(n, 1);
	assert_int_equal(a[0].type, MASTER_ACTION_SPAWN);
}

/* high-performance mode at process_limit: the full processes evict their own
 * oldest pre-login connections; master must not destroy a whole process
 * (with all its clients) for a waiting connection. */
/* many connections per process at process_limit: nobody is killed; the full
 * processes are told to take the waiting connection, evicting their oldest
 * pre-login client. Below the limit a new process is started instead. */
static void test_sc0_limit_reached_overflows(void **state)
{
	(void)state;
	struct master_policy_input in = sc0(1, 1, 3);
	struct master_action a[16];
	struct master_proc_state p[1] = { proc(10, NOW - 50, 3, 3, 3) };
	assert_int_equal(master_policy_decide(&in, p, 1, a, 16), 0);
	in.conn_waiting = true;
	assert_int_equal(master_policy_decide(&in, p, 1, a, 16), 1);
	assert_int_equal(a[0].type, MASTER_ACTION_OVERFLOW);
	in.service_count = 5;
	assert_int_equal(master_policy_decide(&in, p, 1, a, 16), 1);
	assert_int_equal(a[0].type, MASTER_ACTION_OVERFLOW);
	/* room for another process: spawn, no overflow */
	in.service_count = 0;
	in.process_limit = 2;
	assert_int_equal(master_policy_decide(&in, p, 1, a, 16), 1);
	assert_int_equal(a[0].type, MASTER_ACTION_SPAWN);
	/* a process with room takes it: nothing to do */
	p[0].conns = 2;
	in.process_limit = 1;
	assert_int_equal(master_policy_decide(&in, p, 1, a, 16), 0);
}

static void test_service_count_n_stops_accepting(void **state)
{
	(void)state;
	struct master_policy_input in = sc0(1, 4, 100);
	in.service_count = 5;
	struct master_proc_state p = proc(10, NOW, 1, 0, 5);
	assert_false(master_proc_available(&in, &p));
	p.total = 4;
	assert_true(master_proc_available(&in, &p));
	p.total = 5;
	struct master_action a[4];
	unsigned n = master_policy_decide(&in, &p, 1, a, 4);
	assert_int_equal(n, 1);
	assert_int_equal(a[0].type, MASTER_ACTION_SPAWN);
}

static void test_reuse_port_min_avail(void **state)
{
	(void)state;
	struct master_policy_input in = sc0(0, 4, 100);
	in.watchable = false;
	assert_int_equal(master_policy_min_avail(&in), 1);
	struct master_action a[4];
	unsigned n = master_policy_decide(&in, NULL, 0, a, 4);
	assert_int_equal(n, 1);
	assert_int_equal(a[0].type, MASTER_ACTION_SPAWN);
	/* never watched: master does not own the sockets */
	assert_false(master_policy_should_watch(&in, NULL, 0));
	in.process_min_avail = 3;
	assert_int_equal(master_policy_min_avail(&in), 3);
}

static void test_idle_kill(void **state)
{
	(void)state;
	struct master_policy_input in = sc0(1, 10, 100);
	struct master_action a[16];
	struct master_proc_state p[4] = {
		proc(10, NOW - 900, 0, 0, 3), proc(11, NOW - 900, 0, 0, 3),
		proc(12, NOW - 900, 0, 0, 3), proc(13, NOW - 900, 5, 0, 9),
	};
	p[0].idle_since = NOW - 100; /* idle long enough */
	p[1].idle_since = NOW - 200; /* idle longest */
	p[2].idle_since = NOW - 10;  /* recently busy */
	unsigned n = master_policy_decide(&in, p, 4, a, 16);
	/* 4 available, min 1: up to 3 excess, but only 10 and 11 idled 60 s */
	assert_int_equal(n, 2);
	assert_int_equal(a[0].type, MASTER_ACTION_KILL_IDLE);
	assert_int_equal(a[0].pid, 11);
	assert_int_equal(a[1].type, MASTER_ACTION_KILL_IDLE);
	assert_int_equal(a[1].pid, 10);

	/* exactly idle_kill seconds counts */
	p[2].idle_since = NOW - 60;
	n = master_policy_decide(&in, p, 4, a, 16);
	assert_int_equal(n, 3);

	/* min_avail keeps processes alive however idle */
	in.process_min_avail = 4;
	assert_int_equal(master_policy_decide(&in, p, 4, a, 16), 0);
	in.process_min_avail = 3;
	n = master_policy_decide(&in, p, 4, a, 16);
	assert_int_equal(n, 1);
	assert_int_equal(a[0].pid, 11);

	/* idle_kill 0 disables */
	in.process_min_avail = 0;
	in.idle_kill = 0;
	assert_int_equal(master_policy_decide(&in, p, 4, a, 16), 0);
}

static void test_idle_kill_sc1(void **state)
{
	(void)state;
	struct master_policy_input in = sc1(1, 10);
	struct master_action a[8];
	struct master_proc_state p[3] = { proc(10, NOW - 900, 0, 0, 0),
					  proc(11, NOW - 900, 0, 0, 0),
					  proc(12, NOW - 900, 0, 0, 1) };
	p[0].idle_since = p[1].idle_since = p[2].idle_since = NOW - 900;
	unsigned n = master_policy_decide(&in, p, 3, a, 8);
	/* 12 is done (exits itself); of the two fresh ones one is kept */
	assert_int_equal(n, 1);
	assert_int_equal(a[0].type, MASTER_ACTION_KILL_IDLE);
	assert_int_equal(a[0].pid, 10);
}

static void test_backoff(void **state)
{
	(void)state;
	assert_int_equal(master_backoff_secs(0), 0);
	assert_int_equal(master_backoff_secs(1), 1);
	assert_int_equal(master_backoff_secs(2), 2);
	assert_int_equal(master_backoff_secs(3), 4);
	assert_int_equal(master_backoff_secs(6), 32);
	assert_int_equal(master_backoff_secs(7), 60);
	assert_int_equal(master_backoff_secs(100), 60);
	assert_int_equal(master_backoff_secs(~0u), 60);
}

static void test_uid(void **state)
{
	(void)state;
	const char *why = NULL;
	assert_false(master_uid_allowed(0, 0, 0, 0, &why));
	assert_non_null(strstr(why, "root"));
	assert_false(master_uid_allowed(499, 500, 0, 0, &why));
	assert_non_null(strstr(why, "first_valid_uid"));
	assert_true(master_uid_allowed(500, 500, 0, 0, &why));
	assert_true(master_uid_allowed(60000, 500, 0, 0, &why));
	assert_true(master_uid_allowed(1000, 500, 1000, 0, &why));
	assert_false(master_uid_allowed(1001, 500, 1000, 0, &why));
	assert_non_null(strstr(why, "last_valid_uid"));
	/* non-root master: only its own uid */
	assert_true(master_uid_allowed(1000, 500, 0, 1000, &why));
	assert_false(master_uid_allowed(1001, 500, 0, 1000, &why));
	assert_non_null(strstr(why, "not running as root"));
	assert_false(master_uid_allowed(0, 0, 0, 1000, &why));
}

static void test_cpu_pick(void **state)
{
	(void)state;
	cpu_set_t set;
	CPU_ZERO(&set);
	assert_int_equal(master_cpu_pick(&set, 0), -1);
	CPU_SET(2, &set);
	CPU_SET(5, &set);
	CPU_SET(7, &set);
	int expect[] = { 2, 5, 7, 2, 5, 7, 2 };
	for (unsigned i = 0; i < 7; i++)
		assert_int_equal(master_cpu_pick(&set, i), expect[i]);
	CPU_ZERO(&set);
	CPU_SET(0, &set);
	assert_int_equal(master_cpu_pick(&set, 12345), 0);
	CPU_SET(CPU_SETSIZE - 1, &set);
	assert_int_equal(master_cpu_pick(&set, 1), CPU_SETSIZE - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sc1_min_avail0_nothing_until_connection),
		cmocka_unit_test(test_sc1_fresh_process_is_available),
		cmocka_unit_test(test_sc1_min_avail2),
		cmocka_unit_test(test_spawn_capped_by_process_limit),
		cmocka_unit_test(test_limit_reached_kills_oldest_prelogin),
		cmocka_unit_test(test_sc0_full_spawns),
		cmocka_unit_test(test_sc0_limit_reached_overflows),
		cmocka_unit_test(test_service_count_n_stops_accepting),
		cmocka_unit_test(test_reuse_port_min_avail),
		cmocka_unit_test(test_idle_kill),
		cmocka_unit_test(test_idle_kill_sc1),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_uid),
		cmocka_unit_test(test_cpu_pick),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
