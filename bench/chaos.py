#!/usr/bin/env python3
"""Reliability under abuse (issue 10): three long-running scenarios against tend. Python 3
stdlib only; Linux only. Not part of `scripts/test`; each is one command.

  flap      50 services crash every 100–500 ms (backoff 0s) for --minutes (10) while a client
            polls the API: tend's RSS and open fds over time (start/end), API latency
            (p50/p99/max), zombies (tend's children in state Z, sampled every 100 ms), and
            restarts lost: every child appends its pid to a file when it starts; at the end
            those pids are compared with the spawn and exit events in tend's history.
  killloop  --rounds (50) times: tend runs 20 services (5 of them fork a grandchild), gets
            kill -9, and is started again. After each kill: which of its processes survive
            the supervisor; after each start: any process of an earlier generation still
            alive (orphan) or more processes than services want (duplicate). Run with
            cgroups on and off (--cgroups auto,off).
  disk      a child writes 100-byte lines at a steady rate (one write(2) each) while its log
            file's filesystem fills up (an 8 MiB tmpfs) or turns read-only (a small ext4 image
            with errors=remount-ro, then an injected error), then recovers: whether the child
            ever blocked (its own slowest write), the lines that did not land against the loss
            tend reported in tend.log, and whether writing resumed. Needs root (mounts).

Each prints its figures and writes JSON to bench/results/chaos-<scenario>-<date>-<time>.json.
It measures and reports; it never fails because a figure is bad: exit 0 when the scenario
was measured, 2 when it could not be, 130 when interrupted. Everything it starts is stopped.

    cargo build --release
    python3 bench/chaos.py flap                  # 10 minutes
    python3 bench/chaos.py flap --minutes 1
    python3 bench/chaos.py killloop              # 50 rounds with cgroups, 50 without
    python3 bench/chaos.py killloop --rounds 10 --cgroups auto
    python3 bench/chaos.py disk                  # full, then read-only (about 1 minute)
"""

import argparse
import collections
import datetime
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

