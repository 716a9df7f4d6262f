/* auth-server-reply.c — what a successful request hands on: the user's
 * fields for master's AUTH_REQUEST, the passdb's extra fields, and for a
 * proxied user the backend's host (resolved by the resolver child when it
 * is a name) and password. See auth-server-private.h. */
#include "auth/auth-server-private.h"

/* Append key[=value] to a TAB-separated list. */
static void extra_append(char **list, const char *field)
{
	char *old = *list;
	*list = rg_strdup_printf("%s%s%s", old, old[0] != '\0' ? "\t" : "", field);
	rg_free(old);
}

const char *asrv_pfield(const struct auth_request *req, const char *key)
{
	return auth_fields_get(&req->db.passdb_fields, key);
}

static bool parse_id(const char *v, uint32_t *id_r)
{
	char *end;
	if (v == NULL || *v < '0' || *v > '9')
		return false;
	unsigned long n = strtoul(v, &end, 10);
	if (*end != '\0' || n >= UINT32_MAX)
		return false;
	*id_r = (uint32_t)n;
	return true;
}

/* The userdb result (req->db.userdb_fields) for the cookie. NULL with a
 * logged error when it lacks what a worker needs. */
struct auth_user *asrv_user_build(struct auth_server *srv, struct auth_request *req,
				  const char *logname)
{
	const struct auth_fields *f = &req->db.userdb_fields;
	uint32_t uid, gid;
	if (!parse_id(auth_fields_get(f, "uid"), &uid) ||
	    !parse_id(auth_fields_get(f, "gid"), &gid)) {
		log_error("%s(%s): userdb lookup: no valid uid/gid for the user",
			  req->db.db_name != NULL ? req->db.db_name : "userdb", logname);
		return NULL;
	}
	struct auth_user *u = rg_calloc(1, sizeof(*u));
	u->user = rg_strdup(req->db.user);
	u->uid = uid;
	u->gid = gid;
	const char *v = auth_fields_get(f, "home");
	u->home = rg_strdup(v != NULL ? v : "");
	v = auth_fields_get(f, "mail");
	u->mail = rg_strdup(v != NULL ? v : srv->cfg.mail_location);
	u->extra = rg_strdup("");
	for (unsigned i = 0; i < f->count; i++) {
		const char *k = f->kv[2 * i], *val = f->kv[2 * i + 1];
		if (strcmp(k, "uid") == 0 || strcmp(k, "gid") == 0 || strcmp(k, "home") == 0 ||
		    strcmp(k, "mail") == 0)
			continue;
		char *item = val[0] != '\0' ? rg_strdup_printf("%s=%s", k, val) : rg_strdup(k);
		extra_append(&u->extra, item);
		rg_free(item);
	}
	return u;
}

/* passdb extra fields for the login process: not pass (it travels as
 * F_PASS) */
char *asrv_passdb_extra(const struct auth_request *req)
{
	struct auth_fields out;
	memset(&out, 0, sizeof(out));
	const struct auth_fields *f = &req->db.passdb_fields;
	for (unsigned i = 0; i < f->count; i++) {
		if (strcmp(f->kv[2 * i], "pass") != 0)
			auth_fields_set(&out, f->kv[2 * i], f->kv[2 * i + 1]);
	}
	if (req->hostip[0] != '\0')
		auth_fields_set(&out, "hostip", req->hostip);
	char *extra = auth_fields_export(&out);
	auth_fields_clear(&out);
	return extra;
}

