"""Logins through ringgate with users in a private PostgreSQL (storeenv.py):
passdb and userdb `sql` with a dovecot-sql.conf.ext as Dovecot reads it.
{SHA512-CRYPT} and {PLAIN} passwords, a wrong password, nologin with a
reason, a user proxied to a second ringgate by its row (proxy=Y host= port=),
two rows for one user (internal error, logged with the query's name),
hostile user names with auth_username_chars emptied (the server's statement
log shows each arrived as a parameter of the prepared password_query, never
in a statement's text; MariaDB's as one escaped string literal), and the database
stopped mid-test (NO [UNAVAILABLE]) then working again with no restart of
ringgate. One PostgreSQL and one ringgate pair for the file."""
import crypt
import os
import re
import socket
import time
import unittest

import rgenv
import storeenv

# Dovecot refuses most hostile names before any lookup (its default
# auth_username_chars); emptied, every name reaches the store
USERNAME_CHARS = "auth_username_chars =\n"

QUERIES = """
password_query = SELECT username AS user, password, nologin, reason, proxy, host, port, \\
  home AS userdb_home, uid AS userdb_uid, gid AS userdb_gid \\
  FROM users WHERE username = '%u'
user_query = SELECT home, uid, gid FROM users WHERE username = '%u'
iterate_query = SELECT username AS user FROM users
"""


def sql_str(v):
    return "NULL" if v is None else "'" + str(v).replace("'", "''") + "'"


