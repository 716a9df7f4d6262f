"""`ringgate pw` against Dovecot's own `doveadm pw`: each stored password
ringgate makes is verified by doveadm, and each one doveadm makes is
verified by `ringgate pw -t` (skipped where doveadm is not installed);
a wrong password is refused both ways; a password comes from stdin when
it is not given with -p; SCRAM iteration counts follow -r."""
import os
import shutil
import subprocess
import unittest

import rgenv

SCHEMES = ("SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5", "SHA512-CRYPT", "SHA256-CRYPT",
           "BLF-CRYPT", "PLAIN")


def ringgate(*args, stdin=None):
    return subprocess.run([os.path.join(rgenv.build_dir(), "bin", "ringgate"), "pw"] + list(args),
                          input=stdin, capture_output=True, text=True, timeout=60)


class Pw(unittest.TestCase):
    def test_ringgate_verifies_its_own(self):
        for scheme in SCHEMES:
            out = ringgate("-s", scheme, "-p", "s3cret pass")
            self.assertEqual(out.returncode, 0, out.stderr)
            h = out.stdout.strip()
            self.assertTrue(h.startswith("{%s}" % scheme), h)
            ok = ringgate("-t", h, "-p", "s3cret pass")
            self.assertEqual(ok.returncode, 0, ok.stderr)
            self.assertEqual(ok.stdout.strip(), h + " (verified)")
            bad = ringgate("-t", h, "-p", "s3cret pasS")
            self.assertEqual(bad.returncode, 1)
            self.assertIn("password mismatch", bad.stderr)

    def test_stdin_and_rounds(self):
        out = ringgate("-s", "SCRAM-SHA-256", "-r", "5000", stdin="from stdin\n")
        self.assertEqual(out.returncode, 0, out.stderr)
        h = out.stdout.strip()
        self.assertRegex(h, r"^\{SCRAM-SHA-256\}5000,[A-Za-z0-9+/=]{24},[A-Za-z0-9+/=]{44},"
                            r"[A-Za-z0-9+/=]{44}$")
        self.assertEqual(ringgate("-t", h, "-p", "from stdin").returncode, 0)
        self.assertEqual(ringgate("-s", "NOPE", "-p", "x").returncode, 1)
        self.assertIn("SCRAM-SHA-256", ringgate("-l").stdout.split())

    @unittest.skipUnless(shutil.which("doveadm"), "Dovecot's doveadm is not installed")
    def test_dovecot_agrees(self):
        for scheme in SCHEMES:
            h = ringgate("-s", scheme, "-p", "pencil").stdout.strip()
            dc = subprocess.run(["doveadm", "pw", "-t", h, "-p", "pencil"],
                                capture_output=True, text=True, timeout=60)
            self.assertEqual(dc.returncode, 0, "%s: doveadm refuses %s: %s" % (scheme, h, dc.stderr))
            dc = subprocess.run(["doveadm", "pw", "-t", h, "-p", "pencil2"],
                                capture_output=True, text=True, timeout=60)
            self.assertNotEqual(dc.returncode, 0, h)
            made = subprocess.run(["doveadm", "pw", "-s", scheme, "-p", "pencil"],
                                  capture_output=True, text=True, timeout=60)
            self.assertEqual(made.returncode, 0, made.stderr)
            d = made.stdout.strip()
            self.assertEqual(ringgate("-t", d, "-p", "pencil").returncode, 0, d)
            self.assertEqual(ringgate("-t", d, "-p", "pencil2").returncode, 1, d)


if __name__ == "__main__":
    unittest.main()
