#!/usr/bin/env python3
"""Helpers for bench/kv/run.sh: free ports, readiness waits, preload, smoke check and the report.

Subcommands (run.sh calls them; each exits non-zero with a message on stderr when it fails):
  ports N                                   print N free 127.0.0.1 TCP ports, one per line
  wait-etcd --deadline S --pids P,P,P URL..   wait until every member answers /health, print the leader's URL
  wait-ddialab --deadline S --pids P,P,P URL..
                                            wait until every node answers /healthz 200 and the leader's
                                            /status shows every follower connected; print the leader's URL
  preload --target T --keys N --value-bytes B URL
                                            write g-00000000.. g-<N-1> and read a sample back
  smoke --target T URL                      one PUT and one GET round trip
  check-keys --target T URL TID..           fail if none of k<TID>-00000001..10 can be read back
  count-etcd --rows F URL                   check etcd holds >= as many k* keys as wrk counted 2xx PUTs
  row --system S --workload W --conns C --threads T FILE
                                            label one wrk result (FILE) as a JSON line; progress to stderr
  report --rows F --meta-dir D --md F --json F
                                            print the aligned table and write markdown and JSON

Only the standard library is used (Debian's python3).
"""

import argparse
import base64
import http.client
import json
import os
import socket
import sys
import time
import urllib.parse

POLL_S = 0.1


def die(msg):
    print(f"kvbench: {msg}", file=sys.stderr)
    sys.exit(1)


# ---------------------------------------------------------------- HTTP


class Http:
    """One keep-alive connection to a base URL such as http://127.0.0.1:2379."""

    def __init__(self, url, timeout=5.0):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port
        self.timeout = timeout
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        """Return (status, body bytes); reconnects once if the kept-alive connection died."""
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def try_request(url, method, path, body=None, headers=None, timeout=2.0):
    """One request on a fresh connection; (status, body) or (None, error text)."""
    h = Http(url, timeout)
    try:
        return h.request(method, path, body, headers)
    except (OSError, http.client.HTTPException) as e:
        return None, str(e)
    finally:
        h.close()


def b64(s):
    return base64.b64encode(s if isinstance(s, bytes) else s.encode()).decode()


def kv_put(h, target, key, value):
    if target == "etcd":
        body = json.dumps({"key": b64(key), "value": b64(value)})
        return h.request("POST", "/v3/kv/put", body, {"Content-Type": "application/json"})
    return h.request("PUT", "/kv/" + key, value, {"Content-Type": "application/octet-stream"})


def kv_get(h, target, key):
    """Return (status, value bytes or None)."""
    if target == "etcd":
        body = json.dumps({"key": b64(key)})
        st, raw = h.request("POST", "/v3/kv/range", body, {"Content-Type": "application/json"})
        if st != 200:
            return st, None
        kvs = json.loads(raw).get("kvs") or []
        return st, base64.b64decode(kvs[0]["value"]) if kvs else None
    st, raw = h.request("GET", "/kv/" + key)
    return st, raw if st == 200 else None


# ---------------------------------------------------------------- subcommands


