#!/usr/bin/env python3
"""Probe load (issue #4): N services (default 200), each with an HTTP liveness probe every
second against one small HTTP server run by this script. Measures the daemon's CPU (% of one
core, from /proc/PID/stat over a window) and its open file descriptors at the start and at
the end of the run (a leak shows as growth). Measures only; exits 0 whatever the figures.
Python standard library only.

    cargo build --release && python3 bench/health.py                 # 200 services, 30 s
    python3 bench/health.py --services 200 --window 120              # a longer fd check
"""
import argparse
import http.server
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


class Health(http.server.BaseHTTPRequestHandler):
    count = 0

    def do_GET(self):
        Health.count += 1
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tend", default=str(ROOT / "target" / "release" / "tend"))
    ap.add_argument("--services", type=int, default=200)
    ap.add_argument("--interval", default="1s")
    ap.add_argument("--settle", type=float, default=5.0)
    ap.add_argument("--window", type=float, default=30.0)
    args = ap.parse_args()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()

    scratch = Path(tempfile.mkdtemp(prefix="tend-healthbench-"))
    tend = scratch / "tend"
    shutil.copy(args.tend, tend)
    manifest = scratch / "tend.toml"
    manifest.write_text("".join(
        f'[services.s{i}]\ncommand = "sleep 100000"\n'
        f'liveness = {{ http = "http://127.0.0.1:{port}/live", interval = "{args.interval}" }}\n'
        for i in range(args.services)))
    env = dict(os.environ, NO_COLOR="1")
    env.pop("TEND_SOCKET", None)
    cmd = [str(tend), "-c", str(manifest)]
    try:
        subprocess.run(cmd + ["up", "-d"], env=env, check=True, stdout=subprocess.DEVNULL)
        pid = int((scratch / ".tend" / "tend.pid").read_text().split()[0])
        time.sleep(args.settle)
        fds_start = fds(pid)
        requests0, cpu0, t0 = Health.count, cpu_seconds(pid), time.monotonic()
        time.sleep(args.window)
        requests1, cpu1, t1 = Health.count, cpu_seconds(pid), time.monotonic()
        fds_end = fds(pid)
        status = json.loads(subprocess.run(cmd + ["status", "--json"], env=env, check=True,
                                           capture_output=True).stdout)
        healthy = sum(1 for i in status if i["health"] == "healthy")
        cpu = (cpu1 - cpu0) / (t1 - t0) * 100
        rate = (requests1 - requests0) / (t1 - t0)
        print(f"{args.services} services, liveness http every {args.interval}: "
              f"{rate:.0f} probes/s, tend CPU {cpu:.2f}% of one core, "
              f"fds {fds_start} -> {fds_end} over {args.window:.0f}s, {healthy} healthy")
        out = HERE / "results" / time.strftime("health-%Y-%m-%d-%H%M%S.json")
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps({
            "services": args.services, "interval": args.interval, "window_s": t1 - t0,
            "probes_per_s": rate, "cpu_percent": cpu, "fds_start": fds_start,
            "fds_end": fds_end, "healthy": healthy,
            "machine": {"nproc": os.cpu_count(), "kernel": platform.release()}}, indent=1))
        print(f"raw numbers: {out.relative_to(ROOT)}")
    finally:
        subprocess.run(cmd + ["down"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        server.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
