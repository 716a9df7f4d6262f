"""Logins through ringgate with users in a private slapd (storeenv.py):
passdb and userdb `ldap` with dovecot-ldap.conf.ext files as Dovecot reads
them. Password attribute lookups ({SHA512-CRYPT}, {PLAIN}), auth binds
(slapd checks the {SSHA} userPassword itself), a wrong password, nologin with
a reason and a user proxied to a second ringgate by its attributes, two
entries for one user (internal error), hostile user names with
auth_username_chars emptied (slapd's own log shows each filter as it parsed
it), slapd stopped mid-test (NO [UNAVAILABLE]) then working again with no
restart of ringgate. One slapd and one ringgate pair for the file."""
import crypt
import os
import time
import unittest

import rgenv
import storeenv

USERNAME_CHARS = "auth_username_chars =\n"
PEOPLE = "ou=people," + storeenv.LDAP_BASE


@unittest.skipUnless(storeenv.available("ldap"), "slapd not installed")
class LdapLoginTest(storeenv.LoginCase, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # TLS too: StartTLS and ldaps:// with the test's own CA (storeenv)
        cls.ld = storeenv.Slapd(tls=True)
        # class cleanups run even when setUpClass fails half-way
        cls.addClassCleanup(cls.ld.cleanup)
        cls.backend = rgenv.Ringgate(users={"lpx": "px pass"}, failure_delay="0 secs")
        cls.addClassCleanup(cls.backend.cleanup)
        cls.backend.start()
        cls.rg = rgenv.Ringgate(users={"lalice": "x", "lbob": "x", "bindsam": "x"},
                                failure_delay="0 secs", extra_conf=USERNAME_CHARS)
        cls.addClassCleanup(cls.rg.cleanup)
        rg = cls.rg
        common = "uris = %s\ndn = %s\ndnpass = %s\nbase = %s\nscope = subtree\n" % (
            cls.ld.uri, storeenv.LDAP_ADMIN, storeenv.LDAP_ADMIN_PASS, storeenv.LDAP_BASE)
        cls.lookup_conf = os.path.join(rg.tmp, "dovecot-ldap.conf.ext")
        with open(cls.lookup_conf, "w") as f:
            f.write(common + "pass_attrs = uid=user, userPassword=password, mailHost=host, \\\n"
                    "  mailHost=proxy=y, roomNumber=port, employeeType=nologin, description=reason\n"
                    "pass_filter = (&(objectClass=posixAccount)(uid=%u))\n"
                    "user_attrs = homeDirectory=home, uidNumber=uid, gidNumber=gid\n"
                    "user_filter = (&(objectClass=posixAccount)(uid=%u))\n"
                    "iterate_attrs = =user=%{ldap:uid}\n"
                    "iterate_filter = (&(objectClass=posixAccount)(uid=l*))\n"
                    "default_pass_scheme = CRYPT\nrequest_timeout = 3s\n")
        cls.bind_conf = os.path.join(rg.tmp, "dovecot-ldap-bind.conf.ext")
        with open(cls.bind_conf, "w") as f:
            f.write(common + "auth_bind = yes\npass_attrs = uid=user\n"
                    "pass_filter = (&(objectClass=posixAccount)(uid=%u))\n")
        # the same lookups over StartTLS, over ldaps://, and with a CA that
        # did not sign slapd's certificate
        tls_confs = []
        wrong_ca = cls.ld.make_ca("other")
        for name, uri, tls in (("starttls", cls.ld.uri, "tls = yes\ntls_ca_cert_file = %s\n"
                                % cls.ld.ca_file),
                               ("ldaps", cls.ld.ldaps_uri, "tls_ca_cert_file = %s\n"
                                % cls.ld.ca_file),
                               ("badca", cls.ld.uri, "tls = yes\ntls_ca_cert_file = %s\n"
                                % wrong_ca)):
            path = os.path.join(rg.tmp, "dovecot-ldap-%s.conf.ext" % name)
            with open(path, "w") as f, open(cls.lookup_conf) as src:
                f.write(src.read().replace(cls.ld.uri, uri) + tls +
                        "tls_require_cert = demand\n")
            tls_confs.append(path)
        cls.blocks = (
                      "passdb {\n  driver = ldap\n  args = %s\n  username_filter = bind*\n}\n"
                      "passdb {\n  driver = ldap\n  args = %s\n  username_filter = tls*\n}\n"
                      "passdb {\n  driver = ldap\n  args = %s\n  username_filter = ssl*\n}\n"
                      "passdb {\n  driver = ldap\n  args = %s\n  username_filter = badca*\n}\n"
                      "passdb {\n  driver = ldap\n  args = %s\n"
                      "  username_filter = !bind* !tls* !ssl* !badca*\n}\n"
                      "userdb {\n  driver = ldap\n  args = %s\n}\n"
                      % ((cls.bind_conf,) + tuple(tls_confs) + (cls.lookup_conf, cls.lookup_conf)))
        storeenv.use_store_blocks(rg, cls.blocks)
        u = storeenv.user_ldif
        ldif = u("lalice", "{SHA512-CRYPT}" + crypt.crypt("alice pw", crypt.mksalt(crypt.METHOD_SHA512)),
                 rg.uid, rg.home("lalice"))
        ldif += u("lbob", "{PLAIN}bob pw", rg.uid, rg.home("lbob"))
        ldif += u("bindsam", storeenv.ssha("sam pw"), rg.uid, rg.home("bindsam"))
        ldif += u("lcarol", "{PLAIN}carol pw", rg.uid, "/nonexistent",
                  ["employeeType: yes", "description: Moved to imap2.example.com."])
        ldif += u("lpx", "{PLAIN}px pass", rg.uid, "/nonexistent",
                  ["mailHost: 127.0.0.1", "roomNumber: %d" % cls.backend.imap_port])
        ldif += u("twin", "{PLAIN}twin", rg.uid, "/nonexistent")
        for name in ("tlsuser", "ssluser", "badcauser"):
            ldif += u(name, "{PLAIN}%s pw" % name, rg.uid, rg.home("lbob"))
        ldif += ("dn: ou=other,%s\nobjectClass: organizationalUnit\nou: other\n\n"
                 % storeenv.LDAP_BASE)
        ldif += u("twin", "{PLAIN}twin", rg.uid, "/nonexistent").replace(
            "ou=people", "ou=other")
        ldif = ldif.replace("gidNumber: %d" % rg.uid, "gidNumber: %d" % rg.gid)
        cls.ld.add_ldif(ldif)
        cls.ld.start()
        rg.start()

    def test_password_attribute_logins(self):
        for user, pw in (("lalice", "alice pw"), ("lbob", "bob pw")):
            c = self.imap()
            self.assertEqual(c.login(user, pw)[0], "OK")
            typ, data = c.select("INBOX")
            self.assertEqual(typ, "OK")
            self.assertEqual(int(data[0]), len(rgenv.MESSAGES))
            c.logout()

    def test_auth_bind_ssha(self):
        c = self.imap()
        self.assertEqual(c.login("bindsam", "sam pw")[0], "OK")
        c.logout()
        self.assertEqual(self.raw_login(b"bindsam", b"wrong"),
                         b"a NO [AUTHENTICATIONFAILED] Authentication failed.")
        log = self.ld.statement_log()
        # slapd checked the password: a bind as the DN the search found
        self.assertIn('BIND dn="uid=bindsam,ou=people,dc=example,dc=com" mech=SIMPLE', log)

    def test_wrong_password(self):
        self.assertEqual(self.raw_login(b"lalice", b"wrong"),
                         b"a NO [AUTHENTICATIONFAILED] Authentication failed.")
        self.assertEqual(self.raw_login(b"nobody", b"x"),
                         b"a NO [AUTHENTICATIONFAILED] Authentication failed.")

    def test_nologin_reason(self):
        self.assertEqual(self.raw_login(b"lcarol", b"carol pw"),
                         b"a NO [ALERT] Moved to imap2.example.com.")

    def test_proxied_by_attributes(self):
        c = self.imap()
        self.assertEqual(c.login("lpx", "px pass")[0], "OK")
        self.assertEqual(c.select("INBOX")[0], "OK")
        c.logout()
        deadline = time.time() + 10
        while "proxy(lpx): started proxying to 127.0.0.1:%d" % self.backend.imap_port \
                not in self.rg.logs():
            self.assertLess(time.time(), deadline, self.rg.logs()[-3000:])
            time.sleep(0.1)

    def test_two_entries_internal_error(self):
        reply = self.raw_login(b"twin", b"twin")
        self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
        self.assertIn("pass_filter found 2 entries for one user", self.rg.logs())

    def test_hostile_names(self):
        for name in (b"*)(uid=*", b"*", b"lalice)(|(uid=*", b"' OR 1=1 --"):
            self.assertEqual(self.raw_login(name, b"alice pw"),
                             b"a NO [AUTHENTICATIONFAILED] Authentication failed.", name)
        log = self.ld.statement_log()
        self.assertIn('filter="(&(objectClass=posixAccount)(uid=\\2A\\29\\28uid=\\2A))"', log)
        self.assertIn('filter="(&(objectClass=posixAccount)(uid=\\2A))"', log)
        self.assertIn('filter="(&(objectClass=posixAccount)(uid=lalice\\29\\28|\\28uid=\\2A))"', log)
        # no filter slapd parsed had an unescaped wildcard for uid
        self.assertNotRegex(log, r'filter="[^"]*\(uid=\*\)')

    def test_tls_to_slapd(self):
        # StartTLS (tls = yes) and ldaps://, each verified against the CA
        for user in ("tlsuser", "ssluser"):
            c = self.imap()
            self.assertEqual(c.login(user, user + " pw")[0], "OK", user)
            c.logout()
        log = self.ld.statement_log()
        self.assertIn("EXT oid=1.3.6.1.4.1.1466.20037", log)
        self.assertIn("TLS established", log)
        # a CA that did not sign slapd's certificate: a temporary failure,
        # and the reason in the log
        reply = self.raw_login(b"badcauser", b"badcauser pw")
        self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
        self.assertIn("StartTLS failed: Connect error (TLS: peer cert untrusted", self.rg.logs())

    def test_auth_cache(self):
        # auth_cache_size: the ldap passdb and userdb are cached by their
        # filters' variables (%u): the second login sends slapd no search
        rg = rgenv.Ringgate(users={"lbob": "x"}, failure_delay="0 secs",
                            extra_conf=USERNAME_CHARS + "auth_cache_size = 1M\n")
        self.addCleanup(rg.cleanup)
        storeenv.use_store_blocks(rg, self.blocks)
        rg.start()
        search = 'filter="(&(objectClass=posixAccount)(uid=lbob))"'
        self.assertEqual(storeenv.login_reply(rg.imap_port, b"lbob", b"bob pw")[:4], b"a OK")
        n = self.ld.statement_log().count(search)
        self.assertGreaterEqual(n, 1)
        self.assertEqual(storeenv.login_reply(rg.imap_port, b"lbob", b"bob pw")[:4], b"a OK")
        self.assertEqual(self.ld.statement_log().count(search), n)

    def test_user_command(self):
        # `ringgate user` (doveadm user): iterate_filter/iterate_attrs list,
        # user_filter looks up
        r = self.rg.ctl("user", "*", check=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(r.stdout.splitlines()), ["lalice", "lbob", "lcarol", "lpx"])
        r = self.rg.ctl("user", "LB*", check=False)
        self.assertEqual(r.stdout, "lbob\n")
        r = self.rg.ctl("user", "-f", "home", "lalice", check=False)
        self.assertEqual((r.returncode, r.stdout), (0, self.rg.home("lalice") + "\n"), r.stderr)

    def test_slapd_outage(self):
        c = self.imap()
        self.assertEqual(c.login("lbob", "bob pw")[0], "OK")
        c.logout()
        self.ld.stop()
        try:
            reply = self.raw_login(b"lbob", b"bob pw")
            self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
            r = self.rg.ctl("user", "*", check=False)
            self.assertEqual((r.returncode, r.stdout), (89, ""))
            self.assertIn("user listing failed", r.stderr)
        finally:
            self.ld.start()
        deadline = time.time() + 20
        while True:
            reply = self.raw_login(b"lbob", b"bob pw")
            if reply.startswith(b"a OK"):
                break
            self.assertTrue(reply.startswith(b"a NO [UNAVAILABLE]"), reply)
            self.assertLess(time.time(), deadline, "no login after the restart")
            time.sleep(0.5)
        # libldap closed the lost connection's fd itself before auth took
        # it off its loop: no error for that
        self.assertNotIn("epoll_ctl(DEL)", self.rg.logs())


if __name__ == "__main__":
    unittest.main()
