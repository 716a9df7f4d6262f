"""storebench.py — the user-store section of `make bench` (issue 17): IMAP
LOGIN sessions/s and auth CPU per login with the users in PostgreSQL and in
slapd, ringgate against Dovecot (its own pgsql and ldap drivers, Debian's
dovecot-pgsql / dovecot-ldap), the auth cache off and on. `run.py --only
stores` runs it alone.

Per store one private server (tests/integration/storeenv.py: initdb +
pg_ctl, slapd with a generated slapd.conf, loopback ports, the system
services untouched) holds the bench user ({PLAIN}, the same cheap scheme as
the main matrix, so lookups are measured and not crypt()) among FILLER
others, and four frontends read the same .conf.ext file: ringgate and
Dovecot in high-performance mode, each once with `auth_cache_size = 0` and
once with a cache (10M, 1 hour TTLs). The user's row (attributes) says
`proxy=Y host=127.0.0.1 port=<backend>`: what a login frontend does with a
store, and no worker starts on the frontend, so the login path is the
lookup and the proxy login. The backend is bench/rgbackend (a stand-in for
the backends elsewhere: it answers the proxy's login and LOGOUT and
nothing more), shared by all four; its CPU is shown apart.

Where the machine has two CPUs or more, the frontend under test runs on one
CPU (its first allowed one) and the store, the backend and rgbench on the
others, as in a deployment where stores and backends are other machines:
logins/s is then what one frontend core carries, and the page shows how
busy the frontend's core and the other cores were (a busy "rest" means the
figure is the store's or the client's limit, not the frontend's). Each
frontend gets the same CPUs, store, backend and client.

Measured per login (rgbench: greeting, LOGIN, LOGOUT, c=CLIENTS, rounds
interleaved, medians, ratios within a round): sessions/s; the requests the
store received (its own statement log: PostgreSQL's log_statement = all,
slapd's `-d stats` SRCH/BIND lines, in a counting pass before the rounds,
which run with that log off); the frontend's
CPU (its cgroup); the auth process's own CPU (`ringgate-auth`, Dovecot's
`auth`: where the lookups run), from /proc; the store server's CPU (the
postmaster and its backends, slapd) and the backend's. With the cache on
a login that the cache answers costs the store nothing: the store column
shows it.
"""
import os
import shutil
import subprocess
import tempfile
import time
import json
import re

import harness as h
import rgenv  # noqa: E402  (harness puts tests/integration on the path)
import storeenv

CLIENTS = 32
FILLER = 2000
CACHE_CONF = "auth_cache_size = 10M\nauth_cache_ttl = 1 hour\nauth_cache_negative_ttl = 1 hour\n"
BENCH_ROLE, BENCH_ROLE_PASS = "rgbench", "rgbench-pass"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# the frontend under test on one CPU, the store, backend and client on the
# others (None: fewer than 2 CPUs, nothing pinned)
FRONT_CPUS, REST_CPUS = None, None


def proc_cpu_ns(pid, children=False):
    """CPU time of pid in ns (schedstat: exact, where ticks would round a
    cached login's microseconds to 0), plus its reaped children's (ticks);
    0 when gone."""
    try:
        own = 0
        for task in os.listdir("/proc/%d/task" % pid):  # slapd's threads
            with open("/proc/%d/task/%s/schedstat" % (pid, task)) as f:
                own += int(f.read().split()[0])
        if not children:
            return own
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return 0
    return own + (int(fields[13]) + int(fields[14])) * 1_000_000_000 // CLK_TCK


def cpu_split():
    """(the frontend's CPUs, the others' CPUs), or (None, None) with fewer
    than two CPUs allowed (then nothing is pinned)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return {cpus[0]}, set(cpus[1:])


def pin_tree(root, cpus):
    """root, its descendants and all their threads on cpus (children forked
    later inherit it)."""
    if not cpus:
        return
    for pid in h.proc_children_tree(root):
        try:
            tasks = os.listdir("/proc/%d/task" % pid)
        except OSError:
            continue
        for tid in tasks:
            try:
                os.sched_setaffinity(int(tid), cpus)
            except OSError:
                pass


def pinned_join(join, cpus):
    """A server's preexec_fn: its cgroup, then its CPUs."""
    def preexec():
        join()
        if cpus:
            os.sched_setaffinity(0, cpus)
    return preexec


