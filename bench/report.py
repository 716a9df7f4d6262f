"""report.py — the page `make bench` writes (docs/performance.md): the
machine, the matrix's tables, ratios and targets, the plots (gnuplot), and
each side section's text from its own module.
"""
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile

import cryptobench
import mailboxbench
import proxybench
import startbench
import storebench
from harness import (BIG_MESSAGE_SIZE, ROOT, SEC_IDLE, case_key, cpu_model, fmt, log, med,
                     server_log_problems, spread)


def machine():
    cpu = cpu_model()
    mem = 0
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // 1024
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
            "memory_mb": mem, "os": platform.freedesktop_os_release().get("PRETTY_NAME", "?")}


def write_plots(out_dir, results, names, prefix="perf-"):
    """PNG plots with gnuplot (Debian's gnuplot-nox): sessions/s and server
    CPU per session against concurrency (prelogin, IMAP, plain), per server,
    and memory per held idle connection. Returns the file names written."""
    if shutil.which("gnuplot") is None:
        log("gnuplot not installed: no plots")
        return []
    work = tempfile.mkdtemp(prefix="rgbench-plot-")
    written = []

    def series(name, key):
        pts = {}
        for r in results:
            if (r["server"] == name and r["kind"] == "prelogin" and not r["resume"] and
                    r["proto"] == "imap" and r["transport"] == "plain" and r["rgbench"]["ok"]):
                v = r["rgbench"]["sessions_per_sec"] if key == "rate" else r["cpu_ms_per_session"]
                if v:
                    pts.setdefault(r["clients"], []).append(v)
        return sorted((c, med(v)) for c, v in pts.items())

    try:
        for key, fname, ylabel in (("rate", prefix + "sessions.png", "sessions/s (median)"),
                                   ("cpu", prefix + "cpu.png", "server CPU ms per session")):
            plots = []
            for n in names:
                pts = series(n, key)
                if not pts:
                    continue
                dat = os.path.join(work, "%s-%s.dat" % (key, n))
                with open(dat, "w") as f:
                    f.write("".join("%d %f\n" % p for p in pts))
                plots.append("'%s' using 1:2 with linespoints lw 2 title '%s'" % (dat, n))
            if not plots:
                continue
            script = ("set terminal pngcairo size 800,480\nset output '%s'\n"
                      "set logscale xy\nset xlabel 'concurrent clients (prelogin, IMAP, plain)'\n"
                      "set ylabel '%s'\nset key outside right\nset grid\nplot %s\n" % (
                          os.path.join(out_dir, fname), ylabel, ", ".join(plots)))
            subprocess.run(["gnuplot"], input=script, text=True, check=True)
            written.append(fname)
        rows = []
        for n in names:
            for tr in ("plain", "tls"):
                v = [r["mem_per_conn"] for r in results if r["server"] == n and
                     r["kind"] == "idle" and r["transport"] == tr and "mem_per_conn" in r and
                     r["rgbench"]["ok"] and r["clients"] >= 100]
                if v:
                    rows.append(("%s-%s" % (n, tr), med(v) / 1024))
        if rows:
            dat = os.path.join(work, "mem.dat")
            with open(dat, "w") as f:
                f.write("".join('"%s" %f\n' % r for r in rows))
            script = ("set terminal pngcairo size 800,480\nset output '%s'\n"
                      "set style data histograms\nset style fill solid\nset boxwidth 0.8\n"
                      "set ylabel 'kB per held idle connection (cgroup)'\nset logscale y\nset xtics rotate by -30\n"
                      "set grid ytics\nplot '%s' using 2:xtic(1) notitle\n" % (
                          os.path.join(out_dir, prefix + "memory.png"), dat))
            subprocess.run(["gnuplot"], input=script, text=True, check=True)
            written.append(prefix + "memory.png")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return written


def baseline_commit(build):
    """The commit make bench-baseline built (its BASELINE file), or '?'."""
    try:
        with open(os.path.join(os.path.dirname(build), "BASELINE")) as f:
            return f.read().strip()
    except OSError:
        return "?"


