/* master-proc.c — the process table: what each type of child is, how it
 * is started and what happens when it exits. Every child is in the pid
 * hash (m.pids) from fork to reaping; SIGCHLD finds it there and calls its
 * type's exit handler, so no code outside this file walks lists looking
 * for a pid or asks which kind of process died. */
#include "master/master-private.h"
#include "master/master-log.h"
#include "lib/alloc.h"
#include "lib/log.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

const struct proc_type_info proc_types[PROC_TYPE_COUNT] = {
	[PROC_AUTH] = {
		.name = "auth", .binary = "ringgate-auth",
		.message = auth_message, .kill = auth_kill, .eof = auth_eof,
		.exited = auth_exited, .spawn = auth_spawn, .backoff = true,
		.single = &m.auth, .wanted = auth_wanted,
	},
	[PROC_LOGIN] = {
		.name = "login", .binary = "ringgate-login",
		.message = login_message, .kill = login_kill,
		.exited = login_exited, .spawn = login_spawn, .backoff = true,
	},
	[PROC_WORKER] = {
		.name = "worker",
		.message = worker_message, .kill = worker_kill,
		.exited = worker_exited,
	},
	[PROC_ACCESS] = {
		.name = "access", .binary = "ringgate-access",
		.spawn = access_spawn, .backoff = true,
		.single = &m.access, .wanted = access_wanted,
	},
	[PROC_TEMPLATE] = {
		.name = "login-template",
		.message = template_message, .kill = template_kill,
		.exited = template_exited, .backoff = true,
	},
	[PROC_WTEMPLATE] = {
		.name = "worker-template",
		.message = wtemplate_message, .kill = wtemplate_kill,
		.exited = wtemplate_exited, .backoff = true,
	},
	[PROC_STATS] = {
		.name = "stats", .binary = "ringgate-stats",
		.message = stats_message, .kill = stats_kill,
		.exited = stats_exited, .spawn = stats_spawn, .backoff = true,
		.single = &m.stats, .wanted = stats_wanted,
	},
};

void proc_singles_init(void)
{
	for (unsigned t = 0; t < PROC_TYPE_COUNT; t++) {
		struct proc_single *s = proc_types[t].single;
		if (s != NULL)
			s->grp = (struct proc_group){ .type = (enum proc_type)t,
						      .name = proc_types[t].name };
	}
}

int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

time_t now_secs(void)
{
	return (time_t)(now_ms() / 1000);
}

void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

void ep_add(int fd, struct ev_source *ev)
{
	struct epoll_event e = { .events = EPOLLIN, .data.ptr = ev };
	if (epoll_ctl(m.epfd, EPOLL_CTL_ADD, fd, &e) < 0)
		log_fatal("epoll_ctl(add) failed: %m");
}

void ep_del(int fd)
{
	(void)epoll_ctl(m.epfd, EPOLL_CTL_DEL, fd, NULL);
}

void close_fds(int *fds, unsigned count)
{
	for (unsigned i = 0; i < count; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
	}
}

/* Send on a login's or auth's channel: now, or queued until it is
 * writable, so that a burst of logins never fails on a full socket.
 * 0 or -errno (the channel is broken). */
int chan_send(struct child *c, struct ipc_msg *msg, int pass_fd)
{
	if (c->chan < 0)
		return -EPIPE;
	return ipc_outq_epoll_send(&c->outq, m.epfd, c->chan, &c->ev, msg, pass_fd);
}

void chan_close(struct child *c)
{
	if (c->chan < 0)
		return;
	ep_del(c->chan);
	ipc_outq_clear(&c->outq);
	close(c->chan);
	c->chan = -1;
}

const char *child_service_name(const struct child *c)
{
	return c->grp->name;
}

/* ---- in the forked child, before exec -------------------------------- */

/* Put own[i] at 3+i (clearing close-on-exec) without clobbering each other:
 * first move everything above the target range. Runs after fork only. */
void child_place_fds(const int *own, unsigned own_count, int syslog_fd)
{
	/* the log fds (log_path, info_log_path, debug_log_path when not
	 * stderr; syslog_fd for syslog) follow the process's own, named by
	 * RINGGATE_LOG */
	int fds[64], tmp[64];
	if (own_count > 64 - LOG_SINK_COUNT) {
		log_error("too many fds for a child");
		_exit(CHILD_FATAL_STATUS);
	}
	memcpy(fds, own, own_count * sizeof(int));
	unsigned count = own_count + master_log_child_fds(syslog_fd, fds + own_count);
	char env[128];
	if (!master_log_child_env(syslog_fd, 3 + (int)own_count, env, sizeof(env)) ||
	    setenv("RINGGATE_LOG", env, 1) < 0) {
		log_error("RINGGATE_LOG: %m");
		_exit(CHILD_FATAL_STATUS);
	}
	for (unsigned i = 0; i < count; i++) {
		tmp[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3 + (int)count);
		if (tmp[i] < 0) {
			log_error("fcntl(F_DUPFD) failed: %m");
			_exit(CHILD_FATAL_STATUS);
		}
	}
	for (unsigned i = 0; i < count; i++) {
		if (dup2(tmp[i], 3 + (int)i) < 0) {
			log_error("dup2() failed: %m");
			_exit(CHILD_FATAL_STATUS);
		}
	}
	/* nothing else crosses exec, not even fds master inherited without
	 * close-on-exec from whoever started it */
	(void)close_range(3 + count, ~0u, 0);
}

