"""System users through the passdb/userdb chain: PAM (in auth-workers),
shadow, userdb passwd, behind the test passwd-file (so the chain's
continue-on-unknown is exercised too). Needs root: it creates users with
useradd + chpasswd and a private PAM service /etc/pam.d/ringgate-test-PID,
all removed afterwards."""
import grp
import imaplib
import os
import poplib
import pwd
import shutil
import subprocess
import threading
import time
import unittest

import rgenv

PAM_SERVICE = "ringgate-test-%d" % os.getpid()
# auth_worker_request_timeout here: long enough that a normal PAM login
# (yescrypt) on a loaded machine never meets it
WORKER_BOUND = 12
USERS = {
    "rgtest-pam1": "pam one pw",
    "rgtest-pam2": "pam-two-pw",
    "rgtest-slow": "slow pw",
    "rgtest-shok": "shadow ok pw",
    "rgtest-shlock": "locked pw",
    "rgtest-lowuid": "low uid pw",
    "rgtest-cache": "cache pw",
}


def free_low_uid():
    """a uid below 100 (under every first_valid_uid the tests use) that no
    user has"""
    used = {p.pw_uid for p in pwd.getpwall()}
    for uid in range(90, 40, -1):
        if uid not in used:
            return uid
    raise unittest.SkipTest("no free uid below 100")


@unittest.skipUnless(rgenv.is_root() and shutil.which("useradd") and shutil.which("chpasswd"),
                     "needs root, useradd and chpasswd")
