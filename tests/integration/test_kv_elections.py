"""With --elections the cluster chooses its own leaders: kill -9 the leader again and again while
clients write, and no acknowledged write is ever lost."""

import signal
import threading
import time
import unittest

import harness

ELECTION_MS = 500
FLAGS = ("--elections", "--election-timeout", f"{ELECTION_MS}ms", "--heartbeat", "50ms")


class Writer(threading.Thread):
    """Writes unique keys to whichever node leads, following redirects; records what was acked."""

    def __init__(self, cluster, wid, stop):
        super().__init__(daemon=True)
        self.c, self.wid, self.stop_event = cluster, wid, stop
        self.acked = {}
        self.target = 1

    def run(self):
        n = 0
        while not self.stop_event.is_set():
            key, value = f"el/{self.wid}/{n}", f"v{self.wid}-{n}".encode()
            try:
                r = self.c.put(self.target, key, value, timeout=3)
            except OSError:
                r = None
            if r is not None and r.status == 200:
                self.acked[key] = value
                n += 1
                continue
            if r is not None and r.status == 307:
                leader = r.json().get("leader")
                if leader:
                    self.target = leader
                    continue
            # An election is under way or the node is down: try the next one, at a gentle pace.
            self.target = self.target % self.c.n + 1
            self.stop_event.wait(0.01)


class ElectionFailoverTest(unittest.TestCase):
    def setUp(self):
        self.c = harness.Cluster(3, "majority", extra_flags=FLAGS)
        self.addCleanup(self.c.close)
        self.c.start_all()

    def new_leader_accepts(self, old, deadline_s):
        """Seconds until a node other than `old` leads and acknowledges a write, or a failure."""
        t0 = time.monotonic()
        probe = 0
        while time.monotonic() - t0 < deadline_s * 3:
            for i in range(1, self.c.n + 1):
                if i == old or not self.c.running(i):
                    continue
                try:
                    r = self.c.put(i, f"el/probe/{old}/{probe}", b"p", timeout=2)
                except OSError:
                    continue
                probe += 1
                if r.status == 200:
                    return time.monotonic() - t0
        self.fail(f"no new leader accepted a write within {deadline_s * 3:.1f}s:\n"
                  f"{self.c.describe()}")

    def test_killing_the_leader_ten_times_loses_no_acknowledged_write(self):
        c = self.c
        stop = threading.Event()
        writers = [Writer(c, w, stop) for w in range(3)]
        for w in writers:
            w.start()
        takeovers = []
        try:
            for _ in range(10):
                leader = c.wait_until(c.leader, what="a leader")
                c.kill(leader, signal.SIGKILL)
                took = self.new_leader_accepts(leader, 2 * ELECTION_MS / 1000)
                takeovers.append(took)
                c.start(leader)  # it comes back as a follower and catches up
        finally:
            stop.set()
            for w in writers:
                w.join(timeout=10)
        print(f"takeovers (s): {', '.join(f'{t:.2f}' for t in takeovers)}")
        slow = [t for t in takeovers if t > 2 * ELECTION_MS / 1000]
        self.assertEqual(slow, [], f"takeovers slower than 2x the election timeout: {takeovers}")
        acked = {}
        for w in writers:
            acked.update(w.acked)
        self.assertGreater(len(acked), 100, "the writers barely wrote; the test proves nothing")
        c.wait_converged()
        leader = c.leader()
        for node in range(1, c.n + 1):
            keys = set(c.list_keys(node, "el/", stale=True))
            missing = [k for k in acked if k not in keys]
            self.assertEqual(missing, [], f"node {node} lost acknowledged writes")
        for key, value in list(acked.items())[:: max(1, len(acked) // 50)]:
            r = c.get(leader, key)
            self.assertEqual((r.status, r.body), (200, value), key)

    def test_a_leader_cut_off_by_sigstop_is_replaced_and_serves_no_stale_read(self):
        c = self.c
        old = c.wait_until(c.leader, what="a leader")
        self.assertEqual(c.put(old, "el/stop", b"before").status, 200)
        c.send_signal(old, signal.SIGSTOP)
        try:
            self.new_leader_accepts(old, 2 * ELECTION_MS / 1000)
            new = c.wait_until(lambda: (lambda l: l if l and l != old else None)(c.leader()),
                               what="a new leader")
            self.assertEqual(c.put(new, "el/stop", b"after").status, 200)
        finally:
            c.send_signal(old, signal.SIGCONT)
        # The resumed node believed it led. A default (linearizable) read must not answer from its
        # stale state: it confirms with a majority first, learns of the new term, and redirects
        # or refuses. On loopback the resumed node happens to read its peers' higher-term messages
        # before any client request, so the stale window cannot be hit from outside (even the
        # leader-local `consistency=leader` path answered 307 in trials); this checks the
        # behaviour, and tests/unit/raft/test_election.c proves the mechanism deterministically
        # (a leader cut off from its majority never confirms a read and refuses it on stepping
        # down).
        r = c.get(old, "el/stop")
        self.assertIn(r.status, (200, 307, 503), r)
        if r.status == 200:
            self.assertEqual(r.body, b"after", "a deposed leader served a stale read")
        new = c.wait_until(lambda: (lambda l: l if l and l != old else None)(c.leader()),
                           what="a new leader")
        c.wait_until(lambda: c.status(old)["role"] == "follower" and
                     c.status(old)["leader"] == new, what="the old leader to follow")
        c.wait_converged()


if __name__ == "__main__":
    harness.main()
