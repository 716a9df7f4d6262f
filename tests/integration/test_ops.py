"""Operating a running ringgate: `ringgate who`, `ringgate stats` and the
OpenMetrics endpoint agree with what the test did (sessions, failed logins,
TLS handshakes, hand-offs), in both modes; counters of login processes that
exited still count; the endpoint parses as OpenMetrics (Debian's
python3-prometheus-client when present, and always a strict parser here)."""
import imaplib
import os
import poplib
import re
import socket
import ssl
import subprocess
import sys
import time
import unittest

import rgenv

try:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
except ImportError:
    # Debian's package installs for the system python3; the tests may run
    # under another interpreter: the module is pure Python
    if os.path.isdir("/usr/lib/python3/dist-packages/prometheus_client"):
        sys.path.append("/usr/lib/python3/dist-packages")
        try:
            from prometheus_client.openmetrics.parser import text_string_to_metric_families
        except ImportError:
            text_string_to_metric_families = None
    else:
        text_string_to_metric_families = None


wait_for = rgenv.wait_for


def parse_stats(text):
    """{(service, 'total'|pid): {name: int}} and {worker: sessions}"""
    procs, workers = {}, {}
    for line in text.splitlines():
        words = line.split()
        if len(words) == 2 and words[1].startswith("sessions="):
            workers[words[0]] = int(words[1].split("=")[1])
            continue
        if words[0] == "auth":  # auth's own counters
            procs[("auth", "total")] = {k: int(v) for k, v in (w.split("=") for w in words[1:])}
            continue
        svc, who = words[0], words[1]
        key = "total" if who == "total" else int(who.split("=")[1])
        kv = dict(w.split("=", 1) for w in words[2:])
        procs[(svc, key)] = {k: (v if k == "mode" else int(v)) for k, v in kv.items()}
    return procs, workers


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*"'
                    r'(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*")*)\})? (-?[0-9]+(\.[0-9]+)?)$')


