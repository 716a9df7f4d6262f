#!/usr/bin/env python3
"""soak.py — the long run of issue 7: a million pre-login sessions against a
running ringgate, then check that its file descriptors, process count and
memory are back where they started.

`make soak` (and `make bench FULL=1`) runs it as root. For each mode it
starts a private ringgate (tests/integration/rgenv.py) with an implicit-TLS
port, warms it up, takes a snapshot (every process under master: count,
open fds, summed PSS), then runs bench/rgbench in chunks (plain IMAP
prelogin sessions — greeting, LOGOUT — and a share of imaps ones with a full
TLS handshake), taking a snapshot after each chunk, and a final one once the
last connections have closed. fds and processes must be equal to the start,
memory within the tolerance; any rgbench error fails the run. The table goes
to docs/soak.md (or --out).

High-security mode forks a process per connection (~6 ms of CPU each), so it
gets fewer sessions by default (--security-sessions).
"""
import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import rgenv  # noqa: E402
from harness import proc_children_tree, pss_bytes  # noqa: E402

CHUNKS = 10
WARMUP = 2000  # high-security: a tenth
# a log line that fails the run (not "Error:": a client's bad input is logged so)
PROBLEM = re.compile(r"Fatal: |Panic|AddressSanitizer|LeakSanitizer|runtime error|killed with signal")
TLS_SHARE = 20  # one session in TLS_SHARE is an imaps one


