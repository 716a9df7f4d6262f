#!/usr/bin/env python3
"""login_standalone — ringgate-login on its own, with this script playing
master (fd 3) and auth (fd 4) over SOCK_SEQPACKET pairs and a listener at fd 5,
and imaplib / poplib / raw sockets as clients.

usage: login_standalone.py PATH-TO-ringgate-login
"""
import imaplib
import os
import poplib
import pwd
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

BIN = sys.argv[1]

# src/lib/ipc.h
(AUTH_BEGIN, AUTH_CONTINUE, AUTH_ABORT, AUTH_CHALLENGE, AUTH_OK, AUTH_FAIL,
 AUTH_NEW_CLIENT, AUTH_REQUEST, AUTH_USER, LOGIN_HANDOFF, LOGIN_STATUS,
 LOGIN_HANDOFF_REPLY, WORKER_INIT, LOGIN_TICKET_KEYS, LOGIN_OVERFLOW) = range(1, 16)
LOGIN_IDLE_KILL = 37
F = {n: i + 1 for i, n in enumerate(
    "SERVICE MECH RESP CHALLENGE USER COOKIE REASON TEMP RIP RPORT LIP LPORT "
    "SECURED LOGIN_PID UID GID HOME MAIL TAG PREREAD SESSION EXTRA CONNS "
    "PRELOGIN TOTAL TLS".split())}
FN = {v: k for k, v in F.items()}
HDR = struct.Struct("<HHIII")


def encode(mtype, mid, fields):
    payload = b""
    for k, v in fields.items():
        if isinstance(v, str):
            v = v.encode()
        payload += struct.pack("<HH", F[k], len(v)) + v + b"\0"
    return HDR.pack(mtype, 0, len(payload), mid, os.getpid()) + payload


def decode(data):
    mtype, flags, plen, mid, pid = HDR.unpack_from(data)
    assert flags == 0 and plen == len(data) - HDR.size, "bad framing"
    fields, pos = {}, HDR.size
    while pos < len(data):
        k, ln = struct.unpack_from("<HH", data, pos)
        fields[FN[k]] = data[pos + 4:pos + 4 + ln]
        assert data[pos + 4 + ln] == 0
        pos += 5 + ln
    return mtype, mid, fields


def send(sock, mtype, mid, fields, fd=None):
    data = encode(mtype, mid, fields)
    if fd is None:
        sock.send(data)
    else:
        socket.send_fds(sock, [data], [fd])


