"""Helpers shared by bench/compare.py and bench/chaos.py: /proc accounting, building the C
children, statistics, machine information and the clean-up sweep. Python 3 stdlib, Linux only.

Nothing here measures by itself; the scripts decide what to time and report.
"""

import datetime
import hashlib
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CLK_TCK = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024


class Interrupted(Exception):
    """SIGTERM or SIGHUP while a script runs (SIGINT arrives as KeyboardInterrupt)."""


def on_signals():
    def handler(signum, _frame):
        raise Interrupted(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def ignore_signals():
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)


# ---------------------------------------------------------------------------------------------
# /proc


def read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


def pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def stat(pid):
    """(state, ppid, utime+stime ticks) of a process, or None once it is gone."""
    try:
        raw = read(f"/proc/{pid}/stat")
    except OSError:
        return None
    rest = raw[raw.rindex(")") + 2:].split()
    return rest[0], int(rest[1]), int(rest[11]) + int(rest[12])


def alive(pid):
    st = stat(pid)
    return st is not None and st[0] != "Z"


def exe_of(pid):
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def comm_of(pid):
    try:
        return read(f"/proc/{pid}/comm").strip()
    except OSError:
        return "?"


def has_env(pid, needle):
    try:
        return needle in read(f"/proc/{pid}/environ", "rb")
    except OSError:
        return False


