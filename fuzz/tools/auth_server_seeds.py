#!/usr/bin/env python3
"""Writes fuzz/corpus/auth_server/: login-channel conversations for
fuzz/fuzz_auth_server.c (its header gives the record format), one per path
through auth-server.c: each passwd-file user of the target's fixed files,
PLAIN and LOGIN, the separate userdb, policy refusals, misbehaving channels
and master's AUTH_REQUEST. Re-run after changing the target's format."""
import os
import sys

BEGIN, CONTINUE, ABORT, SPECIAL = 0, 1, 2, 3
MECH, RESP, RIP, SECURED, USER = 1, 2, 4, 8, 16
TICK, OTHER, MREQ, MREQ_BADPID, MREQ_BADCOOKIE, CHAN2 = range(6)


def op(kind, arg):
    return bytes([kind | (arg << 2)])


def msg(kind, rid, mech=None, resp=None, rip=None, secured=False, user=None):
    out = op(kind, rid)
    if kind == ABORT:
        return out
    bits, vals = 0, []
    for bit, v in ((MECH, mech), (RESP, resp), (RIP, rip),
                   (SECURED, b"1" if secured else None), (USER, user)):
        if v is not None:
            bits |= bit
            vals.append(bytes([len(v)]) + v)
    return out + bytes([bits]) + b"".join(vals)


def plain(user, pw, authz=b""):
    return authz + b"\0" + user + b"\0" + pw


def begin_plain(rid, user, pw, **kw):
    kw.setdefault("rip", b"192.0.2.7")
    kw.setdefault("secured", True)
    return msg(BEGIN, rid, mech=b"PLAIN", resp=plain(user, pw), **kw)


SEEDS = {
    # variant 0: "plain", one file
    "plain-ok-cookie": b"\0" + begin_plain(1, b"alice", b"secret") +
        op(SPECIAL, MREQ) + op(SPECIAL, MREQ),
    "plain-ok-badpid": b"\0" + begin_plain(1, b"alice", b"secret") +
        op(SPECIAL, MREQ_BADPID) + op(SPECIAL, MREQ_BADCOOKIE),
    "plain-mismatch": b"\0" + begin_plain(2, b"alice", b"wrong") + op(SPECIAL, TICK),
    "plain-penalty": b"\0" + b"".join(begin_plain(i, b"alice", b"x%d" % i) for i in range(4)) +
        op(SPECIAL, TICK),
    "plain-unknown-user": b"\0" + begin_plain(3, b"nobody", b"pw"),
    "plain-nologin-reason": b"\0" + begin_plain(4, b"bob", b"pw"),
    "plain-nologin": b"\0" + begin_plain(4, b"henry", b"pw"),
    "plain-no-uid": b"\0" + begin_plain(5, b"carol", b"pw"),
    "plain-no-password": b"\0" + begin_plain(6, b"dave", b""),
    "plain-bad-hash": b"\0" + begin_plain(7, b"eve", b"pw"),
    "plain-unknown-scheme": b"\0" + begin_plain(8, b"frank", b"x"),
    "plain-proxy": b"\0" + begin_plain(1, b"pat", b"pw") + op(SPECIAL, MREQ),
    "plain-proxy-maybe": b"\0" + begin_plain(1, b"max", b"pw") + op(SPECIAL, MREQ),
    "plain-bad-userdb-uid": b"\0" + begin_plain(9, b"gina", b"pw"),
    "plain-authzid": b"\0" + msg(BEGIN, 1, mech=b"PLAIN", resp=plain(b"alice", b"secret", b"admin")),
    "plain-no-ir": b"\0" + msg(BEGIN, 1, mech=b"PLAIN") + msg(CONTINUE, 1, resp=plain(b"ivan", b"pw")),
    "plain-bad-resp": b"\0" + msg(BEGIN, 1, mech=b"PLAIN", resp=b"alice"),
    "mech-login-refused": b"\0" + msg(BEGIN, 1, mech=b"LOGIN"),
    "mech-unknown": b"\0" + msg(BEGIN, 1, mech=b"XOAUTH2", resp=b"x"),
    "begin-no-mech": b"\0" + msg(BEGIN, 1, resp=b"x"),
    "begin-dup-id": b"\0" + msg(BEGIN, 1, mech=b"PLAIN") + msg(BEGIN, 1, mech=b"PLAIN"),
    "continue-unknown": b"\0" + msg(CONTINUE, 9, resp=b"x"),
    "continue-no-resp": b"\0" + msg(BEGIN, 1, mech=b"PLAIN") + msg(CONTINUE, 1),
    "continue-delayed": b"\0" + begin_plain(1, b"alice", b"no") + msg(CONTINUE, 1, resp=b"x"),
    "abort": b"\0" + msg(BEGIN, 1, mech=b"PLAIN") + msg(ABORT, 1) + msg(ABORT, 2) +
        msg(CONTINUE, 1, resp=b"x"),
    "other-type": b"\0" + op(SPECIAL, OTHER) + b"\x06",
    "second-channel": b"\0" + op(SPECIAL, CHAN2) + begin_plain(1, b"alice", b"secret") +
        op(SPECIAL, MREQ_BADPID),
    "rip-escaped": b"\0" + begin_plain(1, b"alice", b"no", rip=b"\x01\xff::1\n" * 8),
    # variant 1: "plain login"
    "login-ok": b"\1" + msg(BEGIN, 1, mech=b"LOGIN") + msg(CONTINUE, 1, resp=b"alice") +
        msg(CONTINUE, 1, resp=b"secret") + op(SPECIAL, MREQ),
    "login-ir": b"\1" + msg(BEGIN, 1, mech=b"LOGIN", resp=b"ivan") + msg(CONTINUE, 1, resp=b"pw"),
    "login-mismatch": b"\1" + msg(BEGIN, 1, mech=b"LOGIN") + msg(CONTINUE, 1, resp=b"alice") +
        msg(CONTINUE, 1, resp=b"no") + op(SPECIAL, TICK),
    # variant 2: "plain", separate userdb, disable_plaintext_auth
    "plaintext-refused": b"\2" + begin_plain(1, b"alice", b"secret", secured=False),
    "userdb-ok": b"\2" + begin_plain(1, b"alice", b"secret") + op(SPECIAL, MREQ),
    # variant 3: "plain login", separate userdb
    "userdb-ivan": b"\3" + begin_plain(1, b"ivan", b"pw") + op(SPECIAL, MREQ),
    "userdb-missing": b"\3" + begin_plain(1, b"gina", b"pw"),
}

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "corpus", "auth_server")
os.makedirs(out, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