class World:
    """One ringgate-login process and the peers it talks to."""

    def __init__(self, service="imap", conf="", svc="", user_ok=("good", "pass")):
        self.dir = tempfile.mkdtemp(prefix="rg-login-")
        os.chmod(self.dir, 0o755)
        os.mkdir(os.path.join(self.dir, "login"))
        self.conf = os.path.join(self.dir, "ringgate.conf")
        login_user = "nobody" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        with open(self.conf, "w") as f:
            f.write(f"base_dir = {self.dir}\nlisten = 127.0.0.1\n"
                    f"default_login_user = {login_user}\n"
                    "login_greeting = standalone ready.\n"
                    "disable_plaintext_auth = no\nssl = no\n"
                    "auth_mechanisms = plain login\n" + conf +
                    # high-performance mode unless the test says otherwise
                    f"service {service}-login {{\n  service_count = 0\n{svc}}}\n")
        self.master, m_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.auth, a_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.user_ok = user_ok
        self.auth_log, self.handoffs, self.status = [], [], []
        self.refuse_handoff = None
        self.auth_silent = False
        self.lock = threading.Lock()
        fds = [m_child.fileno(), a_child.fileno(), self.lsock.fileno()]

        def child_fds():
            # Python makes every fd close-on-exec, so only these three
            # survive exec; move them out of the way first so dup2 never
            # clobbers a source
            high = [os.dup(fd) + 100 for fd in fds]
            for h, fd in zip(high, fds):
                os.dup2(fd, h)
            for i, h in enumerate(high):
                os.dup2(h, 3 + i)
        env = dict(os.environ, RINGGATE_LISTENERS=service, RINGGATE_DEBUG="1")
        if os.geteuid() == 0:
            # LeakSanitizer cannot read /proc after the chroot (ASan builds)
            env["ASAN_OPTIONS"] = "detect_leaks=0:" + env.get("ASAN_OPTIONS", "")
        self.stderr = open(os.path.join(self.dir, "log"), "w+")
        self.proc = subprocess.Popen([BIN, "-c", self.conf, "-s", service],
                                     close_fds=False, preexec_fn=child_fds, env=env,
                                     stderr=self.stderr)
        m_child.close()
        a_child.close()
        self.stop = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def log(self):
        self.stderr.flush()
        with open(os.path.join(self.dir, "log")) as f:
            return f.read()

    def serve(self):
        while not self.stop:
            socks = [s for s in (self.master, self.auth) if s is not None]
            r, _, _ = select.select(socks, [], [], 0.1)
            for s in r:
                try:
                    data, fds, _, _ = socket.recv_fds(s, 65536, 1)
                except OSError:
                    continue
                if not data:
                    if s is self.auth:
                        self.auth = None
                    elif s is self.master:
                        self.master = None
                    continue
                mtype, mid, f = decode(data)
                if s is self.auth:
                    self.on_auth(mtype, mid, f)
                else:
                    self.on_master(mtype, mid, f, fds[0] if fds else None)

    def on_auth(self, mtype, mid, f):
        with self.lock:
            self.auth_log.append((mtype, mid, f))
        if mtype != AUTH_BEGIN or self.auth_silent:
            return
        _, user, pw = f["RESP"].split(b"\0")
        if (user.decode(), pw.decode()) == self.user_ok:
            send(self.auth, AUTH_OK, mid, {"USER": user, "COOKIE": "0123456789abcdef" * 2})
        else:
            send(self.auth, AUTH_FAIL, mid, {"USER": user})

    def on_master(self, mtype, mid, f, fd):
        if mtype == LOGIN_STATUS:
            with self.lock:
                self.status.append({k: int(v) for k, v in f.items()})
            return
        assert mtype == LOGIN_HANDOFF, mtype
        assert fd is not None
        with self.lock:
            self.handoffs.append(f)
        if self.refuse_handoff:
            os.close(fd)
            send(self.master, LOGIN_HANDOFF_REPLY, mid, {"REASON": self.refuse_handoff, "TEMP": "1"})
            return
        send(self.master, LOGIN_HANDOFF_REPLY, mid, {})
        threading.Thread(target=self.worker, args=(fd, f), daemon=True).start()

    def worker(self, fd, f):
        """a stand-in imap/pop3 worker: login reply, then LOGOUT/QUIT"""
        s = socket.socket(fileno=fd)
        tag = f.get("TAG", b"").decode()
        s.sendall(f"{tag} OK Logged in\r\n".encode() if tag else b"+OK Logged in.\r\n")
        buf = f.get("PREREAD", b"")
        while True:
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                words = line.strip().split()
                if len(words) >= 2 and words[1].upper() == b"LOGOUT":
                    s.sendall(b"* BYE bye\r\n" + words[0] + b" OK Logout completed.\r\n")
                    s.close()
                    return
                if words and words[0].upper() == b"QUIT":
                    s.sendall(b"+OK bye\r\n")
                    s.close()
                    return
                if len(words) >= 2:
                    s.sendall(words[0] + b" OK worker saw " + words[1] + b"\r\n")
            data = s.recv(4096)
            if not data:
                s.close()
                return
            buf += data

    def connect(self):
        c = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        return c

    def wait(self, cond, timeout=5.0, what="condition"):
        end = time.time() + timeout
        while time.time() < end:
            with self.lock:
                if cond():
                    return
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}\n--- log ---\n{self.log()}")

    def close(self, expect_exit=True):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("ringgate-login did not exit on SIGTERM\n" + self.log())
        self.stop = True
        self.thread.join()
        log = self.log()
        shutil.rmtree(self.dir, ignore_errors=True)
        if expect_exit:
            assert rc == 0, f"exit status {rc}\n{log}"
        assert "Fatal" not in log and "ERROR: AddressSanitizer" not in log \
            and "runtime error" not in log, log
        return log


