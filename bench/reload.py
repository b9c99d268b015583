#!/usr/bin/env python3
"""Rolling reload under load (issue 8): one HTTP service of N instances (default 4) sharing
a tend socket (`[sockets]`, `readiness = { notify = true }`, the server in
`reload_server.py`), C client threads sending requests over loopback without pause, each
on a new connection (no keep-alive), while `tend reload web` runs R times in a row. Counts
requests, failures (refused connections apart) and latency (p50, p99, max; overall and for
the requests sent while a reload ran), and times each reload. Measures only; exits 0
whatever the figures (2 if something could not be measured). Python standard library only.

    cargo build --release && python3 bench/reload.py
    python3 bench/reload.py --instances 4 --reloads 5 --clients 8 --gap 1 --tend target/debug/tend
    python3 bench/reload.py --action restart     # the same with `tend restart web`, to compare
    python3 bench/reload.py --action upgrade     # `tend upgrade`: tend itself replaced in place

Prints a table and writes the JSON (raw reload durations included) to
bench/results/reload-DATE-TIME.json (or --out).
"""
import argparse
import errno
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


class UnixHTTP(http.client.HTTPConnection):
    """http.client over tend's control socket."""

    def __init__(self, path):
        super().__init__("tend", timeout=30)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(str(self.path))


def api(sock_path, path):
    conn = UnixHTTP(sock_path)
    conn.request("GET", path)
    body = conn.getresponse().read()
    conn.close()
    return json.loads(body)


class Load:
    """Client threads: GET / on a fresh connection, one after another, until stopped."""

    def __init__(self, host, port, clients, timeout):
        self.address = (host, port)
        self.timeout = timeout
        self.stop = threading.Event()
        self.lock = threading.Lock()
        # (start, latency seconds, outcome): outcome "ok", "refused" or a failure's text.
        self.samples = []
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(clients)]

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join()

    def once(self):
        try:
            with socket.create_connection(self.address, timeout=self.timeout) as s:
                s.sendall(b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n")
                data = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
        except ConnectionRefusedError:
            return "refused"
        except OSError as e:
            return f"{type(e).__name__}: {errno.errorcode.get(e.errno, e.errno)}"
        if not data.startswith(b"HTTP/1.0 200"):
            return f"bad answer {data[:40]!r}"
        return "ok"

    def run(self):
        local = []
        while not self.stop.is_set():
            start = time.monotonic()
            outcome = self.once()
            local.append((start, time.monotonic() - start, outcome))
        with self.lock:
            self.samples.extend(local)


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


def stats(samples):
    latencies = [lat for _, lat, outcome in samples if outcome == "ok"]
    failures = [o for _, _, o in samples if o not in ("ok", "refused")]
    return {
        "requests": len(samples),
        "ok": len(latencies),
        "failed": len(failures),
        "refused": sum(1 for _, _, o in samples if o == "refused"),
        "failure_kinds": sorted(set(failures)),
        "p50_ms": ms(percentile(latencies, 50)),
        "p99_ms": ms(percentile(latencies, 99)),
        "max_ms": ms(max(latencies) if latencies else None),
    }


def ms(seconds):
    return None if seconds is None else round(seconds * 1000, 2)


def machine():
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg": os.getloadavg(),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tend", default=str(ROOT / "target" / "release" / "tend"))
    ap.add_argument("--instances", type=int, default=4)
    ap.add_argument("--reloads", type=int, default=5)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--max-surge", type=int, default=1)
    ap.add_argument("--gap", type=float, default=1.0, help="seconds of load between reloads")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--timeout", type=float, default=10.0, help="client timeout per request")
    ap.add_argument("--action", default="reload", choices=["reload", "restart", "upgrade"],
                    help="`restart` measures `tend restart web` the same way, for comparison; "
                         "`upgrade` measures `tend upgrade` (the daemon re-executes its binary "
                         "in place while the services serve)")
    ap.add_argument("--out")
    args = ap.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="tend-reloadbench-"))
    tend = scratch / "tend"
    shutil.copy(args.tend, tend)
    shutil.copy(HERE / "reload_server.py", scratch / "serve.py")
    manifest = scratch / "tend.toml"
    manifest.write_text(f"""
[sockets.http]
listen = "tcp://127.0.0.1:0"

[services.web]
args = ["python3", "serve.py"]
instances = {args.instances}
sockets = ["http"]
readiness = {{ notify = true }}
max_surge = {args.max_surge}
""")
    env = dict(os.environ, NO_COLOR="1")
    env.pop("TEND_SOCKET", None)
    cmd = [str(tend), "-c", str(manifest)]
    version = subprocess.run([str(tend), "--version"], capture_output=True, text=True).stdout.strip()
    result = {"tend": version, "machine": machine(), "settings": vars(args), "reloads": []}
    code = 0
    up = False
    load = None
    try:
        subprocess.run(cmd + ["up", "-d", "--wait"], env=env, check=True, stdout=subprocess.DEVNULL)
        up = True
        info = api(scratch / ".tend" / "tend.sock", "/api/v1/info")
        address = info["sockets"][0]["address"].removeprefix("tcp://")
        host, port = address.rsplit(":", 1)
        load = Load(host, int(port), args.clients, args.timeout)
        load.start()
        time.sleep(args.warmup)
        windows = []
        for i in range(args.reloads):
            start = time.monotonic()
            target = [] if args.action == "upgrade" else ["web"]
            run = subprocess.run(cmd + [args.action] + target, env=env, capture_output=True, text=True)
            end = time.monotonic()
            windows.append((start, end))
            result["reloads"].append({
                "seconds": round(end - start, 3),
                "exit": run.returncode,
                "output": (run.stdout + run.stderr).strip(),
            })
            if run.returncode != 0:
                code = 2
            time.sleep(args.gap)
        load.finish()
        samples = load.samples
        during = [s for s in samples if any(a <= s[0] <= b for a, b in windows)]
        result["all"] = stats(samples)
        result["during_reloads"] = stats(during)
        span = max(s[0] + s[1] for s in samples) - min(s[0] for s in samples)
        result["requests_per_second"] = round(len(samples) / span, 1) if span > 0 else None
    except Exception as e:  # report what was measured, then the error
        result["error"] = repr(e)
        code = 2
    finally:
        if load is not None and not load.stop.is_set():
            load.finish()
        if up:
            subprocess.run(cmd + ["down"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(scratch, ignore_errors=True)

    stamp = time.strftime("%Y-%m-%d-%H%M%S")
    out = Path(args.out) if args.out else HERE / "results" / f"{args.action}-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result.get(k) for k in ("all", "during_reloads", "requests_per_second")}, indent=2))
    print()
    print(f"| `tend {args.action}` | requests | failed | refused | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|---|")
    for name in ("all", "during_reloads"):
        s = result.get(name)
        if s:
            print(f"| {name.replace('_', ' ')} | {s['requests']} | {s['failed']} | {s['refused']} | "
                  f"{s['p50_ms']} | {s['p99_ms']} | {s['max_ms']} |")
    durations = [r["seconds"] for r in result["reloads"]]
    if durations:
        print()
        print(f"{args.action} durations (s): " + ", ".join(f"{d:.3f}" for d in durations)
              + f"  (median {sorted(durations)[len(durations) // 2]:.3f})")
    for r in result["reloads"]:
        if r["exit"] != 0:
            print(f"reload failed (exit {r['exit']}): {r['output']}")
    if "error" in result:
        print("error:", result["error"])
    print(f"written to {out}")
    return code


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(130))
    sys.exit(main())
