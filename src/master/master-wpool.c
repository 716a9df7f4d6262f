/* master-wpool.c — worker processes that outlive a session: Dovecot's
 * `service imap { service_count = N }` (a worker takes further sessions)
 * and `process_min_avail` (spares started before any user, still root,
 * waiting for their first session). A worker that dropped to a uid only
 * ever gets sessions of that uid and gid; another user's session goes to a
 * spare or a new worker (Dovecot would fail it). client_limit is 1: a
 * worker's loop is blocking and serves one session at a time.
 *
 * A reusable worker keeps its channel (fd 4): WORKER_DONE after each
 * session, then master either gives it the next WORKER_INIT with the
 * client socket attached or closes the channel (service_count reached,
 * idle_kill, a reload), on which it exits. */
#include "master/master-private.h"
#include "lib/alloc.h"
#include "lib/log.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* a spare that died young is not replaced at once */
#define SPARE_RETRY_MSECS 1000

bool worker_reusable(const struct worker_service *ws)
{
	return ws->set->service_count != 1;
}

static struct child **state_list(struct worker_service *ws, enum worker_state st,
				 unsigned **count_r)
{
	switch (st) {
	case WORKER_BUSY:
		*count_r = &ws->busy;
		return &m.worker_list;
	case WORKER_IDLE:
		*count_r = &ws->idle_count;
		return &ws->idle;
	case WORKER_SPARE:
		*count_r = &ws->spare_count;
		return &ws->spares;
	case WORKER_TAKEN:
	case WORKER_LEAVING:
		break;
	}
	*count_r = NULL;
	return NULL;
}

/* off the list of its state (still counted as a process): TAKEN */
static void wpool_unlist(struct child *c)
{
	unsigned *count;
	struct child **list = state_list(c->wsvc, c->wstate, &count);
	if (list == NULL)
		return;
	child_list_del(list, c);
	(*count)--;
	c->wstate = WORKER_TAKEN;
}

static void wpool_list(struct child *c, enum worker_state st)
{
	unsigned *count;
	c->wstate = st;
	struct child **list = state_list(c->wsvc, st, &count);
	if (list != NULL) {
		child_list_add(list, c);
		(*count)++;
	}
}

struct child *wpool_take(struct worker_service *ws, uid_t uid, gid_t gid, const char *jail)
{
	struct child *c = NULL;
	if (worker_reusable(ws)) {
		/* the most recently used: its caches are warm, older ones idle out */
		for (c = ws->idle; c != NULL; c = c->next) {
			if (c->wuid == uid && c->wgid == gid && c->chan >= 0 &&
			    c->wjail != NULL && strcmp(c->wjail, jail) == 0)
				break;
		}
	}
	if (c == NULL)
		c = ws->spares;
	if (c != NULL)
		wpool_unlist(c);
	return c;
}

void wpool_let_go(struct child *c)
{
	wpool_unlist(c);
	if (c->wstate != WORKER_LEAVING)
		c->wsvc->count--;
	c->wstate = WORKER_LEAVING;
	/* an idle worker waits on this channel: EOF is its signal to exit */
	chan_close(c);
}

bool wpool_evict(struct worker_service *ws)
{
	struct child *victim = NULL;
	for (struct child *c = ws->idle; c != NULL; c = c->next)
		victim = c; /* the oldest is last */
	if (victim == NULL)
		victim = ws->spares;
	if (victim == NULL)
		return false;
	log_debug("service(%s): process_limit reached: idle worker %ld let go", ws->protocol,
		  (long)child_pid(victim));
	wpool_let_go(victim);
	return true;
}

void wpool_busy(struct worker_service *ws, struct child *c, const char *user, const char *rip,
		bool tls, pid_t proxy_pid)
{
	c->wsvc = ws;
	rg_free(c->user);
	rg_free(c->rip);
	c->user = rg_strdup(user);
	c->rip = rg_strdup(rip != NULL ? rip : "");
	c->tls = tls;
	c->proxy_pid = proxy_pid;
	c->since = time(NULL);
	c->served++;
	wpool_list(c, WORKER_BUSY);
}

