"""kafkajs 2.2.4 (pinned in tests/integration/kafkajs/package-lock.json) against
`ddialab events broker`: a producer (plain and gzip batches, acks=-1, headers), a consumer group
with kafkajs's own RoundRobinAssigner that reads everything back and commits, and the same group
again, which must resume after its commit; and the admin client creating topics (new, existing,
invalid name, replication beyond one node, a compacted one, an unknown config), listing groups
and describing one, deleting a topic; and a producer
whose broker is killed with SIGKILL mid-stream, none of whose acknowledged records may be lost. The package comes from the npm registry with `npm ci`
the first time the test runs (node and npm ship with the machine image; scripts/deps.sh checks
for nodejs).
"""

import collections
import json
import os
import signal
import subprocess
import unittest

import harness
from test_events_kcat import Broker

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.join(HERE, "kafkajs")


def ensure_kafkajs():
    if os.path.exists(os.path.join(PROJECT, "node_modules", "kafkajs", "package.json")):
        return
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=PROJECT,
                   check=True, timeout=300)


class Kafkajs(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        ensure_kafkajs()

    def setUp(self):
        self.broker = Broker("--default-partitions", "3")
        self.broker.start()

    def tearDown(self):
        self.broker.close()

    def test_producer_and_consumer_group_round_trip_and_resume_after_commit(self):
        env = dict(os.environ, KAFKAJS_NO_PARTITIONER_WARNING="1")
        p = subprocess.run(["node", os.path.join(PROJECT, "roundtrip.js"), self.broker.bootstrap,
                            "orders", "order-views"], capture_output=True, text=True,
                           timeout=120, env=env)
        self.assertEqual(p.returncode, 0, p.stderr + "\n" + self.broker.log_tail())
        result = json.loads(p.stdout.strip().splitlines()[-1])
        run1 = [line.split(" ") for line in result["run1"]]
        self.assertEqual(sorted(kv for _, _, kv, _ in run1),
                         sorted(f"k{i}=v{i}" for i in range(result["produced"])))
        self.assertTrue(all(h == "kafkajs" for *_, h in run1))
        # Per partition, offsets from 0 without a gap, in order.
        offsets = collections.defaultdict(list)
        for partition, offset, _, _ in run1:
            offsets[partition].append(int(offset))
        self.assertGreater(len(offsets), 1)  # spread over the partitions
        for partition, got in offsets.items():
            self.assertEqual(got, list(range(len(got))), partition)
        self.assertEqual(len(result["run2"]), 1)
        self.assertIn("late=after-commit", result["run2"][0])

    def test_admin_creates_topics_and_lists_groups(self):
        p = subprocess.run(["node", os.path.join(PROJECT, "admin.js"), self.broker.bootstrap],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr + "\n" + self.broker.log_tail())
        result = json.loads(p.stdout.strip().splitlines()[-1])
        self.assertEqual(result["created"], True)
        self.assertEqual(result["again"], False)  # TOPIC_ALREADY_EXISTS, as kafkajs reports it
        self.assertEqual(result["invalid"], "INVALID_TOPIC_EXCEPTION")
        self.assertEqual(result["replicated"], "INVALID_REPLICATION_FACTOR")
        self.assertEqual(result["partitions"], [0, 1, 2, 3, 4])
        self.assertEqual(result["compacted"], True)
        self.assertEqual(result["badConfig"], "INVALID_CONFIG")
        self.assertEqual(result["topics"], ["made", "table"])
        self.assertEqual(result["afterDelete"], ["made"])
        self.assertEqual(result["groups"], ["admin-test-group/consumer"])
        described = result["described"]
        self.assertEqual((described["state"], described["protocol"], described["protocolType"]),
                         ("Stable", "RoundRobinAssigner", "consumer"))
        (member,) = described["members"]
        self.assertEqual((member["clientId"], member["clientHost"]),
                         ("ddialab-admin-test", "/127.0.0.1"))
        self.assertGreater(member["assigned"], 0)
        self.assertEqual(described["missing"], "Dead")

    def test_consumer_reads_a_compacted_topic_through_its_gaps(self):
        p = subprocess.run([harness.BIN, "events", "topics", "--bootstrap", self.broker.bootstrap,
                            "--create", "table", "--config", "cleanup.policy=compact"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.broker.produce("table", ["a:1", "b:1", "c:1"])  # offsets 0-2: c:1 goes
        self.broker.produce("table", ["c:2", "a:2"])  # 3-4: both stay
        self.broker.produce("table", ["b:2"])  # 5: the newest batch, never compacted
        r = harness.request(f"127.0.0.1:{self.broker.http_port}", "POST", "/topics/table/compact")
        self.assertEqual(r.status, 202)
        harness.wait_until(
            lambda: self.broker.http("/topics/table")[1]["partitions"][0]["compaction"]["passes"],
            what="the compaction pass", describe=self.broker.log_tail)
        p = subprocess.run(["node", os.path.join(PROJECT, "compacted.js"), self.broker.bootstrap,
                            "table", "4"], capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr + "\n" + self.broker.log_tail())
        got = json.loads(p.stdout.strip().splitlines()[-1])
        # b:1 (1) stays: the map covers only batches before the newest, where b:1 is b's newest.
        self.assertEqual(got, ["1 b=1", "3 c=2", "4 a=2", "5 b=2"])

    def test_kill_9_mid_stream_loses_no_acknowledged_record(self):
        self.broker.metadata("stream")
        env = dict(os.environ, KAFKAJS_NO_PARTITIONER_WARNING="1")
        producer = harness.spawn(["node", os.path.join(PROJECT, "acked.js"),
                                  self.broker.bootstrap, "stream"], stdout=subprocess.PIPE,
                                 text=True, env=env)
        acked = []
        try:
            # Kill the broker while the producer is sending, once a few hundred records are in.
            for line in producer.stdout:
                acked.append(int(line))
                if len(acked) >= 500:
                    self.broker.kill(signal.SIGKILL)
                    break
            rest, _ = producer.communicate(timeout=60)
            acked += [int(x) for x in rest.split()]
        finally:
            if producer.poll() is None:
                producer.kill()
            harness.reap(producer)
        self.broker.start()
        stored = {int(v) for v in self.broker.consume("stream", "%s\\n")}
        lost = sorted(set(acked) - stored)
        self.assertEqual(lost, [], f"{len(lost)} acknowledged records are missing")
        self.assertGreaterEqual(len(acked), 500)


if __name__ == "__main__":
    harness.main()
