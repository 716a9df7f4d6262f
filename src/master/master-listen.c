/* master-listen.c — login services: their listening sockets (bound here,
 * taken over across a reload), watching them while no login process can
 * accept, and applying master-policy.h's decisions (spawn, kill idle,
 * evict, overflow). */
#include "master/master-private.h"
#include "lib/alloc.h"
#include "lib/log.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

/* the current (not retired) login service called name, or NULL */
struct login_service *service_current(const char *name)
{
	for (unsigned s = 0; s < m.service_count; s++) {
		if (!m.services[s]->retired && strcmp(m.services[s]->set->name, name) == 0)
			return m.services[s];
	}
	return NULL;
}

static void service_policy_input(const struct login_service *svc, struct master_policy_input *in)
{
	*in = (struct master_policy_input){
		.service_count = svc->set->service_count,
		.client_limit = svc->set->client_limit,
		.process_limit = svc->set->process_limit,
		.process_min_avail = svc->set->process_min_avail,
		.idle_kill = svc->set->idle_kill,
		.watchable = svc->watchable,
		.conn_waiting = svc->conn_waiting,
		.now = now_secs(),
	};
}

/* the service's processes for the policy: its login processes, then those
 * asked of a template and not yet answered (fresh, so available) */
static unsigned service_proc_count(const struct login_service *svc)
{
	return svc->login_count + svc->spawning;
}

static struct master_proc_state *service_states(const struct login_service *svc)
{
	struct master_proc_state *st = rg_calloc(service_proc_count(svc) + 1, sizeof(*st));
	unsigned i = 0;
	for (const struct child *c = svc->logins; c != NULL; c = c->next)
		st[i++] = c->st;
	for (unsigned k = 0; k < svc->spawning; k++)
		st[i++] = (struct master_proc_state){ .started = now_secs() };
	return st;
}

void service_arm(struct login_service *svc, bool arm)
{
	for (unsigned i = 0; i < svc->listener_count; i++) {
		struct listener *l = &svc->listeners[i];
		for (unsigned j = 0; j < l->sock_count; j++) {
			struct listen_sock *ls = &l->socks[j];
			if (ls->fd < 0 || ls->armed == arm)
				continue;
			if (arm)
				ep_add(ls->fd, &ls->ev);
			else
				ep_del(ls->fd);
			ls->armed = arm;
		}
	}
}

void service_update(struct login_service *svc)
{
	if (m.stopping)
		return;
	struct master_policy_input in;
	service_policy_input(svc, &in);
	struct master_proc_state *st = service_states(svc);
	/* decide() spawns at most min_avail + 1 and kills at most one per process */
	unsigned max = service_proc_count(svc) + svc->set->process_min_avail + 2;
	struct master_action *act = rg_calloc(max, sizeof(*act));
	unsigned n = master_policy_decide(&in, st, service_proc_count(svc), act, max);

	for (unsigned i = 0; i < n; i++) {
		if (act[i].type == MASTER_ACTION_SPAWN) {
			/* through the table: none while its back-off lasts */
			if (proc_spawn(&svc->grp) < 0)
				break;
			continue;
		}
		if (act[i].type == MASTER_ACTION_OVERFLOW) {
			log_warning("service(%s): process_limit (%u) reached, client connections "
				    "are being dropped", svc->set->name, svc->set->process_limit);
			for (struct child *l = svc->logins; l != NULL; l = l->next) {
				struct ipc_msg msg;
				if (l->chan < 0 || l->st.terminating)
					continue;
				ipc_msg_init(&msg, IPC_LOGIN_OVERFLOW, 0);
				(void)chan_send(l, &msg, -1);
			}
			continue;
		}
		struct child *c = child_find(act[i].pid, PROC_LOGIN);
		if (c == NULL || c->st.terminating)
			continue;
		if (act[i].type == MASTER_ACTION_KILL_IDLE) {
			/* idle as far as its last status says: it exits only if it
			 * has no connection, else it answers with its status (a
			 * process reports a rise from none only when asked). Not
			 * asked again before another idle_kill period. */
			struct ipc_msg msg;
			if (c->chan < 0)
				continue;
			log_debug("service(%s): process %ld idle for %u secs: stopping it",
				  svc->set->name, (long)child_pid(c), svc->set->idle_kill);
			c->st.idle_since = now_secs();
			ipc_msg_init(&msg, IPC_LOGIN_IDLE_KILL, 0);
			(void)chan_send(c, &msg, -1);
			continue;
		}
		log_warning("service(%s): process_limit (%u) reached, destroying the "
			    "oldest process with clients logging in (%ld)",
			    svc->set->name, svc->set->process_limit, (long)child_pid(c));
		c->st.terminating = true;
		kill(child_pid(c), SIGTERM);
	}
	svc->conn_waiting = false;
	rg_free(act);
	rg_free(st);

	service_policy_input(svc, &in);
	st = service_states(svc);
	bool watch = master_policy_should_watch(&in, st, service_proc_count(svc)) &&
		     !svc->watch_blocked;
	rg_free(st);
	service_arm(svc, watch);
}

