/* ringgate — the master process and its command line. */
#include "master/master.h"
#include "master/master-pidfile.h"
#include "lib/alloc.h"
#include "lib/log.h"
#include "tls/tls.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_CONFIG "/etc/ringgate/ringgate.conf"
#define STOP_WAIT_MSECS 15000

static void usage(void)
{
	fprintf(stderr, "usage: ringgate [-c FILE] [-F] [-V]\n"
		"       ringgate [-c FILE] -n|-a|config [-P]\n"
		"       ringgate [-c FILE] stop\n");
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

int main(int argc, char **argv)
{
	const char *config = DEFAULT_CONFIG;
	bool foreground = false, print = false, print_all = false, secrets = false;
	int c;

	while ((c = getopt(argc, argv, "c:FVnaP")) != -1) {
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
		case 'P':
			print = secrets = true;
			break;
		default:
			usage();
		}
	}
	const char *cmd = optind < argc ? argv[optind] : NULL;
	if (optind + 1 < argc)
		usage();
	if (cmd != NULL && strcmp(cmd, "config") == 0) {
		print = true;
		cmd = NULL;
	}

	log_init("ringgate");
	char *error = NULL;
	struct settings *set = settings_load(config, &error);
	if (set == NULL) {
		fprintf(stderr, "ringgate: Fatal: %s\n", error != NULL ? error : "invalid configuration");
		rg_free(error);
		return 89;
	}
	int ret;
	if (print) {
		settings_print_secrets(set, print_all, secrets, stdout);
		ret = fflush(stdout) == 0 ? 0 : 1;
	} else if (cmd == NULL) {
		ret = master_run(set, foreground);
	} else if (strcmp(cmd, "stop") == 0) {
		ret = cmd_stop(set);
	} else if (strcmp(cmd, "reload") == 0 || strcmp(cmd, "who") == 0 ||
		   strcmp(cmd, "stats") == 0) {
		fprintf(stderr, "ringgate: '%s' is not supported yet\n", cmd);
		ret = 1;
	} else {
		fprintf(stderr, "ringgate: unknown command '%s'\n", cmd);
		usage();
	}
	settings_free(set);
	return ret;
}
