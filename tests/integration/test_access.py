"""Login access check (login_access_sockets, Dovecot's tcpwrap-style
lookup): the built-in checker (ringgate-access, `access`) allows 127.0.0.1
and denies 127.0.0.2 by CIDR lists; a client it allows gets the greeting,
one it denies `* BYE Access denied.` / `-ERR [AUTH] Access denied.` (also
inside TLS on imaps/pop3s) and the connection closes. A checker that is not
there, or answers nonsense, or does not answer within login_access_timeout
fails closed (BYE [UNAVAILABLE] internal error, logged), as Dovecot refuses
the client then. A checker of our own (a Python UNIX socket server in the
login chroot) shows the wire protocol and that a slow answer for one client
does not hold up another client of the same login process. Behind a PROXY
header the header's address is the one checked."""
import os
import socket
import ssl
import struct
import threading
import time
import unittest

import rgenv

DENY_BYE = b"* BYE Access denied.\r\n"
DENY_ERR = b"-ERR [AUTH] Access denied.\r\n"
FAIL_BYE = b"* BYE [UNAVAILABLE] Internal error occurred."
FAIL_ERR = b"-ERR [SYS/TEMP] Internal error occurred."


def connect(port, src="127.0.0.1"):
    s = socket.socket()
    s.bind((src, 0))
    s.settimeout(20)
    s.connect(("127.0.0.1", port))
    return s


def read_all(s, timeout=20):
    """everything until EOF"""
    s.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = s.recv(4096)
        except (ConnectionResetError, ssl.SSLError):
            break
        if not chunk:
            break
        data += chunk
    return data


def tls_connect(rg, port, src="127.0.0.1"):
    ctx = ssl.create_default_context(cafile=rg.cert)
    raw = connect(port, src)
    return ctx.wrap_socket(raw, server_hostname="localhost")


class BuiltinChecker(unittest.TestCase):
    mode = "performance"

    @classmethod
    def setUpClass(cls):
        cls.rg = rgenv.Ringgate(mode=cls.mode, tls=True, extra_conf="""
login_access_sockets = access
login_access_allow = 127.0.0.1/32 ::ffff:127.0.0.3
login_access_deny = 127.0.0.0/8
""").start()

    @classmethod
    def tearDownClass(cls):
        cls.rg.cleanup()

    def test_allowed_gets_greeting(self):
        for port, greet in ((self.rg.imap_port, b"* OK"), (self.rg.pop3_port, b"+OK")):
            with connect(port) as s:
                self.assertTrue(rgenv.recv_until(s, b"\r\n").startswith(greet))
        # a mapped-v4 range in the allow list covers the plain IPv4 address
        with connect(self.rg.imap_port, "127.0.0.3") as s:
            self.assertTrue(rgenv.recv_until(s, b"\r\n").startswith(b"* OK"))
        with tls_connect(self.rg, self.rg.imaps_port) as s:
            self.assertTrue(rgenv.recv_until(s, b"\r\n").startswith(b"* OK"))

    def test_allowed_logs_in(self):
        import imaplib
        m = imaplib.IMAP4("127.0.0.1", self.rg.imap_port, timeout=20)
        m.starttls(ssl.create_default_context(cafile=self.rg.cert))
        m.login("demo", "demo-pass")
        self.assertEqual(m.select("INBOX")[0], "OK")
        m.logout()

    def test_denied_plain(self):
        with connect(self.rg.imap_port, "127.0.0.2") as s:
            self.assertEqual(read_all(s), DENY_BYE)
        with connect(self.rg.pop3_port, "127.0.0.2") as s:
            self.assertEqual(read_all(s), DENY_ERR)
        rgenv.wait_for(lambda: "access(access): Client refused (rip=127.0.0.2" in self.rg.logs())

    def test_denied_tls(self):
        with tls_connect(self.rg, self.rg.imaps_port, "127.0.0.2") as s:
            self.assertEqual(read_all(s), DENY_BYE)
        with tls_connect(self.rg, self.rg.pop3s_port, "127.0.0.2") as s:
            self.assertEqual(read_all(s), DENY_ERR)

    def test_denied_client_sending_early(self):
        # a denied client that talks first gets the same answer, nothing else
        with connect(self.rg.imap_port, "127.0.0.2") as s:
            s.sendall(b"a LOGIN demo demo-pass\r\n")
            self.assertEqual(read_all(s), DENY_BYE)

    def test_allowed_client_sending_early(self):
        # bytes before the greeting are kept and answered after it
        with connect(self.rg.imap_port) as s:
            s.sendall(b"a1 CAPABILITY\r\n")
            data = rgenv.recv_until(s, b"a1 OK")
            self.assertTrue(data.startswith(b"* OK"))
            self.assertIn(b"a1 OK", data)

    def test_checker_process(self):
        # runs as its own process, unprivileged, and the socket is the
        # login user's only
        pids = self.rg.children("ringgate-access")
        self.assertEqual(len(pids), 1)
        st = os.stat(os.path.join(self.rg.base_dir, "login", "access"))
        self.assertEqual(st.st_mode & 0o777, 0o600)
        if rgenv.is_root():
            with open("/proc/%d/status" % pids[0]) as f:
                status = f.read().splitlines()
            uid = [ln for ln in status if ln.startswith("Uid:")][0].split()[1:]
            self.assertNotIn("0", uid)
            if not rgenv.sanitized():
                self.assertIn("Seccomp:\t2", status)

    def test_checker_restarts(self):
        old = self.rg.children("ringgate-access")[0]
        os.kill(old, 9)
        rgenv.wait_for(lambda: [p for p in self.rg.children("ringgate-access") if p != old])
        with connect(self.rg.imap_port) as s:
            self.assertTrue(rgenv.recv_until(s, b"\r\n").startswith(b"* OK"))
        with connect(self.rg.imap_port, "127.0.0.2") as s:
            self.assertEqual(read_all(s), DENY_BYE)


