/* master-template.c — high-security mode's template login processes (the
 * zygote pattern, src/login/login-template.h). A login service with
 * service_count = 1 and login_template_forks > 0 starts one template by
 * fork + exec (`ringgate-login -T`); each login process it needs is then
 * asked of the template: master makes the process's two channels, sends
 * their far ends (LOGIN_SPAWN_AUTH, LOGIN_SPAWN), and the template forks
 * a child with CLONE_PARENT, so the child is master's, reaped and counted
 * like an exec'd one. LOGIN_SPAWNED names its pid; until then the request
 * counts as an available process of the service (svc->spawning).
 *
 * A template's layout is known to every child it forks, so it is
 * replaced by a fresh exec after login_template_forks children and at
 * once when one of its children dies of a signal that master did not
 * send (a crash: someone may be probing the layout). */
#include "master/master-private.h"
#include "lib/alloc.h"
#include "lib/log.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* one LOGIN_SPAWN not yet answered; answers come in order */
struct tpl_spawn {
	uint32_t id;
	int chan, auth_fd; /* master's ends, the login's once it exists */
	int cpu;
	struct tpl_spawn *next;
};

struct tpl_state {
	struct tpl_spawn *head, *tail;
	unsigned forks;    /* LOGIN_SPAWNs sent */
	bool retiring;     /* no more requests; closed once all are answered */
};

/* Exits of pids master did not know yet: a template's child that ended
 * before its LOGIN_SPAWNED was read. A few are enough: the window is one
 * epoll batch. */
#define EARLY_EXITS 64
static struct {
	pid_t pid;
	int status;
} early[EARLY_EXITS];
static unsigned early_next;
static uint32_t spawn_seq;

bool template_wanted(const struct login_service *svc)
{
	if (svc->set->service_count != 1 || m.set->login_template_forks == 0 || svc->retired)
		return false;
	/* a reuse_port listener is a socket per process, made at its start:
	 * only an exec'd process gets one */
	for (unsigned i = 0; i < svc->listener_count; i++) {
		for (unsigned j = 0; j < svc->listeners[i].sock_count; j++) {
			if (svc->listeners[i].socks[j].fd < 0)
				return false;
		}
	}
	return true;
}

static struct child *template_start(struct login_service *svc)
{
	struct login_fds lf;
	if (login_fds_collect(svc, &lf) < 0)
		return NULL;
	int chan[2];
	struct child *c = NULL;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, chan) < 0) {
		log_error("service(%s): socketpair() failed: %m", svc->set->name);
		login_fds_free(&lf);
		return NULL;
	}
	lf.fds[0] = chan[1];
	lf.fds[1] = m.devnull; /* a template has no auth channel */
	pid_t pid = login_exec(svc, &lf, -1, true);
	close(chan[1]);
	login_fds_free(&lf);
	if (pid < 0) {
		close(chan[0]);
		return NULL;
	}
	c = child_new(pid, &svc->grp, chan[0]);
	c->type = PROC_TEMPLATE;
	c->svc = svc;
	c->tpl = rg_calloc(1, sizeof(*c->tpl));
	set_nonblock(c->chan);
	ep_add(c->chan, &c->ev);
	svc->tpl = c;
	svc->tpl_alive++;
	log_debug("service(%s): started template %ld", svc->set->name, (long)pid);
	return c;
}

/* close the channel once nothing is owed: the template exits on EOF */
static void template_close_if_done(struct child *c)
{
	if (c->tpl->retiring && c->tpl->head == NULL)
		chan_close(c);
}

void template_retire(struct login_service *svc)
{
	struct child *c = svc->tpl;
	if (c == NULL)
		return;
	svc->tpl = NULL;
	c->tpl->retiring = true;
	template_close_if_done(c);
	/* the successor starts now, so the next spawn does not wait for its
	 * exec */
	if (!m.stopping && template_wanted(svc))
		(void)template_start(svc);
}

int template_spawn_login(struct login_service *svc)
{
	struct child *t = svc->tpl != NULL ? svc->tpl : template_start(svc);
	if (t == NULL)
		return -1;
	int chan[2] = { -1, -1 }, authp[2] = { -1, -1 };
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, chan) < 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, authp) < 0) {
		log_error("service(%s): socketpair() failed: %m", svc->set->name);
		int all[4] = { chan[0], chan[1], authp[0], authp[1] };
		close_fds(all, 4);
		return -1;
	}
	/* the ticket keys wait in the new channel before the process exists,
	 * so its first TLS client already gets a ticket every process opens */
	if (m.ticket_len > 0) {
		struct ipc_msg *msg = rg_malloc(sizeof(*msg));
		ipc_msg_init(msg, IPC_LOGIN_TICKET_KEYS, 0);
		ipc_msg_add(msg, IPC_F_TICKET_KEYS, m.ticket_keys, m.ticket_len);
		int ret = ipc_send(chan[0], msg, -1);
		explicit_bzero(msg->buf, msg->len);
		rg_free(msg);
		if (ret < 0)
			log_warning("service(%s): ticket keys not sent: %s", svc->set->name,
				    strerror(-ret));
	}
	struct ipc_msg msg;
	if (++spawn_seq == 0)
		spawn_seq = 1;
	ipc_msg_init(&msg, IPC_LOGIN_SPAWN_AUTH, spawn_seq);
	int ret = chan_send(t, &msg, authp[1]);
	if (ret == 0) {
		ipc_msg_init(&msg, IPC_LOGIN_SPAWN, spawn_seq);
		ret = chan_send(t, &msg, chan[1]);
	}
	close(chan[1]);
	close(authp[1]);
	if (ret < 0) {
		log_error("service(%s): template %ld: %s", svc->set->name, (long)child_pid(t),
			  strerror(-ret));
		close(chan[0]);
		close(authp[0]);
		template_kill(t, "channel broken");
		return -1;
	}
	struct tpl_spawn *sp = rg_calloc(1, sizeof(*sp));
	*sp = (struct tpl_spawn){ .id = spawn_seq, .chan = chan[0], .auth_fd = authp[0],
				  .cpu = master_cpu_pick(&m.cpus, m.cpu_seq++) };
	if (t->tpl->tail != NULL)
		t->tpl->tail->next = sp;
	else
		t->tpl->head = sp;
	t->tpl->tail = sp;
	svc->spawning++;
	if (++t->tpl->forks >= m.set->login_template_forks) {
		log_debug("service(%s): template %ld made %u processes: replacing it",
			  svc->set->name, (long)child_pid(t), t->tpl->forks);
		template_retire(svc);
	}
	return 0;
}

