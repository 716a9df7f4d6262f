"""hisecbench.py — the high-security section of `make bench` (issue 19):
a login process per connection (`service_count = 1`), ringgate against
Dovecot side by side, plain and imaps, greeting-only (greeting + LOGOUT)
and LOGIN (LOGIN + LOGOUT, a worker per session). `bench/run.py --only
hisec` runs it alone.

Servers, each in its own cgroup (harness.Accounting), rounds interleaved,
medians:

- rg-sec: ringgate as shipped (login processes forked from a template,
  `login_template_forks = 100`);
- rg-sec-exec: the same build with `login_template_forks = 0` (a fork +
  exec of ringgate-login per connection: what the template replaces);
- rg-sec-sni: rg-sec with 10,000 `local_name` SNI sections, and
  rg-sec-passwd: rg-sec with 100,000 more lines in the passwd-file (a
  start-up that must not scale with the configuration);
- dc-sec: a private Dovecot, `service_count = 1` (harness.DovecotServer).

Then a perf profile (cgroup-filtered) of greeting-only plain sessions of
rg-sec and rg-sec-exec: where a session's start goes, and the floor under
it (bench/rgforkfloor.c): fork + exit of a tiny process and of one shaped
like rg-sec's imap template, copy-on-write faults, vfork + exec, on the
same machine in the same run. What the figures mean is in
docs/performance-hisec-notes.md.
"""
import os
import shutil
import subprocess
import tempfile

import harness as h

CLIENTS = 32
CASES = [("prelogin", "plain"), ("prelogin", "tls"), ("login", "plain"), ("login", "tls")]
SNI_NAMES = 10000
PASSWD_LINES = 100000


def _append_conf(srv, text):
    with open(srv.env.conf, "a") as f:
        f.write(text)


def _add_sni(srv, world):
    """10,000 SNI names, all with the world's certificate"""
    blocks = ["local_name n%05d.example.net {\n  ssl_cert = <%s\n  ssl_key = <%s\n}\n" % (
        i, world.cert, world.key) for i in range(SNI_NAMES)]
    _append_conf(srv, "".join(blocks))


def _add_passwd(srv, world):
    """the world's passwd-file and 100,000 more users"""
    big = os.path.join(srv.env.tmp, "passwd-big")
    with open(world.passwd) as f:
        head = f.read()
    with open(big, "w") as f:
        f.write(head)
        for i in range(PASSWD_LINES):
            f.write("filler%06d:{PLAIN}x:%d:%d::/nonexistent::\n" % (i, srv.env.uid, srv.env.gid))
    os.chmod(big, 0o600)
    with open(srv.env.conf) as f:
        conf = f.read()
    with open(srv.env.conf, "w") as f:
        f.write(conf.replace("args = %s\n" % world.passwd, "args = %s\n" % big))


def _template_pid(srv):
    """the pid of srv's imap-login template, or None"""
    for pid in srv.acct.pids():
        try:
            with open("/proc/%d/comm" % pid) as f:
                comm = f.read().strip()
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if comm == "ringgate-ltmpl" and b"imap" in argv:
            return pid
    return None