def recv_line(c):
    data = b""
    while not data.endswith(b"\n"):
        chunk = c.recv(1)
        if not chunk:
            break
        data += chunk
    return data


def test_imap_login_and_failure():
    w = World()
    m = imaplib.IMAP4("127.0.0.1", w.port)
    assert b"standalone ready." in m.welcome, m.welcome
    try:
        m.login("good", "wrong")
        raise AssertionError("bad password accepted")
    except imaplib.IMAP4.error:
        pass
    typ, _ = m.login("good", "pass")
    assert typ == "OK"
    m.logout()
    w.wait(lambda: len(w.handoffs) == 1, what="hand-off")
    h = w.handoffs[0]
    assert h["SERVICE"] == b"imap" and h["USER"] == b"good"
    assert h["COOKIE"] == b"0123456789abcdef" * 2
    assert h["RIP"] == b"127.0.0.1" and h["LIP"] == b"127.0.0.1"
    assert int(h["LPORT"]) == w.port and h["SECURED"] == b"1"
    assert len(h["SESSION"]) == 12 and h["TAG"]
    begins = [f for t, _, f in w.auth_log if t == AUTH_BEGIN]
    assert len(begins) == 2
    assert begins[0]["MECH"] == b"PLAIN" and begins[0]["RESP"] == b"\0good\0wrong"
    assert begins[0]["SERVICE"] == b"imap" and begins[0]["RIP"] == b"127.0.0.1"
    w.wait(lambda: any(s["CONNS"] == 0 for s in w.status), what="CONNS=0 status")
    assert w.status[0]["TOTAL"] == 1
    log = w.close()
    assert "Login: user=<good>, method=PLAIN, rip=127.0.0.1, lip=127.0.0.1, mpid=0" in log, log
    assert "pass" not in log.replace("passwd", ""), "password in the log"


def test_preread_and_refused_handoff():
    w = World()
    c = w.connect()
    assert recv_line(c).startswith(b"* OK")
    w.refuse_handoff = "Maximum number of connections reached"
    c.sendall(b"a LOGIN good pass\r\n")
    line = recv_line(c)
    assert line.startswith(b"a NO") and b"Maximum number" in line, line
    w.refuse_handoff = None
    # pipelined: what follows the login command travels as preread
    c.sendall(b"b LOGIN good pass\r\nc NOOP\r\n")
    assert recv_line(c) == b"b OK Logged in\r\n"
    assert recv_line(c) == b"c OK worker saw NOOP\r\n"
    w.wait(lambda: len(w.handoffs) == 2)
    assert w.handoffs[1]["PREREAD"] == b"c NOOP\r\n", w.handoffs[1]
    c.sendall(b"d LOGOUT\r\n")
    assert recv_line(c).startswith(b"* BYE")
    c.close()
    w.close()


def test_client_limit_evicts_oldest():
    w = World(svc="  client_limit = 3\n")
    cs = [w.connect() for _ in range(3)]
    for c in cs:
        assert recv_line(c).startswith(b"* OK")
    w.wait(lambda: any(s["CONNS"] == 3 for s in w.status), what="full status")
    # full: the process stops accepting; the fourth waits in the queue for
    # master to start another process...
    c4 = w.connect()
    c4.settimeout(0.5)
    try:
        c4.recv(1)
        raise AssertionError("a full process accepted a fourth client")
    except socket.timeout:
        pass
    c4.settimeout(10)
    # ...or, at process_limit, to say overflow: then the oldest makes room
    send(w.master, LOGIN_OVERFLOW, 0, {})
    assert recv_line(c4).startswith(b"* OK")
    assert recv_line(cs[0]) == b"* BYE Connection queue full\r\n"
    assert cs[0].recv(100) == b""
    cs[1].sendall(b"x NOOP\r\n")
    assert b"OK" in recv_line(cs[1])
    for c in cs[1:] + [c4]:
        c.close()
    w.wait(lambda: w.status and w.status[-1]["CONNS"] == 0, what="CONNS=0")
    log = w.close()
    assert "Connection queue full (no auth attempts in" in log, log


