"""prelogbench.py — the pre-login section of `make bench` (issue 20):
ringgate, Dovecot and nginx's mail proxy side by side in one run, on what
a connection costs before anyone logs in.

Three servers, each in its own cgroup (harness.Accounting), on one world
(harness.World: the bench user, an ECDSA P-256 certificate):

- rg-perf: ringgate in high-performance mode (harness.RinggateServer);
- dc-perf: a private Dovecot in high-performance mode (harness.DovecotServer);
- nginx: Debian's nginx with its mail module, `protocol imap` on a
  plaintext and an `ssl` listener, as many workers as cores (ringgate has a
  login process per core). nginx asks its auth_http service only when a
  client logs in; no session here does, so the auth_http address points at
  a port nothing listens on.

Rows (rgbench, IMAP, rounds interleaved: every server for one row, then the
next row, then the next round; medians; ratios within a round):

- *prelogin plain*: greeting + LOGOUT, server CPU per session (c=32);
- *prelogin imaps*: a full TLS 1.3 handshake with an X25519 key share
  (`rgbench --group X25519`, the only group offered) and the ECDSA P-256
  certificate, greeting, LOGOUT;
- *idle plain* / *idle imaps*: K connections opened (greeting read; for
  imaps after the handshake) and held; the growth of the summed PSS of the
  server's processes per connection, and of its cgroup's memory (user
  memory, the kernel's socket structures, and TCP buffer memory, which
  cgroup v1 charges only once a tcp limit is written: this module writes
  one). Each idle row starts its server afresh and warms it with a few
  sessions of both transports first, so the per-process one-time costs
  (a TLS context's tables, first allocations) are not divided among the K.
"""
import os
import shutil
import subprocess
import tempfile
import time

import harness as h
import proxybench

CLIENTS = 32
IDLE_K = 1000
GROUP = "X25519"
# (label, rgbench kind, transport, clients)
CASES = [("prelogin plain", "prelogin", "plain", CLIENTS),
         ("prelogin imaps", "prelogin", "tls", CLIENTS),
         ("idle plain", "idle", "plain", IDLE_K),
         ("idle imaps", "idle", "tls", IDLE_K)]
SERVERS = ("rg-perf", "dc-perf", "nginx")


class SockAccounting(h.Accounting):
    """harness.Accounting whose memory also counts the TCP buffer memory
    charged to the group: cgroup v2 has it in memory.current already;
    cgroup v1 keeps it apart (memory.kmem.tcp.*) and charges it only after
    a tcp limit was written, so an unlimited one is written here."""

    def __init__(self, name):
        self.tcp_file = None  # harness.Accounting reads mem_bytes() once
        super().__init__(name)
        if self.method.startswith("cgroup v1"):
            d = os.path.dirname(self.mem_file)
            try:
                with open(d + "/memory.kmem.tcp.limit_in_bytes", "w") as f:
                    f.write("%d" % (1 << 62))
                self.tcp_file = d + "/memory.kmem.tcp.usage_in_bytes"
                with open(self.tcp_file) as f:
                    int(f.read())
            except (OSError, ValueError) as e:
                h.log("%s: no TCP memory accounting (%s)" % (name, e))
                self.tcp_file = None

    def mem_bytes(self):
        total = super().mem_bytes()
        if self.tcp_file:
            with open(self.tcp_file) as f:
                total += int(f.read())
        return total


class NginxMail:
    """A private nginx mail proxy (its own config, prefix, pid file and
    logs; the system service untouched), plaintext and TLS listeners."""
    kind = "nginx"
    mode = "performance"

    def __init__(self, tmp, world):
        self.name = "nginx"
        self.ports = {"imap": h.rgenv.free_port(), "imaps": h.rgenv.free_port()}
        nobody = h.rgenv.free_port()  # auth_http: never asked before a login
        body = f"""load_module {proxybench.NGINX_MAIL_MODULE};
worker_processes {os.cpu_count() or 1};
worker_rlimit_nofile 16384;
events {{
    worker_connections 8192;
}}
mail {{
    server_name localhost;
    auth_http 127.0.0.1:{nobody}/auth;
    ssl_certificate {world.cert};
    ssl_certificate_key {world.key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ecdh_curve X25519:prime256v1;
    server {{
        listen 127.0.0.1:{self.ports["imap"]};
        protocol imap;
    }}
    server {{
        listen 127.0.0.1:{self.ports["imaps"]} ssl;
        protocol imap;
    }}
}}
"""
        self.inst = proxybench.NginxInstance("nginx-mail", tmp, body)

    @property
    def acct(self):
        return self.inst.acct

    @acct.setter
    def acct(self, value):
        self.inst.acct = value

    def version(self):
        return "nginx " + self.inst.version()

    def start(self):
        def ready(inst):
            h.wait_greetings([(self.ports["imap"], b"* OK")], inst.proc, self.logs)
        self.inst.start(ready)

    def logs(self):
        return self.inst.logs()

    def stop(self):
        self.inst.stop()


