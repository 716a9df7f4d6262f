/* ringgate-auth — the auth process: `ringgate-auth -c CONFIG`, fd 3 is the
 * channel to master. Loads the passwd-file(s) as root, then drops to
 * default_internal_user (or nobody) before serving anything. */
#include "auth/auth-dns.h"
#include "auth/auth-server.h"
#include "auth/auth-usercmd.h"
#include "auth/auth-worker.h"
#include "auth/passdb.h"

#include "lib/alloc.h"
#include "lib/log.h"
#include "lib/privs.h"
#include "lib/sandbox.h"
#include "lib/settings.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MASTER_FD 3

static void usage(void)
{
	fprintf(stderr, "usage: ringgate-auth [-S|-W] -c CONFIG   (fd 3: channel to master)\n"
		"       ringgate-auth -U CONFIG [user args]  (ringgate user)\n");
	exit(1);
}

/* The passwd-file is already in memory. Reloads after this need it readable
 * by the internal user; when it is not, the old contents stay in use
 * (auth-passwd.c says so in the log). */
static void drop_privileges(const char *user)
{
	if (geteuid() != 0)
		return;
	const struct passwd *pw = getpwnam(user);
	if (pw == NULL) {
		log_warning("default_internal_user %s does not exist: running as nobody", user);
		pw = getpwnam("nobody");
		if (pw == NULL)
			log_fatal("neither %s nor nobody exists: refusing to run as root", user);
	}
	uid_t uid = pw->pw_uid;
	gid_t gid = pw->pw_gid;
	if (uid == 0)
		log_fatal("default_internal_user %s is root: refusing", user);
	const char *error;
	int ret = privs_drop(uid, gid, false, &error);
	if (ret < 0)
		log_fatal("dropping privileges to %s: %s: %s", user, error, strerror(-ret));
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); /* no core dumps of passwords */
	(void)prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}

/* What auth does once serving: its event loop, the channels, the passwd-file
 * (re-read when it changes), crypt and logging. No exec, no new socket, no
 * signal to another process. With an sql or ldap block, also what their
 * client libraries (libpq, libmariadb, libldap) do to reach their servers:
 * new sockets, connect, socket options, their own poll(), and the uid/uname
 * queries they make for defaults; with an oauth2 block the same for
 * libcurl, whose resolver runs in a thread. Still no exec and no signal. */
static void enter_sandbox(bool network_stores)
{
	static const int calls[] = {
		SYS_epoll_wait, SYS_epoll_pwait, SYS_epoll_ctl, SYS_timerfd_settime,
		SYS_timerfd_gettime, SYS_sendmsg, SYS_recvmsg, SYS_close, SYS_fcntl,
		SYS_openat, SYS_read, SYS_pread64, SYS_lseek, SYS_newfstatat, SYS_fstat, SYS_statx,
		SYS_write, SYS_writev, SYS_getpid, SYS_gettid, SYS_getrandom,
		SYS_mmap, SYS_munmap, SYS_mremap, SYS_madvise, SYS_brk, SYS_mprotect,
		SYS_futex, SYS_sched_yield, SYS_getcpu, SYS_clock_gettime, SYS_gettimeofday,
		SYS_rt_sigprocmask, SYS_rt_sigreturn, SYS_restart_syscall, SYS_exit, SYS_exit_group,
		/* network stores only: from here */
		SYS_socket, SYS_connect, SYS_setsockopt, SYS_getsockopt, SYS_getsockname,
		SYS_getpeername, SYS_sendto, SYS_recvfrom, SYS_shutdown, SYS_poll, SYS_ppoll,
		SYS_uname, SYS_getuid, SYS_geteuid, SYS_getgid, SYS_getegid, SYS_getdents64,
		SYS_sysinfo, SYS_access, SYS_rt_sigaction, SYS_readv,
		/* an oauth2 passdb asking its IdP: libcurl resolves host names
		   in a thread of its own (still no exec) */
		SYS_clone, SYS_clone3, SYS_set_robust_list, SYS_rseq, SYS_socketpair,
	};
	size_t n = sizeof(calls) / sizeof(calls[0]);
	if (!network_stores) {
		for (n = 0; calls[n] != SYS_socket; n++)
			;
	}
	const char *error;
	int ret = sandbox_seccomp(calls, n, &error);
	if (ret < 0)
		log_fatal("seccomp sandbox: %s: %s", error, strerror(-ret));
}

static bool uses_network_store(const struct settings *set)
{
	const struct db_settings *lists[] = { &set->passdb, &set->userdb };
	for (size_t i = 0; i < 2; i++) {
		for (const struct db_settings *db = lists[i]; db != NULL; db = db->next) {
			if (db->driver != NULL &&
			    (strcmp(db->driver, "sql") == 0 || strcmp(db->driver, "ldap") == 0 ||
			     strcmp(db->driver, "oauth2") == 0))
				return true;
		}
	}
	return false;
}

