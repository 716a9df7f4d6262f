"""Brute force from one address: each wrong password from it waits longer
(auth_failure_delay plus a per-IP penalty that doubles), while another
address is answered at the base delay and a right password at once; the
waiting never blocks the login process (requests overlap).

Nothing here bounds a duration from above (a loaded machine only makes
things slower): auth's counters say exactly which failures were penalised,
the server's own timers give lower bounds, and "at once" / "overlap" are
orderings of replies against a pending failure's timer."""
import imaplib
import poplib
import select
import socket
import ssl
import time
import unittest

import rgenv

# auth_failure_delay = 1 secs; failure n from one address waits
# 1 s, 2 s, 3 s, 5 s (base, then base + 1 s, + 2 s, + 4 s)
DELAYS = [1.0, 2.0, 3.0, 5.0]
EPS = 0.05  # timer and clock granularity


def connect(port, src):
    s = socket.socket()
    s.bind((src, 0))
    s.settimeout(30)
    s.connect(("127.0.0.1", port))
    rgenv.recv_until(s, b"\r\n")
    return s


def send_login(s, password):
    s.sendall(b'a LOGIN demo "%s"\r\n' % password.encode())
    return time.monotonic()


def reply(s):
    return rgenv.recv_until(s, b"\r\n", timeout=30)


def login_time(port, src, password):
    s = connect(port, src)
    start = send_login(s, password)
    r = reply(s)
    elapsed = time.monotonic() - start
    s.close()
    return elapsed, r


def silent(s):
    """nothing to read on s right now"""
    return not select.select([s], [], [], 0)[0]


class BruteForce(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.rg = rgenv.Ringgate(mode="performance", failure_delay="1 secs").start()

    @classmethod
    def tearDownClass(cls):
        cls.rg.cleanup()

    def counters(self):
        return self.rg.auth_counters()

    def test_penalty_grows_per_address_only(self):
        port = self.rg.imap_port
        before = self.counters()
        times = []
        for _ in range(3):
            t, r = login_time(port, "127.0.0.2", "wrong")
            self.assertIn(b"a NO", r)
            times.append(t)
        # the same address: three failures, the 2nd and 3rd penalised, each
        # answered no earlier than its delay
        c = self.counters()
        self.assertEqual(c["failed"] - before["failed"], 3)
        self.assertEqual(c["penalties"] - before["penalties"], 2)
        for t, d in zip(times, DELAYS):
            self.assertGreaterEqual(t, d - EPS, times)
        # another address: a failure without penalty
        other, r = login_time(port, "127.0.0.3", "wrong")
        self.assertIn(b"a NO", r)
        self.assertGreaterEqual(other, DELAYS[0] - EPS)
        c2 = self.counters()
        self.assertEqual(c2["failed"] - c["failed"], 1)
        self.assertEqual(c2["penalties"], c["penalties"])
        # a right password at once: its OK arrives while a failure sent
        # before it (the 4th from .2: a 5 s timer) is still being held
        held = connect(port, "127.0.0.2")
        ok = connect(port, "127.0.0.3")
        try:
            held_start = send_login(held, "wrong")
            send_login(ok, "demo-pass")
            self.assertIn(b"a OK", reply(ok))
            self.assertTrue(silent(held), "the penalised failure was answered first")
            self.assertIn(b"a NO", reply(held))
            self.assertGreaterEqual(time.monotonic() - held_start, DELAYS[3] - EPS)
        finally:
            held.close()
            ok.close()
        c3 = self.counters()
        self.assertEqual(c3["failed"] - c2["failed"], 1)
        self.assertEqual(c3["penalties"] - c2["penalties"], 1)

    def test_delays_overlap(self):
        # five wrong passwords from five fresh addresses at once: auth
        # counts all five (each is then held on a timer) before it answers
        # the first; a blocked process would answer one before counting
        # the next. A server of its own with a 5 s failure delay, so that
        # asking for the counters (slow under ASan) cannot outlast it. Then
        # each comes back after its own base delay.
        rg = rgenv.Ringgate(mode="performance", failure_delay="5 secs").start()
        socks = []
        try:
            socks = [connect(rg.imap_port, "127.0.1.%d" % (i + 1)) for i in range(5)]
            before = rg.auth_counters()["failed"]
            starts = [send_login(s, "wrong") for s in socks]
            for _ in range(1000):
                if rg.auth_counters()["failed"] - before >= 5:
                    break
            self.assertTrue(all(silent(s) for s in socks))
            self.assertEqual(rg.auth_counters()["failed"] - before, 5)
            for s, start in zip(socks, starts):
                self.assertIn(b"a NO", reply(s))
                self.assertGreaterEqual(time.monotonic() - start, 5.0 - EPS)
        finally:
            for s in socks:
                s.close()
            rg.cleanup()


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