class PreBench(h.Bench):
    """The harness's loop with the issue's key share on every TLS
    connection, and a warm-up that logs nobody in (nginx has no auth)."""

    def base_cmd(self, server, kind, proto, transport, clients):
        cmd = super().base_cmd(server, kind, proto, transport, clients)
        if transport != "plain":
            cmd += ["--group", GROUP]
        return cmd

    def warmup(self, server):
        for transport in ("plain", "tls"):
            cmd = self.base_cmd(server, "prelogin", "imap", transport, 4) + [
                "--duration", "0.5", "--quiet"]
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                raise RuntimeError("warm-up %s against %s failed: %s\n%s" % (
                    transport, server.name, r.stdout + r.stderr, server.logs()[-3000:]))


def loadavg():
    return " ".join(open("/proc/loadavg").read().split()[:3])


def restart_fresh(bench, s):
    """A freshly started, warmed server in a new cgroup: memory growth is
    measured from there (a process that held connections before keeps its
    freed heap and would show nothing)."""
    s.stop()
    s.acct = SockAccounting(s.name)
    s.start()
    bench.warmup(s)
    time.sleep(2)  # the warm-up's freed memory decays (jemalloc, 1 s) first


def prelogin_compare(args):
    """Runs the section; returns what prelogin_markdown() renders."""
    out = {"rows": {}, "clients": CLIENTS, "idle_k": IDLE_K, "runs": args.runs,
           "duration": args.duration, "hold": args.hold, "errors": [], "versions": {},
           "profiles": [], "load": [], "load_start": loadavg(), "cmds": {},
           "skipped": proxybench.nginx_missing(), "accounting": None,
           "rgbench": os.path.join(args.build, "bin", "rgbench")}
    if shutil.which("dovecot") is None:
        out["skipped"] = (out["skipped"] + "; " if out["skipped"] else "") + \
            "Dovecot is not installed"
    if out["skipped"]:
        h.log("prelogin section: " + out["skipped"] + ": only what is installed is measured")
    tmp = tempfile.mkdtemp(prefix="rgbench-prelogin-")
    os.chmod(tmp, 0o755)
    servers = []
    results = []
    t0 = time.time()
    try:
        world = h.World(tmp)
        plimit = max(1100, IDLE_K + 100)
        servers.append(h.RinggateServer("rg-perf", "performance", world, tmp, plimit, args.build))
        if shutil.which("dovecot"):
            servers.append(h.DovecotServer("dc-perf", "performance", world, tmp, plimit))
        if proxybench.nginx_missing() is None:
            servers.append(NginxMail(tmp, world))
        bench = PreBench(h.side_args(args))
        for s in servers:
            s.acct = SockAccounting(s.name)
            s.start()
            out["versions"][s.name] = s.version()
            bench.warmup(s)
        out["accounting"] = servers[0].acct.method + (
            " + memory.kmem.tcp.usage_in_bytes" if servers[0].acct.tcp_file else "")
        for rnd in range(1, args.runs + 1):
            out["load"].append(loadavg().split()[0])
            for label, kind, transport, clients in CASES:
                for s in servers:
                    if kind == "idle":
                        restart_fresh(bench, s)
                    rec = bench.run_one(s, (kind, "imap", transport, clients, "all"), rnd)
                    rec["label"] = label
                    results.append(rec)
                    out["cmds"].setdefault((s.name, label), rec["cmd"])
                    if not rec["rgbench"]["ok"]:
                        out["errors"].append("%s %s round %d: %s" % (
                            s.name, label, rnd, rec["rgbench"].get("errors_by_kind")))
                        h.log("%s: restarting after a run with errors" % s.name)
                        restart_fresh(bench, s)
        if not getattr(args, "no_profile", False):
            rg = servers[0]
            for label, kind, transport, clients in CASES[:2]:
                h.log("prelogin section: profiling rg-perf, %s" % label)
                rows = bench.profile(rg, (kind, "imap", transport, clients, "all"))
                if rows:
                    out["profiles"].append(("rg-perf, " + label, rows))
    finally:
        logs = h.stop_all(servers, tmp)
        out["log_problems"] = {n: h.server_log_problems(t) for n, t in logs.items()}
    out["load_end"] = loadavg()
    out["elapsed"] = time.time() - t0
    out["servers"] = [s.name for s in servers]
    keys = ("cpu_ms_per_session", "pss_per_conn", "mem_per_conn")
    for label, kind, transport, clients in CASES:
        for name in out["servers"]:
            recs = [r for r in results if r["server"] == name and r["label"] == label]
            ok = [r for r in recs if r["rgbench"]["ok"]]
            cell = {k: h.med([r.get(k) for r in ok]) for k in keys}
            cell["rate"] = h.med([r["rgbench"]["sessions_per_sec"] for r in ok])
            cell["p50_ms"] = h.med([r["rgbench"]["latency_ms"]["p50"] for r in ok])
            cell["rate_spread"] = h.spread([r["rgbench"]["sessions_per_sec"] for r in ok])
            cell["cpu_spread"] = h.spread([r.get("cpu_ms_per_session") for r in ok])
            cell["pss_spread"] = h.spread([r.get("pss_per_conn") for r in ok])
            cell["errors"] = len(recs) - len(ok)
            cell["held"] = h.med([r["rgbench"].get("held") for r in ok])
            out["rows"][(label, name)] = cell
        for other in out["servers"][1:]:
            def mine(name):
                return [r for r in results if r["server"] == name and r["label"] == label
                        and r["rgbench"]["ok"]]
            for k in keys:
                out["rows"][(label, "rg-perf/" + other, k)] = h.round_ratio(
                    mine("rg-perf"), mine(other), k)
    return out