@unittest.skipUnless(storeenv.available("pgsql"), "PostgreSQL server not installed")
class PgsqlLoginTest(storeenv.LoginCase, unittest.TestCase):
    # test_login_mysql.py runs these cases against MariaDB with its own values
    STORE = storeenv.Postgres
    DRIVER = "pgsql"
    NAME_TYPE = "text"
    # names as the server logs them (VALUE % the quoted name: PostgreSQL
    # logs a prepared statement's parameters so), and every statement
    # naming a user: a parameter in its place, never the name
    ESCAPED = {"' or 1=1 --": "''' or 1=1 --'", "alice' --": "'alice'' --'"}
    VALUE = "parameters: $1 = %s"
    STATEMENT = r"execute rg_s\d+: (SELECT username AS user.*)"
    LITERAL = r"WHERE username = \$1$"

    @classmethod
    def setUpClass(cls):
        cls.pg = cls.STORE()
        # class cleanups run even when setUpClass fails half-way
        cls.addClassCleanup(cls.pg.cleanup)
        cls.pg.start()
        # the backend a proxied user is sent to: a plain ringgate with its passwd-file
        cls.backend = rgenv.Ringgate(users={"pxuser": "px pass"}, failure_delay="0 secs")
        cls.addClassCleanup(cls.backend.cleanup)
        cls.backend.start()
        cls.rg = rgenv.Ringgate(users={"alice": "x", "bob": "x", "carol": "x"},
                                failure_delay="0 secs",
                                extra_conf=USERNAME_CHARS)
        cls.addClassCleanup(cls.rg.cleanup)
        cls.sqlconf = os.path.join(cls.rg.tmp, "dovecot-sql.conf.ext")
        with open(cls.sqlconf, "w") as f:
            f.write("# as in /etc/dovecot\ndriver = %s\nconnect = %s\n"
                    "default_pass_scheme = PLAIN\nrequest_timeout = 3s\n%s"
                    % (cls.DRIVER, cls.pg.connect_string(maxconns=4), QUERIES))
        storeenv.use_store_blocks(cls.rg,
                      "passdb {\n  driver = sql\n  args = %s\n}\nuserdb {\n  driver = sql\n"
                      "  args = %s\n}\n" % (cls.sqlconf, cls.sqlconf))
        rg = cls.rg
        rows = [
            ("alice", "{SHA512-CRYPT}" + crypt.crypt("alice pw", crypt.mksalt(crypt.METHOD_SHA512)),
             None, None, None, None, None, rg.home("alice")),
            ("bob", "{PLAIN}bob pw", None, None, None, None, None, rg.home("bob")),
            ("carol", "carol pw", "Y", "Moved to imap2.example.com.", None, None, None,
             rg.home("carol")),
            ("pxuser", "{PLAIN}px pass", None, None, "Y", "127.0.0.1", cls.backend.imap_port, None),
            ("twin", "{PLAIN}twin", None, None, None, None, None, rg.home("bob")),
            ("twin", "{PLAIN}twin", None, None, None, None, None, rg.home("bob")),
        ]
        values = ",".join("(%s)" % ",".join(sql_str(v) for v in r + (rg.uid, rg.gid)) for r in rows)
        cls.pg.sql("CREATE TABLE users (username %s, password text, nologin text, reason text,"
                   " proxy text, host text, port int, home text, uid int, gid int);" % cls.NAME_TYPE +
                   " INSERT INTO users VALUES " + values)
        cls.rg.start()

    def test_sha512_crypt_and_plain(self):
        for user, pw in (("alice", "alice pw"), ("bob", "bob pw")):
            c = self.imap()
            typ, _ = c.login(user, pw)
            self.assertEqual(typ, "OK")
            typ, data = c.select("INBOX")
            self.assertEqual(typ, "OK")
            self.assertEqual(int(data[0]), len(rgenv.MESSAGES))
            c.logout()
        # the userdb's row gave the worker its home: the hand-off names it
        self.assertIn("user=<alice>", self.rg.logs())

    def test_wrong_password_and_unknown(self):
        self.assertEqual(self.raw_login(b"alice", b"wrong"),
                         b"a NO [AUTHENTICATIONFAILED] Authentication failed.")
        self.assertEqual(self.raw_login(b"nobody", b"x"),
                         b"a NO [AUTHENTICATIONFAILED] Authentication failed.")
        logs = self.rg.logs()
        self.assertIn("Password mismatch", logs)
        self.assertNotIn("wrong", logs)

    def test_nologin_reason(self):
        # default_pass_scheme = PLAIN: carol's password has no {SCHEME}
        self.assertEqual(self.raw_login(b"carol", b"carol pw"),
                         b"a NO [ALERT] Moved to imap2.example.com.")

    def test_proxied_by_row(self):
        c = self.imap()
        typ, _ = c.login("pxuser", "px pass")
        self.assertEqual(typ, "OK")
        self.assertEqual(c.select("INBOX")[0], "OK")
        c.logout()
        deadline = time.time() + 10
        while "proxy(pxuser): started proxying to 127.0.0.1:%d" % self.backend.imap_port \
                not in self.rg.logs():
            self.assertLess(time.time(), deadline, self.rg.logs()[-3000:])
            time.sleep(0.1)
        self.assertIn("user=<pxuser>", self.backend.logs())

    def test_two_rows_internal_error(self):
        reply = self.raw_login(b"twin", b"twin")
        self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
        logs = self.rg.logs()
        self.assertIn("password_query returned 2 rows for one user", logs)
        self.assertNotIn("{PLAIN}twin", logs)

    def test_hostile_names(self):
        hostile = [b"' or 1=1 --", b"alice' --", b"*)(uid=*", b"x\\' OR '1'='1", b"a" * 300]
        for name in hostile:
            reply = self.raw_login(name, b"pw")
            self.assertEqual(reply, b"a NO [AUTHENTICATIONFAILED] Authentication failed.", name)
        log = self.pg.statement_log()
        # as the server received them (auth_username_format %Lu lower-cased
        # them first): each name one string literal
        for literal in self.ESCAPED.values():
            self.assertIn(self.VALUE % literal, log)
        self.assertIn(self.VALUE % "'*)(uid=*'", log)
        # 300 bytes: longer than a user name may be, refused before any lookup
        self.assertNotIn("a" * 300, log)
        # and nothing else: every statement naming a user is one of ours
        stmts = re.findall(self.STATEMENT, log)
        self.assertGreaterEqual(len(stmts), 4)
        for stmt in stmts:
            self.assertRegex(stmt, self.LITERAL)

    def second_ringgate(self, users, extra_conf=""):
        """Another ringgate on the same store blocks (started)."""
        rg = rgenv.Ringgate(users=users, failure_delay="0 secs", extra_conf=extra_conf)
        self.addCleanup(rg.cleanup)
        blocks = r"passdb \{.*?\}\nuserdb \{.*?\}\n"
        with open(self.rg.conf) as f:
            sql_blocks = re.search(blocks, f.read(), re.S).group(0)
        with open(rg.conf) as f:
            conf = re.sub(blocks, lambda m: sql_blocks, f.read(), flags=re.S)
        with open(rg.conf, "w") as f:
            f.write(conf)
        rg.start()
        return rg

    def test_auth_cache(self):
        # auth_cache_size: the sql passdb and userdb are cached by the
        # query's variables (%u here): the second login never reaches the
        # store; a wrong password is checked against the store again
        rg = self.second_ringgate({"bob": "x"}, "auth_cache_size = 1M\n")
        query = self.VALUE % "'bob'"
        self.assertEqual(storeenv.login_reply(rg.imap_port, b"bob", b"bob pw")[:4], b"a OK")
        n = self.pg.statement_log().count(query)
        self.assertGreaterEqual(n, 1)
        self.assertEqual(storeenv.login_reply(rg.imap_port, b"bob", b"bob pw")[:4], b"a OK")
        self.assertEqual(self.pg.statement_log().count(query), n)
        self.assertNotEqual(storeenv.login_reply(rg.imap_port, b"bob", b"not it")[:4], b"a OK")
        self.assertGreater(self.pg.statement_log().count(query), n)
        counts = rg.ctl("stats").stdout
        self.assertRegex(counts, r"cache_hits\D+[1-9]")

    def test_changed_query_after_reload(self):
        # a reload that changes only dovecot-sql.conf.ext (same path) gives a
        # fresh auth that reads it, as Dovecot's reload does: the new query
        # runs (on pgsql a new prepared statement on new connections)
        conf = os.path.join(self.rg.tmp, "reload-sql.conf.ext")
        with open(self.sqlconf) as f:
            text = f.read()
        with open(conf, "w") as f:
            f.write(text)
        rg = rgenv.Ringgate(users={"bob": "x"}, failure_delay="0 secs")
        self.addCleanup(rg.cleanup)
        storeenv.use_store_blocks(rg, "passdb {\n  driver = sql\n  args = %s\n}\n"
                                  "userdb {\n  driver = sql\n  args = %s\n}\n" % (conf, conf))
        rg.start()
        self.assertEqual(storeenv.login_reply(rg.imap_port, b"bob", b"bob pw")[:4], b"a OK")
        new = re.sub(r"password_query = .*?\n(?=user_query)",
                     "password_query = SELECT username AS user, password, 'Y' AS nologin, "
                     "'reloaded query' AS reason FROM users WHERE username = '%u'\n",
                     text, flags=re.S)
        self.assertNotEqual(new, text)
        with open(conf, "w") as f:
            f.write(new)
        out = rg.ctl("reload")
        self.assertEqual(out.stdout.strip(), "OK", out.stderr)

        def new_query_runs():
            return storeenv.login_reply(rg.imap_port, b"bob", b"bob pw") == \
                b"a NO [ALERT] reloaded query"
        self.assertTrue(rgenv.wait_for(new_query_runs, timeout=30), rg.logs()[-3000:])
        self.assertIn("reload: passdb/userdb files changed: restarting auth process", rg.logs())

    def test_default_username_chars(self):
        # with Dovecot's default auth_username_chars a hostile name is refused
        # before any lookup: the store never sees it
        rg = self.second_ringgate({"alice": "x"})
        with socket.create_connection(("127.0.0.1", rg.imap_port), timeout=20) as s:
            rgenv.recv_until(s, b"\r\n")
            s.sendall(b"a LOGIN \"zz' or '1'='1\" \"pw\"\r\n")
            reply = rgenv.recv_until(s, b"\r\n").strip()
        self.assertEqual(reply, b"a NO [AUTHENTICATIONFAILED] Authentication failed.")
        self.assertNotIn("zz'", self.pg.statement_log())

    def test_user_command(self):
        # `ringgate user` (doveadm user): iterate_query lists, user_query looks up
        r = self.rg.ctl("user", "*", check=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(r.stdout.splitlines()),
                         ["alice", "bob", "carol", "pxuser", "twin", "twin"])
        r = self.rg.ctl("user", "?ARO*", "px*", check=False)
        self.assertEqual(sorted(r.stdout.splitlines()), ["carol", "pxuser"])
        r = self.rg.ctl("user", "bob", check=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("home\t%s\n" % self.rg.home("bob"), r.stdout)
        self.assertIn("uid\t%d\n" % self.rg.uid, r.stdout)
        self.assertEqual(self.rg.ctl("user", "nobody", check=False).returncode, 67)

    def test_database_outage(self):
        c = self.imap()
        self.assertEqual(c.login("bob", "bob pw")[0], "OK")
        c.logout()
        self.pg.stop()
        try:
            t0 = time.time()
            reply = self.raw_login(b"bob", b"bob pw")
            self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
            self.assertLess(time.time() - t0, 5)
            # a listing that cannot reach the store fails as doveadm's does
            r = self.rg.ctl("user", "*", check=False)
            self.assertEqual((r.returncode, r.stdout), (89, ""))
            self.assertIn("user listing failed", r.stderr)
            self.assertEqual(self.rg.ctl("user", "bob", check=False).returncode, 75)
        finally:
            self.pg.start()
        deadline = time.time() + 20
        while True:
            reply = self.raw_login(b"bob", b"bob pw")
            if reply.startswith(b"a OK"):
                break
            self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
            self.assertLess(time.time(), deadline, "no login after the restart")
            time.sleep(0.5)


if __name__ == "__main__":
    unittest.main()
