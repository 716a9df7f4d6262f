#!/usr/bin/env python3
"""Run Dovecot's imaptest against a private ringgate (login -> hand-off ->
worker) and, for comparison, a private Dovecot, on the same machine.

imaptest is not part of this tree: fetch and build it outside (see
docs/imap-compliance.md), then point --imaptest at its binary and --tests at
its src/tests directory. Nothing here runs under ctest.

    python3 tests/integration/imaptest_run.py --imaptest ../imaptest/src/imaptest \
        --tests ../imaptest/src/tests [--target ringgate|dovecot|both] [--tls]
    python3 tests/integration/imaptest_run.py --imaptest ... --stress 60 --clients 20 \
        --mbox some.mbox
    python3 tests/integration/imaptest_run.py ... --mail-location mbox:~/mail:INBOX=~/inbox

Scripted mode prints imaptest's summary ("71 test groups: 0 failed, ...");
stress mode prints the error count (lines starting "Error:") and whether
the server logged a crash. Exit status: 0 when nothing failed.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

import dcenv
import rgenv

USER, PASSWORD = "imaptest", "imaptest-pass"


def run_imaptest(args, port, tls):
    cmd = [args.imaptest, "host=127.0.0.1", "port=%d" % port, "user=" + USER,
           "pass=" + PASSWORD]
    if tls:
        cmd.append("ssl=any-cert")
    if args.stress:
        cmd += ["clients=%d" % args.clients, "secs=%d" % args.stress]
        if args.mbox:
            cmd.append("mbox=" + os.path.abspath(args.mbox))
    else:
        cmd.append("test=" + os.path.abspath(args.tests))
    env = dict(os.environ)
    # imaptest links Dovecot's private libraries
    env["LD_LIBRARY_PATH"] = ":".join(p for p in ("/usr/lib/dovecot", env.get("LD_LIBRARY_PATH"))
                                      if p)
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=(args.stress or 0) + 900)
    return proc.returncode, proc.stdout.decode("utf-8", "replace")


def summarize(name, rc, out, logs):
    crashed = re.search(r"signal|panic|AddressSanitizer|core dumped", logs, re.I) is not None
    if re.search(r"test groups:", out):
        lines = [l for l in out.splitlines() if re.search(r"test groups:|individual commands", l)]
        failed = re.search(r"test groups: (\d+) failed", out)
        bad = [int(n) for n in re.findall(r"(\d+)/\d+ individual commands failed", out)]
        ok = failed is not None and failed.group(1) == "0" and not any(bad)
    else:
        errors = [l for l in out.splitlines() if l.startswith("Error:")]
        lines = ["%d errors (imaptest exit %d)" % (len(errors), rc)] + errors[:20]
        ok = not errors and rc == 0
    lines.append("server crash in the log: %s" % ("YES" if crashed else "no"))
    print("== %s\n%s" % (name, "\n".join("   " + l for l in lines)), flush=True)
    return ok and not crashed


def run_against(args, name, tls, server):
    """imaptest against one started server (rgenv.Ringgate or dcenv.Dovecot)"""
    rc, out = run_imaptest(args, server.imaps_port if tls else server.imap_port, tls)
    if args.keep_output:
        with open("%s.%s%s" % (args.keep_output, name, "-tls" if tls else ""), "w") as f:
            f.write(out)
    return summarize(name + (" imaps" if tls else ""), rc, out, server.logs())


def run_ringgate(args, tls):
    extra = "disable_plaintext_auth = no\n"
    if args.mail_location:
        extra += "mail_location = %s\n" % args.mail_location
    rg = rgenv.Ringgate(users={USER: PASSWORD}, tls=True, failure_delay="0 secs",
                        extra_conf=extra)
    try:
        rg.start()
        return run_against(args, "ringgate", tls, rg)
    finally:
        rg.stop()
        rg.cleanup()


def run_dovecot(args, tls):
    tmp = tempfile.mkdtemp(prefix="imaptest-dc-")
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    rgenv.make_cert(cert, key)
    extra = "mail_location = %s\n" % args.mail_location if args.mail_location else ""
    dc = dcenv.Dovecot(users={USER: PASSWORD}, cert=cert, key=key, extra_conf=extra)
    try:
        dc.start()
        return run_against(args, "dovecot", tls, dc)
    finally:
        dc.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--imaptest", required=True, help="the imaptest binary")
    ap.add_argument("--tests", help="imaptest's src/tests (scripted mode)")
    ap.add_argument("--target", choices=["ringgate", "dovecot", "both"], default="ringgate")
    ap.add_argument("--tls", action="store_true", help="also run over imaps")
    ap.add_argument("--stress", type=int, default=0, help="stress mode for this many seconds")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--mbox", help="stress mode: messages to APPEND from this mbox")
    ap.add_argument("--mail-location", help="both servers' mail_location, e.g. "
                    "mbox:~/mail:INBOX=~/inbox for an mbox INBOX")
    ap.add_argument("--build", default=os.environ.get("RINGGATE_BUILD", "build"))
    ap.add_argument("--keep-output", help="write imaptest's full output to PREFIX.<server>")
    args = ap.parse_args()
    if not args.stress and not args.tests:
        ap.error("--tests is needed for scripted mode")
    os.environ["RINGGATE_BUILD"] = os.path.abspath(args.build)
    if args.target != "ringgate" and not dcenv.available():
        ap.error("Dovecot is not installed (dovecot-imapd)")
    ok = True
    for tls in ([False, True] if args.tls else [False]):
        if args.target in ("ringgate", "both"):
            ok &= run_ringgate(args, tls)
        if args.target in ("dovecot", "both"):
            ok &= run_dovecot(args, tls)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
