"""pambench.py — the system-users section of `make bench` (issue 16):
LOGIN sessions/s and server CPU per session with `passdb { driver = pam }`
and `userdb { driver = passwd }`, ringgate against Dovecot, the auth cache
off and on, in one run. `bench/run.py --only pam` runs it alone.

The world: a system user made for the run (useradd + chpasswd, so its
password is in /etc/shadow under the system's default crypt, yescrypt on
Debian 12), its Maildir with a few small messages, and a private PAM
service /etc/pam.d/rgbench-pam-PID (pam_unix auth + account): all removed
at the end. Four servers, each in its own cgroup (harness.Accounting),
high-performance mode:

- rg-pam / rg-pam-cache: ringgate, the PAM conversation in its
  auth-workers; -cache with `auth_cache_size = 1M` and `cache_key=%u%s`;
- dc-pam / dc-pam-cache: a private Dovecot (harness.DovecotServer), the
  same passdb/userdb blocks and cache settings.

Measurement: rgbench `--kind login` (greeting, LOGIN, LOGOUT: the worker
starts and ends), IMAP, plaintext, a few clients, rounds interleaved,
medians; server CPU per session from the cgroup (every process of the
server, auth and its workers included).
"""
import json
import os
import shutil
import subprocess
import tempfile
import time

import harness as h
import rgenv  # noqa: E402  (harness puts tests/integration on the path)

PAM_USER = "rgbench-pam"
PAM_PASS = "rgbench pam pass"
CLIENTS = 4


def pam_missing():
    if not rgenv.is_root():
        return "needs root (useradd, /etc/pam.d)"
    for tool in ("useradd", "chpasswd", "userdel"):
        if shutil.which(tool) is None:
            return "%s is not installed" % tool
    if not os.path.exists("/lib/x86_64-linux-gnu/security/pam_unix.so") and \
            not any(os.path.exists(os.path.join(d, "pam_unix.so"))
                    for d in ("/lib/security", "/usr/lib/security",
                              "/usr/lib/x86_64-linux-gnu/security")):
        return "pam_unix.so not found"
    return None


def make_user(tmp):
    """the system user, its Maildir; returns its home"""
    subprocess.run(["userdel", "-r", PAM_USER], capture_output=True)
    home = os.path.join(tmp, "home-pam")
    subprocess.run(["useradd", "-m", "-d", home, "-s", "/usr/sbin/nologin", PAM_USER],
                   check=True)
    subprocess.run(["chpasswd"], input="%s:%s\n" % (PAM_USER, PAM_PASS), text=True, check=True)
    import pwd
    pw = pwd.getpwnam(PAM_USER)
    md = os.path.join(home, "Maildir")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, sub), exist_ok=True)
    for i, m in enumerate(rgenv.MESSAGES):
        with open(os.path.join(md, "cur", "1600000%03d.M%dP1.bench:2," % (i, i)), "wb") as f:
            f.write(rgenv.crlf(m))
    for d, _, files in os.walk(home):
        os.chown(d, pw.pw_uid, pw.pw_gid)
        for fn in files:
            os.chown(os.path.join(d, fn), pw.pw_uid, pw.pw_gid)
    return home


def blocks(service, cache):
    args = ("cache_key=%%u%%s %s" % service) if cache else service
    text = ("passdb {\n  driver = pam\n  args = %s\n}\nuserdb {\n  driver = passwd\n}\n" % args)
    if cache:
        text += "auth_cache_size = 1M\nauth_cache_ttl = 1 hours\n"
    return text


def swap_db(conf_path, passwd_path, text):
    """replace the passwd-file passdb/userdb blocks of a generated config"""
    with open(conf_path) as f:
        conf = f.read()
    old = ("passdb {\n  driver = passwd-file\n  args = %s\n}\n"
           "userdb {\n  driver = passwd-file\n  args = %s\n}\n" % (passwd_path, passwd_path))
    if old not in conf:
        raise RuntimeError("%s: no passwd-file blocks to replace" % conf_path)
    with open(conf_path, "w") as f:
        f.write(conf.replace(old, text))


def measure(rgbench, srv, duration):
    cmd = [rgbench, "--port", str(srv.ports["imap"]), "--proto", "imap", "--kind", "login",
           "--clients", str(CLIENTS), "--user", PAM_USER, "--pass", PAM_PASS,
           "--timeout", "30", "--drain", "--duration", str(duration), "--quiet"]
    time.sleep(0.3)  # the previous measurement's sessions wind down
    c0 = srv.acct.cpu_ns()
    res, r = h.rgbench_run(cmd)
    c1 = srv.acct.cpu_ns()
    if res is None:
        raise RuntimeError("pam login against %s: no result\n%s" % (srv.name, r.stderr))
    rec = {"server": srv.name, "ok": res["ok"], "rgbench": res, "cmd": " ".join(cmd)}
    n = res["sessions"]
    if res["ok"] and n:
        rec.update(rate=res["sessions_per_sec"], cpu_ms=(c1 - c0) / 1e6 / n,
                   p50_ms=res["latency_ms"]["p50"], p99_ms=res["latency_ms"]["p99"])
    return rec


