"""Worker templates (issue 19): with `service imap { service_count = 1 }`
(a worker per session, the default) every new imap/pop3 worker is forked
from a pre-started template (`ringgate-imap -T`, shown as ringgate-itmpl;
`ringgate-pop3 -T`, ringgate-ptmpl) instead of exec'd. Each worker is still
master's own child with its own pid, logs under that pid, and runs with
exactly the privileges of an exec'd one (uids, gids, groups, no capability,
the chroot); the template is replaced after worker_template_forks children,
at once after one dies of a signal, restarted when it is killed, and
`worker_template_forks = 0` execs every worker. Which process serves a
session comes from `ringgate who` while it is open; the tests wait on
processes and log lines, never on time."""
import imaplib
import os
import poplib
import re
import signal
import unittest

import rgenv
import test_workerreuse
from rgenv import alive, proc_info, wait_for
from test_workerreuse import JAIL_UID


def proc_status(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict((k, v.strip()) for k, v in (line.split(":", 1) for line in f if ":" in line))


def templates(rg, comm="ringgate-itmpl"):
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and
            (proc_info(int(p)) or ("", 0))[:2] == (comm, rg.proc.pid)]


class Base(test_workerreuse.ReuseBase):
    """one server per class (users of their own uids, a chrooted one),
    sessions found through `ringgate who` (test_workerreuse.py)"""

    def template(self, comm="ringgate-itmpl", not_pid=None):
        """the one template of that name (another than not_pid), once a
        retired one has gone"""
        def one():
            tpl = [p for p in templates(self.rg, comm) if p != not_pid]
            return tpl if len(tpl) == 1 else None
        return wait_for(one)[0]

    def assert_forked(self, pid, comm="ringgate-imap"):
        """a template's child: master's own, the template's -T argv"""
        comm_now, ppid, argv = proc_info(pid)
        self.assertEqual((comm_now, ppid), (comm, self.rg.proc.pid))
        self.assertIn(b"-T", argv)

    def assert_user(self, pid, uid, gid, root="/"):
        """the privileges of an exec'd worker (master-spawn.c): every uid
        and gid the user's, the primary group only, no capability left"""
        st = proc_status(pid)
        self.assertEqual(st["Uid"].split(), [str(uid)] * 4)
        self.assertEqual(st["Gid"].split(), [str(gid)] * 4)
        self.assertEqual(st["Groups"].split(), [str(gid)])
        for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
            self.assertEqual(int(st[cap], 16), 0, cap)
        self.assertEqual(os.readlink("/proc/%d/root" % pid), root)


@unittest.skipUnless(rgenv.is_root(), "workers drop to users' uids only under root")
class Forked(Base, unittest.TestCase):
    def test_imap_workers_are_forked_from_the_template(self):
        tpl = self.template()
        self.assertIn(b"-T", proc_info(tpl)[2])
        self.assertEqual(proc_status(tpl)["Uid"].split()[0], "0")

        def check(pid):
            self.assertNotEqual(pid, tpl)
            self.assert_forked(pid)
            self.assert_user(pid, self.rg.uid, self.rg.gid)
        pids = [self.imap_session(u, check) for u in ("demo", "alice", "demo")]
        self.assertEqual(len(set(pids)), 3, pids)
        # each logs under its own pid (zygote_fork() resets the cached one)
        pat = re.compile(r"imap\((?:demo|alice)\)<[^>]*>\((\d+)\): Info: Disconnected")
        logged = wait_for(lambda: [int(p) for p in pat.findall(self.rg.logs())]
                          if len(pat.findall(self.rg.logs())) >= 3 else None)
        self.assertEqual(sorted(logged), sorted(pids))
        self.assertTrue(alive(tpl))

    def test_pop3_workers_are_forked_from_the_template(self):
        tpl = self.template("ringgate-ptmpl")
        p = poplib.POP3("127.0.0.1", self.rg.pop3_port, timeout=15)
        p.user("demo")
        p.pass_(self.rg.users["demo"])
        self.assertEqual(p.stat()[0], 3)
        pid = self.session_pid("demo", "pop3")
        self.assertNotEqual(pid, tpl)
        self.assert_forked(pid, "ringgate-pop3")
        self.assert_user(pid, self.rg.uid, self.rg.gid)
        p.quit()
        self.ended("demo", "pop3")

    def test_chrooted_user_keeps_only_the_chroot(self):
        self.template()

        def check(pid):
            self.assert_forked(pid)
            self.assert_user(pid, JAIL_UID, JAIL_UID, root=self.jail)
            self.assertEqual(os.readlink("/proc/%d/cwd" % pid), self.jail + "/u")
        self.imap_session("jailed", check)

    def test_killed_template_is_restarted(self):
        first = self.template()
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: not alive(first))
        second = self.template(not_pid=first)
        self.imap_session("demo", self.assert_forked)
        self.assertTrue(alive(second))


