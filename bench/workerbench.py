"""workerbench.py — the worker section of `make bench` (issue 19): server
CPU per LOGIN session (greeting, LOGIN, LOGOUT: a worker serves each
session) with ringgate and Dovecot given the same `service imap { }`
settings, side by side. `bench/run.py --only workers` runs it alone.

Variants, each a ringgate and a Dovecot server (harness.RinggateServer /
DovecotServer, high-performance login processes, every process of a
server in its own cgroup):

- single: Dovecot's default `service imap { service_count = 1 }`, a new
  worker per session (ringgate's forked from its worker template,
  Dovecot's by fork+exec);
- single-exec (ringgate only, set against Dovecot's single): the same with
  `worker_template_forks = 0`, each worker started by clone+exec;
- reuse: `service_count = 100`, `process_min_avail = 2`: a worker serves
  up to 100 sessions of its uid (the bench user is one uid) and two spares
  wait before the first login.

Measured with rgbench `--kind login`, IMAP, plaintext and imaps, CLIENTS
clients, rounds interleaved, medians; CPU from each server's cgroup per
session (auth, login, master, workers, exited ones included).
"""
import os
import shutil
import tempfile
import time

import harness as h

CLIENTS = 32
# (name, `service imap { }` settings, ringgate's global settings, the
# Dovecot variant it is compared with: None = its own Dovecot server)
VARIANTS = (
    ("single", "  service_count = 1\n", "", None),
    ("single-exec", "  service_count = 1\n", "worker_template_forks = 0\n", "single"),
    ("reuse", "  service_count = 100\n  process_min_avail = 2\n", "", None),
)
TRANSPORTS = ("imap", "imaps")


def configure(server, settings, rg_global=""):
    """give a server's `service imap { }` these settings (ringgate also
    rg_global)"""
    if server.kind == "ringgate":
        with open(server.env.conf, "a") as f:
            f.write("%sservice imap {\n%s}\n" % (rg_global, settings))
        return
    with open(server.conf) as f:
        conf = f.read()
    old = "service imap {\n"
    if conf.count(old) != 1:
        raise RuntimeError("%s: no single service imap block" % server.conf)
    # one user from one address, 32 clients: Dovecot's per user+IP cap (10)
    # would refuse logins that reuse makes fast enough to overlap;
    # ringgate has no such cap
    conf = conf.replace(old, old + settings)
    conf += "protocol imap {\n  mail_max_userip_connections = 1000\n}\n"
    with open(server.conf, "w") as f:
        f.write(conf)


def measure(rgbench, srv, transport, duration):
    cmd = [rgbench, "--port", str(srv.ports[transport]), "--proto", "imap", "--kind", "login",
           "--clients", str(CLIENTS), "--user", h.BENCH_USER, "--pass", h.BENCH_PASS,
           "--timeout", "30", "--drain", "--duration", str(duration), "--quiet"]
    if transport == "imaps":
        cmd.insert(-1, "--tls")
    time.sleep(0.3)  # the previous measurement's sessions wind down
    c0 = srv.acct.cpu_ns()
    res, r = h.rgbench_run(cmd)
    c1 = srv.acct.cpu_ns()
    if res is None:
        raise RuntimeError("login against %s: no result\n%s" % (srv.name, r.stderr))
    rec = {"server": srv.name, "transport": transport, "ok": res["ok"], "cmd": " ".join(cmd)}
    n = res["sessions"]
    if res["ok"] and n:
        rec.update(rate=res["sessions_per_sec"], cpu_ms=(c1 - c0) / 1e6 / n)
    return rec


