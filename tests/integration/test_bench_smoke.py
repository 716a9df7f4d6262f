"""A few seconds of rgbench against a real ringgate: sessions complete with
zero errors, and errors are counted by kind (a wrong password is a login
error, the run is reported invalid). Speed is never asserted."""
import json
import os
import subprocess
import sys
import unittest

import rgenv

sys.path.insert(0, os.path.join(rgenv.ROOT, "bench"))


def rgbench(*args, timeout=60):
    cmd = [os.path.join(rgenv.build_dir(), "bin", "rgbench"), "--quiet"] + [str(a) for a in args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    result = [x for x in lines if x.get("event") == "result"]
    return r.returncode, (result[0] if result else None), lines, r.stderr


class BenchSmoke(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = rgenv.Ringgate(mode="performance", failure_delay="1 secs").start()

    @classmethod
    def tearDownClass(cls):
        cls.env.cleanup()

    def assertClean(self, rc, res, err):
        self.assertIsNotNone(res, err)
        self.assertEqual(res["errors"], 0, "%s\n%s" % (res, self.env.logs()[-2000:]))
        self.assertEqual(res["errors_by_kind"], {})
        self.assertTrue(res["ok"])
        self.assertEqual(rc, 0, err)

    def test_imap_sessions_complete(self):
        for kind, n in (("prelogin", 300), ("login", 60), ("login-fetch", 40)):
            rc, res, _, err = rgbench("--port", self.env.imap_port, "--kind", kind,
                                      "--clients", 4, "--sessions", n, "--duration", 20,
                                      "--user", "demo", "--pass", "demo-pass")
            self.assertClean(rc, res, err)
            # --sessions N: every session started also completed
            self.assertEqual(res["sessions"], n, kind)
            self.assertEqual(res["started"], n, kind)
            self.assertGreater(res["sessions_per_sec"], 0)
            self.assertGreater(res["latency_ms"]["p99"], 0)

    def test_bursts_are_served_whole(self):
        # More clients at once than a process's client_limit (1000) and
        # than a channel's socket buffer holds messages (~200): every one
        # is served. Before: a multishot accept took the whole backlog
        # into one process, which evicted the surplus ("Connection queue
        # full"), and logins failed on full auth/master channels (EAGAIN).
        for kind, n in (("prelogin", 1300), ("login", 400)):
            rc, res, _, err = rgbench("--port", self.env.imap_port, "--kind", kind,
                                      "--clients", n, "--sessions", n, "--duration", 60,
                                      "--timeout", 50, "--src", "127.0.0.3",
                                      "--user", "demo", "--pass", "demo-pass", timeout=120)
            self.assertClean(rc, res, err)
            self.assertEqual(res["sessions"], n, kind)
        logs = self.env.logs()
        for bad in ("queue full", "not sent", "hand-off to master failed", "closing its channel"):
            self.assertNotIn(bad, logs)

    def test_drain_finishes_every_session_started(self):
        rc, res, _, err = rgbench("--port", self.env.imap_port, "--kind", "login-fetch",
                                  "--clients", 6, "--duration", 0.5, "--drain",
                                  "--user", "demo", "--pass", "demo-pass")
        self.assertClean(rc, res, err)
        # nothing cut off at the end: what started also completed
        self.assertEqual(res["sessions"], res["started"])
        self.assertGreaterEqual(res["elapsed_s"], 0.5)

    def test_pop3_sessions_complete(self):
        rc, res, _, err = rgbench("--port", self.env.pop3_port, "--proto", "pop3",
                                  "--kind", "login-fetch", "--clients", 3, "--sessions", 30,
                                  "--duration", 20, "--user", "alice", "--pass", "alice secret")
        self.assertClean(rc, res, err)
        self.assertEqual(res["sessions"], 30)

    def test_wrong_password_is_a_login_error(self):
        # a source address of its own: auth's per-IP penalty for other
        # tests' failures must not slow this one down
        rc, res, _, _ = rgbench("--port", self.env.imap_port, "--kind", "login",
                                "--clients", 2, "--sessions", 2, "--duration", 20,
                                "--src", "127.0.0.2",
                                "--user", "demo", "--pass", "not-the-password")
        self.assertEqual(rc, 1)
        self.assertEqual(res["errors_by_kind"], {"login": 2}, res)
        self.assertEqual(res["sessions"], 0)
        self.assertIsNone(res["sessions_per_sec"])
        self.assertFalse(res["ok"])

    def test_pop3_wrong_password_is_a_login_error(self):
        rc, res, _, _ = rgbench("--port", self.env.pop3_port, "--proto", "pop3",
                                "--kind", "login", "--clients", 1, "--sessions", 1,
                                "--duration", 20, "--src", "127.0.0.3",
                                "--user", "alice", "--pass", "wrong")
        self.assertEqual(rc, 1)
        self.assertEqual(res["errors_by_kind"], {"login": 1}, res)

    def test_wrong_port_is_a_connect_error(self):
        port = rgenv.free_port()
        rc, res, _, _ = rgbench("--port", port, "--clients", 1, "--sessions", 5, "--duration", 2)
        self.assertEqual(rc, 1)
        self.assertEqual(res["errors_by_kind"], {"connect": 5})

    def test_imap_greeting_on_pop3_port_is_an_error(self):
        # the IMAP script against a POP3 server: "+OK" is not "* OK"
        rc, res, _, _ = rgbench("--port", self.env.pop3_port, "--clients", 1,
                                "--sessions", 3, "--duration", 5)
        self.assertEqual(rc, 1)
        self.assertEqual(res["errors_by_kind"], {"greeting": 3})

    def test_idle_connections_are_held(self):
        rc, res, lines, err = rgbench("--port", self.env.imap_port, "--kind", "idle",
                                      "--clients", 200, "--duration", 1)
        self.assertClean(rc, res, err)
        self.assertEqual(res["held"], 200)
        ready = [x for x in lines if x.get("event") == "idle_ready"]
        self.assertEqual(len(ready), 1)
        self.assertEqual(ready[0]["held"], 200)

    def test_only_loopback_targets(self):
        for opt in ("--host", "--src"):
            rc, res, _, err = rgbench("--port", self.env.imap_port, opt, "192.0.2.1")
            self.assertEqual(rc, 2)
            self.assertIsNone(res)
            self.assertIn("127.0.0.0/8", err)


class BenchTls(unittest.TestCase):
    """rgbench's TLS client (implicit TLS, STARTTLS/STLS, resumption) against
    ringgate's TLS, in both modes."""

    @classmethod
    def setUpClass(cls):
        cls.envs = {mode: rgenv.Ringgate(mode=mode, tls=True).start()
                    for mode in ("performance", "security")}

    @classmethod
    def tearDownClass(cls):
        for env in cls.envs.values():
            env.cleanup()

    def run_ok(self, env, *args):
        rc, res, _, err = rgbench("--user", "demo", "--pass", "demo-pass", *args)
        self.assertIsNotNone(res, err)
        self.assertEqual(res["errors"], 0, "%s\n%s" % (res, env.logs()[-2000:]))
        self.assertEqual(rc, 0)
        return res

    def test_implicit_tls_login_fetch(self):
        for env in self.envs.values():
            res = self.run_ok(env, "--port", env.imaps_port, "--tls", "--kind", "login-fetch",
                              "--clients", 2, "--sessions", 10, "--duration", 20)
            self.assertEqual(res["sessions"], 10)
            self.assertGreaterEqual(res["tls"]["handshakes"], 10)
            self.assertTrue(res["tls"]["version"].startswith("TLS"))

    def test_starttls_pop3_with_resumption(self):
        # master's shared ticket keys: every offered session resumes, on
        # whichever login process (in high-security mode always another)
        for env in self.envs.values():
            res = self.run_ok(env, "--port", env.pop3_port, "--proto", "pop3", "--starttls",
                              "--resume", "--kind", "login", "--clients", 1, "--sessions", 6,
                              "--duration", 20)
            self.assertEqual(res["sessions"], 6)
            self.assertEqual(res["tls"]["resume_offered"], 5)
            self.assertEqual(res["tls"]["resumed"], 5)

    def test_tls_idle(self):
        env = self.envs["performance"]
        res = self.run_ok(env, "--port", env.imaps_port, "--tls", "--kind", "idle",
                          "--clients", 50, "--duration", 0.5)
        self.assertEqual(res["held"], 50)
        self.assertEqual(res["tls"]["handshakes"], 50)


if __name__ == "__main__":
    unittest.main()
