"""Snapshots and log compaction with real nodes: after --snapshot-entries applied entries a node
snapshots its state machine and drops the log before it; a follower that missed the compacted
entries catches up from the leader's snapshot; nodes restart from snapshot plus log."""

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
        st = c.wait_until(lambda: (lambda s: s if s["snapshot"] and
                                   s["first_index"] > s["snapshot"]["index"] - 5000 and
                                   s["snapshot"]["index"] >= 2 * SNAP_EVERY else None)(
                                       c.status(leader)),
                          what="the leader to snapshot")
        self.assertGreater(st["first_index"], 1, "the leader's log was not compacted")
        files = glob.glob(os.path.join(c.data_dir(leader), "snapshots", "snap-*.db"))
        self.assertTrue(files, "no snapshot file on disk")
        # With 300-entry snapshots and a 300-entry catch-up margin the follower needs entries the
        # leader no longer has: it must be sent the snapshot.
        c.start(lagging)
        c.wait_converged()
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

    def test_nodes_restart_from_their_snapshot_and_the_log_after_it(self):
        c = self.c
        leader = c.wait_ready()
        self.write(leader, 0, 2 * SNAP_EVERY + 30)
        c.wait_converged()
        for i in range(1, 4):
            c.wait_until(lambda: c.status(i)["snapshot"] is not None, what=f"node {i} to snapshot")
        keys = c.status(leader)["keys"]
        # kill -9 every node: each recovers from its newest snapshot plus the log after it.
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
            self.assertGreater(s["first_index"], 1, f"node {i} did not restart from a snapshot")
            r = c.get(i, "snap/00007", stale=True)
            self.assertEqual((r.status, r.body), (200, self.expected(7)), f"node {i}")
            self.assertRegex(c.log_text(i), r"recovered: snapshot [1-9]")


if __name__ == "__main__":
    harness.main()
