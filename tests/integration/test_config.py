"""The command line against real configuration files."""
import os
import subprocess
import tempfile
import unittest

import rgenv


class ConfigCli(unittest.TestCase):
    def run_rg(self, *args):
        return subprocess.run([os.path.join(rgenv.build_dir(), "bin", "ringgate")] + list(args),
                              capture_output=True, text=True, timeout=30)

    def test_print_config_round_trips(self):
        rg = rgenv.Ringgate(mode="performance")
        try:
            out = self.run_rg("-c", rg.conf, "-n")
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn("service_count = 0", out.stdout)
            self.assertIn("port = %d" % rg.imap_port, out.stdout)
            with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
                f.write(out.stdout)
            again = self.run_rg("-c", f.name, "-n")
            os.unlink(f.name)
            self.assertEqual(again.returncode, 0, again.stderr)
            def settings(text):  # the header comment names the file it read
                return [ln for ln in text.splitlines() if not ln.startswith("#")]
            self.assertEqual(settings(again.stdout), settings(out.stdout))
        finally:
            rg.cleanup()

    def test_errors_name_file_and_line(self):
        cases = [
            ("listen = 127.0.0.1\n\nsevice imap-login {\n}\n", ":3:"),
            ("listen = 127.0.0.1\nfoo_bar = 1\n", ":2: unknown setting 'foo_bar'"),
            ("service imap-login {\n  service_count = many\n}\n", ":2:"),
            ("service imap-login {\n  inet_listener imap {\n    port = 1\n", ":"),
            ("!include /nonexistent/ringgate.conf\n", ":1:"),
        ]
        for text, expect in cases:
            with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
                f.write(text)
            for args in (["-c", f.name, "-n"], ["-c", f.name, "-F"]):
                out = self.run_rg(*args)
                self.assertNotEqual(out.returncode, 0, text)
                self.assertIn(f.name + expect, out.stderr, text)
            os.unlink(f.name)


if __name__ == "__main__":
    unittest.main()