def workers_compare(args):
    """Runs the section; returns what workers_markdown() renders."""
    out = {"rows": [], "clients": CLIENTS, "runs": args.runs, "duration": args.duration,
           "errors": [], "versions": {}, "load": None, "profiles": []}
    rgbench = os.path.join(args.build, "bin", "rgbench")
    tmp = tempfile.mkdtemp(prefix="rgbench-workers-")
    os.chmod(tmp, 0o755)
    servers = []
    try:
        world = h.World(tmp)
        plimit = 200
        for variant, settings, rg_global, dc_variant in VARIANTS:
            pair = [h.RinggateServer("rg-" + variant, "performance", world, tmp, plimit,
                                     args.build)]
            if shutil.which("dovecot") and dc_variant is None:
                pair.append(h.DovecotServer("dc-" + variant, "performance", world, tmp, plimit))
            for s in pair:
                configure(s, settings, rg_global)
                s.variant = variant
            servers += pair
        if not shutil.which("dovecot"):
            h.log("dovecot not installed: the workers section measures ringgate only")
        for s in servers:
            s.start()
            out["versions"][s.kind] = s.version()
        for s in servers:  # warm-up, not counted
            for tr in TRANSPORTS:
                measure(rgbench, s, tr, 0.5)
        results = {(s.name, tr): [] for s in servers for tr in TRANSPORTS}
        for rnd in range(1, args.runs + 1):
            for tr in TRANSPORTS:
                for s in servers:
                    rec = measure(rgbench, s, tr, args.duration)
                    results[(s.name, tr)].append(rec)
                    if not rec["ok"]:
                        out["errors"].append("%s %s round %d failed" % (s.name, tr, rnd))
                    h.log("workers %s %s round %d: %s sessions/s, %s ms CPU/session" % (
                        s.name, tr, rnd, h.fmt(rec.get("rate"), "%.1f"),
                        h.fmt(rec.get("cpu_ms"), "%.3f")))
        out["load"] = os.getloadavg()[0]
        if not getattr(args, "no_profile", False):
            # a target missed gets its profile: ringgate's worker per LOGIN
            bench = h.Bench(h.side_args(args))
            for s in servers:
                if s.name == "rg-single":
                    rows = bench.profile(s, ("login", "imap", "plain", CLIENTS, "all"))
                    if rows:
                        out["profiles"].append((s.name, rows))
        for s in servers:
            for tr in TRANSPORTS:
                ok = [r for r in results[(s.name, tr)] if r["ok"] and "rate" in r]
                out["rows"].append({
                    "server": s.name, "kind": s.kind, "variant": s.variant, "transport": tr,
                    "rate": h.med([r["rate"] for r in ok]) if ok else None,
                    "cpu_ms": h.med([r["cpu_ms"] for r in ok]) if ok else None,
                })
    finally:
        h.stop_all(servers, tmp)
    return out


def workers_markdown(w):
    L = ["## Workers: a worker per LOGIN, and worker reuse", ""]
    L.append("rgbench `--kind login` (greeting, LOGIN, LOGOUT), IMAP, c=%d, %d rounds of "
             "%.0f s interleaved, medians; CPU is the server's whole cgroup per session. "
             "Both servers get the same `service imap { }`: *single* `service_count = 1` "
             "(a worker per session; ringgate's forked from its worker template), "
             "*single-exec* ringgate's single with `worker_template_forks = 0` (each worker "
             "exec'd; against Dovecot's single), *reuse* `service_count = 100`, "
             "`process_min_avail = 2`. Load average at the end: %s. %s." % (
                 w["clients"], w["runs"], w["duration"], h.fmt(w["load"], "%.2f"),
                 "; ".join("%s: %s" % kv for kv in sorted(w["versions"].items()))))
    L += ["", "| variant | transport | ringgate sessions/s | ringgate CPU ms | Dovecot "
          "sessions/s | Dovecot CPU ms | CPU ratio |", "|---|---|---|---|---|---|---|"]
    by = {(r["kind"], r["variant"], r["transport"]): r for r in w["rows"]}
    for variant, _, _, dc_variant in VARIANTS:
        for tr in TRANSPORTS:
            rg = by.get(("ringgate", variant, tr), {})
            dc = by.get(("dovecot", dc_variant or variant, tr), {})
            ratio = (rg["cpu_ms"] / dc["cpu_ms"]) if rg.get("cpu_ms") and dc.get("cpu_ms") \
                else None
            L.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                variant, tr, h.fmt(rg.get("rate"), "%.1f"), h.fmt(rg.get("cpu_ms"), "%.3f"),
                h.fmt(dc.get("rate"), "%.1f"), h.fmt(dc.get("cpu_ms"), "%.3f"),
                h.fmt(ratio, "%.2f")))
    if w["errors"]:
        L += ["", "Errors: " + "; ".join(w["errors"])]
    L.append("")
    L += h.profiles_and_problems_md(w.get("profiles", []), "Profile of %s, LOGIN + LOGOUT "
                                    "plain sessions (`perf record -a -e cpu-clock -G` of its "
                                    "cgroup; share of the server's CPU samples):\n", None)
    return "\n".join(L)
