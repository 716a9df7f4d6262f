/* master-private.h — what the files of the master process share: its one
 * state (`m`), the process table, and each file's entry points. Not an
 * interface for anything outside src/master (that is master.h).
 *
 *   master.c         start-up, the epoll loop, signals, stop
 *   master-proc.c    the process table: fork/exec helpers, channels, the pid
 *                    hash, exits dispatched to each type's handler, back-off
 *   master-auth.c    auth and the built-in access checker (singletons)
 *   master-login.c   login processes, their messages, the hand-off to a worker
 *   master-worker.c  forking a worker as the user
 *   master-wpool.c   workers that outlive a session, spares
 *   master-wtemplate.c worker templates that fork new workers
 *   master-listen.c  login services, their listeners and the spawn policy
 *   master-reload.c  running.conf and reload
 *   master-ctl.c     the stats process and its requests: who, stats, metrics,
 *                    reload
 */
#ifndef RG_MASTER_PRIVATE_H
#define RG_MASTER_PRIVATE_H

#include "master/master-addr.h"
#include "master/master-pidhash.h"
#include "master/master-policy.h"
#include "lib/ipc.h"
#include "lib/settings.h"
#include "lib/stats.h"
#include "tls/tls-settings.h"

#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define MAX_MSGS_PER_WAKEUP 64
#define CHILD_FATAL_STATUS 89
#define REASON_INTERNAL "Internal error occurred. Refer to server log for more information."
/* TLS session ticket keys: a new one every hour, the previous one still
 * opens tickets for another hour (a ticket lives at most two) */
#define TICKET_KEY_SIZE TLS_TICKET_KEY_SIZE
#define TICKET_ROTATE_SECS 3600

/* relayd-style table of the process types master starts (master-proc.c) */
enum proc_type {
	PROC_AUTH, PROC_LOGIN, PROC_WORKER, PROC_ACCESS, PROC_STATS,
	PROC_TEMPLATE, /* a high-security login template (master-template.c) */
	PROC_WTEMPLATE, /* a worker template (master-wtemplate.c) */
	PROC_TYPE_COUNT
};

enum ev_kind { EV_SIGNAL, EV_CHILD, EV_LISTEN };
struct ev_source {
	enum ev_kind kind;
	void *ptr;
};

struct child;
struct login_service;

/* where a worker process is (master-wpool.c): in a session (on
 * m.worker_list), used and waiting for its uid's next session (its
 * service's idle list), started ahead and still root (its spares list),
 * between two of these (on no list), or let go (its channel closed: it
 * exits, no longer counted against process_limit) */
enum worker_state { WORKER_TAKEN, WORKER_BUSY, WORKER_IDLE, WORKER_SPARE, WORKER_LEAVING };

/* Start-up failure accounting of one respawned thing (a singleton process
 * type, a login service): consecutive fast failures double the wait. */
struct proc_backoff {
	unsigned failures;
	int64_t until_ms;
};

/* What master starts processes for: a singleton (auth, access, stats), a
 * login service, a worker service. Every child points to its group, which
 * names it in the logs and (for types with .backoff) counts its start-up
 * failures; proc_spawn() starts one through the table, or says to wait. */
struct proc_group {
	enum proc_type type;
	const char *name;		/* service(name) */
	struct proc_backoff backoff;
};

/* A process type of which master keeps exactly one running (auth, access,
 * stats) while wanted() says so, respawned with back-off when it dies. */
struct proc_single {
	struct proc_group grp;
	struct child *child;
};