class BuiltinCheckerSecurity(BuiltinChecker):
    mode = "security"

    def test_checker_restarts(self):
        pass  # once is enough


class BuiltinCheckerReload(unittest.TestCase):
    """a reload with new lists restarts the checker with them"""

    def test_reload_changes_lists(self):
        rg = rgenv.Ringgate(mode="performance", extra_conf="""
login_access_sockets = access
login_access_deny = 127.0.0.2
""").start()
        try:
            with connect(rg.imap_port, "127.0.0.2") as s:
                self.assertEqual(read_all(s), DENY_BYE)
            old = rg.children("ringgate-access")
            with open(rg.conf) as f:
                conf = f.read()
            with open(rg.conf, "w") as f:
                f.write(conf.replace("login_access_deny = 127.0.0.2",
                                     "login_access_deny = 127.0.0.5"))
            self.assertEqual(rg.ctl("reload").stdout.strip(), "OK")
            rgenv.wait_for(lambda: [p for p in rg.children("ringgate-access") if p not in old])
            with connect(rg.imap_port, "127.0.0.2") as s:
                self.assertTrue(rgenv.recv_until(s, b"\r\n").startswith(b"* OK"))
            with connect(rg.imap_port, "127.0.0.5") as s:
                self.assertEqual(read_all(s), DENY_BYE)
            # switching the built-in checker off needs a restart
            with open(rg.conf, "w") as f:
                f.write(conf.replace("login_access_sockets = access\n", "")
                        .replace("login_access_deny = 127.0.0.2\n", ""))
            out = rg.ctl("reload", check=False)
            self.assertNotEqual(out.returncode, 0)
            self.assertIn("needs a restart", out.stderr)
        finally:
            rg.cleanup()


class ConfigErrors(unittest.TestCase):
    """bad access settings stop start-up with file:line: reason"""

    def check(self, extra, expect):
        rg = rgenv.Ringgate(mode="security", extra_conf=extra)
        try:
            out = rg.ctl("-n", check=False)
            self.assertNotEqual(out.returncode, 0)
            self.assertRegex(out.stderr, r"ringgate.conf:\d+: .*" + expect)
        finally:
            rg.cleanup()

    def test_lists_without_builtin(self):
        self.check("login_access_allow = 10.0.0.0/8\n",
                   "login_access_allow is set, but login_access_sockets does not name")
        self.check("login_access_sockets = mine\nlogin_access_deny = 10.0.0.0/8\n",
                   "login_access_deny is set")

    def test_bad_values(self):
        self.check("login_access_sockets = ../etc/x\n", "socket names are")
        self.check("login_access_sockets = access\nlogin_access_deny = example.com\n",
                   "not an IP address or network")
        self.check("login_access_timeout = 0\n", "greater than 0")


