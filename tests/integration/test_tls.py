"""TLS through the whole chain, in both modes: implicit TLS (imaps, pop3s),
STARTTLS/STLS, the post-login proxy in the login process, session
resumption across login processes, SNI, plaintext-auth rules, and bad
certificates stopping start-up. Clients: imaplib, poplib, ssl, curl,
openssl s_client."""
import hashlib
import imaplib
import os
import re
import shutil
import signal
import poplib
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

import rgenv
from test_processes import alive, wait_for

BIG = 10 * 1024 * 1024 + 17  # a message larger than every buffer on the way


def big_message():
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-+" * 1 + b"\r\n"
    body = (line * (BIG // len(line) + 1))[:BIG]
    return b"From: big@example.com\r\nSubject: big\r\n\r\n" + body


BIG_LEN = len(big_message())
BIG_SHA256 = hashlib.sha256(big_message()).hexdigest()


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def login_pid(rg, user):
    """The login process that logged user in last (from its Login line)."""
    lines = [x for x in rg.logs().splitlines() if "Login: user=<%s>" % user in x]
    return int(re.search(r"-login\((\d+)\)", lines[-1]).group(1)) if lines else None


def recv_until(sock, marker, limit=1 << 25, timeout=15):
    return rgenv.recv_until(sock, marker, limit, timeout)


class TlsTests:
    MODE = None

    @classmethod
    def setUpClass(cls):
        cls.rg = rgenv.Ringgate(mode=cls.MODE, tls=True)
        cls.big_name = cls.rg.deliver("alice", big_message())
        cls.rg.start()
        cls.ctx = ssl.create_default_context(cafile=cls.rg.cert)

    @classmethod
    def tearDownClass(cls):
        cls.rg.stop_clean()

    def imaps(self, ctx=None):
        return imaplib.IMAP4_SSL("127.0.0.1", self.rg.imaps_port, ssl_context=ctx or self.ctx,
                                 timeout=15)

    def pop3s(self):
        return poplib.POP3_SSL("127.0.0.1", self.rg.pop3s_port, context=self.ctx, timeout=15)

    # -- implicit TLS ------------------------------------------------------
    def test_imaps_login_fetch_logout(self):
        m = self.imaps()
        self.assertIn(b"AUTH=PLAIN", m.welcome.upper() + b" ".join(
            c.encode() for c in m.capabilities))
        self.assertNotIn("STARTTLS", m.capabilities)
        self.assertNotIn("LOGINDISABLED", m.capabilities)
        self.assertEqual(m.login("demo", "demo-pass")[0], "OK")
        typ, data = m.select("INBOX")
        self.assertEqual((typ, data[0]), ("OK", b"3"))
        typ, data = m.fetch("2", "(BODY[])")
        self.assertEqual(typ, "OK")
        self.assertIn(b"Subject: Second", data[0][1])
        self.assertEqual(m.logout()[0], "BYE")

    def test_imaps_big_message_through_the_proxy(self):
        # 10 MB from the worker through the login process's TLS proxy: every
        # byte arrives, in order, with the client reading slowly at first
        m = self.imaps()
        m.login("alice", "alice secret")
        typ, data = m.select("INBOX")
        n = int(data[0])
        sock = m.socket()
        sock.sendall(b"f1 FETCH %d (BODY[])\r\n" % n)
        time.sleep(1.0)  # the worker writes, the proxy must hold back
        data = recv_until(sock, b"\r\nf1 OK", timeout=60)
        literal = b"{%d}\r\n" % BIG_LEN
        start = data.find(literal)
        self.assertGreater(start, 0, data[:200])
        body = data[start + len(literal):start + len(literal) + BIG_LEN]
        self.assertEqual(hashlib.sha256(body).hexdigest(), BIG_SHA256)
        self.assertIn(b"\r\nf1 OK", data)
        sock.sendall(b"f2 LOGOUT\r\n")
        recv_until(sock, b"f2 OK")
        m.shutdown()

    def test_imaps_many_pipelined_commands_both_directions(self):
        # client -> worker back-pressure: 200 KB of pipelined commands in
        # one go, every one answered in order
        m = self.imaps()
        m.login("demo", "demo-pass")
        sock = m.socket()
        count = 8000
        sock.sendall(b"".join(b"n%d NOOP\r\n" % i for i in range(count)))
        data = recv_until(sock, b"n%d OK" % (count - 1), timeout=60)
        self.assertIn(b"n%d OK" % (count - 1), data)
        positions = [data.index(b"\r\nn%d OK" % i) for i in range(1, count, 499)]
        self.assertEqual(positions, sorted(positions))
        m.logout()

    def test_pop3s_login_retr_quit(self):
        p = self.pop3s()
        self.assertTrue(p.getwelcome().startswith(b"+OK"))
        caps = p.capa()
        self.assertNotIn("STLS", caps)
        self.assertIn("USER", caps)
        p.user("demo")
        p.pass_("demo-pass")
        self.assertEqual(p.stat()[0], 3)
        resp, lines, _ = p.retr(1)
        self.assertTrue(resp.startswith(b"+OK"))
        self.assertIn(b"Subject: Welcome", b"\n".join(lines))
        self.assertTrue(p.quit().startswith(b"+OK"))

    def test_curl_imaps_and_pop3s(self):
        out = subprocess.run(
            ["curl", "-sS", "--max-time", "20", "--cacert", self.rg.cert, "-u", "demo:demo-pass",
             "imaps://localhost:%d/INBOX;UID=1" % self.rg.imaps_port],
            capture_output=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn(b"Subject: Welcome", out.stdout)
        out = subprocess.run(
            ["curl", "-sS", "--max-time", "20", "--cacert", self.rg.cert, "-u", "demo:demo-pass",
             "pop3s://localhost:%d/2" % self.rg.pop3s_port],
            capture_output=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn(b"Subject: Second", out.stdout)

    def test_wrong_password_over_tls(self):
        m = self.imaps()
        with self.assertRaises(imaplib.IMAP4.error):
            m.login("demo", "wrong")
        self.assertEqual(m.login("demo", "demo-pass")[0], "OK")
        m.logout()

    # -- STARTTLS ----------------------------------------------------------
    def test_imap_starttls(self):
        m = imaplib.IMAP4("127.0.0.1", self.rg.imap_port, timeout=15)
        self.assertIn("STARTTLS", m.capabilities)
        self.assertEqual(m.starttls(ssl_context=self.ctx)[0], "OK")
        self.assertNotIn("STARTTLS", m.capabilities)
        self.assertEqual(m.login("demo", "demo-pass")[0], "OK")
        typ, data = m.select("INBOX")
        self.assertEqual(typ, "OK")
        m.logout()

    def test_pop3_stls(self):
        p = poplib.POP3("127.0.0.1", self.rg.pop3_port, timeout=15)
        self.assertIn("STLS", p.capa())
        self.assertTrue(p.stls(context=self.ctx).startswith(b"+OK"))
        self.assertNotIn("STLS", p.capa())
        p.user("demo")
        p.pass_("demo-pass")
        self.assertEqual(p.stat()[0], 3)
        p.quit()

    def test_openssl_s_client_starttls(self):
        for proto, port, script, expect in (
                ("imap", self.rg.imap_port,
                 b"a LOGIN demo demo-pass\r\nb SELECT INBOX\r\nc LOGOUT\r\n", b"b OK"),
                ("pop3", self.rg.pop3_port, b"USER demo\r\nPASS demo-pass\r\nSTAT\r\nQUIT\r\n",
                 b"+OK 3 ")):
            out = subprocess.run(
                ["openssl", "s_client", "-quiet", "-verify_return_error", "-CAfile", self.rg.cert,
                 "-starttls", proto, "-connect", "127.0.0.1:%d" % port],
                input=script, capture_output=True, timeout=30)
            self.assertIn(expect, out.stdout, out.stderr)

    def test_starttls_drops_pipelined_plaintext(self):
        # CVE-2011-0411: a command sent in the clear right behind STARTTLS
        # must never run inside the TLS session
        raw = socket.create_connection(("127.0.0.1", self.rg.imap_port), timeout=10)
        recv_until(raw, b"\r\n")
        raw.sendall(b"a STARTTLS\r\nb LOGIN demo demo-pass\r\n")
        self.assertIn(b"a OK", recv_until(raw, b"a OK"))
        tls = self.ctx.wrap_socket(raw, server_hostname="localhost")
        tls.sendall(b"c NOOP\r\n")
        data = recv_until(tls, b"c OK")
        self.assertIn(b"c OK", data)
        self.assertNotIn(b"b OK", data)
        self.assertTrue(wait_for(lambda: "STARTTLS: dropped 24 bytes" in self.rg.logs()))
        tls.sendall(b"d LOGOUT\r\n")
        recv_until(tls, b"d OK")
        tls.close()

    # -- plaintext rules (disable_plaintext_auth = yes) ---------------------
    def from_other_ip(self, port):
        # 127.0.0.2 -> 127.0.0.1 is not "this host": not secured (Dovecot)
        s = socket.socket()
        s.bind(("127.0.0.2", 0))
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        return s

    def test_imap_logindisabled_until_starttls(self):
        s = self.from_other_ip(self.rg.imap_port)
        greeting = recv_until(s, b"\r\n")
        self.assertIn(b"LOGINDISABLED", greeting)
        self.assertIn(b"STARTTLS", greeting)
        s.sendall(b"a LOGIN demo demo-pass\r\n")
        self.assertIn(b"a NO", recv_until(s, b"a "))
        s.sendall(b"b STARTTLS\r\n")
        recv_until(s, b"b OK")
        tls = self.ctx.wrap_socket(s, server_hostname="localhost")
        tls.sendall(b"c CAPABILITY\r\n")
        caps = recv_until(tls, b"c OK")
        self.assertNotIn(b"LOGINDISABLED", caps)
        tls.sendall(b"d LOGIN demo demo-pass\r\n")
        self.assertIn(b"d OK", recv_until(tls, b"d "))
        tls.sendall(b"e LOGOUT\r\n")
        recv_until(tls, b"e OK")
        tls.close()

    def test_pop3_user_hidden_until_stls(self):
        s = self.from_other_ip(self.rg.pop3_port)
        recv_until(s, b"\r\n")
        s.sendall(b"CAPA\r\n")
        caps = recv_until(s, b"\r\n.\r\n")
        self.assertIn(b"STLS", caps)
        self.assertNotIn(b"\r\nUSER\r\n", caps)
        s.sendall(b"USER demo\r\n")
        self.assertTrue(recv_until(s, b"\r\n").startswith(b"-ERR"))
        s.sendall(b"STLS\r\n")
        self.assertTrue(recv_until(s, b"\r\n").startswith(b"+OK"))
        tls = self.ctx.wrap_socket(s, server_hostname="localhost")
        tls.sendall(b"USER demo\r\n")
        self.assertTrue(recv_until(tls, b"\r\n").startswith(b"+OK"))
        tls.sendall(b"PASS demo-pass\r\n")
        self.assertTrue(recv_until(tls, b"\r\n").startswith(b"+OK"))
        tls.sendall(b"QUIT\r\n")
        recv_until(tls, b"\r\n")
        tls.close()

    # -- resumption, bad input ----------------------------------------------
    def resumption(self, version):
        # the ticket is sealed with master's shared key: a login process other
        # than the one that issued it opens it (reconnect until another
        # process answers; in high-security mode every one is another)
        ctx = ssl.create_default_context(cafile=self.rg.cert)
        ctx.minimum_version = ctx.maximum_version = version
        user = "demo" if version == ssl.TLSVersion.TLSv1_2 else "alice"
        password = self.rg.users[user]

        def connect(session=None):
            s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", self.rg.imaps_port),
                                                         timeout=15),
                                server_hostname="localhost", session=session)
            self.assertIn(b"* OK", recv_until(s, b"\r\n"))
            s.sendall(b'a LOGIN %s "%s"\r\n' % (user.encode(), password.encode()))
            self.assertIn(b"a OK", recv_until(s, b"a "))
            pid = wait_for(lambda: login_pid(self.rg, user) if self.rg.logs().count(
                "Login: user=<%s>" % user) > count[0] else None)
            count[0] += 1
            s.sendall(b"b LOGOUT\r\n")
            recv_until(s, b"b OK")
            return s, pid

        count = [self.rg.logs().count("Login: user=<%s>" % user)]
        first, first_pid = connect()
        session = first.session
        self.assertIsNotNone(session)
        self.assertFalse(first.session_reused)
        first.close()
        for attempt in range(20):
            if attempt == 3:
                # the kernel keeps handing connections to the same
                # process: retire it (idle, it exits; master starts another)
                os.kill(first_pid, signal.SIGTERM)
                wait_for(lambda: not alive(first_pid))
            s, pid = connect(session)
            self.assertTrue(s.session_reused, "not resumed by process %s" % pid)
            s.close()
            if pid != first_pid:
                return
        self.fail("every connection went to login process %d" % first_pid)

    def test_tls12_resumption_on_another_login_process(self):
        self.resumption(ssl.TLSVersion.TLSv1_2)

    def test_tls13_resumption_on_another_login_process(self):
        self.resumption(ssl.TLSVersion.TLSv1_3)

    def test_garbage_on_the_tls_port(self):
        for junk in (b"GET / HTTP/1.0\r\n\r\n", b"\x16\x03\x01\x00\x05hello", b"\x00" * 3000):
            s = socket.create_connection(("127.0.0.1", self.rg.imaps_port), timeout=10)
            s.sendall(junk)
            try:
                while s.recv(4096):
                    pass
            except (ConnectionResetError, socket.timeout):
                pass
            s.close()
        m = self.imaps()
        self.assertEqual(m.login("demo", "demo-pass")[0], "OK")
        m.logout()
        wait_for(lambda: "TLS handshaking" in self.rg.logs())

    def tls_login(self, user="demo", password="demo-pass"):
        s = self.ctx.wrap_socket(socket.create_connection(("127.0.0.1", self.rg.imaps_port),
                                                          timeout=15),
                                 server_hostname="localhost", suppress_ragged_eofs=False)
        recv_until(s, b"\r\n")
        s.sendall(b"a LOGIN %s \"%s\"\r\n" % (user.encode(), password.encode()))
        self.assertIn(b"a OK", recv_until(s, b"a "))
        return s

    def test_close_notify_when_the_worker_ends(self):
        # LOGOUT: the worker exits, the proxy sends close_notify (a clean
        # TLS EOF: recv() returns b"" instead of raising SSLEOFError)
        s = self.tls_login()
        s.sendall(b"z LOGOUT\r\n")
        data = recv_until(s, b"z OK")
        self.assertIn(b"z OK", data)
        self.assertEqual(s.recv(100), b"")
        s.close()

    def test_close_notify_from_the_client(self):
        # the client ends TLS first: the worker sees EOF, the session ends,
        # and the client gets close_notify back
        s = self.tls_login()
        s.sendall(b"n NOOP\r\n")
        recv_until(s, b"n OK")
        plain = s.unwrap()
        plain.close()
        self.assertTrue(wait_for(lambda: self.rg.logs().count("Disconnected: Connection closed") +
                                 self.rg.logs().count("Disconnected: ") > 0))

    def test_old_protocol_refused(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        with self.assertRaises((ssl.SSLError, ConnectionResetError)):
            ctx.wrap_socket(socket.create_connection(("127.0.0.1", self.rg.imaps_port),
                                                     timeout=10))
        self.assertTrue(wait_for(lambda: re.search(r"TLS handshaking: .*rip=127\.0\.0\.1",
                                                   self.rg.logs())))

    def test_renegotiation_refused(self):
        # a TLS 1.2 client asks to renegotiate (s_client's "R"): refused with
        # an alert, that connection ends, logged with its address
        p = subprocess.Popen(["openssl", "s_client", "-tls1_2", "-CAfile", self.rg.cert,
                              "-connect", "127.0.0.1:%d" % self.rg.imaps_port],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
        try:
            time.sleep(1)
            p.stdin.write(b"a NOOP\n")
            p.stdin.flush()
            time.sleep(0.5)
            p.stdin.write(b"R\n")
            p.stdin.flush()
            out = p.communicate(timeout=10)[0]
        except (BrokenPipeError, subprocess.TimeoutExpired):
            p.kill()
            out = p.communicate()[0]
        self.assertIn(b"a OK", out)
        self.assertIn(b"RENEGOTIATING", out)
        self.assertIn(b"alert", out)
        self.assertTrue(wait_for(lambda: re.search(r"Disconnected: TLS: .*rip=127\.0\.0\.1",
                                                   self.rg.logs())))
        m = self.imaps()
        self.assertEqual(m.login("demo", "demo-pass")[0], "OK")
        m.logout()

    def test_stalled_handshake_blocks_nobody(self):
        # half a ClientHello, then silence; a truncated one, then EOF: the
        # same login process keeps serving everybody else meanwhile
        ctx = ssl.create_default_context(cafile=self.rg.cert)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
        with self.assertRaises(ssl.SSLWantReadError):
            obj.do_handshake()
        hello = outgoing.read()
        stalled = [socket.create_connection(("127.0.0.1", self.rg.imaps_port)) for _ in range(5)]
        for s in stalled:
            s.sendall(hello[:len(hello) // 2])
        cut = socket.create_connection(("127.0.0.1", self.rg.imaps_port))
        cut.sendall(hello[:40])
        cut.close()
        for _ in range(3):
            m = self.imaps()
            self.assertEqual(m.login("demo", "demo-pass")[0], "OK")
            m.logout()
        for s in stalled:
            s.close()

    @unittest.skipIf(rgenv.sanitized(), "ASan's allocator makes RSS meaningless")
    def test_slow_reader_keeps_proxy_memory_bounded(self):
        # the client asks for 10 MB and reads nothing for a while: the login
        # process relaying it must not buffer the message. A small receive
        # buffer (set before connecting, so the window is right) keeps the
        # kernel from absorbing much of it: the rest must wait in the worker.
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        raw.settimeout(30)
        raw.connect(("127.0.0.1", self.rg.imaps_port))
        s = self.ctx.wrap_socket(raw, server_hostname="localhost")
        recv_until(s, b"\r\n")
        s.sendall(b'a LOGIN alice "alice secret"\r\nb SELECT INBOX\r\n')
        data = recv_until(s, b"b OK")
        n = int(re.search(rb"\* (\d+) EXISTS", data).group(1))
        pid = wait_for(lambda: login_pid(self.rg, "alice"))
        before = rss_kb(pid)
        s.sendall(b"s1 FETCH %d (BODY.PEEK[])\r\n" % n)
        time.sleep(1.5)
        grown = rss_kb(pid) - before
        # the receive-buffer ring (2 MB in high-performance mode) gets
        # touched as the worker's bytes pass; buffering the message would
        # cost most of its 10 MB
        self.assertLess(grown, BIG_LEN // 1024 // 3,
                        "login process grew by %d kB while the client did not read" % grown)
        data = recv_until(s, b"\r\ns1 OK", timeout=60)
        self.assertIn(b"{%d}\r\n" % BIG_LEN, data)
        self.assertIn(b"\r\ns1 OK", data)
        s.sendall(b"s2 LOGOUT\r\n")
        recv_until(s, b"s2 OK")
        s.close()

    def test_login_logged_with_tls(self):
        m = self.imaps()
        m.login("demo", "demo-pass")
        m.logout()
        self.assertTrue(wait_for(lambda: ", TLS, session=<" in self.rg.logs()))
        self.assertNotIn("demo-pass", self.rg.logs())


class TlsPerformance(TlsTests, unittest.TestCase):
    MODE = "performance"


class TlsSecurity(TlsTests, unittest.TestCase):
    MODE = "security"

    def test_proxy_process_lives_for_its_client(self):
        # high-security: the single-use login process stays as that one
        # client's proxy until the client logs out, then exits
        m = self.imaps()
        m.login("alice", "alice secret")
        self.assertTrue(wait_for(lambda: "Login: user=<alice>" in self.rg.logs()))
        line = [x for x in self.rg.logs().splitlines() if "Login: user=<alice>" in x][-1]
        pid = int(line.split("(", 1)[1].split(")", 1)[0])
        m.select("INBOX")
        time.sleep(0.5)
        self.assertTrue(alive(pid))
        self.assertIn(pid, self.rg.children("ringgate-login"))
        self.assertEqual(m.noop()[0], "OK")
        m.logout()
        self.assertTrue(wait_for(lambda: not alive(pid)))


class TlsStartup(unittest.TestCase):
    def run_bad(self, extra_conf="", swap_key=False):
        rg = rgenv.Ringgate(tls=True, extra_conf=extra_conf)
        try:
            if swap_key:
                other_cert = os.path.join(rg.tmp, "other.pem")
                other_key = os.path.join(rg.tmp, "other-key.pem")
                rgenv.make_cert(other_cert, other_key, kind="rsa")
                os.replace(other_key, rg.key)
            out = subprocess.run(rg.command("-F"), capture_output=True, timeout=30)
            return out.returncode, out.stderr.decode(errors="replace") + rg.logs()
        finally:
            rg.cleanup()

    def test_key_not_matching_certificate_stops_startup(self):
        code, text = self.run_bad(swap_key=True)
        self.assertNotEqual(code, 0)
        self.assertIn("does not match", text)
        self.assertIn("ssl_key = <", text)

    def test_local_name_key_not_matching_stops_startup(self):
        # local_name contexts are built only on first use in login
        # processes: master still proves every pair at start-up
        tmp = tempfile.mkdtemp(prefix="ringgate-test-sni-")
        try:
            for n in ("a", "b"):
                rgenv.make_cert(os.path.join(tmp, n + ".pem"), os.path.join(tmp, n + "-key.pem"),
                                cn=n + ".example.test")
            conf = ("local_name a.example.test {\n  ssl_cert = <%s/a.pem\n  ssl_key = <%s/a-key.pem\n}\n"
                    "local_name b.example.test {\n  ssl_cert = <%s/b.pem\n  ssl_key = <%s/a-key.pem\n}\n"
                    % (tmp, tmp, tmp, tmp))
            code, text = self.run_bad(extra_conf=conf)
            self.assertNotEqual(code, 0)
            self.assertRegex(text, r"ringgate\.conf:\d+: local_name b\.example\.test: "
                             r"ssl_key: does not match ssl_cert")
            self.assertNotIn("local_name a.example.test:", text)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_unreadable_certificate_is_a_config_error(self):
        code, text = self.run_bad(extra_conf="local_name mail.example.test {\n"
                                  "  ssl_cert = </nonexistent/cert.pem\n  ssl_key = </nonexistent/k\n}\n")
        self.assertNotEqual(code, 0)
        self.assertIn("ringgate.conf:", text)
        self.assertIn("/nonexistent/cert.pem", text)


class Sni(unittest.TestCase):
    NAMES = 1000

    def start(self, sections):
        # one imap-login process, so the one measured is the one that served
        rg = rgenv.Ringgate(tls=True, service_extra="  process_min_avail = 1\n")
        other_cert = os.path.join(rg.tmp, "other.pem")
        other_key = os.path.join(rg.tmp, "other-key.pem")
        rgenv.make_cert(other_cert, other_key, cn="imap.example.test", kind="rsa")
        third_cert = os.path.join(rg.tmp, "third.pem")
        third_key = os.path.join(rg.tmp, "third-key.pem")
        rgenv.make_cert(third_cert, third_key, cn="third.example.test")
        with open(rg.conf, "a") as f:
            f.write("local_name \"imap.example.test *.wild.test\" {\n  ssl_cert = <%s\n"
                    "  ssl_key = <%s\n}\n" % (other_cert, other_key))
            for i in range(sections):
                cert, key = (other_cert, other_key) if i % 2 else (third_cert, third_key)
                f.write("local_name n%d.example.test {\n  ssl_cert = <%s\n  ssl_key = <%s\n}\n"
                        % (i, cert, key))
        rg.start()
        return rg, other_cert, third_cert

    def login_rss(self, rg):
        # after a TLS connection: the context (built on first use) exists,
        # the configuration's key text is gone
        ctx = ssl.create_default_context(cafile=rg.cert)
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", rg.imaps_port), timeout=10),
                            server_hostname="localhost")
        recv_until(s, b"\r\n")
        s.close()
        time.sleep(0.5)
        pids = [p for p in rg.children("ringgate-login")
                if b"imap" in open("/proc/%d/cmdline" % p, "rb").read()]
        self.assertEqual(len(pids), 1)
        return rss_kb(pids[0])

    @unittest.skipIf(rgenv.sanitized(), "ASan's allocator makes RSS meaningless")
    def test_thousand_names_share_certificates(self):
        # 1,000 local_name sections over two certificates: each certificate
        # is loaded once, so the login process is about as big as with one
        small, _, _ = self.start(1)
        try:
            base = self.login_rss(small)
        finally:
            small.stop()
            small.cleanup()
        rg, other_cert, third_cert = self.start(self.NAMES)
        try:
            grown = self.login_rss(rg) - base
            self.assertLess(grown, 2048, "1,000 names cost %d kB per login process" % grown)
            for name, cafile, cn in (("n0.example.test", third_cert, "third.example.test"),
                                     ("n999.example.test", other_cert, "imap.example.test"),
                                     ("n500.example.test", third_cert, "third.example.test")):
                ctx = ssl.create_default_context(cafile=cafile)
                ctx.check_hostname = False
                s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", rg.imaps_port),
                                                             timeout=10), server_hostname=name)
                self.assertEqual(dict(x[0] for x in s.getpeercert()["subject"])["commonName"], cn)
                s.close()
        finally:
            rg.stop()
            rg.cleanup()

    def test_local_name_picks_its_certificate(self):
        rg, other_cert, _ = self.start(0)
        try:
            def peer_cn(name, cafile):
                ctx = ssl.create_default_context(cafile=cafile)
                ctx.check_hostname = False
                s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", rg.imaps_port), timeout=10),
                                    server_hostname=name)
                cert = s.getpeercert()
                s.close()
                return dict(x[0] for x in cert["subject"])["commonName"]
            self.assertEqual(peer_cn("imap.example.test", other_cert), "imap.example.test")
            self.assertEqual(peer_cn("IMAP.Example.Test", other_cert), "imap.example.test")
            self.assertEqual(peer_cn("localhost", rg.cert), "localhost")
            self.assertEqual(peer_cn("unknown.example", rg.cert), "localhost")
        finally:
            rg.stop()
            rg.cleanup()


class SniOnFirstUse(unittest.TestCase):
    """local_name contexts are built when a client first names them: each
    name gets its own certificate on first use and from the cache (one
    high-performance process serving them all), in high-security processes
    forked from the template (each builds the one it needs), and a name
    that is not configured gets the default certificate."""

    def serve(self, mode, service_extra):
        rg = rgenv.Ringgate(mode=mode, tls=True, service_extra=service_extra)
        certs = {}
        for cn in ("one.example.test", "two.example.test", "any.wild.test"):
            cert = os.path.join(rg.tmp, cn + ".pem")
            key = os.path.join(rg.tmp, cn + "-key.pem")
            rgenv.make_cert(cert, key, cn=cn)
            certs[cn] = cert
        with open(rg.conf, "a") as f:
            for names, cn in (("one.example.test", "one.example.test"),
                              ('"two.example.test TWO.alias.test"', "two.example.test"),
                              ("*.wild.test", "any.wild.test")):
                f.write("local_name %s {\n  ssl_cert = <%s\n  ssl_key = <%s\n}\n" % (
                    names, certs[cn], os.path.join(rg.tmp, cn + "-key.pem")))
            # more names, never asked for
            for i in range(200):
                f.write("local_name n%d.example.test {\n  ssl_cert = <%s\n  ssl_key = <%s\n}\n"
                        % (i, certs["one.example.test"],
                           os.path.join(rg.tmp, "one.example.test-key.pem")))
        rg.start()
        certs["localhost"] = rg.cert
        return rg, certs

    def peer_cn(self, rg, name, cafile):
        ctx = ssl.create_default_context(cafile=cafile)
        ctx.check_hostname = False
        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", rg.imaps_port), timeout=10),
                             server_hostname=name) as s:
            recv_until(s, b"\r\n")
            return dict(x[0] for x in s.getpeercert()["subject"])["commonName"]

    def check(self, mode, service_extra):
        rg, certs = self.serve(mode, service_extra)
        try:
            cases = [("one.example.test", "one.example.test"),
                     ("TWO.Example.Test", "two.example.test"),
                     ("two.alias.test", "two.example.test"),
                     ("imap.wild.test", "any.wild.test"),
                     ("n7.example.test", "one.example.test"),
                     ("unknown.example", "localhost"),
                     ("a.b.wild.test", "localhost"),
                     (None, "localhost")]
            # twice: the second time from the cache (high-performance)
            for _ in range(2):
                for name, cn in cases:
                    self.assertEqual(self.peer_cn(rg, name, certs[cn]), cn, name)
        finally:
            rg.stop()
            rg.cleanup()

    def test_performance_mode(self):
        self.check("performance", "  process_min_avail = 1\n")

    def test_reload_changes_names(self):
        # master makes a new store at a reload; new login processes map it
        rg, certs = self.serve("security", "")
        try:
            self.assertEqual(self.peer_cn(rg, "one.example.test", certs["one.example.test"]),
                             "one.example.test")
            self.assertEqual(self.peer_cn(rg, "new.example.test", rg.cert), "localhost")
            with open(rg.conf) as f:
                text = f.read()
            # a new name, with two's certificate
            text = text.replace("local_name one.example.test {",
                                "local_name new.example.test {\n  ssl_cert = <%s\n"
                                "  ssl_key = <%s\n}\nlocal_name one.example.test {" % (
                                    certs["two.example.test"],
                                    os.path.join(rg.tmp, "two.example.test-key.pem")))
            with open(rg.conf, "w") as f:
                f.write(text)
            out = rg.ctl("reload", check=False)
            self.assertEqual(out.returncode, 0, out.stderr + rg.logs()[-2000:])
            self.assertEqual(self.peer_cn(rg, "new.example.test", certs["two.example.test"]),
                             "two.example.test")
            self.assertEqual(self.peer_cn(rg, "one.example.test", certs["one.example.test"]),
                             "one.example.test")
            # running.conf names the sections but leaves them to master's store
            with open(os.path.join(rg.base_dir, "running.conf")) as f:
                running = f.read()
            self.assertIn("# 204 local_name sections: given to login processes by master\n",
                          running)
            self.assertEqual(running.count("local_name"), 1)
        finally:
            rg.stop()
            rg.cleanup()

    def test_security_mode(self):
        self.check("security", "")

    def test_tls12_name_with_the_other_key_type(self):
        """A TLS 1.2 client gets a local_name certificate whose key type
        (RSA, ECDSA) differs from ssl_cert's: the suites follow the
        certificate the name chose, in both directions."""
        for default_kind, name_kind in (("ec", "rsa"), ("rsa", "ec")):
            rg = rgenv.Ringgate(mode="performance", tls=True)
            try:
                if default_kind != "ec":
                    rgenv.make_cert(rg.cert, rg.key, kind=default_kind)
                cert = os.path.join(rg.tmp, "name.pem")
                key = os.path.join(rg.tmp, "name-key.pem")
                rgenv.make_cert(cert, key, cn="name.example.test", kind=name_kind)
                with open(rg.conf, "a") as f:
                    f.write("local_name name.example.test {\n  ssl_cert = <%s\n"
                            "  ssl_key = <%s\n}\n" % (cert, key))
                rg.start()
                for name, cafile, cn, auth in (("name.example.test", cert, "name.example.test",
                                                name_kind),
                                               (None, rg.cert, "localhost", default_kind)):
                    ctx = ssl.create_default_context(cafile=cafile)
                    ctx.check_hostname = False
                    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
                    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", rg.imaps_port),
                                                                  timeout=10),
                                         server_hostname=name) as s:
                        recv_until(s, b"\r\n")
                        self.assertEqual(s.version(), "TLSv1.2")
                        self.assertEqual(
                            dict(x[0] for x in s.getpeercert()["subject"])["commonName"], cn)
                        self.assertIn("ECDSA" if auth == "ec" else "RSA", s.cipher()[0])
            finally:
                rg.stop()
                rg.cleanup()


if __name__ == "__main__":
    unittest.main()
