"""Log lines in Dovecot's formats, so fail2ban's dovecot filter and other
Dovecot log tooling keep working: Login, Disconnected (no auth attempts),
Aborted login (auth failed), with log_timestamp, real mpid, TLS; checked
against the regular expressions of Debian's fail2ban 1.0.2
filter.d/dovecot.conf and common.conf (copied here as data)."""
import imaplib
import poplib
import re
import socket
import ssl
import time
import unittest

import rgenv

# ---- fail2ban 1.0.2 (Debian 12), filter.d/common.conf and dovecot.conf ----
# <HOST> is fail2ban's IPv4/IPv6/DNS alternative, reduced to IPv4 here.
F2B = {
    "__pid_re": r"(?:\[\d+\])",
    "_daemon": r"(?:dovecot(?:-auth)?|auth)",
    "__hostname": r"\S+",
}


def prefix_line(logtype, daemon=F2B["_daemon"]):
    """fail2ban's __prefix_line; daemon is the filter's _daemon (a jail
    can set it: filter = dovecot[_daemon="ringgate"])"""
    daemon_re = r"[\[\(]?" + daemon + r"(?:\(\S+\))?[\]\)]?:?"
    combs = (r"(?:" + F2B["__pid_re"] + r"?:\s+" + daemon_re + r"|" + daemon_re + F2B["__pid_re"]
             + r"?:?)")
    if logtype == "file":
        # logtype = file (a log_path file, or what a syslogd writes)
        return (r"(?:\[\])?\s*(?:<[^.]+\.[^.]+>\s+)?(?:" + F2B["__hostname"] + r"\s+)?"
                r"(?:kernel:\s?\[ *\d+\.\d+\]:?\s+)?(?:@vserver_\S+\s+)?(?:" + combs
                + r"\s+)?(?:\[ID \d+ \S+\]\s+)?")
    # logtype = journal (systemd's journal: lt_short)
    return (r"\s*(?:" + F2B["__hostname"] + r"\s+)?(?:" + daemon + F2B["__pid_re"]
            + r"?:?\s+)?(?:kernel:\s?\[ *\d+\.\d+\]:?\s+)?")


AUTH_WORKER = r"(?:dovecot: )?auth(?:-worker)?"
AUTH_WORKER_INFO = r"(?:conn \w+:auth(?:-worker)? \([^\)]+\): auth(?:-worker)?<\d+>: )?"
BYPASS = r"(?:: (?:\w+\([^\):]*\) \w+|[^\(]+))*"
HOST = r"(?P<host>(?:\d{1,3}\.){3}\d{1,3})"


def prefregex(logtype, daemon=F2B["_daemon"]):
    return re.compile(r"^" + prefix_line(logtype, daemon) + r"(?:" + AUTH_WORKER
                      + r"(?:\([^\)]+\))?: )?"
                      r"(?:pam_unix(?:\(dovecot:auth\))?: |(?:pop3|imap|managesieve|submission)"
                      r"-login: )?(?:Info: )?" + AUTH_WORKER_INFO + r"(?P<content>.+)$")


FAILREGEX = [re.compile(x) for x in (
    r"^(?:Aborted login|Disconnected|Remote closed connection|Client has quit the connection)"
    + BYPASS + r" \((?:auth failed, \d+ attempts(?: in \d+ secs)?|tried to use (?:disabled|"
    r"disallowed) \S+ auth|proxy dest auth failed)\):(?: user=<(?P<user>[^>]*)>,)?"
    r"(?: method=\S+,)? rip=" + HOST + r"(?:[^>]*(?:, session=<\S+>)?)\s*$",
    r"^[a-z\-]{3,15}\(\S*," + HOST + r"(?:,\S*)?\): (?:[Uu]nknown user|[Ii]nvalid credentials|"
    r"[Pp]assword mismatch)",
)]
AGGRESSIVE = re.compile(
    r"^(?:Aborted login|Disconnected|Remote closed connection|Client has quit the connection)"
    + BYPASS + r" \((?:no auth attempts|disconnected before auth was ready,|client didn't "
    r"finish \S+ auth,)(?: (?:in|waited) \d+ secs)?\):(?: user=<[^>]*>,)?(?: method=\S+,)? rip="
    + HOST + r"(?:[^>]*(?:, session=<\S+>)?)\s*$")
# fail2ban needs a date at the start of a log_path line: Dovecot's
# log_timestamp "%b %d %H:%M:%S "
DATE = re.compile(r"^(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d "
                  r"\d\d:\d\d:\d\d ")


def fail2ban(line, logtype="file", aggressive=False, daemon=F2B["_daemon"]):
    """the host fail2ban would ban for this line (after its date), or None"""
    m = DATE.match(line)
    if m is None:
        return None
    p = prefregex(logtype, daemon).match(line[m.end():])
    if p is None:
        return None
    for r in FAILREGEX + ([AGGRESSIVE] if aggressive else []):
        f = r.match(p.group("content"))
        if f:
            return f.group("host")
    return None


SESSION = r"session=<[A-Za-z0-9_-]{12}>"
PROC = r"(?P<proc>(?:imap|pop3)-login)\(\d+\): Info: "