void wpool_spare(struct child *c)
{
	wpool_list(c, WORKER_SPARE);
}

/* a session ended: idle for the next one of its uid, or let go */
static void wpool_done(struct child *c)
{
	struct worker_service *ws = c->wsvc;
	wpool_unlist(c);
	c->wstate = WORKER_TAKEN;
	rg_free(c->user);
	rg_free(c->rip);
	c->user = c->rip = NULL;
	unsigned limit = ws->set->service_count;
	if (m.stopping || c->wset != ws->set || !worker_reusable(ws) ||
	    (limit != 0 && c->served >= limit)) {
		wpool_let_go(c);
		return;
	}
	c->idle_since_ms = now_ms();
	wpool_list(c, WORKER_IDLE);
}

void worker_message(struct child *c, struct ipc_rx *rx)
{
	if (rx->fd >= 0) {
		close(rx->fd);
		rx->fd = -1;
		worker_kill(c, "worker sent an fd");
		return;
	}
	if (rx->hdr.type != IPC_WORKER_DONE || c->wstate != WORKER_BUSY) {
		worker_kill(c, "unexpected message from worker");
		return;
	}
	wpool_done(c);
}

void worker_kill(struct child *c, const char *why)
{
	log_error("service(%s): %s: killing process %ld", c->wsvc->protocol, why,
		  (long)child_pid(c));
	wpool_let_go(c);
	c->st.terminating = true;
	kill(child_pid(c), SIGKILL);
}

void worker_exited(struct child *c)
{
	struct worker_service *ws = c->wsvc;
	if (c->wstate == WORKER_SPARE)
		ws->spare_retry_ms = now_ms() + SPARE_RETRY_MSECS;
	wpool_unlist(c);
	if (c->wstate != WORKER_LEAVING)
		ws->count--;
	c->wstate = WORKER_LEAVING;
	/* a crash: someone may be probing its template's layout */
	if (c->tpl_pid != 0 && WIFSIGNALED(c->exit_status) && !c->st.terminating)
		wtemplate_child_crashed(ws, c->tpl_pid);
}

static void wpool_tick(struct worker_service *ws, int64_t now)
{
	/* once a second is enough for idle_kill and a reload's leftovers */
	if (now - ws->idle_checked_ms >= 1000) {
		ws->idle_checked_ms = now;
		int64_t kill_ms = (int64_t)ws->set->idle_kill * 1000;
		for (struct child *c = ws->idle, *next; c != NULL; c = next) {
			next = c->next;
			if (c->wset != ws->set || now - c->idle_since_ms >= kill_ms)
				wpool_let_go(c);
		}
		for (struct child *c = ws->spares, *next; c != NULL; c = next) {
			next = c->next;
			if (c->wset != ws->set)
				wpool_let_go(c);
		}
	}
	while (ws->spare_count > ws->set->process_min_avail)
		wpool_let_go(ws->spares);
	/* spares never push out a worker: within process_limit only */
	while (ws->spare_count < ws->set->process_min_avail && now >= ws->spare_retry_ms &&
	       ws->count < ws->set->process_limit) {
		if (worker_spawn_spare(ws) < 0) {
			ws->spare_retry_ms = now + SPARE_RETRY_MSECS;
			break;
		}
	}
}

void workers_tick(void)
{
	if (m.stopping)
		return;
	int64_t now = now_ms();
	for (unsigned i = 0; i < 2; i++) {
		struct worker_service *ws = &m.workers[i];
		if (ws->protocol != NULL && ws->set != NULL &&
		    settings_protocol_enabled(m.set, ws->protocol)) {
			wtemplate_tick(ws);
			wpool_tick(ws, now);
		}
	}
}
