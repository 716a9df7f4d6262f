/* master-worker.c — a verified login becomes a worker: the uid checks,
 * WORKER_INIT, the spawn (master-spawn.c: clone, the drop to the user,
 * exec); and the worker's exit.
 * Everything that decides which user a worker runs as is here. */
#include "master/master-private.h"
#include "master/master-log.h"
#include "master/master-spawn.h"
#include "lib/alloc.h"
#include "lib/log.h"
#include "lib/privs.h"
#include "lib/var-expand.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct worker_service *worker_service_get(const char *protocol)
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

/* a group list setting as gids (names through NSS); unknown names are
 * logged and left out */
static size_t mail_access_gids(const char *setting, const char *list, gid_t *out, size_t max)
{
	size_t n = 0;
	char *copy = rg_strdup(list);
	for (char *save = NULL, *g = strtok_r(copy, " ,", &save); g != NULL && n < max;
	     g = strtok_r(NULL, " ,", &save)) {
		char *end;
		unsigned long v = strtoul(g, &end, 10);
		if (*g >= '0' && *g <= '9' && *end == '\0') {
			out[n++] = (gid_t)v;
			continue;
		}
		const struct group *gr = getgrnam(g);
		if (gr == NULL)
			log_error("%s: unknown group %s", setting, g);
		else
			out[n++] = gr->gr_gid;
	}
	rg_free(copy);
	return n;
}

/* mail_access_groups and mail_privileged_group as gids, resolved once per
 * configuration in master (the spawned child cannot use NSS). Dovecot
 * keeps mail_privileged_group as the saved gid and takes it for mbox
 * dotlocks; a worker can regain a saved gid as easily as use a
 * supplementary one, so ringgate gives it as one more supplementary group. */
static size_t worker_extra_gids(gid_t *out, size_t max)
{
	static const struct settings *resolved_for;
	static gid_t gids[64];
	static size_t count;
	if (resolved_for != m.set) {
		count = mail_access_gids("mail_access_groups", m.set->mail_access_groups, gids, 64);
		count += mail_access_gids("mail_privileged_group", m.set->mail_privileged_group,
					  gids + count, 64 - count);
		resolved_for = m.set;
	}
	size_t n = count < max ? count : max;
	memcpy(out, gids, n * sizeof(gid_t));
	return n;
}

/* "NAME=value" into buf; false when it does not fit (then left out) */
static bool fmt_env(char *buf, size_t size, const char *name, const char *value)
{
	int n = snprintf(buf, size, "%s=%s", name, value);
	return n > 0 && (size_t)n < size;
}

/* mail_location's %-variables (lib/var-expand.h) for this user: %u %n %d
 * %h %s %l %r %i. NULL (logged) when the template is broken. */
static char *mail_expand(const char *mail, const char *user, const char *home,
			 const char *service, const struct ipc_fields *hf, unsigned long long uid)
{
	const char *at = strrchr(user, '@');
	char *username = at != NULL ? rg_strndup(user, (size_t)(at - user)) : rg_strdup(user);
	char uidstr[24];
	snprintf(uidstr, sizeof(uidstr), "%llu", uid);
	const struct var_expand_entry table[] = {
		{ 'u', "user", user }, { 'n', "username", username },
		{ 'd', "domain", at != NULL ? at + 1 : "" }, { 'h', "home", home },
		{ 's', "service", service }, { 'l', "lip", ipc_str(hf, IPC_F_LIP) },
		{ 'r', "rip", ipc_str(hf, IPC_F_RIP) }, { 'i', "uid", uidstr },
		{ 0, NULL, NULL },
	};
	char *out = NULL, *error = NULL;
	if (var_expand(mail, table, NULL, NULL, &out, &error) < 0) {
		log_error("user %s: mail_location %s", user, error);
		rg_free(error);
	}
	rg_free(username);
	return out;
}

/* A userdb `chroot` field, or a home with Dovecot's "/./" (the part
 * before it is the chroot, the part after it the home inside). Dovecot
 * refuses a chroot outside valid_chroot_dirs (every one when it is
 * empty), and so does ringgate; a chroot needs root, as it does in
 * Dovecot. Fills dir (empty: no chroot) and *home_r (the home as the
 * worker sees it); returns the refusal, or NULL. */
