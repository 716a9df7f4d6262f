/* login-main.c — ringgate-login: parse the configuration, drop privileges
 * (chroot to base_dir/login, setgroups/setresgid/setresuid to
 * default_login_user, no_new_privs), then serve on the ring (login-conn.c).
 * fd 3 = master, fd 4 = auth, fds 5.. = listeners named by RINGGATE_LISTENERS.
 * With -T (high-security template, login-template.h) the process prepares
 * up to the chroot and then forks children that go on from there; its fd 3
 * is its channel to master, fd 4 unused. */
#include "lib/alloc.h"
#include "lib/iplimit.h"
#include "lib/log.h"
#include "lib/privs.h"
#include "lib/settings.h"
#include "login/login-conn.h"
#include "lib/net.h"
#include "login/login-proto.h"
#include "login/login-sandbox.h"
#include "login/login-template.h"
#include "tls/tls.h"
#include "tls/tls-settings.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MASTER_FD 3
#define AUTH_FD 4
#define FIRST_LISTEN_FD 5

/* The configuration; read (with the certificate and key text, which only
 * root can read) before the privilege drop. */
static struct settings *login_set;

/* The TLS context, on the first TLS connection: wolfSSL's start-up (tens of
 * ms of ECC set-up in a fresh process) is paid only by processes that use
 * it. Then the key text is wiped and the parse garbage returned. master has
 * built the same context at start-up, so failing here is unexpected. */
/* High-security template: the context it built once (every local_name's
 * too), which each child takes, reseeded, instead of building its own. */
static struct tls_ctx *template_ctx;
/* master's store of the local_name certificates (mapped, shared by every
 * login process), until the context takes it */
static struct tls_sni_store *sni_store;

static struct tls_ctx *tls_build(void)
{
	if (template_ctx != NULL) {
		/* its DRBG was the template's: reseeded before it draws one
		 * byte here (each connection's own is made from getrandom()) */
		struct tls_ctx *own = template_ctx;
		template_ctx = NULL;
		tls_ctx_reseed(own);
		return own;
	}
	struct tls_ctx *ctx;
	char *error;
	struct tls_sni_store *store = sni_store;
	sni_store = NULL;
	if (tls_settings_ctx_create(login_set, store, &ctx, &error) < 0)
		log_fatal("%s", error);
	settings_forget_pem(login_set);
	rg_alloc_release();
	return ctx;
}

static void usage(void)
{
	fprintf(stderr, "usage: ringgate-login -c CONFIG -s imap|pop3 [-T]\n");
	exit(64);
}

/* default_login_user, looked up before the chroot hides /etc/passwd;
 * false when not root (nothing to drop) */
static bool login_user_lookup(const struct settings *set, uid_t *uid_r, gid_t *gid_r)
{
	if (geteuid() != 0) {
		log_debug("not root: keeping uid %ld, no chroot", (long)geteuid());
		return false;
	}
	struct passwd *pw = getpwnam(set->default_login_user);
	if (pw == NULL)
		log_fatal("default_login_user %s does not exist", set->default_login_user);
	if (pw->pw_uid == 0)
		log_fatal("default_login_user %s is root", set->default_login_user);
	*uid_r = pw->pw_uid;
	*gid_r = pw->pw_gid;
	return true;
}

static void login_chroot(const struct settings *set)
{
	char *dir = rg_strdup_printf("%s/login", set->base_dir);
	int cerr = privs_chroot(dir);
	if (cerr < 0)
		log_fatal("chroot(%s): %s", dir, strerror(-cerr));
	if (chdir("/") < 0)
		log_fatal("chdir(/) in chroot: %m");
	rg_free(dir);
}

static void login_drop(const struct settings *set, uid_t uid, gid_t gid)
{
	/* empty the capability bounding set while we may: nothing this
	 * process execs (it execs nothing) could regain a capability */
	for (int cap = 0; cap <= CAP_LAST_CAP; cap++)
		(void)prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
	const char *error;
	int ret = privs_drop(uid, gid, false, &error);
	if (ret < 0)
		log_fatal("dropping privileges to %s: %s: %s", set->default_login_user,
			  error, strerror(-ret));
}

/* fds 3 and 4, master's and auth's channels: close-on-exec, non-blocking */
static void channels_setup(void)
{
	for (int fd = MASTER_FD; fd <= AUTH_FD; fd++) {
		if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
			log_fatal("fd %d: %m (must be started by master)", fd);
		int fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
			log_fatal("fd %d: %m", fd);
	}
}

