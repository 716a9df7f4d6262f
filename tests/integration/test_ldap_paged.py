"""`ringgate user '*'` (iterate_filter) against a private slapd whose plain
searches are capped by `sizelimit` (soft = hard = 5, paged results not
capped: `size.prtotal=unlimited`, as a site that lets listings through only
by paging): the listing asks for RFC 2696 paged results (auth-ldap.h,
LDAP_PAGE_SIZE = 500 entries a page) and gets every user, 1100 of them in
three pages, where a plain search of the same filter stops at 5. The
listing binds anonymously: slapd's rootdn has no limits at all."""
import os
import re
import unittest

import rgenv
import storeenv

USERS = 1100


@unittest.skipUnless(storeenv.available("ldap"), "slapd not installed")
class LdapPagedIterateTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        acl = ("sizelimit size.soft=5 size.hard=5 size.prtotal=unlimited\n"
               "access to attrs=userPassword by dn.exact=\"%s\" read by self read "
               "by anonymous auth by * none\naccess to * by * read\n" % storeenv.LDAP_ADMIN)
        cls.ld = storeenv.Slapd(acl=acl)
        cls.addClassCleanup(cls.ld.cleanup)
        cls.ld.add_ldif("".join(storeenv.user_ldif("pg%04d" % i, "{PLAIN}x", 1000, "/nonexistent")
                                for i in range(USERS)))
        cls.ld.start()
        cls.rg = rgenv.Ringgate(users={"nobody": "x"}, failure_delay="0 secs")
        cls.addClassCleanup(cls.rg.cleanup)
        conf = os.path.join(cls.rg.tmp, "dovecot-ldap.conf.ext")
        with open(conf, "w") as f:
            f.write("uris = %s\nbase = %s\nscope = subtree\n"
                    "pass_attrs = uid=user, userPassword=password\n"
                    "pass_filter = (&(objectClass=posixAccount)(uid=%%u))\n"
                    "user_attrs = homeDirectory=home, uidNumber=uid, gidNumber=gid\n"
                    "user_filter = (&(objectClass=posixAccount)(uid=%%u))\n"
                    "iterate_attrs = uid=user\n"
                    "iterate_filter = (objectClass=posixAccount)\n"
                    % (cls.ld.uri, storeenv.LDAP_BASE))
        storeenv.use_store_blocks(cls.rg, "passdb {\n  driver = ldap\n  args = %s\n}\n"
                                  "userdb {\n  driver = ldap\n  args = %s\n}\n" % (conf, conf))

    def test_listing_pages_past_the_size_limit(self):
        # the limit holds for a plain search of the same filter
        out = self.ld.run(["ldapsearch", "-x", "-LLL", "-H", self.ld.uri, "-b",
                           storeenv.LDAP_BASE, "(objectClass=posixAccount)", "uid"], check=False)
        self.assertEqual(out.count("uid: "), 5)
        mark = len(self.ld.statement_log())
        r = self.rg.ctl("user", "*", check=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(r.stdout.splitlines()), ["pg%04d" % i for i in range(USERS)])
        # slapd's own log: three pages of the listing's search
        pages = re.findall(r"SEARCH RESULT tag=101 err=0 .*nentries=(\d+)",
                           self.ld.statement_log()[mark:])
        self.assertEqual([int(n) for n in pages], [500, 500, 100])


if __name__ == "__main__":
    unittest.main()
