#include "lib/privs.h"
#include "lib/alloc.h"
#include "lib/log.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int drop(uid_t uid, gid_t gid, const gid_t *groups, size_t n, const char **error_r);

static bool privs_chrooted;
#ifdef __SANITIZE_ADDRESS__
/* LeakSanitizer reads /proc at exit, which a chroot hides, and then
 * aborts: skip its check in a chrooted process (the others keep it) */
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void)
{
	return privs_chrooted ? 1 : 0;
}
#endif

int privs_chroot(const char *dir)
{
	if (chroot(dir) < 0)
		return -errno;
	privs_chrooted = true;
	return 0;
}

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

void privs_drop_internal(const char *base_dir, const char *user)
{
	if (geteuid() != 0)
		return;
	const struct passwd *pw = getpwnam(user);
	if (pw == NULL)
		log_fatal("default_internal_user %s does not exist", user);
	if (pw->pw_uid == 0)
		log_fatal("default_internal_user %s is root: refusing", user);
	uid_t uid = pw->pw_uid;
	gid_t gid = pw->pw_gid;
	char *dir = rg_strdup_printf("%s/login", base_dir);
	int err = privs_chroot(dir);
	if (err < 0 || chdir("/") < 0)
		log_fatal("chroot(%s): %s", dir, strerror(err < 0 ? -err : errno));
	rg_free(dir);
	const char *error;
	int ret = privs_drop(uid, gid, false, &error);
	if (ret < 0)
		log_fatal("dropping privileges to %s: %s: %s", user, error, strerror(-ret));
}

/* capget/capset without libcap: version 3 takes two 32-bit words */
static int caps_set(uint32_t bits)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[2];
	memset(data, 0, sizeof(data));
	data[0].effective = data[0].permitted = data[0].inheritable = bits;
	return syscall(SYS_capset, &hdr, data) < 0 ? -errno : 0;
}

static int caps_get(uint32_t *any_r)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[2];
	if (syscall(SYS_capget, &hdr, data) < 0)
		return -errno;
	*any_r = data[0].effective | data[0].permitted | data[0].inheritable |
		 data[1].effective | data[1].permitted | data[1].inheritable;
	return 0;
}

int privs_chroot_keep(const char **error_r)
{
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) {
		*error_r = "prctl(PR_SET_KEEPCAPS)";
		return -errno;
	}
	return 0;
}

int privs_chroot_pass(const char **error_r)
{
	int ret;
	/* the drop cleared the effective set; permitted is still root's */
	if ((ret = caps_set(1U << CAP_SYS_CHROOT)) < 0) {
		*error_r = "capset(CAP_SYS_CHROOT)";
		return ret;
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_SYS_CHROOT, 0, 0) < 0) {
		*error_r = "prctl(PR_CAP_AMBIENT_RAISE)";
		return -errno;
	}
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) {
		*error_r = "prctl(PR_SET_KEEPCAPS, 0)";
		return -errno;
	}
	return 0;
}

int privs_worker_jail(const char *dir, const char *home, const char **error_r)
{
	int ret;
	if (dir != NULL) {
		tzset();
		if ((ret = privs_chroot(dir)) < 0) {
			*error_r = "chroot";
			return ret;
		}
		if (chdir(home != NULL && *home != '\0' ? home : "/") < 0 && chdir("/") < 0) {
			*error_r = "chdir after chroot";
			return -errno;
		}
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) {
		*error_r = "prctl(PR_CAP_AMBIENT_CLEAR_ALL)";
		return -errno;
	}
	uint32_t any;
	if ((ret = caps_get(&any)) < 0) {
		*error_r = "capget";
		return ret;
	}
	if (any != 0 && geteuid() != 0) {
		if ((ret = caps_set(0)) < 0) {
			*error_r = "capset(0)";
			return ret;
		}
		if ((ret = caps_get(&any)) < 0 || any != 0) {
			*error_r = "capabilities were not dropped";
			return ret < 0 ? ret : -EPERM;
		}
	}
	return 0;
}
