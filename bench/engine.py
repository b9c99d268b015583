#!/usr/bin/env python3
"""Measure the engine's performance figures (issue #2). Python 3 stdlib only; Linux only.

Workloads (each repeated; medians with min/max are reported, nothing is asserted):

  memory   the daemon's own VmRSS and Pss with 10 and with 200 services (children excluded)
  cpu      the daemon's CPU use and wake-ups over an idle window with 200 services
  start    wall time of `tend up -d` with 200 services, and until 200 children exist
  restart  kill -9 of a child until its replacement has started (the child stamps its start)
  status   wall time of `tend status` (table, --json, via TEND_SOCKET) with 10 services

Everything runs in a scratch directory under $TMPDIR; every process started is stopped at the
end, also on an error, Ctrl-C or SIGTERM. Raw numbers go to bench/results/engine-<date>.json.

    cargo build --release && python3 bench/engine.py [--quick] [--only W[,W]] [--tend PATH]
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CHILD_SRC = os.path.join(HERE, "child", "child.c")
WORKLOADS = ["memory", "cpu", "start", "restart", "status"]
MIB = 1024 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")

TARGETS = {
    "rss_200": ("<=", 6.0, "MiB"),
    "cpu_sched_pct": ("~", 0.0, "%"),
    "up_ms": ("<=", 300.0, "ms"),
    "children_ms": ("<=", 300.0, "ms"),
    "restart_ms": ("<=", 2.0, "ms"),
    "status_table_ms": ("<=", 3.0, "ms"),
}


class Interrupted(Exception):
    pass


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# /proc helpers


def read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


def pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def stat_fields(pid, tid=None):
    """Fields of /proc/PID[/task/TID]/stat, numbered as in proc(5) (index 1 = pid)."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    raw = read(path)
    rparen = raw.rindex(")")
    rest = raw[rparen + 2:].split()
    # fields[0] unused, [1]=pid, [2]=comm, [3]=state ...
    return [None, raw[: raw.index(" ")], raw[raw.index("(") + 1: rparen]] + rest


def ppid_of(pid):
    try:
        return int(stat_fields(pid)[4])
    except (OSError, ValueError, IndexError):
        return None


def exe_of(pid):
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        return stat_fields(pid)[3] != "Z"
    except (OSError, IndexError):
        return False


def status_kv(path):
    out = {}
    for line in read(path).splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def kib(value):
    return int(value.split()[0])  # "1234 kB"


def memory_of(pid):
    st = status_kv(f"/proc/{pid}/status")
    out = {
        "vmrss_kib": kib(st["VmRSS"]),
        "vmhwm_kib": kib(st["VmHWM"]),
        "rss_anon_kib": kib(st.get("RssAnon", "0 kB")),
        "rss_file_kib": kib(st.get("RssFile", "0 kB")),
        "vmsize_kib": kib(st["VmSize"]),
        "threads": int(st["Threads"]),
    }
    try:
        rollup = status_kv(f"/proc/{pid}/smaps_rollup")
        out["pss_kib"] = kib(rollup["Pss"])
        out["private_kib"] = kib(rollup.get("Private_Clean", "0 kB")) + kib(
            rollup.get("Private_Dirty", "0 kB")
        )
    except (OSError, KeyError):
        out["pss_kib"] = None
    return out


def cpu_sample(pid):
    """utime+stime of the whole process (includes exited threads), and per-task sums of the
    schedstat run time and of context switches (only tasks alive at the sample)."""
    f = stat_fields(pid)
    sample = {
        "t_ns": time.monotonic_ns(),
        "ticks": int(f[14]) + int(f[15]),
        "sched_ns": 0,
        "voluntary": 0,
        "involuntary": 0,
        "tasks": {},
    }
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            run_ns = int(read(f"/proc/{pid}/task/{tid}/schedstat").split()[0])
            st = status_kv(f"/proc/{pid}/task/{tid}/status")
        except (OSError, ValueError):
            continue
        vol, invol = int(st["voluntary_ctxt_switches"]), int(st["nonvoluntary_ctxt_switches"])
        sample["tasks"][tid] = {"name": st.get("Name"), "run_ns": run_ns, "vol": vol, "invol": invol}
        sample["sched_ns"] += run_ns
        sample["voluntary"] += vol
        sample["involuntary"] += invol
    return sample


