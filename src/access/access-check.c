#include "access/access-check.h"

#include <string.h>

bool access_rules_init(struct access_rules *r, const char *allow, const char *deny,
		       const char **error_r)
{
	memset(r, 0, sizeof(*r));
	if (!net_list_parse(allow, &r->allow, error_r)) {
		*error_r = "login_access_allow: not an IP address or network";
		return false;
	}
	if (!net_list_parse(deny, &r->deny, error_r)) {
		net_list_free(&r->allow);
		*error_r = "login_access_deny: not an IP address or network";
		return false;
	}
	return true;
}

void access_rules_free(struct access_rules *r)
{
	net_list_free(&r->allow);
	net_list_free(&r->deny);
}

bool access_rules_allow(const struct access_rules *r, const char *rip)
{
	struct net_addr a;
	memset(&a, 0, sizeof(a));
	if (!net_addr_parse(rip, &a))
		return r->deny.count == 0; /* no address: only a checker that denies nothing allows it */
	if (net_list_match(&r->allow, &a))
		return true;
	return !net_list_match(&r->deny, &a);
}
