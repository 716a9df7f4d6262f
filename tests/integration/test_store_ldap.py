"""auth's asynchronous LDAP client (src/auth/auth-ldap.c, OpenLDAP's
ldap_search_ext / ldap_result on its socket) against a private slapd
(storeenv.py), driven by storeprobe: searches as dn/dnpass, many at once,
RFC 4515 escaping of hostile values (slapd's own operation log is the
evidence), users' binds (auth_bind), slapd stopped and restarted under it.
One slapd for the file (~1 s to start)."""
import os
import re
import time
import unittest

import storeenv

PEOPLE = "ou=people," + storeenv.LDAP_BASE


@unittest.skipUnless(storeenv.available("ldap"), "slapd not installed")
@unittest.skipUnless(os.path.exists(storeenv.PROBE), "storeprobe not built")
class LdapClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ld = storeenv.Slapd()
        cls.addClassCleanup(cls.ld.cleanup)
        ldif = storeenv.user_ldif("demo", storeenv.ssha("demo pass"), 2000, "/home/demo",
                                  ["mailHost: 10.1.2.3"])
        ldif += storeenv.user_ldif("alice", "{CRYPT}$6$abcdefgh$" + "x" * 86, 2001, "/home/alice")
        for i in range(30):
            ldif += storeenv.user_ldif("u%02d" % i, storeenv.ssha("pw%d" % i), 3000 + i,
                                       "/home/u%02d" % i)
        cls.ld.add_ldif(ldif)
        cls.ld.start()

    def probe(self, extra=""):
        return storeenv.open_probe(
            self, "ldap", self.ld.tmp,
            "uris = %s\ndn = %s\ndnpass = %s\nbase = %s\n"
            "pass_attrs = uid=user, userPassword=password, mailHost=host\n%s"
            % (self.ld.uri, storeenv.LDAP_ADMIN, storeenv.LDAP_ADMIN_PASS, PEOPLE, extra))

    def ask(self, p, rid, timeout=20):
        return p.answers([rid], timeout)[rid]

    def test_search_attrs(self):
        p = self.probe()
        ans = self.ask(p, p.search("(&(objectClass=posixAccount)(uid=%s))", "demo"))
        self.assertTrue(ans.startswith("OK 1 dn=uid=demo,ou=people,dc=example,dc=com|"), ans)
        self.assertIn("|uid=demo", ans)
        # the admin may read userPassword: the {SSHA} value as stored
        self.assertIn("|userPassword=" + storeenv.ssha("demo pass"), ans)
        self.assertIn("|mailHost=10.1.2.3", ans)
        self.assertEqual(self.ask(p, p.search("(uid=%s)", "nobody")), "OK 0 ")
        self.assertTrue(self.ask(p, p.search("(uid=%s", "x")).startswith("ERROR "))

    def test_many_searches_at_once(self):
        p = self.probe()
        ids = [p.search("(uid=%s)", "u%02d" % i) for i in range(30)]
        got = p.answers(ids)
        for i, rid in enumerate(ids):
            self.assertTrue(got[rid].startswith("OK 1 dn=uid=u%02d," % i), got[rid])

    def test_hostile_values_escaped(self):
        p = self.probe()
        for v in ("*)(uid=*", "*", "demo)(|(uid=*", "\\2a", "' OR 1=1 --", "a" * 300):
            self.assertEqual(self.ask(p, p.search("(&(objectClass=posixAccount)(uid=%s))", v)),
                             "OK 0 ", v)
        # a NUL byte: escaped as \00, still one value
        self.assertEqual(self.ask(p, p.search("(uid=%s)", "demo\\x00x")), "OK 0 ")
        log = self.ld.statement_log()
        # slapd logs each filter as it parsed it: the value stayed one
        # assertion value, its metacharacters escaped
        self.assertIn('filter="(&(objectClass=posixAccount)(uid=\\2A\\29\\28uid=\\2A))"', log)
        self.assertIn('filter="(&(objectClass=posixAccount)(uid=\\2A))"', log)
        self.assertIn('(uid=demo\\00x)', log)
        self.assertNotIn('filter="(&(objectClass=posixAccount)(uid=*))"', log)

    def test_user_binds(self):
        p = self.probe("auth_bind = yes\n")
        dn = "uid=%s," + PEOPLE
        self.assertEqual(self.ask(p, p.bind(dn, "demo", "demo pass")), "OK")
        self.assertTrue(self.ask(p, p.bind(dn, "demo", "wrong")).startswith("INVALID "))
        self.assertTrue(self.ask(p, p.bind(dn, "nobody", "x")).startswith("INVALID "))
        # an empty password would be an anonymous bind: refused unasked
        self.assertEqual(self.ask(p, p.bind(dn, "demo", "")), "INVALID empty password")
        # queued binds, one at a time on their connection
        ids = [p.bind(dn, "u%02d" % i, "pw%d" % i if i % 3 else "bad") for i in range(12)]
        got = p.answers(ids)
        for i, rid in enumerate(ids):
            self.assertEqual(got[rid].split()[0], "OK" if i % 3 else "INVALID", (i, got[rid]))
        # a hostile name is one DN value (RFC 4514 escaping)
        self.assertTrue(self.ask(p, p.bind(dn, "x,ou=people", "x")).startswith("INVALID "))
        self.assertIn('BIND dn="uid=x\\2Cou\\3Dpeople,ou=people,dc=example,dc=com"',
                      self.ld.statement_log())

    def test_slapd_restart(self):
        p = self.probe()
        self.assertTrue(self.ask(p, p.search("(uid=%s)", "demo")).startswith("OK 1 "))
        self.ld.stop()
        try:
            t0 = time.time()
            self.assertEqual(self.ask(p, p.search("(uid=%s)", "demo")).split()[0], "TEMPFAIL")
            self.assertEqual(self.ask(p, p.search("(uid=%s)", "demo")).split()[0], "TEMPFAIL")
            self.assertLess(time.time() - t0, 5)
        finally:
            self.ld.start()
        deadline = time.time() + 15
        while True:
            ans = self.ask(p, p.search("(uid=%s)", "demo"))
            if ans.startswith("OK 1 "):
                break
            self.assertLess(time.time(), deadline, ans)
            time.sleep(0.3)