static const char *chroot_split(const char *home, const struct ipc_fields *uf,
				char *dir, size_t dir_size, const char **home_r)
{
	const char *extra = ipc_str(uf, IPC_F_EXTRA);
	const char *p = strstr(home, "/./");
	*home_r = home;
	dir[0] = '\0';
	if (p != NULL) {
		snprintf(dir, dir_size, "%.*s", (int)(p - home), home);
		*home_r = p + 2;
	} else if (extra != NULL) {
		for (const char *f = extra; *f != '\0'; f += strcspn(f, "\t"), f += *f == '\t') {
			if (strncmp(f, "chroot=", 7) == 0) {
				snprintf(dir, dir_size, "%.*s", (int)strcspn(f + 7, "\t"), f + 7);
				break;
			}
		}
		size_t n = strlen(dir);
		/* a home under the chroot is seen from inside it */
		while (n > 1 && dir[n - 1] == '/')
			dir[--n] = '\0';
		if (n > 1 && strncmp(home, dir, n) == 0 && home[n] == '/')
			*home_r = home + n;
	}
	if (dir[0] == '\0')
		return NULL;
	if (dir[0] != '/' || strstr(dir, "/../") != NULL ||
	    (strlen(dir) >= 3 && strcmp(dir + strlen(dir) - 3, "/..") == 0))
		return "chroot directory is not an absolute path without ..";
	const char *list = m.set->valid_chroot_dirs;
	for (const char *d = list; *d != '\0'; d += strcspn(d, ":"), d += *d == ':') {
		size_t n = strcspn(d, ":");
		while (n > 1 && d[n - 1] == '/')
			n--;
		/* a whole path component: /home covers /home/x, not /homeless */
		if (n > 0 && strncmp(dir, d, n) == 0 && (dir[n] == '\0' || dir[n] == '/' || n == 1))
			return m.uid == 0 ? NULL : "chroot needs ringgate started as root";
	}
	return "chroot directory not in valid_chroot_dirs";
}

/* What worker_exec() starts: a worker for a session (init queued on its
 * channel, dropped to uid/gid when drop) or a spare (init NULL: root, it
 * waits on its channel; client_fd is /dev/null then). */
struct worker_exec {
	int client_fd;
	struct ipc_msg *init;
	bool drop;
	bool keep_chroot;  /* it chroots after exec: CAP_SYS_CHROOT passes */
	uid_t uid;
	gid_t gid;
	const char *home;  /* HOME (inside a chroot) */
	const char *dir;   /* where it starts (the home outside a chroot) */
	const char *user;
	const char *jail;  /* the chroot with keep_chroot */
};

void worker_env_fill(struct worker_env *env, struct spawn_req *r, int syslog_fd,
		     const char *user, const char *home, bool bind_now)
{
	unsigned ne = 0;
	if (m.debug_env != NULL && fmt_env(env->debug, sizeof(env->debug), "RINGGATE_DEBUG", m.debug_env))
		env->envp[ne++] = env->debug;
	if (user != NULL && fmt_env(env->home, sizeof(env->home), "HOME", home))
		env->envp[ne++] = env->home;
	if (user != NULL && fmt_env(env->user, sizeof(env->user), "USER", user))
		env->envp[ne++] = env->user;
	if (m.log_timestamp != NULL &&
	    fmt_env(env->ts, sizeof(env->ts), "RINGGATE_LOG_TIMESTAMP", m.log_timestamp))
		env->envp[ne++] = env->ts;
	if (spawn_add_log_fds(r, syslog_fd, env->log, sizeof(env->log)))
		env->envp[ne++] = env->log;
	/* a template's children never run the dynamic resolver */
	if (bind_now)
		env->envp[ne++] = (char *)"LD_BIND_NOW=1";
	for (unsigned i = 0; i < 2; i++)
		if (m.san_env[i] != NULL)
			env->envp[ne++] = m.san_env[i];
	env->envp[ne] = NULL;
}

