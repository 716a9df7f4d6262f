"""storeenv — private user stores for tests: PostgreSQL, MariaDB, slapd.

Each class starts its own server from Debian's binaries in a temporary
directory, on a loopback port chosen like rgenv's (and a UNIX socket in that
directory), as an unprivileged user: as root a system user `rg-store`
(created when missing), otherwise the caller. The system services (the
packages' own clusters and units) are never touched. Every server logs the
statements or operations it received to a file in its directory
(`statement_log()`), which tests use as evidence of what reached it.

    with Postgres() as pg:
        pg.sql("CREATE TABLE users (...)")
        pg.stop(); pg.start()       # a database outage mid-test

Start-up costs (2 cores): PostgreSQL ~1.5 s (initdb), MariaDB ~3 s
(mariadb-install-db), slapd ~0.3 s, so a test file shares one instance.
"""
import base64
import hashlib
import imaplib
import os
import pwd
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from rgenv import build_dir, ensure_system_user, free_port, is_root, recv_until, wait_for

STORE_USER = "rg-store"
PG_BIN = "/usr/lib/postgresql/15/bin"
DB_USER = "rgtest"
DB_PASS = "rg'test pass"  # an apostrophe and a space: connect strings must quote it
DB_NAME = "mail"
# Dovecot's mysql connect string has no quoting: no space in this one
MY_PASS = "rg'test-pass"


PROBE = os.path.join(build_dir(), "tests", "storeprobe")


def available(kind):
    """Whether the server binaries for kind ('pgsql', 'mysql', 'ldap') are
    installed; tests skip (with the reason) when not."""
    need = {
        "pgsql": [os.path.join(PG_BIN, "initdb"), os.path.join(PG_BIN, "pg_ctl")],
        "mysql": ["/usr/bin/mariadb-install-db", "/usr/sbin/mariadbd", "/usr/bin/mariadb"],
        "ldap": ["/usr/sbin/slapd", "/usr/sbin/slapadd", "/usr/bin/ldapsearch"],
    }[kind]
    return all(os.access(p, os.X_OK) for p in need)


def ssha(password, salt=b"rgsalt42"):
    """LDAP {SSHA}: base64(SHA1(password + salt) + salt)."""
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


