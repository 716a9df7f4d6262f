#include "master/master.h"
#include "master/master-addr.h"
#include "master/master-log.h"
#include "master/master-notify.h"
#include "master/master-pidfile.h"
#include "master/master-policy.h"
#include "master/master-report.h"
#include "lib/alloc.h"
#include "lib/ipc.h"
#include "lib/iplimit.h"
#include "lib/log.h"
#include "lib/privs.h"
#include "lib/stats.h"
#include "tls/tls-settings.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#define STOP_TIMEOUT_MSECS 10000
#define MAX_MSGS_PER_WAKEUP 64
#define CHILD_FATAL_STATUS 89
#define REASON_INTERNAL "Internal error occurred. Refer to server log for more information."
/* TLS session ticket keys: a new one every hour, the previous one still
 * opens tickets for another hour (a ticket lives at most two) */
#define TICKET_KEY_SIZE TLS_TICKET_KEY_SIZE
#define TICKET_ROTATE_SECS 3600
/* how often master re-connects the shared syslog socket */
#define SYSLOG_RECONNECT_SECS 10

/* relayd-style table of the process types master starts */
enum proc_type { PROC_AUTH, PROC_LOGIN, PROC_WORKER, PROC_ACCESS };
static const struct proc_type_info {
	const char *name;
	const char *binary; /* NULL: chosen per service */
} proc_types[] = {
	[PROC_AUTH] = { "auth", "ringgate-auth" },
	[PROC_LOGIN] = { "login", "ringgate-login" },
	[PROC_WORKER] = { "worker", NULL },
	[PROC_ACCESS] = { "access", "ringgate-access" },
};

enum ev_kind { EV_SIGNAL, EV_CHILD, EV_LISTEN, EV_CTL_LISTEN, EV_HTTP_LISTEN, EV_CLIENT };
struct ev_source {
	enum ev_kind kind;
	void *ptr;
};

struct login_service;

/* One bound address of an inet_listener. fd is -1 for reuse_port listeners
 * (each login process gets its own socket at spawn). */
struct listen_sock {
	struct listener *listener;
	struct master_addr addr;
	int fd;
	bool armed;
	struct ev_source ev;
	/* reload: the same address in the replaced configuration, whose fd this
	   one takes over once the new configuration is committed */
	struct listen_sock *from;
};

struct listener {
	const struct listener_settings *set;
	struct login_service *svc;
	struct listen_sock *socks;
	unsigned sock_count;
};

struct child {
	pid_t pid;
	enum proc_type type;
	struct login_service *svc;       /* logins */
	struct worker_service *wsvc;     /* workers */
	int64_t started_ms;
	int chan;                        /* master's end of fd 3; -1 for workers */
	int auth_pending_fd;             /* login: auth end not yet given to auth */
	struct ipc_outq outq;            /* what chan had no room for yet (ipc.h) */
	struct ev_source ev;
	struct master_proc_state st;
	/* logins: the last LOGIN_STATS; stats_wait while a request is out */
	struct login_counters stats;
	bool stats_wait;
	/* workers, for `who` */
	char *user, *rip;
	pid_t proxy_pid;                 /* the login process relaying its TLS */
	time_t since;
	bool tls;
	struct child *next;
};

struct login_service {
	const struct service_settings *set;
	const char *protocol;
	struct listener *listeners;
	unsigned listener_count;
	bool watchable;
	/* a watched listener fired and the decision made for it is pending:
	 * stay unarmed until the service's state changes (edge-aware, so a
	 * waiting connection we cannot serve does not spin the loop) */
	bool watch_blocked;
	bool conn_waiting;
	unsigned failures;
	int64_t backoff_until_ms;
	struct child *logins;
	unsigned login_count;
	struct login_counters gone;      /* running counts of exited processes */
	/* replaced by a reload: its processes stop accepting and live on until
	   their connections end (TLS proxies included) */
	bool retired;
};

/* A client of the control socket (`ringgate who|stats`) or of the metrics
 * listener: read one request, maybe wait for fresh counters, write the
 * answer, close. Never blocks master. */
enum client_cmd { CMD_NONE, CMD_WHO, CMD_WHO_COUNT, CMD_STATS, CMD_METRICS, CMD_RELOAD };
struct client {
	int fd;
	bool http;
	enum client_cmd cmd;
	bool waiting;                    /* for LOGIN_STATS replies */
	bool waiting_reload;             /* for the reload after this epoll batch */
	char in[1024];
	size_t in_len;
	char *out;
	size_t out_len, out_pos;
	int64_t deadline_ms;
	struct ev_source ev;
	struct client *next;
};
#define MAX_CLIENTS 32
#define CLIENT_TIMEOUT_MSECS 5000
#define STATS_WAIT_MSECS 1000

struct worker_service {
	const char *protocol; /* "imap" / "pop3" */
	const struct service_settings *set;
	char *binary_path;
	unsigned count;
};

/* A hand-off waiting for auth's AUTH_USER. msg is the LOGIN_HANDOFF as
 * received, decoded again when the answer comes. */
struct pending {
	uint32_t id;
	pid_t login_pid;
	uint32_t login_req_id;
	int client_fd;
	uint8_t *msg;
	size_t msg_len;
	struct pending *next;
};

static struct master {
	struct settings *set;
	char *exe_dir;
	char *auth_path, *login_path, *access_path;
	char *pid_path;
	char *debug_env; /* RINGGATE_DEBUG value passed on to workers */
	const char *log_timestamp; /* RINGGATE_LOG_TIMESTAMP for workers, or NULL */
	int epfd, sigfd, devnull;
	struct ev_source sig_ev;
	uid_t uid;
	int backlog;
	cpu_set_t cpus;
	unsigned cpu_seq;

	struct login_service **services; /* current ones first, then retired ones */
	unsigned service_count;
	struct worker_service workers[2];
	struct child *worker_list;

	struct child *auth;
	unsigned auth_failures;
	int64_t auth_backoff_until_ms;

	/* the built-in login access checker (login_access_sockets = access):
	   its listening socket base_dir/login/access, kept across restarts of
	   the process, so a lookup waits in the backlog rather than fails */
	int access_fd;
	char *access_sock_path;
	struct child *access;
	unsigned access_failures;
	int64_t access_backoff_until_ms;

	struct pending *pending;
	uint32_t req_seq;

	struct settings *orig_set;       /* the caller's: freed by the caller */
	struct settings **old_sets;      /* replaced by reloads, freed at exit */
	unsigned old_set_count;
	bool reload_pending;             /* SIGHUP or `ringgate reload` */
	time_t syslog_connected;         /* last master_log_reconnect() */
	/* base_dir/running.conf: the configuration master validated, which
	   auth and login processes read (never the file an administrator may
	   be editing) */
	char *running_conf;

	int ctl_fd;                      /* base_dir/ringgate-ctl */
	char *ctl_path;
	struct ev_source ctl_ev;
	int *http_fds;                   /* service stats { inet_listener http } */
	unsigned http_count;
	struct ev_source http_ev;
	struct client *clients;
	unsigned client_count;
	struct auth_counters auth_stats;  /* the running auth's last report */
	struct auth_counters auth_gone;   /* of auth processes that exited */
	bool stats_running;
	unsigned stats_outstanding;
	int64_t stats_deadline_ms;

	bool stopping;
	int64_t stop_deadline_ms;

	/* current key, then the previous one (ticket_len 48 or 96) */
	uint8_t ticket_keys[2 * TICKET_KEY_SIZE];
	size_t ticket_len;
	time_t ticket_rotated;

	/* login_max_preauth_ip_connections: the table every login process
	 * maps (lib/iplimit.h), -1 without a limit */
	int iplimit_fd;
} m;

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static time_t now_secs(void)
{
	return (time_t)(now_ms() / 1000);
}

/* Until master daemonizes, start-up failures also go to the terminal that
 * started it, even when stderr already points at log_path. */
static int startup_stderr = -1;

static void startup_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void startup_fatal(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (startup_stderr >= 0)
		dprintf(startup_stderr, "ringgate: Fatal: %s\n", msg);
	log_fatal("%s", msg);
}

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void ep_add(int fd, struct ev_source *ev)
{
	struct epoll_event e = { .events = EPOLLIN, .data.ptr = ev };
	if (epoll_ctl(m.epfd, EPOLL_CTL_ADD, fd, &e) < 0)
		log_fatal("epoll_ctl(add) failed: %m");
}

static void ep_del(int fd)
{
	(void)epoll_ctl(m.epfd, EPOLL_CTL_DEL, fd, NULL);
}

/* Send on a login's or auth's channel: now, or queued until it is
 * writable, so that a burst of logins never fails on a full socket.
 * 0 or -errno (the channel is broken). */
static int chan_send(struct child *c, struct ipc_msg *msg, int pass_fd)
{
	if (c->chan < 0)
		return -EPIPE;
	return ipc_outq_epoll_send(&c->outq, m.epfd, c->chan, &c->ev, msg, pass_fd);
}

static void chan_close(struct child *c)
{
	if (c->chan < 0)
		return;
	ep_del(c->chan);
	ipc_outq_clear(&c->outq);
	close(c->chan);
	c->chan = -1;
}

static const char *child_service_name(const struct child *c)
{
	switch (c->type) {
	case PROC_AUTH:
		return "auth";
	case PROC_ACCESS:
		return "access";
	case PROC_LOGIN:
		return c->svc->set->name;
	case PROC_WORKER:
		return c->wsvc->protocol;
	}
	return "?";
}

/* ---- in the forked child, before exec -------------------------------- */

/* Put own[i] at 3+i (clearing close-on-exec) without clobbering each other:
 * first move everything above the target range. Runs after fork only. */
static void child_place_fds(const int *own, unsigned own_count, int syslog_fd)
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

static void child_reset_signals(void)
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

static void child_set_vsz(uint64_t vsz)
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

