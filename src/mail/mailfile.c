#include "mail/mailfile.h"

#include "lib/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <unistd.h>

int mailfile_lock(const char *dir, const char *name, int *fd_r)
{
	char *file = rg_strdup_printf("%s/%s", dir, name);
	int fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	rg_free(file);
	if (fd < 0)
		return -errno;
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			int ret = -errno;
			close(fd);
			return ret;
		}
	}
	*fd_r = fd;
	return 0;
}

int mailfile_read_all(int fd, void *buf, size_t size, size_t *got_r)
{
	char *p = buf;
	size_t got = 0;
	int ret = 0;
	while (got < size) {
		ssize_t n = read(fd, p + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			ret = -errno;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	*got_r = got;
	return ret;
}

int mailfile_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int mailfile_replace(const char *dir, const char *name, const void *data, size_t len)
{
	char *tmp = rg_strdup_printf("%s/%s.tmp", dir, name);
	char *file = rg_strdup_printf("%s/%s", dir, name);
	int ret = 0;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
	} else {
		ret = mailfile_write_all(fd, data, len);
		if (close(fd) < 0 && ret == 0)
			ret = -errno;
		if (ret == 0 && rename(tmp, file) < 0)
			ret = -errno;
		if (ret < 0)
			unlink(tmp);
	}
	rg_free(tmp);
	rg_free(file);
	return ret;
}
