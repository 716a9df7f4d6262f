#!/usr/bin/env python3
"""run.py — the driver of `make bench`: ringgate vs Dovecot, both modes.

Builds a temporary world as root (users, passwd-file, Maildirs, an ECDSA P-256
self-signed certificate), starts four servers side by side — ringgate
high-performance and high-security (tests/integration/rgenv.py) and a private
Dovecot (Debian's binaries, its own config, base_dir, state_dir and ports;
the system service is never touched) in the same two modes — each in its own
cgroup, then runs rgbench over the matrix. Rounds are interleaved (round 1 of
every server, then round 2, ...) so drift hits all servers alike, and every
ratio is taken inside one round. Server cost comes from the cgroup (CPU
including exited children, memory), or from /proc when no cgroup works.
Writes docs/performance.md and the raw results (JSON lines).
Its crypto section runs ringgate built with Debian's libwolfssl
(build-system/, -DRINGGATE_WOLFSSL=system, built when missing) next to the
default asm build; `--only crypto` runs that section alone. Its proxy section
(bench/proxybench.py) puts ringgate's passdb proxy and nginx's mail proxy in
front of one private Dovecot; `--only proxy` runs that section alone. Its
PAM section (bench/pambench.py) measures logins of a system user through
`passdb { driver = pam }` + `userdb { driver = passwd }`, ringgate and
Dovecot, auth cache off and on; `--only pam` runs that section alone.
Its stores section (bench/storebench.py) logs in with the users in a private
PostgreSQL and a private slapd, ringgate against Dovecot's own drivers, the
auth cache off and on; `--only stores` runs that section alone.
"""
import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pambench  # noqa: E402
import proxybench  # noqa: E402
import storebench  # noqa: E402
from harness import (  # noqa: E402
    Accounting, BENCH_PASS, BENCH_USER, BIG_MESSAGE_SIZE, Bench, DovecotServer, ROOT, RinggateServer,
    SEC_IDLE, World, case_key, fmt, in_scope, log, matrix, med, server_log_problems, spread)
import rgenv  # noqa: E402


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = 0
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // 1024
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
            "memory_mb": mem, "os": platform.freedesktop_os_release().get("PRETTY_NAME", "?")}


SPAWN_N = 200