/* ---- IPC helpers ------------------------------------------------------ */

/* the current (not retired) login service called name, or NULL */
static struct login_service *service_current(const char *name)
{
	for (unsigned s = 0; s < m.service_count; s++) {
		if (!m.services[s]->retired && strcmp(m.services[s]->set->name, name) == 0)
			return m.services[s];
	}
	return NULL;
}

static struct child *login_find(pid_t pid)
{
	for (unsigned s = 0; s < m.service_count; s++) {
		for (struct child *c = m.services[s]->logins; c != NULL; c = c->next) {
			if (c->pid == pid)
				return c;
		}
	}
	return NULL;
}

static void login_reply(pid_t login_pid, uint32_t login_req_id, const char *reason, bool temp,
			pid_t mpid)
{
	struct child *c = login_find(login_pid);
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
			  c->svc->set->name, (long)c->pid, strerror(-ret));
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

static void pending_fail_all(const char *reason)
{
	while (m.pending != NULL) {
		struct pending *p = m.pending;
		m.pending = p->next;
		login_reply(p->login_pid, p->login_req_id, reason, true, 0);
		pending_free(p);
	}
}

/* Give auth its end of a login process's channel. Consumes auth_fd. */
static int auth_send_client(struct child *login, int auth_fd)
{
	struct ipc_msg msg;
	ipc_msg_init(&msg, IPC_AUTH_NEW_CLIENT, (uint32_t)login->pid);
	ipc_msg_add_str(&msg, IPC_F_SERVICE, login->svc->protocol);
	int ret = chan_send(m.auth, &msg, auth_fd);
	close(auth_fd);
	if (ret < 0)
		log_error("auth: sending channel of login %ld failed: %s", (long)login->pid,
			  strerror(-ret));
	return ret;
}

/* ---- auth --------------------------------------------------------------- */

static void auth_give_channels(void)
{
	for (unsigned s = 0; s < m.service_count; s++) {
		for (struct child *c = m.services[s]->logins; c != NULL; c = c->next) {
			if (c->auth_pending_fd >= 0) {
				int fd = c->auth_pending_fd;
				c->auth_pending_fd = -1;
				(void)auth_send_client(c, fd);
				continue;
			}
			if (c->chan < 0)
				continue;
			int pair[2];
			if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) {
				log_error("socketpair() failed: %m");
				continue;
			}
			struct ipc_msg msg;
			ipc_msg_init(&msg, IPC_AUTH_NEW_CLIENT, (uint32_t)c->pid);
			int ret = chan_send(c, &msg, pair[1]);
			close(pair[1]);
			if (ret < 0) {
				log_error("service(%s): sending new auth channel to %ld failed: %s",
					  c->svc->set->name, (long)c->pid, strerror(-ret));
				close(pair[0]);
				continue;
			}
			(void)auth_send_client(c, pair[0]);
		}
	}
}

static void auth_spawn(void)
{
	int pair[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) {
		log_error("service(auth): socketpair() failed: %m");
		return;
	}
	pid_t pid = fork();
	if (pid < 0) {
		log_error("service(auth): fork() failed: %m");
		close(pair[0]);
		close(pair[1]);
		return;
	}
	if (pid == 0) {
		child_reset_signals();
		child_place_fds(&pair[1], 1, master_log_syslog_fd(MASTER_LOG_AUTH));
		char *argv[] = { (char *)"ringgate-auth", (char *)"-c", m.running_conf, NULL };
		execv(m.auth_path, argv);
		log_error("execv(%s) failed: %m", m.auth_path);
		_exit(CHILD_FATAL_STATUS);
	}
	close(pair[1]);
	set_nonblock(pair[0]);
	struct child *c = rg_calloc(1, sizeof(*c));
	c->pid = pid;
	c->type = PROC_AUTH;
	c->started_ms = now_ms();
	c->chan = pair[0];
	c->auth_pending_fd = -1;
	c->ev = (struct ev_source){ EV_CHILD, c };
	ep_add(c->chan, &c->ev);
	m.auth = c;
	log_debug("service(auth): started process %ld", (long)pid);
	auth_give_channels();
}

static void auth_kill(const char *why)
{
	if (m.auth == NULL)
		return;
	log_error("service(auth): %s: restarting auth process %ld", why, (long)m.auth->pid);
	if (m.auth->chan >= 0) {
		chan_close(m.auth);
	}
	m.auth->st.terminating = true;
	kill(m.auth->pid, SIGKILL);
	pending_fail_all("Authentication service unavailable.");
}

/* ---- the built-in access checker ------------------------------------------ */

/* base_dir/login/access, connectable by the login processes' user only (as
 * Dovecot's tcpwrap listener: mode 0600, user $default_login_user) */