class _Store:
    name = "store"

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="rg-%s-" % self.name)
        if is_root():
            self.uid, self.gid = ensure_system_user(STORE_USER)
            os.chown(self.tmp, self.uid, self.gid)
        else:
            self.uid, self.gid = os.getuid(), os.getgid()
        os.chmod(self.tmp, 0o755)
        self.port = free_port()
        self.proc = None

    def path(self, *names):
        return os.path.join(self.tmp, *names)

    def _demote(self):
        if os.geteuid() == 0:
            os.setgroups([])
            os.setgid(self.gid)
            os.setuid(self.uid)

    def run(self, cmd, input=None, check=True, env=None):
        """Run a client or admin command as the store's user; its output."""
        r = subprocess.run(cmd, input=input, capture_output=True, text=True,
                           preexec_fn=self._demote, cwd=self.tmp, env=env, timeout=60)
        if check and r.returncode != 0:
            raise RuntimeError("%s failed (%d):\n%s%s" % (cmd[0], r.returncode, r.stdout, r.stderr))
        return r.stdout

    def write(self, name, text, mode=0o600):
        p = self.path(name)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, mode)
        os.chown(p, self.uid, self.gid)
        return p

    def statement_log(self):
        with open(self.log_file, errors="replace") as f:
            return f.read()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.cleanup()

    def cleanup(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


class Postgres(_Store):
    """initdb + pg_ctl: superuser rgtest (scram password DB_PASS on TCP,
    trust on the socket for the test's own psql), database `mail`,
    log_statement = all into postgres.log."""
    name = "pgsql"

    def __init__(self):
        super().__init__()
        self.data = self.path("data")
        self.log_file = self.path("postgres.log")
        pwfile = self.write("pwfile", DB_PASS + "\n")
        self.run([os.path.join(PG_BIN, "initdb"), "-D", self.data, "-U", DB_USER, "-E", "UTF8",
                  "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256",
                  "--pwfile=" + pwfile, "--no-sync"])
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("listen_addresses = '127.0.0.1'\nport = %d\n"
                    "unix_socket_directories = '%s'\nfsync = off\nsynchronous_commit = off\n"
                    "full_page_writes = off\nshared_buffers = 16MB\nmax_connections = 40\n"
                    "log_statement = 'all'\nlog_connections = on\nlog_line_prefix = '%%m [%%p] '\n"
                    % (self.port, self.tmp))
        self.started = False

    def start(self):
        self.run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-l", self.log_file,
                  "-w", "-t", "30", "start"])
        self.started = True
        if not getattr(self, "_db_made", False):
            self.sql("CREATE DATABASE %s" % DB_NAME, db="postgres")
            self._db_made = True
        return self

    def stop(self):
        if self.started:
            self.run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-m", "fast", "-w", "stop"],
                     check=False)
            self.started = False

    def sql(self, text, db=DB_NAME):
        """Run SQL through psql on the UNIX socket; its unaligned output."""
        return self.run([os.path.join(PG_BIN, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                         "-h", self.tmp, "-p", str(self.port), "-U", DB_USER, "-d", db],
                        input=text)

    def connect_string(self, **extra):
        """Dovecot's `connect =` value for this server (TCP)."""
        args = {"host": "127.0.0.1", "port": self.port, "dbname": DB_NAME,
                "user": DB_USER, "password": DB_PASS}
        args.update(extra)
        return " ".join("%s=%s" % (k, quote_conninfo(str(v))) for k, v in args.items())


def quote_conninfo(v):
    """libpq's conninfo quoting: single quotes, \\ escapes ' and \\."""
    if v and all(c not in v for c in " '\\\t"):
        return v
    return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"


class MariaDB(_Store):
    """mariadb-install-db + mariadbd on 127.0.0.1:port and a socket, user
    rgtest@127.0.0.1 with DB_PASS, database `mail`, the general query log
    (every statement) in general.log."""
    name = "mysql"

    def __init__(self):
        super().__init__()
        self.data = self.path("data")
        self.socket = self.path("mysqld.sock")
        self.log_file = self.path("general.log")
        os.makedirs(self.data)
        os.chown(self.data, self.uid, self.gid)
        user = pwd.getpwuid(self.uid).pw_name
        self.run(["mariadb-install-db", "--no-defaults", "--datadir=" + self.data, "--user=" + user,
                  "--auth-root-authentication-method=normal", "--skip-test-db",
                  "--skip-name-resolve"])
        self._made = False

    def start(self):
        user = pwd.getpwuid(self.uid).pw_name
        cmd = ["/usr/sbin/mariadbd", "--no-defaults", "--datadir=" + self.data,
               "--socket=" + self.socket, "--port=%d" % self.port, "--bind-address=127.0.0.1",
               "--skip-networking=0", "--pid-file=" + self.path("mysqld.pid"),
               "--log-error=" + self.path("error.log"), "--general-log=1",
               "--general-log-file=" + self.log_file, "--skip-name-resolve",
               "--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M",
               "--performance-schema=0", "--max-connections=60"]
        if os.geteuid() == 0:
            cmd.append("--user=" + user)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, cwd=self.tmp,
                                     preexec_fn=None if os.geteuid() == 0 else self._demote)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("mariadbd exited:\n" + self._error_log())
            return self.run(["mariadb", "--no-defaults", "-uroot", "-S", self.socket, "-e", "SELECT 1"],
                            check=False).strip() != ""
        wait_for(up, timeout=60)
        if not self._made:
            self.root_sql("CREATE DATABASE %s; CREATE USER '%s'@'127.0.0.1' IDENTIFIED BY '%s';"
                          "GRANT ALL ON %s.* TO '%s'@'127.0.0.1';"
                          % (DB_NAME, DB_USER, MY_PASS.replace("'", "''"), DB_NAME, DB_USER))
            self._made = True
        return self

    def _error_log(self):
        try:
            with open(self.path("error.log"), errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def root_sql(self, text, db=None):
        cmd = ["mariadb", "--no-defaults", "-uroot", "-S", self.socket, "-N", "-B"]
        if db:
            cmd.append(db)
        return self.run(cmd, input=text)

    def sql(self, text):
        return self.root_sql(text, db=DB_NAME)

    def connect_string(self, **extra):
        """Dovecot's mysql `connect =` value (words split at spaces)."""
        args = {"host": "127.0.0.1", "port": self.port, "dbname": DB_NAME,
                "user": DB_USER, "password": MY_PASS}
        args.update(extra)
        return " ".join("%s=%s" % (k, v) for k, v in args.items())


LDAP_BASE = "dc=example,dc=com"
LDAP_ADMIN = "cn=admin," + LDAP_BASE
LDAP_ADMIN_PASS = "admin secret"


class Slapd(_Store):
    """slapd with a generated slapd.conf (mdb, the core/cosine/nis/
    inetorgperson schemas), base dc=example,dc=com, ou=people below it,
    rootdn cn=admin with LDAP_ADMIN_PASS. Entries are loaded with slapadd
    before the start (add_ldif) or ldapadd while it runs (ldapadd).
    `-d stats` sends every operation (BIND dn, SRCH base/scope/filter) to
    slapd.log."""
    name = "ldap"

    def __init__(self, acl=None, tls=False, global_conf=""):
        """global_conf: slapd.conf lines before the database (the bench's
        `threads`)"""
        super().__init__()
        self.db = self.path("db")
        os.makedirs(self.db)
        os.chown(self.db, self.uid, self.gid)
        self.log_file = self.path("slapd.log")
        self.uri = "ldap://127.0.0.1:%d/" % self.port
        # tls: a certificate for 127.0.0.1 signed by a CA of the test's own
        # (self.ca_file), StartTLS on uri and ldaps:// on ldaps_uri
        tls_conf = ""
        self.ldaps_uri = None
        if tls:
            self.ca_file = self.make_ca("ca")
            cert, key = self.make_cert("ca", "slapd", "127.0.0.1")
            tls_conf = ("TLSCACertificateFile %s\nTLSCertificateFile %s\n"
                        "TLSCertificateKeyFile %s\n" % (self.ca_file, cert, key))
            self.ldaps_uri = "ldaps://127.0.0.1:%d/" % free_port()
        acl = acl or ("access to attrs=userPassword by dn.exact=\"%s\" read by self read "
                      "by anonymous auth by * none\naccess to * by * read\n" % LDAP_ADMIN)
        schemas = "".join("include /etc/ldap/schema/%s.schema\n" % s
                          for s in ("core", "cosine", "nis", "inetorgperson", "misc"))
        self.conf = self.write("slapd.conf", schemas + tls_conf + global_conf + f"""
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {self.path("slapd.pid")}
argsfile {self.path("slapd.args")}
database mdb
maxsize 67108864
suffix "{LDAP_BASE}"
rootdn "{LDAP_ADMIN}"
rootpw "{LDAP_ADMIN_PASS}"
directory {self.db}
index objectClass,uid eq
{acl}""")
        self.add_ldif(f"""dn: {LDAP_BASE}
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=people,{LDAP_BASE}
objectClass: organizationalUnit
ou: people
""")

    def make_ca(self, name):
        """A self-signed CA (name.key, name.pem in the directory); its
        certificate's path. Another name makes a CA nobody trusts."""
        key, pem = self.path(name + ".key"), self.path(name + ".pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
                        "/CN=ringgate test CA %s" % name, "-keyout", key, "-out", pem],
                       check=True, capture_output=True)
        os.chmod(pem, 0o644)
        return pem

    def make_cert(self, ca, name, ip):
        """A server certificate for ip signed by CA ca; (cert, key) paths,
        readable by the server's user."""
        key, csr, pem = (self.path(name + x) for x in (".key", ".csr", ".pem"))
        ext = self.write(name + ".ext", "subjectAltName = IP:%s, DNS:localhost\n" % ip)
        subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-subj", "/CN=%s" % ip, "-keyout", key, "-out", csr],
                       check=True, capture_output=True)
        subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", self.path(ca + ".pem"),
                        "-CAkey", self.path(ca + ".key"), "-CAcreateserial", "-days", "2",
                        "-extfile", ext, "-out", pem], check=True, capture_output=True)
        for p in (key, pem):
            os.chown(p, self.uid, self.gid)
        os.chmod(key, 0o600)
        return pem, key

    def add_ldif(self, ldif):
        """Load entries offline (slapd stopped)."""
        p = self.write("add.ldif", ldif)
        self.run(["/usr/sbin/slapadd", "-q", "-f", self.conf, "-l", p])

    def ldapadd(self, ldif):
        return self.run(["ldapadd", "-x", "-H", self.uri, "-D", LDAP_ADMIN, "-w", LDAP_ADMIN_PASS],
                        input=ldif)

    def search(self, filt, *attrs):
        return self.run(["ldapsearch", "-x", "-LLL", "-H", self.uri, "-D", LDAP_ADMIN,
                         "-w", LDAP_ADMIN_PASS, "-b", LDAP_BASE, filt] + list(attrs))

    def start(self, debug="stats"):
        """debug: slapd's -d level ("0": no log of each operation, as the
        bench's measured rounds run it). -s 0: nothing to syslog (with no
        syslog daemon each line is a failed connect to /dev/log)."""
        urls = self.uri + (" " + self.ldaps_uri if self.ldaps_uri else "")
        cmd = ["/usr/sbin/slapd", "-d", debug, "-s", "0", "-h", urls, "-f", self.conf]
        if os.geteuid() == 0:
            user = pwd.getpwuid(self.uid).pw_name
            cmd += ["-u", user, "-g", user]
        self._log = open(self.log_file, "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log, cwd=self.tmp)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("slapd exited:\n" + self.statement_log()[-3000:])
            return self.run(["ldapsearch", "-x", "-H", self.uri, "-b", "", "-s", "base",
                             "(objectClass=*)", "namingContexts"], check=False) != ""
        wait_for(up, timeout=30)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None


def user_ldif(uid, password_value, uid_number, home, extra=()):
    """An inetOrgPerson + posixAccount entry under ou=people."""
    lines = ["dn: uid=%s,ou=people,%s" % (uid, LDAP_BASE), "objectClass: inetOrgPerson",
             "objectClass: posixAccount", "objectClass: inetLocalMailRecipient", "uid: " + uid, "cn: " + uid, "sn: " + uid,
             "uidNumber: %d" % uid_number, "gidNumber: %d" % uid_number,
             "homeDirectory: " + home, "userPassword: " + password_value]
    lines += list(extra)
    return "\n".join(lines) + "\n\n"


class Probe:
    """storeprobe (tests/integration/storeprobe.c) on a .conf.ext: requests
    by id, answers in completion order."""

    def __init__(self, mode, conf_path):
        self.proc = subprocess.Popen([PROBE, mode, conf_path], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     bufsize=0)
        self.buf = b""
        self.n = 0

    def send(self, template, value=""):
        self.n += 1
        rid = "q%d" % self.n
        self.proc.stdin.write(("%s %s\t%s\n" % (rid, template, value)).encode())
        return rid

    def line(self, timeout=20):
        deadline = time.time() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.time()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                raise AssertionError("storeprobe: no answer in %d s; stderr: %s" % (
                    timeout, self.stderr()))
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                raise AssertionError("storeprobe exited: " + self.stderr())
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def answers(self, ids, timeout=20):
        got = {}
        while set(ids) - set(got):
            rid, rest = self.line(timeout).split(" ", 1)
            got[rid] = rest
        return got

    def ask(self, template, value="", timeout=20):
        rid = self.send(template, value)
        return self.answers([rid], timeout)[rid]

    def stats(self):
        self.proc.stdin.write(b"stats\n")
        line = self.line()
        assert line.startswith("stats "), line
        return {k: int(v) for k, v in (w.split("=") for w in line.split()[1:])}

    def stderr(self):
        if self.proc.poll() is None:
            return "(running)"
        return self.proc.stderr.read().decode(errors="replace")

    def close(self):
        """Stop it; its stderr (a second call gives the same text)."""
        if getattr(self, "_stderr", None) is not None:
            return self._stderr
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        err = self.proc.stderr.read().decode(errors="replace")
        self.proc.stdout.close()
        self.proc.stderr.close()
        self._stderr = err
        return err

    def search(self, filt, value=""):
        return self.send("search " + filt, value)

    def bind(self, dn, value, password):
        return self.send("bind " + dn, "%s\t%s" % (value, password))


def open_probe(test, mode, directory, conf_text):
    """A Probe on conf_text (written to directory, named after the test)
    that test closes at its end, checking a clean exit: every request
    answered, nothing leaked (ASan builds)."""
    path = os.path.join(directory, "%s-%s.conf" % (mode, test.id().split(".")[-1]))
    with open(path, "w") as f:
        f.write(conf_text)
    p = Probe(mode, path)

    def close():
        err = p.close()
        test.assertEqual(p.proc.returncode, 0, err)
        test.assertNotIn("Sanitizer", err)
    test.addCleanup(close)
    return p



# ---- logging in through a ringgate whose passdb is a store -------------------

class SqlPoolCase:
    """Mixin for a unittest.TestCase on one private SQL server (SERVER, a
    _Store class) driven through storeprobe with DRIVER: the server
    started once per class as cls.db, the users table filled."""
    SERVER = None
    DRIVER = None
    NAME_TYPE = "text"  # the username column's type (MariaDB keys need a length)

    @classmethod
    def setUpClass(cls):
        cls.db = cls.SERVER()
        cls.addClassCleanup(cls.db.cleanup)
        cls.db.start()
        cls.db.sql("CREATE TABLE users (username %s PRIMARY KEY, password text, home text);"
                   "INSERT INTO users VALUES ('demo', '{PLAIN}pw', '/home/demo'),"
                   " ('nohome', '{PLAIN}x', NULL)" % cls.NAME_TYPE)

    def probe(self, connect=None, extra=""):
        return open_probe(self, "sql", self.db.tmp, "driver = %s\nconnect = %s\n%s"
                          % (self.DRIVER, connect or self.db.connect_string(), extra))


def login_reply(port, user, password):
    """IMAP LOGIN with user and password (bytes) as quoted strings on
    127.0.0.1:port; the tagged reply line."""
    def q(s):
        return b'"' + s.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        recv_until(s, b"\r\n")
        s.sendall(b"a LOGIN " + q(user) + b" " + q(password) + b"\r\n")
        data = recv_until(s, b"\r\n")
        return data.split(b"\r\n")[-2] if data.count(b"\r\n") > 1 else data.strip()


def use_store_blocks(rg, blocks):
    """Replace rg's generated passwd-file passdb/userdb blocks with blocks."""
    with open(rg.conf) as f:
        conf = re.sub(r"passdb \{.*?\}\nuserdb \{.*?\}\n", lambda m: blocks, f.read(), flags=re.S)
    with open(rg.conf, "w") as f:
        f.write(conf)


def assert_auth_clean(logs):
    """auth survived every lookup (and, under ASan, exited clean)."""
    for bad in ("Sanitizer", "killed with signal", "Fatal:"):
        if bad in logs:
            raise AssertionError("%s in ringgate's log:\n%s" % (bad, logs[-4000:]))


class LoginCase:
    """Mixin for a unittest.TestCase logging in through cls.rg (a ringgate
    whose passdb is a private store, started by the class's setUpClass):
    stops it after the class and checks auth's log; IMAP helpers."""

    @classmethod
    def tearDownClass(cls):
        cls.rg.stop()
        logs = cls.rg.logs()
        cls.rg.cleanup()
        assert_auth_clean(logs)

    def imap(self):
        c = imaplib.IMAP4("127.0.0.1", self.rg.imap_port, timeout=20)
        self.addCleanup(c.sock.close)
        return c

    def raw_login(self, user, password):
        return login_reply(self.rg.imap_port, user, password)


if __name__ == "__main__":
    # smoke: start each available store, show it works, stop it
    t0 = time.time()
    if available("pgsql"):
        with Postgres() as pg:
            pg.sql("CREATE TABLE t (a text); INSERT INTO t VALUES ('x')")
            print("pgsql", pg.sql("SELECT a FROM t").strip(), "%.1fs" % (time.time() - t0))
    t0 = time.time()
    if available("ldap"):
        with Slapd() as ld:
            ld.ldapadd(user_ldif("demo", ssha("pw"), 1000, "/home/demo"))
            print("ldap", "uid: demo" in ld.search("(uid=demo)"), "%.1fs" % (time.time() - t0))
    t0 = time.time()
    if available("mysql"):
        with MariaDB() as my:
            my.sql("CREATE TABLE t (a text); INSERT INTO t VALUES ('x')")
            print("mysql", my.sql("SELECT a FROM t").strip(), "%.1fs" % (time.time() - t0))
