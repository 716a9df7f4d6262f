/* login-sandbox.h — the system calls a login process may make once it
 * serves clients. Everything else (open, exec, connect, ptrace, kill, …)
 * kills it: it can reach no file, no other process and no new socket, only
 * the ring, its inherited channels and the socketpairs of TLS hand-offs. */
#ifndef RG_LOGIN_SANDBOX_H
#define RG_LOGIN_SANDBOX_H

#include <stddef.h>

const int *login_sandbox_syscalls(size_t *count_r);
/* install the filter: 0 or -errno with *error_r */
int login_sandbox_enter(const char **error_r);

#endif