class Logging(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.rg = rgenv.Ringgate(mode="performance", tls=True)
        cls.rg.start()
        cls.ctx = ssl.create_default_context(cafile=cls.rg.cert)

    @classmethod
    def tearDownClass(cls):
        cls.rg.cleanup()

    def wait_line(self, pattern, after=0):
        rx = re.compile(pattern)
        deadline = time.time() + 20
        while time.time() < deadline:
            lines = self.rg.logs().splitlines()[after:]
            for ln in lines:
                if rx.search(ln):
                    return ln
            time.sleep(0.1)
        self.fail("no log line %r in:\n%s" % (pattern, "\n".join(self.rg.logs().splitlines()[-30:])))

    def mark(self):
        return len(self.rg.logs().splitlines())

    def test_every_line_has_date_pid_and_level(self):
        for line in self.rg.logs().splitlines():
            if "ringgate.log" in line:
                continue
            self.assertRegex(line, DATE.pattern + r"[a-z0-9-]+\(\d+\): (?:Info|Warning|Error"
                             r"|Fatal|Debug): ")

    def test_auth_failed_then_logout_is_aborted_login(self):
        at = self.mark()
        m = imaplib.IMAP4("127.0.0.1", self.rg.imap_port, timeout=15)
        with self.assertRaises(imaplib.IMAP4.error):
            m.login("demo", "not the password")
        m.logout()
        line = self.wait_line(r"Aborted login \(auth failed", at)
        self.assertRegex(line, DATE.pattern + PROC + r"Aborted login \(auth failed, 1 attempts in "
                         r"\d+ secs\): user=<demo>, method=PLAIN, rip=127\.0\.0\.1, "
                         r"lip=127\.0\.0\.1, secured, " + SESSION + "$")
        self.assertEqual(fail2ban(line), "127.0.0.1")
        self.assertEqual(fail2ban(line, "journal"), "127.0.0.1")
        self.assertNotIn("not the password", self.rg.logs())
        # auth's own line is the filter's second rule
        auth = self.wait_line(r"auth\(\d+\): Info: passwd-file\(demo,127\.0\.0\.1\): "
                              r"Password mismatch", at)
        self.assertEqual(fail2ban(auth), "127.0.0.1")

    def test_auth_failed_then_connection_closed(self):
        at = self.mark()
        p = poplib.POP3("127.0.0.1", self.rg.pop3_port, timeout=15)
        p.user("alice")
        with self.assertRaises(poplib.error_proto):
            p.pass_("wrong")
        p.user("alice")
        with self.assertRaises(poplib.error_proto):
            p.pass_("wrong again")
        p.close()  # no QUIT: the connection just ends
        line = self.wait_line(r"pop3-login\(\d+\): Info: Disconnected.*auth failed", at)
        self.assertRegex(line, DATE.pattern + PROC + r"Disconnected(: [^(]+)? \(auth failed, 2 "
                         r"attempts in \d+ secs\): user=<alice>, method=PLAIN, rip=127\.0\.0\.1, "
                         r"lip=127\.0\.0\.1, secured, " + SESSION + "$")
        self.assertEqual(fail2ban(line), "127.0.0.1")

    def test_no_auth_attempts(self):
        at = self.mark()
        s = socket.create_connection(("127.0.0.1", self.rg.imap_port), timeout=15)
        s.recv(1000)
        s.close()
        line = self.wait_line(r"Disconnected \(no auth attempts", at)
        self.assertRegex(line, DATE.pattern + PROC + r"Disconnected \(no auth attempts in \d+ "
                         r"secs\): user=<>, rip=127\.0\.0\.1, lip=127\.0\.0\.1, secured, "
                         + SESSION + "$")
        self.assertIsNone(fail2ban(line))                     # mode = normal
        self.assertEqual(fail2ban(line, aggressive=True), "127.0.0.1")

    def test_tls_login_and_failure_over_tls(self):
        at = self.mark()
        m = imaplib.IMAP4_SSL("127.0.0.1", self.rg.imaps_port, ssl_context=self.ctx, timeout=15)
        m.login("alice", self.rg.users["alice"])
        line = self.wait_line(r"Login: user=<alice>", at)
        mo = re.search(DATE.pattern + PROC + r"Login: user=<alice>, method=PLAIN, "
                       r"rip=127\.0\.0\.1, lip=127\.0\.0\.1, mpid=(?P<mpid>\d+), TLS, "
                       + SESSION + "$", line)
        self.assertIsNotNone(mo, line)
        # mpid is the worker serving the session (as `who` says)
        who = [ln.split() for ln in self.rg.ctl("who").stdout.splitlines()[1:]]
        self.assertIn(mo.group("mpid"), [w[3] for w in who if w[0] == "alice"])
        self.assertIsNone(fail2ban(line))
        m.logout()

        at = self.mark()
        m = imaplib.IMAP4_SSL("127.0.0.1", self.rg.imaps_port, ssl_context=self.ctx, timeout=15)
        with self.assertRaises(imaplib.IMAP4.error):
            m.login("alice", "nope")
        m.logout()
        line = self.wait_line(r"Aborted login \(auth failed", at)
        self.assertRegex(line, r"rip=127\.0\.0\.1, lip=127\.0\.0\.1, TLS, " + SESSION + "$")
        self.assertEqual(fail2ban(line), "127.0.0.1")


if __name__ == "__main__":
    unittest.main()
