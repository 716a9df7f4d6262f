"""Inbound PROXY protocol (haproxy = yes listeners): real v1 and v2 headers
sent from Python sockets, then real IMAP/POP3 (imaplib/poplib over the
pre-connected socket). Only haproxy_trusted_networks may send a header
(127.0.0.1 here; 127.0.0.2 is refused without a greeting, logged); the
header's addresses replace the socket's in the logs and for auth's per-IP
penalty; a malformed or truncated header closes that connection only, one
that does not come within haproxy_timeout too; the
SSL TLV makes the connection secured under ssl = required and hides
STARTTLS, as in Dovecot."""
import imaplib
import poplib
import socket
import ssl
import struct
import time
import unittest

import rgenv

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(cmd, fam, body):
    return SIG + bytes([0x20 | cmd, fam]) + struct.pack(">H", len(body)) + body


def v2_inet(src, sport, dst="198.51.100.1", dport=143, tlvs=b""):
    return v2(1, 0x11, socket.inet_aton(src) + socket.inet_aton(dst)
              + struct.pack(">HH", sport, dport) + tlvs)


def v2_inet6(src, sport, dst="2001:db8::ff", dport=110):
    return v2(1, 0x21, socket.inet_pton(socket.AF_INET6, src)
              + socket.inet_pton(socket.AF_INET6, dst) + struct.pack(">HH", sport, dport))


def tlv(t, v):
    return bytes([t]) + struct.pack(">H", len(v)) + v


def crc32c(data):
    """CRC32C (Castagnoli), bit by bit: crc32c(b"123456789") == 0xE3069283"""
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def with_crc(block, good=True):
    """block (a v2 header whose last TLV is a CRC32C of zeros) with its sum
    filled in, or a wrong one"""
    c = crc32c(block) ^ (0 if good else 1)
    return block[:-4] + struct.pack(">I", c)


SSL_TLV = tlv(0x20, b"\x01" + b"\x00\x00\x00\x00" + tlv(0x21, b"TLSv1.3"))


def connect(port, src="127.0.0.1"):
    s = socket.socket()
    s.bind((src, 0))
    s.settimeout(20)
    s.connect(("127.0.0.1", port))
    return s


class PreIMAP(imaplib.IMAP4):
    """imaplib on a socket that already carries the PROXY header."""

    def __init__(self, sock):
        self._pre = sock
        super().__init__("127.0.0.1", 0, timeout=20)

    def _create_socket(self, timeout):
        return self._pre


class PrePOP3(poplib.POP3):
    def __init__(self, sock):
        self._pre = sock
        super().__init__("127.0.0.1", 0, timeout=20)

    def _create_socket(self, timeout):
        return self._pre


def closed_without_data(s, timeout=20):
    s.settimeout(timeout)
    try:
        return s.recv(100) == b""
    except ConnectionResetError:
        return True


