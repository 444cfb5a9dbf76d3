"""Membership changes with real nodes: `ddialab kv --node 4 --join URL` adds a node, which catches
up as a learner and then votes; DELETE /admin/members/N removes a node (the leader too, which
steps down); bad requests get clear errors."""

import unittest

import harness

FLAGS = ("--elections", "--election-timeout", "500ms", "--heartbeat", "50ms",
         "--snapshot-entries", "200")


class MembershipTest(unittest.TestCase):
    def setUp(self):
        # Four slots; nodes 1-3 form the cluster (their --peers list only them), node 4 joins.
        self.c = harness.Cluster(4, "majority", extra_flags=FLAGS)
        self.addCleanup(self.c.close)
        c = self.c
        three = ",".join(f"{i}=127.0.0.1:{c.peer_ports[i]}" for i in (1, 2, 3))
        for i in (1, 2, 3):
            c.node_flags[i] = ["--peers", three]
        c.node_flags[4] = ["--peers", f"4=127.0.0.1:{c.peer_ports[4]}",
                           "--join", f"http://{c.addr(1)}"]
        for i in (1, 2, 3):
            c.start(i, wait=False)
        for i in (1, 2, 3):
            c.wait_healthy(i)
        self.leader = c.wait_ready(nodes=[1, 2, 3])

    def members(self, i):
        r = self.c.request(i, "GET", "/admin/members")
        self.assertEqual(r.status, 200, r)
        return {m["id"]: m["role"] for m in r.json()["members"]}

    def wait_change_committed(self, i):
        self.c.wait_until(lambda: self.c.request(i, "GET", "/admin/members").json()["committed"],
                          what=f"the membership change to commit on node {i}")

    def write(self, start, count):
        for k in range(start, start + count):
            r = self.c.put(self.leader, f"m/{k:04d}", f"v{k}".encode())
            if r.status == 307:
                self.leader = r.json()["leader"]
                r = self.c.put(self.leader, f"m/{k:04d}", f"v{k}".encode())
            self.assertEqual(r.status, 200, r)

    def test_a_joining_node_catches_up_as_a_learner_then_votes(self):
        c = self.c
        self.write(0, 500)  # more than two snapshots: the new node starts from one
        c.start(4)
        c.wait_until(lambda: self.members(self.leader).get(4) == "voter",
                     what="node 4 to be promoted to voter")
        self.assertEqual(self.members(self.leader), {1: "voter", 2: "voter", 3: "voter", 4: "voter"})
        c.wait_converged(nodes=[1, 2, 3, 4])
        # The leader had compacted its log: node 4 started from the leader's snapshot.
        self.assertRegex(c.metrics(4), r"ddialab_kv_snapshots_installed_total [1-9]")
        s = c.status(4)
        self.assertEqual(s["keys"], c.status(self.leader)["keys"])
        r = c.get(4, "m/0123", stale=True)
        self.assertEqual((r.status, r.body), (200, b"v123"))
        # Four voters: a majority is three. With two of them down nothing commits.
        self.assertEqual(c.status(self.leader)["commit_quorum"], 3)
        # Node 4 restarts from its own disk (its join.json, log and snapshot), still a member.
        c.restart(4)
        self.write(1000, 5)
        c.wait_converged(nodes=[1, 2, 3, 4])
        self.assertEqual(c.get(4, "m/1004", stale=True).body, b"v1004")

    def test_removing_members_the_leader_included(self):
        c = self.c
        self.write(0, 20)
        c.start(4)
        c.wait_until(lambda: self.members(self.leader).get(4) == "voter", what="node 4 to vote")
        # One change at a time: while the promotion is uncommitted another is refused (503 busy).
        self.wait_change_committed(self.leader)
        # Remove node 4 again: three voters, and it hears nothing new.
        r = c.request(self.leader, "DELETE", "/admin/members/4")
        self.assertEqual(r.status, 202, r)
        c.wait_until(lambda: 4 not in self.members(self.leader), what="node 4 to be removed")
        # Node 4 may still apply what it had received up to its removal (it may be behind when
        # the leader drops it), never anything written after it.
        removed_at = c.status(self.leader)["last_index"]
        self.write(100, 10)
        self.assertEqual(c.status(self.leader)["commit_quorum"], 2)
        # Remove the leader itself: it steps down once the change commits, the other two go on.
        old = self.leader
        self.wait_change_committed(old)
        r = c.request(old, "DELETE", f"/admin/members/{old}")
        self.assertEqual(r.status, 202, r)
        new = c.wait_until(lambda: (lambda l: l if l and l != old and l != 4 else None)(
            c.leader()), what="a leader among the remaining two")
        self.leader = new
        self.assertEqual(set(self.members(new)), {1, 2, 3} - {old})
        self.write(200, 5)
        self.assertNotEqual(c.status(old)["role"], "leader")
        self.assertLessEqual(c.status(4)["applied_index"], removed_at)

    def test_bad_membership_requests_are_refused_clearly(self):
        c = self.c
        for body in (b"not json", b'{"id": 0, "peer": "127.0.0.1:1"}', b'{"id": 99, "peer": "x:1"}',
                     b'{"id": 5}', b'{"id": 5, "peer": "no-port"}',
                     b'{"id": 5, "peer": "127.0.0.1:9", "role": "boss"}'):
            r = c.request(self.leader, "POST", "/admin/members", body=body)
            self.assertJsonError(r, 400)
        self.assertJsonError(c.request(self.leader, "DELETE", "/admin/members/9"), 404)
        self.assertJsonError(c.request(self.leader, "DELETE", "/admin/members/x"), 400)
        follower = next(i for i in (1, 2, 3) if i != self.leader)
        r = c.request(follower, "POST", "/admin/members",
                      body=b'{"id": 5, "peer": "127.0.0.1:9"}')
        self.assertEqual(r.status, 307, r)

    def assertJsonError(self, r, status):
        self.assertEqual(r.status, status, r)
        body = r.json()
        self.assertIn("error", body)
        self.assertIn("message", body)


if __name__ == "__main__":
    harness.main()
