"""The command line against real configuration files."""
import os
import re
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

    def test_print_all_round_trips_with_secrets(self):
        """-a prints every setting; -a -P also an inline key; both load back."""
        text = ("ssl_cert = </dev/null\nssl = no\n"
                "local_name x.example {\n  ssl_cert = CERT\n  ssl_key = KEY\n}\n"
                "service imap-login {\n  service_count = 0\n"
                "  inet_listener extra {\n    port = 1234\n  }\n}\n")
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write(text)
        try:
            hidden = self.run_rg("-c", f.name, "-a")
            self.assertEqual(hidden.returncode, 0, hidden.stderr)
            self.assertNotIn("KEY", hidden.stdout)
            self.assertIn("ssl_key = # hidden", hidden.stdout)
            shown = self.run_rg("-c", f.name, "-a", "-P")
            self.assertIn("  ssl_key = KEY\n", shown.stdout)
            self.assertIn("port = 1234", shown.stdout)
            with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as g:
                g.write(shown.stdout)
            again = self.run_rg("-c", g.name, "-a", "-P")
            os.unlink(g.name)
            self.assertEqual(again.returncode, 0, again.stderr)
            body = lambda t: [ln for ln in t.splitlines() if not ln.startswith("#")]
            self.assertEqual(body(again.stdout), body(shown.stdout))
        finally:
            os.unlink(f.name)


DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                    "docs", "configuration.md")


def doc_rows():
    """docs/configuration.md table rows: {section: {key: default cell}}"""
    rows, section = {}, None
    for line in open(DOCS, encoding="utf-8"):
        if line.startswith("## ") or line.startswith("### "):
            section = line.split()[1].strip("`")
        m = re.match(r"^\| `([a-z_]+)` \| (.*?) \|", line)
        # dovecot-sql.conf.ext / dovecot-ldap.conf.ext: another file's keys
        if m and not section.endswith(".conf.ext"):
            rows.setdefault(section, {})[m.group(1)] = m.group(2)
    return rows


def printed_keys(text):
    """(section, key, value) for every setting `ringgate -a` printed"""
    out, stack = [], []
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("#") or not s:
            continue
        if s.endswith("{"):
            stack.append(s.split()[0])
        elif s == "}":
            stack.pop()
        else:
            key, _, value = s.partition(" = ")
            out.append((stack[-1] if stack else "Global", key.rstrip(" ="), value))
    return out


class ConfigDocs(unittest.TestCase):
    """docs/configuration.md cannot drift from the settings table."""

    def test_every_setting_documented_with_its_default(self):
        conf = ("ssl = no\npassdb {\n  driver = passwd-file\n  args = /x\n}\n"
                "userdb {\n  driver = passwd-file\n  args = /x\n}\n"
                "local_name x.example {\n  ssl_cert = C\n  ssl_key = K\n}\n")
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write(conf)
        out = subprocess.run([os.path.join(rgenv.build_dir(), "bin", "ringgate"),
                              "-c", f.name, "-a"], capture_output=True, text=True, timeout=30)
        os.unlink(f.name)
        self.assertEqual(out.returncode, 0, out.stderr)
        rows = doc_rows()
        sections = {"Global": "Global", "passdb": "passdb", "userdb": "passdb",
                    "local_name": "local_name", "service": "service",
                    "inet_listener": "inet_listener"}
        seen = 0
        for section, key, value in printed_keys(out.stdout):
            doc = rows.get(sections[section], {})
            self.assertIn(key, doc, "%s setting '%s' is missing from docs/configuration.md"
                          % (section, key))
            seen += 1
            if section == "Global" and key != "ssl":  # the test sets ssl = no
                cell = doc[key]
                default = "" if cell == "(empty)" else cell.strip("`")
                self.assertEqual(default, value, "default of '%s' in docs/configuration.md" % key)
        self.assertGreater(seen, 40)
        # and nothing documented that does not exist
        printed = {(sections[s], k) for s, k, _ in printed_keys(out.stdout)}
        for section, keys in rows.items():
            for key in keys:
                self.assertIn((section, key), printed,
                              "docs/configuration.md documents '%s' (%s), ringgate has no such setting"
                              % (key, section))


if __name__ == "__main__":
    unittest.main()
