"""startbench.py — the process start-up section of `make bench`: CPU per
fork+exec+exit of a binary that exits at once, ringgate's login process
next to Dovecot's and /bin/true.
"""
import os
import subprocess

from harness import fmt


SPAWN_N = 200


def spawn_cost(build):
    """CPU ms per start of a binary that exits at once (usage error)."""
    import resource
    out = []
    for name, path in (("/bin/true", "/bin/true"),
                       ("ringgate-login", os.path.join(build, "bin", "ringgate-login")),
                       ("dovecot imap-login", "/usr/lib/dovecot/imap-login")):
        if not os.path.exists(path):
            continue
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        for _ in range(SPAWN_N):
            subprocess.run([path, "--rgbench-spawn-probe"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        out.append((name, cpu * 1000 / SPAWN_N))
    return out


def spawn_markdown(spawn):
    """The page's section for spawn_cost()'s result."""
    L = []
    L.append("## Process start-up\n")
    L.append("Spawn cost measured separately: CPU per fork+exec+exit of the binary, "
             "%d times from Python (includes Python's fork), on this machine:\n" %
             SPAWN_N)
    L.append("| binary | CPU ms per start |\n|---|---|")
    for name, ms in spawn:
        L.append("| `%s` | %s |" % (name, fmt(ms, "%.2f")))
    L.append("")
    return "\n".join(L)
