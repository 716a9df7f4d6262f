"""High-security hand-offs while the login user has many fds in flight.

The kernel refuses to pass an fd (ETOOMANYREFS) while the sending user has
more passed-but-unreceived fds, over all its processes, than the sender's
RLIMIT_NOFILE. Every login process runs as default_login_user, and in a
burst of high-security logins master (forking workers) has not yet read the
last hand-offs: with a login process's old limit of 68 fds, hand-offs
failed ('Too many references') and clients got [UNAVAILABLE]. Here a
process of the login user keeps 150 fds in flight on purpose (a socket it
never reads), and every login must still succeed."""
import array
import imaplib
import os
import pwd
import socket
import unittest

import rgenv

IN_FLIGHT = 150


def hold_fds_in_flight(user, n):
    """Fork a child as user that sends n fds over a socketpair nobody reads;
    returns (pid, write end of a pipe that ends it when closed)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(w)
            pw = pwd.getpwnam(user)
            os.setgroups([])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
            a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            fd = os.open("/dev/null", os.O_RDONLY)
            for _ in range(n):
                a.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                    array.array("i", [fd]))])
            os.read(r, 1)  # until the test closes the pipe
        finally:
            os._exit(0)
    os.close(r)
    return pid, w


@unittest.skipUnless(rgenv.is_root(), "needs root (a login user to switch to)")
class HandoffInFlight(unittest.TestCase):
    def test_security_logins_with_fds_in_flight(self):
        env = rgenv.Ringgate(mode="security").start()
        pid, w = hold_fds_in_flight(env.login_user, IN_FLIGHT)
        try:
            for i in range(5):
                m = imaplib.IMAP4("127.0.0.1", env.imap_port, timeout=30)
                typ, _ = m.login("demo", "demo-pass")
                self.assertEqual(typ, "OK", env.logs()[-2000:])
                typ, data = m.select("INBOX")
                self.assertEqual(typ, "OK")
                m.logout()
            self.assertNotIn("hand-off to master failed", env.logs())
        finally:
            os.close(w)
            os.waitpid(pid, 0)
            env.cleanup()


if __name__ == "__main__":
    unittest.main()
