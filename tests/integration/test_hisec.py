"""High-security mode (service_count = 1) started from a template login
process (issue 19): no two login processes share random state (200 TLS
handshakes, every ServerHello random and server key share distinct), the
template is replaced by a fresh exec after login_template_forks children
and at once after a child dies of a signal, every login process is
master's own child, and the process count returns to process_min_avail
after a burst."""
import os
import re
import signal
import socket
import struct
import unittest

import rgenv
from rgenv import alive, proc_info, recv_until, wait_for

CONNECTIONS = 200
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")


def client_hello():
    """One fixed TLS 1.3 ClientHello (x25519 key share): the same bytes on
    every connection, so any difference in the answers is the server's."""
    def ext(kind, body):
        return struct.pack("!HH", kind, len(body)) + body
    key = bytes(range(1, 33))  # any 32 bytes are an X25519 public value
    exts = (ext(0x002b, b"\x02\x03\x04") +                                  # supported_versions
            ext(0x000a, struct.pack("!HH", 2, 0x001d)) +                     # supported_groups
            ext(0x000d, struct.pack("!H6H", 12, 0x0403, 0x0804, 0x0805,      # signature_algorithms
                                    0x0806, 0x0401, 0x0503)) +
            ext(0x0033, struct.pack("!HHH", 36, 0x001d, 32) + key))          # key_share
    body = (b"\x03\x03" + bytes(32) + b"\x20" + bytes(range(32)) +
            struct.pack("!H3H", 6, 0x1301, 0x1302, 0x1303) + b"\x01\x00" +
            struct.pack("!H", len(exts)) + exts)
    hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise AssertionError("connection closed after %d of %d bytes" % (len(data), n))
        data += chunk
    return data


def server_hello(port, hello):
    """(random, key share) of the ServerHello answering hello"""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(hello)
        head = recv_exact(s, 5)
        assert head[0] == 0x16, "not a handshake record: %r" % head
        rec = recv_exact(s, struct.unpack("!H", head[3:5])[0])
    assert rec[0] == 2, "not a ServerHello: %r" % rec[:8]
    p = 4 + 2  # handshake header, legacy_version
    random = rec[p:p + 32]
    p += 32
    p += 1 + rec[p]       # legacy_session_id_echo
    p += 2 + 1            # cipher_suite, legacy_compression_method
    end = p + 2 + struct.unpack("!H", rec[p:p + 2])[0]
    p += 2
    share = None
    while p < end:
        kind, length = struct.unpack("!HH", rec[p:p + 4])
        if kind == 0x0033:
            group, klen = struct.unpack("!HH", rec[p + 4:p + 8])
            assert group == 0x001d, group
            share = rec[p + 8:p + 8 + klen]
        p += 4 + length
    return random, share


def processes(rg, comm, proto="imap"):
    """pids of rg's processes called comm serving proto (master's children)"""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        info = proc_info(int(p))
        if info and info[0] == comm and info[1] == rg.proc.pid and proto.encode() in info[2]:
            out.append(int(p))
    return out


def greet_logout(port):
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        assert recv_until(s, b"\r\n").startswith(b"* OK")
        s.sendall(b"a LOGOUT\r\n")
        recv_until(s, b"a OK")


class UniqueRandoms(unittest.TestCase):
    def test_every_server_random_and_key_share_differs(self):
        rg = rgenv.Ringgate(mode="security", tls=True).start()
        try:
            hello = client_hello()
            randoms, shares = set(), set()
            for _ in range(CONNECTIONS):
                random, share = server_hello(rg.imaps_port, hello)
                self.assertNotEqual(random, HRR_RANDOM, "HelloRetryRequest for x25519")
                self.assertIsNotNone(share, "no key_share in the ServerHello")
                self.assertEqual(len(share), 32)
                randoms.add(random)
                shares.add(share)
            self.assertEqual(len(randoms), CONNECTIONS)
            self.assertEqual(len(shares), CONNECTIONS)
            # the processes came from a template, not from an exec each
            self.assertTrue(processes(rg, "ringgate-ltmpl"))
        finally:
            rg.cleanup()


