#include "lib/net.h"
#include "lib/alloc.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static const uint8_t v4mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

bool net_addr_parse(const char *str, struct net_addr *addr)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;
	if (inet_pton(AF_INET, str, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		len = sizeof(*sin);
	} else if (inet_pton(AF_INET6, str, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		len = sizeof(*sin6);
	} else {
		return false;
	}
	uint16_t port = addr->port;
	net_addr_from_sockaddr((struct sockaddr *)&ss, len, addr);
	addr->port = port;
	return true;
}

void net_addr_from_sockaddr(const struct sockaddr *sa, socklen_t len, struct net_addr *addr_r)
{
	memset(addr_r, 0, sizeof(*addr_r));
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
		addr_r->family = AF_INET;
		addr_r->port = ntohs(sin->sin_port);
		memcpy(addr_r->ip, &sin->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		addr_r->port = ntohs(sin6->sin6_port);
		if (memcmp(sin6->sin6_addr.s6_addr, v4mapped_prefix, 12) == 0) {
			addr_r->family = AF_INET;
			memcpy(addr_r->ip, sin6->sin6_addr.s6_addr + 12, 4);
		} else {
			addr_r->family = AF_INET6;
			memcpy(addr_r->ip, sin6->sin6_addr.s6_addr, 16);
		}
	}
}

const char *net_addr_ip(const struct net_addr *addr, char *buf, size_t size)
{
	if (addr->family == AF_INET && size >= INET_ADDRSTRLEN) {
		/* by hand: glibc's inet_ntop formats IPv4 with sprintf, and a
		 * login process writes two addresses per client's log line */
		char *o = buf;
		for (int i = 0; i < 4; i++) {
			unsigned v = addr->ip[i];
			if (v >= 100)
				*o++ = (char)('0' + v / 100);
			if (v >= 10)
				*o++ = (char)('0' + v / 10 % 10);
			*o++ = (char)('0' + v % 10);
			if (i < 3)
				*o++ = '.';
		}
		*o = '\0';
		return buf;
	}
	if (addr->family == 0 || inet_ntop(addr->family, addr->ip, buf, (socklen_t)size) == NULL)
		buf[0] = '\0';
	return buf;
}

bool net_addr_is_any(const struct net_addr *addr)
{
	static const uint8_t zero[16];
	if (addr->family == AF_INET)
		return memcmp(addr->ip, zero, 4) == 0;
	if (addr->family == AF_INET6)
		return memcmp(addr->ip, zero, 16) == 0;
	return false;
}

bool net_addr_is_loopback(const struct net_addr *addr)
{
	static const uint8_t v6lo[16] = { [15] = 1 };
	if (addr->family == AF_INET)
		return addr->ip[0] == 127;
	if (addr->family == AF_INET6)
		return memcmp(addr->ip, v6lo, 16) == 0;
	/* UNIX sockets (tests, local proxies) are as local as it gets */
	return true;
}

size_t net_addr_limit_key(const struct net_addr *addr, uint8_t key_r[NET_ADDR_KEY_MAX])
{
	/* an IPv6 /64 is one subscriber's network: its 2^64 addresses are
	 * not 2^64 clients */
	size_t n = addr->family == AF_INET ? 4 : addr->family == AF_INET6 ? 8 : 0;
	if (n == 0)
		return 0;
	key_r[0] = addr->family;
	memcpy(key_r + 1, addr->ip, n);
	return n + 1;
}

static bool net_parse_one(const char *tok, size_t len, struct net_range *r,
			  const char **error_r)
{
	char ip[INET6_ADDRSTRLEN + 1];
	const char *slash = memchr(tok, '/', len);
	size_t iplen = slash != NULL ? (size_t)(slash - tok) : len;
	unsigned max, bits;

	if (iplen == 0 || iplen >= sizeof(ip)) {
		*error_r = "invalid network address";
		return false;
	}
	memcpy(ip, tok, iplen);
	ip[iplen] = '\0';
	memset(r, 0, sizeof(*r));
	if (inet_pton(AF_INET, ip, r->ip) == 1) {
		r->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, ip, r->ip) == 1) {
		r->family = AF_INET6;
		max = 128;
		if (memcmp(r->ip, v4mapped_prefix, 12) == 0) {
			/* ::ffff:a.b.c.d/n is an IPv4 range */
			memmove(r->ip, r->ip + 12, 4);
			memset(r->ip + 4, 0, 12);
			r->family = AF_INET;
			max = 32;
		}
	} else {
		*error_r = "invalid network address";
		return false;
	}
	bits = max;
	if (slash != NULL) {
		const char *p = slash + 1, *end = tok + len;
		if (p == end || end - p > 3) {
			*error_r = "invalid network mask";
			return false;
		}
		bits = 0;
		for (; p < end; p++) {
			if (*p < '0' || *p > '9') {
				*error_r = "invalid network mask";
				return false;
			}
			bits = bits * 10 + (unsigned)(*p - '0');
		}
		/* a mask on ::ffff:a.b.c.d counts the 96 prefix bits too */
		if (r->family == AF_INET && memchr(tok, ':', iplen) != NULL) {
			if (bits < 96) {
				*error_r = "invalid network mask";
				return false;
			}
			bits -= 96;
		}
		if (bits > max) {
			*error_r = "network mask too long";
			return false;
		}
	}
	r->bits = (uint8_t)bits;
	return true;
}

bool net_list_parse(const char *str, struct net_list *list_r, const char **error_r)
{
	list_r->ranges = NULL;
	list_r->count = 0;
	const char *p = str;
	unsigned alloc = 0;
	for (;;) {
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		if (*p == '\0')
			return true;
		const char *start = p;
		while (*p != '\0' && *p != ' ' && *p != ',' && *p != '\t')
			p++;
		if (list_r->count == alloc) {
			alloc = alloc == 0 ? 4 : alloc * 2;
			list_r->ranges = rg_realloc(list_r->ranges, alloc * sizeof(*list_r->ranges));
		}
		if (!net_parse_one(start, (size_t)(p - start), &list_r->ranges[list_r->count], error_r)) {
			net_list_free(list_r);
			return false;
		}
		list_r->count++;
	}
}

static bool net_range_match(const struct net_range *r, const struct net_addr *addr)
{
	if (r->family != addr->family)
		return false;
	unsigned full = r->bits / 8, rest = r->bits % 8;
	if (memcmp(r->ip, addr->ip, full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff00 >> rest);
	return (r->ip[full] & mask) == (addr->ip[full] & mask);
}

bool net_list_match(const struct net_list *list, const struct net_addr *addr)
{
	for (unsigned i = 0; i < list->count; i++) {
		if (net_range_match(&list->ranges[i], addr))
			return true;
	}
	return false;
}

void net_list_free(struct net_list *list)
{
	rg_free(list->ranges);
	list->ranges = NULL;
	list->count = 0;
}

bool net_addr_same_ip(const struct net_addr *a, const struct net_addr *b)
{
	size_t len = a->family == AF_INET ? 4 : 16;
	return a->family != 0 && a->family == b->family && memcmp(a->ip, b->ip, len) == 0;
}