void listener_ready(struct listen_sock *ls)
{
	struct login_service *svc = ls->listener->svc;
	if (svc->retired)
		return; /* its socket went to its successor during this batch */
	service_arm(svc, false);
	svc->watch_blocked = true;
	svc->conn_waiting = true;
	service_update(svc);
}

/* On reload: a socket of the configuration being replaced bound to the same
 * address, whose fd the new listener takes over (binding it again would
 * fail while the old one listens). */
static struct listen_sock *find_old_sock(struct login_service **old, unsigned old_count,
					 const struct master_addr *addr)
{
	for (unsigned s = 0; s < old_count; s++) {
		for (unsigned i = 0; i < old[s]->listener_count; i++) {
			struct listener *l = &old[s]->listeners[i];
			for (unsigned j = 0; j < l->sock_count; j++) {
				struct listen_sock *o = &l->socks[j];
				if (o->fd >= 0 && o->addr.len == addr->len && o->addr.v6only == addr->v6only &&
				    memcmp(&o->addr.ss, &addr->ss, addr->len) == 0)
					return o;
			}
		}
	}
	return NULL;
}

static int setup_listener(struct login_service *svc, const struct listener_settings *ls,
			  struct login_service **old, unsigned old_count, char **error_r)
{
	const char *list = ls->address != NULL && *ls->address != '\0' ? ls->address : m.set->listen;
	struct master_addr *addrs;
	unsigned count;
	char *error;
	if (master_addr_parse(list, ls->port, &addrs, &count, &error) < 0) {
		*error_r = rg_strdup_printf("service(%s): inet_listener %s: %s", svc->set->name,
					    ls->name, error);
		rg_free(error);
		return -1;
	}