def status_kib(pid, key, fname="status"):
    """A `Key: N kB` field of /proc/PID/status (or smaps_rollup), 0 when missing."""
    try:
        with open(f"/proc/{pid}/{fname}") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def thread_ns(pid):
    """{tid: on-CPU ns} for the live threads of pid (task/*/schedstat)."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            out[tid] = int(read(f"/proc/{pid}/task/{tid}/schedstat").split()[0])
        except (OSError, ValueError):
            pass
    return out


def sched_ns(pid):
    """On-CPU time of the live threads of pid, in ns (sum of task/*/schedstat)."""
    return sum(thread_ns(pid).values())


def children_map():
    out = {}
    for p in pids():
        st = stat(p)
        if st:
            out.setdefault(st[1], []).append(p)
    return out


def own_processes(roots, child_exes):
    """The supervisor's own processes: the roots and all their descendants, except the
    supervised programs (their exe is one of child_exes) and whatever runs below those."""
    kids = children_map()
    out, todo, seen = [], [r for r in roots if r], set()
    while todo:
        p = todo.pop()
        if p in seen or not alive(p) or exe_of(p) in child_exes:
            continue
        seen.add(p)
        out.append(p)
        todo.extend(kids.get(p, []))
    return sorted(out)


def footprint(procs):
    """Summed VmRSS and Pss (KiB) over procs, and how many there were."""
    return {
        "procs": len(procs),
        "rss_kib": sum(status_kib(p, "VmRSS") for p in procs),
        "pss_kib": sum(status_kib(p, "Pss", "smaps_rollup") for p in procs),
        "rss_anon_kib": sum(status_kib(p, "RssAnon") for p in procs),
        "rss_file_kib": sum(status_kib(p, "RssFile") for p in procs),
        "comms": sorted({comm_of(p) for p in procs}),
    }


def cpu_window(procs, seconds):
    """CPU used by procs over an idle window: schedstat ns and utime+stime ticks, both as
    % of one core (only processes alive at both ends count). Per thread: a thread born in
    the window counts from 0; one that ended in it is missing from the schedstat sum (its
    time is in the ticks, which cover exited threads)."""
    a = {p: (stat(p), thread_ns(p)) for p in procs}
    t0 = time.monotonic()
    time.sleep(seconds)
    b = {p: (stat(p), thread_ns(p)) for p in procs}
    dt = time.monotonic() - t0
    both = [p for p in procs if a[p][0] and b[p][0]]
    ns = sum(v - a[p][1].get(tid, 0) for p in both for tid, v in b[p][1].items())
    ticks = sum(b[p][0][2] - a[p][0][2] for p in both)
    return {
        "window_s": round(dt, 3),
        "sched_ms": round(ns / 1e6, 3),
        "sched_pct": ns / 1e9 / dt * 100,
        "ticks_pct": ticks / CLK_TCK / dt * 100,
        "procs_measured": len(both),
    }


# ---------------------------------------------------------------------------------------------
# building the children


def c_compiler():
    """The C compiler on PATH (cc, gcc or clang), or None."""
    return shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


def build_c(source, target):
    """cc -O2 -static SOURCE -o TARGET (dynamic if static linking is not available)."""
    cc = c_compiler()
    if not cc:
        raise RuntimeError("no C compiler (cc, gcc or clang) to build the bench children")
    last = ""
    for extra in (["-static"], []):
        r = subprocess.run([cc, "-O2", *extra, "-o", target, source],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode == 0:
            return "static" if extra else "dynamic"
        last = r.stdout.strip()
    raise RuntimeError(f"cannot build {source}: {last[:400]}")


def build_bare(source, target):
    """A child without a C library (bench/child/bare.c): TARGET, or None where it cannot be
    built (it knows x86-64 and aarch64 Linux, and must link statically)."""
    cc = c_compiler()
    if not cc:
        return None
    r = subprocess.run([cc, "-O2", "-static", "-nostdlib", "-ffreestanding", "-fno-stack-protector",
                        "-o", target, source],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return target if r.returncode == 0 else None


# ---------------------------------------------------------------------------------------------
# statistics


def summary(values):
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    n = len(vals)
    return {
        "n": n,
        "median": statistics.median(vals),
        "min": vals[0],
        "max": vals[-1],
        "p90": vals[min(n - 1, max(0, -(-9 * n // 10) - 1))],
        "p99": vals[min(n - 1, max(0, -(-99 * n // 100) - 1))],
    }


def median(values):
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


# ---------------------------------------------------------------------------------------------
# machine


def loadavg():
    try:
        return [float(x) for x in read("/proc/loadavg").split()[:3]]
    except OSError:
        return None


def machine_info(tend=None):
    info = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_start": loadavg(),
    }
    try:
        for line in read("/proc/cpuinfo").splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        info["mem_gib"] = round(int(read("/proc/meminfo").split()[1]) / MIB, 1)
    except (OSError, ValueError):
        pass
    if tend:
        try:
            info["tend_version"] = subprocess.run(
                [tend, "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True, timeout=10).stdout.strip()
            with open(tend, "rb") as f:
                info["tend_sha256"] = hashlib.sha256(f.read()).hexdigest()
        except OSError as e:
            info["tend_version"] = f"error: {e}"
    try:
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               timeout=10).stdout.strip()
        info["git_head"] = head + ("-dirty" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        pass
    return info


def raise_nofile(want):
    """Raise this process's open-file limit (children inherit it). Returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    try:
        nr_open = int(read("/proc/sys/fs/nr_open"))
    except (OSError, ValueError):
        nr_open = want
    target = min(want, nr_open)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, max(hard, target)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(target, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ---------------------------------------------------------------------------------------------
# clean-up


class Sweeper:
    """Finds every process a script started: the marker in its environment (children inherit
    it), or a program from one of the script's own directories. Kills by pid only."""

    def __init__(self, marker, prefixes):
        self.needle = f"{marker}".encode()
        self.prefixes = [p.rstrip("/") + "/" for p in prefixes]
        self.me = os.getpid()

    def ours(self):
        found = []
        for pid in pids():
            if pid == self.me:
                continue
            exe = exe_of(pid) or ""
            if any(exe.startswith(p) for p in self.prefixes) or has_env(pid, self.needle):
                if alive(pid):
                    found.append(pid)
        return found

    def sweep(self, grace=5.0):
        """SIGTERM what is left, then SIGKILL after `grace` seconds. Returns what was found."""
        left = self.ours()
        if not left:
            return []
        names = sorted({comm_of(p) for p in left})
        for pid in left:
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
        t0 = time.monotonic()
        while self.ours() and time.monotonic() - t0 < grace:
            time.sleep(0.05)
        for _ in range(20):
            rest = self.ours()
            if not rest:
                break
            for pid in rest:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.05)
        return [f"{len(left)} processes ({', '.join(names)})"]
