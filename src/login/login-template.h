/* login-template.h — high-security mode's template login process (a
 * zygote). master starts it like any login process (fork + exec, `-T`);
 * it reads the configuration, the certificate text and the listeners,
 * chroots, and then only forks: one child per LOGIN_SPAWN from master,
 * made with CLONE_PARENT so that the child is master's own (reaped, limited
 * and listed by master like an exec'd login process). The template never
 * accepts, never touches a client byte, never creates a DRBG (wolfSSL is
 * first initialised in a child, at its first TLS byte), so no two children
 * share random state. master replaces it by a fresh exec every
 * login_template_forks children and at once after a child dies of a
 * signal (docs/architecture.md). */
#ifndef RG_LOGIN_TEMPLATE_H
#define RG_LOGIN_TEMPLATE_H

/* The template's loop on its master channel (fd chan_fd). Returns only in
 * a new child, whose fds chan_fd and chan_fd + 1 are then its own master
 * and auth channels (close-on-exec, blocking: the caller sets them up as
 * any login process does); the template exits when master closes the
 * channel. */
void login_template_serve(int chan_fd);

#endif
