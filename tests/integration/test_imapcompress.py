"""COMPRESS=DEFLATE (RFC 4978) and BINARY (RFC 3516) through the whole chain
(client -> login -> hand-off -> worker), plain and over imaps (where the
login process relays the TLS bytes and the worker compresses inside them).
The client side is imaplib with zlib raw deflate over its socket, written
from the RFC: after the tagged OK both directions are one deflate stream
each, flushed with Z_SYNC_FLUSH."""
import base64
import imaplib
import re
import socket
import ssl
import time
import unittest
import zlib

import rgenv

# imaplib does not know the command (RFC 4978: after authentication)
imaplib.Commands.setdefault("COMPRESS", ("AUTH", "SELECTED"))

USERS = {"zplain": "pw-zplain", "ztls": "pw-ztls", "zpipe": "pw-zpipe", "zbad": "pw-zbad",
         "zbomb": "pw-zbomb", "bin": "pw-bin"}

QP_BODY = b"caf=C3=A9 cr=E8me=\r\n br=FBl=E9e  \r\nend"
BIN_MSG = (b"From: a@example.com\r\nSubject: binary\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=\"zz\"\r\n\r\n"
           b"--zz\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + base64.encodebytes(bytes(range(256))).replace(b"\n", b"\r\n") +
           b"--zz\r\nContent-Type: text/plain; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + QP_BODY + b"\r\n"
           b"--zz\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           b"not*base64\r\n--zz--\r\n")


class DeflateMixin:
    """imaplib with COMPRESS DEFLATE: once on, send() deflates and the
    reads inflate what comes from the socket."""
    z_out = z_in = None
    z_buf = b""

    def compress(self):
        typ, data = self._simple_command("COMPRESS", "DEFLATE")
        if typ == "OK":
            self.z_out = zlib.compressobj(6, zlib.DEFLATED, -15)
            self.z_in = zlib.decompressobj(-15)
        return typ, data

    def send(self, data):
        if self.z_out is None:
            return super().send(data)
        self.sock.sendall(self.z_out.compress(data) + self.z_out.flush(zlib.Z_SYNC_FLUSH))

    def _fill(self):
        raw = self.file.read1(65536)
        if not raw:
            raise imaplib.IMAP4.abort("socket closed")
        self.z_buf += self.z_in.decompress(raw)

    def read(self, size):
        if self.z_in is None:
            return super().read(size)
        while len(self.z_buf) < size:
            self._fill()
        data, self.z_buf = self.z_buf[:size], self.z_buf[size:]
        return data

    def readline(self):
        if self.z_in is None:
            return super().readline()
        while b"\n" not in self.z_buf:
            self._fill()
        i = self.z_buf.index(b"\n") + 1
        data, self.z_buf = self.z_buf[:i], self.z_buf[i:]
        return data


class DeflateIMAP(DeflateMixin, imaplib.IMAP4):
    pass


class DeflateIMAPS(DeflateMixin, imaplib.IMAP4_SSL):
    pass


def unpack(fetch_data):
    """{item name: literal bytes} of one FETCH response from imaplib"""
    out = {}
    for part in fetch_data:
        if isinstance(part, tuple):
            name = re.search(rb"(BINARY\[[0-9.]*\](?:<\d+>)?|BODY\[[^\]]*\])\s+~?\{\d+\}$", part[0])
            out[name.group(1).decode()] = part[1]
    return out


class ImapCompressTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.rg = rgenv.Ringgate(mode="performance", users=dict(USERS), tls=True,
                                extra_conf="disable_plaintext_auth = no").start()

    @classmethod
    def tearDownClass(cls):
        cls.rg.stop_clean()

    def ok(self, result):
        typ, data = result
        self.assertEqual(typ, "OK", data)
        return data

    def session(self, m, user):
        self.ok(m.login(user, USERS[user]))
        caps = self.ok(m.capability())[0].split()
        self.assertIn(b"COMPRESS=DEFLATE", caps)
        self.assertIn(b"BINARY", caps)
        self.ok(m.compress())
        # a second COMPRESS: NO [COMPRESSIONACTIVE], and the stream goes on
        typ, data = m.compress()
        self.assertEqual(typ, "NO")
        self.assertIn(b"[COMPRESSIONACTIVE]", data[0])
        # the INBOX may hold a welcome message: ours come after it
        base = int(self.ok(m.select("INBOX"))[0])
        self.ok(m.append("INBOX", None, None, BIN_MSG))
        # a big message both ways through the deflate streams
        big = b"Subject: big\r\n\r\n" + b"".join(b"line %07d %s\r\n" % (i, b"x" * (i % 61))
                                                 for i in range(6000))
        self.ok(m.append("INBOX", None, None, big))
        self.ok(m.noop())
        got = unpack(self.ok(m.fetch(str(base + 2), "(BODY.PEEK[])")))
        self.assertEqual(got["BODY[]"], big)
        # BINARY: base64 and quoted-printable decoded, partial, size
        got = unpack(self.ok(m.fetch(str(base + 1), "(BINARY.PEEK[1] BINARY.PEEK[2] BINARY.PEEK[1]<250.100>)")))
        self.assertEqual(got["BINARY[1]"], bytes(range(256)))
        self.assertEqual(got["BINARY[2]"], b"caf\xc3\xa9 cr\xe8me br\xfbl\xe9e\r\nend")
        self.assertEqual(got["BINARY[1]<250>"], bytes(range(250, 256)))
        data = self.ok(m.fetch(str(base + 1), "(BINARY.SIZE[1] BINARY.SIZE[2])"))
        self.assertIn(b"BINARY.SIZE[1] 256 BINARY.SIZE[2] %d" % len(got["BINARY[2]"]), data[0])
        typ, data = m.fetch(str(base + 1), "(BINARY.PEEK[3])")
        self.assertEqual(typ, "NO")
        self.assertIn(b"[UNKNOWN-CTE]", data[0])
        # literal8 APPEND: the bytes come back from BINARY
        blob = bytes(range(256)) * 4
        msg = b"Subject: blob\r\nContent-Type: application/octet-stream\r\n\r\n" + blob
        tag = m._new_tag()
        m.send(tag + b" APPEND INBOX ~{%d+}\r\n" % len(msg) + msg + b"\r\n")
        while True:
            line = m.readline()
            if line.startswith(tag):
                break
        self.assertIn(b" OK [APPENDUID ", line)
        self.ok(m.noop())
        got = unpack(self.ok(m.fetch(str(base + 3), "(BINARY.PEEK[1])")))
        self.assertEqual(got["BINARY[1]"], blob)
        self.assertEqual(m.logout()[0], "BYE")

    def test_compress_plain(self):
        self.session(DeflateIMAP("127.0.0.1", self.rg.imap_port, timeout=30), "zplain")

    def test_compress_imaps(self):
        ctx = ssl.create_default_context(cafile=self.rg.cert)
        ctx.check_hostname = False
        self.session(DeflateIMAPS("127.0.0.1", self.rg.imaps_port, ssl_context=ctx, timeout=30), "ztls")

    def raw_login(self, user):
        s = socket.create_connection(("127.0.0.1", self.rg.imap_port), timeout=30)
        rgenv.recv_until(s, b"\r\n")
        s.sendall(b"l LOGIN %s %s\r\n" % (user.encode(), USERS[user].encode()))
        self.assertIn(b"l OK", rgenv.recv_until(s, b"l OK"))
        return s

    def inflate_until(self, s, z, marker, limit=1 << 20, got=b""):
        while marker not in got:
            data = s.recv(65536)
            if not data:
                break
            got += z.decompress(data)
            self.assertLess(len(got), limit)
        return got

    def test_pipelined_after_compress(self):
        # commands deflated right behind COMPRESS in the same packet: the
        # worker inflates the rest of the batch COMPRESS came in
        s = self.raw_login("zpipe")
        out = zlib.compressobj(9, zlib.DEFLATED, -15)
        packed = out.compress(b"n1 NOOP\r\nn2 CAPABILITY\r\n") + out.flush(zlib.Z_SYNC_FLUSH)
        s.sendall(b"c COMPRESS DEFLATE\r\n" + packed)
        head = rgenv.recv_until(s, b"c OK Begin compression.\r\n")
        rest = head.split(b"c OK Begin compression.\r\n", 1)[1]
        z = zlib.decompressobj(-15)
        got = self.inflate_until(s, z, b"n2 OK", got=z.decompress(rest))
        self.assertIn(b"n1 OK NOOP completed.\r\n", got)
        self.assertIn(b"n2 OK Capability completed.\r\n", got)
        s.close()

    def test_corrupt_stream(self):
        # corrupt deflate data: the session ends with a log line, the
        # worker exits cleanly and the server goes on serving
        s = self.raw_login("zbad")
        s.sendall(b"c COMPRESS DEFLATE\r\n")
        rgenv.recv_until(s, b"c OK")
        s.sendall(b"\xff\xfe\xfd\xfc garbage that is no deflate stream\r\n")
        while s.recv(4096):
            pass
        s.close()
        rgenv.wait_for(lambda: "Invalid compressed data from the client" in self.rg.logs())
        self.assertNotRegex(self.rg.logs(), r"signal|AddressSanitizer|core dumped")
        m = DeflateIMAP("127.0.0.1", self.rg.imap_port, timeout=30)
        self.ok(m.login("zbad", USERS["zbad"]))
        self.assertEqual(m.logout()[0], "BYE")

    @staticmethod
    def hwm_kb(pid):
        with open("/proc/%d/status" % pid) as f:
            return int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1))

    def test_decompression_bomb(self):
        # 16 MiB of one line in a few KiB of deflate data: the line
        # is refused (BAD) and skipped, the session goes on, and the worker
        # never holds the inflated bytes
        before = set(self.rg.children("ringgate-imap"))
        s = self.raw_login("zbomb")
        s.sendall(b"c COMPRESS DEFLATE\r\n")
        rgenv.recv_until(s, b"c OK")
        pids = set(self.rg.children("ringgate-imap")) - before
        self.assertEqual(len(pids), 1)
        pid = pids.pop()
        hwm0 = self.hwm_kb(pid)
        out = zlib.compressobj(9, zlib.DEFLATED, -15)
        bomb = b"b1 NOOP " + b"x" * (16 << 20)
        packed = out.compress(bomb) + out.compress(b"\r\nb2 NOOP\r\n") + out.flush(zlib.Z_SYNC_FLUSH)
        self.assertLess(len(packed), 1 << 20)
        s.sendall(packed)
        z = zlib.decompressobj(-15)
        got = self.inflate_until(s, z, b"b2 OK")
        self.assertIn(b"b1 BAD Error in IMAP command received by server: Too long argument.\r\n", got)
        self.assertIn(b"b2 OK NOOP completed.\r\n", got)
        grown = self.hwm_kb(pid) - hwm0
        self.assertLess(grown, 4 << 10, "worker grew %d kB on a 16 MiB line" % grown)
        s.close()


if __name__ == "__main__":
    unittest.main()