	struct listener *l = &svc->listeners[svc->listener_count++];
	l->set = ls;
	l->svc = svc;
	l->sock_count = count;
	l->socks = rg_calloc(count, sizeof(*l->socks));
	for (unsigned i = 0; i < count; i++) {
		struct listen_sock *s = &l->socks[i];
		s->listener = l;
		s->addr = addrs[i];
		s->ev = (struct ev_source){ EV_LISTEN, s };
		s->fd = -1;
		if (ls->reuse_port) {
			/* bind once now so a taken port fails start-up, not a spawn;
			 * no listen(), so no connection is queued on it */
			int fd = socket(s->addr.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
			int one = 1;
			if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
			    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
			    (s->addr.ss.ss_family == AF_INET6 &&
			     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
			    bind(fd, (struct sockaddr *)&s->addr.ss, s->addr.len) < 0) {
				*error_r = rg_strdup_printf("listen(%s, %u) failed: %s", s->addr.text,
							    s->addr.port, strerror(errno));
				if (fd >= 0)
					close(fd);
				rg_free(addrs);
				return -1;
			}
			close(fd);
			continue;
		}
		s->from = find_old_sock(old, old_count, &s->addr);
		if (s->from != NULL) {
			s->fd = s->from->fd; /* borrowed until the reload commits */
			continue;
		}
		s->fd = master_addr_listen(&s->addr, false, m.backlog, &error);
		if (s->fd < 0) {
			*error_r = error;
			rg_free(addrs);
			return -1;
		}
	}
	rg_free(addrs);
	return 0;
}

void service_free(struct login_service *svc)
{
	for (unsigned i = 0; i < svc->listener_count; i++) {
		struct listener *l = &svc->listeners[i];
		for (unsigned j = 0; j < l->sock_count; j++) {
			struct listen_sock *ls = &l->socks[j];
			if (ls->fd >= 0 && ls->from == NULL) {
				if (ls->armed)
					ep_del(ls->fd);
				close(ls->fd);
			}
		}
		rg_free(l->socks);
	}
	rg_free(svc->listeners);
	rg_free(svc);
}

/* The login services of m.set, into m.services (which must be empty).
 * old: the services a reload replaces, whose sockets are borrowed. */
int services_setup(struct login_service **old, unsigned old_count, char **error_r)
{
	static const char *const protocols[] = { "imap", "pop3" };
	for (unsigned p = 0; p < 2; p++) {
		const char *proto = protocols[p];
		if (!settings_protocol_enabled(m.set, proto))
			continue;
		struct worker_service *ws = &m.workers[p];
		ws->protocol = proto;
		ws->grp = (struct proc_group){ .type = PROC_WORKER, .name = proto };
		ws->tpl_grp.type = PROC_WTEMPLATE;
		ws->tpl_grp.name = proto;
		ws->set = settings_service(m.set, proto);
		if (ws->set == NULL)
			startup_fatal("service %s missing from the settings", proto);
		if (ws->set->client_limit > 1)
			log_warning("service(%s): client_limit = %u: a worker serves one session "
				    "at a time (as with client_limit = 1)", proto, ws->set->client_limit);
		if (ws->binary_path == NULL)
			ws->binary_path = rg_strdup_printf("%s/ringgate-%s", m.exe_dir, proto);

		char name[32];
		snprintf(name, sizeof(name), "%s-login", proto);
		const struct service_settings *ss = settings_service(m.set, name);
		if (ss == NULL)
			startup_fatal("service %s missing from the settings", name);
		struct login_service *svc = rg_calloc(1, sizeof(*svc));
		svc->set = ss;
		svc->protocol = proto;
		svc->grp = (struct proc_group){ .type = PROC_LOGIN, .name = ss->name };
		svc->listeners = rg_calloc(ss->listener_count + 1, sizeof(*svc->listeners));
		bool any_reuse = false;
		for (unsigned i = 0; i < ss->listener_count; i++) {
			const struct listener_settings *ls = &ss->listeners[i];
			if (ls->port == 0)
				continue;
			if (ls->ssl && m.set->ssl == SSL_NO) {
				log_info("service(%s): ssl = no: listener %s not started", name,
					 ls->name);
				continue;
			}
			if (setup_listener(svc, ls, old, old_count, error_r) < 0) {
				service_free(svc);
				return -1;
			}
			any_reuse = any_reuse || ls->reuse_port;
		}
		if (svc->listener_count == 0) {
			log_info("service(%s): no listeners, no login processes started", name);
			service_free(svc);
			continue;
		}
		svc->watchable = !any_reuse;
		m.services = rg_realloc(m.services, (m.service_count + 1) * sizeof(*m.services));
		m.services[m.service_count++] = svc;
	}
	return 0;
}

/* retired services whose processes have all exited */
void services_prune(void)
{
	unsigned k = 0;
	for (unsigned s = 0; s < m.service_count; s++) {
		struct login_service *svc = m.services[s];
		if (svc->retired && svc->logins == NULL && svc->tpl_alive == 0)
			service_free(svc);
		else
			m.services[k++] = svc;
	}
	m.service_count = k;
}

/* stop: nobody accepts any more */
void services_close_listeners(void)
{
	for (unsigned s = 0; s < m.service_count; s++) {
		struct login_service *svc = m.services[s];
		service_arm(svc, false);
		for (unsigned i = 0; i < svc->listener_count; i++) {
			for (unsigned j = 0; j < svc->listeners[i].sock_count; j++) {
				struct listen_sock *ls = &svc->listeners[i].socks[j];
				if (ls->fd >= 0)
					close(ls->fd);
				ls->fd = -1;
			}
		}
	}
}
