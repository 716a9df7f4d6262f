"""Dovecot drivers a stock configuration names, through a real ringgate:
passdb static, passdb passwd (a crypt hash in /etc/passwd), userdb
checkpassword (with ringgate's reply helper), passwd-file paths with
%-variables (one file per domain), and a reload that changes the chain.
Needs root: it creates a system user and edits its /etc/passwd entry under
the shadow suite's lock (lckpwdf), all undone afterwards."""
import crypt
import ctypes
import imaplib
import os
import shutil
import subprocess
import unittest

import rgenv

PW_USER = "rgdrop-pw"
PW_PASS = "passwd field pw"
PAM_SERVICE = "ringgate-dropin-%d" % os.getpid()
# PAM users: *-frz are refused by pam_nologin, which says why
PAM_USERS = {"rgdrop-frz": "frz pw", "rgdrop-ok": "ok pw", "rgnomsg-frz": "nomsg pw"}
FROZEN_MSG = "Account frozen:\tcall the helpdesk"


def set_passwd_field(user, value):
    """put value in user's /etc/passwd password field, under lckpwdf() (the
    lock useradd/usermod take)"""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    if libc.lckpwdf() != 0:
        raise OSError(ctypes.get_errno(), "lckpwdf")
    try:
        with open("/etc/passwd") as f:
            lines = f.read().splitlines(True)
        out = []
        for ln in lines:
            parts = ln.split(":")
            if parts[0] == user:
                parts[1] = value
                ln = ":".join(parts)
            out.append(ln)
        tmp = "/etc/passwd.rgdrop"
        with open(tmp, "w") as f:
            f.write("".join(out))
        os.chmod(tmp, 0o644)
        os.rename(tmp, "/etc/passwd")
    finally:
        libc.ulckpwdf()


@unittest.skipUnless(rgenv.is_root() and shutil.which("useradd") and shutil.which("chpasswd"),
                     "needs root, useradd and chpasswd")
