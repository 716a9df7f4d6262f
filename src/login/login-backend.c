/* login-backend.c — the backend login dialogue of a proxied user (passdb proxy fields):
 * where to connect, the connect, the dialogue (src/proxy/proxy-backend.h)
 * and its end. */
#include "login/login-private.h"

/* client contexts for backends, made on first use: any-cert, verifying */
static struct tls_ctx *backend_tls[2];

#define BACKEND_TIMEOUT_DEFAULT 30 /* seconds, as Dovecot's proxy connect timeout */

void conn_backend_free(struct conn_backend **bep)
{
	struct conn_backend *be = *bep;
	if (be == NULL)
		return;
	*bep = NULL;
	backend_login_free(&be->login);
	if (be->pass != NULL) {
		explicit_bzero(be->pass, be->pass_len);
		rg_free(be->pass);
	}
	rg_free(be->destuser);
	rg_free(be->master);
	rg_free(be);
}

/* The value of key in TAB-separated key=value fields, copied into out ("" for
 * a bare key); false when absent or longer than out. */
static bool extra_get(const char *extra, const char *key, char *out, size_t size)
{
	size_t klen = strlen(key);
	for (const char *p = extra; *p != '\0';) {
		size_t n = strcspn(p, "\t");
		if (n >= klen && strncmp(p, key, klen) == 0 && (n == klen || p[klen] == '=')) {
			size_t vlen = n == klen ? 0 : n - klen - 1;
			if (vlen >= size)
				return false;
			memcpy(out, p + n - vlen, vlen);
			out[vlen] = '\0';
			return true;
		}
		p += n;
		if (*p == '\t')
			p++;
	}
	return false;
}

bool backend_extra_proxied(const char *extra)
{
	char v[8];
	return extra != NULL && (extra_get(extra, "proxy", v, sizeof(v)) ||
				 extra_get(extra, "proxy_maybe", v, sizeof(v)));
}

/* proxy_maybe: is host:port one of our own listeners? */
static bool backend_is_us(const struct sockaddr *sa, socklen_t len)
{
	struct net_addr a;
	net_addr_from_sockaddr(sa, len, &a);
	for (unsigned i = 0; i < srv.set->listen_count; i++) {
		const struct net_addr *l = &srv.listen_addrs[i];
		if (l->port != a.port)
			continue;
		static const uint8_t zero[16];
		bool any = l->family != 0 &&
			   memcmp(l->ip, zero, l->family == AF_INET ? 4 : 16) == 0;
		if (any || net_addr_same_ip(l, &a))
			return true;
	}
	return false;
}

/* Dovecot's proxy fields from AUTH_OK: where to and as whom. false (logged)
 * when they are unusable; *local_r for proxy_maybe naming ourselves. */