static void access_setup_socket(void)
{
	if (!settings_access_builtin(m.set))
		return;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	m.access_sock_path = rg_strdup_printf("%s/login/%s", m.set->base_dir,
					      SETTINGS_ACCESS_BUILTIN);
	if (strlen(m.access_sock_path) >= sizeof(sun.sun_path))
		startup_fatal("%s: path too long for a UNIX socket", m.access_sock_path);
	strcpy(sun.sun_path, m.access_sock_path);
	(void)unlink(m.access_sock_path);
	m.access_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (m.access_fd < 0 || bind(m.access_fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		startup_fatal("bind(%s) failed: %m", m.access_sock_path);
	if (m.uid == 0) {
		const struct passwd *pw = getpwnam(m.set->default_login_user);
		if (pw == NULL || chown(m.access_sock_path, pw->pw_uid, pw->pw_gid) < 0)
			startup_fatal("chown(%s) failed: %m", m.access_sock_path);
	}
	if (chmod(m.access_sock_path, 0600) < 0 || listen(m.access_fd, m.backlog) < 0)
		startup_fatal("listen(%s) failed: %m", m.access_sock_path);
}

static void access_spawn(void)
{
	pid_t pid = fork();
	if (pid < 0) {
		log_error("service(access): fork() failed: %m");
		return;
	}
	if (pid == 0) {
		child_reset_signals();
		/* the internal user's syslog socket, as auth: no socket or connect in
		 * its seccomp list, so it cannot move it */
		child_place_fds(&m.access_fd, 1, master_log_syslog_fd(MASTER_LOG_AUTH));
		char *argv[] = { (char *)"ringgate-access", (char *)"-c", m.running_conf, NULL };
		execv(m.access_path, argv);
		log_error("execv(%s) failed: %m", m.access_path);
		_exit(CHILD_FATAL_STATUS);
	}
	struct child *c = rg_calloc(1, sizeof(*c));
	c->pid = pid;
	c->type = PROC_ACCESS;
	c->started_ms = now_ms();
	c->chan = -1;
	c->auth_pending_fd = -1;
	m.access = c;
	log_debug("service(access): started process %ld", (long)pid);
}

/* ---- workers -------------------------------------------------------------- */

static struct worker_service *worker_service_get(const char *protocol)
{
	for (unsigned i = 0; i < 2; i++) {
		if (m.workers[i].protocol != NULL && strcmp(m.workers[i].protocol, protocol) == 0)
			return &m.workers[i];
	}
	return NULL;
}

static void worker_init_copy(struct ipc_msg *msg, const struct ipc_fields *f, enum ipc_field key)
{
	if (ipc_has(f, key))
		ipc_msg_add(msg, key, f->val[key], f->len[key]);
}

/* Fork the worker for a verified login. Returns NULL on success, else the
 * reason to give the login process (details logged here). */
static const char *worker_spawn(struct worker_service *ws, struct pending *p,
				const struct ipc_fields *hf, const struct ipc_fields *uf,
				bool *temp_r)
{
	const char *user = ipc_str(uf, IPC_F_USER);
	const char *home = ipc_str(uf, IPC_F_HOME);
	const char *mail = ipc_str(uf, IPC_F_MAIL);
	unsigned long long uid, gid;
	const char *why;

	*temp_r = false;
	if (home == NULL)
		home = "";
	if (mail == NULL || *mail == '\0')
		mail = m.set->mail_location;
	(void)ipc_uint(uf, IPC_F_UID, &uid);
	(void)ipc_uint(uf, IPC_F_GID, &gid);
	if (uid > (uid_t)-2 || gid > (gid_t)-2) {
		log_error("user %s: uid/gid out of range", user);
		return REASON_INTERNAL;
	}
	if (!master_uid_allowed((uid_t)uid, m.set->first_valid_uid, m.set->last_valid_uid,
				m.uid, &why)) {
		log_error("user %s: login refused for uid %llu: %s", user, uid, why);
		return REASON_INTERNAL;
	}
	if (ws->count >= ws->set->process_limit) {
		log_warning("service(%s): process_limit (%u) reached, client connections are "
			    "being dropped", ws->protocol, ws->set->process_limit);
		*temp_r = true;
		return "Maximum number of connections reached";
	}

	int pair[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) {
		log_error("socketpair() failed: %m");
		*temp_r = true;
		return REASON_INTERNAL;
	}
	struct ipc_msg *msg = rg_malloc(sizeof(*msg));
	ipc_msg_init(msg, IPC_WORKER_INIT, 0);
	ipc_msg_add_str(msg, IPC_F_SERVICE, ws->protocol);
	ipc_msg_add_str(msg, IPC_F_USER, user);
	ipc_msg_add_str(msg, IPC_F_HOME, home);
	ipc_msg_add_str(msg, IPC_F_MAIL, mail);
	static const enum ipc_field copied[] = {
		IPC_F_TAG, IPC_F_RIP, IPC_F_RPORT, IPC_F_LIP, IPC_F_LPORT,
		IPC_F_SECURED, IPC_F_TLS, IPC_F_SESSION, IPC_F_PREREAD,
	};
	for (unsigned i = 0; i < sizeof(copied) / sizeof(copied[0]); i++)
		worker_init_copy(msg, hf, copied[i]);
	/* queued in the socket until the worker reads it */
	int ret = ipc_send(pair[0], msg, -1);
	rg_free(msg);
	if (ret < 0) {
		log_error("user %s: sending WORKER_INIT failed: %s", user, strerror(-ret));
		close(pair[0]);
		close(pair[1]);
		*temp_r = true;
		return REASON_INTERNAL;
	}

	/* its own syslog socket, see master-log.h */
	int syslog_fd = master_log_syslog_fd(MASTER_LOG_WORKER);
	pid_t pid = fork();
	if (pid < 0) {
		log_error("service(%s): fork() failed: %m", ws->protocol);
		close(pair[0]);
		close(pair[1]);
		if (syslog_fd >= 0)
			close(syslog_fd);
		*temp_r = true;
		return REASON_INTERNAL;
	}
	if (pid == 0) {
		child_reset_signals();
		child_set_vsz(ws->set->vsz_limit);
		if (m.uid == 0) {
			const char *error;
			int err = privs_drop((uid_t)uid, (gid_t)gid, true, &error);
			if (err < 0) {
				log_error("user %s: dropping privileges to %llu/%llu failed: %s: %s",
					  user, uid, gid, error, strerror(-err));
				_exit(CHILD_FATAL_STATUS);
			}
		}
		if (*home == '\0' || chdir(home) < 0) {
			log_error("user %s: chdir(%s) failed: %m", user, home);
			if (chdir("/") < 0)
				_exit(CHILD_FATAL_STATUS);
		}
		clearenv();
		if (m.debug_env != NULL)
			setenv("RINGGATE_DEBUG", m.debug_env, 1);
		setenv("HOME", home, 1);
		setenv("USER", user, 1);
		if (m.log_timestamp != NULL)
			setenv("RINGGATE_LOG_TIMESTAMP", m.log_timestamp, 1);
		int fds[2] = { p->client_fd, pair[1] };
		child_place_fds(fds, 2, syslog_fd);
		const char *name = strrchr(ws->binary_path, '/');
		char *argv[] = { (char *)(name != NULL ? name + 1 : ws->binary_path), NULL };
		execv(ws->binary_path, argv);
		log_error("execv(%s) failed: %m", ws->binary_path);
		_exit(CHILD_FATAL_STATUS);
	}
	close(pair[0]);
	close(pair[1]);
	if (syslog_fd >= 0)
		close(syslog_fd);
	struct child *c = rg_calloc(1, sizeof(*c));
	c->pid = pid;
	c->type = PROC_WORKER;
	c->wsvc = ws;
	c->started_ms = now_ms();
	c->chan = -1;
	c->auth_pending_fd = -1;
	c->user = rg_strdup(user);
	c->rip = rg_strdup(ipc_str(hf, IPC_F_RIP) != NULL ? ipc_str(hf, IPC_F_RIP) : "");
	c->tls = ipc_has(hf, IPC_F_TLS);
	c->proxy_pid = c->tls ? p->login_pid : 0;
	c->since = time(NULL);
	c->next = m.worker_list;
	m.worker_list = c;
	ws->count++;
	log_debug("service(%s): user %s: started worker %ld", ws->protocol, user, (long)pid);
	return NULL;
}

static void auth_handle_reply(const struct ipc_rx *rx)
{
	struct pending *p = pending_take(rx->hdr.id);
	if (p == NULL) {
		log_error("auth: reply to unknown request %u ignored", rx->hdr.id);
		return;
	}
	if (login_find(p->login_pid) == NULL) {
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
	if (ws == NULL) {
		log_error("no worker service for the hand-off");
		reason = REASON_INTERNAL;
	} else {
		reason = worker_spawn(ws, p, &hf, &rx->fields, &temp);
	}
	login_reply(p->login_pid, p->login_req_id, reason, temp,
		    reason == NULL && m.worker_list != NULL ? m.worker_list->pid : 0);
	pending_free(p);
}

static void auth_input(struct child *c)
{
	struct ipc_rx *rx = rg_malloc(sizeof(*rx));
	for (unsigned i = 0; i < MAX_MSGS_PER_WAKEUP && m.auth == c && c->chan >= 0; i++) {
		const char *error = NULL;
		int ret = ipc_recv(c->chan, rx, &error);
		if (ret == -EAGAIN)
			break;
		if (ret == 0 || (ret < 0 && ret != -EPROTO)) {
			/* auth is going away; SIGCHLD does the rest */
			chan_close(c);
			pending_fail_all("Authentication service unavailable.");
			break;
		}
		if (ret == -EPROTO) {
			auth_kill(error);
			break;
		}
		if (rx->fd >= 0) {
			close(rx->fd);
			auth_kill("message with an unexpected fd");
			break;
		}
		unsigned long long v;
		if (rx->hdr.type == IPC_LOGIN_STATS) {
			const char *text = ipc_str(&rx->fields, IPC_F_STATS);
			const char *why = "no STATS field";
			if (text == NULL || auth_stats_parse(text, rx->fields.len[IPC_F_STATS],
							     &m.auth_stats, &why) < 0) {
				auth_kill("malformed LOGIN_STATS");
				break;
			}
			if (c->stats_wait) {
				c->stats_wait = false;
				if (m.stats_outstanding > 0)
					m.stats_outstanding--;
			}
		} else if (rx->hdr.type == IPC_AUTH_USER) {
			if (ipc_str(&rx->fields, IPC_F_USER) == NULL ||
			    !ipc_uint(&rx->fields, IPC_F_UID, &v) ||
			    !ipc_uint(&rx->fields, IPC_F_GID, &v)) {
				auth_kill("AUTH_USER without USER, UID or GID");
				break;
			}
			auth_handle_reply(rx);
		} else if (rx->hdr.type == IPC_AUTH_FAIL) {
			auth_handle_reply(rx);
		} else {
			char why[80];
			snprintf(why, sizeof(why), "unexpected message %s",
				 ipc_type_name(rx->hdr.type));
			auth_kill(why);
			break;
		}
	}
	rg_free(rx);
}

/* ---- login processes ----------------------------------------------------- */

static void login_kill(struct child *c, const char *why)
{
	log_error("service(%s): %s: killing process %ld", c->svc->set->name, why, (long)c->pid);
	chan_close(c);
	c->st.terminating = true;
	kill(c->pid, SIGKILL);
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
	if (m.stopping || m.auth == NULL || m.auth->chan < 0) {
		login_reply(c->pid, rx->hdr.id, m.stopping ? "Server shutting down." :
			    "Authentication service unavailable.", true, 0);
		close(rx->fd);
		return;
	}
	struct pending *p = rg_calloc(1, sizeof(*p));
	if (++m.req_seq == 0)
		m.req_seq = 1;
	p->id = m.req_seq;
	p->login_pid = c->pid;
	p->login_req_id = rx->hdr.id;
	p->client_fd = rx->fd;
	p->msg_len = IPC_HDR_SIZE + rx->hdr.len;
	p->msg = rg_memdup(rx->buf, p->msg_len);

	struct ipc_msg msg;
	ipc_msg_init(&msg, IPC_AUTH_REQUEST, p->id);
	ipc_msg_add_str(&msg, IPC_F_COOKIE, ipc_str(&rx->fields, IPC_F_COOKIE));
	ipc_msg_add_uint(&msg, IPC_F_LOGIN_PID, (unsigned long long)c->pid);
	int ret = chan_send(m.auth, &msg, -1);
	if (ret < 0) {
		log_error("auth: sending AUTH_REQUEST failed: %s", strerror(-ret));
		login_reply(c->pid, p->login_req_id, "Authentication service unavailable.", true, 0);
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
		  c->svc->set->name, (long)c->pid, conns, prelogin, total);
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
	if (c->stats_wait) {
		c->stats_wait = false;
		if (m.stats_outstanding > 0)
			m.stats_outstanding--;
	}
}

static void login_input(struct child *c)
{
	struct ipc_rx *rx = rg_malloc(sizeof(*rx));
	for (unsigned i = 0; i < MAX_MSGS_PER_WAKEUP && c->chan >= 0; i++) {
		const char *error = NULL;
		int ret = ipc_recv(c->chan, rx, &error);
		if (ret == -EAGAIN)
			break;
		if (ret == 0 || (ret < 0 && ret != -EPROTO)) {
			chan_close(c);
			break;
		}
		if (ret == -EPROTO) {
			login_kill(c, error);
			break;
		}
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
	rg_free(rx);
}

static void close_fds(int *fds, unsigned count)
{
	for (unsigned i = 0; i < count; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
	}
}

/* ---- TLS ticket keys ------------------------------------------------------ */

static void login_send_ticket_keys(struct child *c)
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
			    c->svc->set->name, (long)c->pid, strerror(-ret));
}

static void ticket_keys_rotate(void)
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

static int login_spawn(struct login_service *svc)
{
	unsigned nsocks = 0;
	for (unsigned i = 0; i < svc->listener_count; i++)
		nsocks += svc->listeners[i].sock_count;
	/* fd 3 master, 4 auth, then the listeners, then the iplimit table */
	unsigned nfds = nsocks + 2 + (m.iplimit_fd >= 0 ? 1 : 0);
	int *fds = rg_calloc(nfds, sizeof(int));
	bool *own = rg_calloc(nfds, sizeof(bool));
	size_t names_size = 1;
	for (unsigned i = 0; i < svc->listener_count; i++)
		names_size += (strlen(svc->listeners[i].set->name) + 1) * svc->listeners[i].sock_count;
	char *names = rg_calloc(1, names_size);
	int chan[2] = { -1, -1 }, authp[2] = { -1, -1 };
	int ret = -1;

	unsigned k = 2;
	for (unsigned i = 0; i < svc->listener_count; i++) {
		struct listener *l = &svc->listeners[i];
		for (unsigned j = 0; j < l->sock_count; j++, k++) {
			if (l->socks[j].fd >= 0) {
				fds[k] = l->socks[j].fd;
			} else {
				/* reuse_port: this process's own accept queue */
				char *error;
				fds[k] = master_addr_listen(&l->socks[j].addr, true, m.backlog, &error);
				if (fds[k] < 0) {
					log_error("service(%s): %s", svc->set->name, error);
					rg_free(error);
					goto out;
				}
				own[k] = true;
			}
			if (*names != '\0')
				strcat(names, ",");
			strcat(names, l->set->name);
		}
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, chan) < 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, authp) < 0) {
		log_error("service(%s): socketpair() failed: %m", svc->set->name);
		goto out;
	}
	fds[0] = chan[1];
	fds[1] = authp[1];
	if (m.iplimit_fd >= 0)
		fds[nsocks + 2] = m.iplimit_fd;
	int cpu = master_cpu_pick(&m.cpus, m.cpu_seq++);

	pid_t pid = fork();
	if (pid < 0) {
		log_error("service(%s): fork() failed: %m", svc->set->name);
		goto out;
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
		child_place_fds(fds, nfds, master_log_syslog_fd(MASTER_LOG_LOGIN));
		setenv("RINGGATE_LISTENERS", names, 1);
		if (m.iplimit_fd >= 0)
			setenv("RINGGATE_IPLIMIT", "1", 1);
		char *argv[] = { (char *)"ringgate-login", (char *)"-c", m.running_conf,
				 (char *)"-s", (char *)svc->protocol, NULL };
		execv(m.login_path, argv);
		log_error("execv(%s) failed: %m", m.login_path);
		_exit(CHILD_FATAL_STATUS);
	}

	struct child *c = rg_calloc(1, sizeof(*c));
	c->pid = pid;
	c->type = PROC_LOGIN;
	c->svc = svc;
	c->started_ms = now_ms();
	c->chan = chan[0];
	chan[0] = -1;
	c->auth_pending_fd = -1;
	c->ev = (struct ev_source){ EV_CHILD, c };
	c->st.pid = pid;
	c->st.started = now_secs();
	c->st.idle_since = c->st.started;
	set_nonblock(c->chan);
	ep_add(c->chan, &c->ev);
	c->next = svc->logins;
	svc->logins = c;
	svc->login_count++;
	if (m.auth != NULL && m.auth->chan >= 0)
		(void)auth_send_client(c, authp[0]);
	else
		c->auth_pending_fd = authp[0]; /* given to auth when it (re)starts */
	authp[0] = -1;
	login_send_ticket_keys(c);
	log_debug("service(%s): started process %ld on CPU %d", svc->set->name, (long)pid, cpu);
	ret = 0;
out:
	for (unsigned i = 2; i < nsocks + 2; i++) {
		if (own[i] && fds[i] >= 0)
			close(fds[i]);
	}
	int rest[4] = { chan[0], chan[1], authp[0], authp[1] };
	close_fds(rest, 4);
	rg_free(fds);
	rg_free(own);
	rg_free(names);
	return ret;
}