static void spawn_free(struct login_service *svc, struct tpl_spawn *sp)
{
	if (sp->chan >= 0)
		close(sp->chan);
	if (sp->auth_fd >= 0)
		close(sp->auth_fd);
	svc->spawning--;
	rg_free(sp);
}

static bool early_take(pid_t pid, int *status_r)
{
	for (unsigned i = 0; i < EARLY_EXITS; i++) {
		if (early[i].pid == pid) {
			early[i].pid = 0;
			*status_r = early[i].status;
			return true;
		}
	}
	return false;
}

void template_unknown_exit(pid_t pid, int status)
{
	log_debug("reaped child %ld before knowing it", (long)pid);
	early[early_next].pid = pid;
	early[early_next].status = status;
	early_next = (early_next + 1) % EARLY_EXITS;
}

void template_message(struct child *c, struct ipc_rx *rx)
{
	struct login_service *svc = c->svc;
	struct tpl_spawn *sp = c->tpl->head;
	unsigned long long pid = 0;
	const char *reason = ipc_str(&rx->fields, IPC_F_REASON);
	if (rx->hdr.type != IPC_LOGIN_SPAWNED || rx->fd >= 0 || sp == NULL ||
	    rx->hdr.id != sp->id ||
	    (reason == NULL && (!ipc_uint(&rx->fields, IPC_F_LOGIN_PID, &pid) || pid < 2 ||
				pid > INT32_MAX))) {
		if (rx->fd >= 0)
			close(rx->fd);
		template_kill(c, "unexpected message");
		return;
	}
	c->tpl->head = sp->next;
	if (c->tpl->head == NULL)
		c->tpl->tail = NULL;
	if (reason != NULL) {
		log_error("service(%s): template %ld could not fork: %s", svc->set->name,
			  (long)child_pid(c), reason);
		spawn_free(svc, sp);
		template_close_if_done(c);
		return;
	}
	struct child *l = login_started(svc, (pid_t)pid, sp->chan, sp->auth_fd, sp->cpu);
	l->tpl_pid = child_pid(c);
	sp->chan = sp->auth_fd = -1;
	if (sp->cpu >= 0) {
		cpu_set_t one;
		CPU_ZERO(&one);
		CPU_SET(sp->cpu, &one);
		(void)sched_setaffinity((pid_t)pid, sizeof(one), &one);
	}
	spawn_free(svc, sp);
	if (svc->retired) {
		/* asked before a reload replaced the service */
		struct ipc_msg msg;
		ipc_msg_init(&msg, IPC_LOGIN_RETIRE, 0);
		(void)chan_send(l, &msg, -1);
	}
	int status;
	if (early_take((pid_t)pid, &status))
		child_exited((pid_t)pid, status);
	template_close_if_done(c);
}

void template_kill(struct child *c, const char *why)
{
	log_error("service(%s): template: %s: killing process %ld", c->svc->set->name, why,
		  (long)child_pid(c));
	if (c->svc->tpl == c)
		c->svc->tpl = NULL;
	chan_close(c);
	c->st.terminating = true;
	kill(child_pid(c), SIGKILL);
}

void template_exited(struct child *c)
{
	struct login_service *svc = c->svc;
	/* answers it sent before it went still count */
	for (unsigned i = 0; i < 4 && c->chan >= 0 && c->tpl->head != NULL; i++)
		child_chan_read(c);
	while (c->tpl->head != NULL) {
		struct tpl_spawn *sp = c->tpl->head;
		c->tpl->head = sp->next;
		spawn_free(svc, sp);
	}
	if (svc->tpl == c)
		svc->tpl = NULL;
	svc->tpl_alive--;
	svc->watch_blocked = false;
	rg_free(c->tpl);
	c->tpl = NULL;
}

void template_child_crashed(struct login_service *svc, const struct child *login)
{
	if (svc->tpl == NULL || child_pid(svc->tpl) != login->tpl_pid)
		return;
	log_warning("service(%s): a child of template %ld died of a signal: replacing the "
		    "template", svc->set->name, (long)login->tpl_pid);
	template_retire(svc);
}
