#!/usr/bin/env python3
"""Writes fuzz/corpus/proxy/: valid and near-valid PROXY v1/v2 headers.
Each file: one byte choosing the chunk size, then the header and a little
IMAP after it."""
import hashlib
import os
import socket
import struct
import sys

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(cmd, fam, body):
    return SIG + bytes([0x20 | cmd, fam]) + struct.pack(">H", len(body)) + body


def tlv(t, v):
    return bytes([t]) + struct.pack(">H", len(v)) + v


def inet(src, dst, sp, dp):
    return socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack(">HH", sp, dp)


def inet6(src, dst, sp, dp):
    return (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
            + struct.pack(">HH", sp, dp))


def ssl(client, verify, subs):
    return tlv(0x20, bytes([client]) + struct.pack(">I", verify) + subs)


seeds = [
    b"PROXY TCP4 192.0.2.1 198.51.100.7 56324 143\r\n",
    b"PROXY TCP6 2001:db8::1 ::1 65535 993\r\n",
    b"PROXY UNKNOWN\r\n",
    b"PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 0143 2\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
    v2(1, 0x11, inet("192.0.2.1", "198.51.100.7", 56324, 993)),
    v2(1, 0x21, inet6("2001:db8::1", "2001:db8::2", 40000, 143)),
    v2(0, 0x00, b""),
    v2(0, 0x11, inet("192.0.2.1", "198.51.100.7", 1, 2)),
    v2(1, 0x00, b""),
    v2(1, 0x31, b"a" * 108 + b"b" * 108),
    v2(1, 0x11, inet("203.0.113.9", "198.51.100.7", 5555, 143)
       + tlv(0x04, b"") + tlv(0x02, b"mail.example.com") + tlv(0x01, b"imap")
       + ssl(7, 0, tlv(0x21, b"TLSv1.3") + tlv(0x23, b"TLS_AES_256_GCM_SHA384")
             + tlv(0x22, b"client.example"))
       + tlv(0x03, b"\x01\x02\x03\x04") + tlv(0xe0, b"custom")),
    v2(1, 0x21, inet6("2001:db8::1", "::1", 1, 995) + ssl(1, 0, b"")),
    v2(1, 0x11, inet("192.0.2.1", "198.51.100.7", 1, 2) + b"\x02\x00\x05abcd"),
    v2(1, 0x12, inet("192.0.2.1", "198.51.100.7", 1, 2)),
    SIG + b"\x21\x11\x04\x01",
]

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "corpus", "proxy")
os.makedirs(out, exist_ok=True)
for i, s in enumerate(seeds):
    for chunk in (0, 6):
        data = bytes([chunk]) + s + b"a1 CAPABILITY\r\n"
        name = hashlib.sha1(data).hexdigest()
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