/* ---- per-service decisions ---------------------------------------------- */

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

static struct master_proc_state *service_states(const struct login_service *svc)
{
	struct master_proc_state *st = rg_calloc(svc->login_count + 1, sizeof(*st));
	unsigned i = 0;
	for (const struct child *c = svc->logins; c != NULL; c = c->next)
		st[i++] = c->st;
	return st;
}

static void service_arm(struct login_service *svc, bool arm)
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

static void service_update(struct login_service *svc)
{
	if (m.stopping)
		return;
	struct master_policy_input in;
	service_policy_input(svc, &in);
	struct master_proc_state *st = service_states(svc);
	/* decide() spawns at most min_avail + 1 and kills at most one per process */
	unsigned max = svc->login_count + svc->set->process_min_avail + 2;
	struct master_action *act = rg_calloc(max, sizeof(*act));
	unsigned n = master_policy_decide(&in, st, svc->login_count, act, max);
	bool backoff = now_ms() < svc->backoff_until_ms;

	for (unsigned i = 0; i < n; i++) {
		if (act[i].type == MASTER_ACTION_SPAWN) {
			if (backoff || login_spawn(svc) < 0)
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
		struct child *c = login_find(act[i].pid);
		if (c == NULL || c->st.terminating)
			continue;
		if (act[i].type == MASTER_ACTION_KILL_EVICT)
			log_warning("service(%s): process_limit (%u) reached, destroying the "
				    "oldest process with clients logging in (%ld)",
				    svc->set->name, svc->set->process_limit, (long)c->pid);
		else
			log_debug("service(%s): process %ld idle for %u secs: stopping it",
				  svc->set->name, (long)c->pid, svc->set->idle_kill);
		c->st.terminating = true;
		kill(c->pid, SIGTERM);
	}
	svc->conn_waiting = false;
	rg_free(act);
	rg_free(st);

	service_policy_input(svc, &in);
	st = service_states(svc);
	bool watch = master_policy_should_watch(&in, st, svc->login_count) && !svc->watch_blocked;
	rg_free(st);
	service_arm(svc, watch);
}

static void listener_ready(struct listen_sock *ls)
{
	struct login_service *svc = ls->listener->svc;
	if (svc->retired)
		return; /* its socket went to its successor during this batch */
	service_arm(svc, false);
	svc->watch_blocked = true;
	svc->conn_waiting = true;
	service_update(svc);
}

/* ---- children exits ----------------------------------------------------- */

static void child_free(struct child *c)
{
	chan_close(c);
	if (c->auth_pending_fd >= 0)
		close(c->auth_pending_fd);
	rg_free(c->user);
	rg_free(c->rip);
	rg_free(c);
}

static bool unlink_child(struct child **list, struct child *c)
{
	for (struct child **pp = list; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			return true;
		}
	}
	return false;
}

/* log the exit; returns whether it was abnormal */
static bool child_log_exit(const struct child *c, int status)
{
	const char *name = child_service_name(c);
	if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);
		if (c->st.terminating && (sig == SIGTERM || sig == SIGKILL)) {
			log_debug("service(%s): child %ld stopped with signal %d", name,
				  (long)c->pid, sig);
			return false;
		}
		log_error("service(%s): child %ld killed with signal %d%s", name, (long)c->pid,
			  sig, WCOREDUMP(status) ? " (core dumped)" : "");
		return true;
	}
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	if (code != 0) {
		log_error("service(%s): child %ld returned error %d", name, (long)c->pid, code);
		return true;
	}
	log_debug("service(%s): child %ld exited", name, (long)c->pid);
	return false;
}

/* Start-up failure accounting; returns the new failure count. */
static unsigned note_failure(const struct child *c, bool abnormal, unsigned failures,
			     int64_t *backoff_until_r)
{
	int64_t now = now_ms();
	if (!abnormal || c->st.terminating || now - c->started_ms >= MASTER_FAST_FAILURE_MSECS)
		return abnormal ? 0 : failures;
	/* several processes dying together are one failure, not several */
	if (now < *backoff_until_r)
		return failures;
	failures++;
	unsigned secs = master_backoff_secs(failures);
	*backoff_until_r = now + (int64_t)secs * 1000;
	log_error("service(%s): processes die at start-up, waiting %u secs before "
		  "respawning", child_service_name(c), secs);
	return failures;
}

static void child_exited(pid_t pid, int status)
{
	if (m.auth != NULL && m.auth->pid == pid) {
		struct child *c = m.auth;
		m.auth = NULL;
		for (unsigned i = 0; i < AUTH_STAT_COUNT; i++)
			m.auth_gone.v[i] += m.auth_stats.v[i];
		memset(&m.auth_stats, 0, sizeof(m.auth_stats));
		if (c->stats_wait && m.stats_outstanding > 0)
			m.stats_outstanding--;
		bool abnormal = child_log_exit(c, status);
		if (!m.stopping && !c->st.terminating && !abnormal)
			log_error("service(auth): auth process %ld exited unexpectedly", (long)pid);
		m.auth_failures = note_failure(c, abnormal || !m.stopping, m.auth_failures,
					       &m.auth_backoff_until_ms);
		pending_fail_all("Authentication service unavailable.");
		child_free(c);
		return;
	}
	if (m.access != NULL && m.access->pid == pid) {
		struct child *c = m.access;
		m.access = NULL;
		bool abnormal = child_log_exit(c, status);
		if (!m.stopping && !c->st.terminating && !abnormal)
			log_error("service(access): process %ld exited unexpectedly", (long)pid);
		m.access_failures = note_failure(c, abnormal || !m.stopping, m.access_failures,
						 &m.access_backoff_until_ms);
		child_free(c);
		return;
	}
	for (unsigned s = 0; s < m.service_count; s++) {
		struct login_service *svc = m.services[s];
		for (struct child *c = svc->logins; c != NULL; c = c->next) {
			if (c->pid != pid)
				continue;
			/* its last LOGIN_STATS is queued before the EOF */
			for (unsigned i = 0; i < 4 && c->chan >= 0; i++)
				login_input(c);
			/* a retired process's counts go to its successor */
			struct login_service *heir = svc->retired ?
				service_current(svc->set->name) : NULL;
			stats_add_counts(heir != NULL ? &heir->gone : &svc->gone, &c->stats);
			if (c->stats_wait && m.stats_outstanding > 0)
				m.stats_outstanding--;
			unlink_child(&svc->logins, c);
			svc->login_count--;
			bool abnormal = child_log_exit(c, status);
			svc->failures = note_failure(c, abnormal, svc->failures,
						     &svc->backoff_until_ms);
			svc->watch_blocked = false;
			child_free(c);
			return;
		}
	}
	for (struct child *c = m.worker_list; c != NULL; c = c->next) {
		if (c->pid != pid)
			continue;
		unlink_child(&m.worker_list, c);
		c->wsvc->count--;
		(void)child_log_exit(c, status);
		child_free(c);
		return;
	}
	log_debug("reaped unknown child %ld", (long)pid);
}

