/* master-reload.c — base_dir/running.conf (what children read) and
 * reload: a new configuration is checked whole, then new login services
 * take over the listeners and the old ones retire (docs/architecture.md,
 * "Reload"). */
#include "master/master-private.h"
#include "master/master-log.h"
#include "master/master-notify.h"
#include "lib/alloc.h"
#include "lib/log.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Write set as base_dir/running.conf.tmp (mode 0600: it may hold an inline
 * key), renamed into place by running_conf_commit(). */
int running_conf_write(const struct settings *set, bool local_names, char **error_r)
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
	settings_print_running(set, local_names, f);
	if (fflush(f) != 0 || fsync(fd) < 0 || fclose(f) != 0) {
		*error_r = rg_strdup_printf("write(%s) failed: %s", tmp, strerror(errno));
		unlink(tmp);
		rg_free(tmp);
		return -1;
	}
	rg_free(tmp);
	return 0;
}

int running_conf_commit(char **error_r)
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

static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t db_chain_files_hash(uint64_t h, const struct db_settings *db)
{
	for (; db != NULL; db = db->next) {
		if (strcmp(db->driver, "sql") != 0 && strcmp(db->driver, "ldap") != 0 &&
		    strcmp(db->driver, "oauth2") != 0)
			continue;
		const char *path = db->args + strspn(db->args, " \t");
		h = fnv1a(h, path, strlen(path) + 1);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue; /* auth reports it */
		char buf[4096];
		ssize_t n;
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			h = fnv1a(h, buf, (size_t)n);
		close(fd);
	}
	return h;
}

uint64_t master_db_files_hash(const struct settings *set)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	h = db_chain_files_hash(h, &set->passdb);
	return db_chain_files_hash(h, &set->userdb);
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
 * their connections end. auth keeps the settings it started with, unless
 * the passdb/userdb chain changed: then a fresh auth process replaces it. */
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
	/* the new login processes map the new local_name store */
	int sni_fd = -1;
	if (set->ssl != SSL_NO) {
		if (tls_settings_check(set, &sni_fd, &error) < 0) {
			*error_r = error;
			settings_free(set);
			return -1;
		}
	}
	if (running_conf_write(set, sni_fd < 0, error_r) < 0) {
		if (sni_fd >= 0)
			close(sni_fd);
		settings_free(set);
		return -1;
	}
	int old_sni_fd = m.sni_fd;
	m.sni_fd = sni_fd;

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
	if (services_setup(old, old_count, &error) < 0 || running_conf_commit(&error) < 0) {
		for (unsigned s = 0; s < m.service_count; s++)
			service_free(m.services[s]);
		rg_free(m.services);
		m.services = old;
		m.service_count = old_count;
		m.set = old_set;
		memcpy(m.workers, old_workers, sizeof(old_workers));
		if (m.sni_fd >= 0)
			close(m.sni_fd);
		m.sni_fd = old_sni_fd;
		settings_free(set);
		*error_r = error;
		return -1;
	}
	/* login processes started before have theirs mapped */
	if (old_sni_fd >= 0)
		close(old_sni_fd);
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
			template_retire(svc);
			for (struct child *c = svc->logins; c != NULL; c = c->next) {
				struct ipc_msg msg;
				ipc_msg_init(&msg, IPC_LOGIN_RETIRE, 0);
				if (c->chan >= 0 && chan_send(c, &msg, -1) < 0) {
					c->st.terminating = true;
					kill(child_pid(c), SIGTERM);
				}
			}
		}
		m.services = rg_realloc(m.services, (m.service_count + 1) * sizeof(*m.services));
		m.services[m.service_count++] = svc;
	}
	rg_free(old);
	/* new lists for the built-in checker: a fresh process reads them (the
	 * socket stays, so lookups meanwhile wait in its backlog) */
	struct child *access = m.access.child;
	if (access != NULL && (strcmp(old_set->login_access_allow, set->login_access_allow) != 0 ||
			       strcmp(old_set->login_access_deny, set->login_access_deny) != 0)) {
		access->st.terminating = true;
		kill(child_pid(access), SIGTERM);
	}
	/* a worker template holds the log sinks and environment of its start:
	 * a fresh one (exec'd workers meanwhile) */
	for (unsigned i = 0; i < 2; i++)
		wtemplate_retire(&m.workers[i]);
	/* the stats process reads its client_limit at start: a fresh one (its
	 * sockets stay, so requests meanwhile wait in their backlogs) */
	struct child *stats = m.stats.child;
	if (stats != NULL && settings_service(old_set, "stats")->client_limit !=
				     settings_service(set, "stats")->client_limit) {
		stats->st.terminating = true;
		kill(child_pid(stats), SIGTERM);
	}
	/* a changed passdb/userdb chain: a fresh auth process builds it (its
	 * drivers open their stores as root before auth drops privileges, so
	 * the running one cannot), with an empty cache; the login processes
	 * get channels to it as after any auth restart */
	struct child *auth = m.auth.child;
	uint64_t files_hash = master_db_files_hash(set);
	bool files_changed = files_hash != m.db_files_hash;
	m.db_files_hash = files_hash;
	if (auth != NULL && (!settings_db_equal(&old_set->passdb, &set->passdb) ||
			     !settings_db_equal(&old_set->userdb, &set->userdb) || files_changed)) {
		/* a changed dovecot-sql.conf.ext (its queries) too: Dovecot's
		 * reload restarts auth as well */
		log_info("reload: passdb/userdb %s: restarting auth process %ld with the new "
			 "chain (auth cache flushed)", files_changed ? "files changed" : "changed",
			 (long)child_pid(auth));
		auth->st.terminating = true;
		kill(child_pid(auth), SIGTERM);
	}
	m.old_sets = rg_realloc(m.old_sets, (m.old_set_count + 1) * sizeof(*m.old_sets));
	m.old_sets[m.old_set_count++] = old_set;
	return 0;
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

void reload_run(void)
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
	ctl_reload_done(ret, error);
	rg_free(error);
}