class ChildWatch:
    """Finds the daemon (the child of the `tend up -d` process) and the daemon's children that
    have exec'd `exe`, scanning /proc incrementally: pids present before the launch, and pids
    whose parent is neither, are never read again."""

    def __init__(self, launcher_pid, exe, foreign):
        self.launcher = launcher_pid
        self.exe = os.path.realpath(exe)
        self.foreign = set(foreign)
        self.daemon = None
        self.children = set()

    def scan(self):
        fresh = []
        for pid in pids():
            if pid in self.foreign or pid in self.children or pid == self.daemon:
                continue
            ppid = ppid_of(pid)
            if ppid is None:
                continue
            fresh.append((pid, ppid))
        if self.daemon is None:
            for pid, ppid in fresh:
                if ppid == self.launcher:
                    self.daemon = pid
        for pid, ppid in fresh:
            if pid == self.daemon:
                continue
            if self.daemon is not None and ppid == self.daemon:
                if exe_of(pid) == self.exe:
                    self.children.add(pid)
                # else: forked but not yet exec'd; look again next time
            elif ppid != self.launcher and self.daemon is not None:
                self.foreign.add(pid)
        # Children that died (restarts) drop out.
        self.children = {p for p in self.children if os.path.exists(f"/proc/{p}")}
        return len(self.children)


def children_of(daemon, exe=None):
    out = []
    for pid in pids():
        if ppid_of(pid) == daemon and (exe is None or exe_of(pid) == exe):
            out.append(pid)
    return out


# ---------------------------------------------------------------------------------------------
# statistics