@unittest.skipUnless(rgenv.is_root(), "workers drop to users' uids only under root")
class Replaced(Base, unittest.TestCase):
    EXTRA = "worker_template_forks = 3\n"

    def test_replaced_after_worker_template_forks(self):
        first = self.template()
        for _ in range(3):
            self.imap_session("demo", self.assert_forked)
        self.assertTrue(wait_for(lambda: not alive(first)))
        self.template(not_pid=first)
        self.imap_session("demo", self.assert_forked)
        self.assertNotIn("killed with signal", self.rg.logs())

    def test_replaced_at_reload(self):
        # a template holds the log sinks and environment of its start
        first = self.template()
        self.rg.ctl("reload")
        self.assertTrue(wait_for(lambda: not alive(first)))
        self.template(not_pid=first)
        self.imap_session("demo", self.assert_forked)

    def test_replaced_at_once_after_a_child_dies_of_a_signal(self):
        first = self.template()
        m = imaplib.IMAP4("127.0.0.1", self.rg.imap_port, timeout=15)
        m.login("demo", self.rg.users["demo"])
        pid = self.session_pid("demo", "imap")
        self.assert_forked(pid)
        # a worker gets no ASAN_OPTIONS: AddressSanitizer would turn the
        # SEGV into exit(1); a kill from outside is a crash too
        os.kill(pid, signal.SIGKILL if rgenv.sanitized() else signal.SIGSEGV)
        self.assertTrue(wait_for(lambda: not alive(first)))
        self.template(not_pid=first)
        try:
            with self.assertRaises((imaplib.IMAP4.abort, OSError)):
                m.select("INBOX")
        finally:
            m.shutdown()
        self.ended("demo", "imap")
        self.imap_session("demo", self.assert_forked)
        logs = self.rg.logs()
        self.assertRegex(logs, r"child %d killed with signal (11|9)" % pid)
        self.assertIn("a child of worker template %d died of a signal" % first, logs)


@unittest.skipUnless(rgenv.is_root(), "the users of their own uids need root")
class NoTemplate(Base, unittest.TestCase):
    EXTRA = "worker_template_forks = 0\n"

    def test_worker_template_forks_0_execs_each_worker(self):
        def check(pid):
            self.assertNotIn(b"-T", proc_info(pid)[2])
            self.assertEqual(proc_info(pid)[:2], ("ringgate-imap", self.rg.proc.pid))
            self.assert_user(pid, self.rg.uid, self.rg.gid)
        self.imap_session("demo", check)
        self.assertEqual(templates(self.rg), [])
        self.assertEqual(templates(self.rg, "ringgate-ptmpl"), [])

    def test_more_than_100_is_refused(self):
        with open(self.rg.conf) as f:
            text = f.read()
        bad = os.path.join(self.rg.tmp, "bad.conf")
        with open(bad, "w") as f:
            f.write(text.replace("worker_template_forks = 0", "worker_template_forks = 101"))
        r = rgenv.subprocess.run([self.rg.binary(), "-c", bad, "-n"], capture_output=True,
                                 text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("worker_template_forks must be at most 100", r.stderr)


if __name__ == "__main__":
    unittest.main()
