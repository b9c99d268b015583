#!/usr/bin/env python3
"""Side by side (issue 10): tend against supervisord, PM2, s6, runit and Horust, on the same
workloads and the same tiny children, in one run. Python 3 stdlib only; Linux only.

It installs the peers from their ordinary registries into a scratch directory (default
target/compare-peers, reused by later runs): supervisord with pip into a venv, PM2 with npm,
s6 and runit as Debian packages (`apt-get download`, unpacked there, nothing installed into
the system), Horust with `cargo install --locked`. Then, round after round, every workload
runs once per supervisor, in a rotating order (A B C … then B C … A), so a slow minute of the
machine hits every peer alike. Workloads:

  memory   own memory (VmRSS and Pss summed over the supervisor's own processes, children
           excluded) with 10 and 200 sleeping children, and idle CPU over a 10 s window; the
           200-service session also times start → all 200 children running (each child
           stamps its own CLOCK_MONOTONIC start, so nothing polls /proc while they start)
  restart  kill -9 of a child → its replacement's own start stamp, each peer at its fastest;
           once with a child that stamps at its entry point (bench/child/bare.c, no C
           library) and once with the C library child, whose own start-up before main
           (0.3–0.5 ms in a VM) is counted in every peer's figure alike
  logs     a child writes 512 MiB of 100-byte lines (64 KiB writes, then one write per line)
           under each supervisor's log capture, against the child writing to a file itself;
           time from the child's start until every byte is on disk, checked by sha256
  status   wall time of each peer's "status of everything" command with 10 services
  scale    tend alone with 1 000, 5 000 and 10 000 services: memory, idle CPU, status; the
           largest once more with resource sampling off (sample_every = "0s")

It prints a table of medians and ratios (tend / peer) and writes every raw number to
bench/results/compare-<date>-<time>.json. It measures and reports; it never fails because a
target was missed: exit 0 when everything was measured, 2 when a workload or a peer could not
be, 130 when interrupted. Every process it starts is stopped at the end (also on Ctrl-C).

    cargo build --release
    python3 bench/compare.py                 # everything, 3 rounds (about 35 min on 2 cores)
    python3 bench/compare.py --quick         # 1 round, 64 MiB of logs, scale 1 000 (~8 min)
    python3 bench/compare.py --install-only  # only install the peers
    python3 bench/compare.py --peers runit,s6 --only restart,status
"""

import argparse
import datetime
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

HERE = bl.HERE
REPO = bl.REPO
WORKLOADS = ["memory", "restart", "logs", "status", "scale"]
PEERS = ["supervisord", "pm2", "s6", "runit", "horust"]

# What the script installs (pinned, so reruns compare like with like; the peer figures in
# ../shared/bench-peers were taken with these versions).
PIP_SUPERVISOR = "supervisor==4.3.0"
NPM_PM2 = "pm2@7.0.4"
CARGO_HORUST = ["horust@0.1.14", "horustctl@0.1.14"]
DEBS = ["s6", "libs6-2.11", "libskarnet2.13", "libexecline2.9", "execline", "runit"]

TARGETS = [
    # key, description, op, value
    ("rss_200", "own memory, 200 services", "<=", 5.0, "MiB"),
    ("start_200", "200 services running after start", "<=", 100.0, "ms"),
    ("restart", "restart latency after kill -9, median", "<=", 1.0, "ms"),
    ("logs_chunk", "log throughput, 64 KiB writes, of direct", ">=", 95.0, "%"),
    ("logs_line", "log throughput, line by line, of direct", ">=", 90.0, "%"),
    ("status", "status command, 10 services", "<=", 1.5, "ms"),
    ("cpu_10000", "idle CPU with 10 000 processes", "<", 1.0, "% of a core"),
]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def size(text):
    t = text.strip().lower()
    for unit, mult in (("kib", 1024), ("mib", 1024 ** 2), ("gib", 1024 ** 3)):
        if t.endswith(unit):
            return int(float(t[: -len(unit)]) * mult)
    return int(t)


def toml_str(s):
    return json.dumps(s)


def stamps(path):
    """[(ns, pid)] from a stamp file the children append to."""
    try:
        with open(path) as f:
            out = []
            for line in f:
                parts = line.split()
                if len(parts) >= 2:
                    out.append((int(parts[0]), int(parts[1])))
            return out
    except (OSError, ValueError):
        return []


def count_lines(path):
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except OSError:
        return 0


# ---------------------------------------------------------------------------------------------
# services and peers


class Service:
    """One supervised program. restart: restart at once whenever it ends (False: run once).
    logs: capture its stdout with the peer's ordinary mechanism into files (else the peer's
    default handling). notify: s6 only, report readiness (s6's fast-restart path)."""

    def __init__(self, name, argv, restart=True, logs=False, notify=False):
        self.name, self.argv, self.restart, self.logs, self.notify = name, argv, restart, logs, notify

    def sh(self):
        return " ".join("'" + a.replace("'", "'\\''") + "'" for a in self.argv)