def cpus_text(cpus):
    return ",".join(str(c) for c in sorted(cpus))


class StandInBackend:
    """bench/rgbackend: the IMAP backend every user is proxied to, a
    stand-in that answers the login dialogue and LOGOUT (see its header)."""
    name = "rgbackend"

    def __init__(self, build, cpus):
        self.binary = os.path.join(build, "bin", "rgbackend")
        self.cpus = cpus
        self.ports = {"imap": rgenv.free_port()}
        self.acct = h.Accounting("rgbackend")
        self.proc = None
        self.counters = ""

    def start(self):
        self.proc = subprocess.Popen([self.binary, str(self.ports["imap"])],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     text=True, preexec_fn=pinned_join(self.acct.join, self.cpus))
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("rgbackend did not start")

    def logs(self):
        return self.counters

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            self.counters = self.proc.communicate(timeout=30)[0]
            self.proc = None
        self.acct.remove()


def comm_of(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def missing():
    """None when everything the section needs is installed, else why not."""
    if shutil.which("dovecot") is None:
        return "Dovecot is not installed"
    for kind, pkg in (("pgsql", "postgresql"), ("ldap", "slapd ldap-utils")):
        if not storeenv.available(kind):
            return "%s is not installed (Debian: %s)" % (kind, pkg)
    for mod, pkg in (("libdriver_pgsql.so", "dovecot-pgsql"),
                     ("auth/libauthdb_ldap.so", "dovecot-ldap")):
        if not os.path.exists(os.path.join("/usr/lib/dovecot/modules", mod)):
            return "Dovecot's %s driver is not installed (Debian: %s)" % (mod, pkg)
    return None


# ---- the stores -------------------------------------------------------------

class PgStore:
    name = "pgsql"
    label = "PostgreSQL"

    def __init__(self, world, backend_port):
        self.srv = storeenv.Postgres()
        self.srv.start()
        pg = self.srv
        pg.sql("CREATE TABLE users (username text PRIMARY KEY, password text, proxy text,"
               " host text, port int, home text, uid int, gid int);"
               " INSERT INTO users VALUES ('%s', '{PLAIN}%s', 'Y', '127.0.0.1', %d, '%s', %d, %d);"
               " INSERT INTO users SELECT 'filler' || i, '{PLAIN}x', 'Y', '127.0.0.1', %d,"
               " '/nonexistent', %d, %d FROM generate_series(1, %d) i;"
               " CREATE ROLE %s LOGIN PASSWORD '%s'; GRANT SELECT ON users TO %s;"
               % (h.BENCH_USER, h.BENCH_PASS, backend_port, world.home, world.uid, world.gid,
                  backend_port, world.uid, world.gid, FILLER, BENCH_ROLE, BENCH_ROLE_PASS,
                  BENCH_ROLE))
        # one file both read: Dovecot's keys only (no request_timeout)
        self.conf = os.path.join(pg.tmp, "dovecot-sql.conf.ext")
        with open(self.conf, "w") as f:
            f.write("driver = pgsql\n"
                    "connect = host=127.0.0.1 port=%d dbname=%s user=%s password=%s\n"
                    "default_pass_scheme = PLAIN\n"
                    "password_query = SELECT username AS user, password, proxy, host, port "
                    "FROM users WHERE username = '%%u'\n"
                    "user_query = SELECT home, uid, gid FROM users WHERE username = '%%u'\n"
                    % (pg.port, storeenv.DB_NAME, BENCH_ROLE, BENCH_ROLE_PASS))
        os.chmod(self.conf, 0o644)
        self.blocks = ("passdb {\n  driver = sql\n  args = %s\n}\n"
                       "userdb {\n  driver = sql\n  args = %s\n}\n" % (self.conf, self.conf))

    def version(self):
        out = subprocess.run([os.path.join(storeenv.PG_BIN, "postgres"), "--version"],
                             capture_output=True, text=True).stdout
        m = re.search(r"\) ([0-9.]+)", out)
        return "PostgreSQL " + (m.group(1) if m else "?")

    def cpu_ns(self):
        """the postmaster, its live backends and the exited ones"""
        try:
            with open(os.path.join(self.srv.data, "postmaster.pid")) as f:
                root = int(f.readline())
        except (OSError, ValueError):
            return 0
        return proc_cpu_ns(root, children=True) + sum(
            proc_cpu_ns(p, children=True) for p in h.proc_children_tree(root) if p != root)

    def log_mark(self):
        try:
            return os.path.getsize(self.srv.log_file)
        except OSError:
            return 0

    def requests_since(self, mark):
        """statements the server logged since mark (simple and extended
        protocol alike)"""
        with open(self.srv.log_file, errors="replace") as f:
            f.seek(mark)
            return len(re.findall(r" LOG:  (?:statement|execute [^:]*): ", f.read()))

    def pin(self, cpus):
        with open(os.path.join(self.srv.data, "postmaster.pid")) as f:
            pin_tree(int(f.readline()), cpus)

    def quiet(self, cpus):
        """no statement log from now on (the server's sessions stay)"""
        self.srv.sql("ALTER SYSTEM SET log_statement = 'none'; SELECT pg_reload_conf();",
                     db="postgres")

    def stop(self):
        self.srv.cleanup()


class LdapStore:
    name = "ldap"
    label = "OpenLDAP slapd"

    def __init__(self, world, backend_port):
        # 2 threads: the store has one core here (the frontend's is the
        # other); slapd's default 16 only hand each operation between
        # more threads on it
        self.srv = storeenv.Slapd(global_conf="threads 2\n")
        where = ["mailHost: 127.0.0.1", "roomNumber: %d" % backend_port]
        ldif = storeenv.user_ldif(h.BENCH_USER, "{PLAIN}" + h.BENCH_PASS, world.uid, world.home,
                                  where)
        ldif = ldif.replace("gidNumber: %d" % world.uid, "gidNumber: %d" % world.gid)
        ldif += "".join(storeenv.user_ldif("filler%d" % i, "{PLAIN}x", world.uid, "/nonexistent",
                                           where) for i in range(1, FILLER + 1))
        self.srv.add_ldif(ldif)
        self.srv.start()
        self.conf = os.path.join(self.srv.tmp, "dovecot-ldap.conf.ext")
        with open(self.conf, "w") as f:
            f.write("uris = %s\ndn = %s\ndnpass = %s\nbase = %s\nscope = subtree\n"
                    "pass_attrs = uid=user, userPassword=password, mailHost=host, "
                    "=proxy=y, roomNumber=port\n"
                    "pass_filter = (&(objectClass=posixAccount)(uid=%%u))\n"
                    "user_attrs = homeDirectory=home, uidNumber=uid, gidNumber=gid\n"
                    "user_filter = (&(objectClass=posixAccount)(uid=%%u))\n"
                    "default_pass_scheme = PLAIN\n"
                    % (self.srv.uri, storeenv.LDAP_ADMIN, storeenv.LDAP_ADMIN_PASS,
                       storeenv.LDAP_BASE))
        os.chmod(self.conf, 0o644)
        self.blocks = ("passdb {\n  driver = ldap\n  args = %s\n}\n"
                       "userdb {\n  driver = ldap\n  args = %s\n}\n" % (self.conf, self.conf))

    def version(self):
        r = subprocess.run(["/usr/sbin/slapd", "-VV"], capture_output=True, text=True)
        m = re.search(r"slapd ([0-9.]+)", r.stdout + r.stderr)
        return "OpenLDAP slapd " + (m.group(1) if m else "?")

    def cpu_ns(self):
        return proc_cpu_ns(self.srv.proc.pid) if self.srv.proc else 0

    def log_mark(self):
        return os.path.getsize(self.srv.log_file)

    def requests_since(self, mark):
        """searches and binds slapd logged since mark"""
        with open(self.srv.log_file, errors="replace") as f:
            f.seek(mark)
            return len(re.findall(r" (?:SRCH base|BIND dn)=", f.read()))

    def pin(self, cpus):
        pin_tree(self.srv.proc.pid, cpus)

    def quiet(self, cpus):
        """no log of each operation from now on: slapd restarted with -d 0
        (its -d level cannot change while it runs); the frontends reconnect"""
        self.srv.stop()
        self.srv.start(debug="0")
        self.pin(cpus)

    def stop(self):
        self.srv.cleanup()


# ---- the servers in front of it --------------------------------------------

def ringgate_on(store, world, tmp, build, plimit, cache):
    name = "rg-%s-%s" % (store.name, "cache" if cache else "nocache")
    srv = h.RinggateServer(name, "performance", world, tmp, plimit, build)
    storeenv.use_store_blocks(srv.env, store.blocks)
    with open(srv.env.conf, "a") as f:
        f.write(CACHE_CONF if cache else "auth_cache_size = 0\n")
    srv.auth_comms = ("ringgate-auth",)
    srv.cache = cache
    srv.acct.join = pinned_join(srv.acct.join, FRONT_CPUS)
    return srv


def dovecot_on(store, world, tmp, plimit, cache):
    name = "dc-%s-%s" % (store.name, "cache" if cache else "nocache")
    srv = h.DovecotServer(name, "performance", world, tmp, plimit)
    with open(srv.conf) as f:
        conf = f.read()
    old = ("passdb {\n  driver = passwd-file\n  args = %s\n}\n"
           "userdb {\n  driver = passwd-file\n  args = %s\n}\n" % (world.passwd, world.passwd))
    if old not in conf:
        raise RuntimeError("%s: no passwd-file blocks to replace" % srv.conf)
    conf = conf.replace(old, store.blocks)
    conf += CACHE_CONF if cache else "auth_cache_size = 0\n"
    with open(srv.conf, "w") as f:
        f.write(conf)
    srv.auth_comms = ("auth",)
    srv.cache = cache
    srv.acct.join = pinned_join(srv.acct.join, FRONT_CPUS)
    return srv


def auth_cpu_ns(srv):
    return sum(proc_cpu_ns(p) for p in srv.acct.pids() if comm_of(p) in srv.auth_comms)


def measure(rgbench, srv, store, backend, duration):
    cmd = [rgbench, "--port", str(srv.ports["imap"]), "--proto", "imap", "--kind", "login",
           "--clients", str(CLIENTS), "--user", h.BENCH_USER, "--pass", h.BENCH_PASS,
           "--timeout", "30", "--drain", "--duration", str(duration), "--quiet",
           "--src-addrs", "16"]
    if REST_CPUS:
        cmd = ["taskset", "-c", cpus_text(REST_CPUS)] + cmd
    time.sleep(0.3)  # the previous measurement's sessions wind down
    t0 = time.monotonic()
    c0, a0, s0, b0 = srv.acct.cpu_ns(), auth_cpu_ns(srv), store.cpu_ns(), backend.acct.cpu_ns()
    res, r = h.rgbench_run(cmd)
    c1, a1, s1, b1 = srv.acct.cpu_ns(), auth_cpu_ns(srv), store.cpu_ns(), backend.acct.cpu_ns()
    wall = time.monotonic() - t0
    if res is None:
        raise RuntimeError("stores: %s: no result\n%s" % (srv.name, r.stderr))
    rec = {"server": srv.name, "software": srv.kind, "store": store.name, "cache": srv.cache,
           "ok": res["ok"], "rgbench": res, "cmd": " ".join(cmd)}
    n = res["sessions"]
    if res["ok"] and n:
        # busy: the share of the CPUs each side had that it used while
        # rgbench ran (frontend: its CPU; rest: store + backend + client)
        rest_ns = (s1 - s0) + (b1 - b0) + res["client_cpu_s"] * 1e9
        rec.update(rate=res["sessions_per_sec"], cpu_ms=(c1 - c0) / 1e6 / n,
                   auth_ms=(a1 - a0) / 1e6 / n, store_ms=(s1 - s0) / 1e6 / n,
                   backend_ms=(b1 - b0) / 1e6 / n,
                   client_ms=res["client_cpu_s"] * 1e3 / n,
                   store_reqs=store.requests.get(srv.name),
                   front_busy=(c1 - c0) / 1e9 / wall / (len(FRONT_CPUS) if FRONT_CPUS else
                                                        os.cpu_count()),
                   rest_busy=rest_ns / 1e9 / wall / (len(REST_CPUS) if REST_CPUS else
                                                     os.cpu_count()),
                   p50_ms=res["latency_ms"]["p50"], p99_ms=res["latency_ms"]["p99"])
    return rec


def warmup(rgbench, srv, sessions=8, tries=1):
    """A few proxied logins: the pools connect, and a broken setup fails
    here with its log. tries > 1: after the store's restart, the first
    logins may find the frontend's old store connection gone."""
    for attempt in range(tries):
        r = subprocess.run([rgbench, "--port", str(srv.ports["imap"]), "--proto", "imap",
                            "--kind", "login", "--clients", "4", "--user", h.BENCH_USER,
                            "--pass", h.BENCH_PASS, "--sessions", str(sessions), "--drain",
                            "--duration", "30", "--quiet"],
                           capture_output=True, text=True, timeout=60)
        if r.returncode == 0:
            return
        time.sleep(1)
    raise RuntimeError("warm-up against %s failed: %s\n%s" % (srv.name, r.stdout,
                                                              srv.logs()[-3000:]))


COUNT_SESSIONS = 64


def count_requests(rgbench, srv, store):
    """Requests the store receives per login from srv: COUNT_SESSIONS logins
    (after the warm-up: connections made) with the store's own statement
    log on."""
    mark = store.log_mark()
    warmup(rgbench, srv, sessions=COUNT_SESSIONS)
    time.sleep(0.2)  # slapd writes its last lines
    store.requests[srv.name] = store.requests_since(mark) / COUNT_SESSIONS


def run_store(store_cls, args, rgbench, out):
    tmp = tempfile.mkdtemp(prefix="rgbench-stores-")
    os.chmod(tmp, 0o755)
    world = h.World(tmp)
    plimit = 1100
    started, store = [], None
    try:
        # the first ringgate fills the world (the bench user, its Maildir):
        # the store's rows point at them
        h.RinggateServer("rg-world", "performance", world, tmp, plimit, args.build)
        backend = StandInBackend(args.build, REST_CPUS)
        store = store_cls(world, backend.ports["imap"])
        store.pin(REST_CPUS)
        out["versions"][store.name] = store.version()
        servers = [ringgate_on(store, world, tmp, args.build, plimit, False),
                   dovecot_on(store, world, tmp, plimit, False),
                   ringgate_on(store, world, tmp, args.build, plimit, True),
                   dovecot_on(store, world, tmp, plimit, True)]
        backend.start()
        started.append(backend)
        for s in servers:
            s.start()
            started.append(s)
            h.log("stores: %s started (%s)" % (s.name, s.version()))
        out["versions"].setdefault("dovecot", servers[1].version())
        store.requests = {}
        for s in servers:
            warmup(rgbench, s)
            count_requests(rgbench, s, store)
        # the measured rounds: no log of each statement, as a production
        # store runs (the log costs the store's core, which the client and
        # the backend share here)
        store.quiet(REST_CPUS)
        for s in servers:
            warmup(rgbench, s, tries=5)
        for rnd in range(1, args.runs + 1):
            for s in servers:
                rec = measure(rgbench, s, store, backend, max(args.duration, 2))
                rec["round"] = rnd
                out["results"].append(rec)
                if not rec["ok"]:
                    out["errors"].append(rec)
                    h.log("stores %-18s round %d: ERRORS %s" % (
                        s.name, rnd, rec["rgbench"]["errors_by_kind"]))
                    continue
                h.log("stores %-18s round %d: %.0f logins/s, auth %.3f ms, frontend %.3f ms, "
                      "store %.3f ms (%s requests), backend %.3f ms, client %.3f ms CPU/login;"
                      " busy: frontend %.0f%%, rest %.0f%%" % (
                          s.name, rnd, rec["rate"], rec["auth_ms"], rec["cpu_ms"],
                          rec["store_ms"], h.fmt(rec["store_reqs"], "%.2f"), rec["backend_ms"],
                          rec["client_ms"], rec["front_busy"] * 100, rec["rest_busy"] * 100))
        if not args.no_profile:
            s = servers[0]
            h.log("stores: profiling %s" % s.name)
            bench = h.Bench(h.side_args(args))
            rows = bench.profile(s, ("login", "imap", "plain", CLIENTS, "all"))
            if rows:
                out["profiles"].append((s.name, rows))
    finally:
        for name, text in h.stop_all(list(reversed(started))).items():
            out["log_problems"][name] = h.server_log_problems(text)
        if store is not None:
            store.stop()
        h.remove_tmp(tmp)


def store_compare(args):
    """Runs the section; returns what store_markdown() renders."""
    global FRONT_CPUS, REST_CPUS
    FRONT_CPUS, REST_CPUS = cpu_split()
    out = {"skipped": missing(), "results": [], "errors": [], "profiles": [],
           "versions": {}, "log_problems": {}, "clients": CLIENTS, "runs": args.runs,
           "duration": max(args.duration, 2), "filler": FILLER, "rows": [],
           "front_cpus": cpus_text(FRONT_CPUS) if FRONT_CPUS else None,
           "rest_cpus": cpus_text(REST_CPUS) if REST_CPUS else None,
           "load_start": loadavg()}
    if out["skipped"]:
        h.log("stores section skipped: " + out["skipped"])
        return out
    rgbench = os.path.join(args.build, "bin", "rgbench")
    for cls in (PgStore, LdapStore):
        run_store(cls, args, rgbench, out)
    res = out["results"]
    for store in ("pgsql", "ldap"):
        for cache in (False, True):
            row = {"store": store, "cache": cache}
            for soft in ("ringgate", "dovecot"):
                recs = [r for r in res if r["store"] == store and r["cache"] == cache and
                        r["software"] == soft]
                ok = [r for r in recs if r["ok"]]
                row[soft] = None if not ok or len(ok) < len(recs) else {
                    k: h.med([r[k] for r in ok])
                    for k in ("rate", "cpu_ms", "auth_ms", "store_ms", "backend_ms", "client_ms",
                              "store_reqs", "front_busy", "rest_busy", "p50_ms", "p99_ms")}
                if row[soft] is not None:
                    row[soft]["spread"] = h.spread([r["rate"] for r in ok])

            def ratio(key):
                def ok(soft):
                    return [r for r in res if r["store"] == store and r["cache"] == cache and
                            r["software"] == soft and r["ok"]]
                return h.round_ratio(ok("ringgate"), ok("dovecot"), key)
            row["rate_ratio"] = ratio("rate")
            row["auth_ratio"] = ratio("auth_ms")
            row["cpu_ratio"] = ratio("cpu_ms")
            out["rows"].append(row)
    out["load_end"] = loadavg()
    return out


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def store_markdown(p):
    L = ["## User stores: PostgreSQL and LDAP, ringgate and Dovecot\n"]
    if p["skipped"]:
        L.append("Skipped: %s.\n" % p["skipped"])
        return "\n".join(L)
    v = p["versions"]
    if p.get("front_cpus"):
        where = (
            "**Pinned**: the frontend under test (all its processes) runs on CPU %s alone; the "
            "store, the backend and rgbench run on CPU %s, as in a deployment where the "
            "stores and backends are other machines. Both frontends get the same CPUs. "
            "**logins/s** is then what one frontend core carries while the other side keeps "
            "up: **busy** says how much of its CPU each side used during the measurement "
            "(the frontend's core; store + backend + client on the rest). A frontend core "
            "near 100%% with the rest below it means the frontend is the limit; a rest near "
            "100%% means the figure is the store's or the client's limit, and the ratio "
            "understates the frontend's." % (p["front_cpus"], p["rest_cpus"]))
    else:
        where = ("Fewer than two CPUs: nothing is pinned, frontend, store, backend and client "
                 "share the CPU.")
    L.append(
        "The bench user ({PLAIN} password) among %d others in one private %s and one private "
        "%s (tests/integration/storeenv.py); every user's row (entry) says `proxy=Y "
        "host=127.0.0.1 port=…`, as a login frontend's store does. In front of each store four "
        "frontends read the same `dovecot-sql.conf.ext` / `dovecot-ldap.conf.ext` (passdb and "
        "userdb, `%%u` lookups): ringgate and %s (its own pgsql and ldap drivers), both in "
        "high-performance mode, each once with `auth_cache_size = 0` and once with a 10M cache "
        "(TTLs 1 hour). They proxy every login to one backend, `bench/rgbackend`: a stand-in "
        "for the thousands of backends a frontend serves, which answers the proxy's login "
        "dialogue (CAPABILITY, ID, AUTHENTICATE/LOGIN) and LOGOUT and nothing more, so the "
        "backend's cost does not hold both frontends to its rate; its CPU is shown apart. "
        "%s\n\n"
        "rgbench, IMAP LOGIN sessions (greeting, LOGIN, LOGOUT), plaintext, c=%d, %d rounds "
        "of %.0f s interleaved, medians; ratios within a round. **store requests/login** "
        "counts what the store itself logged (PostgreSQL `log_statement = all`: statements "
        "and executions of prepared ones; slapd `-d stats`: SRCH and BIND operations) in "
        "a pass of %d logins per frontend after its warm-up; then the store's log of each "
        "statement is turned off (`log_statement = none`; slapd restarted with `-d 0`) for "
        "the measured rounds, as a production store runs (slapd's restart shows in each "
        "LDAP frontend's log below as one lost connection). **auth CPU** is the auth process alone "
        "(`ringgate-auth`, Dovecot's `auth`: where the lookups run, from /proc), **frontend "
        "CPU** the frontend's whole cgroup (auth included), **store CPU** the database "
        "server's processes; **logins/s per frontend core** is 1000 / frontend CPU ms per "
        "login. With the cache on, every login after the first is answered from the cache: "
        "the store's columns show what that saves it.\n"
        % (p["filler"], v.get("pgsql", "PostgreSQL"), v.get("ldap", "slapd"),
           v.get("dovecot", "Dovecot"), where, p["clients"], p["runs"], p["duration"],
           COUNT_SESSIONS))
    if p["errors"]:
        L.append("Measurements with errors (their cells say ERR):\n")
        for r in p["errors"]:
            L.append("- %s round %d: %s" % (r["server"], r["round"],
                                            json.dumps(r["rgbench"]["errors_by_kind"])))
        L.append("")

    def cell(x, key, f):
        return "ERR" if x is None else h.fmt(x.get(key), f)

    L.append("| store, cache | frontend | logins/s | busy: frontend core / rest "
             "| logins/s per frontend core | store requests/login | auth CPU ms/login "
             "| frontend CPU ms/login | store CPU ms/login | backend / client CPU ms/login "
             "| p50 / p99 ms |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in p["rows"]:
        what = "%s, cache %s" % (row["store"], "on" if row["cache"] else "off")
        for soft in ("ringgate", "dovecot"):
            x = row[soft]
            sp = " ±%.0f%%" % x["spread"] if x and x.get("spread") is not None else ""
            core = 1000 / x["cpu_ms"] if x and x.get("cpu_ms") else None
            busy = "ERR" if x is None else "%s / %s" % (
                h.fmt(x["front_busy"] * 100, "%.0f%%"), h.fmt(x["rest_busy"] * 100, "%.0f%%"))
            L.append("| %s | %s | %s%s | %s | %s | %s | %s | %s | %s | %s / %s | %s / %s |" % (
                what, soft, cell(x, "rate", "%.0f"), sp, busy,
                "ERR" if x is None else h.fmt(core), cell(x, "store_reqs", "%.2f"),
                cell(x, "auth_ms", "%.3f"), cell(x, "cpu_ms", "%.3f"),
                cell(x, "store_ms", "%.3f"), cell(x, "backend_ms", "%.3f"),
                cell(x, "client_ms", "%.3f"), cell(x, "p50_ms", "%.2f"),
                cell(x, "p99_ms", "%.2f")))
        cr = row["cpu_ratio"]
        L.append("| %s | ringgate / Dovecot | %s | | %s | | %s | %s | | | |" % (
            what, h.fmt(row["rate_ratio"], "%.2f×"), h.fmt(1 / cr if cr else None, "%.2f×"),
            h.fmt(row["auth_ratio"], "%.2f×"), h.fmt(cr, "%.2f×")))
    L.append("")
    for store in ("pgsql", "ldap"):
        row = next((r for r in p["rows"] if r["store"] == store and not r["cache"]), None)
        if row is None:
            continue
        rr, cr = row["rate_ratio"], row["cpu_ratio"]
        why = ""
        rg, dc = row["ringgate"], row["dovecot"]
        if rr is not None and rr < 2 and rg and rg["rest_busy"] >= 0.9:
            why = ("; ringgate's rest (store, backend, client) was %.0f%% busy, so its rate is "
                   "held there, not by its own core" % (rg["rest_busy"] * 100))
        idle = [(n, x) for n, x in (("ringgate", rg), ("Dovecot", dc))
                if x and x["front_busy"] < 0.8 and x["rest_busy"] < 0.8]
        if idle:
            why += ("; but %s: neither its core nor the rest was busy (%s), so the machine's "
                    "other load set that rate, not the frontend or the store: re-run on a quiet "
                    "machine" % (" and ".join(n for n, _ in idle), ", ".join(
                        "%s %.0f%% / %.0f%%" % (n, x["front_busy"] * 100, x["rest_busy"] * 100)
                        for n, x in idle)))
        L.append("Target (issue 17), %s with the cache off: logins/s ≥ 2× Dovecot's: measured "
                 "%s the logins/s at %s the frontend CPU per login (%s the logins per frontend "
                 "core) — %s%s.\n" % (
                     store, h.fmt(rr, "%.2f×"), h.fmt(cr, "%.2f×"),
                     h.fmt(1 / cr if cr else None, "%.2f×"),
                     "**met**" if rr is not None and rr >= 2 else "**not met**", why))
    L += h.profiles_and_problems_md(
        p["profiles"], "**%%s**, login c=%d: `perf record -a -e cpu-clock -G` of its cgroup, "
        "hottest entries in %%%% of its samples:\n" % p["clients"], p.get("log_problems"))
    return "\n".join(L)


def store_page(p, args):
    """docs/performance-stores.md: the section with the page's head (when,
    the command, the load at its start and end, the commit)."""
    commit = h.page_commit("docs/performance-stores.md")
    head = ("# ringgate performance: user stores\n\n"
            "Generated on %s UTC by `python3 bench/run.py --build build --only stores` (also "
            "part of `make bench`) on a %d-CPU machine (docs/performance.md), load average "
            "%s at the start and %s at the end, at commit %s.\n\n" % (
                time.strftime("%Y-%m-%d %H:%M", time.gmtime()), os.cpu_count() or 1,
                p.get("load_start", "?"), p.get("load_end", "?"), commit or "?"))
    return head + store_markdown(p)
