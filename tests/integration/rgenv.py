"""rgenv — start a real ringgate on 127.0.0.1 for tests and the demo.

Builds a private world in a temporary directory: a configuration, a
passwd-file, users' Maildirs, free ports. As root it creates two system users
(like Dovecot's dovenull and a mail user) so login processes really chroot and
workers really switch uid; as an ordinary user everything runs as that user.
"""
import warnings
warnings.filterwarnings("ignore", category=DeprecationWarning)
import crypt  # noqa: E402  (Python 3.11: libcrypt hashes for the test passwd-file)
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
LOGIN_USER = "rg-login"
MAIL_USER = "rg-mail"

MESSAGES = [
    b"From: Alice <alice@example.com>\nTo: demo@example.com\nSubject: Welcome\n"
    b"Date: Mon, 23 Nov 2026 10:00:00 +0000\nMessage-ID: <1@example.com>\n\n"
    b"Hello from ringgate.\n.leading dot line\nBye.\n",
    b"From: Bob <bob@example.com>\nTo: demo@example.com\nSubject: Second\n"
    b"Date: Mon, 23 Nov 2026 11:00:00 +0000\nMessage-ID: <2@example.com>\n\n"
    b"Second message body.\n",
    b"From: Carol <carol@example.com>\nTo: demo@example.com\nSubject: Third\n"
    b"Date: Mon, 23 Nov 2026 12:00:00 +0000\nMessage-ID: <3@example.com>\n\n"
    + b"".join(b"line %d of a longer message\n" % i for i in range(200)),
]


def build_dir():
    return os.environ.get("RINGGATE_BUILD", os.path.join(ROOT, "build"))


def sanitized():
    """Whether the binaries under test are built with ASan (memory figures
    mean nothing there, and the seccomp filter is off)."""
    with open(os.path.join(build_dir(), "bin", "ringgate-login"), "rb") as f:
        return b"__asan_init" in f.read()


def is_root():
    return os.geteuid() == 0


def ensure_system_user(name):
    """useradd -r when missing; returns (uid, gid)."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "-r", "-M", "-d", "/nonexistent",
                        "-s", "/usr/sbin/nologin", name], check=True)
        pw = pwd.getpwnam(name)
    return pw.pw_uid, pw.pw_gid


def free_port():
    """A port to listen on, below the ephemeral range: a port the kernel
    picked (bind to 0) may be taken by another test's outgoing connection
    (rgbench opens thousands) before ringgate binds it."""
    low = 32768
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    for _ in range(200):
        port = random.randrange(max(1024, low - 20000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        if _reserve_port(port):
            return port
    raise RuntimeError("no free port below %d" % low)


# Ports handed out in the last PORT_HOLD_SECS, by any test process: ctest
# runs several tests at once, and a port free now may be chosen by another
# test before this one's server binds it.
PORT_DIR = os.path.join(tempfile.gettempdir(), "rgenv-ports")
PORT_HOLD_SECS = 900


def _reserve_port(port):
    os.makedirs(PORT_DIR, mode=0o1777, exist_ok=True)
    path = os.path.join(PORT_DIR, str(port))
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        return True
    except FileExistsError:
        try:
            if time.time() - os.path.getmtime(path) < PORT_HOLD_SECS:
                return False
            os.utime(path)  # an old reservation: this run's now
            return True
        except OSError:
            return False


def wait_for(cond, timeout=20, step=0.1):
    """cond()'s first true value, polled until the timeout (AssertionError)"""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("condition not met in %d s" % timeout)


def proc_info(pid):
    """(comm, ppid, argv list of bytes) of a live process; None once it is
    gone or a zombie"""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return stat.split("(", 1)[1].rsplit(")", 1)[0], int(fields[1]), argv


def alive(pid):
    return proc_info(pid) is not None


def stop_process(proc, timeout=20):
    """SIGTERM, wait up to timeout, then SIGKILL; the exit status (None
    when there was no process)."""
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode if proc else None


def read_logs(directory, names):
    """The named files of directory that exist, concatenated."""
    out = ""
    for n in names:
        p = os.path.join(directory, n)
        if os.path.exists(p):
            with open(p, errors="replace") as f:
                out += f.read()
    return out


def recv_until(sock, marker, limit=1 << 20, timeout=10):
    """Bytes until marker (or EOF, or limit); linear in what is received."""
    sock.settimeout(timeout)
    data = bytearray()
    while len(data) < limit:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        if marker in data[-(len(chunk) + len(marker)):]:
            break
    return bytes(data)


