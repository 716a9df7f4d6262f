#include "master/master-log.h"

#include "lib/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static struct log_sink sinks[LOG_SINK_COUNT] = {
	{ STDERR_FILENO, LOG_SINK_STDERR },
	{ STDERR_FILENO, LOG_SINK_STDERR },
	{ STDERR_FILENO, LOG_SINK_STDERR },
};
static int facility = 2;
/* master's own syslog socket, and the ones it shares with auth and with
 * the login processes: a process that can connect() its socket elsewhere
 * only moves its own lines or its peers' (see master-log.h) */
static int syslog_fd = -1;
static int syslog_peer_fds[MASTER_LOG_PEER_COUNT] = { -1, -1, -1 };
static struct sockaddr_un syslog_addr;
static bool syslog_down;

static bool is_stderr(const char *path)
{
	return *path == '\0' || strcmp(path, "/dev/stderr") == 0;
}

static int syslog_connect(int fd)
{
	if (connect(fd, (const struct sockaddr *)&syslog_addr, sizeof(syslog_addr)) < 0)
		return -errno;
	return 0;
}

/* a new datagram socket connected to syslog, or -errno */
static int syslog_socket(void)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int ret = syslog_connect(fd);
	if (ret < 0) {
		close(fd);
		return ret;
	}
	return fd;
}

int master_log_reconnect(void)
{
	if (syslog_fd < 0)
		return 0;
	int ret = syslog_connect(syslog_fd);
	for (unsigned i = 0; i < MASTER_LOG_PEER_COUNT && ret == 0; i++) {
		if (syslog_peer_fds[i] >= 0)
			ret = syslog_connect(syslog_peer_fds[i]);
	}
	/* said once per outage; while syslog is unreachable the lines that
	 * fail go to stderr, this one too */
	if (ret < 0 && !syslog_down)
		log_warning("syslog: connect(%s) failed: %s (lines that cannot reach syslog go "
			    "to stderr)", syslog_addr.sun_path, strerror(-ret));
	else if (ret == 0 && syslog_down)
		log_info("syslog: connected to %s again", syslog_addr.sun_path);
	syslog_down = ret < 0;
	return ret;
}

int master_log_syslog_fd(enum master_log_peer peer)
{
	if (syslog_fd < 0)
		return -1;
	if (peer == MASTER_LOG_WORKER) {
		/* its own: a user's worker has no seccomp filter */
		int fd = syslog_socket();
		if (fd < 0 && !syslog_down)
			log_warning("syslog: connect(%s) failed: %s (the worker logs to stderr)",
				    syslog_addr.sun_path, strerror(-fd));
		return fd < 0 ? -1 : fd;
	}
	return syslog_peer_fds[peer];
}

static int syslog_open(const char *setting, char **error_r)
{
	const char *path = getenv("RINGGATE_SYSLOG_SOCKET");
	if (path == NULL || *path == '\0')
		path = "/dev/log";
	memset(&syslog_addr, 0, sizeof(syslog_addr));
	syslog_addr.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(syslog_addr.sun_path)) {
		*error_r = rg_strdup_printf("%s = syslog: socket path %s is too long", setting, path);
		return -1;
	}
	strcpy(syslog_addr.sun_path, path);
	int fds[1 + MASTER_LOG_PEER_COUNT];
	for (unsigned i = 0; i < 1 + MASTER_LOG_PEER_COUNT; i++) {
		/* no socket for workers: each gets its own */
		fds[i] = i == 1 + MASTER_LOG_WORKER ? -1 : syslog_socket();
		if (fds[i] < -1 || (fds[i] == -1 && i != 1 + MASTER_LOG_WORKER)) {
			*error_r = rg_strdup_printf("%s = syslog: cannot connect to %s: %s (is a "
						    "syslog daemon or systemd-journald running?)",
						    setting, path, strerror(-fds[i]));
			while (i-- > 0) {
				if (fds[i] >= 0)
					close(fds[i]);
			}
			return -1;
		}
	}
	syslog_fd = fds[0];
	for (unsigned i = 0; i < MASTER_LOG_PEER_COUNT; i++)
		syslog_peer_fds[i] = fds[1 + i];
	return 0;
}

