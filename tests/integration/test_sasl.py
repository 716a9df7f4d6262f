"""The SASL mechanisms beyond PLAIN and LOGIN through a real ringgate, with
real clients: SCRAM-SHA-256 and SCRAM-SHA-1 from Python's imaplib with a
client computed here from RFC 5802's formulas (the server's signature is
checked too), against {SCRAM-*} entries made by `ringgate pw` and against
{PLAIN} ones; CRAM-MD5 from imaplib's login_cram_md5 against {CRAM-MD5}
and {PLAIN}; XOAUTH2 and OAUTHBEARER from curl --oauth2-bearer and from
imaplib, with JWTs signed here by keys that openssl makes, checked by the
oauth2 passdb in local mode: only the good tokens log in (expired, wrong
audience, wrong issuer, bad signature, alg none and HS256 signed with the
RSA public key are refused, and each refusal counts as a failed attempt).
A mechanism the passdbs cannot serve stops start-up with the reason."""
import base64
import hashlib
import hmac
import imaplib
import json
import os
import poplib
import re
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

import rgenv
from test_backend_proxy import ScriptedBackend

MECHS = "plain login scram-sha-256 scram-sha-1 cram-md5 apop oauthbearer xoauth2"


def apop_host():
    """the host part ringgate's APOP timestamps carry: the host name, as
    Dovecot's (one a timestamp cannot hold becomes localhost)"""
    h = socket.gethostname()
    return h if re.fullmatch(r"[A-Za-z0-9._-]{1,64}", h) else "localhost"


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def openssl(*args, data=None):
    out = subprocess.run(["openssl"] + list(args), input=data, capture_output=True, timeout=60)
    if out.returncode != 0:
        raise AssertionError("openssl %s: %s" % (" ".join(args), out.stderr.decode()))
    return out.stdout


def der_ecdsa_to_raw(der, size):
    """ECDSA-Sig-Value (SEQUENCE of two INTEGERs) to JWS's r || s"""
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7f)
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        v = der[i + 2:i + 2 + n].lstrip(b"\0")
        out += v.rjust(size, b"\0")
        i += 2 + n
    return out


class Keys:
    """Key pairs made by openssl, and tokens signed with them."""

    def __init__(self, d):
        self.d = d
        self.rsa = os.path.join(d, "rsa.key")
        self.ec = os.path.join(d, "ec.key")
        self.ed = os.path.join(d, "ed.key")
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", self.rsa)
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", self.ec)
        openssl("genpkey", "-algorithm", "ed25519", "-out", self.ed)
        self.pub = {k: openssl("pkey", "-in", f, "-pubout")
                    for k, f in (("RS256", self.rsa), ("ES256", self.ec), ("EdDSA", self.ed))}

    def sign(self, alg, si):
        f = os.path.join(self.d, "si")
        with open(f, "wb") as fh:
            fh.write(si)
        if alg == "RS256":
            return openssl("dgst", "-sha256", "-sign", self.rsa, f)
        if alg == "ES256":
            return der_ecdsa_to_raw(openssl("dgst", "-sha256", "-sign", self.ec, f), 32)
        if alg == "EdDSA":
            return openssl("pkeyutl", "-sign", "-rawin", "-inkey", self.ed, "-in", f)
        raise ValueError(alg)

    def token(self, alg="RS256", sub="jwtuser", exp_in=3600, aud="mail",
              iss="https://idp.example.org", hs_key=None, tamper=False):
        now = int(time.time())
        header = b64u(json.dumps({"alg": alg, "typ": "JWT"}).encode())
        claims = {"sub": sub, "iss": iss, "aud": aud, "iat": now - 10, "exp": now + exp_in}
        si = (header + "." + b64u(json.dumps(claims).encode())).encode()
        if alg == "none":
            sig = b""
        elif alg == "HS256":
            sig = hmac.new(hs_key, si, hashlib.sha256).digest()
        else:
            sig = self.sign(alg, si)
        if tamper:
            sig = bytes([sig[0] ^ 1]) + sig[1:]
        return si.decode() + "." + b64u(sig)


