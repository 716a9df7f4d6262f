/* login-admit.c — admission before the greeting: the PROXY v1/v2 header of haproxy = yes
 * listeners and login_max_preauth_ip_connections. */
#include "login/login-private.h"

static struct {
	unsigned haproxy_waiting;	/* connections still reading a PROXY header */
	unsigned long long preauth_refused;	/* login_max_preauth_ip_connections */
	unsigned preauth_refused_unlogged;
	uint32_t preauth_refused_logged;	/* when the last was logged */
} adm;

/* login_max_preauth_ip_connections: count this client's address, or turn
 * the client away before the greeting (on an ssl listener before the
 * handshake: no TLS work for it). login_trusted_networks are not counted. */
bool conn_preauth_admit(struct conn *c)
{
	uint8_t key[NET_ADDR_KEY_MAX];
	size_t len;
	if (srv.set->iplimit == NULL || net_list_match(srv.set->trusted, &c->remote) ||
	    (len = net_addr_limit_key(&c->remote, key)) == 0 ||
	    iplimit_acquire(srv.set->iplimit, key, len, srv.now, srv.set->max_preauth_per_ip,
			    &c->preauth))
		return true;
	adm.preauth_refused++;
	/* a flood from one address must not become a flood of log lines:
	 * one a second, with how many went unlogged */
	if (adm.preauth_refused_logged == srv.now && adm.preauth_refused > 1) {
		adm.preauth_refused_unlogged++;
		return false;
	}
	char rip[64], lip[64], more[64] = "";
	if (adm.preauth_refused_unlogged > 0)
		snprintf(more, sizeof(more), " (and %u more since the last such line)",
			 adm.preauth_refused_unlogged);
	log_info("Disconnected: Too many pre-login connections from this IP "
		 "(login_max_preauth_ip_connections=%u): user=<>, rip=%s, lip=%s, session=<%s>%s",
		 srv.set->max_preauth_per_ip, net_addr_ip(&c->remote, rip, sizeof(rip)),
		 net_addr_ip(&c->local, lip, sizeof(lip)), c->session_id, more);
	adm.preauth_refused_logged = srv.now;
	adm.preauth_refused_unlogged = 0;
	return false;
}

/* Bytes before the header is complete. Its addresses replace the socket's for
 * everything after: the greeting's secured state, auth's rip/lip (penalty),
 * the logs and the hand-off. */
void conn_haproxy_input(struct conn *c, const uint8_t *data, size_t len)
{
	size_t consumed = 0;
	struct proxy_header h;
	enum proxy_error err;
	char rip[64];

	if (c->state != CONN_PRELOGIN)
		return;
	enum parse_result r = proxy_parser_feed(c->hp, data, len, &consumed, &h, &err);
	if (r == PARSE_MORE)
		return;
	net_addr_ip(&c->remote, rip, sizeof(rip));
	if (r == PARSE_ERROR) {
		if (c->hp->version != 0)
			log_warning("haproxy(v%u): Client disconnected: %s (rip=%s)",
				    c->hp->version, proxy_error_str(err), rip);
		else
			log_warning("haproxy: Client disconnected: %s (rip=%s)",
				    proxy_error_str(err), rip);
		c->flags |= CF_LOGGED;
		conn_close(c, true);
		return;
	}
	if (!h.local) {
		net_addr_from_sockaddr((const struct sockaddr *)&h.src, sizeof(h.src), &c->remote);
		net_addr_from_sockaddr((const struct sockaddr *)&h.dst, sizeof(h.dst), &c->local);
	}
	/* as Dovecot: a PROXY connection comes from haproxy_trusted_networks
	 * and counts as secured unless ssl = required, where it needs the
	 * header's SSL TLV or a client on the proxy's own host */
	if (h.ssl || net_addr_same_ip(&c->remote, &c->local) || !srv.set->ssl_required)
		c->flags |= CF_SECURED;
	if (h.ssl)
		c->flags |= CF_HAPROXY_SSL;
	if (log_debug_enabled()) {
		char crip[64], clip[64];
		log_debug("conn %u: haproxy(v%u): %s rip=%s lip=%s (proxy %s)%s", c->slot,
			  h.version, h.local ? "local" : "proxied",
			  net_addr_ip(&c->remote, crip, sizeof(crip)),
			  net_addr_ip(&c->local, clip, sizeof(clip)), rip, h.ssl ? ", ssl" : "");
	}
	rg_free(c->hp);
	c->hp = NULL;
	c->flags &= ~CF_HAPROXY;
	adm.haproxy_waiting--;
	if (!conn_preauth_admit(c)) {
		/* login_max_preauth_ip_connections, for the header's address */
		c->flags |= CF_LOGGED;
		if ((c->flags & CF_HAPROXY_TLS) == 0) {
			const char *line = srv.set->proto->line_too_many_conns;
			conn_out_append(c, line, strlen(line));
		}
		conn_close(c, false);
		return;
	}
	data += consumed;
	len -= consumed;
	if ((c->flags & CF_HAPROXY_TLS) != 0) {
		c->flags |= CF_TLS;
		(void)access_begin(c);
		if (len > 0 && c->state == CONN_PRELOGIN)
			conn_tls_input(c, data, len);
		return;
	}
	if (access_begin(c)) {
		/* the real address decides; bytes after the header wait */
		if (len > 0 && c->state == CONN_PRELOGIN)
			conn_early_input(c, data, len);
		return;
	}
	conn_start_session(c);
	if (len > 0 && c->session != NULL && c->state == CONN_PRELOGIN)
		srv.set->proto->input(c->session, data, len);
}

/* a haproxy = yes listener's connection: the header first; only these
 * connections pay for its parser */
void admit_haproxy_begin(struct conn *c, bool tls_follows)
{
	c->hp = rg_malloc(sizeof(*c->hp));
	proxy_parser_init(c->hp);
	c->flags |= CF_HAPROXY | (tls_follows ? CF_HAPROXY_TLS : 0);
	adm.haproxy_waiting++;
}

/* the connection is freed: its header parser too, if still waiting */
void admit_haproxy_end(struct conn *c)
{
	if ((c->flags & CF_HAPROXY) != 0)
		adm.haproxy_waiting--;
	rg_free(c->hp);
	c->hp = NULL;
}

bool admit_haproxy_waiting(void)
{
	return adm.haproxy_waiting > 0;
}