def free_ports(n):
    """Return n distinct free 127.0.0.1 TCP ports (all bound at once, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def cmd_ports(a):
    print("\n".join(str(p) for p in free_ports(a.n)))


def check_alive(pids):
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            die(f"process {pid} exited before the cluster was ready")
        # A zombie still answers kill 0; /proc tells us it is dead.
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    die(f"process {pid} exited before the cluster was ready")
        except FileNotFoundError:
            die(f"process {pid} exited before the cluster was ready")


def wait_until(deadline, pids, probe, what):
    """Call probe() until it returns a non-None value or the deadline passes; returns the value."""
    end = time.monotonic() + deadline
    last = "no answer yet"
    while True:
        check_alive(pids)
        try:
            v, last = probe()
        except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
            v, last = None, str(e)
        if v is not None:
            return v
        if time.monotonic() >= end:
            die(f"{what} not ready after {deadline:.0f} s (last: {last})")
        time.sleep(POLL_S)


def wait_etcd(deadline, pids, urls):
    """Wait until every etcd member answers /health true and one reports itself leader; return its URL.

    Exits through die() when a PID in pids dies or the deadline (seconds, per phase) passes."""
    def healthy():
        for url in urls:
            st, body = try_request(url, "GET", "/health")
            if st != 200 or json.loads(body).get("health") != "true":
                return None, f"{url}/health -> {st} {body[:100]!r}"
        return True, ""

    def leader():
        for url in urls:
            st, body = try_request(url, "POST", "/v3/maintenance/status", "{}", {"Content-Type": "application/json"})
            if st != 200:
                return None, f"{url} status -> {st}"
            s = json.loads(body)
            if s.get("leader") and s["header"]["member_id"] == s["leader"]:
                return url, ""
        return None, "no member reports itself as leader"

    wait_until(deadline, pids, healthy, "etcd")
    return wait_until(deadline, pids, leader, "etcd leader")


def cmd_wait_etcd(a):
    print(wait_etcd(a.deadline, a.pids, a.urls))


def wait_ddialab(deadline, pids, urls):
    """Wait until every node answers /healthz 200 and the leader lists every follower connected; return the
    leader's URL. Exits through die() when a PID in pids dies or the deadline (seconds, per phase) passes."""
    def healthy():
        for url in urls:
            st, body = try_request(url, "GET", "/healthz")
            if st != 200:
                return None, f"{url}/healthz -> {st} {body[:100]!r}"
        return True, ""

    def leader():
        for url in urls:
            st, body = try_request(url, "GET", "/status")
            if st != 200:
                return None, f"{url}/status -> {st}"
            s = json.loads(body)
            if s.get("role") != "leader":
                continue
            fol = s.get("followers") or []
            if len(fol) != len(urls) - 1:
                return None, f"leader {url} lists {len(fol)} followers, want {len(urls) - 1}"
            down = [f.get("node") for f in fol if f.get("connected") is not True]
            if down:
                return None, f"leader {url}: followers not connected: {down}"
            return url, ""
        return None, "no node reports role leader"

    wait_until(deadline, pids, healthy, "ddialab")
    return wait_until(deadline, pids, leader, "ddialab leader")


def cmd_wait_ddialab(a):
    print(wait_ddialab(a.deadline, a.pids, a.urls))


def cmd_preload(a):
    value = b"v" * a.value_bytes
    h = Http(a.url)
    try:
        preload(a, h, value)
    except (OSError, http.client.HTTPException, ValueError) as e:
        die(f"preload: {e}")
    finally:
        h.close()


