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
Writes docs/performance.md (bench/report.py) and the raw results (JSON lines).
The side sections are modules of their own, each with `--only SECTION` to
run it alone: crypto (bench/cryptobench.py: ringgate built with Debian's
libwolfssl next to the default asm build), proxy (bench/proxybench.py:
ringgate's passdb proxy and nginx's mail proxy in front of one private
Dovecot), pam (bench/pambench.py: a system user through `passdb { driver =
pam }` + `userdb { driver = passwd }`, cache off and on), stores
(bench/storebench.py: users in a private PostgreSQL and slapd, ringgate
against Dovecot's own drivers, cache off and on), workers
(bench/workerbench.py: LOGIN sessions with a worker per session and with
worker reuse, both servers with the same `service imap { }`) and hisec
(bench/hisecbench.py: high-security mode, a login process per connection
forked from a template or exec'd, ringgate against Dovecot) and prelogin
(bench/prelogbench.py: ringgate, Dovecot and nginx's mail proxy side by side
on plain and imaps pre-login CPU and idle memory per connection, its own page
docs/performance-prelogin.md); process start-up
(bench/startbench.py) and the large mailbox (bench/mailboxbench.py) run
after the matrix.
"""
import argparse
import datetime
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cryptobench  # noqa: E402
import hisecbench  # noqa: E402
import mailboxbench  # noqa: E402
import pambench  # noqa: E402
import prelogbench  # noqa: E402
import proxybench  # noqa: E402
import report  # noqa: E402
import startbench  # noqa: E402
import storebench  # noqa: E402
import workerbench  # noqa: E402
from harness import (  # noqa: E402
    Accounting, Bench, DovecotServer, ROOT, RinggateServer, World, case_key, in_scope, log, matrix,
    stop_all)
import rgenv  # noqa: E402


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
    ap.add_argument("--only", choices=("crypto", "proxy", "pam", "stores", "workers", "hisec",
                                       "prelogin"),
                    help="run one section only: crypto (asm vs system build), proxy "
                         "(ringgate's passdb proxy vs nginx's mail proxy), pam (system "
                         "users through PAM + passwd, cache off and on), stores (logins "
                         "with users in PostgreSQL and slapd, ringgate vs Dovecot), "
                         "workers (LOGIN sessions with a worker per session and with "
                         "worker reuse, the same service imap settings for both) or hisec "
                         "(high-security mode: template, exec, Dovecot) or prelogin "
                         "(plain and imaps pre-login CPU, idle memory per connection: "
                         "ringgate, Dovecot, nginx); writes <build>/bench-SECTION.md "
                         "(stores, prelogin: their docs/performance-*.md page) unless "
                         "--out is given")
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
            args.out = (os.path.join(ROOT, "docs", "performance-%s.md" % args.only)
                        if args.only in ("stores", "prelogin") else
                        os.path.join(args.build, "bench-%s.md" % args.only))
        if args.only == "crypto":
            text = cryptobench.crypto_markdown(cryptobench.crypto_compare(args))
        elif args.only == "pam":
            text = pambench.pam_markdown(pambench.pam_compare(args))
        elif args.only == "stores":
            text = storebench.store_page(storebench.store_compare(args), args)
        elif args.only == "workers":
            text = workerbench.workers_markdown(workerbench.workers_compare(args))
        elif args.only == "hisec":
            text = hisecbench.hisec_markdown(hisecbench.hisec_compare(args))
        elif args.only == "prelogin":
            text = prelogbench.prelogin_page(prelogbench.prelogin_compare(args), args)
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
        logs = stop_all(servers, tmp)
    spawn = startbench.spawn_cost(args.build)
    # --match retries cases: the side sections are left out
    crypto = cryptobench.crypto_compare(args) if not args.match else None
    proxy = proxybench.proxy_compare(args) if not args.match else None
    pam = pambench.pam_compare(args) if not args.match else None
    stores = storebench.store_compare(args) if not args.match else None
    workers = workerbench.workers_compare(args) if not args.match else None
    hisec = hisecbench.hisec_compare(args) if not args.match else None
    prelogin = prelogbench.prelogin_compare(args) if not args.match else None
    large = None
    if not args.quick and not args.match:
        tmp2 = tempfile.mkdtemp(prefix="rgbench-large-")
        os.chmod(tmp2, 0o755)
        try:
            large = mailboxbench.large_mailbox(args.build, tmp2, mailboxbench.LARGE_N)
        finally:
            shutil.rmtree(tmp2, ignore_errors=True)
    # performance.md: perf-*.png; performance-full.md: perf-full-*.png
    stem = os.path.splitext(os.path.basename(args.out))[0]
    prefix = "perf-" + (stem[len("performance-"):] + "-" if stem.startswith("performance-") else "")
    plots = report.write_plots(os.path.dirname(os.path.abspath(args.out)), bench.results,
                        [s.name for s in servers], prefix)
    report.write_report(args.out, bench, servers, cases, args, started, time.time() - t0, logs, spawn,
                 large, plots, crypto, proxy, stores)
    for section, markdown in ((pam, pambench.pam_markdown), (workers, workerbench.workers_markdown),
                              (hisec, hisecbench.hisec_markdown),
                              (prelogin, prelogbench.prelogin_markdown)):
        if section is not None:
            with open(args.out, "a") as f:
                f.write("\n" + markdown(section))
    if prelogin is not None:
        # the section's own page, next to the main one
        page = os.path.join(os.path.dirname(os.path.abspath(args.out)),
                            "performance-prelogin.md")
        with open(page, "w") as f:
            f.write(prelogbench.prelogin_page(prelogin, args))
    bad = [r for r in bench.results if not r["rgbench"]["ok"]]
    log("wrote %s (%d measurements, %d with errors)" % (args.out, len(bench.results), len(bad)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
