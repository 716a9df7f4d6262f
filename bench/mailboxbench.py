"""mailboxbench.py — the large-mailbox section of `make bench`: a
100,000-message INBOX through the real chain (ringgate, high-performance),
timed with Python's imaplib. Left out of `--quick` and `--match` runs.
"""
import os
import time

from harness import fmt, log, med
import rgenv  # noqa: E402  (harness puts tests/integration on the path)


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


def large_markdown(large):
    """The page's section for large_mailbox()'s result."""
    L = []
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
    return "\n".join(L)
