"""auth's asynchronous PostgreSQL pool (src/auth/auth-sql.c, libpq's
non-blocking API) against a private PostgreSQL (storeenv.py), driven by
storeprobe: escaping through the library (the server's statement log is the
evidence), maxconns, the request time bound, fail-over between hosts, a
database stopped and restarted under it. One server for the file (~10 s)."""
import os
import time
import unittest

import storeenv


@unittest.skipUnless(storeenv.available("pgsql"), "PostgreSQL server not installed")
@unittest.skipUnless(os.path.exists(storeenv.PROBE), "storeprobe not built")
class PgsqlPoolTest(storeenv.SqlPoolCase, unittest.TestCase):
    SERVER = storeenv.Postgres
    DRIVER = "pgsql"

    def test_lookup_and_null(self):
        p = self.probe()
        self.assertEqual(p.ask("SELECT password, home FROM users WHERE username = '%s'", "demo"),
                         "OK 1 password={PLAIN}pw|home=/home/demo")
        self.assertEqual(p.ask("SELECT home FROM users WHERE username = '%s'", "nohome"),
                         "OK 1 home=\\N")
        self.assertEqual(p.ask("SELECT home FROM users WHERE username = '%s'", "nobody"), "OK 0 ")
        # the server's own refusal is an error, not a temporary failure
        self.assertTrue(p.ask("SELECT nosuchcolumn FROM users").startswith("ERROR "))

    def test_hostile_values_escaped(self):
        p = self.probe()
        hostile = ["' OR 1=1 --", "x' OR 'a'='a", "\\' OR 1=1 --", "*)(uid=*", "a" * 300,
                   "demo'; DROP TABLE users; --"]
        for v in hostile:
            self.assertEqual(p.ask("SELECT username FROM users WHERE username = '%s'", v), "OK 0 ",
                             v)
        log = self.db.statement_log()
        # the statements as the server received them: each value stayed one
        # string literal (the apostrophes doubled by PQescapeStringConn)
        self.assertIn("WHERE username = ''' OR 1=1 --'", log)
        self.assertIn("WHERE username = 'demo''; DROP TABLE users; --'", log)
        self.assertIn("WHERE username = '\\'' OR 1=1 --'", log)
        self.assertIn("'" + "a" * 300 + "'", log)
        self.assertEqual(self.db.sql("SELECT count(*) FROM users").strip(), "2")

    def test_maxconns_and_concurrency(self):
        p = self.probe(connect=self.db.connect_string(maxconns=3))
        ids = [p.send("SELECT pg_sleep(0.05), '%s' AS n", str(i)) for i in range(40)]
        got = p.answers(ids)
        for i, rid in enumerate(ids):
            self.assertEqual(got[rid], "OK 1 pg_sleep=|n=%d" % i)
        st = p.stats()
        self.assertLessEqual(st["connections"], 3)
        self.assertEqual(st["queries"], 40)
        self.assertEqual(st["queued"], 0)

    def test_request_timeout(self):
        p = self.probe(connect=self.db.connect_string(maxconns=1), extra="request_timeout = 1s\n")
        t0 = time.time()
        slow = p.send("SELECT pg_sleep(10)")
        queued = p.send("SELECT 1 AS one")
        got = p.answers([slow, queued])
        elapsed = time.time() - t0
        self.assertEqual(got[slow], "TEMPFAIL query timed out")
        # the second waited behind it in the queue past its own bound
        self.assertEqual(got[queued], "TEMPFAIL timed out waiting for a database connection")
        self.assertLess(elapsed, 4)
        # the pool goes on: a fresh connection serves the next one
        self.assertEqual(p.ask("SELECT 2 AS two"), "OK 1 two=2")
        self.assertEqual(p.stats()["timeouts"], 2)

    def test_server_side_statement_timeout(self):
        # what docs/architecture.md recommends next to request_timeout:
        # PostgreSQL cancels a slow statement itself (options= in the
        # connect string), and the connection stays for the next query
        p = self.probe(connect=self.db.connect_string(maxconns=1,
                                                      options="-cstatement_timeout=300"),
                       extra="request_timeout = 3s\n")
        pid = p.ask("SELECT pg_backend_pid() AS pid")
        t0 = time.time()
        ans = p.ask("SELECT pg_sleep(10)")
        self.assertTrue(ans.startswith("ERROR ") and "statement timeout" in ans, ans)
        self.assertLess(time.time() - t0, 3)
        self.assertEqual(p.ask("SELECT pg_backend_pid() AS pid"), pid)
        self.assertEqual(p.stats()["timeouts"], 0)

    def test_prepared_statement(self):
        # as auth runs password_query: prepared once on the connection, then
        # executed with the value as a parameter (never in the text)
        p = self.probe(connect=self.db.connect_string(maxconns=1))
        q = "prepare SELECT home AS h1 FROM users WHERE username = '%s'"
        self.assertEqual(p.ask(q, "demo"), "OK 1 h1=/home/demo")
        self.assertEqual(p.ask(q, "demo' OR '1'='1"), "OK 0 ")
        self.assertEqual(p.ask(q, "nohome"), "OK 1 h1=\\N")
        self.assertEqual(p.stats()["prepares"], 1)
        log = self.db.statement_log()
        self.assertIn("execute rg_s0: SELECT home AS h1 FROM users WHERE username = $1", log)
        self.assertIn("parameters: $1 = 'demo'' OR ''1''=''1'", log)
        self.assertNotIn("h1 FROM users WHERE username = '", log)

    def test_prepared_again(self):
        p = self.probe(connect=self.db.connect_string(maxconns=1))
        q = "prepare SELECT home AS h2 FROM users WHERE username = '%s'"
        self.assertEqual(p.ask(q, "demo"), "OK 1 h2=/home/demo")
        # the session lost it (as behind a pooler that hands out another
        # server connection): the execution fails with SQLSTATE 26000 and
        # the statement is prepared again, the request answered
        self.assertEqual(p.ask("DEALLOCATE rg_s0"), "OK 0 ")
        self.assertEqual(p.ask(q, "demo"), "OK 1 h2=/home/demo")
        self.assertEqual(p.stats()["prepares"], 2)
        # a second statement, then the first one lost again: its 26000
        # forgets every mark on the connection, and the second one's
        # prepare finds it there (42P05): prepared, not sent as text
        q2 = "prepare SELECT password AS p2 FROM users WHERE username = '%s'"
        self.assertEqual(p.ask(q2, "demo"), "OK 1 p2={PLAIN}pw")
        self.assertEqual(p.ask("DEALLOCATE rg_s0"), "OK 0 ")
        self.assertEqual(p.ask(q, "demo"), "OK 1 h2=/home/demo")
        self.assertEqual(p.ask(q2, "demo"), "OK 1 p2={PLAIN}pw")
        self.assertEqual(p.stats()["prepares"], 5)
        self.assertNotIn("SELECT password AS p2 FROM users WHERE username = 'demo'",
                         self.db.statement_log())
        # the server ends the connection: the new one prepares again
        self.db.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE pid <> pg_backend_pid() AND query LIKE '%AS p2 FROM users%'")
        ans = p.ask(q, "demo")
        if ans != "OK 1 h2=/home/demo":  # it ran before the end was seen
            self.assertEqual(ans, "TEMPFAIL connection to the database lost")
            ans = p.ask(q, "demo")
        self.assertEqual(ans, "OK 1 h2=/home/demo")
        st = p.stats()
        self.assertEqual(st["prepares"], 6)
        self.assertEqual(st["connections"], 1)

    def test_unpreparable_sent_as_text(self):
        # a parameter the server cannot type ($1 IS NOT NULL, where it types
        # the literal as text): it refuses to prepare; the query goes as
        # text, escaped, from then on
        p = self.probe()
        q = "prepare SELECT 1 AS n WHERE '%s' IS NOT NULL"
        self.assertEqual(p.ask(q, "it's"), "OK 1 n=1")
        self.assertEqual(p.ask(q, "x"), "OK 1 n=1")
        self.assertEqual(p.stats()["prepares"], 0)
        err = p.close()
        self.assertEqual(err.count("cannot prepare a query, sending it as text from now on"), 1,
                         err)
        self.assertIn("statement: SELECT 1 AS n WHERE 'it''s' IS NOT NULL",
                      self.db.statement_log())

    def test_failover_between_hosts(self):
        # 127.0.0.2: nothing listens there; the other host serves everything
        p = self.probe(connect=self.db.connect_string(host="127.0.0.2") + " host=127.0.0.1")
        for i in range(6):
            self.assertEqual(p.ask("SELECT '%s' AS v", str(i)), "OK 1 v=%d" % i)
        self.assertGreaterEqual(p.stats()["connect_failures"], 1)

    def test_database_restart(self):
        p = self.probe()
        self.assertEqual(p.ask("SELECT 1 AS a"), "OK 1 a=1")
        self.db.stop()
        try:
            t0 = time.time()
            self.assertEqual(p.ask("SELECT 1 AS a").split()[0], "TEMPFAIL")
            # while the only host backs off, requests fail at once
            self.assertEqual(p.ask("SELECT 1 AS a"), "TEMPFAIL no connection to the database")
            self.assertLess(time.time() - t0, 3)
        finally:
            self.db.start()
        # back-off: 1 s, 2 s, ...: it works again without a restart of ours
        deadline = time.time() + 15
        while True:
            ans = p.ask("SELECT 1 AS a")
            if ans == "OK 1 a=1":
                break
            self.assertLess(time.time(), deadline, ans)
            time.sleep(0.3)


if __name__ == "__main__":
    unittest.main()
