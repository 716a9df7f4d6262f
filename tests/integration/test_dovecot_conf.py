"""Debian's stock Dovecot configuration, loaded by ringgate unchanged.

The test copies /etc/dovecot (dovecot-imapd and dovecot-pop3d installed by
`make check`) into a temporary directory and rewrites only its paths (the
copy's own directory instead of /etc/dovecot, a fresh certificate where
10-ssl.conf names one) and, through the `local.conf` that dovecot.conf
includes last, the runtime directory, the log and the ports. Dovecot's own
doveconf reads the same copy, so the test also shows the copy is still a
configuration Dovecot accepts.
"""
import os
import poplib
import pwd
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import unittest

import rgenv

STOCK = "/etc/dovecot"

# what Debian's stock files say that ringgate accepts and does not use:
# (file relative to the copy, the name as ringgate reports it)
EXPECTED_IGNORED = [
    ("dovecot.conf", "dict { }"),
    ("conf.d/10-director.conf", "service director { }"),
    ("conf.d/10-director.conf", "service submission-login { }"),
    ("conf.d/10-director.conf", "protocol lmtp { }"),
    ("conf.d/10-logging.conf", "plugin { }"),
    ("conf.d/10-mail.conf", "namespace inbox { }"),
    ("conf.d/10-master.conf", "service lmtp { }"),
    ("conf.d/10-master.conf", "service submission { }"),
    ("conf.d/10-master.conf", "service auth { unix_listener auth-userdb { } }"),
    ("conf.d/10-master.conf", "service auth-worker { }"),
    ("conf.d/10-master.conf", "service dict { }"),
    ("conf.d/10-ssl.conf", "ssl_client_ca_dir"),
    ("conf.d/15-lda.conf", "protocol lda { }"),
]


def line_of(path, pattern):
    """1-based number of the first line of path matching the regex"""
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if re.search(pattern, line):
                return i
    raise AssertionError("%s: no line matches %r" % (path, pattern))


@unittest.skipUnless(os.path.exists(os.path.join(STOCK, "dovecot.conf")),
                     "Debian's dovecot-core is not installed (make check installs it)")
