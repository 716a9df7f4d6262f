"""EXTERNAL with TLS client certificates and SCRAM-*-PLUS channel binding,
through a real ringgate with real clients.

A CA, a second (unknown) CA, client certificates (good, expired, revoked,
issued by the unknown CA, and one for a user whose passdb entry has a
password) and a CRL are made here with the openssl CLI (`openssl ca`).
ssl_ca holds the CA and its CRL, as Dovecot's 10-ssl.conf says. Clients:
Python's ssl + imaplib/poplib with load_cert_chain, and `openssl s_client
-cert -key` (IMAP and POP3, SASL-IR). Only the good certificate logs in;
the expired, revoked, unknown-CA and missing ones get the mechanism's
failure (the handshake itself succeeds, as in Dovecot's login processes).

SCRAM-SHA-256-PLUS / SCRAM-SHA-1-PLUS: RFC 5802's client computed here,
with the channel binding Python's ssl reports (`tls-unique` on TLS 1.2)
and, for TLS 1.3's `tls-exporter` (RFC 9266), the keying material that
`openssl s_client -keymatexport EXPORTER-Channel-Binding` prints. Wrong
binding data, a binding type the connection does not have, `p=` on a
mechanism without -PLUS and `y` where -PLUS is offered all fail; -PLUS is
not offered without TLS."""
import base64
import hashlib
import hmac
import imaplib
import os
import poplib
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import unittest

import rgenv


def openssl(*args, cwd=None):
    out = subprocess.run(["openssl"] + list(args), capture_output=True, timeout=60, cwd=cwd)
    if out.returncode != 0:
        raise AssertionError("openssl %s: %s" % (" ".join(args), out.stderr.decode()))
    return out.stdout