bool asrv_is_ip(const char *s)
{
	uint8_t a[16];
	return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

/* A proxied user's host is a DNS name (and passdb gives no hostip): ask the
 * resolver, the request waits in REQ_DNS. true when that happened (or the
 * request failed), false when the answer can go now. */
bool asrv_proxy_resolve(struct auth_server *srv, struct auth_request *req, const char *logname)
{
	const char *host = asrv_pfield(req, "host");
	const char *hostip = asrv_pfield(req, "hostip");
	if (req->hostip[0] != '\0' || host == NULL || host[0] == '\0' || asrv_is_ip(host) ||
	    (hostip != NULL && hostip[0] != '\0'))
		return false;
	if (strlen(host) > 253 || srv->dns_fd < 0) {
		log_error("%s(%s,%s): proxy host %s cannot be resolved", req->db.db_name, logname,
			  req->rip, srv->dns_fd < 0 ? "(no resolver)" : "(name too long)");
		asrv_request_fail_now(srv, req, REASON_TEMP, true, req->db.user);
		return true;
	}
	if (++srv->dns_next == 0)
		srv->dns_next = 1;
	struct ipc_msg *msg = rg_malloc(sizeof(*msg));
	ipc_msg_init(msg, IPC_DNS_LOOKUP, srv->dns_next);
	ipc_msg_add_str(msg, IPC_F_HOST, host);
	int ret = ipc_outq_epoll_send(&srv->dns_outq, srv->epfd, srv->dns_fd, &srv->dns_src, msg,
				      -1);
	rg_free(msg);
	if (ret < 0) {
		log_error("%s(%s,%s): proxy host lookup: sending to the resolver: %s",
			  req->db.db_name, logname, req->rip, strerror(-ret));
		asrv_request_fail_now(srv, req, REASON_TEMP, true, req->db.user);
		return true;
	}
	req->dns_id = srv->dns_next;
	req->state = REQ_DNS;
	srv->dns_pending++;
	log_debug("%s(%s,%s): resolving proxy host", req->db.db_name, logname, req->rip);
	return true;
}

/* The backend password: the passdb's pass field (a master user's password),
 * else what the client gave (as Dovecot's mech_password): PLAIN/LOGIN's
 * password, OAUTHBEARER/XOAUTH2's token. SCRAM, CRAM-MD5, APOP and EXTERNAL give
 * none: then no password goes (never an empty one) and the login process
 * refuses to proxy ("no password for the backend"), as Dovecot's login
 * does ("proxy: password not given"). NULL: none. */
static const uint8_t *proxy_pass(const struct auth_request *req, size_t *len_r)
{
	const char *pass = asrv_pfield(req, "pass");
	if (pass != NULL) {
		*len_r = strlen(pass);
		return (const uint8_t *)pass;
	}
	/* EXTERNAL's "token" is empty: no password to forward */
	if (req->token != NULL && req->token_len > 0) {
		*len_r = req->token_len;
		return req->token;
	}
	if (req->mech == NULL && req->sasl.pass_len > 0) {
		*len_r = req->sasl.pass_len;
		return req->sasl.pass;
	}
	*len_r = 0;
	return NULL;
}

size_t asrv_proxy_pass_len(const struct auth_request *req)
{
	size_t len;
	(void)proxy_pass(req, &len);
	return len + 8;
}

void asrv_proxy_add_pass(struct auth_server *srv, struct auth_request *req)
{
	size_t len;
	const uint8_t *pass = proxy_pass(req, &len);
	if (pass != NULL) {
		ipc_msg_add(&srv->msg, IPC_F_PASS, pass, len);
		return;
	}
	char logname[300];
	log_info("%s(%s,%s): proxy: no password for the backend: %s gives no plaintext "
		 "password and the passdb entry has no pass= (set pass=, e.g. a master "
		 "user's password)", req->db.db_name, esc_user(req->db.user, logname,
							       sizeof(logname)),
		 req->rip, sasl_mech_name(req->sasl.mech));
}

/* A user whose passdb entry says proxy: AUTH_OK with the extra fields and
 * the password, no userdb lookup and no cookie (master never sees it). */
void asrv_request_proxy(struct auth_server *srv, struct auth_request *req, const char *logname)
{
	if (asrv_proxy_resolve(srv, req, logname))
		return;
	char *extra = asrv_passdb_extra(req);
	ipc_msg_init(&srv->msg, IPC_AUTH_OK, req->id);
	if (strlen(req->db.user) + strlen(extra) + asrv_proxy_pass_len(req) + 3 * 8 >
	    ipc_msg_room(&srv->msg)) {
		log_error("%s(%s): fields too long for IPC", req->db.db_name, logname);
		rg_free(extra);
		asrv_request_fail_now(srv, req, REASON_TEMP, true, req->db.user);
		return;
	}
	ipc_msg_add_str(&srv->msg, IPC_F_USER, req->db.user);
	ipc_msg_add_str(&srv->msg, IPC_F_EXTRA, extra);
	rg_free(extra);
	asrv_proxy_add_pass(srv, req);
	log_debug("%s(%s,%s): authenticated, proxied", req->db.db_name, logname, req->rip);
	asrv_request_reply(srv, req);
}