def pam_compare(args):
    """Runs the section; returns what pam_markdown() renders."""
    out = {"skipped": pam_missing(), "rows": [], "clients": CLIENTS, "runs": args.runs,
           "duration": args.duration, "errors": [], "versions": {}}
    if out["skipped"]:
        h.log("pam section skipped: " + out["skipped"])
        return out
    rgbench = os.path.join(args.build, "bin", "rgbench")
    tmp = tempfile.mkdtemp(prefix="rgbench-pam-")
    os.chmod(tmp, 0o755)
    service = "rgbench-pam-%d" % os.getpid()
    pam_file = "/etc/pam.d/" + service
    servers = []
    try:
        make_user(tmp)
        with open(pam_file, "w") as f:
            f.write("auth required pam_unix.so\naccount required pam_unix.so\n")
        world = h.World(tmp)
        plimit = 200
        for cache in (False, True):
            suffix = "-cache" if cache else ""
            rg = h.RinggateServer("rg-pam" + suffix, "performance", world, tmp, plimit,
                                  args.build)
            swap_db(rg.env.conf, world.passwd, blocks(service, cache))
            servers.append(rg)
            if shutil.which("dovecot"):
                dc = h.DovecotServer("dc-pam" + suffix, "performance", world, tmp, plimit)
                swap_db(dc.conf, world.passwd, blocks(service, cache))
                # its INDEX/CONTROL directories are made per user: the
                # PAM user is not the world's
                os.chmod(os.path.join(dc.dir, "index"), 0o1777)
                servers.append(dc)
        if not shutil.which("dovecot"):
            h.log("dovecot not installed: the pam section measures ringgate only")
        for s in servers:
            s.start()
            out["versions"][s.kind] = s.version()
        # a warm-up run each, not counted: auth-workers started, the
        # cache filled (the first login of every client misses it)
        for s in servers:
            measure(rgbench, s, 1)
        results = {s.name: [] for s in servers}
        for rnd in range(1, args.runs + 1):
            for s in servers:
                rec = measure(rgbench, s, args.duration)
                rec["round"] = rnd
                results[s.name].append(rec)
                if not rec["ok"]:
                    out["errors"].append("%s round %d: %s" % (
                        s.name, rnd, json.dumps(rec["rgbench"].get("errors_by_kind"))))
                h.log("pam %s round %d: %s sessions/s, %s ms CPU/session" % (
                    s.name, rnd, h.fmt(rec.get("rate"), "%.1f"), h.fmt(rec.get("cpu_ms"), "%.2f")))
        for s in servers:
            ok = [r for r in results[s.name] if r["ok"] and "rate" in r]
            out["rows"].append({
                "server": s.name, "kind": s.kind, "cache": s.name.endswith("-cache"),
                "rate": h.med([r["rate"] for r in ok]) if ok else None,
                "cpu_ms": h.med([r["cpu_ms"] for r in ok]) if ok else None,
                "p99_ms": h.med([r["p99_ms"] for r in ok]) if ok else None,
                "cmd": results[s.name][0]["cmd"] if results[s.name] else "",
            })
    finally:
        h.stop_all(servers)
        if os.path.exists(pam_file):
            os.unlink(pam_file)
        subprocess.run(["userdel", "-r", PAM_USER], capture_output=True)
        if not os.environ.get("RINGGATE_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def pam_markdown(p):
    L = ["## System users: PAM + passwd, auth cache off and on", ""]
    if p["skipped"]:
        L += ["Skipped: %s." % p["skipped"], ""]
        return "\n".join(L)
    L.append("`passdb { driver = pam }` (pam_unix against /etc/shadow, the system's default "
             "crypt) and `userdb { driver = passwd }`; *-cache* adds `auth_cache_size = 1M` and "
             "the PAM passdb's `cache_key=%%u%%s`. rgbench `--kind login` (LOGIN and LOGOUT, "
             "a worker per session), IMAP, plaintext, c=%d, %d rounds of %.0f s interleaved, "
             "medians. CPU is the server's whole cgroup (auth, its workers, login, "
             "the mail process) per session. %s." % (
                 p["clients"], p["runs"], p["duration"],
                 "; ".join("%s: %s" % kv for kv in sorted(p["versions"].items()))))
    L += ["", "| server | cache | sessions/s | CPU ms/session | p99 ms |", "|---|---|---|---|---|"]
    for r in p["rows"]:
        L.append("| %s | %s | %s | %s | %s |" % (
            r["server"], "on" if r["cache"] else "off", h.fmt(r["rate"], "%.1f"),
            h.fmt(r["cpu_ms"], "%.2f"), h.fmt(r["p99_ms"], "%.1f")))
    if p["errors"]:
        L += ["", "Errors: " + "; ".join(p["errors"])]
    L.append("")
    return "\n".join(L)