/* "plain login" -> "PLAIN LOGIN" */
static char *mechanisms_upper(const char *s)
{
	char *out = rg_strdup(s);
	size_t j = 0;
	bool space = true;
	for (size_t i = 0; out[i] != '\0'; i++) {
		char c = out[i];
		if (c == ' ' || c == '\t' || c == ',') {
			if (!space)
				out[j++] = ' ';
			space = true;
			continue;
		}
		out[j++] = (char)toupper((unsigned char)c);
		space = false;
	}
	while (j > 0 && out[j - 1] == ' ')
		j--;
	out[j] = '\0';
	return out;
}

/* login_access_sockets: the names, and each socket's path as this process
 * will see it (chrooted in base_dir/login: "/NAME") */
static unsigned access_sockets(const struct settings *set, char ***names_r, char ***paths_r)
{
	char *list = rg_strdup(set->login_access_sockets);
	char **names = NULL, **paths = NULL;
	unsigned n = 0;
	for (char *save = NULL, *w = strtok_r(list, " ", &save); w != NULL;
	     w = strtok_r(NULL, " ", &save)) {
		names = rg_realloc(names, (n + 1) * sizeof(*names));
		paths = rg_realloc(paths, (n + 1) * sizeof(*paths));
		names[n] = rg_strdup(w);
		paths[n] = geteuid() == 0 ? rg_strdup_printf("/%s", w)
					  : rg_strdup_printf("%s/login/%s", set->base_dir, w);
		if (strlen(paths[n]) >= sizeof(((struct sockaddr_un *)0)->sun_path))
			log_fatal("login_access_sockets: %s: path too long for a UNIX socket",
				  paths[n]);
		n++;
	}
	rg_free(list);
	if (n > 255)
		log_fatal("login_access_sockets: more than 255 sockets");
	*names_r = names;
	*paths_r = paths;
	return n;
}

/* The host name POP3's APOP timestamps carry (Dovecot's my_hostname):
 * read before the chroot and the seccomp filter; a name with characters a
 * timestamp cannot hold (RFC 1939's msg-id) becomes "localhost". */
static void hostname_read(char *buf, size_t size)
{
	if (gethostname(buf, size - 1) < 0)
		buf[0] = '\0';
	buf[size - 1] = '\0';
	bool ok = buf[0] != '\0';
	for (size_t i = 0; buf[i] != '\0' && ok; i++) {
		char c = buf[i];
		ok = isalnum((unsigned char)c) || c == '.' || c == '-' || c == '_';
	}
	if (!ok)
		snprintf(buf, size, "localhost");
}

static unsigned count_listeners(void)
{
	const char *env = getenv("RINGGATE_LISTENERS");
	if (env == NULL || *env == '\0')
		return 0;
	unsigned n = 1;
	for (const char *p = env; *p != '\0'; p++)
		n += *p == ',';
	return n;
}

