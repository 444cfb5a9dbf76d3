#!/usr/bin/env python3
"""Failover benchmark: over N kill -9s of the leader, the time until the next successful write, for a
3-node ddialab kv cluster and a 3-member etcd 3.4 cluster with the same election timeout. See docs/bench.md.

usage: bench/kv/failover.py [options] [path/to/ddialab]      (make bench-failover: ... build/ddialab)

Each round: find the leader, start the clock, kill -9 the leader, then write (one attempt at a time, a short
per-request timeout, 50 ms by default, rotating over the surviving members) until one write succeeds; the elapsed time is the
round's result. Then the killed member is restarted with the same data directory and flags, and the next
round waits (with a deadline) until all three members are healthy again.

Exit status: 0 when every requested system ran every round with a successful write; 1 when a cluster did not
start or recover, or a round saw no successful write; 2 on a usage error; 130 on Ctrl-C.
"""

import argparse
import atexit
import base64
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kvbench  # noqa: E402  (free ports, readiness waits, kv_get: shared with run.sh)

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
STOP_DEADLINE_S = 10.0

PROCS = {}  # pid -> Popen, every member this script started and has not reaped yet


def say(msg=""):
    print(msg, flush=True)


# ---------------------------------------------------------------- processes


def reap(p, deadline):
    try:
        p.wait(timeout=deadline)
    except subprocess.TimeoutExpired:
        say(f"  process {p.pid} still running after {deadline:.0f}s; sending KILL")
        p.kill()
        p.wait(timeout=deadline)
    PROCS.pop(p.pid, None)


