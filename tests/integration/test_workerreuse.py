"""Worker reuse (issue 19): `service imap { service_count = N }` lets a
worker serve N sessions one after another, only of its own uid/gid (a user
of another uid goes to another worker); `process_min_avail` keeps spare
workers, still root, started before any login and replenished; idle_kill
lets go of a used idle worker. Which process served a session comes from
`ringgate who` while the session is open, and the tests wait for master to
have taken the session back (the user gone from `who`) before the next one,
so the outcome never depends on timing."""
import imaplib
import os
import poplib
import unittest

import rgenv

OTHER_UID = 47111  # a uid no test user has: its own workers
# users of their own uids, in the same passwd-file: one per test that
# leaves idle workers behind, so no test finds another's
OWN_UIDS = {"other": OTHER_UID, "third": OTHER_UID + 1}
# a user chrooted by Dovecot's /./ in the home and one of the same uid
# without a chroot (their workers must never mix)
JAIL_UID = OTHER_UID + 2


def proc_ids(pid):
    """(real uid, real gid) of a live process, or None once it is gone"""
    try:
        with open("/proc/%d/status" % pid) as f:
            st = dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:
        return None
    if st.get("State", "").split()[0:1] == ["Z"]:
        return None
    return int(st["Uid"].split()[0]), int(st["Gid"].split()[0])


def gone(pid):
    return proc_ids(pid) is None


class ReuseBase:
    EXTRA = ""

    @classmethod
    def setUpClass(cls):
        cls.rg = rgenv.Ringgate(mode="performance", extra_conf=cls.EXTRA)
        cls.jail = os.path.join(cls.rg.tmp, "jail")
        users = [(u, uid, cls.rg.home(u), cls.rg.home(u)) for u, uid in OWN_UIDS.items()]
        users += [("jailed", JAIL_UID, os.path.join(cls.jail, "u"), cls.jail + "/./u"),
                  ("free", JAIL_UID, cls.rg.home("free"), cls.rg.home("free"))]
        for user, uid, home, field in users:
            for sub in ("cur", "new", "tmp"):
                os.makedirs(os.path.join(home, "Maildir", sub), exist_ok=True)
            for d, _, _ in os.walk(home):
                os.chown(d, uid, uid)
            with open(cls.rg.passwd, "a") as f:
                f.write("%s:{PLAIN}%s-pass:%d:%d::%s::\n" % (user, user, uid, uid, field))
            cls.rg.users[user] = user + "-pass"
        with open(cls.rg.conf, "a") as f:
            f.write("valid_chroot_dirs = %s\n" % cls.jail)
        cls.rg.start()

    @classmethod
    def tearDownClass(cls):
        cls.rg.stop_clean()

    def who(self):
        """(user, proto, pid) of every session master knows"""
        rows = [ln.split() for ln in self.rg.ctl("who").stdout.splitlines()[1:]]
        return [(r[0], r[1], int(r[3])) for r in rows if len(r) >= 4]

    def session_pid(self, user, proto):
        pids = [p for u, pr, p in self.who() if u == user and pr == proto]
        self.assertEqual(len(pids), 1, self.who())
        return pids[0]

    def ended(self, user, proto):
        rgenv.wait_for(lambda: all(u != user or pr != proto for u, pr, _ in self.who()))

    def imap_session(self, user, check=None):
        """one LOGIN/SELECT/LOGOUT; the worker's pid"""
        m = imaplib.IMAP4("127.0.0.1", self.rg.imap_port, timeout=15)
        self.assertEqual(m.login(user, self.rg.users[user])[0], "OK")
        self.assertEqual(m.select("INBOX")[0], "OK")
        pid = self.session_pid(user, "imap")
        if check:
            check(pid)
        m.logout()
        self.ended(user, "imap")
        return pid