class Template(unittest.TestCase):
    def tearDown(self):
        self.rg.cleanup()

    def start(self, extra="", service_extra=""):
        self.rg = rgenv.Ringgate(mode="security", extra_conf=extra,
                                 service_extra=service_extra).start()
        # a child the template has just cloned is also ringgate-ltmpl until
        # its first steps rename it: wait for the one that stays
        tpl = []

        def one():
            tpl[:] = processes(self.rg, "ringgate-ltmpl")
            return len(tpl) == 1
        self.assertTrue(wait_for(one), tpl)
        return tpl[0]

    def test_login_processes_are_forked_children_of_master(self):
        tpl = self.start()
        greet_logout(self.rg.imap_port)
        greet_logout(self.rg.imap_port)
        logins = wait_for(lambda: processes(self.rg, "ringgate-login"))
        for pid in logins:
            # forked by the template (its -T argv), yet master's child
            self.assertIn(b"-T", proc_info(pid)[2])
        # each child logs under its own pid, not its template's (clone()
        # runs no atfork handler: login-template.c runs ours)
        pat = re.compile(r"imap-login\((\d+)\): Info: (Disconnected|Aborted login)")
        pids = wait_for(lambda: [int(m.group(1)) for m in pat.finditer(self.rg.logs())]
                        if len(pat.findall(self.rg.logs())) >= 2 else None)
        self.assertEqual(len(set(pids)), len(pids))
        self.assertNotIn(tpl, pids)

    def test_replaced_after_login_template_forks(self):
        first = self.start(extra="login_template_forks = 3\n")
        for _ in range(4):
            greet_logout(self.rg.imap_port)
        self.assertTrue(wait_for(lambda: not alive(first)))
        self.assertTrue(wait_for(lambda: [p for p in processes(self.rg, "ringgate-ltmpl")
                                          if p != first]))
        greet_logout(self.rg.imap_port)
        self.assertNotIn("killed with signal", self.rg.logs())

    def test_replaced_at_once_after_a_child_dies_of_a_signal(self):
        first = self.start()
        with socket.create_connection(("127.0.0.1", self.rg.imap_port), timeout=30) as s:
            self.assertTrue(recv_until(s, b"\r\n").startswith(b"* OK"))
            victims = processes(self.rg, "ringgate-login")
            self.assertTrue(victims)
            for pid in victims:
                os.kill(pid, signal.SIGSEGV)
            self.assertTrue(wait_for(lambda: not alive(first)))
        self.assertTrue(wait_for(lambda: [p for p in processes(self.rg, "ringgate-ltmpl")
                                          if p != first]))
        greet_logout(self.rg.imap_port)
        logs = self.rg.logs()
        # 11, or 6 where AddressSanitizer turns the SEGV into an abort
        self.assertRegex(logs, r"child \d+ killed with signal (11|6)")
        self.assertIn("died of a signal: replacing the template", logs)

    def test_process_count_returns_to_min_avail_after_a_burst(self):
        self.start(service_extra="  process_min_avail = 2\n")
        self.assertTrue(wait_for(lambda: len(processes(self.rg, "ringgate-login")) == 2))
        conns = []
        for _ in range(12):
            s = socket.create_connection(("127.0.0.1", self.rg.imap_port), timeout=30)
            self.assertTrue(recv_until(s, b"\r\n").startswith(b"* OK"))
            conns.append(s)
        # each held connection has a process, and two spares wait
        self.assertTrue(wait_for(lambda: len(processes(self.rg, "ringgate-login")) >= 14))
        for s in conns:
            s.close()
        self.assertTrue(wait_for(lambda: len(processes(self.rg, "ringgate-login")) == 2),
                        processes(self.rg, "ringgate-login"))


class NoTemplate(unittest.TestCase):
    def test_login_template_forks_0_execs_each_process(self):
        rg = rgenv.Ringgate(mode="security", extra_conf="login_template_forks = 0\n").start()
        try:
            greet_logout(rg.imap_port)
            self.assertEqual(processes(rg, "ringgate-ltmpl"), [])
            for pid in processes(rg, "ringgate-login"):
                self.assertNotIn(b"-T", proc_info(pid)[2])
        finally:
            rg.cleanup()

    def test_more_than_100_forks_is_refused(self):
        rg = rgenv.Ringgate(mode="security", extra_conf="login_template_forks = 101\n")
        try:
            r = rg.ctl("-n", check=False)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("login_template_forks must be at most 100", r.stderr)
        finally:
            rg.cleanup()


if __name__ == "__main__":
    unittest.main()
