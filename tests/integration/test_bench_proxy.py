"""The bench's proxy section (bench/proxybench.py) on a few sessions: the
private Dovecot backend, ringgate proxying to it from its passwd-file and
nginx's mail proxy with its nginx auth_http responder all start, and rgbench
sessions through either proxy complete with zero errors (a wrong password is
refused by both). Speed is never asserted. Skipped without root, Dovecot or
nginx with its mail module (`make bench` installs them)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import rgenv

sys.path.insert(0, os.path.join(rgenv.ROOT, "bench"))
import harness  # noqa: E402
import proxybench  # noqa: E402


def rgbench(port, *args):
    cmd = [os.path.join(rgenv.build_dir(), "bin", "rgbench"), "--quiet", "--port", str(port),
           "--clients", "4", "--duration", "20", "--timeout", "20"] + [str(a) for a in args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    res = [json.loads(x) for x in r.stdout.splitlines() if '"result"' in x]
    return r.returncode, (res[0] if res else None), r.stderr


@unittest.skipUnless(rgenv.is_root(), "needs root (cgroups, a private Dovecot)")
@unittest.skipIf(proxybench.nginx_missing() is not None, str(proxybench.nginx_missing()))
@unittest.skipIf(shutil.which("dovecot") is None, "Dovecot is not installed")
class BenchSmokeBase(unittest.TestCase):
    """A bench section's servers for one test class: started in order (a
    failure stops those already up), stopped in reverse, cls.tmp removed.
    Holds no test of its own (test_bench_prelogin.py uses it too)."""

    @classmethod
    def make_world(cls, prefix):
        """cls.tmp (world-readable: the servers' users read it) and the
        bench world in it; the bench's progress lines silenced"""
        harness.log = lambda msg: None
        cls.tmp = tempfile.mkdtemp(prefix=prefix)
        os.chmod(cls.tmp, 0o755)
        return harness.World(cls.tmp)

    @classmethod
    def start_servers(cls, servers, prepare=None):
        cls.started = []
        try:
            for srv in servers:
                if prepare is not None:
                    prepare(srv)
                srv.start()
                cls.started.append(srv)
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for srv in reversed(cls.started):
            srv.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)


class ProxyBenchSmoke(BenchSmokeBase):
    @classmethod
    def setUpClass(cls):
        world = cls.make_world("rgbench-proxy-test-")
        cls.rg = proxybench.RinggateProxy(world, cls.tmp, rgenv.build_dir(), 100)
        cls.backend = proxybench.backend_dovecot(world, cls.tmp, 100)
        cls.rg.set_backend(cls.backend.ports["imap"])
        cls.nginx = proxybench.NginxProxy(cls.tmp, cls.backend.ports["imap"])
        cls.start_servers((cls.backend, cls.rg, cls.nginx))

    def run_ok(self, srv, kind, n):
        rc, res, err = rgbench(srv.ports["imap"], "--kind", kind, "--sessions", n,
                               "--user", harness.BENCH_USER, "--pass", harness.BENCH_PASS)
        self.assertIsNotNone(res, err)
        self.assertEqual(res["errors_by_kind"], {}, "%s\n%s" % (res, srv.logs()[-3000:]))
        self.assertEqual(rc, 0, err)
        self.assertEqual(res["sessions"], n)
        return res

    def test_sessions_through_both_proxies(self):
        for srv in (self.rg, self.nginx):
            cpu0, relay0 = srv.cpu_parts(), srv.relay_ns()
            self.run_ok(srv, "login", 40)
            self.run_ok(srv, "login-fetch", 8)
            cpu1, relay1 = srv.cpu_parts(), srv.relay_ns()
            # the relay's own CPU (login processes; the mail nginx) is
            # read apart (clock ticks: it may not have moved yet)
            self.assertGreaterEqual(relay1, relay0)
            # each part is accounted in its own cgroup (nginx: mail and auth)
            self.assertEqual(set(cpu0), {"ringgate"} if srv is self.rg else {"mail", "auth"})
            for k in cpu0:
                self.assertGreater(cpu1[k], cpu0[k], k)
        # the backend served them: ringgate's proxy log names it
        self.assertIn("proxy(%s): started proxying to 127.0.0.1:%d" % (
            harness.BENCH_USER, self.backend.ports["imap"]), self.rg.logs())

    def test_wrong_password_refused_by_both(self):
        for srv, src in ((self.rg, "127.0.0.4"), (self.nginx, "127.0.0.5")):
            rc, res, _ = rgbench(srv.ports["imap"], "--kind", "login", "--sessions", 1,
                                 "--clients", 1, "--src", src, "--user", harness.BENCH_USER,
                                 "--pass", "not-the-password")
            self.assertEqual(rc, 1)
            self.assertEqual(res["errors_by_kind"], {"login": 1}, (srv.name, res))


if __name__ == "__main__":
    unittest.main()
