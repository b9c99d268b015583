#!/usr/bin/env python3
"""Log capture throughput (issue #3): a child writing BYTES of 100-byte lines, straight to a
file versus captured by tend into its rotating files, side by side (A B A B ...) in one run.

Measures wall time from start until every byte is on disk, checks that the bytes tend wrote
equal what the child wrote (sha256 of the concatenated files against the direct file), tend's
CPU seconds per GiB, and the daemon's peak resident memory over its idle size. Measures only;
exits 0 whatever the figures. Python standard library only.

    cargo build --release && python3 bench/logs.py            # 512 MiB, 3 rounds
    python3 bench/logs.py --bytes 64MiB --rounds 1            # quick
    python3 bench/logs.py --modes chunk --no-timestamps --rounds 11 --compare /tmp/tend-old
                                                              # A/B: two binaries, same rounds
"""
import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def size(text):
    units = {"kib": 1024, "mib": 1024 ** 2, "gib": 1024 ** 3, "": 1}
    t = text.strip().lower()
    for u in ("kib", "mib", "gib"):
        if t.endswith(u):
            return int(float(t[: -len(u)]) * units[u])
    return int(t)


def build_flood(scratch, name="flood"):
    out = scratch / name
    subprocess.run(["cc", "-O2", "-static", "-o", str(out), str(HERE / "child" / f"{name}.c")], check=True)
    return out


def sha256_files(paths):
    h = hashlib.sha256()
    total = 0
    for p in paths:
        with open(p, "rb") as f:
            while True:
                b = f.read(1 << 20)
                if not b:
                    break
                h.update(b)
                total += len(b)
    return h.hexdigest(), total


def proc_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def size_of(path):
    """Size of a log file, or 0 when a rotation moved it between listing and stat."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def settle():
    """Start each measurement with no dirty pages left by the previous one: writeback of an
    earlier run would otherwise throttle whichever side comes next."""
    os.sync()
    time.sleep(0.5)


def reap(proc):
    """Wait for a child; its CPU seconds (user + system), from its own rusage."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, proc.args)
    return usage.ru_utime + usage.ru_stime


def direct(flood, nbytes, mode, scratch):
    target = scratch / f"direct-{mode}.out"
    settle()
    t0 = time.monotonic()
    with open(target, "wb") as f:
        cpu = reap(subprocess.Popen([str(flood), str(nbytes), mode], stdout=f))
    wall = time.monotonic() - t0
    digest, total = sha256_files([target])
    target.unlink()
    return {"wall_s": wall, "sha256": digest, "bytes": total, "cpu_s": cpu}


def spliced_by_loop(sink, flood, nbytes, mode, scratch):
    """The reference: the child's output spliced into a file by a loop that does nothing else."""
    target = scratch / f"splice-{mode}.out"
    settle()
    t0 = time.monotonic()
    child = subprocess.Popen([str(flood), str(nbytes), mode], stdout=subprocess.PIPE)
    loop = subprocess.Popen([str(sink), str(target)], stdin=child.stdout)
    child.stdout.close()
    loop_cpu = reap(loop)
    child_cpu = reap(child)
    wall = time.monotonic() - t0
    digest, total = sha256_files([target])
    target.unlink()
    # The child's CPU writing into a pipe, and the loop's: what any capture through a pipe
    # costs at least, against the direct child's CPU.
    return {"wall_s": wall, "sha256": digest, "bytes": total, "cpu_s": loop_cpu,
            "child_cpu_s": child_cpu}


def rotated_files(logdir, base):
    files = []
    for p in logdir.iterdir():
        name = p.name
        if name.startswith(base + "."):
            suffix = name[len(base) + 1:]
            if suffix.isdigit():
                files.append((int(suffix), p))
    files.sort(key=lambda x: -x[0])
    return [p for _, p in files] + ([logdir / base] if (logdir / base).exists() else [])