/* mail_access_groups and mail_privileged_group as F_GROUPS */
static void add_extra_groups(struct ipc_msg *msg)
{
	gid_t extra[64];
	size_t n = worker_extra_gids(extra, 64);
	char groups[64 * 12] = "";
	size_t len = 0;
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(groups + len, sizeof(groups) - len, "%s%lu",
					i > 0 ? "," : "", (unsigned long)extra[i]);
	if (n > 0)
		ipc_msg_add_str(msg, IPC_F_GROUPS, groups);
}

/* fork from the service's template (master-wtemplate.c): WORKER_SETUP
 * (what the exec path's child does before execve, and the worker's own
 * syslog socket) and WORKER_INIT (the client attached) wait in the new
 * channel for the child. The pid; -EAGAIN: exec it instead */
static pid_t worker_fork(struct worker_service *ws, const struct worker_exec *e, bool keep,
			 int pair[2], pid_t *tpl_pid_r)
{
	if (ws->tpl == NULL || !ws->tpl_ready)
		return -EAGAIN;
	struct ipc_msg *msg = rg_malloc(sizeof(*msg));
	ipc_msg_init(msg, IPC_WORKER_SETUP, 0);
	if (e->drop) {
		ipc_msg_add_uint(msg, IPC_F_UID, e->uid);
		ipc_msg_add_uint(msg, IPC_F_GID, e->gid);
		add_extra_groups(msg);
		if (e->keep_chroot)
			ipc_msg_add_str(msg, IPC_F_CHROOT, e->jail);
	}
	if (e->dir != NULL)
		ipc_msg_add_str(msg, IPC_F_HOME, e->dir);
	if (ws->set->vsz_limit != 0)
		ipc_msg_add_uint(msg, IPC_F_VSZ, ws->set->vsz_limit);
	if (keep)
		ipc_msg_add_str(msg, IPC_F_REUSE, "1");
	int syslog_fd = master_log_syslog_fd(MASTER_LOG_WORKER);
	int ret = ipc_send(pair[0], msg, syslog_fd);
	rg_free(msg);
	if (syslog_fd >= 0)
		close(syslog_fd);
	if (ret == 0 && e->init != NULL)
		ret = ipc_send(pair[0], e->init, e->client_fd);
	if (ret < 0) {
		log_error("service(%s): queueing WORKER_SETUP failed: %s", ws->protocol,
			  strerror(-ret));
		return -EAGAIN;
	}
	return wtemplate_fork(ws, pair[1], tpl_pid_r);
}

/* clone + exec (master-spawn.c): the pid, or -1 (logged) */
static pid_t worker_spawn_exec(struct worker_service *ws, const struct worker_exec *e, bool keep,
			       int pair[2])
{
	if (e->init != NULL) {
		/* queued in the socket until the worker reads it */
		int ret = ipc_send(pair[0], e->init, -1);
		if (ret < 0) {
			log_error("user %s: sending WORKER_INIT failed: %s", e->user, strerror(-ret));
			return -1;
		}
	}
	/* its own syslog socket, see master-log.h */
	int syslog_fd = master_log_syslog_fd(MASTER_LOG_WORKER);
	struct spawn_req *r = rg_malloc(sizeof(*r));
	memset(r, 0, sizeof(*r));
	r->path = ws->binary_path;
	r->vsz = ws->set->vsz_limit;
	r->devnull = m.devnull;
	r->fds[0] = e->client_fd;
	r->fds[1] = pair[1];
	r->nfds = 2;
	r->dir = e->dir;
	if (e->drop) {
		r->drop = true;
		r->keep_chroot = e->keep_chroot;
		r->uid = e->uid;
		r->gid = e->gid;
		r->groups[0] = e->gid;
		r->ngroups = 1 + worker_extra_gids(r->groups + 1, SPAWN_MAX_GROUPS - 1);
	}
	struct worker_env env;
	worker_env_fill(&env, r, syslog_fd, e->user, e->home, false);
	const char *name = strrchr(ws->binary_path, '/');
	char *argv[] = { (char *)(name != NULL ? name + 1 : ws->binary_path),
			 keep ? (char *)"-r" : NULL, NULL };
	r->argv = argv;
	r->envp = env.envp;
	pid_t pid = spawn_start(r);
	if (syslog_fd >= 0)
		close(syslog_fd);
	if (pid < 0) {
		log_error("service(%s): %s%s%sstarting a worker failed: %s: %s", ws->protocol,
			  e->user != NULL ? "user " : "", e->user != NULL ? e->user : "",
			  e->user != NULL ? ": " : "", r->failed_step, strerror((int)-pid));
		rg_free(r);
		return -1;
	}
	if (r->chdir_errno != 0)
		log_error("user %s: chdir(%s) failed: %s", e->user, e->dir, strerror(r->chdir_errno));
	rg_free(r);
	return pid;
}

