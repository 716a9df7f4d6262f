"""log_path = syslog, info_log_path, syslog_facility and systemd's reload
notification, against a running ringgate.

The test binds its own AF_UNIX datagram socket as the syslog daemon
(RINGGATE_SYSLOG_SOCKET, the override that exists for tests) and another one
as systemd's NOTIFY_SOCKET, then reads what every process (master, auth,
the chrooted and seccomp-filtered login processes) sends there: RFC 3164
lines with the facility and severity in <PRI>, Dovecot's syslog text, which
fail2ban's dovecot filter matches once its _daemon is ringgate."""
import imaplib
import os
import re
import signal
import socket
import subprocess
import threading
import time
import unittest

import rgenv
import test_logging as f2b

SYSLOG = re.compile(r"^<(?P<pri>\d+)>(?P<date>(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
                    r" [ \d]\d \d\d:\d\d:\d\d) ringgate\[(?P<pid>\d+)\]: "
                    r"(?P<proc>\S+?): (?P<msg>.*)$", re.S)
MAIL, LOCAL3 = 2, 19
INFO, WARNING, ERR = 6, 4, 3


class Datagrams:
    """A bound datagram socket and a thread that drains it at once (a
    sender blocks when the queue is full), keeping every datagram."""

    def __init__(self, path):
        self.path = path
        self.items = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.items.append(data.decode("utf-8", "replace"))

    def all(self):
        with self.lock:
            return list(self.items)

    def wait(self, pred, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            hits = [d for d in self.all() if pred(d)]
            if hits:
                return hits
            time.sleep(0.05)
        raise AssertionError("nothing matched in %s:\n%s" % (self.path, "\n".join(self.all()[-30:])))

    def close(self):
        self.running = False
        self.thread.join()
        self.sock.close()
        if os.path.exists(self.path):  # rg.cleanup() may have removed it
            os.unlink(self.path)


def parse(datagram):
    m = SYSLOG.match(datagram)
    assert m is not None, "not an RFC 3164 line: %r" % datagram
    return m


def as_syslogd_writes(datagram):
    """the line a syslogd (rsyslog's file output) makes of it"""
    m = parse(datagram)
    return "%s myhost %s" % (m.group("date"), datagram[datagram.index(">") + 17:])


def wait_file(path, pred, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path):
            with open(path, errors="replace") as f:
                hits = [ln for ln in f.read().splitlines() if pred(ln)]
            if hits:
                return hits
        time.sleep(0.05)
    raise AssertionError("nothing matched in %s" % path)


def set_conf(rg, **settings):
    """replace or add global settings in rg's file"""
    with open(rg.conf) as f:
        text = f.read()
    for key, value in settings.items():
        line = "%s = %s" % (key, value)
        text, n = re.subn(r"(?m)^%s = .*$" % key, line, text)
        if n == 0:
            text += line + "\n"
    with open(rg.conf, "w") as f:
        f.write(text)


def failed_login(rg, user="demo"):
    m = imaplib.IMAP4("127.0.0.1", rg.imap_port, timeout=15)
    try:
        m.login(user, "not the password")
    except imaplib.IMAP4.error:
        pass
    m.logout()


def syslog_socket(pid):
    """the socket inode a child logs to syslog with (RINGGATE_LOG)"""
    with open("/proc/%d/environ" % pid, "rb") as f:
        env = dict(e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e)
    sinks = env[b"RINGGATE_LOG"].decode().split(",")
    fd = [int(x.split(":")[0]) for x in sinks[:3] if x.endswith(":syslog")][0]
    link = os.readlink("/proc/%d/fd/%d" % (pid, fd))
    assert link.startswith("socket:"), link
    return link


def good_login(rg):
    m = imaplib.IMAP4("127.0.0.1", rg.imap_port, timeout=15)
    m.login("demo", rg.users["demo"])
    m.logout()


class Env:
    """os.environ entries for the ringgate started inside the block"""

    def __init__(self, **values):
        self.values = values
        self.saved = {}

    def __enter__(self):
        for k, v in self.values.items():
            self.saved[k] = os.environ.get(k)
            os.environ[k] = v

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class SyslogOnly(unittest.TestCase):
    """log_path = syslog, facility mail: everything goes to syslog"""

    @classmethod
    def setUpClass(cls):
        cls.rg = rgenv.Ringgate(mode="performance")
        set_conf(cls.rg, log_path="syslog")
        cls.syslog = Datagrams(os.path.join(cls.rg.tmp, "devlog"))
        cls.notify = Datagrams(os.path.join(cls.rg.tmp, "notify"))
        with Env(RINGGATE_SYSLOG_SOCKET=cls.syslog.path, NOTIFY_SOCKET=cls.notify.path):
            cls.rg.start()

    @classmethod
    def tearDownClass(cls):
        cls.rg.cleanup()
        cls.syslog.close()
        cls.notify.close()

    def test_lines_reach_syslog_with_facility_and_severity(self):
        failed_login(self.rg)
        aborted = self.syslog.wait(lambda d: "Aborted login (auth failed" in d)[0]
        m = parse(aborted)
        self.assertEqual(int(m.group("pri")), MAIL * 8 + INFO)  # <22>
        self.assertEqual(m.group("proc"), "imap-login")
        # Dovecot's syslog text: no "Info: " word, the pid in the header
        self.assertRegex(m.group("msg"), r"^Aborted login \(auth failed, 1 attempts in \d+ secs\): "
                         r"user=<demo>, method=PLAIN, rip=127\.0\.0\.1, lip=127\.0\.0\.1, secured, "
                         + f2b.SESSION + "$")
        self.assertIn(int(m.group("pid")), self.rg.children("ringgate-login"))
        # fail2ban's dovecot filter with _daemon = ringgate bans the client
        line = as_syslogd_writes(aborted)
        self.assertEqual(f2b.fail2ban(line, daemon="ringgate"), "127.0.0.1")
        # ...and from the journal (host SYSLOG_IDENTIFIER[pid]: message)
        self.assertEqual(f2b.fail2ban(line, "journal", daemon="ringgate"), "127.0.0.1")
        # auth's line, the filter's second rule
        auth = self.syslog.wait(lambda d: "Password mismatch" in d)[0]
        self.assertEqual(parse(auth).group("proc"), "auth")
        self.assertEqual(f2b.fail2ban(as_syslogd_writes(auth), daemon="ringgate"), "127.0.0.1")
        # master's start-up line, and nothing in a file or a password anywhere
        self.syslog.wait(lambda d: re.search(r"ringgate\[\d+\]: master: ringgate \S+ starting up",
                                             d) is not None)
        self.assertFalse(os.path.exists(self.rg.log_path))
        for d in self.syslog.all():
            parse(d)
            self.assertNotIn("not the password", d)
            self.assertFalse(d.endswith("\n"))

    def test_login_line(self):
        good_login(self.rg)
        login = self.syslog.wait(lambda d: ": Login: user=<demo>" in d)[0]
        self.assertEqual(int(parse(login).group("pri")), 22)
        self.assertNotIn(self.rg.users["demo"], "\n".join(self.syslog.all()))

    def states_after(self, before, count):
        """the notify datagrams after the first before ones, once there
        are count of them"""
        deadline = time.time() + 20
        while time.time() < deadline:
            states = self.notify.all()[before:]
            if len(states) >= count:
                return states
            time.sleep(0.05)
        self.fail("notify: %r" % self.notify.all())

    def test_reload_notifies_systemd_and_errors_are_err(self):
        # READY=1 at start-up
        self.notify.wait(lambda d: d.startswith("READY=1"))
        before = len(self.notify.all())
        at = time.monotonic()
        out = self.rg.ctl("reload", check=False)
        self.assertEqual(out.returncode, 0, out.stderr)
        states = self.states_after(before, 2)
        m = re.fullmatch(r"RELOADING=1\nMONOTONIC_USEC=(\d+)", states[0])
        self.assertIsNotNone(m, states)
        # CLOCK_MONOTONIC (Python's monotonic clock), as systemd compares
        self.assertLess(abs(int(m.group(1)) / 1e6 - at), 30)
        self.assertEqual(states[1], "READY=1")
        self.syslog.wait(lambda d: "master: configuration reloaded" in d)

        # a logging setting cannot change under running processes
        with open(self.rg.conf) as f:
            good = f.read()
        try:
            set_conf(self.rg, syslog_facility="local3")
            before = len(self.notify.all())
            self.rg.proc.send_signal(signal.SIGHUP)
            err = self.syslog.wait(lambda d: "changing syslog_facility needs a restart" in d)[0]
            self.assertEqual(int(parse(err).group("pri")), MAIL * 8 + ERR)  # <19>, still mail
            self.assertIn("master: Error: reload failed, keeping the running configuration",
                          err)
            # a failed reload is over too: READY=1 again
            states = self.states_after(before, 2)
            self.assertTrue(states[0].startswith("RELOADING=1\n"), states)
            self.assertEqual(states[1], "READY=1")
            for key, value in (("info_log_path", self.rg.tmp + "/info.log"),
                               ("debug_log_path", self.rg.tmp + "/debug.log"),
                               ("log_path", self.rg.log_path)):
                with open(self.rg.conf, "w") as f:
                    f.write(good)
                set_conf(self.rg, **{key: value})
                out = self.rg.ctl("reload", check=False)
                self.assertEqual(out.returncode, 1)
                self.assertIn("changing %s needs a restart" % key, out.stderr)
        finally:
            with open(self.rg.conf, "w") as f:
                f.write(good)
        good_login(self.rg)

    def test_each_worker_has_its_own_socket(self):
        # a worker (no seccomp filter) that connects its syslog socket
        # elsewhere must not take other users' or master's lines along:
        # login processes share one socket, auth has one, each worker its own
        rg = self.rg
        logins = rg.children("ringgate-login")
        auth = rg.children("ringgate-auth")
        self.assertGreaterEqual(len(logins), 2)
        self.assertEqual(len({syslog_socket(p) for p in logins}), 1)
        login_sock = syslog_socket(logins[0])
        self.assertNotEqual(syslog_socket(auth[0]), login_sock)
        sessions = []
        try:
            for _ in range(2):
                m = imaplib.IMAP4("127.0.0.1", rg.imap_port, timeout=15)
                m.login("demo", rg.users["demo"])
                sessions.append(m)
            deadline = time.time() + 20
            while len(rg.children("ringgate-imap")) < 2 and time.time() < deadline:
                time.sleep(0.05)
            workers = rg.children("ringgate-imap")
            self.assertEqual(len(workers), 2)
            socks = {syslog_socket(p) for p in workers}
            self.assertEqual(len(socks), 2)
            self.assertNotIn(login_sock, socks)
            self.assertNotIn(syslog_socket(auth[0]), socks)
            # and they do reach syslog
            for m in sessions:
                m.noop()
        finally:
            for m in sessions:
                m.logout()
        self.syslog.wait(lambda d: re.search(r"ringgate\[\d+\]: imap\(demo\)", d) is not None)

    def test_syslogd_restart_is_followed(self):
        # the syslog daemon goes away and comes back with a new socket;
        # master re-connects the socket every process shares (every 10 s,
        # and on a reload, used here not to wait)
        cls = type(self)
        cls.syslog.close()
        # meanwhile lines are not lost: they go to stderr
        good_login(self.rg)
        stderr = os.path.join(self.rg.tmp, "stderr.log")
        deadline = time.time() + 20
        while time.time() < deadline:
            with open(stderr, errors="replace") as f:
                text = f.read()
            if re.search(r"(?m)^imap-login\(\d+\): Info: Login: user=<demo>", text):
                break
            time.sleep(0.05)
        else:
            self.fail("no Login line on stderr:\n" + text)
        cls.syslog = Datagrams(cls.syslog.path)
        self.assertEqual(self.rg.ctl("reload", check=False).returncode, 0)
        good_login(self.rg)
        login = self.syslog.wait(lambda d: ": Login: user=<demo>" in d)[0]
        self.assertEqual(int(parse(login).group("pri")), 22)


class InfoLogPath(unittest.TestCase):
    """log_path = syslog (local3), info_log_path = a file: Info lines go to
    the file, warnings and errors stay in syslog; debug_log_path another
    file"""

    @classmethod
    def setUpClass(cls):
        # performance mode: a security-mode login process's RLIMIT_NOFILE
        # (~68) also caps the fds its user has in flight, which other
        # ringgates on this machine running as rg-login share
        # (ETOOMANYREFS on hand-off under load)
        cls.rg = rgenv.Ringgate(mode="performance")
        cls.info = os.path.join(cls.rg.tmp, "info.log")
        cls.debug = os.path.join(cls.rg.tmp, "debug.log")
        set_conf(cls.rg, log_path="syslog", info_log_path=cls.info, debug_log_path=cls.debug,
                 syslog_facility="local3")
        cls.syslog = Datagrams(os.path.join(cls.rg.tmp, "devlog"))
        # a NOTIFY_SOCKET master refuses: a warning at start-up
        with Env(RINGGATE_SYSLOG_SOCKET=cls.syslog.path, NOTIFY_SOCKET="relative",
                 RINGGATE_DEBUG="1"):
            cls.rg.start()

    @classmethod
    def tearDownClass(cls):
        cls.rg.cleanup()
        cls.syslog.close()

    def test_info_to_file_errors_to_syslog(self):
        failed_login(self.rg)
        line = wait_file(self.info, lambda ln: "Aborted login (auth failed" in ln)[0]
        # a file line: log_timestamp, name(pid), level; fail2ban as today
        self.assertRegex(line, f2b.DATE.pattern + r"imap-login\(\d+\): Info: Aborted login")
        self.assertEqual(f2b.fail2ban(line), "127.0.0.1")
        wait_file(self.info, lambda ln: re.search(r"master\(\d+\): Info: ringgate \S+ starting up",
                                                  ln) is not None)
        # an error: master's failed reload
        with open(self.rg.conf) as f:
            good = f.read()
        try:
            with open(self.rg.conf, "a") as f:
                f.write("no_such_setting = 1\n")
            self.rg.proc.send_signal(signal.SIGHUP)
            err = self.syslog.wait(lambda d: "unknown setting 'no_such_setting'" in d)[0]
            self.assertEqual(int(parse(err).group("pri")), LOCAL3 * 8 + ERR)  # <155>
        finally:
            with open(self.rg.conf, "w") as f:
                f.write(good)
        with open(self.info) as f:
            text = f.read()
        self.assertNotIn("no_such_setting", text)
        for ln in text.splitlines():
            self.assertRegex(ln, f2b.DATE.pattern + r"\S+\(\d+\): Info: ")
        # syslog has warnings and errors only, and no password anywhere
        warning = self.syslog.wait(lambda d: "NOTIFY_SOCKET is not an absolute" in d)[0]
        self.assertEqual(int(parse(warning).group("pri")), LOCAL3 * 8 + WARNING)  # <156>
        self.assertIn("master: Warning: NOTIFY_SOCKET", warning)
        for d in self.syslog.all():
            self.assertIn(int(parse(d).group("pri")) % 8, (WARNING, ERR), d)
        self.assertNotIn("not the password", text + "\n".join(self.syslog.all()))


    def test_debug_to_its_file(self):
        line = wait_file(self.debug, lambda ln: "service(auth): started process" in ln)[0]
        self.assertRegex(line, f2b.DATE.pattern + r"master\(\d+\): Debug: service\(auth\)")
        good_login(self.rg)
        wait_file(self.info, lambda ln: "Login: user=<demo>" in ln)
        for path in (self.info, self.debug):
            with open(path) as f:
                self.assertNotIn(self.rg.users["demo"], f.read())
        with open(self.debug) as f:
            for ln in f.read().splitlines():
                self.assertRegex(ln, f2b.DATE.pattern + r"\S+\(\d+\): Debug: ")
        with open(self.info) as f:
            self.assertNotIn("Debug:", f.read())


class MissingSyslog(unittest.TestCase):
    def test_start_up_says_why(self):
        rg = rgenv.Ringgate(mode="performance")
        try:
            set_conf(rg, log_path="syslog")
            missing = os.path.join(rg.tmp, "no-such-socket")
            env = dict(os.environ, RINGGATE_SYSLOG_SOCKET=missing)
            out = subprocess.run(rg.command("-F"), env=env, capture_output=True, text=True,
                                 timeout=30)
            self.assertEqual(out.returncode, 89)
            self.assertIn("log_path = syslog: cannot connect to %s: No such file or directory"
                          % missing, out.stderr)
            self.assertIn("syslog daemon", out.stderr)
            # an unknown facility is a configuration error with its line
            set_conf(rg, syslog_facility="mial")
            out = subprocess.run(rg.command("-F"), capture_output=True, text=True, timeout=30)
            self.assertNotEqual(out.returncode, 0)
            self.assertRegex(out.stderr, re.escape(rg.conf) + r":\d+: syslog_facility: unknown "
                             r"facility 'mial'")
        finally:
            rg.cleanup()


if __name__ == "__main__":
    unittest.main()