static void reap_children(void)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0)
			break;
		child_exited(pid, status);
	}
}

static bool have_children(void)
{
	if (m.auth != NULL || m.access != NULL || m.worker_list != NULL)
		return true;
	for (unsigned s = 0; s < m.service_count; s++) {
		if (m.services[s]->logins != NULL)
			return true;
	}
	return false;
}

static void signal_all(int sig)
{
	for (unsigned s = 0; s < m.service_count; s++) {
		for (struct child *c = m.services[s]->logins; c != NULL; c = c->next) {
			c->st.terminating = true;
			kill(c->pid, sig);
		}
	}
	for (struct child *c = m.worker_list; c != NULL; c = c->next) {
		c->st.terminating = true;
		kill(c->pid, sig);
	}
	if (m.auth != NULL) {
		m.auth->st.terminating = true;
		kill(m.auth->pid, sig);
	}
	if (m.access != NULL) {
		m.access->st.terminating = true;
		kill(m.access->pid, sig);
	}
}

static void stop_begin(const char *why)
{
	if (m.stopping)
		return;
	log_info("%s: shutting down", why);
	(void)master_notify("STOPPING=1");
	m.stopping = true;
	m.stop_deadline_ms = now_ms() + STOP_TIMEOUT_MSECS;
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
	pending_fail_all("Server shutting down.");
	signal_all(SIGTERM);
}

static void signal_input(void)
{
	struct signalfd_siginfo si;
	while (read(m.sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			break; /* reaped below, whatever the count of coalesced signals */
		case SIGTERM:
		case SIGINT:
			stop_begin(si.ssi_signo == SIGTERM ? "SIGTERM received" : "SIGINT received");
			break;
		case SIGHUP:
			log_info("SIGHUP received: reloading the configuration");
			m.reload_pending = true;
			break;
		}
	}
	/* reaping waits until the whole epoll batch is handled: a later event of
	 * the batch may point at a child that reaping would free */
}

/* ---- who, stats and metrics --------------------------------------------- */

static void client_close(struct client *cl)
{
	for (struct client **pp = &m.clients; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == cl) {
			*pp = cl->next;
			break;
		}
	}
	m.client_count--;
	ep_del(cl->fd);
	close(cl->fd);
	free(cl->out);
	rg_free(cl);
}

static void client_output(struct client *cl)
{
	while (cl->out_pos < cl->out_len) {
		ssize_t n = send(cl->fd, cl->out + cl->out_pos, cl->out_len - cl->out_pos,
				 MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return; /* EPOLLOUT brings us back */
		if (n <= 0) {
			client_close(cl);
			return;
		}
		cl->out_pos += (size_t)n;
	}
	client_close(cl);
}

/* hand text (malloc'ed, as open_memstream makes it) to the client */
static void client_reply(struct client *cl, char *text, size_t len)
{
	cl->out = text;
	cl->out_len = len;
	cl->out_pos = 0;
	struct epoll_event e = { .events = EPOLLOUT, .data.ptr = &cl->ev };
	if (epoll_ctl(m.epfd, EPOLL_CTL_MOD, cl->fd, &e) < 0) {
		client_close(cl);
		return;
	}
	client_output(cl);
}

static void client_reply_str(struct client *cl, const char *text)
{
	char *copy = strdup(text);
	if (copy == NULL) {
		client_close(cl);
		return;
	}
	client_reply(cl, copy, strlen(copy));
}

/* the sessions (workers), oldest first; strings point into the children */
static struct report_session *snapshot_sessions(unsigned *count_r)
{
	unsigned n = 0;
	for (struct child *c = m.worker_list; c != NULL; c = c->next)
		n++;
	struct report_session *s = rg_calloc(n + 1, sizeof(*s));
	unsigned i = n;
	for (struct child *c = m.worker_list; c != NULL; c = c->next) {
		struct report_session *r = &s[--i];
		r->user = c->user != NULL ? c->user : "";
		r->protocol = c->wsvc->protocol;
		r->rip = c->rip != NULL ? c->rip : "";
		r->pid = c->pid;
		r->proxy_pid = c->proxy_pid;
		r->since = c->since;
		r->tls = c->tls;
	}
	*count_r = n;
	return s;
}

struct snapshot {
	struct auth_counters auth;
	struct report_service svcs[2];
	struct report_process *procs[2];
	struct report_workers workers[2];
	unsigned svc_count, worker_count;
};

static void snapshot_take(struct snapshot *sn)
{
	memset(sn, 0, sizeof(*sn));
	for (unsigned i = 0; i < AUTH_STAT_COUNT; i++)
		sn->auth.v[i] = m.auth_gone.v[i] + m.auth_stats.v[i];
	for (unsigned s = 0; s < m.service_count && sn->svc_count < 2; s++) {
		struct login_service *svc = m.services[s];
		if (svc->retired)
			continue;
		/* with the processes of retired services of the same name */
		unsigned total = 0;
		for (unsigned t = 0; t < m.service_count; t++) {
			if (strcmp(m.services[t]->set->name, svc->set->name) == 0)
				total += m.services[t]->login_count;
		}
		struct report_service *r = &sn->svcs[sn->svc_count];
		struct report_process *procs = rg_calloc(total + 1, sizeof(*procs));
		unsigned n = 0;
		for (unsigned t = 0; t < m.service_count; t++) {
			if (strcmp(m.services[t]->set->name, svc->set->name) != 0)
				continue;
			for (struct child *c = m.services[t]->logins; c != NULL && n < total;
			     c = c->next) {
				procs[n].pid = c->pid;
				procs[n].c = c->stats;
				n++;
			}
		}
		r->name = svc->set->name;
		r->mode = svc->set->service_count == 1 ? "security" : "performance";
		r->procs = procs;
		r->proc_count = n;
		r->gone = svc->gone;
		sn->procs[sn->svc_count++] = procs;
	}
	for (unsigned i = 0; i < 2; i++) {
		if (m.workers[i].protocol == NULL)
			continue;
		sn->workers[sn->worker_count].name = m.workers[i].protocol;
		sn->workers[sn->worker_count].sessions = m.workers[i].count;
		sn->worker_count++;
	}
}

static void snapshot_free(struct snapshot *sn)
{
	for (unsigned i = 0; i < sn->svc_count; i++)
		rg_free(sn->procs[i]);
}

static void client_answer(struct client *cl)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	if (out == NULL) {
		client_close(cl);
		return;
	}
	if (cl->cmd == CMD_WHO || cl->cmd == CMD_WHO_COUNT) {
		unsigned n;
		struct report_session *s = snapshot_sessions(&n);
		if (cl->cmd == CMD_WHO)
			report_who(out, s, n);
		else
			report_who_count(out, s, n);
		rg_free(s);
	} else {
		struct snapshot sn;
		snapshot_take(&sn);
		if (cl->cmd == CMD_STATS) {
			report_stats(out, sn.svcs, sn.svc_count, sn.workers, sn.worker_count, &sn.auth);
		} else {
			char *body = NULL;
			size_t body_len = 0;
			FILE *b = open_memstream(&body, &body_len);
			if (b != NULL) {
				report_openmetrics(b, sn.svcs, sn.svc_count, sn.workers,
						   sn.worker_count, &sn.auth);
				fclose(b);
				fprintf(out, "HTTP/1.0 200 OK\r\nContent-Type: application/openmetrics-text; "
					"version=1.0.0; charset=utf-8\r\nContent-Length: %zu\r\n"
					"Connection: close\r\n\r\n", body_len);
				fwrite(body, 1, body_len, out);
				free(body);
			}
		}
		snapshot_free(&sn);
	}
	if (fclose(out) != 0) {
		free(text);
		client_close(cl);
		return;
	}
	client_reply(cl, text, len);
}

/* Ask every login process for its counters; clients waiting for them are
 * answered when all replied or after STATS_WAIT_MSECS (stats_check()). */
static void stats_refresh(void)
{
	if (m.stats_running)
		return;
	m.stats_running = true;
	m.stats_outstanding = 0;
	m.stats_deadline_ms = now_ms() + STATS_WAIT_MSECS;
	if (m.auth != NULL && m.auth->chan >= 0 && !m.auth->st.terminating) {
		struct ipc_msg msg;
		ipc_msg_init(&msg, IPC_LOGIN_STATS_REQUEST, 0);
		if (chan_send(m.auth, &msg, -1) == 0) {
			m.auth->stats_wait = true;
			m.stats_outstanding++;
		}
	}
	for (unsigned s = 0; s < m.service_count; s++) {
		for (struct child *c = m.services[s]->logins; c != NULL; c = c->next) {
			if (c->chan < 0 || c->st.terminating)
				continue;
			struct ipc_msg msg;
			ipc_msg_init(&msg, IPC_LOGIN_STATS_REQUEST, 0);
			if (chan_send(c, &msg, -1) == 0) {
				c->stats_wait = true;
				m.stats_outstanding++;
			}
		}
	}
}

static void stats_check(void)
{
	if (!m.stats_running || (m.stats_outstanding > 0 && now_ms() < m.stats_deadline_ms))
		return;
	m.stats_running = false;
	m.stats_outstanding = 0;
	if (m.auth != NULL)
		m.auth->stats_wait = false;
	for (unsigned s = 0; s < m.service_count; s++) {
		for (struct child *c = m.services[s]->logins; c != NULL; c = c->next)
			c->stats_wait = false;
	}
	struct client *next;
	for (struct client *cl = m.clients; cl != NULL; cl = next) {
		next = cl->next;
		if (cl->waiting) {
			cl->waiting = false;
			client_answer(cl);
		}
	}
}

static void client_command(struct client *cl, enum client_cmd cmd)
{
	cl->cmd = cmd;
	if (cmd == CMD_RELOAD) {
		cl->waiting_reload = true;
		m.reload_pending = true;
	} else if (cmd == CMD_STATS || cmd == CMD_METRICS) {
		cl->waiting = true;
		stats_refresh(); /* answered by stats_check() after this epoll batch */
	} else {
		client_answer(cl);
	}
}

