"""`ringgate -c FILE user MASK...` (Dovecot's `doveadm user`) with the
userdbs that need no server: passwd-file (every entry, file order) and
passwd (getpwent() within first_valid_uid..last_valid_uid), listing with
masks (case-insensitive) and looking users up in doveadm's formats. No
ringgate runs: the command answers from the configuration alone. The sql
and ldap userdbs' listings are tested with their servers
(test_login_pgsql.py, _mysql, _ldap)."""
import os
import pwd
import shutil
import subprocess
import tempfile
import unittest

import rgenv

PASSWD_USER = "rg-usercmd"


class UserCommandTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rg-usercmd-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        if rgenv.is_root():
            cls.uid, _ = rgenv.ensure_system_user(PASSWD_USER)
        else:
            cls.uid = os.getuid()
        cls.pwname = pwd.getpwuid(cls.uid).pw_name
        cls.users = os.path.join(cls.tmp, "users")
        with open(cls.users, "w") as f:
            f.write("# a comment line\n"
                    "zed:{PLAIN}x:1000:1000::/home/zed::userdb_quota_rule=*:storage=1G\n"
                    "Alice:{PLAIN}x:1001:1001::/home/alice\n"
                    "\n"
                    "bob@example.com:{PLAIN}x:1002:1002::/home/bob::userdb_mail=mbox:~/mail\n")

    def conf(self, userdbs, extra=""):
        path = os.path.join(self.tmp, "ringgate-%d.conf" % len(os.listdir(self.tmp)))
        with open(path, "w") as f:
            f.write("base_dir = %s/run\nssl = no\nmail_location = maildir:~/Maildir\n"
                    "first_valid_uid = %d\nlast_valid_uid = %d\n%s"
                    "passdb {\n  driver = passwd-file\n  args = %s\n}\n%s"
                    % (self.tmp, self.uid, self.uid, extra, self.users, userdbs))
        return path

    def user(self, conf, *args):
        return subprocess.run([os.path.join(rgenv.build_dir(), "bin", "ringgate"), "-c", conf,
                               "user"] + list(args), capture_output=True, text=True, timeout=30)

    def test_list_passwd_file_then_passwd(self):
        conf = self.conf("userdb {\n  driver = passwd-file\n  args = %s\n}\n"
                         "userdb {\n  driver = passwd\n}\n" % self.users)
        r = self.user(conf, "*")
        self.assertEqual(r.returncode, 0, r.stderr)
        # the file's entries in file order, then the one system user in the
        # uid range (root and the daemons are outside it)
        self.assertEqual(r.stdout.splitlines(), ["zed", "Alice", "bob@example.com", self.pwname])
        # masks: wildcards, case-insensitive, any of several
        r = self.user(conf, "a*", "*@EXAMPLE.com")
        self.assertEqual(r.stdout.splitlines(), ["Alice", "bob@example.com"])
        r = self.user(conf, "?ed")
        self.assertEqual(r.stdout.splitlines(), ["zed"])
        self.assertEqual(self.user(conf, "nomatch*").stdout, "")

    def test_no_userdb_block_lists_the_passdb_file(self):
        # as auth: a passwd-file passdb with no userdb is the userdb too
        r = self.user(self.conf(""), "*")
        self.assertEqual(r.stdout.splitlines(), ["zed", "Alice", "bob@example.com"])

    def test_templated_path_cannot_list(self):
        # a %d path: which files exist is unknown, so the listing fails (as
        # Dovecot's), while a lookup finds the user's file
        os.makedirs(os.path.join(self.tmp, "domains"), exist_ok=True)
        shutil.copy(self.users, os.path.join(self.tmp, "domains", "example.com"))
        conf = self.conf("userdb {\n  driver = passwd-file\n  args = %s/domains/%%d\n}\n"
                         % self.tmp)
        r = self.user(conf, "*")
        self.assertEqual(r.returncode, 89)
        self.assertIn("users cannot be listed with %variables in the path", r.stderr)
        r = self.user(conf, "-f", "home", "bob@example.com")
        self.assertEqual((r.returncode, r.stdout), (0, "/home/bob\n"), r.stderr)

    def test_lookup_formats(self):
        conf = self.conf("userdb {\n  driver = passwd-file\n  args = %s\n}\n" % self.users)
        r = self.user(conf, "zed", "bob@example.com")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "field\tvalue\n"
                         "uid\t1000\ngid\t1000\nhome\t/home/zed\nmail\tmaildir:~/Maildir\n"
                         "quota_rule\t*:storage=1G\n"
                         "\n"
                         "uid\t1002\ngid\t1002\nhome\t/home/bob\nmail\tmbox:~/mail\n")
        r = self.user(conf, "-u", "zed")
        self.assertEqual(r.stdout, "userdb: zed\n  uid       : 1000\n  gid       : 1000\n"
                         "  home      : /home/zed\n  quota_rule: *:storage=1G\n")
        r = self.user(conf, "-f", "home", "zed")
        self.assertEqual(r.stdout, "/home/zed\n")
        # unknown: doveadm's line and exit code (EX_NOUSER)
        r = self.user(conf, "nobody-here")
        self.assertEqual(r.returncode, 67)
        self.assertIn("userdb lookup: user nobody-here doesn't exist", r.stdout)

    def test_lookup_applies_username_format(self):
        conf = self.conf("userdb {\n  driver = passwd-file\n  args = %s\n}\n" % self.users,
                         "auth_username_format = %Lu\n")
        r = self.user(conf, "ZED")
        self.assertEqual(r.returncode, 0, r.stderr)
        # the name the userdb was asked with is shown, as doveadm does
        self.assertIn("user\tzed\n", r.stdout)
        self.assertIn("home\t/home/zed\n", r.stdout)

    def test_usage(self):
        conf = self.conf("")
        self.assertEqual(self.user(conf).returncode, 64)
        self.assertEqual(self.user(conf, "-x", "zed").returncode, 64)


if __name__ == "__main__":
    unittest.main()