class OwnChecker(threading.Thread):
    """A checker of our own behind a socket name: answers "1\\n" for every
    address except those in `slow` (answered after delay secs) and those in
    `bad` (answered with garbage). Records each request line."""

    def __init__(self, path, slow=(), delay=0, bad=(), answer_slow=b"1\n"):
        super().__init__(daemon=True)
        self.path, self.slow, self.delay, self.bad = path, slow, delay, bad
        self.answer_slow = answer_slow
        self.requests = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if os.path.exists(path):
            os.unlink(path)
        self.sock.bind(path)
        os.chmod(path, 0o666)
        self.sock.listen(64)
        self.stopped = False

    def serve(self, conn):
        line = b""
        while not line.endswith(b"\n"):
            chunk = conn.recv(200)
            if not chunk:
                return
            line += chunk
        self.requests.append(line)
        rip = line.split()[1].decode()
        if rip in self.bad:
            conn.sendall(b"yes\n")
        elif rip in self.slow:
            time.sleep(self.delay)
            try:
                conn.sendall(self.answer_slow)
            except OSError:
                pass
        else:
            conn.sendall(b"1\n")
        conn.close()

    def run(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def stop(self):
        self.stopped = True
        self.sock.close()


class OwnCheckerTests(unittest.TestCase):
    """login_access_sockets naming a socket of our own, one of them down"""

    @classmethod
    def setUpClass(cls):
        cls.rg = rgenv.Ringgate(mode="performance", extra_conf="""
login_access_sockets = mine
login_access_timeout = 5 secs
haproxy_trusted_networks = 127.0.0.1
""", imap_extra="""  inet_listener imap-haproxy {
    port = %d
    haproxy = yes
  }
""" % rgenv.free_port())
        import re
        with open(cls.rg.conf) as f:
            cls.haproxy_port = int(re.search(r"imap-haproxy \{\n    port = (\d+)",
                                             f.read()).group(1))
        os.makedirs(os.path.join(cls.rg.base_dir, "login"), exist_ok=True)
        cls.checker = OwnChecker(os.path.join(cls.rg.base_dir, "login", "mine"),
                                 slow=("127.0.0.2",), delay=60, bad=("127.0.0.4",))
        cls.checker.start()
        cls.rg.start()

    @classmethod
    def tearDownClass(cls):
        cls.rg.cleanup()
        cls.checker.stop()

    def test_request_line(self):
        with connect(self.rg.pop3_port) as s:
            self.assertTrue(rgenv.recv_until(s, b"\r\n").startswith(b"+OK"))
        self.assertIn(b"pop3 127.0.0.1 127.0.0.1\n", self.checker.requests)

    def test_slow_answer_does_not_block_others(self):
        slow = connect(self.rg.imap_port, "127.0.0.2")
        try:
            rgenv.wait_for(lambda: any(b" 127.0.0.2 " in r for r in self.checker.requests))
            for _ in range(5):
                with connect(self.rg.imap_port) as s:
                    self.assertTrue(rgenv.recv_until(s, b"\r\n").startswith(b"* OK"))
            # served while the slow one still waits for its answer
            slow.setblocking(False)
            with self.assertRaises(BlockingIOError):
                slow.recv(100)
            slow.setblocking(True)
            # then login_access_timeout ends the wait: fail closed
            data = read_all(slow)
            self.assertTrue(data.startswith(FAIL_BYE), data)
        finally:
            slow.close()
        rgenv.wait_for(lambda: "access(mine): Timed out while waiting for reply" in self.rg.logs())

    def test_invalid_answer_fails_closed(self):
        with connect(self.rg.pop3_port, "127.0.0.4") as s:
            self.assertTrue(read_all(s).startswith(FAIL_ERR))
        rgenv.wait_for(lambda: "access(mine): Invalid input" in self.rg.logs())

    def test_proxy_header_address_is_checked(self):
        # the proxy (127.0.0.1) is allowed, its client 127.0.0.2 is slow
        # -> times out; 198.51.100.7 is allowed
        hdr = b"PROXY TCP4 198.51.100.7 127.0.0.1 40000 143\r\n"
        with connect(self.haproxy_port) as s:
            s.sendall(hdr)
            self.assertTrue(rgenv.recv_until(s, b"\r\n").startswith(b"* OK"))
        self.assertIn(b"imap 198.51.100.7 127.0.0.1\n", self.checker.requests)
        with connect(self.haproxy_port) as s:
            s.sendall(b"PROXY TCP4 127.0.0.4 127.0.0.1 40001 143\r\n")
            self.assertTrue(read_all(s).startswith(FAIL_BYE))


class CheckerDown(unittest.TestCase):
    """no one listens on the named socket: every client is refused at
    once with an internal error (Dovecot: connect() failed, client closed)"""

    @classmethod
    def setUpClass(cls):
        cls.rg = rgenv.Ringgate(mode="security", extra_conf="login_access_sockets = nobody\n")
        cls.rg.start(wait=False)

    @classmethod
    def tearDownClass(cls):
        cls.rg.cleanup()

    def test_refused_with_internal_error(self):
        def answer():
            s = socket.socket()
            try:
                s.settimeout(5)
                s.connect(("127.0.0.1", self.rg.imap_port))
                return read_all(s, timeout=5)
            except OSError:
                return None
            finally:
                s.close()
        data = rgenv.wait_for(answer)
        self.assertTrue(data.startswith(FAIL_BYE), data)
        with connect(self.rg.pop3_port) as s:
            self.assertTrue(read_all(s).startswith(FAIL_ERR))
        rgenv.wait_for(lambda: "access(nobody): connect(/nobody) failed" in self.rg.logs()
                       if rgenv.is_root() else "access(nobody): connect(" in self.rg.logs())


if __name__ == "__main__":
    unittest.main()
