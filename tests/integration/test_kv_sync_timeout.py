"""Synchronous replication with a node down: a write times out with 503 not_enough_replicas, and
is applied once the node is back ("it stays in the leader's log and may still be applied later").
"""

import re
import time

import harness


class SyncTimeoutTest(harness.ClusterTestCase):
    REPLICATION = "sync"
    FLAGS = ("--write-timeout", "1s")

    def test_write_times_out_without_every_replica_then_applies_when_it_returns(self):
        c = self.cluster
        self.assertEqual(c.status(1)["commit_quorum"], 3)
        # All three up: writes succeed.
        r = c.put(1, "sync/ok", b"all three")
        self.assertEqual(r.status, 200, r)

        c.stop(3)
        c.wait_until(lambda: not [f for f in c.status(1)["followers"]
                                  if f["node"] == 3][0]["connected"],
                     what="the leader to see node 3 gone")
        started = time.monotonic()
        r = c.put(1, "sync/late", b"eventually", timeout=10)
        elapsed = time.monotonic() - started
        body = self.assertJsonError(r, 503, "not_enough_replicas")
        self.assertGreaterEqual(elapsed, 0.9, "the leader waits for the write timeout")
        self.assertLess(elapsed, 5.0, "the leader answers soon after the 1 s write timeout")
        self.assertEqual(body["acknowledged_by"], 2, body)
        self.assertEqual(body["required"], 3, body)
        self.assertEqual(body["replication"], "sync")
        self.assertIn("may still be applied later", body["message"])
        index = body["index"]
        self.assertGreater(index, 0)
        # Not applied yet: the leader does not serve it.
        self.assertEqual(c.get(1, "sync/late").status, 404)
        self.assertLess(c.status(1)["commit_index"], index)
        m = re.search(r'^ddialab_kv_writes_total\{result="timeout"\} (\S+)$', c.metrics(1), re.M)
        self.assertIsNotNone(m)
        self.assertGreaterEqual(float(m.group(1)), 1, "the timeout is counted")

        # The node returns: the entry gathers its third copy and is applied everywhere.
        c.start(3)
        for i in (1, 2, 3):
            c.wait_until(lambda: c.get(i, "sync/late", stale=True).body == b"eventually",
                         what=f"node {i} to apply the timed-out write")
        r = c.get(1, "sync/late")
        self.assertEqual((r.status, r.body), (200, b"eventually"))
        c.wait_applied(3, index)
        # And the cluster takes writes normally again.
        self.assertEqual(c.put(1, "sync/after", b"ok").status, 200)


class SemiSyncTest(harness.ClusterTestCase):
    REPLICATION = "semi-sync"
    FLAGS = ("--write-timeout", "1s")

    def test_one_follower_is_enough_and_none_is_not(self):
        c = self.cluster
        self.assertEqual(c.status(1)["commit_quorum"], 2)
        c.stop(3)
        r = c.put(1, "semi/one-down", b"ok")
        self.assertEqual(r.status, 200, r)
        c.stop(2)
        started = time.monotonic()
        r = c.put(1, "semi/both-down", b"late", timeout=10)
        self.assertLess(time.monotonic() - started, 5.0)
        body = self.assertJsonError(r, 503, "not_enough_replicas")
        self.assertEqual((body["acknowledged_by"], body["required"]), (1, 2), body)
        self.assertEqual(body["replication"], "semi-sync")

        # The client reports the leader's own 503 at once instead of trying the other nodes.
        urls = ",".join(c.url(i) for i in (1, 2, 3))
        started = time.monotonic()
        p = harness.run([harness.BIN, "kv", "put", "semi/cli", "v", "--endpoints", urls])
        self.assertLess(time.monotonic() - started, 5.0)
        self.assertEqual(p.returncode, 3, p.stderr)
        err = p.stderr.decode()
        self.assertEqual(err.count("\n"), 1, err)
        self.assertIn("not_enough_replicas", err)

        for i in (2, 3):
            c.start(i)
        for key, value in (("semi/both-down", b"late"), ("semi/cli", b"v")):
            for i in (1, 2, 3):
                c.wait_until(lambda: c.get(i, key, stale=True).body == value,
                             what=f"node {i} to apply {key} once the followers are back")


if __name__ == "__main__":
    harness.main()