def _kib(x):
    return None if x is None else x / 1024


def _verdict(value, limit):
    if value is None:
        return "no figure"
    return "met" if value <= limit else "**not met**"


def prelogin_markdown(p):
    rows = p["rows"]
    names = p["servers"]
    L = ["## Pre-login: ringgate, Dovecot and nginx's mail proxy (issue 20)\n"]
    L.append(
        "Three servers side by side in one run, each in its own cgroup: **rg-perf** "
        "(ringgate, high-performance mode: `service_count = 0`, a login process per core, "
        "`client_limit = 1000`), **dc-perf** (a private Dovecot in the same mode) and "
        "**nginx** (Debian's nginx and mail module, `protocol imap`, a worker per core, "
        "a plaintext and an `ssl` listener; its auth_http service is never asked, as no "
        "session logs in). Same ECDSA P-256 certificate; TLS sessions offer only an %s "
        "key share (`rgbench --group %s`). rgbench, IMAP, %d rounds interleaved (each row "
        "on every server, then the next row), %.0f s per session row at c=%d, idle rows "
        "hold K=%d connections for %.0f s; medians, ratios taken within a round. "
        "*server CPU ms/session*: the server's whole cgroup (every process, exited ones "
        "included) per session; *PSS/conn*: the growth of the summed PSS of the server's "
        "processes per held connection (user memory); *memory/conn*: the growth of its "
        "cgroup's memory (%s: user memory, the kernel's socket structures and TCP "
        "buffers). Each idle row starts its server afresh and warms it with a few "
        "sessions of both transports, so one-time per-process costs (a TLS context, "
        "ECC tables) are not spread over the K. nginx's imaps sessions wait ~90 ms each on "
        "loopback (its p50 row; not CPU): at c=32 that, not its CPU, holds its sessions/s, "
        "so compare CPU per session. Load average at each round: %s. "
        "Versions: %s.\n" % (
            GROUP, GROUP, p["runs"], p["duration"], p["clients"], p["idle_k"], p["hold"],
            p.get("accounting") or "?", ", ".join(p["load"]),
            "; ".join("%s: %s" % kv for kv in sorted(p["versions"].items()))))
    if p.get("skipped"):
        L.append("Not measured: %s.\n" % p["skipped"])
    head = "| row | " + " | ".join(names) + " | " + " | ".join(
        "rg-perf/" + n for n in names[1:]) + " |"
    L += [head, "|" + "---|" * (1 + 2 * len(names) - 1)]

    def line(label, key, what, scale=None, f="%.3f", spread=None):
        cells = []
        for n in names:
            c = rows.get((label, n))
            if c is None or c["errors"] and c.get(key) is None:
                cells.append("ERR")
                continue
            v = c.get(key)
            v = scale(v) if scale and v is not None else v
            sp = c.get(spread) if spread else None
            cells.append(h.fmt(v, f) + (" ±%.0f%%" % sp if sp is not None else "") +
                         (" (%d ERR)" % c["errors"] if c["errors"] else ""))
        ratios = [h.fmt(rows.get((label, "rg-perf/" + n, key)), "%.2f×") for n in names[1:]]
        L.append("| %s: %s | %s | %s |" % (label, what, " | ".join(cells), " | ".join(ratios)))

    for label, kind, transport, clients in CASES:
        if kind == "prelogin":
            line(label, "cpu_ms_per_session", "server CPU ms/session", spread="cpu_spread")
            line(label, "rate", "sessions/s", f="%.0f", spread="rate_spread")
            line(label, "p50_ms", "latency p50 ms", f="%.2f")
        else:
            line(label, "pss_per_conn", "PSS KiB/conn", _kib, "%.2f", spread="pss_spread")
            line(label, "mem_per_conn", "memory KiB/conn", _kib, "%.2f")
    L.append("")

    def val(label, name, key):
        c = rows.get((label, name))
        return c.get(key) if c else None

    def ratio(label, other, key):
        return rows.get((label, "rg-perf/" + other, key))
    plain_r = ratio("prelogin plain", "nginx", "cpu_ms_per_session")
    tls_cpu = val("prelogin imaps", "rg-perf", "cpu_ms_per_session")
    tls_dc = ratio("prelogin imaps", "dc-perf", "cpu_ms_per_session")
    idle_tls = _kib(val("idle imaps", "rg-perf", "pss_per_conn"))
    idle_tls_mem = _kib(val("idle imaps", "rg-perf", "mem_per_conn"))
    idle_plain = _kib(val("idle plain", "rg-perf", "pss_per_conn"))
    L.append("Targets (issue 20), measured in this run:\n")
    L.append("| target | measured | |")
    L.append("|---|---|---|")
    L.append("| plain pre-login server CPU/session ≤ 0.8× nginx's | %s | %s |" % (
        h.fmt(plain_r, "%.2f×"), _verdict(plain_r, 0.8)))
    L.append("| imaps full handshake (X25519) ≤ 0.2 ms server CPU/session | %s ms | %s |" % (
        h.fmt(tls_cpu, "%.3f"), _verdict(tls_cpu, 0.2)))
    L.append("| imaps full handshake ≤ 0.35× Dovecot's | %s | %s |" % (
        h.fmt(tls_dc, "%.2f×"), _verdict(tls_dc, 0.35)))
    L.append("| idle TLS ≤ 8 KiB PSS/conn | %s KiB | %s |" % (
        h.fmt(idle_tls, "%.2f"), _verdict(idle_tls, 8)))
    L.append("| idle TLS ≤ 12 KiB memory/conn (with kernel socket memory) | %s KiB | %s |" % (
        h.fmt(idle_tls_mem, "%.2f"), _verdict(idle_tls_mem, 12)))
    L.append("| idle plaintext ≤ 0.5 KiB PSS/conn | %s KiB | %s |" % (
        h.fmt(idle_plain, "%.2f"), _verdict(idle_plain, 0.5)))
    L.append("")
    if p["errors"]:
        L.append("Measurements with errors (not in the medians): " + "; ".join(p["errors"]) +
                 "\n")
    L.append("Exact commands (round 1; ports differ per run):\n")
    L.append("```")
    for label, kind, transport, clients in CASES:
        for n in names:
            cmd = p["cmds"].get((n, label))
            if cmd:
                L.append("# %s, %s" % (n, label))
                L.append(cmd.replace(p["rgbench"], "build/bin/rgbench"))
    L.append("```\n")
    L += h.profiles_and_problems_md(
        p["profiles"], "Profile of %s (`perf record -a -e cpu-clock -G` of its cgroup, "
        "hottest entries in %% of its samples):\n", p.get("log_problems"))
    return "\n".join(L)


def prelogin_page(p, args):
    """docs/performance-prelogin.md: the section with the page's head (when,
    the command, the machine, the load at its start and end, the commit)."""
    commit = h.page_commit("docs/performance-prelogin.md")
    cpu = h.cpu_model()
    cmd = "python3 bench/run.py --build build --only prelogin"
    if args.runs != 3 or args.duration != 2:
        cmd += " --runs %d --duration %g" % (args.runs, args.duration)
    head = ("# ringgate performance: pre-login, against Dovecot and nginx\n\n"
            "Generated on %s UTC by `%s` (also part of `make bench`), %.0f s, on %s, "
            "%d CPUs, kernel %s; load average %s at the start and %s at the end "
            "(1/5/15 min); commit %s. Do not edit by hand.\n\n" % (
                time.strftime("%Y-%m-%d %H:%M", time.gmtime()), cmd, p.get("elapsed", 0),
                cpu, os.cpu_count() or 1, os.uname().release, p.get("load_start", "?"),
                p.get("load_end", "?"), commit or "?"))
    return head + prelogin_markdown(p)
