"""Packaging: `cmake --install` with DESTDIR (what `make install` runs) gives
a tree whose ringgate starts, tells systemd it is ready (Type=notify, over a
real NOTIFY_SOCKET) and serves a login; the man pages, the unit and the
example configuration are there and valid."""
import imaplib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

import rgenv

ROOT = rgenv.ROOT
PREFIX = "/usr/local"


def install(destdir, prefix=PREFIX):
    env = dict(os.environ, DESTDIR=destdir)
    out = subprocess.run(["cmake", "--install", rgenv.build_dir(), "--prefix", prefix],
                         env=env, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise AssertionError("cmake --install failed:\n" + out.stdout + out.stderr)
    return out.stdout


class Installed(rgenv.Ringgate):
    """an rgenv world run from the installed tree, under a notify socket"""

    def __init__(self, tree, notify_path, **kw):
        self.tree = tree
        self.notify_path = notify_path
        super().__init__(**kw)

    def binary(self, name="ringgate"):
        return os.path.join(self.tree + PREFIX, "sbin", name)

    def start(self, wait=True):
        env = dict(os.environ, NOTIFY_SOCKET=self.notify_path)
        with open(os.path.join(self.tmp, "stderr.log"), "ab") as err:
            self.proc = subprocess.Popen(self.command("-F"), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err, env=env)
        if wait:
            self.wait_ready()
        return self


def notify_messages(sock, want, deadline=20):
    """datagrams until one contains want (a list of all received)"""
    got = []
    end = time.time() + deadline
    while time.time() < end:
        sock.settimeout(max(0.1, end - time.time()))
        try:
            msg = sock.recv(4096).decode()
        except socket.timeout:
            break
        got.append(msg)
        if want in msg.split("\n"):
            return got
    raise AssertionError("no %s from ringgate, got %r" % (want, got))


class Install(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ringgate-install-")
        os.chmod(cls.tmp, 0o755)  # login processes (another uid) exec from here
        cls.tree = os.path.join(cls.tmp, "root")
        cls.output = install(cls.tree)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def path(self, rel):
        return os.path.join(self.tree + PREFIX, rel)

    def test_tree(self):
        sbin = self.path("sbin/ringgate")
        self.assertTrue(os.path.islink(sbin))
        self.assertFalse(os.path.isabs(os.readlink(sbin)), "relative: works under DESTDIR")
        self.assertEqual(os.path.realpath(sbin), self.path("libexec/ringgate/ringgate"))
        for name in ("ringgate", "ringgate-auth", "ringgate-access", "ringgate-stats",
                     "ringgate-login", "ringgate-imap", "ringgate-pop3"):
            self.assertTrue(os.access(self.path("libexec/ringgate/" + name), os.X_OK), name)
        for rel in ("share/man/man8/ringgate.8", "share/man/man5/ringgate.conf.5",
                    "share/doc/ringgate/ringgate.conf.example",
                    "lib/systemd/system/ringgate.service"):
            self.assertTrue(os.path.isfile(self.path(rel)), rel)
        # nothing outside DESTDIR/PREFIX
        self.assertEqual(os.listdir(self.tree), ["usr"])
        with open(self.path("lib/systemd/system/ringgate.service")) as f:
            unit = f.read()
        self.assertIn("\nType=notify\n", unit)
        self.assertIn("\nExecStart=/usr/local/sbin/ringgate -c /etc/ringgate/ringgate.conf -F\n",
                      unit)
        self.assertIn("\nExecReload=", unit)
        out = subprocess.run([sbin, "-V"], capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0)
        self.assertTrue(out.stdout.startswith("ringgate "))

    def test_installed_tree_starts_notifies_and_serves_a_login(self):
        notify_path = os.path.join(self.tmp, "notify.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as ns:
            ns.bind(notify_path)
            rg = Installed(self.tree, notify_path, mode="security")
            try:
                rg.start(wait=False)
                got = notify_messages(ns, "READY=1")
                self.assertIn("MAINPID=%d" % rg.proc.pid, got[-1].split("\n"))
                rg.wait_ready()  # READY came after the listeners were bound
                with imaplib.IMAP4("127.0.0.1", rg.imap_port, timeout=15) as c:
                    c.login("demo", "demo-pass")
                    typ, data = c.select("INBOX")
                    self.assertEqual(typ, "OK")
                    self.assertEqual(data, [b"3"])
                    c.logout()
                # the siblings run from the installed tree, not the build
                exes = set()
                for pid in rg.children():
                    try:
                        exes.add(os.readlink("/proc/%d/exe" % pid))
                    except OSError:
                        pass
                self.assertTrue(exes, "no children")
                for exe in exes:
                    self.assertTrue(exe.startswith(self.path("libexec/ringgate/")), exe)
                # no child inherits the notify socket
                for pid in rg.children():
                    try:
                        with open("/proc/%d/environ" % pid, "rb") as f:
                            self.assertNotIn(b"NOTIFY_SOCKET=", f.read())
                    except OSError:
                        pass
                rg.proc.send_signal(15)
                notify_messages(ns, "STOPPING=1")
                self.assertEqual(rg.stop(), 0, rg.logs())
            finally:
                rg.cleanup()

    def test_example_config_loads(self):
        with open(self.path("share/doc/ringgate/ringgate.conf.example")) as f:
            text = f.read()
        cert, key = os.path.join(self.tmp, "cert.pem"), os.path.join(self.tmp, "key.pem")
        rgenv.make_cert(cert, key)
        text = text.replace("/etc/ringgate/cert.pem", cert).replace("/etc/ringgate/key.pem", key)
        conf = os.path.join(self.tmp, "example.conf")
        with open(conf, "w") as f:
            f.write(text)
        out = subprocess.run([self.path("sbin/ringgate"), "-c", conf, "-n"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("auth_mechanisms = plain login", out.stdout)
        self.assertIn("process_min_avail = 4", out.stdout)

    def test_man_pages(self):
        gen = subprocess.run(["python3", os.path.join(ROOT, "man", "gen-conf-man.py")],
                             capture_output=True, text=True, timeout=30, check=True)
        with open(os.path.join(ROOT, "man", "ringgate.conf.5")) as f:
            self.assertEqual(f.read(), gen.stdout,
                             "man/ringgate.conf.5 is stale: python3 man/gen-conf-man.py "
                             "> man/ringgate.conf.5")
        for page in ("share/man/man8/ringgate.8", "share/man/man5/ringgate.conf.5"):
            out = subprocess.run(["groff", "-man", "-ww", "-z", "-t", self.path(page)],
                                 capture_output=True, text=True, timeout=30,
                                 env=dict(os.environ, LC_ALL="C"))
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertEqual(out.stderr, "", page)
        with open(self.path("share/man/man5/ringgate.conf.5")) as f:
            page = f.read()
        for key in ("listen", "ssl_cert", "login_timeout", "service_count", "reuse_port"):
            self.assertIn(".TP\n\\fB%s\\fR (default:" % key, page)

    @unittest.skipUnless(shutil.which("systemd-analyze"), "systemd-analyze not installed")
    def test_unit_verifies(self):
        # installed for real under a prefix (no DESTDIR), so the paths in the
        # unit exist; MANPATH lets verify find the Documentation= pages
        prefix = os.path.join(self.tmp, "prefix")
        install("", prefix)
        unit = os.path.join(prefix, "lib/systemd/system/ringgate.service")
        out = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True, text=True,
                             timeout=60, env=dict(os.environ, MANPATH=prefix + "/share/man"))
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertEqual((out.stdout + out.stderr).strip(), "")


if __name__ == "__main__":
    unittest.main()
