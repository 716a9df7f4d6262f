/* sandbox.h — a seccomp filter from an allow-list of system calls.
 *
 * Everything not on the list kills the whole process (SECCOMP_RET_KILL_PROCESS,
 * the kernel reports SIGSYS), so a bug or an exploit in code that meets
 * unauthenticated clients cannot open files, exec, connect or ptrace. The
 * filter also refuses a foreign architecture (x32 / i386 numbering). Needs
 * PR_SET_NO_NEW_PRIVS (set here). Sanitizer builds skip the filter: their
 * runtimes make system calls of their own. */
#ifndef RG_SANDBOX_H
#define RG_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>

/* 0, or -errno with *error_r (static text). */
int sandbox_seccomp(const int *syscalls, size_t count, const char **error_r);
/* false in sanitizer builds, where sandbox_seccomp() does nothing */
bool sandbox_seccomp_supported(void);

#endif
