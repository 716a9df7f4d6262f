"""A real synchronising client: mbsync (isync) syncs a folder tree both ways
with ringgate's IMAP worker, flags preserved. Skipped when mbsync is absent."""
import imaplib
import os
import shutil
import subprocess
import tempfile
import unittest

import rgenv

MBSYNC = shutil.which("mbsync")


def maildir_files(path):
    out = {}
    for sub in ("cur", "new"):
        d = os.path.join(path, sub)
        for name in os.listdir(d) if os.path.isdir(d) else []:
            with open(os.path.join(d, name), "rb") as f:
                out[name] = f.read()
    return out


def flags_of(name):
    return name.split(":2,", 1)[1] if ":2," in name else ""


@unittest.skipIf(MBSYNC is None, "mbsync (isync) is not installed")
class MbsyncTests(unittest.TestCase):
    def setUp(self):
        self.rg = rgenv.Ringgate(users={"sync": "sync-pw"}).start()
        self.local = tempfile.mkdtemp(prefix="rg-mbsync-")
        os.makedirs(os.path.join(self.local, "mail"))
        self.rc = os.path.join(self.local, "mbsyncrc")
        with open(self.rc, "w") as f:
            f.write(f"""IMAPAccount rg
Host 127.0.0.1
Port {self.rg.imap_port}
User sync
Pass sync-pw
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account rg

MaildirStore local
Path {self.local}/mail/
Inbox {self.local}/mail/INBOX
SubFolders Verbatim

Channel all
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
""")

    def tearDown(self):
        code = self.rg.stop()
        logs = self.rg.logs()
        self.rg.cleanup()
        shutil.rmtree(self.local, ignore_errors=True)
        if code != 0:
            raise AssertionError("ringgate stop exit %s\n%s" % (code, logs))

    def sync(self):
        r = subprocess.run([MBSYNC, "-c", self.rc, "-a"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr + self.rg.logs()[-3000:])

    def imap(self):
        m = imaplib.IMAP4("127.0.0.1", self.rg.imap_port, timeout=15)
        m.login("sync", "sync-pw")
        return m

    def test_both_ways(self):
        mail = os.path.join(self.local, "mail")
        # the server has INBOX (3 messages) and the special folders; add a tree
        m = self.imap()
        m.create("Projects.Alpha")
        m.append("Projects.Alpha", "(\\Flagged)", None, b"Subject: alpha\r\n\r\nA\r\n")
        m.logout()
        self.sync()
        inbox = maildir_files(os.path.join(mail, "INBOX"))
        self.assertEqual(len(inbox), 3)
        self.assertIn(b"Subject: Welcome", b"".join(inbox.values()))
        alpha = maildir_files(os.path.join(mail, "Projects", "Alpha"))
        self.assertEqual(len(alpha), 1)
        self.assertIn("F", flags_of(next(iter(alpha))))
        for special in ("Drafts", "Sent", "Trash", "Junk"):
            self.assertTrue(os.path.isdir(os.path.join(mail, special)), special)

        # local changes: a new folder with a message, a flag, a deletion
        newdir = os.path.join(mail, "Local")
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(newdir, sub))
        with open(os.path.join(newdir, "cur", "1.local.host:2,S"), "wb") as f:
            f.write(b"Subject: from local\n\nlocal body\n")
        paths = sorted(os.path.join(mail, "INBOX", sub, n) for sub in ("cur", "new")
                       for n in os.listdir(os.path.join(mail, "INBOX", sub)))
        cur = os.path.join(mail, "INBOX", "cur")
        first = os.path.basename(paths[0])
        os.rename(paths[0], os.path.join(cur, first.split(":2,")[0] + ":2,FR"))
        os.unlink(paths[1])
        self.sync()

        m = self.imap()
        typ, data = m.select("Local")
        self.assertEqual(typ, "OK")
        self.assertEqual(int(data[0]), 1)
        typ, data = m.fetch("1", "(FLAGS BODY.PEEK[TEXT])")
        self.assertIn(b"\\Seen", data[0][0])
        self.assertIn(b"local body", data[0][1])
        typ, data = m.select("INBOX")
        self.assertEqual(int(data[0]), 2)
        typ, data = m.fetch("1", "(FLAGS)")
        self.assertIn(b"\\Flagged", data[0])
        self.assertIn(b"\\Answered", data[0])
        # a server-side change travels back
        m.store("2", "+FLAGS", "(\\Seen \\Draft)")
        m.logout()
        self.sync()
        inbox = sorted(maildir_files(os.path.join(mail, "INBOX")))
        self.assertEqual(len(inbox), 2)
        self.assertTrue(any(set("DS") <= set(flags_of(n)) for n in inbox), inbox)
        # a second run with nothing new changes nothing
        self.sync()
        self.assertEqual(sorted(maildir_files(os.path.join(mail, "INBOX"))), inbox)
        m = self.imap()
        self.assertEqual(int(m.select("INBOX")[1][0]), 2)
        m.logout()


if __name__ == "__main__":
    unittest.main()
