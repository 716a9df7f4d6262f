#include "access/access-check.h"

#include <string.h>

bool access_rules_init(struct access_rules *r, const char *allow, const char *deny,
		       const char **error_r)
{
	memset(r, 0, sizeof(*r));
	if (!login_netlist_parse(allow, &r->allow, error_r)) {
		*error_r = "login_access_allow: not an IP address or network";
		return false;
	}
	if (!login_netlist_parse(deny, &r->deny, error_r)) {
		login_netlist_free(&r->allow);
		*error_r = "login_access_deny: not an IP address or network";
		return false;
	}
	return true;
}

void access_rules_free(struct access_rules *r)
{
	login_netlist_free(&r->allow);
	login_netlist_free(&r->deny);
}

bool access_rules_allow(const struct access_rules *r, const char *rip)
{
	struct login_addr a;
	memset(&a, 0, sizeof(a));
	if (!login_addr_parse(rip, &a))
		return r->deny.count == 0; /* no address: only a checker that denies nothing allows it */
	if (login_netlist_match(&r->allow, &a))
		return true;
	return !login_netlist_match(&r->deny, &a);
}
