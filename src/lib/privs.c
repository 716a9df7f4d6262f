#include "lib/privs.h"

#include <errno.h>
#include <grp.h>
#include <unistd.h>

int privs_drop(uid_t uid, gid_t gid, bool with_group, const char **error_r)
{
	if (setgroups(with_group ? 1 : 0, with_group ? &gid : NULL) < 0) {
		*error_r = "setgroups";
		return -errno;
	}
	if (setresgid(gid, gid, gid) < 0) {
		*error_r = "setresgid";
		return -errno;
	}
	if (setresuid(uid, uid, uid) < 0) {
		*error_r = "setresuid";
		return -errno;
	}
	/* never trust that it took */
	uid_t r, e, s;
	gid_t rg, eg, sg;
	if (getresuid(&r, &e, &s) < 0 || r != uid || e != uid || s != uid ||
	    getresgid(&rg, &eg, &sg) < 0 || rg != gid || eg != gid || sg != gid) {
		*error_r = "privileges were not dropped";
		return -EPERM;
	}
	if (uid != 0 && setuid(0) == 0) {
		*error_r = "root could be regained after dropping privileges";
		return -EPERM;
	}
	return 0;
}