void child_reset_signals(void)
{
	sigset_t all;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	/* an ignored disposition survives exec */
	for (int sig = 1; sig < NSIG; sig++) {
		if (sig != SIGKILL && sig != SIGSTOP)
			(void)signal(sig, SIG_DFL);
	}
	/* Ctrl-C on a foreground master reaches its whole process group: only
	 * master acts on it (stopping everyone in order), as in Dovecot. */
	(void)signal(SIGINT, SIG_IGN);
	if (m.devnull >= 0) {
		(void)dup2(m.devnull, STDIN_FILENO);
		(void)dup2(m.devnull, STDOUT_FILENO);
	}
}

void child_set_vsz(uint64_t vsz)
{
#if defined(__SANITIZE_ADDRESS__)
	/* ASan reserves terabytes of address space: any RLIMIT_AS kills it */
	(void)vsz;
#else
	if (vsz == 0)
		return;
	struct rlimit rl = { .rlim_cur = vsz, .rlim_max = vsz };
	if (setrlimit(RLIMIT_AS, &rl) < 0)
		log_error("setrlimit(RLIMIT_AS, %llu) failed: %m", (unsigned long long)vsz);
#endif
}

/* ---- the table of children ------------------------------------------- */

struct child *child_new(pid_t pid, struct proc_group *grp, int chan)
{
	struct child *c = rg_calloc(1, sizeof(*c));
	c->hash.pid = pid;
	c->type = grp->type;
	c->grp = grp;
	c->started_ms = now_ms();
	c->chan = chan;
	c->auth_pending_fd = -1;
	c->ev = (struct ev_source){ EV_CHILD, c };
	pidhash_add(&m.pids, &c->hash);
	return c;
}

void child_free(struct child *c)
{
	(void)pidhash_remove(&m.pids, &c->hash);
	chan_close(c);
	if (c->auth_pending_fd >= 0)
		close(c->auth_pending_fd);
	rg_free(c->user);
	rg_free(c->rip);
	rg_free(c->wjail);
	rg_free(c);
}

/* the child with that pid if it is of that type */
struct child *child_find(pid_t pid, enum proc_type type)
{
	struct pidhash_node *n = pidhash_find(&m.pids, pid);
	struct child *c = (struct child *)n; /* hash is the first member */
	return c != NULL && c->type == type ? c : NULL;
}

void child_list_add(struct child **head, struct child *c)
{
	c->prev = NULL;
	c->next = *head;
	if (*head != NULL)
		(*head)->prev = c;
	*head = c;
}

void child_list_del(struct child **head, struct child *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else if (*head == c)
		*head = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

/* log the exit; returns whether it was abnormal */
bool child_log_exit(const struct child *c, int status)
{
	const char *name = child_service_name(c);
	if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);
		if (c->st.terminating && (sig == SIGTERM || sig == SIGKILL)) {
			log_debug("service(%s): child %ld stopped with signal %d", name,
				  (long)child_pid(c), sig);
			return false;
		}
		log_error("service(%s): child %ld killed with signal %d%s", name, (long)child_pid(c),
			  sig, WCOREDUMP(status) ? " (core dumped)" : "");
		return true;
	}
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	if (code != 0) {
		log_error("service(%s): child %ld returned error %d", name, (long)child_pid(c), code);
		return true;
	}
	log_debug("service(%s): child %ld exited", name, (long)child_pid(c));
	return false;
}

/* Start-up failure accounting: a process dying abnormally within
 * MASTER_FAST_FAILURE_MSECS of its start is a failure; one that lived or
 * exited cleanly resets the count. */
static void proc_backoff_note(struct proc_backoff *b, const struct child *c, bool abnormal)
{
	int64_t now = now_ms();
	if (!abnormal || c->st.terminating || now - c->started_ms >= MASTER_FAST_FAILURE_MSECS) {
		if (abnormal)
			b->failures = 0;
		return;
	}
	/* several processes dying together are one failure, not several */
	if (now < b->until_ms)
		return;
	b->failures++;
	unsigned secs = master_backoff_secs(b->failures);
	b->until_ms = now + (int64_t)secs * 1000;
	log_error("service(%s): processes die at start-up, waiting %u secs before "
		  "respawning", child_service_name(c), secs);
}

/* One exit path for every type: the type's accounting, the log line, the
 * group's back-off, the memory. */
void child_exited(pid_t pid, int status)
{
	struct child *c = (struct child *)pidhash_find(&m.pids, pid);
	if (c == NULL) {
		template_unknown_exit(pid, status);
		return;
	}
	c->exit_status = status;
	(void)pidhash_remove(&m.pids, &c->hash);
	const struct proc_type_info *pt = &proc_types[c->type];
	if (pt->single != NULL && pt->single->child == c)
		pt->single->child = NULL;
	if (pt->exited != NULL)
		pt->exited(c);
	bool abnormal = child_log_exit(c, status);
	if (pt->single != NULL) {
		/* one that must run: any exit while master runs is a failure */
		if (!m.stopping && !c->st.terminating && !abnormal)
			log_error("service(%s): process %ld exited unexpectedly", c->grp->name,
				  (long)child_pid(c));
		abnormal = abnormal || !m.stopping;
	}
	if (pt->backoff)
		proc_backoff_note(&c->grp->backoff, c, abnormal);
	child_free(c);
}