@unittest.skipUnless(storeenv.available("ldap"), "slapd not installed")
@unittest.skipUnless(os.path.exists(storeenv.PROBE), "storeprobe not built")
class LdapTlsTest(unittest.TestCase):
    """dovecot-ldap.conf.ext's `tls = yes` (StartTLS) and ldaps:// URIs
    against a slapd with a certificate for 127.0.0.1 from the test's own CA,
    with Dovecot's tls_ca_cert_file / tls_require_cert. slapd's log shows
    each connection's TLS; a CA that did not sign the certificate fails the
    lookup (TEMPFAIL) with the library's reason in the log."""

    @classmethod
    def setUpClass(cls):
        cls.ld = storeenv.Slapd(tls=True)
        cls.addClassCleanup(cls.ld.cleanup)
        cls.ld.add_ldif(storeenv.user_ldif("demo", storeenv.ssha("demo pass"), 2000, "/home/demo"))
        cls.other_ca = cls.ld.make_ca("other")
        cls.ld.start()

    def probe(self, uri, tls_conf):
        return storeenv.open_probe(
            self, "ldap", self.ld.tmp,
            "uris = %s\ndn = %s\ndnpass = %s\nbase = %s\nrequest_timeout = 3s\n"
            "pass_attrs = uid=user, userPassword=password\n%s"
            % (uri, storeenv.LDAP_ADMIN, storeenv.LDAP_ADMIN_PASS, PEOPLE, tls_conf))

    def tls_connections(self):
        return re.findall(r"conn=(\d+) fd=\d+ TLS established", self.ld.statement_log())

    def search_ok(self, p):
        ans = p.ask("search (uid=%s)", "demo")
        self.assertTrue(ans.startswith("OK 1 dn=uid=demo,"), ans)

    def test_starttls(self):
        before = len(self.tls_connections())
        p = self.probe(self.ld.uri, "tls = yes\ntls_ca_cert_file = %s\n"
                       "tls_require_cert = demand\n" % self.ld.ca_file)
        self.search_ok(p)
        # the StartTLS extended operation, then TLS on that connection
        log = self.ld.statement_log()
        self.assertIn("EXT oid=1.3.6.1.4.1.1466.20037", log)
        self.assertGreater(len(self.tls_connections()), before)

    def test_ldaps(self):
        before = len(self.tls_connections())
        p = self.probe(self.ld.ldaps_uri, "tls_ca_cert_file = %s\n" % self.ld.ca_file)
        self.search_ok(p)
        self.assertGreater(len(self.tls_connections()), before)

    def test_wrong_ca_fails(self):
        for uri, tls in ((self.ld.uri, "tls = yes\n"), (self.ld.ldaps_uri, "")):
            p = self.probe(uri, tls + "tls_ca_cert_file = %s\ntls_require_cert = demand\n"
                           % self.other_ca)
            ans = p.ask("search (uid=%s)", "demo")
            self.assertEqual(ans.split()[0], "TEMPFAIL", (uri, ans))
            err = p.close()
            # the reason the administrator needs, from libldap/GnuTLS
            self.assertIn("TLS: peer cert untrusted", err, uri)

    def test_require_cert_never(self):
        # Dovecot's tls_require_cert = never: an unknown CA is accepted
        p = self.probe(self.ld.ldaps_uri, "tls_ca_cert_file = %s\ntls_require_cert = never\n"
                       % self.other_ca)
        self.search_ok(p)


if __name__ == "__main__":
    unittest.main()