def test_timeout():
    w = World(conf="login_timeout = 2 secs\n")
    c = w.connect()
    assert recv_line(c).startswith(b"* OK")
    c.settimeout(6)
    t = time.time()
    assert recv_line(c) == b"* BYE Disconnected for inactivity.\r\n"
    assert c.recv(100) == b""
    assert 1 <= time.time() - t <= 5
    log = w.close()
    assert "Disconnected: Inactivity (no auth attempts in" in log, log


def test_auth_gone_and_replaced():
    w = World()
    c = w.connect()
    assert recv_line(c).startswith(b"* OK")
    # a request in flight when auth dies is answered TEMPFAIL
    w.auth_silent = True
    c.sendall(b"a LOGIN good pass\r\n")
    w.wait(lambda: any(t == AUTH_BEGIN for t, _, _ in w.auth_log))
    old = w.auth
    w.auth = None
    old.close()
    line = recv_line(c)
    assert line.startswith(b"a NO [UNAVAILABLE]"), line
    # no auth at all: immediate TEMPFAIL
    c.sendall(b"b LOGIN good pass\r\n")
    assert recv_line(c).startswith(b"b NO [UNAVAILABLE]")
    # master brings a fresh channel
    w.auth_silent = False
    new_login, new_auth = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    send(w.master, AUTH_NEW_CLIENT, 0, {}, fd=new_login.fileno())
    new_login.close()
    w.auth = new_auth
    time.sleep(0.2)
    c.sendall(b"c LOGIN good pass\r\n")
    assert recv_line(c) == b"c OK Logged in\r\n"
    c.sendall(b"d LOGOUT\r\n")
    c.close()
    w.close()


def test_sigterm_and_master_eof():
    w = World()
    cs = [w.connect() for _ in range(3)]
    for c in cs:
        assert recv_line(c).startswith(b"* OK")
    w.proc.send_signal(signal.SIGTERM)
    for c in cs:
        assert recv_line(c) == b"* BYE Server shutting down.\r\n"
    assert w.proc.wait(5) == 0
    w.close()

    w = World()
    c = w.connect()
    assert recv_line(c).startswith(b"* OK")
    m = w.master
    w.master = None
    m.close()
    assert recv_line(c) == b"* BYE Server shutting down.\r\n"
    assert w.proc.wait(5) == 0
    w.close()


def test_service_count_one():
    w = World(svc="  service_count = 1\n")
    c = w.connect()
    assert recv_line(c).startswith(b"* OK")
    # a second client stays in the kernel's queue: nobody accepts it
    c2 = w.connect()
    c2.settimeout(0.5)
    try:
        assert c2.recv(10) == b"", "second connection was served"
    except socket.timeout:
        pass
    c.sendall(b"a LOGIN good pass\r\n")
    assert recv_line(c) == b"a OK Logged in\r\n"
    c.sendall(b"b LOGOUT\r\n")
    assert recv_line(c).startswith(b"* BYE")
    # the hand-off was its only connection: it exits by itself
    assert w.proc.wait(5) == 0
    w.wait(lambda: any(s["CONNS"] == 0 for s in w.status))
    c.close()
    c2.close()
    w.close()