class Scram:
    """imaplib authobject: the client side of RFC 5802, checking the server"""

    def __init__(self, hashname, user, password):
        self.h, self.user, self.password = hashname, user, password
        self.cnonce = b64u(os.urandom(18))
        self.step = 0
        self.server_ok = False

    def __call__(self, data):
        self.step += 1
        if self.step == 1:
            self.bare = "n=%s,r=%s" % (self.user, self.cnonce)
            return ("n,," + self.bare).encode()
        if self.step == 2:
            sfirst = data.decode()
            attrs = dict(kv.split("=", 1) for kv in sfirst.split(","))
            assert attrs["r"].startswith(self.cnonce)
            salted = hashlib.pbkdf2_hmac(self.h, self.password.encode(),
                                         base64.b64decode(attrs["s"]), int(attrs["i"]))
            ck = hmac.new(salted, b"Client Key", self.h).digest()
            sk = hashlib.new(self.h, ck).digest()
            without = "c=biws,r=" + attrs["r"]
            auth = ",".join((self.bare, sfirst, without)).encode()
            sig = hmac.new(sk, auth, self.h).digest()
            proof = bytes(a ^ b for a, b in zip(ck, sig))
            server_key = hmac.new(salted, b"Server Key", self.h).digest()
            self.want_v = base64.b64encode(hmac.new(server_key, auth, self.h).digest()).decode()
            return (without + ",p=" + base64.b64encode(proof).decode()).encode()
        self.server_ok = data.decode() == "v=" + self.want_v
        return b"" if self.server_ok else None