static void config_from_settings(const struct settings *set, struct auth_config *cfg)
{
	*cfg = (struct auth_config){
		.mechanisms = set->auth_mechanisms,
		.failure_delay_ms = set->auth_failure_delay * 1000u,
		.mail_location = set->mail_location,
		.passdbs = &set->passdb,
		.userdbs = &set->userdb,
		.disable_plaintext_auth = set->disable_plaintext_auth,
		.ssl_require_client_cert = set->auth_ssl_require_client_cert,
		.ssl_username_from_cert = set->auth_ssl_username_from_cert,
		.username_format = set->auth_username_format,
		.username_chars = set->auth_username_chars,
		.username_translation = set->auth_username_translation,
		.default_realm = set->auth_default_realm,
		.master_user_separator = set->auth_master_user_separator,
		.cache_size = set->auth_cache_size,
		.cache_ttl_secs = set->auth_cache_ttl,
		.cache_negative_ttl_secs = set->auth_cache_negative_ttl,
	};
}

static struct settings *load_settings(const char *config, struct auth_config *cfg)
{
	char *error = NULL;
	struct settings *set = settings_load(config, &error);
	if (set == NULL)
		log_fatal("%s", error);
	config_from_settings(set, cfg);
	return set;
}

/* `ringgate user ...` (auth-usercmd.h): as the invoking user, no sandbox */
static int user_command(const char *config, int argc, char **argv)
{
	log_init("ringgate");
	struct auth_config cfg;
	struct settings *set = load_settings(config, &cfg);
	int ret = auth_usercmd_run(&cfg, set, argc, argv);
	settings_free(set);
	return ret;
}

int main(int argc, char **argv)
{
	const char *config = NULL;
	bool spawner = false, worker = false;
	int c;

	log_init("auth");
	/* a checkpassword program runs its first argument (this binary) with
	 * no arguments, as Dovecot's checkpassword-reply: the environment the
	 * driver set says so (passdb-checkpassword.c) */
	if (argc == 1 && getenv(CHECKPASSWORD_REPLY_ENV) != NULL)
		auth_checkpassword_reply_main();
	if (argc >= 3 && strcmp(argv[1], "-U") == 0)
		return user_command(argv[2], argc - 3, argv + 3);
	while ((c = getopt(argc, argv, "c:D:SWR")) != -1) {
		if (c == 'c')
			config = optarg;
		else if (c == 'S')
			spawner = true;
		else if (c == 'W')
			worker = true;
		else if (c == 'R')
			auth_checkpassword_reply_main(); /* passdb-checkpassword.c */
		else if (c == 'D')
			auth_dns_main(optarg); /* the resolver child (auth-dns.h) */
		else
			usage();
	}
	if (config == NULL || optind != argc)
		usage();
	if (spawner)
		auth_worker_spawner_main(config); /* auth-worker.h */
	if (worker)
		auth_worker_main(config);

	struct stat st;
	if (fstat(MASTER_FD, &st) < 0 || !S_ISSOCK(st.st_mode))
		log_fatal("fd %d is not the channel to master (run by ringgate)", MASTER_FD);
	signal(SIGPIPE, SIG_IGN);

	struct auth_config cfg;
	struct settings *set = load_settings(config, &cfg);
	/* the resolver for passdb proxy host names: exec'ed before any
	 * password is loaded, so it holds none */
	int dns_fd = -1;
	pid_t dns_pid;
	int ret = auth_dns_spawn("/proc/self/exe", set->default_internal_user, &dns_fd, &dns_pid);
	if (ret < 0)
		log_error("starting the DNS resolver: %s (proxy hosts must be IP addresses)",
			  strerror(-ret));
	/* the auth-worker spawner: root (PAM, shadow), exec'ed before any
	 * password is loaded, so it holds none */
	int spawner_fd = -1;
	pid_t spawner_pid;
	ret = auth_worker_spawner_start("/proc/self/exe", config, &spawner_fd, &spawner_pid);
	if (ret < 0)
		log_error("starting the auth-worker spawner: %s (blocking passdbs/userdbs fail)",
			  strerror(-ret));
	char *error = NULL;
	struct auth_server *srv = auth_server_new(&cfg, MASTER_FD, &error);
	if (srv == NULL)
		log_fatal("%s", error);
	if (spawner_fd >= 0)
		auth_server_set_workers(srv, spawner_fd, set->auth_worker_max_count,
					set->auth_worker_request_timeout * 1000u);
	if (dns_fd >= 0)
		auth_server_set_dns(srv, dns_fd);
	drop_privileges(set->default_internal_user);
	bool network_stores = uses_network_store(set);
	settings_free(set);
	enter_sandbox(network_stores);

	ret = auth_server_run(srv);
	auth_server_free(srv);
	if (ret < 0)
		log_fatal("epoll_wait: %s", strerror(-ret));
	return 0;
}
