"""Nodes that stop or crash come back with their data and catch up with the leader."""

import signal
import unittest
from concurrent.futures import ThreadPoolExecutor

import harness


class RecoveryTest(unittest.TestCase):
    def setUp(self):
        self.c = harness.Cluster(3, "majority")
        self.addCleanup(self.c.close)
        self.c.start_all()
        self.assertEqual(self.c.leader(), 1)

    def put_many(self, node, keys, workers=8):
        """PUTs every key (value = 'v:' + key) over several connections; all must be 200."""

        def put(key):
            r = self.c.put(node, key, b"v:" + key.encode())
            return key, r.status, r

        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(put, keys))
        bad = [(k, r) for k, status, r in results if status != 200]
        self.assertEqual(bad, [], "writes that were not acknowledged")

    def assert_follower_has(self, node, expected, prefix):
        """Node's stale listing under prefix equals expected {key: value}."""
        got = self.c.list_keys(node, prefix, stale=True)
        missing = sorted(set(expected) - set(got))
        wrong = sorted(k for k in expected if k in got and got[k] != expected[k])
        self.assertEqual((missing[:5], len(missing)), ([], 0), f"node {node} lacks keys")
        self.assertEqual(wrong[:5], [], f"node {node} has wrong values")

    def test_stopped_follower_catches_up_on_500_writes(self):
        c = self.c
        c.stop(3)
        c.wait_until(lambda: not [f for f in c.status(1)["followers"]
                                  if f["node"] == 3][0]["connected"],
                     what="the leader to see node 3 disconnected")
        keys = [f"catchup/{i:04d}" for i in range(500)]
        self.put_many(1, keys)
        leader = c.status(1)
        lag = [f for f in leader["followers"] if f["node"] == 3][0]["lag"]
        self.assertGreaterEqual(lag, 500, leader)
        self.assertLessEqual(c.status(3 - 1)["applied_index"], leader["applied_index"])

        c.start(3)
        c.wait_applied(3, leader["applied_index"])
        c.wait_until(lambda: [f for f in c.status(1)["followers"] if f["node"] == 3][0]["lag"]
                     == 0, what="the leader to report node 3's lag as 0")
        expected = {k: b"v:" + k.encode() for k in keys}
        self.assert_follower_has(3, expected, "catchup/")
        for k in (keys[0], keys[250], keys[-1]):
            r = c.get(3, k, stale=True)
            self.assertEqual((r.status, r.body), (200, expected[k]))
        s3 = c.status(3)
        self.assertEqual((s3["role"], s3["leader"], s3["keys"]), ("follower", 1, 500))

    def test_leader_killed_with_sigkill_keeps_every_acknowledged_write(self):
        c = self.c
        writers = [harness.Writer(c, 1, f"crash/w{t}/") for t in range(3)]
        for w in writers:
            w.start()
        c.wait_until(lambda: sum(w.count() for w in writers) >= 300,
                     what="300 acknowledged writes")
        self.assertEqual(c.kill(1, signal.SIGKILL), -signal.SIGKILL)
        acked = {}
        for w in writers:
            acked.update(w.stop())
        self.assertGreaterEqual(len(acked), 300)

        c.start(1)
        self.assertEqual(c.wait_ready(), 1, "node 1 leads again after its restart")
        got = c.list_keys(1, "crash/")
        lost = sorted(k for k in acked if got.get(k) != acked[k][0])
        self.assertEqual(lost, [], f"{len(lost)} of {len(acked)} acknowledged writes lost")
        # The leader's linearizable reads agree with its listing.
        for k in sorted(acked)[:: max(1, len(acked) // 20)]:
            r = c.get(1, k)
            self.assertEqual((r.status, r.body), (200, acked[k][0]), k)
        # The followers converge on the same data, and the cluster takes new writes.
        self.assertEqual(c.put(1, "crash/after-restart", b"ok").status, 200)
        c.wait_converged()
        final = c.list_keys(1, "crash/")
        for f in (2, 3):
            self.assertEqual(c.list_keys(f, "crash/", stale=True), final, f"node {f}")

    def test_follower_killed_mid_load_restarts_and_converges(self):
        c = self.c
        w = harness.Writer(c, 1, "midload/")
        w.start()
        try:
            c.wait_until(lambda: w.count() >= 100, what="100 acknowledged writes")
            self.assertEqual(c.kill(2, signal.SIGKILL), -signal.SIGKILL)
            # Node 3 is still a majority with the leader: writes keep being acknowledged.
            before = w.count()
            c.wait_until(lambda: w.count() >= before + 100,
                         what="writes to continue while node 2 is down")
            c.start(2)
            c.wait_ready()
            before = w.count()
            c.wait_until(lambda: w.count() >= before + 100,
                         what="writes to continue after node 2 is back")
        finally:
            acked = w.stop()
        self.assertEqual(w.failed, 0, "no write failed: a majority was up all along")
        c.wait_converged()
        expected = {k: v for k, (v, _) in acked.items()}
        leader_view = c.list_keys(1, "midload/")
        self.assertEqual(leader_view, expected)
        for f in (2, 3):
            self.assertEqual(c.list_keys(f, "midload/", stale=True), expected, f"node {f}")
        statuses = [c.status(i) for i in (1, 2, 3)]
        self.assertEqual(len({(s["applied_index"], s["term"]) for s in statuses}), 1, statuses)

    def test_sigterm_stops_each_node_with_exit_0(self):
        c = self.c
        self.assertEqual(c.put(1, "sigterm/k", b"v").status, 200)
        c.wait_converged()
        codes = {i: c.stop(i) for i in (3, 2, 1)}
        self.assertEqual(codes, {1: 0, 2: 0, 3: 0}, "exit codes after SIGTERM\n" + c.describe())

    def test_graceful_restart_of_every_node_keeps_the_data(self):
        c = self.c
        keys = [f"restart/{i:03d}" for i in range(50)]
        self.put_many(1, keys)
        c.wait_converged()
        for i in (2, 3, 1):
            c.stop(i)
        for i in (1, 2, 3):
            c.start(i, wait=False)
        for i in (1, 2, 3):
            c.wait_healthy(i)
        self.assertEqual(c.wait_ready(), 1)
        expected = {k: b"v:" + k.encode() for k in keys}
        self.assertEqual(c.list_keys(1, "restart/"), expected)
        for f in (2, 3):
            self.assert_follower_has(f, expected, "restart/")


if __name__ == "__main__":
    harness.main()
