/* auth-dns.h — DNS names in passdb host= (Dovecot resolves them in auth
 * through its dns-client service; so do we, through a child of auth).
 *
 * The login process is chrooted and sandboxed without DNS, and auth's own
 * sandbox has no sockets to the network, so auth starts a resolver child
 * (`ringgate-auth -D USER`, fork+exec before auth loads any password) that
 * runs as default_internal_user under a seccomp list of its own and answers
 * IPC_DNS_LOOKUP (F_HOST = a name) with IPC_DNS_RESULT (F_HOST = the first
 * address getaddrinfo gives, or F_REASON), one lookup at a time, in order.
 * auth adds the address as the passdb field hostip; host stays the name (the
 * backend certificate's name check and the logs). */
#ifndef RG_AUTH_DNS_H
#define RG_AUTH_DNS_H

#include <sys/types.h>

/* Fork+exec the resolver (exe: this binary) as user. 0 with *fd_r (auth's
 * end of the SEQPACKET channel, non-blocking, close-on-exec) and *pid_r,
 * or -errno. */
int auth_dns_spawn(const char *exe, const char *user, int *fd_r, pid_t *pid_r);

/* The resolver's main (fd 3: the channel): drops to user, sandboxes and
 * answers until auth closes the channel. Does not return. */
void auth_dns_main(const char *user) __attribute__((noreturn));

#endif