class Sasl(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.keydir = tempfile.mkdtemp(prefix="ringgate-jwt-")
        # also when setUpClass fails, where tearDownClass is not called
        cls.addClassCleanup(shutil.rmtree, cls.keydir, True)
        cls.keys = Keys(cls.keydir)
        for alg, pem in cls.keys.pub.items():
            d = os.path.join(cls.keydir, "dict", "shared", "default", alg)
            os.makedirs(d)
            with open(os.path.join(d, "default"), "wb") as f:
                f.write(pem)
        cls.oauth_conf = os.path.join(cls.keydir, "dovecot-oauth2.conf.ext")
        with open(cls.oauth_conf, "w") as f:
            f.write("introspection_mode = local\n"
                    "local_validation_key_dict = fs:posix:prefix=%s/dict/\n"
                    "username_attribute = sub\n"
                    "issuers = https://idp.example.org\n"
                    "client_id = mail\n"
                    "scope = mail\n" % cls.keydir)
        os.chmod(cls.keydir, 0o755)
        for root, dirs, files in os.walk(cls.keydir):
            for x in dirs:
                os.chmod(os.path.join(root, x), 0o755)
            for x in files:
                os.chmod(os.path.join(root, x), 0o644)
        # a backend for the proxied users: it records what the proxy sends
        cls.backend = ScriptedBackend()
        cls.addClassCleanup(cls.backend.close)
        cls.rg = rgenv.Ringgate(extra_conf=(
            "auth_mechanisms = %s\n"
            # jwtproxy's token is checked, then the login is proxied
            "passdb {\n  driver = oauth2\n  mechanisms = oauthbearer xoauth2\n"
            "  username_filter = jwtproxy\n"
            "  override_fields = proxy host=127.0.0.1 port=%d\n"
            "  args = %s\n}\n"
            "passdb {\n  driver = oauth2\n  mechanisms = oauthbearer xoauth2\n"
            "  args = %s\n}\n" % (MECHS, cls.backend.port, cls.oauth_conf, cls.oauth_conf)),
            failure_delay="0",
            users={"scram256": "x", "scram1": "x", "plainuser": "x", "crammer": "x",
                   "cryptuser": "x", "jwtuser": "x"})
        pw = lambda scheme, p: subprocess.run(
            [cls.rg.binary(), "pw", "-s", scheme, "-p", p], capture_output=True, text=True,
            check=True).stdout.strip()
        entries = {
            "scram256": pw("SCRAM-SHA-256", "pencil"),
            "scram1": pw("SCRAM-SHA-1", "pencil"),
            "plainuser": "{PLAIN}s3cret pass",
            "crammer": pw("CRAM-MD5", "tanstaaf"),
            "cryptuser": pw("SHA512-CRYPT", "cryptic"),
            "jwtuser": pw("SHA512-CRYPT", os.urandom(8).hex()),
            "proxyscram": pw("SCRAM-SHA-256", "pencil"),
            "proxypass": pw("SCRAM-SHA-256", "pencil"),
            "jwtproxy": pw("SHA512-CRYPT", os.urandom(8).hex()),
        }
        proxy = "proxy host=127.0.0.1 port=%d" % cls.backend.port
        extra = {"proxyscram": proxy, "proxypass": proxy + " pass=backend-secret"}
        with open(cls.rg.passwd, "w") as f:
            for u, h in entries.items():
                f.write("%s:%s:%d:%d::%s::%s\n" % (u, h, cls.rg.uid, cls.rg.gid, cls.rg.home(u),
                                                  extra.get(u, "")))
        cls.rg.start()

    @classmethod
    def tearDownClass(cls):
        cls.rg.stop_clean()

    def imap(self):
        return imaplib.IMAP4("127.0.0.1", self.rg.imap_port, timeout=30)

    def test_capability(self):
        m = self.imap()
        caps = m.capabilities
        for mech in ("PLAIN", "LOGIN", "SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5",
                     "OAUTHBEARER", "XOAUTH2"):
            self.assertIn("AUTH=" + mech, caps)
        m.logout()

    def setUp(self):
        # start each test with a clean penalty for 127.0.0.1
        m = self.imap()
        m.login("plainuser", "s3cret pass")
        m.logout()

    def scram(self, mech, hashname, user, password):
        m = self.imap()
        a = Scram(hashname, user, password)
        try:
            typ, _ = m.authenticate(mech, a)
        except imaplib.IMAP4.error:
            m.shutdown()
            return False
        self.assertEqual(typ, "OK")
        self.assertTrue(a.server_ok, "the server's signature did not verify")
        typ, data = m.select("INBOX")
        self.assertEqual(typ, "OK")
        m.logout()
        return True

    def test_scram_sha256(self):
        self.assertTrue(self.scram("SCRAM-SHA-256", "sha256", "scram256", "pencil"))
        self.assertTrue(self.scram("SCRAM-SHA-256", "sha256", "plainuser", "s3cret pass"))
        self.assertFalse(self.scram("SCRAM-SHA-256", "sha256", "scram256", "pencil2"))
        self.setUp()
        # a crypt hash cannot serve SCRAM; an unknown user fails the same way
        self.assertFalse(self.scram("SCRAM-SHA-256", "sha256", "cryptuser", "cryptic"))
        self.setUp()
        self.assertFalse(self.scram("SCRAM-SHA-256", "sha256", "nobody", "pencil"))

    def test_scram_sha1(self):
        self.assertTrue(self.scram("SCRAM-SHA-1", "sha1", "scram1", "pencil"))
        self.assertTrue(self.scram("SCRAM-SHA-1", "sha1", "plainuser", "s3cret pass"))
        self.assertFalse(self.scram("SCRAM-SHA-1", "sha1", "scram1", "Pencil"))
        # a SHA-256 entry does not serve SHA-1
        self.assertFalse(self.scram("SCRAM-SHA-1", "sha1", "scram256", "pencil"))

    def test_scram_entries_still_take_plaintext_logins(self):
        m = self.imap()
        m.login("scram256", "pencil")
        m.logout()

    def cram(self, user, password):
        m = self.imap()
        try:
            m.login_cram_md5(user, password)
        except imaplib.IMAP4.error:
            m.shutdown()
            return False
        m.logout()
        return True

    def test_cram_md5(self):
        self.assertTrue(self.cram("crammer", "tanstaaf"))
        self.assertTrue(self.cram("plainuser", "s3cret pass"))
        self.assertFalse(self.cram("crammer", "tanstaag"))
        self.assertFalse(self.cram("cryptuser", "cryptic"))

    def apop(self, user, secret):
        p = poplib.POP3("127.0.0.1", self.rg.pop3_port, timeout=30)
        self.assertRegex(p.getwelcome(), rb"^\+OK .* <\d+\.\d+\.[0-9a-f]{32}@" +
                         re.escape(apop_host().encode()) + rb">$")
        try:
            p.apop(user, secret)
        except poplib.error_proto:
            p.close()
            return False
        self.assertEqual(p.stat()[0] >= 0, True)
        p.quit()
        return True

    def test_apop(self):
        self.assertTrue(self.apop("plainuser", "s3cret pass"))
        self.assertFalse(self.apop("plainuser", "s3cret pasS"))
        self.setUp()
        # APOP needs the plaintext: a {CRAM-MD5} or crypt entry cannot serve it
        self.assertFalse(self.apop("crammer", "tanstaaf"))
        self.setUp()
        # a timestamp of another connection (and so maybe another login
        # process) does not authenticate this one
        p = poplib.POP3("127.0.0.1", self.rg.pop3_port, timeout=30)
        q = poplib.POP3("127.0.0.1", self.rg.pop3_port, timeout=30)
        other = q.timestamp.search(q.getwelcome()).group(1)
        digest = hashlib.md5(other + b"s3cret pass").hexdigest()
        with self.assertRaises(poplib.error_proto):
            p._shortcmd("APOP plainuser " + digest)
        p.close()
        q.close()
        # APOP is not a SASL mechanism
        p = poplib.POP3("127.0.0.1", self.rg.pop3_port, timeout=30)
        self.assertNotIn("APOP", p.capa().get("SASL", []))
        p.close()

    def curl(self, token, mech):
        out = subprocess.run(["curl", "-s", "-S", "--max-time", "30", "--login-options",
                              "AUTH=" + mech, "--oauth2-bearer", token, "-u", "jwtuser:",
                              "imap://127.0.0.1:%d/" % self.rg.imap_port],
                             capture_output=True, text=True, timeout=60)
        return out.returncode, out.stdout + out.stderr

    def test_curl_oauth2_bearer(self):
        for mech in ("XOAUTH2", "OAUTHBEARER"):
            for alg in ("RS256", "ES256", "EdDSA"):
                code, out = self.curl(self.keys.token(alg), mech)
                self.assertEqual(code, 0, "%s %s: %s" % (mech, alg, out))
                self.assertIn("INBOX", out)
            code, out = self.curl(self.keys.token(exp_in=-60), mech)
            self.assertNotEqual(code, 0, out)

    def oauth_imaplib(self, token, mech="OAUTHBEARER", user="jwtuser"):
        seen = []

        def auth(data):
            seen.append(data)
            if len(seen) == 1:
                if mech == "XOAUTH2":
                    return ("user=%s\x01auth=Bearer %s\x01\x01" % (user, token)).encode()
                return ("n,a=%s,\x01auth=Bearer %s\x01\x01" % (user, token)).encode()
            return b"\x01"  # RFC 7628: the answer to the server's error

        m = self.imap()
        try:
            m.authenticate(mech, auth)
            ok = True
        except imaplib.IMAP4.error:
            ok = False
        m.shutdown()
        return ok, seen

    def test_jwt_only_good_tokens_log_in(self):
        k = self.keys
        rsa_pem = k.pub["RS256"]
        bad = {
            "expired": k.token(exp_in=-1),
            "wrong audience": k.token(aud="web"),
            "wrong issuer": k.token(iss="https://evil.example"),
            "wrong signature": k.token(tamper=True),
            "alg none": k.token(alg="none"),
            "HS256 with the RSA public key": k.token(alg="HS256", hs_key=rsa_pem),
            "another user": k.token(sub="scram256"),
        }
        ok, _ = self.oauth_imaplib(k.token())
        self.assertTrue(ok)
        ok, _ = self.oauth_imaplib(k.token("EdDSA"), mech="XOAUTH2")
        self.assertTrue(ok)
        for name, tok in bad.items():
            ok, seen = self.oauth_imaplib(tok)
            self.assertFalse(ok, name)
            # the RFC 7628 error came as a challenge before the failure
            self.assertEqual(len(seen), 2, name)
            err = json.loads(seen[1])
            self.assertEqual(err["status"], "invalid_token", name)
            self.assertEqual(err["scope"], "mail", name)
            # a login resets the address's penalty
            self.assertTrue(self.oauth_imaplib(k.token())[0])
        # a refused token is a failed attempt: the next one from the
        # address waits the penalty (1 s; auth_failure_delay is 0 here)
        self.assertFalse(self.oauth_imaplib(bad["expired"])[0])
        t0 = time.monotonic()
        self.assertFalse(self.oauth_imaplib(bad["alg none"])[0])
        self.assertGreaterEqual(time.monotonic() - t0, 1.0)
        self.assertTrue(self.oauth_imaplib(k.token())[0])
        # the same when the client cancels after the error instead of
        # answering it: the refusal was counted when the token was judged
        m = self.imap()
        with self.assertRaises(imaplib.IMAP4.error):
            m.authenticate("OAUTHBEARER", lambda d: (
                "n,a=jwtuser,\x01auth=Bearer %s\x01\x01" % bad["expired"]).encode()
                if d == b"" else None)
        m.shutdown()
        t0 = time.monotonic()
        self.assertFalse(self.oauth_imaplib(bad["alg none"])[0])
        self.assertGreaterEqual(time.monotonic() - t0, 1.0)
        self.assertTrue(self.oauth_imaplib(k.token())[0])
        # the token of one user does not log in another
        ok, _ = self.oauth_imaplib(k.token(), user="scram256")
        self.assertFalse(ok)
        logs = self.rg.logs()
        self.assertIn("token refused: alg none refused", logs)
        self.assertIn("token refused: token expired", logs)
        self.assertIn("token refused: audience not accepted", logs)
        self.assertIn("token refused: bad signature", logs)
        # never the token itself
        self.assertNotIn(k.token().split(".")[0] + "." + k.token().split(".")[1][:20], logs)

    def test_oauthbearer_without_authzid(self):
        # RFC 7628: the gs2-header's a= is optional; the token names the
        # user (username_attribute = sub here)
        self.rg.deliver("scram256", b"From: a@example.org\r\nSubject: for-scram256\r\n\r\nx\r\n")
        seen = []

        def auth(tok):
            def f(data):
                seen.append(data)
                return ("n,,\x01auth=Bearer %s\x01\x01" % tok).encode() if len(seen) == 1 \
                    else b"\x01"
            return f

        m = self.imap()
        typ, _ = m.authenticate("OAUTHBEARER", auth(self.keys.token(sub="scram256")))
        self.assertEqual(typ, "OK")
        # the session is scram256's: its mailbox
        typ, data = m.select("INBOX")
        self.assertEqual(typ, "OK")
        typ, data = m.search(None, "SUBJECT", "for-scram256")
        self.assertEqual(typ, "OK")
        self.assertNotEqual(data[0], b"")
        m.logout()
        # a bad token without authzid: the RFC 7628 error, then failure
        seen.clear()
        m = self.imap()
        with self.assertRaises(imaplib.IMAP4.error):
            m.authenticate("OAUTHBEARER", auth(self.keys.token(sub="scram256", exp_in=-5)))
        m.shutdown()
        self.assertEqual(json.loads(seen[1])["status"], "invalid_token")
        # XOAUTH2 has no such form: user= must name someone
        self.setUp()
        m = self.imap()
        with self.assertRaises(imaplib.IMAP4.error):
            m.authenticate("XOAUTH2", lambda d: (
                "user=\x01auth=Bearer %s\x01\x01" % self.keys.token()).encode())
        m.shutdown()

    def test_proxy_password_by_mechanism(self):
        # SCRAM gives the proxy no password: with no pass= in the entry
        # nothing is sent to the backend (never an empty password) and the
        # login fails, with a line saying why
        before = len(self.backend.lines)
        self.assertFalse(self.scram("SCRAM-SHA-256", "sha256", "proxyscram", "pencil"))
        self.assertFalse([x for x in self.backend.lines[before:] if b"AUTHENTICATE" in x])
        self.assertIn("proxy: no password for the backend: SCRAM-SHA-256 gives no plaintext "
                      "password and the passdb entry has no pass=", self.rg.logs())
        # pass= in the entry: that password goes
        self.setUp()
        m = self.imap()
        a = Scram("sha256", "proxypass", "pencil")
        typ, _ = m.authenticate("SCRAM-SHA-256", a)
        self.assertEqual(typ, "OK")
        m.logout()
        auth = [x for x in self.backend.lines if b"AUTHENTICATE PLAIN" in x][-1]
        self.assertEqual(base64.b64decode(auth.split()[3]), b"\0proxypass\0backend-secret")
        # an OAuth token is the password the client gave (Dovecot's
        # mech_password): it is forwarded
        tok = self.keys.token(sub="jwtproxy")
        ok, _ = self.oauth_imaplib(tok, user="jwtproxy")
        self.assertTrue(ok, self.rg.logs()[-3000:])
        auth = [x for x in self.backend.lines if b"AUTHENTICATE PLAIN" in x][-1]
        self.assertEqual(base64.b64decode(auth.split()[3]), b"\0jwtproxy\0" + tok.encode())
        # and a plaintext login's password, as before
        m = self.imap()
        with self.assertRaises(imaplib.IMAP4.error):
            m.login("proxyscram", "wrong")
        m.shutdown()

    def test_malformed_messages_fail_cleanly(self):
        cases = [("SCRAM-SHA-256", b"p=tls-unique,,n=scram256,r=abc"),
                 ("SCRAM-SHA-256", b"n,,n=scram256"),
                 ("OAUTHBEARER", b"n,,\x01auth=Bearer x\x01\x01"),
                 ("XOAUTH2", b"user=jwtuser\x01auth=Basic x\x01\x01"),
                 ("OAUTHBEARER", b"n,a=jwtuser,\x01auth=Bearer " + b"A" * 5000 + b"\x01\x01")]
        for mech, first in cases:
            m = self.imap()
            with self.assertRaises(imaplib.IMAP4.error):
                m.authenticate(mech, lambda data, f=first: f if data == b"" else None)
            m.shutdown()


class StartupRefusal(unittest.TestCase):
    def check(self, extra, want):
        rg = rgenv.Ringgate(extra_conf=extra)
        try:
            rg.start(wait=False)
            deadline = time.time() + 20
            while time.time() < deadline and want not in rg.logs():
                time.sleep(0.2)
            self.assertIn(want, rg.logs())
        finally:
            rg.stop()
            rg.cleanup()

    def test_oauth_without_an_oauth2_passdb(self):
        self.check("auth_mechanisms = plain xoauth2\n",
                   "auth_mechanisms: XOAUTH2 needs a passdb { driver = oauth2 } to check its tokens")


if __name__ == "__main__":
    unittest.main()