@unittest.skipUnless(rgenv.is_root(), "workers drop to users' uids only under root")
class ServiceCountTests(ReuseBase, unittest.TestCase):
    EXTRA = "service imap {\n  service_count = 3\n}\nservice pop3 {\n  service_count = 2\n}\n"

    def test_imap_sessions_by_uid(self):
        uid = self.rg.uid
        # demo and alice share a uid: one worker serves three sessions
        pids = [self.imap_session(u) for u in ("demo", "alice", "demo")]
        self.assertEqual(len(set(pids)), 1, pids)
        rgenv.wait_for(lambda: gone(pids[0]))  # service_count reached: it exits
        second = self.imap_session("alice", check=lambda p: self.assertEqual(
            proc_ids(p), (uid, self.rg.gid)))
        self.assertNotEqual(second, pids[0])
        # another uid never lands in that worker, which is still waiting
        other = self.imap_session("other", check=lambda p: self.assertEqual(
            proc_ids(p), (OTHER_UID, OTHER_UID)))
        self.assertNotEqual(other, second)
        self.assertEqual(proc_ids(second), (uid, self.rg.gid))
        # each worker goes on with its own uid's sessions
        self.assertEqual(self.imap_session("demo"), second)
        self.assertEqual(self.imap_session("other"), other)

    def test_imap_chroot_is_part_of_the_match(self):
        def root(expect):
            return lambda p: self.assertEqual(os.readlink("/proc/%d/root" % p), expect)
        jailed = self.imap_session("jailed", check=root(self.jail))
        # the same uid without a chroot: never the chrooted worker
        free = self.imap_session("free", check=root("/"))
        self.assertNotEqual(free, jailed)
        self.assertEqual(self.imap_session("jailed", check=root(self.jail)), jailed)
        self.assertEqual(self.imap_session("free", check=root("/")), free)

    def test_imap_concurrent_sessions_have_their_own_workers(self):
        # client_limit is 1: a busy worker takes no second session
        a = imaplib.IMAP4("127.0.0.1", self.rg.imap_port, timeout=15)
        a.login("third", self.rg.users["third"])
        b = imaplib.IMAP4("127.0.0.1", self.rg.imap_port, timeout=15)
        b.login("third", self.rg.users["third"])
        pids = [p for u, pr, p in self.who() if u == "third" and pr == "imap"]
        self.assertEqual(len(set(pids)), 2, pids)
        for m in (a, b):
            self.assertEqual(m.select("INBOX")[0], "OK")
            m.logout()
        self.ended("third", "imap")

    def test_pop3_sessions(self):
        pids = []
        for _ in range(3):
            p = poplib.POP3("127.0.0.1", self.rg.pop3_port, timeout=15)
            p.user("alice")
            p.pass_(self.rg.users["alice"])
            self.assertEqual(p.stat()[0], len(rgenv.MESSAGES))
            pids.append(self.session_pid("alice", "pop3"))
            p.quit()
            self.ended("alice", "pop3")
        # service_count = 2: two sessions, then a fresh worker
        self.assertEqual(pids[0], pids[1])
        self.assertNotEqual(pids[1], pids[2])


@unittest.skipUnless(rgenv.is_root(), "spares are root until their first user")
class SpareTests(ReuseBase, unittest.TestCase):
    EXTRA = ("service imap {\n  service_count = 0\n  process_min_avail = 2\n"
             "  idle_kill = 1 secs\n}\n")

    def spares(self):
        return sorted(p for p in self.rg.children("ringgate-imap") if proc_ids(p) == (0, 0))

    def test_spares_exist_before_login_and_are_replenished(self):
        before = rgenv.wait_for(lambda: len(self.spares()) == 2 and self.spares())
        taken = []

        def check(pid):
            # a spare took the session and dropped to the user
            self.assertIn(pid, before)
            self.assertEqual(proc_ids(pid), (OTHER_UID, OTHER_UID))
            taken.append(pid)
        pid = self.imap_session("other", check=check)
        self.assertEqual(taken, [pid])
        # another spare replaces it; the used worker goes after idle_kill
        rgenv.wait_for(lambda: len(self.spares()) == 2 and pid not in self.spares())
        rgenv.wait_for(lambda: gone(pid))
        self.assertEqual(len(self.spares()), 2)

    def test_spare_chroots_as_root_then_drops(self):
        rgenv.wait_for(lambda: len(self.spares()) == 2)
        before = self.spares()

        def check(pid):
            self.assertIn(pid, before)
            self.assertEqual(os.readlink("/proc/%d/root" % pid), self.jail)
            self.assertEqual(proc_ids(pid), (JAIL_UID, JAIL_UID))
            with open("/proc/%d/status" % pid) as f:
                caps = dict(ln.split(":\t", 1) for ln in f.read().splitlines()
                            if ln.startswith("Cap"))
            for k in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
                self.assertEqual(int(caps[k], 16), 0, (k, caps))
        self.imap_session("jailed", check=check)


@unittest.skipUnless(rgenv.is_root(), "workers drop to users' uids only under root")
class ProcessLimitTests(ReuseBase, unittest.TestCase):
    EXTRA = "service imap {\n  service_count = 0\n  process_limit = 2\n}\n"

    def test_idle_worker_of_another_uid_makes_room(self):
        first = self.imap_session("demo")
        second = self.imap_session("other")
        self.assertNotEqual(first, second)
        # both wait for their uids' next sessions: the limit is reached, so
        # the oldest one is let go for a third uid instead of refusing it
        third = self.imap_session("third", check=lambda p: self.assertEqual(
            proc_ids(p), (OWN_UIDS["third"], OWN_UIDS["third"])))
        self.assertNotIn(third, (first, second))
        rgenv.wait_for(lambda: gone(first))
        self.assertEqual(self.imap_session("other"), second)


if __name__ == "__main__":
    unittest.main()
