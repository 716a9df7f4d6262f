#include "master/master-notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static struct sockaddr_un notify_addr;
static socklen_t notify_addr_len;

int master_notify_init(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	size_t len;

	notify_addr_len = 0;
	if (path == NULL || path[0] == '\0')
		return 0;
	len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof(notify_addr.sun_path)) {
		unsetenv("NOTIFY_SOCKET");
		return -1;
	}
	memset(&notify_addr, 0, sizeof(notify_addr));
	notify_addr.sun_family = AF_UNIX;
	memcpy(notify_addr.sun_path, path, len);
	if (path[0] == '@')
		notify_addr.sun_path[0] = '\0'; /* abstract: length says where it ends */
	notify_addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
				      (path[0] == '/' ? 1 : 0));
	unsetenv("NOTIFY_SOCKET");
	return 1;
}

int master_notify(const char *state)
{
	if (notify_addr_len == 0)
		return 0;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	ssize_t n = sendto(fd, state, strlen(state), MSG_NOSIGNAL,
			   (const struct sockaddr *)&notify_addr, notify_addr_len);
	int err = n < 0 ? errno : 0;
	close(fd);
	return -err;
}