bool conn_backend_parse(struct conn *c, const char *extra, const struct ipc_fields *f,
			       bool *local_r)
{
	char v[256], host[RG_BACKEND_NAME_MAX + 1], hostip[64], user[80];
	log_escape(c->auth->user, strlen(c->auth->user), 64, user, sizeof(user));
	*local_r = false;
	if (!extra_get(extra, "host", host, sizeof(host)) || host[0] == '\0') {
		log_error("proxy(%s): host not given or longer than %u characters", user,
			  RG_BACKEND_NAME_MAX);
		return false;
	}
	/* Dovecot's hostip: where to connect, host staying the name the
	 * backend's certificate must carry. auth adds it for a host that is
	 * a DNS name (the login process has no DNS). */
	bool have_ip = extra_get(extra, "hostip", hostip, sizeof(hostip)) && hostip[0] != '\0';
	if (!have_ip) {
		size_t n = strlen(host);
		if (n >= sizeof(hostip))
			n = 0; /* too long for an address: a DNS name */
		memcpy(hostip, host, n);
		hostip[n] = '\0';
	}
	unsigned port = srv.set->proto->backend_port;
	if (extra_get(extra, "port", v, sizeof(v))) {
		char *end;
		unsigned long n = strtoul(v, &end, 10);
		if (v[0] < '0' || v[0] > '9' || *end != '\0' || n == 0 || n > 65535) {
			log_error("proxy(%s): invalid port '%s'", user, v);
			return false;
		}
		port = (unsigned)n;
	}
	uint8_t tls_mode = BACKEND_TLS_NONE;
	bool verify = false;
	if (extra_get(extra, "ssl", v, sizeof(v)))
		tls_mode = BACKEND_TLS_IMPLICIT;
	else if (extra_get(extra, "starttls", v, sizeof(v)))
		tls_mode = BACKEND_TLS_STARTTLS;
	if (tls_mode != BACKEND_TLS_NONE) {
		/* Dovecot's values: yes verifies the certificate, any-cert not */
		if (strcmp(v, "yes") == 0) {
			verify = true;
		} else if (strcmp(v, "any-cert") != 0) {
			log_error("proxy(%s): invalid %s value '%s' (yes or any-cert)", user,
				  tls_mode == BACKEND_TLS_IMPLICIT ? "ssl" : "starttls", v);
			return false;
		}
		if (verify && (srv.set->client_ca_pem == NULL || srv.set->client_ca_pem[0] == '\0')) {
			log_error("proxy(%s): ssl=yes/starttls=yes needs ssl_client_ca_file", user);
			return false;
		}
	}
	struct sockaddr_storage ss;
	socklen_t sslen;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	char name[sizeof(((struct conn_backend *)0)->name)];
	if (inet_pton(AF_INET, hostip, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		sslen = sizeof(*sin);
	} else if (inet_pton(AF_INET6, hostip, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		sslen = sizeof(*sin6);
	} else if (have_ip) {
		log_error("proxy(%s): hostip '%s' is not an IP address", user, hostip);
		return false;
	} else {
		char esc[96];
		log_escape(host, strlen(host), 80, esc, sizeof(esc));
		log_error("proxy(%s): host '%s' is not an IP address and was not resolved", user,
			  esc);
		return false;
	}
	if (strcmp(host, hostip) != 0 && strspn(host, "abcdefghijklmnopqrstuvwxyz"
						    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") !=
					     strlen(host)) {
		log_error("proxy(%s): host is neither an IP address nor a DNS name", user);
		return false;
	}
	bool v6 = ss.ss_family == AF_INET6;
	if (strcmp(host, hostip) == 0)
		snprintf(name, sizeof(name), v6 ? "[%s]:%u" : "%s:%u", host, port);
	else
		snprintf(name, sizeof(name), "%s[%s]:%u", host, hostip, port);
	if (extra_get(extra, "proxy_maybe", v, sizeof(v)) &&
	    backend_is_us((struct sockaddr *)&ss, sslen)) {
		*local_r = true;
		return true;
	}
	if (!ipc_has(f, IPC_F_PASS)) {
		log_error("proxy(%s): no password for the backend", user);
		return false;
	}
	struct conn_backend *be = rg_calloc(1, sizeof(*be));
	be->tls = tls_mode;
	be->verify = verify;
	be->addr = ss;
	be->addr_len = sslen;
	memcpy(be->name, name, sizeof(name));
	memcpy(be->host, host, sizeof(host));
	be->timeout = BACKEND_TIMEOUT_DEFAULT;
	if (extra_get(extra, "proxy_timeout", v, sizeof(v))) {
		char *end;
		unsigned long n = strtoul(v, &end, 10);
		if (v[0] >= '0' && v[0] <= '9' && *end == '\0' && n > 0 && n <= 3600)
			be->timeout = (unsigned)n;
		else
			log_warning("proxy(%s): invalid proxy_timeout '%s', using %u", user, v,
				    be->timeout);
	}
	if (extra_get(extra, "destuser", v, sizeof(v)) && v[0] != '\0')
		be->destuser = rg_strdup(v);
	if (extra_get(extra, "master", v, sizeof(v)) && v[0] != '\0')
		be->master = rg_strdup(v);
	be->pass_len = f->len[IPC_F_PASS];
	be->pass = rg_malloc(be->pass_len + 1);
	memcpy(be->pass, f->val[IPC_F_PASS], be->pass_len);
	c->be = be;
	return true;
}

/* The backend cannot be used (down, refused, stalled, not speaking the
 * protocol): as Dovecot, the client gets NO [UNAVAILABLE] / -ERR
 * [SYS/TEMP] and the session goes on before login. */
void conn_backend_failed(struct conn *c, const char *why, const char *client_text)
{
	char rip[64], user[80];
	log_escape(c->auth->user, strlen(c->auth->user), 64, user, sizeof(user));
	log_error("proxy(%s): %s: %s (rip=%s, session=<%s>)", user,
		  c->be != NULL ? c->be->name : "?", why,
		  net_addr_ip(&c->remote, rip, sizeof(rip)), c->session_id);
	if (c->pump != NULL)
		relay_abort(c);
	conn_backend_free(&c->be);
	conn_handoff_abandon(c, client_text != NULL ? client_text : BACKEND_UNAVAILABLE);
}

/* The dialogue's commands are only queued: what one backend input (or the
 * connect) makes them say leaves in one send (ID and AUTHENTICATE in one
 * segment), flushed by conn_backend_input(), the connect's completion or
 * the TLS pump. */
static void backend_send(void *ctx, const void *data, size_t len)
{
	struct conn *c = ctx;
	proxy_pump_write(c->pump, data, len);
}

/* AUTH_OK for a proxied user and the core's hand-off: connect to the
 * backend instead of master (no worker, no cookie). */
void conn_backend_start(struct conn *c)
{
	struct conn_backend *be = c->be;
	conn_set_state(c, CONN_BACKEND);
	be->deadline = srv.now + be->timeout;
	int fd = socket(be->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		char why[96];
		snprintf(why, sizeof(why), "socket: %s", strerror(errno));
		conn_backend_failed(c, why, NULL);
		return;
	}
	c->pump = proxy_pump_new(srv.ring, &srv.now, relay_backend_callbacks(), c);
	proxy_pump_attach_server(c->pump, fd, true);
	char rip[64], lip[64];
	struct backend_login_config bc = {
		.pop3 = srv.set->proto->backend_pop3,
		.starttls = be->tls == BACKEND_TLS_STARTTLS,
		.user = be->destuser != NULL ? be->destuser : c->auth->user,
		.master = be->master,
		.pass = be->pass,
		.pass_len = be->pass_len,
		.rip = net_addr_ip(&c->remote, rip, sizeof(rip)),
		.lip = net_addr_ip(&c->local, lip, sizeof(lip)),
		.rport = c->remote.port,
		.lport = c->local.port,
		.session = c->session_id,
	};
	be->login = backend_login_new(&bc, backend_send, c);
	explicit_bzero(be->pass, be->pass_len);
	rg_free(be->pass);
	be->pass = NULL;
	log_debug("conn %u: connecting to backend %s", c->slot, be->name);
	proxy_pump_connect(c->pump, &be->addr, be->addr_len);
}

/* The backend said OK: relay its answer with the client's tag, send it what
 * the client pipelined, and pump. */
static void conn_backend_ok(struct conn *c, const char *reply, const uint8_t *rest,
			    size_t rest_len)
{
	struct conn_handoff *ho = c->ho;
	char *line = ho->tag != NULL ? rg_strdup_printf("%s %s\r\n", ho->tag, reply)
				     : rg_strdup_printf("%s\r\n", reply);
	conn_cb_send(c, line, strlen(line));
	rg_free(line);
	if (c->state == CONN_CLOSING)
		return; /* the client does not read: conn_check() ends the pump */
	char rip[64], lip[64], user[80];
	log_escape(c->auth->user, strlen(c->auth->user), 64, user, sizeof(user));
	log_info("proxy(%s): started proxying to %s: rip=%s, lip=%s, session=<%s>", user,
		 c->be->name, net_addr_ip(&c->remote, rip, sizeof(rip)),
		 net_addr_ip(&c->local, lip, sizeof(lip)), c->session_id);
	c->flags |= CF_LOGGED;
	conn_backend_free(&c->be);
	relay_start_backend(c, rest, rest_len);
}

static struct tls_ctx *backend_tls_ctx(bool verify)
{
	struct tls_ctx **ctx = &backend_tls[verify ? 1 : 0];
	const char *error;
	if (*ctx == NULL && tls_ctx_create_client(srv.set->client_ca_pem, verify, ctx, &error) < 0) {
		log_error("proxy: TLS client context: %s", error);
		*ctx = NULL;
	}
	return *ctx;
}

static void backend_tls_start(struct conn *c)
{
	struct tls_ctx *ctx = backend_tls_ctx(c->be->verify);
	if (ctx == NULL) {
		conn_backend_failed(c, "no TLS client context", NULL);
		return;
	}
	struct tls_conn *tls = tls_conn_new(ctx);
	/* ssl=yes: the certificate must also name host (hostip is only
	 * where we connect), as Dovecot checks it */
	tls_conn_set_peer_name(tls, c->be->host, c->be->verify);
	c->be->engine = tls;
	proxy_pump_start_tls(c->pump, tls); /* the ClientHello */
}

static void conn_backend_input(struct conn *c, const uint8_t *data, size_t len)
{
	size_t consumed = 0;
	const char *reply;
	char why[160];
	enum backend_result r = backend_login_input(c->be->login, data, len, &consumed, &reply);
	switch (r) {
	case BACKEND_MORE:
		proxy_pump_flush(c->pump);
		return;
	case BACKEND_ERROR:
		snprintf(why, sizeof(why), "protocol error: %s", reply);
		conn_backend_failed(c, why, NULL);
		return;
	case BACKEND_FAIL: {
		/* the backend's own refusal goes to the client, as Dovecot
		 * relays it; the session goes on before login */
		char esc[128];
		log_escape(reply, strlen(reply), 100, esc, sizeof(esc));
		snprintf(why, sizeof(why), "login refused: %s", esc);
		const char *text = reply;
		if (strncmp(text, "NO ", 3) == 0)
			text += 3;
		else if (strncmp(text, "BAD ", 4) == 0)
			text += 4;
		else if (strncmp(text, "-ERR ", 5) == 0)
			text += 5;
		/* with its response code; without one, the code of a failed
		 * login here ([UNAVAILABLE] / [SYS/TEMP] would invite a retry) */
		char *copy = rg_strdup_printf("%s%s", text[0] == '[' ? "" :
					      srv.set->proto->backend_fail_code, text);
		conn_backend_failed(c, why, copy);
		rg_free(copy);
		return;
	}
	case BACKEND_OK:
		conn_backend_ok(c, reply, data + consumed, len - consumed);
		return;
	case BACKEND_STARTTLS:
		backend_tls_start(c);
		return;
	}
}

/* ---- the pump's calls while the dialogue runs (the pump is c's) ---- */

void backend_pump_input(void *ctx, const uint8_t *data, size_t len)
{
	conn_backend_input(ctx, data, len);
}

void backend_pump_connected(void *ctx, int res)
{
	struct conn *c = ctx;
	if (res < 0) {
		char why[96];
		snprintf(why, sizeof(why), "connect failed: %s", strerror(-res));
		conn_backend_failed(c, why, NULL);
		return;
	}
	log_debug("conn %u: connected to backend %s", c->slot, c->be->name);
	if (c->be->tls == BACKEND_TLS_IMPLICIT)
		backend_tls_start(c);
	else
		proxy_pump_flush(c->pump);
}

void backend_pump_tls_ready(void *ctx)
{
	struct conn *c = ctx;
	log_debug("conn %u: backend %s %s", c->slot, tls_conn_version(c->be->engine),
		  tls_conn_cipher(c->be->engine));
	if (c->be->tls == BACKEND_TLS_STARTTLS)
		backend_login_tls_started(c->be->login);
}

void backend_pump_failed(void *ctx, const char *error)
{
	conn_backend_failed(ctx, error != NULL ? error : "backend closed the connection", NULL);
}
