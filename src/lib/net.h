/* net.h — client addresses and trusted-network lists, shared by the login
 * process (login_trusted_networks, haproxy_trusted_networks, per-IP limits)
 * and the access checker (login_access_allow/deny). The login_ prefix of
 * its names is historical (it began in src/login).
 *
 * A login_addr is the compact form a connection keeps (20 bytes, not a
 * sockaddr_storage); IPv4-mapped IPv6 addresses are stored as IPv4 so one
 * range matches both spellings. A netlist is parsed once at start-up. */
#ifndef RG_LIB_NET_H
#define RG_LIB_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct login_addr {
	uint8_t family; /* AF_INET, AF_INET6, or 0 (unknown, e.g. UNIX socket) */
	uint16_t port;
	uint8_t ip[16]; /* network order; 4 bytes used for AF_INET */
};

struct login_net_range {
	uint8_t family;
	uint8_t bits;
	uint8_t ip[16];
};

struct login_netlist {
	struct login_net_range *ranges;
	unsigned count;
};

/* "1.2.3.4" / "::1" (port unchanged); false when it is neither */
bool login_addr_parse(const char *str, struct login_addr *addr);
void login_addr_from_sockaddr(const struct sockaddr *sa, socklen_t len, struct login_addr *addr_r);
/* "1.2.3.4" / "::1"; "" for an unknown family. buf >= 46 bytes */
const char *login_addr_ip(const struct login_addr *addr, char *buf, size_t size);
bool login_addr_is_loopback(const struct login_addr *addr);
/* 0.0.0.0 or :: (a wildcard listener: each connection's local address
 * differs); false for an unknown family */
bool login_addr_is_any(const struct login_addr *addr);
/* same family and address (ports ignored): Dovecot's test for a client on
 * this very host, which counts as secured */
bool login_addr_same_ip(const struct login_addr *a, const struct login_addr *b);

/* The key that login_max_preauth_ip_connections counts an address under:
 * the IPv4 address, or the /64 of an IPv6 one (family byte first). 0 for an
 * address without an IP (UNIX socket): not counted. */
#define LOGIN_ADDR_KEY_MAX 9
size_t login_addr_limit_key(const struct login_addr *addr, uint8_t key_r[LOGIN_ADDR_KEY_MAX]);

/* Space- or comma-separated list of ADDR or ADDR/BITS (IPv4 or IPv6).
 * false with *error_r (static text) on anything else; list_r is then empty. */
bool login_netlist_parse(const char *str, struct login_netlist *list_r, const char **error_r);
bool login_netlist_match(const struct login_netlist *list, const struct login_addr *addr);
void login_netlist_free(struct login_netlist *list);

#endif
