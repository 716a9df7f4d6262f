#!/usr/bin/env python3
"""Writes fuzz/corpus/ipc/type-*: one valid message of every enum ipc_type in
src/lib/ipc.h, with the fields docs/ipc.md gives it (host order = little
endian here). Re-run after adding a message type or field."""
import os
import re
import struct
import sys

HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "lib",
                      "ipc.h")


def enum(text, name, prefix):
    """the member names of `enum name` in ipc.h, in order, without prefix
    (members are implicit 0, 1, 2, ...; the *_COUNT sentinel is left out)"""
    body = text[text.index("enum %s {" % name):]
    body = body[:body.index("};")]
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    names = re.findall(r"\b" + prefix + r"([A-Z0-9_]+)\b(?:\s*=\s*0)?\s*,", body)
    return [n for n in names if not n.endswith("COUNT")]


with open(HEADER) as _f:
    _h = _f.read()
T = enum(_h, "ipc_type", "IPC_")
F = enum(_h, "ipc_field", "IPC_F_")
COOKIE = b"0123456789abcdef0123456789abcdef"
CONN = [("RIP", b"192.0.2.7"), ("RPORT", b"51234"), ("LIP", b"127.0.0.1"),
        ("LPORT", b"143")]
MSGS = {
    "AUTH_BEGIN": [("MECH", b"PLAIN"), ("SERVICE", b"imap")] + CONN +
                  [("SECURED", b"1"), ("RESP", b"\0user\0secret")],
    "AUTH_CONTINUE": [("RESP", b"secret")],
    "AUTH_ABORT": [],
    "AUTH_CHALLENGE": [("CHALLENGE", b"Password:")],
    "AUTH_OK": [("USER", b"user"), ("COOKIE", COOKIE),
                ("EXTRA", b"proxy=y\thost=10.0.0.2")],
    "AUTH_FAIL": [("REASON", b"Authentication failed."), ("TEMP", b"1"),
                  ("USER", b"user")],
    "AUTH_NEW_CLIENT": [("SERVICE", b"pop3")],
    "AUTH_REQUEST": [("COOKIE", COOKIE), ("LOGIN_PID", b"4242")],
    "AUTH_USER": [("USER", b"user"), ("UID", b"1000"), ("GID", b"1000"),
                  ("HOME", b"/home/user"), ("MAIL", b"maildir:~/Maildir"),
                  ("EXTRA", b"quota=1G")],
    "LOGIN_HANDOFF": [("SERVICE", b"imap"), ("USER", b"user"), ("COOKIE", COOKIE),
                      ("TAG", b"a1")] + CONN +
                     [("SECURED", b"1"), ("TLS", b"1"),
                      ("PREREAD", b"b SELECT INBOX\r\n"), ("SESSION", b"Xy12ab")],
    "LOGIN_STATUS": [("CONNS", b"12"), ("PRELOGIN", b"3"), ("TOTAL", b"18446744073709551615")],
    "LOGIN_HANDOFF_REPLY": [("REASON", b"Maximum number of connections"), ("TEMP", b"1")],
    "WORKER_INIT": [("SERVICE", b"imap"), ("USER", b"user"), ("HOME", b"/home/user"),
                    ("MAIL", b"maildir:~/Maildir"), ("TAG", b"a1")] + CONN +
                   [("SECURED", b"1"), ("TLS", b"0"), ("PREREAD", b""),
                    ("SESSION", b"Xy12ab")],
    "LOGIN_TICKET_KEYS": [("TICKET_KEYS", bytes(range(96)))],
    "LOGIN_OVERFLOW": [],
    "LOGIN_STATS_REQUEST": [],
    "LOGIN_STATS": [("STATS", b"conns=3 prelogin=1 accepted=9 hs_full=2 hs_resumed=1 "
                              b"hs_failed=0 login_ok=5 login_failed=1 handoffs=5 "
                              b"proxy_in=1024 proxy_out=4096 evictions=0")],
    "LOGIN_RETIRE": [],
    "DNS_LOOKUP": [("HOST", b"backend.example.net")],
    "DNS_RESULT": [("HOST", b"192.0.2.9")],
    "CTL_REQUEST": [("CMD", b"who -1")],
    "CTL_REPLY": [("TEXT", b"user 1 imap 192.0.2.7\n")],
    "CTL_REPLY_END": [("TEXT", b"")],
    "AUTH_WORKER_SPAWN": [],
    "AUTH_WORKER_KILL": [("LOGIN_PID", b"4243")],
    "AUTH_WORKER_REQUEST": [("DB", b"verify 0 pam - "), ("USER", b"user"),
                            ("PASS", b"secret"), ("SERVICE", b"imap"), ("MECH", b"PLAIN"),
                            ("RIP", b"192.0.2.7"), ("LIP", b"127.0.0.1"), ("SECURED", b"1"),
                            ("USERDB", b"")],
    "AUTH_WORKER_RESULT": [("RESULT", b"1"), ("USER", b"user"), ("EXTRA", b"nodelay=y"),
                           ("USERDB", b"uid=1000\tgid=1000")],
    "AUTH_CACHE_FLUSH": [("USER", b"alice bob")],
    "WORKER_DONE": [],
    "LOGIN_SPAWN_AUTH": [],
    "LOGIN_SPAWN": [],
    "LOGIN_SPAWNED": [("LOGIN_PID", b"4244")],
    "WORKER_TEMPLATE_READY": [],
    "WORKER_SPAWN": [],
    "WORKER_SPAWNED": [("LOGIN_PID", b"4245")],
    "WORKER_SETUP": [("UID", b"1000"), ("GID", b"1000"), ("GROUPS", b"8,12"),
                     ("CHROOT", b"/srv/jail"), ("HOME", b"/home/user"),
                     ("VSZ", b"268435456"), ("REUSE", b"1")],
    "LOGIN_IDLE_KILL": [],
}
missing = set(T[1:]) - set(MSGS)
assert not missing, "ipc.h types without a seed here: %s" % sorted(missing)


def msg(type_name, fields, id_=7, pid=1234):
    payload = b"".join(struct.pack("<HH", F.index(k), len(v)) + v + b"\0"
                       for k, v in fields)
    return struct.pack("<HHIII", T.index(type_name), 0, len(payload), id_, pid) + payload


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "corpus", "ipc")
    for name, fields in MSGS.items():
        with open(os.path.join(out, "type-" + name.lower()), "wb") as f:
            f.write(msg(name, fields))
    # near-valid: one byte short, an unknown type, a field past the last key
    with open(os.path.join(out, "near-short"), "wb") as f:
        f.write(msg("AUTH_OK", MSGS["AUTH_OK"])[:-1])
    with open(os.path.join(out, "near-type"), "wb") as f:
        f.write(msg("NONE", [])[:0] + struct.pack("<HHIII", len(T), 0, 0, 1, 1))
    with open(os.path.join(out, "near-key"), "wb") as f:
        f.write(msg("AUTH_USER", [])[:16] + b"")
        f.write(struct.pack("<HH", len(F), 1) + b"x\0")
    with open(os.path.join(out, "near-nonul"), "wb") as f:
        m = bytearray(msg("AUTH_CONTINUE", [("RESP", b"abc")]))
        m[-1] = ord("x")
        f.write(m)


if __name__ == "__main__":
    main()