class HAProxyBase:
    mode = "performance"

    @classmethod
    def setUpClass(cls):
        cls.hp_imap = rgenv.free_port()
        cls.hp_pop3 = rgenv.free_port()
        cls.hp_imaps = rgenv.free_port()
        cls.rg = rgenv.Ringgate(
            mode=cls.mode, tls=True, failure_delay="1 secs",
            extra_conf="haproxy_trusted_networks = 127.0.0.1/32 10.1.2.0/24\n"
                       "haproxy_timeout = 2 secs\nssl = required\n",
            imap_extra="  inet_listener imap-haproxy {\n    port = %d\n    haproxy = yes\n  }\n"
                       "  inet_listener imaps-haproxy {\n    port = %d\n    ssl = yes\n"
                       "    haproxy = yes\n  }\n" % (cls.hp_imap, cls.hp_imaps),
            pop3_extra="  inet_listener pop3-haproxy {\n    port = %d\n    haproxy = yes\n  }\n"
                       % cls.hp_pop3).start()

    @classmethod
    def tearDownClass(cls):
        cls.rg.cleanup()

    def wait_log(self, text, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            logs = self.rg.logs()
            if text in logs:
                return logs
            time.sleep(0.1)
        self.fail("%r not in the log:\n%s" % (text, self.rg.logs()[-4000:]))

    def test_v1_imap_login_uses_header_address(self):
        s = connect(self.hp_imap)
        s.sendall(b"PROXY TCP4 192.0.2.10 198.51.100.1 41000 143\r\n")
        m = PreIMAP(s)
        # the header says ssl was not used and ssl = required: not secured
        self.assertIn("LOGINDISABLED", m.capabilities)
        self.assertIn("STARTTLS", m.capabilities)
        m.starttls(ssl.create_default_context(cafile=self.rg.cert))
        m.login("demo", "demo-pass")
        typ, data = m.select("INBOX")
        self.assertEqual(typ, "OK")
        m.logout()
        self.wait_log("Login: user=<demo>, method=PLAIN, rip=192.0.2.10, lip=198.51.100.1")

    def test_v2_ssl_tlv_is_secured(self):
        s = connect(self.hp_imap)
        s.sendall(v2_inet("192.0.2.11", 41001, tlvs=tlv(0x02, b"mail.example.com") + SSL_TLV))
        m = PreIMAP(s)
        # TLS terminated at the proxy: secured, no STARTTLS (as Dovecot)
        self.assertNotIn("LOGINDISABLED", m.capabilities)
        self.assertNotIn("STARTTLS", m.capabilities)
        m.login("alice", "alice secret")
        m.logout()
        self.wait_log("Login: user=<alice>, method=PLAIN, rip=192.0.2.11, lip=198.51.100.1")

    def test_v2_ipv6_pop3(self):
        s = connect(self.hp_pop3)
        # header and the first command in one segment: both must be used
        s.sendall(v2(1, 0x21, socket.inet_pton(socket.AF_INET6, "2001:db8::7")
                     + socket.inet_pton(socket.AF_INET6, "2001:db8::ff")
                     + struct.pack(">HH", 40007, 110) + SSL_TLV) + b"CAPA\r\n")
        data = rgenv.recv_until(s, b"\r\n.\r\n")
        self.assertTrue(data.startswith(b"+OK"), data)
        self.assertIn(b"\r\nUSER\r\n", data)   # secured by the SSL TLV
        self.assertNotIn(b"STLS", data)
        s.sendall(b"USER demo\r\nPASS demo-pass\r\n")
        data = rgenv.recv_until(s, b"Logged in")
        self.assertIn(b"+OK Logged in", data)
        s.sendall(b"QUIT\r\n")
        rgenv.recv_until(s, b"\r\n")
        s.close()
        self.wait_log("rip=2001:db8::7, lip=2001:db8::ff")

    def test_header_split_over_segments(self):
        s = connect(self.hp_imap)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        hdr = v2_inet("192.0.2.12", 41002, tlvs=SSL_TLV)
        for i in range(0, len(hdr), 5):
            s.sendall(hdr[i:i + 5])
            time.sleep(0.01)
        m = PreIMAP(s)
        m.login("demo", "demo-pass")
        m.logout()
        self.wait_log("rip=192.0.2.12,")

    def test_local_command_keeps_socket_addresses(self):
        s = connect(self.hp_imap)
        s.sendall(v2(0, 0x00, b""))   # a health check
        greeting = rgenv.recv_until(s, b"\r\n")
        self.assertTrue(greeting.startswith(b"* OK"), greeting)
        s.sendall(b"a LOGOUT\r\n")
        rgenv.recv_until(s, b"a OK")
        s.close()
        s = connect(self.hp_pop3)
        s.sendall(b"PROXY UNKNOWN\r\n")
        self.assertTrue(rgenv.recv_until(s, b"\r\n").startswith(b"+OK"))
        s.close()

    def test_untrusted_peer_refused(self):
        s = connect(self.hp_imap, src="127.0.0.2")
        s.sendall(b"PROXY TCP4 192.0.2.13 198.51.100.1 41003 143\r\n")
        self.assertTrue(closed_without_data(s))
        s.close()
        self.wait_log("haproxy: Client not trusted (rip=127.0.0.2)")
        # the plain listener still serves 127.0.0.2
        s = connect(self.rg.imap_port, src="127.0.0.2")
        self.assertTrue(rgenv.recv_until(s, b"\r\n").startswith(b"* OK"))
        s.close()

    def test_v2_crc32c_checked(self):
        self.assertEqual(crc32c(b"123456789"), 0xE3069283)
        hdr = v2_inet("192.0.2.17", 41017, tlvs=tlv(0x02, b"mail.example.com") + SSL_TLV
                      + tlv(0x03, b"\0\0\0\0"))
        s = connect(self.hp_imap)
        s.sendall(with_crc(hdr))
        m = PreIMAP(s)
        m.login("demo", "demo-pass")
        m.logout()
        self.wait_log("Login: user=<demo>, method=PLAIN, rip=192.0.2.17, lip=198.51.100.1")
        s = connect(self.hp_imap)
        s.sendall(with_crc(hdr, good=False))
        self.assertTrue(closed_without_data(s))
        s.close()
        self.wait_log("haproxy(v2): Client disconnected: CRC32C mismatch (rip=127.0.0.1)")

    def test_malformed_headers_close_that_connection_only(self):
        good = connect(self.hp_imap)
        good.sendall(b"PROXY TCP4 192.0.2.14 198.51.100.1 41004 143\r\n")
        self.assertTrue(rgenv.recv_until(good, b"\r\n").startswith(b"* OK"))
        bad_inputs = [
            (b"a LOGIN demo demo-pass\r\n", "no valid PROXY header signature"),
            (b"PROXY TCP4 192.0.2.999 198.51.100.1 1 2\r\n", "haproxy(v1): Client disconnected: invalid address"),
            (b"PROXY TCP4 192.0.2.1 198.51.100.1 1 70000\r\n", "invalid port"),
            (b"PROXY UNKNOWN " + b"x" * 200, "header too long"),
            (SIG + b"\x21\x11\xff\xff", "haproxy(v2): Client disconnected: header too long"),
            (v2_inet("192.0.2.1", 1, tlvs=b"\x02\x00\x09abc"), "TLV overruns the header"),
            (SIG + b"\x31\x11\x00\x0c", "unsupported protocol version"),
        ]
        for data, why in bad_inputs:
            s = connect(self.hp_imap)
            s.sendall(data)
            self.assertTrue(closed_without_data(s), data)
            s.close()
            self.wait_log(why)
        # a truncated header, then the client goes away
        s = connect(self.hp_imap)
        s.sendall(b"PROXY TCP4 192.0.2.1")
        time.sleep(0.2)
        s.close()
        self.wait_log("haproxy: Client disconnected (rip=127.0.0.1)")
        # the first client was never disturbed
        good.sendall(b"a NOOP\r\n")
        self.assertIn(b"a OK", rgenv.recv_until(good, b"a OK"))
        good.close()

    def test_header_timeout(self):
        # haproxy_timeout: a peer that sends half a header (or nothing) is
        # dropped after 2 s, without a greeting
        for data in (b"", b"PROXY TCP4 192.0.2.77"):
            s = connect(self.hp_imap)
            s.sendall(data)
            start = time.monotonic()
            self.assertTrue(closed_without_data(s, timeout=30))
            self.assertGreaterEqual(time.monotonic() - start, 0.9)
            s.close()
        self.wait_log("haproxy: Client timed out (rip=127.0.0.1)")

    def test_implicit_tls_after_header(self):
        s = connect(self.hp_imaps)
        s.sendall(b"PROXY TCP6 2001:db8::20 2001:db8::ff 41005 993\r\n")
        ctx = ssl.create_default_context(cafile=self.rg.cert)
        t = ctx.wrap_socket(s, server_hostname="localhost")
        m = PreIMAP(t)
        self.assertNotIn("STARTTLS", m.capabilities)
        m.login("demo", "demo-pass")
        m.logout()
        self.wait_log("rip=2001:db8::20, lip=2001:db8::ff")

    def test_penalty_follows_header_address(self):
        def wrong(src):
            s = connect(self.hp_imap)
            s.sendall(v2_inet(src, 42000, tlvs=SSL_TLV))
            rgenv.recv_until(s, b"\r\n")
            start = time.monotonic()
            s.sendall(b'a LOGIN demo "wrong"\r\n')
            reply = rgenv.recv_until(s, b"\r\n", timeout=30)
            s.close()
            self.assertIn(b"a NO", reply)
            return time.monotonic() - start
        # every connection comes from 127.0.0.1; the penalty must still be
        # per header address: auth's counters say exactly which failures
        # were penalised (no upper time bound: load only slows things), the
        # server's timers give the lower bounds (1 s, then 2 s, 3 s)
        before = self.rg.auth_counters()
        t = [wrong("203.0.113.50") for _ in range(3)]
        c = self.rg.auth_counters()
        self.assertEqual(c["failed"] - before["failed"], 3)
        self.assertEqual(c["penalties"] - before["penalties"], 2)
        for elapsed, delay in zip(t, (1.0, 2.0, 3.0)):
            self.assertGreaterEqual(elapsed, delay - 0.05, t)
        wrong("203.0.113.51")
        c2 = self.rg.auth_counters()
        self.assertEqual(c2["failed"] - c["failed"], 1)
        self.assertEqual(c2["penalties"], c["penalties"])
        for ip in ("203.0.113.50", "203.0.113.51"):
            self.wait_log("passwd-file(demo,%s): Password mismatch" % ip)


class HAProxyPerformance(HAProxyBase, unittest.TestCase):
    mode = "performance"


class HAProxySecurity(HAProxyBase, unittest.TestCase):
    mode = "security"


if __name__ == "__main__":
    unittest.main()
