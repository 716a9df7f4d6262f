/* net.h — client addresses and trusted-network lists, shared by the login
 * process (login_trusted_networks, haproxy_trusted_networks, per-IP limits)
 * and the access checker (login_access_allow/deny).
 *
 * A net_addr is the compact form a connection keeps (20 bytes, not a
 * sockaddr_storage); IPv4-mapped IPv6 addresses are stored as IPv4 so one
 * range matches both spellings. A net_list is parsed once at start-up. */
#ifndef RG_LIB_NET_H
#define RG_LIB_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct net_addr {
	uint8_t family; /* AF_INET, AF_INET6, or 0 (unknown, e.g. UNIX socket) */
	uint16_t port;
	uint8_t ip[16]; /* network order; 4 bytes used for AF_INET */
};

struct net_range {
	uint8_t family;
	uint8_t bits;
	uint8_t ip[16];
};

struct net_list {
	struct net_range *ranges;
	unsigned count;
};

/* "1.2.3.4" / "::1" (port unchanged); false when it is neither */
bool net_addr_parse(const char *str, struct net_addr *addr);
void net_addr_from_sockaddr(const struct sockaddr *sa, socklen_t len, struct net_addr *addr_r);
/* "1.2.3.4" / "::1"; "" for an unknown family. buf >= 46 bytes */
const char *net_addr_ip(const struct net_addr *addr, char *buf, size_t size);
bool net_addr_is_loopback(const struct net_addr *addr);
/* 0.0.0.0 or :: (a wildcard listener: each connection's local address
 * differs); false for an unknown family */
bool net_addr_is_any(const struct net_addr *addr);
/* same family and address (ports ignored): Dovecot's test for a client on
 * this very host, which counts as secured */
bool net_addr_same_ip(const struct net_addr *a, const struct net_addr *b);

/* The key that login_max_preauth_ip_connections counts an address under:
 * the IPv4 address, or the /64 of an IPv6 one (family byte first). 0 for an
 * address without an IP (UNIX socket): not counted. */
#define NET_ADDR_KEY_MAX 9
size_t net_addr_limit_key(const struct net_addr *addr, uint8_t key_r[NET_ADDR_KEY_MAX]);

/* Space- or comma-separated list of ADDR or ADDR/BITS (IPv4 or IPv6).
 * false with *error_r (static text) on anything else; list_r is then empty. */
bool net_list_parse(const char *str, struct net_list *list_r, const char **error_r);
bool net_list_match(const struct net_list *list, const struct net_addr *addr);
void net_list_free(struct net_list *list);

#endif
