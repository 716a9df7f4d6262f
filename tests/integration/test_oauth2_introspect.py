"""The oauth2 passdb asking an IdP (introspection_mode auth and post, as
Dovecot's dovecot-oauth2.conf.ext): a small HTTPS introspection responder
runs here on 127.0.0.1 with a certificate from a test CA made by openssl,
and ringgate's auth asks it over libcurl on its event loop (the URL names
"localhost", so curl's resolver runs inside auth's sandbox). Clients are
imaplib (OAUTHBEARER with and without authzid, XOAUTH2) and curl
--oauth2-bearer. Cases: a good token logs in, and a second login with it
is answered from the cache (the responder sees one request); inactive,
another user's, a 4xx: refused with RFC 7628's error; a 500, an IdP that
does not answer within timeout_msecs and a body over 16 KB: temporary
failures, and other logins go on meanwhile. The request carries what the
mode says (Bearer header; POST form with client_id and client_secret)."""
import imaplib
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
import unittest
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import rgenv


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60)


def make_ca_and_server(d):
    """a test CA, and a certificate it signs for localhost / 127.0.0.1"""
    ca_key, ca = os.path.join(d, "ca.key"), os.path.join(d, "ca.pem")
    key, csr, cert = (os.path.join(d, n) for n in ("idp.key", "idp.csr", "idp.pem"))
    ext = os.path.join(d, "ext.cnf")
    openssl("req", "-x509", "-nodes", "-days", "2", "-subj", "/CN=ringgate test CA",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-keyout", ca_key, "-out", ca)
    openssl("req", "-nodes", "-subj", "/CN=localhost", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:P-256", "-keyout", key, "-out", csr)
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
            "-days", "2", "-extfile", ext, "-out", cert)
    os.chmod(ca, 0o644)
    return ca, cert, key


class Idp:
    """The introspection endpoint: answers by token, records requests."""

    def __init__(self, cert, key):
        self.requests = []   # (method, path, headers, body)
        self.release = threading.Event()  # lets the stalled answer go
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def answer(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n).decode() if n else ""
                idp.requests.append((self.command, self.path, dict(self.headers), body))
                token = None
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Bearer "):
                    token = auth[7:]
                elif body:
                    token = urllib.parse.parse_qs(body).get("token", [None])[0]
                status, reply = idp.reply(token)
                if reply is None:  # stall until the test is done with it
                    idp.release.wait(60)
                    status, reply = 200, {"active": True, "sub": "alice"}
                data = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except OSError:
                    pass

            do_GET = answer
            do_POST = answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def reply(token):
        table = {
            "good-alice": (200, {"active": True, "sub": "alice", "scope": "mail openid"}),
            "good-alice-2": (200, {"active": True, "sub": "alice", "scope": "mail"}),
            "good-bob": (200, {"active": True, "sub": "bob", "scope": "mail"}),
            "inactive": (200, {"active": False}),
            "no-scope": (200, {"active": True, "sub": "alice", "scope": "openid"}),
            "refused-401": (401, {"error": "invalid_token"}),
            "broken-500": (500, {"error": "server_error"}),
            "huge": (200, b'{"active":true,"sub":"alice","pad":"' + b"x" * 100000 + b'"}'),
            "stall": (200, None),
        }
        return table.get(token, (200, {"active": False}))

    def count(self, token):
        n = 0
        for method, _, headers, body in self.requests:
            if headers.get("Authorization") == "Bearer " + token or \
                    urllib.parse.parse_qs(body).get("token", [None])[0] == token:
                n += 1
        return n

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class IntrospectAuth(unittest.TestCase):
    mode = "auth"

    @classmethod
    def setUpClass(cls):
        cls.d = tempfile.mkdtemp(prefix="ringgate-idp-")
        cls.addClassCleanup(shutil.rmtree, cls.d, True)
        os.chmod(cls.d, 0o755)
        ca, cert, key = make_ca_and_server(cls.d)
        cls.idp = Idp(cert, key)
        cls.addClassCleanup(cls.idp.close)
        conf = os.path.join(cls.d, "dovecot-oauth2.conf.ext")
        with open(conf, "w") as f:
            f.write("introspection_mode = %s\n"
                    "introspection_url = https://localhost:%d/introspect\n"
                    "username_attribute = sub\n"
                    "client_id = ringgate\nclient_secret = s3cret&more\n"
                    "scope = mail\n"
                    "tls_ca_cert_file = %s\n"
                    "timeout_msecs = 1500\n"
                    "max_parallel_connections = 2\n" % (cls.mode, cls.idp.port, ca))
        os.chmod(conf, 0o644)
        cls.rg = rgenv.Ringgate(extra_conf=(
            "auth_mechanisms = plain login oauthbearer xoauth2\n"
            "passdb {\n  driver = oauth2\n  mechanisms = oauthbearer xoauth2\n"
            "  args = %s\n}\n" % conf),
            failure_delay="0", users={"alice": "alice-pw", "bob": "bob-pw"})
        cls.rg.start()
        cls.addClassCleanup(cls.rg.cleanup)

    @classmethod
    def tearDownClass(cls):
        code = cls.rg.stop()
        if code != 0:
            raise AssertionError("ringgate stop exit %s\n%s" % (code, cls.rg.logs()))

    def setUp(self):
        # a good login resets 127.0.0.1's penalty
        m = self.imap()
        m.login("alice", "alice-pw")
        m.logout()

    def imap(self):
        return imaplib.IMAP4("127.0.0.1", self.rg.imap_port, timeout=30)

    def login(self, token, user="alice", mech="OAUTHBEARER"):
        """(ok, challenges seen, error text)"""
        seen = []

        def auth(data):
            seen.append(data)
            if len(seen) > 1:
                return b"\x01"
            if mech == "XOAUTH2":
                return ("user=%s\x01auth=Bearer %s\x01\x01" % (user, token)).encode()
            a = "a=%s" % user if user else ""
            return ("n,%s,\x01auth=Bearer %s\x01\x01" % (a, token)).encode()

        m = self.imap()
        try:
            typ, _ = m.authenticate(mech, auth)
            self.assertEqual(m.select("INBOX")[0], "OK")
            m.logout()
            return True, seen, ""
        except imaplib.IMAP4.error as e:
            m.shutdown()
            return False, seen, str(e)

    def test_good_token_and_cache(self):
        ok, _, err = self.login("good-alice")
        self.assertTrue(ok, err + self.rg.logs()[-2000:])
        self.assertEqual(self.idp.count("good-alice"), 1)
        # the second login with the same token: from the cache
        ok, _, _ = self.login("good-alice", mech="XOAUTH2")
        self.assertTrue(ok)
        self.assertEqual(self.idp.count("good-alice"), 1)
        # the user comes from the answer when the client names none
        ok, _, err = self.login("good-alice-2", user="")
        self.assertTrue(ok, err)

    def test_request_form(self):
        self.assertTrue(self.login("good-bob", user="bob")[0])
        method, path, headers, body = [r for r in self.idp.requests
                                       if "good-bob" in str(r)][-1]
        self.assertEqual(path, "/introspect")
        if self.mode == "auth":
            self.assertEqual(method, "GET")
            self.assertEqual(headers["Authorization"], "Bearer good-bob")
        else:
            self.assertEqual(method, "POST")
            self.assertEqual(headers["Content-Type"], "application/x-www-form-urlencoded")
            self.assertEqual(urllib.parse.parse_qs(body),
                             {"token": ["good-bob"], "client_id": ["ringgate"],
                              "client_secret": ["s3cret&more"]})

    def test_curl_oauth2_bearer(self):
        for mech in ("XOAUTH2", "OAUTHBEARER"):
            out = subprocess.run(["curl", "-s", "-S", "--max-time", "30", "--login-options",
                                  "AUTH=" + mech, "--oauth2-bearer", "good-alice",
                                  "-u", "alice:", "imap://127.0.0.1:%d/" % self.rg.imap_port],
                                 capture_output=True, text=True, timeout=60)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn("INBOX", out.stdout)
            out = subprocess.run(["curl", "-s", "-S", "--max-time", "30", "--login-options",
                                  "AUTH=" + mech, "--oauth2-bearer", "inactive",
                                  "-u", "alice:", "imap://127.0.0.1:%d/" % self.rg.imap_port],
                                 capture_output=True, text=True, timeout=60)
            self.assertNotEqual(out.returncode, 0)
            self.setUp()

    def test_refused_tokens(self):
        for token, user, why in (("inactive", "alice", "the token is not active"),
                                 ("good-bob", "alice", "the token is for another user"),
                                 ("no-scope", "alice", "the token is not valid for scope"),
                                 ("refused-401", "alice", "the IdP refused the token")):
            ok, seen, _ = self.login(token, user)
            self.assertFalse(ok, token)
            # RFC 7628: the error JSON as a challenge, then the failure
            self.assertEqual(len(seen), 2, token)
            self.assertEqual(json.loads(seen[1])["status"], "invalid_token", token)
            self.assertIn("token refused: " + why, self.rg.logs())
            self.setUp()
        # a refusal is cached too: asking again does not ask the IdP
        n = self.idp.count("inactive")
        self.assertFalse(self.login("inactive")[0])
        self.assertEqual(self.idp.count("inactive"), n)

    def test_idp_trouble_is_temporary(self):
        for token, why in (("broken-500", "introspection failed: the IdP failed"),
                           ("huge", "introspection failed: response body too large")):
            ok, seen, err = self.login(token)
            self.assertFalse(ok, token)
            self.assertIn("UNAVAILABLE", err.upper() + " ", token)
            self.assertIn(why, self.rg.logs())
            self.setUp()
        # an IdP that does not answer: timeout_msecs ends the request, and
        # other logins are served meanwhile (auth's loop is not blocked)
        result = {}
        t = threading.Thread(target=lambda: result.update(r=self.login("stall")))
        t.start()
        try:
            # the stalled request reached the IdP before the other login
            while not any("stall" in str(r) for r in self.idp.requests):
                threading.Event().wait(0.05)
            m = self.imap()
            m.login("bob", "bob-pw")
            m.logout()
            t.join(60)
        finally:
            self.idp.release.set()
        self.assertFalse(result["r"][0])
        self.assertIn("introspection failed: timed out", self.rg.logs())
        # nothing of a token in the log
        self.assertNotIn("good-alice", self.rg.logs())


class IntrospectPost(IntrospectAuth):
    mode = "post"


if __name__ == "__main__":
    unittest.main()