int main(int argc, char **argv)
{
	const char *config = NULL, *proto_name = NULL;
	bool template = false;
	int opt;

	while ((opt = getopt(argc, argv, "c:s:T")) != -1) {
		switch (opt) {
		case 'T':
			template = true;
			break;
		case 'c':
			config = optarg;
			break;
		case 's':
			proto_name = optarg;
			break;
		default:
			usage();
		}
	}
	if (config == NULL || proto_name == NULL || optind != argc)
		usage();

	const struct login_proto *proto;
	if (strcmp(proto_name, "imap") == 0)
		proto = &imap_login_proto;
	else if (strcmp(proto_name, "pop3") == 0)
		proto = &pop3_login_proto;
	else
		usage();
	char *name = rg_strdup_printf("%s-login", proto_name);
	log_init(name);
	signal(SIGPIPE, SIG_IGN);

	char *error = NULL;
	struct settings *set = settings_load(config, &error);
	if (set == NULL)
		log_fatal("%s", error);
	login_set = set;
	const struct service_settings *svc = settings_service(set, name);
	if (svc == NULL)
		log_fatal("no service %s in the configuration", name);

	/* CAs for proxied users' backends (ssl=yes): read now, before the
	 * chroot */
	char *client_ca = NULL;
	if (set->ssl_client_ca_file[0] != '\0') {
		FILE *f = fopen(set->ssl_client_ca_file, "r");
		if (f == NULL)
			log_fatal("ssl_client_ca_file: %s: %m", set->ssl_client_ca_file);
		client_ca = rg_calloc(1, 1024 * 1024 + 1);
		size_t n = fread(client_ca, 1, 1024 * 1024, f);
		if (ferror(f) || !feof(f))
			log_fatal("ssl_client_ca_file: %s: unreadable or over 1 MB",
				  set->ssl_client_ca_file);
		client_ca[n] = '\0';
		fclose(f);
	}
	struct net_list trusted, haproxy_trusted;
	const char *nerr;
	if (!net_list_parse(set->login_trusted_networks, &trusted, &nerr))
		log_fatal("login_trusted_networks: %s", nerr);
	if (!net_list_parse(set->haproxy_trusted_networks, &haproxy_trusted, &nerr))
		log_fatal("haproxy_trusted_networks: %s", nerr);

	if (!template)
		channels_setup();
	unsigned nlisten = count_listeners();
	int *fds = rg_calloc(nlisten + 1, sizeof(int));
	bool *fd_ssl = rg_calloc(nlisten + 1, sizeof(bool));
	bool *fd_haproxy = rg_calloc(nlisten + 1, sizeof(bool));
	unsigned nfds = 0;
	bool tls = set->ssl != SSL_NO;
	const char *names = getenv("RINGGATE_LISTENERS");
	for (unsigned i = 0; i < nlisten; i++) {
		int fd = FIRST_LISTEN_FD + (int)i;
		struct stat st;
		if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
			log_fatal("listener fd %d is not a socket", fd);
		(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
		/* the listener's name: field i of RINGGATE_LISTENERS */
		const char *p = names;
		for (unsigned k = 0; k < i; k++)
			p = strchr(p, ',') + 1;
		size_t len = strcspn(p, ",");
		bool ssl = false, haproxy = false;
		for (unsigned k = 0; k < svc->listener_count; k++) {
			const struct listener_settings *l = &svc->listeners[k];
			if (strlen(l->name) == len && memcmp(l->name, p, len) == 0) {
				ssl = l->ssl;
				haproxy = l->haproxy;
			}
		}
		if (ssl && !tls) {
			/* speaking plaintext on 993/995 would be worse than
			 * not answering */
			log_warning("listener %.*s: ssl = yes but ssl = no: not accepting on it",
				    (int)len, p);
			continue;
		}
		fd_ssl[nfds] = ssl;
		fd_haproxy[nfds] = haproxy;
		fds[nfds++] = fd;
	}

	/* master's login_max_preauth_ip_connections table comes after the
	 * listeners: mapped here, its fd closed (the mapping stays) */
	struct iplimit *iplimit = NULL;
	if (getenv("RINGGATE_IPLIMIT") != NULL) {
		int fd = FIRST_LISTEN_FD + (int)nlisten;
		int iret = iplimit_map(fd, &iplimit);
		if (iret < 0)
			log_fatal("login_max_preauth_ip_connections table (fd %d): %s", fd,
				  strerror(-iret));
		close(fd);
	}
	/* then master's local_name store (running.conf leaves the sections
	 * out): mapped, its fd closed */
	if (getenv("RINGGATE_SNI_STORE") != NULL) {
		int fd = FIRST_LISTEN_FD + (int)nlisten + (iplimit != NULL ? 1 : 0);
		const char *serr;
		int sret = tls_sni_store_map(fd, &sni_store, &serr);
		if (sret < 0)
			log_fatal("local_name store (fd %d): %s", fd, serr);
		close(fd);
	}

	/* before the privilege drop: the paths depend on the chroot */
	char **access_names, **access_paths;
	unsigned access_count = access_sockets(set, &access_names, &access_paths);

	/* wolfSSL calls localtime() when a backend's certificate fails to
	 * verify: load the time zone now, before the chroot, or glibc opens
	 * /etc/localtime under the seccomp filter (SIGSYS) */
	tzset();
	char hostname[65];
	hostname_read(hostname, sizeof(hostname));
	uid_t uid = 0;
	gid_t gid = 0;
	bool drop = login_user_lookup(set, &uid, &gid);
	if (template) {
		/* everything above is done once per template; each child goes
		 * on from here exactly as an exec'd login process */
		if (drop)
			login_chroot(set);
		/* the TLS context (wolfSSL's start-up, the certificates, every
		 * local_name) once here, not at every child's first TLS byte;
		 * tls_build() wipes the key text */
		if (tls)
			template_ctx = tls_build();
		/* what parsing left behind is returned once here, not by every
		 * child (it would cost each one page faults and a purge) */
		rg_alloc_release();
		login_template_serve(MASTER_FD);
		channels_setup();
	}
	int rret = login_conn_prepare(svc->service_count);
	if (rret < 0)
		log_fatal("io_uring setup failed: %s", strerror(-rret));
	if (drop) {
		if (!template)
			login_chroot(set);
		login_drop(set, uid, gid);
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		log_fatal("PR_SET_NO_NEW_PRIVS: %m");

	char *mechs = mechanisms_upper(set->auth_mechanisms);
	struct login_conn_config cc = {
		.proto = proto,
		.service = proto_name,
		.greeting = set->login_greeting,
		.hostname = hostname,
		.mechanisms = mechs,
		.disable_plaintext_auth = set->disable_plaintext_auth,
		.ssl_required = set->ssl == SSL_REQUIRED,
		.tls_build = tls ? tls_build : NULL,
		.trusted = &trusted,
		.haproxy_trusted = &haproxy_trusted,
		.client_ca_pem = client_ca,
		.iplimit = iplimit,
		.max_preauth_per_ip = set->login_max_preauth_ip_connections,
		.login_timeout = set->login_timeout,
		.haproxy_timeout = set->haproxy_timeout,
		.access_names = (const char *const *)access_names,
		.access_paths = (const char *const *)access_paths,
		.access_count = access_count,
		.access_timeout = set->login_access_timeout,
		.client_limit = svc->client_limit != 0 ? svc->client_limit : 1,
		.service_count = svc->service_count,
		.exit_after = template,
		.master_fd = MASTER_FD,
		.auth_fd = AUTH_FD,
		.listen_fds = fds,
		.listen_ssl = fd_ssl,
		.listen_haproxy = fd_haproxy,
		.listen_count = nfds,
	};
	if (!tls)
		settings_forget_pem(set);
	/* what parsing the configuration (every <file, every local_name)
	 * allocated and freed is not this process's to keep */
	if (!template)
		rg_alloc_release();
	/* a client costs one fd, a TLS proxy one more; closes are asynchronous
	 * and eviction accepts before it closes, hence the margin */
	unsigned clients = svc->service_count == 1 ? 1 : cc.client_limit;
	rlim_t want = 2 * (rlim_t)clients + nfds + 64;
	/* The kernel refuses to pass an fd (ETOOMANYREFS: the hand-off to
	 * master) while the sending user has more fds in flight, summed over
	 * all its processes, than the sender's RLIMIT_NOFILE. Every login
	 * process of every login service runs as default_login_user and hands
	 * off a socket (and a TLS proxy's pair end) while master, forking
	 * workers, has not read the last ones yet: 68 was too few for a burst
	 * of high-security hand-offs. Room for two per login process that may
	 * exist keeps a hand-off from failing that way. */
	rlim_t inflight = 64;
	for (unsigned i = 0; i < set->service_count; i++) {
		const struct service_settings *s = &set->services[i];
		if (settings_is_login_service(s->name))
			inflight += 2 * (rlim_t)s->process_limit;
	}
	if (want < inflight)
		want = inflight;
	struct rlimit nofile = { .rlim_cur = want };
	nofile.rlim_max = nofile.rlim_cur;
	struct rlimit cur;
	/* above the inherited hard limit only with CAP_SYS_RESOURCE */
	if (setrlimit(RLIMIT_NOFILE, &nofile) < 0 && errno == EPERM &&
	    getrlimit(RLIMIT_NOFILE, &cur) == 0 && cur.rlim_max < want) {
		nofile.rlim_cur = nofile.rlim_max = cur.rlim_max;
		log_debug("RLIMIT_NOFILE: %llu wanted, %llu is the most allowed",
			  (unsigned long long)want, (unsigned long long)cur.rlim_max);
	}
	if (setrlimit(RLIMIT_NOFILE, &nofile) < 0)
		log_warning("setrlimit(RLIMIT_NOFILE, %llu): %m", (unsigned long long)nofile.rlim_cur);
	const char *serr;
	int sret = login_sandbox_enter(&serr);
	if (sret < 0)
		log_fatal("seccomp sandbox: %s: %s", serr, strerror(-sret));
	int ret = login_conn_run(&cc);
	if (template) {
		/* a template's child: its memory is a copy of the template's,
		 * freeing it piece by piece would only fault pages in */
		_exit(ret);
	}
	rg_free(mechs);
	for (unsigned i = 0; i < access_count; i++) {
		rg_free(access_names[i]);
		rg_free(access_paths[i]);
	}
	rg_free(access_names);
	rg_free(access_paths);
	rg_free(fds);
	rg_free(fd_ssl);
	rg_free(fd_haproxy);
	rg_free(client_ca);
	net_list_free(&trusted);
	net_list_free(&haproxy_trusted);
	iplimit_unmap(&iplimit);
	settings_free(set);
	rg_free(name);
	return ret;
}
