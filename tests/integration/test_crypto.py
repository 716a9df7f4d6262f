"""The crypto build and the key exchange groups, through a real ringgate:
`ringgate -V` and the start-up log name the wolfSSL build this binary was
linked with (RINGGATE_WOLFSSL=asm or system, from CMake) and, for asm, the
CPU paths wolfSSL's own CPUID probe picked, which must agree with the
kernel's /proc/cpuinfo; ssl_curve_list decides which key shares a real
OpenSSL client (s_client) gets served with, in TLS 1.3 and 1.2; a bad curve
name stops start-up with file:line."""
import os
import re
import subprocess
import unittest

import rgenv

# /proc/cpuinfo flag -> the name -V gives the path wolfSSL picks with it
CPU_PATHS = (("aes", "AES-NI"), ("avx", "AVX"), ("avx2", "AVX2"), ("bmi2", "BMI2"), ("adx", "ADX"))


def cpu_flags():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


def version_output():
    out = subprocess.run([os.path.join(rgenv.build_dir(), "bin", "ringgate"), "-V"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout


class CryptoBuild(unittest.TestCase):
    def crypto_line(self):
        lines = [x for x in version_output().splitlines() if x.startswith("crypto: ")]
        self.assertEqual(len(lines), 1, version_output())
        return lines[0][len("crypto: "):]

    def test_version_names_the_build_cmake_chose(self):
        line = self.crypto_line()
        self.assertRegex(line, r"^wolfSSL \d+\.\d+\.\d+ (asm|system) build")
        want = os.environ.get("RINGGATE_WOLFSSL")
        if want not in ("asm", "system"):
            self.skipTest("RINGGATE_WOLFSSL not set (run through ctest)")
        self.assertIn(" %s build" % want, line)

    def test_cpu_paths_match_the_cpu(self):
        line = self.crypto_line()
        if " asm build" not in line:
            self.assertIn("no assembly", line)
            self.assertNotIn("CPU paths", line)
            return
        paths = line.split("CPU paths:", 1)[1].split()
        flags = cpu_flags()
        for flag, name in CPU_PATHS:
            self.assertEqual(name in paths, flag in flags,
                             "%s in -V (%s) but cpuinfo says %s" % (name, line, flag in flags))
        if not any(flag in flags for flag, _ in CPU_PATHS):
            self.assertIn("none (portable code)", line)

    def test_startup_log_names_the_build(self):
        rg = rgenv.Ringgate(tls=True)
        try:
            rg.start()
            m = re.search(r"starting up \(crypto: (.*)\)$", rg.logs(), re.M)
            self.assertIsNotNone(m, rg.logs())
            self.assertEqual(m.group(1), self.crypto_line())
        finally:
            rg.cleanup()


def s_client(port, cafile, groups, tls="-tls1_3"):
    """One real OpenSSL handshake offering only `groups` (key share for the
    first); (ok, negotiated group as s_client names it, output)."""
    out = subprocess.run(
        ["openssl", "s_client", tls, "-groups", groups, "-CAfile", cafile, "-ign_eof",
         "-verify_return_error", "-connect", "127.0.0.1:%d" % port],
        input=b"a LOGOUT\r\n", capture_output=True, timeout=30)
    text = out.stdout.decode(errors="replace") + out.stderr.decode(errors="replace")
    ok = "* OK" in text and ("Server Temp Key" in text or "Peer Temp Key" in text)
    m = re.search(r"(?:Server|Peer) Temp Key: ([^,\n]*)(?:, ([^,\n]*))?", text)
    group = None
    if m:
        # "X25519, 253 bits" or "ECDH, prime256v1, 256 bits"
        group = m.group(2) if m.group(1) == "ECDH" else m.group(1)
    return ok, group, text


class CurveList(unittest.TestCase):
    def run_with(self, curve_list):
        extra = "ssl_curve_list = %s\n" % curve_list if curve_list is not None else ""
        rg = rgenv.Ringgate(tls=True, extra_conf=extra)
        rg.start()
        self.addCleanup(rg.cleanup)
        return rg

    def check(self, rg, groups, tls, want):
        ok, group, text = s_client(rg.imaps_port, rg.cert, groups, tls)
        if want is None:
            self.assertFalse(ok, "%s %s: handshake succeeded (%s)\n%s" % (groups, tls, group, text))
        else:
            self.assertTrue(ok, "%s %s failed:\n%s" % (groups, tls, text))
            self.assertEqual(group, want, text)

    # TLS 1.2 clients must also offer P-256: OpenSSL refuses the ECDSA
    # P-256 certificate's signature otherwise ("wrong curve")
    def test_default_serves_x25519_and_p256(self):
        rg = self.run_with(None)
        self.check(rg, "X25519", "-tls1_3", "X25519")
        self.check(rg, "P-256", "-tls1_3", "prime256v1")
        self.check(rg, "P-384", "-tls1_3", "secp384r1")
        self.check(rg, "X25519:P-256", "-tls1_2", "X25519")
        self.check(rg, "P-256", "-tls1_2", "prime256v1")

    def test_list_limits_the_groups(self):
        rg = self.run_with("prime256v1")
        self.check(rg, "P-256", "-tls1_3", "prime256v1")
        self.check(rg, "X25519", "-tls1_3", None)
        self.check(rg, "P-384", "-tls1_3", None)
        # TLS 1.2: X25519 is not used although the client prefers it
        self.check(rg, "X25519:P-256", "-tls1_2", "prime256v1")

    def test_key_share_for_an_unlisted_group_gets_a_retry(self):
        # the client offers X25519 and P-384 with a key share for X25519
        # only; the server (P-384 only) asks for P-384 (HelloRetryRequest)
        rg = self.run_with("P-384")
        ok, group, text = s_client(rg.imaps_port, rg.cert, "X25519:P-384")
        self.assertTrue(ok, text)
        self.assertEqual(group, "secp384r1", text)

    def test_listed_key_share_is_taken_without_retry(self):
        rg = self.run_with("P-256:X25519")
        ok, group, text = s_client(rg.imaps_port, rg.cert, "X25519:P-256")
        self.assertTrue(ok, text)
        self.assertEqual(group, "X25519", text)

    def test_bad_name_stops_startup_with_file_and_line(self):
        rg = rgenv.Ringgate(tls=True, extra_conf="ssl_curve_list = X25519:secp256k2\n")
        try:
            out = subprocess.run(rg.command("-F"), capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 89, out.stderr)
            with open(rg.conf) as f:
                line = [n for n, x in enumerate(f.read().splitlines(), 1)
                        if x.startswith("ssl_curve_list")][0]
            self.assertIn("%s:%d: invalid value for 'ssl_curve_list': unknown curve 'secp256k2'"
                          % (rg.conf, line), out.stderr)
        finally:
            rg.cleanup()


if __name__ == "__main__":
    unittest.main()
