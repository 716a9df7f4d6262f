"""Passdb proxy to a real Dovecot (Debian's dovecot-imapd / dovecot-pop3d,
a private instance from dcenv.py: own config, base_dir, ports, passwd-file
users; the system service is untouched). One Dovecot and one front ringgate
for the whole module.

Covered: IMAP and POP3; plaintext, implicit TLS and STARTTLS / STLS to
Dovecot; plaintext and TLS clients; a master-user login (Dovecot's master
passdb, SASL PLAIN authzid = destuser); the client's address forwarded (ID
x-originating-ip for IMAP, XCLIENT for POP3: Dovecot logs rip= the real
client, which connects from 127.0.0.2, and our session id); the backend's
certificate checked against ssl_client_ca_file AND the passdb host name
(hostip is where to connect), a wrong name refused with the reason logged
and NO [UNAVAILABLE]; host=localhost resolved by auth; backend down; a
10 MB message byte-exact through both TLS sessions."""
import hashlib
import imaplib
import os
import poplib
import socket
import ssl
import subprocess
import time
import unittest

import dcenv
import rgenv

BIG = 10 * 1024 * 1024 + 33


def big_message():
    line = b"The quick brown fox jumps over the lazy dog 0123456789 ABCDEFGHIJKL\r\n"
    body = (line * (BIG // len(line) + 1))[:BIG]
    return b"From: big@example.com\r\nSubject: big\r\n\r\n" + body


def name_cert(tmp, cn):
    """a self-signed certificate naming only DNS:cn (no IP address)"""
    cert, key = os.path.join(tmp, cn + ".pem"), os.path.join(tmp, cn + ".key")
    subprocess.run(["openssl", "req", "-x509", "-nodes", "-days", "30", "-subj", "/CN=" + cn,
                    "-addext", "subjectAltName=DNS:" + cn, "-newkey", "ec",
                    "-pkeyopt", "ec_paramgen_curve:P-256", "-keyout", key, "-out", cert],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.chmod(key, 0o644)  # Dovecot reads it as root; the directory is private
    return cert, key


def tagged(s, tag, timeout=30):
    """the line starting with tag (untagged lines before it skipped)"""
    s.settimeout(timeout)
    buf = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return buf
        buf += chunk
        for line in buf.split(b"\r\n")[:-1]:
            if line.startswith(tag + b" "):
                return line


def connect(port, src="127.0.0.2"):
    return socket.create_connection(("127.0.0.1", port), timeout=60, source_address=(src, 0))


@unittest.skipUnless(dcenv.available(), "dovecot-imapd / dovecot-pop3d not installed")
class DovecotBackend(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # the front: TLS for clients, plaintext LOGIN allowed from 127.0.0.2
        cls.front = rgenv.Ringgate(mode="performance", tls=True, users={"x": "y"})
        cls.cert, cls.key = name_cert(cls.front.tmp, "backend.test")
        with open(cls.front.conf, "a") as f:
            f.write("disable_plaintext_auth = no\nssl_client_ca_file = %s\n" % cls.cert)
        cls.dc = dcenv.Dovecot(users={"bob": "bob-pass"}, cert=cls.cert, key=cls.key,
                               masters={"admin": "admin-secret"},
                               extra_conf="login_trusted_networks = 127.0.0.1/32\n"
                                          "auth_verbose = yes\n")
        cls.dc.deliver("bob", big_message())
        cls.dc.start()
        dc = cls.dc
        down = rgenv.free_port()
        name = "host=backend.test hostip=127.0.0.1"
        entries = [
            # user:{PLAIN}front-password::::::fields
            "plain:{PLAIN}pw::::::proxy host=127.0.0.1 port=%d destuser=bob pass=bob-pass"
            % dc.imap_port,
            "bob:{PLAIN}bob-pass::::::proxy host=127.0.0.1 port=%d" % dc.imap_port,
            "ssl:{PLAIN}pw::::::proxy %s port=%d ssl=yes destuser=bob pass=bob-pass"
            % (name, dc.imaps_port),
            "stls:{PLAIN}pw::::::proxy %s port=%d starttls=yes destuser=bob pass=bob-pass"
            % (name, dc.imap_port),
            "master:{PLAIN}pw::::::proxy host=127.0.0.1 port=%d destuser=bob master=admin "
            "pass=admin-secret" % dc.imap_port,
            "badmaster:{PLAIN}pw::::::proxy host=127.0.0.1 port=%d destuser=bob master=admin "
            "pass=wrong" % dc.imap_port,
            "wrongname:{PLAIN}pw::::::proxy host=other.test hostip=127.0.0.1 port=%d ssl=yes "
            "destuser=bob pass=bob-pass" % dc.imaps_port,
            "ipname:{PLAIN}pw::::::proxy host=127.0.0.1 port=%d starttls=yes "
            "destuser=bob pass=bob-pass" % dc.imap_port,
            "anyname:{PLAIN}pw::::::proxy host=other.test hostip=127.0.0.1 port=%d "
            "ssl=any-cert destuser=bob pass=bob-pass" % dc.imaps_port,
            "dns:{PLAIN}pw::::::proxy host=localhost port=%d starttls=any-cert "
            "destuser=bob pass=bob-pass" % dc.imap_port,
            "dnsname:{PLAIN}pw::::::proxy host=localhost port=%d ssl=yes "
            "destuser=bob pass=bob-pass" % dc.imaps_port,
            "down:{PLAIN}pw::::::proxy host=127.0.0.1 port=%d" % down,
        ] + pop3_entries(dc, down)
        with open(cls.front.passwd, "w") as f:
            f.write("\n".join(entries) + "\n")
        cls.front.start()
        cls.ctx = ssl.create_default_context(cafile=cls.front.cert)

    @classmethod
    def tearDownClass(cls):
        cls.front.cleanup()
        cls.dc.cleanup()

    def wait_log(self, env, text, timeout=40):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in env.logs():
                return
            time.sleep(0.1)
        self.fail("%r not in the log:\n%s" % (text, env.logs()[-4000:]))

    def tls(self, sock, server_hostname):
        sock.settimeout(60)  # the handshake, on a loaded machine
        return self.ctx.wrap_socket(sock, server_hostname=server_hostname)

    def imap_session(self, s, user, pw="pw"):
        """LOGIN, SELECT, a header FETCH, LOGOUT over socket s"""
        rgenv.recv_until(s, b"\r\n", timeout=30)
        s.sendall(b"a LOGIN %s %s\r\n" % (user.encode(), pw.encode()))
        self.assertTrue(tagged(s, b"a").startswith(b"a OK"))
        s.sendall(b"b SELECT INBOX\r\nc FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n")
        data = rgenv.recv_until(s, b"c OK", timeout=30)
        self.assertIn(b"* 4 EXISTS", data)
        self.assertIn(b"Subject: Welcome", data)
        s.sendall(b"d LOGOUT\r\n")
        self.assertIn(b"d OK", rgenv.recv_until(s, b"d OK", timeout=30))
        s.close()

    def refused(self, user):
        s = connect(self.front.imap_port)
        rgenv.recv_until(s, b"\r\n", timeout=30)
        s.sendall(b"a LOGIN %s pw\r\n" % user.encode())
        reply = rgenv.recv_until(s, b"\r\n", timeout=30)
        self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
        # the session goes on before login
        s.sendall(b"b NOOP\r\n")
        self.assertTrue(rgenv.recv_until(s, b"\r\n", timeout=30).startswith(b"b OK"))
        s.close()

    # -- IMAP --------------------------------------------------------------
    def test_imap_plaintext_id_forwarded(self):
        self.imap_session(connect(self.front.imap_port), "plain")
        self.wait_log(self.front, "proxy(plain): started proxying to 127.0.0.1:%d" % self.dc.imap_port)
        # Dovecot trusted our ID: the client's address and our session id
        front = rgenv.wait_for(lambda: next((l for l in self.front.logs().splitlines()
                                             if "proxy(plain): started proxying" in l), None),
                               timeout=40)
        session = front.split("session=<")[1].split(">")[0]
        line = rgenv.wait_for(lambda: next(
            (l for l in self.dc.logs().splitlines()
             if "imap-login: Info: Login: user=<bob>" in l and "rip=127.0.0.2" in l
             and "session=<%s>" % session in l), None), timeout=40)
        self.assertIn("lip=127.0.0.1", line)
        self.assertIn("rip=127.0.0.2, lip=127.0.0.1", front)

    def test_imap_user_password_forwarded_tls_client(self):
        s = self.tls(connect(self.front.imaps_port), server_hostname="localhost")
        self.imap_session(s, "bob", "bob-pass")

    def test_imap_implicit_tls_verified_name(self):
        self.imap_session(connect(self.front.imap_port), "ssl")
        self.wait_log(self.front, "proxy(ssl): started proxying to backend.test[127.0.0.1]:%d"
                      % self.dc.imaps_port)

    def test_imap_starttls_verified_name_tls_client(self):
        s = self.tls(connect(self.front.imaps_port), server_hostname="localhost")
        self.imap_session(s, "stls")
        self.wait_log(self.front, "proxy(stls): started proxying to backend.test[127.0.0.1]:%d"
                      % self.dc.imap_port)

    def test_imap_master_user(self):
        self.imap_session(connect(self.front.imap_port), "master")
        self.wait_log(self.dc, "auth: Info: Master user logging in as bob")
        # a wrong master password: Dovecot's NO goes to the client
        s = connect(self.front.imap_port)
        rgenv.recv_until(s, b"\r\n", timeout=30)
        s.sendall(b"a LOGIN badmaster pw\r\n")
        reply = rgenv.recv_until(s, b"\r\n", timeout=30)
        self.assertTrue(reply.startswith(b"a NO [AUTHENTICATIONFAILED]"), reply)
        s.close()

    def test_certificate_name_checked(self):
        # ssl=yes: the chain verifies but the certificate names backend.test
        self.refused("wrongname")
        self.wait_log(self.front, "proxy(wrongname): other.test[127.0.0.1]:%d: TLS handshake"
                      % self.dc.imaps_port)
        self.assertIn("name mismatch", next(
            l for l in self.front.logs().splitlines() if "proxy(wrongname)" in l))
        # an IP address is checked too (the certificate has no IP entry)
        self.refused("ipname")
        self.wait_log(self.front, "proxy(ipname): 127.0.0.1:%d: TLS handshake" % self.dc.imap_port)
        # any-cert checks nothing
        self.imap_session(connect(self.front.imap_port), "anyname")

    def test_dns_host(self):
        # auth resolves localhost; the login process connects to the address
        self.imap_session(connect(self.front.imap_port), "dns")
        self.wait_log(self.front, "proxy(dns): started proxying to localhost[127.0.0.1]:%d"
                      % self.dc.imap_port)
        # ssl=yes checks the name localhost, which the certificate lacks
        self.refused("dnsname")
        self.wait_log(self.front, "proxy(dnsname): localhost[127.0.0.1]:%d: TLS handshake"
                      % self.dc.imaps_port)

    def test_backend_down(self):
        self.refused("down")
        self.wait_log(self.front, "proxy(down): 127.0.0.1:")

    def test_big_message_tls_both_sides(self):
        s = self.tls(connect(self.front.imaps_port), server_hostname="localhost")
        rgenv.recv_until(s, b"\r\n", timeout=30)
        s.sendall(b"a LOGIN ssl pw\r\nb SELECT INBOX\r\n")
        self.assertIn(b"a OK", rgenv.recv_until(s, b"b OK", timeout=30))
        s.sendall(b"c FETCH 4 BODY.PEEK[]\r\n")
        data = rgenv.recv_until(s, b"c OK", limit=BIG + (1 << 20), timeout=120)
        want = big_message()
        start = data.index(b"{%d}\r\n" % len(want)) + len(b"{%d}\r\n" % len(want))
        self.assertEqual(hashlib.sha256(data[start:start + len(want)]).hexdigest(),
                         hashlib.sha256(want).hexdigest())
        s.sendall(b"d LOGOUT\r\n")
        rgenv.recv_until(s, b"d OK", timeout=30)
        s.close()

    # -- POP3 --------------------------------------------------------------
    def pop3_session(self, port, user, tls=False):
        p = poplib.POP3_SSL("127.0.0.1", port, context=self.ctx, timeout=30) if tls \
            else poplib.POP3("127.0.0.1", port, timeout=30)
        p.user(user)
        self.assertTrue(p.pass_("pw").startswith(b"+OK"))
        self.assertEqual(p.stat()[0], 4)
        self.assertIn(b"Subject: Welcome", b"\n".join(p.top(1, 0)[1]))
        p.quit()

    def test_pop3_plaintext_xclient(self):
        # from 127.0.0.2: Dovecot logs it, told by XCLIENT
        s = connect(self.front.pop3_port)
        rgenv.recv_until(s, b"\r\n", timeout=30)
        s.sendall(b"USER pplain\r\nPASS pw\r\n")
        data = rgenv.recv_until(s, b"Logged in", timeout=30)
        self.assertIn(b"+OK Logged in", data)
        s.sendall(b"STAT\r\nQUIT\r\n")
        self.assertIn(b"+OK 4 ", rgenv.recv_until(s, b"+OK 4 ", timeout=30))
        s.close()
        rgenv.wait_for(lambda: any("pop3-login: Info: Login: user=<bob>" in l and "rip=127.0.0.2" in l
                                   for l in self.dc.logs().splitlines()), timeout=40)

    def test_pop3_tls_to_backend(self):
        self.pop3_session(self.front.pop3_port, "pssl")
        self.pop3_session(self.front.pop3s_port, "pstls", tls=True)
        self.wait_log(self.front, "proxy(pstls): started proxying to backend.test[127.0.0.1]:%d"
                      % self.dc.pop3_port)

    def test_pop3_backend_down(self):
        p = poplib.POP3("127.0.0.1", self.front.pop3_port, timeout=30)
        p.user("pdown")
        with self.assertRaises(poplib.error_proto) as e:
            p.pass_("pw")
        self.assertTrue(str(e.exception).startswith("b'-ERR [SYS/TEMP]"), e.exception)
        p.quit()


def pop3_entries(dc, down):
    name = "host=backend.test hostip=127.0.0.1"
    return [
        "pplain:{PLAIN}pw::::::proxy host=127.0.0.1 port=%d destuser=bob pass=bob-pass"
        % dc.pop3_port,
        "pssl:{PLAIN}pw::::::proxy %s port=%d ssl=yes destuser=bob pass=bob-pass"
        % (name, dc.pop3s_port),
        "pstls:{PLAIN}pw::::::proxy %s port=%d starttls=yes destuser=bob pass=bob-pass"
        % (name, dc.pop3_port),
        "pdown:{PLAIN}pw::::::proxy host=127.0.0.1 port=%d" % down,
    ]


if __name__ == "__main__":
    unittest.main()
