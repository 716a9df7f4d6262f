"""Start-up back-off of login processes (the process table's groups): a
login binary that dies at once makes master wait 1, then 2 s (doubling) before
each service's next spawn, each service counting its own failures, while
auth keeps running. The login binary here is /bin/false in a copy of the
build's bin directory (master finds its children next to itself)."""
import os
import re
import shutil
import time
import unittest

import rgenv


class LoginBackoff(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.rg = rgenv.Ringgate(mode="performance")
        src = os.path.join(rgenv.build_dir(), "bin")
        cls.bindir = os.path.join(cls.rg.tmp, "bin")
        os.mkdir(cls.bindir)
        os.chmod(cls.rg.tmp, 0o755)
        for name in os.listdir(src):
            if not name.startswith("ringgate"):
                continue
            dst = os.path.join(cls.bindir, name)
            if name == "ringgate-login":
                shutil.copy(shutil.which("false"), dst)
            elif name == "ringgate":
                shutil.copy(os.path.join(src, name), dst)  # its own dir names the others
            else:
                os.symlink(os.path.join(src, name), dst)
        cls.rg.binary = lambda name="ringgate": os.path.join(cls.bindir, name)
        cls.rg.start(wait=False)

    @classmethod
    def tearDownClass(cls):
        cls.rg.cleanup()

    def waits(self, service):
        return [int(n) for n in re.findall(
            r"service\(%s\): processes die at start-up, waiting (\d+) secs" % service,
            self.rg.logs())]

    def wait_for_waits(self, service, count, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.rg.proc.poll() is not None:
                self.fail("master exited:\n" + self.rg.logs())
            if len(self.waits(service)) >= count:
                return self.waits(service)
            time.sleep(0.1)
        self.fail("no %d back-off lines for %s:\n%s" % (count, service, self.rg.logs()))

    def test_each_service_doubles_its_wait(self):
        # several processes of one service dying together are one failure:
        # each wave adds one line, and the wait doubles
        for service in ("imap-login", "pop3-login"):
            self.assertEqual(self.wait_for_waits(service, 2)[:2], [1, 2], service)
        logs = self.rg.logs()
        self.assertIn("service(imap-login): child ", logs)
        self.assertIn("returned error 1", logs)
        # the singletons are not touched by the logins' failures
        self.assertNotIn("service(auth): processes die", logs)
        self.assertNotIn("exited unexpectedly", logs)
        self.assertTrue(self.rg.children("ringgate-auth"))


if __name__ == "__main__":
    unittest.main()