int master_log_open(const struct settings *set, char **error_r)
{
	const char *names[LOG_SINK_COUNT] = { "log_path", "info_log_path", "debug_log_path" };
	const char *paths[LOG_SINK_COUNT];
	paths[LOG_SINK_ERROR] = set->log_path;
	paths[LOG_SINK_INFO] = *set->info_log_path != '\0' ? set->info_log_path : paths[0];
	paths[LOG_SINK_DEBUG] = *set->debug_log_path != '\0' ? set->debug_log_path : paths[1];
	/* the setting a path came from, for errors */
	if (*set->info_log_path == '\0')
		names[LOG_SINK_INFO] = names[LOG_SINK_ERROR];
	if (*set->debug_log_path == '\0')
		names[LOG_SINK_DEBUG] = names[LOG_SINK_INFO];
	int fac = log_facility_parse(set->syslog_facility);
	if (fac < 0) {
		*error_r = rg_strdup_printf("syslog_facility: unknown facility '%s'",
					    set->syslog_facility);
		return -1;
	}

	struct log_sink new_sinks[LOG_SINK_COUNT];
	for (unsigned i = 0; i < LOG_SINK_COUNT; i++)
		new_sinks[i] = (struct log_sink){ -1, LOG_SINK_STDERR };
	for (unsigned i = 0; i < LOG_SINK_COUNT; i++) {
		const char *path = paths[i];
		if (is_stderr(path)) {
			/* stderr is the log_path file once log_path is one */
			if (i > 0 && new_sinks[LOG_SINK_ERROR].kind == LOG_SINK_FILE)
				new_sinks[i] = new_sinks[LOG_SINK_ERROR];
			else
				new_sinks[i] = (struct log_sink){ STDERR_FILENO, LOG_SINK_STDERR };
			continue;
		}
		if (strcmp(path, "syslog") == 0) {
			if (syslog_fd < 0 && syslog_open(names[i], error_r) < 0)
				goto fail;
			new_sinks[i] = (struct log_sink){ syslog_fd, LOG_SINK_SYSLOG };
			continue;
		}
		/* one open file per path */
		bool shared = false;
		for (unsigned k = 0; k < i; k++) {
			if (strcmp(paths[k], path) == 0) {
				new_sinks[i] = new_sinks[k];
				shared = true;
			}
		}
		if (shared)
			continue;
		int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (fd < 0) {
			*error_r = rg_strdup_printf("%s: open(%s) failed: %s", names[i], path,
						    strerror(errno));
			goto fail;
		}
		new_sinks[i] = (struct log_sink){ fd, LOG_SINK_FILE };
	}
	/* a log_path file becomes fd 2 too, only now: until here a failure
	 * leaves stderr as it was, for the message to reach the terminal */
	if (new_sinks[LOG_SINK_ERROR].kind == LOG_SINK_FILE) {
		int fd = new_sinks[LOG_SINK_ERROR].fd;
		if (dup2(fd, STDERR_FILENO) < 0) {
			*error_r = rg_strdup_printf("log_path: dup2(%s) failed: %s", paths[0],
						    strerror(errno));
			goto fail;
		}
		close(fd);
		for (unsigned i = 0; i < LOG_SINK_COUNT; i++) {
			if (new_sinks[i].fd == fd)
				new_sinks[i].fd = STDERR_FILENO;
		}
	}
	memcpy(sinks, new_sinks, sizeof(sinks));
	facility = fac;
	log_set_sinks(sinks, facility);
	return 0;
fail:
	for (unsigned i = 0; i < LOG_SINK_COUNT; i++) {
		if (new_sinks[i].kind != LOG_SINK_FILE || new_sinks[i].fd < 0)
			continue;
		int fd = new_sinks[i].fd;
		close(fd);
		for (unsigned k = i; k < LOG_SINK_COUNT; k++) {
			if (new_sinks[k].fd == fd)
				new_sinks[k].fd = -1;
		}
	}
	if (syslog_fd >= 0) {
		close(syslog_fd);
		syslog_fd = -1;
		for (unsigned i = 0; i < MASTER_LOG_PEER_COUNT; i++) {
			if (syslog_peer_fds[i] >= 0)
				close(syslog_peer_fds[i]);
			syslog_peer_fds[i] = -1;
		}
	}
	return -1;
}

bool master_log_has_file(void)
{
	for (unsigned i = 0; i < LOG_SINK_COUNT; i++) {
		if (sinks[i].kind == LOG_SINK_FILE)
			return true;
	}
	return false;
}

bool master_log_error_elsewhere(void)
{
	return sinks[LOG_SINK_ERROR].kind != LOG_SINK_STDERR;
}

/* a child's sinks: the syslog socket is the peer's, or stderr without one */
static void child_sinks(int syslog_child_fd, struct log_sink child[LOG_SINK_COUNT])
{
	for (unsigned i = 0; i < LOG_SINK_COUNT; i++) {
		child[i] = sinks[i];
		if (child[i].kind != LOG_SINK_SYSLOG)
			continue;
		if (syslog_child_fd >= 0)
			child[i].fd = syslog_child_fd;
		else
			child[i] = (struct log_sink){ STDERR_FILENO, LOG_SINK_STDERR };
	}
}

/* the distinct fds other than 2, in first-use order */
static unsigned distinct_fds(const struct log_sink child[LOG_SINK_COUNT], int fds_r[LOG_SINK_COUNT])
{
	unsigned n = 0;
	for (unsigned i = 0; i < LOG_SINK_COUNT; i++) {
		if (child[i].fd == STDERR_FILENO)
			continue;
		bool seen = false;
		for (unsigned k = 0; k < n; k++)
			seen = seen || fds_r[k] == child[i].fd;
		if (!seen)
			fds_r[n++] = child[i].fd;
	}
	return n;
}

unsigned master_log_child_fds(int syslog_child_fd, int fds_r[LOG_SINK_COUNT])
{
	struct log_sink child[LOG_SINK_COUNT];
	child_sinks(syslog_child_fd, child);
	return distinct_fds(child, fds_r);
}

bool master_log_child_env(int syslog_child_fd, int first_fd, char *out, size_t outsize)
{
	struct log_sink child[LOG_SINK_COUNT];
	int fds[LOG_SINK_COUNT];
	child_sinks(syslog_child_fd, child);
	unsigned n = distinct_fds(child, fds);
	struct log_sink placed[LOG_SINK_COUNT];
	for (unsigned i = 0; i < LOG_SINK_COUNT; i++) {
		placed[i] = child[i];
		for (unsigned k = 0; k < n; k++) {
			if (fds[k] == child[i].fd)
				placed[i].fd = first_fd + (int)k;
		}
	}
	return log_sinks_format(placed, facility, out, outsize);
}
