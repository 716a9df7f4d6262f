/* master-login.c — login processes: starting one for a service, its
 * messages (status, counters, hand-offs), TLS ticket keys, its exit; and
 * the hand-off itself: a LOGIN_HANDOFF waits (struct pending) for auth to
 * redeem its cookie, then becomes a worker (master-worker.c) and a reply
 * to the login process. */
#include "master/master-private.h"
#include "master/master-log.h"
#include "lib/alloc.h"
#include "lib/log.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static struct child *child_find_login(pid_t pid)
{
	return child_find(pid, PROC_LOGIN);
}

void login_reply(pid_t login_pid, uint32_t login_req_id, const char *reason, bool temp,
			pid_t mpid)
{
	struct child *c = child_find_login(login_pid);
	if (c == NULL || c->chan < 0)
		return;
	struct ipc_msg msg;
	ipc_msg_init(&msg, IPC_LOGIN_HANDOFF_REPLY, login_req_id);
	if (reason != NULL) {
		ipc_msg_add_str(&msg, IPC_F_REASON, reason);
		if (temp)
			ipc_msg_add_str(&msg, IPC_F_TEMP, "1");
	} else if (mpid > 0) {
		ipc_msg_add_uint(&msg, IPC_F_MPID, (unsigned long long)mpid);
	}
	int ret = chan_send(c, &msg, -1);
	if (ret < 0)
		log_error("service(%s): sending hand-off reply to %ld failed: %s",
			  c->svc->set->name, (long)child_pid(c), strerror(-ret));
}

static void pending_free(struct pending *p)
{
	if (p->client_fd >= 0)
		close(p->client_fd);
	rg_free(p->msg);
	rg_free(p);
}

static struct pending *pending_take(uint32_t id)
{
	for (struct pending **pp = &m.pending; *pp != NULL; pp = &(*pp)->next) {
		if ((*pp)->id == id) {
			struct pending *p = *pp;
			*pp = p->next;
			return p;
		}
	}
	return NULL;
}

void pending_fail_all(const char *reason)
{
	while (m.pending != NULL) {
		struct pending *p = m.pending;
		m.pending = p->next;
		login_reply(p->login_pid, p->login_req_id, reason, true, 0);
		pending_free(p);
	}
}

void handoff_auth_reply(const struct ipc_rx *rx)
{
	struct pending *p = pending_take(rx->hdr.id);
	if (p == NULL) {
		log_error("auth: reply to unknown request %u ignored", rx->hdr.id);
		return;
	}
	if (child_find_login(p->login_pid) == NULL) {
		/* the login process died meanwhile; its client goes with it */
		log_debug("login %ld gone before its hand-off completed", (long)p->login_pid);
		pending_free(p);
		return;
	}
	if (rx->hdr.type == IPC_AUTH_FAIL) {
		const char *reason = ipc_str(&rx->fields, IPC_F_REASON);
		log_error("auth refused the login of pid %ld: %s", (long)p->login_pid,
			  reason != NULL ? reason : "(no reason)");
		login_reply(p->login_pid, p->login_req_id, REASON_INTERNAL,
			    ipc_has(&rx->fields, IPC_F_TEMP), 0);
		pending_free(p);
		return;
	}

	struct ipc_hdr hh;
	struct ipc_fields hf;
	const char *error;
	if (!ipc_decode(p->msg, p->msg_len, &hh, &hf, &error))
		log_fatal("stored hand-off no longer decodes: %s", error); /* our bug */
	struct worker_service *ws = worker_service_get(ipc_str(&hf, IPC_F_SERVICE));
	bool temp = false;
	const char *reason;
	pid_t mpid = 0;
	if (ws == NULL) {
		log_error("no worker service for the hand-off");
		reason = REASON_INTERNAL;
	} else {
		reason = worker_spawn(ws, p, &hf, &rx->fields, &temp, &mpid);
	}
	login_reply(p->login_pid, p->login_req_id, reason, temp, reason == NULL ? mpid : 0);
	pending_free(p);
}

void login_kill(struct child *c, const char *why)
{
	log_error("service(%s): %s: killing process %ld", c->svc->set->name, why, (long)child_pid(c));
	chan_close(c);
	c->st.terminating = true;
	kill(child_pid(c), SIGKILL);
}

