#include "auth/auth-dns.h"

#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/privs.h"
#include "lib/sandbox.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define DNS_FD 3

int auth_dns_spawn(const char *exe, const char *user, int *fd_r, pid_t *pid_r)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int err = errno;
		close(sv[0]);
		close(sv[1]);
		return -err;
	}
	if (pid == 0) {
		/* only the channel crosses the exec, as fd 3 */
		if (dup2(sv[1], DNS_FD) < 0)
			_exit(127);
		char *const argv[] = { (char *)"ringgate-auth", (char *)"-D", (char *)user, NULL };
		execv(exe, argv);
		_exit(127);
	}
	close(sv[1]);
	int fl = fcntl(sv[0], F_GETFL);
	if (fl < 0 || fcntl(sv[0], F_SETFL, fl | O_NONBLOCK) < 0) {
		int err = errno;
		close(sv[0]);
		return -err;
	}
	*fd_r = sv[0];
	*pid_r = pid;
	return 0;
}

static void dns_drop_privileges(const char *user)
{
	if (geteuid() != 0)
		return;
	const struct passwd *pw = getpwnam(user);
	if (pw == NULL)
		pw = getpwnam("nobody");
	if (pw == NULL || pw->pw_uid == 0)
		log_fatal("no unprivileged user to run the resolver as (%s)", user);
	const char *error;
	int ret = privs_drop(pw->pw_uid, pw->pw_gid, false, &error);
	if (ret < 0)
		log_fatal("dropping privileges to %s: %s: %s", user, error, strerror(-ret));
}

/* getaddrinfo's needs: /etc/hosts, resolv.conf, nsswitch (its modules are
 * loaded by the warm-up lookup before the filter), UDP/TCP to the name
 * servers. No exec, no files written, no signals to others. */
static void dns_sandbox(void)
{
	static const int calls[] = {
		SYS_socket, SYS_connect, SYS_bind, SYS_getsockname, SYS_getsockopt,
		SYS_setsockopt, SYS_sendto, SYS_sendmsg, SYS_sendmmsg, SYS_recvfrom, SYS_recvmsg,
		SYS_poll, SYS_ppoll, SYS_ioctl, SYS_close, SYS_fcntl, SYS_openat, SYS_read,
		SYS_pread64, SYS_lseek, SYS_newfstatat, SYS_fstat, SYS_statx, SYS_write, SYS_writev,
		SYS_getpid, SYS_gettid, SYS_getrandom, SYS_uname, SYS_mmap, SYS_munmap, SYS_mremap,
		SYS_madvise, SYS_brk, SYS_mprotect, SYS_futex, SYS_clock_gettime, SYS_gettimeofday,
		SYS_rt_sigprocmask, SYS_rt_sigreturn, SYS_restart_syscall, SYS_exit, SYS_exit_group,
	};
	const char *error;
	int ret = sandbox_seccomp(calls, sizeof(calls) / sizeof(calls[0]), &error);
	if (ret < 0)
		log_fatal("seccomp sandbox: %s: %s", error, strerror(-ret));
}

/* the first address of name, as text, into out */
static const char *dns_resolve(const char *name, char *out, size_t size)
{
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_ADDRCONFIG;
	int ret = getaddrinfo(name, NULL, &hints, &res);
	if (ret != 0)
		return ret == EAI_SYSTEM ? strerror(errno) : gai_strerror(ret);
	const char *error = "no address";
	for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		const void *a = NULL;
		if (ai->ai_family == AF_INET)
			a = &((const struct sockaddr_in *)ai->ai_addr)->sin_addr;
		else if (ai->ai_family == AF_INET6)
			a = &((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
		if (a != NULL && inet_ntop(ai->ai_family, a, out, (socklen_t)size) != NULL) {
			error = NULL;
			break;
		}
	}
	freeaddrinfo(res);
	return error;
}

void auth_dns_main(const char *user)
{
	log_init("auth-dns");
	dns_drop_privileges(user);
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	char ip[INET6_ADDRSTRLEN];
	(void)dns_resolve("localhost", ip, sizeof(ip)); /* loads the NSS modules */
	dns_sandbox();
	static struct ipc_rx rx;
	static struct ipc_msg msg;
	for (;;) {
		const char *error = NULL;
		int ret = ipc_recv(DNS_FD, &rx, &error);
		if (ret == 0)
			exit(0);
		if (ret == -EINTR)
			continue;
		if (ret == -EAGAIN) {
			/* ipc_recv never blocks: wait here */
			struct pollfd pfd = { .fd = DNS_FD, .events = POLLIN };
			(void)poll(&pfd, 1, -1);
			continue;
		}
		if (ret < 0)
			log_fatal("channel to auth: %s", error != NULL ? error : strerror(-ret));
		const char *name = ipc_str(&rx.fields, IPC_F_HOST);
		if (rx.hdr.type != IPC_DNS_LOOKUP || name == NULL || rx.fd >= 0)
			log_fatal("channel to auth: unexpected message %s", ipc_type_name(rx.hdr.type));
		ipc_msg_init(&msg, IPC_DNS_RESULT, rx.hdr.id);
		const char *why = dns_resolve(name, ip, sizeof(ip));
		if (why == NULL)
			ipc_msg_add_str(&msg, IPC_F_HOST, ip);
		else
			ipc_msg_add_str(&msg, IPC_F_REASON, why);
		ret = ipc_send(DNS_FD, &msg, -1);
		if (ret < 0)
			log_fatal("channel to auth: %s", strerror(-ret));
	}
}