def summary(values):
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    n = len(vals)
    p90 = vals[min(n - 1, max(0, -(-9 * n // 10) - 1))]  # nearest rank
    return {
        "n": n,
        "median": statistics.median(vals),
        "min": vals[0],
        "max": vals[-1],
        "p90": p90,
        "mean": statistics.fmean(vals),
    }


# ---------------------------------------------------------------------------------------------
# the harness


class Bench:
    def __init__(self, args):
        self.args = args
        self.marker = "tendbench-" + secrets.token_hex(6)
        self.scratch = tempfile.mkdtemp(prefix="tend-bench-")
        # Benchmark a private copy: a `cargo build` elsewhere during the run cannot swap it.
        os.makedirs(os.path.join(self.scratch, "bin"))
        self.tend = os.path.join(self.scratch, "bin", "tend")
        shutil.copy2(os.path.abspath(args.tend), self.tend)
        self.live = {}  # manifest path -> daemon pid (or None when not known yet)
        self.daemons = set()
        self.child = None
        self.child_kind = None
        self.counter = 0
        self.notes = []
        self.cgroup_roots = {}  # daemon pid -> its cgroup root

    # -- set-up ---------------------------------------------------------------------------

    def build_child(self):
        target = os.path.join(self.scratch, "child")
        if os.path.exists(CHILD_SRC):
            try:
                self.child_kind = "c-" + benchlib.build_c(CHILD_SRC, target)
                self.child = target
                return
            except RuntimeError as e:
                log(f"note: {e}")
        self.child = os.path.realpath(shutil.which("sleep") or "/bin/sleep")
        self.child_kind = "sleep"
        self.notes.append("no C child could be built: children are /bin/sleep; restart latency is polled")

    def pause_args(self):
        return [self.child, "pause"] if self.child_kind != "sleep" else [self.child, "3600"]

    def manifest(self, label, services, min_uptime="1s"):
        """services: list of (name, args). Returns the manifest path in a fresh directory."""
        self.counter += 1
        d = os.path.join(self.scratch, f"{self.counter:03d}-{label}")
        os.makedirs(d)
        lines = []
        if self.args.cgroups:
            lines += ["[tend]", f"cgroups = {json.dumps(self.args.cgroups)}", ""]
        for name, argv in services:
            lines += [
                f"[services.{name}]",
                "args = [" + ", ".join(json.dumps(a) for a in argv) + "]",
                'backoff = { initial = "0s", max = "0s" }',
                "max_restarts = 100000",
                'restart_window = "60s"',
                f"min_uptime = {json.dumps(min_uptime)}",
                "",
            ]
        path = os.path.join(d, "tend.toml")
        with open(path, "w") as f:
            f.write("\n".join(lines))
        return path

    def pause_manifest(self, n, label):
        return self.manifest(label, [(f"s{i:03d}", self.pause_args()) for i in range(n)])

    def env(self):
        env = dict(os.environ)
        env.pop("TEND_SOCKET", None)
        env["TEND_BENCH_MARK"] = self.marker
        return env

    @staticmethod
    def state_dir(manifest):
        return os.path.join(os.path.dirname(manifest), ".tend")

    def daemon_pid(self, manifest):
        try:
            return int(read(os.path.join(self.state_dir(manifest), "tend.pid")).strip())
        except (OSError, ValueError):
            return None

    # -- up / down ------------------------------------------------------------------------

    def up(self, manifest, expect, watch=False):
        """`tend up -d`; returns timings. With watch, also polls /proc every 5 ms until
        `expect` children of the daemon run the child binary."""
        foreign = pids() if watch else ()
        self.live[manifest] = None
        result = {}
        t0 = time.perf_counter_ns()
        proc = subprocess.Popen(
            [self.tend, "-c", manifest, "up", "-d"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=self.env(), cwd=os.path.dirname(manifest),
        )
        done = {}

        def wait():
            try:
                out, err = proc.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            done["t"] = time.perf_counter_ns()
            done["out"], done["err"] = out, err

        waiter = threading.Thread(target=wait, daemon=True)
        waiter.start()
        if watch:
            cw = ChildWatch(proc.pid, self.child, foreign)
            deadline = t0 + 60 * 10**9
            while time.perf_counter_ns() < deadline:
                count = cw.scan()
                if cw.daemon is not None:
                    self.daemons.add(cw.daemon)
                    self.live[manifest] = cw.daemon
                if count and "first_child_ms" not in result:
                    result["first_child_ms"] = (time.perf_counter_ns() - t0) / 1e6
                if count >= expect:
                    result["children_ms"] = (time.perf_counter_ns() - t0) / 1e6
                    break
                if not waiter.is_alive() and proc.returncode not in (0, None):
                    break
                time.sleep(0.005)
        waiter.join()
        result["up_ms"] = (done["t"] - t0) / 1e6
        result["rc"] = proc.returncode
        result["stdout"] = done["out"].decode(errors="replace").strip()
        result["stderr"] = done["err"].decode(errors="replace").strip()
        pid = self.daemon_pid(manifest)
        if pid:
            self.daemons.add(pid)
            self.live[manifest] = pid
        result["daemon"] = pid
        if proc.returncode != 0:
            raise RuntimeError(
                f"`tend up -d` exited {proc.returncode}: {result['stderr'] or result['stdout']}"
            )
        if not pid or not alive(pid):
            raise RuntimeError(f"`tend up -d` returned 0 but no live daemon (tend.pid: {pid})")
        self.harvest_run_records()
        return result

    def down(self, manifest, timeout=60):
        pid = self.live.get(manifest) or self.daemon_pid(manifest)
        t0 = time.perf_counter_ns()
        try:
            r = subprocess.run(
                [self.tend, "-c", manifest, "down"], stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                env=self.env(), text=True,
            )
            rc, err = r.returncode, r.stderr.strip()
        except subprocess.TimeoutExpired:
            rc, err = None, f"timed out after {timeout} s"
        down_ms = (time.perf_counter_ns() - t0) / 1e6
        # `down` should return only once the daemon has exited.
        lingering_ms = None
        if pid:
            t1 = time.monotonic()
            while alive(pid) and time.monotonic() - t1 < 10:
                time.sleep(0.005)
            if alive(pid):
                raise RuntimeError(f"daemon {pid} still alive 10 s after `tend down` (rc {rc}: {err})")
            lingering_ms = (time.monotonic() - t1) * 1e3
        if pid:
            self.remove_leftover_cgroups(only_pid=pid)
        if rc != 0:
            raise RuntimeError(f"`tend down` failed (rc {rc}): {err}")
        left = self.marked_processes()
        if left:
            raise RuntimeError(f"processes left after `tend down`: {left}")
        del self.live[manifest]
        return {"down_ms": down_ms, "daemon_gone_after_down_ms": lingering_ms}

    def status_json(self, manifest):
        r = subprocess.run(
            [self.tend, "-c", manifest, "status", "--json"], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, timeout=30, env=self.env(),
        )
        if r.returncode != 0:
            raise RuntimeError(f"`tend status --json` exited {r.returncode}: {r.stderr.strip()}")
        return json.loads(r.stdout)

    def check_running(self, manifest, n):
        rows = self.status_json(manifest)
        states = {}
        for row in rows:
            states[row.get("state")] = states.get(row.get("state"), 0) + 1
        if len(rows) != n or states.get("running", 0) != n:
            self.notes.append(f"{os.path.basename(os.path.dirname(manifest))}: status states {states} (expected {n} running)")
        return states

    # -- clean-up -------------------------------------------------------------------------

    def marked_processes(self):
        """Processes we started: the marker in their environment, or our child binary."""
        me = os.getpid()
        needle = f"TEND_BENCH_MARK={self.marker}".encode()
        found = []
        for pid in pids():
            if pid == me:
                continue
            try:
                if needle in read(f"/proc/{pid}/environ", "rb"):
                    found.append(pid)
                    continue
            except OSError:
                pass
            exe = exe_of(pid)  # our tend copy and our C child live in the scratch dir
            if exe and exe.startswith(self.scratch + "/"):
                found.append(pid)
        return [p for p in found if alive(p)]

    def harvest_run_records(self):
        """Remember each of our daemons' cgroup root (from STATE_DIR/run.json, which exists
        while the daemon runs)."""
        for entry in os.listdir(self.scratch):
            try:
                record = json.loads(read(os.path.join(self.scratch, entry, ".tend", "run.json")))
            except (OSError, ValueError):
                continue
            if isinstance(record, dict) and record.get("cgroup") and record.get("pid"):
                self.cgroup_roots[int(record["pid"])] = record["cgroup"]

    def remove_leftover_cgroups(self, only_pid=None):
        """Remove (empty) cgroup subtrees our exited daemons left behind, bottom-up (rmdir
        only ever removes empty cgroups). Leaving one is a tend bug; it goes into the notes."""
        for pid, root in list(self.cgroup_roots.items()):
            if only_pid is not None and pid != only_pid:
                continue
            if alive(pid):
                continue
            if os.path.isdir(root):
                subdirs = sum(len(dirs) for _, dirs, _ in os.walk(root))
                self.notes.append(
                    f"tend bug: daemon {pid} exited but left its cgroup {root} "
                    f"({subdirs} instance cgroups); removed by the benchmark")
                for dirpath, _dirs, _files in os.walk(root, topdown=False):
                    try:
                        os.rmdir(dirpath)
                    except OSError:
                        pass
            del self.cgroup_roots[pid]

    def cleanup(self):
        self.harvest_run_records()
        for manifest in list(self.live):
            self.harvest_run_records()
            try:
                subprocess.run(
                    [self.tend, "-c", manifest, "down"], stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=15,
                    env=self.env(),
                )
            except (subprocess.TimeoutExpired, OSError):
                pass
        for pid in self.daemons:  # a daemon that ignored `down`: ask it by signal
            if alive(pid) and (exe_of(pid) or "").startswith(self.scratch + "/"):
                try:
                    os.kill(pid, signal.SIGTERM)
                except OSError:
                    pass
        t0 = time.monotonic()
        while self.marked_processes() and time.monotonic() - t0 < 5:
            time.sleep(0.05)
        for _ in range(20):
            left = self.marked_processes()
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.05)
        left = self.marked_processes()
        if left:
            log(f"warning: could not stop processes {left}")
        self.remove_leftover_cgroups()
        if self.args.keep:
            log(f"scratch kept: {self.scratch}")
        else:
            shutil.rmtree(self.scratch, ignore_errors=True)

    # -- workloads ------------------------------------------------------------------------

    def w_memory(self, reps):
        out = {}
        for n in (10, 200):
            runs = []
            for r in range(reps):
                m = self.pause_manifest(n, f"mem{n}-{r}")
                up = self.up(m, n)
                time.sleep(self.args.settle)
                pid = up["daemon"]
                mem = memory_of(pid)
                mem["children"] = len(children_of(pid, self.child))
                mem["states"] = self.check_running(m, n)
                mem.update(self.down(m))
                mem["up_ms"] = up["up_ms"]
                runs.append(mem)
                log(f"  memory {n:3d} services, rep {r + 1}/{reps}: "
                    f"RSS {mem['vmrss_kib'] / 1024:.2f} MiB, PSS "
                    f"{(mem['pss_kib'] or 0) / 1024:.2f} MiB, {mem['threads']} threads")
            out[str(n)] = {
                "runs": runs,
                "rss_mib": summary([x["vmrss_kib"] / 1024 for x in runs]),
                "pss_mib": summary([x["pss_kib"] / 1024 for x in runs if x["pss_kib"] is not None]),
                "hwm_mib": summary([x["vmhwm_kib"] / 1024 for x in runs]),
                "anon_mib": summary([x["rss_anon_kib"] / 1024 for x in runs]),
                "file_mib": summary([x["rss_file_kib"] / 1024 for x in runs]),
                "up_ms": summary([x["up_ms"] for x in runs]),
                "threads": summary([x["threads"] for x in runs]),
            }
        return out

    def w_cpu(self, reps, n=200):
        runs = []
        window = self.args.window
        for r in range(reps):
            m = self.pause_manifest(n, f"cpu-{r}")
            up = self.up(m, n)
            pid = up["daemon"]
            time.sleep(self.args.settle)
            a = cpu_sample(pid)
            time.sleep(window)
            b = cpu_sample(pid)
            dt = (b["t_ns"] - a["t_ns"]) / 1e9
            common = set(a["tasks"]) & set(b["tasks"])
            run = {
                "window_s": dt,
                "ticks_pct": (b["ticks"] - a["ticks"]) / CLK_TCK / dt * 100,
                "sched_pct": (b["sched_ns"] - a["sched_ns"]) / 1e9 / dt * 100,
                "voluntary": b["voluntary"] - a["voluntary"],
                "involuntary": b["involuntary"] - a["involuntary"],
                "tasks_before": len(a["tasks"]),
                "tasks_after": len(b["tasks"]),
                "tasks_came_or_went": len(set(a["tasks"]) ^ set(b["tasks"])),
                "per_task": {
                    t: {
                        "name": b["tasks"][t]["name"],
                        "run_us": (b["tasks"][t]["run_ns"] - a["tasks"][t]["run_ns"]) / 1e3,
                        "switches": b["tasks"][t]["vol"] + b["tasks"][t]["invol"]
                        - a["tasks"][t]["vol"] - a["tasks"][t]["invol"],
                    }
                    for t in sorted(common, key=int)
                },
            }
            run["wakeups_per_s"] = (run["voluntary"] + run["involuntary"]) / dt
            run["children"] = len(children_of(pid, self.child))
            run["states"] = self.check_running(m, n)
            self.down(m)
            runs.append(run)
            log(f"  cpu {n} services, rep {r + 1}/{reps}: {run['sched_pct']:.4f} % (schedstat), "
                f"{run['ticks_pct']:.3f} % (ticks), {run['voluntary'] + run['involuntary']} switches "
                f"in {dt:.1f} s")
        return {
            "services": n,
            "runs": runs,
            "sched_pct": summary([x["sched_pct"] for x in runs]),
            "ticks_pct": summary([x["ticks_pct"] for x in runs]),
            "wakeups_per_s": summary([x["wakeups_per_s"] for x in runs]),
            "switches": summary([x["voluntary"] + x["involuntary"] for x in runs]),
        }

    def w_start(self, reps, n=200):
        runs = []
        for r in range(reps):
            m = self.pause_manifest(n, f"start-{r}")
            up = self.up(m, n, watch=True)
            run = {"up_ms": up["up_ms"], "children_ms": up.get("children_ms"),
                   "first_child_ms": up.get("first_child_ms")}
            run["children"] = len(children_of(up["daemon"], self.child))
            run["states"] = self.check_running(m, n)
            run.update(self.down(m))
            runs.append(run)
            ch = run["children_ms"]
            log(f"  start {n} services, rep {r + 1}/{reps}: up -d {run['up_ms']:.1f} ms, "
                f"{n} children after {'n/a' if ch is None else f'{ch:.1f}'} ms, "
                f"down {run['down_ms']:.1f} ms")
        return {
            "services": n,
            "runs": runs,
            "up_ms": summary([x["up_ms"] for x in runs]),
            "children_ms": summary([x["children_ms"] for x in runs]),
            "first_child_ms": summary([x["first_child_ms"] for x in runs]),
            "down_ms": summary([x["down_ms"] for x in runs]),
        }

    def w_restart(self, kills):
        stamp = os.path.join(self.scratch, "stamps")
        polled = self.child_kind == "sleep"
        argv = self.pause_args() if polled else [self.child, "stamp", stamp]
        m = self.manifest("restart", [("stamp", argv)], min_uptime="100ms")
        up = self.up(m, 1)
        daemon = up["daemon"]

        def lines():
            try:
                return [tuple(map(int, l.split())) for l in read(stamp).splitlines() if l.strip()]
            except (OSError, ValueError):
                return []

        def current_child():
            if polled:
                kids = children_of(daemon, self.child)
                return kids[0] if len(kids) == 1 else None
            got = lines()
            return got[-1][1] if got else None

        t0 = time.monotonic()
        while current_child() is None:
            if time.monotonic() - t0 > 10:
                raise RuntimeError("the restart child never started")
            time.sleep(0.01)
        latencies, misses = [], 0
        for k in range(kills):
            time.sleep(self.args.restart_gap)
            victim = current_child()
            before = len(lines())
            t_kill = time.monotonic_ns()
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + 10
            new = None
            while time.monotonic() < deadline:
                if polled:
                    kids = [p for p in children_of(daemon, self.child) if p != victim]
                    if kids:
                        new = (time.monotonic_ns(), kids[0])
                        break
                    time.sleep(0.0002)
                else:
                    got = lines()
                    if len(got) > before:
                        new = got[before]
                        break
                    time.sleep(0.0005)
            if new is None:
                misses += 1
                log(f"  restart {k + 1}: no new child within 10 s")
                continue
            latencies.append((new[0] - t_kill) / 1e6)
        rows = self.status_json(m)
        restarts = rows[0].get("restarts") if rows else None
        self.down(m)
        s = summary(latencies)
        if s:
            log(f"  restart: {len(latencies)} kills, median {s['median']:.3f} ms, p90 {s['p90']:.3f} ms, "
                f"max {s['max']:.3f} ms; status says restarts={restarts}")
        return {
            "method": "poll" if polled else "stamp",
            "kills": kills,
            "missed": misses,
            "restarts_reported": restarts,
            "latency_ms": s,
            "raw_ms": latencies,
        }

    def w_status(self, calls, n=10):
        m = self.pause_manifest(n, "status")
        up = self.up(m, n)
        time.sleep(1)
        self.check_running(m, n)
        sock = os.path.join(self.state_dir(m), "tend.sock")
        env = self.env()
        sock_env = dict(env, TEND_SOCKET=sock)
        variants = [
            ("baseline_true", ["/bin/true"], env),
            ("status_table", [self.tend, "-c", m, "status"], env),
            ("status_json", [self.tend, "-c", m, "status", "--json"], env),
            ("status_socket", [self.tend, "status"], sock_env),
        ]
        out = {"services": n, "calls": calls}
        for key, argv, e in variants:
            for _ in range(5):  # warm caches
                subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=e, cwd="/")
            times, failures = [], 0
            for _ in range(calls):
                t0 = time.perf_counter_ns()
                r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=e, cwd="/")
                times.append((time.perf_counter_ns() - t0) / 1e6)
                failures += r.returncode != 0
            out[key] = {"ms": summary(times), "failures": failures, "raw_ms": times}
            log(f"  {key}: median {out[key]['ms']['median']:.3f} ms, p90 {out[key]['ms']['p90']:.3f} ms"
                + (f", {failures} failed" if failures else ""))
        self.down(m)
        return out


# ---------------------------------------------------------------------------------------------
# report


def machine_info(tend, original):
    info = {
        "nproc": os.cpu_count(),
        "nproc_affinity": len(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "kernel_version": platform.version(),
        "machine": platform.machine(),
        "python": platform.python_version(),
    }
    try:
        info["loadavg_at_start"] = read("/proc/loadavg").split()[:3]
    except OSError:
        pass
    try:
        for line in read("/proc/cpuinfo").splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        info["mem_total_kib"] = kib(status_kv("/proc/meminfo")["MemTotal"])
    except (OSError, KeyError):
        pass
    try:
        info["cgroup"] = read("/proc/self/cgroup").strip().splitlines()
    except OSError:
        pass
    try:
        r = subprocess.run([tend, "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=10)
        info["tend_version"] = r.stdout.strip()
    except OSError as e:
        info["tend_version"] = f"error: {e}"
    try:
        st = os.stat(original)
        info["tend_path"] = original
        info["tend_size_bytes"] = st.st_size
        info["tend_mtime"] = datetime.datetime.fromtimestamp(st.st_mtime).isoformat(timespec="seconds")
        with open(tend, "rb") as f:
            info["tend_sha256"] = hashlib.sha256(f.read()).hexdigest()
    except OSError:
        pass
    try:
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "HEAD"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               timeout=10).stdout.strip()
        info["git_head"] = head + ("-dirty" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        pass
    return info


def fmt(v, digits):
    return "–" if v is None else f"{v:.{digits}f}"


def table(results):
    rows = []  # (figure, summary, unit, digits, target key)

    mem = results.get("memory", {}).get("data")
    if mem:
        for n in ("10", "200"):
            rows.append((f"daemon VmRSS, {n} services", mem[n]["rss_mib"], "MiB", 2, "rss_200" if n == "200" else None))
            rows.append((f"daemon Pss, {n} services", mem[n]["pss_mib"], "MiB", 2, None))
            rows.append((f"daemon RssAnon, {n} services", mem[n]["anon_mib"], "MiB", 2, None))
    cpu = results.get("cpu", {}).get("data")
    if cpu:
        w = cpu["runs"][0]["window_s"] if cpu["runs"] else 0
        rows.append((f"idle CPU, {cpu['services']} services, {w:.0f} s (schedstat)", cpu["sched_pct"], "% core", 4, "cpu_sched_pct"))
        rows.append((f"idle CPU, {cpu['services']} services (utime+stime)", cpu["ticks_pct"], "% core", 3, None))
        rows.append(("idle wake-ups (context switches, all threads)", cpu["wakeups_per_s"], "/s", 2, None))
    st = results.get("start", {}).get("data")
    if st:
        rows.append((f"`up -d` returns, {st['services']} services", st["up_ms"], "ms", 1, "up_ms"))
        rows.append((f"{st['services']} children exist (5 ms polls)", st["children_ms"], "ms", 1, "children_ms"))
        rows.append(("first child exists (5 ms polls)", st["first_child_ms"], "ms", 1, None))
        rows.append((f"`down`, {st['services']} services", st["down_ms"], "ms", 1, None))
    rs = results.get("restart", {}).get("data")
    if rs:
        label = "restart latency (kill -9 → child start)" + (" [polled]" if rs["method"] == "poll" else "")
        rows.append((label, rs["latency_ms"], "ms", 3, "restart_ms"))
    ss = results.get("status", {}).get("data")
    if ss:
        n = ss["services"]
        rows.append((f"`status`, {n} services", ss["status_table"]["ms"], "ms", 2, "status_table_ms"))
        rows.append((f"`status --json`, {n} services", ss["status_json"]["ms"], "ms", 2, None))
        rows.append((f"`status` via TEND_SOCKET, {n} services", ss["status_socket"]["ms"], "ms", 2, None))
        rows.append(("baseline: spawn /bin/true", ss["baseline_true"]["ms"], "ms", 2, None))

    lines = [
        "| figure | median | min | max | p90 | n | unit | target |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for figure, s, unit, d, tkey in rows:
        target = ""
        if tkey:
            op, value, _ = TARGETS[tkey]
            if op == "~":
                target = "≈ 0"
            else:
                verdict = "" if s is None else (" (met)" if s["median"] <= value else " (missed)")
                target = f"{op} {value:g}{verdict}"
        if s is None:
            lines.append(f"| {figure} | – | – | – | – | 0 | {unit} | {target} |")
        else:
            lines.append(
                f"| {figure} | {fmt(s['median'], d)} | {fmt(s['min'], d)} | {fmt(s['max'], d)} "
                f"| {fmt(s['p90'], d)} | {s['n']} | {unit} | {target} |"
            )
    for name, r in results.items():
        if r.get("error"):
            lines.append(f"| {name}: NOT MEASURED | | | | | | | {r['error'][:120]} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tend", default=os.path.join(REPO, "target", "release", "tend"),
                    help="the tend binary (default: target/release/tend)")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--only", action="append", default=[], metavar="W",
                    help=f"run only these workloads (repeatable or comma-separated): {', '.join(WORKLOADS)}")
    ap.add_argument("--reps", type=int, help="repetitions for memory/cpu/start (overrides the default)")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds after `up -d` before sampling (3)")
    ap.add_argument("--window", type=float, default=10.0, help="idle CPU window in seconds (10)")
    ap.add_argument("--restart-gap", type=float, default=0.3, help="seconds between kills (0.3)")
    ap.add_argument("--cgroups", choices=["auto", "off"], help="set [tend] cgroups in every manifest")
    ap.add_argument("--out", help="results file (default: bench/results/engine-<date>.json)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args()

    only = [w.strip() for item in args.only for w in item.split(",") if w.strip()] or WORKLOADS
    unknown = [w for w in only if w not in WORKLOADS]
    if unknown:
        ap.error(f"unknown workload(s) {unknown}; choose from {WORKLOADS}")
    if not (os.path.isfile(args.tend) and os.access(args.tend, os.X_OK)):
        ap.error(f"no tend binary at {args.tend}: run `cargo build --release` or pass --tend PATH")
    if not sys.platform.startswith("linux"):
        ap.error("Linux only (/proc)")

    if args.quick:
        reps = {"memory": 2, "cpu": 1, "start": 3, "restart": 10, "status": 50}
    else:
        reps = {"memory": 5, "cpu": 3, "start": 10, "restart": 30, "status": 200}
    if args.reps:
        for k in ("memory", "cpu", "start"):
            reps[k] = args.reps

    def on_signal(signum, _frame):
        raise Interrupted(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    bench = Bench(args)
    started = datetime.datetime.now()
    info = machine_info(bench.tend, os.path.abspath(args.tend))
    log(f"tend: {info.get('tend_version')} ({os.path.abspath(args.tend)}); scratch {bench.scratch}")
    results = {}
    interrupted = None
    try:
        bench.build_child()
        log(f"child: {bench.child_kind} ({bench.child})")
        for w in WORKLOADS:
            if w not in only:
                continue
            log(f"{w} ...")
            t0 = time.monotonic()
            try:
                data = getattr(bench, f"w_{w}")(reps[w])
                results[w] = {"data": data, "seconds": time.monotonic() - t0}
            except (Interrupted, KeyboardInterrupt):
                raise
            except Exception as e:  # record and go on with the other workloads
                log(f"  {w} FAILED: {e}")
                results[w] = {"error": f"{type(e).__name__}: {e}", "seconds": time.monotonic() - t0}
                # stop what this workload left running before the next one
                for m in list(bench.live):
                    try:
                        bench.down(m, timeout=20)
                    except Exception as e2:
                        log(f"  clean-up of {m}: {e2}")
                        bench.live.pop(m, None)
    except (Interrupted, KeyboardInterrupt) as e:
        interrupted = str(e) or "SIGINT"
        log(f"interrupted ({interrupted}); cleaning up")
    finally:
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        bench.cleanup()

    report = {
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "quick": args.quick,
        "repetitions": {w: reps[w] for w in only},
        "settings": {"settle_s": args.settle, "window_s": args.window,
                     "restart_gap_s": args.restart_gap, "cgroups": args.cgroups or "(default)"},
        "child": bench.child_kind,
        "machine": info,
        "targets": {k: {"op": v[0], "value": v[1], "unit": v[2]} for k, v in TARGETS.items()},
        "notes": bench.notes,
        "loadavg_at_end": read("/proc/loadavg").split()[:3],
        "interrupted": interrupted,
        "results": results,
    }
    out = args.out or os.path.join(HERE, "results", f"engine-{started:%Y-%m-%d-%H%M%S}.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")

    print()
    print(f"{info.get('tend_version', 'tend ?')} · {info.get('cpu_model', '?')} · "
          f"{info['nproc']} CPUs · Linux {info['kernel']} · child: {bench.child_kind}"
          + (" · QUICK" if args.quick else ""))
    print()
    print(table(results))
    for note in bench.notes:
        print(f"\nnote: {note}")
    if interrupted:
        print(f"\ninterrupted ({interrupted}): partial results")
    print(f"\nraw numbers: {os.path.relpath(out)}")
    if interrupted:
        return 130
    return 2 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