static void login_handoff(struct child *c, struct ipc_rx *rx)
{
	const char *service = ipc_str(&rx->fields, IPC_F_SERVICE);
	if (rx->fd < 0 || service == NULL || strcmp(service, c->svc->protocol) != 0 ||
	    ipc_str(&rx->fields, IPC_F_USER) == NULL ||
	    ipc_str(&rx->fields, IPC_F_COOKIE) == NULL) {
		if (rx->fd >= 0)
			close(rx->fd);
		login_kill(c, "malformed LOGIN_HANDOFF");
		return;
	}
	if (m.stopping || m.auth.child == NULL || m.auth.child->chan < 0) {
		login_reply(child_pid(c), rx->hdr.id, m.stopping ? "Server shutting down." :
			    "Authentication service unavailable.", true, 0);
		close(rx->fd);
		return;
	}
	struct pending *p = rg_calloc(1, sizeof(*p));
	if (++m.req_seq == 0)
		m.req_seq = 1;
	p->id = m.req_seq;
	p->login_pid = child_pid(c);
	p->login_req_id = rx->hdr.id;
	p->client_fd = rx->fd;
	p->msg_len = IPC_HDR_SIZE + rx->hdr.len;
	p->msg = rg_memdup(rx->buf, p->msg_len);

	struct ipc_msg msg;
	ipc_msg_init(&msg, IPC_AUTH_REQUEST, p->id);
	ipc_msg_add_str(&msg, IPC_F_COOKIE, ipc_str(&rx->fields, IPC_F_COOKIE));
	ipc_msg_add_uint(&msg, IPC_F_LOGIN_PID, (unsigned long long)child_pid(c));
	int ret = chan_send(m.auth.child, &msg, -1);
	if (ret < 0) {
		log_error("auth: sending AUTH_REQUEST failed: %s", strerror(-ret));
		login_reply(child_pid(c), p->login_req_id, "Authentication service unavailable.", true, 0);
		pending_free(p);
		return;
	}
	p->next = m.pending;
	m.pending = p;
}

static void login_status(struct child *c, const struct ipc_rx *rx)
{
	unsigned long long conns, prelogin, total;
	if (rx->fd >= 0 || !ipc_uint(&rx->fields, IPC_F_CONNS, &conns) ||
	    !ipc_uint(&rx->fields, IPC_F_PRELOGIN, &prelogin) ||
	    !ipc_uint(&rx->fields, IPC_F_TOTAL, &total) || conns > UINT32_MAX ||
	    prelogin > conns || total > UINT32_MAX) {
		if (rx->fd >= 0)
			close(rx->fd);
		login_kill(c, "malformed LOGIN_STATUS");
		return;
	}
	if (conns == 0 && c->st.conns != 0)
		c->st.idle_since = now_secs();
	c->st.conns = (unsigned)conns;
	c->st.prelogin = (unsigned)prelogin;
	c->st.total = (unsigned)total;
	c->svc->watch_blocked = false;
	log_debug("service(%s): process %ld: conns=%llu prelogin=%llu total=%llu",
		  c->svc->set->name, (long)child_pid(c), conns, prelogin, total);
}

static void login_stats(struct child *c, const struct ipc_rx *rx)
{
	const char *text = ipc_str(&rx->fields, IPC_F_STATS);
	const char *error = "no STATS field";
	struct login_counters st;
	if (rx->fd >= 0 || text == NULL ||
	    stats_parse(text, rx->fields.len[IPC_F_STATS], &st, &error) < 0) {
		if (rx->fd >= 0)
			close(rx->fd);
		char why[96];
		snprintf(why, sizeof(why), "malformed LOGIN_STATS: %s", error);
		login_kill(c, why);
		return;
	}
	c->stats = st;
	stats_reply_noted(c);
}

void login_message(struct child *c, struct ipc_rx *rx)
{
	switch (rx->hdr.type) {
	case IPC_LOGIN_HANDOFF:
		login_handoff(c, rx);
		break;
	case IPC_LOGIN_STATUS:
		login_status(c, rx);
		break;
	case IPC_LOGIN_STATS:
		login_stats(c, rx);
		break;
	default:
		if (rx->fd >= 0)
			close(rx->fd);
		login_kill(c, "unexpected IPC message");
		break;
	}
}