def tls_idle_breakdown(build):
    """What one idle TLS server connection holds of wolfSSL's heap, counted
    by test_tls_memory's allocator hooks (no load dependence); the itemised
    breakdown is docs/performance-idle.md."""
    L = ["### Where an idle TLS connection's memory goes\n",
         "wolfSSL's heap per server connection after the handshake and one "
         "exchange, counted by `tests/unit/tls/test_tls_memory.c` (allocation "
         "hooks, this build's wolfSSL); the itemised breakdown, ringgate's own "
         "structs and the kernel's share are in "
         "[performance-idle.md](performance-idle.md).\n"]
    exe = os.path.join(build, "tests", "test_tls_memory")
    if not os.access(exe, os.X_OK):
        return L + ["(not measured: %s was not built)\n" % os.path.relpath(exe, ROOT)]
    out = subprocess.run([exe], capture_output=True, text=True, timeout=300).stdout
    L.append("```")
    L += [ln for ln in out.splitlines() if ln.startswith("memory ")]
    L.append("```\n")
    return L


def write_report(path, bench, servers, cases, args, started, elapsed, logs, spawn, large=None,
                 plots=(), crypto=None, proxy=None, stores=None):
    res = bench.results
    m = machine()
    names = [s.name for s in servers]

    def cell(server, case):
        return [r for r in res if r["server"] == server and r["case"] == case_key(case)]

    def ok_rate(r):
        return r["rgbench"]["sessions_per_sec"] if r["rgbench"]["ok"] else None

    def ratio(a, b, case, key):
        ra = {r["round"]: key(r) for r in cell(a, case)}
        rb = {r["round"]: key(r) for r in cell(b, case)}
        vals = [ra[k] / rb[k] for k in ra if k in rb and ra[k] and rb[k]]
        return med(vals)

    L = []
    L.append("# ringgate performance\n")
    L.append("Generated by `bench/run.py` (`make bench%s`) on %s UTC; %d rounds, %.0f s of "
             "load per measurement, the whole run took %.0f s. Do not edit by hand: run "
             "`make bench` again.\n" % (" FULL=1" if args.full else "",
                                          started.strftime("%Y-%m-%d %H:%M"), args.runs,
                                          args.duration, elapsed))
    L.append("## Machine and versions\n")
    L.append("| | |\n|---|---|")
    L.append("| CPU | %s, %d cores |" % (m["cpu"], m["cores"]))
    L.append("| memory | %d MB |" % m["memory_mb"])
    L.append("| kernel | %s |" % m["kernel"])
    L.append("| OS | %s |" % m["os"])
    for s in servers[:1] + [x for x in servers if x.kind == "dovecot"][:1]:
        L.append("| %s | %s |" % (s.kind, s.version()))
    # the checkout when the run started (the tree may move on meanwhile)
    L.append("| git | %s |" % args.git_start)
    if getattr(args, "baseline", None):
        L.append("| baseline (base-*) | %s, built from `git archive` of commit %s |" % (
            os.path.relpath(args.baseline, ROOT), baseline_commit(args.baseline)))
    L.append("| accounting | %s |" % servers[0].acct.method)
    L.append("| load average | %s at the start, %s at the end (1/5/15 min) |" % (
        args.load_start, " ".join(open("/proc/loadavg").read().split()[:3])))
    L.append("| command | `%s` |\n" % " ".join(shlex.quote(a) for a in sys.argv))
    L.append("## How to read this\n")
    L.append(
        "- Four servers run side by side on 127.0.0.1 for the whole run: ringgate and a "
        "private Dovecot, each in *high-performance* mode (`service_count = 0`, "
        "`process_min_avail = %d`, `client_limit = 1000`) and *high-security* mode "
        "(`service_count = 1`: a fresh login process per connection). Same users, "
        "passwd-file (one `{PLAIN}` user, so crypt() does not dominate), Maildir "
        "(message 1 is %d kB) and certificate (ECDSA P-256).\n"
        "- `rgbench` (bench/rgbench.c, io_uring) is a closed loop: *c* clients each run "
        "sessions back to back. *prelogin* = greeting + LOGOUT; *login* = greeting, LOGIN, "
        "LOGOUT; *login-fetch* = LOGIN, SELECT INBOX, FETCH 1:* FLAGS, FETCH 1 BODY[], "
        "LOGOUT; *idle* = open K connections, read the greeting, hold them. Every response "
        "is checked; a measurement with any error shows `ERR` instead of a rate.\n"
        "- In `make bench FULL=1`, 1,024 clients against a high-security server are "
        "measured for *prelogin* only and once (round 1, 120 s session timeout): with a "
        "fresh process per connection each client waits 10-25 s for its turn; "
        "*login* and *login-fetch* at 1,024 are high-performance only (`n/a` for "
        "high-security).\n"
        "- **sessions/s** is the median of the rounds, ± the spread (max−min)/median. "
        "**server CPU ms/session** is the CPU time charged to the server's cgroup "
        "(all its processes, including the ones that exited: login processes, workers, "
        "auth) during the measurement, divided by the sessions completed. "
        "**memory/conn** is the growth of a freshly started server's cgroup memory (user + kernel "
        "memory charged to it) while holding K idle connections, divided by K; "
        "**PSS/conn** the same from the summed PSS of its processes (user memory only).\n"
        "- **Ratios** are taken within each round (the servers are measured one after the "
        "other, interleaved), then the median over rounds. ringgate/Dovecot > 1 means "
        "ringgate does more sessions/s; for CPU and memory < 1 means ringgate uses less.\n"
        "- Client and servers share the same %d cores: rgbench's own CPU limits the "
        "highest rates, so compare servers within a row, not against other machines. "
        "Anything else running on the machine (see the load average) adds noise; the "
        "spread column shows how much.\n"
        % (m["cores"], BIG_MESSAGE_SIZE // 1024, m["cores"]))

    err_runs = [r for r in res if not r["rgbench"]["ok"]]
    if err_runs:
        L.append("## Runs with errors\n")
        L.append("These measurements are invalid and show `ERR` below:\n")
        for r in err_runs:
            L.append("- %s %s %s %s c=%d round %d: %s" % (
                r["server"], r["kind"], r["proto"], r["transport"], r["clients"], r["round"],
                json.dumps(r["rgbench"]["errors_by_kind"]) if r["rgbench"]["errors"]
                else "no session completed within the duration"))
        L.append("")

    L.append("## Sessions per second and server CPU per session\n")
    L.append("| kind | proto | transport | c | " + " | ".join(
        "%s sess/s | %s CPU ms" % (n, n) for n in names) + " |")
    L.append("|" + "---|" * (4 + 2 * len(names)))
    for case in cases:
        if case[0] == "idle":
            continue
        row = ["%s" % case[0], case[1], case[2], "%d" % case[3]]
        for n in names:
            rs = cell(n, case)
            if not rs:
                row += ["n/a", "n/a"]
                continue
            if any(not r["rgbench"]["ok"] for r in rs):
                row += ["ERR", "–"]
                continue
            rates = [ok_rate(r) for r in rs]
            sp = spread(rates)
            row.append("%s%s" % (fmt(med(rates)), " ±%.0f%%" % sp if sp is not None else ""))
            row.append(fmt(med([r["cpu_ms_per_session"] for r in rs]), "%.3f"))
        L.append("| " + " | ".join(row) + " |")
    L.append("")

    pairs = [("rg-perf", "base-perf", "this/baseline build, high-performance"),
             ("rg-sec", "base-sec", "this/baseline build, high-security"),
             ("rg-perf", "dc-perf", "ringgate/Dovecot, high-performance"),
             ("rg-sec", "dc-sec", "ringgate/Dovecot, high-security"),
             ("rg-perf", "rg-sec", "ringgate high-perf/high-sec"),
             ("dc-perf", "dc-sec", "Dovecot high-perf/high-sec")]
    pairs = [p for p in pairs if p[0] in names and p[1] in names]
    if plots:
        L.append("## Plots\n")
        for f in plots:
            L.append("![%s](%s)\n" % (f[:-4], f))
    L.append("## Ratios (median of per-round ratios)\n")
    L.append("| kind | proto | transport | c | " + " | ".join(
        "%s: sess/s | CPU/session" % p[2] for p in pairs) + " |")
    L.append("|" + "---|" * (4 + 2 * len(pairs)))
    for case in cases:
        if case[0] == "idle":
            continue
        row = [case[0], case[1], case[2], "%d" % case[3]]
        for a, b, _ in pairs:
            rr = ratio(a, b, case, ok_rate)
            rc = ratio(a, b, case, lambda r: r["cpu_ms_per_session"] if r["rgbench"]["ok"] else None)
            row += [fmt(rr, "%.3g×"), fmt(rc, "%.3g×")]
        L.append("| " + " | ".join(row) + " |")
    L.append("")

    def resume_pct(name, case):
        rs = [r for r in cell(name, case) if r["rgbench"]["ok"]]
        off = sum(r["rgbench"]["tls"]["resume_offered"] for r in rs)
        got = sum(r["rgbench"]["tls"]["resumed"] for r in rs)
        return (got * 100.0 / off) if off else None

    tls_cases = [c for c in cases if c[0] != "idle" and c[2] != "plain"]
    if tls_cases:
        L.append("## TLS handshakes and resumption\n")
        L.append("rgbench is a wolfSSL client (TLS 1.3 when both sides have it, ECDSA P-256 "
                 "certificate, no verification on loopback). *-resume* rows offer each "
                 "client's previous session ticket; the cell is resumed/offered over all "
                 "rounds: a server with several login processes resumes only if they "
                 "share ticket keys.\n")
        L.append("| kind | transport | c | " + " | ".join(names) + " |")
        L.append("|" + "---|" * (3 + len(names)))
        for case in tls_cases:
            row = [case[0], case[2], "%d" % case[3]]
            for n in names:
                rs = [r for r in cell(n, case) if r["rgbench"]["ok"]]
                if not rs:
                    row.append("n/a")
                    continue
                ver = rs[0]["rgbench"]["tls"]["version"]
                pct = resume_pct(n, case)
                row.append(ver + (", %.0f%% resumed" % pct if pct is not None else ""))
            L.append("| " + " | ".join(row) + " |")
        L.append("")

    L.append("## Memory per held idle connection\n")
    L.append("High-performance servers hold K connections in a few processes; in "
             "high-security mode every held connection is a process of its own, so they "
             "are measured at K=%d, and once per run at a larger K to see whether the mode "
             "can hold that many at all (*capacity probe*, round 1 only).\n" % SEC_IDLE)
    L.append("| transport | K | servers | " + " | ".join("%s memory/conn | %s PSS/conn" % (n, n)
                                                         for n in names) + " |")
    L.append("|" + "---|" * (3 + 2 * len(names)))
    for case in cases:
        if case[0] != "idle":
            continue
        row = [case[2], "%d" % case[3], {"perf": "high-performance", "sec": "high-security",
                                         "sec-once": "high-security, capacity probe",
                                         "perf-once": "high-performance, round 1 only",
                                         "all": "all"}[case[4]]]
        for n in names:
            rs = cell(n, case)
            if not rs:
                row += ["n/a", "n/a"]
            elif any(not r["rgbench"]["ok"] for r in rs):
                row += ["ERR", "–"]
            else:
                row.append(fmt(med([r.get("mem_per_conn") for r in rs]) / 1024, "%.1f kB")
                           if med([r.get("mem_per_conn") for r in rs]) is not None else "–")
                row.append(fmt(med([r.get("pss_per_conn") for r in rs]) / 1024, "%.1f kB")
                           if med([r.get("pss_per_conn") for r in rs]) is not None else "–")
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    L += tls_idle_breakdown(args.build)

    L.append("## Against the project's targets\n")
    tgt = []

    def r_of(a, b, case):
        return ratio(a, b, case, ok_rate)
    pre = ("prelogin", "imap", "plain", 32, "all")
    x = r_of("rg-perf", "dc-perf", pre)
    tgt.append("- Pre-login plain sessions/s ≥ 2.5× Dovecot high-performance (c=32): "
               "measured %s — %s." % (fmt(x, "%.2f×"), "n/a" if x is None else "met" if x >= 2.5 else "**not met**"))
    x = r_of("rg-sec", "dc-sec", pre)
    tgt.append("- High-security rate ≥ 10× Dovecot's high-security rate (prelogin c=32): "
               "measured %s — %s." % (fmt(x, "%.2f×"), "n/a" if x is None else "met" if x >= 10 else "**not met**"))
    lg = ("login", "imap", "plain", 32, "all")
    x = r_of("rg-perf", "dc-perf", lg)
    tgt.append("- LOGIN sessions (a worker per session) ≥ 3× Dovecot (high-performance, c=32): "
               "measured %s — %s." % (fmt(x, "%.2f×"), "n/a" if x is None else "met" if x >= 3 else "**not met**"))
    idle = [c for c in cases if c[0] == "idle" and c[2] == "plain" and c[4] == "perf"]
    if idle:
        v = med([r.get("mem_per_conn") for r in cell("rg-perf", idle[0])])
        tgt.append("- Idle pre-login memory ≤ 2 kB per plain connection (high-performance, "
                   "K=%d): measured %s per connection (cgroup, kernel socket included) — %s." % (
                       idle[0][3], fmt(v / 1024 if v is not None else None, "%.1f kB"),
                       "n/a" if v is None else "met" if v <= 2048 else "**not met**"))
    full = ("prelogin", "imap", "tls", 32, "all")
    v = med([r["cpu_ms_per_session"] for r in cell("rg-perf", full) if r["rgbench"]["ok"]])
    tgt.append("- Server CPU per full ECDSA P-256 handshake ≤ 0.25 ms (Dovecot ≈ 0.7 ms): "
               "rg-perf spends %s per imaps pre-login session (handshake, greeting, LOGOUT), "
               "Dovecot %s — %s." % (
                   fmt(v, "%.3f ms"),
                   fmt(med([r["cpu_ms_per_session"] for r in cell("dc-perf", full)
                            if r["rgbench"]["ok"]]), "%.3f ms"),
                   "n/a" if v is None else "met" if v <= 0.25 else "**not met**"))
    idle_tls = [c for c in cases if c[0] == "idle" and c[2] == "tls" and c[4] == "perf"]
    if idle_tls:
        v = med([r.get("mem_per_conn") for r in cell("rg-perf", idle_tls[0])])
        tgt.append("- Idle TLS memory ≤ 12 kB per connection (K=%d): measured %s — %s." % (
            idle_tls[0][3], fmt(v / 1024 if v is not None else None, "%.1f kB"),
            "n/a" if v is None else "met" if v <= 12 * 1024 else "**not met**"))
    pct = resume_pct("rg-perf", ("prelogin-resume", "imap", "tls", 32, "all"))
    tgt.append("- Resumption across login processes ≥ 95%% (high-performance, %d login "
               "processes): measured %s — %s." % (
                   m["cores"], fmt(pct, "%.0f%%"),
                   "n/a" if pct is None else "met" if pct >= 95 else "**not met**"))
    L.extend(tgt)
    L.append("")
    if bench.profiles:
        L.append("## Where ringgate's time goes\n")
        L.append("`perf record -a -e cpu-clock` during one extra measurement; the hottest "
                 "entries of the processes in the server's cgroup (master, auth, login, "
                 "workers; `perf -G`), in % of the server's samples. Cases are the ones where ringgate "
                 "was slower than Dovecot in the same mode, and three fixed ones. In this VM "
                 "`pvm_irq_enable` is kernel work that ran with interrupts off (fork, exec, "
                 "page tables): the sampler only sees it when interrupts come back on.\n")
        for name, case, why, rows in bench.profiles:
            L.append("**%s**, %s %s %s c=%d (%s):\n" % (name, case[0], case[1], case[2],
                                                       case[3], why))
            L.append("```")
            for pct, comm, dso, sym in rows:
                L.append("%6.2f%%  %-15s %-28s %s" % (pct, comm, dso[:28], sym[:70]))
            L.append("```\n")
    if large:
        L.append(mailboxbench.large_markdown(large))
    if crypto is not None:
        L.append(cryptobench.crypto_markdown(crypto))
    if proxy is not None:
        L.append(proxybench.proxy_markdown(proxy))
    if stores is not None:
        L.append(storebench.store_markdown(stores))
    L.append(startbench.spawn_markdown(spawn))
    if bench.restarts:
        L.append("## Servers restarted during the run\n")
        L.append("After a measurement with errors the server was stopped and started afresh "
                 "so that its later rows do not inherit a respawn back-off:\n")
        for n, rnd, key in bench.restarts:
            L.append("- %s after `%s`, round %d" % (n, key, rnd))
        L.append("")
    L.append("## Errors and warnings in the servers' logs\n")
    any_log = False
    for n in names:
        msgs = server_log_problems(logs.get(n, ""))
        if not msgs:
            continue
        any_log = True
        L.append("%s:\n" % n)
        L.append("```")
        for m, count in msgs[:12]:
            L.append("%6d× %s" % (count, m))
        L.append("```\n")
    if not any_log:
        L.append("None.\n")
    L.append("## Exact commands\n")
    L.append("Each measurement is one rgbench run, e.g. (ports differ per run):\n")
    L.append("```")
    seen = set()
    for r in res:
        key = (r["kind"], r["transport"])
        if key in seen or r["round"] != 1 or r["server"] != "rg-perf":
            continue
        seen.add(key)
        L.append(r["cmd"].replace(bench.rgbench, "build/bin/rgbench"))
    L.append("```\n")
    if args.raw:
        raw = os.path.relpath(args.raw, ROOT)
        L.append("Raw results (one JSON object per measurement): `%s` on the measuring "
                 "machine (not committed).\n" % (raw if not raw.startswith("..") else args.raw))
    with open(path, "w") as f:
        f.write("\n".join(L))
