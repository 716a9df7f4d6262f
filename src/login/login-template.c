/* login-template.c — the high-security template's loop: wait for master's
 * LOGIN_SPAWN_AUTH + LOGIN_SPAWN pairs, fork one child per pair with
 * CLONE_PARENT (master's child, not ours), answer LOGIN_SPAWNED with its
 * pid. See login-template.h for what the template holds and never does. */
#include "login/login-template.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/zygote.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

/* What the template writes between two forks: master's request and its
 * answer. In a mapping no child inherits (MADV_DONTFORK), so a fork
 * neither copies its page table entries nor makes its pages
 * copy-on-write in the template (which would fault on the next request;
 * the answer on the stack faulted its pages too). */
struct tpl_scratch {
	struct ipc_rx rx;
	struct ipc_msg reply;
};

static struct tpl_scratch *scratch_map(void)
{
	struct tpl_scratch *s = mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE,
				     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (s == MAP_FAILED)
		log_fatal("template: mmap: %m");
	/* only an optimisation: a kernel that refuses leaves it inherited */
	(void)madvise(s, sizeof(*s), MADV_DONTFORK);
	return s;
}

static void spawned_reply(int chan_fd, struct ipc_msg *msg, uint32_t id, pid_t pid,
			  const char *reason)
{
	ipc_msg_init(msg, IPC_LOGIN_SPAWNED, id);
	if (pid > 0)
		ipc_msg_add_uint(msg, IPC_F_LOGIN_PID, (unsigned long long)pid);
	else
		ipc_msg_add_str(msg, IPC_F_REASON, reason);
	int ret = ipc_send(chan_fd, msg, -1);
	if (ret < 0)
		log_fatal("template: answering master: %s", strerror(-ret));
}

/* In the new child (zygote_fork() reset its cached pids): its own
 * channels at chan_fd and chan_fd + 1. */
static void child_setup(int chan_fd, int chan, int auth)
{
	if (dup2(chan, chan_fd) < 0 || dup2(auth, chan_fd + 1) < 0)
		log_fatal("template child: dup2: %m");
	close(chan);
	close(auth);
	/* `ringgate-login` again (the template is `ringgate-ltmpl`) */
	(void)prctl(PR_SET_NAME, "ringgate-login", 0, 0, 0);
	/* the template's scratch (a LOGIN_SPAWN: no field, no secret) is
	 * not mapped here at all (MADV_DONTFORK) */
}

void login_template_serve(int chan_fd)
{
	(void)prctl(PR_SET_NAME, "ringgate-ltmpl", 0, 0, 0);
	zygote_prepare();
	struct tpl_scratch *scratch = scratch_map();
	struct ipc_rx *rx = &scratch->rx;
	int auth = -1;
	unsigned forks = 0;
	for (;;) {
		struct pollfd p = { .fd = chan_fd, .events = POLLIN };
		if (poll(&p, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_fatal("template: poll: %m");
		}
		const char *error = NULL;
		int ret = ipc_recv(chan_fd, rx, &error);
		if (ret == -EAGAIN)
			continue;
		if (ret == -EPROTO)
			log_fatal("template: malformed message from master: %s", error);
		if (ret <= 0) {
			/* master replaced us (or is gone): our children are its */
			log_debug("template: done after %u children", forks);
			exit(0);
		}
		switch (rx->hdr.type) {
		case IPC_LOGIN_SPAWN_AUTH:
			if (rx->fd < 0 || auth >= 0)
				log_fatal("template: master sent a bad LOGIN_SPAWN_AUTH");
			auth = rx->fd;
			break;
		case IPC_LOGIN_SPAWN: {
			if (rx->fd < 0 || auth < 0)
				log_fatal("template: master sent a bad LOGIN_SPAWN");
			int chan = rx->fd;
			pid_t pid = zygote_fork();
			if (pid == 0) {
				child_setup(chan_fd, chan, auth);
				return;
			}
			int err = -pid;
			close(chan);
			close(auth);
			auth = -1;
			if (pid < 0)
				log_error("template: clone: %s", strerror(err));
			else
				forks++;
			spawned_reply(chan_fd, &scratch->reply, rx->hdr.id, pid, "clone failed");
			break;
		}
		default:
			if (rx->fd >= 0)
				close(rx->fd);
			log_fatal("template: master sent unexpected %s", ipc_type_name(rx->hdr.type));
		}
	}
}