struct proc_type_info {
	const char *name;
	const char *binary;  /* NULL: chosen per service (workers) */
	/* a message on the child's channel (NULL: it has none); the handler
	 * owns rx->fd. kill: the child broke the protocol (log, SIGKILL). eof:
	 * its channel closed (may be NULL) */
	void (*message)(struct child *c, struct ipc_rx *rx);
	void (*kill)(struct child *c, const char *why);
	void (*eof)(struct child *c);
	/* after waitpid(), c out of the pid hash: the type's accounting (its
	 * lists, counters, what waited for it), before master-proc.c logs the
	 * exit, notes it in the group's back-off and frees c */
	void (*exited)(struct child *c);
	/* start one process of the group (0, or -1 logged); NULL: started by
	 * its own path (a worker, for a verified hand-off, master-worker.c) */
	int (*spawn)(struct proc_group *g);
	/* a fast abnormal exit delays the group's next spawn (no: workers,
	 * whose exit is their user's session) */
	bool backoff;
	/* singletons only (else NULL): the slot and whether one should run now;
	 * any exit of one while master runs counts as a failure */
	struct proc_single *single;
	bool (*wanted)(void);
};
extern const struct proc_type_info proc_types[PROC_TYPE_COUNT];

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
	struct pidhash_node hash;        /* first: the pid hash's key */
	enum proc_type type;
	struct proc_group *grp;          /* what started it (name, back-off) */
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
	/* workers: reuse (master-wpool.c) */
	enum worker_state wstate;
	const struct service_settings *wset; /* what it was started with */
	uid_t wuid;                      /* the process's uid and gid once it has a user */
	gid_t wgid;
	char *wjail;                     /* and its chroot ("" none; NULL: a spare) */
	unsigned served;                 /* sessions given to it */
	int64_t idle_since_ms;
	/* templates: their state (master-template.c); logins and workers a
	 * template forked: its pid */
	struct tpl_state *tpl;
	pid_t tpl_pid;
	int exit_status;                 /* waitpid()'s, set before exited() */
	/* in its service's logins or in worker_list: O(1) unlink on exit */
	struct child *prev, *next;
};
#define child_pid(c) ((c)->hash.pid)

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
	struct proc_group grp;           /* PROC_LOGIN, named set->name */
	struct child *logins;
	unsigned login_count;
	struct login_counters gone;      /* running counts of exited processes */
	/* high-security template (master-template.c): the current one, login
	 * processes asked of templates and not yet answered, templates of this
	 * service still alive (a retired one finishes its answers) */
	struct child *tpl;
	unsigned spawning;
	unsigned tpl_alive;
	/* replaced by a reload: its processes stop accepting and live on until
	   their connections end (TLS proxies included) */
	bool retired;
};

struct worker_service {
	struct proc_group grp;           /* PROC_WORKER, named protocol */
	const char *protocol; /* "imap" / "pop3" */
	const struct service_settings *set;
	char *binary_path;
	unsigned count;                  /* processes, against process_limit */
	unsigned busy;                   /* of which in a session */
	struct child *idle;              /* used, waiting: newest first */
	struct child *spares;            /* process_min_avail, still root */
	unsigned idle_count, spare_count;
	int64_t spare_retry_ms;          /* a spare failed: no new one before */
	int64_t idle_checked_ms;
	/* its template (master-wtemplate.c): the current one, whether it
	 * said READY, the workers it forked; tpl_grp names and backs it off */
	struct child *tpl;
	bool tpl_ready;
	unsigned tpl_forks;
	struct proc_group tpl_grp;
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

struct master {
	struct settings *set;
	char *exe_dir;
	char *paths[PROC_TYPE_COUNT];    /* exe_dir/binary of each type that has one */
	char *pid_path;
	char *debug_env; /* RINGGATE_DEBUG value passed on to workers */
	/* a sanitizer build's ASAN_OPTIONS= and UBSAN_OPTIONS= entries, passed on
	 * to workers (their environment is built, not inherited); NULL if unset */
	char *san_env[2];
	const char *log_timestamp; /* RINGGATE_LOG_TIMESTAMP for workers, or NULL */
	int epfd, sigfd, devnull;
	struct ev_source sig_ev;
	uid_t uid;
	int backlog;
	cpu_set_t cpus;
	unsigned cpu_seq;

	struct pidhash pids;             /* every child, by pid */
	struct login_service **services; /* current ones first, then retired ones */
	unsigned service_count;
	struct worker_service workers[2];
	struct child *worker_list;       /* newest first */

	struct proc_single auth, access, stats;

	/* the built-in login access checker (login_access_sockets = access):
	   its listening socket base_dir/login/access, kept across restarts of
	   the process, so a lookup waits in the backlog rather than fails */
	int access_fd;
	char *access_sock_path;

	struct pending *pending;
	uint32_t req_seq;

	struct settings *orig_set;       /* the caller's: freed by the caller */
	struct settings **old_sets;      /* replaced by reloads, freed at exit */
	uint64_t db_files_hash;          /* master_db_files_hash() of m.set */
	unsigned old_set_count;
	bool reload_pending;             /* SIGHUP or `ringgate reload` */
	time_t syslog_connected;         /* last master_log_reconnect() */
	/* base_dir/running.conf: the configuration master validated, which
	   auth and login processes read (never the file an administrator may
	   be editing) */
	char *running_conf;

	struct auth_counters auth_stats;  /* the running auth's last report */
	struct auth_counters auth_gone;   /* of auth processes that exited */

	bool stopping;
	int64_t stop_deadline_ms;

	/* current key, then the previous one (ticket_len 48 or 96) */
	uint8_t ticket_keys[2 * TICKET_KEY_SIZE];
	size_t ticket_len;
	time_t ticket_rotated;

