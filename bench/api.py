#!/usr/bin/env python3
"""API load (issue #5): N services (default 200) running with the history on, and a client
sending R requests per second (default 200) on the unix socket for W seconds, spread over a
mix of endpoints (service list, one service, instances, events from the history, /ready).
Measures request latency (p50, p99, max over all requests, each on a fresh connection as a
CLI would make it), the daemon's CPU over the window (% of one core, /proc/PID/stat), and
how long GET /metrics takes for the N instances (median and p99 of 200 scrapes, measured at
the client, so it includes the transport). Measures only; exits 0 whatever the figures.
Python standard library only.

    cargo build --release && python3 bench/api.py                    # 200 services, 200 req/s, 30 s
    python3 bench/api.py --services 200 --rate 400 --window 60
"""
import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

PATHS = [
    "/api/v1/services",
    "/api/v1/services/s7",
    "/api/v1/instances?targets=s1,s2",
    "/api/v1/events?limit=50",
    "/ready",
]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def request(sock_path, path):
    """One GET on a fresh connection; returns (status, body bytes)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sock_path)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: tend\r\nConnection: close\r\n\r\n".encode())
    chunks = []
    while True:
        data = s.recv(65536)
        if not data:
            break
        chunks.append(data)
    s.close()
    raw = b"".join(chunks)
    status = int(raw.split(b" ", 2)[1])
    return status, raw


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tend", default=str(ROOT / "target" / "release" / "tend"))
    ap.add_argument("--services", type=int, default=200)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--window", type=float, default=30.0)
    ap.add_argument("--settle", type=float, default=5.0)
    ap.add_argument("--path", action="append", help="request only these paths (repeatable)")
    args = ap.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="tend-apibench-"))
    tend = scratch / "tend"
    shutil.copy(args.tend, tend)
    manifest = scratch / "tend.toml"
    manifest.write_text("".join(
        f'[services.s{i}]\ncommand = "sleep 100000"\n' for i in range(args.services)))
    env = dict(os.environ, NO_COLOR="1")
    env.pop("TEND_SOCKET", None)
    cmd = [str(tend), "-c", str(manifest)]
    sock = str(scratch / ".tend" / "tend.sock")
    try:
        subprocess.run(cmd + ["up", "-d"], env=env, check=True, stdout=subprocess.DEVNULL)
        pid = int((scratch / ".tend" / "tend.pid").read_text().split()[0])
        # Some history to query: restart a few services so events exist.
        subprocess.run(cmd + ["restart", "s1", "s2", "s3"], env=env, check=True, stdout=subprocess.DEVNULL)
        time.sleep(args.settle)

        paths = args.path or PATHS
        latencies, errors = [], 0
        period = 1.0 / args.rate
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        next_at = t0
        i = 0
        while time.monotonic() - t0 < args.window:
            now = time.monotonic()
            if now < next_at:
                time.sleep(next_at - now)
            start = time.perf_counter()
            try:
                status, _ = request(sock, paths[i % len(paths)])
                if status != 200:
                    errors += 1
            except OSError:
                errors += 1
            latencies.append((time.perf_counter() - start) * 1000)
            i += 1
            next_at += period
        elapsed = time.monotonic() - t0
        cpu = (cpu_seconds(pid) - cpu0) / elapsed * 100

        scrapes = []
        size = 0
        for _ in range(200):
            start = time.perf_counter()
            status, raw = request(sock, "/metrics")
            scrapes.append((time.perf_counter() - start) * 1000)
            size = len(raw)
        rss_kib = int(next(l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")).split()[1])
        db = scratch / ".tend" / "tend.db"
        result = {
            "services": args.services,
            "rate_target": args.rate,
            "rate_achieved": round(len(latencies) / elapsed, 1),
            "requests": len(latencies),
            "errors": errors,
            "latency_ms": {
                "p50": round(percentile(latencies, 50), 2),
                "p99": round(percentile(latencies, 99), 2),
                "max": round(max(latencies), 2),
            },
            "tend_cpu_percent": round(cpu, 2),
            "metrics_ms": {
                "median": round(statistics.median(scrapes), 2),
                "p99": round(percentile(scrapes, 99), 2),
                "bytes": size,
            },
            "tend_rss_mib": round(rss_kib / 1024, 2),
            "history_db_kib": round(db.stat().st_size / 1024, 1) if db.exists() else None,
            "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
        }
        print(json.dumps(result, indent=2))
    finally:
        subprocess.run(cmd + ["down"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
