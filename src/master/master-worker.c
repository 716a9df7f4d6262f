/* master-worker.c — a verified login becomes a worker: the uid checks,
 * WORKER_INIT, fork, the drop to the user, exec; and the worker's exit.
 * Everything that decides which user a worker runs as is here. */
#include "master/master-private.h"
#include "master/master-log.h"
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

/* a group list setting as gids (names through NSS: called in the forked
 * child, before the drop); unknown names are logged and left out */
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

/* Fork the worker for a verified login. Returns NULL on success, else the
 * reason to give the login process (details logged here). */
const char *worker_spawn(struct worker_service *ws, struct pending *p,
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
	if (ws->count >= ws->set->process_limit) {
		rg_free(mail_expanded);
		log_warning("service(%s): process_limit (%u) reached, client connections are "
			    "being dropped", ws->protocol, ws->set->process_limit);
		*temp_r = true;
		return "Maximum number of connections reached";
	}

	int pair[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) {
		log_error("socketpair() failed: %m");
		rg_free(mail_expanded);
		*temp_r = true;
		return REASON_INTERNAL;
	}
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
			gid_t extra[64];
			size_t nextra = mail_access_gids("mail_access_groups",
							 m.set->mail_access_groups, extra, 64);
			/* Dovecot keeps mail_privileged_group as the saved gid and
			   takes it for mbox dotlocks; a worker can regain a saved
			   gid as easily as use a supplementary one, so ringgate
			   gives it as one more supplementary group */
			nextra += mail_access_gids("mail_privileged_group",
						   m.set->mail_privileged_group, extra + nextra,
						   64 - nextra);
			int err = jail[0] != '\0' ? privs_chroot_keep(&error) : 0;
			if (err == 0)
				err = privs_drop_groups((uid_t)uid, (gid_t)gid, extra, nextra, &error);
			if (err == 0 && jail[0] != '\0')
				err = privs_chroot_pass(&error);
			if (err < 0) {
				log_error("user %s: dropping privileges to %llu/%llu failed: %s: %s",
					  user, uid, gid, error, strerror(-err));
				_exit(CHILD_FATAL_STATUS);
			}
		}
		/* the worker chdirs again after its chroot */
		if (*outer_home == '\0' || chdir(outer_home) < 0) {
			log_error("user %s: chdir(%s) failed: %m", user, outer_home);
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
	struct child *c = child_new(pid, &ws->grp, -1);
	c->wsvc = ws;
	c->user = rg_strdup(user);
	c->rip = rg_strdup(ipc_str(hf, IPC_F_RIP) != NULL ? ipc_str(hf, IPC_F_RIP) : "");
	c->tls = ipc_has(hf, IPC_F_TLS);
	c->proxy_pid = c->tls ? p->login_pid : 0;
	c->since = time(NULL);
	child_list_add(&m.worker_list, c);
	ws->count++;
	log_debug("service(%s): user %s: started worker %ld", ws->protocol, user, (long)pid);
	return NULL;
}

void worker_exited(struct child *c)
{
	child_list_del(&m.worker_list, c);
	c->wsvc->count--;
}