def spawn_cost(build):
    """CPU ms per start of a binary that exits at once (usage error)."""
    import resource
    out = []
    for name, path in (("/bin/true", "/bin/true"),
                       ("ringgate-login", os.path.join(build, "bin", "ringgate-login")),
                       ("dovecot imap-login", "/usr/lib/dovecot/imap-login")):
        if not os.path.exists(path):
            continue
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        for _ in range(SPAWN_N):
            subprocess.run([path, "--rgbench-spawn-probe"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        out.append((name, cpu * 1000 / SPAWN_N))
    return out


LARGE_N = 100000


def large_mailbox(build, tmp, n=LARGE_N):
    """Times of a 100,000-message INBOX through the real chain: the first
    SELECT (ringgate builds its uid list), a later SELECT, FETCH 1:* FLAGS,
    and a NOOP before and after one delivery (what a session pays to notice
    a change). Seconds, median of 3 for the repeated ones."""
    import imaplib
    os.environ["RINGGATE_BUILD"] = build
    os.makedirs(os.path.join(tmp, "large"), exist_ok=True)
    rg = rgenv.Ringgate(mode="performance", workdir=os.path.join(tmp, "large"),
                        users={"big": "big-pass"})
    cur = os.path.join(rg.maildir("big"), "cur")
    body = b"From: a@example.com\r\nSubject: m\r\n\r\nhello\r\n"
    t0 = time.time()
    for i in range(n):
        # Dovecot-style names carry the size: no stat() per message needed
        name = "%d.M%dP1.bench,S=%d,W=%d:2,%s" % (1700000000 + i, i, len(body), len(body),
                                                  "S" if i % 3 else "")
        with open(os.path.join(cur, name), "wb") as f:
            f.write(body)
    for d, _, files in os.walk(rg.maildir("big")):
        os.chown(d, rg.uid, rg.gid)
        for f in files:
            os.chown(os.path.join(d, f), rg.uid, rg.gid)
    log("large mailbox: %d messages written in %.1f s" % (n, time.time() - t0))
    rg.start()
    out = {"messages": n}
    try:
        def timed(fn):
            t = time.monotonic()
            fn()
            return time.monotonic() - t
        m = imaplib.IMAP4("127.0.0.1", rg.imap_port, timeout=120)
        m.login("big", "big-pass")
        out["first_select"] = timed(lambda: m.select("INBOX"))
        m.logout()
        selects, fetches, noops = [], [], []
        for _ in range(3):
            m = imaplib.IMAP4("127.0.0.1", rg.imap_port, timeout=120)
            m.login("big", "big-pass")
            selects.append(timed(lambda: m.select("INBOX")))
            fetches.append(timed(lambda: m.fetch("1:*", "(FLAGS)")))
            noops.append(timed(m.noop))
            m.logout()
        out["select"] = med(selects)
        out["fetch_flags"] = med(fetches)
        out["noop_unchanged"] = med(noops)
        m = imaplib.IMAP4("127.0.0.1", rg.imap_port, timeout=120)
        m.login("big", "big-pass")
        m.select("INBOX")
        rg.deliver("big", body)
        time.sleep(1.1)  # a new mtime second: the change is visible
        out["noop_after_delivery"] = timed(m.noop)
        m.logout()
    finally:
        rg.stop()
        rg.cleanup()
    return out



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
        L.append("## Large mailbox\n")
        L.append("ringgate (high-performance mode) with one user whose INBOX holds %d "
                 "messages, written as Dovecot names them (size in the name), 2/3 of them "
                 "\\\\Seen; client Python imaplib over the whole chain. Seconds "
                 "(repeated ones: median of 3 sessions):\n" % large["messages"])
        L.append("| step | seconds |\n|---|---|")
        for key, label in (("first_select", "first SELECT (the uid list is built)"),
                           ("select", "SELECT in a later session"),
                           ("fetch_flags", "FETCH 1:* (FLAGS), client parsing included"),
                           ("noop_unchanged", "NOOP, nothing changed"),
                           ("noop_after_delivery", "NOOP after one delivery into new/ "
                            "(the folder is rescanned)")):
            if key in large:
                L.append("| %s | %s |" % (label, fmt(large[key], "%.3f")))
        L.append("")
    if crypto is not None:
        L.append(crypto_markdown(crypto))
    if proxy is not None:
        L.append(proxybench.proxy_markdown(proxy))
    if stores is not None:
        L.append(storebench.store_markdown(stores))
    L.append("## Process start-up\n")
    L.append("Spawn cost measured separately: CPU per fork+exec+exit of the binary, "
             "%d times from Python (includes Python's fork), on this machine:\n" %
             SPAWN_N)
    L.append("| binary | CPU ms per start |\n|---|---|")
    for name, ms in spawn:
        L.append("| `%s` | %s |" % (name, fmt(ms, "%.2f")))
    L.append("")
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


def run_profiles(bench, servers, cases, support):
    """Profile ringgate where it is short of Dovecot (median rate below
    Dovecot's in the same mode), plus its three characteristic paths."""
    by = {s.name: s for s in servers}

    def rate(name, case):
        xs = [r["rgbench"]["sessions_per_sec"] for r in bench.results
              if r["server"] == name and r["case"] == case_key(case) and r["rgbench"]["ok"]]
        return statistics.median(xs) if xs else None

    todo = []
    for case in cases:
        if case[0] == "idle":
            continue
        for rg, dc in (("rg-perf", "dc-perf"), ("rg-sec", "dc-sec")):
            a, b = rate(rg, case), rate(dc, case)
            if a and b and a < b:
                todo.append((rg, case, "%.2f× Dovecot" % (a / b)))
    fixed = [("rg-sec", ("prelogin", "imap", "plain", 32, "all"), "a login process per connection"),
             ("rg-perf", ("login", "imap", "plain", 32, "all"), "a worker per session"),
             ("rg-perf", ("prelogin", "imap", "tls", 32, "all"), "full TLS handshakes")]
    seen = set()
    for name, case, why in todo[:3] + fixed:
        if name not in by or (name, case) in seen:
            continue
        if case[2] != "plain" and not support.get((name, case[2])):
            continue
        seen.add((name, case))
        log("profiling %s %s (%s)" % (name, case_key(case), why))
        rows = bench.profile(by[name], case)
        if rows:
            bench.profiles.append((name, case, why, rows))

# -- crypto build: asm vs system ----------------------------------------------

# /proc/cpuinfo flags that decide which wolfSSL assembly runs (aes: AES-GCM,
# avx/avx2: GCM, ChaCha20-Poly1305 and SHA-2, bmi2+adx: P-256 and X25519;
# sha_ni, vaes and vpclmulqdq this wolfSSL does not use, listed for reference)
CRYPTO_FLAGS = ("aes", "pclmulqdq", "avx", "avx2", "bmi2", "adx", "sha_ni", "vaes", "vpclmulqdq")
CRYPTO_BULK_SIZE = 4 * 1024 * 1024   # message 1 of the bulk case
CRYPTO_BULK_FETCHES = 8              # FETCH 1 BODY[] per session: 32 MiB


def cpu_crypto_flags():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return [(fl, fl in have) for fl in CRYPTO_FLAGS]
    return []


def crypto_line(build):
    """`ringgate -V`'s crypto line of a build, or None without a binary."""
    path = os.path.join(build, "bin", "ringgate")
    if not os.path.exists(path):
        return None
    out = subprocess.run([path, "-V"], capture_output=True, text=True, timeout=30)
    for line in out.stdout.splitlines():
        if line.startswith("crypto: "):
            return line[len("crypto: "):]
    return "?"


def ensure_system_build(path):
    """The RINGGATE_WOLFSSL=system build the crypto section compares with;
    configured and built here when missing (a couple of minutes)."""
    line = crypto_line(path)
    if line is not None and " system build" in line:
        return line
    log("building %s with RINGGATE_WOLFSSL=system for the crypto comparison" % path)
    subprocess.run(["cmake", "-S", ROOT, "-B", path, "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
                    "-DRINGGATE_WOLFSSL=system"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", path, "-j", str(os.cpu_count() or 2)], check=True,
                   stdout=subprocess.DEVNULL)
    return crypto_line(path)


def crypto_cases():
    """(label, kind, rgbench extra args, clients, unit) of the comparison."""
    return [
        ("TLS 1.3 handshake, X25519 key share", "prelogin", ["--group", "X25519"], 16, "session"),
        ("TLS 1.3 handshake, P-256 key share", "prelogin", ["--group", "P-256"], 16, "session"),
        ("bulk: FETCH of a %d MiB message x%d through the TLS proxy" % (
            CRYPTO_BULK_SIZE >> 20, CRYPTO_BULK_FETCHES), "login-fetch",
         ["--fetches", str(CRYPTO_BULK_FETCHES)], 2, "bulk"),
    ]


def crypto_compare(args):
    """ringgate built both ways, side by side in one run, both in
    high-performance mode on one world (ECDSA P-256 certificate, a 4 MiB
    message): server CPU per full TLS 1.3 handshake with each key share,
    and bulk throughput through the post-login TLS proxy; rounds
    interleaved, medians. The load generator is the asm build's rgbench
    for both, so only the server differs."""
    builds = [("asm", args.build), ("system", args.system_build)]
    lines = {"asm": crypto_line(args.build), "system": ensure_system_build(args.system_build)}
    out = {"flags": cpu_crypto_flags(), "lines": lines, "rows": [], "skipped": None}
    if lines["asm"] is None or " asm build" not in lines["asm"]:
        out["skipped"] = ("%s is not an asm build (%s): configure it with the default "
                          "RINGGATE_WOLFSSL" % (args.build, lines["asm"]))
        log(out["skipped"])
        return out
    tmp = tempfile.mkdtemp(prefix="rgbench-crypto-")
    os.chmod(tmp, 0o755)
    world = World(tmp, big_size=CRYPTO_BULK_SIZE)
    servers = []
    results = {}
    try:
        for name, build in builds:
            servers.append(RinggateServer("rg-" + name, "performance", world, tmp, 1100, build))
        for srv in servers:
            srv.start()
            log("%s started (%s)" % (srv.name, lines[srv.name[3:]]))
        # its own Bench: no raw results file (the main matrix's)
        bench = Bench(argparse.Namespace(**{**vars(args), "raw": None}))
        for srv in servers:
            bench.warmup(srv)
        for rnd in range(1, args.runs + 1):
            for label, kind, extra, clients, unit in crypto_cases():
                for srv in servers:
                    port = srv.ports["imaps"]
                    cmd = [bench.rgbench, "--port", str(port), "--proto", "imap", "--kind", kind,
                           "--clients", str(clients), "--tls", "--timeout", "60", "--drain",
                           "--duration", str(max(args.duration, 2)), "--quiet"] + extra
                    if kind != "prelogin":
                        cmd += ["--user", BENCH_USER, "--pass", BENCH_PASS]
                    time.sleep(0.3)
                    cpu0 = srv.acct.cpu_ns()
                    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
                    cpu1 = srv.acct.cpu_ns()
                    res = None
                    for ln in r.stdout.splitlines():
                        ev = json.loads(ln)
                        if ev.get("event") == "result":
                            res = ev
                    if res is None or not res["ok"] or not res["sessions"]:
                        raise RuntimeError("crypto %s against %s failed: %s\n%s" % (
                            label, srv.name, r.stdout[-2000:], r.stderr[-2000:]))
                    n = res["sessions"]
                    cpu_s = (cpu1 - cpu0) / 1e9
                    rec = {"cpu_us_per_session": cpu_s * 1e6 / n, "rate": res["sessions_per_sec"],
                           "group": res["tls"].get("group"), "version": res["tls"]["version"]}
                    if unit == "bulk":
                        mib = n * CRYPTO_BULK_FETCHES * CRYPTO_BULK_SIZE / (1 << 20)
                        rec["mib_per_s"] = mib / res["elapsed_s"]
                        rec["cpu_ms_per_mib"] = cpu_s * 1e3 / mib
                    results.setdefault((label, srv.name), []).append(rec)
                    log("crypto %-9s %-52s round %d: %.0f us CPU/session%s, %s %s" % (
                        srv.name, label, rnd, rec["cpu_us_per_session"],
                        (", %.0f MiB/s, %.2f ms CPU/MiB" % (rec["mib_per_s"], rec["cpu_ms_per_mib"])
                         if unit == "bulk" else ""), rec["version"], rec["group"]))
    finally:
        for srv in servers:
            try:
                srv.stop()
            except Exception as e:
                log("stopping %s: %s" % (srv.name, e))
        shutil.rmtree(tmp, ignore_errors=True)
    for label, kind, extra, clients, unit in crypto_cases():
        row = {"label": label, "unit": unit, "clients": clients}
        for name, _ in builds:
            recs = results.get((label, "rg-" + name), [])
            row[name] = {k: med([x.get(k) for x in recs]) for k in
                         ("cpu_us_per_session", "rate", "mib_per_s", "cpu_ms_per_mib")}
            row[name]["group"] = recs[0]["group"] if recs else None
        out["rows"].append(row)
    return out


def crypto_markdown(c):
    L = ["## Crypto build: wolfSSL with and without its assembly\n"]
    L.append("CPU flags of this machine that matter to crypto (`/proc/cpuinfo`):\n")
    L.append("| " + " | ".join(f for f, _ in c["flags"]) + " |")
    L.append("|" + "---|" * len(c["flags"]))
    L.append("| " + " | ".join("yes" if h else "no" for _, h in c["flags"]) + " |\n")
    L.append("- asm build: `%s`" % c["lines"].get("asm"))
    L.append("- system build: `%s`\n" % c["lines"].get("system"))
    if c["skipped"]:
        L.append("Comparison skipped: %s.\n" % c["skipped"])
        return "\n".join(L)
    L.append("The same ringgate built both ways (`-DRINGGATE_WOLFSSL=asm`, the default, and "
             "`=system`, Debian's libwolfssl), run side by side in high-performance mode, "
             "rounds interleaved, medians. ECDSA P-256 certificate, TLS 1.3, full handshakes "
             "(a session is connect, handshake, greeting, LOGOUT); bulk: LOGIN, then message 1 "
             "(%d MiB) fetched %d times per session through the login process's TLS proxy. "
             "Server CPU from the servers' cgroups; the client is the same rgbench (asm "
             "build) for both.\n" % (CRYPTO_BULK_SIZE >> 20, CRYPTO_BULK_FETCHES))
    L.append("| measurement | clients | system | asm | system / asm |\n|---|---|---|---|---|")
    for row in c["rows"]:
        a, s_ = row["asm"], row["system"]
        if row["unit"] == "session":
            ra = (s_["cpu_us_per_session"] / a["cpu_us_per_session"]
                  if a["cpu_us_per_session"] and s_["cpu_us_per_session"] else None)
            L.append("| %s: server CPU µs per session | %d | %s | %s | %s |" % (
                row["label"], row["clients"], fmt(s_["cpu_us_per_session"]),
                fmt(a["cpu_us_per_session"]), fmt(ra, "%.2f×")))
            ra = a["rate"] / s_["rate"] if a["rate"] and s_["rate"] else None
            L.append("| %s: sessions/s | %d | %s | %s | %s (asm / system) |" % (
                row["label"], row["clients"], fmt(s_["rate"]), fmt(a["rate"]), fmt(ra, "%.2f×")))
        else:
            ra = (s_["cpu_ms_per_mib"] / a["cpu_ms_per_mib"]
                  if a["cpu_ms_per_mib"] and s_["cpu_ms_per_mib"] else None)
            L.append("| %s: server CPU ms per MiB | %d | %s | %s | %s |" % (
                row["label"], row["clients"], fmt(s_["cpu_ms_per_mib"], "%.2f"),
                fmt(a["cpu_ms_per_mib"], "%.2f"), fmt(ra, "%.2f×")))
            ra = a["mib_per_s"] / s_["mib_per_s"] if a["mib_per_s"] and s_["mib_per_s"] else None
            L.append("| %s: MiB/s | %d | %s | %s | %s (asm / system) |" % (
                row["label"], row["clients"], fmt(s_["mib_per_s"]), fmt(a["mib_per_s"]),
                fmt(ra, "%.2f×")))
    L.append("")
    return "\n".join(L)



def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--full", action="store_true", help="the long matrix (make bench FULL=1)")
    ap.add_argument("--runs", type=int, default=None, help="rounds (default 3)")
    ap.add_argument("--duration", type=float, default=None, help="seconds per measurement (default 2, FULL 3)")
    ap.add_argument("--hold", type=float, default=3, help="seconds idle connections are held")
    ap.add_argument("--out", default=None,
                    help="default docs/performance.md, docs/performance-full.md with --full")
    ap.add_argument("--raw", default=None, help="JSON lines of every measurement")
    ap.add_argument("--servers", default="rg-perf,rg-sec,dc-perf,dc-sec")
    ap.add_argument("--baseline", default=None, metavar="BUILD",
                    help="also run an older ringgate build (make bench-baseline) as base-perf "
                         "and base-sec, side by side with this one")
    ap.add_argument("--match", default=None,
                    help="run only the cases whose key contains this text, e.g. "
                         "'idle|imap|tls|100000' (to retry one; the page then lacks the rest)")
    ap.add_argument("--c100k", type=int, default=100000,
                    help="connections of the FULL run's largest idle TLS case (default 100000; "
                         "about 15 GB of memory between server and client)")
    ap.add_argument("--quick", action="store_true", help="one round, 1 s, to try the harness")
    ap.add_argument("--no-profile", action="store_true", help="skip the perf profiles")
    ap.add_argument("--system-build", default=os.path.join(ROOT, "build-system"),
                    help="ringgate built with -DRINGGATE_WOLFSSL=system (built when missing)")
    ap.add_argument("--only", choices=("crypto", "proxy", "pam", "stores"),
                    help="run one section only: crypto (asm vs system build), proxy "
                         "(ringgate's passdb proxy vs nginx's mail proxy), pam (system "
                         "users through PAM + passwd, cache off and on) or stores (logins "
                         "with users in PostgreSQL and slapd, ringgate vs Dovecot); writes "
                         "<build>/bench-SECTION.md unless --out is given")
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    if args.runs is None:
        args.runs = 1 if args.quick else 3
    if args.duration is None:
        args.duration = 1 if args.quick else (3 if args.full else 2)
    if args.out is None:
        # the long matrix has its own page: the short one stays as measured
        args.out = os.path.join(ROOT, "docs", "performance-full.md" if args.full
                                else "performance.md")
    if args.raw is None:
        args.raw = os.path.join(args.build, "bench-results.jsonl")
    if not rgenv.is_root():
        sys.exit("bench/run.py runs as root: it creates users, cgroups and a private Dovecot")
    if not os.path.exists(os.path.join(args.build, "bin", "rgbench")):
        sys.exit("no %s/bin/rgbench: build first (make build)" % args.build)
    args.system_build = os.path.abspath(args.system_build)
    if args.only:
        if "--out" not in sys.argv:
            # the stores section writes its committed page (issue 17)
            args.out = (os.path.join(ROOT, "docs", "performance-stores.md")
                        if args.only == "stores" else
                        os.path.join(args.build, "bench-%s.md" % args.only))
        if args.only == "crypto":
            text = crypto_markdown(crypto_compare(args))
        elif args.only == "pam":
            text = pambench.pam_markdown(pambench.pam_compare(args))
        elif args.only == "stores":
            text = storebench.store_page(storebench.store_compare(args), args)
        else:
            text = proxybench.proxy_markdown(proxybench.proxy_compare(args))
        with open(args.out, "w") as f:
            f.write(text)
        print(text)
        log("wrote %s" % args.out)
        return 0
    if shutil.which("dovecot") is None:
        log("dovecot not installed: only ringgate is measured")

    started = datetime.datetime.utcnow()
    args.load_start = " ".join(open("/proc/loadavg").read().split()[:3])
    args.git_start = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                                    capture_output=True, text=True).stdout.strip()
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="rgbench-")
    os.chmod(tmp, 0o755)
    world = World(tmp)
    cases = matrix(args.full, args.c100k)
    if args.match:
        cases = [c for c in cases if args.match in case_key(c)]
        if not cases:
            sys.exit("--match %r: no case of the matrix matches" % args.match)
    idle_max = max([c[3] for c in cases if c[0] == "idle"], default=0)
    plimit = max(1100, idle_max + 100)
    servers = []
    wanted = args.servers.split(",")
    if args.baseline:
        args.baseline = os.path.abspath(args.baseline)
        wanted += [n for n in ("base-perf", "base-sec") if n not in wanted]
    try:
        for name in wanted:
            mode = "performance" if name.endswith("perf") else "security"
            if name.startswith("rg"):
                servers.append(RinggateServer(name, mode, world, tmp, plimit, args.build))
            elif name.startswith("base"):
                if not args.baseline:
                    sys.exit("%s needs --baseline BUILD" % name)
                servers.append(RinggateServer(name, mode, world, tmp, plimit, args.baseline))
            elif shutil.which("dovecot"):
                servers.append(DovecotServer(name, mode, world, tmp, plimit))
        for s in servers:
            s.start()
            log("%s started (%s), ports %s, accounting: %s" % (s.name, s.version(), s.ports,
                                                                s.acct.method))
        bench = Bench(args)
        for s in servers:
            bench.warmup(s)
        support = {(s.name, tr): bench.supports(s, tr) for s in servers
                   for tr in ("tls", "starttls")}
        for (n, tr), ok in sorted(support.items()):
            if not ok:
                log("%s: %s not available, its rows say n/a" % (n, tr))
        for rnd in range(1, args.runs + 1):
            for case in cases:
                for s in servers:
                    if case[2] != "plain" and not support[(s.name, case[2])]:
                        continue
                    if not in_scope(s, case, rnd):
                        continue
                    if case[0] == "idle":
                        # memory growth is measured from a fresh server:
                        # a process that held connections before keeps
                        # its freed heap and would show nothing
                        s.stop()
                        s.acct = Accounting(s.name)
                        s.start()
                    rec = bench.run_one(s, case, rnd)
                    if rec["rgbench"]["errors"]:
                        # a failed run may leave the server backing off
                        # (respawn throttle) or holding connections: start
                        # it afresh so the next rows measure a sane server
                        log("%s: restarting after a run with errors" % s.name)
                        bench.restarts.append((s.name, rnd, case_key(case)))
                        s.stop()
                        s.acct = Accounting(s.name)
                        s.start()
                        bench.warmup(s)
        if not args.no_profile:
            run_profiles(bench, servers, cases, support)
    finally:
        logs = {}
        for s in servers:
            try:
                s.stop()
            except Exception as e:  # report, and go on stopping the others
                log("stopping %s: %s" % (s.name, e))
            logs[s.name] = s.logs()
        if not os.environ.get("RINGGATE_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log("kept %s" % tmp)
    spawn = spawn_cost(args.build)
    # --match retries cases: the side sections are left out
    crypto = crypto_compare(args) if not args.match else None
    proxy = proxybench.proxy_compare(args) if not args.match else None
    pam = pambench.pam_compare(args) if not args.match else None
    stores = storebench.store_compare(args) if not args.match else None
    large = None
    if not args.quick and not args.match:
        tmp2 = tempfile.mkdtemp(prefix="rgbench-large-")
        os.chmod(tmp2, 0o755)
        try:
            large = large_mailbox(args.build, tmp2, LARGE_N)
        finally:
            shutil.rmtree(tmp2, ignore_errors=True)
    # performance.md: perf-*.png; performance-full.md: perf-full-*.png
    stem = os.path.splitext(os.path.basename(args.out))[0]
    prefix = "perf-" + (stem[len("performance-"):] + "-" if stem.startswith("performance-") else "")
    plots = write_plots(os.path.dirname(os.path.abspath(args.out)), bench.results,
                        [s.name for s in servers], prefix)
    write_report(args.out, bench, servers, cases, args, started, time.time() - t0, logs, spawn,
                 large, plots, crypto, proxy, stores)
    if pam is not None:
        with open(args.out, "a") as f:
            f.write("\n" + pambench.pam_markdown(pam))
    bad = [r for r in bench.results if not r["rgbench"]["ok"]]
    log("wrote %s (%d measurements, %d with errors)" % (args.out, len(bench.results), len(bad)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