def preload(a, h, value):
    for i in range(a.keys):
        st, body = kv_put(h, a.target, f"g-{i:08d}", value)
        if st != 200:
            die(f"preload PUT g-{i:08d} -> {st} {body[:200]!r}")
    step = max(1, a.keys // 50)
    for i in list(range(0, a.keys, step)) + [a.keys - 1]:
        st, got = kv_get(h, a.target, f"g-{i:08d}")
        if st != 200 or got != value:
            die(f"preload read-back g-{i:08d} -> {st}, value {'matches' if got == value else 'differs'}")


def cmd_smoke(a):
    h = Http(a.url)
    try:
        key, value = f"smoke-{os.getpid()}", b"smoke-value"
        st, body = kv_put(h, a.target, key, value)
        if st != 200:
            die(f"smoke PUT -> {st} {body[:200]!r}")
        st, got = kv_get(h, a.target, key)
        if st != 200 or got != value:
            die(f"smoke GET -> {st} {got!r}")
    except (OSError, http.client.HTTPException) as e:
        die(f"smoke: {e}")
    finally:
        h.close()


def cmd_check_keys(a):
    """For each thread id, require one of its first 10 PUT keys (k<tid>-00000001..10) to exist.

    Not just the first: wrk generates a request or two per connection that it may never send."""
    h = Http(a.url)
    try:
        for tid in a.tids:
            keys = [f"k{tid}-{n:08d}" for n in range(1, 11)]
            if not any(kv_get(h, a.target, k)[1] is not None for k in keys):
                die(f"none of {keys[0]}..{keys[-1]}, written by a PUT pass, can be read back")
    except (OSError, http.client.HTTPException, ValueError) as e:
        die(f"check-keys: {e}")
    finally:
        h.close()


def cmd_count_etcd(a):
    """Check that etcd holds at least as many k* keys as wrk saw successful PUTs (the load really wrote)."""
    want = 0
    with open(a.rows) as f:
        for line in f:
            r = json.loads(line)
            if r["system"] == "etcd" and r["workload"] == "PUT" and not r.get("failed"):
                want += r["requests"] - r.get("non2xx", 0)
    body = json.dumps({"key": b64("k"), "range_end": b64("l"), "count_only": True})
    st, raw = try_request(a.url, "POST", "/v3/kv/range", body, {"Content-Type": "application/json"}, timeout=10)
    if st != 200:
        die(f"count k* keys -> {st} {raw[:200]!r}")
    have = int(json.loads(raw).get("count", "0"))
    print(f"  etcd holds {have:,} k* keys; wrk counted {want:,} successful PUTs", file=sys.stderr)
    if have < want:
        die("etcd holds fewer keys than wrk counted successful PUTs")
    # Evidence that fsync is on and how much batching etcd did: the leader's WAL fsync counters.
    st, raw = try_request(a.url, "GET", "/metrics", timeout=10)
    if st == 200:
        m = {}
        for line in raw.decode(errors="replace").splitlines():
            for name in ("etcd_disk_wal_fsync_duration_seconds_count", "etcd_disk_wal_fsync_duration_seconds_sum"):
                if line.startswith(name + " "):
                    m[name] = float(line.split()[1])
        n = m.get("etcd_disk_wal_fsync_duration_seconds_count", 0)
        if n:
            mean = m.get("etcd_disk_wal_fsync_duration_seconds_sum", 0) / n * 1000
            print(f"  etcd leader: {n:,.0f} WAL fsyncs, mean {mean:.2f} ms, {want / n:.1f} PUTs per fsync",
                  file=sys.stderr)


# ---------------------------------------------------------------- report

# (system, workload, connections, ratio to etcd's req/s, whether p99 must be no worse than etcd's)
TARGETS = [
    ("ddialab-raft", "PUT", 64, 5.0, True),   # the consensus issue
    ("ddialab-raft", "GET", 64, 5.0, False),  # the consensus issue (linearizable reads)
    ("ddialab-sync", "PUT", 64, 3.0, False),  # the foundation issue
]
SYSTEMS = ("ddialab-raft", "ddialab-sync", "ddialab-async")


def row_errors(r):
    e = r.get("errors") or {}
    # wrk's errors.status counts the >= 400 subset of our non2xx count, so it is not added again.
    return r.get("non2xx", 0) + sum(e.get(k, 0) for k in ("connect", "read", "write", "timeout"))


def fmt_num(v, nd=0):
    return "-" if v is None else f"{v:,.{nd}f}"


def build_report(rows, meta):
    """Return (table rows as lists of strings, ratio rows, target dict)."""
    table = []
    for r in rows:
        if r.get("failed"):
            table.append([r["system"], r["workload"], str(r["conns"]), "-", "-", "-", "FAILED", r.get("note", "")])
            continue
        errs = row_errors(r)
        flag = "" if errs == 0 else "<< ERRORS"
        table.append([r["system"], r["workload"], str(r["conns"]), fmt_num(r["rps"]), fmt_num(r["p50_ms"], 2),
                      fmt_num(r["p99_ms"], 2), str(errs), flag])

    by = {(r["system"], r["workload"], r["conns"]): r for r in rows if not r.get("failed")}
    ratios = []
    keys = []
    for r in rows:
        k = (r["workload"], r["conns"])
        if k not in keys:
            keys.append(k)
    for wl, c in keys:
        e = by.get(("etcd", wl, c))
        out = {"workload": wl, "conns": c, "etcd_rps": e["rps"] if e else None}
        out["errors"] = bool(e and row_errors(e))
        for sysname in SYSTEMS:
            d = by.get((sysname, wl, c))
            out[sysname] = round(d["rps"] / e["rps"], 2) if d and e and e["rps"] > 0 else None
            out["errors"] = out["errors"] or bool(d and row_errors(d))
        ratios.append(out)

    targets = []
    for sysname, wl, c, want, p99 in TARGETS:
        d = by.get((sysname, wl, c))
        e = by.get(("etcd", wl, c))
        t = {"line": f"{sysname} {wl} c={c} req/s >= {want:g}x etcd" + (", p99 no worse" if p99 else ""),
             "ratio": None, "verdict": "N/A"}
        if d and e and e["rps"] > 0:
            t["ratio"] = round(d["rps"] / e["rps"], 2)
            ok = t["ratio"] >= want and row_errors(d) == 0 and (not p99 or d["p99_ms"] <= e["p99_ms"])
            t["verdict"] = "PASS" if ok else "FAIL"
            if p99:
                t["p99_ms"] = [d["p99_ms"], e["p99_ms"]]
        targets.append(t)
    return table, ratios, targets


HEAD = ["system", "workload", "conns", "req/s", "p50 ms", "p99 ms", "errors", ""]
RHEAD = ["workload", "conns", "etcd req/s", "raft/etcd", "sync/etcd", "async/etcd", ""]
RIGHT = {2, 3, 4, 5, 6}


def aligned(head, body, right):
    widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
    lines = []
    for row in [head] + body:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if row is head:
            lines.append("  ".join("-" * w for w in widths).rstrip())
    return "\n".join(lines)


def markdown(head, body, right):
    out = ["| " + " | ".join(h or "flag" for h in head) + " |",
           "|" + "|".join("---:" if i in right else "---" for i in range(len(head))) + "|"]
    out += ["| " + " | ".join(c for c in row) + " |" for row in body]
    return "\n".join(out)


def ratio_rows(ratios):
    f = lambda v: "-" if v is None else f"{v:.2f}x"
    return [[r["workload"], str(r["conns"]), fmt_num(r["etcd_rps"])] + [f(r[s]) for s in SYSTEMS]
            + ["<< a row has errors" if r["errors"] else ""] for r in ratios]


def read_meta_dir(d):
    """run.sh leaves one file per field in the meta directory; skipped/<system> holds the reason."""
    meta = {}
    for name in sorted(os.listdir(d)):
        p = os.path.join(d, name)
        if os.path.isdir(p):
            meta[name] = {}
            for sub in sorted(os.listdir(p)):
                with open(os.path.join(p, sub)) as f:
                    meta[name][sub] = f.read().strip()
        else:
            with open(p) as f:
                meta[name] = f.read().rstrip("\n")
    return meta


def cmd_row(a):
    """Merge the labels into wrk's result object, print it as one JSON line, and a progress line to stderr."""
    r = {"system": a.system, "workload": a.workload, "conns": a.conns, "threads": a.threads, "loadavg": a.loadavg}
    try:
        with open(a.file) as f:
            r.update(json.load(f))
    except (OSError, ValueError) as e:
        r.update({"failed": True, "note": a.note or f"no wrk result ({e})"})
    print(json.dumps(r))
    if r.get("failed"):
        msg = f"FAILED: {r['note']}"
    else:
        errs = row_errors(r)
        msg = (f"{r['rps']:9,.0f} req/s  p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  errors {errs}"
               + ("  << ERRORS " + json.dumps(r.get("statuses") or r.get("errors")) if errs else ""))
    print(f"  {a.system:<14} {a.workload:<4} c={a.conns:<3} {msg}  (load {a.loadavg})", file=sys.stderr)


def cmd_report(a):
    rows = []
    if os.path.exists(a.rows):
        with open(a.rows) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    meta = read_meta_dir(a.meta_dir)
    table, ratios, targets = build_report(rows, meta)
    rrows = ratio_rows(ratios)
    skipped = meta.get("skipped") or {}

    print()
    print(aligned(HEAD, table, RIGHT))
    print()
    print("req/s ratio ddialab / etcd (same machine, same run, same wrk load):")
    print(aligned(RHEAD, rrows, {1, 2, 3, 4, 5}))
    for s, why in skipped.items():
        print(f"SKIPPED {s}: {why}")
    print()
    def target_text(t):
        if t["ratio"] is None:
            return f"{t['line']}: {t['verdict']} (a needed row is missing)"
        extra = f", p99 {t['p99_ms'][0]:.2f} vs {t['p99_ms'][1]:.2f} ms" if "p99_ms" in t else ""
        return f"{t['line']}: {t['verdict']} (ratio {t['ratio']:.2f}x{extra})"
    for t in targets:
        print(f"TARGET {target_text(t)}")

    md = [f"# kv benchmark {meta['timestamp']}", "",
          f"Host `{meta.get('host', '?')}`, {meta.get('nproc', '?')} CPUs, {meta.get('duration_s')} s per pass, "
          f"wrk `{meta.get('wrk', '?')}`, etcd `{meta.get('etcd', '?')}`, ddialab `{meta.get('ddialab', '?')}`.", "",
          f"Load at start: `{meta.get('uptime_start', '?')}`", "",
          f"Load at end: `{meta.get('uptime_end', '?')}`", "",
          markdown(HEAD, table, RIGHT), "",
          "req/s ratio ddialab / etcd:", "", markdown(RHEAD, rrows, {1, 2, 3, 4, 5}), ""]
    for s, why in skipped.items():
        md.append(f"- SKIPPED {s}: {why}")
    md += [""] + [f"- **TARGET** {target_text(t)}" for t in targets] + ["",
           "Top CPU processes at start:", "", "```", meta.get("top_start", "").rstrip(), "```", ""]
    with open(a.md, "w") as f:
        f.write("\n".join(md))
    with open(a.json, "w") as f:
        json.dump({"meta": meta, "rows": rows, "ratios": ratios, "targets": targets}, f, indent=2)
        f.write("\n")
    print(f"wrote {a.md} and {a.json}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("ports")
    s.add_argument("n", type=int)
    s.set_defaults(fn=cmd_ports)
    for name, fn in (("wait-etcd", cmd_wait_etcd), ("wait-ddialab", cmd_wait_ddialab)):
        s = sub.add_parser(name)
        s.add_argument("--deadline", type=float, default=30.0)
        s.add_argument("--pids", type=lambda v: [int(x) for x in v.split(",") if x], default=[],
                       help="comma-separated PIDs that must stay alive while waiting")
        s.add_argument("urls", nargs="+")
        s.set_defaults(fn=fn)
    s = sub.add_parser("preload")
    s.add_argument("--target", choices=("etcd", "ddialab"), required=True)
    s.add_argument("--keys", type=int, default=1000)
    s.add_argument("--value-bytes", type=int, default=256)
    s.add_argument("url")
    s.set_defaults(fn=cmd_preload)
    s = sub.add_parser("smoke")
    s.add_argument("--target", choices=("etcd", "ddialab"), required=True)
    s.add_argument("url")
    s.set_defaults(fn=cmd_smoke)
    s = sub.add_parser("report")
    for opt in ("--rows", "--meta-dir", "--md", "--json"):
        s.add_argument(opt, required=True)
    s.set_defaults(fn=cmd_report)
    s = sub.add_parser("check-keys")
    s.add_argument("--target", choices=("etcd", "ddialab"), required=True)
    s.add_argument("url")
    s.add_argument("tids", nargs="+", type=int)
    s.set_defaults(fn=cmd_check_keys)
    s = sub.add_parser("count-etcd")
    s.add_argument("--rows", required=True)
    s.add_argument("url")
    s.set_defaults(fn=cmd_count_etcd)
    s = sub.add_parser("row")
    s.add_argument("--system", required=True)
    s.add_argument("--workload", required=True)
    s.add_argument("--conns", type=int, required=True)
    s.add_argument("--threads", type=int, required=True)
    s.add_argument("--loadavg", default="")
    s.add_argument("--note", default="")
    s.add_argument("file")
    s.set_defaults(fn=cmd_row)
    a = p.parse_args()
    try:
        a.fn(a)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
