/* master-notify.h — systemd's readiness protocol (Type=notify), by hand.
 *
 * When systemd starts the master it sets NOTIFY_SOCKET to a datagram socket
 * (a path, or "@name" for the abstract namespace). master_notify_init()
 * remembers it and removes it from the environment so no child inherits it;
 * master_notify() then sends one datagram such as "READY=1\nMAINPID=123".
 * Without NOTIFY_SOCKET both do nothing. No libsystemd. */
#ifndef RG_MASTER_NOTIFY_H
#define RG_MASTER_NOTIFY_H

/* 1 when a notify socket is set, 0 when not, -1 when it is malformed
 * (too long, not absolute or abstract): then it is ignored. */
int master_notify_init(void);

/* Send state (e.g. "READY=1", "STOPPING=1", "RELOADING=1"). 0 when sent
 * or nothing to do, -errno on failure (the caller logs it; never fatal). */
int master_notify(const char *state);

#endif
