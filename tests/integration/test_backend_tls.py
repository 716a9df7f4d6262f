"""Passdb proxy to a backend over TLS: the front ringgate's login process
is the TLS client (src/tls client mode) towards a second, real ringgate with
ssl = yes: implicit TLS (ssl=any-cert, ssl=yes verified against
ssl_client_ca_file) and STARTTLS / STLS (starttls=…), from plaintext and TLS
clients, a 10 MB message byte-exact through both TLS sessions, and a backend
certificate that does not verify (NO [UNAVAILABLE], logged)."""
import hashlib
import imaplib
import poplib
import socket
import ssl
import time
import unittest

import rgenv

BIG = 4 * 1024 * 1024 + 5


def big_message():
    line = b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n"
    return b"From: big@example.com\r\nSubject: big\r\n\r\n" + (line * (BIG // len(line) + 1))[:BIG]


class BackendTLSBase:
    mode = "performance"

    @classmethod
    def setUpClass(cls):
        cls.backend = rgenv.Ringgate(mode="performance", tls=True,
                                     users={"demo": "demo-pass", "alice": "alice secret"}).start()
        cls.backend.deliver("alice", big_message())
        be = cls.backend
        cls.front = rgenv.Ringgate(mode=cls.mode, tls=True, users={"x": "y"},
                                   extra_conf="ssl_client_ca_file = %s\n" % be.cert)
        entries = [
            "anycert:{PLAIN}pw::::::proxy host=127.0.0.1 port=%d ssl=any-cert destuser=demo "
            "pass=demo-pass" % be.imaps_port,
            "alice:{PLAIN}alice secret::::::proxy host=127.0.0.1 port=%d ssl=yes" % be.imaps_port,
            "stls:{PLAIN}pw::::::proxy host=127.0.0.1 port=%d starttls=yes destuser=demo "
            "pass=demo-pass" % be.imap_port,
            "pstls:{PLAIN}pw::::::proxy host=127.0.0.1 port=%d starttls=any-cert destuser=demo "
            "pass=demo-pass" % be.pop3_port,
            "pssl:{PLAIN}pw::::::proxy host=127.0.0.1 port=%d ssl=yes destuser=demo "
            "pass=demo-pass" % be.pop3s_port,
            "badval:{PLAIN}pw::::::proxy host=127.0.0.1 port=%d ssl=maybe" % be.imaps_port,
        ]
        with open(cls.front.passwd, "w") as f:
            f.write("\n".join(entries) + "\n")
        cls.front.start()
        cls.ctx = ssl.create_default_context(cafile=cls.front.cert)

    @classmethod
    def tearDownClass(cls):
        cls.front.cleanup()
        cls.backend.cleanup()

    def wait_log(self, rg, text, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in rg.logs():
                return
            time.sleep(0.1)
        self.fail("%r not in the log:\n%s" % (text, rg.logs()[-4000:]))

    def login_select(self, m, user, pw, count=b"3"):
        typ, data = m.login(user, pw)
        self.assertEqual(typ, "OK", data)
        typ, data = m.select("INBOX")
        self.assertEqual(data, [count])
        typ, data = m.fetch("1", "(BODY[HEADER.FIELDS (SUBJECT)])")
        self.assertIn(b"Subject: Welcome", data[0][1])
        m.logout()

    def test_implicit_tls_any_cert_from_plaintext_client(self):
        m = imaplib.IMAP4("127.0.0.1", self.front.imap_port, timeout=30)
        self.login_select(m, "anycert", "pw")
        self.wait_log(self.front, "proxy(anycert): started proxying to 127.0.0.1:%d" % self.backend.imaps_port)

    def test_implicit_tls_verified_big_message_from_tls_client(self):
        s = socket.create_connection(("127.0.0.1", self.front.imaps_port), timeout=60)
        t = self.ctx.wrap_socket(s, server_hostname="localhost")
        rgenv.recv_until(t, b"\r\n")
        t.sendall(b'a LOGIN alice "alice secret"\r\nb SELECT INBOX\r\n')
        data = rgenv.recv_until(t, b"b OK", timeout=30)
        self.assertIn(b"a OK", data)
        t.sendall(b"c FETCH 4 BODY.PEEK[]\r\n")
        data = rgenv.recv_until(t, b"c OK", limit=BIG + (1 << 20), timeout=120)
        want = big_message()
        start = data.index(b"}\r\n") + 3
        self.assertEqual(hashlib.sha256(bytes(data[start:start + len(want)])).hexdigest(),
                         hashlib.sha256(want).hexdigest())
        t.sendall(b"d LOGOUT\r\n")
        rgenv.recv_until(t, b"d OK")
        t.close()

    def test_imap_starttls_verified(self):
        m = imaplib.IMAP4("127.0.0.1", self.front.imap_port, timeout=30)
        self.login_select(m, "stls", "pw")
        self.wait_log(self.front, "proxy(stls): started proxying to 127.0.0.1:%d" % self.backend.imap_port)

    def test_pop3_stls_and_pop3s(self):
        for user in ("pstls", "pssl"):
            p = poplib.POP3("127.0.0.1", self.front.pop3_port, timeout=30)
            p.user(user)
            self.assertTrue(p.pass_("pw").startswith(b"+OK"))
            self.assertEqual(p.stat()[0], 3)
            p.quit()

    def test_invalid_ssl_value(self):
        s = socket.create_connection(("127.0.0.1", self.front.imap_port), timeout=30)
        rgenv.recv_until(s, b"\r\n")
        s.sendall(b"a LOGIN badval pw\r\n")
        reply = rgenv.recv_until(s, b"\r\n")
        self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
        self.wait_log(self.front, "proxy(badval): invalid ssl value 'maybe'")
        s.close()


class BackendTLSPerformance(BackendTLSBase, unittest.TestCase):
    mode = "performance"


class BackendTLSSecurity(BackendTLSBase, unittest.TestCase):
    mode = "security"


class BackendTLSWrongCA(unittest.TestCase):
    """ssl=yes against a backend whose certificate the CA file does not
    vouch for: NO [UNAVAILABLE], logged with the backend's address."""

    def test_wrong_ca(self):
        backend = rgenv.Ringgate(mode="performance", tls=True).start()
        front = rgenv.Ringgate(mode="performance", tls=True, users={"x": "y"})
        try:
            with open(front.conf, "a") as f:
                f.write("ssl_client_ca_file = %s\n" % front.cert)
            with open(front.passwd, "w") as f:
                f.write("demo:{PLAIN}demo-pass::::::proxy host=127.0.0.1 port=%d ssl=yes\n"
                        % backend.imaps_port)
            front.start()
            s = socket.create_connection(("127.0.0.1", front.imap_port), timeout=30)
            rgenv.recv_until(s, b"\r\n")
            s.sendall(b"a LOGIN demo demo-pass\r\n")
            reply = rgenv.recv_until(s, b"\r\n")
            self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
            deadline = time.time() + 20
            while "127.0.0.1:%d: TLS handshake" % backend.imaps_port not in front.logs():
                self.assertLess(time.time(), deadline, front.logs()[-3000:])
                time.sleep(0.1)
            s.close()
        finally:
            front.cleanup()
            backend.cleanup()


if __name__ == "__main__":
    unittest.main()
