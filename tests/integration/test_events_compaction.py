"""Compacted topics and DeleteTopics on `ddialab events broker`, driven by kcat and the CLI.

A topic created with cleanup.policy=compact keeps the newest record per key, at the offset it was
written at, in every codec librdkafka offers; tombstones remove keys; the compacted log survives
kill -9; records without a key are refused. DeleteTopics removes a topic's data, and its name can
be used again for a new, empty topic.
"""

import os
import signal
import subprocess
import unittest

import harness
from test_events_kcat import CODECS, Broker


def cli(broker, *args):
    """Runs `ddialab events ARGS --bootstrap ...`: (exit status, stdout + stderr)."""
    p = subprocess.run([harness.BIN, "events", *args, "--bootstrap", broker.bootstrap],
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


def records(broker, topic):
    """(key, value, offset) of every record from the beginning; value None for a tombstone."""
    out = []
    for line in broker.consume(topic, "%k\t%S\t%s\t%o\\n"):
        key, size, value, offset = line.split("\t")
        out.append((key, None if size == "-1" else value, int(offset)))
    return out


def newest_per_key(recs):
    last = {}
    for key, value, offset in recs:
        last[key] = (key, value, offset)
    return sorted(last.values(), key=lambda r: r[2])


class Compaction(unittest.TestCase):
    def setUp(self):
        self.broker = Broker("--retention-check", "50ms")
        self.broker.start()

    def tearDown(self):
        self.broker.close()

    def create(self, topic, configs):
        rc, out = cli(self.broker, "topics", "--create", topic, "--config", configs)
        self.assertEqual(rc, 0, out)

    def partition(self, topic):
        status, body = self.broker.http(f"/topics/{topic}")
        self.assertEqual(status, 200, body)
        return body["partitions"][0]

    def compact_now(self, topic):
        passes = self.partition(topic)["compaction"]["passes"]
        r = harness.request(f"127.0.0.1:{self.broker.http_port}", "POST",
                            f"/topics/{topic}/compact")
        self.assertEqual(r.status, 202, r.json())
        harness.wait_until(lambda: self.partition(topic)["compaction"]["passes"] > passes,
                           what="a compaction pass", describe=self.broker.log_tail)

    def test_compacted_topic_keeps_the_newest_value_per_key_in_every_codec(self):
        self.create("kv", "cleanup.policy=compact,delete.retention.ms=0")
        for round_ in range(3):
            for codec in CODECS:
                self.broker.produce("kv", [f"k{i}:{codec}-{round_}-{i}" for i in range(20)],
                                    "-z", codec)
        self.broker.produce("kv", ["k5:"], "-Z")  # a tombstone: kcat -Z sends empty as null
        # A batch that loses only its last record: it still spans that record's offset.
        self.broker.produce("kv", ["p:1", "q:1", "r:1"], "-z", "zstd")
        self.broker.produce("kv", ["r:2"])
        self.broker.produce("kv", ["end:1"])
        before = records(self.broker, "kv")
        self.assertEqual(len(before), 3 * len(CODECS) * 20 + 6)
        self.compact_now("kv")

        after = records(self.broker, "kv")
        # Exactly the newest record of each key, at its own offset; k5's tombstone is past
        # delete.retention.ms=0, so k5 is gone altogether.
        want = [r for r in newest_per_key(before) if r[0] != "k5"]
        self.assertEqual(after, want)
        self.assertIn(("k7", "zstd-2-7", want[[r[0] for r in want].index("k7")][2]), after)
        p = self.partition("kv")
        self.assertEqual(p["earliest_offset"], 0)  # the log start does not move
        self.assertEqual(p["latest_offset"], len(before))
        self.assertGreater(p["compaction"]["records_removed"], 0)

        # The compacted log is what a restart after kill -9 finds, and appends go on after it.
        self.broker.kill(signal.SIGKILL)
        self.broker.start()
        self.assertEqual(records(self.broker, "kv"), want)
        self.broker.produce("kv", ["k1:later"])
        self.assertEqual(records(self.broker, "kv")[-1], ("k1", "later", len(before)))

    def test_the_cleaner_compacts_on_its_own_once_enough_is_new(self):
        self.create("auto", "cleanup.policy=compact,segment.bytes=4096,"
                            "min.cleanable.dirty.ratio=0.5")
        for round_ in range(10):
            self.broker.produce("auto", [f"user{i}:v{round_}" for i in range(50)])
        harness.wait_until(lambda: self.partition("auto")["compaction"]["passes"] >= 1,
                           what="the cleaner's first pass", describe=self.broker.log_tail)
        metrics = harness.request(f"127.0.0.1:{self.broker.http_port}", "GET",
                                  "/metrics").body.decode()
        self.assertRegex(metrics, r"ddialab_events_compactions_total [1-9]")
        # Whatever the cleaner did, the newest value of every key is still there.
        newest = {k: v for k, v, _ in records(self.broker, "auto")}
        self.assertEqual(newest, {f"user{i}": "v9" for i in range(50)})

    def test_a_record_without_a_key_is_refused(self):
        self.create("keyed", "cleanup.policy=compact")
        p = subprocess.run(["kcat", "-b", self.broker.bootstrap, "-P", "-t", "keyed", "-X",
                            "message.send.max.retries=0"], input=b"no key\n",
                           capture_output=True, timeout=30)
        self.assertIn(b"Invalid message", p.stderr)
        self.assertEqual(self.partition("keyed")["latest_offset"], 0)
        r = harness.request(f"127.0.0.1:{self.broker.http_port}", "POST",
                            "/topics/keyed/records", body=b'{"records": [{"value": "x"}]}')
        self.assertEqual(r.status, 400)
        self.assertIn("no key", r.json()["message"])

    def test_bad_topic_configs_are_refused(self):
        rc, out = cli(self.broker, "topics", "--create", "x", "--config", "cleanup.policy=bogus")
        self.assertEqual(rc, 1)
        self.assertIn("invalid value 'bogus' for topic config cleanup.policy", out)
        rc, out = cli(self.broker, "topics", "--create", "x", "--config", "no.such.config=1")
        self.assertEqual(rc, 1)
        self.assertIn("unknown topic config 'no.such.config'", out)
        self.assertEqual(self.broker.http("/topics")[1]["topics"], [])
        r = harness.request(f"127.0.0.1:{self.broker.http_port}", "POST", "/topics/x/compact")
        self.assertEqual(r.status, 404)
        self.broker.produce("plain", ["a:1"])
        r = harness.request(f"127.0.0.1:{self.broker.http_port}", "POST", "/topics/plain/compact")
        self.assertEqual(r.status, 400)
        self.assertIn("cleanup.policy=delete", r.json()["message"])


class DeleteTopics(unittest.TestCase):
    def setUp(self):
        self.broker = Broker()
        self.broker.start()

    def tearDown(self):
        self.broker.close()

    def test_delete_removes_the_data_and_the_name_can_be_used_again(self):
        rc, out = cli(self.broker, "topics", "--create", "gone", "--partitions", "3")
        self.assertEqual(rc, 0, out)
        self.broker.produce("gone", [f"k{i}:v{i}" for i in range(30)])
        self.broker.produce("kept", ["a:1"])
        rc, out = cli(self.broker, "topics", "--delete", "gone")
        self.assertEqual((rc, out.strip()), (0, "deleted gone"))

        names = [t["topic"] for t in self.broker.metadata()["topics"]]
        self.assertEqual(names, ["kept"])
        self.assertEqual([t["name"] for t in self.broker.http("/topics")[1]["topics"]], ["kept"])
        harness.wait_until(lambda: not [d for d in os.listdir(self.broker.data)
                                        if d.startswith("gone")],
                           what="the deleted topic's directories to go",
                           describe=lambda: str(os.listdir(self.broker.data)))
        rc, out = cli(self.broker, "topics", "--delete", "gone")
        self.assertEqual(rc, 1)
        self.assertIn("Unknown topic or partition", out)

        # The same name again is a new topic, empty, also after a restart.
        rc, out = cli(self.broker, "topics", "--create", "gone", "--partitions", "1")
        self.assertEqual(rc, 0, out)
        self.assertEqual(self.broker.consume("gone"), [])
        self.broker.kill(signal.SIGKILL)
        self.broker.start()
        self.assertEqual(self.broker.consume("gone"), [])
        (topic,) = [t for t in self.broker.metadata()["topics"] if t["topic"] == "gone"]
        self.assertEqual(len(topic["partitions"]), 1)

    def test_a_deleted_topic_stays_deleted_after_kill_9(self):
        self.broker.produce("t", ["a:1", "b:2"])
        rc, out = cli(self.broker, "topics", "--delete", "t")
        self.assertEqual(rc, 0, out)
        self.broker.kill(signal.SIGKILL)
        self.broker.start()
        self.assertEqual(self.broker.http("/topics")[1]["topics"], [])
        self.assertEqual([d for d in os.listdir(self.broker.data) if d.startswith("t")], [])


if __name__ == "__main__":
    unittest.main()
