"""login_max_preauth_ip_connections: one address may hold only so many
pre-login connections, counted across every login process and both
protocols; the next is turned away before its greeting (on an ssl port
before the handshake), other addresses and login_trusted_networks are not
affected, a login or a disconnect gives the slot back, and counts that a
killed login process never gave back are forgotten after two epochs
(login_timeout + 5 s each)."""
import os
import signal
import socket
import ssl
import time
import unittest

import rgenv

LIMIT = 3
LOGIN_TIMEOUT = 4
EPOCH = LOGIN_TIMEOUT + 5
TRUSTED = "127.0.0.9"
CONF = """login_max_preauth_ip_connections = %d
login_timeout = %d secs
login_trusted_networks = %s
""" % (LIMIT, LOGIN_TIMEOUT, TRUSTED)


def connect(port, src):
    s = socket.socket()
    s.bind((src, 0))
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    return s


def greeted(port, src):
    """a connection from src and its first line"""
    s = connect(port, src)
    return s, rgenv.recv_until(s, b"\r\n")


def closed_after(s):
    """everything the server sends until it closes, or None if it does not
    close within the timeout"""
    data = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return data
            data += chunk
    except socket.timeout:
        return None
    finally:
        s.close()


def wait_admitted(port, src, deadline):
    """retry until a connection from src is greeted (True), or the deadline"""
    while time.monotonic() < deadline:
        s, line = greeted(port, src)
        s.close()
        if line.startswith(b"* OK") or line.startswith(b"+OK"):
            return True
        time.sleep(0.2)
    return False


class Limit:
    mode = None

    @classmethod
    def setUpClass(cls):
        cls.rg = rgenv.Ringgate(mode=cls.mode, tls=True, extra_conf=CONF).start()

    @classmethod
    def tearDownClass(cls):
        cls.rg.cleanup()

    def test_limit_per_address_across_protocols(self):
        rg = self.rg
        held = []
        try:
            for _ in range(LIMIT):
                s, line = greeted(rg.imap_port, "127.0.0.2")
                self.assertTrue(line.startswith(b"* OK"), line)
                held.append(s)
            # one more from the same address: a BYE instead of a greeting
            s, line = greeted(rg.imap_port, "127.0.0.2")
            self.assertTrue(line.startswith(b"* BYE [UNAVAILABLE] Too many connections"), line)
            self.assertEqual(closed_after(s), b"")
            # POP3 counts with IMAP
            s, line = greeted(rg.pop3_port, "127.0.0.2")
            self.assertTrue(line.startswith(b"-ERR [SYS/TEMP]"), line)
            self.assertEqual(closed_after(s), b"")
            # implicit TLS: closed before any handshake
            s = connect(rg.imaps_port, "127.0.0.2")
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            with self.assertRaises((ssl.SSLError, OSError)):
                ctx.wrap_socket(s).recv(100)
            s.close()
            # another address is not affected
            s, line = greeted(rg.imap_port, "127.0.0.3")
            self.assertTrue(line.startswith(b"* OK"), line)
            s.close()
            # a client that leaves gives its slot back
            held.pop().close()
            self.assertTrue(wait_admitted(rg.imap_port, "127.0.0.2", time.monotonic() + 10))
            log = rg.logs()
            self.assertIn("Too many pre-login connections from this IP "
                          "(login_max_preauth_ip_connections=%d): user=<>, rip=127.0.0.2" % LIMIT,
                          log)
        finally:
            for s in held:
                s.close()

    def test_trusted_networks_not_counted(self):
        held = []
        try:
            for _ in range(LIMIT + 2):
                s, line = greeted(self.rg.imap_port, TRUSTED)
                self.assertTrue(line.startswith(b"* OK"), line)
                held.append(s)
        finally:
            for s in held:
                s.close()


class HighPerformance(Limit, unittest.TestCase):
    mode = "performance"

    def test_login_gives_the_slot_back(self):
        rg = self.rg
        src = "127.0.0.4"
        held = []
        try:
            for _ in range(LIMIT - 1):
                held.append(greeted(rg.imap_port, src)[0])
            ctx = ssl.create_default_context(cafile=rg.cert)
            ctx.check_hostname = False
            t = ctx.wrap_socket(connect(rg.imaps_port, src))
            held.append(t)
            self.assertTrue(rgenv.recv_until(t, b"\r\n").startswith(b"* OK"))
            s, line = greeted(rg.imap_port, src)
            self.assertTrue(line.startswith(b"* BYE"), line)
            s.close()
            t.sendall(b'a LOGIN demo "demo-pass"\r\n')
            self.assertIn(b"a OK", rgenv.recv_until(t, b"a OK", timeout=20))
            # logged in: no longer pre-login, so there is room again
            self.assertTrue(wait_admitted(rg.imap_port, src, time.monotonic() + 10))
        finally:
            for s in held:
                s.close()

    def test_login_timeout_gives_the_slot_back(self):
        rg = self.rg
        src = "127.0.0.5"
        held = [greeted(rg.imap_port, src)[0] for _ in range(LIMIT)]
        try:
            s, line = greeted(rg.imap_port, src)
            self.assertTrue(line.startswith(b"* BYE"), line)
            s.close()
            for h in held:
                h.settimeout(LOGIN_TIMEOUT + 10)
                self.assertIn(b"* BYE", closed_after(h) or b"")
            self.assertTrue(wait_admitted(rg.imap_port, src, time.monotonic() + 5))
        finally:
            for s in held:
                s.close()

    def test_killed_process_counts_are_forgotten(self):
        rg = self.rg
        src = "127.0.0.6"
        held = [greeted(rg.imap_port, src)[0] for _ in range(LIMIT)]
        logins = rg.children("ringgate-login")
        self.assertTrue(logins)
        for pid in logins:
            os.kill(pid, signal.SIGKILL)
        for h in held:
            h.close()
        # master respawns login processes; their counts were never given
        # back, so the address is still full ...
        deadline = time.monotonic() + 10
        line = b""
        while time.monotonic() < deadline:
            # (a connection may reach a dying process's accept: it is
            # closed without a word, so try again)
            try:
                s, line = greeted(rg.imap_port, src)
                s.close()
                if line:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        self.assertTrue(line.startswith(b"* BYE"), line)
        # ... until two epochs have passed
        self.assertTrue(wait_admitted(rg.imap_port, src, time.monotonic() + 2 * EPOCH + 5))
        # and another address was never affected
        s, line = greeted(rg.imap_port, "127.0.0.7")
        self.assertTrue(line.startswith(b"* OK"), line)
        s.close()


class HighSecurity(Limit, unittest.TestCase):
    mode = "security"


if __name__ == "__main__":
    unittest.main()
