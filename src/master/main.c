/* ringgate — the master process and its command line. */
#include "master/master.h"
#include "master/master-pidfile.h"
#include "master/master-pw.h"
#include "lib/alloc.h"
#include "lib/log.h"
#include "tls/tls.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_CONFIG "/etc/ringgate/ringgate.conf"
#define STOP_WAIT_MSECS 15000

static void usage(void) __attribute__((noreturn));
static void usage(void)
{
	fprintf(stderr, "usage: ringgate [-c FILE] [-F] [-V]\n"
		"       ringgate [-c FILE] -n|-a|config [-P]\n"
		"       ringgate [-c FILE] stop\n"
		"       ringgate [-c FILE] who [-1]\n"
		"       ringgate [-c FILE] stats\n"
		"       ringgate [-c FILE] reload\n"
		"       ringgate [-c FILE] auth flush [USER...]\n"
		"       ringgate [-c FILE] user [-u] [-f field] <user mask> [...]\n"
		"       ringgate pw [-l] [-p password] [-r rounds] [-s scheme] [-t hash]\n");
	exit(1);
}

static int cmd_stop(const struct settings *set)
{
	char *path = master_pidfile_path(set);
	pid_t pid;
	int ret = master_pidfile_check(path, MASTER_COMM, &pid);
	if (ret <= 0) {
		fprintf(stderr, "ringgate: not running (no live master in %s)\n", path);
		rg_free(path);
		return 1;
	}
	if (kill(pid, SIGTERM) < 0) {
		fprintf(stderr, "ringgate: kill(%ld) failed: %s\n", (long)pid, strerror(errno));
		rg_free(path);
		return 1;
	}
	for (int waited = 0; waited < STOP_WAIT_MSECS; waited += 50) {
		if (!master_pid_is(pid, MASTER_COMM)) {
			rg_free(path);
			return 0;
		}
		struct timespec ts = { 0, 50 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	fprintf(stderr, "ringgate: master %ld still running after %d secs\n", (long)pid,
		STOP_WAIT_MSECS / 1000);
	rg_free(path);
	return 1;
}

/* ask the running master on its control socket; its answer to stdout */
static int cmd_ctl(const struct settings *set, const char *request)
{
	char *path = master_ctl_path(set);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "ringgate: %s: cannot make a socket for it\n", path);
		rg_free(path);
		return 1;
	}
	strcpy(sa.sun_path, path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "ringgate: not running? connect(%s) failed: %s\n", path,
			strerror(errno));
		close(fd);
		rg_free(path);
		return 1;
	}
	rg_free(path);
	struct timeval tv = { 10, 0 };
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	char line[1024];
	int len = snprintf(line, sizeof(line), "%s\n", request);
	if (send(fd, line, (size_t)len, MSG_NOSIGNAL) != len) {
		fprintf(stderr, "ringgate: sending to master failed: %s\n", strerror(errno));
		close(fd);
		return 1;
	}
	char buf[8192];
	ssize_t n;
	bool any = false;
	char first[8] = "";
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		if (!any)
			memcpy(first, buf, (size_t)n < sizeof(first) - 1 ? (size_t)n : sizeof(first) - 1);
		/* an error goes to stderr and fails the command */
		fwrite(buf, 1, (size_t)n, strncmp(first, "error: ", 7) == 0 ? stderr : stdout);
		any = true;
	}
	int err = n < 0 ? errno : 0;
	close(fd);
	if (err != 0 || !any) {
		fprintf(stderr, "ringgate: no answer from master%s%s\n", err != 0 ? ": " : "",
			err != 0 ? strerror(err) : "");
		return 1;
	}
	if (strncmp(first, "error: ", 7) == 0)
		return 1;
	return fflush(stdout) == 0 ? 0 : 1;
}

/* master re-reads the file itself; its answer is "OK" or "error: file:line: reason" */
static int cmd_reload(const struct settings *set)
{
	return cmd_ctl(set, "reload");
}

/* `auth flush [USER...]`: auth drops its cached results (of these users) */
static int cmd_auth(const struct settings *set, int argc, char **argv)
{
	if (argc < 1 || strcmp(argv[0], "flush") != 0) {
		fprintf(stderr, "usage: ringgate [-c CONFIG] auth flush [USER...]\n");
		return 1;
	}
	char request[960] = "auth flush";
	size_t len = strlen(request);
	for (int i = 1; i < argc; i++) {
		size_t n = strlen(argv[i]);
		/* one line, space-separated: no blanks or controls in a name */
		for (size_t j = 0; j < n; j++) {
			if ((unsigned char)argv[i][j] <= ' ' || argv[i][j] == 0x7f) {
				fprintf(stderr, "ringgate: invalid user name\n");
				return 1;
			}
		}
		if (n == 0 || len + 1 + n >= sizeof(request)) {
			fprintf(stderr, "ringgate: too many or too long user names\n");
			return 1;
		}
		request[len++] = ' ';
		memcpy(request + len, argv[i], n + 1);
		len += n;
	}
	return cmd_ctl(set, request);
}

