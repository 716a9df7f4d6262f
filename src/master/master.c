/* master.c — master_run(): start-up (directories, pid file, running.conf,
 * listeners, the first children), the epoll loop every event of master goes
 * through, signals, and an orderly stop. The other master-*.c files hold
 * what the loop dispatches to (see master-private.h). */
#include "master/master.h"
#include "master/master-private.h"
#include "master/master-log.h"
#include "master/master-notify.h"
#include "master/master-pidfile.h"
#include "lib/alloc.h"
#include "lib/sanitizer.h"
#include "lib/iplimit.h"
#include "lib/log.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STOP_TIMEOUT_MSECS 10000
/* how often master re-connects the shared syslog socket */
#define SYSLOG_RECONNECT_SECS 10

struct master m;

/* Until master daemonizes, start-up failures also go to the terminal that
 * started it, even when stderr already points at log_path. */
static int startup_stderr = -1;

void startup_fatal(const char *fmt, ...)
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

static void stop_begin(const char *why)
{
	if (m.stopping)
		return;
	log_info("%s: shutting down", why);
	(void)master_notify("STOPPING=1");
	m.stopping = true;
	m.stop_deadline_ms = now_ms() + STOP_TIMEOUT_MSECS;
	services_close_listeners();
	pending_fail_all("Server shutting down.");
	children_signal(SIGTERM);
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

/* a sanitizer build: what its tests set for master reaches the workers too,
 * so that a worker's finding aborts it as it aborts master (a signal, seen) */
static void san_env_keep(void)
{
#ifdef RG_SANITIZER
	static const char *const names[] = { "ASAN_OPTIONS", "UBSAN_OPTIONS" };
	for (unsigned i = 0; i < 2; i++) {
		const char *v = getenv(names[i]);
		if (v != NULL)
			m.san_env[i] = rg_strdup_printf("%s=%s", names[i], v);
	}
#endif
}

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
	for (unsigned t = 0; t < PROC_TYPE_COUNT; t++) {
		if (proc_types[t].binary != NULL)
			m.paths[t] = rg_strdup_printf("%s/%s", m.exe_dir, proc_types[t].binary);
	}
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
	if (children_any()) {
		log_warning("children still running after %d secs: killing them",
			    STOP_TIMEOUT_MSECS / 1000);
		children_signal(SIGKILL);
		children_wait_all();
	}
}

int master_run(struct settings *set, bool foreground)
{
	memset(&m, 0, sizeof(m));
	m.set = set;
	m.orig_set = set;
	m.db_files_hash = master_db_files_hash(set);
	m.uid = geteuid();
	m.backlog = read_somaxconn();
	const char *dbg = getenv("RINGGATE_DEBUG");
	m.debug_env = dbg != NULL ? rg_strdup(dbg) : NULL;
	san_env_keep();
	m.devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	m.iplimit_fd = -1;
	m.sni_fd = -1;
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
	if (set->ssl != SSL_NO) {
		/* a certificate that does not load or match its key stops
		 * start-up here, not in every login process (which build a
		 * local_name's context only when a client names it, from the
		 * store made here) */
		char *error;
		if (tls_settings_check(set, &m.sni_fd, &error) < 0)
			startup_fatal("%s", error);
	}
	char *conf_error = NULL;
	if (running_conf_write(set, m.sni_fd < 0, &conf_error) < 0 ||
	    running_conf_commit(&conf_error) < 0)
		startup_fatal("%s", conf_error);

	if (set->login_max_preauth_ip_connections > 0) {
		m.iplimit_fd = iplimit_create(iplimit_epoch_secs(set->login_timeout));
		if (m.iplimit_fd < 0)
			startup_fatal("login_max_preauth_ip_connections: memfd: %s",
				      strerror(-m.iplimit_fd));
	}
	proc_singles_init();
	access_setup_socket();
	char *error = NULL;
	if (services_setup(NULL, 0, &error) < 0)
		startup_fatal("%s", error);
	ctl_setup();
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
	ret = master_pidfile_write(m.pid_path, getpid());
	if (ret < 0)
		log_fatal("writing %s failed: %s", m.pid_path, strerror(-ret));
	log_info("ringgate %s starting up (crypto: %s)", RINGGATE_VERSION, tls_crypto_info());
	/* what a Dovecot configuration says that ringgate does not use */
	settings_log_ignored(set);

	if (set->ssl != SSL_NO)
		ticket_keys_rotate();
	proc_singles_respawn(); /* auth, stats, and access if wanted */
	workers_tick();         /* process_min_avail spare workers */
	/* listeners are bound and the pid file written: systemd may go on */
	char ready[64];
	snprintf(ready, sizeof(ready), "READY=1\nMAINPID=%ld", (long)getpid());
	ret = master_notify(ready);
	if (ret < 0)
		log_warning("sd_notify(READY=1) failed: %s", strerror(-ret));
	for (;;) {
		struct epoll_event evs[64];
		int n = epoll_wait(m.epfd, evs, 64, m.stopping || ctl_busy() ? 100 : 1000);
		if (n < 0 && errno != EINTR)
			log_fatal("epoll_wait() failed: %m");
		for (int i = 0; i < n; i++) {
			struct ev_source *ev = evs[i].data.ptr;
			switch (ev->kind) {
			case EV_SIGNAL:
				signal_input();
				break;
			case EV_CHILD:
				/* the handlers may have closed channels other events of
				 * this batch point at: only signals are processed late */
				child_chan_event(ev->ptr, evs[i].events);
				break;
			case EV_LISTEN:
				listener_ready(ev->ptr);
				break;
			}
		}
		children_reap();
		if (m.reload_pending)
			reload_run();
		services_prune();
		ctl_tick();
		if (m.stopping) {
			if (!children_any() || now_ms() >= m.stop_deadline_ms)
				break;
			continue;
		}
		proc_singles_respawn();
		workers_tick();
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
	ctl_close();
	if (m.access_fd >= 0) {
		close(m.access_fd);
		unlink(m.access_sock_path);
	}
	rg_free(m.access_sock_path);
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
	pidhash_free(&m.pids);
	explicit_bzero(m.ticket_keys, sizeof(m.ticket_keys));
	log_info("ringgate stopped");
	return 0;
}
