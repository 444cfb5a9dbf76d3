"""`ddialab events produce|consume|topics|groups`: the librdkafka command line against a real
broker: lines in, records out (alone and in a group that commits), topics listed and created,
a group's offsets and lag; and clear one-line errors with a non-zero exit.
"""

import subprocess
import unittest

import harness
from test_events_kcat import Broker


class EventsCli(unittest.TestCase):
    def setUp(self):
        self.broker = Broker("--default-partitions", "2")
        self.broker.start()

    def tearDown(self):
        self.broker.close()

    def cli(self, *args, input=None, expect=0):
        p = subprocess.run([harness.BIN, "events", *args, "--bootstrap", self.broker.bootstrap],
                           input=input, capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, expect, f"{args}: {p.stderr}\n{self.broker.log_tail()}")
        return p.stdout, p.stderr

    def test_produce_then_consume_in_a_group_that_resumes_after_its_commit(self):
        _, err = self.cli("produce", "orders", "--key-delimiter", ":",
                          input="order-1:created\norder-2:created\norder-1:paid\n")
        self.assertIn("produced 3 records to orders", err)
        out, _ = self.cli("consume", "orders", "--group", "views", "--exit-at-end")
        lines = sorted(out.splitlines())
        self.assertEqual(len(lines), 3)
        by_key = {}
        for line in lines:
            partition, offset, key, value = line.split(" ", 3)
            by_key.setdefault(key, []).append((int(partition), int(offset), value))
        self.assertEqual([v for _, _, v in sorted(by_key["order-1"], key=lambda x: x[1])],
                         ["created", "paid"])
        self.assertEqual(len({p for p, _, _ in by_key["order-1"]}), 1)  # one key, one partition
        self.cli("produce", "orders", input="late\n")
        out, _ = self.cli("consume", "orders", "--group", "views", "--exit-at-end")
        self.assertEqual([line.split(" ", 3)[2:] for line in out.splitlines()], [["-", "late"]])
        out, _ = self.cli("groups", "views", "--topic", "orders")
        rows = [line.split() for line in out.splitlines() if line.startswith("orders")]
        self.assertEqual(len(rows), 2)
        self.assertTrue(all(row[4] == "0" for row in rows), out)  # caught up: no lag

    def test_topics_are_listed_and_created(self):
        out, _ = self.cli("topics", "--create", "made", "--partitions", "3")
        self.assertIn("created made with 3 partitions", out)
        _, err = self.cli("topics", "--create", "made", "--partitions", "3", expect=1)
        self.assertIn("exists", err)
        self.cli("produce", "made", input="x\ny\n")
        out, _ = self.cli("topics")
        rows = [line.split() for line in out.splitlines()[1:]]
        self.assertEqual(sorted((r[0], r[1]) for r in rows),
                         [("made", "0"), ("made", "1"), ("made", "2")])
        self.assertEqual(sum(int(r[3]) for r in rows), 2)

    def test_bad_usage_and_unknown_topics_fail_with_one_line(self):
        p = subprocess.run([harness.BIN, "events", "produce"], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1)
        p = subprocess.run([harness.BIN, "events", "consume", "t", "--from", "middle"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--from", p.stderr)
        _, err = self.cli("consume", "nope", "--exit-at-end", expect=1)
        self.assertIn("nope", err)


if __name__ == "__main__":
    harness.main()
