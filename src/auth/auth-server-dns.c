/* auth-server-dns.c — the resolver child's channel (auth-dns.h): passdb
 * proxy host names to addresses, one lookup id per waiting request. See
 * auth-server-private.h. */
#include "auth/auth-server-private.h"

static struct auth_request *dns_request_find(struct auth_server *srv, uint32_t id)
{
	for (struct auth_client *c = srv->clients; c != NULL; c = c->next) {
		for (struct auth_request *r = c->requests; r != NULL; r = r->cnext) {
			if (r->state == REQ_DNS && r->dns_id == id)
				return r;
		}
	}
	return NULL;
}

/* The answer for a waiting request: on with the (re-read) passdb entry,
 * now with hostip, or a temporary failure. */
static void dns_result(struct auth_server *srv, const struct ipc_rx *rx)
{
	struct auth_request *req = dns_request_find(srv, rx->hdr.id);
	if (req == NULL)
		return; /* its client went away meanwhile */
	char logname[300];
	esc_user(req->db.user, logname, sizeof(logname));
	req->state = REQ_SASL;
	srv->dns_pending--;
	const char *ip = ipc_str(&rx->fields, IPC_F_HOST);
	if (ip == NULL || !asrv_is_ip(ip) || strlen(ip) >= sizeof(req->hostip)) {
		const char *why = ipc_str(&rx->fields, IPC_F_REASON);
		char esc[128];
		log_error("%s(%s,%s): proxy host lookup failed: %s", req->db.db_name, logname,
			  req->rip,
			  why != NULL ? log_escape(why, strlen(why), 100, esc,
						   sizeof(esc)) : "no address");
		asrv_request_fail_now(srv, req, REASON_TEMP, true, req->db.user);
		return;
	}
	memcpy(req->hostip, ip, strlen(ip) + 1);
	asrv_request_success(srv, req);
}

/* the resolver died: nothing waiting will be answered */
static void dns_lost(struct auth_server *srv, const char *why)
{
	log_error("DNS resolver: %s: proxy hosts given by name fail from now on", why);
	if (epoll_ctl(srv->epfd, EPOLL_CTL_DEL, srv->dns_fd, NULL) < 0)
		log_error("epoll_ctl(DEL): %m");
	ipc_outq_clear(&srv->dns_outq);
	close(srv->dns_fd);
	srv->dns_fd = -1;
	/* failing one may close its client and every request with it: look
	 * again from the start each time */
	for (;;) {
		struct auth_request *r = NULL;
		for (struct auth_client *c = srv->clients; c != NULL && r == NULL; c = c->next) {
			for (r = c->requests; r != NULL && r->state != REQ_DNS; r = r->cnext)
				;
		}
		if (r == NULL)
			break;
		r->state = REQ_SASL;
		srv->dns_pending--;
		asrv_request_fail_now(srv, r, REASON_TEMP, true, r->sasl.user);
	}
}

/* EPOLLOUT: the lookups that waited */
void asrv_dns_output(struct auth_server *srv)
{
	int ret = ipc_outq_epoll_flush(&srv->dns_outq, srv->epfd, srv->dns_fd, &srv->dns_src);
	if (ret < 0)
		dns_lost(srv, strerror(-ret));
}

void asrv_dns_input(struct auth_server *srv)
{
	struct ipc_rx *rx = srv->rx;
	for (unsigned i = 0; i < MAX_MSGS_PER_WAKEUP && srv->dns_fd >= 0; i++) {
		const char *error = NULL;
		int ret = ipc_recv(srv->dns_fd, rx, &error);
		if (ret == -EAGAIN)
			return;
		if (ret <= 0 || rx->fd >= 0 || rx->hdr.type != IPC_DNS_RESULT) {
			if (ret > 0 && rx->fd >= 0)
				close(rx->fd);
			dns_lost(srv, ret == 0 ? "exited" : ret < 0 ? (error != NULL ? error :
								       strerror(-ret)) : "unexpected message");
			return;
		}
		dns_result(srv, rx);
	}
}

void auth_server_set_dns(struct auth_server *srv, int fd)
{
	srv->dns_fd = fd;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &srv->dns_src };
	if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		log_fatal("epoll_ctl(ADD dns): %m");
}

void auth_server_set_workers(struct auth_server *srv, int spawner_fd, unsigned max_count,
			     unsigned timeout_ms)
{
	srv->workers = auth_worker_pool_new(spawner_fd, max_count, timeout_ms);
	auth_worker_pool_attach(srv->workers, srv->chain);
}
