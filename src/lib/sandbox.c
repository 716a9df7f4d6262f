#include "lib/sandbox.h"
#include "lib/alloc.h"
#include "lib/log.h"
#include "lib/sanitizer.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define SANDBOX_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SANDBOX_ARCH AUDIT_ARCH_AARCH64
#endif

bool sandbox_seccomp_supported(void)
{
#if defined(RG_SANITIZER) || !defined(SANDBOX_ARCH)
	return false;
#else
	return true;
#endif
}

int sandbox_seccomp(const int *syscalls, size_t count, const char **error_r)
{
	if (!sandbox_seccomp_supported())
		return 0;
#ifdef SANDBOX_ARCH
	/* load arch; foreign: kill. load nr; x32 numbers (bit 30): kill.
	 * one compare per allowed call, jumping to ALLOW; else kill. */
	size_t len = 5 + count + 2;
	struct sock_filter *f = rg_calloc(len, sizeof(*f));
	size_t i = 0;
	f[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					      offsetof(struct seccomp_data, arch));
	f[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SANDBOX_ARCH, 1, 0);
	f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
	f[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					      offsetof(struct seccomp_data, nr));
	f[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000,
					      (uint8_t)(count), 0);
	for (size_t k = 0; k < count; k++) {
		/* to ALLOW, which is after the remaining compares and KILL */
		uint8_t to_allow = (uint8_t)(count - k);
		f[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
						      (uint32_t)syscalls[k], to_allow, 0);
	}
	f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
	f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	struct sock_fprog prog = { .len = (unsigned short)len, .filter = f };
	int ret = 0;
	if (count > 200) {
		*error_r = "too many system calls for one filter";
		ret = -EINVAL;
	} else if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		*error_r = "PR_SET_NO_NEW_PRIVS";
		ret = -errno;
	} else if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0) {
		*error_r = "seccomp(SECCOMP_SET_MODE_FILTER)";
		ret = -errno;
	}
	rg_free(f);
	return ret;
#else
	(void)syscalls;
	(void)count;
	*error_r = "no seccomp filter for this architecture";
	return -ENOTSUP;
#endif
}

void sandbox_enter_helper(const int *extra, size_t extra_count)
{
	static const int helper[] = { SANDBOX_HELPER_CALLS };
	size_t n = sizeof(helper) / sizeof(helper[0]);
	int calls[96];
	if (n + extra_count > sizeof(calls) / sizeof(calls[0]))
		log_fatal("seccomp sandbox: %zu system calls: too many", n + extra_count);
	memcpy(calls, helper, sizeof(helper));
	for (size_t i = 0; i < extra_count; i++)
		calls[n + i] = extra[i];
	(void)prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	const char *error;
	int ret = sandbox_seccomp(calls, n + extra_count, &error);
	if (ret < 0)
		log_fatal("seccomp sandbox: %s: %s", error, strerror(-ret));
}
