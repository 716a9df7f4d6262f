/* master-auth.c — the two singleton helpers master keeps running: auth
 * (its channel, the channels it gets for every login process, its
 * messages to master) and the built-in login access checker. */
#include "master/master-private.h"
#include "master/master-log.h"
#include "lib/alloc.h"
#include "lib/log.h"

#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- auth --------------------------------------------------------------- */

bool auth_wanted(void)
{
	return true;
}

int auth_cache_flush_request(const char *users)
{
	if (m.auth.child == NULL)
		return -1;
	struct ipc_msg msg;
	ipc_msg_init(&msg, IPC_AUTH_CACHE_FLUSH, 0);
	if (users[0] != '\0')
		ipc_msg_add_str(&msg, IPC_F_USER, users);
	return chan_send(m.auth.child, &msg, -1) < 0 ? -1 : 0;
}

/* Give auth its end of a login process's channel. Consumes auth_fd. */
int auth_send_client(struct child *login, int auth_fd)
{
	struct ipc_msg msg;
	ipc_msg_init(&msg, IPC_AUTH_NEW_CLIENT, (uint32_t)child_pid(login));
	ipc_msg_add_str(&msg, IPC_F_SERVICE, login->svc->protocol);
	int ret = chan_send(m.auth.child, &msg, auth_fd);
	close(auth_fd);
	if (ret < 0)
		log_error("auth: sending channel of login %ld failed: %s", (long)child_pid(login),
			  strerror(-ret));
	return ret;
}

static void auth_give_channels(void)
{
	for (unsigned s = 0; s < m.service_count; s++) {
		for (struct child *c = m.services[s]->logins; c != NULL; c = c->next) {
			if (c->auth_pending_fd >= 0) {
				int fd = c->auth_pending_fd;
				c->auth_pending_fd = -1;
				(void)auth_send_client(c, fd);
				continue;
			}
			if (c->chan < 0)
				continue;
			int pair[2];
			if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) {
				log_error("socketpair() failed: %m");
				continue;
			}
			struct ipc_msg msg;
			ipc_msg_init(&msg, IPC_AUTH_NEW_CLIENT, (uint32_t)child_pid(c));
			int ret = chan_send(c, &msg, pair[1]);
			close(pair[1]);
			if (ret < 0) {
				log_error("service(%s): sending new auth channel to %ld failed: %s",
					  c->svc->set->name, (long)child_pid(c), strerror(-ret));
				close(pair[0]);
				continue;
			}
			(void)auth_send_client(c, pair[0]);
		}
	}
}

int auth_spawn(struct proc_group *g)
{
	if (proc_single_start(g, true, NULL, 0, NULL) < 0)
		return -1;
	auth_give_channels();
	return 0;
}

void auth_kill(struct child *c, const char *why)
{
	log_error("service(auth): %s: restarting auth process %ld", why, (long)child_pid(c));
	chan_close(c);
	c->st.terminating = true;
	kill(child_pid(c), SIGKILL);
	pending_fail_all("Authentication service unavailable.");
}

void auth_eof(struct child *c)
{
	(void)c;
	pending_fail_all("Authentication service unavailable.");
}

void auth_message(struct child *c, struct ipc_rx *rx)
{
	if (rx->fd >= 0) {
		close(rx->fd);
		auth_kill(c, "message with an unexpected fd");
		return;
	}
	unsigned long long v;
	if (rx->hdr.type == IPC_LOGIN_STATS) {
		const char *text = ipc_str(&rx->fields, IPC_F_STATS);
		const char *why = "no STATS field";
		if (text == NULL || auth_stats_parse(text, rx->fields.len[IPC_F_STATS],
						     &m.auth_stats, &why) < 0) {
			auth_kill(c, "malformed LOGIN_STATS");
			return;
		}
		stats_reply_noted(c);
	} else if (rx->hdr.type == IPC_AUTH_USER) {
		if (ipc_str(&rx->fields, IPC_F_USER) == NULL ||
		    !ipc_uint(&rx->fields, IPC_F_UID, &v) ||
		    !ipc_uint(&rx->fields, IPC_F_GID, &v)) {
			auth_kill(c, "AUTH_USER without USER, UID or GID");
			return;
		}
		handoff_auth_reply(rx);
	} else if (rx->hdr.type == IPC_AUTH_FAIL) {
		handoff_auth_reply(rx);
	} else {
		char why[80];
		snprintf(why, sizeof(why), "unexpected message %s", ipc_type_name(rx->hdr.type));
		auth_kill(c, why);
	}
}

void auth_exited(struct child *c)
{
	for (unsigned i = 0; i < AUTH_STAT_COUNT; i++)
		m.auth_gone.v[i] += m.auth_stats.v[i];
	memset(&m.auth_stats, 0, sizeof(m.auth_stats));
	stats_reply_noted(c);
	pending_fail_all("Authentication service unavailable.");
}

/* ---- the built-in access checker ------------------------------------------ */

bool access_wanted(void)
{
	return m.access_fd >= 0;
}

/* base_dir/login/access, connectable by the login processes' user only (as
 * Dovecot's tcpwrap listener: mode 0600, user $default_login_user) */
void access_setup_socket(void)
{
	if (!settings_access_builtin(m.set))
		return;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	m.access_sock_path = rg_strdup_printf("%s/login/%s", m.set->base_dir,
					      SETTINGS_ACCESS_BUILTIN);
	if (strlen(m.access_sock_path) >= sizeof(sun.sun_path))
		startup_fatal("%s: path too long for a UNIX socket", m.access_sock_path);
	strcpy(sun.sun_path, m.access_sock_path);
	(void)unlink(m.access_sock_path);
	m.access_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (m.access_fd < 0 || bind(m.access_fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		startup_fatal("bind(%s) failed: %m", m.access_sock_path);
	if (m.uid == 0) {
		const struct passwd *pw = getpwnam(m.set->default_login_user);
		if (pw == NULL || chown(m.access_sock_path, pw->pw_uid, pw->pw_gid) < 0)
			startup_fatal("chown(%s) failed: %m", m.access_sock_path);
	}
	if (chmod(m.access_sock_path, 0600) < 0 || listen(m.access_fd, m.backlog) < 0)
		startup_fatal("listen(%s) failed: %m", m.access_sock_path);
}

int access_spawn(struct proc_group *g)
{
	return proc_single_start(g, false, &m.access_fd, 1, NULL);
}
