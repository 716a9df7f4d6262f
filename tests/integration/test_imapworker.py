"""The IMAP worker through the whole chain (client -> login -> worker) with
Python's imaplib: folders, APPEND, COPY/MOVE with UIDPLUS, SEARCH, FETCH
ENVELOPE/BODYSTRUCTURE, and two sessions seeing each other's changes."""
import imaplib
import os
import re
import socket
import time
import unittest

import rgenv

USERS = {"race": "pw-race", "folders": "pw-folders", "append": "pw-append", "copy": "pw-copy",
         "search": "pw-search", "mime": "pw-mime", "sync": "pw-sync", "idle": "pw-idle"}

MIME_MSG = (b"From: \"Alice A.\" <alice@example.com>\r\n"
            b"To: bob@example.com, Carol <carol@example.org>\r\n"
            b"Subject: =?UTF-8?B?SMOpbGxv?= mixed\r\n"
            b"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
            b"Message-ID: <mime@example.com>\r\n"
            b"MIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n"
            b"preamble\r\n"
            b"--outer\r\n"
            b"Content-Type: multipart/alternative; boundary=inner\r\n\r\n"
            b"--inner\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
            b"plain body\r\n"
            b"--inner\r\n"
            b"Content-Type: text/html\r\n\r\n"
            b"<p>html</p>\r\n"
            b"--inner--\r\n"
            b"--outer\r\n"
            b"Content-Type: message/rfc822\r\n\r\n"
            b"From: x@example.net\r\nSubject: inner\r\n\r\nnested body\r\n"
            b"--outer\r\n"
            b"Content-Type: application/octet-stream; name=\"a.bin\"\r\n"
            b"Content-Disposition: attachment; filename=\"a.bin\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n"
            b"AAEC\r\n"
            b"--outer--\r\n")


class ImapWorkerTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.rg = rgenv.Ringgate(mode="performance", users=dict(USERS)).start()

    @classmethod
    def tearDownClass(cls):
        cls.rg.stop_clean()

    def login(self, user):
        m = imaplib.IMAP4("127.0.0.1", self.rg.imap_port, timeout=15)
        typ, _ = m.login(user, USERS[user])
        self.assertEqual(typ, "OK")
        return m

    def test_worker_environment(self):
        """A worker's environment is built by master (for a forked worker:
        its template's), never inherited: in a sanitizer build it has the
        sanitizer options master runs with (a worker's finding then aborts
        it, as in master), and never the rest of master's environment."""
        m = self.login("folders")
        pids = rgenv.wait_for(lambda: [p for p in self.rg.children()
                                       if (rgenv.proc_info(p) or ("",))[0] == "ringgate-imap"])
        with open("/proc/%d/environ" % pids[0], "rb") as f:
            env = dict(e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e)
        m.logout()
        self.assertNotIn(b"PATH", env)
        asan = os.environ.get("ASAN_OPTIONS")
        if rgenv.sanitized() and asan is not None:
            self.assertEqual(env.get(b"ASAN_OPTIONS"), asan.encode())
        else:
            self.assertNotIn(b"ASAN_OPTIONS", env)

    def ok(self, result):
        typ, data = result
        self.assertEqual(typ, "OK", data)
        return data

    def list_names(self, m, pattern="*"):
        names = {}
        for line in self.ok(m.list('""', pattern)):
            mo = re.match(rb'\((.*?)\) "\." (.*)$', line)
            self.assertIsNotNone(mo, line)
            names[mo.group(2).strip(b'"').decode()] = mo.group(1).decode().split()
        return names

    def test_folders(self):
        m = self.login("folders")
        self.assertIn(b"SPECIAL-USE", m.capability()[1][0])
        names = self.list_names(m)
        self.assertEqual(set(names), {"INBOX", "Drafts", "Sent", "Trash", "Junk"})
        self.assertIn("\\Sent", names["Sent"])
        self.ok(m.create("Work"))
        self.ok(m.create("Work.Projects"))
        self.ok(m.create("Deep.Down.Here"))
        self.assertEqual(m.create("Work")[0], "NO")
        self.assertTrue(os.path.isdir(os.path.join(self.rg.maildir("folders"), ".Work.Projects", "cur")))
        names = self.list_names(m)
        self.assertIn("\\HasChildren", names["Work"])
        self.assertIn("\\HasNoChildren", names["Work.Projects"])
        self.assertIn("\\Noselect", names["Deep"])
        self.assertEqual(set(self.list_names(m, "%")),
                         {"INBOX", "Drafts", "Sent", "Trash", "Junk", "Work", "Deep"})
        self.assertEqual(set(self.list_names(m, "Work.%")), {"Work.Projects"})
        self.assertEqual(set(self.list_names(m, "inbox")), {"INBOX"})
        # RENAME takes the children along
        self.ok(m.rename("Work", "Job"))
        names = self.list_names(m)
        self.assertIn("Job.Projects", names)
        self.assertNotIn("Work", names)
        # SUBSCRIBE / LSUB
        self.ok(m.subscribe("Job.Projects"))
        lsub = b"\n".join(self.ok(m.lsub('""', "*")))
        self.assertIn(b"Job.Projects", lsub)
        self.assertIn(b"Sent", lsub)
        self.ok(m.unsubscribe("Job.Projects"))
        self.assertNotIn(b"Job.Projects", b"\n".join(self.ok(m.lsub('""', "*"))))
        with open(os.path.join(self.rg.maildir("folders"), "subscriptions")) as f:
            self.assertIn("Sent\n", f.read())
        # STATUS, SELECT, EXAMINE of another folder
        st = self.ok(m.status("Job", "(MESSAGES UIDNEXT UNSEEN)"))[0]
        self.assertIn(b"MESSAGES 0", st)
        self.assertEqual(int(self.ok(m.select("Job"))[0]), 0)
        self.ok(m.check())
        self.ok(m.unselect())
        self.assertEqual(m.select("Nope")[0], "NO")
        # DELETE
        self.assertEqual(m.delete("INBOX")[0], "NO")
        self.ok(m.delete("Job.Projects"))
        self.assertNotIn("Job.Projects", self.list_names(m))
        self.assertEqual(m.delete("Job.Projects")[0], "NO")
        typ, data = m.namespace()
        self.assertEqual(typ, "OK")
        self.assertIn(b'(("" "."))', data[0])
        m.logout()

    def test_append(self):
        m = self.login("append")
        msg = b"From: me@example.com\r\nSubject: appended\r\n\r\nHello there\r\n"
        typ, data = m.append("Drafts", "(\\Draft \\Seen)", '"01-Feb-2021 10:20:30 +0100"', msg)
        self.assertEqual(typ, "OK")
        mo = re.search(rb"\[APPENDUID (\d+) (\d+)\]", data[0])
        self.assertIsNotNone(mo, data)
        self.assertEqual(int(mo.group(2)), 1)
        self.assertEqual(m.append("Nope", None, None, msg)[0], "NO")
        self.assertEqual(int(self.ok(m.select("Drafts"))[0]), 1)
        data = self.ok(m.fetch("1", "(FLAGS INTERNALDATE BODY.PEEK[] UID)"))
        self.assertEqual(data[0][1], msg)
        self.assertIn(b"\\Draft", data[0][0])
        self.assertIn(b"\\Seen", data[0][0])
        self.assertIn(b'" 1-Feb-2021 09:20:30 +0000"', data[0][0])
        # a second APPEND into the selected folder is announced
        typ, data = m.append("Drafts", None, None, msg)
        self.assertIn(b"APPENDUID", data[0])
        self.assertIn(b"2", m.untagged_responses.get("EXISTS", [b""])[-1])
        files = os.listdir(os.path.join(self.rg.maildir("append"), ".Drafts", "cur"))
        self.assertEqual(len(files), 2)
        self.assertTrue(any(f.endswith(":2,DS") for f in files), files)
        m.logout()

    def test_copy_move_uidplus(self):
        m = self.login("copy")
        self.assertEqual(int(self.ok(m.select("INBOX"))[0]), 3)
        typ, data = m.copy("1:2", "Trash")
        self.assertEqual(typ, "OK")
        self.assertIn(b"[COPYUID ", data[0])
        self.assertEqual(m.copy("1", "Nowhere")[0], "NO")
        self.assertIn(b"TRYCREATE", m.copy("1", "Nowhere")[1][0])
        typ, data = m.uid("MOVE", "3", "Junk")
        self.assertEqual(typ, "OK")
        self.assertEqual(m.untagged_responses.get("EXPUNGE"), [b"3"])
        st = self.ok(m.status("Junk", "(MESSAGES)"))[0]
        self.assertIn(b"MESSAGES 1", st)
        st = self.ok(m.status("Trash", "(MESSAGES)"))[0]
        self.assertIn(b"MESSAGES 2", st)
        # UID EXPUNGE only removes the named \Deleted messages
        self.ok(m.store("1:2", "+FLAGS", "(\\Deleted)"))
        self.ok(m.uid("EXPUNGE", "2"))
        self.assertEqual(self.ok(m.search(None, "ALL"))[0], b"1")
        self.ok(m.close())
        self.assertEqual(int(self.ok(m.select("Trash"))[0]), 2)
        data = self.ok(m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
        self.assertEqual(data[0][1], b"Subject: Welcome\r\n\r\n")
        m.logout()

    def test_search(self):
        m = self.login("search")
        self.ok(m.select("INBOX"))
        self.assertEqual(self.ok(m.search(None, "ALL"))[0], b"1 2 3")
        self.assertEqual(self.ok(m.search(None, "FROM", "bob"))[0], b"2")
        self.assertEqual(self.ok(m.search(None, "SUBJECT", "third"))[0], b"3")
        self.assertEqual(self.ok(m.search("UTF-8", "BODY", '"LINE 199"'))[0], b"3")
        self.assertEqual(self.ok(m.search(None, "TEXT", "alice@example"))[0], b"1")
        self.assertEqual(self.ok(m.search(None, "OR", "FROM", "alice", "FROM", "carol"))[0], b"1 3")
        self.assertEqual(self.ok(m.search(None, "NOT", "FROM", "alice"))[0], b"2 3")
        self.assertEqual(self.ok(m.search(None, "LARGER", "1000"))[0], b"3")
        self.assertEqual(self.ok(m.search(None, "SENTON", "23-Nov-2026"))[0], b"1 2 3")
        self.assertEqual(self.ok(m.search(None, "SINCE", "1-Jan-2030"))[0], b"")
        self.assertEqual(self.ok(m.search(None, "2:*", "UNSEEN"))[0], b"2 3")
        self.assertEqual(self.ok(m.search(None, "HEADER", "Message-ID", "<2@"))[0], b"2")
        self.ok(m.store("2", "+FLAGS", "\\Flagged"))
        self.assertEqual(self.ok(m.search(None, "FLAGGED"))[0], b"2")
        self.assertEqual(self.ok(m.uid("SEARCH", "UID", "2:3"))[0], b"2 3")
        self.assertEqual(m.search("KOI8-R", "ALL")[0], "NO")
        with self.assertRaises(imaplib.IMAP4.error):
            m.search(None, "BOGUSKEY")
        self.ok(m.noop())
        m.logout()

    def test_envelope_bodystructure(self):
        m = self.login("mime")
        self.ok(m.append("INBOX", None, None, MIME_MSG))
        self.ok(m.select("INBOX"))
        data = self.ok(m.fetch("4", "(ENVELOPE BODYSTRUCTURE)"))
        resp = data[0] if isinstance(data[0], bytes) else b"".join(
            x if isinstance(x, bytes) else x[0] + x[1] for x in data)
        self.assertIn(b'"Mon, 23 Nov 2026 10:00:00 +0000" "=?UTF-8?B?SMOpbGxv?= mixed" '
                      b'(("Alice A." NIL "alice" "example.com"))', resp)
        self.assertIn(b'((NIL NIL "bob" "example.com")("Carol" NIL "carol" "example.org"))', resp)
        self.assertIn(b'"<mime@example.com>"', resp)
        self.assertIn(b'(("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 10 0', resp)
        self.assertIn(b'"alternative" ("boundary" "inner")', resp)
        self.assertIn(b'"message" "rfc822" NIL NIL NIL "7bit"', resp)
        self.assertIn(b'("attachment" ("filename" "a.bin"))', resp)
        self.assertIn(b'"mixed" ("boundary" "outer") NIL NIL NIL)', resp)
        data = self.ok(m.fetch("4", "(BODY.PEEK[1.2] BODY.PEEK[2.TEXT] BODY.PEEK[3.MIME])"))
        self.assertEqual(data[0][1], b"<p>html</p>")
        self.assertEqual(data[1][1], b"nested body")
        self.assertIn(b"Content-Disposition: attachment", data[2][1])
        self.assertEqual(self.ok(m.search(None, "SUBJECT", "mixed"))[0], b"4")
        data = self.ok(m.fetch("4", "(FLAGS)"))
        self.assertNotIn(b"\\Seen", data[0])
        self.ok(m.fetch("4", "(BODY[1.1])"))
        self.assertIn(b"\\Seen", self.ok(m.fetch("4", "(FLAGS)"))[0])
        m.logout()

    def test_two_sessions(self):
        a = self.login("sync")
        b = self.login("sync")
        self.assertEqual(int(self.ok(a.select("INBOX"))[0]), 3)
        self.assertEqual(int(self.ok(b.select("INBOX"))[0]), 3)
        # b flags and expunges; a hears of it on NOOP
        self.ok(b.store("1", "+FLAGS", "(\\Flagged)"))
        self.ok(b.store("2", "+FLAGS", "(\\Deleted)"))
        self.ok(b.expunge())
        time.sleep(0.05)
        self.ok(a.noop())
        self.assertEqual(a.untagged_responses.get("EXPUNGE"), [b"2"])
        fetches = b" ".join(x for x in a.untagged_responses.pop("FETCH", []) if isinstance(x, bytes))
        self.assertIn(b"\\Flagged", fetches)
        # a delivery into new/ and an APPEND from b show up in a as EXISTS
        self.rg.deliver("sync", b"Subject: delivered\n\nhi\n")
        self.ok(b.append("INBOX", None, None, b"Subject: appended\r\n\r\nx\r\n"))
        self.ok(a.noop())
        self.assertEqual(a.untagged_responses.get("EXISTS", [b""])[-1], b"4")
        data = self.ok(a.fetch("1:*", "(UID)"))
        self.assertEqual(len(data), 4)
        # UIDs stay stable between the sessions
        ua = self.ok(a.uid("SEARCH", "ALL"))[0]
        self.ok(b.noop())
        ub = self.ok(b.uid("SEARCH", "ALL"))[0]
        self.assertEqual(ua, ub)
        a.logout()
        b.logout()

    def test_concurrent_appends(self):
        """sessions appending at once, plus deliveries into new/: every
        message gets one UID, none is lost"""
        import threading
        results, errors = [], []

        def worker(n):
            try:
                m = self.login("race")
                for i in range(15):
                    typ, data = m.append("INBOX", None, None, b"Subject: %d-%d\r\n\r\nx\r\n" % (n, i))
                    mo = re.search(rb"APPENDUID \d+ (\d+)", data[0])
                    results.append(int(mo.group(1)))
                    if i % 5 == 0:
                        m.select("INBOX")
                m.logout()
            except Exception as e:  # reported below
                errors.append(e)
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
        for t in threads:
            t.start()
        for i in range(10):
            self.rg.deliver("race", b"Subject: delivered %d\n\nx\n" % i, name="race%d.host" % i)
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(len(set(results)), 45)
        m = self.login("race")
        self.assertEqual(int(self.ok(m.select("INBOX"))[0]), 3 + 45 + 10)
        uids = [int(x) for x in self.ok(m.uid("SEARCH", "ALL"))[0].split()]
        self.assertEqual(len(set(uids)), 58)
        self.assertTrue(set(results) <= set(uids))
        m.logout()

    def test_idle_sees_delivery(self):
        m = self.login("idle")
        self.ok(m.select("INBOX"))
        tag = m._new_tag()
        m.send(tag + b" IDLE\r\n")
        self.assertTrue(m.readline().startswith(b"+"))
        self.rg.deliver("idle", b"Subject: during idle\n\nping\n")
        m.sock.settimeout(10)
        line = m.readline()
        while b"EXISTS" not in line:
            self.assertTrue(line, "connection closed")
            line = m.readline()
        self.assertEqual(line.strip(), b"* 4 EXISTS")
        m.send(b"DONE\r\n")
        line = m.readline()
        while not line.startswith(tag):
            line = m.readline()
        self.assertIn(b"OK", line)
        m.logout()

    def test_bad_input_keeps_session(self):
        m = self.login("folders")
        s = m.sock
        s.sendall(b"x1 FETCH\r\nx2 SELECT \"open\r\nx3 APPEND INBOX {999999999}\r\nx4 NOOP\r\n")
        got = b""
        s.settimeout(10)
        while b"x4 OK" not in got:
            chunk = s.recv(4096)
            self.assertTrue(chunk)
            got += chunk
        self.assertIn(b"x1 BAD", got)
        self.assertIn(b"x2 BAD", got)
        self.assertIn(b"x3 BAD", got)
        m.logout()


if __name__ == "__main__":
    unittest.main()
