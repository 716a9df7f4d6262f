#include "lib/privs.h"
#include "lib/alloc.h"
#include "lib/log.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
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

bool privs_drop_internal(const char *base_dir, const char *user)
{
	if (geteuid() != 0)
		return false;
	const struct passwd *pw = getpwnam(user);
	if (pw == NULL)
		log_fatal("default_internal_user %s does not exist", user);
	if (pw->pw_uid == 0)
		log_fatal("default_internal_user %s is root: refusing", user);
	uid_t uid = pw->pw_uid;
	gid_t gid = pw->pw_gid;
	char *dir = rg_strdup_printf("%s/login", base_dir);
	if (chroot(dir) < 0 || chdir("/") < 0)
		log_fatal("chroot(%s): %m", dir);
	rg_free(dir);
	const char *error;
	int ret = privs_drop(uid, gid, false, &error);
	if (ret < 0)
		log_fatal("dropping privileges to %s: %s: %s", user, error, strerror(-ret));
	return true;
}
