"""The Maildir is Dovecot's layout: what ringgate's IMAP worker writes
(folders, subscriptions, flags, keywords) Dovecot's own imap reads, and
what Dovecot writes (folders, keywords, dovecot-uidlist) ringgate reads,
UIDVALIDITY included. Dovecot's imap runs in PREAUTH mode on the same
Maildir. Skipped when Dovecot is not installed."""
import imaplib
import os
import re
import shutil
import subprocess
import unittest

import rgenv

DOVECOT_IMAP = "/usr/lib/dovecot/imap"


@unittest.skipUnless(os.path.exists(DOVECOT_IMAP), "dovecot-imapd is not installed")
class DovecotInteropTests(unittest.TestCase):
    def setUp(self):
        self.rg = rgenv.Ringgate(users={"inter": "inter-pw"}).start()
        self.conf = os.path.join(self.rg.tmp, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write(f"""base_dir = {self.rg.tmp}/dovecot-run
state_dir = {self.rg.tmp}/dovecot-state
log_path = {self.rg.tmp}/dovecot.log
mail_location = maildir:{self.rg.maildir("inter")}
mail_uid = {self.rg.uid}
mail_gid = {self.rg.gid}
first_valid_uid = {min(self.rg.uid, 100)}
first_valid_gid = 0
ssl = no
protocols = imap
namespace inbox {{
  inbox = yes
  separator = .
}}
""")

    def tearDown(self):
        self.rg.stop_clean()

    def dovecot(self, commands):
        """run tagged commands through Dovecot's imap; returns its output"""
        cmd = ["env", "USER=inter", "HOME=" + self.rg.home("inter"), DOVECOT_IMAP, "-c", self.conf]
        if os.geteuid() == 0:
            cmd = ["setpriv", "--reuid=%d" % self.rg.uid, "--regid=%d" % self.rg.gid,
                   "--clear-groups", "--"] + cmd
        data = b"".join(b"d%d %s\r\n" % (i, c) for i, c in enumerate(commands)) + b"z LOGOUT\r\n"
        r = subprocess.run(cmd, input=data, capture_output=True, timeout=30)
        out = r.stdout
        self.assertIn(b"z OK", out, out + r.stderr)
        for i in range(len(commands)):
            self.assertRegex(out, rb"(?m)^d%d OK" % i)
        return out

    def ringgate(self):
        m = imaplib.IMAP4("127.0.0.1", self.rg.imap_port, timeout=15)
        m.login("inter", "inter-pw")
        return m

    def test_both_ways(self):
        m = self.ringgate()
        self.assertEqual(m.create("Work.Sub")[0], "OK")
        self.assertEqual(m.subscribe("Work.Sub")[0], "OK")
        self.assertEqual(m.append("Work.Sub", "(\\Flagged $Junk)", None, b"Subject: kw\r\n\r\nx\r\n")[0], "OK")
        m.select("INBOX")
        m.store("1", "+FLAGS", "(\\Seen \\Answered)")
        m.store("2", "+FLAGS", "(\\Deleted)")
        m.expunge()
        m.logout()

        out = self.dovecot([b'LIST "" *', b'LSUB "" *', b"SELECT Work.Sub", b"FETCH 1 (FLAGS)",
                            b"SELECT INBOX", b"FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])"])
        self.assertIn(b'* LIST (\\Noselect \\HasChildren) "." Work', out)
        self.assertIn(b'"." Work.Sub', out)
        self.assertIn(b'* LSUB () "." Work.Sub', out)
        self.assertRegex(out, rb"\* 1 FETCH \(FLAGS \((?=[^)]*\\Flagged)(?=[^)]*\$Junk)[^)]*\)\)")
        self.assertIn(b"* 2 EXISTS", out)
        self.assertRegex(out, rb"\* 1 FETCH \(FLAGS \((?=[^)]*\\Seen)(?=[^)]*\\Answered)")
        self.assertIn(b"Subject: Welcome", out)
        self.assertIn(b"Subject: Third", out)
        self.assertNotIn(b"Subject: Second", out)

        # Dovecot writes: a folder of its own, a keyword, a message
        out = self.dovecot([b"CREATE FromDovecot", b"APPEND FromDovecot (NonJunk \\Draft) {20}\r\nSubject: dc\r\n\r\nhi\r\n",
                            b"STATUS FromDovecot (UIDVALIDITY UIDNEXT)",
                            b"SELECT INBOX", b"STORE 2 +FLAGS (NonJunk)"])
        validity = re.search(rb"UIDVALIDITY (\d+)", out).group(1)
        m = self.ringgate()
        typ, data = m.list('""', "*")
        self.assertIn(b"FromDovecot", b" ".join(data))
        typ, data = m.status("FromDovecot", "(UIDVALIDITY MESSAGES)")
        self.assertIn(b"UIDVALIDITY " + validity, data[0])
        self.assertIn(b"MESSAGES 1", data[0])
        m.select("FromDovecot")
        typ, data = m.fetch("1", "(UID FLAGS BODY.PEEK[TEXT])")
        self.assertIn(b"NonJunk", data[0][0])
        self.assertIn(b"\\Draft", data[0][0])
        self.assertIn(b"UID 1 ", data[0][0])
        self.assertEqual(data[0][1], b"hi\r\n")
        m.select("INBOX")
        typ, data = m.fetch("2", "(FLAGS)")
        self.assertIn(b"NonJunk", data[0])
        typ, data = m.search(None, "KEYWORD", "NonJunk")
        self.assertEqual(data[0], b"2")
        m.logout()


if __name__ == "__main__":
    unittest.main()
