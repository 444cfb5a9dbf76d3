"""Log compaction and snapshots with real nodes: after --snapshot-entries applied entries a node
makes its state machine durable and drops the log before it (no copy); a follower that missed
the compacted entries gets a snapshot file the leader writes for it; nodes restart from their
state machine plus the log after it."""

import glob
import os
import re
import unittest

import harness

SNAP_EVERY = 300
FLAGS = ("--elections", "--election-timeout", "500ms", "--heartbeat", "50ms",
         "--snapshot-entries", str(SNAP_EVERY))


def metric(text, name):
    m = re.search(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


class SnapshotTest(unittest.TestCase):
    def setUp(self):
        self.c = harness.Cluster(3, "majority", extra_flags=FLAGS)
        self.addCleanup(self.c.close)
        self.c.start_all()

    def write(self, leader, start, count, value_bytes=200):
        for k in range(start, start + count):
            value = f"value-{k}-".encode().ljust(value_bytes, b"x")
            r = self.c.put(leader, f"snap/{k:05d}", value)
            self.assertEqual(r.status, 200, r)

    def expected(self, k, value_bytes=200):
        return f"value-{k}-".encode().ljust(value_bytes, b"x")

    def test_a_follower_that_missed_compacted_entries_catches_up_from_a_snapshot(self):
        c = self.c
        leader = c.wait_ready()
        lagging = leader % 3 + 1
        c.stop(lagging)
        # Several snapshots' worth of writes while it is away; the leader compacts its log.
        self.write(leader, 0, 3 * SNAP_EVERY + 50)
        c.wait_until(lambda: c.status(leader)["first_index"] > SNAP_EVERY,
                     what="the leader to compact its log")
        # Compaction copies nothing: no snapshot file until a follower needs one.
        self.assertEqual(glob.glob(os.path.join(c.data_dir(leader), "snapshots", "snap-*.db")), [])
        self.assertIsNone(c.status(leader)["snapshot"])
        # With 300-entry snapshots and a 300-entry catch-up margin the follower needs entries the
        # leader no longer has: it must be sent the snapshot.
        c.start(lagging)
        c.wait_converged()
        self.assertRegex(c.metrics(leader), r"ddialab_kv_snapshots_taken_total [1-9]")
        self.assertIsNotNone(c.status(leader)["snapshot"])
        m = c.metrics(lagging)
        self.assertGreaterEqual(metric(m, "ddialab_kv_snapshots_installed_total"), 1,
                                "the follower caught up without a snapshot")
        s = c.status(lagging)
        self.assertIsNotNone(s["snapshot"])
        self.assertEqual(s["keys"], c.status(leader)["keys"])
        for k in (0, 1, SNAP_EVERY, 2 * SNAP_EVERY + 7, 3 * SNAP_EVERY + 49):
            r = c.get(lagging, f"snap/{k:05d}", stale=True)
            self.assertEqual((r.status, r.body), (200, self.expected(k)), k)
        # It follows on normally from there: new writes reach it as entries.
        self.write(leader, 5000, 20)
        c.wait_converged()
        r = c.get(lagging, "snap/05019", stale=True)
        self.assertEqual((r.status, r.body), (200, self.expected(5019)))

    def test_nodes_restart_from_their_state_machine_and_the_log_after_it(self):
        c = self.c
        leader = c.wait_ready()
        self.write(leader, 0, 2 * SNAP_EVERY + 30)
        c.wait_converged()
        for i in range(1, 4):
            c.wait_until(lambda: c.status(i)["first_index"] > 1, what=f"node {i} to compact")
        keys = c.status(leader)["keys"]
        # kill -9 every node: each recovers from its state machine plus the log after it (the
        # on-disk log drops whole 16 MiB segments only, so here it still reaches back to 1).
        for i in range(1, 4):
            c.kill(i)
        for i in range(1, 4):
            c.start(i)
        leader = c.wait_ready()
        self.write(leader, 9000, 5)
        c.wait_converged()
        for i in range(1, 4):
            s = c.status(i)
            self.assertEqual(s["keys"], keys + 5, f"node {i}")
            r = c.get(i, "snap/00007", stale=True)
            self.assertEqual((r.status, r.body), (200, self.expected(7)), f"node {i}")
            self.assertRegex(c.log_text(i), r"recovered: state machine at [1-9]")


if __name__ == "__main__":
    harness.main()