/* "who", "who -1", "stats": one line */
static void ctl_request(struct client *cl, char *line)
{
	size_t len = strlen(line);
	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' '))
		line[--len] = '\0';
	if (strcmp(line, "who") == 0)
		client_command(cl, CMD_WHO);
	else if (strcmp(line, "who -1") == 0)
		client_command(cl, CMD_WHO_COUNT);
	else if (strcmp(line, "stats") == 0)
		client_command(cl, CMD_STATS);
	else if (strcmp(line, "reload") == 0)
		client_command(cl, CMD_RELOAD);
	else
		client_reply_str(cl, "error: unknown command\n");
}

/* HTTP/1.0 (or 1.1, answered as 1.0): GET /metrics */
static void http_request(struct client *cl)
{
	char *eol = memchr(cl->in, '\n', cl->in_len);
	*eol = '\0';
	if (eol > cl->in && eol[-1] == '\r')
		eol[-1] = '\0';
	/* METHOD SP /PATH SP HTTP/1.x, nothing else */
	char method[8], path[64];
	const char *sp1 = strchr(cl->in, ' ');
	const char *sp2 = sp1 != NULL ? strchr(sp1 + 1, ' ') : NULL;
	size_t mlen = sp1 != NULL ? (size_t)(sp1 - cl->in) : 0;
	size_t plen = sp2 != NULL ? (size_t)(sp2 - sp1 - 1) : 0;
	bool ok = sp2 != NULL && mlen > 0 && mlen < sizeof(method) && plen > 0 &&
		plen < sizeof(path) && sp1[1] == '/' &&
		(strcmp(sp2 + 1, "HTTP/1.0") == 0 || strcmp(sp2 + 1, "HTTP/1.1") == 0);
	for (size_t i = 0; ok && i < mlen; i++)
		ok = cl->in[i] >= 'A' && cl->in[i] <= 'Z';
	if (ok) {
		memcpy(method, cl->in, mlen);
		method[mlen] = '\0';
		memcpy(path, sp1 + 1, plen);
		path[plen] = '\0';
	}
	if (!ok) {
		client_reply_str(cl, "HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n"
				 "Connection: close\r\n\r\n");
	} else if (strcmp(method, "GET") != 0) {
		client_reply_str(cl, "HTTP/1.0 405 Method Not Allowed\r\nAllow: GET\r\n"
				 "Content-Length: 0\r\nConnection: close\r\n\r\n");
	} else if (strcmp(path, "/metrics") != 0 && strcmp(path, "/") != 0) {
		client_reply_str(cl, "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n"
				 "Connection: close\r\n\r\n");
	} else {
		client_command(cl, CMD_METRICS);
	}
}

static void client_input(struct client *cl)
{
	if (cl->out != NULL || cl->waiting || cl->waiting_reload)
		return;
	ssize_t n = recv(cl->fd, cl->in + cl->in_len, sizeof(cl->in) - 1 - cl->in_len, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		client_close(cl);
		return;
	}
	cl->in_len += (size_t)n;
	cl->in[cl->in_len] = '\0';
	if (!cl->http) {
		char *nl = memchr(cl->in, '\n', cl->in_len);
		if (nl != NULL) {
			*nl = '\0';
			ctl_request(cl, cl->in);
			return;
		}
	} else if (strstr(cl->in, "\r\n\r\n") != NULL || strstr(cl->in, "\n\n") != NULL) {
		http_request(cl);
		return;
	}
	if (cl->in_len >= sizeof(cl->in) - 1)
		client_close(cl); /* no request fits: not one of ours */
}

static void client_event(struct client *cl, uint32_t events)
{
	if (cl->out != NULL && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) != 0)
		client_output(cl);
	else if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0)
		client_input(cl);
}

static void client_accept(int lfd, bool http)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		if (m.client_count >= MAX_CLIENTS) {
			close(fd);
			continue;
		}
		struct client *cl = rg_calloc(1, sizeof(*cl));
		cl->fd = fd;
		cl->http = http;
		cl->deadline_ms = now_ms() + CLIENT_TIMEOUT_MSECS;
		cl->ev = (struct ev_source){ EV_CLIENT, cl };
		cl->next = m.clients;
		m.clients = cl;
		m.client_count++;
		ep_add(fd, &cl->ev);
	}
}

static void clients_expire(void)
{
	int64_t now = now_ms();
	struct client *next;
	for (struct client *cl = m.clients; cl != NULL; cl = next) {
		next = cl->next;
		if (now >= cl->deadline_ms)
			client_close(cl);
	}
}

char *master_ctl_path(const struct settings *set)
{
	return rg_strdup_printf("%s/ringgate-ctl", set->base_dir);
}

/* the control socket: only master's uid may connect (mode 0600) */
static void setup_ctl(void)
{
	m.ctl_path = master_ctl_path(m.set);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(m.ctl_path) >= sizeof(sa.sun_path))
		startup_fatal("%s: path too long for a UNIX socket", m.ctl_path);
	strcpy(sa.sun_path, m.ctl_path);
	(void)unlink(m.ctl_path); /* no live master owns it: we checked the pid file */
	m.ctl_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (m.ctl_fd < 0)
		startup_fatal("socket(AF_UNIX) failed: %m");
	mode_t old = umask(0077);
	int ret = bind(m.ctl_fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (ret < 0)
		startup_fatal("bind(%s) failed: %m", m.ctl_path);
	if (chmod(m.ctl_path, 0600) < 0)
		startup_fatal("chmod(%s) failed: %m", m.ctl_path);
	if (listen(m.ctl_fd, 16) < 0)
		startup_fatal("listen(%s) failed: %m", m.ctl_path);
}

static void setup_metrics(void)
{
	const struct service_settings *ss = settings_service(m.set, "stats");
	for (unsigned i = 0; ss != NULL && i < ss->listener_count; i++) {
		const struct listener_settings *ls = &ss->listeners[i];
		if (ls->port == 0)
			continue;
		struct master_addr *addrs;
		unsigned count;
		char *error;
		if (master_addr_parse(ls->address, ls->port, &addrs, &count, &error) < 0)
			startup_fatal("service(stats): inet_listener %s: %s", ls->name, error);
		for (unsigned j = 0; j < count; j++) {
			int fd = master_addr_listen(&addrs[j], false, 16, &error);
			if (fd < 0)
				startup_fatal("service(stats): %s", error);
			m.http_fds = rg_realloc(m.http_fds, (m.http_count + 1) * sizeof(*m.http_fds));
			m.http_fds[m.http_count++] = fd;
		}
		rg_free(addrs);
	}
}

/* ---- start-up ------------------------------------------------------------- */

static int read_somaxconn(void)
{
	int v = 4096;
	FILE *f = fopen("/proc/sys/net/core/somaxconn", "re");
	if (f != NULL) {
		if (fscanf(f, "%d", &v) != 1 || v <= 0)
			v = 4096;
		fclose(f);
	}
	return v;
}

static void mkdir_p(const char *path, mode_t mode)
{
	char *p = rg_strdup(path);
	for (char *s = p + 1; *s != '\0'; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		(void)mkdir(p, mode);
		*s = '/';
	}
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		startup_fatal("mkdir(%s) failed: %m", p);
	struct stat stb;
	if (stat(p, &stb) < 0 || !S_ISDIR(stb.st_mode))
		startup_fatal("%s is not a directory", p);
	rg_free(p);
}

/* base_dir/login: the login processes' chroot (and the access checker's),
 * root's, holding nothing but login_access_sockets sockets */
static void setup_dirs(void)
{
	mkdir_p(m.set->base_dir, 0755);
	char *empty = rg_strdup_printf("%s/login", m.set->base_dir);
	mkdir_p(empty, 0755);
	if (m.uid == 0 && chown(empty, 0, 0) < 0)
		startup_fatal("chown(%s) failed: %m", empty);
	if (chmod(empty, 0755) < 0)
		startup_fatal("chmod(%s) failed: %m", empty);
	rg_free(empty);
}

static void check_users(void)
{
	if (m.uid != 0) {
		log_warning("running as uid %ld, not root: cannot switch users; login processes "
			    "are not chrooted and only users with uid %ld can log in",
			    (long)m.uid, (long)m.uid);
		return;
	}
	if (getpwnam(m.set->default_login_user) == NULL)
		startup_fatal("default_login_user '%s' does not exist: create it (useradd -r -M "
			  "-d /nonexistent -s /usr/sbin/nologin %s) or set default_login_user "
			  "to an unprivileged user", m.set->default_login_user,
			  m.set->default_login_user);
}

