"""Service limits and process life: client_limit eviction, process_limit in
high-security mode, respawn after kill -9, clean stop with nothing left."""
import imaplib
import os
import select
import signal
import socket
import threading
import time
import unittest

import rgenv
from test_sessions import recv_until


def wait_for(pred, timeout=10, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[1].split()[0] != "Z"
    except OSError:
        return False


def greeted(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    data = recv_until(s, b"\r\n")
    assert data.startswith(b"* OK") or data.startswith(b"+OK"), data
    return s


class Processes(unittest.TestCase):
    def tearDown(self):
        rg = getattr(self, "rg", None)
        if rg:
            rg.cleanup()

    def login_ok(self):
        m = imaplib.IMAP4("127.0.0.1", self.rg.imap_port, timeout=15)
        self.assertEqual(m.login("demo", "demo-pass")[0], "OK")
        m.logout()

    def test_client_limit_evicts_oldest_prelogin(self):
        self.rg = rgenv.Ringgate(mode="performance", service_extra=(
            "  process_limit = 1\n  process_min_avail = 1\n  client_limit = 3\n"))
        # rgenv sets process_min_avail from the cores; the later line wins
        self.rg.start(wait=False)
        self.rg.wait_ready()
        time.sleep(0.3)  # the readiness probes have closed
        conns = [greeted(self.rg.imap_port) for _ in range(3)]
        newest = greeted(self.rg.imap_port)
        data = recv_until(conns[0], b"never", timeout=10)
        self.assertIn(b"* BYE Connection queue full", data)
        newest.sendall(b"a NOOP\r\n")
        self.assertIn(b"a OK", recv_until(newest, b"a OK"))
        conns[1].sendall(b"b NOOP\r\n")
        self.assertIn(b"b OK", recv_until(conns[1], b"b OK"))
        for s in conns + [newest]:
            s.close()

    def test_full_process_gets_a_sibling_before_evicting(self):
        # client_limit 3, process_limit 3: the first 9 pre-login clients are
        # all kept (master starts processes as the others fill up); the 10th
        # makes one process close its oldest
        self.rg = rgenv.Ringgate(mode="performance", service_extra=(
            "  process_limit = 3\n  process_min_avail = 1\n  client_limit = 3\n"))
        self.rg.start(wait=False)
        self.rg.wait_ready()
        time.sleep(0.3)
        conns = [greeted(self.rg.imap_port) for _ in range(9)]
        for s in conns:
            s.sendall(b"n NOOP\r\n")
            self.assertIn(b"n OK", recv_until(s, b"n OK", timeout=10))
        imap_logins = [p for p in self.rg.children("ringgate-login")
                       if "imap-login" in open("/proc/%d/cmdline" % p).read().replace("\0", " ")
                       or "-s\0imap" in open("/proc/%d/cmdline" % p).read()]
        self.assertEqual(len(imap_logins), 3)
        extra = greeted(self.rg.imap_port)
        # whichever process took it closed its own oldest client
        ready, _, _ = select.select(conns, [], [], 10)
        self.assertEqual(len(ready), 1)
        self.assertIn(b"* BYE Connection queue full", recv_until(ready[0], b"never", timeout=10))
        self.assertIn(conns.index(ready[0]), (0, 3, 6))  # some process's oldest
        extra.sendall(b"x NOOP\r\n")
        self.assertIn(b"x OK", recv_until(extra, b"x OK"))
        self.assertIn("process_limit (3) reached", self.rg.logs())
        for s in conns + [extra]:
            s.close()

    def test_high_security_process_limit_kills_oldest(self):
        self.rg = rgenv.Ringgate(mode="security", service_extra=(
            "  process_limit = 2\n  process_min_avail = 0\n"))
        self.rg.start(wait=False)
        self.rg.wait_ready()
        time.sleep(0.3)
        first = greeted(self.rg.imap_port)
        second = greeted(self.rg.imap_port)
        third = greeted(self.rg.imap_port)  # over the limit: the oldest goes
        data = recv_until(first, b"never", timeout=10)
        self.assertNotIn(b"OK", data.replace(b"* OK", b""))
        second.sendall(b"a NOOP\r\n")
        self.assertIn(b"a OK", recv_until(second, b"a OK"))
        third.sendall(b"a NOOP\r\n")
        self.assertIn(b"a OK", recv_until(third, b"a OK"))
        for s in (first, second, third):
            s.close()

    def test_high_security_one_process_per_connection(self):
        self.rg = rgenv.Ringgate(mode="security").start()
        s = greeted(self.rg.imap_port)
        # taken while the connection is open: the process serving it is in
        # the set (spares still starting on a loaded machine may not be)
        before = set(self.rg.children("ringgate-login"))
        self.assertTrue(before)
        s.sendall(b"a LOGOUT\r\n")
        recv_until(s, b"never")
        s.close()
        # the process that served the connection exits; spares are respawned
        self.assertTrue(wait_for(lambda: not (set(self.rg.children("ringgate-login")) >= before)))
        self.assertTrue(wait_for(lambda: self.rg.children("ringgate-login")))
        self.login_ok()

    def test_high_security_many_login_processes(self):
        # each login process has its own ring; made as root, it is not
        # charged to the login user's RLIMIT_MEMLOCK (8 MiB, shared by all
        # of that user's processes), which used to stop the 54th process
        self.rg = rgenv.Ringgate(mode="security", tls=True,
                                 service_extra="  process_min_avail = 40\n").start()
        self.assertTrue(wait_for(lambda: len(self.rg.children("ringgate-login")) >= 80,
                                 timeout=30), self.rg.logs()[-2000:])
        self.assertNotIn("io_uring setup failed", self.rg.logs())
        self.login_ok()

    @unittest.skipUnless(rgenv.is_root(), "the sandbox needs root to set up")
    def test_login_process_is_sandboxed(self):
        # unprivileged, no capabilities (not even in the bounding set), no
        # new privileges, seccomp filter on, chrooted in the empty dir, and
        # a bounded number of files
        self.rg = rgenv.Ringgate(mode="performance", tls=True).start()
        pid = self.rg.children("ringgate-login")[0]

        def status_of():
            return dict(line.split(":", 1) for line in open("/proc/%d/status" % pid))
        # a process just spawned may still be setting up (as root)
        self.assertTrue(wait_for(lambda: status_of()["NoNewPrivs"].strip() == "1"))
        time.sleep(0.2)
        status = status_of()
        self.assertNotEqual(status["Uid"].split()[0], "0")
        self.assertEqual(int(status["CapPrm"], 16), 0)
        self.assertEqual(int(status["CapEff"], 16), 0)
        self.assertEqual(int(status["CapBnd"], 16), 0)
        self.assertEqual(status["NoNewPrivs"].strip(), "1")
        if not rgenv.sanitized():
            self.assertEqual(status["Seccomp"].strip(), "2")
        self.assertEqual(os.readlink("/proc/%d/root" % pid),
                         os.path.join(self.rg.base_dir, "login"))
        limits = [x for x in open("/proc/%d/limits" % pid) if x.startswith("Max open files")][0]
        self.assertLess(int(limits.split()[3]), 10000)
        # auth, the only reader of password hashes, has its own filter
        auth = self.rg.children("ringgate-auth")[0]
        astatus = dict(line.split(":", 1) for line in open("/proc/%d/status" % auth))
        self.assertNotEqual(astatus["Uid"].split()[0], "0")
        if not rgenv.sanitized():
            self.assertEqual(astatus["Seccomp"].strip(), "2")
        self.login_ok()

    def test_kill9_login_process_is_respawned(self):
        self.rg = rgenv.Ringgate(mode="performance").start()
        victims = self.rg.children("ringgate-login")
        self.assertTrue(victims)
        victim = victims[0]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: not alive(victim))
        self.assertTrue(wait_for(lambda: len(self.rg.children("ringgate-login")) >= len(victims)))
        self.assertNotIn(victim, self.rg.children("ringgate-login"))
        self.login_ok()
        self.assertIn("killed with signal 9", self.rg.logs())

    def test_kill9_login_under_load(self):
        # clients spread over two imap-login processes, logins running all
        # the time: killing one drops only its own clients; master respawns
        # it, leaves no zombie and no extra fd, and logins keep working
        self.rg = rgenv.Ringgate(mode="performance", service_extra=(
            "  process_min_avail = 2\n  client_limit = 10\n")).start()
        imap = lambda: [p for p in self.rg.children("ringgate-login")  # noqa: E731
                        if b"imap" in open("/proc/%d/cmdline" % p, "rb").read()]
        self.assertTrue(wait_for(lambda: len(imap()) == 2))
        master = self.rg.proc.pid

        def master_fds_beyond_channels():
            # master holds one channel per login process (their number may
            # grow under load): anything else it holds must not grow
            return (len(os.listdir("/proc/%d/fd" % master)) -
                    len(self.rg.children("ringgate-login")))
        fds_before = master_fds_beyond_channels()
        # 15 idle clients: client_limit 10 forces both processes to take some
        conns = [greeted(self.rg.imap_port) for _ in range(15)]
        # each login records whether it began after the respawn was seen
        respawned, stop = threading.Event(), threading.Event()
        failures, oks = [], []

        def logins():
            while not stop.is_set():
                after = respawned.is_set()
                try:
                    self.login_ok()
                    oks.append(after)
                except Exception as e:  # noqa: BLE001 (counted, not raised)
                    failures.append((after, e))
        t = threading.Thread(target=logins)
        t.start()
        # logins are running (one succeeded) before the kill
        self.assertTrue(wait_for(lambda: oks, timeout=60))
        victim = imap()[0]
        os.kill(victim, signal.SIGKILL)
        # generous caps: these wait for events (a death, a respawn); the
        # caps only end a broken run (ASan makes both slow)
        self.assertTrue(wait_for(lambda: not alive(victim), timeout=60))
        survivors = 0
        for s in conns:
            try:
                s.sendall(b"n NOOP\r\n")
                survivors += b"n OK" in recv_until(s, b"n OK", timeout=30)
            except OSError:
                pass
        self.assertGreater(survivors, 0)
        self.assertLess(survivors, 15)
        self.assertTrue(wait_for(lambda: len(imap()) == 2 and victim not in imap(), timeout=60))
        respawned.set()
        # five logins that began after the respawn complete, and none of
        # those fails (a login begun before it may still fail, late)
        self.assertTrue(wait_for(lambda: oks.count(True) >= 5 or any(a for a, _ in failures),
                                 timeout=120))
        stop.set()
        t.join()
        self.assertEqual([e for a, e in failures if a], [])
        self.assertGreaterEqual(oks.count(True), 5)
        self.assertTrue(wait_for(lambda: not [p for p in self.rg.children() if not alive(p)],
                                 timeout=60))
        for s in conns:
            s.close()
        self.assertTrue(wait_for(lambda: master_fds_beyond_channels() <= fds_before, timeout=60))

    def test_idle_kill_spares_a_busy_process(self):
        # a process reports a rise from no connections to some only when
        # master's idle_kill asks: one whose last status said "none" but
        # that serves a client again answers and serves on; empty, it goes
        self.rg = rgenv.Ringgate(mode="performance", service_extra=(
            "  process_min_avail = 0\n  idle_kill = 1 secs\n")).start()
        c = greeted(self.rg.imap_port)  # after wait_ready's, which emptied it
        pids = [p for p in self.rg.children("ringgate-login")
                if b"imap" in open("/proc/%d/cmdline" % p, "rb").read()]
        self.assertEqual(len(pids), 1)
        time.sleep(3.5)  # master asked it, once a second or more
        c.sendall(b"a NOOP\r\n")
        self.assertTrue(recv_until(c, b"\r\n").startswith(b"a OK"))
        self.assertTrue(alive(pids[0]))
        c.sendall(b"b LOGOUT\r\n")
        recv_until(c, b"b OK")
        c.close()
        self.assertTrue(wait_for(lambda: not alive(pids[0]), timeout=30))
        self.assertNotIn("Server shutting down", self.rg.logs())

    def test_stop_leaves_nothing_behind(self):
        # several login processes per service: auth's exit then races
        # their SIGTERM (the clean-stop check below)
        self.rg = rgenv.Ringgate(mode="performance",
                                 service_extra="  process_min_avail = 6\n").start()
        m = imaplib.IMAP4("127.0.0.1", self.rg.imap_port, timeout=15)
        m.login("demo", "demo-pass")
        m.select("INBOX")
        pending = greeted(self.rg.pop3_port)
        time.sleep(0.2)
        kids = self.rg.children()
        self.assertTrue(kids)
        grandkids = []
        out = self.rg.ctl("stop")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(self.rg.proc.wait(timeout=20), 0)
        for pid in kids + grandkids:
            self.assertTrue(wait_for(lambda: not alive(pid)), "pid %d left behind" % pid)
        self.assertFalse(os.path.exists(os.path.join(self.rg.base_dir, "master.pid")))
        pending.close()
        # a clean stop is no error: a login process whose auth channel
        # closes because everyone is stopping says nothing about it
        errors = [ln for ln in self.rg.logs().splitlines() if "Error:" in ln or "Fatal:" in ln]
        self.assertEqual(errors, [])

    @unittest.skipUnless(rgenv.is_root(), "needs root to become an ordinary user")
    def test_ordinary_user_serves_its_own_uid(self):
        """Started without root (a developer's setup): no chroot, no user
        switching, says so, and serves users of its own uid."""
        self.rg = rgenv.Ringgate(mode="performance", run_as=rgenv.MAIL_USER).start()
        for pid in self.rg.children("ringgate-login"):
            with open("/proc/%d/status" % pid) as f:
                uids = [ln for ln in f if ln.startswith("Uid:")][0].split()[1:]
            self.assertEqual({int(u) for u in uids}, {self.rg.uid})
        self.login_ok()
        self.assertIn("not root", self.rg.logs())
        out = self.rg.ctl("stop")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(self.rg.proc.wait(timeout=20), 0)


if __name__ == "__main__":
    unittest.main()