static int worker_channel(int pair[2])
{
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) {
		log_error("socketpair() failed: %m");
		return -1;
	}
	return 0;
}

/* A new worker process: forked from the template when one is ready, else
 * clone + exec; NULL when it failed (logged). A reusable worker or a
 * spare keeps its channel in master (-r), a single-session worker's is
 * closed once its messages are queued in it. */
static struct child *worker_exec(struct worker_service *ws, const struct worker_exec *e)
{
	bool keep = e->init == NULL || worker_reusable(ws);
	int pair[2];
	pid_t tpl_pid = 0;
	if (worker_channel(pair) < 0)
		return NULL;
	pid_t pid = worker_fork(ws, e, keep, pair, &tpl_pid);
	if (pid == -EAGAIN) {
		/* what was queued for a child that does not exist goes */
		close_fds(pair, 2);
		if (worker_channel(pair) < 0)
			return NULL;
		pid = worker_spawn_exec(ws, e, keep, pair);
	}
	close(pair[1]);
	if (pid < 0 || !keep) {
		close(pair[0]);
		pair[0] = -1;
	}
	if (pid < 0)
		return NULL;
	if (pair[0] >= 0)
		set_nonblock(pair[0]);
	struct child *c = child_new(pid, &ws->grp, pair[0]);
	if (pair[0] >= 0)
		ep_add(pair[0], &c->ev);
	c->wsvc = ws;
	c->wset = ws->set;
	c->tpl_pid = tpl_pid;
	ws->count++;
	return c;
}

/* A verified login's session: to an idle worker of its uid, gid and
 * chroot, a spare, or a new worker. Returns NULL on success, else the
 * reason to give the login process (details logged here). */
