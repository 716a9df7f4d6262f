/* auth-server-master.c — master's channel: new login channels, cookie
 * redemption (AUTH_REQUEST), cache flushes and stats. See
 * auth-server-private.h. */
#include "auth/auth-server-private.h"

static void master_send(struct auth_server *srv)
{
	int ret = ipc_send(srv->master_fd, &srv->msg, -1);
	if (ret < 0)
		log_fatal("sending to master failed: %s", strerror(-ret));
}

struct auth_client *auth_server_login_add(struct auth_server *srv, int fd, uint32_t pid,
					  const char *service)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		log_fatal("fcntl(O_NONBLOCK) on a login channel: %m");
	struct auth_client *c = rg_calloc(1, sizeof(*c));
	c->src.type = SRC_CLIENT;
	c->fd = fd;
	c->pid = pid;
	if (service != NULL)
		log_escape(service, strlen(service), 8, c->service, sizeof(c->service));
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &c->src };
	if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		log_fatal("epoll_ctl(ADD): %m");
	c->next = srv->clients;
	if (srv->clients != NULL)
		srv->clients->prev = c;
	srv->clients = c;
	log_debug("login %u (%s): channel added", c->pid, c->service);
	return c;
}

static void master_new_client(struct auth_server *srv, struct ipc_rx *rx)
{
	if (rx->fd < 0)
		log_fatal("master sent AUTH_NEW_CLIENT without an fd");
	int fd = rx->fd;
	rx->fd = -1;
	(void)auth_server_login_add(srv, fd, rx->hdr.id, ipc_str(&rx->fields, IPC_F_SERVICE));
}

static void master_request(struct auth_server *srv, const struct ipc_rx *rx)
{
	const char *cookie = ipc_str(&rx->fields, IPC_F_COOKIE);
	unsigned long long pid;
	if (rx->fd >= 0 || cookie == NULL || !ipc_uint(&rx->fields, IPC_F_LOGIN_PID, &pid) ||
	    pid > UINT32_MAX)
		log_fatal("master sent a malformed AUTH_REQUEST");
	struct auth_user *u;
	enum cookie_result res = cookie_take(srv->cookies, cookie, (uint32_t)pid, now_ms(), &u);
	if (res != COOKIE_OK) {
		log_error("AUTH_REQUEST from master for login %llu: %s", pid,
			  cookie_result_str(res));
		ipc_msg_init(&srv->msg, IPC_AUTH_FAIL, rx->hdr.id);
		ipc_msg_add_str(&srv->msg, IPC_F_REASON, cookie_result_str(res));
		master_send(srv);
		return;
	}
	ipc_msg_init(&srv->msg, IPC_AUTH_USER, rx->hdr.id);
	ipc_msg_add_str(&srv->msg, IPC_F_USER, u->user);
	ipc_msg_add_uint(&srv->msg, IPC_F_UID, u->uid);
	ipc_msg_add_uint(&srv->msg, IPC_F_GID, u->gid);
	ipc_msg_add_str(&srv->msg, IPC_F_HOME, u->home);
	ipc_msg_add_str(&srv->msg, IPC_F_MAIL, u->mail);
	if (u->extra[0] != '\0')
		ipc_msg_add_str(&srv->msg, IPC_F_EXTRA, u->extra);
	auth_user_free(u);
	master_send(srv);
}

/* false when master closed the channel */
bool asrv_master_input(struct auth_server *srv)
{
	struct ipc_rx *rx = srv->rx;
	for (unsigned i = 0; i < MAX_MSGS_PER_WAKEUP; i++) {
		const char *error = NULL;
		int ret = ipc_recv(srv->master_fd, rx, &error);
		if (ret == -EAGAIN)
			return true;
		if (ret == 0)
			return false;
		if (ret == -EPROTO)
			log_fatal("malformed message from master: %s", error);
		if (ret < 0)
			log_fatal("master channel: %s", strerror(-ret));
		auth_server_master_message(srv, rx);
	}
	return true;
}

void auth_server_master_message(struct auth_server *srv, struct ipc_rx *rx)
{
	switch (rx->hdr.type) {
	case IPC_AUTH_NEW_CLIENT:
		master_new_client(srv, rx);
		break;
	case IPC_AUTH_REQUEST:
		master_request(srv, rx);
		break;
	case IPC_AUTH_CACHE_FLUSH: {
		/* `ringgate auth flush [USER...]`, or a reload that changed a
		 * passdb/userdb: F_USER = space-separated names, none = all */
		const char *users = ipc_str(&rx->fields, IPC_F_USER);
		char *copy = rg_strdup(users != NULL ? users : "");
		const char *list[64];
		unsigned n = 0;
		for (char *save = NULL, *u = strtok_r(copy, " ", &save); u != NULL && n < 64;
		     u = strtok_r(NULL, " ", &save))
			list[n++] = u;
		unsigned dropped = auth_cache_flush(srv->cache, list, n);
		log_info("auth cache flushed%s: %u entries", n > 0 ? " for the named users" : "",
			 dropped);
		rg_free(copy);
		break;
	}
	case IPC_LOGIN_STATS_REQUEST: {
		char text[160];
		uint64_t hits, misses;
		auth_chain_cache_counts(srv->chain, &hits, &misses);
		srv->stats.v[AUTH_STAT_CACHE_HITS] = hits;
		srv->stats.v[AUTH_STAT_CACHE_MISSES] = misses;
		auth_stats_format(&srv->stats, text, sizeof(text));
		ipc_msg_init(&srv->msg, IPC_LOGIN_STATS, 0);
		ipc_msg_add_str(&srv->msg, IPC_F_STATS, text);
		master_send(srv);
		break;
	}
	default:
		log_fatal("unexpected message %s from master", ipc_type_name(rx->hdr.type));
	}
}
