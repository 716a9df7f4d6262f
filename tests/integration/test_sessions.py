"""Real clients through the whole chain (client -> login -> master -> auth ->
worker), in both modes: imaplib, poplib, curl and raw sockets."""
import imaplib
import os
import poplib
import socket
import subprocess
import time
import unittest

import rgenv


recv_until = rgenv.recv_until


class SessionTests:
    MODE = None

    @classmethod
    def setUpClass(cls):
        cls.rg = rgenv.Ringgate(mode=cls.MODE).start()

    @classmethod
    def tearDownClass(cls):
        cls.rg.stop_clean()

    def imap(self):
        return imaplib.IMAP4("127.0.0.1", self.rg.imap_port, timeout=15)

    def pop3(self):
        return poplib.POP3("127.0.0.1", self.rg.pop3_port, timeout=15)

    # -- IMAP ------------------------------------------------------------
    def test_imap_greeting_and_capability(self):
        m = self.imap()
        self.assertIn(b"IMAP4REV1", m.welcome.upper())
        typ, caps = m.capability()
        self.assertEqual(typ, "OK")
        self.assertIn(b"AUTH=PLAIN", caps[0])
        m.logout()

    def test_imap_login_select_fetch(self):
        m = self.imap()
        typ, _ = m.login("demo", "demo-pass")
        self.assertEqual(typ, "OK")
        typ, data = m.select("INBOX")
        self.assertEqual(typ, "OK")
        self.assertEqual(int(data[0]), len(rgenv.MESSAGES))
        typ, data = m.fetch("1", "(RFC822.SIZE BODY.PEEK[])")
        self.assertEqual(typ, "OK")
        body = data[0][1]
        self.assertEqual(body, rgenv.crlf(rgenv.MESSAGES[0]))
        self.assertIn(b"RFC822.SIZE %d" % len(body), data[0][0])
        typ, data = m.fetch("3", "(BODY[])")
        self.assertEqual(data[0][1], rgenv.crlf(rgenv.MESSAGES[2]))
        typ, data = m.fetch("3", "(FLAGS)")
        self.assertIn(b"\\Seen", data[0])
        m.logout()

    def test_imap_authenticate_plain_sasl_ir(self):
        m = self.imap()
        typ, _ = m.authenticate("PLAIN", lambda _: b"\0alice\0alice secret")
        self.assertEqual(typ, "OK")
        typ, data = m.select("INBOX")
        self.assertEqual(int(data[0]), len(rgenv.MESSAGES))
        m.logout()

    def test_imap_wrong_password_is_delayed(self):
        m = self.imap()
        start = time.monotonic()
        with self.assertRaises(imaplib.IMAP4.error) as cm:
            m.login("demo", "wrong")
        elapsed = time.monotonic() - start
        self.assertIn("AUTHENTICATIONFAILED", str(cm.exception))
        self.assertGreaterEqual(elapsed, 0.9)  # auth_failure_delay = 1 secs
        # the session goes on: a right password now works
        typ, _ = m.login("demo", "demo-pass")
        self.assertEqual(typ, "OK")
        m.logout()

    def test_imap_bad_commands_then_bye(self):
        with socket.create_connection(("127.0.0.1", self.rg.imap_port), timeout=10) as s:
            recv_until(s, b"\r\n")
            s.sendall(b"a1 FOO\r\n")
            self.assertIn(b"a1 BAD", recv_until(s, b"\r\n"))
            s.sendall(b"\r\n")
            self.assertIn(b"BAD", recv_until(s, b"\r\n"))
            s.sendall(b"a3 SELECT INBOX\r\n")
            # as Dovecot: the third bad command is answered with BYE alone
            data = recv_until(s, b"never")
            self.assertEqual(data, b"* BYE Too many invalid IMAP commands.\r\n")

    def test_imap_pipelined_after_login(self):
        """Bytes sent right after LOGIN travel to the worker (preread)."""
        with socket.create_connection(("127.0.0.1", self.rg.imap_port), timeout=10) as s:
            recv_until(s, b"\r\n")
            s.sendall(b"a LOGIN demo demo-pass\r\nb SELECT INBOX\r\nc LOGOUT\r\n")
            data = recv_until(s, b"c OK")
            self.assertIn(b"a OK", data)
            self.assertIn(b"* %d EXISTS" % len(rgenv.MESSAGES), data)
            self.assertIn(b"b OK", data)

    def test_imap_literal_login(self):
        with socket.create_connection(("127.0.0.1", self.rg.imap_port), timeout=10) as s:
            recv_until(s, b"\r\n")
            s.sendall(b"a LOGIN {5}\r\n")
            self.assertTrue(recv_until(s, b"\r\n").startswith(b"+"))
            s.sendall(b"alice {12+}\r\nalice secret\r\n")
            self.assertIn(b"a OK", recv_until(s, b"a OK"))

    def test_imap_hostile_input_does_not_hurt_others(self):
        hostile = socket.create_connection(("127.0.0.1", self.rg.imap_port), timeout=10)
        recv_until(hostile, b"\r\n")
        hostile.sendall(b"a\0b NOOP\r\n")
        try:
            hostile.sendall(b"x" * (10 * 1024 * 1024))  # 10 MB without a newline
        except OSError:
            pass  # the server may close us early: that is fine
        m = self.imap()
        typ, _ = m.login("demo", "demo-pass")
        self.assertEqual(typ, "OK")
        m.logout()
        hostile.close()

    def test_curl_imap(self):
        out = subprocess.run(["curl", "-s", "--max-time", "20", "-u", "demo:demo-pass",
                              "imap://127.0.0.1:%d/INBOX;MAILINDEX=2" % self.rg.imap_port],
                             capture_output=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.replace(b"\r\n", b"\n"), rgenv.MESSAGES[1])

    # -- POP3 ------------------------------------------------------------
    def test_pop3_user_pass_retr(self):
        p = self.pop3()
        self.assertTrue(p.getwelcome().startswith(b"+OK"))
        p.user("demo")
        p.pass_("demo-pass")
        count, size = p.stat()
        self.assertEqual(count, len(rgenv.MESSAGES))
        self.assertEqual(size, sum(len(rgenv.crlf(m)) for m in rgenv.MESSAGES))
        resp, lines, octets = p.retr(1)
        self.assertEqual(b"\r\n".join(lines) + b"\r\n", rgenv.crlf(rgenv.MESSAGES[0]))
        p.quit()

    def test_pop3_wrong_password(self):
        p = self.pop3()
        p.user("alice")
        start = time.monotonic()
        with self.assertRaises(poplib.error_proto):
            p.pass_("nope")
        self.assertGreaterEqual(time.monotonic() - start, 0.9)
        p.quit()

    def test_pop3_auth_plain(self):
        with socket.create_connection(("127.0.0.1", self.rg.pop3_port), timeout=10) as s:
            recv_until(s, b"\r\n")
            s.sendall(b"AUTH PLAIN AGFsaWNlAGFsaWNlIHNlY3JldA==\r\nSTAT\r\nQUIT\r\n")
            data = recv_until(s, b"Logging out")
            self.assertIn(b"+OK Logged in.", data)
            self.assertIn(b"+OK %d " % len(rgenv.MESSAGES), data)

    def test_pop3_bad_commands(self):
        with socket.create_connection(("127.0.0.1", self.rg.pop3_port), timeout=10) as s:
            recv_until(s, b"\r\n")
            for _ in range(3):
                s.sendall(b"BOGUS\r\n")
            data = recv_until(s, b"never")  # the server closes the connection
            self.assertEqual(data.count(b"-ERR Unknown command."), 3, data)
            self.assertTrue(data.endswith(b"-ERR Too many invalid bad commands.\r\n"), data)

    def test_curl_pop3(self):
        out = subprocess.run(["curl", "-s", "--max-time", "20", "-u", "alice:alice secret",
                              "pop3://127.0.0.1:%d/2" % self.rg.pop3_port],
                             capture_output=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.replace(b"\r\n", b"\n"), rgenv.MESSAGES[1])

    def test_logs_have_no_password(self):
        m = self.imap()
        m.login("demo", "demo-pass")
        m.logout()
        time.sleep(0.2)
        logs = self.rg.logs()
        self.assertNotIn("demo-pass", logs)
        self.assertNotIn("alice secret", logs)
        self.assertIn("user=<demo>", logs)


class HighPerformance(SessionTests, unittest.TestCase):
    MODE = "performance"


class HighSecurity(SessionTests, unittest.TestCase):
    MODE = "security"


if __name__ == "__main__":
    unittest.main()