def test_idle_reported_once():
    # greeting + LOGOUT, one client after the other: the process empties
    # after each, but master hears of it once (its view stays "idle" when
    # more connections are not reported); the stop's status has them all
    w = World()
    n = 6
    for _ in range(n):
        c = w.connect()
        assert recv_line(c).startswith(b"* OK")
        c.sendall(b"a LOGOUT\r\n")
        assert recv_line(c).startswith(b"* BYE")
        assert recv_line(c) == b"a OK Logout completed.\r\n"
        assert c.recv(10) == b""  # the FIN that came with the reply
        c.close()
        time.sleep(0.05)  # the process is empty again before the next
    w.proc.send_signal(signal.SIGTERM)
    w.wait(lambda: w.status and w.status[-1]["TOTAL"] == n, what="the stop's status")
    assert [(s["CONNS"], s["TOTAL"]) for s in w.status] == [(1, 1), (0, 1), (0, n)], w.status
    w.close()


def test_idle_kill_only_when_idle():
    # master's idle_kill asks; a process that has a connection (its rise
    # from none was not reported) answers with its status and serves on;
    # one with none exits
    w = World()
    c = w.connect()
    assert recv_line(c).startswith(b"* OK")
    w.wait(lambda: w.status, what="the first status")
    c.sendall(b"a LOGOUT\r\n")
    assert recv_line(c).startswith(b"* BYE")
    c.close()
    w.wait(lambda: w.status[-1]["CONNS"] == 0, what="CONNS=0")
    c = w.connect()  # not reported: master's view stays idle
    assert recv_line(c).startswith(b"* OK")
    n = len(w.status)
    send(w.master, LOGIN_IDLE_KILL, 0, {})
    w.wait(lambda: len(w.status) > n, what="the status answering idle_kill")
    assert w.status[-1]["CONNS"] == 1, w.status
    c.sendall(b"b NOOP\r\n")
    assert recv_line(c).startswith(b"b OK")
    assert w.proc.poll() is None
    c.sendall(b"c LOGOUT\r\n")
    assert recv_line(c).startswith(b"* BYE")
    c.close()
    w.wait(lambda: w.status[-1]["CONNS"] == 0, what="CONNS=0 again")
    send(w.master, LOGIN_IDLE_KILL, 0, {})
    assert w.proc.wait(5) == 0
    w.close()


def test_many_clients_and_big_input():
    w = World(svc="  client_limit = 500\n")
    cs = [w.connect() for _ in range(200)]
    for c in cs:
        assert recv_line(c).startswith(b"* OK")
    # a client that sends a lot without reading: others are unaffected
    hog = cs[0]
    hog.sendall(b"x NOOP\r\n" * 5000)
    for i, c in enumerate(cs[1:]):
        c.sendall(b"t%d NOOP\r\n" % i)
        assert b"OK" in recv_line(c)
    for c in cs:
        c.close()
    w.wait(lambda: w.status and w.status[-1]["CONNS"] == 0, what="CONNS=0", timeout=10)
    w.close()


def test_pop3():
    w = World(service="pop3", conf="")
    p = poplib.POP3("127.0.0.1", w.port, timeout=5)
    assert b"standalone ready." in p.getwelcome()
    p.user("good")
    try:
        p.pass_("wrong")
        raise AssertionError("bad password accepted")
    except poplib.error_proto:
        pass
    p.user("good")
    resp = p.pass_("pass")
    assert resp.startswith(b"+OK"), resp
    p.quit()
    w.wait(lambda: len(w.handoffs) == 1)
    h = w.handoffs[0]
    assert h["SERVICE"] == b"pop3" and "TAG" not in h
    log = w.close()
    assert "Login: user=<good>" in log, log


def main():
    tests = [v for k, v in sorted(globals().items()) if k.startswith("test_")]
    failed = 0
    for t in tests:
        start = time.time()
        try:
            t()
            print(f"ok   {t.__name__} ({time.time() - start:.1f}s)")
        except Exception as e:  # noqa: BLE001
            failed += 1
            print(f"FAIL {t.__name__}: {e!r}")
            import traceback
            traceback.print_exc()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
