#!/usr/bin/env python3
"""`make run`: a demo ringgate on 127.0.0.1 with a demo user and a Maildir.

Everything lives in ./run (configuration, passwd-file, Maildir, logs). The
master runs in the foreground; Ctrl-C stops it cleanly."""
import argparse
import os
import shutil
import signal
import subprocess
import sys

import rgenv


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--mode", choices=["performance", "security"], default="performance")
    ap.add_argument("--imap-port", type=int, default=10143)
    ap.add_argument("--pop3-port", type=int, default=10110)
    ap.add_argument("--imaps-port", type=int, default=10993)
    ap.add_argument("--pop3s-port", type=int, default=10995)
    args = ap.parse_args()
    os.environ["RINGGATE_BUILD"] = os.path.abspath(args.build)

    run = os.path.join(rgenv.ROOT, "run")
    shutil.rmtree(run, ignore_errors=True)
    os.makedirs(run)
    rg = rgenv.Ringgate(mode=args.mode, workdir=run, users={"demo": "demo"},
                        imap_port=args.imap_port, pop3_port=args.pop3_port,
                        failure_delay="2 secs", tls=True,
                        imaps_port=args.imaps_port, pop3s_port=args.pop3s_port)
    rg.start(wait=False)
    try:
        rg.wait_ready()
    except RuntimeError as e:
        print(e, file=sys.stderr)
        rg.stop()
        return 1
    who = "as root: login processes chroot to %s/login as %s, workers run as %s" % (
        rg.base_dir, rgenv.LOGIN_USER, rgenv.MAIL_USER) if rgenv.is_root() else \
        "as uid %d (not root: no chroot, no user switching)" % os.getuid()
    print(f"""
ringgate is running ({args.mode} mode, {who}).
  configuration: {rg.conf}
  log:           {rg.log_path}
  user demo, password demo, Maildir {rg.maildir('demo')} ({len(rgenv.MESSAGES)} messages)
  TLS:           self-signed certificate for localhost, {rg.cert}
                 imaps on {rg.imaps_port}, pop3s on {rg.pop3s_port}, STARTTLS/STLS on the plain ports

Try:
  curl -u demo:demo 'imap://127.0.0.1:{rg.imap_port}/INBOX;MAILINDEX=1'
  curl -u demo:demo pop3://127.0.0.1:{rg.pop3_port}/1
  curl --cacert {rg.cert} -u demo:demo 'imaps://localhost:{rg.imaps_port}/INBOX;MAILINDEX=1'
  curl --cacert {rg.cert} -u demo:demo pop3s://localhost:{rg.pop3s_port}/1
  openssl s_client -connect 127.0.0.1:{rg.imaps_port} -CAfile {rg.cert}
  openssl s_client -starttls imap -connect 127.0.0.1:{rg.imap_port} -CAfile {rg.cert}
  openssl s_client -starttls pop3 -connect 127.0.0.1:{rg.pop3_port} -CAfile {rg.cert}
  python3 -c "import imaplib,ssl; m=imaplib.IMAP4_SSL('127.0.0.1',{rg.imaps_port},ssl_context=ssl.create_default_context(cafile='{rg.cert}')); m.login('demo','demo'); print(m.select('INBOX'))"
  python3 -c "import imaplib; m=imaplib.IMAP4('127.0.0.1',{rg.imap_port}); m.login('demo','demo'); print(m.select('INBOX')); print(m.fetch('1','(BODY[])')[1][0][1].decode())"
  python3 -c "import poplib; p=poplib.POP3('127.0.0.1',{rg.pop3_port}); p.user('demo'); p.pass_('demo'); print(p.stat())"
  telnet 127.0.0.1 {rg.imap_port}

Ctrl-C stops it.""", flush=True)

    def stop(_sig, _frm):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        rg.proc.wait()
    except KeyboardInterrupt:
        pass
    code = rg.stop()
    print("\nringgate stopped (exit %s)." % code)
    return 0 if code in (0, None) else 1


if __name__ == "__main__":
    sys.exit(main())