class StockDovecotConf(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ringgate-dovecot-conf-")
        self.dir = os.path.join(self.tmp, "dovecot")
        shutil.copytree(STOCK, self.dir, symlinks=True)
        # paths: the copy's own directory instead of /etc/dovecot
        for root, _, files in os.walk(self.dir):
            for name in files:
                p = os.path.join(root, name)
                if os.path.islink(p):
                    continue
                with open(p, errors="surrogateescape") as f:
                    text = f.read()
                if STOCK + "/" in text:
                    with open(p, "w", errors="surrogateescape") as f:
                        f.write(text.replace(STOCK + "/", self.dir + "/"))
        os.makedirs(os.path.join(self.dir, "private"), exist_ok=True)
        rgenv.make_cert(os.path.join(self.dir, "private", "dovecot.pem"),
                        os.path.join(self.dir, "private", "dovecot.key"), kind="rsa")
        self.conf = os.path.join(self.dir, "dovecot.conf")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def ringgate(self, *args):
        return subprocess.run([os.path.join(rgenv.build_dir(), "bin", "ringgate"),
                               "-c", self.conf] + list(args),
                              capture_output=True, text=True, timeout=60)

    def doveconf(self):
        return subprocess.run(["doveconf", "-n", "-c", self.conf],
                              capture_output=True, text=True, timeout=60)

    def test_stock_config_loads(self):
        out = self.ringgate("-n")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stderr, "")
        text = out.stdout
        # what ringgate will use, from the stock files
        self.assertIn("\nssl_cert = <%s/private/dovecot.pem\n" % self.dir, text)
        self.assertIn("\nssl_key = <%s/private/dovecot.key\n" % self.dir, text)
        self.assertIn("\nssl_dh = </usr/share/dovecot/dh.pem\n", text)
        self.assertIn("\nmail_location = mbox:~/mail:INBOX=/var/mail/%u\n", text)
        self.assertIn("\npassdb {\n  driver = pam\n", text)
        self.assertIn("\nuserdb {\n  driver = passwd\n", text)
        # protocols.d appended imap and pop3 to the default: served once each
        self.assertNotIn("\nprotocols =", text)
        # what it sets aside, each named once with its file and line
        block = text[text.index("# Accepted from a Dovecot configuration"):]
        for rel, name in EXPECTED_IGNORED:
            with self.subTest(name=name):
                lines = [ln for ln in block.splitlines() if (": %s (" % name) in ln]
                self.assertEqual(len(lines), 1, block)
                self.assertTrue(lines[0].startswith("#   %s/%s:" % (self.dir, rel)), lines[0])
        self.assertIn("#   %s/dovecot.conf:%d: !include_try %s/local.conf (no such file: "
                      "skipped)\n" % (self.dir, line_of(self.conf, r"^!include_try local\.conf"),
                                      self.dir), block)
        self.assertIn("%s/conf.d/10-ssl.conf:%d: ssl_client_ca_dir (a Dovecot setting ringgate "
                      "does not use: ignored)" % (
                          self.dir, line_of(os.path.join(self.dir, "conf.d/10-ssl.conf"),
                                            r"^ssl_client_ca_dir")), block)
        # used: the workers get the group that can write /var/mail
        self.assertIn("\nmail_privileged_group = mail\n", text)
        # Pigeonhole's ManageSieve (make check installs it): its protocol
        # and section are Dovecot's, left out
        sieve = "/usr/share/dovecot/protocols.d/managesieved.protocol"
        if os.path.exists(sieve):
            self.assertIn("#   %s:1: protocols: sieve (a Dovecot protocol ringgate does not "
                          "serve: left out)\n" % sieve, block)
            self.assertIn("#   %s/conf.d/20-managesieve.conf:%d: protocol sieve { }" % (
                self.dir, line_of(os.path.join(self.dir, "conf.d/20-managesieve.conf"),
                                  r"^protocol sieve \{")), block)
        # the -n output loads back
        with tempfile.NamedTemporaryFile("w", suffix=".conf", dir=self.tmp, delete=False) as f:
            f.write(text)
        again = subprocess.run([os.path.join(rgenv.build_dir(), "bin", "ringgate"),
                                "-c", f.name, "-n"], capture_output=True, text=True, timeout=60)
        self.assertEqual(again.returncode, 0, again.stderr)
        # and Dovecot reads the same copy
        dc = self.doveconf()
        self.assertEqual(dc.returncode, 0, dc.stderr)

    def typo(self, rel, after, typo):
        """Insert the line typo after the first line matching after; its line number"""
        path = os.path.join(self.dir, rel)
        with open(path) as f:
            lines = f.readlines()
        n = line_of(path, after)
        lines.insert(n, typo + "\n")
        with open(path, "w") as f:
            f.writelines(lines)
        return path, n + 1

    def assert_typo_stops(self, path, line, message, dovecot_message):
        for args in (["-n"], ["-F"]):
            out = self.ringgate(*args)
            self.assertEqual(out.returncode, 89, out.stderr)
            self.assertEqual(out.stderr.strip(),
                             "ringgate: Fatal: %s:%d: %s" % (path, line, message))
        dc = self.doveconf()
        self.assertNotEqual(dc.returncode, 0)
        self.assertIn(dovecot_message, dc.stderr)

    def test_typo_in_service(self):
        path, line = self.typo("conf.d/10-master.conf", r"^service imap-login \{",
                               "  sevice_count = 1")
        self.assert_typo_stops(path, line, "unknown setting 'sevice_count'",
                               "line %d: Unknown setting: service { sevice_count" % line)

    def test_typo_in_ignored_section(self):
        # inside a section ringgate sets aside, a typo is still one
        path, line = self.typo("conf.d/10-mail.conf", r"^namespace inbox \{", "  inbx = yes")
        self.assert_typo_stops(path, line, "unknown setting 'inbx'",
                               "line %d: Unknown setting: namespace { inbx" % line)

    def test_typo_global(self):
        path, line = self.typo("conf.d/10-mail.conf", r"^mail_location",
                               "mail_privileged_grop = mail")
        self.assert_typo_stops(path, line, "unknown setting 'mail_privileged_grop'",
                               "line %d: Unknown setting: mail_privileged_grop" % line)

    def test_setting_ringgate_cannot_honour(self):
        # Dovecot applies it to IMAP only; ringgate has one greeting
        path, line = self.typo("conf.d/20-imap.conf", r"^protocol imap \{",
                               "  login_greeting = IMAP ready.")
        for args in (["-n"], ["-F"]):
            out = self.ringgate(*args)
            self.assertEqual(out.returncode, 89, out.stderr)
            self.assertIn("%s:%d: 'login_greeting' inside 'protocol imap { }' is not "
                          "supported" % (path, line), out.stderr)
        self.assertEqual(self.doveconf().returncode, 0)

    def write_local_conf(self):
        """ports, runtime directory and log through the local.conf that
        Debian's dovecot.conf includes last; returns the ports"""
        ports = {name: rgenv.free_port() for name in ("imap", "imaps", "pop3", "pop3s")}
        self.run_dir = os.path.join(self.tmp, "run")
        self.log = os.path.join(self.tmp, "ringgate.log")
        with open(os.path.join(self.dir, "local.conf"), "w") as f:
            f.write("base_dir = %s\nlog_path = %s\nlisten = 127.0.0.1\n" % (self.run_dir, self.log))
            for svc, names in (("imap-login", ("imap", "imaps")), ("pop3-login", ("pop3", "pop3s"))):
                f.write("service %s {\n" % svc)
                for name in names:
                    f.write("  inet_listener %s {\n    port = %d\n  }\n" % (name, ports[name]))
                f.write("}\n")
        return ports

    def start(self, ports):
        stderr = os.path.join(self.tmp, "stderr.log")
        with open(stderr, "wb") as err:
            proc = subprocess.Popen([os.path.join(rgenv.build_dir(), "bin", "ringgate"),
                                     "-c", self.conf, "-F"],
                                    stdout=subprocess.DEVNULL, stderr=err)

        def greeted():
            try:
                with socket.create_connection(("127.0.0.1", ports["pop3"]), timeout=2) as s:
                    return s.recv(200).startswith(b"+OK")
            except OSError:
                return False
        try:
            rgenv.wait_for(lambda: proc.poll() is not None or greeted())
        except AssertionError:
            rgenv.stop_process(proc)
            raise
        if proc.poll() is not None:
            with open(stderr, errors="replace") as f:
                self.fail("ringgate exited: %s" % f.read())
        return proc

    def test_starts_and_names_once(self):
        """-F with the copy: each set-aside name is one Info line at start-up."""
        ports = self.write_local_conf()
        proc = self.start(ports)
        rgenv.stop_process(proc)
        with open(self.log) as f:
            text = f.read()
        for rel, name in EXPECTED_IGNORED:
            with self.subTest(name=name):
                found = re.findall(r"master\(\d+\): Info: %s/%s:\d+: %s: " % (
                    re.escape(self.dir), re.escape(rel), re.escape(name)), text)
                self.assertEqual(len(found), 1, text)
        # local.conf exists now: nothing skipped
        self.assertNotIn("!include_try", text)

    @unittest.skipUnless(rgenv.is_root() and shutil.which("useradd"), "needs root and useradd")
    def test_pam_login_stock(self):
        """The stock copy serves a system user: PAM (passdb pam, service
        dovecot), userdb passwd, the /var/mail spool (RETR, DELE), POP3
        with STLS."""
        out = self.ringgate("-n")
        if "driver = pam } (accepted; not served" in out.stdout:
            self.skipTest("passdb pam is not served yet (auth-chain)")
        user, password = "rgdc-%d" % (os.getpid() % 100000), "stock pw %d" % os.getpid()
        subprocess.run(["userdel", "-r", user], capture_output=True)
        home = os.path.join(self.tmp, "home")
        subprocess.run(["useradd", "-m", "-d", home, "-s", "/usr/sbin/nologin", user], check=True)
        spool = os.path.join("/var/mail", user)
        try:
            subprocess.run(["chpasswd"], input="%s:%s\n" % (user, password), text=True, check=True)
            pw = pwd.getpwnam(user)
            with open(spool, "wb") as f:
                f.write(MboxSpool.SPOOL)
            os.chown(spool, pw.pw_uid, pw.pw_gid)
            os.chmod(spool, 0o600)
            ports = self.write_local_conf()
            proc = self.start(ports)
            try:
                p = poplib.POP3("127.0.0.1", ports["pop3"], timeout=30)
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                p.stls(ctx)
                p.user(user)
                p.pass_(password)
                self.assertEqual(p.stat()[0], 2)
                resp, lines, _ = p.retr(2)
                self.assertEqual(lines, [b"From: bob@example.com", b"Subject: second", b"",
                                         b"Bye"])
                # DELE: the spool is rewritten under /var/mail/USER.lock, which the
                # worker may create through Debian's mail_privileged_group = mail
                p.dele(1)
                self.assertTrue(p.quit().startswith(b"+OK Logging out, messages deleted."))
                with open(spool, "rb") as f:
                    self.assertEqual(f.read(), MboxSpool.SPOOL[MboxSpool.SPOOL.index(b"From bob"):])
                self.assertFalse(os.path.exists(spool + ".lock"))
                st = os.stat(spool)
                self.assertEqual((st.st_uid, st.st_mode & 0o777), (pw.pw_uid, 0o600))
                # a wrong password is refused
                p = poplib.POP3("127.0.0.1", ports["pop3"], timeout=30)
                p.stls(ctx)
                p.user(user)
                with self.assertRaises(poplib.error_proto):
                    p.pass_("wrong")
                p.close()
            finally:
                rgenv.stop_process(proc)
        finally:
            subprocess.run(["userdel", "-r", user], capture_output=True)
            if os.path.exists(spool):
                os.unlink(spool)


