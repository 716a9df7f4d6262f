#include "master/master-pidfile.h"
#include "lib/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int master_pidfile_read(const char *path, pid_t *pid_r)
{
	char buf[32];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	int err = errno;
	close(fd);
	if (n < 0)
		return -err;
	buf[n] = '\0';
	char *end;
	errno = 0;
	long v = strtol(buf, &end, 10);
	if (errno != 0 || end == buf || v <= 0 || v > 0x3fffffff ||
	    (*end != '\0' && *end != '\n'))
		return -EINVAL;
	*pid_r = (pid_t)v;
	return 0;
}

bool master_pid_is(pid_t pid, const char *comm)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	/* "pid (comm) S ..." — comm may hold spaces or ')', so use the last ')' */
	char *open_paren = strchr(buf, '(');
	char *close_paren = strrchr(buf, ')');
	if (open_paren == NULL || close_paren == NULL || close_paren < open_paren ||
	    close_paren[1] != ' ')
		return false;
	char state = close_paren[2];
	if (state == 'Z' || state == 'X' || state == 'x')
		return false;
	*close_paren = '\0';
	/* the kernel cuts comm at 15 bytes */
	return strncmp(open_paren + 1, comm, 15) == 0 &&
	       strlen(open_paren + 1) == (strlen(comm) > 15 ? 15 : strlen(comm));
}

int master_pidfile_check(const char *path, const char *comm, pid_t *pid_r)
{
	pid_t pid;
	int ret = master_pidfile_read(path, &pid);
	if (ret == -ENOENT || ret == -EINVAL)
		return 0;
	if (ret < 0)
		return ret;
	if (pid == getpid() || !master_pid_is(pid, comm))
		return 0;
	*pid_r = pid;
	return 1;
}

int master_pidfile_write(const char *path, pid_t pid)
{
	char *tmp = rg_strdup_printf("%s.tmp", path);
	char buf[32];
	int len = snprintf(buf, sizeof(buf), "%ld\n", (long)pid);
	int ret = 0;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		ret = -errno;
	} else {
		if (write(fd, buf, (size_t)len) != len)
			ret = errno != 0 ? -errno : -EIO;
		if (close(fd) < 0 && ret == 0)
			ret = -errno;
		if (ret == 0 && rename(tmp, path) < 0)
			ret = -errno;
		if (ret != 0)
			unlink(tmp);
	}
	rg_free(tmp);
	return ret;
}
