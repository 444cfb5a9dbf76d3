"""Consumer groups on `ddialab events broker`, driven by kcat -G (librdkafka's balanced consumer).

Members of one group split a topic's partitions; the group rebalances when a member leaves, and
when a member dies without leaving, once its session times out; committed offsets let a
restarted consumer go on where its group stopped, also after the broker was killed with SIGKILL.
"""

import re
import signal
import subprocess
import threading
import unittest

import harness
from test_events_kcat import KCAT, Broker

ASSIGNED = re.compile(r"rebalanced \(memberid [^)]*\): assigned: (.*)$")


class Member:
    """A `kcat -G` member whose log (stderr) is read as it comes."""

    def __init__(self, broker, group, topic, *extra):
        argv = [KCAT, "-b", broker.bootstrap, "-G", group, topic, "-f", "%p %o %s\\n",
                "-X", "session.timeout.ms=3000", "-X", "heartbeat.interval.ms=300",
                "-X", "auto.offset.reset=earliest"] + list(extra)
        self.proc = harness.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.log, self.out = [], []
        self.threads = [threading.Thread(target=self._read, args=(self.proc.stderr, self.log)),
                        threading.Thread(target=self._read, args=(self.proc.stdout, self.out))]
        for t in self.threads:
            t.daemon = True
            t.start()

    @staticmethod
    def _read(stream, lines):
        for line in stream:
            lines.append(line.rstrip("\n"))

    def assignment(self):
        """The partitions of its latest assignment (None before the first)."""
        for line in reversed(list(self.log)):
            m = ASSIGNED.search(line)
            if m:
                return sorted(int(p) for p in re.findall(r"\[(\d+)\]", m.group(1)))
        return None

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            harness.reap(self.proc, timeout=15)
        finally:
            for t in self.threads:
                t.join(timeout=5)


class ConsumerGroups(unittest.TestCase):
    def setUp(self):
        self.broker = Broker("--default-partitions", "4")
        self.broker.start()
        self.members = []

    def tearDown(self):
        for m in self.members:
            m.stop(signal.SIGKILL)
        self.broker.close()

    def member(self, group, topic, *extra):
        m = Member(self.broker, group, topic, *extra)
        self.members.append(m)
        return m

    def wait_assignments(self, expected, what):
        """Waits until each member's latest assignment is the one expected of it."""
        def holds():
            return all(m.assignment() == want for m, want in expected)
        harness.wait_until(holds, timeout=30, what=what,
                           describe=lambda: "\n".join(
                               f"member {i}: {m.assignment()} (log: {m.log[-3:]})"
                               for i, (m, _) in enumerate(expected)))

    def test_two_members_split_the_partitions_and_rebalance_when_one_leaves(self):
        self.broker.metadata("orders")  # four partitions
        a = self.member("shop", "orders")
        self.wait_assignments([(a, [0, 1, 2, 3])], "the first member to get every partition")
        b = self.member("shop", "orders")

        def split():
            pa, pb = a.assignment(), b.assignment()
            return pa and pb and len(pa) == 2 and sorted(pa + pb) == [0, 1, 2, 3]
        harness.wait_until(split, timeout=30, what="two members to split four partitions",
                           describe=lambda: f"a: {a.assignment()}, b: {b.assignment()}")
        b.stop(signal.SIGTERM)  # a clean close leaves the group
        self.wait_assignments([(a, [0, 1, 2, 3])], "the partitions to go back to the first member")

    def test_a_member_that_dies_is_replaced_after_its_session_times_out(self):
        self.broker.metadata("payments")
        a = self.member("billing", "payments")
        self.wait_assignments([(a, [0, 1, 2, 3])], "the first member's assignment")
        b = self.member("billing", "payments")
        harness.wait_until(lambda: b.assignment() and len(b.assignment()) == 2, timeout=30,
                           what="the second member to get half the partitions")
        b.stop(signal.SIGKILL)  # no LeaveGroup: only its missing heartbeats tell
        self.wait_assignments([(a, [0, 1, 2, 3])], "the session (3 s) of the dead member to end")

    def test_committed_offsets_resume_the_group_even_after_kill_9(self):
        lines = [f"k{i}:first {i}" for i in range(12)]
        self.broker.produce("events", lines)
        first = self.member("readers", "events", "-e")
        self.assertEqual(first.proc.wait(timeout=30), 0, first.log)
        first.stop()
        self.assertEqual(sorted(line.split(" ", 2)[2] for line in first.out),
                         sorted(line.split(":", 1)[1] for line in lines))
        # The group committed at its close; the broker dies without a clean stop.
        self.broker.kill(signal.SIGKILL)
        self.broker.start()
        self.broker.produce("events", ["k100:second 100", "k101:second 101"])
        again = self.member("readers", "events", "-e")
        self.assertEqual(again.proc.wait(timeout=30), 0, again.log)
        again.stop()
        self.assertEqual(sorted(line.split(" ", 2)[2] for line in again.out),
                         ["second 100", "second 101"])


if __name__ == "__main__":
    harness.main()
