"""Hostile input, one row at a time: each gets exactly the protocol's answer
(every byte after the greeting is compared), then the connection still
works (LOGOUT / QUIT gets its exact reply and the server closes) or, for a
row the server must end, it closes right after its BYE. A well-behaved
client must log in right after every row. No row waits on a clock: each
ends with the server's close (the timeouts only stop a broken run)."""
import imaplib
import os
import poplib
import signal
import socket
import unittest

import rgenv
from test_processes import alive, wait_for

ID_1000 = b"a ID (" + b" ".join(b'"k%d" "v"' % i for i in range(1000)) + b")\r\n"
HUGE = b"x" * (20 * 1024 * 1024)

# (name, bytes to send after the greeting (before it, for the "before
# greeting" rows), exactly what the server answers them, whether the server
# closes after that answer)
IMAP_ROWS = [
    ("nul bytes", b"a\0 NOOP\r\n", b"* BAD NUL characters not allowed\r\n", False),
    ("8-bit bytes", b"a \xff\xfe\xfd\r\n", b"a BAD Error in IMAP command received by server.\r\n", False),
    # answered as soon as the limit is passed; the rest of the line is skipped
    ("huge line", HUGE + b"\r\n", b"* BAD Command line too long\r\n", False),
    ("literal near 2^64", b"a LOGIN {18446744073709551615}\r\n", b"a BAD Literal size too large\r\n", False),
    # a non-synchronising literal's bytes are already on their way: no way
    # to resynchronise, so the session ends
    ("literal+ near 2^64", b"a LOGIN {18446744073709551615+}\r\n", b"* BYE Literal size too large\r\n", True),
    ("unbalanced quote", b'a LOGIN "demo demo-pass\r\n', b"a BAD Missing '\"'\r\n", False),
    ("unbalanced parens", b'a ID ((("x" "y"\r\n', b"a BAD Nested lists not supported\r\n", False),
    ("sasl not base64", b"a AUTHENTICATE PLAIN\r\n!!!!\r\n",
     b"+ \r\na NO [ALERT] Invalid base64 in response\r\n", False),
    ("sasl-ir not base64", b"a AUTHENTICATE PLAIN ***\r\n",
     b"a BAD Invalid base64 data in initial response\r\n", False),
    ("id with 1000 pairs", ID_1000, b"a BAD Too many arguments\r\n", False),
    ("commands before greeting", b"a NOOP\r\n", b"a OK NOOP completed.\r\n", False),
    # one answer for the whole line of CRs (the LF ends it)
    ("only CR", b"\r" * 10000 + b"\n", b"* BAD Missing tag\r\n", False),
]
IMAP_END = (b"z LOGOUT\r\n", b"* BYE Logging out\r\nz OK Logout completed.\r\n")

POP3_ROWS = [
    ("nul bytes", b"US\0ER x\r\n", b"-ERR Invalid NUL byte in input.\r\n", False),
    ("8-bit bytes", b"\xff\xfe\r\n", b"-ERR Unknown command.\r\n", False),
    # answered when the line ends: the parser skips it to its LF
    ("huge line", HUGE + b"\r\n", b"-ERR Input line too long.\r\n", False),
    ("sasl not base64", b"AUTH PLAIN\r\n!!!!\r\n", b"+ \r\n-ERR [AUTH] Invalid base64 in response\r\n", False),
    ("pass without user", b"PASS x\r\n", b"-ERR No username given.\r\n", False),
    ("commands before greeting", b"NOOP\r\n", b"-ERR Unknown command.\r\n", False),
]
POP3_END = (b"QUIT\r\n", b"+OK Logging out\r\n")


class Hostile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.rg = rgenv.Ringgate(mode="performance").start()

    @classmethod
    def tearDownClass(cls):
        cls.rg.cleanup()

    def attack(self, port, name, data, reply, closes, greeting, end):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        try:
            before = name == "commands before greeting"
            if before:
                s.sendall(data)
            f = s.makefile("rb")
            self.assertTrue(f.readline().startswith(greeting))
            if not before:
                s.sendall(data)
            if not closes:
                s.sendall(end[0])
            got = b""
            while True:  # to the server's close
                chunk = f.read1(65536)
                if not chunk:
                    break
                got += chunk
            self.assertEqual(got, reply + (b"" if closes else end[1]))
        finally:
            s.close()

    def healthy(self):
        m = imaplib.IMAP4("127.0.0.1", self.rg.imap_port, timeout=15)
        self.assertEqual(m.login("demo", "demo-pass")[0], "OK")
        m.logout()
        p = poplib.POP3("127.0.0.1", self.rg.pop3_port, timeout=15)
        p.user("alice")
        p.pass_("alice secret")
        p.quit()

    def test_imap_rows(self):
        for name, data, reply, closes in IMAP_ROWS:
            with self.subTest(name):
                self.attack(self.rg.imap_port, name, data, reply, closes, b"* OK ", IMAP_END)
                self.healthy()

    def test_pop3_rows(self):
        for name, data, reply, closes in POP3_ROWS:
            with self.subTest(name):
                self.attack(self.rg.pop3_port, name, data, reply, closes, b"+OK ", POP3_END)
                self.healthy()


class AuthFailure(unittest.TestCase):
    def test_kill9_auth_gives_temporary_failure_then_recovers(self):
        rg = rgenv.Ringgate(mode="performance").start()
        try:
            auth = rg.children("ringgate-auth")
            self.assertEqual(len(auth), 1)
            os.kill(auth[0], signal.SIGKILL)
            wait_for(lambda: not alive(auth[0]))
            # right now a login either fails temporarily or already works
            m = imaplib.IMAP4("127.0.0.1", rg.imap_port, timeout=15)
            try:
                m.login("demo", "demo-pass")
                m.logout()
            except imaplib.IMAP4.error as e:
                self.assertIn("UNAVAILABLE", str(e))
            self.assertTrue(wait_for(lambda: rg.children("ringgate-auth")))

            def login_works():
                try:
                    m2 = imaplib.IMAP4("127.0.0.1", rg.imap_port, timeout=15)
                    ok = m2.login("demo", "demo-pass")[0] == "OK"
                    m2.logout()
                    return ok
                except imaplib.IMAP4.error:
                    return False
            self.assertTrue(wait_for(login_works, timeout=15, step=0.3))
        finally:
            rg.cleanup()


if __name__ == "__main__":
    unittest.main()
