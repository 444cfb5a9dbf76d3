"""Manual failover with asynchronous replication, and the acknowledged writes it loses.

With --replication async the leader acknowledges a write once it is durable on its own disk. If
the leader dies before its followers received the write and an operator promotes a follower, the
write is gone: the old leader, when it comes back, discards it and says so in /status and
/metrics. This is the lab's point, so the test checks that the loss is real and reported.
"""

import re
import signal
import unittest

import harness


class AsyncFailoverTest(unittest.TestCase):
    def setUp(self):
        self.c = harness.Cluster(3, "async")
        self.addCleanup(self.c.close)
        self.c.start_all()
        self.assertEqual(self.c.leader(), 1)
        self.assertEqual(self.c.status(1)["commit_quorum"], 1)

    def put_shared_key(self):
        """A key every node has before the trouble starts; returns the leader's term."""
        c = self.c
        self.assertEqual(c.put(1, "fo/before", b"shared").status, 200)
        for i in (2, 3):
            c.wait_until(lambda: c.get(i, "fo/before", stale=True).status == 200,
                         what=f"node {i} to receive fo/before")
        return c.status(1)["term"]

    def write_on_leader_alone(self, keys):
        for key in keys:
            r = self.c.put(1, key, b"acknowledged by the leader alone", timeout=5)
            self.assertEqual(r.status, 200, r)

    def promote_node_2(self, old_term):
        c = self.c
        r = c.request(2, "POST", "/admin/promote")
        self.assertEqual(r.status, 200, r)
        body = r.json()
        self.assertEqual((body["node"], body["role"]), (2, "leader"))
        self.assertGreater(body["term"], old_term)
        self.assertEqual(body["previous_leader"], 1)
        s2 = c.status(2)
        self.assertEqual((s2["role"], s2["leader"], s2["term"]), ("leader", 2, body["term"]))
        new_term = s2["term"]
        c.wait_until(lambda: (c.status(3)["leader"], c.status(3)["term"]) == (2, new_term),
                     what="node 3 to follow node 2")
        return new_term

    def write_new_keys_on_node_2(self):
        c = self.c
        new_keys = [f"fo/new-{k:02d}" for k in range(10)]
        for key in new_keys:
            r = c.put(2, key, b"written after the failover")
            self.assertEqual(r.status, 200, r)
        # A redirect from node 3 now points at node 2.
        r = c.get(3, "fo/new-00")
        self.assertEqual((r.status, r.header("location")),
                         (307, c.url(2) + harness.key_path("fo/new-00")))
        return new_keys

    def restart_old_leader(self, new_term):
        """Node 1 comes back with the same flags, believing it leads at the old term, and is
        told otherwise by node 2. Returns its /status once it caught up."""
        c = self.c
        c.start(1)

        def follows_node_2():
            s = c.status(1)
            return s["role"] == "follower" and s["leader"] == 2 and s["term"] == new_term

        c.wait_until(follows_node_2, what="the old leader to follow node 2 at the new term")
        c.wait_converged()
        return c.status(1)

    def test_promotion_after_losing_the_leader_discards_its_unreplicated_writes(self):
        c = self.c
        old_term = self.put_shared_key()
        # The followers are down while the leader alone acknowledges 20 writes (a paused follower
        # would not do: see the next test), then the leader dies and the followers come back.
        for i in (2, 3):
            c.kill(i, signal.SIGKILL)
        lost = [f"fo/lost-{k:02d}" for k in range(20)]
        self.write_on_leader_alone(lost)
        self.assertEqual(c.status(1)["keys"], 21)
        # The count below is of entries the node knows it applied: ones its state machine has
        # committed to SQLite (a crash forgets the last tick's applies, which the log redoes).
        c.wait_until(lambda: c.status(1)["flushed_index"] == c.status(1)["applied_index"],
                     what="node 1 to commit its applied entries to SQLite")
        c.kill(1, signal.SIGKILL)
        for i in (2, 3):
            c.start(i)

        new_term = self.promote_node_2(old_term)
        new_keys = self.write_new_keys_on_node_2()
        s1 = self.restart_old_leader(new_term)

        # The old leader counts the acknowledged writes it had to throw away.
        self.assertGreaterEqual(s1["discarded_applied_entries"], 20, s1)
        self.assertGreaterEqual(s1["discarded_entries"], s1["discarded_applied_entries"], s1)
        m = re.search(r"^ddialab_kv_discarded_applied_entries_total(?:\{\})? (\S+)$",
                      c.metrics(1), re.M)
        self.assertIsNotNone(m, "ddialab_kv_discarded_applied_entries_total is exported")
        self.assertGreaterEqual(float(m.group(1)), 20)
        self.assertIn("discarding", c.log_text(1), "the old leader logs what it discards")

        # The 20 writes are gone everywhere; the new ones and the shared one are everywhere.
        for i in (1, 2, 3):
            keys = c.list_keys(i, "fo/", stale=True)
            self.assertEqual(sorted(k for k in keys if k.startswith("fo/lost")), [],
                             f"node {i} still has lost writes")
            self.assertEqual(sorted(keys), sorted(["fo/before"] + new_keys), f"node {i}")
            for key in lost[:3]:
                self.assertEqual(c.get(i, key, stale=True).status, 404)
        self.assertEqual(c.get(2, "fo/before").body, b"shared")
        self.assertEqual(c.status(2)["discarded_applied_entries"], 0)
        self.assertEqual(c.wait_ready(), 2)

        # Promoting the node that already leads is refused with a JSON error.
        r = c.request(2, "POST", "/admin/promote")
        self.assertTrue(400 <= r.status < 500, r)
        self.assertIsInstance(r.json()["error"], str)
        self.assertIsInstance(r.json()["message"], str)
        self.assertEqual(c.status(2)["term"], new_term, "a refused promotion changes nothing")

    def test_writes_acknowledged_while_followers_are_paused_survive_the_failover(self):
        # SIGSTOP does not cut a follower off: the leader's AppendEntries wait in the paused
        # follower's socket buffer, and the leader's death closes the connection with a FIN after
        # them. Resumed, the followers read them, so nothing is lost.
        c = self.c
        old_term = self.put_shared_key()
        for i in (2, 3):
            c.send_signal(i, signal.SIGSTOP)
        try:
            kept = [f"fo/kept-{k:02d}" for k in range(20)]
            self.write_on_leader_alone(kept)
            c.kill(1, signal.SIGKILL)
        finally:
            for i in (2, 3):
                c.send_signal(i, signal.SIGCONT)
        # Promote node 2 only once it has read what was waiting for it.
        # (Entries 1 and 2 are the first leader's no-op and fo/before; the last commit index
        # may not have reached them, but the new leader commits what its log holds.)
        c.wait_until(lambda: c.status(2)["last_index"] >= 22 and c.status(3)["last_index"] >= 22,
                     what="the resumed followers to log the buffered writes")
        new_term = self.promote_node_2(old_term)
        new_keys = self.write_new_keys_on_node_2()
        self.restart_old_leader(new_term)
        for i in (1, 2, 3):
            keys = c.list_keys(i, "fo/", stale=True)
            self.assertEqual(sorted(keys), sorted(["fo/before"] + kept + new_keys), f"node {i}")

    def test_restarted_old_leader_cut_off_does_not_lead_and_loses_nothing(self):
        c = self.c
        old_term = self.put_shared_key()
        c.wait_converged()
        c.kill(1, signal.SIGKILL)
        new_term = self.promote_node_2(old_term)
        # Node 1 restarts while the others are paused: it led before, but it cannot confirm
        # with a majority that nobody took over, so it must not lead (and acknowledge) alone.
        for i in (2, 3):
            c.send_signal(i, signal.SIGSTOP)
        try:
            c.start(1)
            c.wait_until(lambda: c.status(1)["reclaiming"],
                         what="the restarted old leader to ask its peers before leading")
            s1 = c.status(1)
            self.assertEqual(s1["role"], "follower", s1)
            r = c.request(1, "PUT", "/kv/fo/while-alone", b"x")
            self.assertEqual(r.status, 503, r)
        finally:
            for i in (2, 3):
                c.send_signal(i, signal.SIGCONT)
        c.wait_until(lambda: c.status(1)["term"] == new_term and c.status(1)["leader"] == 2,
                     what="the old leader to follow node 2")
        c.wait_converged()
        s1 = c.status(1)
        self.assertFalse(s1["reclaiming"], s1)
        self.assertEqual(sorted(c.list_keys(1, "fo/", stale=True)), ["fo/before"])
        self.assertEqual(s1["discarded_entries"], 0, s1)
        self.assertEqual(s1["discarded_applied_entries"], 0, s1)


class PromoteOnLeaderTest(harness.ClusterTestCase):
    def test_promote_on_the_leader_is_a_4xx_json_error(self):
        c = self.cluster
        term = c.status(1)["term"]
        r = c.request(1, "POST", "/admin/promote")
        self.assertTrue(400 <= r.status < 500, r)
        body = r.json()
        self.assertIsInstance(body["error"], str)
        self.assertIn("already the leader", body["message"])
        s = c.status(1)
        self.assertEqual((s["role"], s["term"]), ("leader", term))

    def test_promote_needs_post(self):
        r = self.cluster.request(2, "GET", "/admin/promote")
        self.assertEqual(r.status, 405, r)
        self.assertEqual(self.cluster.status(2)["role"], "follower")


if __name__ == "__main__":
    harness.main()