void children_reap(void)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0)
			break;
		child_exited(pid, status);
	}
}

bool children_any(void)
{
	return m.pids.count > 0;
}

/* login processes (and their templates) first, then the rest: when auth,
 * access or stats exit, a login process's signal is already pending, so it
 * knows that the channel closed because everyone stops (login-auth.c) */
void children_signal(int sig)
{
	for (int pass = 0; pass < 2; pass++) {
		for (unsigned b = 0; b < m.pids.size; b++) {
			for (struct pidhash_node *n = m.pids.buckets[b]; n != NULL; n = n->next) {
				struct child *c = (struct child *)n;
				bool login = c->type == PROC_LOGIN || c->type == PROC_TEMPLATE;
				if (login != (pass == 0))
					continue;
				c->st.terminating = true;
				kill(child_pid(c), sig);
			}
		}
	}
}

/* the end of a stop: whoever is left is waited for */
void children_wait_all(void)
{
	while (children_any()) {
		int status;
		pid_t pid = waitpid(-1, &status, 0);
		if (pid < 0)
			break;
		child_exited(pid, status);
	}
}

int proc_single_start(struct proc_group *g, bool with_chan, const int *fds, unsigned nfds,
		      const char *env)
{
	enum proc_type t = g->type;
	const struct proc_type_info *pt = &proc_types[t];
	int pair[2] = { -1, -1 };
	if (with_chan && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) {
		log_error("service(%s): socketpair() failed: %m", pt->name);
		return -1;
	}
	int own[64];
	unsigned n = 0;
	if (with_chan)
		own[n++] = pair[1];
	for (unsigned i = 0; i < nfds && n < 64; i++)
		own[n++] = fds[i];
	pid_t pid = fork();
	if (pid < 0) {
		log_error("service(%s): fork() failed: %m", pt->name);
		close_fds(pair, 2);
		return -1;
	}
	if (pid == 0) {
		child_reset_signals();
		/* the internal user's syslog socket (auth's): none of these has
		 * socket or connect in its seccomp list, so none can move it */
		child_place_fds(own, n, master_log_syslog_fd(MASTER_LOG_AUTH));
		if (env != NULL)
			(void)putenv((char *)env);
		char *argv[] = { (char *)pt->binary, (char *)"-c", m.running_conf, NULL };
		execv(m.paths[t], argv);
		log_error("execv(%s) failed: %m", m.paths[t]);
		_exit(CHILD_FATAL_STATUS);
	}
	int chan = -1;
	if (with_chan) {
		close(pair[1]);
		chan = pair[0];
		set_nonblock(chan);
	}
	struct child *c = child_new(pid, g, chan);
	if (chan >= 0)
		ep_add(chan, &c->ev);
	pt->single->child = c;
	log_debug("service(%s): started process %ld", pt->name, (long)pid);
	return 0;
}

int proc_spawn(struct proc_group *g)
{
	if (now_ms() < g->backoff.until_ms)
		return -1;
	return proc_types[g->type].spawn(g);
}

void proc_singles_respawn(void)
{
	for (unsigned t = 0; t < PROC_TYPE_COUNT; t++) {
		const struct proc_type_info *pt = &proc_types[t];
		if (pt->single != NULL && pt->single->child == NULL && pt->wanted())
			(void)proc_spawn(&pt->single->grp);
	}
}

void child_chan_event(struct child *c, uint32_t events)
{
	if (c->chan >= 0 && (events & EPOLLOUT) != 0) {
		int fl = ipc_outq_epoll_flush(&c->outq, m.epfd, c->chan, &c->ev);
		if (fl < 0)
			log_error("%s: channel of %ld: %s", child_service_name(c),
				  (long)child_pid(c), strerror(-fl));
		if ((events & ~(uint32_t)EPOLLOUT) == 0)
			return;
	}
	child_chan_read(c);
}

void child_chan_read(struct child *c)
{
	const struct proc_type_info *pt = &proc_types[c->type];
	if (pt->message == NULL)
		return;
	struct ipc_rx *rx = rg_malloc(sizeof(*rx));
	for (unsigned i = 0; i < MAX_MSGS_PER_WAKEUP && c->chan >= 0; i++) {
		const char *error = NULL;
		int ret = ipc_recv(c->chan, rx, &error);
		if (ret == -EAGAIN)
			break;
		if (ret == -EPROTO) {
			pt->kill(c, error);
			break;
		}
		if (ret <= 0) {
			/* going away; SIGCHLD does the rest */
			chan_close(c);
			if (pt->eof != NULL)
				pt->eof(c);
			break;
		}
		pt->message(c, rx);
	}
	rg_free(rx);
}