def through_tend(tend, flood, nbytes, mode, scratch, timestamps):
    """Run a detached daemon with the flood service stopped, measure its idle RSS, then start
    the flood and wait until every byte is in the log files."""
    run = Path(tempfile.mkdtemp(prefix="tend-logbench-", dir=scratch))
    extra = ', timestamps = true' if timestamps else ''
    manifest = run / "tend.toml"
    manifest.write_text(
        f'[services.flood]\nargs = ["{flood}", "{nbytes}", "{mode}"]\nrestart = "never"\n'
        f'autostart = false\nlogs = {{ max_size = "64MiB", backups = 1000{extra} }}\n')
    env = dict(os.environ, NO_COLOR="1")
    env.pop("TEND_SOCKET", None)
    tend_cmd = [str(tend), "-c", str(manifest)]
    subprocess.run(tend_cmd + ["up", "-d"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid = int((run / ".tend" / "tend.pid").read_text().split()[0])
    try:
        logdir = run / ".tend" / "logs"
        settle()
        idle_rss = rss_kib(pid)
        cpu0 = proc_cpu(pid)
        peak = idle_rss
        expected_lines = nbytes // 100
        t0 = time.monotonic()
        starter = subprocess.Popen(tend_cmd + ["start", "flood"], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = t0 + 600
        last_size, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            peak = max(peak, rss_kib(pid))
            files = rotated_files(logdir, "flood.out.log") if logdir.exists() else []
            on_disk = sum(size_of(p) for p in files)
            if timestamps:
                done = on_disk >= nbytes + expected_lines * 25
            else:
                done = on_disk >= nbytes
            if done:
                break
            if on_disk != last_size:
                last_size, last_change = on_disk, time.monotonic()
            elif time.monotonic() - last_change > 5:
                # Nothing new for 5 s: bytes were lost; the checksum will say so.
                break
            time.sleep(0.005)
        wall = time.monotonic() - t0
        cpu = proc_cpu(pid) - cpu0
        starter.wait()
        files = rotated_files(logdir, "flood.out.log")
        digest, total = sha256_files(files) if not timestamps else strip_stamps(files)
        return {"wall_s": wall, "sha256": digest, "bytes": total, "files": len(files),
                "cpu_s": cpu, "idle_rss_kib": idle_rss, "peak_rss_kib": peak}
    finally:
        subprocess.run(tend_cmd + ["down"], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)
        shutil.rmtree(run, ignore_errors=True)


def strip_stamps(paths):
    """sha256 of timestamped files with each line's stamp (up to the first space) removed."""
    h = hashlib.sha256()
    total = 0
    for p in paths:
        with open(p, "rb") as f:
            for line in f:
                body = line.split(b" ", 1)[1]
                h.update(body)
                total += len(body)
    return h.hexdigest(), total


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tend", default=str(ROOT / "target" / "release" / "tend"))
    ap.add_argument("--compare", metavar="TEND_B",
                    help="a second tend binary, run in every round beside --tend (the two in "
                         "alternating order), for an A/B comparison under the same conditions")
    ap.add_argument("--bytes", default="512MiB")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--modes", default="chunk,line")
    ap.add_argument("--no-timestamps", action="store_true", help="skip the timestamped runs")
    ap.add_argument("--reference", action="store_true",
                    help="also run the child into a bare splice(2) loop (child/splice_sink.c): "
                         "the bound for any capture that does more than move the bytes")
    args = ap.parse_args()
    nbytes = size(args.bytes) // 100 * 100
    scratch = Path(tempfile.mkdtemp(prefix="tend-logbench-"))
    results = []
    load_start = loadavg()
    pct = lambda d, t: d["wall_s"] / t["wall_s"] * 100
    try:
        flood = build_flood(scratch)
        sink = build_flood(scratch, "splice_sink") if args.reference else None
        tend = scratch / "tend"
        shutil.copy(args.tend, tend)
        tend_b = None
        if args.compare:
            tend_b = scratch / "tend-b"
            shutil.copy(args.compare, tend_b)
        for mode in args.modes.split(","):
            for r in range(args.rounds):
                row = {"mode": mode, "round": r + 1, "load": loadavg()}
                row["direct"] = d = direct(flood, nbytes, mode, scratch)
                # Alternate which binary goes first: writeback left by one run and the order
                # of runs both favour one side otherwise.
                order = [("tend", tend), ("tend_b", tend_b)] if tend_b else [("tend", tend)]
                if r % 2 == 1:
                    order.reverse()
                for key, binary in order:
                    row[key] = through_tend(binary, flood, nbytes, mode, scratch, False)
                if not args.no_timestamps:
                    row["tend_timestamps"] = through_tend(tend, flood, nbytes, mode, scratch, True)
                if sink:
                    row["splice_loop"] = spliced_by_loop(sink, flood, nbytes, mode, scratch)
                results.append(row)
                t = row["tend"]
                line = (f"{mode} round {r + 1}: direct {nbytes / d['wall_s'] / 2**20:.0f} MiB/s, "
                        f"tend {nbytes / t['wall_s'] / 2**20:.0f} MiB/s ({pct(d, t):.0f}%, "
                        f"bytes {'identical' if t['sha256'] == d['sha256'] else 'DIFFER'}, {t['files']} files)")
                if tend_b:
                    b = row["tend_b"]
                    line += (f", B {nbytes / b['wall_s'] / 2**20:.0f} MiB/s ({pct(d, b):.0f}%, "
                             f"bytes {'identical' if b['sha256'] == d['sha256'] else 'DIFFER'})")
                if sink:
                    sl = row["splice_loop"]
                    line += f", splice loop {pct(d, sl):.0f}%"
                if not args.no_timestamps:
                    ts = row["tend_timestamps"]
                    line += (f", timestamped lines {'identical' if ts['sha256'] == d['sha256'] else 'DIFFER'}, "
                             f"timestamps {nbytes / ts['wall_s'] / 2**20:.0f} MiB/s ({pct(d, ts):.0f}%)")
                line += (f", tend CPU {t['cpu_s'] / (nbytes / 2**30):.2f} s/GiB, "
                         f"RSS +{(t['peak_rss_kib'] - t['idle_rss_kib']) / 1024:.1f} MiB, load {row['load'][0]:.1f}")
                print(line, flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print()
    # Ratios are taken per round (direct and tend ran back to back) and then the median: on a
    # noisy machine that is steadier than a ratio of medians from different rounds.
    print("| writes | binary | direct MiB/s | tend MiB/s | tend % (range) | timestamps % (range) | bytes identical | tend CPU s/GiB | RSS over idle MiB |")
    print("|---|---|---:|---:|---:|---:|---|---:|---:|")
    med = lambda xs: sorted(xs)[len(xs) // 2]
    for mode in args.modes.split(","):
        rows = [r for r in results if r["mode"] == mode]
        if not rows:
            continue
        d = med([r["direct"]["wall_s"] for r in rows])
        label = "64 KiB" if mode == "chunk" else "one per line"
        for key, name in [("tend", "A"), ("tend_b", "B")]:
            if key not in rows[0]:
                continue
            t = med([r[key]["wall_s"] for r in rows])
            ratio = [pct(r["direct"], r[key]) for r in rows]
            kinds = [key] + (["tend_timestamps"] if key == "tend" and not args.no_timestamps else [])
            same = all(r[k]["sha256"] == r["direct"]["sha256"] for r in rows for k in kinds)
            cpu = med([r[key]["cpu_s"] for r in rows]) / (nbytes / 2**30)
            rss = max((r[k]["peak_rss_kib"] - r[k]["idle_rss_kib"]) / 1024 for r in rows for k in kinds)
            if "tend_timestamps" in kinds:
                ratio_ts = [pct(r["direct"], r["tend_timestamps"]) for r in rows]
                stamped = f"{med(ratio_ts):.0f}% ({min(ratio_ts):.0f}-{max(ratio_ts):.0f})"
            else:
                stamped = "-"
            print(f"| {label} | {name} | {nbytes / d / 2**20:.0f} | {nbytes / t / 2**20:.0f} "
                  f"| {med(ratio):.0f}% ({min(ratio):.0f}-{max(ratio):.0f}) "
                  f"| {stamped} | {'yes' if same else 'NO'} | {cpu:.2f} | {rss:.1f} |")
        if "splice_loop" in rows[0]:
            ratio = [pct(r["direct"], r["splice_loop"]) for r in rows]
            same = all(r["splice_loop"]["sha256"] == r["direct"]["sha256"] for r in rows)
            loop_cpu = med([r["splice_loop"]["cpu_s"] for r in rows]) / (nbytes / 2**30)
            print(f"| {label} | splice loop | {nbytes / d / 2**20:.0f} "
                  f"| {nbytes / med([r['splice_loop']['wall_s'] for r in rows]) / 2**20:.0f} "
                  f"| {med(ratio):.0f}% ({min(ratio):.0f}-{max(ratio):.0f}) | - | {'yes' if same else 'NO'} "
                  f"| {loop_cpu:.2f} | - |")
            gib = nbytes / 2**30
            direct_cpu = med([r["direct"]["cpu_s"] for r in rows]) / gib
            piped_cpu = med([r["splice_loop"]["child_cpu_s"] for r in rows]) / gib
            capture = [("splice loop", loop_cpu)] + [
                (name, med([r[key]["cpu_s"] for r in rows]) / gib)
                for key, name in [("tend", "A"), ("tend_b", "B")] if key in rows[0]]
            # With no idle core, wall time follows CPU time: this is the most any capture
            # through a pipe can reach on a busy machine.
            print(f"\n{label}, CPU s/GiB: the child writing to its file {direct_cpu:.2f}, "
                  f"to a pipe {piped_cpu:.2f}; ratio if no core were idle (direct CPU / child + capture): "
                  + ", ".join(f"{name} {direct_cpu / (piped_cpu + c) * 100:.0f}%" for name, c in capture))
        if "tend_b" in rows[0]:
            wins = sum(1 for r in rows if r["tend"]["wall_s"] < r["tend_b"]["wall_s"])
            print(f"\n{label}: A faster than B in {wins} of {len(rows)} rounds")
    out = HERE / "results" / time.strftime("logs-%Y-%m-%d-%H%M%S.json")
    out.parent.mkdir(exist_ok=True)
    binaries = {"tend": str(args.tend)}
    if args.compare:
        binaries["tend_b"] = str(args.compare)
    out.write_text(json.dumps({"bytes": nbytes, "binaries": binaries,
                               "machine": {"nproc": os.cpu_count(), "kernel": platform.release(),
                                           "load_start": load_start, "load_end": loadavg()},
                               "results": results}, indent=1))
    print(f"\nraw numbers: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