HERE = bl.HERE
REPO = bl.REPO


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def api_get(sock_path, path, timeout=10):
    """One GET on a fresh connection (as the CLI makes them): (status, body)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock_path)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: tend\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while True:
            data = s.recv(1 << 16)
            if not data:
                break
            chunks.append(data)
    finally:
        s.close()
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        body = dechunk(body)
    return status, body


def dechunk(body):
    out, i = [], 0
    while True:
        j = body.index(b"\r\n", i)
        n = int(body[i:j].split(b";")[0], 16)
        if n == 0:
            return b"".join(out)
        out.append(body[j + 2: j + 2 + n])
        i = j + 2 + n + 2


class Chaos:
    def __init__(self, args):
        self.args = args
        self.marker = "TEND_CHAOS_MARK=" + os.urandom(6).hex()
        self.scratch = tempfile.mkdtemp(prefix="tend-chaos-")
        os.makedirs(os.path.join(self.scratch, "bin"))
        self.tend = os.path.join(self.scratch, "bin", "tend")
        shutil.copy2(os.path.abspath(args.tend), self.tend)
        self.chaos = os.path.join(self.scratch, "bin", "chaos")
        self.child = os.path.join(self.scratch, "bin", "child")
        bl.build_c(os.path.join(HERE, "child", "chaos.c"), self.chaos)
        bl.build_c(os.path.join(HERE, "child", "child.c"), self.child)
        self.sweeper = bl.Sweeper(self.marker, [self.scratch])
        self.manifests = []
        self.mounts = []
        self.notes = []

    def env(self):
        e = dict(os.environ)
        e.pop("TEND_SOCKET", None)
        k, v = self.marker.split("=", 1)
        e[k] = v
        e["NO_COLOR"] = "1"
        return e

    def tend_cmd(self, manifest, *args, timeout=120, check=False):
        return subprocess.run([self.tend, "-c", manifest, *args], env=self.env(),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=timeout, check=check)

    def up(self, manifest):
        if manifest not in self.manifests:
            self.manifests.append(manifest)
        r = self.tend_cmd(manifest, "up", "-d", timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f"`tend up -d` exited {r.returncode}: {(r.stderr or r.stdout).strip()[:300]}")
        return self.daemon(manifest)

    @staticmethod
    def state_dir(manifest):
        return os.path.join(os.path.dirname(manifest), ".tend")

    def daemon(self, manifest):
        try:
            pid = int(bl.read(os.path.join(self.state_dir(manifest), "tend.pid")).split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if bl.alive(pid) else None

    def write_manifest(self, name, text):
        d = os.path.join(self.scratch, name)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "tend.toml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def cleanup(self):
        for m in self.manifests:
            if self.daemon(m):
                try:
                    self.tend_cmd(m, "down", timeout=60)
                except (subprocess.TimeoutExpired, OSError):
                    pass
        left = self.sweeper.sweep(grace=5)
        if left:
            self.notes.append(f"clean-up killed {left[0]}")
        for m in self.manifests:  # an empty cgroup tree a killed daemon left: remove it
            try:
                rec = json.loads(bl.read(os.path.join(self.state_dir(m), "run.json")))
                root = rec.get("cgroup")
            except (OSError, ValueError):
                root = None
            if root and os.path.isdir(root):
                self.notes.append(f"cgroup tree {root} was left behind; removed")
                for dirpath, _d, _f in os.walk(root, topdown=False):
                    try:
                        os.rmdir(dirpath)
                    except OSError:
                        pass
        for mnt in reversed(self.mounts):
            subprocess.run(["umount", "-l", mnt], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if self.args.keep:
            log(f"scratch kept: {self.scratch}")
        else:
            shutil.rmtree(self.scratch, ignore_errors=True)

    # -- flap storm -----------------------------------------------------------------------------

    def flap(self):
        a = self.args
        n = a.services
        files = os.path.join(self.scratch, "starts")
        os.makedirs(files)
        text = []
        for i in range(n):
            text += [f"[services.flap{i:02d}]",
                     "args = " + json.dumps([self.chaos, "flap", f"{files}/flap{i:02d}", "100", "500"]),
                     'backoff = { initial = "0s", max = "0s" }',
                     "max_restarts = 100000000", 'restart_window = "60s"', ""]
        m = self.write_manifest("flap", "\n".join(text))
        pid = self.up(m)
        sock = os.path.join(self.state_dir(m), "tend.sock")
        log(f"flap storm: {n} services, tend pid {pid}, {a.minutes:g} minutes")

        stop = threading.Event()
        lat, api_errors, statuses = [], [], {}

        def poller():
            paths = ["/api/v1/services", f"/api/v1/services/flap{7 % n:02d}",
                     "/api/v1/events?limit=50", "/health"]
            i = 0
            while not stop.is_set():
                p = paths[i % len(paths)]
                t0 = time.perf_counter()
                try:
                    st, _ = api_get(sock, p)
                    statuses[st] = statuses.get(st, 0) + 1
                except OSError as e:
                    api_errors.append(f"{p}: {e}")
                lat.append((time.perf_counter() - t0) * 1000)
                i += 1
                stop.wait(1 / a.rate)

        th = threading.Thread(target=poller, daemon=True)
        th.start()
        samples = []  # (t, rss_kib, fds)
        zombie_samples, zombies_seen, persistent = 0, 0, set()
        age, longest = {}, 0  # consecutive scans a zombie was seen in
        prev_z = set()
        cpu0 = bl.stat(pid)[2]
        t_start = time.monotonic()
        next_mem = t_start
        end = t_start + a.minutes * 60
        scans = 0
        while time.monotonic() < end:
            now = time.monotonic()
            if not bl.alive(pid):
                raise RuntimeError("tend died during the flap storm")
            if now >= next_mem:
                try:
                    fds = len(os.listdir(f"/proc/{pid}/fd"))
                except OSError:
                    fds = None
                samples.append((round(now - t_start, 2), bl.status_kib(pid, "VmRSS"), fds))
                next_mem += 1.0
            z = set(self.zombies_of(pid))
            scans += 1
            if z:
                zombie_samples += 1
                zombies_seen += len(z)
                persistent |= z & prev_z  # a zombie in two samples 100 ms apart
            for k in z:
                age[k] = age.get(k, 0) + 1 if k in prev_z else 1
                longest = max(longest, age[k])
            prev_z = z
            time.sleep(0.1)
        elapsed = time.monotonic() - t_start
        cpu_s = (bl.stat(pid)[2] - cpu0) / bl.CLK_TCK
        zombies_at_end = len(persistent & set(self.zombies_of(pid)))
        stop.set()
        th.join(timeout=15)

        # Stop every service so each last run ends with a recorded exit, then let the
        # history writer catch up before it is read.
        t0 = time.monotonic()
        self.tend_cmd(m, "stop", "all", timeout=120)
        stop_s = time.monotonic() - t0
        time.sleep(2)
        try:
            _, metrics = api_get(sock, "/metrics")
            mt = re.search(rb"^tend_history_dropped_records_total(?:\{[^}]*\})? ([0-9.e+]+)", metrics, re.M)
            history_dropped = float(mt.group(1)) if mt else None
        except OSError:
            history_dropped = None
        started_total = spawn_total = exit_total = 0
        lost_spawn, lost_exit, truncated = [], [], []
        for i in range(n):
            name = f"flap{i:02d}"
            try:
                child_pids = [int(l.split()[1]) for l in open(f"{files}/{name}") if l.strip()]
            except OSError:
                child_pids = []
            got = {}
            for kind in ("spawn", "exit"):
                st, body = api_get(sock, f"/api/v1/events?service={name}&kind={kind}&limit=10000", timeout=60)
                rows = json.loads(body) if st == 200 else []
                if len(rows) >= 10000:
                    truncated.append(f"{name} {kind}")
                # pids are reused over a long storm: compare counts per pid, not sets
                got[kind] = collections.Counter(r.get("pid") for r in rows)
            started = collections.Counter(child_pids)
            started_total += len(child_pids)
            spawn_total += sum(got["spawn"].values())
            exit_total += sum(got["exit"].values())
            miss_s = sum((started - got["spawn"]).values())
            miss_e = sum((started - got["exit"]).values())
            if miss_s:
                lost_spawn.append((name, miss_s))
            if miss_e:
                lost_exit.append((name, miss_e))
        rss = [s[1] for s in samples]
        fds = [s[2] for s in samples if s[2] is not None]
        first = samples[min(5, len(samples) - 1)] if samples else None  # after ~5 s of storm
        s = bl.summary(lat)
        rep = {
            "services": n, "minutes": a.minutes, "elapsed_s": round(elapsed, 1),
            "children_started": started_total,
            "restarts_per_s": round(started_total / elapsed, 1),
            "spawn_events": spawn_total, "exit_events": exit_total,
            "starts_without_spawn_event": sum(c for _, c in lost_spawn),
            "starts_without_exit_event": sum(c for _, c in lost_exit),
            "lost_detail": {"spawn": lost_spawn[:20], "exit": lost_exit[:20]},
            "events_truncated": truncated,
            "history_dropped_records": history_dropped,
            "rss_kib": {"at_5s": first[1] if first else None, "end": rss[-1] if rss else None,
                        "min": min(rss) if rss else None, "max": max(rss) if rss else None},
            "fds": {"at_5s": first[2] if first else None, "end": fds[-1] if fds else None,
                    "max": max(fds) if fds else None},
            "tend_cpu_pct": round(cpu_s / elapsed * 100, 2),
            "api": {"requests": len(lat), "rate_per_s": a.rate, "transport_errors": len(api_errors),
                    "errors_sample": api_errors[:5], "statuses": statuses,
                    "p50_ms": s and round(s["median"], 2), "p99_ms": s and round(s["p99"], 2),
                    "max_ms": s and round(s["max"], 2)},
            "zombies": {"scans": scans, "scans_with_zombie": zombie_samples,
                        "zombies_seen": zombies_seen, "persisting_100ms": sorted(persistent),
                        "longest_consecutive_scans": longest, "left_at_end": zombies_at_end},
            "stop_all_s": round(stop_s, 2),
            "memory_series": samples,
        }
        self.tend_cmd(m, "down", timeout=120)
        log(f"  {started_total} child starts ({rep['restarts_per_s']}/s); history: {spawn_total} spawns, "
            f"{exit_total} exits; starts without a spawn event {rep['starts_without_spawn_event']}, "
            f"without an exit event {rep['starts_without_exit_event']}")
        log(f"  RSS {rep['rss_kib']['at_5s']} → {rep['rss_kib']['end']} KiB (max {rep['rss_kib']['max']}); "
            f"fds {rep['fds']['at_5s']} → {rep['fds']['end']}; tend CPU {rep['tend_cpu_pct']} %")
        log(f"  API: {len(lat)} requests, p50 {rep['api']['p50_ms']} ms, p99 {rep['api']['p99_ms']} ms, "
            f"max {rep['api']['max_ms']} ms, {len(api_errors)} transport errors")
        log(f"  zombies: {zombie_samples} of {scans} scans saw one ({zombies_seen} in all), "
            f"{len(persistent)} seen in two scans in a row (≥ 100 ms), the longest in {longest}; "
            f"{zombies_at_end} of those still there at the end")
        return rep

    @staticmethod
    def zombies_of(pid):
        """tend's children in state Z (from /proc/PID/task/*/children)."""
        z = []
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                kids = bl.read(f"/proc/{pid}/task/{tid}/children").split()
            except OSError:
                continue
            for k in kids:
                st = bl.stat(int(k))
                if st and st[0] == "Z":
                    z.append(int(k))
        return z

    # -- supervisor kill loop -------------------------------------------------------------------

    def killloop(self):
        out = {}
        for mode in self.args.cgroups.split(","):
            out[mode] = self.killloop_mode(mode)
        return out

    def ours(self):
        """(pid, exe basename, starttime) of every process running our children's programs."""
        found = {}
        for pid in bl.pids():
            exe = bl.exe_of(pid)
            if exe in (self.child, self.chaos) and bl.alive(pid):
                try:
                    start = bl.read(f"/proc/{pid}/stat").rsplit(")", 1)[1].split()[19]
                except (OSError, IndexError):
                    continue
                found[(pid, start)] = os.path.basename(exe)
        return found

    @staticmethod
    def roles(family_file):
        """pid → "family leader" or "grandchild", from what the family children recorded."""
        out = {}
        try:
            for line in open(family_file):
                parts = line.split()
                if len(parts) == 4:
                    out[int(parts[1])] = "grandchild" if parts[3] == "grandchild" else "family leader"
        except OSError:
            pass
        return out

    def cgroup_of(self, manifest):
        """The cgroup tree of the daemon running this manifest (from its run.json)."""
        try:
            return json.loads(bl.read(os.path.join(self.state_dir(manifest), "run.json"))).get("cgroup")
        except (OSError, ValueError, AttributeError):
            return None

    def killloop_mode(self, mode):
        a = self.args
        fam = os.path.join(self.scratch, f"family-{mode}")
        text = ["[tend]", f'cgroups = "{mode}"', ""]
        for i in range(a.services):
            argv = [self.chaos, "family", fam] if i < a.families else [self.child, "pause"]
            text += [f"[services.k{i:02d}]", "args = " + json.dumps(argv),
                     'backoff = { initial = "0s", max = "0s" }', ""]
        m = self.write_manifest(f"killloop-{mode}", "\n".join(text))
        want = a.services + a.families  # processes: one per service, plus each grandchild
        log(f"kill loop, cgroups {mode}: {a.rounds} rounds, {a.services} services "
            f"({a.families} with a grandchild: {want} processes)")
        rounds = []
        pid = self.up(m)
        cgroups_seen = {self.cgroup_of(m)} - {None}
        for r in range(a.rounds):
            time.sleep(0.3)
            before = self.ours()
            rec = {"round": r + 1, "before": len(before)}
            if len(before) != want:
                rec["note"] = f"{len(before)} processes before the kill, {want} wanted"
            os.kill(pid, signal.SIGKILL)
            t_kill = time.monotonic()
            while bl.alive(pid) and time.monotonic() - t_kill < 5:
                time.sleep(0.001)
            time.sleep(0.1)
            after_kill = self.ours()
            survivors = set(after_kill) & set(before)
            rec["survived_kill_100ms"] = len(survivors)
            roles = self.roles(fam)
            rec["survivors_kinds"] = sorted({roles.get(pid, "direct child") for pid, _ in survivors})
            t0 = time.monotonic()
            pid = self.up(m)
            rec["up_s"] = round(time.monotonic() - t0, 3)
            cg = self.cgroup_of(m)
            if cg:
                cgroups_seen.add(cg)
            time.sleep(0.3)
            now = self.ours()
            rec["orphans"] = len(set(now) & set(before))  # an earlier generation still alive
            rec["after_start"] = len(now)
            rec["duplicates"] = max(0, len(now) - want)
            rec["missing"] = max(0, want - len(now) + rec["orphans"]) if len(now) < want else 0
            rounds.append(rec)
            if r == 0 or (r + 1) % 10 == 0 or rec["orphans"] or rec["duplicates"]:
                log(f"  round {r + 1}: {rec['survived_kill_100ms']} of {rec['before']} survived the kill "
                    f"({', '.join(rec['survivors_kinds']) or '-'}), restart {rec['up_s']} s, "
                    f"{rec['orphans']} orphans, {rec['duplicates']} duplicates, {rec['after_start']} running")
        tend_log = ""
        try:
            tend_log = bl.read(os.path.join(self.state_dir(m), "tend.log"))
        except OSError:
            pass
        cleaned = [int(x) for x in re.findall(r"stopped (\d+) process\(es\) left running by a previous tend", tend_log)]
        self.tend_cmd(m, "down", timeout=120)
        time.sleep(0.3)
        left = self.ours()
        stale_cgroups = sorted(c for c in cgroups_seen if os.path.isdir(c))
        rep = {
            "cgroups": mode, "rounds": len(rounds), "services": a.services, "with_grandchild": a.families,
            "processes_wanted": want,
            "survived_kill": bl.summary([r["survived_kill_100ms"] for r in rounds]),
            "survivor_kinds": sorted({k for r in rounds for k in r["survivors_kinds"]}),
            "orphans_total": sum(r["orphans"] for r in rounds),
            "duplicates_total": sum(r["duplicates"] for r in rounds),
            "rounds_short": sum(1 for r in rounds if r["after_start"] < want),
            "restart_s": bl.summary([r["up_s"] for r in rounds]),
            "tend_log_cleanups": {"count": len(cleaned), "processes": sum(cleaned)},
            "left_after_down": len(left),
            "cgroups_used": len(cgroups_seen),
            "cgroups_left_after_down": stale_cgroups,
            "per_round": rounds,
        }
        log(f"  cgroups {mode}: survived each kill: median {rep['survived_kill']['median']} "
            f"({', '.join(rep['survivor_kinds']) or 'none'}); orphans {rep['orphans_total']}, duplicates "
            f"{rep['duplicates_total']} over {len(rounds)} rounds; the next start stopped survivors "
            f"{len(cleaned)} times ({sum(cleaned)} processes); left after down: {len(left)}")
        return rep

    # -- disk trouble ---------------------------------------------------------------------------

    def disk(self):
        if os.geteuid() != 0:
            raise RuntimeError("the disk scenario mounts filesystems: run it as root")
        out = {}
        for sc in self.args.scenarios.split(","):
            out[sc] = self.disk_once(sc)
        return out

    def mount_tmpfs(self, path, size):
        os.makedirs(path, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path], check=True)
        self.mounts.append(path)

    def disk_once(self, scenario):
        a = self.args
        mnt = os.path.join(self.scratch, f"logfs-{scenario}")
        img = os.path.join(self.scratch, f"{scenario}.img")
        if scenario == "full":
            self.mount_tmpfs(mnt, "8m")
        elif scenario == "readonly":
            subprocess.run(["truncate", "-s", "64M", img], check=True)
            subprocess.run(["mkfs.ext4", "-q", "-F", img], check=True)
            os.makedirs(mnt, exist_ok=True)
            subprocess.run(["mount", "-o", "loop,errors=remount-ro", img, mnt], check=True)
            self.mounts.append(mnt)
        else:
            raise RuntimeError(f"unknown scenario {scenario}")
        stats = os.path.join(self.scratch, f"burst-{scenario}.stats")
        logfile = os.path.join(mnt, "burst.out.log")
        m = self.write_manifest(f"disk-{scenario}", "\n".join([
            "[services.burst]",
            "args = " + json.dumps([self.chaos, "burst", str(a.burst_seconds), str(a.rate_lines), stats]),
            'restart = "never"',
            f'logs = {{ stdout = {json.dumps(logfile)}, max_size = "1GiB" }}', ""]))
        log(f"disk {scenario}: {a.rate_lines} lines/s ({a.rate_lines * 100 / 1e6:.1f} MB/s) for "
            f"{a.burst_seconds} s")
        self.up(m)
        t0 = time.monotonic()
        saved = []  # lines read from files we remove or from a filesystem we take away
        events = []

        def collect(path):
            try:
                with open(path, "rb") as f:
                    saved.append(f.read())
            except OSError:
                pass

        if scenario == "full":
            # fills at the child's rate; stay full for a few seconds, then make room
            while time.monotonic() - t0 < a.burst_seconds * 0.5:
                st = os.statvfs(mnt)
                if st.f_bavail == 0 and not any(e[1] == "full" for e in events):
                    events.append((round(time.monotonic() - t0, 2), "full"))
                time.sleep(0.05)
            if not any(e[1] == "full" for e in events):
                self.notes.append("the tmpfs never filled up: raise --rate-lines or --burst-seconds")
            # room comes back (as when an operator frees space): grow the tmpfs in place
            subprocess.run(["mount", "-o", "remount,size=256m", mnt], check=True)
            events.append((round(time.monotonic() - t0, 2), "room made (tmpfs grown to 256 MiB)"))
        else:
            time.sleep(a.burst_seconds * 0.25)
            dev = subprocess.run(["findmnt", "-no", "SOURCE", mnt], stdout=subprocess.PIPE,
                                 text=True).stdout.strip()
            with open(f"/sys/fs/ext4/{os.path.basename(dev)}/trigger_fs_error", "w") as f:
                f.write("1\n")  # ext4_error → errors=remount-ro
            events.append((round(time.monotonic() - t0, 2), "filesystem error: read-only"))
            time.sleep(a.burst_seconds * 0.25)
            collect(logfile)
            # the disk "comes back": a fresh filesystem at the same place
            subprocess.run(["umount", "-l", mnt], check=True)
            self.mounts.remove(mnt)
            self.mount_tmpfs(mnt, "256m")
            events.append((round(time.monotonic() - t0, 2), "writable filesystem back"))
        # let the burst finish, then the writer flush
        while time.monotonic() - t0 < a.burst_seconds + 1.5:
            time.sleep(0.1)
        try:
            child = dict(zip(*[iter(bl.read(stats).split())] * 2))
        except OSError:
            child = {}
        collect(logfile)
        tend_log = bl.read(os.path.join(self.state_dir(m), "tend.log"))
        self.tend_cmd(m, "down", timeout=60)
        reported = sum(int(x) for x in re.findall(
            r"(\d+) bytes of output could not be written meanwhile", tend_log))
        failing = len(re.findall(r"cannot write .*counting lost output", tend_log))
        on_disk = sum(len(b) for b in saved)
        seen = set()
        bad = 0
        for blob in saved:
            for line in blob.split(b"\n"):
                if not line:
                    continue
                head = line[:12]
                if len(line) == 99 and head.isdigit():
                    seen.add(int(head))
                else:
                    bad += 1
        written = int(child.get("lines", 0))
        landed = len([x for x in seen if x <= written])
        lost = written - landed
        # writing resumed: the last lines the child wrote are in the file
        tail_ok = written > 0 and all(x in seen for x in range(max(1, written - 100), written + 1))
        rep = {
            "scenario": scenario, "rate_lines_per_s": a.rate_lines, "seconds": a.burst_seconds,
            "events": events,
            "child": {"lines_written": written, "slow_writes_over_100ms": int(child.get("slow_writes", -1)),
                      "max_write_ms": int(child.get("max_write_us", -1)) / 1000,
                      "finished": child.get("done") == "1"},
            "lines_landed": landed, "lines_lost": lost,
            "bytes_written": written * 100, "bytes_on_disk": on_disk,
            "bytes_lost": written * 100 - on_disk,
            "partial_or_garbled_lines": bad,
            "tend_reported_lost_bytes": reported,
            "tend_log_failure_messages": failing,
            "writing_resumed": tail_ok,
            "tend_log_excerpt": [l for l in tend_log.splitlines() if "burst" in l][:6],
        }
        log(f"  child wrote {written} lines, never blocked: "
            f"{rep['child']['slow_writes_over_100ms'] == 0} (slowest write {rep['child']['max_write_ms']:.1f} ms); "
            f"lost {lost} lines, {written * 100 - on_disk} bytes; tend reported {reported} bytes lost; "
            f"{bad} partial lines; writing resumed: {tail_ok}")
        return rep


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenario", choices=["flap", "killloop", "disk"])
    ap.add_argument("--tend", default=os.path.join(REPO, "target", "release", "tend"))
    ap.add_argument("--minutes", type=float, default=10.0, help="flap: how long (10)")
    ap.add_argument("--rate", type=float, default=20.0, help="flap: API requests per second (20)")
    ap.add_argument("--rounds", type=int, default=50, help="killloop: kills per cgroups mode (50)")
    ap.add_argument("--cgroups", default="auto,off", help="killloop: containment modes (auto,off)")
    ap.add_argument("--scenarios", default="full,readonly", help="disk: full,readonly")
    ap.add_argument("--rate-lines", type=int, default=20000, help="disk: lines per second (20000)")
    ap.add_argument("--burst-seconds", type=int, default=16, help="disk: how long the child writes (16)")
    ap.add_argument("--out", help="results file (default bench/results/chaos-<scenario>-<date>.json)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args()
    args.services = 50 if args.scenario == "flap" else 20
    args.families = 5
    if not os.access(args.tend, os.X_OK):
        ap.error(f"no tend binary at {args.tend}: run `cargo build --release` or pass --tend")

    bl.on_signals()
    started = datetime.datetime.now()
    c = Chaos(args)
    info = bl.machine_info(c.tend)
    log(f"{info.get('tend_version')}; load average {info['loadavg_at_start']}; scratch {c.scratch}")
    result, error, interrupted = None, None, None
    try:
        result = getattr(c, args.scenario)()
    except (bl.Interrupted, KeyboardInterrupt) as e:
        interrupted = str(e) or "SIGINT"
        log(f"interrupted ({interrupted}); cleaning up")
    except Exception as e:  # noqa: BLE001 - reported; the clean-up still runs
        error = f"{type(e).__name__}: {e}"
        log(f"NOT MEASURED: {error}")
    finally:
        bl.ignore_signals()
        c.cleanup()
    info["loadavg_at_end"] = bl.loadavg()
    report = {"scenario": args.scenario, "started": started.isoformat(timespec="seconds"),
              "finished": datetime.datetime.now().isoformat(timespec="seconds"),
              "command": " ".join(["python3"] + sys.argv), "machine": info,
              "error": error, "interrupted": interrupted, "notes": c.notes, "result": result}
    out = args.out or os.path.join(HERE, "results", f"chaos-{args.scenario}-{started:%Y-%m-%d-%H%M%S}.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    summary = result
    if isinstance(result, dict):
        summary = json.loads(json.dumps(result))
        for v in ([summary] + list(summary.values())):
            if isinstance(v, dict):
                v.pop("per_round", None)
                v.pop("memory_series", None)
    print(json.dumps({"scenario": args.scenario, "load": [info["loadavg_at_start"], info["loadavg_at_end"]],
                      "error": error, "notes": c.notes, "result": summary}, indent=1))
    print(f"raw numbers: {os.path.relpath(out)}")
    if interrupted:
        return 130
    return 2 if error else 0


if __name__ == "__main__":
    sys.exit(main())