def make_cert(cert, key, cn="localhost", kind="ec"):
    """A self-signed certificate for cn (also valid for 127.0.0.1), which
    clients can use as its own CA; the key is readable by its owner only."""
    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if kind == "ec" \
        else ["-newkey", "rsa:2048"]
    subprocess.run(["openssl", "req", "-x509", "-nodes", "-days", "30", "-subj", "/CN=" + cn,
                    "-addext", "subjectAltName=DNS:%s,IP:127.0.0.1" % cn,
                    "-keyout", key, "-out", cert] + newkey,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.chmod(key, 0o600)


def crlf(msg):
    return msg.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


class Ringgate:
    """One private ringgate instance. mode: 'security' (service_count = 1)
    or 'performance' (service_count = 0, process_min_avail = cores)."""

    def __init__(self, mode="performance", extra_conf="", service_extra="",
                 users=None, workdir=None, failure_delay="1 secs",
                 imap_port=None, pop3_port=None, run_as=None, tls=False,
                 imaps_port=None, pop3s_port=None, imap_extra="", pop3_extra=""):
        self.mode = mode
        self.tmp = workdir or tempfile.mkdtemp(prefix="ringgate-test-")
        os.chmod(self.tmp, 0o755)
        self.base_dir = os.path.join(self.tmp, "base")
        self.conf = os.path.join(self.tmp, "ringgate.conf")
        self.passwd = os.path.join(self.tmp, "passwd")
        self.log_path = os.path.join(self.tmp, "ringgate.log")
        self.imap_port = imap_port or free_port()
        self.pop3_port = pop3_port or free_port()
        # tls: ssl = yes with a fresh self-signed certificate (self.cert,
        # also the CA to verify it) and implicit-TLS ports
        self.tls = tls
        self.imaps_port = (imaps_port or free_port()) if tls else 0
        self.pop3s_port = (pop3s_port or free_port()) if tls else 0
        self.cert = os.path.join(self.tmp, "cert.pem")
        self.key = os.path.join(self.tmp, "key.pem")
        if tls:
            make_cert(self.cert, self.key)
        self.proc = None
        # run_as: start the master itself as this ordinary user (from root,
        # through setpriv), as a developer without root would
        self.run_as = run_as if is_root() else None
        if self.run_as:
            self.uid, self.gid = ensure_system_user(self.run_as)
            self.login_user = self.run_as
        elif is_root():
            ensure_system_user(LOGIN_USER)
            self.uid, self.gid = ensure_system_user(MAIL_USER)
            self.login_user = LOGIN_USER
        else:
            self.uid, self.gid = os.getuid(), os.getgid()
            self.login_user = pwd.getpwuid(self.uid).pw_name
        self.users = users or {"demo": "demo-pass", "alice": "alice secret"}
        self._write_users()
        # imap_extra / pop3_extra: more text inside one service block only
        # (e.g. another inet_listener)
        self.imap_extra, self.pop3_extra = imap_extra, pop3_extra
        self._write_conf(extra_conf, service_extra, failure_delay)
        if self.run_as:
            for d, _, files in os.walk(self.tmp):
                os.chown(d, self.uid, self.gid)
                for f in files:
                    os.chown(os.path.join(d, f), self.uid, self.gid)

    # -- world -----------------------------------------------------------
    def home(self, user):
        return os.path.join(self.tmp, "home", user)

    def maildir(self, user):
        return os.path.join(self.home(user), "Maildir")

    def deliver(self, user, msg, name=None):
        md = self.maildir(user)
        name = name or "%d.M%dP%d.test" % (time.time(), len(os.listdir(os.path.join(md, "new"))) +
                                            len(os.listdir(os.path.join(md, "cur"))), os.getpid())
        tmp = os.path.join(md, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(msg)
        os.chown(tmp, self.uid, self.gid)
        os.rename(tmp, os.path.join(md, "new", name))
        return name

    def _write_users(self):
        lines = []
        schemes = ["{SHA512-CRYPT}" + crypt.crypt(p, crypt.mksalt(crypt.METHOD_SHA512))
                   if i % 2 == 0 else "{PLAIN}" + p
                   for i, p in enumerate(self.users.values())]
        for (user, _), hashed in zip(self.users.items(), schemes):
            home = self.home(user)
            for sub in ("cur", "new", "tmp"):
                os.makedirs(os.path.join(self.maildir(user), sub), exist_ok=True)
            for i, m in enumerate(MESSAGES):
                path = os.path.join(self.maildir(user), "new", "1700000%03d.M%dP1.test" % (i, i))
                with open(path, "wb") as f:
                    f.write(m)
                os.utime(path, (1700000000 + i, 1700000000 + i))
            for d, _, files in os.walk(home):
                os.chown(d, self.uid, self.gid)
                os.chmod(d, 0o700)
                for f in files:
                    os.chown(os.path.join(d, f), self.uid, self.gid)
            lines.append("%s:%s:%d:%d::%s::" % (user, hashed, self.uid, self.gid, home))
        with open(self.passwd, "w") as f:
            f.write("# test users\n" + "\n".join(lines) + "\n")
        os.chmod(self.passwd, 0o600)

    def _write_conf(self, extra_conf, service_extra, failure_delay):
        if self.mode == "security":
            svc = "  service_count = 1\n  process_min_avail = 1\n"
        else:
            svc = "  service_count = 0\n  process_min_avail = %d\n  client_limit = 1000\n" % (
                os.cpu_count() or 1)
        first_uid = min(self.uid, 100) if self.uid > 0 else 100
        conf = f"""# generated by rgenv.py
base_dir = {self.base_dir}
log_path = {self.log_path}
listen = 127.0.0.1
protocols = imap pop3
{self._ssl_conf()}
auth_mechanisms = plain login
auth_failure_delay = {failure_delay}
default_login_user = {self.login_user}
default_internal_user = {self.login_user}
first_valid_uid = {first_uid}
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = {self.passwd}
}}
userdb {{
  driver = passwd-file
  args = {self.passwd}
}}
service imap-login {{
  inet_listener imap {{
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    port = {self.imaps_port}
  }}
{self.imap_extra}{svc}{service_extra}}}
service pop3-login {{
  inet_listener pop3 {{
    port = {self.pop3_port}
  }}
  inet_listener pop3s {{
    port = {self.pop3s_port}
  }}
{self.pop3_extra}{svc}{service_extra}}}
{extra_conf}
"""
        with open(self.conf, "w") as f:
            f.write(conf)

    def _ssl_conf(self):
        if not self.tls:
            return "ssl = no\ndisable_plaintext_auth = no"
        return "ssl = yes\nssl_cert = <%s\nssl_key = <%s\ndisable_plaintext_auth = yes" % (
            self.cert, self.key)

    # -- process ---------------------------------------------------------
    def binary(self, name="ringgate"):
        return os.path.join(build_dir(), "bin", name)

    def command(self, *args):
        cmd = [self.binary(), "-c", self.conf] + list(args)
        if self.run_as:
            cmd = ["setpriv", "--reuid=%d" % self.uid, "--regid=%d" % self.gid,
                   "--clear-groups", "--"] + cmd
        return cmd

    def start(self, wait=True):
        with open(os.path.join(self.tmp, "stderr.log"), "ab") as err:
            self.proc = subprocess.Popen(self.command("-F"), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err)
        if wait:
            try:
                self.wait_ready()
            except BaseException:
                # a start that failed inside setUp gets no tearDown: stop
                # the master here, or it outlives the test run
                self.stop()
                raise
        return self

    def wait_ready(self, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("ringgate exited with %s:\n%s" % (self.proc.returncode, self.logs()))
            ok = 0
            for port, greet in ((self.imap_port, b"* OK"), (self.pop3_port, b"+OK")):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                        if s.recv(200).startswith(greet):
                            ok += 1
                except OSError:
                    pass
            if ok == 2:
                return
            time.sleep(0.1)
        raise RuntimeError("ringgate not ready:\n" + self.logs())

    def logs(self):
        out = ""
        for name in ("stderr.log", "ringgate.log"):
            p = os.path.join(self.tmp, name)
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    out += f.read()
        return out

    def ctl(self, *args, check=True):
        return subprocess.run(self.command(*args),
                              capture_output=True, text=True, timeout=30, check=check)

    def auth_counters(self):
        """auth's own counters from `ringgate stats`: {"failed": n, "penalties": n}
        (counted when auth decides, before it answers)"""
        for line in self.ctl("stats").stdout.splitlines():
            words = line.split()
            if words and words[0] == "auth":
                return {k: int(v) for k, v in (w.split("=", 1) for w in words[1:])}
        raise AssertionError("no auth line in `ringgate stats`")

    def children(self, name=None):
        """pids of processes whose parent is the master (optionally by exe name)."""
        pids = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % pid) as f:
                    stat = f.read()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                comm = stat.split("(", 1)[1].rsplit(")", 1)[0]
            except (OSError, IndexError, ValueError):
                continue
            if self.proc and ppid == self.proc.pid and (name is None or comm == name[:15]):
                pids.append(int(pid))
        return pids

    def stop(self):
        return stop_process(self.proc)

    def stop_clean(self):
        """stop, remove the directory, and fail (with the log) unless ringgate
        exited 0: a class's tearDownClass"""
        code = self.stop()
        logs = self.logs()
        self.cleanup()
        if code != 0:
            raise AssertionError("ringgate stop exit %s\n%s" % (code, logs))

    def cleanup(self):
        self.stop()
        if not os.environ.get("RINGGATE_KEEP"):
            shutil.rmtree(self.tmp, ignore_errors=True)
