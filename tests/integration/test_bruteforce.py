"""Brute force from one address: each wrong password from it waits longer
(auth_failure_delay plus a per-IP penalty that doubles), while another
address is answered at the base delay and a right password at once; the
waiting never blocks the login process (requests overlap)."""
import imaplib
import poplib
import socket
import ssl
import threading
import time
import unittest

import rgenv


def login_time(port, src, password):
    s = socket.socket()
    s.bind((src, 0))
    s.settimeout(30)
    s.connect(("127.0.0.1", port))
    rgenv.recv_until(s, b"\r\n")
    start = time.monotonic()
    s.sendall(b'a LOGIN demo "%s"\r\n' % password.encode())
    reply = rgenv.recv_until(s, b"\r\n", timeout=30)
    elapsed = time.monotonic() - start
    s.close()
    return elapsed, reply


class BruteForce(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.rg = rgenv.Ringgate(mode="performance", failure_delay="1 secs").start()

    @classmethod
    def tearDownClass(cls):
        cls.rg.cleanup()

    def test_penalty_grows_per_address_only(self):
        port = self.rg.imap_port
        times = []
        for _ in range(3):
            t, reply = login_time(port, "127.0.0.2", "wrong")
            self.assertIn(b"a NO", reply)
            times.append(t)
        # the same address waits longer each time
        self.assertGreater(times[1], times[0] + 0.5, times)
        self.assertGreater(times[2], times[1] + 0.5, times)
        # another address: the base delay only, and its right password at once
        other, reply = login_time(port, "127.0.0.3", "wrong")
        self.assertIn(b"a NO", reply)
        self.assertLess(other, times[0] + 0.5, (other, times))
        ok, reply = login_time(port, "127.0.0.3", "demo-pass")
        self.assertIn(b"a OK", reply)
        # not held back: any delay would be at least the 1 s failure delay
        # (a login takes 0.6 s under ASan with other tests running)
        self.assertLess(ok, 0.95, (ok, times))

    def test_delays_overlap(self):
        # five wrong passwords from five addresses at once finish together,
        # not one after another: the delay is a timer, not a blocked process
        port = self.rg.imap_port
        results = []

        def one(i):
            results.append(login_time(port, "127.0.1.%d" % (i + 1), "wrong")[0])
        start = time.monotonic()
        threads = [threading.Thread(target=one, args=(i,)) for i in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(len(results), 5)
        self.assertLess(time.monotonic() - start, 3.0)


class Slowloris(unittest.TestCase):
    def test_legitimate_client_gets_in(self):
        # 600 connections that send one byte and stall, 50 TLS handshakes
        # that stall halfway, against two processes of 100 clients each per
        # protocol: the full processes evict their oldest pre-login clients,
        # so a real client still logs in, in both protocols
        rg = rgenv.Ringgate(mode="performance", tls=True, service_extra=(
            "  process_limit = 2\n  process_min_avail = 2\n  client_limit = 100\n")).start()
        try:
            ctx = ssl.create_default_context(cafile=rg.cert)
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
            try:
                obj.do_handshake()
            except ssl.SSLWantReadError:
                pass
            hello = outgoing.read()
            slow = []
            for i in range(600):
                s = socket.create_connection(("127.0.0.1", rg.imap_port if i % 2 else rg.pop3_port))
                s.sendall(b"a")
                slow.append(s)
            for _ in range(50):
                s = socket.create_connection(("127.0.0.1", rg.imaps_port))
                s.sendall(hello[:len(hello) // 2])
                slow.append(s)
            m = imaplib.IMAP4("127.0.0.1", rg.imap_port, timeout=15)
            self.assertEqual(m.login("demo", "demo-pass")[0], "OK")
            m.logout()
            m = imaplib.IMAP4_SSL("127.0.0.1", rg.imaps_port, ssl_context=ctx, timeout=15)
            self.assertEqual(m.login("demo", "demo-pass")[0], "OK")
            m.logout()
            p = poplib.POP3("127.0.0.1", rg.pop3_port, timeout=15)
            p.user("demo")
            p.pass_("demo-pass")
            p.quit()
            self.assertIn("Connection queue full", rg.logs())
            for s in slow:
                s.close()
        finally:
            rg.cleanup()


if __name__ == "__main__":
    unittest.main()