void login_send_ticket_keys(struct child *c)
{
	if (m.ticket_len == 0 || c->chan < 0)
		return;
	struct ipc_msg *msg = rg_malloc(sizeof(*msg));
	ipc_msg_init(msg, IPC_LOGIN_TICKET_KEYS, 0);
	ipc_msg_add(msg, IPC_F_TICKET_KEYS, m.ticket_keys, m.ticket_len);
	int ret = chan_send(c, msg, -1);
	explicit_bzero(msg->buf, msg->len);
	rg_free(msg);
	if (ret < 0)
		log_warning("service(%s): process %ld: ticket keys not sent: %s",
			    c->svc->set->name, (long)child_pid(c), strerror(-ret));
}

void ticket_keys_rotate(void)
{
	if (m.ticket_len > 0) {
		memmove(m.ticket_keys + TICKET_KEY_SIZE, m.ticket_keys, TICKET_KEY_SIZE);
		m.ticket_len = 2 * TICKET_KEY_SIZE;
	} else {
		m.ticket_len = TICKET_KEY_SIZE;
	}
	if (getrandom(m.ticket_keys, TICKET_KEY_SIZE, 0) != TICKET_KEY_SIZE)
		log_fatal("getrandom() failed: %m");
	m.ticket_rotated = now_secs();
	for (unsigned s = 0; s < m.service_count; s++) {
		for (struct child *c = m.services[s]->logins; c != NULL; c = c->next)
			login_send_ticket_keys(c);
	}
	log_debug("TLS ticket keys rotated");
}

void login_fds_free(struct login_fds *lf)
{
	for (unsigned i = 2; i < lf->nsocks + 2; i++) {
		if (lf->own[i] && lf->fds[i] >= 0)
			close(lf->fds[i]);
	}
	rg_free(lf->fds);
	rg_free(lf->own);
	rg_free(lf->names);
	*lf = (struct login_fds){ 0 };
}

/* fds[2..]: svc's listening sockets (a reuse_port listener's made now, for
 * this process: own[i]), then the iplimit table; fds[0], fds[1] are the
 * caller's (the channels). 0, or -1 logged. */
int login_fds_collect(struct login_service *svc, struct login_fds *lf)
{
	unsigned nsocks = 0;
	for (unsigned i = 0; i < svc->listener_count; i++)
		nsocks += svc->listeners[i].sock_count;
	/* fd 3 master, 4 auth, then the listeners, then the iplimit table,
	 * then the local_name store */
	lf->nsocks = nsocks;
	lf->nfds = nsocks + 2 + (m.iplimit_fd >= 0 ? 1 : 0) + (m.sni_fd >= 0 ? 1 : 0);
	lf->fds = rg_calloc(lf->nfds, sizeof(int));
	lf->own = rg_calloc(lf->nfds, sizeof(bool));
	size_t names_size = 1;
	for (unsigned i = 0; i < svc->listener_count; i++)
		names_size += (strlen(svc->listeners[i].set->name) + 1) * svc->listeners[i].sock_count;
	lf->names = rg_calloc(1, names_size);
	unsigned k = 2;
	for (unsigned i = 0; i < svc->listener_count; i++) {
		struct listener *l = &svc->listeners[i];
		for (unsigned j = 0; j < l->sock_count; j++, k++) {
			if (l->socks[j].fd >= 0) {
				lf->fds[k] = l->socks[j].fd;
			} else {
				/* reuse_port: this process's own accept queue */
				char *error;
				lf->fds[k] = master_addr_listen(&l->socks[j].addr, true, m.backlog, &error);
				if (lf->fds[k] < 0) {
					log_error("service(%s): %s", svc->set->name, error);
					rg_free(error);
					login_fds_free(lf);
					return -1;
				}
				lf->own[k] = true;
			}
			if (*lf->names != '\0')
				strcat(lf->names, ",");
			strcat(lf->names, l->set->name);
		}
	}
	if (m.iplimit_fd >= 0)
		lf->fds[nsocks + 2] = m.iplimit_fd;
	if (m.sni_fd >= 0)
		lf->fds[lf->nfds - 1] = m.sni_fd;
	return 0;
}

/* fork + exec of ringgate-login with lf's fds (template: -T); the pid, or
 * -1 logged */
