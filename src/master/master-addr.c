#include "master/master-addr.h"
#include "lib/alloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct addr_list {
	struct master_addr *addrs;
	unsigned count, alloc;
};

static struct master_addr *addr_list_add(struct addr_list *l)
{
	if (l->count == l->alloc) {
		l->alloc = l->alloc == 0 ? 4 : l->alloc * 2;
		l->addrs = rg_realloc(l->addrs, l->alloc * sizeof(*l->addrs));
	}
	struct master_addr *a = &l->addrs[l->count++];
	memset(a, 0, sizeof(*a));
	return a;
}

static void addr_fill_text(struct master_addr *a)
{
	const void *p = a->ss.ss_family == AF_INET6
		? (const void *)&((struct sockaddr_in6 *)&a->ss)->sin6_addr
		: (const void *)&((struct sockaddr_in *)&a->ss)->sin_addr;
	if (inet_ntop(a->ss.ss_family, p, a->text, sizeof(a->text)) == NULL)
		snprintf(a->text, sizeof(a->text), "?");
}

static void addr_set_v4(struct master_addr *a, const struct in_addr *ip, unsigned port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	sin->sin_addr = *ip;
	a->len = sizeof(*sin);
	a->port = port;
	addr_fill_text(a);
}

static void addr_set_v6(struct master_addr *a, const struct in6_addr *ip, unsigned port)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->ss;
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons((uint16_t)port);
	sin6->sin6_addr = *ip;
	a->len = sizeof(*sin6);
	a->port = port;
	addr_fill_text(a);
}

/* one entry of the list; name is NUL-terminated */
static int addr_parse_one(struct addr_list *l, const char *name, unsigned port, char **error_r)
{
	struct in_addr ip4;
	struct in6_addr ip6;
	char buf[256];

	if (strcmp(name, "*") == 0) {
		ip4.s_addr = htonl(INADDR_ANY);
		addr_set_v4(addr_list_add(l), &ip4, port);
		return 0;
	}
	if (strcmp(name, "::") == 0 || strcmp(name, "[::]") == 0) {
		struct master_addr *a = addr_list_add(l);
		addr_set_v6(a, &in6addr_any, port);
		a->v6only = true;
		return 0;
	}
	size_t len = strlen(name);
	if (len >= 2 && name[0] == '[' && name[len - 1] == ']' && len - 2 < sizeof(buf)) {
		memcpy(buf, name + 1, len - 2);
		buf[len - 2] = '\0';
		if (inet_pton(AF_INET6, buf, &ip6) == 1) {
			addr_set_v6(addr_list_add(l), &ip6, port);
			return 0;
		}
		*error_r = rg_strdup_printf("invalid IPv6 address '%s'", name);
		return -EINVAL;
	}
	if (inet_pton(AF_INET, name, &ip4) == 1) {
		addr_set_v4(addr_list_add(l), &ip4, port);
		return 0;
	}
	if (inet_pton(AF_INET6, name, &ip6) == 1) {
		addr_set_v6(addr_list_add(l), &ip6, port);
		return 0;
	}

	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	int ret = getaddrinfo(name, NULL, &hints, &res);
	if (ret != 0) {
		*error_r = rg_strdup_printf("cannot resolve '%s': %s", name, gai_strerror(ret));
		return -EINVAL;
	}
	unsigned before = l->count;
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET)
			addr_set_v4(addr_list_add(l),
				    &((struct sockaddr_in *)ai->ai_addr)->sin_addr, port);
		else if (ai->ai_family == AF_INET6)
			addr_set_v6(addr_list_add(l),
				    &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, port);
	}
	freeaddrinfo(res);
	if (l->count == before) {
		*error_r = rg_strdup_printf("'%s' has no IPv4 or IPv6 address", name);
		return -EINVAL;
	}
	return 0;
}

static bool addr_equal(const struct master_addr *a, const struct master_addr *b)
{
	return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

int master_addr_parse(const char *list, unsigned port, struct master_addr **addrs_r,
		      unsigned *count_r, char **error_r)
{
	struct addr_list l = { 0 };
	const char *p = list == NULL ? "" : list;

	if (port == 0 || port > 65535) {
		*error_r = rg_strdup_printf("invalid port %u", port);
		return -EINVAL;
	}
	while (*p != '\0') {
		while (*p == ',' || *p == ' ' || *p == '\t')
			p++;
		const char *end = p;
		while (*end != '\0' && *end != ',' && *end != ' ' && *end != '\t')
			end++;
		if (end == p)
			break;
		char *name = rg_strndup(p, (size_t)(end - p));
		int ret = addr_parse_one(&l, name, port, error_r);
		rg_free(name);
		if (ret < 0) {
			rg_free(l.addrs);
			return ret;
		}
		p = end;
	}
	if (l.count == 0) {
		*error_r = rg_strdup_printf("empty address list");
		return -EINVAL;
	}
	/* a name resolving to an address also listed literally would make the
	 * second bind fail with EADDRINUSE: keep each address once */
	unsigned n = 0;
	for (unsigned i = 0; i < l.count; i++) {
		bool dup = false;
		for (unsigned j = 0; j < n && !dup; j++)
			dup = addr_equal(&l.addrs[i], &l.addrs[j]);
		if (!dup)
			l.addrs[n++] = l.addrs[i];
	}
	*addrs_r = l.addrs;
	*count_r = n;
	return 0;
}

int master_addr_listen(const struct master_addr *addr, bool reuse_port, int backlog,
		       char **error_r)
{
	int one = 1;
	int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		goto fail;
	if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto fail;
	if (addr->ss.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0 && addr->v6only)
		goto fail;
	if (bind(fd, (const struct sockaddr *)&addr->ss, addr->len) < 0)
		goto fail;
	if (listen(fd, backlog) < 0)
		goto fail;
	return fd;
fail:;
	int err = errno;
	if (fd >= 0)
		close(fd);
	*error_r = rg_strdup_printf("listen(%s, %u) failed: %s", addr->text, addr->port,
				    strerror(err));
	return -err;
}
