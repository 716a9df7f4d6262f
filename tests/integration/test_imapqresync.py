"""QRESYNC (RFC 7162) and imap_max_line_length through the whole chain
(client -> login -> hand-off -> worker), with raw IMAP on a socket: a
second connection resynchronises with SELECT (QRESYNC ...) after the first
expunged, and the worker's command line bound is the configured one."""
import re
import socket
import unittest

import rgenv

USERS = {"qr": "pw-qr", "line": "pw-line"}


class Conn:
    def __init__(self, port, user):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.buf = b""
        self.n = 0
        self.read_line()  # greeting
        self.cmd("LOGIN %s %s" % (user, USERS[user]))

    def read_line(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise AssertionError("connection closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode()

    def cmd(self, text, expect="OK"):
        """send one command; its untagged lines and the tagged line"""
        self.n += 1
        tag = "t%d" % self.n
        self.sock.sendall(("%s %s\r\n" % (tag, text)).encode())
        lines = []
        while True:
            line = self.read_line()
            if line.startswith(tag + " "):
                if expect is not None and not line.startswith("%s %s" % (tag, expect)):
                    raise AssertionError("%s -> %s\n%s" % (text[:80], line, "\n".join(lines)))
                return lines, line
            lines.append(line)

    def close(self):
        self.cmd("LOGOUT")
        self.sock.close()


class ImapQresyncTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.rg = rgenv.Ringgate(mode="performance", users=dict(USERS),
                                extra_conf="imap_max_line_length = 2k").start()

    @classmethod
    def tearDownClass(cls):
        cls.rg.stop_clean()

    def test_qresync_resync(self):
        a = Conn(self.rg.imap_port, "qr")
        caps, _ = a.cmd("CAPABILITY")
        self.assertIn("QRESYNC", caps[0].split())
        for i in range(4):
            msg = "Subject: m%d\r\n\r\nbody\r\n" % i
            a.cmd("APPEND INBOX {%d+}\r\n%s" % (len(msg), msg))
        lines, _ = a.cmd("ENABLE QRESYNC")
        self.assertEqual(lines, ["* ENABLED QRESYNC"])
        lines, _ = a.cmd("SELECT INBOX")
        uidv = int(next(re.search(r"UIDVALIDITY (\d+)", l).group(1) for l in lines if "UIDVALIDITY" in l))
        hms = int(next(re.search(r"HIGHESTMODSEQ (\d+)", l).group(1) for l in lines if "HIGHESTMODSEQ" in l))
        a.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)")
        lines, _ = a.cmd("EXPUNGE")
        self.assertEqual(lines, ["* VANISHED 2"])
        a.cmd("STORE 1 +FLAGS (\\Flagged)")
        a.close()

        b = Conn(self.rg.imap_port, "qr")
        b.cmd("ENABLE QRESYNC")
        lines, _ = b.cmd("SELECT INBOX (QRESYNC (%d %d 1:4))" % (uidv, hms))
        self.assertIn("* VANISHED (EARLIER) 2", lines)
        fetches = [l for l in lines if " FETCH " in l]
        self.assertEqual(len(fetches), 1, lines)
        self.assertTrue(fetches[0].startswith("* 1 FETCH (UID 1 FLAGS (\\Flagged) MODSEQ ("), fetches)
        # switching mailboxes says [CLOSED] first
        lines, _ = b.cmd("EXAMINE INBOX")
        self.assertEqual(lines[0], "* OK [CLOSED] Previous mailbox closed.")
        lines, _ = b.cmd("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % hms)
        self.assertEqual(lines[0], "* VANISHED (EARLIER) 2")
        b.cmd("SELECT INBOX (QRESYNC (%d x))" % uidv, expect="BAD")
        b.cmd("NOOP")
        b.close()

    def test_line_length(self):
        c = Conn(self.rg.imap_port, "line")
        # 2k of command line (outside literals) is fine, more is BAD
        c.cmd('ID ("k" "%s")' % ("x" * 1900))
        _, tagged = c.cmd('ID ("k" "%s")' % ("x" * 2100), expect="BAD")
        self.assertIn("Too long argument", tagged)
        # literals do not count
        c.cmd('ID ("k" {3000+}\r\n%s)' % ("y" * 3000))
        c.cmd("NOOP")
        c.close()


if __name__ == "__main__":
    unittest.main()
