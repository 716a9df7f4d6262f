"""accounting.py — the server-side cost of one server under `make bench`:
its own cgroup (CPU, memory), the PSS of its process tree. harness.py
re-exports it (harness.Accounting, harness.pss_bytes, ...); the sections
keep using those names. log(), the bench's progress line on stderr, lives
here too: this is the bottom module, importing no other bench module.
"""
import os
import sys
import time


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)

def _own_cgroup_v1(controller):
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if controller in ctrls.split(","):
                return path
    return None


def proc_children_tree(root_pid):
    """root_pid and all its descendants (from /proc)."""
    parent = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                st = f.read()
            parent[int(p)] = int(st.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    tree, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(c for c, pp in parent.items() if pp == pid)
    return tree


def pss_bytes(pids):
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
    return total


class Accounting:
    """Server-side cost of one server: its own cgroup (v2, or v1 cpuacct +
    memory), else /proc sums. CPU is cumulative and includes exited children
    in every method (cgroup counters; for /proc the master's cutime/cstime,
    which holds every child it reaped)."""

    def __init__(self, name):
        self.name = name
        self.method = "proc"
        self.dirs = []
        self.root_pid = None
        self.perf_cgroup = None
        uni = "/sys/fs/cgroup"
        # the driver's pid in the name: two runs at once (a bench and the
        # proxy smoke test, say) never share a group
        group = "rgbench-%d-%s" % (os.getpid(), name)
        try:
            if os.path.exists(uni + "/cgroup.controllers"):
                with open(uni + "/cgroup.controllers") as f:
                    ctrls = f.read().split()
                if "cpu" in ctrls and "memory" in ctrls:
                    own = _own_cgroup_v2()
                    parent = uni + own
                    d = os.path.join(parent, group)
                    os.makedirs(d, exist_ok=True)
                    self.dirs = [d]
                    self.cpu_file = (d + "/cpu.stat", "v2")
                    self.mem_file = d + "/memory.current"
                    self.method = "cgroup v2"
            elif os.path.isdir(uni + "/cpuacct") and os.path.isdir(uni + "/memory"):
                cpu = uni + "/cpuacct" + _own_cgroup_v1("cpuacct") + "/" + group
                mem = uni + "/memory" + _own_cgroup_v1("memory") + "/" + group
                for d in (cpu, mem):
                    os.makedirs(d, exist_ok=True)
                self.dirs = [cpu, mem]
                self.cpu_file = (cpu + "/cpuacct.usage", "v1")
                self.mem_file = mem + "/memory.usage_in_bytes"
                self.method = "cgroup v1 (cpuacct.usage, memory.usage_in_bytes)"
            if self.dirs:
                self.cpu_ns(), self.mem_bytes()  # readable?
            # perf record -G needs a cgroup2 group (its perf_event
            # controller is implicit there), also on a hybrid system
            if self.method.startswith("cgroup v1") and os.path.exists(uni + "/unified/cgroup.procs"):
                d = uni + "/unified" + _own_cgroup_v2() + "/" + group
                d = d.replace("//", "/")
                os.makedirs(d, exist_ok=True)
                self.dirs.append(d)
                self.perf_cgroup = d[len(uni + "/unified"):].lstrip("/")
            elif self.method == "cgroup v2":
                self.perf_cgroup = self.dirs[0][len(uni):].lstrip("/")
        except (OSError, TypeError) as e:
            log("%s: no cgroup (%s); falling back to /proc" % (name, e))
            self.method, self.dirs = "proc", []

    def join(self):
        """preexec_fn of the server's first process: everything it forks
        is accounted here."""
        for d in self.dirs:
            with open(d + "/cgroup.procs", "w") as f:
                f.write(str(os.getpid()))

    def pids(self):
        if self.dirs:
            try:
                with open(self.dirs[0] + "/cgroup.procs") as f:
                    return [int(x) for x in f.read().split()]
            except OSError:
                return []
        return proc_children_tree(self.root_pid) if self.root_pid else []

    def comm_cpu_ns(self, comm):
        """CPU so far of this server's live processes named comm (the
        login processes, which outlive the bulk sessions in
        high-performance mode: a relay's own cost, apart from the
        workers'); from /proc, so exited ones are not in it."""
        total = 0
        for pid in self.pids():
            try:
                with open("/proc/%d/comm" % pid) as f:
                    if f.read().strip() != comm:
                        continue
                with open("/proc/%d/stat" % pid) as f:
                    st = f.read().rsplit(")", 1)[1].split()
                total += int(st[11]) + int(st[12])
            except (OSError, ValueError, IndexError):
                continue
        return total * 1e9 / os.sysconf("SC_CLK_TCK")

    def cpu_ns(self):
        if self.dirs:
            path, kind = self.cpu_file
            with open(path) as f:
                if kind == "v1":
                    return int(f.read())
                for line in f:
                    if line.startswith("usage_usec"):
                        return int(line.split()[1]) * 1000
        tck = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.pids():
            try:
                with open("/proc/%d/stat" % pid) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks = int(fields[11]) + int(fields[12])
            if pid == self.root_pid:
                ticks += int(fields[13]) + int(fields[14])
            total += ticks
        return total * 1_000_000_000 // tck

    def mem_bytes(self):
        if self.dirs:
            with open(self.mem_file) as f:
                return int(f.read())
        return pss_bytes(self.pids())

    def remove(self):
        for d in self.dirs:
            for _ in range(50):
                try:
                    os.rmdir(d)
                    break
                except OSError:
                    time.sleep(0.1)


def _own_cgroup_v2():
    with open("/proc/self/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return line.rstrip("\n")[3:]
    return "/"
