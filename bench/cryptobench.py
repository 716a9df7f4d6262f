"""cryptobench.py — the crypto section of `make bench`: ringgate built
with Debian's libwolfssl (build-system/, -DRINGGATE_WOLFSSL=system, built
when missing) next to the default asm build, side by side; `run.py --only
crypto` runs it alone.
"""
import json
import os
import shutil
import subprocess
import tempfile
import time

from harness import (BENCH_PASS, BENCH_USER, Bench, ROOT, RinggateServer, World, fmt, log, med,
                     side_args)


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


def cipher_cost(build):
    """AES-128-GCM's own CPU ms per MiB (16 KiB records) with a build's
    wolfSSL (bench/rgcipher.c), the yardstick of the relay; None without
    the tool."""
    path = os.path.join(build, "bin", "rgcipher")
    if not os.path.exists(path):
        return None
    r = subprocess.run([path, "256"], capture_output=True, text=True, timeout=300)
    for line in r.stdout.splitlines():
        ev = json.loads(line)
        if ev.get("event") == "cipher":
            return ev["cpu_ms_per_mib"]
    return None


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
    out = {"flags": cpu_crypto_flags(), "lines": lines, "rows": [], "skipped": None,
           "cipher": {name: cipher_cost(build) for name, build in builds}}
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
        bench = Bench(side_args(args))
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
                    cpu0, login0 = srv.acct.cpu_ns(), srv.acct.comm_cpu_ns("ringgate-login")
                    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
                    cpu1, login1 = srv.acct.cpu_ns(), srv.acct.comm_cpu_ns("ringgate-login")
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
                        rec["relay_ms_per_mib"] = (login1 - login0) / 1e6 / mib
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
                         ("cpu_us_per_session", "rate", "mib_per_s", "cpu_ms_per_mib",
                          "relay_ms_per_mib")}
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
            ra = (s_["relay_ms_per_mib"] / a["relay_ms_per_mib"]
                  if a["relay_ms_per_mib"] and s_["relay_ms_per_mib"] else None)
            L.append("| %s: of it the relay (login processes) CPU ms per MiB | %d | %s | %s | %s |" % (
                row["label"], row["clients"], fmt(s_["relay_ms_per_mib"], "%.2f"),
                fmt(a["relay_ms_per_mib"], "%.2f"), fmt(ra, "%.2f×")))
            ra = a["mib_per_s"] / s_["mib_per_s"] if a["mib_per_s"] and s_["mib_per_s"] else None
            L.append("| %s: MiB/s | %d | %s | %s | %s (asm / system) |" % (
                row["label"], row["clients"], fmt(s_["mib_per_s"]), fmt(a["mib_per_s"]),
                fmt(ra, "%.2f×")))
    ciph = c.get("cipher") or {}
    if ciph.get("asm") or ciph.get("system"):
        L.append("")
        L.append("| the cipher's own cost (bench/rgcipher.c: AES-128-GCM, 16 KiB records) | "
                 "system | asm |\n|---|---|---|")
        L.append("| CPU ms per MiB | %s | %s |" % (fmt(ciph.get("system"), "%.3f"),
                                                 fmt(ciph.get("asm"), "%.3f")))
        for row in c["rows"]:
            if row["unit"] != "bulk":
                continue
            ratios = [row[n]["relay_ms_per_mib"] / ciph[n]
                      if row[n].get("relay_ms_per_mib") and ciph.get(n) else None
                      for n in ("system", "asm")]
            L.append("| the relay's CPU per MiB / the cipher's | %s | %s |" % (
                fmt(ratios[0], "%.1f×"), fmt(ratios[1], "%.1f×")))
        L.append("\nTarget (issue 20): the relay's CPU per MiB within 3× of the cipher's own "
                 "(asm build). The relay's figure is the login processes' CPU (receive from the "
                 "worker, seal, send to the client, on loopback: the kernel's TCP work for "
                 "both sockets included); the rest of the server's is the worker's.")
    L.append("")
    return "\n".join(L)