def stop(procs):
    """TERM each in order, wait for it (deadline, then KILL), reap. Followers first, the leader last."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
        reap(p, STOP_DEADLINE_S)


def cleanup():
    if PROCS:
        say(f"cleanup: stopping {' '.join(str(pid) for pid in PROCS)}")
        stop(list(PROCS.values()))


def on_signal(signum, _frame):
    raise KeyboardInterrupt if signum == signal.SIGINT else SystemExit(143)


class Cluster:
    """Three members of one system; subclasses say how to start one and how to find the leader."""

    name = ""

    def __init__(self, work, args):
        self.work, self.args = work, args
        self.dir = os.path.join(work, self.name)
        os.makedirs(self.dir)
        ports = kvbench.free_ports(6)
        self.client = [ports[2 * i] for i in range(3)]
        self.peer = [ports[2 * i + 1] for i in range(3)]
        self.urls = [f"http://127.0.0.1:{p}" for p in self.client]
        self.procs = [None, None, None]

    def start(self, i):
        log = open(os.path.join(self.dir, f"m{i + 1}.log"), "ab")
        try:
            p = subprocess.Popen(self.argv(i), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            log.close()
        PROCS[p.pid] = p
        self.procs[i] = p

    def start_all(self):
        for i in range(3):
            self.start(i)

    def pids(self):
        return [p.pid for p in self.procs]

    def stop_all(self, leader_url):
        order = sorted(range(3), key=lambda i: self.urls[i] == leader_url)
        stop([self.procs[i] for i in order])

    def tail_logs(self, n=15):
        for i in range(3):
            path = os.path.join(self.dir, f"m{i + 1}.log")
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    lines = f.readlines()[-n:]
                say(f"  --- last lines of {self.name} m{i + 1}.log")
                for line in lines:
                    say("  | " + line.rstrip())


class Ddialab(Cluster):
    name = "ddialab"

    def argv(self, i):
        peers = ",".join(f"{j + 1}=127.0.0.1:{self.peer[j]}" for j in range(3))
        data = os.path.join(self.dir, f"n{i + 1}")
        os.makedirs(data, exist_ok=True)
        return [self.args.binary, "kv", "--node", str(i + 1), "--http", f"127.0.0.1:{self.client[i]}",
                "--peer", f"127.0.0.1:{self.peer[i]}", "--peers", peers, "--data-dir", data,
                "--election-timeout", f"{self.args.election_timeout_ms}ms"]

    def wait_ready(self):
        return kvbench.wait_ddialab(self.args.ready_deadline, self.pids(), self.urls)

    def write(self, url, key, timeout):
        return attempt(url, "PUT", "/kv/" + key, b"failover", {"Content-Type": "application/octet-stream"}, timeout)


class Etcd(Cluster):
    name = "etcd"

    def argv(self, i):
        cluster = ",".join(f"e{j + 1}=http://127.0.0.1:{self.peer[j]}" for j in range(3))
        cu, pu = self.urls[i], f"http://127.0.0.1:{self.peer[i]}"
        return ["etcd", "--name", f"e{i + 1}", "--data-dir", os.path.join(self.dir, f"data{i + 1}"),
                "--listen-client-urls", cu, "--advertise-client-urls", cu,
                "--listen-peer-urls", pu, "--initial-advertise-peer-urls", pu,
                "--initial-cluster", cluster, "--initial-cluster-token", f"ddialab-failover-{os.getpid()}",
                "--initial-cluster-state", "new",
                "--election-timeout", str(self.args.election_timeout_ms), "--heartbeat-interval", "100"]

    def wait_ready(self):
        return kvbench.wait_etcd(self.args.ready_deadline, self.pids(), self.urls)

    def write(self, url, key, timeout):
        body = json.dumps({"key": kvbench.b64(key), "value": kvbench.b64("failover")})
        st, raw = attempt(url, "POST", "/v3/kv/put", body, {"Content-Type": "application/json"}, timeout)
        # The gateway answers 200 with an error object when the put failed.
        if st == 200 and b'"error"' in raw:
            return 500, raw
        return st, raw


# ---------------------------------------------------------------- one write attempt


def attempt(url, method, path, body, headers, timeout):
    """Exactly one request on a fresh connection: (status, body) or (None, short error text)."""
    u = url.rsplit(":", 1)
    conn = http.client.HTTPConnection(u[0].split("//")[1], int(u[1]), timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except (OSError, http.client.HTTPException) as e:
        return None, type(e).__name__
    finally:
        conn.close()


def outcome_label(st, raw):
    if st is None:
        return raw.decode() if isinstance(raw, bytes) else raw
    try:
        err = json.loads(raw).get("error")
        if isinstance(err, dict):  # etcd gateway: {"error": "...", "code": N, "message": "..."}
            err = None
        return f"{st} {err}" if err else str(st)
    except (ValueError, AttributeError):
        return str(st)


# ---------------------------------------------------------------- rounds


def run_round(c, n, leader_url, args):
    """Kill the leader, write until a write succeeds. Returns a dict describing the round."""
    li = c.urls.index(leader_url)
    victim = c.procs[li]
    survivors = [u for u in c.urls if u != leader_url]
    key = f"fo-{c.name}-{n}"
    timeout = args.request_timeout_ms / 1000.0
    outcomes = {}
    t0 = time.monotonic()
    os.kill(victim.pid, signal.SIGKILL)
    end = t0 + args.write_deadline
    k = 0
    ok_url = None
    while time.monotonic() < end:  # bounded by the write deadline
        url = survivors[k % len(survivors)]
        k += 1
        st, raw = c.write(url, key, timeout)
        if st == 200:
            ok_url = url
            break
        lab = outcome_label(st, raw)
        outcomes[lab] = outcomes.get(lab, 0) + 1
    elapsed_ms = (time.monotonic() - t0) * 1000.0
    reap(victim, STOP_DEADLINE_S)
    return {"round": n, "killed": f"m{li + 1}", "killed_pid": victim.pid, "ok": ok_url is not None,
            "ms": round(elapsed_ms, 1) if ok_url else None, "attempts": k, "outcomes": outcomes,
            "wrote_via": f"m{c.urls.index(ok_url) + 1}" if ok_url else None, "key": key, "li": li}


def bench_system(c, args, results):
    say(f"== {c.name}: 3 members, election timeout {args.election_timeout_ms} ms, heartbeat 100 ms "
        f"(data under {c.dir})")
    c.start_all()
    leader = None
    try:
        leader = c.wait_ready()
        say(f"  ready; leader {leader}")
        for n in range(1, args.rounds + 1):
            r = run_round(c, n, leader, args)
            t_restart = time.monotonic()
            c.start(r["li"])
            leader = c.wait_ready()
            r["recovered_s"] = round(time.monotonic() - t_restart, 2)
            # The write that ended the round must be readable from the new leader.
            h = kvbench.Http(leader)
            try:
                st, got = kvbench.kv_get(h, c.name, r["key"]) if r["ok"] else (200, b"failover")
            finally:
                h.close()
            if st != 200 or got != b"failover":
                r["ok"], r["note"] = False, f"read-back of {r['key']} from {leader} -> {st} {got!r}"
            results.append(r)
            outs = ", ".join(f"{lab} x{cnt}" for lab, cnt in sorted(r["outcomes"].items(), key=lambda x: -x[1]))
            if r["ok"]:
                msg = f"write ok via {r['wrote_via']} after {r['ms']:8.1f} ms"
            else:
                msg = "NO SUCCESSFUL WRITE " + r.get("note", f"within {args.write_deadline:.0f} s")
            say(f"  {c.name:<7} round {n:2}/{args.rounds}: killed {r['killed']} (pid {r['killed_pid']}); {msg}; "
                f"{r['attempts']} attempts{' (' + outs + ')' if outs else ''}; 3 healthy again "
                f"{r['recovered_s']:.1f} s after restart")
        return True
    except SystemExit as e:  # kvbench.die(): a member died or a readiness deadline passed
        say(f"SKIPPED rest of {c.name}: cluster did not start or recover (exit {e.code}; see kvbench message above)")
        c.tail_logs()
        return False
    finally:
        c.stop_all(leader)


# ---------------------------------------------------------------- report


def nearest_rank(sorted_ms, q):
    """Nearest-rank percentile: the smallest sample with at least q of the samples at or below it."""
    if not sorted_ms:
        return None
    k = max(1, -(-len(sorted_ms) * q // 100))  # ceil(n * q / 100)
    return sorted_ms[int(k) - 1]


def summarize(results, systems):
    rows = {}
    for s in systems:
        ms = sorted(r["ms"] for r in results[s] if r["ok"])
        rows[s] = {"rounds": len(results[s]), "failed": sum(1 for r in results[s] if not r["ok"]),
                   "p50": nearest_rank(ms, 50), "p90": nearest_rank(ms, 90), "p99": nearest_rank(ms, 99),
                   "max": ms[-1] if ms else None, "min": ms[0] if ms else None}
    return rows


HEAD = ["system", "rounds", "failed", "min ms", "p50 ms", "p90 ms", "p99 ms", "max ms"]


def table_rows(rows):
    f = lambda v: "-" if v is None else f"{v:,.0f}"
    return [[s, str(r["rounds"]), str(r["failed"]), f(r["min"]), f(r["p50"]), f(r["p90"]), f(r["p99"]), f(r["max"])]
            for s, r in rows.items()]


def ratios(rows):
    d, e = rows.get("ddialab"), rows.get("etcd")
    out = {}
    for q in ("p50", "p99"):
        out[q] = round(d[q] / e[q], 2) if d and e and d[q] and e[q] else None
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("binary", nargs="?", default=os.path.join(ROOT, "build", "ddialab"))
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--systems", default="ddialab,etcd", help="comma-separated, in order (ddialab, etcd)")
    p.add_argument("--election-timeout-ms", type=int, default=1000)
    p.add_argument("--request-timeout-ms", type=int, default=50,
                   help="per write attempt; etcd never completes a write it received while it had no leader, "
                        "so this is the granularity of etcd's result")
    p.add_argument("--write-deadline", type=float, default=30.0, help="seconds a round may try to write")
    p.add_argument("--ready-deadline", type=float, default=30.0, help="seconds to (re)gain 3 healthy members")
    p.add_argument("--results-dir", default=os.path.join(ROOT, "bench", "results"))
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (data dirs, member logs)")
    args = p.parse_args()
    systems = [s for s in args.systems.split(",") if s]
    if not systems or any(s not in ("ddialab", "etcd") for s in systems) or args.rounds < 1:
        p.error("--systems takes ddialab and/or etcd; --rounds must be >= 1")
    if "ddialab" in systems and not os.access(args.binary, os.X_OK):
        say(f"failover: ddialab binary {args.binary} not found or not executable (make build)")
        sys.exit(2)
    if "etcd" in systems and not shutil.which("etcd"):
        say("failover: etcd is not installed (scripts/deps.sh bench)")
        sys.exit(2)

    work = tempfile.mkdtemp(prefix="ddialab-bench-failover.")
    atexit.register(lambda: (say(f"kept {work}") if args.keep else shutil.rmtree(work, ignore_errors=True)))
    atexit.register(cleanup)  # runs first: stop members, then remove their directories
    signal.signal(signal.SIGTERM, on_signal)

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    load_start = " ".join(open("/proc/loadavg").read().split()[:3])
    say(f"failover benchmark {stamp}: systems [{' '.join(systems)}], {args.rounds} rounds each, kill -9 of the "
        f"leader, writes with a {args.request_timeout_ms} ms timeout; load {load_start}")
    results, broke = {}, False
    try:
        for s in systems:
            results[s] = []
            c = (Ddialab if s == "ddialab" else Etcd)(work, args)
            ok = bench_system(c, args, results[s])
            broke = broke or not ok or len(results[s]) < args.rounds or any(not r["ok"] for r in results[s])
    except KeyboardInterrupt:
        say("interrupted")
        sys.exit(130)

    rows = summarize(results, systems)
    rat = ratios(rows)
    load_end = " ".join(open("/proc/loadavg").read().split()[:3])
    say()
    say(kvbench.aligned(HEAD, table_rows(rows), {1, 2, 3, 4, 5, 6, 7}))
    fr = lambda v: "-" if v is None else f"{v:.2f}x"
    say(f"\nratio ddialab / etcd: p50 {fr(rat['p50'])}, p99 {fr(rat['p99'])}  (load at end {load_end})")

    etcd_v = subprocess.run(["etcd", "--version"], capture_output=True, text=True).stdout.split("\n")[0] \
        if shutil.which("etcd") else "?"
    git = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True,
                         text=True).stdout.strip() or "unknown"
    md = [f"# failover benchmark {stamp}", "",
          f"Host `{os.uname().nodename}`, {os.cpu_count()} CPUs, {etcd_v.strip()}, ddialab `{git}` "
          f"(`{args.binary}`). {args.rounds} rounds per system: kill -9 of the leader, then writes with a "
          f"{args.request_timeout_ms} ms per-request timeout rotating over the two survivors. Election timeout "
          f"{args.election_timeout_ms} ms, heartbeat 100 ms on both. Percentiles are nearest-rank.", "",
          f"Load at start: `{load_start}`; at end: `{load_end}`.", "",
          kvbench.markdown(HEAD, table_rows(rows), {1, 2, 3, 4, 5, 6, 7}), "",
          f"Ratio ddialab / etcd: p50 **{fr(rat['p50'])}**, p99 **{fr(rat['p99'])}**.", "",
          "| system | round | killed | ms | attempts | failed attempts | healthy again after restart (s) |",
          "|---|---:|---|---:|---:|---|---:|"]
    for s in systems:
        for r in results[s]:
            outs = ", ".join(f"{lab} x{cnt}" for lab, cnt in sorted(r["outcomes"].items(), key=lambda x: -x[1]))
            md.append(f"| {s} | {r['round']} | {r['killed']} | {'-' if r['ms'] is None else r['ms']} | "
                      f"{r['attempts']} | {outs} | {r['recovered_s']} |")
    os.makedirs(args.results_dir, exist_ok=True)
    path = os.path.join(args.results_dir, f"failover-{stamp}.md")
    with open(path, "w") as f:
        f.write("\n".join(md) + "\n")
    say(f"wrote {path}")
    if broke:
        say("failover: a system did not run every round with a successful write (see above); exiting 1")
    sys.exit(1 if broke else 0)


if __name__ == "__main__":
    main()
