#!/usr/bin/env python3
"""supervisord compatibility (issue #6): the same supervisord.conf with N programs run by tend
and by the real supervisord, one after the other; for each, the latency of XML-RPC calls made
the way supervisorctl makes them (supervisor.getAllProcessInfo, the call behind `status`;
supervisor.getProcessInfo for one name), each on a fresh connection over the unix socket,
and the supervisor's own resident memory with the N programs running. Also the time
`tend import` takes for every file in tests/corpus/. Measures only; exits 0 whatever the
figures. Needs supervisord (./scripts/test installs it in target/tools).

    cargo build --release && python3 bench/supervisord.py                 # 200 programs
    python3 bench/supervisord.py --programs 50 --calls 500
"""
import argparse
import http.client
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def call(sock_path, method, *params):
    """One XML-RPC call on a fresh connection, as one supervisorctl command makes it."""
    body = xmlrpc.client.dumps(params, method)
    conn = UnixConnection(sock_path)
    conn.request("POST", "/RPC2", body, {"Content-Type": "text/xml"})
    answer = conn.getresponse().read()
    conn.close()
    return xmlrpc.client.loads(answer)[0][0]


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def conf(directory, programs):
    lines = [
        "[unix_http_server]",
        f"file={directory}/s.sock",
        "[supervisord]",
        "nodaemon=true",
        f"logfile={directory}/supervisord.log",
        f"pidfile={directory}/supervisord.pid",
        f"childlogdir={directory}",
        "[supervisorctl]",
        f"serverurl=unix://{directory}/s.sock",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
    ]
    for i in range(programs):
        lines += [f"[program:p{i}]", "command=sleep 100000", "startsecs=1"]
    path = Path(directory) / "supervisord.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def wait_running(sock_path, programs, limit=120):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            infos = call(sock_path, "supervisor.getAllProcessInfo")
            if len(infos) == programs and all(i["statename"] == "RUNNING" for i in infos):
                return True
        except (OSError, xmlrpc.client.Error, http.client.HTTPException):
            pass
        time.sleep(0.2)
    return False


def measure(name, start, pid_of, sock_path, programs, calls):
    proc = start()
    try:
        if not wait_running(sock_path, programs):
            print(f"{name}: the programs did not all reach RUNNING", file=sys.stderr)
            return None
        time.sleep(2)
        rss = rss_kib(pid_of(proc))
        timings = {}
        for label, method, params in [
            ("getAllProcessInfo", "supervisor.getAllProcessInfo", ()),
            ("getProcessInfo", "supervisor.getProcessInfo", ("p7",)),
        ]:
            samples = []
            for _ in range(calls):
                t0 = time.perf_counter()
                call(sock_path, method, *params)
                samples.append((time.perf_counter() - t0) * 1000)
            samples.sort()
            timings[label] = (statistics.median(samples), samples[int(len(samples) * 0.99) - 1])
        return rss, timings
    finally:
        try:
            call(sock_path, "supervisor.shutdown")
        except Exception:
            pass
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--programs", type=int, default=200)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--tend", default=str(ROOT / "target/release/tend"))
    parser.add_argument("--supervisord", default=str(ROOT / "target/tools/bin/supervisord"))
    args = parser.parse_args()
    print(f"# {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
          f"{args.programs} programs, {args.calls} calls each")

    results = {}
    work = tempfile.mkdtemp(prefix="tend-bench-sv-")
    try:
        theirs = Path(work) / "supervisord"
        ours = Path(work) / "tend"
        theirs.mkdir()
        ours.mkdir()
        if Path(args.supervisord).exists():
            path = conf(theirs, args.programs)
            results["supervisord"] = measure(
                "supervisord",
                lambda: subprocess.Popen([args.supervisord, "-c", str(path)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
                lambda p: [p.pid],
                str(theirs / "s.sock"), args.programs, args.calls)
        else:
            print(f"no supervisord at {args.supervisord}: tend only", file=sys.stderr)
        path = conf(ours, args.programs)
        results["tend"] = measure(
            "tend",
            lambda: subprocess.Popen([args.tend, "-c", str(path), "up"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
            lambda p: [p.pid],
            str(ours / "s.sock"), args.programs, args.calls)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print("| supervisor | own RSS | getAllProcessInfo median / p99 | getProcessInfo median / p99 |")
    print("|---|---|---|---|")
    for name, result in results.items():
        if result is None:
            continue
        rss, t = result
        a, b = t["getAllProcessInfo"], t["getProcessInfo"]
        print(f"| {name} | {rss / 1024:.1f} MiB | {a[0]:.2f} / {a[1]:.2f} ms | {b[0]:.2f} / {b[1]:.2f} ms |")

    corpus = sorted(p for p in (ROOT / "tests/corpus").rglob("*") if p.is_file() and p.name != "SOURCES.md")
    t0 = time.perf_counter()
    for path in corpus:
        subprocess.run([args.tend, "import", str(path)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - t0
    print(f"\n`tend import` of the {len(corpus)} corpus files: {elapsed * 1000 / len(corpus):.1f} ms "
          f"per file on average (process start included)")


if __name__ == "__main__":
    main()
