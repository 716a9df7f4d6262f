"""The bench's pre-login section (bench/prelogbench.py) on a few sessions:
ringgate and nginx's private mail proxy start as the section starts them,
greeting + LOGOUT sessions over plaintext and implicit TLS with only an
X25519 key share complete on both with zero errors (nginx closes a TLS
session only after the client's close_notify, which rgbench now sends),
idle connections are held, and the section's memory accounting counts
something for them. Speed is never asserted. Skipped without root or nginx
with its mail module (`make bench` installs it)."""
import json
import os
import subprocess
import sys
import unittest

import rgenv

sys.path.insert(0, os.path.join(rgenv.ROOT, "bench"))
import harness  # noqa: E402
import prelogbench  # noqa: E402
import proxybench  # noqa: E402
import test_bench_proxy  # noqa: E402


def rgbench(port, *args):
    cmd = [os.path.join(rgenv.build_dir(), "bin", "rgbench"), "--quiet", "--port", str(port),
           "--proto", "imap", "--clients", "4", "--duration", "20", "--timeout", "20"] + [
               str(a) for a in args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    res = [json.loads(x) for x in r.stdout.splitlines() if '"result"' in x]
    return r.returncode, (res[0] if res else None), r.stderr


@unittest.skipUnless(rgenv.is_root(), "needs root (cgroups, a private nginx)")
@unittest.skipIf(proxybench.nginx_missing() is not None, str(proxybench.nginx_missing()))
class PreloginBenchSmoke(test_bench_proxy.BenchSmokeBase):
    @classmethod
    def setUpClass(cls):
        world = cls.make_world("rgbench-prelogin-test-")
        cls.rg = harness.RinggateServer("rg-perf", "performance", world, cls.tmp, 100,
                                        rgenv.build_dir())
        cls.nginx = prelogbench.NginxMail(cls.tmp, world)

        def accounting(srv):
            srv.acct = prelogbench.SockAccounting(srv.name)
        cls.start_servers((cls.rg, cls.nginx), accounting)

    def run_ok(self, srv, port, n, *args):
        rc, res, err = rgbench(port, "--kind", "prelogin", "--sessions", n, *args)
        self.assertIsNotNone(res, err)
        self.assertEqual(res["errors_by_kind"], {}, "%s\n%s" % (res, srv.logs()[-3000:]))
        self.assertEqual(rc, 0, err)
        self.assertEqual(res["sessions"], n)
        return res

    def test_prelogin_plain_and_imaps_x25519(self):
        for srv in (self.rg, self.nginx):
            cpu0 = srv.acct.cpu_ns()
            self.run_ok(srv, srv.ports["imap"], 40)
            res = self.run_ok(srv, srv.ports["imaps"], 8, "--tls", "--group",
                              prelogbench.GROUP)
            self.assertEqual(res["tls"]["group"], "X25519", res)
            self.assertEqual(res["tls"]["version"], "TLSv1.3", res)
            # the server's own cgroup counted its work
            self.assertGreater(srv.acct.cpu_ns(), cpu0, srv.name)

    def test_idle_held_and_accounted(self):
        for srv in (self.rg, self.nginx):
            for port, extra in ((srv.ports["imap"], []),
                                (srv.ports["imaps"], ["--tls", "--group", prelogbench.GROUP])):
                rc, res, err = rgbench(port, "--kind", "idle", "--clients", 20, "--duration", 1,
                                       *extra)
                self.assertIsNotNone(res, err)
                self.assertEqual(res["errors_by_kind"], {}, (srv.name, res))
                self.assertEqual(res["held"], 20, (srv.name, res))
            self.assertGreater(srv.acct.mem_bytes(), 0)
            self.assertTrue(srv.acct.pids(), srv.name)


if __name__ == "__main__":
    unittest.main()