def _floor(args, srv):
    """rgforkfloor's table, the process shaped like srv's template"""
    tool = os.path.join(args.build, "bin", "rgforkfloor")
    pid = _template_pid(srv)
    if not os.path.exists(tool) or pid is None:
        return None
    quick = getattr(args, "quick", False)
    r = subprocess.run([tool, "-l", str(pid), "-n", "100" if quick else "300",
                        "-r", "3" if quick else "5", "-w", "20"],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        h.log("rgforkfloor failed: %s" % r.stderr[-500:])
        return None
    return r.stdout.strip()


def hisec_compare(args, with_profile=True):
    """Runs the section; returns what hisec_markdown() renders."""
    out = {"rows": [], "clients": CLIENTS, "runs": args.runs, "duration": args.duration,
           "errors": [], "versions": {}, "profiles": [], "load": [], "floor": None}
    tmp = tempfile.mkdtemp(prefix="rgbench-hisec-")
    os.chmod(tmp, 0o755)
    servers = []
    try:
        world = h.World(tmp)
        plimit = 1100
        rg = h.RinggateServer("rg-sec", "security", world, tmp, plimit, args.build)
        servers.append(rg)
        ex = h.RinggateServer("rg-sec-exec", "security", world, tmp, plimit, args.build)
        _append_conf(ex, "login_template_forks = 0\n")
        servers.append(ex)
        if not getattr(args, "quick", False):
            for name, grow in (("rg-sec-sni", _add_sni), ("rg-sec-passwd", _add_passwd)):
                big = h.RinggateServer(name, "security", world, tmp, plimit, args.build)
                grow(big, world)
                servers.append(big)
        if shutil.which("dovecot"):
            servers.append(h.DovecotServer("dc-sec", "security", world, tmp, plimit))
        else:
            h.log("dovecot not installed: the hisec section measures ringgate only")
        for s in servers:
            s.start()
            out["versions"][s.kind] = s.version()
        bench = h.Bench(h.side_args(args))
        for s in servers:
            bench.warmup(s)
        tls_ok = {s.name: bench.supports(s, "tls") for s in servers}
        results = {}
        for rnd in range(1, args.runs + 1):
            out["load"].append(open("/proc/loadavg").read().split()[0])
            for kind, transport in CASES:
                for s in servers:
                    if transport == "tls" and not tls_ok[s.name]:
                        continue
                    rec = bench.run_one(s, (kind, "imap", transport, CLIENTS, "all"), rnd)
                    results.setdefault((s.name, kind, transport), []).append(rec)
                    if not rec["rgbench"]["ok"]:
                        out["errors"].append("%s %s %s round %d: %s" % (
                            s.name, kind, transport, rnd, rec["rgbench"].get("errors_by_kind")))
        for s in servers:
            for kind, transport in CASES:
                recs = [r for r in results.get((s.name, kind, transport), [])
                        if r["rgbench"]["ok"] and r["cpu_ms_per_session"]]
                out["rows"].append({
                    "server": s.name, "kind": kind, "transport": transport,
                    "rate": h.med([r["rgbench"]["sessions_per_sec"] for r in recs]) if recs else None,
                    "cpu_ms": h.med([r["cpu_ms_per_session"] for r in recs]) if recs else None,
                    "cmd": recs[0]["cmd"] if recs else ""})
        # the floor after the load, on the same machine: the template's
        # shape is the one it has after serving
        out["floor"] = _floor(args, rg)
        if with_profile and not getattr(args, "no_profile", False):
            for s in servers:
                if s.name in ("rg-sec", "rg-sec-exec"):
                    rows = bench.profile(s, ("prelogin", "imap", "plain", CLIENTS, "all"))
                    if rows:
                        out["profiles"].append((s.name, rows))
    finally:
        h.stop_all(servers, tmp)
    return out


def _row(out, server, kind, transport):
    for r in out["rows"]:
        if (r["server"], r["kind"], r["transport"]) == (server, kind, transport):
            return r
    return None


def hisec_markdown(out):
    L = ["## High-security mode: a login process per connection", ""]
    L.append("`service_count = 1` for imap-login, rgbench c=%d, IMAP, %d rounds of %.0f s "
             "interleaved, medians; CPU is each server's whole cgroup (master, the login "
             "processes and their template, auth, workers; exited processes included) per "
             "session. *greeting*: greeting + LOGOUT; *LOGIN*: LOGIN + LOGOUT (a worker per "
             "session). rg-sec: login processes forked from a template "
             "(`login_template_forks = 100`); rg-sec-exec: `login_template_forks = 0`, a "
             "fork + exec per connection; rg-sec-sni: rg-sec with %d `local_name` sections; "
             "rg-sec-passwd: rg-sec with %d more passwd-file lines. Load average at each round: %s. %s." % (
                 out["clients"], out["runs"], out["duration"], SNI_NAMES, PASSWD_LINES,
                 ", ".join(out["load"]),
                 "; ".join("%s: %s" % kv for kv in sorted(out["versions"].items()))))
    L += ["", "| session | transport | server | sessions/s | CPU ms/session |",
          "|---|---|---|---|---|"]
    for kind, transport in CASES:
        for r in out["rows"]:
            if (r["kind"], r["transport"]) == (kind, transport):
                L.append("| %s | %s | %s | %s | %s |" % (
                    "greeting" if kind == "prelogin" else "LOGIN", transport, r["server"],
                    h.fmt(r["rate"], "%.1f"), h.fmt(r["cpu_ms"], "%.2f")))
    L += ["", "Ratios (target: rate ≥ 10× Dovecot's, CPU ≤ 0.1× Dovecot's, greeting, plain "
          "and imaps; rg-sec-sni and rg-sec-passwd = rg-sec):", "",
          "| session | transport | rg-sec/dc-sec rate | rg-sec/dc-sec CPU | "
          "rg-sec-exec/dc-sec CPU | rg-sec-sni/rg-sec CPU | rg-sec-passwd/rg-sec CPU |",
          "|---|---|---|---|---|---|---|"]

    def ratio(a, b, key):
        if a is None or b is None or not a[key] or not b[key]:
            return "n/a"
        return "%.2f" % (a[key] / b[key])
    for kind, transport in CASES:
        rg, dc = _row(out, "rg-sec", kind, transport), _row(out, "dc-sec", kind, transport)
        ex = _row(out, "rg-sec-exec", kind, transport)
        sni, pw = _row(out, "rg-sec-sni", kind, transport), _row(out, "rg-sec-passwd", kind, transport)
        L.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            "greeting" if kind == "prelogin" else "LOGIN", transport, ratio(rg, dc, "rate"),
            ratio(rg, dc, "cpu_ms"), ratio(ex, dc, "cpu_ms"), ratio(sni, rg, "cpu_ms"),
            ratio(pw, rg, "cpu_ms")))
    if out["errors"]:
        L += ["", "Errors: " + "; ".join(out["errors"])]
    L.append("")
    if out.get("floor"):
        L += ["The floor on this machine (`bench/rgforkfloor`, after the rounds above): a "
              "process start that does nothing, tiny (min-) or shaped like rg-sec's imap "
              "template (tmpl-: its VMAs and resident and anonymous pages); -cow: the child "
              "writes 20 of the template's anonymous pages first (a fault each), -populate / "
              "-range: the same pages copied by `madvise(MADV_POPULATE_WRITE)` and then "
              "written, one call a page spread over the shape / one call for a run of pages; "
              "vfork-exec: `clone(CLONE_VM|CLONE_VFORK)` + exec of a "
              "static binary that exits. What it means for the target: "
              "[performance-hisec-notes.md](performance-hisec-notes.md).", "", out["floor"], ""]
    L += h.profiles_and_problems_md(out["profiles"], "Profile of %s, greeting-only plain "
                                    "sessions (share of the server's CPU samples):\n", None)
    return "\n".join(L)