pid_t login_exec(struct login_service *svc, const struct login_fds *lf, int cpu, bool template)
{
	pid_t pid = fork();
	if (pid < 0) {
		log_error("service(%s): fork() failed: %m", svc->set->name);
		return -1;
	}
	if (pid == 0) {
		child_reset_signals();
		child_set_vsz(svc->set->vsz_limit);
		if (cpu >= 0) {
			cpu_set_t one;
			CPU_ZERO(&one);
			CPU_SET(cpu, &one);
			if (sched_setaffinity(0, sizeof(one), &one) < 0)
				log_warning("sched_setaffinity(%d) failed: %m", cpu);
		}
		child_place_fds(lf->fds, lf->nfds, master_log_syslog_fd(MASTER_LOG_LOGIN));
		setenv("RINGGATE_LISTENERS", lf->names, 1);
		if (m.iplimit_fd >= 0)
			setenv("RINGGATE_IPLIMIT", "1", 1);
		if (m.sni_fd >= 0)
			setenv("RINGGATE_SNI_STORE", "1", 1);
		/* a template binds every symbol once, at its start: lazily,
		 * each child would resolve (and fault in) the same PLT slots */
		if (template)
			setenv("LD_BIND_NOW", "1", 1);
		char *argv[] = { (char *)"ringgate-login", (char *)"-c", m.running_conf,
				 (char *)"-s", (char *)svc->protocol, template ? (char *)"-T" : NULL,
				 NULL };
		execv(m.paths[PROC_LOGIN], argv);
		log_error("execv(%s) failed: %m", m.paths[PROC_LOGIN]);
		_exit(CHILD_FATAL_STATUS);
	}
	return pid;
}

/* A login process of svc started (exec'd or forked by a template): its
 * entry, its channel (master's end chan), its auth channel's other end
 * (auth_fd) to auth; both fds become the entry's. */
struct child *login_started(struct login_service *svc, pid_t pid, int chan, int auth_fd, int cpu)
{
	struct child *c = child_new(pid, &svc->grp, chan);
	c->svc = svc;
	c->st.pid = pid;
	c->st.started = now_secs();
	c->st.idle_since = c->st.started;
	set_nonblock(c->chan);
	ep_add(c->chan, &c->ev);
	child_list_add(&svc->logins, c);
	svc->login_count++;
	if (m.auth.child != NULL && m.auth.child->chan >= 0)
		(void)auth_send_client(c, auth_fd);
	else
		c->auth_pending_fd = auth_fd; /* given to auth when it (re)starts */
	log_debug("service(%s): started process %ld on CPU %d", svc->set->name, (long)pid, cpu);
	return c;
}

/* the table's spawn for PROC_LOGIN: one more process of a login service */
int login_spawn(struct proc_group *g)
{
	struct login_service *svc = (struct login_service *)((char *)g -
		offsetof(struct login_service, grp));
	if (template_wanted(svc))
		return template_spawn_login(svc);
	struct login_fds lf;
	if (login_fds_collect(svc, &lf) < 0)
		return -1;
	int chan[2] = { -1, -1 }, authp[2] = { -1, -1 };
	int ret = -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, chan) < 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, authp) < 0) {
		log_error("service(%s): socketpair() failed: %m", svc->set->name);
		goto out;
	}
	lf.fds[0] = chan[1];
	lf.fds[1] = authp[1];
	int cpu = master_cpu_pick(&m.cpus, m.cpu_seq++);
	pid_t pid = login_exec(svc, &lf, cpu, false);
	if (pid < 0)
		goto out;
	struct child *c = login_started(svc, pid, chan[0], authp[0], cpu);
	chan[0] = authp[0] = -1;
	login_send_ticket_keys(c);
	ret = 0;
out:;
	int rest[4] = { chan[0], chan[1], authp[0], authp[1] };
	close_fds(rest, 4);
	login_fds_free(&lf);
	return ret;
}

void login_exited(struct child *c)
{
	struct login_service *svc = c->svc;
	/* its last LOGIN_STATS is queued before the EOF */
	for (unsigned i = 0; i < 4 && c->chan >= 0; i++)
		child_chan_read(c);
	/* a retired process's counts go to its successor */
	struct login_service *heir = svc->retired ? service_current(svc->set->name) : NULL;
	stats_add_counts(heir != NULL ? &heir->gone : &svc->gone, &c->stats);
	stats_reply_noted(c);
	child_list_del(&svc->logins, c);
	svc->login_count--;
	svc->watch_blocked = false;
	if (c->tpl_pid != 0 && WIFSIGNALED(c->exit_status) && !c->st.terminating)
		template_child_crashed(svc, c);
}