static void find_binaries(void)
{
	char buf[4096];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	if (n <= 0)
		startup_fatal("readlink(/proc/self/exe) failed: %m");
	buf[n] = '\0';
	m.exe_dir = rg_strdup(dirname(buf));
	m.auth_path = rg_strdup_printf("%s/%s", m.exe_dir, proc_types[PROC_AUTH].binary);
	m.login_path = rg_strdup_printf("%s/%s", m.exe_dir, proc_types[PROC_LOGIN].binary);
	m.access_path = rg_strdup_printf("%s/%s", m.exe_dir, proc_types[PROC_ACCESS].binary);
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

static void service_free(struct login_service *svc)
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
static int setup_services(struct login_service **old, unsigned old_count, char **error_r)
{
	static const char *const protocols[] = { "imap", "pop3" };
	for (unsigned p = 0; p < 2; p++) {
		const char *proto = protocols[p];
		if (!settings_protocol_enabled(m.set, proto))
			continue;
		struct worker_service *ws = &m.workers[p];
		ws->protocol = proto;
		ws->set = settings_service(m.set, proto);
		if (ws->set == NULL)
			startup_fatal("service %s missing from the settings", proto);
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

/* ---- reload ---------------------------------------------------------------- */

/* Write set as base_dir/running.conf.tmp (mode 0600: it may hold an inline
 * key), renamed into place by running_conf_commit(). */
static int running_conf_write(const struct settings *set, char **error_r)
{
	char *tmp = rg_strdup_printf("%s.tmp", m.running_conf);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (f == NULL) {
		*error_r = rg_strdup_printf("open(%s) failed: %s", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		rg_free(tmp);
		return -1;
	}
	fprintf(f, "# written by ringgate master from %s: the configuration it runs\n",
		set->config_path);
	settings_print_secrets(set, false, true, f);
	if (fflush(f) != 0 || fsync(fd) < 0 || fclose(f) != 0) {
		*error_r = rg_strdup_printf("write(%s) failed: %s", tmp, strerror(errno));
		unlink(tmp);
		rg_free(tmp);
		return -1;
	}
	rg_free(tmp);
	return 0;
}

static int running_conf_commit(char **error_r)
{
	char *tmp = rg_strdup_printf("%s.tmp", m.running_conf);
	int ret = rename(tmp, m.running_conf);
	if (ret < 0) {
		*error_r = rg_strdup_printf("rename(%s) failed: %s", tmp, strerror(errno));
		unlink(tmp);
	}
	rg_free(tmp);
	return ret;
}

static const char *reload_needs_restart(const struct settings *a, const struct settings *b)
{
	if (strcmp(a->base_dir, b->base_dir) != 0)
		return "base_dir";
	if (strcmp(a->log_path, b->log_path) != 0)
		return "log_path";
	if (strcmp(a->log_timestamp, b->log_timestamp) != 0)
		return "log_timestamp";
	/* every process got its log fds and facility when it started */
	if (strcmp(a->info_log_path, b->info_log_path) != 0)
		return "info_log_path";
	if (strcmp(a->debug_log_path, b->debug_log_path) != 0)
		return "debug_log_path";
	if (strcmp(a->syslog_facility, b->syslog_facility) != 0)
		return "syslog_facility";
	if ((a->login_max_preauth_ip_connections == 0) != (b->login_max_preauth_ip_connections == 0))
		return "login_max_preauth_ip_connections (on or off)";
	if (settings_access_builtin(a) != settings_access_builtin(b))
		return "login_access_sockets (the built-in checker '" SETTINGS_ACCESS_BUILTIN
		       "' on or off)";
	const struct service_settings *sa = settings_service(a, "stats");
	const struct service_settings *sb = settings_service(b, "stats");
	if (sa->listener_count != sb->listener_count ||
	    (sa->listener_count > 0 && (sa->listeners[0].port != sb->listeners[0].port ||
					strcmp(sa->listeners[0].address, sb->listeners[0].address) != 0)))
		return "service stats";
	return NULL;
}

/* Re-read the configuration file. On an error nothing changes and
 * *error_r says why (file:line: reason). On success new login processes
 * start with the new settings, listeners are added, kept (the same socket)
 * or closed, and the old login processes stop accepting and live on until
 * their connections end. auth keeps the settings it started with. */
static int master_reload(char **error_r)
{
	char *error = NULL;
	struct settings *set = settings_load(m.set->config_path, &error);
	if (set == NULL) {
		*error_r = error != NULL ? error : rg_strdup("invalid configuration");
		return -1;
	}
	const char *what = reload_needs_restart(m.set, set);
	if (what != NULL) {
		*error_r = rg_strdup_printf("%s: changing %s needs a restart", set->config_path, what);
		settings_free(set);
		return -1;
	}
	if (set->ssl != SSL_NO) {
		struct tls_ctx *ctx;
		if (tls_settings_ctx_create(set, &ctx, &error) < 0) {
			*error_r = error;
			settings_free(set);
			return -1;
		}
		tls_ctx_free(&ctx);
	}
	if (running_conf_write(set, error_r) < 0) {
		settings_free(set);
		return -1;
	}

	struct settings *old_set = m.set;
	struct login_service **old = m.services;
	unsigned old_count = m.service_count;
	struct worker_service old_workers[2];
	memcpy(old_workers, m.workers, sizeof(old_workers));
	m.set = set;
	m.services = NULL;
	m.service_count = 0;
	/* running.conf not written: new processes would read the old file,
	 * so keep running as before then too */
	if (setup_services(old, old_count, &error) < 0 || running_conf_commit(&error) < 0) {
		for (unsigned s = 0; s < m.service_count; s++)
			service_free(m.services[s]);
		rg_free(m.services);
		m.services = old;
		m.service_count = old_count;
		m.set = old_set;
		memcpy(m.workers, old_workers, sizeof(old_workers));
		settings_free(set);
		*error_r = error;
		return -1;
	}
	/* commit: borrowed sockets change hands, the old services retire */
	for (unsigned s = 0; s < m.service_count; s++) {
		struct login_service *svc = m.services[s];
		for (unsigned i = 0; i < svc->listener_count; i++) {
			for (unsigned j = 0; j < svc->listeners[i].sock_count; j++) {
				struct listen_sock *ls = &svc->listeners[i].socks[j];
				if (ls->from == NULL)
					continue;
				if (ls->from->armed)
					ep_del(ls->from->fd);
				ls->from->armed = false;
				ls->from->fd = -1;
				ls->from = NULL;
			}
		}
	}
	for (unsigned s = 0; s < old_count; s++) {
		struct login_service *svc = old[s];
		if (!svc->retired) {
			struct login_service *heir = service_current(svc->set->name);
			if (heir != NULL) {
				heir->gone = svc->gone;
				memset(&svc->gone, 0, sizeof(svc->gone));
			}
			svc->retired = true;
			/* sockets nobody took over: the listener is gone */
			for (unsigned i = 0; i < svc->listener_count; i++) {
				for (unsigned j = 0; j < svc->listeners[i].sock_count; j++) {
					struct listen_sock *ls = &svc->listeners[i].socks[j];
					if (ls->fd < 0)
						continue;
					if (ls->armed)
						ep_del(ls->fd);
					ls->armed = false;
					close(ls->fd);
					ls->fd = -1;
				}
			}
			for (struct child *c = svc->logins; c != NULL; c = c->next) {
				struct ipc_msg msg;
				ipc_msg_init(&msg, IPC_LOGIN_RETIRE, 0);
				if (c->chan >= 0 && chan_send(c, &msg, -1) < 0) {
					c->st.terminating = true;
					kill(c->pid, SIGTERM);
				}
			}
		}
		m.services = rg_realloc(m.services, (m.service_count + 1) * sizeof(*m.services));
		m.services[m.service_count++] = svc;
	}
	rg_free(old);
	/* new lists for the built-in checker: a fresh process reads them (the
	 * socket stays, so lookups meanwhile wait in its backlog) */
	if (m.access != NULL && (strcmp(old_set->login_access_allow, set->login_access_allow) != 0 ||
				 strcmp(old_set->login_access_deny, set->login_access_deny) != 0)) {
		m.access->st.terminating = true;
		kill(m.access->pid, SIGTERM);
	}
	m.old_sets = rg_realloc(m.old_sets, (m.old_set_count + 1) * sizeof(*m.old_sets));
	m.old_sets[m.old_set_count++] = old_set;
	return 0;
}

/* retired services whose processes have all exited */
static void services_prune(void)
{
	unsigned k = 0;
	for (unsigned s = 0; s < m.service_count; s++) {
		struct login_service *svc = m.services[s];
		if (svc->retired && svc->logins == NULL)
			service_free(svc);
		else
			m.services[k++] = svc;
	}
	m.service_count = k;
}

/* systemd's Type=notify(-reload) protocol: RELOADING=1 with the
 * CLOCK_MONOTONIC time of the request, READY=1 when done (either way:
 * a failed reload keeps the old configuration serving) */
static void reload_notify(const char *state)
{
	int ret = master_notify(state);
	if (ret < 0)
		log_warning("sd_notify(%.*s) failed: %s", (int)strcspn(state, "\n"), state,
			    strerror(-ret));
}

static void reload_run(void)
{
	char *error = NULL;
	m.reload_pending = false;
	if (!m.stopping) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		char state[64];
		snprintf(state, sizeof(state), "RELOADING=1\nMONOTONIC_USEC=%llu",
			 (unsigned long long)ts.tv_sec * 1000000ULL +
				 (unsigned long long)ts.tv_nsec / 1000);
		reload_notify(state);
		/* a syslogd restarted since start-up has a new socket */
		(void)master_log_reconnect();
	}
	int ret = m.stopping ? -1 : master_reload(&error);
	if (!m.stopping)
		reload_notify("READY=1");
	if (m.stopping)
		error = rg_strdup("shutting down");
	if (ret == 0)
		log_info("configuration reloaded from %s", m.set->config_path);
	else
		log_error("reload failed, keeping the running configuration: %s", error);
	struct client *next;
	for (struct client *cl = m.clients; cl != NULL; cl = next) {
		next = cl->next;
		if (!cl->waiting_reload)
			continue;
		cl->waiting_reload = false;
		char *text = ret == 0 ? strdup("OK\n") : NULL;
		if (ret != 0 && asprintf(&text, "error: %s\n", error) < 0)
			text = NULL;
		if (text == NULL)
			client_close(cl);
		else
			client_reply(cl, text, strlen(text));
	}
	rg_free(error);
}

static void setup_signals(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		startup_fatal("sigprocmask() failed: %m");
	signal(SIGPIPE, SIG_IGN);
	m.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (m.sigfd < 0)
		startup_fatal("signalfd() failed: %m");
}

static void daemonize(void)
{
	pid_t pid = fork();
	if (pid < 0)
		startup_fatal("fork() failed: %m");
	if (pid > 0)
		_exit(0);
	if (setsid() < 0)
		startup_fatal("setsid() failed: %m");
	(void)dup2(m.devnull, STDIN_FILENO);
	(void)dup2(m.devnull, STDOUT_FILENO);
}

char *master_pidfile_path(const struct settings *set)
{
	return rg_strdup_printf("%s/master.pid", set->base_dir);
}

static void stop_finish(void)
{
	if (have_children()) {
		log_warning("children still running after %d secs: killing them",
			    STOP_TIMEOUT_MSECS / 1000);
		signal_all(SIGKILL);
		while (have_children()) {
			int status;
			pid_t pid = waitpid(-1, &status, 0);
			if (pid < 0)
				break;
			child_exited(pid, status);
		}
	}
}

int master_run(struct settings *set, bool foreground)
{
	memset(&m, 0, sizeof(m));
	m.set = set;
	m.orig_set = set;
	m.uid = geteuid();
	m.backlog = read_somaxconn();
	const char *dbg = getenv("RINGGATE_DEBUG");
	m.debug_env = dbg != NULL ? rg_strdup(dbg) : NULL;
	m.devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	m.iplimit_fd = -1;
	m.access_fd = -1;
	if (sched_getaffinity(0, sizeof(m.cpus), &m.cpus) < 0)
		CPU_ZERO(&m.cpus);

	log_init("master");
	/* before any child exists: none inherits NOTIFY_SOCKET */
	int notify = master_notify_init();
	int stderr_copy = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
	char *log_error_text = NULL;
	if (master_log_open(set, &log_error_text) < 0)
		startup_fatal("%s", log_error_text); /* still on stderr */
	/* until it daemonizes, start-up errors also reach the terminal */
	if (master_log_error_elsewhere())
		startup_stderr = stderr_copy;
	else if (stderr_copy >= 0)
		close(stderr_copy);
	/* a log file gets Dovecot's timestamps; stderr (the journal, a
	   terminal) and syslog have their own. Every process reads this at
	   log_init(). */
	if (master_log_has_file() && set->log_timestamp[0] != '\0')
		setenv("RINGGATE_LOG_TIMESTAMP", set->log_timestamp, 1);
	else
		unsetenv("RINGGATE_LOG_TIMESTAMP");
	m.log_timestamp = getenv("RINGGATE_LOG_TIMESTAMP");
	log_set_timestamp(m.log_timestamp != NULL ? m.log_timestamp : "");
	if (notify < 0)
		log_warning("NOTIFY_SOCKET is not an absolute or abstract socket path: ignored");
	find_binaries();
	check_users();
	setup_dirs();

	m.pid_path = master_pidfile_path(set);
	pid_t other;
	int ret = master_pidfile_check(m.pid_path, MASTER_COMM, &other);
	if (ret < 0)
		startup_fatal("reading %s failed: %s", m.pid_path, strerror(-ret));
	if (ret > 0)
		startup_fatal("ringgate is already running with pid %ld (see %s)", (long)other,
			  m.pid_path);
	m.running_conf = rg_strdup_printf("%s/running.conf", set->base_dir);
	char *conf_error = NULL;
	if (running_conf_write(set, &conf_error) < 0 || running_conf_commit(&conf_error) < 0)
		startup_fatal("%s", conf_error);

	if (set->ssl != SSL_NO) {
		/* a certificate that does not load or match its key stops
		 * start-up here, not in every login process */
		struct tls_ctx *ctx;
		char *error;
		if (tls_settings_ctx_create(set, &ctx, &error) < 0)
			startup_fatal("%s", error);
		tls_ctx_free(&ctx);
	}
	if (set->login_max_preauth_ip_connections > 0) {
		m.iplimit_fd = iplimit_create(iplimit_epoch_secs(set->login_timeout));
		if (m.iplimit_fd < 0)
			startup_fatal("login_max_preauth_ip_connections: memfd: %s",
				      strerror(-m.iplimit_fd));
	}
	access_setup_socket();
	char *error = NULL;
	if (setup_services(NULL, 0, &error) < 0)
		startup_fatal("%s", error);
	setup_ctl();
	setup_metrics();
	if (!foreground)
		daemonize();
	if (startup_stderr >= 0) {
		close(startup_stderr);
		startup_stderr = -1;
	}
	/* after the fork: a signalfd's poll wake-ups belong to the process
	 * that created it, so an inherited one never wakes epoll */
	setup_signals();
	m.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (m.epfd < 0)
		log_fatal("epoll_create1() failed: %m");
	m.sig_ev = (struct ev_source){ EV_SIGNAL, NULL };
	ep_add(m.sigfd, &m.sig_ev);
	m.ctl_ev = (struct ev_source){ EV_CTL_LISTEN, NULL };
	ep_add(m.ctl_fd, &m.ctl_ev);
	m.http_ev = (struct ev_source){ EV_HTTP_LISTEN, NULL };
	for (unsigned i = 0; i < m.http_count; i++) {
		struct epoll_event e = { .events = EPOLLIN, .data.ptr = &m.http_ev };
		if (epoll_ctl(m.epfd, EPOLL_CTL_ADD, m.http_fds[i], &e) < 0)
			log_fatal("epoll_ctl(add) failed: %m");
	}
	ret = master_pidfile_write(m.pid_path, getpid());
	if (ret < 0)
		log_fatal("writing %s failed: %s", m.pid_path, strerror(-ret));
	log_info("ringgate %s starting up (crypto: %s)", RINGGATE_VERSION, tls_crypto_info());
	/* what a Dovecot configuration says that ringgate does not use */
	settings_log_ignored(set);

	if (set->ssl != SSL_NO)
		ticket_keys_rotate();
	auth_spawn();
	if (m.access_fd >= 0)
		access_spawn();
	/* listeners are bound and the pid file written: systemd may go on */
	char ready[64];
	snprintf(ready, sizeof(ready), "READY=1\nMAINPID=%ld", (long)getpid());
	ret = master_notify(ready);
	if (ret < 0)
		log_warning("sd_notify(READY=1) failed: %s", strerror(-ret));
	for (;;) {
		struct epoll_event evs[64];
		int n = epoll_wait(m.epfd, evs, 64, m.stopping || m.clients != NULL ? 100 : 1000);
		if (n < 0 && errno != EINTR)
			log_fatal("epoll_wait() failed: %m");
		for (int i = 0; i < n; i++) {
			struct ev_source *ev = evs[i].data.ptr;
			switch (ev->kind) {
			case EV_SIGNAL:
				signal_input();
				break;
			case EV_CHILD: {
				struct child *c = ev->ptr;
				if (c->chan >= 0 && (evs[i].events & EPOLLOUT) != 0) {
					int fl = ipc_outq_epoll_flush(&c->outq, m.epfd, c->chan, &c->ev);
					if (fl < 0)
						log_error("%s: channel of %ld: %s", child_service_name(c),
							  (long)c->pid, strerror(-fl));
					if ((evs[i].events & ~(uint32_t)EPOLLOUT) == 0)
						break;
				}
				if (c->type == PROC_AUTH)
					auth_input(c);
				else
					login_input(c);
				/* the handlers may have closed channels other events of
				 * this batch point at: only signals are processed late */
				break;
			}
			case EV_LISTEN:
				listener_ready(ev->ptr);
				break;
			case EV_CTL_LISTEN:
				client_accept(m.ctl_fd, false);
				break;
			case EV_HTTP_LISTEN:
				for (unsigned h = 0; h < m.http_count; h++)
					client_accept(m.http_fds[h], true);
				break;
			case EV_CLIENT:
				/* may free the client: later events of this batch
				 * for the same client cannot exist (one fd, one event) */
				client_event(ev->ptr, evs[i].events);
				break;
			}
		}
		reap_children();
		if (m.reload_pending)
			reload_run();
		services_prune();
		stats_check();
		clients_expire();
		if (m.stopping) {
			if (!have_children() || now_ms() >= m.stop_deadline_ms)
				break;
			continue;
		}
		if (m.auth == NULL && now_ms() >= m.auth_backoff_until_ms)
			auth_spawn();
		if (m.access_fd >= 0 && m.access == NULL && now_ms() >= m.access_backoff_until_ms)
			access_spawn();
		if (m.ticket_len > 0 && now_secs() - m.ticket_rotated >= TICKET_ROTATE_SECS)
			ticket_keys_rotate();
		if (now_secs() - m.syslog_connected >= SYSLOG_RECONNECT_SECS) {
			/* syslogd may have been restarted with a new /dev/log:
			 * the socket every process shares follows it */
			m.syslog_connected = now_secs();
			(void)master_log_reconnect();
		}
		for (unsigned s = 0; s < m.service_count; s++) {
			if (!m.services[s]->retired)
				service_update(m.services[s]);
		}
	}
	stop_finish();
	while (m.clients != NULL)
		client_close(m.clients);
	close(m.ctl_fd);
	unlink(m.ctl_path);
	if (m.access_fd >= 0) {
		close(m.access_fd);
		unlink(m.access_sock_path);
	}
	rg_free(m.access_sock_path);
	rg_free(m.ctl_path);
	for (unsigned i = 0; i < m.http_count; i++)
		close(m.http_fds[i]);
	rg_free(m.http_fds);
	for (unsigned s = 0; s < m.service_count; s++)
		service_free(m.services[s]);
	rg_free(m.services);
	for (unsigned i = 0; i < m.old_set_count; i++) {
		if (m.old_sets[i] != m.orig_set)
			settings_free(m.old_sets[i]);
	}
	rg_free(m.old_sets);
	rg_free(m.running_conf);
	if (m.set != m.orig_set)
		settings_free(m.set);
	m.set = m.orig_set;
	pid_t pid;
	if (master_pidfile_read(m.pid_path, &pid) == 0 && pid == getpid())
		unlink(m.pid_path);
	explicit_bzero(m.ticket_keys, sizeof(m.ticket_keys));
	log_info("ringgate stopped");
	return 0;
}