class MboxSpool(unittest.TestCase):
    """POP3 through a real ringgate on Debian's default mail_location form,
    with the spool in the user's home (a test may not write /var/mail)."""

    SPOOL = (b"From alice@example.com Mon Dec  7 10:00:00 2026\n"
             b"From: alice@example.com\nSubject: first\nStatus: RO\n\nHello\n.dot\n\n"
             b"From bob@example.com Mon Dec  7 11:00:00 2026\n"
             b"From: bob@example.com\nSubject: second\n\nBye\n\n")

    def test_pop3_retr_dele(self):
        import poplib
        rg = rgenv.Ringgate(mode="performance",
                            extra_conf="mail_location = mbox:~/mail:INBOX=%h/spool\n")
        try:
            spool = os.path.join(rg.home("demo"), "spool")
            with open(spool, "wb") as f:
                f.write(self.SPOOL)
            os.chown(spool, rg.uid, rg.gid)
            rg.start()
            p = poplib.POP3("127.0.0.1", rg.pop3_port, timeout=30)
            p.user("demo")
            p.pass_("demo-pass")
            # Dovecot's Status: header is hidden; sizes are of CRLF lines
            first = [b"From: alice@example.com", b"Subject: first", b"", b"Hello", b".dot"]
            second = [b"From: bob@example.com", b"Subject: second", b"", b"Bye"]
            size = lambda lines: sum(len(ln) + 2 for ln in lines)  # noqa: E731
            self.assertEqual(p.stat(), (2, size(first) + size(second)))
            resp, lines, octets = p.retr(1)
            self.assertEqual(resp, b"+OK %d octets" % size(first))
            self.assertEqual(lines, first)
            p.dele(1)
            self.assertTrue(p.quit().startswith(b"+OK Logging out, messages deleted."))
            with open(spool, "rb") as f:
                self.assertEqual(f.read(), self.SPOOL[self.SPOOL.index(b"From bob"):])
        finally:
            rg.cleanup()

    def test_imap(self):
        """IMAP on the same location: the spool is INBOX with UIDs written
        as Dovecot's X-UID/X-IMAPbase, flags as Status/X-Status, folders are
        files under ~/mail, STORE/EXPUNGE rewrite the spool."""
        import imaplib
        rg = rgenv.Ringgate(mode="performance",
                            extra_conf="mail_location = mbox:~/mail:INBOX=%h/spool\n")
        try:
            home = rg.home("demo")
            spool = os.path.join(home, "spool")
            with open(spool, "wb") as f:
                f.write(self.SPOOL)
            os.makedirs(os.path.join(home, "mail"))
            with open(os.path.join(home, "mail", "Archive"), "wb") as f:
                f.write(self.SPOOL[self.SPOOL.index(b"From bob"):])
            for dirpath, dirs, files in os.walk(home):
                for name in dirs + files:
                    os.chown(os.path.join(dirpath, name), rg.uid, rg.gid)
            rg.start()
            m = imaplib.IMAP4("127.0.0.1", rg.imap_port, timeout=30)
            m.login("demo", "demo-pass")
            typ, boxes = m.list()
            # Dovecot's mbox hierarchy separator
            names = [b.split(b' "/" ')[1] for b in boxes]
            self.assertEqual(names[:2], [b"INBOX", b"Archive"])
            self.assertEqual(m.status("Archive", "(MESSAGES UNSEEN)")[1],
                             [b"Archive (MESSAGES 1 UNSEEN 1)"])
            typ, data = m.select("INBOX")
            self.assertEqual(data, [b"2"])
            self.assertEqual(m.untagged_responses.get("RECENT"), [b"1"])
            typ, data = m.fetch("1:*", "(UID FLAGS)")
            self.assertEqual(data, [b"1 (UID 1 FLAGS (\\Seen))", b"2 (UID 2 FLAGS (\\Recent))"])
            typ, data = m.fetch("1", "(BODY.PEEK[])")
            self.assertEqual(data[0][1], b"From: alice@example.com\r\nSubject: first\r\n\r\n"
                             b"Hello\r\n.dot\r\n")
            m.store("2", "+FLAGS", "(\\Flagged $Important)")
            m.store("1", "+FLAGS", "(\\Deleted)")
            m.expunge()
            m.logout()
            with open(spool, "rb") as f:
                text = f.read()
            self.assertTrue(text.startswith(b"From bob@example.com"))
            self.assertIn(b"\nX-UID: 2\nStatus: O\nX-Status: F\nX-Keywords: $Important\n\nBye\n", text)
            self.assertRegex(text, rb"\nX-IMAPbase: \d+ 0000000002 \$Important\n")
            # a second session sees what the first left
            m = imaplib.IMAP4("127.0.0.1", rg.imap_port, timeout=30)
            m.login("demo", "demo-pass")
            m.select("INBOX", readonly=True)
            typ, data = m.fetch("1:*", "(UID FLAGS)")
            self.assertEqual(data, [b"1 (UID 2 FLAGS (\\Flagged $Important))"])
            m.logout()
        finally:
            rg.cleanup()


if __name__ == "__main__":
    unittest.main()
