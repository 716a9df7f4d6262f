"""ringgate reload (and SIGHUP): a new certificate, greeting and listener
reach new connections while a TLS session proxied by an old login process
goes on untouched; a broken file changes nothing and the error names
file:line; the old login processes exit once their last connection ends."""
import imaplib
import os
import re
import signal
import socket
import ssl
import unittest

import rgenv


wait_for = rgenv.wait_for


def greeting(port):
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        return rgenv.recv_until(s, b"\r\n").decode()


def peer_cn(port, cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=15)) as s:
        subject = dict(x[0] for x in s.getpeercert()["subject"])
        return subject["commonName"]


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Reload(unittest.TestCase):
    mode = "performance"

    def setUp(self):
        self.rg = rgenv.Ringgate(mode=self.mode, tls=True)
        self.rg.start()

    def tearDown(self):
        self.rg.cleanup()

    def rewrite(self, fn):
        with open(self.rg.conf) as f:
            text = f.read()
        with open(self.rg.conf, "w") as f:
            f.write(fn(text))

    def test_reload_under_a_tls_session(self):
        rg = self.rg
        ctx = ssl.create_default_context(cafile=rg.cert)
        old = imaplib.IMAP4_SSL("127.0.0.1", rg.imaps_port, ssl_context=ctx, timeout=15)
        old.login("alice", rg.users["alice"])
        self.assertEqual(old.select("INBOX"), ("OK", [b"3"]))
        who = [ln.split() for ln in rg.ctl("who").stdout.splitlines()[1:]]
        proxy_pid = int(who[0][4])
        old_logins = set(rg.children("ringgate-login"))
        self.assertIn(proxy_pid, old_logins)
        self.assertEqual(peer_cn(rg.imaps_port, rg.cert), "localhost")

        # new certificate, greeting, and one more IMAP listener
        cert2, key2 = os.path.join(rg.tmp, "cert2.pem"), os.path.join(rg.tmp, "key2.pem")
        rgenv.make_cert(cert2, key2, cn="reloaded.example")
        extra = rgenv.free_port()
        self.rewrite(lambda t: t.replace(rg.cert, cert2).replace(rg.key, key2)
                     .replace("service imap-login {\n", "service imap-login {\n"
                              "  inet_listener extra {\n    port = %d\n  }\n" % extra, 1)
                     + "login_greeting = Reloaded ready.\n")
        out = rg.ctl("reload", check=False)
        self.assertEqual(out.returncode, 0, out.stderr + rg.logs()[-2000:])
        self.assertEqual(out.stdout, "OK\n")

        # new connections: the new certificate, greeting, listener
        self.assertEqual(wait_for(lambda: peer_cn(rg.imaps_port, cert2) == "reloaded.example"),
                         True)
        self.assertIn("Reloaded ready.", greeting(rg.imap_port))
        self.assertIn("Reloaded ready.", greeting(extra))
        new = imaplib.IMAP4_SSL("127.0.0.1", rg.imaps_port,
                                ssl_context=ssl.create_default_context(cafile=cert2),
                                timeout=15)
        new.login("demo", rg.users["demo"])
        new.logout()

        # the old TLS session goes on through its old login process
        typ, data = old.fetch("1", "(BODY[HEADER.FIELDS (SUBJECT)])")
        self.assertEqual(typ, "OK")
        self.assertIn(b"Subject: Welcome", data[0][1])
        self.assertTrue(alive(proxy_pid))
        # old processes no longer accept: every new connection lands elsewhere
        for _ in range(5):
            greeting(rg.imap_port)
        old.logout()
        # ...and exit once their last connection is gone
        wait_for(lambda: not any(alive(p) for p in old_logins), timeout=30)
        self.assertTrue(rg.children("ringgate-login"))
        self.assertIn("configuration reloaded", rg.logs())

    def test_broken_file_keeps_the_old_configuration(self):
        rg = self.rg
        with open(rg.conf) as f:
            good = f.read()
        self.rewrite(lambda t: t + "login_greeting = Never seen.\nno_such_setting = 1\n")
        line = len((good + "login_greeting = Never seen.\n").splitlines()) + 1
        # the command line reads the file first and says what is wrong
        out = rg.ctl("reload", check=False)
        self.assertEqual(out.returncode, 1)
        self.assertIn("not reloading: %s:%d: unknown setting 'no_such_setting'" % (rg.conf, line),
                      out.stderr)
        # SIGHUP: master finds the same and keeps running as it was
        rg.proc.send_signal(signal.SIGHUP)
        logged = wait_for(lambda: [ln for ln in rg.logs().splitlines()
                                   if "reload failed, keeping the running configuration" in ln])
        self.assertIn("%s:%d: unknown setting 'no_such_setting'" % (rg.conf, line), logged[0])
        # nothing reloaded: the same greeting, logins work
        self.assertNotIn("configuration reloaded", rg.logs())
        self.assertNotIn("Never seen.", greeting(rg.imap_port))
        m = imaplib.IMAP4("127.0.0.1", rg.imap_port, timeout=15)
        m.starttls(ssl_context=ssl.create_default_context(cafile=rg.cert))
        m.login("demo", rg.users["demo"])
        m.logout()
        # a certificate that does not match its key: refused the same way
        cert2, key2 = os.path.join(rg.tmp, "c2.pem"), os.path.join(rg.tmp, "k2.pem")
        rgenv.make_cert(cert2, key2, cn="other")
        with open(rg.conf, "w") as f:
            f.write(good.replace("ssl_key = <%s" % rg.key, "ssl_key = <%s" % key2))
        out = rg.ctl("reload", check=False)
        self.assertEqual(out.returncode, 1)
        self.assertIn("ssl_key", out.stderr)
        self.assertEqual(peer_cn(rg.imaps_port, rg.cert), "localhost")
        # a listener on a port already taken: refused, nothing changed
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            port = busy.getsockname()[1]
            with open(rg.conf, "w") as f:
                f.write(good.replace("service imap-login {\n", "service imap-login {\n"
                                     "  inet_listener taken {\n    port = %d\n  }\n" % port, 1))
            out = rg.ctl("reload", check=False)
            self.assertEqual(out.returncode, 1)
            self.assertIn("%d" % port, out.stderr)
        self.assertNotIn("configuration reloaded", rg.logs())
        self.assertIn("* OK", greeting(rg.imap_port))

    def test_sighup_and_removed_listener(self):
        rg = self.rg
        self.rewrite(lambda t: t.replace("inet_listener pop3 {\n    port = %d" % rg.pop3_port,
                                         "inet_listener pop3 {\n    port = 0")
                     + "login_greeting = After HUP.\n")
        rg.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "configuration reloaded" in rg.logs())
        # an old process takes connections until it has read its
        # LOGIN_RETIRE (a connection may race it); then only new ones
        wait_for(lambda: "After HUP." in greeting(rg.imap_port))
        for _ in range(5):
            self.assertIn("After HUP.", greeting(rg.imap_port))

        def refused():
            try:
                with socket.create_connection(("127.0.0.1", rg.pop3_port), timeout=2) as s:
                    s.settimeout(2)
                    return s.recv(100) == b""
            except OSError:
                return True
        wait_for(refused)


class ReloadSecurity(Reload):
    mode = "security"


if __name__ == "__main__":
    unittest.main()
