"""Passdb proxy: the front ringgate's passwd-file says `proxy host=… port=…`
for a user, so its login process logs in to a second, real ringgate (the
backend) with the user's credentials and relays bytes both ways; no worker
is forked on the front. Both modes, plaintext and TLS clients, POP3 with
destuser, pipelined input after LOGIN, a 10 MB message byte-exact through the
relay, backend down / stalling past proxy_timeout (NO [UNAVAILABLE], -ERR
[SYS/TEMP], the session goes on), nologin with reason, and against a
scripted backend (a Python IMAP/POP3 peer on 127.0.0.1): master user +
destuser in AUTHENTICATE PLAIN, the ID / XCLIENT carrying the client's
address and session, the backend's NO relayed."""
import base64
import hashlib
import imaplib
import poplib
import socket
import ssl
import threading
import time
import unittest

import rgenv

BIG = 10 * 1024 * 1024 + 17


def big_message():
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-+\r\n"
    body = (line * (BIG // len(line) + 1))[:BIG]
    return b"From: big@example.com\r\nSubject: big\r\n\r\n" + body


class ScriptedBackend:
    """A tiny IMAP or POP3 server on 127.0.0.1 that records what a proxy
    sends: greets (advertising ID / XCLIENT), answers the login with the
    given line, then echoes one command."""

    def __init__(self, pop3=False, login_reply=None):
        self.pop3 = pop3
        self.login_reply = login_reply
        self.lines = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        c.settimeout(20)
        f = c.makefile("rb")
        try:
            if self.pop3:
                c.sendall(b"+OK [XCLIENT] scripted ready.\r\n")
            else:
                c.sendall(b"* OK [CAPABILITY IMAP4rev1 ID SASL-IR AUTH=PLAIN] scripted ready.\r\n")
            while True:
                line = f.readline()
                if not line:
                    return
                self.lines.append(line)
                word = line.split(b" ")
                if self.pop3:
                    if word[0] == b"XCLIENT":
                        c.sendall(b"+OK\r\n")
                    elif word[0] == b"AUTH":
                        c.sendall(self.login_reply or b"+OK scripted logged in.\r\n")
                    else:
                        c.sendall(b"+OK echo " + line)
                else:
                    tag = word[0]
                    if word[1] == b"ID":
                        c.sendall(b'* ID ("name" "scripted")\r\n' + tag + b" OK ID done\r\n")
                    elif word[1] == b"AUTHENTICATE":
                        c.sendall(tag + b" " + (self.login_reply or b"OK scripted logged in") + b"\r\n")
                    else:
                        c.sendall(tag + b" OK echo\r\n")
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.sock.close()


class ProxyBase:
    mode = "performance"

    @classmethod
    def setUpClass(cls):
        # the front is in the backend's login_trusted_networks: its ID /
        # XCLIENT name the real client
        cls.backend = rgenv.Ringgate(mode="performance",
                                     users={"demo": "demo-pass", "alice": "alice secret"},
                                     extra_conf="login_trusted_networks = 127.0.0.1/32\n").start()
        cls.big_name = cls.backend.deliver("alice", big_message())
        # a port nobody listens on, and one that accepts and never speaks
        cls.down_port = rgenv.free_port()
        cls.staller = socket.socket()
        cls.staller.bind(("127.0.0.1", 0))
        cls.staller.listen(16)
        # a backend whose accept queue is full: the connect itself hangs
        # (SYNs dropped) until proxy_timeout
        cls.full = socket.socket()
        cls.full.bind(("127.0.0.1", 0))
        cls.full.listen(0)
        cls.fillers = []
        for _ in range(4):
            f = socket.socket()
            f.setblocking(False)
            try:
                f.connect(cls.full.getsockname())
            except BlockingIOError:
                pass
            cls.fillers.append(f)
        cls.scripted = ScriptedBackend()
        cls.scripted_pop3 = ScriptedBackend(pop3=True)
        cls.refusing = ScriptedBackend(login_reply=b"NO [AUTHENTICATIONFAILED] backend says no")
        be_imap, be_pop3 = cls.backend.imap_port, cls.backend.pop3_port
        cls.front = rgenv.Ringgate(mode=cls.mode, tls=True, users={"x": "y"})
        entries = [
            "demo:{PLAIN}demo-pass::::::proxy host=127.0.0.1 port=%d" % be_imap,
            "alice:{PLAIN}alice secret::::::proxy host=127.0.0.1 port=%d proxy_timeout=20" % be_imap,
            "popdemo:{PLAIN}pop-pass::::::proxy host=127.0.0.1 port=%d destuser=demo pass=demo-pass"
            % be_pop3,
            "down:{PLAIN}pw::::::proxy host=127.0.0.1 port=%d" % cls.down_port,
            "stall:{PLAIN}pw::::::proxy host=127.0.0.1 port=%d proxy_timeout=2"
            % cls.staller.getsockname()[1],
            "gone:{PLAIN}pw::::::nologin reason=Moved-to-imap2.example.com.",
            "mu:{PLAIN}mu-pass::::::proxy host=127.0.0.1 port=%d destuser=bob master=admin "
            "pass=admin-secret" % cls.scripted.port,
            "xc:{PLAIN}xc-pass::::::proxy host=127.0.0.1 port=%d" % cls.scripted_pop3.port,
            "refused:{PLAIN}pw::::::proxy host=127.0.0.1 port=%d" % cls.refusing.port,
            "nohost:{PLAIN}pw::::::proxy port=143",
            "hang:{PLAIN}pw::::::proxy host=127.0.0.1 port=%d proxy_timeout=2"
            % cls.full.getsockname()[1],
            "mismatch:{PLAIN}front-pass::::::proxy host=127.0.0.1 port=%d destuser=demo" % be_imap,
        ]
        # proxy_maybe: to ourselves means a local login (userdb fields
        # needed), to the backend means proxying
        f = cls.front
        entries += [
            "maybelocal:{PLAIN}pw:%d:%d::%s::proxy_maybe host=127.0.0.1 port=%d"
            % (f.uid, f.gid, f.home("x"), f.imap_port),
            "mayberemote:{PLAIN}pw:%d:%d::%s::proxy_maybe host=127.0.0.1 port=%d destuser=demo "
            "pass=demo-pass" % (f.uid, f.gid, f.home("x"), be_imap),
        ]
        with open(cls.front.passwd, "w") as f:
            f.write("\n".join(entries) + "\n")
        cls.front.start()
        cls.ctx = ssl.create_default_context(cafile=cls.front.cert)

    @classmethod
    def tearDownClass(cls):
        cls.front.cleanup()
        cls.backend.cleanup()
        cls.staller.close()
        cls.full.close()
        for f in cls.fillers:
            f.close()
        for b in (cls.scripted, cls.scripted_pop3, cls.refusing):
            b.close()

    def wait_log(self, rg, text, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in rg.logs():
                return
            time.sleep(0.1)
        self.fail("%r not in the log:\n%s" % (text, rg.logs()[-4000:]))

    def raw(self, port):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        rgenv.recv_until(s, b"\r\n")
        return s

    def test_imap_plaintext_client(self):
        m = imaplib.IMAP4("127.0.0.1", self.front.imap_port, timeout=30)
        typ, data = m.login("demo", "demo-pass")
        self.assertEqual(typ, "OK")
        self.assertIn(b"Logged in", data[0])   # the backend's own answer
        typ, data = m.select("INBOX")
        self.assertEqual(data, [b"3"])
        typ, data = m.fetch("1", "(BODY[HEADER.FIELDS (SUBJECT)])")
        self.assertIn(b"Subject: Welcome", data[0][1])
        m.logout()
        self.wait_log(self.front, "proxy(demo): started proxying to 127.0.0.1:%d" % self.backend.imap_port)
        self.wait_log(self.front, "proxy(demo): disconnected")
        # the backend really served it
        self.wait_log(self.backend, "Login: user=<demo>, method=PLAIN")
        # no worker on the front
        self.assertEqual(self.front.children("ringgate-imap"), [])

    def test_imaps_client_big_message_byte_exact(self):
        s = socket.create_connection(("127.0.0.1", self.front.imaps_port), timeout=60)
        t = self.ctx.wrap_socket(s, server_hostname="localhost")
        rgenv.recv_until(t, b"\r\n")
        t.sendall(b'a LOGIN alice "alice secret"\r\nb SELECT INBOX\r\n')
        data = rgenv.recv_until(t, b"b OK", timeout=30)
        self.assertIn(b"a OK", data)
        t.sendall(b"c FETCH 4 BODY.PEEK[]\r\n")
        data = rgenv.recv_until(t, b"c OK", limit=BIG + (1 << 20), timeout=120)
        want = big_message()
        start = data.index(b"}\r\n") + 3
        got = bytes(data[start:start + len(want)])
        self.assertEqual(hashlib.sha256(got).hexdigest(), hashlib.sha256(want).hexdigest())
        t.sendall(b"d LOGOUT\r\n")
        rgenv.recv_until(t, b"d OK")
        t.close()

    def test_backend_sees_the_client_address(self):
        # the client comes from 127.0.0.2 (over TLS: plaintext login is off
        # for it); the front connects to the backend from 127.0.0.1 and
        # forwards 127.0.0.2 (ID / XCLIENT), which the backend uses in its
        # log (and for its penalty)
        for port, cmds, end, proto in (
                (self.front.imaps_port, b"a LOGIN demo demo-pass\r\nb LOGOUT\r\n", b"b OK", "imap"),
                (self.front.pop3s_port, b"USER popdemo\r\nPASS pop-pass\r\nQUIT\r\n", b"Logging out",
                 "pop3")):
            s = socket.socket()
            s.bind(("127.0.0.2", 0))
            s.settimeout(30)
            s.connect(("127.0.0.1", port))
            src_port = s.getsockname()[1]
            t = self.ctx.wrap_socket(s, server_hostname="localhost")
            rgenv.recv_until(t, b"\r\n")
            t.sendall(cmds)
            data = rgenv.recv_until(t, end)
            self.assertIn(end, data)
            t.close()
            self.wait_log(self.backend, "Login: user=<demo>, method=PLAIN, rip=127.0.0.2, lip=127.0.0.1")
            self.wait_log(self.front, "proxy(%s): started proxying to 127.0.0.1:%d: rip=127.0.0.2"
                          % ("demo" if proto == "imap" else "popdemo",
                             self.backend.imap_port if proto == "imap" else self.backend.pop3_port))
        # and for its penalty: a password the backend refuses counts
        # against 127.0.0.2 there (auth logs the address it penalises)
        s = socket.socket()
        s.bind(("127.0.0.2", 0))
        s.settimeout(30)
        s.connect(("127.0.0.1", self.front.imaps_port))
        t = self.ctx.wrap_socket(s, server_hostname="localhost")
        rgenv.recv_until(t, b"\r\n")
        t.sendall(b"a LOGIN mismatch front-pass\r\n")
        reply = rgenv.recv_until(t, b"\r\n", timeout=30)
        self.assertTrue(reply.startswith(b"a NO"), reply)
        t.close()
        self.wait_log(self.backend, "passwd-file(demo,127.0.0.2): Password mismatch")

    def test_proxy_maybe(self):
        m = imaplib.IMAP4("127.0.0.1", self.front.imap_port, timeout=30)
        self.assertEqual(m.login("maybelocal", "pw")[0], "OK")
        self.assertEqual(m.select("INBOX")[1], [b"3"])
        m.logout()
        # a local worker served it: master's hand-off line, no proxying
        self.wait_log(self.front, "Login: user=<maybelocal>, method=PLAIN")
        self.assertNotIn("proxy(maybelocal)", self.front.logs())
        m = imaplib.IMAP4("127.0.0.1", self.front.imap_port, timeout=30)
        self.assertEqual(m.login("mayberemote", "pw")[0], "OK")
        self.assertEqual(m.select("INBOX")[1], [b"3"])
        m.logout()
        self.wait_log(self.front, "proxy(mayberemote): started proxying to 127.0.0.1:%d"
                      % self.backend.imap_port)

    def test_pipelined_after_login_reaches_backend(self):
        s = self.raw(self.front.imap_port)
        s.sendall(b"a LOGIN demo demo-pass\r\nb NOOP\r\nc LOGOUT\r\n")
        data = rgenv.recv_until(s, b"c OK")
        self.assertIn(b"a OK", data)
        self.assertIn(b"b OK", data)
        self.assertIn(b"* BYE", data)
        s.close()

    def test_pop3_destuser_and_pass_field(self):
        p = poplib.POP3("127.0.0.1", self.front.pop3_port, timeout=30)
        p.user("popdemo")
        self.assertTrue(p.pass_("pop-pass").startswith(b"+OK"))
        count, _ = p.stat()
        self.assertEqual(count, 3)
        self.assertIn(b"Subject: Welcome", b"\n".join(p.retr(1)[1]))
        p.quit()
        self.wait_log(self.backend, "Login: user=<demo>, method=PLAIN")

    def test_backend_down(self):
        s = self.raw(self.front.imap_port)
        s.sendall(b"a LOGIN down pw\r\n")
        reply = rgenv.recv_until(s, b"\r\n")
        self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
        self.wait_log(self.front, "proxy(down): 127.0.0.1:%d: connect failed" % self.down_port)
        # the session goes on before login
        s.sendall(b"b LOGIN demo demo-pass\r\nc LOGOUT\r\n")
        data = rgenv.recv_until(s, b"c OK")
        self.assertIn(b"b OK", data)
        s.close()
        p = socket.create_connection(("127.0.0.1", self.front.pop3_port), timeout=30)
        rgenv.recv_until(p, b"\r\n")
        p.sendall(b"USER down\r\nPASS pw\r\n")
        data = rgenv.recv_until(p, b"unavailable.\r\n")
        self.assertIn(b"-ERR [SYS/TEMP] Account is temporarily unavailable.", data)
        p.close()

    def test_backend_stalling(self):
        s = self.raw(self.front.imap_port)
        start = time.monotonic()
        s.sendall(b"a LOGIN stall pw\r\n")
        reply = rgenv.recv_until(s, b"\r\n", timeout=30)
        self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
        self.assertGreaterEqual(time.monotonic() - start, 1.0)
        self.wait_log(self.front, "proxy(stall): 127.0.0.1:%d: timed out" % self.staller.getsockname()[1])
        s.sendall(b"b NOOP\r\n")
        self.assertIn(b"b OK", rgenv.recv_until(s, b"b OK"))
        s.close()

    def test_connect_hanging(self):
        # the connect never completes: proxy_timeout ends it; a client that
        # leaves while its connect hangs does not hold the process
        s = self.raw(self.front.imap_port)
        s.sendall(b"a LOGIN hang pw\r\n")
        reply = rgenv.recv_until(s, b"\r\n", timeout=30)
        self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
        self.wait_log(self.front, "proxy(hang): 127.0.0.1:%d: timed out" % self.full.getsockname()[1])
        s.sendall(b"b LOGIN hang pw\r\n")
        time.sleep(0.3)
        s.close()
        m = imaplib.IMAP4("127.0.0.1", self.front.imap_port, timeout=30)
        self.assertEqual(m.login("demo", "demo-pass")[0], "OK")
        m.logout()

    def test_nologin_reason(self):
        s = self.raw(self.front.imap_port)
        s.sendall(b"a LOGIN gone pw\r\n")
        reply = rgenv.recv_until(s, b"\r\n")
        self.assertEqual(reply, b"a NO [ALERT] Moved-to-imap2.example.com.\r\n")
        s.close()

    def test_wrong_password_not_proxied(self):
        s = self.raw(self.front.imap_port)
        s.sendall(b"a LOGIN demo wrong\r\n")
        reply = rgenv.recv_until(s, b"\r\n", timeout=30)
        self.assertTrue(reply.startswith(b"a NO [AUTHENTICATIONFAILED]"), reply)
        s.close()

    def test_host_missing_is_temporary_failure(self):
        s = self.raw(self.front.imap_port)
        s.sendall(b"a LOGIN nohost pw\r\n")
        reply = rgenv.recv_until(s, b"\r\n")
        self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
        self.wait_log(self.front, "proxy(nohost): host not given")
        s.close()

    def test_master_user_destuser_and_id(self):
        s = self.raw(self.front.imap_port)
        src_port = s.getsockname()[1]
        s.sendall(b"a LOGIN mu mu-pass\r\n")
        reply = rgenv.recv_until(s, b"\r\n")
        self.assertEqual(reply, b"a OK scripted logged in\r\n")
        s.sendall(b"b NOOP\r\n")
        self.assertEqual(rgenv.recv_until(s, b"\r\n"), b"b OK echo\r\n")
        s.close()
        lines = self.scripted.lines
        id_line = [x for x in lines if b" ID (" in x][-1]
        self.assertIn(b'"x-originating-ip" "127.0.0.1" "x-originating-port" "%d"' % src_port, id_line)
        self.assertIn(b'"x-connected-ip" "127.0.0.1" "x-connected-port" "%d"' % self.front.imap_port,
                      id_line)
        self.assertIn(b'"x-session-id" "', id_line)
        auth = [x for x in lines if b"AUTHENTICATE PLAIN" in x][-1]
        self.assertEqual(base64.b64decode(auth.split()[3]), b"bob\0admin\0admin-secret")

    def test_backend_refusal_relayed(self):
        s = self.raw(self.front.imap_port)
        s.sendall(b"a LOGIN refused pw\r\n")
        reply = rgenv.recv_until(s, b"\r\n")
        self.assertTrue(reply.startswith(b"a NO"), reply)
        self.assertIn(b"backend says no", reply)
        s.sendall(b"b NOOP\r\n")
        self.assertIn(b"b OK", rgenv.recv_until(s, b"b OK"))
        s.close()

    def test_pop3_xclient(self):
        s = socket.create_connection(("127.0.0.1", self.front.pop3_port), timeout=30)
        rgenv.recv_until(s, b"\r\n")
        src_port = s.getsockname()[1]
        s.sendall(b"USER xc\r\nPASS xc-pass\r\n")
        data = rgenv.recv_until(s, b"logged in")
        self.assertIn(b"+OK scripted logged in.", data)
        s.close()
        x = [x for x in self.scripted_pop3.lines if x.startswith(b"XCLIENT")][-1]
        self.assertTrue(x.startswith(b"XCLIENT ADDR=127.0.0.1 PORT=%d SESSION=" % src_port), x)
        auth = [x for x in self.scripted_pop3.lines if x.startswith(b"AUTH PLAIN")][-1]
        self.assertEqual(base64.b64decode(auth.split()[2]), b"\0xc\0xc-pass")


class ProxyPerformance(ProxyBase, unittest.TestCase):
    mode = "performance"


class ProxySecurity(ProxyBase, unittest.TestCase):
    mode = "security"


if __name__ == "__main__":
    unittest.main()