/* `user ...`: ringgate-auth, our sibling, runs the userdbs itself
 * (src/auth/auth-usercmd.h); this process only finds and execs it */
static int cmd_user(const char *config, int argc, char **argv)
{
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash = n > 0 ? memrchr(self, '/', (size_t)n) : NULL;
	if (slash == NULL || (size_t)(slash - self) + sizeof("/ringgate-auth") > sizeof(self)) {
		fprintf(stderr, "ringgate: cannot find ringgate-auth next to this binary\n");
		return 1;
	}
	strcpy(slash, "/ringgate-auth");
	char **av = rg_calloc((size_t)argc + 4, sizeof(*av));
	av[0] = (char *)"ringgate-auth";
	av[1] = (char *)"-U";
	av[2] = (char *)config;
	for (int i = 0; i < argc; i++)
		av[3 + i] = argv[i];
	execv(self, av);
	fprintf(stderr, "ringgate: exec %s failed: %s\n", self, strerror(errno));
	rg_free(av);
	return 1;
}

int main(int argc, char **argv)
{
	const char *config = DEFAULT_CONFIG;
	bool foreground = false, print = false, print_all = false, secrets = false;
	bool per_user = false;
	int c;

	/* `pw` takes its own options and needs no configuration; `user`
	   takes its own options too */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0) {
			if (i + 1 < argc)
				config = argv[i + 1];
			i++;
		} else if (strcmp(argv[i], "pw") == 0) {
			return master_pw_main(argc - i, argv + i);
		} else if (strcmp(argv[i], "user") == 0) {
			return cmd_user(config, argc - i - 1, argv + i + 1);
		} else if (argv[i][0] != '-') {
			break;
		}
	}

	while ((c = getopt(argc, argv, "c:FVnaP1")) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'F':
			foreground = true;
			break;
		case 'V':
			printf("ringgate %s\ncrypto: %s\n", RINGGATE_VERSION, tls_crypto_info());
			return 0;
		case 'n':
			print = true;
			break;
		case 'a':
			print = print_all = true;
			break;
		case '1':
			per_user = true;
			break;
		case 'P':
			print = secrets = true;
			break;
		default:
			usage();
		}
	}
	const char *cmd = optind < argc ? argv[optind] : NULL;
	/* `auth flush [USER...]` is the one command with arguments */
	bool auth_cmd = cmd != NULL && strcmp(cmd, "auth") == 0;
	if (optind + 1 < argc && !auth_cmd)
		usage();
	if (cmd != NULL && strcmp(cmd, "config") == 0) {
		print = true;
		cmd = NULL;
	}

	log_init("ringgate");
	char *error = NULL;
	struct settings *set = settings_load(config, &error);
	if (set == NULL) {
		/* reload: the running master keeps its configuration; the
		   file is wrong, not the command */
		bool reload = cmd != NULL && strcmp(cmd, "reload") == 0;
		fprintf(stderr, "ringgate: %s%s\n", reload ? "not reloading: " : "Fatal: ",
			error != NULL ? error : "invalid configuration");
		rg_free(error);
		return reload ? 1 : 89;
	}
	int ret;
	if (print) {
		settings_print_secrets(set, print_all, secrets, stdout);
		ret = fflush(stdout) == 0 ? 0 : 1;
	} else if (cmd == NULL) {
		ret = master_run(set, foreground);
	} else if (strcmp(cmd, "stop") == 0) {
		ret = cmd_stop(set);
	} else if (strcmp(cmd, "who") == 0) {
		ret = cmd_ctl(set, per_user ? "who -1" : "who");
	} else if (strcmp(cmd, "stats") == 0) {
		ret = cmd_ctl(set, "stats");
	} else if (strcmp(cmd, "reload") == 0) {
		ret = cmd_reload(set);
	} else if (auth_cmd) {
		ret = cmd_auth(set, argc - optind - 1, argv + optind + 1);
	} else {
		fprintf(stderr, "ringgate: unknown command '%s'\n", cmd);
		usage();
	}
	settings_free(set);
	return ret;
}
