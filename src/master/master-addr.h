/* master-addr.h — turn a listener's address list into socket addresses.
 *
 * The list is Dovecot's `listen`/`address` value: entries separated by commas
 * and/or spaces; `*` is every IPv4 address, `::` every IPv6 address (bound
 * with IPV6_V6ONLY so both can coexist), an IP literal (IPv6 optionally in
 * brackets) is used as is, anything else is resolved with getaddrinfo. The
 * result is never empty on success. */
#ifndef RG_MASTER_ADDR_H
#define RG_MASTER_ADDR_H

#include <stdbool.h>
#include <sys/socket.h>

struct master_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	bool v6only;   /* set for "::" so it does not grab IPv4 too */
	char text[64]; /* numeric host for messages: "127.0.0.1", "::" */
	unsigned port;
};

/* Parse list for port. On success returns 0 with a fresh array in *addrs_r
 * (rg_free it) and its size in *count_r; on failure -EINVAL and an allocated
 * message in *error_r. */
int master_addr_parse(const char *list, unsigned port, struct master_addr **addrs_r,
		      unsigned *count_r, char **error_r);

/* Create a listening socket for addr: SO_REUSEADDR (and SO_REUSEPORT when
 * reuse_port), non-blocking, close-on-exec, listen(backlog). Returns the fd or
 * -errno; *error_r then says `listen(127.0.0.1, 10143) failed: ...`
 * (allocated). */
int master_addr_listen(const struct master_addr *addr, bool reuse_port, int backlog,
		       char **error_r);

#endif