def strict_openmetrics(text):
    """A small strict OpenMetrics text parser: {(name, frozenset(labels)): value}.
    Fails on anything the format does not allow that we could produce."""
    assert text.endswith("# EOF\n"), "must end with # EOF"
    families, samples, seen_families = {}, {}, []
    current = None
    for line in text[:-len("# EOF\n")].split("\n")[:-1]:
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            assert typ in ("gauge", "counter"), line
            assert name not in families, "family declared twice: " + name
            families[name] = typ
            seen_families.append(name)
            current = name
            continue
        if line.startswith("# HELP "):
            assert line.split(" ")[2] == current, "HELP not for the current family: " + line
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        name = m.group(1)
        family = name[:-len("_total")] if families.get(current) == "counter" else name
        assert family == current, "sample %s outside its family %s" % (name, current)
        if families[current] == "counter":
            assert name.endswith("_total"), name
        labels = frozenset(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"', m.group(3) or ""))
        key = (name, labels)
        assert key not in samples, "duplicate sample " + line
        samples[key] = float(m.group(5))
    return samples


def metric(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


def http_get(port, request):
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        data = b""
        try:
            s.sendall(request)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return data
                data += chunk
        except ConnectionResetError:  # closed with our request unread
            return data


class Ops(unittest.TestCase):
    mode = "performance"

    @classmethod
    def setUpClass(cls):
        cls.metrics_port = rgenv.free_port()
        cls.rg = rgenv.Ringgate(mode=cls.mode, tls=True, extra_conf=(
            "service stats {\n  inet_listener http {\n    address = 127.0.0.1\n"
            "    port = %d\n  }\n}\n" % cls.metrics_port))
        cls.rg.start()
        cls.ctx = ssl.create_default_context(cafile=cls.rg.cert)

    @classmethod
    def tearDownClass(cls):
        cls.rg.cleanup()

    def ctl(self, *args):
        out = self.rg.ctl(*args, check=False)
        self.assertEqual(out.returncode, 0, out.stderr + self.rg.logs()[-3000:])
        return out.stdout

    def who(self):
        lines = self.ctl("who").splitlines()
        self.assertEqual(lines[0].split(), ["user", "proto", "rip", "pid", "proxy", "since", "tls"])
        return [ln.split() for ln in lines[1:]]

    def stats(self):
        return parse_stats(self.ctl("stats"))

    def metrics(self):
        raw = http_get(self.metrics_port, b"GET /metrics HTTP/1.0\r\n\r\n")
        head, _, body = raw.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.0 200 OK\r\n"), head)
        self.assertIn(b"Content-Type: application/openmetrics-text; version=1.0.0", head)
        self.assertIn(b"Content-Length: %d\r\n" % len(body), head)
        text = body.decode()
        if text_string_to_metric_families is not None:
            fams = {f.name: f for f in text_string_to_metric_families(text)}
            self.assertEqual(fams["ringgate_logins"].type, "counter")
            self.assertEqual(fams["ringgate_connections"].type, "gauge")
        return strict_openmetrics(text)

    def bad_login_imap(self, user):
        m = imaplib.IMAP4("127.0.0.1", self.rg.imap_port, timeout=15)
        with self.assertRaises(imaplib.IMAP4.error):
            m.login(user, "wrong password")
        m.logout()

    def test_who_stats_metrics_agree(self):
        rg = self.rg
        before, _ = self.stats()
        # 3 IMAP sessions (one over implicit TLS, proxied) and 1 POP3 session
        plain = []
        for _ in range(2):
            m = imaplib.IMAP4("127.0.0.1", rg.imap_port, timeout=15)
            m.login("demo", rg.users["demo"])
            plain.append(m)
        tls = imaplib.IMAP4_SSL("127.0.0.1", rg.imaps_port, ssl_context=self.ctx, timeout=15)
        tls.login("alice", rg.users["alice"])
        self.assertEqual(tls.select("INBOX")[0], "OK")
        pop = poplib.POP3("127.0.0.1", rg.pop3_port, timeout=15)
        pop.user("demo")
        pop.pass_(rg.users["demo"])
        # 3 failed logins: 2 IMAP, 1 POP3
        self.bad_login_imap("demo")
        self.bad_login_imap("nobody")
        p = poplib.POP3("127.0.0.1", rg.pop3_port, timeout=15)
        p.user("demo")
        with self.assertRaises(poplib.error_proto):
            p.pass_("wrong")
        p.quit()

        sessions = wait_for(lambda: (lambda w: w if len(w) == 4 else None)(self.who()))
        by_user = sorted((s[0], s[1]) for s in sessions)
        self.assertEqual(by_user, [("alice", "imap"), ("demo", "imap"), ("demo", "imap"),
                                   ("demo", "pop3")])
        workers = set(rg.children("ringgate-imap") + rg.children("ringgate-pop3"))
        logins = set(rg.children("ringgate-login"))
        for user, proto, rip, pid, proxy, since, tls_flag in sessions:
            self.assertEqual(rip, "127.0.0.1")
            self.assertIn(int(pid), workers)
            self.assertTrue(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", since), since)
            if user == "alice":
                self.assertEqual(tls_flag, "yes")
                self.assertIn(int(proxy), logins)  # the login process relaying it
            else:
                self.assertEqual((tls_flag, proxy), ("no", "-"))
        per_user = self.ctl("who", "-1").splitlines()
        self.assertEqual(per_user[0].split(), ["user", "count", "protocols"])
        self.assertEqual([ln.split() for ln in per_user[1:]],
                         [["alice", "1", "imap:1"], ["demo", "3", "imap:2,pop3:1"]])

        procs, workers_n = self.stats()
        self.assertEqual(workers_n, {"imap": 3, "pop3": 1})
        delta = lambda svc, k: procs[(svc, "total")][k] - before[(svc, "total")][k]
        self.assertEqual(delta("imap-login", "login_ok"), 3)
        self.assertEqual(delta("imap-login", "login_failed"), 2)
        self.assertEqual(delta("imap-login", "handoffs"), 3)
        self.assertEqual(delta("pop3-login", "login_ok"), 1)
        self.assertEqual(delta("pop3-login", "login_failed"), 1)
        self.assertEqual(delta("pop3-login", "handoffs"), 1)
        self.assertGreaterEqual(delta("imap-login", "hs_full"), 1)
        # auth refused 3; the 2nd and 3rd from this address were penalised
        # (the successful logins before reset the address's count)
        self.assertEqual(delta("auth", "failed"), 3)
        self.assertEqual(delta("auth", "penalties"), 2)
        self.assertGreater(procs[("imap-login", "total")]["proxy_out"], 0)
        # the TLS proxy is the only connection an IMAP login process still holds
        self.assertEqual(wait_for(lambda: (lambda p: p if p[("imap-login", "total")]["prelogin"]
                                           == 0 else None)(self.stats()[0]))
                         [("imap-login", "total")]["conns"], 1)
        # per process lines add up to the total (no process exited here)
        if self.mode == "performance":
            for svc in ("imap-login", "pop3-login"):
                total = procs[(svc, "total")]
                lines = [v for (s, k), v in procs.items() if s == svc and k != "total"]
                self.assertEqual(len(lines), total["processes"])
                for k in ("accepted", "login_ok", "login_failed", "handoffs", "hs_full"):
                    self.assertEqual(sum(ln[k] for ln in lines), total[k], (svc, k))
                self.assertTrue(all(ln["mode"] == "performance" for ln in lines))

        samples = self.metrics()
        now, _ = self.stats()
        for svc in ("imap-login", "pop3-login"):
            lab = {"service": svc, "mode": self.mode}
            self.assertEqual(metric(samples, "ringgate_logins_total", result="ok", **lab),
                             now[(svc, "total")]["login_ok"])
            self.assertEqual(metric(samples, "ringgate_logins_total", result="failed", **lab),
                             now[(svc, "total")]["login_failed"])
            self.assertEqual(metric(samples, "ringgate_handoffs_total", **lab),
                             now[(svc, "total")]["handoffs"])
        self.assertEqual(metric(samples, "ringgate_sessions", service="imap"), 3)
        self.assertEqual(metric(samples, "ringgate_auth_failures_total"),
                         now[("auth", "total")]["failed"])
        self.assertEqual(metric(samples, "ringgate_auth_penalties_total"),
                         now[("auth", "total")]["penalties"])
        self.assertEqual(metric(samples, "ringgate_sessions", service="pop3"), 1)

        for m in plain:
            m.logout()
        tls.logout()
        pop.quit()
        wait_for(lambda: self.who() == [])
        wait_for(lambda: self.stats()[1] == {"imap": 0, "pop3": 0})

    def test_http_errors_and_a_silent_client(self):
        self.assertTrue(http_get(self.metrics_port, b"POST /metrics HTTP/1.0\r\n\r\n")
                        .startswith(b"HTTP/1.0 405 "))
        self.assertTrue(http_get(self.metrics_port, b"GET /nope HTTP/1.0\r\n\r\n")
                        .startswith(b"HTTP/1.0 404 "))
        self.assertTrue(http_get(self.metrics_port, b"\x16\x03\x01garbage\r\n\r\n")
                        .startswith(b"HTTP/1.0 400 "))
        self.assertEqual(http_get(self.metrics_port, b"A" * 5000), b"")  # no request fits
        # clients that say nothing block neither master nor other clients
        silent = [socket.create_connection(("127.0.0.1", self.metrics_port)) for _ in range(3)]
        ctl_silent = socket.socket(socket.AF_UNIX)
        ctl_silent.connect(os.path.join(self.rg.base_dir, "ringgate-ctl"))
        t = time.time()
        self.who()
        self.metrics()
        self.assertLess(time.time() - t, 4)
        for s in silent + [ctl_silent]:
            s.close()
        out = subprocess.run(self.rg.command("who"), capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0)
        st = os.stat(os.path.join(self.rg.base_dir, "ringgate-ctl"))
        self.assertEqual(st.st_mode & 0o777, 0o600)

    def test_tls_resumption_counted(self):
        before, _ = self.stats()
        ctx = ssl.create_default_context(cafile=self.rg.cert)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", self.rg.imaps_port),
                                                     timeout=15), server_hostname="localhost")
        s.recv(1000)
        session = s.session
        s.close()
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", self.rg.imaps_port),
                                                     timeout=15), server_hostname="localhost",
                            session=session)
        self.assertTrue(s.session_reused)
        s.recv(1000)
        s.close()
        # a failed handshake: not TLS at all
        with socket.create_connection(("127.0.0.1", self.rg.imaps_port), timeout=15) as raw:
            raw.sendall(b"\x16\x03\x01\x00\x05hello" + b"\x00" * 50)
            try:
                raw.recv(100)
            except OSError:
                pass

        def grown():
            now, _ = self.stats()
            d = {k: now[("imap-login", "total")][k] - before[("imap-login", "total")][k]
                 for k in ("hs_full", "hs_resumed", "hs_failed")}
            return d if d["hs_failed"] >= 1 and d["hs_resumed"] >= 1 else None
        d = wait_for(grown)
        self.assertEqual(d, {"hs_full": 1, "hs_resumed": 1, "hs_failed": 1})


