"""The stats process (ringgate-stats): it, not the root master, reads the
control socket and the /metrics listener, unprivileged and sandboxed; each
has its own client limit, so idle TCP peers never lock out `ringgate who`;
it is restarted when it dies (the sockets stay with master, so a request
made meanwhile waits in the backlog) and when a reload changes its
client_limit, and a `ringgate reload` that does so still gets its answer."""
import os
import socket
import time
import unittest

import rgenv

HTTP_LIMIT = 8
# a long user name (who shows 64 characters) makes long `who` lines: fewer
# sessions fill a message
LONG_USER = "a-rather-long-mailbox-name-for-who-listings@example.org"


def read_to_eof(s):
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk


def http_get(port, request=b"GET /metrics HTTP/1.0\r\n\r\n", timeout=15):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        return read_to_eof(s)


def proc_status(pid):
    with open("/proc/%d/status" % pid) as f:
        return f.read().splitlines()


class StatsProcess(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.metrics_port = rgenv.free_port()
        cls.rg = rgenv.Ringgate(mode="performance", users={
            "demo": "demo-pass", LONG_USER: "long-pass"}, extra_conf=(
            "service stats {\n  client_limit = %d\n  inet_listener http {\n"
            "    address = 127.0.0.1\n    port = %d\n  }\n}\n" % (HTTP_LIMIT, cls.metrics_port)))
        cls.rg.start()

    @classmethod
    def tearDownClass(cls):
        cls.rg.cleanup()

    def stats_pid(self):
        pids = self.rg.children("ringgate-stats")
        self.assertEqual(len(pids), 1, pids)
        return pids[0]

    def who(self):
        out = self.rg.ctl("who", check=False)
        self.assertEqual(out.returncode, 0, out.stderr + self.rg.logs()[-3000:])
        return out.stdout

    def test_unprivileged_and_sandboxed(self):
        pid = self.stats_pid()
        if rgenv.is_root():
            status = proc_status(pid)
            uid = [ln for ln in status if ln.startswith("Uid:")][0].split()[1:]
            self.assertNotIn("0", uid)
            self.assertEqual(os.readlink("/proc/%d/root" % pid),
                             os.path.realpath(os.path.join(self.rg.base_dir, "login")))
            if not rgenv.sanitized():
                self.assertIn("Seccomp:\t2", status)
        # master only holds the listening sockets: a connection is accepted
        # by the stats process, never by master
        def sockets(p):
            out = set()
            for fd in os.listdir("/proc/%d/fd" % p):
                try:
                    link = os.readlink("/proc/%d/fd/%s" % (p, fd))
                except OSError:
                    continue
                if link.startswith("socket:"):
                    out.add(link)
            return out
        before = sockets(pid)
        with socket.create_connection(("127.0.0.1", self.metrics_port), timeout=5) as s:
            s.sendall(b"GET")
            self.assertTrue(rgenv.wait_for(lambda: sockets(pid) - before))
            new = sockets(pid) - before
            self.assertFalse(new & sockets(self.rg.proc.pid))

    def test_idle_tcp_peers_do_not_block_who_or_metrics(self):
        # far more silent peers than the HTTP pool holds
        idle = []
        try:
            for _ in range(40):
                idle.append(socket.create_connection(("127.0.0.1", self.metrics_port),
                                                     timeout=10))
            time.sleep(0.3)
            t = time.time()
            self.assertIn("user", self.who())
            raw = http_get(self.metrics_port)
            self.assertTrue(raw.startswith(b"HTTP/1.0 200 OK\r\n"), raw[:200])
            self.assertIn(b"# EOF", raw)
            # neither waited for the silent peers' 5 s timeout
            self.assertLess(time.time() - t, 4)
            # the pool made room by closing its oldest clients: the first
            # peers see EOF, not a hang
            idle[0].settimeout(10)
            self.assertEqual(idle[0].recv(10), b"")
        finally:
            for s in idle:
                s.close()

    def test_idle_control_clients_do_not_block_metrics(self):
        path = os.path.join(self.rg.base_dir, "ringgate-ctl")
        idle = []
        try:
            for _ in range(20):
                s = socket.socket(socket.AF_UNIX)
                s.connect(path)
                idle.append(s)
            time.sleep(0.3)
            t = time.time()
            self.assertTrue(http_get(self.metrics_port).startswith(b"HTTP/1.0 200 OK\r\n"))
            self.assertIn("user", self.who())
            self.assertLess(time.time() - t, 4)
        finally:
            for s in idle:
                s.close()

    def test_half_closed_control_client_gets_its_answer(self):
        # as `echo stats | socat - UNIX-CONNECT:...` does
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(15)
            s.connect(os.path.join(self.rg.base_dir, "ringgate-ctl"))
            s.sendall(b"stats\n")
            s.shutdown(socket.SHUT_WR)
            data = read_to_eof(s)
        self.assertIn(b"total", data)

    def test_restarted_when_killed(self):
        old = self.stats_pid()
        ctl = os.stat(os.path.join(self.rg.base_dir, "ringgate-ctl")).st_ino
        os.kill(old, 9)
        # a request made while no stats process runs waits in the backlog
        out = self.rg.ctl("who", check=False)
        self.assertEqual(out.returncode, 0, out.stderr + self.rg.logs()[-3000:])
        self.assertTrue(rgenv.wait_for(
            lambda: [p for p in self.rg.children("ringgate-stats") if p != old]))
        self.assertTrue(http_get(self.metrics_port).startswith(b"HTTP/1.0 200 OK\r\n"))
        # the same socket, bound once by master
        self.assertEqual(os.stat(os.path.join(self.rg.base_dir, "ringgate-ctl")).st_ino, ctl)
        self.assertIn("service(stats): child %d killed with signal 9" % old, self.rg.logs())

    @unittest.skipIf(rgenv.sanitized(), "140 sanitized workers are too slow for a shared machine")
    def test_who_larger_than_one_message(self):
        # enough sessions that `who` spans several CTL_REPLY pieces (16 KiB
        # each): every line arrives, once, in order
        sessions = []
        try:
            for _ in range(140):
                s = socket.create_connection(("127.0.0.1", self.rg.imap_port), timeout=15)
                rgenv.recv_until(s, b"\r\n")
                s.sendall(b'a LOGIN "%s" long-pass\r\n' % LONG_USER.encode())
                self.assertIn(b"a OK", rgenv.recv_until(s, b"a "))
                sessions.append(s)
            out = self.who()
            self.assertGreater(len(out), 17000)  # CTL_REPLY pieces are < 16 KiB
            lines = out.splitlines()
            self.assertEqual(lines[0].split()[0], "user")
            pids = [ln.split()[3] for ln in lines[1:]]
            self.assertEqual(len(pids), len(sessions))
            self.assertEqual(len(set(pids)), len(sessions))
            self.assertTrue(all(ln.split()[:2] == [LONG_USER, "imap"] for ln in lines[1:]))
        finally:
            for s in sessions:
                s.close()
        rgenv.wait_for(lambda: len(self.who().splitlines()) == 1)

    def test_http_errors(self):
        self.assertTrue(http_get(self.metrics_port, b"POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                        .startswith(b"HTTP/1.0 405 "))
        self.assertTrue(http_get(self.metrics_port, b"GET /nope HTTP/1.0\n\n")
                        .startswith(b"HTTP/1.0 404 "))
        self.assertTrue(http_get(self.metrics_port, b"GET /metrics HTTP/2.0\r\n\r\n")
                        .startswith(b"HTTP/1.0 400 "))
        # the request one byte at a time
        with socket.create_connection(("127.0.0.1", self.metrics_port), timeout=15) as s:
            for b in b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n":
                s.sendall(bytes([b]))
                time.sleep(0.002)
            data = read_to_eof(s)
        self.assertTrue(data.startswith(b"HTTP/1.0 200 OK\r\n"), data[:100])


class StatsReload(unittest.TestCase):
    """a reload that changes service stats' client_limit starts a fresh stats
    process, and the `ringgate reload` that asked still gets its OK"""

    def test_reload_restarts_with_new_limit(self):
        port = rgenv.free_port()
        conf = ("service stats {\n  client_limit = %d\n  inet_listener http {\n"
                "    address = 127.0.0.1\n    port = %d\n  }\n}\n")
        rg = rgenv.Ringgate(mode="performance", extra_conf=conf % (4, port)).start()
        try:
            old = rg.children("ringgate-stats")
            self.assertEqual(len(old), 1)
            with open(rg.conf) as f:
                text = f.read()
            with open(rg.conf, "w") as f:
                f.write(text.replace("client_limit = 4\n", "client_limit = 6\n"))
            out = rg.ctl("reload", check=False)
            self.assertEqual((out.returncode, out.stdout), (0, "OK\n"), out.stderr)
            self.assertTrue(rgenv.wait_for(
                lambda: [p for p in rg.children("ringgate-stats") if p not in old]))
            self.assertTrue(http_get(port).startswith(b"HTTP/1.0 200 OK\r\n"))
            out = rg.ctl("who", check=False)
            self.assertEqual(out.returncode, 0, out.stderr)
            # an unchanged limit keeps the process
            now = rg.children("ringgate-stats")
            out = rg.ctl("reload", check=False)
            self.assertEqual(out.returncode, 0, out.stderr)
            time.sleep(0.5)
            self.assertEqual(rg.children("ringgate-stats"), now)
        finally:
            rg.cleanup()

    def test_reload_requests_share_reloads(self):
        # what the stats process asks for is at most one reload a second:
        # eight at once are all answered, by fewer reloads
        import subprocess
        rg = rgenv.Ringgate(mode="performance").start()
        try:
            procs = [subprocess.Popen(rg.command("reload"), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for _ in range(8)]
            for p in procs:
                out, err = p.communicate(timeout=30)
                self.assertEqual((p.returncode, out), (0, "OK\n"), err)
            reloads = rg.logs().count("configuration reloaded from")
            self.assertGreaterEqual(reloads, 1)
            self.assertLess(reloads, 8)
        finally:
            rg.cleanup()


if __name__ == "__main__":
    unittest.main()
