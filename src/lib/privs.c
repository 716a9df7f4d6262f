#include "lib/privs.h"

#include <errno.h>
#include <grp.h>
#include <unistd.h>

static int drop(uid_t uid, gid_t gid, const gid_t *groups, size_t n, const char **error_r);

int privs_drop(uid_t uid, gid_t gid, bool with_group, const char **error_r)
{
	return drop(uid, gid, with_group ? &gid : NULL, with_group ? 1 : 0, error_r);
}

int privs_drop_groups(uid_t uid, gid_t gid, const gid_t *extra, size_t n, const char **error_r)
{
	gid_t groups[65];
	if (n > 64) {
		*error_r = "too many groups";
		return -EINVAL;
	}
	groups[0] = gid;
	for (size_t i = 0; i < n; i++)
		groups[i + 1] = extra[i];
	return drop(uid, gid, groups, n + 1, error_r);
}

static int drop(uid_t uid, gid_t gid, const gid_t *groups, size_t n, const char **error_r)
{
	if (setgroups(n, groups) < 0) {
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
