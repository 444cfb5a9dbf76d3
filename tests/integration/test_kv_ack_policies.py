"""Replication modes as acknowledgement policies on top of Raft (elections on): every entry still
commits on a majority; --replication only decides when the client hears back. async answers once
the leader has the write on disk, so a failover can lose an acknowledged write; sync answers once
every node has it."""

import signal
import unittest

import harness

ELECTION = ("--elections", "--election-timeout", "500ms", "--heartbeat", "50ms",
            "--write-timeout", "1s")


def others(c, leader):
    return [i for i in range(1, c.n + 1) if i != leader]


class AsyncAcknowledgementTest(unittest.TestCase):
    def setUp(self):
        self.c = harness.Cluster(3, "async", extra_flags=ELECTION)
        self.addCleanup(self.c.close)
        self.c.start_all()

    def test_async_acknowledges_before_commit_and_a_failover_loses_that_write(self):
        c = self.c
        leader = c.wait_ready()
        s = c.status(leader)
        self.assertEqual((s["commit_quorum"], s["ack_copies"]), (2, 1))
        r = c.put(leader, "ack/normal", b"1")
        self.assertEqual(r.status, 200, r)
        # Followers down: nothing can commit, yet async answers at once from the leader's disk.
        # (Killed rather than frozen: a frozen follower would find the entry in its socket
        # buffer on waking, and the next leader could commit it after all.)
        followers = others(c, leader)
        for f in followers:
            c.kill(f)
        try:
            r = c.put(leader, "ack/doomed", b"acknowledged")
            self.assertEqual(r.status, 200, r)
            self.assertIs(r.json()["committed"], False)
            # A conditional write's outcome depends on the state: it waits for the commit,
            # which cannot come.
            r = c.put(leader, "ack/conditional", b"x", headers={"If-None-Match": "*"})
            self.assertIn(r.status, (503, 307), r)
            # The leader now freezes too, and the followers elect a leader without the write.
            c.send_signal(leader, signal.SIGSTOP)
        finally:
            for f in followers:
                c.start(f, wait=False)
        try:
            new = c.wait_until(lambda: (lambda l: l if l and l != leader else None)(c.leader()),
                               what="a new leader among the followers")
            self.assertEqual(c.put(new, "ack/after", b"2").status, 200)
            self.assertEqual(c.get(new, "ack/doomed").status, 404,
                             "the new leader cannot have a write only the old leader had")
        finally:
            c.send_signal(leader, signal.SIGCONT)
        # The old leader rejoins, discards the entry, and counts an acknowledged write lost.
        c.wait_until(lambda: c.status(leader)["discarded_acknowledged_entries"] >= 1,
                     what="the old leader to count the lost acknowledged write")
        c.wait_converged()
        for i in range(1, 4):
            self.assertEqual(c.get(i, "ack/doomed", stale=True).status, 404, f"node {i}")
            self.assertEqual(c.get(i, "ack/normal", stale=True).body, b"1", f"node {i}")
        self.assertRegex(c.metrics(leader),
                         r"ddialab_kv_discarded_acknowledged_entries_total [1-9]")


class SyncAcknowledgementTest(unittest.TestCase):
    def setUp(self):
        self.c = harness.Cluster(3, "sync", extra_flags=ELECTION)
        self.addCleanup(self.c.close)
        self.c.start_all()

    def test_sync_waits_for_every_copy_while_a_majority_still_commits(self):
        c = self.c
        leader = c.wait_ready()
        s = c.status(leader)
        self.assertEqual((s["commit_quorum"], s["ack_copies"]), (2, 3))
        r = c.put(leader, "sync/a", b"1")
        self.assertEqual((r.status, r.json()["committed"]), (200, True))
        slow = others(c, leader)[0]
        c.send_signal(slow, signal.SIGSTOP)
        try:
            r = c.put(leader, "sync/b", b"2")
            # Committed on the majority and applied, but one copy short: 503, saying so.
            self.assertEqual(r.status, 503, r)
            self.assertIs(r.json()["committed"], True)
            self.assertEqual(r.json()["acknowledged_by"], 2)
            # Unlike a static cluster with --replication sync, the cluster stays writable in
            # the sense that matters: the value is there for a linearizable read.
            got = c.get(leader, "sync/b")
            self.assertEqual((got.status, got.body), (200, b"2"))
        finally:
            c.send_signal(slow, signal.SIGCONT)
        c.wait_converged()
        r = c.put(leader, "sync/c", b"3")
        self.assertEqual(r.status, 200, r)


if __name__ == "__main__":
    harness.main()
