#!/usr/bin/env python3
"""The events benchmark: ddialab's broker against Redis Streams on the same machine, same load.

ddialab: a librdkafka producer (bench/events/events_bench.c) sends 1M records of 100-byte values
with acks=1 and librdkafka's default batching to a fresh broker with --flush batch (every
acknowledged batch fsynced first), then a librdkafka consumer group reads them back. Redis:
redis-server with appendonly yes, appendfsync everysec, and redis-benchmark sending the same
number of XADDs with 100-byte values, pipelined 64 deep over 8 connections (the setting that gave
Redis its best figure here; 1 and 50 connections gave less). Rounds alternate the two systems so
that a noisy moment of this shared machine hits both; the median round is reported.

usage: bench/events/run.py BUILD_DIR [--records N] [--rounds R]
Writes the table to stdout and to bench/results/events-<UTC time>.md.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{what} did not listen on {port} within {timeout} s")


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_ddialab(build, records):
    work = tempfile.mkdtemp(prefix="ddialab-bench-events-")
    port = free_port()
    broker = subprocess.Popen([os.path.join(build, "ddialab"), "events", "broker", "--listen",
                               f"127.0.0.1:{port}", "--data-dir", os.path.join(work, "data"),
                               "--log-level", "warn"], stdout=subprocess.DEVNULL)
    try:
        wait_port(port, broker, "the broker")
        tool = os.path.join(build, "events_bench")
        out = {}
        for mode in ("produce", "consume"):
            p = subprocess.run([tool, mode, f"127.0.0.1:{port}", "bench", str(records)] +
                               (["100", "1"] if mode == "produce" else []),
                               capture_output=True, text=True, timeout=600)
            if p.returncode != 0:
                sys.exit(f"events_bench {mode} failed: {p.stderr}{p.stdout}")
            out[mode] = json.loads(p.stdout)
        return out
    finally:
        stop(broker)
        shutil.rmtree(work, ignore_errors=True)


def run_redis(records):
    work = tempfile.mkdtemp(prefix="ddialab-bench-redis-")
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
                               "--dir", work], stdout=subprocess.DEVNULL)
    try:
        wait_port(port, server, "redis-server")
        value = "v" * 100
        p = subprocess.run(["redis-benchmark", "-p", str(port), "-n", str(records), "-c", "8",
                            "-P", "64", "--csv", "XADD", "bench", "*", "f", value],
                           capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            sys.exit(f"redis-benchmark failed: {p.stderr}")
        rows = [line for line in p.stdout.splitlines() if line.startswith('"XADD')]
        rps = float(rows[-1].split('","')[1].strip('"'))
        return {"records_per_s": rps, "mb_per_s": rps * 100 / 1e6}
    finally:
        stop(server)
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    for tool in ("redis-server", "redis-benchmark"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: scripts/deps.sh bench installs it")
    if not os.path.exists(os.path.join(args.build, "events_bench")):
        sys.exit(f"{args.build}/events_bench is missing (librdkafka-dev: scripts/deps.sh bench)")

    produced, consumed, redis = [], [], []
    for r in range(args.rounds):
        print(f"  round {r + 1} of {args.rounds}: ddialab", file=sys.stderr, flush=True)
        d = run_ddialab(args.build, args.records)
        produced.append(d["produce"])
        consumed.append(d["consume"])
        print(f"  round {r + 1} of {args.rounds}: redis", file=sys.stderr, flush=True)
        redis.append(run_redis(args.records))

    def median(runs):
        return sorted(runs, key=lambda x: x["records_per_s"])[len(runs) // 2]

    def spread(runs):
        rates = [x["records_per_s"] for x in runs]
        return f"{min(rates):,.0f} - {max(rates):,.0f}"

    p, c, x = median(produced), median(consumed), median(redis)
    ratio = p["records_per_s"] / x["records_per_s"]
    ratios = [a["records_per_s"] / b["records_per_s"] for a, b in zip(produced, redis)]
    lines = [
        f"{args.records:,} records of 100-byte values, median of {args.rounds} alternating rounds",
        "",
        "| system | load | records/s (median) | lowest - highest | MB/s |",
        "|---|---|---:|---:|---:|",
        f"| ddialab events broker (--flush batch) | librdkafka producer, acks=1 | "
        f"{p['records_per_s']:,.0f} | {spread(produced)} | {p['mb_per_s']:.1f} |",
        f"| ddialab events broker | librdkafka consumer group | {c['records_per_s']:,.0f} | "
        f"{spread(consumed)} | {c['mb_per_s']:.1f} |",
        f"| Redis {redis_version()} Streams (appendfsync everysec) | redis-benchmark XADD, 8 "
        f"connections, pipeline 64 | {x['records_per_s']:,.0f} | {spread(redis)} | "
        f"{x['mb_per_s']:.1f} |",
        "",
        f"produce: {p['records_per_s']:,.0f} records/s (target >= 500,000): "
        f"{'PASS' if p['records_per_s'] >= 500_000 else 'FAIL'}",
        f"ddialab / Redis XADD: {ratio:.2f}x (per round: "
        f"{', '.join(f'{r:.2f}x' for r in ratios)}; target >= 2x): "
        f"{'PASS' if ratio >= 2 else 'FAIL'}",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    with open(os.path.join(ROOT, "bench", "results", f"events-{stamp}.md"), "w") as f:
        f.write(text)


def redis_version():
    try:
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
        return out.split("v=")[1].split()[0]
    except (OSError, IndexError):
        return "?"


if __name__ == "__main__":
    main()
