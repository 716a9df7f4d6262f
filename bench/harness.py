"""harness.py — what every section of `make bench` shares (bench/run.py,
the driver, and its section modules): the bench world (user, Maildir,
certificate), the servers under test (ringgate and a private Dovecot, each
in its own cgroup), resource accounting, the measurement loop (Bench) and
the small statistics helpers. It imports no other bench module, so the
sections can all import it without a cycle.
"""
import copy
import json
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import rgenv  # noqa: E402

BENCH_USER = "bench"
BENCH_PASS = "bench-pass"
BIG_MESSAGE_SIZE = 100 * 1024


# -- accounting (bench/accounting.py) ------------------------------------------

from accounting import Accounting, log, pss_bytes, proc_children_tree  # noqa: E402,F401


# -- servers ------------------------------------------------------------------

def rgbench_run(cmd, timeout=600):
    """Run one rgbench measurement: (its result event or None, the
    CompletedProcess)."""
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    res = None
    for ln in r.stdout.splitlines():
        ev = json.loads(ln)
        if ev.get("event") == "result":
            res = ev
    return res, r


def wait_greetings(ports, proc, logs, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited with %s:\n%s" % (proc.returncode, logs()))
        ok = 0
        for port, greet in ports:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                    if s.recv(200).startswith(greet):
                        ok += 1
            except OSError:
                pass
        if ok == len(ports):
            return
        time.sleep(0.1)
    raise RuntimeError("server not ready:\n" + logs()[-3000:])


class World:
    """What every server shares: users, passwd-file, Maildirs, certificate."""

    def __init__(self, tmp, big_size=BIG_MESSAGE_SIZE):
        self.tmp = tmp
        self.big_size = big_size
        # the ringgate high-performance instance creates users and homes;
        # everybody else points at its passwd-file and Maildirs
        self.users = {BENCH_USER: BENCH_PASS}
        self.cert = os.path.join(tmp, "cert.pem")
        self.key = os.path.join(tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                        "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-keyout", self.key, "-out", self.cert, "-days", "30",
                        "-subj", "/CN=localhost"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.chmod(self.key, 0o600)

    def fill(self, env):
        """One {PLAIN} user (the same cheap scheme for every server, so the
        benchmark measures the process model, not crypt()), and a Maildir
        whose message 1 is 100 kB plus a few small ones."""
        self.passwd = env.passwd
        self.uid, self.gid = env.uid, env.gid
        self.home = env.home(BENCH_USER)
        with open(env.passwd, "w") as f:
            f.write("%s:{PLAIN}%s:%d:%d::%s::\n" % (BENCH_USER, BENCH_PASS, env.uid, env.gid,
                                                     self.home))
        md = env.maildir(BENCH_USER)
        for sub in ("new", "cur"):
            for name in os.listdir(os.path.join(md, sub)):
                os.unlink(os.path.join(md, sub, name))
        body = b"".join(b"line %06d of the large benchmark message, padded to a fixed width\n" % i
                        for i in range(self.big_size // 68))
        big = (b"From: Bench <bench@example.com>\nTo: bench@example.com\n"
               b"Subject: %d kB\nMessage-ID: <big@example.com>\n\n" % (self.big_size // 1024) + body)
        msgs = [big] + rgenv.MESSAGES
        for i, m in enumerate(msgs):
            # names sort in delivery order: message 1 is the big one
            path = os.path.join(md, "cur", "1600000%03d.M%dP1.bench:2," % (i, i))
            with open(path, "wb") as f:
                f.write(rgenv.crlf(m))
            os.chown(path, env.uid, env.gid)
            os.utime(path, (1600000000 + i, 1600000000 + i))


class RinggateServer:
    kind = "ringgate"

    def __init__(self, name, mode, world, tmp, process_limit, binaries):
        self.name, self.mode = name, mode
        self.binaries = binaries
        os.environ["RINGGATE_BUILD"] = binaries
        os.makedirs(os.path.join(tmp, name))
        svc = "  process_limit = %d\n" % process_limit
        kw = {}
        if "tls" in rgenv.Ringgate.__init__.__code__.co_varnames:
            kw["tls"] = True  # an rgenv that knows TLS
        self.env = rgenv.Ringgate(mode=mode, workdir=os.path.join(tmp, name), service_extra=svc,
                                  users={BENCH_USER: BENCH_PASS}, failure_delay="2 secs",
                                  extra_conf="default_process_limit = %d\n" % process_limit,
                                  **kw)
        with open(self.env.conf) as f:
            conf = f.read()
        if getattr(world, "passwd", None) is None:
            world.fill(self.env)
        else:
            # same users and Maildirs as the first instance
            shutil.rmtree(os.path.join(self.env.tmp, "home"), ignore_errors=True)
            os.unlink(self.env.passwd)
            conf = conf.replace("args = %s\n" % self.env.passwd, "args = %s\n" % world.passwd)
        # the same certificate as Dovecot, and plaintext LOGIN allowed on
        # 143/110 as in Dovecot's config: both servers face the same clients
        conf = conf.replace("ssl_cert = <%s\n" % self.env.cert, "ssl_cert = <%s\n" % world.cert)
        conf = conf.replace("ssl_key = <%s\n" % self.env.key, "ssl_key = <%s\n" % world.key)
        conf = conf.replace("disable_plaintext_auth = yes", "disable_plaintext_auth = no")
        with open(self.env.conf, "w") as f:
            f.write(conf)
        self.ports = {"imap": self.env.imap_port, "pop3": self.env.pop3_port}
        if getattr(self.env, "imaps_port", 0):
            self.ports.update(imaps=self.env.imaps_port, pop3s=self.env.pop3s_port)
        self.acct = Accounting(name)

    def version(self):
        # the master has no --version; the tree it was built from says it
        # relative to the repository: the pages are committed
        top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        return "ringgate from %s" % os.path.relpath(self.env.binary(), top)

    def start(self):
        # rgenv finds the binary through RINGGATE_BUILD: servers of two
        # builds side by side (the crypto section) each start their own
        os.environ["RINGGATE_BUILD"] = self.binaries
        with open(os.path.join(self.env.tmp, "stderr.log"), "ab") as err:
            self.env.proc = subprocess.Popen(self.env.command("-F"), stdin=subprocess.DEVNULL,
                                             stdout=subprocess.DEVNULL, stderr=err,
                                             preexec_fn=self.acct.join)
        self.acct.root_pid = self.env.proc.pid
        wait_greetings([(self.ports["imap"], b"* OK"), (self.ports["pop3"], b"+OK")],
                       self.env.proc, self.env.logs)

    def logs(self):
        return self.env.logs()

    def stop(self):
        self.env.stop()
        self.acct.remove()


class DovecotServer:
    kind = "dovecot"

    def __init__(self, name, mode, world, tmp, process_limit):
        self.name, self.mode = name, mode
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.conf = os.path.join(self.dir, "dovecot.conf")
        self.log_path = os.path.join(self.dir, "dovecot.log")
        self.ports = {p: rgenv.free_port() for p in ("imap", "imaps", "pop3", "pop3s")}
        index = os.path.join(self.dir, "index")
        os.makedirs(index)
        os.chown(index, world.uid, world.gid)
        if mode == "security":
            svc = "  service_count = 1\n  process_min_avail = 1\n"
        else:
            svc = ("  service_count = 0\n  process_min_avail = %d\n  client_limit = 1000\n"
                   "  vsz_limit = 1G\n" % (os.cpu_count() or 1))
        svc += "  process_limit = %d\n" % process_limit
        first_uid = min(world.uid, 100) if world.uid > 0 else 100
        login_user = rgenv.LOGIN_USER if rgenv.is_root() else "dovenull"
        # Dovecot keeps its index and uidlist outside the shared Maildir, so
        # ringgate's files and Dovecot's never meet
        conf = f"""# generated by bench/harness.py (make bench): a private Dovecot, the system service untouched
base_dir = {self.dir}/run
state_dir = {self.dir}/state
instance_name = rgbench-{name}
log_path = {self.log_path}
listen = 127.0.0.1
protocols = imap pop3
ssl = yes
ssl_cert = <{world.cert}
ssl_key = <{world.key}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 2 secs
default_login_user = {login_user}
default_internal_user = dovecot
default_process_limit = {process_limit}
default_client_limit = {process_limit * 4}
first_valid_uid = {first_uid}
mail_location = maildir:~/Maildir:INDEX={index}/%u:CONTROL={index}/%u
passdb {{
  driver = passwd-file
  args = {world.passwd}
}}
userdb {{
  driver = passwd-file
  args = {world.passwd}
}}
service auth {{
  user = root
}}
service imap-login {{
  inet_listener imap {{
    port = {self.ports["imap"]}
  }}
  inet_listener imaps {{
    port = {self.ports["imaps"]}
    ssl = yes
  }}
{svc}}}
service pop3-login {{
  inet_listener pop3 {{
    port = {self.ports["pop3"]}
  }}
  inet_listener pop3s {{
    port = {self.ports["pop3s"]}
    ssl = yes
  }}
{svc}}}
service imap {{
  process_limit = {process_limit}
}}
service pop3 {{
  process_limit = {process_limit}
}}
"""
        with open(self.conf, "w") as f:
            f.write(conf)
        self.acct = Accounting(name)
        self.proc = None

    def version(self):
        r = subprocess.run(["dovecot", "--version"], capture_output=True, text=True)
        return "Dovecot " + r.stdout.strip()

    def start(self):
        with open(os.path.join(self.dir, "stderr.log"), "ab") as err:
            self.proc = subprocess.Popen(["dovecot", "-c", self.conf, "-F"],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=err, preexec_fn=self.acct.join)
        self.acct.root_pid = self.proc.pid
        wait_greetings([(self.ports["imap"], b"* OK"), (self.ports["pop3"], b"+OK")],
                       self.proc, self.logs)

    def logs(self):
        return rgenv.read_logs(self.dir, ("stderr.log", "dovecot.log"))

    def stop(self):
        rgenv.stop_process(self.proc, timeout=30)
        self.acct.remove()


# -- the matrix ---------------------------------------------------------------

# connections one rgbench process holds in an idle run; more are split over
# several processes (RLIMIT_NOFILE is 20,000 here and cannot be raised
# without CAP_SYS_RESOURCE)
IDLE_PER_PROCESS = 15000
SEC_IDLE = 40  # high-security idle: a process per connection, see below


def matrix(full, c100k=100000):
    """(kind, proto, transport, clients, scope) cases; idle cases carry K as
    clients. scope: which servers run it ("all", "perf", "sec") and
    "sec-once": a capacity probe run in round 1 only; "all-sec-once": every
    round for high-performance servers, round 1 only for high-security)."""
    cases = []
    protos = ("imap", "pop3") if full else ("imap",)
    sweep = (1, 32, 256, 1024) if full else (1, 32, 256)
    # at 1,024 clients a high-security server (a fresh process per
    # connection, 40-100 starts/s here) keeps each client waiting 10-25 s:
    # prelogin is measured once (round 1, 120 s timeout), login kinds not
    for proto in protos:
        for c in sweep:
            cases.append(("prelogin", proto, "plain", c, "all" if c < 1024 else "all-sec-once"))
        for kind in ("login", "login-fetch"):
            for c in (sweep if full else (32,)):
                cases.append((kind, proto, "plain", c, "all" if c < 1024 else "perf"))
    for tr in ("tls", "starttls"):
        cases.append(("prelogin", "imap", tr, 32, "all"))
        cases.append(("prelogin-resume", "imap", tr, 32, "all"))
    for tr in ("plain", "tls"):
        for k in ((1000, 10000) if full else (1000,)):
            cases.append(("idle", "imap", tr, k, "perf"))
        # a fresh process per held connection: a small K gives the per
        # connection cost, a larger one probes how many the mode can hold
        cases.append(("idle", "imap", tr, SEC_IDLE, "sec"))
    cases.append(("idle", "imap", "plain", 1000 if full else 200, "sec-once"))
    if full:
        # C100K: 100,000 TLS connections held by the high-performance servers
        # round 1 only: 100,000 TLS handshakes take minutes per server
        cases.append(("idle", "imap", "tls", c100k, "perf-once"))
    return cases


def case_key(case):
    return "|".join(str(x) for x in case)


def in_scope(server, case, rnd):
    scope = case[4]
    if scope == "all":
        return True
    if scope == "perf-once":
        return server.mode == "performance" and rnd == 1
    if scope == "all-sec-once":
        return server.mode == "performance" or rnd == 1
    if scope == "perf":
        return server.mode == "performance"
    if scope == "sec":
        return server.mode == "security"
    return server.mode == "security" and rnd == 1


class Bench:
    def __init__(self, args):
        self.args = args
        self.rgbench = os.path.join(args.build, "bin", "rgbench")
        self.results = []
        self.restarts = []
        self.profiles = []
        self.raw = open(args.raw, "w") if args.raw else None

    def port_for(self, server, proto, transport):
        if transport == "tls":
            return server.ports.get(proto + "s")
        return server.ports.get(proto)

    def supports(self, server, transport):
        if transport == "plain":
            return True
        port = self.port_for(server, "imap", transport)
        if not port:
            return False
        # a one-connection probe decides; ringgate's TLS is not there yet
        r = subprocess.run(self.base_cmd(server, "prelogin", "imap", transport, 1) +
                           ["--sessions", "1", "--duration", "5", "--quiet"],
                           capture_output=True, text=True, timeout=30)
        return r.returncode == 0

    def base_cmd(self, server, kind, proto, transport, clients):
        resume = kind.endswith("-resume")
        kind = kind.replace("-resume", "")
        cmd = [self.rgbench, "--port", str(self.port_for(server, proto, transport)),
               "--proto", proto, "--kind", kind, "--clients", str(clients),
               "--user", BENCH_USER, "--pass", BENCH_PASS,
               # a session waits up to 30 s: at c=256 a fresh process per
               # connection (high-security) keeps clients queued for seconds
               "--timeout", "120" if server.mode == "security" and clients > 256 else "30"]
        if transport != "plain":
            cmd += ["--" + transport]
        if resume:
            cmd += ["--resume"]
        if clients > 1000 or kind != "idle":
            # each source address has its own ~28k ephemeral ports: a
            # 3 s prelogin run at 15,000 sessions/s would reuse ports still
            # in TIME_WAIT (a few 'reset'/'eof' in the FULL run)
            cmd += ["--src-addrs", str(max(16, clients // 10000))]
        if kind != "idle":
            # sessions in flight at the end finish and count: no session
            # is cut off, so server CPU per session is exact
            cmd += ["--drain"]
        return cmd

    def run_idle_split(self, server, case, nproc):
        """K idle connections held by nproc rgbench processes (one process
        may not have K descriptors: RLIMIT_NOFILE cannot be raised without
        CAP_SYS_RESOURCE). Each holds its share until all are ready and the
        server is measured, then SIGUSR1 releases them together. Returns
        (merged result, memory and PSS while held, command of one)."""
        kind, proto, transport, clients, _ = case
        procs, cmds = [], []
        for i in range(nproc):
            share = clients // nproc + (1 if i < clients % nproc else 0)
            cmd = self.base_cmd(server, kind, proto, transport, share)
            if "--src-addrs" not in cmd:
                cmd += ["--src-addrs", "16"]
            cmd += ["--duration", "3600", "--quiet"]
            cmds.append(cmd)
            procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True))
        results = [None] * nproc
        ready = [False] * nproc
        mem_held = pss_held = None
        import selectors
        sel = selectors.DefaultSelector()
        for i, p in enumerate(procs):
            sel.register(p.stdout, selectors.EVENT_READ, i)
        open_ = nproc
        released = False
        while open_ > 0:
            for key, _ in sel.select(timeout=5):
                i = key.data
                line = key.fileobj.readline()
                if not line:
                    sel.unregister(key.fileobj)
                    open_ -= 1
                    continue
                ev = json.loads(line)
                if ev.get("event") == "idle_ready":
                    ready[i] = True
                elif ev.get("event") == "result":
                    results[i] = ev
            if not released and (all(ready) or any(r is not None for r in results)):
                if all(ready):
                    time.sleep(1.0)  # let lazy allocations settle
                    mem_held = server.acct.mem_bytes()
                    pss_held = pss_bytes(server.acct.pids())
                for p in procs:
                    if p.poll() is None:
                        p.send_signal(signal.SIGUSR1)
                released = True
        errs = []
        for p in procs:
            errs.append(p.stderr.read())
            p.wait()
        if any(r is None for r in results):
            raise RuntimeError("rgbench gave no result: %s\n%s" % (" ".join(cmds[0]), "".join(errs)))
        merged = dict(results[0])
        for k in ("held", "errors", "sessions", "started"):
            if k in merged:
                merged[k] = sum(r.get(k) or 0 for r in results)
        byk = {}
        for r in results:
            for k, v in r["errors_by_kind"].items():
                byk[k] = byk.get(k, 0) + v
        merged["errors_by_kind"] = byk
        merged["ok"] = all(r["ok"] for r in results)
        merged["processes"] = nproc
        return merged, mem_held, pss_held, cmds[0]

    def run_one(self, server, case, rnd):
        kind, proto, transport, clients, _ = case
        cmd = self.base_cmd(server, kind, proto, transport, clients)
        cmd += ["--duration", str(self.args.hold if kind == "idle" else self.args.duration),
                "--quiet"]
        acct = server.acct
        time.sleep(0.3)  # let the previous case's processes exit
        cpu0 = acct.cpu_ns()
        mem0 = acct.mem_bytes()
        pss0 = pss_bytes(acct.pids())
        mem_held = pss_held = None
        result = None
        nproc = -(-clients // IDLE_PER_PROCESS)
        if kind == "idle" and nproc > 1:
            result, mem_held, pss_held, cmd = self.run_idle_split(server, case, nproc)
        else:
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for line in p.stdout:
                ev = json.loads(line)
                if ev.get("event") == "idle_ready":
                    time.sleep(1.0)  # let lazy allocations settle
                    mem_held = acct.mem_bytes()
                    pss_held = pss_bytes(acct.pids())
                elif ev.get("event") == "result":
                    result = ev
            err = p.stderr.read()
            p.wait()
            if result is None:
                raise RuntimeError("rgbench gave no result: %s\n%s" % (" ".join(cmd), err))
        cpu1 = acct.cpu_ns()
        rec = {"server": server.name, "software": server.kind, "mode": server.mode,
               "kind": kind.replace("-resume", ""), "resume": kind.endswith("-resume"), "proto": proto, "transport": transport, "clients": clients,
               "round": rnd, "case": case_key(case), "rgbench": result, "accounting": acct.method,
               "server_cpu_ms": (cpu1 - cpu0) / 1e6}
        n = result["sessions"]
        rec["cpu_ms_per_session"] = rec["server_cpu_ms"] / n if n else None
        if mem_held is not None and result.get("held"):
            rec["mem_per_conn"] = (mem_held - mem0) / result["held"]
            rec["pss_per_conn"] = (pss_held - pss0) / result["held"]
        rec["cmd"] = " ".join(shlex.quote(c) for c in cmd)
        if self.raw:
            self.raw.write(json.dumps(rec) + "\n")
            self.raw.flush()
        self.results.append(rec)
        status = "ok" if result["ok"] else "ERRORS %s" % result["errors_by_kind"]
        if kind == "idle":
            log("%-9s %-16s %-4s %-8s K=%-6d round %d: held %s, %s B/conn (cgroup), %s" % (
                server.name, kind, proto, transport, clients, rnd, result["held"],
                "%.0f" % rec["mem_per_conn"] if "mem_per_conn" in rec else "-", status))
        else:
            log("%-9s %-16s %-4s %-8s c=%-6d round %d: %s sessions/s, %s ms CPU/session, %s" % (
                server.name, kind, proto, transport, clients, rnd, result["sessions_per_sec"],
                "%.3f" % rec["cpu_ms_per_session"] if rec["cpu_ms_per_session"] else "-", status))
        return rec

    def profile(self, server, case):
        """perf record -a while one measurement runs; the hottest
        (process, object, symbol) entries of the server's processes."""
        if not shutil.which("perf") or not server.acct.perf_cgroup:
            return None
        data = os.path.join(self.args.build, "bench-perf.data")
        kind, proto, transport, clients, _ = case
        cmd = self.base_cmd(server, kind, proto, transport, clients)
        cmd += ["--duration", str(self.args.duration), "--drain", "--quiet"]
        rec = subprocess.run(["perf", "record", "-q", "-a", "-e", "cpu-clock", "-F", "997",
                              "-G", server.acct.perf_cgroup, "-o", data, "--"] + cmd, capture_output=True, text=True,
                             timeout=300)
        if rec.returncode not in (0, 1) or not os.path.exists(data):
            log("perf record failed: %s" % rec.stderr[-500:])
            return None
        def report(sort):
            r = subprocess.run(["perf", "report", "-i", data, "--stdio", "--sort", sort,
                                "--percent-limit", "0.05"], capture_output=True, text=True,
                               timeout=300)
            out = []
            for line in r.stdout.splitlines():
                parts = line.split()
                if len(parts) < 2 or line.startswith("#") or not parts[0].endswith("%"):
                    continue
                # the samples are the server's cgroup only
                out.append((float(parts[0].rstrip("%")), parts[1:]))
            return out
        total = sum(p for p, _ in report("comm"))
        rows = [(p * 100 / total, f[0], f[1], " ".join(f[2:]))
                for p, f in report("comm,dso,sym")] if total else []
        os.unlink(data)
        return rows[:15]

    def warmup(self, server):
        for kind in ("prelogin", "login", "login-fetch"):
            cmd = self.base_cmd(server, kind, "imap", "plain", 4) + ["--duration", "0.5", "--quiet"]
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                raise RuntimeError("warm-up %s against %s failed: %s\n%s" % (
                    kind, server.name, r.stdout, server.logs()[-3000:]))


# -- report -------------------------------------------------------------------

def stop_all(servers, tmp=None):
    """Stop every server in this order (a failure is reported and the
    others still stop), then remove tmp (remove_tmp). Returns each server's
    log text by name."""
    logs = {}
    for s in servers:
        try:
            s.stop()
        except Exception as e:  # report, and go on stopping the others
            log("stopping %s: %s" % (s.name, e))
        logs[s.name] = s.logs()
    remove_tmp(tmp)
    return logs


def remove_tmp(tmp):
    """A section's temporary directory goes, unless RINGGATE_KEEP is set."""
    if tmp is None:
        return
    if not os.environ.get("RINGGATE_KEEP"):
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        log("kept %s" % tmp)


def side_args(args):
    """A side section's copy of the run's arguments: its Bench writes no
    raw results (the main matrix's file is not its to truncate)."""
    a = copy.copy(args)
    a.raw = None
    return a


def page_commit(page):
    """The commit a committed page is made at (`git describe`), with
    `-dirty` when the tree has changes other than the page itself (a run
    over the last one's)."""
    commit = subprocess.run(["git", "-C", ROOT, "describe", "--always"],
                            capture_output=True, text=True).stdout.strip()
    if subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no",
                       "--", ".", ":!" + page],
                      capture_output=True, text=True).stdout.strip():
        commit += "-dirty"
    return commit


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "?"


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def spread(xs):
    xs = [x for x in xs if x is not None]
    if len(xs) < 2 or not statistics.median(xs):
        return None
    return (max(xs) - min(xs)) / statistics.median(xs) * 100


def round_ratio(a_recs, b_recs, key):
    """The median over rounds of a's key / b's key, each ratio taken within
    one round (records carry "round")."""
    a = {r["round"]: r.get(key) for r in a_recs}
    b = {r["round"]: r.get(key) for r in b_recs}
    return med([a[k] / b[k] for k in a if k in b and a[k] and b[k]])


def fmt(x, f="%.0f"):
    return "–" if x is None else f % x



def profiles_and_problems_md(profiles, title, log_problems):
    """The end of a section's page: each (name, rows) perf profile under
    title % name, then the servers' distinct log problems. Lines."""
    L = []
    for name, rows in profiles:
        L.append(title % name)
        L.append("```")
        for pct, comm, dso, sym in rows:
            L.append("%6.2f%%  %-15s %-28s %s" % (pct, comm, dso[:28], sym[:70]))
        L.append("```\n")
    probs = {n: m for n, m in (log_problems or {}).items() if m}
    if probs:
        L.append("Errors and warnings in the servers' logs:\n")
        for n, msgs in probs.items():
            L.append("%s:\n\n```" % n)
            for m, count in msgs[:8]:
                L.append("%6d× %s" % (count, m))
            L.append("```\n")
    return L


def server_log_problems(text):
    """Distinct error lines (pids and numbers folded), most frequent first."""
    import re
    counts = {}
    for line in text.splitlines():
        if not re.search(r"(Error|Fatal|Panic|Warning|warning):", line):
            continue
        if "Killed with signal 15" in line:
            continue  # Dovecot's note on the SIGTERM that stops it
        key = re.sub(r"\d+", "N", line)[:200]
        counts[key] = counts.get(key, 0) + 1
    return sorted(counts.items(), key=lambda kv: -kv[1])
