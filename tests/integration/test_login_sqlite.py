"""Logins through ringgate with users in an SQLite file: passdb and userdb
`sql` with `driver = sqlite` (blocking, so the chain asks it as a blocking
module: in an auth-worker when auth has them). {SHA512-CRYPT} and {SSHA}
passwords, a wrong password, nologin, two rows for one user (internal
error), and hostile names with auth_username_chars emptied: SQLite keeps no
statement log, so the evidence is behaviour: `alice' --` with alice's
password would log in if the quote reached SQL unescaped, and `' OR 1=1 --`
would return every row (an internal error); both are unknown users."""
import crypt
import imaplib
import os
import sqlite3
import unittest

import rgenv
import storeenv

USERNAME_CHARS = "auth_username_chars =\n"


class SqliteLoginTest(storeenv.LoginCase, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.rg = rgenv.Ringgate(users={"alice": "x", "bob": "x"}, failure_delay="0 secs",
                                extra_conf=USERNAME_CHARS)
        cls.addClassCleanup(cls.rg.cleanup)
        rg = cls.rg
        db = os.path.join(rg.tmp, "users.sqlite")
        con = sqlite3.connect(db)
        con.execute("CREATE TABLE users (username TEXT, password TEXT, nologin TEXT, reason TEXT,"
                    " home TEXT, uid INTEGER, gid INTEGER)")
        rows = [
            ("alice", "{SHA512-CRYPT}" + crypt.crypt("alice pw", crypt.mksalt(crypt.METHOD_SHA512)),
             None, None, rg.home("alice")),
            ("bob", storeenv.ssha("bob pw"), None, None, rg.home("bob")),
            ("carol", "{PLAIN}carol pw", "Y", "Account closed.", "/nonexistent"),
            ("twin", "{PLAIN}twin", None, None, "/nonexistent"),
            ("twin", "{PLAIN}twin", None, None, "/nonexistent"),
        ]
        con.executemany("INSERT INTO users VALUES (?,?,?,?,?,%d,%d)" % (rg.uid, rg.gid), rows)
        con.commit()
        con.close()
        os.chmod(db, 0o644)
        conf_path = os.path.join(rg.tmp, "dovecot-sql.conf.ext")
        with open(conf_path, "w") as f:
            f.write("driver = sqlite\nconnect = %s\n"
                    "password_query = SELECT username AS user, password, nologin, reason, \\\n"
                    "  home AS userdb_home, uid AS userdb_uid, gid AS userdb_gid \\\n"
                    "  FROM users WHERE username = '%%u'\n"
                    "user_query = SELECT home, uid, gid FROM users WHERE username = '%%u'\n" % db)
        storeenv.use_store_blocks(rg,
                      "passdb {\n  driver = sql\n  args = %s\n}\nuserdb {\n  driver = sql\n"
                      "  args = %s\n}\n" % (conf_path, conf_path))
        rg.start()

    def test_user_command(self):
        # `ringgate user`: iterate_query (Dovecot's default) and user_query,
        # SQLite read in the command's own process
        r = self.rg.ctl("user", "*", check=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(r.stdout.splitlines()), ["alice", "bob", "carol", "twin", "twin"])
        r = self.rg.ctl("user", "-f", "home", "bob", check=False)
        self.assertEqual((r.returncode, r.stdout), (0, self.rg.home("bob") + "\n"), r.stderr)

    def test_logins(self):
        for user, pw in (("alice", "alice pw"), ("bob", "bob pw")):
            c = imaplib.IMAP4("127.0.0.1", self.rg.imap_port, timeout=20)
            try:
                self.assertEqual(c.login(user, pw)[0], "OK")
                typ, data = c.select("INBOX")
                self.assertEqual((typ, int(data[0])), ("OK", len(rgenv.MESSAGES)))
                c.logout()
            finally:
                c.sock.close()

    def test_refusals(self):
        failed = b"a NO [AUTHENTICATIONFAILED] Authentication failed."
        self.assertEqual(self.raw_login(b"alice", b"wrong"), failed)
        self.assertEqual(self.raw_login(b"bob", b"wrong"), failed)
        self.assertEqual(self.raw_login(b"nobody", b"x"), failed)
        self.assertEqual(self.raw_login(b"carol", b"carol pw"), b"a NO [ALERT] Account closed.")
        reply = self.raw_login(b"twin", b"twin")
        self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
        self.assertIn("password_query returned 2 rows for one user", self.rg.logs())

    def test_hostile_names(self):
        failed = b"a NO [AUTHENTICATIONFAILED] Authentication failed."
        self.assertEqual(self.raw_login(b"alice' --", b"alice pw"), failed)
        self.assertEqual(self.raw_login(b"' OR 1=1 --", b"x"), failed)
        self.assertEqual(self.raw_login(b"x' OR username='alice", b"alice pw"), failed)
        logs = self.rg.logs()
        self.assertNotIn("returned 5 rows", logs)


if __name__ == "__main__":
    unittest.main()