class OpsSecurity(Ops):
    """high-security: a process per connection; counters of exited processes
    stay in the totals"""
    mode = "security"

    def test_counters_outlive_their_processes(self):
        before, _ = self.stats()
        for _ in range(3):
            m = imaplib.IMAP4("127.0.0.1", self.rg.imap_port, timeout=15)
            m.login("demo", self.rg.users["demo"])
            m.logout()
        self.bad_login_imap("demo")

        def settled():
            now, _ = self.stats()
            t, b = now[("imap-login", "total")], before[("imap-login", "total")]
            return now if t["handoffs"] - b["handoffs"] == 3 and \
                t["login_failed"] - b["login_failed"] == 1 else None
        now = wait_for(settled)
        t = now[("imap-login", "total")]
        self.assertEqual(t["mode"], "security")
        self.assertEqual(t["login_ok"] - before[("imap-login", "total")]["login_ok"], 3)
        # each live process served at most one connection
        for (svc, key), v in now.items():
            if svc == "imap-login" and key != "total":
                self.assertLessEqual(v["accepted"], 1)


class NotRunning(unittest.TestCase):
    def test_who_without_master(self):
        rg = rgenv.Ringgate()
        try:
            for cmd in ("who", "stats"):
                out = rg.ctl(cmd, check=False)
                self.assertEqual(out.returncode, 1)
                self.assertIn("not running", out.stderr)
        finally:
            rg.cleanup()


if __name__ == "__main__":
    unittest.main()