	/* login_max_preauth_ip_connections: the table every login process
	 * maps (lib/iplimit.h), -1 without a limit */
	int iplimit_fd;
	/* the local_name sections' store (tls.h: a sealed memfd) that every
	 * login process of the running configuration maps, -1 without */
	int sni_fd;
};
extern struct master m;

/* master.c */
void startup_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* master-proc.c */
int64_t now_ms(void);
time_t now_secs(void);
void set_nonblock(int fd);
void ep_add(int fd, struct ev_source *ev);
void ep_del(int fd);
void close_fds(int *fds, unsigned count);
int chan_send(struct child *c, struct ipc_msg *msg, int pass_fd);
void chan_close(struct child *c);
const char *child_service_name(const struct child *c);
/* in a forked child before exec */
void child_place_fds(const int *own, unsigned own_count, int syslog_fd);
void child_reset_signals(void);
void child_set_vsz(uint64_t vsz);
/* after a successful fork: a zeroed child in the pid hash */
struct child *child_new(pid_t pid, struct proc_group *grp, int chan);
void child_free(struct child *c);
struct child *child_find(pid_t pid, enum proc_type type);
void child_list_add(struct child **head, struct child *c);
void child_list_del(struct child **head, struct child *c);
/* the exit's log line; returns whether it was abnormal */
bool child_log_exit(const struct child *c, int status);
/* the one exit path of a reaped child (unknown pids: master-template.c's) */
void child_exited(pid_t pid, int status);
/* start one process of g through its type's spawn: -1 while its back-off
 * lasts or when the spawn failed (logged) */
int proc_spawn(struct proc_group *g);
/* at start-up: the singletons' groups */
void proc_singles_init(void);
void children_reap(void);
void children_wait_all(void);
bool children_any(void);
void children_signal(int sig);
/* Start singleton g (auth, access, stats) as root: its own fds at 3…
 * (with_chan: a new channel to master first), `BINARY -c running.conf`, env
 * ("NAME=value") or NULL. Fills its slot; false (logged) on failure. */
int proc_single_start(struct proc_group *g, bool with_chan, const int *fds, unsigned nfds,
		      const char *env);
/* start the singletons that are wanted, missing and past their back-off */
void proc_singles_respawn(void);
/* epoll event on a child's channel */
void child_chan_event(struct child *c, uint32_t events);
/* read what the channel holds, message by message, to the type's handlers */
void child_chan_read(struct child *c);

/* master-auth.c */
int auth_send_client(struct child *login, int auth_fd);
void auth_message(struct child *c, struct ipc_rx *rx);
void auth_kill(struct child *c, const char *why);
void auth_eof(struct child *c);
/* AUTH_CACHE_FLUSH to auth: users space-separated, "" = all. -1: no auth */
int auth_cache_flush_request(const char *users);
void auth_exited(struct child *c);
bool auth_wanted(void);
int auth_spawn(struct proc_group *g);
void access_setup_socket(void);
bool access_wanted(void);
int access_spawn(struct proc_group *g);

/* master-login.c */
void login_message(struct child *c, struct ipc_rx *rx);
void login_kill(struct child *c, const char *why);
void login_exited(struct child *c);
int login_spawn(struct proc_group *g);
void login_send_ticket_keys(struct child *c);
/* a login process's or template's fds from fd 5 on (login_fds_collect:
 * the listeners, reuse_port ones made now, and the iplimit table) */
struct login_fds {
	int *fds;
	bool *own;
	unsigned nfds, nsocks;
	char *names;
};
int login_fds_collect(struct login_service *svc, struct login_fds *lf);
void login_fds_free(struct login_fds *lf);
pid_t login_exec(struct login_service *svc, const struct login_fds *lf, int cpu, bool template);
struct child *login_started(struct login_service *svc, pid_t pid, int chan, int auth_fd, int cpu);

/* master-template.c */
bool template_wanted(const struct login_service *svc);
int template_spawn_login(struct login_service *svc);
void template_message(struct child *c, struct ipc_rx *rx);
void template_kill(struct child *c, const char *why);
void template_exited(struct child *c);
/* a login process of svc died of a signal: its template goes (at once) */
void template_child_crashed(struct login_service *svc, const struct child *login);
/* the current template goes (reload, limit reached); none is NULL-safe */
void template_retire(struct login_service *svc);
/* a reaped pid master does not know: maybe a template's child whose
 * LOGIN_SPAWNED is still on its way */
void template_unknown_exit(pid_t pid, int status);
void login_reply(pid_t login_pid, uint32_t login_req_id, const char *reason, bool temp, pid_t mpid);
void ticket_keys_rotate(void);
void pending_fail_all(const char *reason);
void handoff_auth_reply(const struct ipc_rx *rx);

/* master-worker.c */
struct worker_service *worker_service_get(const char *protocol);
/* a verified login: its session to an idle worker of its uid, a spare or
 * a new worker. NULL and *pid_r on success, else the reason for the login
 * process (details logged) */
const char *worker_spawn(struct worker_service *ws, struct pending *p,
			 const struct ipc_fields *hf, const struct ipc_fields *uf,
			 bool *temp_r, pid_t *pid_r);
/* start a process_min_avail spare (root, no user yet): 0 or -1 (logged) */
int worker_spawn_spare(struct worker_service *ws);
/* the environment of an exec'd worker or worker template: RINGGATE_DEBUG,
 * RINGGATE_LOG_TIMESTAMP, RINGGATE_LOG (r gets the log fds), HOME and
 * USER when user is not NULL, LD_BIND_NOW=1 when bind_now */
struct spawn_req;
struct worker_env {
	char log[160], home[4200], user[512], debug[64], ts[128];
	char *envp[9];
};
void worker_env_fill(struct worker_env *env, struct spawn_req *r, int syslog_fd,
		     const char *user, const char *home, bool bind_now);

/* master-wtemplate.c */
bool wtemplate_wanted(const struct worker_service *ws);
/* each loop turn: a template when wanted, missing and past its back-off */
void wtemplate_tick(struct worker_service *ws);
/* Fork a worker from ws's template, its channel's far end child_end (the
 * caller closes it). The pid (*tpl_pid_r the template's); -EAGAIN when
 * there is no ready template or no child was made (exec one instead);
 * -EIO when the template broke and a child may exist (killed, logged, its
 * channel drained: do not serve the session elsewhere) */
pid_t wtemplate_fork(struct worker_service *ws, int child_end, pid_t *tpl_pid_r);
void wtemplate_message(struct child *c, struct ipc_rx *rx);
void wtemplate_kill(struct child *c, const char *why);
void wtemplate_exited(struct child *c);
/* the current template goes (reload, limit reached); NULL-safe */
void wtemplate_retire(struct worker_service *ws);
/* a worker forked by template tpl_pid died of a signal */
void wtemplate_child_crashed(struct worker_service *ws, pid_t tpl_pid);

/* master-wpool.c */
/* service_count != 1: a worker serves more than one session */
bool worker_reusable(const struct worker_service *ws);
/* an idle worker of this uid, gid and chroot (jail, "" none) when
 * reusable, else a spare, else NULL; taken off its list */
struct child *wpool_take(struct worker_service *ws, uid_t uid, gid_t gid, const char *jail);
/* at process_limit: let the oldest idle worker (else a spare) go; false
 * when there is none */
bool wpool_evict(struct worker_service *ws);
/* c starts a session (a new worker, or one wpool_take gave) */
void wpool_busy(struct worker_service *ws, struct child *c, const char *user, const char *rip,
		bool tls, pid_t proxy_pid);
/* a freshly started spare joins its service's spares */
void wpool_spare(struct child *c);
/* close its channel (it exits) and stop counting it */
void wpool_let_go(struct child *c);
void worker_message(struct child *c, struct ipc_rx *rx);
void worker_kill(struct child *c, const char *why);
void worker_exited(struct child *c);
/* each loop turn: spares topped up to process_min_avail, idle workers past
 * idle_kill and those of a replaced configuration let go */
void workers_tick(void);

/* master-listen.c */
struct login_service *service_current(const char *name);
int services_setup(struct login_service **old, unsigned old_count, char **error_r);
void service_free(struct login_service *svc);
void service_arm(struct login_service *svc, bool arm);
void service_update(struct login_service *svc);
void services_prune(void);
void services_close_listeners(void);
void listener_ready(struct listen_sock *ls);

/* master-reload.c */
int running_conf_write(const struct settings *set, bool local_names, char **error_r);
/* The content of the files the passdb/userdb chain's sql, ldap and oauth2
   blocks name in args (dovecot-sql.conf.ext, ...), hashed: auth reads them
   only when it starts, so a reload that changes one restarts auth. */
uint64_t master_db_files_hash(const struct settings *set);
int running_conf_commit(char **error_r);
void reload_run(void);

/* master-ctl.c */
/* bind base_dir/ringgate-ctl and service stats' listeners (start-up) */
void ctl_setup(void);
void ctl_close(void);
void stats_message(struct child *c, struct ipc_rx *rx);
void stats_kill(struct child *c, const char *why);
void stats_exited(struct child *c);
bool stats_wanted(void);
int stats_spawn(struct proc_group *g);
/* whether a request waits (master then wakes up more often) */
bool ctl_busy(void);
/* after each epoll batch: answer what waited for counters */
void ctl_tick(void);
void ctl_reload_done(int ret, const char *error);
/* counters arrived from (or died with) a process that was asked */
void stats_reply_noted(struct child *c);

#endif
