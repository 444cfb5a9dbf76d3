#!/usr/bin/env python3
"""A stand-in for `ddialab kv` that speaks the node's HTTP contract, to test bench/kv/run.sh itself.

    bench/kv/run.sh bench/kv/fake_ddialab.py

It is NOT a kv store worth measuring: one in-memory dict per process, no replication, no disk. It exists so
the ddialab half of the benchmark (start, readiness wait, loads, stop, report) can be exercised before the
real node exists or when it is broken. Contract it follows:

    fake_ddialab.py kv --node N --http HOST:PORT --peer HOST:PORT --peers 1=H:P,2=H:P,3=H:P
                       --data-dir DIR --replication MODE [--fsync MODE] [--leader N]
    PUT /kv/{key} (body = value) -> 200 JSON;  GET /kv/{key} -> 200 raw value or 404
    GET /healthz -> 200;  GET /status -> {"role", "followers": [{"node", "match_index", "connected"}]}

The leader reports a follower "connected" once a TCP connect to that follower's --peer port succeeds.
Set FAKE_DDIALAB_START_DELAY=S to make readiness take S seconds (to test the wait).
"""

import argparse
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def hostport(s):
    h, p = s.rsplit(":", 1)
    return h, int(p)


def main():
    if len(sys.argv) < 2 or sys.argv[1] != "kv":
        print("usage: fake_ddialab.py kv --node N ...", file=sys.stderr)
        return 2
    p = argparse.ArgumentParser(prog="fake_ddialab.py kv")
    p.add_argument("--node", type=int, required=True)
    p.add_argument("--http", required=True)
    p.add_argument("--peer", required=True)
    p.add_argument("--peers", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--replication", required=True)
    p.add_argument("--fsync", default="batch")
    p.add_argument("--leader", type=int, default=1)
    a = p.parse_args(sys.argv[2:])

    peers = {int(k): hostport(v) for k, v in (x.split("=", 1) for x in a.peers.split(","))}
    started = time.monotonic() + float(os.environ.get("FAKE_DDIALAB_START_DELAY", "0"))
    store, lock = {}, threading.Lock()
    state = {"index": 0}

    peer_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    peer_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    peer_sock.bind(hostport(a.peer))
    peer_sock.listen(16)

    def accept_peers():
        while True:
            c, _ = peer_sock.accept()
            c.close()

    threading.Thread(target=accept_peers, daemon=True).start()

    def follower_connected(n):
        try:
            with socket.create_connection(peers[n], timeout=0.2):
                return True
        except OSError:
            return False

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *args):
            pass

        def reply(self, code, body, ctype="application/json"):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/healthz":
                ok = time.monotonic() >= started
                return self.reply(200 if ok else 503, b'{"ok":true}' if ok else b'{"ok":false}')
            if self.path == "/status":
                leader = a.node == a.leader
                fol = []
                if leader:
                    fol = [{"node": n, "match_index": state["index"], "connected": follower_connected(n)}
                           for n in sorted(peers) if n != a.node]
                s = {"node": a.node, "role": "leader" if leader else "follower", "followers": fol}
                return self.reply(200, json.dumps(s).encode())
            if self.path.startswith("/kv/"):
                with lock:
                    v = store.get(self.path[4:])
                if v is None:
                    return self.reply(404, b'{"error":"not found"}')
                return self.reply(200, v, "application/octet-stream")
            self.reply(404, b'{"error":"no route"}')

        def do_PUT(self):
            if not self.path.startswith("/kv/"):
                return self.reply(404, b'{"error":"no route"}')
            v = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                store[self.path[4:]] = v
                state["index"] += 1
                idx = state["index"]
            self.reply(200, json.dumps({"index": idx}).encode())

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            pass  # clients (wrk) drop connections at the end of a pass; that is not news

    srv = Server(hostport(a.http), Handler)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