def log(msg):
    print("[soak %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def snapshot(root):
    pids = proc_children_tree(root)
    fds = 0
    for pid in pids:
        try:
            fds += len(os.listdir("/proc/%d/fd" % pid))
        except OSError:
            pass  # a process that just went away
    return {"procs": len(pids), "fds": fds, "pss": pss_bytes(pids)}


def settled(root, want=None, timeout=30):
    """a snapshot once the numbers stop moving (connections closing, spare
    processes being started) or equal want's fds and procs"""
    deadline = time.time() + timeout
    last = snapshot(root)
    while time.time() < deadline:
        time.sleep(1.0)
        cur = snapshot(root)
        if want is not None and cur["fds"] == want["fds"] and cur["procs"] == want["procs"]:
            return cur
        if want is None and cur["fds"] == last["fds"] and cur["procs"] == last["procs"]:
            return cur
        last = cur
    return last


def rgbench(build, port, sessions, tls, clients):
    cmd = [os.path.join(build, "bin", "rgbench"), "--port", str(port), "--proto", "imap",
           "--kind", "prelogin", "--clients", str(clients), "--sessions", str(sessions),
           "--duration", "100000", "--drain", "--timeout", "30", "--src-addrs", "16", "--quiet"]
    if tls:
        cmd.append("--tls")
    p = subprocess.run(cmd, capture_output=True, text=True)
    result = None
    for line in p.stdout.splitlines():
        ev = json.loads(line)
        if ev.get("event") == "result":
            result = ev
    if result is None:
        raise RuntimeError("rgbench gave no result: %s\n%s" % (" ".join(cmd), p.stderr))
    return result


def soak(build, mode, sessions, tolerance):
    os.environ["RINGGATE_BUILD"] = build
    # its own directory name: test suites tidy up ringgate-test-* behind them
    rg = rgenv.Ringgate(mode=mode, tls=True, workdir=tempfile.mkdtemp(prefix="ringgate-soak-"),
                        service_extra="  process_limit = 1000\n",
                        extra_conf="default_process_limit = 1000\n").start()
    try:
        root = rg.proc.pid
        clients = 32 if mode == "performance" else 8
        log("%s: warming up" % mode)
        warm = WARMUP if mode == "performance" else WARMUP // 10
        rgbench(build, rg.imap_port, warm, False, clients)
        rgbench(build, rg.imaps_port, warm // 10, True, clients)
        start = settled(root)
        rows = [("start", 0, 0, start)]
        per_chunk = sessions // CHUNKS
        done = errors = 0
        t0 = time.time()
        for i in range(CHUNKS):
            tls_n = per_chunk // TLS_SHARE
            for n, tls in ((per_chunk - tls_n, False), (tls_n, True)):
                r = rgbench(build, rg.imaps_port if tls else rg.imap_port, n, tls, clients)
                done += r["sessions"]
                errors += sum(r["errors_by_kind"].values()) if r["errors_by_kind"] else 0
                if not r["ok"]:
                    log("%s: rgbench errors: %s" % (mode, r["errors_by_kind"]))
            snap = snapshot(root)
            rows.append(("after %d" % done, done, errors, snap))
            log("%s: %d sessions, %d errors, %d procs, %d fds, %.1f MB PSS" % (
                mode, done, errors, snap["procs"], snap["fds"], snap["pss"] / 1e6))
        elapsed = time.time() - t0
        end = settled(root, want=start)
        rows.append(("end (settled)", done, errors, end))
        ok = (errors == 0 and end["fds"] == start["fds"] and end["procs"] == start["procs"] and
              end["pss"] <= start["pss"] * (1 + tolerance / 100.0) + 256 * 1024)
        problems = [l for l in rg.logs().splitlines() if PROBLEM.search(l)]
        ok = ok and not problems
        return {"mode": mode, "sessions": done, "errors": errors, "elapsed": elapsed,
                "rows": rows, "ok": ok, "problems": problems[:5]}
    finally:
        rg.cleanup()


def report(path, runs, args, started):
    uname = platform.uname()
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    out = ["# ringgate — soak: a million pre-login sessions\n",
           "Generated by `bench/soak.py` (`make soak`, also part of `make bench FULL=1`) "
           "on %s UTC. Machine: %s, %d cores, Linux %s; load average before: %s.\n" % (
               started.strftime("%Y-%m-%d %H:%M"), cpu, os.cpu_count() or 0, uname.release,
               " ".join("%.2f" % x for x in os.getloadavg())),
           "Command: `%s`\n" % " ".join(sys.argv),
           "Each mode: a private ringgate (imap + imaps ports), warmed up with 2,200 "
           "sessions (high-security: 220), then rgbench prelogin sessions (greeting, LOGOUT) in %d chunks, "
           "one in %d over implicit TLS with a full handshake. A snapshot after each "
           "chunk sums every process under master: processes, open fds, PSS. The run "
           "passes when the settled end equals the start in fds and processes, PSS is "
           "within %d%% + 256 kB, rgbench saw no error and the log no fatal line.\n" % (
               CHUNKS, TLS_SHARE, args.tolerance)]
    for r in runs:
        out.append("## %s mode: %s sessions in %.0f s — %s\n" % (
            r["mode"], "{:,}".format(r["sessions"]), r["elapsed"], "PASS" if r["ok"] else "FAIL"))
        out.append("| point | sessions | errors | processes | fds | PSS (MB) |")
        out.append("| --- | ---: | ---: | ---: | ---: | ---: |")
        for name, n, e, s in r["rows"]:
            out.append("| %s | %s | %d | %d | %d | %.2f |" % (
                name, "{:,}".format(n), e, s["procs"], s["fds"], s["pss"] / 1e6))
        out.append("")
        if r["problems"]:
            out.append("Log lines: " + "; ".join("`%s`" % p for p in r["problems"]) + "\n")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--sessions", type=int, default=1000000,
                    help="high-performance mode (default 1,000,000)")
    ap.add_argument("--security-sessions", type=int, default=20000,
                    help="high-security mode, a process each (default 20,000; 0 skips)")
    ap.add_argument("--tolerance", type=float, default=5.0, help="PSS growth allowed, %%")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "soak.md"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("soak.py: run as root (the servers drop to their users)")
    build = os.path.abspath(args.build)
    started = datetime.datetime.utcnow()
    runs = [soak(build, "performance", args.sessions, args.tolerance)]
    if args.security_sessions > 0:
        runs.append(soak(build, "security", args.security_sessions, args.tolerance))
    report(args.out, runs, args, started)
    log("wrote %s" % args.out)
    for r in runs:
        log("%s: %s" % (r["mode"], "PASS" if r["ok"] else "FAIL"))
    sys.exit(0 if all(r["ok"] for r in runs) else 1)


if __name__ == "__main__":
    main()
