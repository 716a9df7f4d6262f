"""auth's asynchronous MariaDB/MySQL pool (src/auth/auth-sql-mysql.c,
libmariadb's non-blocking mysql_*_start/_cont API) against a private
MariaDB (storeenv.py), driven by storeprobe: results and NULLs, escaping by
mysql_real_escape_string (the server's general query log is the evidence),
maxconns, the request time bound, the server stopped and restarted. One
server for the file (~10 s to start on 2 cores)."""
import os
import time
import unittest

import storeenv


@unittest.skipUnless(storeenv.available("mysql"), "MariaDB server not installed")
@unittest.skipUnless(os.path.exists(storeenv.PROBE), "storeprobe not built")
class MysqlPoolTest(storeenv.SqlPoolCase, unittest.TestCase):
    SERVER = storeenv.MariaDB
    DRIVER = "mysql"
    NAME_TYPE = "varchar(255)"

    def test_lookup_null_error(self):
        p = self.probe()
        self.assertEqual(p.ask("SELECT password, home FROM users WHERE username = '%s'", "demo"),
                         "OK 1 password={PLAIN}pw|home=/home/demo")
        self.assertEqual(p.ask("SELECT home FROM users WHERE username = '%s'", "nohome"),
                         "OK 1 home=\\N")
        self.assertEqual(p.ask("SELECT home FROM users WHERE username = '%s'", "nobody"), "OK 0 ")
        self.assertTrue(p.ask("SELECT nosuchcolumn FROM users").startswith("ERROR "))
        # the connection is still good after the server's refusal
        self.assertEqual(p.ask("SELECT 1 AS one"), "OK 1 one=1")

    def test_unix_socket_host(self):
        p = self.probe(connect="host=%s dbname=%s user=root" % (self.db.socket, storeenv.DB_NAME))
        self.assertEqual(p.ask("SELECT home FROM users WHERE username = '%s'", "demo"),
                         "OK 1 home=/home/demo")

    def test_hostile_values_escaped(self):
        p = self.probe()
        for v in ["' OR 1=1 --", "x' OR 'a'='a", "\\' OR 1=1 -- ", "*)(uid=*", "a" * 300,
                  "demo'; DROP TABLE users; --"]:
            self.assertEqual(p.ask("SELECT username FROM users WHERE username = '%s'", v), "OK 0 ", v)
        log = self.db.statement_log()
        self.assertIn("WHERE username = '\\' OR 1=1 --'", log)
        self.assertIn("WHERE username = 'demo\\'; DROP TABLE users; --'", log)
        self.assertIn("WHERE username = '\\\\\\' OR 1=1 -- '", log)
        self.assertEqual(self.db.sql("SELECT count(*) FROM users").strip(), "2")

    def test_maxconns_and_timeout(self):
        p = self.probe(connect=self.db.connect_string(maxconns=2), extra="request_timeout = 1500ms\n")
        ids = [p.send("SELECT SLEEP(0.05) AS s, '%s' AS n", str(i)) for i in range(20)]
        got = p.answers(ids)
        for i, rid in enumerate(ids):
            self.assertEqual(got[rid], "OK 1 s=0|n=%d" % i)
        self.assertLessEqual(p.stats()["connections"], 2)
        t0 = time.time()
        slow = [p.send("SELECT SLEEP(10) AS s") for _ in range(3)]
        got = p.answers(slow)
        self.assertEqual(sorted(got.values()), ["TEMPFAIL query timed out"] * 2 +
                         ["TEMPFAIL timed out waiting for a database connection"])
        self.assertLess(time.time() - t0, 5)
        self.assertEqual(p.ask("SELECT 2 AS two"), "OK 1 two=2")

    def test_server_restart(self):
        p = self.probe()
        self.assertEqual(p.ask("SELECT 1 AS a"), "OK 1 a=1")
        self.db.stop()
        try:
            t0 = time.time()
            self.assertEqual(p.ask("SELECT 1 AS a").split()[0], "TEMPFAIL")
            self.assertEqual(p.ask("SELECT 1 AS a").split()[0], "TEMPFAIL")
            self.assertLess(time.time() - t0, 5)
        finally:
            self.db.start()
        deadline = time.time() + 20
        while True:
            ans = p.ask("SELECT 1 AS a")
            if ans == "OK 1 a=1":
                break
            self.assertLess(time.time(), deadline, ans)
            time.sleep(0.3)


if __name__ == "__main__":
    unittest.main()