const char *worker_spawn(struct worker_service *ws, struct pending *p,
			 const struct ipc_fields *hf, const struct ipc_fields *uf,
			 bool *temp_r, pid_t *pid_r)
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
	if (gid < m.set->first_valid_gid ||
	    (m.set->last_valid_gid != 0 && gid > m.set->last_valid_gid)) {
		log_error("user %s: login refused for gid %llu: gid is %s", user, gid,
			  gid < m.set->first_valid_gid ? "below first_valid_gid" :
			  "above last_valid_gid");
		return REASON_INTERNAL;
	}
	char jail[4096];
	const char *outer_home = home;
	const char *chroot_why = chroot_split(outer_home, uf, jail, sizeof(jail), &home);
	if (chroot_why != NULL) {
		log_error("user %s: login refused: %s (home %s)", user, chroot_why, outer_home);
		return REASON_INTERNAL;
	}
	char *mail_expanded = mail_expand(mail, user, home, ws->protocol, hf, uid);
	if (mail_expanded == NULL)
		return REASON_INTERNAL;
	struct ipc_msg *msg = rg_malloc(sizeof(*msg));
	ipc_msg_init(msg, IPC_WORKER_INIT, 0);
	ipc_msg_add_str(msg, IPC_F_SERVICE, ws->protocol);
	ipc_msg_add_str(msg, IPC_F_USER, user);
	ipc_msg_add_str(msg, IPC_F_HOME, home);
	ipc_msg_add_str(msg, IPC_F_MAIL, mail_expanded);
	rg_free(mail_expanded);
	if (jail[0] != '\0')
		ipc_msg_add_str(msg, IPC_F_CHROOT, jail);
	if (strcmp(ws->protocol, "imap") == 0) {
		char max_line[24];
		snprintf(max_line, sizeof(max_line), "%llu", (unsigned long long)m.set->imap_max_line_length);
		ipc_msg_add_str(msg, IPC_F_MAX_LINE, max_line);
	}
	static const enum ipc_field copied[] = {
		IPC_F_TAG, IPC_F_RIP, IPC_F_RPORT, IPC_F_LIP, IPC_F_LPORT,
		IPC_F_SECURED, IPC_F_TLS, IPC_F_SESSION, IPC_F_PREREAD,
	};
	for (unsigned i = 0; i < sizeof(copied) / sizeof(copied[0]); i++)
		worker_init_copy(msg, hf, copied[i]);
	/* the process's ids: a process of master's uid when master is not root */
	uid_t puid = m.uid == 0 ? (uid_t)uid : m.uid;
	gid_t pgid = m.uid == 0 ? (gid_t)gid : getegid();
	if (m.uid == 0) {
		/* a spare drops to them, a used worker checks them */
		ipc_msg_add_uint(msg, IPC_F_UID, uid);
		ipc_msg_add_uint(msg, IPC_F_GID, gid);
		add_extra_groups(msg);
	}

	/* an idle worker of this uid, gid and chroot, else a spare
	   (master-wpool.c) */
	struct child *c;
	while ((c = wpool_take(ws, puid, pgid, jail)) != NULL) {
		int ret = chan_send(c, msg, p->client_fd);
		if (ret == 0)
			break;
		log_error("service(%s): worker %ld: sending WORKER_INIT failed: %s", ws->protocol,
			  (long)child_pid(c), strerror(-ret));
		wpool_let_go(c);
	}
	if (c == NULL) {
		if (ws->count >= ws->set->process_limit)
			(void)wpool_evict(ws);
		if (ws->count >= ws->set->process_limit) {
			rg_free(msg);
			log_warning("service(%s): process_limit (%u) reached, client connections are "
				    "being dropped", ws->protocol, ws->set->process_limit);
			*temp_r = true;
			return "Maximum number of connections reached";
		}
		/* the worker chdirs again after its chroot */
		struct worker_exec e = {
			.client_fd = p->client_fd, .init = msg, .drop = m.uid == 0,
			.keep_chroot = jail[0] != '\0', .uid = (uid_t)uid, .gid = (gid_t)gid,
			.home = home, .dir = outer_home, .user = user, .jail = jail,
		};
		c = worker_exec(ws, &e);
		if (c == NULL) {
			rg_free(msg);
			*temp_r = true;
			return REASON_INTERNAL;
		}
		c->wuid = puid;
		c->wgid = pgid;
		c->wjail = rg_strdup(jail);
		if (c->tpl_pid != 0)
			log_debug("service(%s): user %s: worker %ld forked from template %ld",
				  ws->protocol, user, (long)child_pid(c), (long)c->tpl_pid);
		else
			log_debug("service(%s): user %s: started worker %ld", ws->protocol, user,
				  (long)child_pid(c));
	} else {
		/* a spare is the user's from now on */
		c->wuid = puid;
		c->wgid = pgid;
		if (c->wjail == NULL)
			c->wjail = rg_strdup(jail);
		log_debug("service(%s): user %s: worker %ld takes the session", ws->protocol, user,
			  (long)child_pid(c));
	}
	rg_free(msg);
	bool tls = ipc_has(hf, IPC_F_TLS);
	wpool_busy(ws, c, user, ipc_str(hf, IPC_F_RIP), tls, tls ? p->login_pid : 0);
	*pid_r = child_pid(c);
	return NULL;
}

int worker_spawn_spare(struct worker_service *ws)
{
	struct worker_exec e = { .client_fd = m.devnull, .home = "/", .dir = "/" };
	struct child *c = worker_exec(ws, &e);
	if (c == NULL)
		return -1;
	wpool_spare(c);
	log_debug("service(%s): started spare worker %ld", ws->protocol, (long)child_pid(c));
	return 0;
}
