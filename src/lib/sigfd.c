/* sigfd.c — see sigfd.h. */
#include "lib/sigfd.h"

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "lib/log.h"

int sigfd_open_stop(void)
{
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		log_fatal("sigprocmask: %m");
	int fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		log_fatal("signalfd: %m");
	return fd;
}

bool sigfd_drain(int fd)
{
	struct signalfd_siginfo si;
	bool any = false;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		any = true;
	return any;
}