class DropinDrivers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        subprocess.run(["userdel", "-r", PW_USER], capture_output=True)
        subprocess.run(["useradd", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin",
                        PW_USER], check=True)
        cls.user_made = True
        for user, pw in PAM_USERS.items():
            subprocess.run(["userdel", user], capture_output=True)
            subprocess.run(["useradd", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin",
                            user], check=True)
            subprocess.run(["chpasswd"], input="%s:%s\n" % (user, pw), text=True, check=True)
        set_passwd_field(PW_USER, crypt.crypt(PW_PASS, crypt.mksalt(crypt.METHOD_SHA512)))
        cls.rg = rgenv.Ringgate(failure_delay="0 secs")
        tmp = cls.rg.tmp
        uid, gid = cls.rg.uid, cls.rg.gid
        # homes with one message each, for the users the new drivers serve
        for user in ("st-one", "cp-user", "cp-home-from-prog", PW_USER, "rgdrop-ok", "rl-new", "dom-ann@example.org",
                     "dom-ann@example.net"):
            md = os.path.join(tmp, "home", user, "Maildir")
            for sub in ("cur", "new", "tmp"):
                os.makedirs(os.path.join(md, sub), exist_ok=True)
            with open(os.path.join(md, "new", "1.M1P1.test"), "wb") as f:
                f.write(rgenv.MESSAGES[0])
            for d, _, files in os.walk(os.path.join(tmp, "home", user)):
                os.chown(d, uid, gid)
                for fn in files:
                    os.chown(os.path.join(d, fn), uid, gid)
        # a second message for the home checkpassword names, so the test
        # can tell it from the static userdb's
        md = os.path.join(tmp, "home", "cp-home-from-prog", "Maildir", "new")
        with open(os.path.join(md, "2.M2P1.test"), "wb") as f:
            f.write(rgenv.MESSAGES[1])
        os.chown(os.path.join(md, "2.M2P1.test"), uid, gid)
        # checkpassword: a lookup-capable program (AUTHORIZED=1 -> 2) that
        # runs ringgate's reply helper, given as its first argument
        cls.prog = os.path.join(tmp, "checkpw.sh")
        with open(cls.prog, "w") as f:
            f.write(f"""#!/bin/bash
IFS= read -r -d '' user <&3
[ "$AUTHORIZED" = 1 ] || exit 1
[ "$user" = cp-user ] || exit 3
export USER="$user" HOME={tmp}/home/cp-home-from-prog
export userdb_uid={uid} userdb_gid={gid} EXTRA="userdb_uid userdb_gid"
export AUTHORIZED=2
exec "$1"
""")
        os.chmod(cls.prog, 0o755)
        # passwd-file per domain
        cls.domdir = os.path.join(tmp, "domains")
        os.makedirs(cls.domdir)
        for dom, pw in (("example.org", "org pw"), ("example.net", "net pw")):
            with open(os.path.join(cls.domdir, "users." + dom), "w") as f:
                f.write("dom-ann:{PLAIN}%s:%d:%d::%s/home/dom-ann@%s::\n" % (pw, uid, gid, tmp, dom))
                # chroots: a home with Dovecot's /./, a userdb chroot field
                f.write("dom-jail:{PLAIN}%s:%d:%d::%s/jail/./u::\n" % (pw, uid, gid, tmp))
                f.write("dom-out:{PLAIN}%s:%d:%d::%s/home/./u::\n" % (pw, uid, gid, tmp))
                f.write("dom-cf:{PLAIN}%s:%d:%d::%s/home/cf::userdb_chroot=%s/jailhouse\n"
                        % (pw, uid, gid, tmp, tmp))
                f.write("dom-cfin:{PLAIN}%s:%d:%d::%s/jail/v::userdb_chroot=%s/jail\n"
                        % (pw, uid, gid, tmp, tmp))
        # the jail's two homes: u (message 1), v (messages 1 and 2)
        for home, n in (("u", 1), ("v", 2)):
            md = os.path.join(tmp, "jail", home, "Maildir")
            for sub in ("cur", "new", "tmp"):
                os.makedirs(os.path.join(md, sub), exist_ok=True)
            for i in range(n):
                with open(os.path.join(md, "new", "%d.M%dP1.test" % (i + 1, i + 1)), "wb") as f:
                    f.write(rgenv.MESSAGES[i])
            for d, _, files in os.walk(os.path.join(tmp, "jail", home)):
                os.chown(d, uid, gid)
                for fn in files:
                    os.chown(os.path.join(d, fn), uid, gid)
        # the PAM stack: pam_nologin with its own file refuses the *-frz
        # users and shows the file (a PAM_ERROR_MSG), then pam_unix
        nologin = os.path.join(tmp, "nologin")
        with open(nologin, "w") as f:
            f.write(FROZEN_MSG + "x" * 600 + "\n")
        cls.pam_file = "/etc/pam.d/" + PAM_SERVICE
        with open(cls.pam_file, "w") as f:
            f.write("auth [success=1 default=ignore] pam_succeed_if.so quiet user notin "
                    "rgdrop-frz:rgnomsg-frz\n"
                    "auth requisite pam_nologin.so file=%s\n"
                    "auth required pam_unix.so\n"
                    "account required pam_unix.so\n" % nologin)
        cls.extra = f"""
valid_chroot_dirs = /nonexistent-rg:{tmp}/jail/
passdb {{
  driver = pam
  args = failure_show_msg=yes {PAM_SERVICE}
  username_filter = rgdrop-frz rgdrop-ok
}}
passdb {{
  driver = pam
  args = {PAM_SERVICE}
  username_filter = rgnomsg-*
}}
passdb {{
  driver = static
  args = password=static-%n-pw
  username_filter = st-* cp-*
}}
passdb {{
  driver = passwd
  username_filter = rgdrop-*
}}
passdb {{
  driver = passwd-file
  args = username_format=%n {cls.domdir}/users.%d
  username_filter = dom-*
}}
userdb {{
  driver = passwd-file
  args = username_format=%n {cls.domdir}/users.%d
}}
userdb {{
  driver = checkpassword
  args = {cls.prog}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={tmp}/home/%u
}}
"""
        with open(cls.rg.conf, "a") as f:
            f.write(cls.extra)
        cls.rg.start()

    @classmethod
    def tearDownClass(cls):
        rg = getattr(cls, "rg", None)
        if rg is not None:
            rg.cleanup()
        if getattr(cls, "user_made", False):
            subprocess.run(["userdel", PW_USER], capture_output=True)
            for user in PAM_USERS:
                subprocess.run(["userdel", user], capture_output=True)
        if os.path.exists(getattr(cls, "pam_file", "")):
            os.unlink(cls.pam_file)

    def login(self, user, password):
        c = imaplib.IMAP4("127.0.0.1", self.rg.imap_port, timeout=30)
        try:
            c.login(user, password)
        except imaplib.IMAP4.error as e:
            c.shutdown()
            return None, str(e)
        return c, None

    def count(self, user, password):
        c, err = self.login(user, password)
        self.assertIsNotNone(c, err)
        typ, data = c.select("INBOX")
        c.logout()
        return int(data[0])

    def wait_log(self, text):
        self.assertTrue(rgenv.wait_for(lambda: text in self.rg.logs()),
                        "log lacks %r:\n%s" % (text, self.rg.logs()[-3000:]))

    def test_passdb_static(self):
        self.assertEqual(self.count("st-one", "static-st-one-pw"), 1)
        c, err = self.login("st-one", "static-cp-user-pw")
        self.assertIsNone(c)
        self.assertIn("AUTHENTICATIONFAILED", err)
        # the filter keeps everyone else away from it
        c, err = self.login("xx-one", "static-xx-one-pw")
        self.assertIsNone(c)

    def test_userdb_checkpassword(self):
        # the program's HOME (two messages), not the static userdb's (one)
        self.assertEqual(self.count("cp-user", "static-cp-user-pw"), 2)
        # a user it does not know (exit 3) goes on to the static userdb
        self.assertEqual(self.count("st-one", "static-st-one-pw"), 1)

    def test_passdb_passwd(self):
        self.assertEqual(self.count(PW_USER, PW_PASS), 1)
        c, err = self.login(PW_USER, "not it")
        self.assertIsNone(c)
        self.wait_log("passwd(%s,127.0.0.1): Password mismatch" % PW_USER)

    def test_passwd_file_per_domain(self):
        self.assertEqual(self.count("dom-ann@example.org", "org pw"), 1)
        self.assertEqual(self.count("dom-ann@example.net", "net pw"), 1)
        c, err = self.login("dom-ann@example.org", "net pw")
        self.assertIsNone(c)
        # no file for the domain: no such user
        c, err = self.login("dom-ann@example.com", "org pw")
        self.assertIsNone(c)
        c, err = self.login("dom-ann@/../domains/users.example.org", "org pw")
        self.assertIsNone(c)

    def test_pam_failure_show_msg(self):
        # IMAP: the module's message as an ALERT, control characters
        # replaced, bounded
        c, err = self.login("rgdrop-frz", PAM_USERS["rgdrop-frz"])
        self.assertIsNone(c)
        self.assertIn("[ALERT] Account frozen: call the helpdesk", err)
        self.assertLess(len(err), 320)
        # POP3: -ERR [AUTH] with the same text
        import poplib
        p = poplib.POP3("127.0.0.1", self.rg.pop3_port, timeout=30)
        try:
            p.user("rgdrop-frz")
            with self.assertRaises(poplib.error_proto) as cm:
                p.pass_(PAM_USERS["rgdrop-frz"])
            self.assertIn("-ERR [AUTH] Account frozen: call the helpdesk", str(cm.exception))
        finally:
            p.close()
        # a wrong password: pam_unix said nothing but asked "Password: ",
        # which is what Dovecot 2.3 shows; never the password itself
        c, err = self.login("rgdrop-ok", "wrong one")
        self.assertIsNone(c)
        self.assertIn("[ALERT] Password:", err)
        self.assertNotIn("wrong one", err)
        # the right password still logs in (userdb static)
        c, err = self.login("rgdrop-ok", PAM_USERS["rgdrop-ok"])
        self.assertIsNotNone(c, err)
        c.logout()
        # without failure_show_msg: Dovecot's plain failure
        c, err = self.login("rgnomsg-frz", PAM_USERS["rgnomsg-frz"])
        self.assertIsNone(c)
        self.assertIn("[AUTHENTICATIONFAILED] Authentication failed.", err)
        self.assertNotIn("frozen", err)

    def test_chroot_refused(self):
        # Dovecot's rule: a chroot outside valid_chroot_dirs is refused
        for user in ("dom-out@example.org", "dom-cf@example.org"):
            c, err = self.login(user, "org pw")
            self.assertIsNone(c, user)
            self.wait_log("user %s: login refused: chroot directory not in valid_chroot_dirs" % user)

    def test_chroot_inside_valid_dirs(self):
        # a home with /./ and a userdb chroot field under valid_chroot_dirs:
        # the worker runs chrooted there, its home seen from inside, and
        # keeps no capability (it chrooted itself after exec)
        jail = os.path.join(self.rg.tmp, "jail")
        for user, n in (("dom-jail@example.org", 1), ("dom-cfin@example.org", 2)):
            before = set(self.rg.children("ringgate-imap"))
            c, err = self.login(user, "org pw")
            self.assertIsNotNone(c, err)
            typ, data = c.select("INBOX")
            self.assertEqual(typ, "OK")
            self.assertEqual(int(data[0]), n, user)
            typ, data = c.fetch("1", "(BODY.PEEK[])")
            self.assertEqual(typ, "OK")
            self.assertEqual(data[0][1].replace(b"\r\n", b"\n"), rgenv.MESSAGES[0].replace(b"\r\n", b"\n"))
            pids = set(self.rg.children("ringgate-imap")) - before
            self.assertEqual(len(pids), 1, pids)
            pid = pids.pop()
            self.assertEqual(os.readlink("/proc/%d/root" % pid), jail)
            with open("/proc/%d/status" % pid) as f:
                caps = dict(ln.split(":\t", 1) for ln in f.read().splitlines() if ln.startswith("Cap"))
            for k in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
                self.assertEqual(int(caps[k], 16), 0, (user, k, caps))
            c.logout()

    def test_reload_changes_chain(self):
        c, err = self.login("rl-new", "reload-pw")
        self.assertIsNone(c)
        auth_before = self.rg.children("ringgate-auth")
        self.assertEqual(len(auth_before), 1)
        with open(self.rg.conf, "a") as f:
            f.write("passdb {\n  driver = static\n  args = password=reload-pw\n"
                    "  username_filter = rl-*\n}\n")
        out = self.rg.ctl("reload")
        self.assertEqual(out.stdout.strip(), "OK", out.stderr)
        self.wait_log("reload: passdb/userdb changed: restarting auth process %d" % auth_before[0])

        def logs_in():
            c, err = self.login("rl-new", "reload-pw")
            if c is not None:
                c.logout()
            return c is not None
        # no restart of ringgate: the same master, a new auth with the new
        # block (the user's home comes from the static userdb)
        self.assertTrue(rgenv.wait_for(logs_in, timeout=30), self.rg.logs()[-3000:])
        self.assertIsNone(self.rg.proc.poll())
        auth_after = self.rg.children("ringgate-auth")
        self.assertEqual(len(auth_after), 1)
        self.assertNotEqual(auth_after, auth_before)
        self.assertFalse(os.path.exists("/proc/%d" % auth_before[0]) and
                         "ringgate-auth" in open("/proc/%d/comm" % auth_before[0]).read())
        # what was there before still works
        self.assertEqual(self.count("st-one", "static-st-one-pw"), 1)
        c, err = self.login("rl-new", "wrong")
        self.assertIsNone(c)
        # a reload that changes no block keeps this auth
        out = self.rg.ctl("reload")
        self.assertEqual(out.stdout.strip(), "OK", out.stderr)
        self.assertTrue(logs_in())
        self.assertEqual(self.rg.children("ringgate-auth"), auth_after)


if __name__ == "__main__":
    unittest.main()