class SystemUsers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.home_root = rgenv.tempfile.mkdtemp(prefix="ringgate-sys-")
        os.chmod(cls.home_root, 0o755)
        cls.created = []
        for user, password in USERS.items():
            subprocess.run(["userdel", "-r", user], capture_output=True)
            home = os.path.join(cls.home_root, user)
            cmd = ["useradd", "-m", "-d", home, "-s", "/usr/sbin/nologin"]
            if user == "rgtest-lowuid":
                cmd += ["-u", str(free_low_uid())]
            subprocess.run(cmd + [user], check=True)
            cls.created.append(user)
            subprocess.run(["chpasswd"], input="%s:%s\n" % (user, password), text=True,
                           check=True)
            pw = pwd.getpwnam(user)
            for sub in ("cur", "new", "tmp"):
                os.makedirs(os.path.join(home, "Maildir", sub), exist_ok=True)
            with open(os.path.join(home, "Maildir", "new", "1.M1P1.test"), "wb") as f:
                f.write(rgenv.MESSAGES[0])
            for d, _, files in os.walk(home):
                os.chown(d, pw.pw_uid, pw.pw_gid)
                for f in files:
                    os.chown(os.path.join(d, f), pw.pw_uid, pw.pw_gid)
        subprocess.run(["usermod", "-L", "rgtest-shlock"], check=True)
        # the PAM stack: pam_unix, after a pam_exec that hangs for one user
        cls.slow_script = os.path.join(cls.home_root, "slow.sh")
        with open(cls.slow_script, "w") as f:
            # every PAM call is counted, so the cache's savings can be seen
            f.write("#!/bin/sh\necho \"$PAM_USER\" >> %s\n"
                    "[ \"$PAM_USER\" = rgtest-slow ] && exec sleep 30\nexit 0\n"
                    % os.path.join(cls.home_root, "pam-calls"))
        os.chmod(cls.slow_script, 0o755)
        cls.pam_file = "/etc/pam.d/" + PAM_SERVICE
        with open(cls.pam_file, "w") as f:
            f.write("auth optional pam_exec.so quiet %s\n"
                    "auth required pam_unix.so\n"
                    "account required pam_unix.so\n" % cls.slow_script)
        extra = f"""
auth_worker_request_timeout = {WORKER_BOUND} secs
auth_cache_size = 1M
auth_cache_ttl = 1 hours
auth_cache_negative_ttl = 1 hours
mail_access_groups = mail
auth_worker_max_count = 4
passdb {{
  driver = shadow
  username_filter = rgtest-sh*
}}
passdb {{
  driver = pam
  args = max_requests=100 cache_key=%u%s {PAM_SERVICE}
  username_filter = !rgtest-sh*
}}
userdb {{
  driver = passwd
}}
"""
        cls.rg = rgenv.Ringgate(extra_conf=extra, failure_delay="0 secs")
        cls.rg.start()

    @classmethod
    def tearDownClass(cls):
        rg = getattr(cls, "rg", None)
        if rg is not None:
            rg.cleanup()
        for user in getattr(cls, "created", []):
            subprocess.run(["userdel", "-r", user], capture_output=True)
        if os.path.exists(getattr(cls, "pam_file", "")):
            os.unlink(cls.pam_file)
        shutil.rmtree(getattr(cls, "home_root", "/nonexistent"), ignore_errors=True)

    def imap_login(self, user, password):
        c = imaplib.IMAP4("127.0.0.1", self.rg.imap_port, timeout=30)
        try:
            return c, c.login(user, password)
        except imaplib.IMAP4.error as e:
            c.shutdown()
            return None, str(e)

    def wait_log(self, text, timeout=15):
        self.assertTrue(rgenv.wait_for(lambda: text in self.rg.logs(), timeout=timeout),
                        "log lacks %r:\n%s" % (text, self.rg.logs()[-3000:]))

    def test_pam_and_passwd_login(self):
        c, res = self.imap_login("rgtest-pam1", USERS["rgtest-pam1"])
        self.assertIsNotNone(c, res)
        typ, data = c.select("INBOX")
        self.assertEqual(typ, "OK")
        self.assertEqual(data[0], b"1")
        # the worker runs as the user with mail_access_groups added
        pw = pwd.getpwnam("rgtest-pam1")
        mail_gid = grp.getgrnam("mail").gr_gid
        status = None
        for pid in self.rg.children("ringgate-imap"):
            with open("/proc/%d/status" % pid) as f:
                text = f.read()
            if "\nUid:\t%d\t" % pw.pw_uid in text:
                status = text
        self.assertIsNotNone(status, "no worker running as rgtest-pam1")
        groups = [int(g) for g in status.split("\nGroups:")[1].split("\n")[0].split()]
        self.assertEqual(sorted(groups), sorted({pw.pw_gid, mail_gid}))
        c.logout()
        # auth_username_format = %Lu: the same user in capitals
        c, res = self.imap_login("RGTEST-PAM2", USERS["rgtest-pam2"])
        self.assertIsNotNone(c, res)
        c.logout()
        # POP3 through the same chain
        p = poplib.POP3("127.0.0.1", self.rg.pop3_port, timeout=30)
        p.user("rgtest-pam2")
        p.pass_(USERS["rgtest-pam2"])
        self.assertEqual(p.stat()[0], 1)
        p.quit()
        # the passwd-file users before the system ones still work
        c, res = self.imap_login("demo", "demo-pass")
        self.assertIsNotNone(c, res)
        c.logout()

    def test_pam_wrong_password(self):
        c, res = self.imap_login("rgtest-pam1", "wrong")
        self.assertIsNone(c)
        self.assertIn("AUTHENTICATIONFAILED", res)
        self.wait_log("pam(rgtest-pam1,127.0.0.1): pam_authenticate() failed: Password mismatch")
        # a user PAM does not know
        c, res = self.imap_login("rgtest-nobody", "x")
        self.assertIsNone(c)

    def test_hung_pam_module_delays_nobody(self):
        slow = {}

        def slow_login():
            t0 = time.monotonic()
            slow["res"] = self.imap_login("rgtest-slow", USERS["rgtest-slow"])[1]
            slow["secs"] = time.monotonic() - t0

        t = threading.Thread(target=slow_login)
        t.start()
        # the slow one is in its worker's pam_exec (which logs each call)
        self.assertTrue(rgenv.wait_for(lambda: self.pam_calls("rgtest-slow") > 0, timeout=30))
        c, res = self.imap_login("rgtest-pam1", USERS["rgtest-pam1"])
        self.assertIsNotNone(c, res)
        c.logout()
        # the other login was answered while the hung one still waits: no
        # wall-clock bound, the order of the two answers is the evidence
        self.assertTrue(t.is_alive(), "another user's login waited for the hung PAM module")
        t.join(60)
        # the hung one: a temporary failure after the bound, its worker killed
        self.assertIn("UNAVAILABLE", slow["res"])
        self.assertGreaterEqual(slow["secs"], WORKER_BOUND - 0.5)
        self.wait_log("no answer in %d ms: killing it" % (WORKER_BOUND * 1000))
        # and the pool goes on serving
        c, res = self.imap_login("rgtest-pam2", USERS["rgtest-pam2"])
        self.assertIsNotNone(c, res)
        c.logout()

    def test_shadow(self):
        c, res = self.imap_login("rgtest-shok", USERS["rgtest-shok"])
        self.assertIsNotNone(c, res)
        c.logout()
        c, res = self.imap_login("rgtest-shok", "wrong")
        self.assertIsNone(c)
        # locked (usermod -L puts '!' before the hash): refused, whatever the password
        c, res = self.imap_login("rgtest-shlock", USERS["rgtest-shlock"])
        self.assertIsNone(c)
        self.assertIn("AUTHENTICATIONFAILED", res)
        self.wait_log("shadow(rgtest-shlock,127.0.0.1): account locked")

    def pam_calls(self, user):
        try:
            with open(os.path.join(self.home_root, "pam-calls")) as f:
                return sum(1 for line in f if line.strip() == user)
        except FileNotFoundError:
            return 0

    def auth_stats(self):
        out = self.rg.ctl("stats").stdout
        line = [ln for ln in out.splitlines() if ln.startswith("auth ")][0]
        return dict(kv.split("=") for kv in line.split()[1:])

    def test_cache(self):
        pw = USERS["rgtest-cache"]
        before = self.auth_stats()
        for _ in range(3):
            c, res = self.imap_login("rgtest-cache", pw)
            self.assertIsNotNone(c, res)
            c.logout()
        # one PAM conversation for three logins
        self.assertEqual(self.pam_calls("rgtest-cache"), 1)
        after = self.auth_stats()
        # passdb and userdb answered from the cache twice each
        self.assertGreaterEqual(int(after["cache_hits"]) - int(before["cache_hits"]), 4)
        self.assertGreaterEqual(int(after["cache_misses"]) - int(before["cache_misses"]), 2)
        metrics = self.rg.ctl("stats").stdout
        self.assertIn("cache_hits=", metrics)
        # another password is no hit: PAM is asked (and says no)
        c, res = self.imap_login("rgtest-cache", "not it")
        self.assertIsNone(c)
        self.assertEqual(self.pam_calls("rgtest-cache"), 2)
        # ringgate auth flush USER: the next login asks PAM again
        out = self.rg.ctl("auth", "flush", "rgtest-cache")
        self.assertEqual(out.stdout.strip(), "OK")
        self.wait_log("auth cache flushed for the named users: ")
        c, res = self.imap_login("rgtest-cache", pw)
        self.assertIsNotNone(c, res)
        c.logout()
        self.assertEqual(self.pam_calls("rgtest-cache"), 3)
        # and it is cached again
        c, res = self.imap_login("rgtest-cache", pw)
        self.assertIsNotNone(c, res)
        c.logout()
        self.assertEqual(self.pam_calls("rgtest-cache"), 3)

    def test_reload_flushes_cache(self):
        pw = USERS["rgtest-cache"]
        c, res = self.imap_login("rgtest-cache", pw)
        self.assertIsNotNone(c, res)
        c.logout()
        calls = self.pam_calls("rgtest-cache")
        c, res = self.imap_login("rgtest-cache", pw)
        self.assertIsNotNone(c, res)
        c.logout()
        self.assertEqual(self.pam_calls("rgtest-cache"), calls)
        # a reload that changes no passdb keeps the cache
        out = self.rg.ctl("reload")
        self.assertEqual(out.stdout.strip(), "OK", out.stderr)
        c, res = self.imap_login("rgtest-cache", pw)
        self.assertIsNotNone(c, res)
        c.logout()
        self.assertEqual(self.pam_calls("rgtest-cache"), calls)
        # one that changes a passdb block flushes it
        with open(self.rg.conf) as f:
            conf = f.read()
        with open(self.rg.conf, "w") as f:
            f.write(conf.replace("max_requests=100", "max_requests=99"))
        out = self.rg.ctl("reload")
        self.assertEqual(out.stdout.strip(), "OK", out.stderr)
        self.wait_log("reload: passdb/userdb changed: restarting auth process")
        # the new auth (empty cache) answers once the login processes got
        # their channels to it: wait for a login to go through
        def logs_in():
            c, res = self.imap_login("rgtest-cache", pw)
            if c is not None:
                c.logout()
            return c is not None
        self.assertTrue(rgenv.wait_for(logs_in, timeout=30), self.rg.logs()[-3000:])
        self.assertEqual(self.pam_calls("rgtest-cache"), calls + 1)
        # and the new auth caches again
        self.assertTrue(logs_in())
        self.assertEqual(self.pam_calls("rgtest-cache"), calls + 1)

    def test_uid_below_first_valid_uid(self):
        c, res = self.imap_login("rgtest-lowuid", USERS["rgtest-lowuid"])
        self.assertIsNone(c)
        uid = pwd.getpwnam("rgtest-lowuid").pw_uid
        self.wait_log("user rgtest-lowuid: login refused for uid %d" % uid)


if __name__ == "__main__":
    unittest.main()