class Peer:
    name = "?"
    config = ""        # how it is configured, for the report
    restart_floor = ""  # the minimum it enforces between a death and the restart

    def __init__(self, h, run_dir):
        self.h = h
        self.dir = run_dir
        os.makedirs(run_dir, exist_ok=True)
        self.proc = None
        self.services = []
        self._out = None

    # what every peer has
    def env(self):
        return self.h.env()

    def missing(self):
        """None when installed, else why not."""
        return None

    def spawn(self, argv, cwd=None, env=None):
        self._out = open(os.path.join(self.dir, "supervisor.out"), "ab")
        self.proc = subprocess.Popen(argv, cwd=cwd or self.dir, env=env or self.env(),
                                     stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def roots(self):
        if self.proc is not None and self.proc.poll() is None:
            return [self.proc.pid]
        return []

    def stop_proc(self, sig=signal.SIGTERM, timeout=60):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
            except OSError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._out:
            self._out.close()
            self._out = None

    def stop(self):
        self.stop_proc()

    def logdir(self):
        d = os.path.join(self.dir, "logs")
        os.makedirs(d, exist_ok=True)
        return d

    # per peer
    def version(self):
        raise NotImplementedError

    def configure(self, services):
        raise NotImplementedError

    def launch(self):
        raise NotImplementedError

    def status_argvs(self):
        raise NotImplementedError

    def log_files(self, svc):
        raise NotImplementedError


class Tend(Peer):
    name = "tend"
    config = ("`tend up -d`; every service: backoff 0s, max_restarts 100000; defaults otherwise "
              "(cgroups auto, history on, resource sampling every 2 s); logs: default capture, "
              "max_size 64MiB (512 MiB rotates 8 times)")
    restart_floor = "none: backoff = { initial = \"0s\" } restarts at once"

    @property
    def manifest(self):
        return os.path.join(self.dir, "tend.toml")

    def version(self):
        return subprocess.run([self.h.tend, "--version"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True).stdout.strip()

    daemon_settings = {}  # [tend] keys, e.g. {"sample_every": "0s"}

    def configure(self, services):
        self.services = services
        lines = []
        if self.daemon_settings:
            lines.append("[tend]")
            lines += [f"{k} = {toml_str(v)}" for k, v in self.daemon_settings.items()]
            lines.append("")
        for s in services:
            lines += [f"[services.{s.name}]",
                      "args = [" + ", ".join(toml_str(a) for a in s.argv) + "]",
                      f'restart = "{"always" if s.restart else "never"}"',
                      'backoff = { initial = "0s", max = "0s" }',
                      "max_restarts = 100000", 'restart_window = "60s"']
            if s.logs:
                lines.append('logs = { max_size = "64MiB", backups = 1000 }')
            lines.append("")
        with open(self.manifest, "w") as f:
            f.write("\n".join(lines))

    def launch(self):
        # `up -d` returns once everything runs; the clock stops on the children's stamps.
        self.spawn([self.h.tend, "-c", self.manifest, "up", "-d"])

    def daemon(self):
        try:
            pid = int(bl.read(os.path.join(self.dir, ".tend", "tend.pid")).split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if bl.alive(pid) else None

    def roots(self):
        d = self.daemon()
        return [d] if d else []

    def status_argvs(self):
        return [[self.h.tend, "status"]]  # run in the manifest's directory, as a user would

    def log_files(self, svc):
        d = os.path.join(self.dir, ".tend", "logs")
        base = f"{svc.name}.out.log"
        rotated = []
        try:
            for n in os.listdir(d):
                if n.startswith(base + ".") and n[len(base) + 1:].isdigit():
                    rotated.append((int(n[len(base) + 1:]), os.path.join(d, n)))
        except OSError:
            return []
        rotated.sort(key=lambda x: -x[0])  # highest number is the oldest
        return [p for _, p in rotated] + [os.path.join(d, base)]

    def stop(self):
        if self.proc is not None:
            try:
                self.proc.wait(timeout=120)  # the `up -d` client
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.daemon():
            subprocess.run([self.h.tend, "-c", self.manifest, "down"], env=self.env(),
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=1800)
        if self._out:
            self._out.close()
            self._out = None


class Supervisord(Peer):
    name = "supervisord"
    config = ("foreground (nodaemon); autorestart=true, startsecs=0, startretries=1000000; "
              "stdout AUTO (logs: stdout_logfile, maxbytes=0)")
    restart_floor = ("~1 s, not configurable: the main loop polls with a hard-coded 1 s timeout "
                     "and respawns on the pass after the one that reaped the child")

    @property
    def bin(self):
        return os.path.join(self.h.peers, "venv", "bin")

    def missing(self):
        return None if os.path.exists(os.path.join(self.bin, "supervisord")) else "not installed"

    def version(self):
        v = subprocess.run([os.path.join(self.bin, "supervisord"), "--version"],
                           stdout=subprocess.PIPE, text=True).stdout.strip()
        return f"supervisord {v}"

    @property
    def conf(self):
        return os.path.join(self.dir, "supervisord.conf")

    def configure(self, services):
        self.services = services
        d = self.dir
        os.makedirs(os.path.join(d, "childlogs"), exist_ok=True)
        lines = ["[unix_http_server]", f"file={d}/supervisor.sock", "",
                 "[supervisord]", "nodaemon=true", f"logfile={d}/supervisord.log",
                 f"pidfile={d}/supervisord.pid", f"childlogdir={d}/childlogs",
                 "minfds=4096", "loglevel=warn", "",
                 "[rpcinterface:supervisor]",
                 "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
                 "", "[supervisorctl]", f"serverurl=unix://{d}/supervisor.sock", ""]
        for s in services:
            lines += [f"[program:{s.name}]", "command=" + " ".join(s.argv), "autostart=true",
                      "startsecs=0", "startretries=1000000",
                      f"autorestart={'true' if s.restart else 'false'}", "stopwaitsecs=5"]
            if s.logs:
                lines += [f"stdout_logfile={self.logdir()}/{s.name}.log",
                          "stdout_logfile_maxbytes=0", "stdout_logfile_backups=0"]
            lines.append("")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines))

    def launch(self):
        self.spawn([os.path.join(self.bin, "supervisord"), "-c", self.conf])

    def status_argvs(self):
        return [[os.path.join(self.bin, "supervisorctl"), "-c", self.conf, "status"]]

    def log_files(self, svc):
        return [os.path.join(self.dir, "logs", f"{svc.name}.log")]


class Pm2(Peer):
    name = "pm2"
    config = ("daemon (God) started by `pm2 start ecosystem.config.js`, private PM2_HOME; "
              "interpreter none, fork mode, autorestart, restart_delay 0, max_restarts 1000000; "
              "logs in PM2_HOME/logs (logs: out_file)")
    restart_floor = ("none with restart_delay 0 (a child that lives < min_uptime, 1 s by default, "
                     "counts as unstable and 16 of those stop it)")

    @property
    def pm2(self):
        return os.path.join(self.h.peers, "npm", "node_modules", ".bin", "pm2")

    def missing(self):
        return None if os.path.exists(self.pm2) else "not installed"

    def env(self):
        e = super().env()
        e["PM2_HOME"] = os.path.join(self.dir, "pm2home")  # never ~/.pm2
        e["PM2_DISABLE_UPDATE_CHECK"] = "true"
        return e

    def version(self):
        # never `pm2 --version`: any pm2 command starts a daemon
        pkg = os.path.join(self.h.peers, "npm", "node_modules", "pm2", "package.json")
        node = subprocess.run(["node", "--version"], stdout=subprocess.PIPE, text=True).stdout.strip()
        return f"pm2 {json.load(open(pkg))['version']} (node {node})"

    def configure(self, services):
        self.services = services
        apps = []
        for s in services:
            a = {"name": s.name, "script": s.argv[0], "args": s.argv[1:], "interpreter": "none",
                 "exec_mode": "fork", "autorestart": bool(s.restart), "restart_delay": 0,
                 "max_restarts": 1000000, "watch": False}
            if s.logs:
                a["out_file"] = os.path.join(self.logdir(), f"{s.name}.log")
                a["error_file"] = os.path.join(self.logdir(), f"{s.name}.err")
            apps.append(a)
        with open(os.path.join(self.dir, "ecosystem.config.js"), "w") as f:
            f.write("module.exports = " + json.dumps({"apps": apps}, indent=1) + ";\n")

    def launch(self):
        self.spawn([self.pm2, "start", os.path.join(self.dir, "ecosystem.config.js")])

    def daemon(self):
        try:
            pid = int(bl.read(os.path.join(self.dir, "pm2home", "pm2.pid")).strip())
        except (OSError, ValueError):
            return None
        return pid if bl.alive(pid) else None

    def roots(self):
        d = self.daemon()
        return [d] if d else []

    def status_argvs(self):
        return [[self.pm2, "jlist"]]

    def log_files(self, svc):
        return [os.path.join(self.dir, "logs", f"{svc.name}.log")]

    def stop(self):
        if self.proc is not None:
            try:
                self.proc.wait(timeout=120)  # the `pm2 start` client
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.daemon() or os.path.exists(os.path.join(self.dir, "pm2home")):
            subprocess.run([self.pm2, "kill"], env=self.env(), stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        if self._out:
            self._out.close()
            self._out = None


class Debian(Peer):
    """s6 and runit: binaries unpacked from the Debian packages into the scratch directory."""

    @property
    def root(self):
        return os.path.join(self.h.peers, "deb", "root")

    @property
    def bin(self):
        return os.path.join(self.root, "usr", "bin")

    def env(self):
        e = super().env()
        e["PATH"] = self.bin + os.pathsep + e["PATH"]
        e["LD_LIBRARY_PATH"] = os.path.join(self.root, "usr", "lib", "x86_64-linux-gnu")
        return e

    def deb_version(self, package):
        return self.h.deb_versions().get(package, "?")

    def run_script(self, path, body):
        with open(path, "w") as f:
            f.write("#!/bin/sh\n" + body)
        os.chmod(path, 0o755)


class S6(Debian):
    name = "s6"
    config = ("s6-svscan in the foreground on a private scan directory; /bin/sh run scripts that "
              "exec the child; restart workload: notification-fd 3, readiness reported by the run "
              "script just before exec; logs: a log/ service running s6-log n20 s268435455")
    restart_floor = ("1 s unless the service had been ready (notification-fd) for more than 1 s; "
                     "measured with readiness notification, its fast path")

    def missing(self):
        if os.path.exists("/usr/bin/s6-supervise"):
            return None  # s6 installed in the system: used as it is
        if not os.path.exists(os.path.join(self.bin, "s6-svscan")):
            return "not installed"
        if os.geteuid() != 0:
            return ("s6-svscan runs /usr/bin/s6-supervise by absolute path: needs root (a private "
                    "mount namespace) or s6 installed in the system")
        return None

    def version(self):
        return f"s6 {self.deb_version('s6')} (Debian)"

    @property
    def scan(self):
        return os.path.join(self.dir, "scan")

    def configure(self, services):
        self.services = services
        os.makedirs(self.scan, exist_ok=True)
        for s in services:
            d = os.path.join(self.scan, s.name)
            os.makedirs(d)
            pre = "" if s.restart else "s6-svc -O .\n"
            if s.notify:
                with open(os.path.join(d, "notification-fd"), "w") as f:
                    f.write("3\n")
                pre += "echo >&3\nexec 3>&-\n"
            self.run_script(os.path.join(d, "run"), f"{pre}exec {s.sh()}\n")
            if s.logs:
                os.makedirs(os.path.join(d, "log"))
                self.run_script(os.path.join(d, "log", "run"),
                                f"exec s6-log n20 s268435455 {self.logdir()}/{s.name}\n")

    def launch(self):
        if os.path.exists("/usr/bin/s6-supervise"):
            self.spawn(["s6-svscan", self.scan])
        else:
            # s6-svscan execs /usr/bin/s6-supervise: in a private mount namespace, lay the
            # unpacked binaries over /usr/bin (s6-svscan then replaces unshare and sh: no
            # extra process).
            overlay = f"lowerdir={self.bin}:/usr/bin"
            self.spawn(["unshare", "-m", "--propagation", "private", "sh", "-c",
                        f"mount -t overlay overlay -o {overlay} /usr/bin && exec s6-svscan {self.scan}"])

    def status_argvs(self):
        # s6-svstat answers for one service directory per call
        return [[os.path.join(self.bin, "s6-svstat"), os.path.join(self.scan, s.name)]
                for s in self.services]

    def log_files(self, svc):
        d = os.path.join(self.dir, "logs", svc.name)
        try:
            archives = sorted(os.path.join(d, n) for n in os.listdir(d) if n.startswith("@"))
        except OSError:
            archives = []
        return archives + [os.path.join(d, "previous"), os.path.join(d, "current")]

    def stop(self):
        self.stop_proc(signal.SIGTERM, timeout=60)  # SIGTERM: stop every service, then exit


class Runit(Debian):
    name = "runit"
    config = ("runsvdir in the foreground (not PID 1) on a private service directory; /bin/sh run "
              "scripts that exec the child; logs: a log/ service running svlogd (s0: no rotation)")
    restart_floor = "none, except 1 s when the previous start was less than 1 s ago"

    def missing(self):
        return None if os.path.exists(os.path.join(self.bin, "runsvdir")) else "not installed"

    def version(self):
        return f"runit {self.deb_version('runit')} (Debian)"

    @property
    def svdir(self):
        return os.path.join(self.dir, "service")

    def configure(self, services):
        self.services = services
        os.makedirs(self.svdir, exist_ok=True)
        for s in services:
            d = os.path.join(self.svdir, s.name)
            os.makedirs(d)
            pre = "" if s.restart else 'sv once "$PWD" >/dev/null\n'
            self.run_script(os.path.join(d, "run"), f"{pre}exec {s.sh()}\n")
            if s.logs:
                ld = os.path.join(self.logdir(), s.name)
                os.makedirs(ld)
                with open(os.path.join(ld, "config"), "w") as f:
                    f.write("s0\n")
                os.makedirs(os.path.join(d, "log"))
                self.run_script(os.path.join(d, "log", "run"), f"exec svlogd {ld}\n")

    def launch(self):
        self.spawn([os.path.join(self.bin, "runsvdir"), self.svdir])

    def status_argvs(self):
        return [[os.path.join(self.bin, "sv"), "status"]
                + [os.path.join(self.svdir, s.name) for s in self.services]]

    def log_files(self, svc):
        d = os.path.join(self.dir, "logs", svc.name)
        try:
            archives = sorted(os.path.join(d, n) for n in os.listdir(d) if n.startswith("@"))
        except OSError:
            archives = []
        return archives + [os.path.join(d, "current")]

    def stop(self):
        dirs = [os.path.join(self.svdir, s.name) for s in self.services]
        try:
            subprocess.run([os.path.join(self.bin, "sv"), "-w", "10", "exit"] + dirs, env=self.env(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=180)
        except subprocess.TimeoutExpired:
            pass
        self.stop_proc(signal.SIGHUP, timeout=30)  # HUP: runsvdir TERMs each runsv and exits


class Horust(Peer):
    name = "horust"
    config = ("foreground; one service file each; restart strategy always, backoff 0s, attempts 0; "
              "logs: stdout = FILE (horust opens the file onto the child's stdout: not in the path)")
    restart_floor = ("~0.3–1 s, not configurable: the supervisor loop sleeps 300 ms per pass and "
                     "the spawner ticks every 100 ms, even with backoff 0s")

    @property
    def bin(self):
        return os.path.join(self.h.peers, "cargo", "bin")

    def missing(self):
        return None if os.path.exists(os.path.join(self.bin, "horust")) else "not installed"

    def version(self):
        out = subprocess.run(["cargo", "install", "--list", "--root", os.path.join(self.h.peers, "cargo")],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
        return "; ".join(l.rstrip(":") for l in out.splitlines() if l and not l.startswith(" ")) or "horust ?"

    def configure(self, services):
        self.services = services
        sdir = os.path.join(self.dir, "services")
        os.makedirs(sdir, exist_ok=True)
        os.makedirs(os.path.join(self.dir, "uds"), exist_ok=True)
        with open(os.path.join(self.dir, "horust.toml"), "w") as f:
            f.write("unsuccessful_exit_finished_failed = false\n")
        for s in services:
            t = [f"command = {toml_str(' '.join(s.argv))}"]
            if s.logs:
                t.append(f"stdout = {toml_str(os.path.join(self.logdir(), s.name + '.log'))}")
            t += ["[restart]", f'strategy = "{"always" if s.restart else "never"}"',
                  'backoff = "0s"', "attempts = 0", ""]
            with open(os.path.join(sdir, f"{s.name}.toml"), "w") as f:
                f.write("\n".join(t))

    def launch(self):
        self.spawn([os.path.join(self.bin, "horust"),
                    "--config-path", os.path.join(self.dir, "horust.toml"),
                    "--services-path", os.path.join(self.dir, "services"),
                    "--uds-folder-path", os.path.join(self.dir, "uds")])

    def status_argvs(self):
        # horustctl answers for one named service per call
        return [[os.path.join(self.bin, "horustctl"), "--uds-folder-path",
                 os.path.join(self.dir, "uds"), "status", f"{s.name}.toml"] for s in self.services]

    def log_files(self, svc):
        return [os.path.join(self.dir, "logs", f"{svc.name}.log")]


PEER_CLASSES = {c.name: c for c in (Tend, Supervisord, Pm2, S6, Runit, Horust)}


# ---------------------------------------------------------------------------------------------
# installing the peers


def install(peers_dir, wanted):
    """Install what is missing into peers_dir; returns {peer: error} for what failed."""
    os.makedirs(peers_dir, exist_ok=True)
    errors = {}

    def run(argv, what, cwd=None):
        log(f"install {what}: {' '.join(argv)}")
        with open(os.path.join(peers_dir, "install.log"), "ab") as out:
            r = subprocess.run(argv, cwd=cwd or peers_dir, stdout=out, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise RuntimeError(f"{argv[0]} exited {r.returncode} (see {peers_dir}/install.log)")

    if "supervisord" in wanted and not os.path.exists(os.path.join(peers_dir, "venv", "bin", "supervisord")):
        try:
            run([sys.executable, "-m", "venv", os.path.join(peers_dir, "venv")], "supervisord")
            run([os.path.join(peers_dir, "venv", "bin", "pip"), "install", "--quiet", PIP_SUPERVISOR],
                "supervisord")
        except RuntimeError as e:
            errors["supervisord"] = str(e)
    if "pm2" in wanted and not os.path.exists(os.path.join(peers_dir, "npm", "node_modules", ".bin", "pm2")):
        try:
            os.makedirs(os.path.join(peers_dir, "npm"), exist_ok=True)
            run(["npm", "install", "--no-audit", "--no-fund", "--prefix",
                 os.path.join(peers_dir, "npm"), NPM_PM2], "pm2")
        except (RuntimeError, OSError) as e:
            errors["pm2"] = str(e)
    debs = [p for p in ("s6", "runit") if p in wanted]
    deb = os.path.join(peers_dir, "deb")
    if debs and not (os.path.exists(os.path.join(deb, "root", "usr", "bin", "s6-svscan"))
                     and os.path.exists(os.path.join(deb, "root", "usr", "bin", "runsvdir"))):
        try:
            os.makedirs(os.path.join(deb, "pkg"), exist_ok=True)
            # apt-get download fetches the .deb files without installing anything
            run(["apt-get", "download", *DEBS], "s6, runit", cwd=os.path.join(deb, "pkg"))
            for name in sorted(os.listdir(os.path.join(deb, "pkg"))):
                if name.endswith(".deb"):
                    run(["dpkg-deb", "-x", os.path.join(deb, "pkg", name), os.path.join(deb, "root")],
                        name)
        except (RuntimeError, OSError) as e:
            for p in debs:
                errors[p] = str(e)
    if "horust" in wanted and not os.path.exists(os.path.join(peers_dir, "cargo", "bin", "horustctl")):
        try:
            run(["cargo", "install", "--locked", "--root", os.path.join(peers_dir, "cargo"),
                 *CARGO_HORUST], "horust (a few minutes of compiling)")
        except (RuntimeError, OSError) as e:
            errors["horust"] = str(e)
    return errors


# ---------------------------------------------------------------------------------------------
# the harness


def run_blocking(argv, env, cwd, limit_s=60):
    """Run a command to its end and return its exit code, seeing the exit the moment it
    happens: a blocking wait, with SIGALRM as the safety net. subprocess's own `timeout`
    polls for the exit in sleeps of 0.5 ms, then 1, 2, 4 ms, which added about a
    millisecond to every timed command (and nothing to an untimed /bin/true beside it)."""
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)

    def overdue(_signum, _frame):
        proc.kill()

    previous = signal.signal(signal.SIGALRM, overdue)
    signal.alarm(limit_s)
    try:
        return proc.wait()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


class Harness:
    def __init__(self, args):
        self.args = args
        self.peers = os.path.abspath(args.peers_dir)
        self.marker = "TEND_COMPARE_MARK=" + os.urandom(6).hex()
        self.scratch = tempfile.mkdtemp(prefix="tend-compare-")
        os.makedirs(os.path.join(self.scratch, "bin"))
        self.tend = os.path.join(self.scratch, "bin", "tend")  # a private copy: rebuilds can't swap it
        shutil.copy2(os.path.abspath(args.tend), self.tend)
        self.child = os.path.join(self.scratch, "bin", "child")
        self.flood = os.path.join(self.scratch, "bin", "flood")
        bl.build_c(os.path.join(HERE, "child", "child.c"), self.child)
        bl.build_c(os.path.join(HERE, "child", "flood.c"), self.flood)
        # The restart probe without a C library: None where it cannot be built (another
        # architecture, no static linking); the restart workload then says so.
        self.bare = bl.build_bare(os.path.join(HERE, "child", "bare.c"),
                                  os.path.join(self.scratch, "bin", "bare"))
        self.child_exes = {self.child, self.flood} | ({self.bare} if self.bare else set())
        self.sweeper = bl.Sweeper(self.marker, [self.scratch, self.peers])
        self.counter = 0
        self.notes = []
        self._debs = None

    def env(self):
        e = dict(os.environ)
        e.pop("TEND_SOCKET", None)
        key, value = self.marker.split("=", 1)
        e[key] = value
        e["NO_COLOR"] = "1"
        return e

    def deb_versions(self):
        if self._debs is None:
            self._debs = {}
            pkg = os.path.join(self.peers, "deb", "pkg")
            for name in os.listdir(pkg) if os.path.isdir(pkg) else []:
                if name.endswith(".deb"):
                    r = subprocess.run(["dpkg-deb", "-f", os.path.join(pkg, name), "Package", "Version"],
                                       stdout=subprocess.PIPE, text=True)
                    fields = dict(l.split(": ", 1) for l in r.stdout.splitlines() if ": " in l)
                    self._debs[fields.get("Package")] = fields.get("Version")
        return self._debs

    def peer(self, name, label):
        self.counter += 1
        d = os.path.join(self.scratch, f"{self.counter:04d}-{name}-{label}")
        return PEER_CLASSES[name](self, d)

    def run_session(self, name, label, services, body, settings=None):
        """Configure, launch, run body(peer, t_launch_ns), stop; always stops and sweeps."""
        p = self.peer(name, label)
        if settings:
            p.daemon_settings = settings
        p.configure(services)
        try:
            t0 = time.monotonic_ns()
            p.launch()
            return body(p, t0)
        finally:
            try:
                p.stop()
            except Exception as e:  # noqa: BLE001 - a failed stop is noted, the sweep follows
                self.notes.append(f"{name} {label}: stop failed: {e}")
            # a peer may take a while to wind 200 services down: give it 20 s before the sweep
            deadline = time.monotonic() + 20
            while self.sweeper.ours() and time.monotonic() < deadline:
                time.sleep(0.1)
            left = self.sweeper.sweep(grace=5)
            if left:
                self.notes.append(f"{name} {label}: left {left[0]} after its stop; killed")
                log(f"  note: {name} left {left[0]} after its stop; killed")
            shutil.rmtree(p.dir, ignore_errors=True)

    def wait_stamps(self, path, n, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if count_lines(path) >= n:
                return stamps(path)
            time.sleep(0.01)
        got = count_lines(path)
        raise RuntimeError(f"only {got} of {n} children started within {timeout:.0f} s")

    def guard(self, fn, *a, rec):
        """One session: its record, or `rec` with the error (the workload goes on)."""
        try:
            return fn(*a)
        except (bl.Interrupted, KeyboardInterrupt):
            raise
        except Exception as e:  # noqa: BLE001 - recorded in the results and the table
            log(f"  FAILED: {type(e).__name__}: {e}")
            return dict(rec, error=f"{type(e).__name__}: {e}")

    def order(self, peers, rnd):
        k = rnd % len(peers)
        return peers[k:] + peers[:k]

    def cleanup(self):
        left = self.sweeper.sweep(grace=5)
        if left:
            self.notes.append(f"final sweep killed {left[0]}")
        if self.args.keep:
            log(f"scratch kept: {self.scratch}")
        else:
            shutil.rmtree(self.scratch, ignore_errors=True)

    # -- workloads --------------------------------------------------------------------------

    def w_memory(self, peers, rounds):
        out = []
        for r in range(rounds):
            for name in self.order(peers, r):
                for n in (10, 200):
                    log(f"memory: {name}, {n} services, round {r + 1}/{rounds}")
                    out.append(self.guard(self.memory_once, name, n, r,
                                          rec={"peer": name, "services": n, "round": r + 1}))
        return out

    def memory_once(self, name, n, rnd):
        stamp_file = os.path.join(self.scratch, f"stamps-{name}-{n}-{rnd}")
        services = [Service(f"s{i:03d}", [self.child, "stamp", stamp_file]) for i in range(n)]

        def body(p, t0):
            rec = {"peer": name, "services": n, "round": rnd + 1}
            st = self.wait_stamps(stamp_file, n, timeout=120)[:n]
            times = sorted(ns for ns, _ in st)
            rec["first_child_ms"] = (times[0] - t0) / 1e6
            rec["all_children_ms"] = (times[-1] - t0) / 1e6
            time.sleep(self.args.settle)
            procs = bl.own_processes(p.roots(), self.child_exes)
            if not procs:
                raise RuntimeError(f"{name}: no supervisor process found")
            rec.update(bl.footprint(procs))
            rec["children_alive"] = sum(1 for _, pid in st if bl.alive(pid))
            rec["cpu"] = bl.cpu_window(procs, self.args.window)
            rec["restarts_during"] = count_lines(stamp_file) - n
            log(f"  RSS {rec['rss_kib'] / 1024:.1f} MiB, PSS {rec['pss_kib'] / 1024:.1f} MiB in "
                f"{rec['procs']} processes; {n} running after {rec['all_children_ms']:.0f} ms; "
                f"idle CPU {rec['cpu']['sched_pct']:.3f} %")
            return rec

        try:
            return self.run_session(name, f"mem{n}", services, body)
        finally:
            _unlink(stamp_file)

    def w_restart(self, peers, rounds, kills, children):
        out = []
        rng = random.Random(10)
        exes = {"bare": self.bare, "libc": self.child}
        for kind in children:
            if not exes.get(kind):
                self.notes.append(f"restart: no {kind} child here (bench/child/bare.c builds on "
                                  "x86-64 and aarch64 Linux with static linking); not measured")
                log(f"restart: skipping the {kind} child: it could not be built")
        children = [kind for kind in children if exes.get(kind)]
        for r in range(rounds):
            for name in self.order(peers, r):
                for kind in children:
                    log(f"restart: {name}, {kind} child, {kills} kills, round {r + 1}/{rounds}")
                    out.append(self.guard(self.restart_once, name, r, kills, rng, kind, exes[kind],
                                          rec={"peer": name, "round": r + 1, "child": kind}))
        return out

    def restart_once(self, name, rnd, kills, rng, kind, exe):
        stamp_file = os.path.join(self.scratch, f"restart-{name}-{kind}-{rnd}")
        services = [Service("probe", [exe, "stamp", stamp_file], notify=(name == "s6"))]

        def body(p, t0):
            self.wait_stamps(stamp_file, 1, timeout=60)
            lat, missed = [], 0
            for k in range(kills):
                st = stamps(stamp_file)
                born, victim = st[-1]
                # Let it be up 1.5 s + U(0, 1 s): past runit's and s6's 1 s throttles, and not
                # at a fixed phase of a peer that polls.
                wait = born / 1e9 + 1.5 + rng.uniform(0, 1.0) - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                if bl.exe_of(victim) != exe:
                    raise RuntimeError(f"pid {victim} from the last stamp is not the probe child")
                t_kill = time.monotonic_ns()
                os.kill(victim, signal.SIGKILL)
                deadline = time.monotonic() + 20
                new = None
                # The replacement's stamp carries its own time, so the harness need not watch
                # for it: it sleeps through the first 10 ms, off both CPUs while the victim
                # dies and the supervisor restarts it, and looks every 10 ms after that.
                while time.monotonic() < deadline:
                    time.sleep(0.010)
                    got = stamps(stamp_file)
                    if len(got) > len(st):
                        new = got[len(st)]
                        break
                if new is None:
                    missed += 1
                    log(f"  kill {k + 1}: no restart within 20 s")
                    break
                lat.append((new[0] - t_kill) / 1e6)
            s = bl.summary(lat)
            if s:
                log(f"  median {s['median']:.2f} ms (min {s['min']:.2f}, max {s['max']:.2f})")
            return {"peer": name, "round": rnd + 1, "child": kind, "kills": kills,
                    "missed": missed, "latency_ms": lat}

        try:
            return self.run_session(name, "restart", services, body)
        finally:
            _unlink(stamp_file)

    def w_logs(self, peers, rounds, nbytes, modes):
        out = []
        # Untimed: the first writes into a fresh VM's page cache run several times slower
        # (first touch of the host's memory), which would penalise whoever runs first.
        warm = os.path.join(self.scratch, "warm.out")
        with open(warm, "wb") as f:
            subprocess.run([self.flood, str(nbytes), "chunk"], stdout=f, check=True)
        _unlink(warm)
        for mode in modes:
            for r in range(rounds):
                for name in self.order(["direct"] + peers, r):
                    log(f"logs: {name}, {mode}, {nbytes / bl.MIB:.0f} MiB, round {r + 1}/{rounds}")
                    out.append(self.guard(self.logs_once, name, mode, r, nbytes,
                                          rec={"peer": name, "mode": mode, "round": r + 1}))
        return out

    def logs_once(self, name, mode, rnd, nbytes):
        stamp_file = os.path.join(self.scratch, f"flood-{name}-{mode}-{rnd}")
        argv = [self.flood, str(nbytes), mode, stamp_file]
        rec = {"peer": name, "mode": mode, "round": rnd + 1, "bytes": nbytes}
        os.sync()
        time.sleep(0.5)

        def wait_bytes(files_fn, pid_fn):
            """Until the files hold nbytes (or nothing moves for 10 s)."""
            last, last_change = -1, time.monotonic()
            peak_rss = 0
            while True:
                total = 0
                for f in files_fn():
                    try:
                        total += os.stat(f).st_size
                    except OSError:
                        pass
                now = time.monotonic_ns()
                if total >= nbytes:
                    return now, total, peak_rss
                if total != last:
                    last, last_change = total, time.monotonic()
                elif time.monotonic() - last_change > 10:
                    return None, total, peak_rss
                peak_rss = max(peak_rss, sum(bl.status_kib(pid, "VmRSS") for pid in pid_fn()))
                time.sleep(0.005)

        def finish(t_end, total, files):
            st = stamps(stamp_file)
            if not st:
                raise RuntimeError("the flood child never started")
            t_start = st[0][0]
            rec["bytes_on_disk"] = total
            rec["files"] = len([f for f in files if os.path.exists(f)])
            if t_end is None:
                rec["error"] = f"stalled at {total} of {nbytes} bytes"
                return rec
            rec["seconds"] = (t_end - t_start) / 1e9
            rec["mib_s"] = nbytes / bl.MIB / rec["seconds"]
            h = hashlib.sha256()
            for f in files:
                try:
                    with open(f, "rb") as fh:
                        while True:
                            b = fh.read(1 << 20)
                            if not b:
                                break
                            h.update(b)
                except OSError:
                    pass
            rec["sha256"] = h.hexdigest()
            log(f"  {rec['mib_s']:.0f} MiB/s in {rec['seconds']:.2f} s, {rec['files']} file(s)")
            return rec

        try:
            if name == "direct":
                target = os.path.join(self.scratch, "direct.out")
                with open(target, "wb") as f:
                    proc = subprocess.Popen(argv, stdout=f, stdin=subprocess.DEVNULL, env=self.env())
                    t_end, total, _ = wait_bytes(lambda: [target], lambda: [])
                    proc.wait()
                r = finish(t_end, total, [target])
                _unlink(target)
                return r
            svc = Service("flood", argv, restart=False, logs=True)

            def body(p, t0):
                self.wait_stamps(stamp_file, 1, timeout=60)
                own = bl.own_processes(p.roots(), self.child_exes)  # with its log processes
                t_end, total, peak = wait_bytes(lambda: p.log_files(svc), lambda: own)
                # let a logger finish a rotation in progress before the files are read
                time.sleep(0.3)
                rec["peak_rss_kib"] = peak
                return finish(t_end, total, p.log_files(svc))

            return self.run_session(name, f"logs-{mode}", [svc], body)
        finally:
            _unlink(stamp_file)

    def w_status(self, peers, rounds, calls):
        out = []
        for r in range(rounds):
            for name in self.order(peers, r):
                log(f"status: {name}, round {r + 1}/{rounds}")
                out.append(self.guard(self.status_once, name, r, calls,
                                      rec={"peer": name, "round": r + 1}))
        return out

    def time_calls(self, argvs, calls, env, cwd, baseline=None):
        """Wall time of running argvs one after the other, `calls` times (after 3 untimed
        runs). With baseline, each timed run is preceded by one timed /bin/true, spawned the
        same way, so the cost of creating a process is measured under the same load."""
        for _ in range(3):  # warm the page cache
            for a in argvs:
                subprocess.run(a, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times, failures = [], 0
        for _ in range(calls):
            if baseline is not None:
                t0 = time.perf_counter_ns()
                run_blocking(["/bin/true"], env, cwd)
                baseline.append((time.perf_counter_ns() - t0) / 1e6)
            t0 = time.perf_counter_ns()
            for a in argvs:
                failures += run_blocking(a, env, cwd) != 0
            times.append((time.perf_counter_ns() - t0) / 1e6)
        return times, failures

    def status_once(self, name, rnd, calls):
        stamp_file = os.path.join(self.scratch, f"status-{name}-{rnd}")
        services = [Service(f"s{i:03d}", [self.child, "stamp", stamp_file]) for i in range(10)]
        if name == "horust":
            calls = min(calls, 3)  # ten calls of ~0.3 s each per run

        def body(p, t0):
            self.wait_stamps(stamp_file, 10, timeout=60)
            time.sleep(1)
            argvs = p.status_argvs()
            base = []
            times, failures = self.time_calls(argvs, calls, p.env(), p.dir, baseline=base)
            s = bl.summary(times)
            log(f"  median {s['median']:.2f} ms over {calls} runs of {len(argvs)} command(s)"
                + (f", {failures} failed" if failures else "")
                + f"; /bin/true beside it {bl.median(base):.2f} ms")
            return {"peer": name, "round": rnd + 1, "ms": times, "calls_per_run": len(argvs),
                    "failures": failures, "true_ms": base,
                    "command": " ".join(os.path.basename(a) for a in argvs[0][:3])}

        try:
            return self.run_session(name, "status", services, body)
        finally:
            _unlink(stamp_file)

    def w_scale(self, counts, unsampled):
        out = []
        for n in counts:
            log(f"scale: tend, {n} services")
            out.append(self.guard(self.scale_once, n, rec={"peer": "tend", "services": n}))
        for n in unsampled:
            log(f"scale: tend, {n} services, sample_every = \"0s\"")
            out.append(self.guard(self.scale_once, n, {"sample_every": "0s"},
                                  rec={"peer": "tend", "services": n, "sample_every": "0s"}))
        return out

    def scale_once(self, n, settings=None):
        # tend holds two pipes per instance (stdout and stderr; also with stderr = "null"):
        # raise the open-file limit. Where the hard limit cannot be raised (no
        # CAP_SYS_RESOURCE), the instances past it fail to spawn (EMFILE) and are reported.
        limit = bl.raise_nofile(max(65536, 4 * n + 1024))
        if limit < 2 * n + 64:
            note = (f"scale {n}: the open-file limit is {limit} and cannot be raised here; "
                    f"tend needs two per instance, so not all {n} can run")
            self.notes.append(note)
            log(f"  note: {note}")
        stamp_file = os.path.join(self.scratch, f"scale-{n}")
        services = [Service(f"s{i:05d}", [self.child, "stamp", stamp_file]) for i in range(n)]

        def body(p, t0):
            rec = {"peer": "tend", "services": n, "sample_every": (settings or {}).get("sample_every", "2s"),
                   "nofile_limit": limit}
            # `up -d` returns once every instance runs or has failed
            p.proc.wait(timeout=3600)
            rec["up_returned_ms"] = (time.monotonic_ns() - t0) / 1e6
            rec["up_rc"] = p.proc.returncode
            if p.proc.returncode != 0:
                try:
                    rec["up_output"] = bl.read(os.path.join(p.dir, "supervisor.out"))[-400:]
                except OSError:
                    pass
                log(f"  `tend up -d` exited {p.proc.returncode} after {rec['up_returned_ms'] / 1000:.1f} s: "
                    f"{rec.get('up_output', '').strip()[-200:]}")
            # (`up -d` may also give up waiting first): wait until every instance has either
            # started or gone fatal, or nothing has moved for 60 s
            tend_log = os.path.join(p.dir, ".tend", "tend.log")

            def fatal_lines():
                try:
                    return [l for l in bl.read(tend_log).splitlines() if "-> fatal" in l]
                except OSError:
                    return []

            last, last_change, deadline = -1, time.monotonic(), time.monotonic() + 3600
            while True:
                got, fatal = count_lines(stamp_file), fatal_lines()
                if got >= n or got + len(fatal) >= n:
                    break
                if got != last:
                    last, last_change = got, time.monotonic()
                if time.monotonic() - last_change > 60 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            st = stamps(stamp_file)[:n]
            if not st:
                raise RuntimeError("no child started")
            if len(st) < n:
                rec["short"] = f"{len(st)} of {n} started"
                rec["fatal"] = len(fatal)
                rec["fatal_example"] = fatal[0][:300] if fatal else None
                log(f"  only {len(st)} of {n} started; {len(fatal)} instances fatal: {rec['fatal_example']}")
            rec["children_started"] = len(st)
            rec["all_children_ms"] = (max(ns for ns, _ in st) - t0) / 1e6
            time.sleep(self.args.settle + n / 2000)
            procs = bl.own_processes(p.roots(), self.child_exes)
            rec.update(bl.footprint(procs))
            rec["threads"] = int(bl.status_kib(procs[0], "Threads")) if procs else None
            rec["cpu"] = bl.cpu_window(procs, self.args.window)
            rec["children_alive"] = sum(1 for _, pid in st if bl.alive(pid))
            env = p.env()
            rec["status_one_ms"], _ = self.time_calls([[self.tend, "status", "s00000"]], 20, env, p.dir)
            # the same with the socket named: the CLI then does not read the manifest
            sock_env = dict(env, TEND_SOCKET=os.path.join(p.dir, ".tend", "tend.sock"))
            rec["status_one_socket_ms"], _ = self.time_calls([[self.tend, "status", "s00000"]], 20,
                                                             sock_env, "/")
            rec["status_one_json_ms"], _ = self.time_calls([[self.tend, "status", "--json", "s00000"]],
                                                           20, sock_env, "/")
            rec["status_all_ms"], _ = self.time_calls([[self.tend, "status"]], 5, env, p.dir)
            rec["restarts_during"] = count_lines(stamp_file) - n
            t_down = time.monotonic_ns()
            subprocess.run([self.tend, "-c", p.manifest, "down"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=1800)
            rec["down_ms"] = (time.monotonic_ns() - t_down) / 1e6
            log(f"  RSS {rec['rss_kib'] / 1024:.1f} MiB, PSS {rec['pss_kib'] / 1024:.1f} MiB; "
                f"all running after {rec['all_children_ms']:.0f} ms; idle CPU "
                f"{rec['cpu']['sched_pct']:.3f} %; status (one) "
                f"{bl.median(rec['status_one_ms']):.2f} ms, (all) {bl.median(rec['status_all_ms']):.1f} ms; "
                f"down {rec['down_ms']:.0f} ms")
            return rec

        try:
            return self.run_session("tend", f"scale{n}", services, body, settings)
        finally:
            _unlink(stamp_file)


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


# ---------------------------------------------------------------------------------------------
# the report


def figures(results, peers):
    """{figure key: {peer: median}} plus labels, from the raw records."""
    rows = []  # (key, label, unit, digits, {peer: value}, lower_is_better)

    def per_peer(records, fn):
        out = {}
        for p in peers:
            vals = [v for r in records if r.get("peer") == p for v in fn(r)]
            m = bl.median(vals)
            if m is not None:
                out[p] = m
        return out

    mem = [r for r in results.get("memory", {}).get("data", []) if "error" not in r]
    if mem:
        for n in (10, 200):
            sel = [r for r in mem if r["services"] == n]
            rows.append((f"rss_{n}", f"own memory (RSS sum), {n} services", "MiB", 1,
                         per_peer(sel, lambda r: [r["rss_kib"] / 1024]), True))
            rows.append((f"pss_{n}", f"own memory (PSS sum), {n} services", "MiB", 1,
                         per_peer(sel, lambda r: [r["pss_kib"] / 1024]), True))
        sel = [r for r in mem if r["services"] == 200]
        rows.append(("anon_200", "of which anonymous (RssAnon), 200 services", "MiB", 1,
                     per_peer(sel, lambda r: [r["rss_anon_kib"] / 1024] if "rss_anon_kib" in r else []), True))
        rows.append(("procs_200", "own processes, 200 services", "", 0,
                     per_peer(sel, lambda r: [r["procs"]]), True))
        for n in (10, 200):
            sel = [r for r in mem if r["services"] == n]
            rows.append((f"cpu_{n}", f"idle CPU over {mem[0]['cpu']['window_s']:.0f} s, {n} services",
                         "% core", 3, per_peer(sel, lambda r: [r["cpu"]["sched_pct"]]), True))
        rows.append(("start_200", "start → 200 children running", "ms", 0,
                     per_peer(sel, lambda r: [r["all_children_ms"]]), True))
    restarts = [r for r in results.get("restart", {}).get("data", []) if "error" not in r]

    def p90(r_list, p):
        s = bl.summary([v for r in r_list if r.get("peer") == p for v in r["latency_ms"]])
        return s["p90"] if s else None

    # Records without "child" come from runs before the bare child: the C library one.
    for kind, key, label in (("bare", "restart", "restart after kill -9"),
                             ("libc", "restart_libc", "… with the C library child")):
        rs = [r for r in restarts if r.get("child", "libc") == kind]
        if rs:
            rows.append((key, f"{label}, median", "ms", 2,
                         per_peer(rs, lambda r: r["latency_ms"]), True))
            rows.append((key + "_p90", f"{label}, p90", "ms", 2,
                         {p: p90(rs, p) for p in peers if p90(rs, p) is not None}, True))
    lg = [r for r in results.get("logs", {}).get("data", [])]
    if lg:
        for mode, key, label in (("chunk", "logs_chunk", "64 KiB writes"), ("line", "logs_line", "one write per line")):
            direct = {r["round"]: r for r in lg if r["peer"] == "direct" and r["mode"] == mode and "seconds" in r}
            if not direct:
                continue
            pct = {}
            for p in peers:
                vals = [direct[r["round"]]["seconds"] / r["seconds"] * 100 for r in lg
                        if r["peer"] == p and r["mode"] == mode and "seconds" in r and r["round"] in direct]
                if vals:
                    pct[p] = bl.median(vals)
            rows.append((key, f"log throughput, {label}, % of direct", "%", 0, pct, False))
            rows.append((key + "_mibs", f"log throughput, {label}", "MiB/s", 0,
                         per_peer([r for r in lg if r["mode"] == mode and "mib_s" in r],
                                  lambda r: [r["mib_s"]]) | {"direct": bl.median(
                             [r["mib_s"] for r in direct.values()])}, False))
    stt = [r for r in results.get("status", {}).get("data", []) if "error" not in r]
    if stt:
        rows.append(("status", "status command, 10 services", "ms", 2,
                     per_peer(stt, lambda r: r["ms"]), True))
        rows.append(("status_true", "… /bin/true spawned beside it (baseline)", "ms", 2,
                     per_peer(stt, lambda r: r.get("true_ms", [])), True))
        # The machine's own speed drifts between rounds (a VM's /bin/true took 0.67-0.98 ms
        # within one hour): what the command costs over the process start beside it, round
        # by round, is the figure that drift moves least.
        over = {}
        for p in peers:
            per_round = [bl.median(r["ms"]) - bl.median(r["true_ms"]) for r in stt
                         if r.get("peer") == p and r.get("ms") and r.get("true_ms")]
            if per_round:
                over[p] = bl.median(per_round)
        rows.append(("status_over_true", "… over that /bin/true, median of the rounds", "ms", 2,
                     over, True))
    return rows


def integrity(results):
    """Per peer and mode: did every run keep every byte (same sha256 as the direct write)?"""
    lg = results.get("logs", {}).get("data", [])
    want = {}
    for r in lg:
        if r["peer"] == "direct" and "sha256" in r:
            want.setdefault(r["mode"], r["sha256"])
    out = {}
    for r in lg:
        if r["peer"] == "direct":
            continue
        ok = "sha256" in r and r["sha256"] == want.get(r["mode"])
        key = (r["peer"], r["mode"])
        out[key] = out.get(key, True) and ok
    return out


def render(report, peers):
    results = report["results"]
    rows = figures(results, peers)
    cols = peers
    lines = []
    fmt = lambda v, d: "–" if v is None else f"{v:,.{d}f}"  # noqa: E731
    extra_cols = [c for c in ("direct",) if any(c in r[4] for r in rows)]
    head = "| figure | unit | " + " | ".join(cols + extra_cols) + " |"
    lines += [head, "|---|---|" + "---:|" * (len(cols) + len(extra_cols))]
    for key, label, unit, d, vals, _lower in rows:
        lines.append(f"| {label} | {unit} | " + " | ".join(fmt(vals.get(c), d) for c in cols + extra_cols) + " |")
    lines += ["", "Ratios, tend / peer (below 1 is better for tend, except log throughput where above 1 is):", ""]
    others = [p for p in peers if p != "tend"]
    lines += ["| figure | " + " | ".join(others) + " |", "|---|" + "---:|" * len(others)]
    for key, label, unit, d, vals, _lower in rows:
        if key.endswith("_mibs") or key in ("procs_200", "status_true") or "tend" not in vals:
            continue
        cells = []
        for p in others:
            v = vals.get(p)
            cells.append("–" if not v else f"{vals['tend'] / v:.3g}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    integ = integrity(results)
    if integ:
        bad = [f"{p} ({m})" for (p, m), ok in integ.items() if not ok]
        lines += ["", "Log bytes identical to the direct write (sha256): "
                  + ("every run of every peer" if not bad else "NOT for " + ", ".join(sorted(bad)))]
    sc = results.get("scale", {}).get("data", [])
    if sc:
        lines += ["", "tend alone, many services:", "",
                  "| services | sampling | all running after | own RSS | PSS | idle CPU (% core) | `status s00000` | … with TEND_SOCKET | … `--json` | `status` (all) | `down` |",
                  "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in sc:
            if "error" in r:
                lines.append(f"| {r.get('services')} | {r.get('sample_every', '2s')} | NOT MEASURED: "
                             f"{r['error'][:80]} | | | | | | | | |")
                continue
            lines.append(
                f"| {r['services']:,}" + (f" ({r['children_started']:,} ran)" if r.get("short") else "")
                + f" | {r['sample_every']} | {r['all_children_ms']:,.0f} ms | "
                f"{r['rss_kib'] / 1024:.1f} MiB | "
                f"{r['pss_kib'] / 1024:.1f} MiB | {r['cpu']['sched_pct']:.3f} | "
                f"{bl.median(r['status_one_ms']):.2f} ms | {bl.median(r.get('status_one_socket_ms', [0])):.2f} ms | "
                f"{bl.median(r.get('status_one_json_ms', [0])):.2f} ms | {bl.median(r['status_all_ms']):.1f} ms | "
                f"{r['down_ms']:,.0f} ms |")
    # targets
    vals = {key: v for key, _l, _u, _d, v, _lo in rows}
    lines += ["", "Targets for tend:", ""]
    for key, desc, op, target, unit in TARGETS:
        if key == "cpu_10000":
            got = next((r["cpu"]["sched_pct"] for r in sc if r.get("services") == 10000 and "cpu" in r
                        and r.get("sample_every") == "2s"), None)
        else:
            got = vals.get(key, {}).get("tend")
        if got is None:
            verdict = "not measured"
        else:
            met = {"<=": got <= target, ">=": got >= target, "<": got < target}[op]
            verdict = f"{got:.3g} {unit}: {'met' if met else 'MISSED'}"
            libc = vals.get("restart_libc", {}).get("tend")
            if key == "restart" and libc is not None:
                verdict += f" (with the C library child, whose start-up is counted too: {libc:.3g} ms)"
            over = vals.get("status_over_true", {}).get("tend")
            if key == "status" and over is not None:
                verdict += f" ({over:.3g} ms over the /bin/true beside it)"
        lines.append(f"- {desc} {op} {target:g} {unit}: {verdict}")
    for name, r in results.items():
        if r.get("error"):
            lines.append(f"- {name}: NOT MEASURED: {r['error']}")
    return "\n".join(lines), {k: v for k, v in vals.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tend", default=os.path.join(REPO, "target", "release", "tend"))
    ap.add_argument("--peers", default=",".join(PEERS), help=f"peers besides tend ({','.join(PEERS)})")
    ap.add_argument("--only", default=",".join(WORKLOADS), help=f"workloads ({','.join(WORKLOADS)})")
    ap.add_argument("--quick", action="store_true",
                    help="1 round, 5 kills, 64 MiB of logs, 10 status calls, scale 1000")
    ap.add_argument("--rounds", type=int, help="rounds of every workload (3; --quick 1)")
    ap.add_argument("--kills", type=int, help="kills per peer per round and child (7; --quick 5)")
    ap.add_argument("--restart-children", default="bare,libc",
                    help="restart probes: bare (stamps at its entry point), libc (C library child)")
    ap.add_argument("--status-calls", type=int, help="status runs per peer per round (20; --quick 10)")
    ap.add_argument("--log-bytes", help="bytes the flood child writes (512MiB; --quick 64MiB)")
    ap.add_argument("--log-modes", default="chunk,line")
    ap.add_argument("--scale", help="service counts for tend alone (1000,5000,10000; --quick 1000)")
    ap.add_argument("--scale-unsampled", default="max",
                    help="counts to run again with sample_every = \"0s\" (default: the largest; '' for none)")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds after start before measuring (5)")
    ap.add_argument("--window", type=float, default=10.0, help="idle CPU window, seconds (10)")
    ap.add_argument("--peers-dir", default=os.path.join(REPO, "target", "compare-peers"),
                    help="where the peers are installed (default target/compare-peers)")
    ap.add_argument("--install-only", action="store_true", help="install the peers and exit")
    ap.add_argument("--no-install", action="store_true", help="use only what is installed already")
    ap.add_argument("--out", help="results file (default bench/results/compare-<date>-<time>.json)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args()

    peers = [p for p in args.peers.split(",") if p]
    unknown = [p for p in peers if p not in PEERS]
    only = [w for w in args.only.split(",") if w]
    if unknown or any(w not in WORKLOADS for w in only):
        ap.error(f"peers from {PEERS}, workloads from {WORKLOADS}")
    if not args.restart_children or any(c not in ("bare", "libc") for c in args.restart_children.split(",")):
        ap.error("--restart-children: bare, libc or both")
    if not sys.platform.startswith("linux"):
        ap.error("Linux only (/proc)")
    q = args.quick
    rounds = args.rounds or (1 if q else 3)
    kills = args.kills or (5 if q else 7)
    calls = args.status_calls or (10 if q else 20)
    nbytes = size(args.log_bytes or ("64MiB" if q else "512MiB")) // 100 * 100
    scale = [int(x) for x in (args.scale or ("1000" if q else "1000,5000,10000")).split(",") if x]
    if args.scale_unsampled == "max":
        unsampled = [max(scale)] if scale else []
    else:
        unsampled = [int(x) for x in args.scale_unsampled.split(",") if x]

    install_errors = {}
    if not args.no_install:
        install_errors = install(os.path.abspath(args.peers_dir), peers)
        for p, e in install_errors.items():
            log(f"could not install {p}: {e}")
    if args.install_only:
        return 2 if install_errors else 0
    if not os.access(args.tend, os.X_OK):
        ap.error(f"no tend binary at {args.tend}: run `cargo build --release` or pass --tend")

    bl.on_signals()
    h = Harness(args)
    started = datetime.datetime.now()
    info = bl.machine_info(h.tend)
    skipped = {}
    versions, configs, floors = {}, {}, {}
    for name in ["tend"] + peers:
        probe = PEER_CLASSES[name](h, os.path.join(h.scratch, f"probe-{name}"))
        why = install_errors.get(name) or probe.missing()
        if why:
            skipped[name] = why
            log(f"skipping {name}: {why}")
            continue
        versions[name] = probe.version()
        configs[name], floors[name] = probe.config, probe.restart_floor
    active = ["tend"] + [p for p in peers if p not in skipped]
    log(f"tend: {versions.get('tend')}; peers: {', '.join(versions.get(p, p) for p in active[1:])}")
    log(f"load average at start: {info['loadavg_at_start']}; scratch {h.scratch}")

    results = {}
    interrupted = None
    try:
        for w in WORKLOADS:
            if w not in only:
                continue
            t0 = time.monotonic()
            try:
                if w == "memory":
                    data = h.w_memory(active, rounds)
                elif w == "restart":
                    data = h.w_restart(active, rounds, kills, args.restart_children.split(","))
                elif w == "logs":
                    data = h.w_logs(active, rounds, nbytes, args.log_modes.split(","))
                elif w == "status":
                    data = h.w_status(active, rounds, calls)
                else:
                    data = h.w_scale(scale, unsampled)
                results[w] = {"data": data, "seconds": round(time.monotonic() - t0, 1)}
            except (bl.Interrupted, KeyboardInterrupt):
                raise
            except Exception as e:  # noqa: BLE001 - recorded, the other workloads go on
                log(f"  {w} FAILED: {type(e).__name__}: {e}")
                results[w] = {"error": f"{type(e).__name__}: {e}", "seconds": round(time.monotonic() - t0, 1)}
                h.sweeper.sweep(grace=5)
    except (bl.Interrupted, KeyboardInterrupt) as e:
        interrupted = str(e) or "SIGINT"
        log(f"interrupted ({interrupted}); cleaning up")
    finally:
        bl.ignore_signals()
        h.cleanup()

    info["loadavg_at_end"] = bl.loadavg()
    report = {
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(["python3"] + sys.argv),
        "quick": q,
        "settings": {"rounds": rounds, "kills": kills, "restart_children": args.restart_children,
                     "status_calls": calls, "log_bytes": nbytes,
                     "scale": scale, "scale_unsampled": unsampled, "settle_s": args.settle,
                    "window_s": args.window},
        "machine": info,
        "versions": versions,
        "configuration": configs,
        "restart_floor": floors,
        "skipped": skipped,
        "notes": h.notes,
        "interrupted": interrupted,
        "results": results,
    }
    table, medians = render(report, active)
    report["medians"] = medians
    out = args.out or os.path.join(HERE, "results", f"compare-{started:%Y-%m-%d-%H%M%S}.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")

    print()
    print(f"{versions.get('tend', 'tend')} vs {', '.join(versions[p] for p in active[1:])}")
    print(f"{info.get('cpu_model', '?')}, {info['nproc']} CPUs, Linux {info['kernel']}; load average "
          f"{info['loadavg_at_start']} at start, {info['loadavg_at_end']} at end"
          + ("; QUICK" if q else ""))
    print()
    print(table)
    for p, why in skipped.items():
        print(f"\nnot measured: {p}: {why}")
    for note in h.notes:
        print(f"\nnote: {note}")
    if interrupted:
        print(f"\ninterrupted ({interrupted}): partial results")
    print(f"\nraw numbers: {os.path.relpath(out)}")
    if interrupted:
        return 130
    failed = skipped or any("error" in r for r in results.values()) or any(
        "error" in rec for r in results.values() for rec in r.get("data", []))
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
