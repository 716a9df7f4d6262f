/* access-check.h — the built-in login access checker's decision
 * (ringgate-access, login_access_sockets = access): tcpwrap's order over
 * login_access_allow and login_access_deny. An address in the allow list is
 * allowed; else one in the deny list is denied; else allowed. IPv4-mapped
 * IPv6 addresses match IPv4 ranges (lib/net.h). */
#ifndef RG_ACCESS_CHECK_H
#define RG_ACCESS_CHECK_H

#include "lib/net.h"

#include <stdbool.h>

struct access_rules {
	struct net_list allow, deny;
};

/* false with *error_r (static text, naming the list) on a bad list */
bool access_rules_init(struct access_rules *r, const char *allow, const char *deny,
		       const char **error_r);
void access_rules_free(struct access_rules *r);
/* the decision for a client address as the request carries it; one that
 * is not an IP address ("-": unknown) is denied when the deny list is not
 * empty */
bool access_rules_allow(const struct access_rules *r, const char *rip);

#endif
