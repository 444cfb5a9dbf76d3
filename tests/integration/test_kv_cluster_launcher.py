"""ddialab kv cluster: starts N nodes as children, prints how to reach them, and on Ctrl-C
(SIGINT) stops every one of them and exits 0.
"""

import os
import re
import signal
import subprocess
import threading
import time
import unittest

import harness


class Launcher:
    """One `ddialab kv cluster` process whose output is collected line by line."""

    def __init__(self, nodes, extra=()):
        self.dir = harness.make_temp_dir("ddialab-launcher-")
        self.data_root = os.path.join(self.dir, "data")
        http_base = harness.free_port_block(nodes)
        self.http_base = http_base
        self.peer_base = harness.free_port_block(
            nodes, avoid=range(http_base + 1, http_base + nodes + 1))
        self.nodes = nodes
        self.argv = [harness.BIN, "kv", "cluster", "--nodes", str(nodes),
                     "--http-base", str(self.http_base), "--peer-base", str(self.peer_base),
                     "--data-root", self.data_root, *extra]
        self.lines = []
        self.cond = threading.Condition()
        self.proc = harness.spawn(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, env={**os.environ, "NO_COLOR": "1"})
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.node_pids = {}

    def _read(self):
        for raw in self.proc.stdout:
            with self.cond:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)  # EOF
            self.cond.notify_all()

    def output(self):
        with self.cond:
            return "\n".join(line for line in self.lines if line is not None)

    def wait_line(self, pattern, timeout=harness.DEFAULT_TIMEOUT):
        """Waits for an output line matching pattern; returns the match."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            seen = 0
            while True:
                for line in self.lines[seen:]:
                    if line is None:
                        raise AssertionError(f"the launcher's output ended before /{pattern}/:\n"
                                             + self.output())
                    m = regex.search(line)
                    if m:
                        return m
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no line matching /{pattern}/ within {timeout}s:\n"
                                         + self.output())
                self.cond.wait(left)

    def url(self, i):
        return f"http://127.0.0.1:{self.http_base + i}"

    def close(self):
        """Stops whatever is left (the launcher, then any node it left behind)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                harness.reap(self.proc, 15)
            except subprocess.TimeoutExpired:
                harness._force_kill(self.proc)
        for pid in self.node_pids.values():
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)  # a node we caused to exist, left by the launcher
        self.reader.join(timeout=5)
        self.proc.stdout.close()
        harness.remove_temp_dir(self.dir)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; /proc shows it as state Z until its parent reaps it.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class ClusterLauncherTest(unittest.TestCase):
    def start(self, nodes=3, extra=()):
        launcher = Launcher(nodes, extra)
        self.addCleanup(launcher.close)
        for i in range(1, nodes + 1):
            m = launcher.wait_line(rf"^kv-{i} started, pid (\d+):")
            launcher.node_pids[i] = int(m.group(1))
        return launcher

    def test_starts_serves_and_stops_on_sigint(self):
        L = self.start(3)
        L.wait_line(r"^kv cluster is up: 3 nodes on 127\.0\.0\.1")
        for i in range(1, 4):
            m = L.wait_line(rf"^\s+kv-{i}\s+pid (\d+)\s+(http://127\.0\.0\.1:\d+)\s+peer "
                            rf"127\.0\.0\.1:(\d+)\s+data (\S+)")
            self.assertEqual(int(m.group(1)), L.node_pids[i])
            self.assertEqual(m.group(2), L.url(i))
            self.assertEqual(int(m.group(3)), L.peer_base + i)
            self.assertEqual(m.group(4), os.path.join(L.data_root, f"kv-{i}"))
        L.wait_line(r"Ctrl-C stops the cluster")

        # The nodes elect a leader; every node serves a stale read of its write, and a follower
        # redirects to the leader's address.
        def leader():
            for i in range(1, 4):
                if harness.request(L.url(i), "GET", "/status").json()["role"] == "leader":
                    return i
            return None

        lead = harness.wait_until(leader, what="the nodes to elect a leader")
        r = harness.request(L.url(lead), "PUT", "/kv/greeting", b"hello from the launcher")
        self.assertEqual(r.status, 200, r)
        for i in range(1, 4):
            harness.wait_until(
                lambda: harness.request(L.url(i), "GET", "/kv/greeting?consistency=stale").body
                == b"hello from the launcher", what=f"node {i} to serve the stale read")
        follower = lead % 3 + 1
        r = harness.request(L.url(follower), "GET", "/kv/greeting")
        self.assertEqual((r.status, r.header("location")), (307, L.url(lead) + "/kv/greeting"))
        for i in range(1, 4):
            self.assertTrue(os.path.isdir(os.path.join(L.data_root, f"kv-{i}")))
            self.assertTrue(pid_alive(L.node_pids[i]))

        # Ctrl-C: every node stops, the launcher exits 0.
        started = time.monotonic()
        L.proc.send_signal(signal.SIGINT)
        rc = harness.reap(L.proc, timeout=20)
        elapsed = time.monotonic() - started
        self.assertEqual(rc, 0, L.output())
        self.assertLess(elapsed, 10, "stopped well within the 5 s SIGKILL grace")
        left = [pid for pid in L.node_pids.values() if pid_alive(pid)]
        self.assertEqual(left, [], "nodes left running after the launcher exited")
        proc = harness.run(["pgrep", "-f", L.data_root])
        self.assertEqual(proc.stdout.decode().split(), [], "no process uses the data root")
        self.assertIn("stopping 3 nodes", L.output())
        for i in range(1, 4):
            self.assertIn(f"kv-{i} exited with status 0", L.output(), "a clean stop of each node")

    def test_reports_a_killed_node_and_keeps_the_others(self):
        L = self.start(3)
        L.wait_line(r"^kv cluster is up")
        os.kill(L.node_pids[3], signal.SIGKILL)
        L.wait_line(r"^kv-3 was killed by signal 9")
        self.assertIsNone(L.proc.poll(), "the launcher keeps running")

        # The two others go on (electing a new leader if node 3 led) and take writes.
        def written():
            for i in (1, 2):
                try:
                    r = harness.request(L.url(i), "PUT", "/kv/after-kill", b"still up")
                except OSError:
                    continue
                if r.status == 200:
                    return True
            return False

        harness.wait_until(written, what="the remaining nodes to take a write")
        L.proc.send_signal(signal.SIGINT)
        self.assertEqual(harness.reap(L.proc, timeout=20), 0, L.output())
        self.assertEqual([p for p in L.node_pids.values() if pid_alive(p)], [])

    def test_forwards_node_flags(self):
        L = self.start(2, ("--no-elections", "--replication", "async"))
        L.wait_line(r"^kv cluster is up: 2 nodes")
        for i in (1, 2):
            s = harness.wait_until(lambda: harness.request(L.url(i), "GET", "/status").json(),
                                   what=f"node {i}'s status")
            self.assertEqual((s["replication"], s["commit_quorum"]), ("async", 1))
        L.proc.send_signal(signal.SIGTERM)
        self.assertEqual(harness.reap(L.proc, timeout=20), 0, L.output())

    def test_bad_launcher_flags_exit_2(self):
        for args in (("--nodes", "0"), ("--node", "1"), ("--http-base", "100", "--peer-base",
                                                         "101"), ("--data-dir", "x")):
            p = harness.run([harness.BIN, "kv", "cluster", *args])
            self.assertEqual(p.returncode, 2, (args, p.stderr))
            self.assertEqual(p.stderr.decode().count("\n"), 1, p.stderr)


if __name__ == "__main__":
    harness.main()