class Pki:
    """Two CAs made with `openssl ca`, client certificates and a CRL."""

    CONF = """[ca]
default_ca = ca_default
[ca_default]
dir = {d}
database = {d}/index.txt
new_certs_dir = {d}/new
serial = {d}/serial
crlnumber = {d}/crlnumber
default_md = sha256
default_days = 30
default_crl_days = 30
policy = policy_any
unique_subject = no
copy_extensions = none
[policy_any]
commonName = supplied
emailAddress = optional
"""

    def __init__(self, root, name):
        self.d = os.path.join(root, name)
        os.makedirs(os.path.join(self.d, "new"))
        open(os.path.join(self.d, "index.txt"), "w").close()
        with open(os.path.join(self.d, "serial"), "w") as f:
            f.write("1000\n")
        with open(os.path.join(self.d, "crlnumber"), "w") as f:
            f.write("01\n")
        self.conf = os.path.join(self.d, "ca.cnf")
        with open(self.conf, "w") as f:
            f.write(self.CONF.format(d=self.d))
        self.key = os.path.join(self.d, "ca.key")
        self.cert = os.path.join(self.d, "ca.pem")
        openssl("req", "-x509", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-subj", "/CN=%s" % name, "-days", "30", "-keyout", self.key, "-out", self.cert,
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def client(self, name, subj, start=None, end=None):
        """a client key and certificate signed by this CA; start/end as
        YYYYMMDDHHMMSSZ for a validity in the past"""
        key = os.path.join(self.d, name + ".key")
        csr = os.path.join(self.d, name + ".csr")
        cert = os.path.join(self.d, name + ".pem")
        openssl("req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-subj", subj, "-keyout", key, "-out", csr)
        dates = ["-startdate", start, "-enddate", end] if start else []
        openssl("ca", "-batch", "-config", self.conf, "-cert", self.cert, "-keyfile", self.key,
                "-in", csr, "-out", cert, "-notext", *dates)
        return cert, key

    def revoke(self, cert):
        openssl("ca", "-config", self.conf, "-cert", self.cert, "-keyfile", self.key,
                "-revoke", cert)

    def crl(self):
        out = os.path.join(self.d, "crl.pem")
        openssl("ca", "-gencrl", "-config", self.conf, "-cert", self.cert, "-keyfile", self.key,
                "-out", out)
        with open(out) as f:
            return f.read()


def make_pki(root):
    """the CA, the unknown CA and every client certificate the tests use"""
    ca, other = Pki(root, "Test CA"), Pki(root, "Other CA")
    certs = {
        "good": ca.client("good", "/CN=certuser"),
        "pwuser": ca.client("pwuser", "/CN=pwuser"),
        "proxyuser": ca.client("proxyuser", "/CN=proxyuser"),
        "revoked": ca.client("revoked", "/CN=certuser"),
        "expired": ca.client("expired", "/CN=certuser", "20200101000000Z", "20200201000000Z"),
        "other": other.client("other", "/CN=certuser"),
    }
    ca.revoke(certs["revoked"][0])
    with open(ca.cert) as f:
        ca_pem = f.read()
    return ca, certs, ca_pem, ca.crl()


def client_ctx(server_cert, cert=None, tls12=False):
    ctx = ssl.create_default_context(cafile=server_cert)
    ctx.check_hostname = False
    if cert is not None:
        ctx.load_cert_chain(*cert)
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def b64(b):
    return base64.b64encode(b).decode()


class Scram:
    """RFC 5802's client: flag 'n', 'y' or 'p' with the binding given"""

    def __init__(self, hashname, user, password, flag="n", cb_type=None, cb_data=b""):
        self.h, self.user, self.password = hashname, user, password
        self.gs2 = ("p=%s,," % cb_type) if flag == "p" else flag + ",,"
        self.cb_data = cb_data
        self.cnonce = b64(os.urandom(18)).replace("=", "")
        self.server_ok = False

    def first(self):
        self.bare = "n=%s,r=%s" % (self.user, self.cnonce)
        return (self.gs2 + self.bare).encode()

    def final(self, sfirst):
        sfirst = sfirst.decode()
        attrs = dict(kv.split("=", 1) for kv in sfirst.split(","))
        assert attrs["r"].startswith(self.cnonce)
        salted = hashlib.pbkdf2_hmac(self.h, self.password.encode(),
                                     base64.b64decode(attrs["s"]), int(attrs["i"]))
        ck = hmac.new(salted, b"Client Key", self.h).digest()
        sk = hashlib.new(self.h, ck).digest()
        cbind = self.gs2.encode() + (self.cb_data if self.gs2.startswith("p=") else b"")
        without = "c=%s,r=%s" % (b64(cbind), attrs["r"])
        auth = ",".join((self.bare, sfirst, without)).encode()
        proof = bytes(a ^ b for a, b in zip(ck, hmac.new(sk, auth, self.h).digest()))
        server_key = hmac.new(salted, b"Server Key", self.h).digest()
        self.want_v = "v=" + b64(hmac.new(server_key, auth, self.h).digest())
        return (without + ",p=" + b64(proof)).encode()

    def check(self, sfinal):
        self.server_ok = sfinal.decode() == self.want_v
        return self.server_ok


class Lines:
    """IMAP over a connected (TLS) socket, a line at a time"""

    def __init__(self, sock):
        self.s, self.buf = sock, b""

    def line(self):
        while b"\r\n" not in self.buf:
            data = self.s.recv(4096)
            if not data:
                raise EOFError(self.buf)
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def send(self, text):
        self.s.sendall(text.encode() + b"\r\n")

    def tagged(self, tag):
        while True:
            line = self.line()
            if line.startswith(tag.encode() + b" "):
                return line


def imap_scram(lines, mech, client):
    """AUTHENTICATE with SASL-IR; True when the server logged the client in
    and its signature verified"""
    lines.send("a %s %s" % ("AUTHENTICATE " + mech, b64(client.first())))
    line = lines.line()
    if not line.startswith(b"+ "):
        return False
    lines.send(b64(client.final(base64.b64decode(line[2:]))))
    line = lines.line()
    if not line.startswith(b"+ "):
        return False
    if not client.check(base64.b64decode(line[2:])):
        lines.send("*")
        return False
    lines.send("")
    return lines.tagged("a").startswith(b"a OK")


class External(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pkidir = tempfile.mkdtemp(prefix="ringgate-pki-")
        cls.addClassCleanup(shutil.rmtree, cls.pkidir, True)
        cls.ca, cls.certs, ca_pem, crl = make_pki(cls.pkidir)
        cls.ssl_ca = os.path.join(cls.pkidir, "ssl_ca.pem")
        with open(cls.ssl_ca, "w") as f:
            f.write(ca_pem + crl)
        os.chmod(cls.pkidir, 0o755)
        os.chmod(cls.ssl_ca, 0o644)
        cls.rg = rgenv.Ringgate(tls=True, failure_delay="0", extra_conf=(
            "ssl_ca = <%s\n"
            "ssl_verify_client_cert = yes\n"
            "auth_ssl_username_from_cert = yes\n"
            "auth_mechanisms = plain external scram-sha-256 scram-sha-256-plus "
            "scram-sha-1 scram-sha-1-plus\n" % cls.ssl_ca),
            users={"certuser": "x", "pwuser": "x", "scram": "x", "proxyuser": "x"})
        with open(cls.rg.passwd, "w") as f:
            for user, pw, extra in (("certuser", "", "nopassword"),
                                    ("proxyuser", "", "nopassword proxy host=127.0.0.1 port=9"),
                                    ("pwuser", "{PLAIN}secret", ""),
                                    ("scram", "{PLAIN}pencil", "")):
                f.write("%s:%s:%d:%d::%s::%s\n" % (user, pw, cls.rg.uid, cls.rg.gid,
                                                    cls.rg.home(user), extra))
        cls.rg.start()

    @classmethod
    def tearDownClass(cls):
        cls.rg.stop_clean()

    def imaps(self, cert=None, tls12=False):
        return imaplib.IMAP4_SSL("127.0.0.1", self.rg.imaps_port, timeout=30,
                                 ssl_context=client_ctx(self.rg.cert, cert, tls12))

    def setUp(self):
        self.reset()

    def reset(self):
        """a successful login clears 127.0.0.1's penalty, so each failure
        below is answered at once (auth_failure_delay = 0)"""
        m = self.imaps()
        m.login("scram", "pencil")
        m.logout()

    def external(self, cert, authzid=b""):
        m = self.imaps(self.certs[cert] if cert else None)
        try:
            typ, _ = m.authenticate("EXTERNAL", lambda _: authzid)
        except imaplib.IMAP4.error:
            m.shutdown()
            self.reset()
            return False
        self.assertEqual(typ, "OK")
        typ, _ = m.select("INBOX")
        self.assertEqual(typ, "OK")
        m.logout()
        return True

    def test_capability(self):
        m = self.imaps()
        self.assertIn("AUTH=EXTERNAL", m.capabilities)
        self.assertIn("AUTH=SCRAM-SHA-256-PLUS", m.capabilities)
        self.assertIn("AUTH=SCRAM-SHA-1-PLUS", m.capabilities)
        m.logout()
        # without TLS there is no channel to bind to
        m = imaplib.IMAP4("127.0.0.1", self.rg.imap_port, timeout=30)
        self.assertIn("AUTH=SCRAM-SHA-256", m.capabilities)
        self.assertNotIn("AUTH=SCRAM-SHA-256-PLUS", m.capabilities)
        self.assertNotIn("AUTH=SCRAM-SHA-1-PLUS", m.capabilities)
        with self.assertRaises(imaplib.IMAP4.error):
            m.authenticate("SCRAM-SHA-256-PLUS", lambda _: b"p=tls-unique,,n=scram,r=abc")
        # STARTTLS brings them
        m.starttls(client_ctx(self.rg.cert))
        typ, data = m.capability()
        self.assertIn(b"AUTH=SCRAM-SHA-256-PLUS", data[0])
        m.logout()
        p = poplib.POP3("127.0.0.1", self.rg.pop3_port, timeout=30)
        self.assertNotIn("SCRAM-SHA-256-PLUS", p.capa()["SASL"])
        self.assertIn("SCRAM-SHA-256", p.capa()["SASL"])
        with self.assertRaises(poplib.error_proto):
            p._shortcmd("AUTH SCRAM-SHA-256-PLUS =")
        p.quit()
        p = poplib.POP3_SSL("127.0.0.1", self.rg.pop3s_port, timeout=30,
                            context=client_ctx(self.rg.cert))
        self.assertIn("SCRAM-SHA-256-PLUS", p.capa()["SASL"])
        self.assertIn("EXTERNAL", p.capa()["SASL"])
        p.quit()

    def test_external_good_certificate(self):
        self.assertTrue(self.external("good"))
        # the authorization identity may be the certificate's user ...
        self.assertTrue(self.external("good", b"certuser"))
        # ... but no other
        self.assertFalse(self.external("good", b"pwuser"))

    def test_external_bad_certificates(self):
        for cert in ("expired", "revoked", "other", None):
            with self.subTest(cert=cert):
                self.assertFalse(self.external(cert))
        # valid, but the user's passdb entry wants a password
        self.assertFalse(self.external("pwuser"))
        log = self.rg.logs()
        self.assertIn("no valid client certificate naming a user", log)

    def test_external_proxy_forwards_no_empty_password(self):
        # a proxied EXTERNAL user has no password for the backend: the
        # login is refused rather than an empty password sent
        self.assertFalse(self.external("proxyuser"))
        self.assertIn("proxy: no password for the backend: EXTERNAL", self.rg.logs())

    def test_external_sasl_ir_raw(self):
        with socket.create_connection(("127.0.0.1", self.rg.imaps_port), timeout=30) as raw, \
                client_ctx(self.rg.cert, self.certs["good"]).wrap_socket(raw) as s:
            lines = Lines(s)
            self.assertTrue(lines.line().startswith(b"* OK"))
            lines.send("a AUTHENTICATE EXTERNAL " + b64(b"certuser"))
            self.assertTrue(lines.tagged("a").startswith(b"a OK"), "SASL-IR EXTERNAL")
            lines.send("b LOGOUT")
            self.assertTrue(lines.tagged("b").startswith(b"b OK"))

    def s_client(self, port, cert, script, starttls=None, extra=()):
        args = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                "-CAfile", self.rg.cert, "-quiet", "-ign_eof"] + list(extra)
        if cert:
            args += ["-cert", self.certs[cert][0], "-key", self.certs[cert][1]]
        out = subprocess.run(args, input=script.encode(), capture_output=True, timeout=60)
        return out.stdout.decode(errors="replace")

    def test_openssl_s_client_imap_and_pop3(self):
        out = self.s_client(self.rg.imaps_port, "good",
                            "a AUTHENTICATE EXTERNAL =\r\nb SELECT INBOX\r\nc LOGOUT\r\n")
        self.assertRegex(out, r"(?m)^a OK ", out)
        self.assertRegex(out, r"(?m)^b OK ", out)
        out = self.s_client(self.rg.pop3s_port, "good", "AUTH EXTERNAL =\r\nSTAT\r\nQUIT\r\n")
        self.assertRegex(out, r"\+OK Logged in", out)
        self.assertRegex(out, r"(?m)^\+OK \d+ \d+", out)
        for cert in ("revoked", "expired", "other", None):
            with self.subTest(cert=cert):
                out = self.s_client(self.rg.imaps_port, cert,
                                    "a AUTHENTICATE EXTERNAL =\r\nc LOGOUT\r\n")
                self.assertRegex(out, r"(?m)^a NO ", out)
                self.reset()
                out = self.s_client(self.rg.pop3s_port, cert, "AUTH EXTERNAL =\r\nQUIT\r\n")
                self.assertRegex(out, r"(?m)^-ERR ", out)
                self.assertNotIn("Logged in", out)
                self.reset()

    def test_certificate_request_names_the_ca(self):
        # TLS 1.2's CertificateRequest lists ssl_ca's subjects (wolfSSL
        # 5.5.4 sends no certificate_authorities extension in TLS 1.3)
        out = subprocess.run(["openssl", "s_client", "-connect",
                              "127.0.0.1:%d" % self.rg.imaps_port, "-tls1_2",
                              "-CAfile", self.rg.cert], input=b"a LOGOUT\r\n",
                             capture_output=True, timeout=60).stdout.decode()
        self.assertRegex(out, r"Acceptable client certificate CA names\s+CN ?= ?Test CA\n", out)

    def test_username_from_cert_overrides_plain(self):
        # auth_ssl_username_from_cert: the certificate names the user,
        # whatever PLAIN says (Dovecot's cert_username)
        m = self.imaps(self.certs["pwuser"])
        m.login("scram", "secret")
        m.logout()
        m = self.imaps(self.certs["pwuser"])
        with self.assertRaises(imaplib.IMAP4.error):
            m.login("scram", "pencil")
        m.shutdown()
        self.reset()

    # -- channel binding ------------------------------------------------
    def scram_tls12(self, mech, hashname, flag="p", cb_type="tls-unique", tamper=False,
                    password="pencil"):
        with socket.create_connection(("127.0.0.1", self.rg.imaps_port), timeout=30) as raw, \
                client_ctx(self.rg.cert, tls12=True).wrap_socket(raw) as s:
            self.assertEqual(s.version(), "TLSv1.2")
            cb = s.get_channel_binding("tls-unique")
            self.assertTrue(cb)
            if tamper:
                cb = bytes([cb[0] ^ 1]) + cb[1:]
            lines = Lines(s)
            self.assertTrue(lines.line().startswith(b"* OK"))
            client = Scram(hashname, "scram", password, flag, cb_type, cb)
            ok = imap_scram(lines, mech, client)
        if ok:
            self.assertTrue(client.server_ok)
        else:
            self.reset()
        return ok

    def test_scram_plus_tls_unique(self):
        self.assertTrue(self.scram_tls12("SCRAM-SHA-256-PLUS", "sha256"))
        self.assertTrue(self.scram_tls12("SCRAM-SHA-1-PLUS", "sha1"))
        # another connection's binding, or a wrong password
        self.assertFalse(self.scram_tls12("SCRAM-SHA-256-PLUS", "sha256", tamper=True))
        self.assertFalse(self.scram_tls12("SCRAM-SHA-256-PLUS", "sha256", password="x"))
        # -PLUS without binding; a type this connection does not have
        self.assertFalse(self.scram_tls12("SCRAM-SHA-256-PLUS", "sha256", flag="n"))
        self.assertFalse(self.scram_tls12("SCRAM-SHA-256-PLUS", "sha256",
                                          cb_type="tls-exporter"))
        # binding asked of the mechanism without -PLUS; "y" where -PLUS
        # is offered (a downgrade); "n" is fine
        self.assertFalse(self.scram_tls12("SCRAM-SHA-256", "sha256"))
        self.assertFalse(self.scram_tls12("SCRAM-SHA-256", "sha256", flag="y"))
        self.assertTrue(self.scram_tls12("SCRAM-SHA-256", "sha256", flag="n"))

    def test_scram_y_without_tls_is_fine(self):
        # no TLS: -PLUS is not offered, so "y" is the truth
        with socket.create_connection(("127.0.0.1", self.rg.imap_port), timeout=30) as s:
            lines = Lines(s)
            self.assertTrue(lines.line().startswith(b"* OK"))
            self.assertTrue(imap_scram(lines, "SCRAM-SHA-256",
                                       Scram("sha256", "scram", "pencil", "y")))

    def test_scram_plus_tls_exporter_openssl(self):
        """TLS 1.3: the exporter value openssl prints is the binding"""
        proc = subprocess.Popen(
            ["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.rg.imaps_port,
             "-CAfile", self.rg.cert, "-tls1_3", "-ign_eof",
             "-keymatexport", "EXPORTER-Channel-Binding", "-keymatexportlen", "32"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            key = None
            while True:
                line = proc.stdout.readline()
                self.assertTrue(line, "s_client ended before the greeting")
                m = re.match(rb"\s*Keying material: ([0-9A-Fa-f]+)", line)
                if m:
                    key = bytes.fromhex(m.group(1).decode())
                if line.startswith(b"* OK"):
                    break
            self.assertIsNotNone(key, "s_client printed no keying material")
            self.assertEqual(len(key), 32)

            class Pipe(Lines):
                def line(self):
                    return proc.stdout.readline().rstrip(b"\r\n")

                def send(self, text):
                    proc.stdin.write(text.encode() + b"\r\n")
                    proc.stdin.flush()
            client = Scram("sha256", "scram", "pencil", "p", "tls-exporter", key)
            self.assertTrue(imap_scram(Pipe(None), "SCRAM-SHA-256-PLUS", client))
            self.assertTrue(client.server_ok)
            proc.stdin.write(b"z LOGOUT\r\n")
            proc.stdin.close()
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


class RequireClientCert(unittest.TestCase):
    """auth_ssl_require_client_cert with ssl_require_crl = no: a login needs
    a valid certificate whatever the mechanism, and CRLs are not checked
    (ssl_ca has none); then ssl_require_crl = yes without a CRL refuses
    every certificate, as OpenSSL's CRL check in Dovecot does; and EXTERNAL
    served by a `static` passdb with nopassword."""

    @classmethod
    def setUpClass(cls):
        cls.pkidir = tempfile.mkdtemp(prefix="ringgate-pki-")
        cls.addClassCleanup(shutil.rmtree, cls.pkidir, True)
        cls.ca, cls.certs, ca_pem, _ = make_pki(cls.pkidir)
        cls.ssl_ca = os.path.join(cls.pkidir, "ssl_ca.pem")
        with open(cls.ssl_ca, "w") as f:
            f.write(ca_pem)
        os.chmod(cls.pkidir, 0o755)
        os.chmod(cls.ssl_ca, 0o644)

    def server(self, extra, users=None):
        rg = rgenv.Ringgate(tls=True, failure_delay="0", extra_conf=(
            "ssl_ca = <%s\nssl_verify_client_cert = yes\n%s" % (self.ssl_ca, extra)),
            users=users or {"demo": "demo-pass", "alice": "alice secret"})
        rg.start()
        self.addCleanup(rg.cleanup)
        self.addCleanup(rg.stop)
        return rg

    def login(self, rg, cert):
        ctx = client_ctx(rg.cert, self.certs[cert] if cert else None)
        m = imaplib.IMAP4_SSL("127.0.0.1", rg.imaps_port, timeout=30, ssl_context=ctx)
        try:
            m.login("alice", "alice secret")
        except imaplib.IMAP4.error:
            m.shutdown()
            if cert != "good":
                self.login(rg, "good")  # clears the penalty, if it can
            return False
        m.logout()
        return True

    def test_require_client_cert_without_crl_check(self):
        rg = self.server("auth_ssl_require_client_cert = yes\nssl_require_crl = no\n")
        self.assertTrue(self.login(rg, "good"))
        # CRLs are not checked: this one is revoked but the CRL is absent
        self.assertTrue(self.login(rg, "revoked"))
        for cert in (None, "expired", "other"):
            with self.subTest(cert=cert):
                self.assertFalse(self.login(rg, cert))
        self.assertIn("client didn't present a valid SSL certificate", rg.logs())

    def test_external_from_a_static_passdb(self):
        """Dovecot's other way: a static passdb with nopassword serving only
        EXTERNAL (the passwd-file entry has a password)"""
        rg = self.server("ssl_require_crl = no\nauth_ssl_username_from_cert = yes\n"
                         "auth_mechanisms = plain external\n"
                         "passdb {\n  driver = static\n  args = nopassword=y\n"
                         "  mechanisms = external\n}\n", users={"certuser": "pw x"})

        def external(cert):
            ctx = client_ctx(rg.cert, self.certs[cert])
            m = imaplib.IMAP4_SSL("127.0.0.1", rg.imaps_port, timeout=30, ssl_context=ctx)
            try:
                m.authenticate("EXTERNAL", lambda _: b"")
            except imaplib.IMAP4.error:
                m.shutdown()
                return False
            m.logout()
            return True
        self.assertTrue(external("good"))
        self.assertFalse(external("other"))
        self.assertTrue(external("good"))
        # the static passdb serves EXTERNAL only: PLAIN with any password fails
        m = imaplib.IMAP4_SSL("127.0.0.1", rg.imaps_port, timeout=30,
                              ssl_context=client_ctx(rg.cert, self.certs["good"]))
        with self.assertRaises(imaplib.IMAP4.error):
            m.login("certuser", "anything")
        m.shutdown()

    def test_require_crl_without_a_crl_refuses_every_certificate(self):
        rg = self.server("auth_ssl_require_client_cert = yes\n")
        self.assertFalse(self.login(rg, "good"))


class StartupRefusal(unittest.TestCase):
    def test_verify_without_ca(self):
        rg = rgenv.Ringgate(tls=True, extra_conf="ssl_verify_client_cert = yes\n")
        self.addCleanup(rg.cleanup)
        out = subprocess.run(rg.command("-n"), capture_output=True, text=True, timeout=60)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("ssl_verify_client_cert set, but ssl_ca not", out.stderr)

    def test_unknown_username_field(self):
        rg = rgenv.Ringgate(tls=True, extra_conf="ssl_cert_username_field = noSuchField\n")
        self.addCleanup(rg.cleanup)
        rg.start(wait=False)
        code = rg.proc.wait(timeout=60)
        self.assertNotEqual(code, 0)
        self.assertIn("ssl_cert_username_field: unknown field 'noSuchField'", rg.logs())


if __name__ == "__main__":
    unittest.main()
